/*
 * generation_scripts.c - the script names the config lists, held against the
 * plugins a generation has.
 *
 * A name listed in nango.yaml with no plugin behind it would otherwise pass
 * both --check-config and the reload and fail only when its event fires
 * ("script not loaded"). Here each such name is reported once, with where it
 * is listed, why it is missing (not deployed, refused, or of the other kind)
 * and, when a deployed name is close to it, "did you mean".
 */
#include "generation_priv.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

#define NAME_DISTANCE_MAX 64 /* names longer than this are not compared */

/* Levenshtein distance between a and b, or SIZE_MAX when either is too
 * long to compare. */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), prev[NAME_DISTANCE_MAX + 1], cur[NAME_DISTANCE_MAX + 1];

	if (la > NAME_DISTANCE_MAX || lb > NAME_DISTANCE_MAX)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
			size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);

			cur[j] = del < ins ? del : ins;
			if (sub < cur[j])
				cur[j] = sub;
		}
		memcpy(prev, cur, (lb + 1) * sizeof(*prev));
	}
	return prev[lb];
}

/* Keeps candidate in *best when it is closer to name than what is there:
 * at most 2 edits, or a third of the name for long names. */
static void consider(const char *name, const char *candidate, const char **best, size_t *best_d)
{
	size_t d = distance(name, candidate), limit = strlen(name) / 3;

	if (limit < 2)
		limit = 2;
	if (d == 0 || d > limit || d >= *best_d)
		return;
	*best = candidate;
	*best_d = d;
}

/* The deployed name (loaded or refused) closest to name, or NULL. */
static const char *closest(const struct generation *g, const char *name)
{
	const char *best = NULL;
	size_t best_d = SIZE_MAX;

	for (size_t i = 0; i < g->n_plugins; i++)
		consider(name, g->plugins[i]->name, &best, &best_d);
	for (size_t i = 0; i < g->n_refused; i++)
		consider(name, g->refused[i].name, &best, &best_d);
	return best;
}

static const struct generation_refusal *refusal(const struct generation *g, const char *name)
{
	for (size_t i = 0; i < g->n_refused; i++)
		if (strcmp(g->refused[i].name, name) == 0)
			return &g->refused[i];
	return NULL;
}

/* Why the name listed as `list` (an event, or "actions") cannot run, into
 * why; false when it can. */
static bool missing(const struct generation *g, const char *name, bool action, char *why, size_t len)
{
	const struct loader_plugin *p = generation_plugin(g, name, NULL);
	const struct generation_refusal *r;
	const char *near;

	if (p && (p->kind == LOADER_ACTION) == action)
		return false;
	if (p) {
		util_set_err(why, len, "which is %s, not %s", action ? "an event script (on_event)" :
			     "an action (run_action)", action ? "an action" : "an event script");
		return true;
	}
	r = refusal(g, name);
	if (r) {
		util_set_err(why, len, "which was refused: %s", r->reason);
		return true;
	}
	near = closest(g, name);
	if (near)
		util_set_err(why, len, "which is not a deployed plugin (no %s.so in %s); did you mean '%s'?",
			     name, g->config->plugin_dir, near);
	else
		util_set_err(why, len, "which is not a deployed plugin (no %s.so in %s)", name,
			     g->config->plugin_dir);
	return true;
}

/* One list of one integration: a note per missing name. */
static size_t check_list(const struct generation *g, const struct config_integration *in,
			 const struct config_strlist *list, const char *what, bool action,
			 generation_note_fn cb, void *user)
{
	char why[700], note[1200];
	size_t n = 0;

	for (size_t i = 0; i < list->n; i++) {
		if (!missing(g, list->items[i], action, why, sizeof(why)))
			continue;
		snprintf(note, sizeof(note), "%s:%u:%u: integrations.%s.%s lists '%s', %s", g->config->nango.file,
			 in->line, in->column, in->id, what, list->items[i], why);
		if (cb)
			cb(user, note);
		n++;
	}
	return n;
}

size_t generation_missing_scripts(const struct generation *g, generation_note_fn cb, void *user)
{
	const struct config_nango *nango = &g->config->nango;
	char what[128];
	size_t n = 0;

	for (size_t i = 0; i < nango->n_integrations; i++) {
		const struct config_integration *in = &nango->integrations[i];

		for (int e = 0; e < CONFIG_EVENT_COUNT; e++) {
			snprintf(what, sizeof(what), "on-events.%s", config_event_name(e));
			n += check_list(g, in, &in->events[e], what, false, cb, user);
		}
		n += check_list(g, in, &in->actions, "actions", true, cb, user);
	}
	return n;
}
