/*
 * cli_run.h - the inside of `evscript run` (cli_run.c): the host it gives
 * the plugin, with provider responses recorded or replayed
 * (cli_run_mock.c).
 */
#ifndef EVS_CLI_RUN_H
#define EVS_CLI_RUN_H

#include <evscript/sdk.h>
#include <stdbool.h>
#include <stddef.h>

#include "hostapi.h"

enum run_mode { RUN_LIVE = 0, RUN_RECORD, RUN_MOCK };

/* The ctx `evscript run` hands the plugin: the daemon's in-process ctx
 * (hostapi.h) first, so that the daemon's own host functions take it as
 * theirs, then what recording and replaying need. */
struct run_ctx {
	struct hostapi_inproc_ctx inproc;
	enum run_mode mode;
	const char *dir;              /* --record or --mock DIR */
	struct proxy_target *target;  /* for paginate's settings (owned) */
	struct run_seen *seen;        /* how often each request was seen (owned) */
	size_t n_seen;
	size_t replayed, recorded, missing;
};

/* The vtable for c->mode: the daemon's in-process one, with proxy,
 * free_response and paginate going through the recording or the replay
 * in the other modes. */
void run_host_init(struct evs_host *host, const struct run_ctx *c);

/* Frees what the recording and replaying kept (not inproc). */
void run_ctx_clear(struct run_ctx *c);

#endif
