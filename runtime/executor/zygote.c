/*
 * zygote.c - the zygote and the single-use executor processes (the
 * evscript-zygote binary: zygote_main.c).
 *
 * This comment is the one description of how an isolated execution runs;
 * executor.h is the daemon's contract, executor.c the daemon's side
 * (zygote_spawn.c starts the binary), wire.h the messages, sandbox.h what
 * each layer of the sandbox does.
 *
 *   daemon (threads) --ctl socket--> zygote (single-threaded, fd 3)
 *        |                              |  fork (ahead of time)
 *        +------- exec socket ------> executor (one per execution)
 *
 * The zygote. The daemon is multi-threaded, so it never forks executors
 * itself: for each generation executor_new() posix_spawn()s a zygote, so
 * that nothing of the daemon is inherited but the zygote's end of the ctl
 * socket and a few environment variables (the daemon's hold secrets:
 * zygote_env_names). The zygote links only libc, libdl, json-c,
 * loader_open.c and paginate.c: no libcurl, SQLite, libmicrohttpd, libyaml
 * or libsodium, so that forking an executor and its exit stay cheap. Its
 * start-up is a conversation on the ctl socket: "config" (limits and
 * sandbox settings; it answers with what the sandbox can apply here), one
 * "load" per verified plugin with its sealed memfd (loader_open():
 * constructors run here, never in the daemon), and "ready".
 *
 * An execution. The zygote keeps `prefork` executors forked ahead, each
 * with its exec socket: the executor keeps one end and waits on it for its
 * job; the other end goes to the daemon at once ("idle" and the
 * descriptor; the zygote keeps no copy), where the reader thread pools it.
 * executor_run() takes an idle executor and writes the job straight to
 * it, so starting an execution never waits for the zygote (a refill fork,
 * a reap). It tells the zygote ("run": the run's id and deadline) only
 * when the run lasts: at its first host call, or 20 ms in (executor.c:
 * tell_zygote). Most runs have ended by then, and the zygote, which counts
 * the executor idle until it exits and refills the pool when it does, is
 * not woken for them; a drain's "kill" finds such an executor by pid.
 * With no idle executor left (a burst beyond the pool, or prefork
 * = 0) the daemon makes the exec socket itself and sends it with "spawn":
 * the zygote forks an executor on it at once. The executor takes its own
 * process group and its limits (address space: the zygote's at "ready"
 * plus memory_limit_mb; CPU time), enters its sandbox (below), reads the
 * job and calls the entry point with a vtable whose functions are calls
 * over the exec socket, served by the daemon thread that waits in
 * executor_run(). proxy() is such a call: the daemon makes the HTTP
 * request (proxy.c: one proxy session per execution, so connections are
 * reused within it, capped by its deadline and abandoned once the executor
 * is gone). paginate()'s loop runs in the executor over that proxy, since
 * its page callback is plugin code, with the provider's paging settings
 * (no secrets) fetched from the daemon. The executor writes its result and
 * _exit()s; executor_run() returns as soon as the result has arrived.
 *
 * The end of an executor. The zygote reaps each executor in the
 * background, kills what it left in its process group (it is a child
 * subreaper, so what executors leave behind is reaped too), enforces
 * deadlines (SIGKILL to the executor's process group), and reports how
 * each one ended ("exit": enum wire_reason). The report carries the run's
 * id once its "run" has arrived, else the pid alone (an executor that
 * ended while idle or before its "run"), and the daemon matches it by pid.
 * It reaches the waiting executor_run() through the reader thread and an
 * eventfd, and decides the verdict only when no result came (executor.h).
 * Should the zygote stop answering, the daemon itself asks for a kill a
 * grace period past the deadline, and gives the run up as lost one grace
 * period later.
 *
 * The sandbox. Before it opens any plugin the zygote makes itself
 * non-dumpable and, when not root, enters a user namespace of its own
 * (sandbox_zygote_init). At "config" it probes which layers work on this
 * machine (sandbox_probe): a missing one is skipped, and the description
 * it answers with is logged by the daemon and shown by GET /healthz. At
 * "ready", with the plugins open, it installs the seccomp allow-list once
 * (sandbox_zygote_lock), which every executor inherits. Each executor is
 * forked into a PID namespace of its own (sandbox_fork) and enters the
 * other layers before it reads its job (sandbox_enter); a layer that the
 * probe found working and that fails for one executor ends it before it
 * runs anything (fail closed), reported as REASON_SANDBOX through a word
 * of memory it shares with the zygote (its slot), which also carries a
 * fatal signal it caught as pid 1 of its namespace.
 *
 * Supervision. The daemon's reader thread (executor.c: reader_main) reads
 * the zygote's messages. When the ctl socket closes and the daemon did not
 * ask for it, the zygote died (its executors die with it: PDEATHSIG): what
 * it ran is lost (recorded crashed), new executions wait for a new zygote
 * up to their deadlines (executor_degraded, GET /healthz), and
 * restart_zygote() starts one for the same plugins from the same verified
 * memfds, again after a growing pause while that fails; each restart is
 * counted (/metrics).
 *
 * Stop. A drain (executor_kill_all) kills the running executors, one
 * "kill" each. The ctl socket's EOF is the daemon's "stop" (executor_free,
 * once its executions have ended): the zygote kills its idle executors,
 * waits for the running ones (their deadlines still hold) and exits.
 */
#include "zygote.h"

#include "crash.h"
#include "hostapi_vtable.h"
#include "loader.h"
#include "paginate.h"
#include "sandbox.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

#define ZRUN_MAX 4096
#define PREFORK_MAX 64
#define HOST_LINE_MAX 4096 /* a log line or an error message (hostapi.h's caps) */
#define REFILL_RETRY_US 100000 /* after a failed fork of an idle executor */
#define SLOT_MAX (ZRUN_MAX + PREFORK_MAX) /* executors alive at once */
#define SLOT_SANDBOX_FAILED (-1)

/* ---------------------------------------------------------------------------
 * The executor process: the RPC vtable and the run.
 */
struct xstate {
	int sock;
	int64_t deadline_us;
	bool have_paginate;                /* paginate settings fetched */
	struct config_paginate paginate;   /* the provider's (no secrets) */
};

static struct xstate X; /* the executor process is single-threaded */
static int in_executor;

int executor_zygote_in_executor(void)
{
	return in_executor;
}

/* One call to the daemon; *reply owned by the caller. */
static int x_call(struct json_object *req, struct json_object **reply)
{
	int r;

	*reply = NULL;
	json_object_object_add(req, "op", json_object_new_string("call"));
	r = wire_send_json(X.sock, req, NULL, 0);
	json_object_put(req);
	if (r < 0)
		return EVS_EHOST;
	r = wire_recv_json(X.sock, reply, NULL, NULL);
	if (r < 0)
		return EVS_EHOST;
	return (int)wire_jint(*reply, "rc");
}

/* Sends req (taken) and gives its answer's string "v" to *out (lent to the
 * plugin as below); EVS_EHOST when the answer has none. */
static int x_call_take_string(struct json_object *req, const char **out)
{
	struct json_object *reply = NULL;
	const char *v;
	int rc = x_call(req, &reply);

	if (rc == EVS_OK) {
		v = wire_jstr(reply, "v");
		*out = v ? strdup(v) : NULL;
		if (!*out)
			rc = EVS_EHOST;
	}
	json_object_put(reply);
	return rc;
}

/* Calls fn with up to two string members (k NULL: none; v NULL: JSON
 * null). With out, the answer's string is lent to the plugin (it lives
 * until the process exits, right after the entry point returns); without,
 * only the answer's rc counts. */
static int x_call_with(const char *fn, const char *k1, const char *v1, const char *k2, const char *v2,
		       const char **out)
{
	struct json_object *req = json_object_new_object(), *reply = NULL;
	int rc;

	if (!req)
		return EVS_ENOMEM;
	json_object_object_add(req, "fn", json_object_new_string(fn));
	if (k1)
		json_object_object_add(req, k1, v1 ? json_object_new_string(v1) : NULL);
	if (k2)
		json_object_object_add(req, k2, v2 ? json_object_new_string(v2) : NULL);
	if (out)
		return x_call_take_string(req, out);
	rc = x_call(req, &reply);
	json_object_put(reply);
	return rc;
}

/* x_call_with for a string answer, which the plugin must ask for. */
static int x_call_string(const char *fn, const char *k1, const char *v1, const char *k2,
			 const char *v2, const char **out)
{
	if (!out)
		return EVS_EINVAL;
	*out = NULL;
	return x_call_with(fn, k1, v1, k2, v2, out);
}

/* A message without a reply: a log line ("log", level l) or the error
 * message ("set_error", level < 0). */
static void x_send_text(const char *op, int level, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
static void x_send_text(const char *op, int level, const char *fmt, va_list ap)
{
	char text[HOST_LINE_MAX];
	struct json_object *m;

	vsnprintf(text, sizeof(text), fmt, ap);
	m = wire_msg(op);
	if (level >= 0)
		wire_msg_int(m, "l", level);
	wire_msg_str(m, "m", text);
	wire_send_json(X.sock, m, NULL, 0);
	json_object_put(m);
}

static void x_log(struct evs_ctx *ctx, enum evs_log_level level, const char *fmt, ...)
{
	va_list ap;

	(void)ctx;
	if (!fmt)
		return;
	va_start(ap, fmt);
	x_send_text("log", (int)level, fmt, ap);
	va_end(ap);
}

static void x_set_error(struct evs_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	(void)ctx;
	if (!fmt)
		return;
	va_start(ap, fmt);
	x_send_text("set_error", -1, fmt, ap);
	va_end(ap);
}

/* The host functions that take nothing and answer one string (lent as
 * x_call_string says): each asks the daemon for the function of its name. */
#define X_GETTER(name)                                                   \
	static int x_##name(struct evs_ctx *ctx, const char **out)      \
	{                                                                \
		(void)ctx;                                               \
		return x_call_string(#name, NULL, NULL, NULL, NULL, out); \
	}

X_GETTER(get_connection)
X_GETTER(get_metadata)
X_GETTER(get_webhook_url)
X_GETTER(get_token)
X_GETTER(get_integration)
X_GETTER(get_env_all)

static int x_call_in(const char *fn, const char *json)
{
	return json ? x_call_with(fn, "j", json, NULL, NULL, NULL) : EVS_EINVAL;
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

static int x_trigger_action(struct evs_ctx *ctx, const char *name, const char *input_json,
			    const char **output_json)
{
	(void)ctx;
	if (!name)
		return EVS_EINVAL;
	return x_call_string("trigger_action", "name", name, "input",
			     input_json ? input_json : "null", output_json);
}

static int x_set_action_error(struct evs_ctx *ctx, const char *message, const char *payload_json)
{
	(void)ctx;
	if (!message)
		return EVS_EINVAL;
	return x_call_with("set_action_error", "m", message, "payload", payload_json ? payload_json : "null", NULL);
}

static int x_trigger_action_for(struct evs_ctx *ctx, const char *connection_id, const char *name,
				const char *input_json, const char **output_json)
{
	struct json_object *req;

	(void)ctx;
	if (!output_json)
		return EVS_EINVAL;
	*output_json = NULL;
	if (!name || !connection_id)
		return EVS_EINVAL;
	req = json_object_new_object();
	if (!req)
		return EVS_ENOMEM;
	json_object_object_add(req, "fn", json_object_new_string("trigger_action_for"));
	json_object_object_add(req, "cid", json_object_new_string(connection_id));
	json_object_object_add(req, "name", json_object_new_string(name));
	json_object_object_add(req, "input", json_object_new_string(input_json ? input_json : "null"));
	return x_call_take_string(req, output_json);
}

/* Adds [[name, value], ...] of n pairs as key k. */
static int add_pairs(struct json_object *req, const char *k, const struct evs_header *h, size_t n)
{
	struct json_object *a;

	if (n && !h)
		return EVS_EINVAL;
	if (n > WIRE_PAIRS_MAX)
		return EVS_EINVAL;
	a = json_object_new_array();
	if (!a)
		return EVS_ENOMEM;
	json_object_object_add(req, k, a);
	for (size_t i = 0; i < n; i++) {
		struct json_object *pair = json_object_new_array();

		if (!pair || !h[i].name || !h[i].value) {
			json_object_put(pair);
			return pair ? EVS_EINVAL : EVS_ENOMEM;
		}
		json_object_array_add(a, pair);
		json_object_array_add(pair, json_object_new_string(h[i].name));
		json_object_array_add(pair, json_object_new_string(h[i].value));
	}
	return EVS_OK;
}

static void x_free_response(struct evs_ctx *ctx, struct evs_response *resp)
{
	(void)ctx;
	if (!resp)
		return;
	for (size_t i = 0; i < resp->n_headers; i++) {
		free((char *)resp->headers[i].name);
		free((char *)resp->headers[i].value);
	}
	free((void *)resp->headers);
	free((char *)resp->body);
	free(resp);
}

/* The response of a proxy call: reply's status and headers, and the body
 * that follows it as a raw message. */
static int read_response(struct json_object *reply, struct evs_response **out)
{
	struct evs_response *r = calloc(1, sizeof(*r));
	struct json_object *a = NULL;
	struct evs_header *h = NULL;
	char *body = NULL;
	size_t n = 0, len = 0;

	*out = NULL;
	if (!r)
		return EVS_ENOMEM;
	r->size = sizeof(*r);
	r->status = (int)wire_jint(reply, "status");
	if (json_object_object_get_ex(reply, "headers", &a) && json_object_is_type(a, json_type_array))
		n = json_object_array_length(a);
	if (n > WIRE_PAIRS_MAX)
		n = WIRE_PAIRS_MAX;
	h = calloc(n ? n : 1, sizeof(*h));
	r->headers = h;
	if (!h)
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		struct json_object *p = json_object_array_get_idx(a, i);
		const char *k = json_object_get_string(json_object_array_get_idx(p, 0));
		const char *v = json_object_get_string(json_object_array_get_idx(p, 1));

		h[i].name = strdup(k ? k : "");
		h[i].value = strdup(v ? v : "");
		r->n_headers = i + 1;
		if (!h[i].name || !h[i].value)
			goto nomem;
	}
	if (wire_recv_msg(X.sock, &body, &len, NULL, NULL) < 0) {
		x_free_response(NULL, r);
		return EVS_EHOST;
	}
	r->body = body;
	r->body_len = len;
	*out = r;
	return EVS_OK;
nomem:
	x_free_response(NULL, r);
	return EVS_ENOMEM;
}

/* host->proxy(): the daemon makes the request (it holds the credentials and
 * the connection cache); the request and the response travel over the exec
 * socket. */
static int x_proxy(struct evs_ctx *ctx, const struct evs_request *in, struct evs_response **resp)
{
	struct evs_request req = {0};
	struct json_object *m, *reply = NULL;
	int rc, r;

	(void)ctx;
	if (!resp)
		return EVS_EINVAL;
	*resp = NULL;
	if (!in || in->size < offsetof(struct evs_request, params))
		return EVS_EINVAL;
	memcpy(&req, in, in->size < sizeof(req) ? in->size : sizeof(req));
	if (!req.endpoint || (req.body_len && !req.body) || req.body_len > WIRE_MSG_MAX)
		return EVS_EINVAL;
	m = wire_msg("call");
	if (!m)
		return EVS_ENOMEM;
	wire_msg_str(m, "fn", "proxy");
	wire_msg_str(m, "method", req.method);
	wire_msg_str(m, "endpoint", req.endpoint);
	rc = add_pairs(m, "params", req.params, req.n_params);
	if (rc == EVS_OK)
		rc = add_pairs(m, "headers", req.headers, req.n_headers);
	if (rc != EVS_OK) {
		json_object_put(m);
		return rc;
	}
	wire_msg_int(m, "retries", req.retries);
	wire_msg_int(m, "timeout_ms", req.timeout_ms);
	/* ABI 1.1 fields: zero when the plugin's struct ends before them (memcpy above) */
	if (req.base_url_override)
		wire_msg_str(m, "base_url_override", req.base_url_override);
	if (req.n_retry_on) {
		struct json_object *a = json_object_new_array();

		if (!req.retry_on || req.n_retry_on > WIRE_RETRY_ON_MAX || !a) {
			json_object_put(a);
			json_object_put(m);
			return a ? EVS_EINVAL : EVS_ENOMEM;
		}
		for (size_t i = 0; i < req.n_retry_on; i++)
			json_object_array_add(a, json_object_new_int(req.retry_on[i]));
		json_object_object_add(m, "retry_on", a);
	}
	wire_msg_int(m, "body_len", (int64_t)req.body_len);
	r = wire_send_json(X.sock, m, NULL, 0);
	json_object_put(m);
	if (r == 0 && req.body_len)
		r = wire_send_msg(X.sock, req.body, req.body_len, NULL, 0);
	if (r < 0 || wire_recv_json(X.sock, &reply, NULL, NULL) < 0) {
		json_object_put(reply);
		return EVS_EHOST;
	}
	rc = (int)wire_jint(reply, "rc");
	if (rc == EVS_OK)
		rc = read_response(reply, resp);
	json_object_put(reply);
	return rc;
}

static int pg_request(void *user, const struct evs_request *req, struct evs_response **resp)
{
	(void)user;
	return x_proxy(NULL, req, resp);
}

static void pg_free_response(void *user, struct evs_response *resp)
{
	(void)user;
	x_free_response(NULL, resp);
}

static void pg_log(void *user, int level, const char *fmt, va_list ap)
{
	(void)user;
	x_send_text("log", level, fmt, ap);
}

/* host->paginate(): the paging runs here (on_page is plugin code), each
 * page is one x_proxy(); the provider's settings come from the daemon once. */
static int x_paginate(struct evs_ctx *ctx, const struct evs_request *req,
		      const struct evs_paginate_options *opts, evs_page_fn on_page, void *user)
{
	struct paginate_transport t = {.request = pg_request, .free_response = pg_free_response,
				       .log = pg_log};
	struct json_object *m, *reply = NULL, *v;
	int rc;

	(void)ctx;
	if (!req || !on_page)
		return EVS_EINVAL;
	if (!X.have_paginate) {
		m = json_object_new_object();
		if (!m)
			return EVS_ENOMEM;
		json_object_object_add(m, "fn", json_object_new_string("paginate_settings"));
		rc = x_call(m, &reply);
		if (rc == EVS_OK) {
			if (!json_object_object_get_ex(reply, "v", &v) ||
			    paginate_settings_from_json(v, &X.paginate) != EVS_OK) {
				config_paginate_clear(&X.paginate);
				rc = EVS_EHOST;
			}
		}
		json_object_put(reply);
		if (rc != EVS_OK)
			return rc;
		X.have_paginate = true;
	}
	return paginate_run(&X.paginate, &t, req, opts, on_page, user);
}

static const struct evs_host rpc_vtable = HOSTAPI_VTABLE(x_);

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
	if (wire_recv_json(sock, &job, NULL, NULL) < 0 || !wire_op_is(job, "job"))
		_exit(2);
	i = wire_jint(job, "plugin");
	X.deadline_us = wire_jint(job, "deadline_us");
	if (i < 0 || (size_t)i >= n || !plugins[i] || !plugins[i]->handle)
		_exit(2);
	p = plugins[i];
	if (p->kind == LOADER_EVENT_SCRIPT) {
		if (!json_object_object_get_ex(job, "event", &ev))
			_exit(2);
		memset(&event, 0, sizeof(event));
		event.size = sizeof(event);
		event.type = (uint32_t)wire_jint(ev, "type");
		event.name = wire_jstr(ev, "name");
		event.connection_id = wire_jstr(ev, "connection_id");
		event.provider_config_key = wire_jstr(ev, "provider_config_key");
		event.event_id = wire_jint(ev, "event_id");
		event.execution_id = wire_jint(ev, "execution_id");
		rc = p->on_event(&rpc_vtable, (struct evs_ctx *)&X, &event);
	} else {
		const char *input = wire_jstr(job, "input");

		rc = p->run_action(&rpc_vtable, (struct evs_ctx *)&X, input ? input : "null",
				   &output);
	}
	res = wire_msg("result");
	if (!res)
		_exit(2);
	wire_msg_int(res, "rc", rc);
	wire_msg_str(res, "output", output);
	wire_send_json(sock, res, NULL, 0);
	_exit(0);
}

/* ---------------------------------------------------------------------------
 * The zygote: the pool, the runs, the reaper and the daemon's messages (the
 * design: the top of this file).
 */
struct zrun {
	uint64_t id;
	pid_t pid;
	int slot;
	int64_t deadline_us;
	int reason;
};

/* An executor forked ahead, waiting for its job. */
struct zidle {
	pid_t pid;
	int slot;
};

struct zygote {
	pid_t self;
	int ctl, sfd;
	int devnull;             /* opened when ready, for the executors' stdio */
	struct loader_plugin **plugins;
	size_t n_plugins;
	uint32_t prefork;
	uint64_t memory_limit_mb;
	uint32_t cpu_limit_s;
	long base_kb;            /* the zygote's VmSize when it became ready */
	bool ready, closing;
	struct sandbox_config sb;
	unsigned layers;         /* what sandbox_probe found working */
	int landlock_abi;
	/* One word per live executor, shared with it: a signal it caught as
	 * pid 1 of its PID namespace (sandbox_catch_fatal) or
	 * SLOT_SANDBOX_FAILED. */
	volatile int *slots;
	struct crash_report *crash; /* one per slot, shared too: what a crash left (crash.h) */
	bool slot_used[SLOT_MAX];
	size_t slot_next;
	struct zidle idle[PREFORK_MAX]; /* forked, handed to the daemon, no "run" yet */
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

/* A free slot for a new executor, or -1 when all are taken. */
static int slot_take(struct zygote *z)
{
	for (size_t k = 0; k < SLOT_MAX; k++) {
		size_t i = (z->slot_next + k) % SLOT_MAX;

		if (!z->slot_used[i]) {
			z->slot_used[i] = true;
			z->slots[i] = 0;
			memset((void *)&z->crash[i], 0, sizeof(z->crash[i]));
			z->slot_next = (i + 1) % SLOT_MAX;
			return (int)i;
		}
	}
	return -1;
}

/* Frees slot i (-1: none) and returns what its executor left in it. */
static int slot_release(struct zygote *z, int i)
{
	if (i < 0 || i >= SLOT_MAX)
		return 0;
	z->slot_used[i] = false;
	return z->slots[i];
}

/* In the new child: drop what belongs to the zygote, set the limits, enter
 * the sandbox, run the job that arrives on sock. Never returns. */
static void child_main(struct zygote *z, int sock, int slot)
{
	const char *what;
	sigset_t none;

	in_executor = 1;
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
	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* (in a PID namespace the parent is outside it: getppid() is 0) */
	if (!(z->layers & SANDBOX_PIDNS) && getppid() != z->self)
		_exit(0);
	if (z->layers & SANDBOX_PIDNS)
		sandbox_catch_fatal(&z->slots[slot]);
	crash_arm(&z->crash[slot]); /* records, then hands on to the above */
	if (z->devnull >= 0) {
		dup2(z->devnull, 0);
		dup2(z->devnull, 1);
		if (!getenv("EVSCRIPT_EXECUTOR_STDERR"))
			dup2(z->devnull, 2);
		close(z->devnull);
	}
	if (z->memory_limit_mb && z->base_kb > 0) {
		struct rlimit rl;

		rl.rlim_cur = rl.rlim_max =
			(rlim_t)z->base_kb * 1024 + (rlim_t)z->memory_limit_mb * 1048576;
		setrlimit(RLIMIT_AS, &rl);
	}
	if (z->cpu_limit_s) {
		struct rlimit rl = {z->cpu_limit_s, z->cpu_limit_s + 1};

		setrlimit(RLIMIT_CPU, &rl);
	}
	if (sandbox_enter(&z->sb, z->layers, z->landlock_abi, &what) < 0) {
		z->slots[slot] = SLOT_SANDBOX_FAILED; /* fail closed */
		_exit(125);
	}
	executor_child_run(z->plugins, z->n_plugins, sock);
}

/* Forks one idle executor and hands the daemon its exec socket. */
static int fork_idle(struct zygote *z)
{
	struct json_object *m;
	int sv[2], r, slot;
	pid_t pid;

	if (z->n_idle >= PREFORK_MAX)
		return STATUS_EBUSY;
	slot = slot_take(z);
	if (slot < 0)
		return STATUS_EBUSY;
	m = wire_msg("idle");
	if (!m) {
		slot_release(z, slot);
		return STATUS_ENOMEM;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		slot_release(z, slot);
		json_object_put(m);
		return status_from_errno(errno);
	}
	pid = sandbox_fork(z->layers);
	if (pid < 0) {
		int e = errno;

		slot_release(z, slot);
		close(sv[0]);
		close(sv[1]);
		json_object_put(m);
		return status_from_errno(e);
	}
	if (pid == 0) {
		close(sv[0]);
		child_main(z, sv[1], slot);
		_exit(0);
	}
	close(sv[1]);
	setpgid(pid, pid); /* also done by the child; whoever is first wins the race */
	wire_msg_int(m, "pid", pid);
	r = wire_send_json(z->ctl, m, &sv[0], 1);
	json_object_put(m);
	close(sv[0]);
	z->idle[z->n_idle++] = (struct zidle){pid, slot}; /* reaped and released as idle */
	if (r < 0) {
		kill(pid, SIGKILL);
		return r;
	}
	return 0;
}

static void z_report(struct zygote *z, uint64_t id, pid_t pid, int status, int reason, const char *crash)
{
	struct json_object *m = wire_msg("exit");

	if (crash && *crash)
		wire_msg_str(m, "crash", crash);

	wire_msg_int(m, "id", (int64_t)id);
	wire_msg_int(m, "pid", pid);
	wire_msg_int(m, "status", status);
	wire_msg_int(m, "reason", reason);
	wire_send_json(z->ctl, m, NULL, 0);
	json_object_put(m);
}

/* Takes idle executor pid out of the idle list; its slot, or -2 when it
 * is not there. */
static int z_take_idle(struct zygote *z, pid_t pid)
{
	for (size_t i = 0; i < z->n_idle; i++) {
		if (z->idle[i].pid == pid) {
			int slot = z->idle[i].slot;

			z->idle[i] = z->idle[--z->n_idle];
			return slot;
		}
	}
	return -2;
}

/* SIGKILL to executor pid and to what it left in its process group. */
static void kill_executor(pid_t pid)
{
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
}

/* Kills executor pid if it is idle here; it stays in the idle list, so the
 * reaper reports it by pid. */
static void kill_idle(struct zygote *z, pid_t pid)
{
	for (size_t i = 0; pid > 0 && i < z->n_idle; i++) {
		if (z->idle[i].pid == pid) {
			kill_executor(pid);
			return;
		}
	}
}

/* Room for one more run. Called before an executor is committed to a run,
 * so that a failure leaves it where the reaper still reports it. */
static int reserve_run(struct zygote *z)
{
	size_t cap;
	struct zrun *r;

	if (z->n_runs < z->cap_runs)
		return 0;
	cap = z->cap_runs ? z->cap_runs * 2 : 16;
	r = cap <= ZRUN_MAX ? realloc(z->runs, cap * sizeof(*r)) : NULL;
	if (!r)
		return STATUS_ENOMEM;
	z->runs = r;
	z->cap_runs = cap;
	return 0;
}

/* "run": the daemon gave idle executor pid the job of run id. */
static void z_run(struct zygote *z, struct json_object *m, int fd)
{
	uint64_t id = (uint64_t)wire_jint(m, "id");
	pid_t pid = (pid_t)wire_jint(m, "pid");
	int slot;

	(void)fd;
	if (reserve_run(z) < 0) {
		/* cannot watch it: end it, and the daemon's run ends with the
		 * reaper's report */
		kill_idle(z, pid);
		return;
	}
	slot = z_take_idle(z, pid);
	if (slot == -2)
		return; /* it ended already (reported by pid) or is not ours */
	z->runs[z->n_runs++] = (struct zrun){.id = id, .pid = pid, .slot = slot,
					     .deadline_us = wire_jint(m, "deadline_us")};
}

/* "spawn": no idle executor was left; fork one on the exec socket fd for
 * run id (the job is waiting in it). */
static void z_spawn(struct zygote *z, struct json_object *m, int fd)
{
	uint64_t id = (uint64_t)wire_jint(m, "id");
	pid_t pid = -1;
	int slot = -1;

	if (reserve_run(z) < 0)
		goto fail;
	slot = slot_take(z);
	if (slot < 0)
		goto fail;
	pid = sandbox_fork(z->layers);
	if (pid < 0)
		goto fail;
	if (pid == 0)
		child_main(z, fd, slot);
	setpgid(pid, pid);
	close(fd);
	z->runs[z->n_runs++] = (struct zrun){.id = id, .pid = pid, .slot = slot,
					     .deadline_us = wire_jint(m, "deadline_us")};
	return;
fail:
	slot_release(z, slot);
	close(fd);
	z_report(z, id, 0, 0, REASON_NOSTART, NULL);
}

static void z_kill_run(struct zrun *r, int reason)
{
	if (r->reason)
		return;
	r->reason = reason;
	kill_executor(r->pid);
}

/* "kill": run id, else the executor pid while it is idle here (the daemon
 * gave it a job whose "run" is still on its way, or it is the pid of an
 * idle executor whose job could not be written: id 0). A run is matched by
 * its id only: once reaped, its pid may be another executor's. */
static void z_kill(struct zygote *z, struct json_object *m, int fd)
{
	uint64_t id = (uint64_t)wire_jint(m, "id");
	pid_t pid = (pid_t)wire_jint(m, "pid");

	(void)fd;
	for (size_t i = 0; id && i < z->n_runs; i++) {
		if (z->runs[i].id == id) {
			z_kill_run(&z->runs[i], REASON_KILLED);
			return;
		}
	}
	kill_idle(z, pid);
}

/* Reaps what ended: an executor with a run (reported with its id), an
 * idle one or one whose "run" had not arrived (reported by pid alone), or
 * something an executor left behind (we are its subreaper). Each child is
 * looked at before it is reaped: while it is a zombie its pid, and so its
 * process group's id, cannot be reused, so killing what it left in its
 * group cannot hit a stranger. */
static void z_reap(struct zygote *z)
{
	for (;;) {
		siginfo_t si;
		pid_t pid;
		size_t i;
		bool idle;
		int st = 0, slot = -1, caught;
		char crash[CRASH_TEXT_MAX] = "";

		memset(&si, 0, sizeof(si));
		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == 0)
			return;
		pid = si.si_pid;
		for (i = 0; i < z->n_runs && z->runs[i].pid != pid; i++)
			;
		if (i < z->n_runs)
			slot = z->runs[i].slot;
		else
			slot = z_take_idle(z, pid);
		idle = i == z->n_runs && slot != -2;
		if (i < z->n_runs || idle)
			kill(-pid, SIGKILL); /* what it left in its group */
		while (waitpid(pid, &st, 0) < 0) {
			if (errno != EINTR)
				return;
		}
		if (slot >= 0 && z->crash[slot].sig) {
			/* a copy: executors can write any slot, so read it once */
			struct crash_report snap;

			memcpy(&snap, (const void *)&z->crash[slot], sizeof(snap));
			crash_format(&snap, z->plugins, z->n_plugins, crash, sizeof(crash));
		}
		caught = slot_release(z, slot);
		if (caught > 0 && WIFEXITED(st))
			st = caught; /* the wait status of a death by that signal */
		if (i < z->n_runs) {
			struct zrun r = z->runs[i];

			z->runs[i] = z->runs[--z->n_runs];
			z_report(z, r.id, pid, st,
				 caught == SLOT_SANDBOX_FAILED && !r.reason ? REASON_SANDBOX : r.reason, crash);
		} else if (idle) {
			z_report(z, 0, pid, st,
				 caught == SLOT_SANDBOX_FAILED ? REASON_SANDBOX : REASON_EXITED, crash);
		}
	}
}

/* "load": opens plugin i from its memfd fd (-1: none came) and replies
 * with the outcome ({"op":"loaded",...}). */
static void z_load(struct zygote *z, struct json_object *m, int fd)
{
	struct loader_plugin *p = NULL;
	struct json_object *reply;
	char err[512] = "";
	int64_t i = wire_jint(m, "i");
	const char *name = wire_jstr(m, "name"), *version = wire_jstr(m, "version"), *hash = wire_jstr(m, "hash");
	int code;

	if (i < 0 || i >= 65536 || !name || !version || fd < 0) {
		code = LOADER_EIO;
		util_set_err(err, sizeof(err), "zygote: malformed load request");
		goto reply;
	}
	if ((size_t)i >= z->n_plugins) {
		struct loader_plugin **a = realloc(z->plugins, ((size_t)i + 1) * sizeof(*a));

		if (!a) {
			code = LOADER_ENOMEM;
			util_set_err(err, sizeof(err), "zygote: out of memory");
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
		util_set_err(err, sizeof(err), "zygote: out of memory");
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
	reply = wire_msg("loaded");
	wire_msg_int(reply, "i", i);
	wire_msg_int(reply, "code", code);
	wire_msg_int(reply, "kind", code == LOADER_OK ? (int)p->kind : 0);
	wire_msg_str(reply, "err", err);
	wire_send_json(z->ctl, reply, NULL, 0);
	json_object_put(reply);
}

/* "config": the limits and the sandbox; replies with what the sandbox
 * can apply here ({"op":"sandbox",...}, for the daemon's log). */
static void z_config(struct zygote *z, struct json_object *m, int fd)
{
	struct json_object *reply;
	char text[512];
	int r;

	(void)fd;
	z->prefork = (uint32_t)wire_jint(m, "prefork");
	if (z->prefork > PREFORK_MAX / 2)
		z->prefork = PREFORK_MAX / 2;
	z->memory_limit_mb = (uint64_t)wire_jint(m, "memory_limit_mb");
	z->cpu_limit_s = (uint32_t)wire_jint(m, "cpu_limit_s");
	z->sb.uid = (uint32_t)wire_jint(m, "uid");
	z->sb.gid = (uint32_t)wire_jint(m, "gid");
	z->sb.max_processes = (uint32_t)wire_jint(m, "max_processes");
	r = sandbox_probe(&z->sb, &z->layers, &z->landlock_abi);
	if (r < 0)
		util_set_err(text, sizeof(text), "cannot probe the sandbox: %s", status_str(r));
	else
		sandbox_describe(z->layers, z->landlock_abi, &z->sb, text, sizeof(text));
	reply = wire_msg("sandbox");
	wire_msg_int(reply, "layers", z->layers);
	wire_msg_str(reply, "text", text);
	wire_send_json(z->ctl, reply, NULL, 0);
	json_object_put(reply);
}

/* "ready": the plugins are open. What needs the filesystem is done now
 * (the limit's base, the executors' /dev/null), then the zygote locks
 * itself into the seccomp allow-list its executors inherit. */
static void z_ready(struct zygote *z, struct json_object *m, int fd)
{
	(void)m;
	(void)fd;
	z->ready = true;
	/* The mappings keep the plugins' bytes: their memfds are not needed
	 * any more, and a thousand plugins would hold a thousand of the
	 * zygote's descriptors (and every executor's). Closed only now, so
	 * that each plugin was opened from a number no loaded library answered
	 * to (loader_open.c). */
	for (size_t i = 0; i < z->n_plugins; i++) {
		struct loader_plugin *p = z->plugins[i];
		struct stat st;

		if (!p || p->memfd < 0)
			continue;
		/* a mapping costs no descriptor: crash reports read the
		 * plugin's symbols from it */
		if (fstat(p->memfd, &st) == 0 && st.st_size > 0) {
			void *img = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, p->memfd, 0);

			if (img != MAP_FAILED) {
				p->image = img;
				p->image_len = (size_t)st.st_size;
			}
		}
		close(p->memfd);
		p->memfd = -1;
	}
	/* an executor's address space at fork: the limit's base */
	z->base_kb = vm_size_kb();
	z->devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	/* on failure every executor fails closed (sandbox_enter checks that
	 * the allow-list is in place) */
	sandbox_zygote_lock(z->layers);
}

static void z_close_idle(struct zygote *z)
{
	for (size_t i = 0; i < z->n_idle; i++)
		kill(z->idle[i].pid, SIGKILL);
}

/* The daemon's messages on the ctl socket (wire.h). A handler gets the
 * descriptor that came with its message (-1: none) when it takes one, and
 * owns it then; a message that needs one and came without it is ignored,
 * as is an unknown op. */
enum z_fd { FD_NONE, FD_TAKEN, FD_NEEDED };

static const struct {
	const char *op;
	enum z_fd fd;
	void (*handle)(struct zygote *z, struct json_object *m, int fd);
} z_ops[] = {
	{"config", FD_NONE, z_config},
	{"load", FD_TAKEN, z_load},
	{"ready", FD_NONE, z_ready},
	{"run", FD_NONE, z_run},
	{"spawn", FD_NEEDED, z_spawn},
	{"kill", FD_NONE, z_kill},
};

/* Reads and handles one message from the daemon; false at the ctl
 * socket's EOF (or when it broke): the daemon's "stop". */
static bool z_message(struct zygote *z)
{
	struct json_object *m = NULL;
	int fds[1], nfds = 1;

	if (wire_recv_json(z->ctl, &m, fds, &nfds) < 0)
		return false;
	for (size_t i = 0; i < sizeof(z_ops) / sizeof(z_ops[0]); i++) {
		if (!wire_op_is(m, z_ops[i].op))
			continue;
		if (z_ops[i].fd == FD_NEEDED && nfds != 1)
			break;
		z_ops[i].handle(z, m, z_ops[i].fd != FD_NONE && nfds ? fds[0] : -1);
		if (z_ops[i].fd != FD_NONE)
			nfds = 0;
		break;
	}
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	json_object_put(m);
	return true;
}

/* Kills the runs past their deadlines; returns the next deadline (-1:
 * none). */
static int64_t z_deadlines(struct zygote *z, int64_t now)
{
	int64_t next = -1;

	for (size_t i = 0; i < z->n_runs; i++) {
		struct zrun *r = &z->runs[i];

		if (r->reason || !r->deadline_us)
			continue;
		if (r->deadline_us <= now)
			z_kill_run(r, REASON_DEADLINE);
		else if (next < 0 || r->deadline_us < next)
			next = r->deadline_us;
	}
	return next;
}

/* Before the loop: the sandbox's preparation (before any plugin is opened:
 * non-dumpable, and a user namespace when not root; a failure leaves the
 * PID namespace layer missing, which the probe finds and the daemon logs),
 * the slots, the subreaper, SIGCHLD as a signalfd. -1 on failure. */
static int z_start(struct zygote *z)
{
	sigset_t set;

	sandbox_zygote_init();
	z->slots = mmap(NULL, SLOT_MAX * sizeof(*z->slots), PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (z->slots == MAP_FAILED)
		return -1;
	z->crash = crash_reports_new(SLOT_MAX);
	if (!z->crash)
		return -1;
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	z->sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (z->sfd < 0)
		return -1;
	fcntl(z->ctl, F_SETFD, FD_CLOEXEC);
	return 0;
}

/* The loop: deadlines, reaps, the daemon's messages and the pool's refill,
 * until the daemon said stop and every executor has been reaped. 0, or 1
 * when poll failed. */
static int z_loop(struct zygote *z)
{
	int64_t refill_after = 0;

	for (;;) {
		struct pollfd pfd[2];
		int64_t now = util_mono_us(), next;
		int timeout = -1, np = 0;
		bool refill;

		if (z->closing && z->n_runs == 0 && z->n_idle == 0)
			return 0;
		next = z_deadlines(z, now);
		refill = z->ready && !z->closing && z->n_idle < z->prefork;
		if (refill && refill_after > now && (next < 0 || refill_after < next))
			next = refill_after;
		if (next >= 0)
			timeout = (next - now) / 1000 >= INT_MAX ? INT_MAX : (int)((next - now + 999) / 1000);
		pfd[np++] = (struct pollfd){.fd = z->sfd, .events = POLLIN};
		if (!z->closing)
			pfd[np++] = (struct pollfd){.fd = z->ctl, .events = POLLIN};
		/* Refills the pool when nothing else waits. Starting an
		 * execution never waits for this fork (the daemon holds the
		 * idle executors' sockets); messages and reaps go first. A
		 * failed fork (EAGAIN under RLIMIT_NPROC, ENOMEM) is retried
		 * after a pause, not in a busy loop. */
		if (refill && refill_after <= now && poll(pfd, (nfds_t)np, 0) == 0) {
			if (fork_idle(z) < 0)
				refill_after = util_mono_us() + REFILL_RETRY_US;
			continue;
		}
		if (poll(pfd, (nfds_t)np, timeout) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (pfd[0].revents) {
			struct signalfd_siginfo si;

			while (read(z->sfd, &si, sizeof(si)) == sizeof(si))
				;
			z_reap(z);
		}
		if (np > 1 && pfd[1].revents && !z_message(z)) {
			z->closing = true;
			z_close_idle(z);
		}
	}
}

int executor_zygote_main(int fd)
{
	struct zygote z = {.self = getpid(), .ctl = fd, .sfd = -1, .devnull = -1};
	int ret;

	if (z_start(&z) < 0)
		return 1;
	ret = z_loop(&z);

	/* stop: whatever is left (idle executors were killed and reaped above) */
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	for (size_t i = 0; i < z.n_plugins; i++)
		loader_unload(z.plugins[i]);
	free(z.plugins);
	free(z.runs);
	munmap((void *)z.slots, SLOT_MAX * sizeof(*z.slots));
	if (z.devnull >= 0)
		close(z.devnull);
	close(z.sfd);
	close(z.ctl);
	return ret;
}
