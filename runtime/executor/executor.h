/*
 * executor.h - runs executions of loaded plugins: isolated (the default) or
 * in-process. This header is the daemon's contract; how an isolated
 * execution runs (the zygote, the executors, their sandbox, the zygote's
 * restarts) is told once, at the top of zygote.c.
 *
 * Isolated. Each execution runs in a single-use executor process forked
 * by the generation's zygote, the evscript-zygote binary, found at
 * executor_options.zygote_path, else next to the running program, else in
 * ../libexec/evscript/ from it (the installed layout); executor_new()
 * fails with a clear error when there is none. Plugin
 * constructors run in the zygote, never in the daemon. The plugin's host
 * calls are served on the thread in executor_run(), proxy() requests
 * included, so the connection's credentials never enter an executor
 * process. executor_run() returns as soon as the execution's result has
 * arrived; the executor's exit is not waited for. How the executor ended
 * decides the verdict only when no result came (crashed with the signal,
 * exited, timed out, killed by a drain, lost with its zygote); a crash
 * after the result does not change it. A zygote that dies is restarted;
 * meanwhile new executions wait, each up to its deadline.
 *
 * In-process. executor_run() calls the entry point on the calling thread
 * with hostapi_inproc_vtable(). No crash isolation and no enforced
 * deadline: documented as such, opt-in per script, integration or globally.
 */
#ifndef EVS_EXECUTOR_H
#define EVS_EXECUTOR_H

#include <evscript/sdk.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hostapi.h"
#include "loader.h"
#include "store.h"

#define EXECUTOR_ZYGOTE_NAME "evscript-zygote"

struct executor;

struct executor_options {
	const char *zygote_path;   /* the evscript-zygote binary; NULL: looked up (above) */
	uint64_t memory_limit_mb;  /* address space an executor may add; 0: none */
	uint32_t cpu_limit_s;      /* RLIMIT_CPU of an executor; 0: none */
	uint32_t prefork;          /* executors kept forked ahead; 0: fork on demand */
	int64_t generation;        /* for log lines */
	uint32_t uid, gid;         /* executors' identity when the daemon is root (sandbox.h);
	                              0: none (they would stay root: the layer is missing) */
	uint32_t max_processes;    /* tasks (processes and threads) of one execution; 0: no cap */
};

/* Per plugin: did it load, and if not, why (a LOADER_E* code and a line). */
struct executor_load_result {
	int code;
	char err[512];
};

/* Takes the verified (loader_verify()) plugins into service. The zygote
 * opens every plugin (a plugin may run isolated for one integration and
 * in-process for another); for each with in_process[i] (may be NULL: none)
 * it is also opened in this process (loader_open() on plugins[i], so its
 * constructors run in the daemon: trusted plugins only). results[i] tells
 * what became of plugins[i] (the first failure of either open); a plugin
 * that failed to open is unusable in that mode (executor_run refuses it)
 * but the executor is still created. plugins stay owned by the caller and must outlive the
 * executor. Returns 0, or a negative code with err set when the zygote could
 * not be started at all. *out owned by the caller (executor_free). */
int executor_new(const struct executor_options *opts, struct loader_plugin *const *plugins,
		 size_t n, const bool *in_process, struct executor_load_result *results,
		 struct executor **out, char *err, size_t errlen);

/* Lets running executions finish until deadline_us (util_mono_us), kills
 * what still runs after it (those executor_run calls return TIMED_OUT with
 * "killed: generation drained"), stops the zygote and frees. NULL is fine. */
void executor_free(struct executor *ex, int64_t deadline_us);

/* The drain deadline of a retired generation has passed: kills every
 * isolated execution still running (those executor_run calls return
 * TIMED_OUT with "killed: generation drained") and refuses new ones the same
 * way. Returns at once; the executor stays usable for executor_free.
 * In-process executions cannot be killed. NULL is fine. */
void executor_kill_all(struct executor *ex);

/* Number of executions running now: an isolated execution counts from
 * executor_run() until its result arrived (or it ended without one), not
 * until its executor process has exited and been reaped. So for a moment
 * after a burst more executor processes may exist than executions run
 * (each exits right after sending its result), besides the pool. */
size_t executor_running(const struct executor *ex);

/* Idle executors forked ahead whose exec sockets the daemon holds (each is
 * one descriptor in this process), for tests and /metrics. */
size_t executor_idle(const struct executor *ex);

/* Process id of the zygote (0 when none, or while it is being restarted),
 * for tests and /metrics. */
int executor_zygote_pid(const struct executor *ex);

/* The zygote died and its replacement is not running yet: isolated
 * executions wait (up to their deadlines). For /healthz. */
bool executor_degraded(const struct executor *ex);

/* How many times the zygote was restarted, for /metrics. */
uint64_t executor_zygote_restarts(const struct executor *ex);

/* What the executors' sandbox applies on this machine and what it lacks,
 * one line (sandbox_describe), for the log and GET /healthz. Lent. */
const char *executor_sandbox(const struct executor *ex);

struct executor_job {
	size_t plugin;                 /* index in the executor_new() array */
	bool in_process;
	const struct evs_event *event; /* for on_event; NULL for an action */
	const char *input_json;        /* for run_action ("null" when none) */
	int64_t deadline_us;           /* util_mono_us() deadline */
};

struct executor_result {
	enum store_exec_status status; /* SUCCEEDED, FAILED, CRASHED or TIMED_OUT */
	char *error;                   /* the host's reason ("crashed: SIGSEGV (segmentation
	                                  fault)", "timed out after 5 s", "exited with status 3
	                                  before returning"), or the script's set_error text;
	                                  NULL for success. Owned by the caller. */
	char *output_json;             /* actions: the output ("null" when none); owned */
};

void executor_result_clear(struct executor_result *r);

/* Runs one execution and waits for its result, serving its host calls with
 * host (isolated: until the result message, not the executor's exit).
 * Returns 0 with *res filled (whatever the script did), or a negative code
 * when it could not be started (unknown plugin, zygote gone) with res->error
 * saying why. Thread-safe: many threads run executions at once. */
int executor_run(struct executor *ex, const struct executor_job *job, struct hostapi_exec *host,
		 struct executor_result *res);

#endif
