/*
 * sandbox.c - the layers of sandbox.h. Linux only; each layer is probed
 * (sandbox_probe) and a machine without one runs without it, saying so.
 *
 * Steps, in the new executor (sandbox_enter), in this order because each
 * needs what the previous ones leave:
 *   1. identity (root only): groups, gid, uid of the sandbox user;
 *   2. a user namespace of its own; every capability dropped in it; then
 *      RLIMIT_NPROC (after the namespace: its count is per namespace);
 *   3. no_new_privs (Landlock and seccomp need it without capabilities);
 *   4. Landlock: a ruleset that handles every access right and grants none;
 *   5. seccomp: a check that the zygote's allow-list (inherited) is in
 *      force, and in sanitizer builds a filter of its own (below).
 * The PID namespace is made by sandbox_fork (it applies to a new process).
 */
#include "sandbox.h"

#include "status.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_restrict_self 446
#endif

#if defined(__x86_64__)
#define SB_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SB_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

/* ---------------------------------------------------------------------------
 * The zygote.
 */

/* The zygote started as root (not merely uid 0 in the user namespace
 * sandbox_zygote_init made): then, and only then, executors change
 * identity. */
static bool started_as_root = true;

static bool is_root(void)
{
	return started_as_root && geteuid() == 0;
}

/* Writes text to a /proc/self file (uid_map and friends). */
static int write_proc(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), ret = 0;
	size_t len = strlen(text);

	if (fd < 0)
		return status_from_errno(errno);
	if (write(fd, text, len) != (ssize_t)len)
		ret = status_from_errno(errno);
	close(fd);
	return ret;
}

int sandbox_zygote_init(void)
{
	char map[64];
	uid_t uid = geteuid();
	gid_t gid = getegid();
	int ret;

	if (uid == 0) {
		prctl(PR_SET_DUMPABLE, 0);
		return 0;
	}
	started_as_root = false;
	/* Not root: a user namespace in which the zygote holds the
	 * capabilities that creating PID namespaces needs, over nothing of
	 * the machine's. Its maps are written while it is still dumpable (a
	 * non-dumpable process's /proc/self files belong to root). */
	ret = unshare(CLONE_NEWUSER) < 0 ? status_from_errno(errno) : 0;
	if (ret == 0)
		ret = write_proc("/proc/self/setgroups", "deny");
	snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)uid);
	if (ret == 0)
		ret = write_proc("/proc/self/uid_map", map);
	snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)gid);
	if (ret == 0)
		ret = write_proc("/proc/self/gid_map", map);
	prctl(PR_SET_DUMPABLE, 0);
	return ret;
}

/* ---------------------------------------------------------------------------
 * The PID namespace.
 */

pid_t sandbox_fork(unsigned layers)
{
	int *tid_field = NULL;
	long r;

	if (!(layers & SANDBOX_PIDNS))
		return fork();
	/* A raw clone, so that the child has a PID namespace of its own; the
	 * kernel writes the child's thread id where libc caches it, as libc's
	 * fork does (raise() and abort() use that cache). */
	if (prctl(PR_GET_TID_ADDRESS, &tid_field) < 0 || !tid_field)
		return -1;
#if defined(__x86_64__)
	r = syscall(SYS_clone, CLONE_NEWPID | CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD,
		    NULL, NULL, tid_field, NULL);
#elif defined(__aarch64__)
	r = syscall(SYS_clone, CLONE_NEWPID | CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD,
		    NULL, NULL, NULL, tid_field);
#else
	errno = ENOSYS;
	r = -1;
#endif
	return (pid_t)r;
}

static volatile int *fatal_slot;

static void on_fatal(int sig)
{
	sigset_t set;

	if (getpid() != 1) {
		/* a process the plugin forked: it dies of the signal as usual */
		signal(sig, SIG_DFL);
		sigemptyset(&set);
		sigaddset(&set, sig);
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		raise(sig);
		_exit(128 + sig);
	}
	if (fatal_slot)
		*fatal_slot = sig;
	_exit(128 + sig);
}

void sandbox_catch_fatal(volatile int *slot)
{
	static const int sigs[] = {SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS,
				   SIGFPE, SIGUSR1, SIGSEGV, SIGUSR2, SIGALRM, SIGTERM, SIGSTKFLT,
				   SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF, SIGIO, SIGPWR, SIGSYS};
	struct sigaction sa;

	fatal_slot = slot;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fatal;
	sigfillset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}

/* ---------------------------------------------------------------------------
 * Identity, user namespace, capabilities, process cap.
 */

static int set_identity(const struct sandbox_config *c)
{
	if (!is_root())
		return 0;
	if (c->uid == 0 || c->gid == 0)
		return status_from_errno(EINVAL); /* never run plugins as root */
	if (setgroups(0, NULL) < 0 || setresgid(c->gid, c->gid, c->gid) < 0 ||
	    setresuid(c->uid, c->uid, c->uid) < 0)
		return status_from_errno(errno);
	if (getuid() != c->uid || geteuid() != c->uid || getegid() != c->gid)
		return status_from_errno(EPERM);
	return 0;
}

/* Empties the capability sets; the bounding set too when bounding. The
 * bounding set only limits what execve can grant, and a new user
 * namespace starts with it full: emptying it costs a credentials copy per
 * capability (about 40 system calls, a sixth of an executor's CPU). Under
 * the seccomp layer execve and execveat are refused (the filter is
 * inherited from the zygote), so it is emptied only without that layer. */
static int drop_capabilities(bool bounding)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2];

	for (int cap = 0; bounding && cap < 64; cap++) {
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			return status_from_errno(errno);
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return status_from_errno(errno);
	memset(d, 0, sizeof(d));
	if (syscall(SYS_capset, &h, d) < 0)
		return status_from_errno(errno);
	return 0;
}

static int enter_userns(const struct sandbox_config *c, unsigned layers)
{
	int ret;

	if (unshare(CLONE_NEWUSER) < 0)
		return status_from_errno(errno);
	ret = drop_capabilities(!(layers & SANDBOX_SECCOMP));
	if (ret == 0 && c->max_processes) {
		struct rlimit rl = {c->max_processes, c->max_processes};

		if (setrlimit(RLIMIT_NPROC, &rl) < 0)
			ret = status_from_errno(errno);
	}
	return ret;
}

/* ---------------------------------------------------------------------------
 * Landlock (ABI numbers and bits from the kernel's uapi; defined here so
 * that older headers build the newer layers).
 */
struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};

static int landlock_abi(void)
{
	long v = syscall(SYS_landlock_create_ruleset, NULL, 0, 1u /* VERSION */);

	return v < 0 ? 0 : (int)v;
}

static int enter_landlock(int abi)
{
	struct ll_ruleset_attr a = {0};
	size_t size = sizeof(a.handled_access_fs);
	long fd;
	int ret = 0;

	a.handled_access_fs = (1ull << 13) - 1; /* ABI 1: EXECUTE .. MAKE_SYM */
	if (abi >= 2)
		a.handled_access_fs |= 1ull << 13; /* REFER */
	if (abi >= 3)
		a.handled_access_fs |= 1ull << 14; /* TRUNCATE */
	if (abi >= 5)
		a.handled_access_fs |= 1ull << 15; /* IOCTL_DEV */
	if (abi >= 4) {
		a.handled_access_net = 3; /* BIND_TCP, CONNECT_TCP */
		size = offsetof(struct ll_ruleset_attr, scoped);
	}
	if (abi >= 6) {
		a.scoped = 3; /* ABSTRACT_UNIX_SOCKET, SIGNAL */
		size = sizeof(a);
	}
	fd = syscall(SYS_landlock_create_ruleset, &a, size, 0);
	if (fd < 0)
		return status_from_errno(errno);
	if (syscall(SYS_landlock_restrict_self, (int)fd, 0) < 0)
		ret = status_from_errno(errno);
	close((int)fd);
	return ret;
}

/* ---------------------------------------------------------------------------
 * seccomp. Installing a filter costs tens of microseconds here (the
 * kernel evaluates it once per system call number to cache constant
 * verdicts, and compiles it); an inherited filter costs nothing. So the
 * zygote installs the allow-list once, when its plugins are open
 * (sandbox_zygote_lock), and every executor is forked under it: what
 * executors may do, plus the few calls the zygote and an executor's own
 * set-up need (setup_calls). Those stay allowed to plugin code, and are
 * harmless once the set-up is done: with no capability left, setresuid,
 * setgroups, capset and unshare of anything but a user namespace fail;
 * capset, prctl's capability and no_new_privs options, Landlock and
 * seccomp only take away; a nested user namespace holds the nesting
 * process's RLIMIT_NPROC for its whole subtree, its capabilities reach no
 * resource of the machine (no file: Landlock, which also forbids mounts
 * and ptrace outside the domain; no socket: this filter), and its
 * processes die with the executor's PID namespace; socketpair makes a
 * pair that leads nowhere; setpgid stays inside the PID namespace.
 * In sanitizer builds the allow-list also has what LeakSanitizer needs when
 * the zygote exits, and each executor takes those back with a filter of
 * its own, so that executors get the same allow-list in every build.
 */
#ifdef SB_AUDIT_ARCH

/* What an executor may call, besides clone and prctl (any arguments) and
 * fstatat/statx on a descriptor, which take their own check. */
static const int executor_calls[] = {
	SYS_read, SYS_write, SYS_readv, SYS_writev, SYS_pread64, SYS_pwrite64, SYS_close,
	SYS_lseek, SYS_fstat, SYS_fcntl, SYS_dup, SYS_dup3, SYS_pipe2, SYS_eventfd2,
	SYS_sendmsg, SYS_recvmsg, SYS_sendto, SYS_recvfrom, SYS_shutdown,
	SYS_ppoll, SYS_pselect6, SYS_epoll_create1, SYS_epoll_ctl, SYS_epoll_pwait,
	SYS_mmap, SYS_munmap, SYS_brk, SYS_mremap, SYS_mprotect, SYS_madvise,
	SYS_rt_sigaction, SYS_rt_sigprocmask, SYS_rt_sigreturn, SYS_rt_sigpending,
	SYS_rt_sigtimedwait, SYS_rt_sigsuspend, SYS_sigaltstack, SYS_restart_syscall,
	SYS_clock_gettime, SYS_clock_getres, SYS_clock_nanosleep, SYS_gettimeofday,
	SYS_nanosleep, SYS_getpid, SYS_gettid, SYS_getppid, SYS_getuid, SYS_geteuid,
	SYS_getgid, SYS_getegid, SYS_getresuid, SYS_getresgid, SYS_getpgid, SYS_getsid,
	SYS_getrlimit, SYS_prlimit64, SYS_getrusage, SYS_times, SYS_uname, SYS_sysinfo,
	SYS_getrandom, SYS_futex, SYS_set_robust_list, SYS_get_robust_list,
	SYS_set_tid_address, SYS_rseq, SYS_sched_yield, SYS_sched_getaffinity,
	SYS_membarrier, SYS_wait4, SYS_waitid, SYS_kill, SYS_tgkill, SYS_tkill, SYS_exit,
	SYS_exit_group, SYS_clone, SYS_prctl,
#ifdef SYS_poll /* x86_64's older calls, which libc may still use */
	SYS_poll, SYS_select, SYS_pipe, SYS_dup2, SYS_epoll_wait, SYS_time, SYS_getpgrp,
	SYS_fork, SYS_vfork, SYS_arch_prctl,
#endif
	/* set-up (see above) */
	SYS_unshare, SYS_setgroups, SYS_setresuid, SYS_setresgid, SYS_capset, SYS_setpgid,
	SYS_socketpair, SYS_seccomp, SYS_landlock_create_ruleset, SYS_landlock_restrict_self,
};

#if defined(__SANITIZE_ADDRESS__)
#define SB_SANITIZER 1
/* LeakSanitizer's check when the zygote exits (sanitizer builds only;
 * taken back from every executor). */
static const int sanitizer_calls[] = {
	SYS_openat, SYS_ptrace, SYS_getdents64, SYS_readlinkat, SYS_newfstatat, SYS_statx,
#ifdef SYS_open
	SYS_open, SYS_readlink, SYS_stat, SYS_lstat, SYS_getdents,
#endif
};
#define N_SAN (sizeof(sanitizer_calls) / sizeof(sanitizer_calls[0]))
#else
#define SB_SANITIZER 0
#define N_SAN 0
#endif

#define N_EXEC (sizeof(executor_calls) / sizeof(executor_calls[0]))
#define ARG_LO(n) (offsetof(struct seccomp_data, args) + 8 * (n)) /* little-endian */
#define STMT(code, k) ((struct sock_filter)BPF_STMT((code), (k)))
#define JUMP(code, k, t, f) ((struct sock_filter)BPF_JUMP((code), (k), (t), (f)))
#define RET_ERRNO(e) STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (e))
#define RET_ALLOW STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
#define LOAD(off) STMT(BPF_LD | BPF_W | BPF_ABS, (off))
#define JEQ(k, t, f) JUMP(BPF_JMP | BPF_JEQ | BPF_K, (k), (t), (f))
#define JSET(k, t, f) JUMP(BPF_JMP | BPF_JSET | BPF_K, (k), (t), (f))

/* Room for the longest filter: three instructions a call at most, and
 * the fixed checks. */
#define FILTER_MAX (3 * (N_EXEC + N_SAN + 4) + 40)

struct filter {
	struct sock_filter f[FILTER_MAX];
	size_t n;
};

/* Emits a binary search over sorted nrs[lo, hi) that returns hit for a
 * match and miss otherwise: a search keeps the cost per call, and the
 * kernel's set-up per filter, logarithmic in the list. */
static void emit_search(struct filter *p, const int *nrs, size_t lo, size_t hi,
			struct sock_filter hit, struct sock_filter miss)
{
	size_t at, mid;

	if (hi - lo <= 4) {
		size_t m = hi - lo;

		for (size_t i = 0; i < m; i++)
			p->f[p->n++] = JEQ((unsigned)nrs[lo + i], (unsigned char)(m - i), 0);
		p->f[p->n++] = miss;
		p->f[p->n++] = hit;
		return;
	}
	mid = lo + (hi - lo) / 2;
	at = p->n++;
	emit_search(p, nrs, lo, mid, hit, miss);
	/* nr >= nrs[mid]: over the lower half (< 256 instructions here) */
	p->f[at] = JUMP(BPF_JMP | BPF_JGE | BPF_K, (unsigned)nrs[mid],
			(unsigned char)(p->n - at - 1), 0);
	emit_search(p, nrs, mid, hi, hit, miss);
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* The architecture check and the system call number in A. */
static void emit_prologue(struct filter *p)
{
	p->f[p->n++] = LOAD(offsetof(struct seccomp_data, arch));
	p->f[p->n++] = JEQ(SB_AUDIT_ARCH, 1, 0);
	p->f[p->n++] = STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
	p->f[p->n++] = LOAD(offsetof(struct seccomp_data, nr));
#ifdef __x86_64__
	p->f[p->n++] = JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u /* x32 */, 0, 1);
	p->f[p->n++] = RET_ERRNO(EPERM);
#endif
}

/* A's call, when it is fstatat or statx: allowed on a descriptor
 * (AT_EMPTY_PATH), refused on a path. */
static void emit_stat_checks(struct filter *p)
{
	p->f[p->n++] = JEQ(SYS_newfstatat, 0, 4);
	p->f[p->n++] = LOAD(ARG_LO(3));
	p->f[p->n++] = JSET(AT_EMPTY_PATH, 0, 1);
	p->f[p->n++] = RET_ALLOW;
	p->f[p->n++] = RET_ERRNO(EPERM);
	p->f[p->n++] = JEQ(SYS_statx, 0, 4);
	p->f[p->n++] = LOAD(ARG_LO(2));
	p->f[p->n++] = JSET(AT_EMPTY_PATH, 0, 1);
	p->f[p->n++] = RET_ALLOW;
	p->f[p->n++] = RET_ERRNO(EPERM);
}

static int install(struct filter *p)
{
	struct sock_fprog prog = {.len = (unsigned short)p->n, .filter = p->f};

	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
		return status_from_errno(errno);
	return 0;
}

/* The zygote's allow-list; the rest fails with EPERM, clone3 with ENOSYS
 * (its flags are behind a pointer: libc then uses clone). */
static int zygote_filter(void)
{
	static struct filter p;
	int nrs[N_EXEC + N_SAN];
	size_t k = 0;

	p.n = 0;
	for (size_t i = 0; i < N_EXEC; i++)
		nrs[k++] = executor_calls[i];
#if SB_SANITIZER
	for (size_t i = 0; i < N_SAN; i++)
		nrs[k++] = sanitizer_calls[i];
#endif
	qsort(nrs, k, sizeof(nrs[0]), cmp_int);
	emit_prologue(&p);
	p.f[p.n++] = JEQ(SYS_clone3, 0, 1);
	p.f[p.n++] = RET_ERRNO(ENOSYS);
	if (!SB_SANITIZER)
		emit_stat_checks(&p);
	emit_search(&p, nrs, 0, k, RET_ALLOW, RET_ERRNO(EPERM));
	return install(&p);
}

/* An executor's part: check that it runs under the zygote's allow-list
 * (fail closed if the zygote could not lock itself), and in sanitizer
 * builds take back what the list grants LeakSanitizer. */
static int enter_seccomp(void)
{
	if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != SECCOMP_MODE_FILTER)
		return status_from_errno(EPERM);
#if SB_SANITIZER
	{
		static struct filter p;
		int nrs[N_SAN];

		p.n = 0;
		memcpy(nrs, sanitizer_calls, sizeof(nrs));
		qsort(nrs, N_SAN, sizeof(nrs[0]), cmp_int);
		emit_prologue(&p);
		emit_stat_checks(&p);
		emit_search(&p, nrs, 0, N_SAN, RET_ERRNO(EPERM), RET_ALLOW);
		return install(&p);
	}
#endif
	return 0;
}
#else
static int zygote_filter(void)
{
	return status_from_errno(ENOSYS); /* no allow-list written for this architecture */
}

static int enter_seccomp(void)
{
	return status_from_errno(ENOSYS);
}
#endif

int sandbox_zygote_lock(unsigned layers)
{
	if (!(layers & SANDBOX_SECCOMP))
		return 0;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return status_from_errno(errno);
	return zygote_filter();
}

/* ---------------------------------------------------------------------------
 * Entering, probing, describing.
 */

/* One row per layer, in the order they are entered. */
static const struct {
	unsigned layer;
	const char *name;
} layer_names[] = {
	{SANDBOX_PIDNS, "pid namespace"}, {SANDBOX_IDENTITY, "identity"},
	{SANDBOX_USERNS, "user namespace"}, {SANDBOX_NOPRIVS, "no_new_privs"},
	{SANDBOX_LANDLOCK, "landlock"}, {SANDBOX_SECCOMP, "seccomp"},
};

static int enter_one(const struct sandbox_config *c, unsigned layer, unsigned layers, int abi)
{
	switch (layer) {
	case SANDBOX_PIDNS:
		return getpid() == 1 ? 0 : status_from_errno(ENOSYS);
	case SANDBOX_IDENTITY:
		return set_identity(c);
	case SANDBOX_USERNS:
		return enter_userns(c, layers);
	case SANDBOX_NOPRIVS:
		return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ? status_from_errno(errno) : 0;
	case SANDBOX_LANDLOCK:
		return abi > 0 ? enter_landlock(abi) : status_from_errno(ENOSYS);
	case SANDBOX_SECCOMP:
		return enter_seccomp();
	default:
		return status_from_errno(EINVAL);
	}
}

int sandbox_enter(const struct sandbox_config *c, unsigned layers, int abi, const char **what)
{
	*what = NULL;
	for (size_t i = 0; i < sizeof(layer_names) / sizeof(layer_names[0]); i++) {
		int ret;

		if (!(layers & layer_names[i].layer))
			continue;
		ret = enter_one(c, layer_names[i].layer, layers, abi);
		if (ret < 0) {
			*what = layer_names[i].name;
			return ret;
		}
	}
	return 0;
}

int sandbox_probe(const struct sandbox_config *c, unsigned *layers, int *abi)
{
	unsigned *shared, want = SANDBOX_ALL;
	pid_t pid;
	int st;

	*layers = 0;
	*abi = landlock_abi();
	if (!is_root() || c->uid == 0 || c->gid == 0)
		want &= ~(unsigned)SANDBOX_IDENTITY;
	shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED)
		return status_from_errno(errno);
	*shared = 0;
	pid = sandbox_fork(want);
	if (pid < 0) {
		want &= ~(unsigned)SANDBOX_PIDNS;
		pid = fork();
	}
	if (pid < 0) {
		int e = errno;

		munmap(shared, sizeof(*shared));
		return status_from_errno(e);
	}
	if (pid == 0) {
		/* as in service: the zygote's filter first (an executor is
		 * forked under it), then each layer; one that works is kept,
		 * one that fails is left out and the next ones are still
		 * tried */
		if (sandbox_zygote_lock(want) < 0)
			want &= ~(unsigned)SANDBOX_SECCOMP;
		for (size_t i = 0; i < sizeof(layer_names) / sizeof(layer_names[0]); i++) {
			unsigned l = layer_names[i].layer;

			if ((want & l) && enter_one(c, l, want, *abi) == 0)
				*shared |= l;
		}
		_exit(0);
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	*layers = *shared;
	munmap(shared, sizeof(*shared));
	if (!(*layers & SANDBOX_LANDLOCK))
		*abi = 0;
	return 0;
}

void sandbox_describe(unsigned layers, int abi, const struct sandbox_config *c, char *buf,
		      size_t len)
{
	size_t off = 0;
	char missing[256] = "";
	size_t moff = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(layer_names) / sizeof(layer_names[0]); i++) {
		unsigned l = layer_names[i].layer;
		char item[96];

		if (l == SANDBOX_IDENTITY && !is_root())
			continue; /* only root changes identity */
		if (l == SANDBOX_IDENTITY)
			snprintf(item, sizeof(item), "uid %u gid %u", (unsigned)c->uid, (unsigned)c->gid);
		else if (l == SANDBOX_LANDLOCK)
			snprintf(item, sizeof(item), "landlock ABI %d", abi);
		else if (l == SANDBOX_USERNS && c->max_processes)
			snprintf(item, sizeof(item), "user namespace (at most %u tasks per execution)",
				 (unsigned)c->max_processes);
		else
			snprintf(item, sizeof(item), "%s", layer_names[i].name);
		if (layers & l) {
			int k = snprintf(buf + off, len - off, "%s%s", off ? ", " : "", item);

			if (k > 0 && (size_t)k < len - off)
				off += (size_t)k;
		} else {
			int k = snprintf(missing + moff, sizeof(missing) - moff, "%s%s",
					 moff ? ", " : "", layer_names[i].name);

			if (k > 0 && (size_t)k < sizeof(missing) - moff)
				moff += (size_t)k;
		}
	}
	if (moff && off < len)
		snprintf(buf + off, len - off, "%sMISSING: %s", off ? "; " : "", missing);
}
