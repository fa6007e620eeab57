/*
 * sandbox.h - what confines an executor process (the zygote's side of
 * isolation; when the zygote takes each step is told at the top of
 * zygote.c, the threat model in SECURITY.md).
 *
 * Layers, each probed once when the zygote starts (sandbox_probe) and then
 * applied to every executor, in this order, before it reads its job:
 *   PIDNS     the executor is pid 1 of a PID namespace of its own: it sees
 *             no other process (the daemon, the zygote, other executors),
 *             and when it ends the kernel kills everything it forked,
 *             whatever that did (setsid, double fork).
 *   IDENTITY  as root: the configured sandbox user's uid and gid, no
 *             supplementary groups (no capabilities follow from a uid
 *             other than 0).
 *   USERNS    a user namespace of its own, every capability dropped in it;
 *             processes and threads are counted per execution there, so
 *             RLIMIT_NPROC caps the execution (max_processes), not the user.
 *   NOPRIVS   no_new_privs: no set-uid, set-gid or file capability gain.
 *   LANDLOCK  no filesystem access at all, no TCP bind or connect (ABI 4),
 *             no signal or abstract socket outside its own domain (ABI 6).
 *   SECCOMP   an allow-list of system calls: what computing, allocating,
 *             threads, forks (no namespaces), time and the descriptors it
 *             was given need. Everything else (open, socket, connect,
 *             ptrace, process_vm_*, mount, bpf, io_uring, unshare, ...)
 *             fails with EPERM; clone3 with ENOSYS, so that libc falls
 *             back to clone, whose flags the filter can check. The zygote
 *             installs it once (sandbox_zygote_lock) and every executor
 *             inherits it, at no cost per execution.
 * A layer the probe found missing is skipped (and the daemon logs it); a
 * layer the probe found working that then fails for one executor ends that
 * executor before it runs anything (fail closed).
 *
 * The zygote itself is made non-dumpable (no core, no ptrace, its /proc
 * files root-owned) and, when not root, enters a user namespace of its own
 * so that it may create the executors' PID namespaces.
 */
#ifndef EVS_EXECUTOR_SANDBOX_H
#define EVS_EXECUTOR_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum sandbox_layer {
	SANDBOX_PIDNS = 1u << 0,
	SANDBOX_IDENTITY = 1u << 1,
	SANDBOX_USERNS = 1u << 2,
	SANDBOX_NOPRIVS = 1u << 3,
	SANDBOX_LANDLOCK = 1u << 4,
	SANDBOX_SECCOMP = 1u << 5,
};
#define SANDBOX_ALL 0x3fu

struct sandbox_config {
	uint32_t uid, gid;       /* the identity as root (0: keep root, the layer is
	                            missing); ignored when not root */
	uint32_t max_processes;  /* tasks of one execution, threads included; 0: no cap */
};

/* Prepares the zygote: non-dumpable; when not root, a user namespace of
 * its own (uid and gid mapped to 0 in it). Call once, before any plugin is
 * opened. 0, or status_from_errno() of the failure (the zygote goes on
 * without the namespace). */
int sandbox_zygote_init(void);

/* Installs the zygote's seccomp filter (the allow-list every executor
 * inherits, see sandbox.c) when layers has SECCOMP: call once the plugins
 * are open, before the first executor is forked; the zygote can then open
 * no file and no socket. 0 or a status code (status_from_errno()). */
int sandbox_zygote_lock(unsigned layers);

/* Finds which layers work here: forks a throwaway executor that applies
 * every layer it can and reports them. *layers gets the working ones,
 * *landlock_abi the Landlock ABI (0: none). Returns 0 or a status code
 * (status_from_errno()). */
int sandbox_probe(const struct sandbox_config *c, unsigned *layers, int *landlock_abi);

/* Forks an executor: in a new PID namespace when layers has PIDNS (a raw
 * clone, returning 0 in the child as fork does). -1 with errno. */
pid_t sandbox_fork(unsigned layers);

/* In a new executor, before it runs plugin code: applies layers (a mask of
 * what sandbox_probe found). 0, or a status code (status_from_errno()) with
 * *what naming the layer that failed. */
int sandbox_enter(const struct sandbox_config *c, unsigned layers, int landlock_abi,
		  const char **what);

/* Pid 1 of a PID namespace ignores the default action of signals it sends
 * itself (abort()'s SIGABRT, raise()): in the executor, these handlers
 * record such a signal in *slot (memory shared with the zygote) and exit,
 * and the zygote reports the executor as killed by it. */
void sandbox_catch_fatal(volatile int *slot);

/* "pid namespace, user nobody (65534:65534), user namespace, ..." for
 * the log: what layers apply and what is missing. */
void sandbox_describe(unsigned layers, int landlock_abi, const struct sandbox_config *c,
		      char *buf, size_t len);

#endif
