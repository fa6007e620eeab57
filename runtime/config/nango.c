/*
 * nango.c - nango.yaml (v2) as Nango has it: integrations.<id>.on-events,
 * the legacy post-connection-scripts, actions, and evscript's `provider:`.
 * Everything else Nango knows (syncs, models, v1 script entries...) is
 * accepted and reported once as ignored.
 */
#include "parse_util.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const event_names[CONFIG_EVENT_COUNT] = {
	"post-connection-creation",
	"pre-connection-deletion",
	"validate-connection",
};

const char *config_event_name(int event)
{
	if (event < 0 || event >= CONFIG_EVENT_COUNT)
		return NULL;
	return event_names[event];
}

int config_event_from_name(const char *name)
{
	for (int i = 0; name && i < CONFIG_EVENT_COUNT; i++)
		if (strcmp(name, event_names[i]) == 0)
			return i;
	return -1;
}

const char *config_execution_name(enum config_execution e)
{
	switch (e) {
	case CONFIG_EXEC_ISOLATED:
		return "isolated";
	case CONFIG_EXEC_IN_PROCESS:
		return "in-process";
	case CONFIG_EXEC_INHERIT:
		break;
	}
	return "inherit";
}

int nango_note_ignored(struct pctx *c, const struct ynode *at, struct config_nango *out,
		       const char *path, const char *why)
{
	char note[CONFIG_ERR_MAX];
	int ret;

	snprintf(note, sizeof(note), "%s:%u:%u: ignored: %s (%s)", c->file ? c->file : "<config>",
		 at->line, at->column, path, why);
	for (size_t i = 0; i < out->ignored.n; i++)
		if (strcmp(out->ignored.items[i], note) == 0)
			return 0; /* reported once */
	ret = strlist_push(&out->ignored, note);
	if (ret)
		return PFAIL(c, at, ret, "%s: %s", path, status_str(ret));
	return 0;
}

/* A list of script names into l (null: empty). */
static int script_list(struct pctx *c, const struct ynode *n, const char *what, struct config_strlist *l)
{
	int ret;

	if (ynode_is_null(n))
		return 0;
	if (n->type != YNODE_SEQ)
		return PFAIL(c, n, CONFIG_EINVALID, "%s: expected a list of script names, found %s", what,
			     ynode_kind(n));
	for (size_t i = 0; i < n->n; i++) {
		const struct ynode *it = n->items[i];

		if (it->type != YNODE_SCALAR || ynode_is_null(it))
			return PFAIL(c, it, CONFIG_EINVALID, "%s: expected a script name, found %s", what,
				     ynode_kind(it));
		if (!util_valid_name(it->str))
			return PFAIL(c, it, CONFIG_EINVALID,
				     "%s: bad script name '%s', expected letters, digits, '_' and '-' only",
				     what, it->str);
		if (l->n >= CONFIG_SCRIPTS_MAX)
			return PFAIL(c, it, CONFIG_ETOOLARGE, "%s: more than %u scripts", what, CONFIG_SCRIPTS_MAX);
		for (size_t j = 0; j < l->n; j++)
			if (strcmp(l->items[j], it->str) == 0)
				return PFAIL(c, it, CONFIG_EINVALID, "%s: script '%s' is listed twice",
					     what, it->str);
		ret = strlist_push(l, it->str);
		if (ret)
			return PFAIL(c, it, ret, "%s: %s", what, status_str(ret));
	}
	return 0;
}

int p_execution(struct pctx *c, const struct ynode *n, const char *what, enum config_execution *out)
{
	if (n && n->type == YNODE_SCALAR) {
		if (strcmp(n->str, "isolated") == 0) {
			*out = CONFIG_EXEC_ISOLATED;
			return 0;
		}
		if (strcmp(n->str, "in-process") == 0) {
			*out = CONFIG_EXEC_IN_PROCESS;
			return 0;
		}
		return PFAIL(c, n, CONFIG_EINVALID, "%s: unknown execution mode '%s', expected isolated or in-process",
			     what, n->str);
	}
	return PFAIL(c, n, CONFIG_EINVALID, "%s: expected isolated or in-process, found %s", what, ynode_kind(n));
}

/* What the on-events and actions entries of one integration read into. */
struct integration_ctx {
	const char *id;
	struct config_integration *in;
};

static int on_event_entry(struct pctx *c, const struct ynode *k, const struct ynode *v, const char *what,
			  void *user)
{
	struct integration_ctx *ic = user;
	int ev = config_event_from_name(k->str);

	if (ev < 0)
		return PFAIL(c, k, CONFIG_EINVALID,
			     "integrations.%s.on-events: unknown event '%s', expected "
			     "post-connection-creation, pre-connection-deletion or validate-connection",
			     ic->id, k->str);
	return script_list(c, v, what, &ic->in->events[ev]);
}

/* The definition (description, input, output, endpoint, scopes, version,
 * ...) is Nango's business; evscript keeps the name. */
static int action_entry(struct pctx *c, const struct ynode *k, const struct ynode *v, const char *what,
			void *user)
{
	struct integration_ctx *ic = user;
	int ret;

	(void)v;
	(void)what;
	if (!util_valid_name(k->str))
		return PFAIL(c, k, CONFIG_EINVALID,
			     "integrations.%s.actions: bad action name '%s', expected letters, digits, '_' and '-' only",
			     ic->id, k->str);
	ret = strlist_push(&ic->in->actions, k->str);
	if (ret)
		return PFAIL(c, k, ret, "integrations.%s.actions: %s", ic->id, status_str(ret));
	return 0;
}

/* integrations.<id>.<key> with entry for each of its entries. */
static int parse_events_or_actions(struct pctx *c, const struct ynode *n, const char *id, const char *key,
				   struct config_integration *in)
{
	struct integration_ctx ic = {id, in};
	bool events = strcmp(key, "on-events") == 0;
	char prefix[256];

	snprintf(prefix, sizeof(prefix), "integrations.%s.%s", id, key);
	return p_each(c, n, prefix, events ? " of event names to lists of scripts" : " of action names to definitions",
		      events ? on_event_entry : action_entry, &ic);
}

/* Whether a post-connection-scripts list, or an on-events mapping, names at
 * least one script: Nango refuses the two keys together only then. */
static bool lists_scripts(const struct ynode *n)
{
	if (ynode_is_null(n))
		return false;
	if (n->type == YNODE_SCALAR)
		return n->str[0] != '\0';
	if (n->type == YNODE_MAP) {
		for (size_t i = 0; i < n->n; i++)
			if (lists_scripts(n->items[i]))
				return true;
		return false;
	}
	return n->n > 0;
}

/* Key k (on-events or post-connection-scripts) with value v, when the other
 * one was at other with other_v: refused when both list scripts. */
static int only_one(struct pctx *c, const char *id, const struct ynode *k, const struct ynode *v,
		    const struct ynode *other, const struct ynode *other_v)
{
	bool second_is_legacy = strcmp(k->str, "on-events") == 0;
	char at[32];

	if (!other || !lists_scripts(other_v) || !lists_scripts(v))
		return 0;
	snprintf(at, sizeof(at), " (line %u)", other->line);
	return PFAIL(c, k, CONFIG_EINVALID,
		     "integrations.%s: both on-events%s and post-connection-scripts%s, "
		     "expected only one (move the scripts under on-events.post-connection-creation)",
		     id, second_is_legacy ? "" : at, second_is_legacy ? at : "");
}

static int parse_integration(struct pctx *c, const struct ynode *key, const struct ynode *n,
			     struct config_integration *in, struct config_nango *out)
{
	const char *id = key->str;
	const struct ynode *on_events = NULL, *legacy = NULL, *on_events_v = NULL, *legacy_v = NULL;
	char path[256];
	int ret;

	in->line = key->line;
	in->column = key->column;
	in->provider_line = key->line;
	in->provider_column = key->column;
	in->id = strdup(id);
	if (!in->id)
		return PFAIL(c, key, CONFIG_ENOMEM, "out of memory");
	if (!util_valid_name(id))
		return PFAIL(c, key, CONFIG_EINVALID,
			     "integrations: bad integration id '%s', expected letters, digits, '_' and '-' only", id);
	if (!ynode_is_null(n) && n->type != YNODE_MAP)
		return PFAIL(c, n, CONFIG_EINVALID, "integrations.%s: expected a mapping, found %s", id,
			     ynode_kind(n));
	for (size_t i = 0; !ynode_is_null(n) && i < n->n; i++) {
		const struct ynode *k = n->keys[i], *v = n->items[i];

		if (strcmp(k->str, "on-events") == 0) {
			ret = only_one(c, id, k, v, legacy, legacy_v);
			if (ret)
				return ret;
			on_events = k;
			on_events_v = v;
			ret = parse_events_or_actions(c, v, id, "on-events", in);
		} else if (strcmp(k->str, "post-connection-scripts") == 0) {
			ret = only_one(c, id, k, v, on_events, on_events_v);
			if (ret)
				return ret;
			legacy = k;
			legacy_v = v;
			snprintf(path, sizeof(path), "integrations.%s.post-connection-scripts", id);
			ret = script_list(c, v, path, &in->events[CONFIG_EVENT_POST_CONNECTION_CREATION]);
		} else if (strcmp(k->str, "actions") == 0) {
			ret = parse_events_or_actions(c, v, id, "actions", in);
		} else if (strcmp(k->str, "provider") == 0) {
			snprintf(path, sizeof(path), "integrations.%s.provider", id);
			ret = p_string(c, v, path, &in->provider);
			if (!ret && !util_valid_name(in->provider))
				ret = PFAIL(c, v, CONFIG_EINVALID,
					    "%s: bad provider name '%s', expected letters, digits, '_' and '-' only",
					    path, in->provider);
			in->provider_line = v->line;
			in->provider_column = v->column;
		} else if (strcmp(k->str, "execution") == 0) {
			snprintf(path, sizeof(path), "integrations.%s.execution", id);
			ret = p_execution(c, v, path, &in->execution);
		} else {
			snprintf(path, sizeof(path), "integrations.%s.%s", id, k->str);
			ret = nango_note_ignored(c, k, out, path,
						 strcmp(k->str, "syncs") == 0
							 ? "evscript runs event scripts and actions only"
							 : "not used by evscript");
		}
		if (ret)
			return ret;
	}
	if (!in->provider) {
		in->provider = strdup(id);
		if (!in->provider)
			return PFAIL(c, key, CONFIG_ENOMEM, "out of memory");
	}
	return 0;
}

static int integration_item(struct pctx *c, const struct ynode *key, const struct ynode *v, void *item, void *user)
{
	return parse_integration(c, key, v, item, user);
}

int nango_parse_integrations(struct pctx *c, const struct ynode *n, struct config_nango *out)
{
	if (ynode_is_null(n))
		return 0;
	return p_map_read(c, n, "integrations", "integration ids", CONFIG_INTEGRATIONS_MAX,
			  sizeof(*out->integrations), &out->integrations, &out->n_integrations, integration_item, out);
}

static void integration_clear(struct config_integration *in)
{
	free(in->id);
	free(in->provider);
	for (int e = 0; e < CONFIG_EVENT_COUNT; e++)
		strlist_clear(&in->events[e]);
	strlist_clear(&in->actions);
}

void config_nango_clear(struct config_nango *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n_integrations; i++)
		integration_clear(&n->integrations[i]);
	free(n->integrations);
	strlist_clear(&n->ignored);
	free(n->file);
	memset(n, 0, sizeof(*n));
}

int config_parse_nango(const char *bytes, size_t len, const char *filename,
		       struct config_nango *out, char *err, size_t errlen)
{
	struct pctx c = {filename, err, errlen};
	struct ytree t;
	const struct ynode *root;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = ytree_parse(bytes, len, filename, &t, err, errlen);
	if (ret)
		return ret;
	out->file = strdup(filename ? filename : "<config>");
	if (!out->file) {
		ret = PFAIL(&c, NULL, CONFIG_ENOMEM, "out of memory");
		goto out;
	}
	root = t.root;
	if (ynode_is_null(root))
		goto out;
	if (root->type != YNODE_MAP) {
		ret = PFAIL(&c, root, CONFIG_EINVALID, "expected a mapping with an `integrations:` key, found %s",
			    ynode_kind(root));
		goto out;
	}
	for (size_t i = 0; i < root->n; i++) {
		const struct ynode *k = root->keys[i];

		if (strcmp(k->str, "integrations") == 0)
			ret = nango_parse_integrations(&c, root->items[i], out);
		else
			ret = nango_note_ignored(&c, k, out, k->str,
						 strcmp(k->str, "models") == 0 ? "models describe syncs and actions' data"
									       : "not used by evscript");
		if (ret)
			goto out;
	}
out:
	ytree_free(&t);
	if (ret)
		config_nango_clear(out);
	return ret;
}
