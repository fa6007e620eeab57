/* hostile: tries one way out of the executor, named by the connection's
 * metadata "attack", and says how each attempt went, one log line each:
 *
 *   BLOCKED <attack>: <what was tried>: <why it failed>
 *   ESCAPED <attack>: <what happened>
 *
 * The attempt's result is the verdict, not the execution's: on_event
 * returns 0 whatever the attacks did (test_sandbox.py reads the lines and
 * looks for the evidence outside). It fails only when the metadata does not
 * say what to do (an unknown attack, a missing parameter): a bug in the
 * test, not in the sandbox.
 *
 * Metadata (a JSON object; numbers are JSON integers):
 *   attack            env, store, zygote_mem, daemon_mem, ptrace, network,
 *                     write_key, fork_storm, escape, kill_zygote, kill_daemon
 *   secret, enc_key   env: the values of EVSCRIPT_SECRET_KEY and
 *                     EVSCRIPT_ENCRYPTION_KEY to look for in environ
 *   store             store: the SQLite file (its "-wal" is tried too)
 *   zygote_pid        zygote_mem, ptrace, kill_zygote
 *   daemon_pid        daemon_mem, ptrace, kill_daemon
 *   port, udp_port    network: a TCP and a UDP port on 127.0.0.1
 *                     (udp_port defaults to port)
 *   trusted_keys_dir  write_key: where evil.pub is created
 *   secret_keyfile    write_key: the signing key it tries to read
 *   n                 fork_storm: how many children (default 3000)
 */
#include <evscript/sdk.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

/* o.key as a string into buf: 0, or -1 when it is missing or not a string. */
static int json_string_at(struct json_object *o, const char *key, char *buf, size_t n)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return -1;
	snprintf(buf, n, "%s", json_object_get_string(v));
	return 0;
}

/* o.key as an integer into *out: 0, or -1 when it is missing or not one. */
static int json_int_at(struct json_object *o, const char *key, long long *out)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return -1;
	*out = json_object_get_int64(v);
	return 0;
}

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

extern char **environ;

#define PATH_CAP 1024
#define STORM_DEFAULT 3000
#define ESCAPEE_SECONDS 120
#define STOP_WAIT_MS 5000

/* One run of one attack: where it logs and what it was given. */
struct attack {
	const struct evs_host *host;
	struct evs_ctx *ctx;
	const char *name;
	struct json_object *meta;
};

/* Logs "<verdict> <attack>: <text>". */
static void say(const struct attack *a, const char *verdict, const char *fmt, ...) EVS_PRINTF(3, 4);
static void say(const struct attack *a, const char *verdict, const char *fmt, ...)
{
	char text[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	a->host->log(a->ctx, EVS_LOG_INFO, "%s %s: %s", verdict, a->name, text);
}

/* The metadata's string `key` in buf, or -1 after set_error when it is
 * missing. */
static int param_string(const struct attack *a, const char *key, char *buf, size_t n)
{
	if (json_string_at(a->meta, key, buf, n) == 0 && buf[0])
		return 0;
	a->host->set_error(a->ctx, "attack %s needs the metadata string \"%s\"", a->name, key);
	return -1;
}

/* The metadata's positive integer `key` in *out, or -1 after set_error when
 * it is missing. */
static int param_pid(const struct attack *a, const char *key, pid_t *out)
{
	long long v;

	if (json_int_at(a->meta, key, &v) == 0 && v > 0 && v <= INT32_MAX) {
		*out = (pid_t)v;
		return 0;
	}
	a->host->set_error(a->ctx, "attack %s needs the metadata integer \"%s\"", a->name, key);
	*out = 0;
	return -1;
}

/* ---------------------------------------------------------------------------
 * Files: open one, read what it gives, and tell.
 */

/* The secret names a /proc/PID/environ (or any file) gave away, as text. */
static const char *secrets_in(const char *buf, size_t len)
{
	bool key = memmem(buf, len, "EVSCRIPT_SECRET_KEY=", 20) != NULL;
	bool enc = memmem(buf, len, "EVSCRIPT_ENCRYPTION_KEY=", 24) != NULL;

	if (key && enc)
		return ", EVSCRIPT_SECRET_KEY and EVSCRIPT_ENCRYPTION_KEY among them";
	if (key)
		return ", EVSCRIPT_SECRET_KEY among them";
	if (enc)
		return ", EVSCRIPT_ENCRYPTION_KEY among them";
	return "";
}

/* Opens path with flags (named `how` in the log) and reads up to 64 KiB:
 * ESCAPED when open() succeeded (whatever read() then gave), BLOCKED with
 * open()'s error otherwise. Opening /proc/PID/mem is the escape; reading
 * its offset 0 fails anyway. */
static void try_open(const struct attack *a, const char *path, int flags, const char *how)
{
	static char buf[65536];
	size_t len = 0;
	ssize_t n = 0;
	int fd, read_errno = 0;

	fd = open(path, flags | O_CLOEXEC);
	if (fd < 0) {
		say(a, "BLOCKED", "open %s %s: %s", path, how, strerror(errno));
		return;
	}
	while (len < sizeof(buf) && (n = read(fd, buf + len, sizeof(buf) - len)) > 0)
		len += (size_t)n;
	if (n < 0)
		read_errno = errno;
	close(fd);
	if (len == 0 && read_errno)
		say(a, "ESCAPED", "opened %s %s (reading it: %s)", path, how, strerror(read_errno));
	else
		say(a, "ESCAPED", "opened %s %s and read %zu bytes%s", path, how, len,
		    secrets_in(buf, len));
}

/* ---------------------------------------------------------------------------
 * The attacks. Each returns 0, or -1 when its parameters are missing.
 */

/* The daemon's secrets in the executor's environment. */
static int attack_env(const struct attack *a)
{
	static const char *const names[] = {"EVSCRIPT_SECRET_KEY", "EVSCRIPT_ENCRYPTION_KEY"};
	char secret[512] = "", enc_key[512] = "";
	const char *values[2] = {secret, enc_key};
	int count = 0, found = 0;
	size_t i, j;

	json_string_at(a->meta, "secret", secret, sizeof(secret));
	json_string_at(a->meta, "enc_key", enc_key, sizeof(enc_key));
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *v = getenv(names[i]);

		if (v)
			say(a, "ESCAPED", "getenv(%s) = %s", names[i], v);
		else
			say(a, "BLOCKED", "getenv(%s): not set", names[i]);
	}
	for (char **e = environ; e && *e; e++, count++) {
		const char *eq = strchr(*e, '=');

		for (j = 0; eq && j < 2; j++) {
			if (values[j][0] && strcmp(eq + 1, values[j]) == 0) {
				say(a, "ESCAPED", "environ has %.*s holding the %s value",
				    (int)(eq - *e), *e, j == 0 ? "secret" : "enc_key");
				found++;
			}
		}
	}
	if (!found)
		say(a, "BLOCKED",
		    "scanned %d environment variables for the secret and enc_key values: "
		    "none found",
		    count);
	a->host->log(a->ctx, EVS_LOG_INFO, "ENV %d", count);
	return 0;
}

/* The store's database file and its write-ahead log, read-only and
 * read-write. Nothing is written. */
static int attack_store(const struct attack *a)
{
	char path[PATH_CAP], wal[PATH_CAP + 8];

	if (param_string(a, "store", path, sizeof(path)) < 0)
		return -1;
	snprintf(wal, sizeof(wal), "%s-wal", path);
	try_open(a, path, O_RDONLY, "O_RDONLY");
	try_open(a, path, O_RDWR, "O_RDWR");
	try_open(a, wal, O_RDONLY, "O_RDONLY");
	try_open(a, wal, O_RDWR, "O_RDWR");
	return 0;
}

/* Another process's memory (opened, never written) and environment. */
static int attack_proc_of(const struct attack *a, const char *key, int mem_flags, const char *how)
{
	char path[64];
	pid_t pid;

	if (param_pid(a, key, &pid) < 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%ld/mem", (long)pid);
	try_open(a, path, mem_flags, how);
	snprintf(path, sizeof(path), "/proc/%ld/environ", (long)pid);
	try_open(a, path, O_RDONLY, "O_RDONLY");
	return 0;
}

static int attack_zygote_mem(const struct attack *a)
{
	return attack_proc_of(a, "zygote_pid", O_RDWR, "O_RDWR");
}

static int attack_daemon_mem(const struct attack *a)
{
	return attack_proc_of(a, "daemon_pid", O_RDONLY, "O_RDONLY");
}

/* Waits (up to STOP_WAIT_MS) for the tracee to report its stop, so that
 * PTRACE_DETACH can let it go. True when it stopped. */
static bool wait_stopped(pid_t pid)
{
	struct timespec tick = {0, 10 * 1000000L};
	int st, i;

	for (i = 0; i < STOP_WAIT_MS / 10; i++) {
		pid_t r = waitpid(pid, &st, __WALL | WNOHANG);

		if (r == pid && WIFSTOPPED(st))
			return true;
		if (r < 0 && errno != EINTR)
			return false;
		nanosleep(&tick, NULL);
	}
	return false;
}

/* PTRACE_ATTACH, then PTRACE_SEIZE, on pid; each one that works is undone
 * at once (the tracee stops for a moment and goes on). */
static void try_ptrace(const struct attack *a, pid_t pid, const char *who)
{
	if (ptrace(PTRACE_ATTACH, pid, NULL, NULL) < 0) {
		say(a, "BLOCKED", "PTRACE_ATTACH to the %s (pid %ld): %s", who, (long)pid,
		    strerror(errno));
	} else {
		bool stopped = wait_stopped(pid);

		ptrace(PTRACE_DETACH, pid, NULL, NULL);
		say(a, "ESCAPED", "PTRACE_ATTACH to the %s (pid %ld) worked%s", who, (long)pid,
		    stopped ? "; it stopped and was detached again" : "");
	}
	if (ptrace(PTRACE_SEIZE, pid, NULL, NULL) < 0) {
		say(a, "BLOCKED", "PTRACE_SEIZE of the %s (pid %ld): %s", who, (long)pid,
		    strerror(errno));
	} else {
		bool stopped = ptrace(PTRACE_INTERRUPT, pid, NULL, NULL) == 0 && wait_stopped(pid);

		ptrace(PTRACE_DETACH, pid, NULL, NULL);
		say(a, "ESCAPED", "PTRACE_SEIZE of the %s (pid %ld) worked%s", who, (long)pid,
		    stopped ? "; it was interrupted and detached again" : "");
	}
}

/* The start of the first readable mapping in /proc/PID/maps, or 0x400000
 * when maps cannot be read. */
static unsigned long readable_address(pid_t pid)
{
	char path[64], line[512];
	unsigned long start = 0x400000, lo, hi;
	char perms[8];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/maps", (long)pid);
	f = fopen(path, "re");
	if (!f)
		return start;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && perms[0] == 'r') {
			start = lo;
			break;
		}
	}
	fclose(f);
	return start;
}

/* process_vm_readv of 16 bytes: ESCAPED for a real read, BLOCKED when the
 * call is refused (EPERM, ESRCH, ENOSYS); any other error (EFAULT) means
 * the call reached the target, which is neither: ALLOWED. */
static void try_vm_read(const struct attack *a, pid_t pid, const char *who)
{
	unsigned long addr = readable_address(pid);
	unsigned char buf[16];
	struct iovec local = {buf, sizeof(buf)}, remote = {(void *)addr, sizeof(buf)};
	ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);

	if (n > 0)
		say(a, "ESCAPED", "process_vm_readv read %zd bytes of the %s (pid %ld) at 0x%lx", n,
		    who, (long)pid, addr);
	else if (n < 0 && (errno == EPERM || errno == ESRCH || errno == ENOSYS))
		say(a, "BLOCKED", "process_vm_readv of the %s (pid %ld) at 0x%lx: %s", who,
		    (long)pid, addr, strerror(errno));
	else
		say(a, "ALLOWED",
		    "process_vm_readv of the %s (pid %ld) at 0x%lx was let through but "
		    "read nothing: %s",
		    who, (long)pid, addr, n < 0 ? strerror(errno) : "0 bytes");
}

static int attack_ptrace(const struct attack *a)
{
	pid_t daemon, zygote;

	if (param_pid(a, "daemon_pid", &daemon) < 0 || param_pid(a, "zygote_pid", &zygote) < 0)
		return -1;
	try_ptrace(a, daemon, "daemon");
	try_ptrace(a, zygote, "zygote");
	try_vm_read(a, daemon, "daemon");
	return 0;
}

/* TCP to the test's listener, an AF_UNIX socket, a UDP datagram. */
static int attack_network(const struct attack *a)
{
	struct sockaddr_in to = {.sin_family = AF_INET};
	long long port, udp_port;
	ssize_t n;
	int s;

	if (json_int_at(a->meta, "port", &port) != 0 || port <= 0 || port > 65535) {
		a->host->set_error(a->ctx, "attack network needs the metadata integer \"port\"");
		return -1;
	}
	if (json_int_at(a->meta, "udp_port", &udp_port) != 0 || udp_port <= 0 ||
	    udp_port > 65535)
		udp_port = port;
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

	to.sin_port = htons((uint16_t)port);
	s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		say(a, "BLOCKED", "socket(AF_INET, SOCK_STREAM): %s", strerror(errno));
	} else if (connect(s, (struct sockaddr *)&to, sizeof(to)) < 0) {
		say(a, "BLOCKED", "connect to 127.0.0.1:%lld: %s", port, strerror(errno));
	} else {
		n = send(s, "hello", 5, MSG_NOSIGNAL);
		say(a, "ESCAPED", "connected to 127.0.0.1:%lld over TCP and sent %zd bytes", port,
		    n);
	}
	if (s >= 0)
		close(s);

	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		say(a, "BLOCKED", "socket(AF_UNIX, SOCK_STREAM): %s", strerror(errno));
	} else {
		say(a, "ESCAPED", "created an AF_UNIX socket");
		close(s);
	}

	to.sin_port = htons((uint16_t)udp_port);
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		say(a, "BLOCKED", "socket(AF_INET, SOCK_DGRAM): %s", strerror(errno));
		return 0;
	}
	n = sendto(s, "hello", 5, MSG_NOSIGNAL, (struct sockaddr *)&to, sizeof(to));
	if (n < 0)
		say(a, "BLOCKED", "sendto 127.0.0.1:%lld over UDP: %s", udp_port, strerror(errno));
	else
		say(a, "ESCAPED", "sent %zd bytes to 127.0.0.1:%lld over UDP", n, udp_port);
	close(s);
	return 0;
}

/* A key of our own among the trusted ones, and a copy of the signing key. */
static int attack_write_key(const struct attack *a)
{
	static const char evil[] = "untrusted comment: planted by the hostile test plugin\n"
				   "RWQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n";
	char dir[PATH_CAP], path[PATH_CAP + 16], keyfile[PATH_CAP];
	ssize_t n;
	int fd;

	if (param_string(a, "trusted_keys_dir", dir, sizeof(dir)) < 0 ||
	    param_string(a, "secret_keyfile", keyfile, sizeof(keyfile)) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/evil.pub", dir);
	fd = open(path, O_CREAT | O_WRONLY | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		say(a, "BLOCKED", "create %s: %s", path, strerror(errno));
	} else {
		n = write(fd, evil, sizeof(evil) - 1);
		say(a, "ESCAPED", "created %s and wrote %zd bytes", path, n);
		close(fd);
	}
	try_open(a, keyfile, O_RDONLY, "O_RDONLY");
	return 0;
}

/* Forks n children that sleep for a minute (named evs-stormer). */
static int attack_fork_storm(const struct attack *a)
{
	long long n = STORM_DEFAULT, k;
	int err = 0;

	if (json_object_object_get_ex(a->meta, "n", NULL) && (json_int_at(a->meta, "n", &n) != 0 || n <= 0)) {
		a->host->set_error(a->ctx, "attack fork_storm: \"n\" must be a positive integer");
		return -1;
	}
	for (k = 0; k < n; k++) {
		pid_t pid = fork();

		if (pid == 0) {
			prctl(PR_SET_NAME, "evs-stormer", 0, 0, 0);
			sleep(60);
			_exit(0);
		}
		if (pid < 0) {
			err = errno;
			break;
		}
	}
	a->host->log(a->ctx, EVS_LOG_INFO, "FORKED %lld", k);
	if (k < n)
		say(a, "BLOCKED", "fork %lld of %lld: %s", k + 1, n, strerror(err));
	else
		say(a, "ESCAPED", "forked all %lld children", n);
	return 0;
}

/* The grandchild of escape: no descriptor of the executor's, a name the
 * test looks for, two minutes of life. Never returns. */
static void escapee(void)
{
	int fd;

	prctl(PR_SET_NAME, "evs-escapee", 0, 0, 0);
	for (fd = 3; fd < 1024; fd++)
		close(fd);
	for (int i = 0; i < ESCAPEE_SECONDS; i++)
		sleep(1);
	_exit(0);
}

/* What the child of escape tells over a pipe: its child's pid (or -1) and
 * the errno of what failed (setsid or fork), or 0. */
struct grandchild {
	pid_t pid;
	int err;
};

/* A child leaves the executor's session and process group (setsid) and
 * forks a grandchild that outlives it. When the child exits, the
 * grandchild is reparented: to this executor when it is pid 1 of its own
 * PID namespace (contained: it dies with the execution), else to a process
 * outside it (the zygote, a subreaper today): escaped. The test also looks
 * for it in /proc once the execution has ended. */
static int attack_escape(const struct attack *a)
{
	struct grandchild gc = {-1, 0};
	siginfo_t si;
	pid_t child;
	int fds[2], st;

	if (pipe2(fds, O_CLOEXEC) < 0) {
		say(a, "BLOCKED", "pipe2: %s", strerror(errno));
		return 0;
	}
	child = fork();
	if (child == 0) {
		close(fds[0]);
		if (setsid() < 0)
			gc.err = errno;
		gc.pid = fork();
		if (gc.pid == 0)
			escapee();
		if (gc.pid < 0)
			gc.err = errno;
		(void)!write(fds[1], &gc, sizeof(gc));
		_exit(0);
	}
	close(fds[1]);
	if (child < 0) {
		say(a, "BLOCKED", "fork: %s", strerror(errno));
		close(fds[0]);
		return 0;
	}
	if (read(fds[0], &gc, sizeof(gc)) != sizeof(gc))
		gc.pid = -1;
	close(fds[0]);
	while (waitpid(child, &st, 0) < 0 && errno == EINTR)
		;
	if (gc.pid <= 0) {
		say(a, "BLOCKED", "setsid and fork in a child: %s",
		    gc.err ? strerror(gc.err) : "the child said nothing");
		return 0;
	}
	/* our child now, or somebody else's? (WNOWAIT: it stays as it is) */
	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)gc.pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0)
		say(a, "BLOCKED",
		    "a grandchild (pid %ld, %s) outlived its parent but was "
		    "reparented to this executor, so it ends with it",
		    (long)gc.pid, gc.err ? "setsid failed" : "in its own session");
	else
		say(a, "ESCAPED",
		    "a grandchild (pid %ld, %s) outlived its parent and was "
		    "reparented outside this executor (waitid: %s)",
		    (long)gc.pid, gc.err ? "setsid failed" : "in its own session", strerror(errno));
	return 0;
}

/* A signal to the zygote or the daemon. */
static int attack_kill(const struct attack *a, const char *key, int sig, const char *sig_name,
		       const char *who)
{
	pid_t pid;

	if (param_pid(a, key, &pid) < 0)
		return -1;
	if (kill(pid, sig) < 0)
		say(a, "BLOCKED", "kill(%ld, %s) of the %s: %s", (long)pid, sig_name, who,
		    strerror(errno));
	else
		say(a, "ESCAPED", "kill(%ld, %s) of the %s was delivered", (long)pid, sig_name,
		    who);
	return 0;
}

static int attack_kill_zygote(const struct attack *a)
{
	return attack_kill(a, "zygote_pid", SIGKILL, "SIGKILL", "zygote");
}

static int attack_kill_daemon(const struct attack *a)
{
	return attack_kill(a, "daemon_pid", SIGTERM, "SIGTERM", "daemon");
}

static const struct {
	const char *name;
	int (*run)(const struct attack *a);
} attacks[] = {
	{"env", attack_env},
	{"store", attack_store},
	{"zygote_mem", attack_zygote_mem},
	{"daemon_mem", attack_daemon_mem},
	{"ptrace", attack_ptrace},
	{"network", attack_network},
	{"write_key", attack_write_key},
	{"fork_storm", attack_fork_storm},
	{"escape", attack_escape},
	{"kill_zygote", attack_kill_zygote},
	{"kill_daemon", attack_kill_daemon},
};

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	struct attack a = {.host = host, .ctx = ctx};
	const char *meta = NULL;
	char name[64];
	size_t i;
	int rc;

	(void)event;
	rc = host->get_metadata(ctx, &meta);
	if (rc != 0) {
		host->set_error(ctx, "get_metadata: %s", evs_strerror(rc));
		return 1;
	}
	a.meta = json_tokener_parse(meta);
	if (json_string_at(a.meta, "attack", name, sizeof(name)) != 0) {
		host->set_error(ctx, "the metadata has no \"attack\" string");
		json_object_put(a.meta);
		return 1;
	}
	rc = -1;
	for (i = 0; i < sizeof(attacks) / sizeof(attacks[0]) && rc < 0; i++) {
		if (strcmp(attacks[i].name, name) == 0) {
			a.name = attacks[i].name;
			rc = attacks[i].run(&a) == 0 ? 0 : 1;
		}
	}
	if (rc < 0) {
		host->set_error(ctx, "unknown attack \"%s\"", name);
		rc = 1;
	}
	json_object_put(a.meta);
	return rc;
}
