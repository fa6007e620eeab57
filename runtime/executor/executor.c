/*
 * executor.c - runs plugin entry points: in a forked, single-use executor
 * process (isolated) or on the calling thread (in-process).
 *
 * Processes
 * ---------
 *   daemon (threads) --ctl socket--> zygote (single-threaded, `--zygote 3`)
 *        |                              |  fork (ahead of time)
 *        +------- exec socket ------> executor (one per execution)
 *
 * The zygote is spawned with posix_spawn, gets its end of the ctl socket as
 * fd 3, and opens the plugins whose sealed memfds the daemon sends it. For
 * each execution the daemon makes a socketpair (the exec socket), writes the
 * job on its end and hands the other end to the zygote, which passes it on
 * to an idle pre-forked executor (or forks one). The executor reads the job,
 * calls the entry point with a vtable whose functions are calls over the
 * exec socket (the daemon thread waiting in executor_run() serves them with
 * hostapi_*), writes the result and _exit()s. The zygote reaps it, kills
 * whatever is left in its process group, and reports how it ended over the
 * ctl socket; a reader thread in the daemon routes that report to the
 * waiting executor_run() through an eventfd. The zygote enforces deadlines
 * (SIGKILL to the executor's process group) and is a child subreaper, so
 * what executors leave behind is reaped too.
 *
 * Wire format (both sockets are SOCK_STREAM): a message is a 4-byte length
 * in host byte order followed by that many bytes of JSON text (at most
 * MSG_MAX). File descriptors ride with the message as SCM_RIGHTS on its
 * first bytes. Messages:
 *   daemon -> zygote   {"op":"config","prefork":N,"memory_limit_mb":N,"cpu_limit_s":N}
 *                      {"op":"load","i":N,"name":S,"version":S,"hash":HEX} + memfd
 *                      {"op":"ready"}
 *                      {"op":"run","id":N,"deadline_us":N} + executor's end of the exec socket
 *                      {"op":"kill","id":N}                (drain: kill it now)
 *   zygote -> daemon   {"op":"loaded","i":N,"code":N,"err":S}
 *                      {"op":"exit","id":N,"status":WSTATUS,"reason":R}
 *                        R: 0 exited by itself, 1 deadline, 2 killed (drain), 3 not started
 *   zygote -> executor {"op":"go"} + exec socket          (over the executor's link)
 *   daemon -> executor {"op":"job","plugin":N,"deadline_us":N,"event":{...}|"input":S}
 *   executor -> daemon {"op":"log","l":LEVEL,"m":S}        (no reply)
 *                      {"op":"set_error","m":S}            (no reply)
 *                      {"op":"call","fn":F,...}  -> {"rc":N,"v":S|OBJECT|null}
 *                        F: get_connection, get_metadata, set_metadata (j),
 *                           update_metadata (j), get_env (name), get_webhook_url,
 *                           trigger_action (name, input), proxy_target
 *                      {"op":"result","rc":N,"output":S|null}
 * The zygote closes the ctl socket's EOF as "stop": it kills its idle
 * executors, waits for the running ones (their deadlines still hold) and
 * returns from executor_zygote_main().
 */
#include "executor.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

extern char **environ;

#define MSG_MAX (8u << 20)
#define MSG_FDS_MAX 4
#define ZYGOTE_FD 3
#define LOAD_TIMEOUT_MS 30000
#define GRACE_US 5000000LL      /* past the deadline the daemon stops trusting the zygote */
#define ZYGOTE_EXIT_WAIT_US 5000000LL
#define ZRUN_MAX 4096
#define PREFORK_MAX 64

enum exit_reason { REASON_EXITED = 0, REASON_DEADLINE = 1, REASON_KILLED = 2, REASON_NOSTART = 3,
		   REASON_LOST = 4 };

/* ---------------------------------------------------------------------------
 * Messages.
 */
static int send_msg(int fd, const char *buf, size_t len, const int *fds, int nfds)
{
	uint32_t hdr = (uint32_t)len;
	struct iovec iov[2] = {{&hdr, sizeof(hdr)}, {(void *)buf, len}};
	union {
		char b[CMSG_SPACE(sizeof(int) * MSG_FDS_MAX)];
		struct cmsghdr align;
	} u;
	struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
	size_t left = sizeof(hdr) + len;

	if (len > MSG_MAX || nfds > MSG_FDS_MAX)
		return -EMSGSIZE;
	if (nfds > 0) {
		struct cmsghdr *c;

		memset(&u, 0, sizeof(u));
		m.msg_control = u.b;
		m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	while (left > 0) {
		ssize_t r = sendmsg(fd, &m, MSG_NOSIGNAL);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		left -= (size_t)r;
		m.msg_control = NULL;
		m.msg_controllen = 0;
		while (r > 0 && m.msg_iovlen > 0) {
			if ((size_t)r >= m.msg_iov[0].iov_len) {
				r -= (ssize_t)m.msg_iov[0].iov_len;
				m.msg_iov++;
				m.msg_iovlen--;
			} else {
				m.msg_iov[0].iov_base = (char *)m.msg_iov[0].iov_base + r;
				m.msg_iov[0].iov_len -= (size_t)r;
				r = 0;
			}
		}
	}
	return 0;
}

/* Receives one message: *buf (malloc'd, NUL-terminated) and up to *nfds
 * descriptors (extra ones are closed). -EPIPE on a clean EOF. */
static int recv_msg(int fd, char **buf, int *fds, int *nfds)
{
	uint32_t hdr = 0;
	size_t got = 0;
	int max = nfds ? *nfds : 0, n = 0, ret;
	char *p = NULL;

	*buf = NULL;
	if (nfds)
		*nfds = 0;
	while (got < sizeof(hdr)) {
		struct iovec iov = {(char *)&hdr + got, sizeof(hdr) - got};
		union {
			char b[CMSG_SPACE(sizeof(int) * MSG_FDS_MAX)];
			struct cmsghdr align;
		} u;
		struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
				   .msg_controllen = sizeof(u.b)};
		ssize_t r = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			goto fail;
		}
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			int got_fds[MSG_FDS_MAX * 2];

			if (k > MSG_FDS_MAX * 2)
				k = MSG_FDS_MAX * 2;
			memcpy(got_fds, CMSG_DATA(c), k * sizeof(int));
			for (size_t i = 0; i < k; i++) {
				if (n < max)
					fds[n++] = got_fds[i];
				else
					close(got_fds[i]);
			}
		}
		if (r == 0) {
			ret = got ? -EPROTO : -EPIPE;
			goto fail;
		}
		got += (size_t)r;
	}
	if (hdr > MSG_MAX) {
		ret = -EMSGSIZE;
		goto fail;
	}
	p = malloc((size_t)hdr + 1);
	if (!p) {
		ret = -ENOMEM;
		goto fail;
	}
	got = 0;
	while (got < hdr) {
		ssize_t r = read(fd, p + got, hdr - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			ret = r < 0 ? -errno : -EPROTO;
			goto fail;
		}
		got += (size_t)r;
	}
	p[hdr] = '\0';
	*buf = p;
	if (nfds)
		*nfds = n;
	return 0;
fail:
	free(p);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	return ret;
}

static int send_json(int fd, struct json_object *o, const int *fds, int nfds)
{
	size_t len = 0;
	const char *s;

	if (!o)
		return -ENOMEM;
	s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
					      &len);
	if (!s)
		return -ENOMEM;
	return send_msg(fd, s, len, fds, nfds);
}

static int recv_json(int fd, struct json_object **o, int *fds, int *nfds)
{
	char *buf;
	int r = recv_msg(fd, &buf, fds, nfds);

	*o = NULL;
	if (r < 0)
		return r;
	*o = json_tokener_parse(buf);
	free(buf);
	if (!*o || !json_object_is_type(*o, json_type_object)) {
		json_object_put(*o);
		*o = NULL;
		if (nfds)
			for (int i = 0; i < *nfds; i++)
				close(fds[i]);
		return -EPROTO;
	}
	return 0;
}

static const char *jstr(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int64_t jint(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, k, &v))
		return 0;
	return json_object_get_int64(v);
}

static bool op_is(struct json_object *o, const char *op)
{
	const char *s = jstr(o, "op");

	return s && strcmp(s, op) == 0;
}

/* Overwrites a serialized message that carried a secret. */
static void wipe_json(struct json_object *o)
{
	size_t len = 0;
	const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);

	if (s)
		explicit_bzero((char *)s, len);
}

/* ---------------------------------------------------------------------------
 * The executor process: the RPC vtable and the run.
 */
struct xstate {
	int sock;
	int64_t deadline_us;
#ifdef EVS_HAVE_PROXY
	struct proxy_target *target;
	struct proxy_session *session;
#endif
};

static struct xstate X; /* the executor process is single-threaded */

/* One call to the daemon; *reply owned by the caller. */
static int x_call(struct json_object *req, struct json_object **reply)
{
	int r;

	*reply = NULL;
	json_object_object_add(req, "op", json_object_new_string("call"));
	r = send_json(X.sock, req, NULL, 0);
	json_object_put(req);
	if (r < 0)
		return EVS_EHOST;
	r = recv_json(X.sock, reply, NULL, NULL);
	if (r < 0)
		return EVS_EHOST;
	return (int)jint(*reply, "rc");
}

/* A call whose answer is a string lent to the plugin (it lives until the
 * process exits, right after the entry point returns). */
static int x_call_string(const char *fn, const char *k1, const char *v1, const char *k2,
			 const char *v2, const char **out)
{
	struct json_object *req = json_object_new_object(), *reply = NULL;
	const char *v;
	int rc;

	if (!out)
		return EVS_EINVAL;
	*out = NULL;
	if (!req)
		return EVS_ENOMEM;
	json_object_object_add(req, "fn", json_object_new_string(fn));
	if (k1)
		json_object_object_add(req, k1, v1 ? json_object_new_string(v1) : NULL);
	if (k2)
		json_object_object_add(req, k2, v2 ? json_object_new_string(v2) : NULL);
	rc = x_call(req, &reply);
	if (rc == EVS_OK) {
		v = jstr(reply, "v");
		*out = v ? strdup(v) : NULL;
		if (!*out)
			rc = EVS_EHOST;
	}
	json_object_put(reply);
	return rc;
}

static void x_log(struct evs_ctx *ctx, enum evs_log_level level, const char *fmt, ...)
{
	char line[HOSTAPI_LOG_LINE_MAX];
	struct json_object *m;
	va_list ap;

	(void)ctx;
	if (!fmt)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	m = json_object_new_object();
	if (!m)
		return;
	json_object_object_add(m, "op", json_object_new_string("log"));
	json_object_object_add(m, "l", json_object_new_int((int)level));
	json_object_object_add(m, "m", json_object_new_string(line));
	send_json(X.sock, m, NULL, 0);
	json_object_put(m);
}

static void x_set_error(struct evs_ctx *ctx, const char *fmt, ...)
{
	char msg[HOSTAPI_ERROR_MAX];
	struct json_object *m;
	va_list ap;

	(void)ctx;
	if (!fmt)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	m = json_object_new_object();
	if (!m)
		return;
	json_object_object_add(m, "op", json_object_new_string("set_error"));
	json_object_object_add(m, "m", json_object_new_string(msg));
	send_json(X.sock, m, NULL, 0);
	json_object_put(m);
}

static int x_get_connection(struct evs_ctx *ctx, const char **json)
{
	(void)ctx;
	return x_call_string("get_connection", NULL, NULL, NULL, NULL, json);
}

static int x_get_metadata(struct evs_ctx *ctx, const char **json)
{
	(void)ctx;
	return x_call_string("get_metadata", NULL, NULL, NULL, NULL, json);
}

static int x_call_in(const char *fn, const char *json)
{
	struct json_object *req, *reply = NULL;
	int rc;

	if (!json)
		return EVS_EINVAL;
	req = json_object_new_object();
	if (!req)
		return EVS_ENOMEM;
	json_object_object_add(req, "fn", json_object_new_string(fn));
	json_object_object_add(req, "j", json_object_new_string(json));
	rc = x_call(req, &reply);
	json_object_put(reply);
	return rc;
}

static int x_set_metadata(struct evs_ctx *ctx, const char *json)
{
	(void)ctx;
	return x_call_in("set_metadata", json);
}

static int x_update_metadata(struct evs_ctx *ctx, const char *json)
{
	(void)ctx;
	return x_call_in("update_metadata", json);
}

static int x_get_env(struct evs_ctx *ctx, const char *name, const char **value)
{
	(void)ctx;
	if (!name)
		return EVS_EINVAL;
	return x_call_string("get_env", "name", name, NULL, NULL, value);
}

static int x_get_webhook_url(struct evs_ctx *ctx, const char **url)
{
	(void)ctx;
	return x_call_string("get_webhook_url", NULL, NULL, NULL, NULL, url);
}

static int x_trigger_action(struct evs_ctx *ctx, const char *name, const char *input_json,
			    const char **output_json)
{
	(void)ctx;
	if (!name)
		return EVS_EINVAL;
	return x_call_string("trigger_action", "name", name, "input",
			     input_json ? input_json : "null", output_json);
}

#ifdef EVS_HAVE_PROXY
static void x_proxy_log(void *user, int level, const char *msg)
{
	(void)user;
	x_log(NULL, (enum evs_log_level)level, "%s", msg);
}

/* Fetches the proxy target once and opens the session. */
static int x_session(void)
{
	struct json_object *req, *reply = NULL, *v;
	int rc;

	if (X.session)
		return EVS_OK;
	if (!X.target) {
		req = json_object_new_object();
		if (!req)
			return EVS_ENOMEM;
		json_object_object_add(req, "fn", json_object_new_string("proxy_target"));
		rc = x_call(req, &reply);
		if (rc == EVS_OK) {
			if (!json_object_object_get_ex(reply, "v", &v) ||
			    proxy_target_from_json(v, &X.target) < 0)
				rc = EVS_EHOST;
		}
		if (reply)
			wipe_json(reply);
		json_object_put(reply);
		if (rc < 0)
			return rc;
	}
	return proxy_session_new(X.target, X.deadline_us, x_proxy_log, NULL, &X.session);
}

static int x_proxy(struct evs_ctx *ctx, const struct evs_request *req, struct evs_response **resp)
{
	int rc;

	(void)ctx;
	if (!resp)
		return EVS_EINVAL;
	*resp = NULL;
	if (!req)
		return EVS_EINVAL;
	rc = x_session();
	if (rc < 0)
		return rc;
	return proxy_request(X.session, req, resp);
}

static void x_free_response(struct evs_ctx *ctx, struct evs_response *resp)
{
	(void)ctx;
	proxy_response_free(resp);
}

static int x_paginate(struct evs_ctx *ctx, const struct evs_request *req,
		      const struct evs_paginate_options *opts, evs_page_fn on_page, void *user)
{
	int rc;

	(void)ctx;
	if (!req || !on_page)
		return EVS_EINVAL;
	rc = x_session();
	if (rc < 0)
		return rc;
	return proxy_paginate(X.session, req, opts, on_page, user);
}
#else
static int x_proxy(struct evs_ctx *ctx, const struct evs_request *req, struct evs_response **resp)
{
	(void)ctx;
	(void)req;
	if (resp)
		*resp = NULL;
	return EVS_EUNSUPPORTED;
}

static void x_free_response(struct evs_ctx *ctx, struct evs_response *resp)
{
	(void)ctx;
	(void)resp;
}

static int x_paginate(struct evs_ctx *ctx, const struct evs_request *req,
		      const struct evs_paginate_options *opts, evs_page_fn on_page, void *user)
{
	(void)ctx;
	(void)req;
	(void)opts;
	(void)on_page;
	(void)user;
	return EVS_EUNSUPPORTED;
}
#endif

static const struct evs_host rpc_vtable = {
	.size = sizeof(struct evs_host),
	.abi_major = EVS_ABI_MAJOR,
	.abi_minor = EVS_ABI_MINOR,
	.log = x_log,
	.set_error = x_set_error,
	.get_connection = x_get_connection,
	.get_metadata = x_get_metadata,
	.set_metadata = x_set_metadata,
	.update_metadata = x_update_metadata,
	.proxy = x_proxy,
	.free_response = x_free_response,
	.paginate = x_paginate,
	.get_env = x_get_env,
	.get_webhook_url = x_get_webhook_url,
	.trigger_action = x_trigger_action,
};

/* Runs the job that arrives on sock; never returns. */
static void executor_child_run(struct loader_plugin **plugins, size_t n, int sock)
{
	struct json_object *job = NULL, *res, *ev;
	struct evs_event event;
	struct loader_plugin *p;
	char *output = NULL;
	int64_t i;
	int rc;

	X.sock = sock;
	if (recv_json(sock, &job, NULL, NULL) < 0 || !op_is(job, "job"))
		_exit(2);
	i = jint(job, "plugin");
	X.deadline_us = jint(job, "deadline_us");
	if (i < 0 || (size_t)i >= n || !plugins[i] || !plugins[i]->handle)
		_exit(2);
	p = plugins[i];
	if (p->kind == LOADER_EVENT_SCRIPT) {
		if (!json_object_object_get_ex(job, "event", &ev))
			_exit(2);
		memset(&event, 0, sizeof(event));
		event.size = sizeof(event);
		event.type = (uint32_t)jint(ev, "type");
		event.name = jstr(ev, "name");
		event.connection_id = jstr(ev, "connection_id");
		event.provider_config_key = jstr(ev, "provider_config_key");
		event.event_id = jint(ev, "event_id");
		event.execution_id = jint(ev, "execution_id");
		rc = p->on_event(&rpc_vtable, (struct evs_ctx *)&X, &event);
	} else {
		const char *input = jstr(job, "input");

		rc = p->run_action(&rpc_vtable, (struct evs_ctx *)&X, input ? input : "null",
				   &output);
	}
	res = json_object_new_object();
	if (!res)
		_exit(2);
	json_object_object_add(res, "op", json_object_new_string("result"));
	json_object_object_add(res, "rc", json_object_new_int(rc));
	json_object_object_add(res, "output", output ? json_object_new_string(output) : NULL);
	send_json(sock, res, NULL, 0);
	_exit(0);
}

/* ---------------------------------------------------------------------------
 * The zygote.
 */
struct zidle {
	pid_t pid;
	int link;
};

struct zrun {
	uint64_t id;
	pid_t pid;
	int64_t deadline_us;
	int reason;
};

struct zygote {
	pid_t self;
	int ctl, sfd;
	struct loader_plugin **plugins;
	size_t n_plugins;
	uint32_t prefork;
	uint64_t memory_limit_mb;
	uint32_t cpu_limit_s;
	bool ready, closing;
	struct zidle idle[PREFORK_MAX];
	size_t n_idle;
	struct zrun *runs;
	size_t n_runs, cap_runs;
};

static long vm_size_kb(void)
{
	char buf[4096];
	long kb = -1;
	ssize_t n;
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	char *p = strstr(buf, "\nVmSize:");
	if (p)
		kb = strtol(p + 8, NULL, 10);
	return kb;
}

/* In the new child: drop what belongs to the zygote, set the limits, wait
 * for the go, run. Never returns. */
static void child_main(struct zygote *z, int link)
{
	sigset_t none;
	struct json_object *go = NULL;
	int fds[1], nfds = 1, devnull;

	sigemptyset(&none);
	/* a crash must end the executor with its signal, whatever handlers
	 * the zygote inherited (sanitizers install some) */
	signal(SIGSEGV, SIG_DFL);
	signal(SIGBUS, SIG_DFL);
	signal(SIGFPE, SIG_DFL);
	signal(SIGILL, SIG_DFL);
	signal(SIGABRT, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	sigprocmask(SIG_SETMASK, &none, NULL);
	close(z->ctl);
	close(z->sfd);
	for (size_t i = 0; i < z->n_idle; i++)
		close(z->idle[i].link);
	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != z->self)
		_exit(0);
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull >= 0) {
		dup2(devnull, 0);
		dup2(devnull, 1);
		if (!getenv("EVSCRIPT_EXECUTOR_STDERR"))
			dup2(devnull, 2);
		close(devnull);
	}
	if (z->memory_limit_mb) {
		long kb = vm_size_kb();
		struct rlimit rl;

		if (kb > 0) {
			rl.rlim_cur = rl.rlim_max = (rlim_t)kb * 1024 + (rlim_t)z->memory_limit_mb * 1048576;
			setrlimit(RLIMIT_AS, &rl);
		}
	}
	if (z->cpu_limit_s) {
		struct rlimit rl = {z->cpu_limit_s, z->cpu_limit_s + 1};

		setrlimit(RLIMIT_CPU, &rl);
	}
	if (recv_json(link, &go, fds, &nfds) < 0 || nfds != 1 || !op_is(go, "go"))
		_exit(0);
	json_object_put(go);
	close(link);
	executor_child_run(z->plugins, z->n_plugins, fds[0]);
}

/* Forks one idle executor into the pool. */
static int fork_idle(struct zygote *z)
{
	int sv[2];
	pid_t pid;

	if (z->n_idle >= PREFORK_MAX)
		return -ENOSPC;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		int e = errno;

		close(sv[0]);
		close(sv[1]);
		return -e;
	}
	if (pid == 0) {
		close(sv[0]);
		child_main(z, sv[1]);
		_exit(0);
	}
	close(sv[1]);
	setpgid(pid, pid); /* also done by the child; whoever is first wins the race */
	z->idle[z->n_idle].pid = pid;
	z->idle[z->n_idle].link = sv[0];
	z->n_idle++;
	return 0;
}

static void z_report(struct zygote *z, uint64_t id, int status, int reason)
{
	struct json_object *m = json_object_new_object();

	if (!m)
		return;
	json_object_object_add(m, "op", json_object_new_string("exit"));
	json_object_object_add(m, "id", json_object_new_int64((int64_t)id));
	json_object_object_add(m, "status", json_object_new_int(status));
	json_object_object_add(m, "reason", json_object_new_int(reason));
	send_json(z->ctl, m, NULL, 0);
	json_object_put(m);
}

/* Hands the exec socket to an executor: an idle one, or a new one. */
static void z_run(struct zygote *z, uint64_t id, int64_t deadline_us, int fd)
{
	struct json_object *go = json_object_new_object();
	int attempts;

	json_object_object_add(go, "op", json_object_new_string("go"));
	if (z->n_runs == z->cap_runs) {
		size_t cap = z->cap_runs ? z->cap_runs * 2 : 16;
		struct zrun *r = cap <= ZRUN_MAX ? realloc(z->runs, cap * sizeof(*r)) : NULL;

		if (!r)
			goto fail;
		z->runs = r;
		z->cap_runs = cap;
	}
	for (attempts = 0; attempts < 3; attempts++) {
		struct zidle c;

		if (z->n_idle == 0 && fork_idle(z) < 0)
			break;
		c = z->idle[--z->n_idle];
		if (send_json(c.link, go, &fd, 1) < 0) {
			/* it died while idle: it is reaped with SIGCHLD */
			kill(c.pid, SIGKILL);
			close(c.link);
			continue;
		}
		close(c.link);
		z->runs[z->n_runs++] = (struct zrun){.id = id, .pid = c.pid,
						     .deadline_us = deadline_us};
		close(fd);
		json_object_put(go);
		return;
	}
fail:
	close(fd);
	json_object_put(go);
	z_report(z, id, 0, REASON_NOSTART);
}

static void z_kill_run(struct zrun *r, int reason)
{
	if (r->reason)
		return;
	r->reason = reason;
	kill(-r->pid, SIGKILL);
	kill(r->pid, SIGKILL);
}

static void z_reap(struct zygote *z)
{
	int st;
	pid_t pid;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		size_t i;

		for (i = 0; i < z->n_runs; i++)
			if (z->runs[i].pid == pid)
				break;
		if (i < z->n_runs) {
			struct zrun r = z->runs[i];

			kill(-pid, SIGKILL); /* what it left in its group */
			z->runs[i] = z->runs[--z->n_runs];
			z_report(z, r.id, st, r.reason);
			continue;
		}
		for (i = 0; i < z->n_idle; i++)
			if (z->idle[i].pid == pid)
				break;
		if (i < z->n_idle) {
			if (z->idle[i].link >= 0)
				close(z->idle[i].link);
			z->idle[i] = z->idle[--z->n_idle];
		}
		/* else: something an executor left behind (we are its subreaper) */
	}
}

static int z_load(struct zygote *z, struct json_object *m, int fd)
{
	struct loader_plugin *p = NULL;
	struct json_object *reply;
	char err[512] = "";
	int64_t i = jint(m, "i");
	const char *name = jstr(m, "name"), *version = jstr(m, "version"), *hash = jstr(m, "hash");
	int code;

	if (i < 0 || i >= 65536 || !name || !version || fd < 0) {
		code = LOADER_EIO;
		snprintf(err, sizeof(err), "zygote: malformed load request");
		goto reply;
	}
	if ((size_t)i >= z->n_plugins) {
		struct loader_plugin **a = realloc(z->plugins, ((size_t)i + 1) * sizeof(*a));

		if (!a) {
			code = LOADER_ENOMEM;
			snprintf(err, sizeof(err), "zygote: out of memory");
			goto reply;
		}
		for (size_t k = z->n_plugins; k <= (size_t)i; k++)
			a[k] = NULL;
		z->plugins = a;
		z->n_plugins = (size_t)i + 1;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		code = LOADER_ENOMEM;
		snprintf(err, sizeof(err), "zygote: out of memory");
		goto reply;
	}
	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->version, sizeof(p->version), "%s", version);
	snprintf(p->hash_hex, sizeof(p->hash_hex), "%s", hash ? hash : "");
	p->memfd = fd;
	fd = -1;
	code = loader_open(p, err, sizeof(err));
	if (code == LOADER_OK) {
		loader_unload(z->plugins[i]);
		z->plugins[i] = p;
	} else {
		/* loader_open leaves the memfd to us on failure */
		loader_unload(p);
	}
reply:
	if (fd >= 0)
		close(fd);
	reply = json_object_new_object();
	if (!reply)
		return -ENOMEM;
	json_object_object_add(reply, "op", json_object_new_string("loaded"));
	json_object_object_add(reply, "i", json_object_new_int64(i));
	json_object_object_add(reply, "code", json_object_new_int(code));
	json_object_object_add(reply, "kind", json_object_new_int(code == LOADER_OK ? (int)p->kind : 0));
	json_object_object_add(reply, "err", json_object_new_string(err));
	code = send_json(z->ctl, reply, NULL, 0);
	json_object_put(reply);
	return code;
}

static void z_close_idle(struct zygote *z)
{
	for (size_t i = 0; i < z->n_idle; i++) {
		kill(z->idle[i].pid, SIGKILL);
		if (z->idle[i].link >= 0)
			close(z->idle[i].link);
		z->idle[i].link = -1;
	}
}

int executor_zygote_main(int fd)
{
	struct zygote z = {.self = getpid(), .ctl = fd, .sfd = -1};
	sigset_t set;
	int ret = 0;

	prctl(PR_SET_CHILD_SUBREAPER, 1);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	z.sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (z.sfd < 0)
		return 1;
	fcntl(fd, F_SETFD, FD_CLOEXEC);

	for (;;) {
		struct pollfd pfd[2];
		int64_t now = util_mono_us(), next = -1;
		int timeout = -1, np = 0;

		if (z.closing && z.n_runs == 0)
			break;
		for (size_t i = 0; i < z.n_runs; i++) {
			if (z.runs[i].reason)
				continue;
			if (z.runs[i].deadline_us && z.runs[i].deadline_us <= now)
				z_kill_run(&z.runs[i], REASON_DEADLINE);
			else if (z.runs[i].deadline_us && (next < 0 || z.runs[i].deadline_us < next))
				next = z.runs[i].deadline_us;
		}
		if (next >= 0)
			timeout = (int)((next - now + 999) / 1000);
		pfd[np++] = (struct pollfd){.fd = z.sfd, .events = POLLIN};
		if (!z.closing)
			pfd[np++] = (struct pollfd){.fd = z.ctl, .events = POLLIN};
		/* Refill the pool when nothing else waits, and only while no
		 * execution runs (so a fork never delays an exit report) unless
		 * the pool is running low. */
		if (z.ready && !z.closing && z.n_idle < z.prefork &&
		    (z.n_runs == 0 || z.n_idle < (z.prefork + 1) / 2)) {
			if (poll(pfd, (nfds_t)np, 0) == 0) {
				fork_idle(&z);
				continue;
			}
		}
		if (poll(pfd, (nfds_t)np, timeout) < 0) {
			if (errno == EINTR)
				continue;
			ret = 1;
			break;
		}
		if (pfd[0].revents) {
			struct signalfd_siginfo si;

			while (read(z.sfd, &si, sizeof(si)) == sizeof(si))
				;
			z_reap(&z);
		}
		if (np > 1 && pfd[1].revents) {
			struct json_object *m = NULL;
			int fds[1], nfds = 1;

			if (recv_json(z.ctl, &m, fds, &nfds) < 0) {
				z.closing = true;
				z_close_idle(&z);
				continue;
			}
			if (op_is(m, "config")) {
				z.prefork = (uint32_t)jint(m, "prefork");
				if (z.prefork > PREFORK_MAX)
					z.prefork = PREFORK_MAX;
				z.memory_limit_mb = (uint64_t)jint(m, "memory_limit_mb");
				z.cpu_limit_s = (uint32_t)jint(m, "cpu_limit_s");
			} else if (op_is(m, "load")) {
				z_load(&z, m, nfds ? fds[0] : -1);
				nfds = 0;
			} else if (op_is(m, "ready")) {
				z.ready = true;
			} else if (op_is(m, "run") && nfds == 1) {
				z_run(&z, (uint64_t)jint(m, "id"), jint(m, "deadline_us"), fds[0]);
				nfds = 0;
			} else if (op_is(m, "kill")) {
				uint64_t id = (uint64_t)jint(m, "id");

				for (size_t i = 0; i < z.n_runs; i++)
					if (z.runs[i].id == id)
						z_kill_run(&z.runs[i], REASON_KILLED);
			}
			for (int i = 0; i < nfds; i++)
				close(fds[i]);
			json_object_put(m);
		}
	}

	/* stop: kill the idle ones and reap them, and whatever else is left */
	z_close_idle(&z);
	while (z.n_idle > 0) {
		pid_t pid = waitpid(-1, NULL, 0);

		if (pid < 0 && errno == EINTR)
			continue;
		if (pid < 0)
			break;
		for (size_t i = 0; i < z.n_idle; i++) {
			if (z.idle[i].pid == pid) {
				z.idle[i] = z.idle[--z.n_idle];
				break;
			}
		}
	}
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	for (size_t i = 0; i < z.n_plugins; i++)
		loader_unload(z.plugins[i]);
	free(z.plugins);
	free(z.runs);
	close(z.sfd);
	close(z.ctl);
	return ret;
}

/* ---------------------------------------------------------------------------
 * The daemon side.
 */
struct run {
	uint64_t id;
	int efd;
	bool exited;
	int status;
	int reason;
	struct run *next;
};

struct executor {
	struct executor_options opts;
	struct loader_plugin *const *plugins;
	size_t n;
	bool *iso_ok;
	bool *inproc_ok;
	int *kind;               /* enum loader_kind of each plugin, as opened */
	int ctl;
	pid_t zygote;
	pthread_t reader;
	bool reader_started;
	pthread_mutex_t mu;      /* runs, counters */
	pthread_mutex_t send_mu; /* writes on ctl */
	pthread_cond_t changed;  /* running went down */
	struct run *runs;
	uint64_t next_id;
	size_t running;
	bool zygote_gone;
	bool drained;            /* executor_kill_all: no more runs */
};

static void notify(int efd)
{
	uint64_t one = 1;

	while (write(efd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

/* Marks every run that waits for the zygote as lost. Called with mu. */
static void lose_all(struct executor *ex)
{
	ex->zygote_gone = true;
	for (struct run *r = ex->runs; r; r = r->next) {
		if (!r->exited) {
			r->exited = true;
			r->reason = REASON_LOST;
			notify(r->efd);
		}
	}
}

static void *reader_main(void *arg)
{
	struct executor *ex = arg;

	for (;;) {
		struct json_object *m = NULL;

		if (recv_json(ex->ctl, &m, NULL, NULL) < 0)
			break;
		if (op_is(m, "exit")) {
			uint64_t id = (uint64_t)jint(m, "id");

			pthread_mutex_lock(&ex->mu);
			for (struct run *r = ex->runs; r; r = r->next) {
				if (r->id == id && !r->exited) {
					r->exited = true;
					r->status = (int)jint(m, "status");
					r->reason = (int)jint(m, "reason");
					notify(r->efd);
					break;
				}
			}
			pthread_mutex_unlock(&ex->mu);
		}
		json_object_put(m);
	}
	pthread_mutex_lock(&ex->mu);
	lose_all(ex);
	pthread_mutex_unlock(&ex->mu);
	return NULL;
}

static int ctl_send(struct executor *ex, struct json_object *m, const int *fds, int nfds)
{
	int r;

	pthread_mutex_lock(&ex->send_mu);
	r = send_json(ex->ctl, m, fds, nfds);
	pthread_mutex_unlock(&ex->send_mu);
	return r;
}

static int spawn_zygote(struct executor *ex, int zfd, char *err, size_t errlen)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	char fdarg[16];
	const char *exe = ex->opts.self_exe ? ex->opts.self_exe : "/proc/self/exe";
	char *argv[] = {"evscriptd", "--zygote", fdarg, NULL};
	int r;

	snprintf(fdarg, sizeof(fdarg), "%d", ZYGOTE_FD);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	posix_spawn_file_actions_adddup2(&fa, zfd, ZYGOTE_FD);
	posix_spawn_file_actions_addclosefrom_np(&fa, ZYGOTE_FD + 1);
	sigemptyset(&none);
	sigfillset(&all);
	sigdelset(&all, SIGKILL);
	sigdelset(&all, SIGSTOP);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
					      POSIX_SPAWN_SETPGROUP);
	r = posix_spawn(&ex->zygote, exe, &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (r != 0) {
		ex->zygote = 0;
		snprintf(err, errlen, "cannot start the zygote (%s --zygote): %s", exe, strerror(r));
		return -r;
	}
	return 0;
}

/* Waits for the zygote's answer to a load, up to LOAD_TIMEOUT_MS. */
static int recv_load_reply(struct executor *ex, struct json_object **m)
{
	struct pollfd p = {.fd = ex->ctl, .events = POLLIN};
	int r = poll(&p, 1, LOAD_TIMEOUT_MS);

	*m = NULL;
	if (r <= 0)
		return r == 0 ? -ETIMEDOUT : -errno;
	return recv_json(ex->ctl, m, NULL, NULL);
}

static void stop_zygote(struct executor *ex)
{
	int64_t until;

	if (ex->ctl >= 0)
		shutdown(ex->ctl, SHUT_WR);
	if (ex->zygote > 0) {
		until = util_mono_us() + ZYGOTE_EXIT_WAIT_US;
		for (;;) {
			pid_t w = waitpid(ex->zygote, NULL, WNOHANG);

			if (w == ex->zygote || (w < 0 && errno != EINTR))
				break;
			if (util_mono_us() > until) {
				kill(ex->zygote, SIGKILL);
				waitpid(ex->zygote, NULL, 0);
				break;
			}
			usleep(1000);
		}
		ex->zygote = 0;
	}
	if (ex->reader_started) {
		pthread_join(ex->reader, NULL);
		ex->reader_started = false;
	}
	if (ex->ctl >= 0) {
		close(ex->ctl);
		ex->ctl = -1;
	}
}

int executor_new(const struct executor_options *opts, struct loader_plugin *const *plugins,
		 size_t n, const bool *in_process, struct executor_load_result *results,
		 struct executor **out, char *err, size_t errlen)
{
	struct executor *ex;
	struct json_object *m = NULL;
	pthread_condattr_t ca;
	int sv[2] = {-1, -1}, ret;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	ex = calloc(1, sizeof(*ex));
	if (!ex) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	ex->ctl = -1;
	ex->opts = *opts;
	ex->plugins = plugins;
	ex->n = n;
	ex->iso_ok = calloc(n ? n : 1, sizeof(bool));
	ex->inproc_ok = calloc(n ? n : 1, sizeof(bool));
	ex->kind = calloc(n ? n : 1, sizeof(int));
	pthread_mutex_init(&ex->mu, NULL);
	pthread_mutex_init(&ex->send_mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ex->changed, &ca);
	pthread_condattr_destroy(&ca);
	if (!ex->iso_ok || !ex->inproc_ok || !ex->kind) {
		snprintf(err, errlen, "out of memory");
		ret = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		results[i].code = LOADER_OK;
		results[i].err[0] = '\0';
	}

	/* in-process opens, in this process */
	for (size_t i = 0; in_process && i < n; i++) {
		if (!in_process[i])
			continue;
		if (!plugins[i]->handle)
			results[i].code = loader_open(plugins[i], results[i].err,
						      sizeof(results[i].err));
		ex->inproc_ok[i] = results[i].code == LOADER_OK;
		if (ex->inproc_ok[i])
			ex->kind[i] = plugins[i]->kind;
	}

	/* the zygote and the isolated opens */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		ret = -errno;
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		goto fail;
	}
	ret = spawn_zygote(ex, sv[1], err, errlen);
	close(sv[1]);
	ex->ctl = sv[0];
	if (ret < 0)
		goto fail;
	m = json_object_new_object();
	json_object_object_add(m, "op", json_object_new_string("config"));
	json_object_object_add(m, "prefork", json_object_new_int64(opts->prefork));
	json_object_object_add(m, "memory_limit_mb", json_object_new_int64((int64_t)opts->memory_limit_mb));
	json_object_object_add(m, "cpu_limit_s", json_object_new_int64(opts->cpu_limit_s));
	ret = send_json(ex->ctl, m, NULL, 0);
	json_object_put(m);
	m = NULL;
	if (ret < 0)
		goto zygote_died;
	for (size_t i = 0; i < n; i++) {
		m = json_object_new_object();
		json_object_object_add(m, "op", json_object_new_string("load"));
		json_object_object_add(m, "i", json_object_new_int64((int64_t)i));
		json_object_object_add(m, "name", json_object_new_string(plugins[i]->name));
		json_object_object_add(m, "version", json_object_new_string(plugins[i]->version));
		json_object_object_add(m, "hash", json_object_new_string(plugins[i]->hash_hex));
		ret = send_json(ex->ctl, m, &plugins[i]->memfd, 1);
		json_object_put(m);
		m = NULL;
		if (ret < 0)
			goto zygote_died;
		ret = recv_load_reply(ex, &m);
		if (ret < 0 || !op_is(m, "loaded") || (size_t)jint(m, "i") != i) {
			json_object_put(m);
			snprintf(err, errlen, "the zygote %s while opening plugin %s",
				 ret == -ETIMEDOUT ? "hung" : "died", plugins[i]->name);
			ret = ret == -ETIMEDOUT ? -ETIMEDOUT : -EPIPE;
			goto fail;
		}
		ex->iso_ok[i] = jint(m, "code") == LOADER_OK;
		if (ex->iso_ok[i]) {
			/* what the zygote found when it opened the plugin: the
			 * daemon, which only verified it, learns its kind here */
			ex->kind[i] = (int)jint(m, "kind");
			if (!plugins[i]->kind)
				plugins[i]->kind = (enum loader_kind)ex->kind[i];
		}
		else if (results[i].code == LOADER_OK) {
			results[i].code = (int)jint(m, "code");
			snprintf(results[i].err, sizeof(results[i].err), "%s",
				 jstr(m, "err") ? jstr(m, "err") : "");
		}
		json_object_put(m);
		m = NULL;
	}
	m = json_object_new_object();
	json_object_object_add(m, "op", json_object_new_string("ready"));
	ret = send_json(ex->ctl, m, NULL, 0);
	json_object_put(m);
	m = NULL;
	if (ret < 0)
		goto zygote_died;
	ret = pthread_create(&ex->reader, NULL, reader_main, ex);
	if (ret != 0) {
		snprintf(err, errlen, "pthread_create: %s", strerror(ret));
		ret = -ret;
		goto fail;
	}
	ex->reader_started = true;
	*out = ex;
	return 0;

zygote_died:
	snprintf(err, errlen, "the zygote exited during start-up");
	ret = -EPIPE;
fail:
	stop_zygote(ex);
	pthread_cond_destroy(&ex->changed);
	pthread_mutex_destroy(&ex->send_mu);
	pthread_mutex_destroy(&ex->mu);
	free(ex->iso_ok);
	free(ex->inproc_ok);
	free(ex->kind);
	free(ex);
	return ret;
}

/* Asks the zygote to kill run id. Called with mu. */
static void send_kill(struct executor *ex, uint64_t id)
{
	struct json_object *m = json_object_new_object();

	json_object_object_add(m, "op", json_object_new_string("kill"));
	json_object_object_add(m, "id", json_object_new_int64((int64_t)id));
	ctl_send(ex, m, NULL, 0);
	json_object_put(m);
}

void executor_kill_all(struct executor *ex)
{
	if (!ex)
		return;
	pthread_mutex_lock(&ex->mu);
	ex->drained = true;
	for (struct run *r = ex->runs; r; r = r->next)
		if (!r->exited)
			send_kill(ex, r->id);
	pthread_mutex_unlock(&ex->mu);
}

size_t executor_running(const struct executor *ex)
{
	size_t n;

	if (!ex)
		return 0;
	pthread_mutex_lock((pthread_mutex_t *)&ex->mu);
	n = ex->running;
	pthread_mutex_unlock((pthread_mutex_t *)&ex->mu);
	return n;
}

int executor_zygote_pid(const struct executor *ex)
{
	return ex ? (int)ex->zygote : 0;
}

void executor_result_clear(struct executor_result *r)
{
	if (!r)
		return;
	free(r->error);
	free(r->output_json);
	r->error = NULL;
	r->output_json = NULL;
}

void executor_free(struct executor *ex, int64_t deadline_us)
{
	struct timespec ts;

	if (!ex)
		return;
	pthread_mutex_lock(&ex->mu);
	while (ex->running > 0 && util_mono_us() < deadline_us) {
		int64_t us = deadline_us - util_mono_us();

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += us / 1000000;
		ts.tv_nsec += (us % 1000000) * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&ex->changed, &ex->mu, &ts);
	}
	if (ex->running > 0) {
		for (struct run *r = ex->runs; r; r = r->next) {
			struct json_object *m = json_object_new_object();

			json_object_object_add(m, "op", json_object_new_string("kill"));
			json_object_object_add(m, "id", json_object_new_int64((int64_t)r->id));
			ctl_send(ex, m, NULL, 0);
			json_object_put(m);
		}
		/* killed executions end at once; in-process ones cannot be
		 * killed and are waited for (documented) */
		while (ex->running > 0)
			pthread_cond_wait(&ex->changed, &ex->mu);
	}
	pthread_mutex_unlock(&ex->mu);
	stop_zygote(ex);
	pthread_cond_destroy(&ex->changed);
	pthread_mutex_destroy(&ex->send_mu);
	pthread_mutex_destroy(&ex->mu);
	free(ex->iso_ok);
	free(ex->inproc_ok);
	free(ex->kind);
	free(ex);
}

/* ---- executor_run ---- */

static void set_error(struct executor_result *res, const char *fmt, ...) EVS_PRINTF(2, 3);
static void set_error(struct executor_result *res, const char *fmt, ...)
{
	va_list ap;

	free(res->error);
	res->error = NULL;
	va_start(ap, fmt);
	if (vasprintf(&res->error, fmt, ap) < 0)
		res->error = NULL;
	va_end(ap);
}

/* The status of a finished entry point call. */
static void result_from_rc(struct executor_result *res, struct hostapi_exec *host,
			   const char *script, int rc, const char *output)
{
	if (rc != 0) {
		res->status = STORE_EXEC_FAILED;
		if (hostapi_error(host))
			set_error(res, "%s", hostapi_error(host));
		else
			set_error(res, "%s returned %d", script, rc);
		return;
	}
	if (output) {
		struct json_object *o = json_tokener_parse(output);

		if (!o && strcmp(output, "null") != 0) {
			res->status = STORE_EXEC_FAILED;
			set_error(res, "%s returned an output that is not JSON", script);
			return;
		}
		json_object_put(o);
	}
	res->status = STORE_EXEC_SUCCEEDED;
	res->output_json = strdup(output ? output : "null");
}

static void reply_call(int d, struct json_object *m, struct hostapi_exec *host)
{
	const char *fn = jstr(m, "fn");
	struct json_object *reply, *val = NULL;
	char *s = NULL;
	bool secret = false;
	int rc;

	if (!fn) {
		rc = EVS_EINVAL;
	} else if (strcmp(fn, "get_connection") == 0) {
		rc = hostapi_get_connection(host, &s);
		secret = true;
	} else if (strcmp(fn, "get_metadata") == 0) {
		rc = hostapi_get_metadata(host, &s);
	} else if (strcmp(fn, "set_metadata") == 0) {
		rc = hostapi_set_metadata(host, jstr(m, "j"));
	} else if (strcmp(fn, "update_metadata") == 0) {
		rc = hostapi_update_metadata(host, jstr(m, "j"));
	} else if (strcmp(fn, "get_env") == 0) {
		rc = jstr(m, "name") ? hostapi_get_env(host, jstr(m, "name"), &s) : EVS_EINVAL;
	} else if (strcmp(fn, "get_webhook_url") == 0) {
		rc = hostapi_get_webhook_url(host, &s);
	} else if (strcmp(fn, "trigger_action") == 0) {
		rc = jstr(m, "name") ? hostapi_trigger_action(host, jstr(m, "name"), jstr(m, "input"), &s)
				     : EVS_EINVAL;
	} else if (strcmp(fn, "proxy_target") == 0) {
#ifdef EVS_HAVE_PROXY
		struct proxy_target *t = NULL;

		rc = hostapi_proxy_target(host, &t);
		if (rc == EVS_OK) {
			val = proxy_target_to_json(t);
			if (!val)
				rc = EVS_ENOMEM;
		}
		proxy_target_free(t);
		secret = true;
#else
		rc = EVS_EUNSUPPORTED;
#endif
	} else {
		rc = EVS_EUNSUPPORTED;
	}
	reply = json_object_new_object();
	if (reply) {
		json_object_object_add(reply, "rc", json_object_new_int(rc));
		if (val)
			json_object_object_add(reply, "v", val);
		else if (s)
			json_object_object_add(reply, "v", json_object_new_string(s));
		send_json(d, reply, NULL, 0);
		if (secret)
			wipe_json(reply);
		json_object_put(reply);
	} else {
		json_object_put(val);
	}
	if (s) {
		if (secret)
			explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* Handles one message from the executor. Returns true when it was the result. */
static bool handle_exec_msg(int d, struct json_object *m, struct hostapi_exec *host, int *rc,
			    char **output)
{
	if (op_is(m, "log")) {
		const char *s = jstr(m, "m");

		hostapi_log(host, (int)jint(m, "l"), s ? s : "");
	} else if (op_is(m, "set_error")) {
		const char *s = jstr(m, "m");

		if (s)
			hostapi_set_error(host, s);
	} else if (op_is(m, "call")) {
		reply_call(d, m, host);
	} else if (op_is(m, "result")) {
		const char *o = jstr(m, "output");

		*rc = (int)jint(m, "rc");
		free(*output);
		*output = o ? strdup(o) : NULL;
		return true;
	}
	return false;
}

static struct json_object *job_message(const struct executor_job *job, int64_t deadline_us)
{
	struct json_object *m = json_object_new_object(), *ev;

	if (!m)
		return NULL;
	json_object_object_add(m, "op", json_object_new_string("job"));
	json_object_object_add(m, "plugin", json_object_new_int64((int64_t)job->plugin));
	json_object_object_add(m, "deadline_us", json_object_new_int64(deadline_us));
	if (job->event) {
		const struct evs_event *e = job->event;

		ev = json_object_new_object();
		json_object_object_add(ev, "type", json_object_new_int64(e->type));
		if (e->name)
			json_object_object_add(ev, "name", json_object_new_string(e->name));
		if (e->connection_id)
			json_object_object_add(ev, "connection_id", json_object_new_string(e->connection_id));
		if (e->provider_config_key)
			json_object_object_add(ev, "provider_config_key",
					       json_object_new_string(e->provider_config_key));
		json_object_object_add(ev, "event_id", json_object_new_int64(e->event_id));
		json_object_object_add(ev, "execution_id", json_object_new_int64(e->execution_id));
		json_object_object_add(m, "event", ev);
	} else {
		json_object_object_add(m, "input",
				       json_object_new_string(job->input_json ? job->input_json : "null"));
	}
	return m;
}

static int run_in_process(struct executor *ex, const struct executor_job *job,
			  struct hostapi_exec *host, struct executor_result *res)
{
	struct loader_plugin *p = ex->plugins[job->plugin];
	struct hostapi_inproc_ctx c = {.exec = host};
	char *output = NULL;
	int rc;

	if (p->kind == LOADER_EVENT_SCRIPT)
		rc = p->on_event(hostapi_inproc_vtable(), (struct evs_ctx *)&c, job->event);
	else
		rc = p->run_action(hostapi_inproc_vtable(), (struct evs_ctx *)&c,
				   job->input_json ? job->input_json : "null", &output);
	hostapi_inproc_ctx_clear(&c);
	result_from_rc(res, host, p->name, rc, output);
	free(output);
	return 0;
}

static void run_done(struct executor *ex)
{
	pthread_mutex_lock(&ex->mu);
	ex->running--;
	pthread_cond_broadcast(&ex->changed);
	pthread_mutex_unlock(&ex->mu);
}

static int run_isolated(struct executor *ex, const struct executor_job *job,
			struct hostapi_exec *host, struct executor_result *res)
{
	struct loader_plugin *p = ex->plugins[job->plugin];
	struct run r = {.efd = -1};
	struct json_object *m = NULL;
	int sv[2] = {-1, -1}, d = -1, rc = 0, ret;
	char *output = NULL;
	bool have_result = false, sock_open = true, registered = false, kill_sent = false;
	int64_t start = util_mono_us(), deadline = job->deadline_us, secs;

	if (deadline <= 0)
		deadline = start + 300 * 1000000LL;
	secs = (deadline - start + 500000) / 1000000;
	r.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r.efd < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		set_error(res, "executor: %s", strerror(errno));
		ret = -errno;
		goto out;
	}
	d = sv[0];
	m = job_message(job, deadline);
	ret = send_json(d, m, NULL, 0);
	json_object_put(m);
	if (ret < 0) {
		set_error(res, "executor: cannot send the job: %s", strerror(-ret));
		goto out;
	}

	pthread_mutex_lock(&ex->mu);
	if (ex->zygote_gone) {
		pthread_mutex_unlock(&ex->mu);
		set_error(res, "executor: the zygote of generation %lld is gone",
			  (long long)ex->opts.generation);
		ret = -EPIPE;
		goto out;
	}
	if (ex->drained) {
		pthread_mutex_unlock(&ex->mu);
		res->status = STORE_EXEC_TIMED_OUT;
		set_error(res, "killed: generation drained");
		ret = 0;
		goto out;
	}
	r.id = ++ex->next_id;
	r.next = ex->runs;
	ex->runs = &r;
	registered = true;
	pthread_mutex_unlock(&ex->mu);

	m = json_object_new_object();
	json_object_object_add(m, "op", json_object_new_string("run"));
	json_object_object_add(m, "id", json_object_new_int64((int64_t)r.id));
	json_object_object_add(m, "deadline_us", json_object_new_int64(deadline));
	ret = ctl_send(ex, m, &sv[1], 1);
	json_object_put(m);
	close(sv[1]);
	sv[1] = -1;
	pthread_mutex_lock(&ex->mu);
	if (ret < 0 && !r.exited) {
		r.exited = true;
		r.reason = REASON_LOST;
	} else if (ret == 0 && ex->drained && !r.exited) {
		/* executor_kill_all ran between registering and sending */
		send_kill(ex, r.id);
	}
	pthread_mutex_unlock(&ex->mu);

	for (;;) {
		struct pollfd pfd[2] = {{.fd = r.efd, .events = POLLIN}, {.fd = d, .events = POLLIN}};
		int64_t now = util_mono_us(), limit = deadline + GRACE_US;
		bool exited;
		int pr;

		pthread_mutex_lock(&ex->mu);
		exited = r.exited;
		pthread_mutex_unlock(&ex->mu);
		if (exited) {
			/* the executor is gone: read what it wrote before exiting */
			while (sock_open) {
				struct pollfd q = {.fd = d, .events = POLLIN};

				if (poll(&q, 1, 0) <= 0)
					break;
				if (recv_json(d, &m, NULL, NULL) < 0) {
					sock_open = false;
					break;
				}
				if (handle_exec_msg(d, m, host, &rc, &output))
					have_result = true;
				json_object_put(m);
			}
			break;
		}
		if (now > limit) {
			if (!kill_sent) {
				m = json_object_new_object();
				json_object_object_add(m, "op", json_object_new_string("kill"));
				json_object_object_add(m, "id", json_object_new_int64((int64_t)r.id));
				ctl_send(ex, m, NULL, 0);
				json_object_put(m);
				kill_sent = true;
				deadline = now; /* one more grace period */
				continue;
			}
			pthread_mutex_lock(&ex->mu);
			if (!r.exited) {
				r.exited = true;
				r.reason = REASON_LOST;
			}
			pthread_mutex_unlock(&ex->mu);
			continue;
		}
		pr = poll(pfd, sock_open ? 2 : 1, (int)((limit - now) / 1000) + 1);
		if (pr < 0 && errno != EINTR)
			break;
		if (pr > 0 && sock_open && pfd[1].revents) {
			if (recv_json(d, &m, NULL, NULL) < 0) {
				sock_open = false;
			} else {
				if (handle_exec_msg(d, m, host, &rc, &output))
					have_result = true;
				json_object_put(m);
			}
		}
	}

	/* the verdict */
	if (have_result && r.reason != REASON_KILLED && r.reason != REASON_LOST) {
		result_from_rc(res, host, p->name, rc, output);
	} else if (r.reason == REASON_DEADLINE) {
		res->status = STORE_EXEC_TIMED_OUT;
		set_error(res, "timed out after %lld s", (long long)secs);
	} else if (r.reason == REASON_KILLED) {
		res->status = STORE_EXEC_TIMED_OUT;
		set_error(res, "killed: generation drained");
	} else if (r.reason == REASON_NOSTART) {
		res->status = STORE_EXEC_CRASHED;
		set_error(res, "crashed: the executor could not be started");
	} else if (r.reason == REASON_LOST) {
		res->status = STORE_EXEC_CRASHED;
		set_error(res, "crashed: the executor was lost (zygote gone)");
	} else if (WIFSIGNALED(r.status)) {
		int sig = WTERMSIG(r.status);
		const char *abbrev = sigabbrev_np(sig);

		res->status = STORE_EXEC_CRASHED;
		set_error(res, "crashed: SIG%s (%s)", abbrev ? abbrev : "?", strsignal(sig));
	} else {
		res->status = STORE_EXEC_CRASHED;
		set_error(res, "exited with status %d before returning", WEXITSTATUS(r.status));
	}
	ret = 0;
out:
	if (registered) {
		pthread_mutex_lock(&ex->mu);
		for (struct run **pp = &ex->runs; *pp; pp = &(*pp)->next) {
			if (*pp == &r) {
				*pp = r.next;
				break;
			}
		}
		pthread_mutex_unlock(&ex->mu);
	}
	free(output);
	if (d >= 0)
		close(d);
	if (sv[1] >= 0)
		close(sv[1]);
	if (r.efd >= 0)
		close(r.efd);
	return ret;
}

int executor_run(struct executor *ex, const struct executor_job *job, struct hostapi_exec *host,
		 struct executor_result *res)
{
	int ret;

	memset(res, 0, sizeof(*res));
	res->status = STORE_EXEC_CRASHED;
	if (!ex || !job || !host) {
		set_error(res, "executor: invalid arguments");
		return -EINVAL;
	}
	if (job->plugin >= ex->n) {
		set_error(res, "script not loaded");
		return -ENOENT;
	}
	if (ex->kind[job->plugin] == LOADER_EVENT_SCRIPT && !job->event) {
		set_error(res, "executor: %s is an event script and the job has no event",
			  ex->plugins[job->plugin]->name);
		return -EINVAL;
	}
	if (job->in_process ? !ex->inproc_ok[job->plugin] : !ex->iso_ok[job->plugin]) {
		set_error(res, "script not loaded: %s could not be opened%s",
			  ex->plugins[job->plugin]->name, job->in_process ? " in process" : "");
		return -ENOENT;
	}
	pthread_mutex_lock(&ex->mu);
	ex->running++;
	pthread_mutex_unlock(&ex->mu);
	if (job->in_process)
		ret = run_in_process(ex, job, host, res);
	else
		ret = run_isolated(ex, job, host, res);
	run_done(ex);
	return ret;
}
