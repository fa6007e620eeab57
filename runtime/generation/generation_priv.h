/*
 * generation_priv.h - the inside of struct generation (private to
 * runtime/generation/; everyone else reads it through generation.h).
 */
#ifndef EVS_GENERATION_PRIV_H
#define EVS_GENERATION_PRIV_H

#include "generation.h"

#include <stdatomic.h>

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
	struct generation_subscription *subs; /* generation_subs.c */
	size_t n_subs;
};

/* Adds the opened plugins' declarations to g's config lists and records
 * every subscription's sources. 0 or STATUS_ENOMEM / STATUS_ETOOBIG. */
int generation_merge_subscriptions(struct generation *g);

#endif
