/*
 * generation.h - one immutable generation: a config, the verified and
 * loaded plugins, and the executor (zygote) that holds them.
 *
 * Built aside (generation_build), switched to by the dispatcher only when
 * complete, and freed when its last reference is dropped: executions in
 * flight hold a reference, so they finish on the generation they started on.
 */
#ifndef EVS_GENERATION_H
#define EVS_GENERATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "executor.h"
#include "loader.h"
#include "sign.h"
#include "store.h"

struct generation_refusal {
	char name[256];
	char file[300];
	int code;               /* LOADER_E* */
	char reason[600];
	bool kept_previous;     /* the previous generation's version stays in service */
};

/* Where a subscription comes from (bits of generation_subscription.sources). */
#define GENERATION_SUB_NANGO_YAML 1u   /* listed in nango.yaml */
#define GENERATION_SUB_DECLARED 2u     /* declared by the plugin (EVS_ON_EVENT, EVS_ACTION_FOR) */

/* One loaded plugin subscribed to one event of one integration (event
 * "action" for an action the integration offers). */
struct generation_subscription {
	char plugin[256];
	char integration[256];
	char event[32];
	unsigned sources;
};

/* Opaque: read it through the accessors below. */
struct generation;

/* Its number, and when it was built (util_now_ms). */
int64_t generation_number(const struct generation *g);
int64_t generation_created_at_ms(const struct generation *g);
/* Its config and its executor, lent for as long as the caller holds a
 * reference. */
const struct config_host *generation_config(const struct generation *g);
struct executor *generation_executor(const struct generation *g);
/* Its loaded plugins, sorted by name: how many, plugin i (lent) with the
 * generation it was first loaded in (*since, may be NULL), and the array
 * (for executor_new). */
size_t generation_plugin_count(const struct generation *g);
const struct loader_plugin *generation_plugin_at(const struct generation *g, size_t i,
						 int64_t *since);
struct loader_plugin *const *generation_plugins(const struct generation *g);
/* Its subscriptions, by integration (config order), event, then the order
 * scripts run in: how many, and subscription i (lent). */
size_t generation_subscription_count(const struct generation *g);
const struct generation_subscription *generation_subscription_at(const struct generation *g, size_t i);
/* The plugins it refused: how many, and refusal i (lent). */
size_t generation_refusal_count(const struct generation *g);
const struct generation_refusal *generation_refusal_at(const struct generation *g, size_t i);
/* Only the caller's reference is left (a retired generation whose
 * executions have all ended). */
bool generation_unshared(const struct generation *g);


/* Builds generation `number` from the config file at config_path (envp for
 * EVSCRIPT_SECRET_KEY, as config_load). prev (may be NULL) is the running
 * generation: a plugin that fails verification or loading keeps prev's
 * version in service. A config error fails the whole build (err holds the
 * file:line:column message, *out is NULL). Plugin refusals do not fail the
 * build: they are listed in refused. Accepted versions are recorded in the
 * store's ledger. *out holds one reference (generation_unref). */
int generation_build(const char *config_path, char *const *envp, struct generation *prev,
		     struct store *store, int64_t number, struct generation **out, char *err,
		     size_t errlen);

/* 0 when every subscription p declares (EVS_ON_EVENT, EVS_ACTION_FOR)
 * names an integration of c and a known event; LOADER_ESUBSCRIPTION with
 * err ("<status_str>: <why>") otherwise. Reads data only: p need not be
 * opened (evscriptd --check-config uses it on verified plugins). */
int generation_check_subscriptions(const struct config_host *c, const struct loader_plugin *p,
				   char *err, size_t errlen);

/* What a reload would do, without doing it (evscriptd --check-config): the
 * same build as generation_build() (config, keys, every plugin verified
 * with store's ledger and opened in a throwaway zygote), but nothing is
 * recorded in the ledger and no previous generation stands in for a
 * refused plugin. store may be NULL (no version accepted yet). Same
 * contract as generation_build() otherwise: *out is the result to report
 * (generation_unref). */
int generation_check(const char *config_path, char *const *envp, struct store *store,
		     struct generation **out, char *err, size_t errlen);

/* Called once per note, with one line of text (lent for the call). */
typedef void (*generation_note_fn)(void *user, const char *note);

/* The script names g's config lists (under every integration's on-events
 * and actions) that g cannot run: no such plugin (with "did you mean" when
 * a deployed name is close), a refused one (with its reason), or one of the
 * other kind. One note each, "FILE:LINE:COL: integrations.ID.on-events.EVENT
 * lists 'NAME', which ..."; cb may be NULL. Returns how many. */
size_t generation_missing_scripts(const struct generation *g, generation_note_fn cb, void *user);

/* The loaded plugin called name (its index in *index when non-NULL), or NULL. */
struct loader_plugin *generation_plugin(const struct generation *g, const char *name,
					size_t *index);

struct generation *generation_ref(struct generation *g);
/* Drops a reference; the last one drains the executor (until the config's
 * drain deadline) and frees everything. NULL is fine. */
void generation_unref(struct generation *g);

#endif
