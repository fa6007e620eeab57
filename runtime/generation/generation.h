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

#include <stdatomic.h>
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

struct generation {
	int64_t number;
	int64_t created_at_ms;
	struct config_host *config;
	struct sign_keyring *keyring;
	struct loader_plugin **plugins;     /* loaded, sorted by name */
	int64_t *plugin_generation;         /* the generation each plugin was first loaded in */
	size_t n_plugins;
	struct generation_refusal *refused;
	size_t n_refused;
	struct executor *executor;
	atomic_int refs;
};

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

/* The loaded plugin called name (its index in *index when non-NULL), or NULL. */
struct loader_plugin *generation_plugin(const struct generation *g, const char *name,
					size_t *index);

struct generation *generation_ref(struct generation *g);
/* Drops a reference; the last one drains the executor (until the config's
 * drain deadline) and frees everything. NULL is fine. */
void generation_unref(struct generation *g);

#endif
