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
 *   5. seccomp: the allow-list, last, since it forbids what 1-4 call.
 * The PID namespace is made by sandbox_fork (it applies to a new process).
 */
#include "sandbox.h"

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

/* Writes text to a /proc/self file (uid_map and friends). */
static int write_proc(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), ret = 0;
	size_t len = strlen(text);

	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len)
		ret = -errno;
	close(fd);
	return ret;
}

int sandbox_zygote_init(void)
{
	char map[64];
	uid_t uid = geteuid();
	gid_t gid = getegid();
	int ret;

	prctl(PR_SET_DUMPABLE, 0);
	if (uid == 0)
		return 0;
	/* Not root: a user namespace in which the zygote holds the
	 * capabilities that creating PID namespaces needs, over nothing of
	 * the machine's. */
	if (unshare(CLONE_NEWUSER) < 0)
		return -errno;
	ret = write_proc("/proc/self/setgroups", "deny");
	snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)uid);
	if (ret == 0)
		ret = write_proc("/proc/self/uid_map", map);
	snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)gid);
	if (ret == 0)
		ret = write_proc("/proc/self/gid_map", map);
	/* a new user namespace makes the process dumpable again */
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
	if (geteuid() != 0)
		return 0;
	if (c->uid == 0 || c->gid == 0)
		return -EINVAL; /* never run plugins as root */
	if (setgroups(0, NULL) < 0 || setresgid(c->gid, c->gid, c->gid) < 0 ||
	    setresuid(c->uid, c->uid, c->uid) < 0)
		return -errno;
	if (getuid() != c->uid || geteuid() != c->uid || getegid() != c->gid)
		return -EPERM;
	return 0;
}

static int drop_capabilities(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2];

	for (int cap = 0; cap < 64; cap++) {
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			return -errno;
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -errno;
	memset(d, 0, sizeof(d));
	if (syscall(SYS_capset, &h, d) < 0)
		return -errno;
	return 0;
}

static int enter_userns(const struct sandbox_config *c)
{
	int ret;

	if (unshare(CLONE_NEWUSER) < 0)
		return -errno;
	ret = drop_capabilities();
	if (ret == 0 && c->max_processes) {
		struct rlimit rl = {c->max_processes, c->max_processes};

		if (setrlimit(RLIMIT_NPROC, &rl) < 0)
			ret = -errno;
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
		return -errno;
	if (syscall(SYS_landlock_restrict_self, (int)fd, 0) < 0)
		ret = -errno;
	close((int)fd);
	return ret;
}

/* ---------------------------------------------------------------------------
 * seccomp: the allow-list.
 */
#ifdef SB_AUDIT_ARCH

/* Plain allowed calls, the most frequent first (the filter is linear). */
static const int allowed[] = {
	SYS_read, SYS_write, SYS_sendmsg, SYS_recvmsg, SYS_sendto, SYS_recvfrom, SYS_ppoll,
	SYS_futex, SYS_mmap, SYS_munmap, SYS_brk, SYS_mremap, SYS_mprotect, SYS_madvise,
	SYS_clock_gettime, SYS_clock_getres, SYS_clock_nanosleep, SYS_gettimeofday,
	SYS_nanosleep, SYS_readv, SYS_writev, SYS_pread64, SYS_pwrite64, SYS_close, SYS_lseek,
	SYS_fstat, SYS_fcntl, SYS_dup, SYS_dup3, SYS_pipe2, SYS_eventfd2, SYS_pselect6,
	SYS_epoll_create1, SYS_epoll_ctl, SYS_epoll_pwait, SYS_shutdown,
	SYS_rt_sigaction, SYS_rt_sigprocmask, SYS_rt_sigreturn, SYS_rt_sigpending,
	SYS_rt_sigtimedwait, SYS_rt_sigsuspend, SYS_sigaltstack,
	SYS_getpid, SYS_gettid, SYS_getppid, SYS_getuid, SYS_geteuid, SYS_getgid, SYS_getegid,
	SYS_getresuid, SYS_getresgid, SYS_getpgid, SYS_getsid, SYS_getrlimit, SYS_prlimit64,
	SYS_getrusage, SYS_times, SYS_uname, SYS_sysinfo, SYS_getrandom,
	SYS_set_robust_list, SYS_get_robust_list, SYS_set_tid_address, SYS_rseq,
	SYS_sched_yield, SYS_sched_getaffinity, SYS_membarrier, SYS_restart_syscall,
	SYS_wait4, SYS_waitid, SYS_kill, SYS_tgkill, SYS_tkill, SYS_exit, SYS_exit_group,
#ifdef SYS_poll /* x86_64's older calls, which libc may still use */
	SYS_poll, SYS_select, SYS_pipe, SYS_dup2, SYS_epoll_wait, SYS_time, SYS_getpgrp,
	SYS_fork, SYS_vfork, SYS_arch_prctl,
#endif
};

#define CLONE_NS_FLAGS (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | \
			CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)
#define ARG_LO(n) (offsetof(struct seccomp_data, args) + 8 * (n)) /* little-endian */
#define STMT(code, k) ((struct sock_filter)BPF_STMT((code), (k)))
#define JUMP(code, k, t, f) ((struct sock_filter)BPF_JUMP((code), (k), (t), (f)))
#define RET_ERRNO(e) STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (e))
#define RET_ALLOW STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
#define LOAD(off) STMT(BPF_LD | BPF_W | BPF_ABS, (off))
#define JEQ(k, t, f) JUMP(BPF_JMP | BPF_JEQ | BPF_K, (k), (t), (f))
#define JSET(k, t, f) JUMP(BPF_JMP | BPF_JSET | BPF_K, (k), (t), (f))

static int enter_seccomp(void)
{
	struct sock_filter f[2 * (sizeof(allowed) / sizeof(allowed[0])) + 40];
	struct sock_fprog prog;
	size_t n = 0;

	f[n++] = LOAD(offsetof(struct seccomp_data, arch));
	f[n++] = JEQ(SB_AUDIT_ARCH, 1, 0);
	f[n++] = STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
	f[n++] = LOAD(offsetof(struct seccomp_data, nr));
#ifdef __x86_64__
	f[n++] = JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u /* x32 */, 0, 1);
	f[n++] = RET_ERRNO(EPERM);
#endif
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
		f[n++] = JEQ((unsigned)allowed[i], 0, 1);
		f[n++] = RET_ALLOW;
	}
	/* clone: threads and processes, no namespaces */
	f[n++] = JEQ(SYS_clone, 0, 4);
	f[n++] = LOAD(ARG_LO(0));
	f[n++] = JSET(CLONE_NS_FLAGS, 1, 0);
	f[n++] = RET_ALLOW;
	f[n++] = RET_ERRNO(EPERM);
	/* clone3's flags are behind a pointer: ENOSYS makes libc use clone */
	f[n++] = JEQ(SYS_clone3, 0, 1);
	f[n++] = RET_ERRNO(ENOSYS);
	/* fstat through fstatat/statx on a descriptor (AT_EMPTY_PATH) */
	f[n++] = JEQ(SYS_newfstatat, 0, 4);
	f[n++] = LOAD(ARG_LO(3));
	f[n++] = JSET(AT_EMPTY_PATH, 0, 1);
	f[n++] = RET_ALLOW;
	f[n++] = RET_ERRNO(EPERM);
	f[n++] = JEQ(SYS_statx, 0, 4);
	f[n++] = LOAD(ARG_LO(2));
	f[n++] = JSET(AT_EMPTY_PATH, 0, 1);
	f[n++] = RET_ALLOW;
	f[n++] = RET_ERRNO(EPERM);
	/* prctl: naming a thread only */
	f[n++] = JEQ(SYS_prctl, 0, 5);
	f[n++] = LOAD(ARG_LO(0));
	f[n++] = JEQ(PR_SET_NAME, 2, 0);
	f[n++] = JEQ(PR_GET_NAME, 1, 0);
	f[n++] = RET_ERRNO(EPERM);
	f[n++] = RET_ALLOW;
	f[n++] = RET_ERRNO(EPERM);

	prog.len = (unsigned short)n;
	prog.filter = f;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
		return -errno;
	return 0;
}
#else
static int enter_seccomp(void)
{
	return -ENOSYS; /* no allow-list written for this architecture */
}
#endif

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

static int enter_one(const struct sandbox_config *c, unsigned layer, int abi)
{
	switch (layer) {
	case SANDBOX_PIDNS:
		return getpid() == 1 ? 0 : -ENOSYS;
	case SANDBOX_IDENTITY:
		return set_identity(c);
	case SANDBOX_USERNS:
		return enter_userns(c);
	case SANDBOX_NOPRIVS:
		return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ? -errno : 0;
	case SANDBOX_LANDLOCK:
		return abi > 0 ? enter_landlock(abi) : -ENOSYS;
	case SANDBOX_SECCOMP:
		return enter_seccomp();
	default:
		return -EINVAL;
	}
}

int sandbox_enter(const struct sandbox_config *c, unsigned layers, int abi, const char **what)
{
	*what = NULL;
	for (size_t i = 0; i < sizeof(layer_names) / sizeof(layer_names[0]); i++) {
		int ret;

		if (!(layers & layer_names[i].layer))
			continue;
		ret = enter_one(c, layer_names[i].layer, abi);
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
	if (geteuid() != 0 || c->uid == 0 || c->gid == 0)
		want &= ~(unsigned)SANDBOX_IDENTITY;
	shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED)
		return -errno;
	*shared = 0;
	pid = sandbox_fork(want);
	if (pid < 0) {
		want &= ~(unsigned)SANDBOX_PIDNS;
		pid = fork();
	}
	if (pid < 0) {
		int e = errno;

		munmap(shared, sizeof(*shared));
		return -e;
	}
	if (pid == 0) {
		/* each layer that works is kept; one that fails is left out
		 * and the next ones are still tried */
		for (size_t i = 0; i < sizeof(layer_names) / sizeof(layer_names[0]); i++) {
			unsigned l = layer_names[i].layer;

			if ((want & l) && enter_one(c, l, *abi) == 0)
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

		if (l == SANDBOX_IDENTITY && geteuid() != 0)
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
