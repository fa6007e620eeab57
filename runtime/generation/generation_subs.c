/*
 * generation_subs.c - declared subscriptions (EVS_ON_EVENT, EVS_ACTION_FOR)
 * merged with nango.yaml's lists.
 *
 * The loader read each plugin's declarations from its verified bytes; here
 * they are checked against the config (a declaration naming an integration
 * the config lacks, or an unknown event, refuses the plugin) and, once the
 * generation's plugins are opened, added to the generation's own copy of
 * the config: for one integration and event, nango.yaml's scripts stay first
 * in its order, then the declared ones by plugin name, each script once.
 * Everything downstream (dispatch, actions, retries) reads the merged lists
 * and needs no change. Each (plugin, integration, event) is remembered with
 * where it came from, for GET /plugins.
 */
#include "generation_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

int generation_check_subscriptions(const struct config_host *c, const struct loader_plugin *p,
				   char *err, size_t errlen)
{
	for (size_t i = 0; i < p->n_subscriptions; i++) {
		const struct loader_subscription *s = &p->subscriptions[i];

		if (!config_integration_find(c, s->integration)) {
			util_set_err(err, errlen, "%s: %s.so declares %s for integration %s, which is not "
				     "configured", status_str(LOADER_ESUBSCRIPTION), p->name,
				     s->kind == EVS_SUBSCRIBE_ACTION ? "an action" : s->event, s->integration);
			return LOADER_ESUBSCRIPTION;
		}
		if (s->kind == EVS_SUBSCRIBE_EVENT && config_event_from_name(s->event) < 0) {
			util_set_err(err, errlen, "%s: %s.so declares the unknown event '%s' for %s (expected "
				     "post-connection-creation, pre-connection-deletion or validate-connection)",
				     status_str(LOADER_ESUBSCRIPTION), p->name, s->event, s->integration);
			return LOADER_ESUBSCRIPTION;
		}
	}
	return 0;
}

static bool declares(const struct loader_plugin *p, enum evs_subscription_kind kind,
		     const char *integration, const char *event)
{
	for (size_t i = 0; i < p->n_subscriptions; i++) {
		const struct loader_subscription *s = &p->subscriptions[i];

		if (s->kind == kind && strcmp(s->integration, integration) == 0 &&
		    strcmp(s->event, event) == 0)
			return true;
	}
	return false;
}

static bool listed(const struct config_strlist *l, size_t upto, const char *name)
{
	for (size_t i = 0; i < upto && i < l->n; i++)
		if (strcmp(l->items[i], name) == 0)
			return true;
	return false;
}

static int push_sub(struct generation *g, size_t *cap, const char *plugin, const char *integration,
		    const char *event, unsigned sources)
{
	struct generation_subscription *s;

	if (g->n_subs == *cap) {
		size_t ncap = *cap ? 2 * *cap : 16;
		void *nv = realloc(g->subs, ncap * sizeof(*g->subs));

		if (!nv)
			return STATUS_ENOMEM;
		g->subs = nv;
		*cap = ncap;
	}
	s = &g->subs[g->n_subs++];
	memset(s, 0, sizeof(*s));
	snprintf(s->plugin, sizeof(s->plugin), "%s", plugin);
	snprintf(s->integration, sizeof(s->integration), "%s", integration);
	snprintf(s->event, sizeof(s->event), "%s", event);
	s->sources = sources;
	return 0;
}

/* One list (an event's scripts, or the actions) of one integration: the
 * declared plugins of `kind` appended after the listed ones, and every
 * loaded plugin of the result recorded with its sources. */
static int merge_list(struct generation *g, size_t *cap, struct config_strlist *l,
		      enum evs_subscription_kind kind, const char *integration, const char *event)
{
	size_t from_yaml = l->n;
	int ret;

	for (size_t i = 0; i < g->n_plugins; i++) {
		const struct loader_plugin *p = g->plugins[i];
		enum loader_kind want = kind == EVS_SUBSCRIBE_ACTION ? LOADER_ACTION : LOADER_EVENT_SCRIPT;

		if (!declares(p, kind, integration, kind == EVS_SUBSCRIBE_ACTION ? "" : event) ||
		    listed(l, l->n, p->name))
			continue;
		if (p->kind != want) {
			log_warn("generation", "plugin %s declares %s for %s but is %s: declaration ignored",
				 p->name, kind == EVS_SUBSCRIBE_ACTION ? "an action" : event, integration,
				 p->kind == LOADER_ACTION ? "an action" : "an event script");
			continue;
		}
		if (l->n >= CONFIG_SCRIPTS_MAX)
			return STATUS_ETOOBIG;
		ret = config_strlist_append(l, p->name);
		if (ret < 0)
			return ret;
	}
	for (size_t i = 0; i < l->n; i++) {
		const struct loader_plugin *p = generation_plugin(g, l->items[i], NULL);
		unsigned src = 0;

		if (!p)
			continue;
		if (i < from_yaml)
			src |= GENERATION_SUB_NANGO_YAML;
		if (declares(p, kind, integration, kind == EVS_SUBSCRIBE_ACTION ? "" : event))
			src |= GENERATION_SUB_DECLARED;
		ret = push_sub(g, cap, p->name, integration, event, src);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int generation_merge_subscriptions(struct generation *g)
{
	struct config_nango *n = &g->config->nango;
	size_t cap = 0;
	int ret = 0;

	for (size_t i = 0; i < n->n_integrations && !ret; i++) {
		struct config_integration *in = &n->integrations[i];

		for (int ev = 0; ev < CONFIG_EVENT_COUNT && !ret; ev++)
			ret = merge_list(g, &cap, &in->events[ev], EVS_SUBSCRIBE_EVENT, in->id,
					 config_event_name(ev));
		if (!ret)
			ret = merge_list(g, &cap, &in->actions, EVS_SUBSCRIBE_ACTION, in->id, "action");
	}
	return ret;
}

size_t generation_subscription_count(const struct generation *g)
{
	return g->n_subs;
}

const struct generation_subscription *generation_subscription_at(const struct generation *g, size_t i)
{
	return &g->subs[i];
}
