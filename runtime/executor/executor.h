/*
 * executor.h - runs executions of loaded plugins: isolated (the default) or
 * in-process.
 *
 * Isolated. The daemon is multi-threaded, so it never forks executors
 * itself. executor_new() spawns a zygote: the evscriptd binary re-executed
 * as `evscriptd --zygote FD` (posix_spawn, so nothing of the threaded parent
 * is inherited but the socket). The zygote is single-threaded and small; it
 * receives the verified plugins' sealed memfds over its socket
 * (SCM_RIGHTS), loader_open()s each (constructors run there, never in the
 * daemon), and forks one single-use executor per execution, forked ahead of
 * time so that the fork is off the critical path. The executor sets its
 * limits (address space: what it has at fork plus memory_limit_mb; CPU time;
 * its own process group), calls the entry point with a vtable whose
 * functions are calls over a per-execution socketpair to the daemon thread
 * that waits in executor_run(), and exits. The zygote enforces the deadline
 * (SIGKILL to the executor's process group), reaps executors and whatever
 * they left behind (it is a child subreaper), and reports how each ended.
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

struct executor;

struct executor_options {
	const char *self_exe;      /* the evscriptd binary for the zygote; NULL: /proc/self/exe */
	uint64_t memory_limit_mb;  /* address space an executor may add; 0: none */
	uint32_t cpu_limit_s;      /* RLIMIT_CPU of an executor; 0: none */
	uint32_t prefork;          /* executors kept forked ahead; 0: fork on demand */
	int64_t generation;        /* for log lines */
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

/* Number of executions running now. */
size_t executor_running(const struct executor *ex);

/* Process id of the zygote (0 when none), for tests and /metrics. */
int executor_zygote_pid(const struct executor *ex);

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

/* Runs one execution and waits for it, serving its host calls with host.
 * Returns 0 with *res filled (whatever the script did), or a negative code
 * when it could not be started (unknown plugin, zygote gone) with res->error
 * saying why. Thread-safe: many threads run executions at once. */
int executor_run(struct executor *ex, const struct executor_job *job, struct hostapi_exec *host,
		 struct executor_result *res);

/* The zygote's main(): evscriptd calls it for `--zygote FD` and exits with
 * its return value. */
int executor_zygote_main(int fd);

#endif
