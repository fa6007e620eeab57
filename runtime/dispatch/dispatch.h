/*
 * dispatch.h - turns events into executions.
 *
 * Worker threads (max_concurrency of them) claim pending events from the
 * store, one at a time each, and run the event's scripts one after another
 * in config order on the current generation. Each execution is journaled:
 * created running, then finished with its status, error and logs.
 * Synchronous runs (validate-connection inside POST /connections,
 * pre-connection-deletion inside DELETE, actions from POST /action/trigger
 * or from a script) use the same path on the caller's thread.
 */
#ifndef EVS_DISPATCH_H
#define EVS_DISPATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "generation.h"
#include "store.h"

struct dispatch;

/* gen: the first generation (a reference is taken). */
int dispatch_new(struct store *store, struct generation *gen, uint32_t workers,
		 struct dispatch **out);
/* Stops (dispatch_stop with no wait if not yet stopped) and frees; when
 * executions still run on its threads it leaves them be (process exit). */
void dispatch_free(struct dispatch *d);

/* Starts the worker threads. */
int dispatch_start(struct dispatch *d);

/* Stops claiming events and waits for running executions until deadline_us
 * (util_mono_us). Returns how many still run then (0: the workers are
 * joined). The caller marks those interrupted (store_interrupt_running)
 * before it exits; an execution finished after that keeps interrupted and
 * its event is left claimed. No further script of an event starts once
 * stopping, and no script of an event a worker claims then; pending events
 * stay pending for the next start. Can be called
 * again (e.g. after killing the stragglers) to join the workers. */
size_t dispatch_stop(struct dispatch *d, int64_t deadline_us);

/* Counters for /metrics, since start. Runs are counted by what ran them:
 * the three events (enum config_event) and actions. */
#define DISPATCH_STAT_ACTION CONFIG_EVENT_COUNT
#define DISPATCH_STAT_KINDS (CONFIG_EVENT_COUNT + 1)
#define DISPATCH_DURATION_BUCKETS 10
/* Upper bounds of the duration histogram's buckets, in seconds. */
extern const double dispatch_duration_bounds[DISPATCH_DURATION_BUCKETS];

struct dispatch_stats {
	uint64_t finished[DISPATCH_STAT_KINDS][6];  /* by kind and enum store_exec_status */
	uint64_t duration_le[DISPATCH_STAT_KINDS][DISPATCH_DURATION_BUCKETS]; /* cumulative */
	uint64_t duration_count[DISPATCH_STAT_KINDS];
	double duration_sum_s[DISPATCH_STAT_KINDS];
	size_t running;
};
/* "post-connection-creation", ..., "action". */
const char *dispatch_stat_kind_name(int kind);
void dispatch_get_stats(struct dispatch *d, struct dispatch_stats *st);

/* Wakes the workers: an event is pending. */
void dispatch_notify(struct dispatch *d);

/* The current generation, with a reference the caller drops
 * (generation_unref). */
struct generation *dispatch_generation(struct dispatch *d);

/* Makes g current (takes over the caller's reference). New events (claimed
 * from now on) run on g; the previous generation drains as its executions
 * finish. Drops the dispatcher's reference to the previous one: the caller
 * keeps its own if it wants to drain it with a deadline (evscriptd does). */
void dispatch_swap_generation(struct dispatch *d, struct generation *g);

/* The outcome of one execution, for synchronous callers. */
struct dispatch_outcome {
	int64_t execution_id;
	enum store_exec_status status;
	char script[256];
	char *error;        /* owned; NULL on success */
	char *output_json;  /* actions: owned; "null" when none */
	char *metadata;     /* validate-connection: the candidate's metadata after the
	                       scripts (owned; NULL when no script changed it) */
	bool unrecorded;    /* the store refused its end: kept and retried, not final */
};
void dispatch_outcome_clear(struct dispatch_outcome *o);

/* Runs a claimed event's scripts now, on this thread (DELETE's
 * pre-connection-deletion), and marks the event done. Once stopping, its
 * first script still runs (the connection is deleted anyway) but no
 * further one starts. */
int dispatch_run_event(struct dispatch *d, const struct store_event *ev);

/* validate-connection for a candidate connection (the get_connection() JSON
 * shape): records the event, runs the scripts in order and stops at the
 * first that does not succeed. Returns 0 when all succeeded (or there are
 * none) with o->metadata set when scripts changed it; 1 when one failed,
 * with o describing it; a negative status code (status.h) on an internal
 * error: the store's, the executor's or STATUS_ENOTFOUND / STATUS_ENOMEM. */
int dispatch_validate(struct dispatch *d, const char *provider_config_key,
		      const char *connection_id, const char *candidate_json,
		      struct dispatch_outcome *o);

/* Runs action `name` for a connection and waits for it. parent is the
 * execution that triggered it (0: the API) and depth its nesting. Returns 0
 * with o filled (o->status says whether it succeeded), or EVS_ENOTFOUND
 * (not configured for the integration, or not loaded), EVS_EDEPTH,
 * STATUS_EIO (it ran, o->execution_id, but the store refused its end: the
 * end is retried until the store takes it, and the outcome must not be
 * reported as final), or another negative code. */
int dispatch_action(struct dispatch *d, const char *provider_config_key, const char *connection_id,
		    const char *name, const char *input_json, int64_t parent, int depth,
		    struct dispatch_outcome *o);

#define DISPATCH_ACTION_DEPTH_MAX 8

#endif
