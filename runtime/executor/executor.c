/*
 * executor.c - the daemon's side of executions (executor.h): starts the
 * zygote and takes it through start-up, pools the idle executors it hands
 * over, runs each isolated execution on the calling thread (take an
 * executor, tell the zygote, serve the executor's host calls, decide the
 * verdict), supervises the zygote from the reader thread and restarts it
 * when it dies, and runs in-process executions directly. How isolated
 * executions work is told once, at the top of zygote.c; the messages are
 * in wire.h.
 */
#include "executor.h"
#include "paginate.h"
#include "proxy_msg.h"
#include "wire.h"
#include "zygote.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define LOAD_TIMEOUT_MS 30000
#define RESTART_BACKOFF_MIN_US 100000LL  /* a zygote that cannot be restarted: retried */
#define RESTART_BACKOFF_MAX_US 5000000LL
#define GRACE_US 5000000LL      /* past the deadline the daemon stops trusting the zygote */
#define NOTICE_US 20000LL       /* a run on an idle executor still going after this is told
				   to the zygote ("run"; tell_zygote) */
#define DEFAULT_DEADLINE_US 300000000LL /* a job without a deadline */
#define DRAINED_ERROR "killed: generation drained"
#define ZYGOTE_EXIT_WAIT_US 5000000LL

struct run {
	uint64_t id;
	pid_t pid;               /* its executor */
	int efd;
	bool exited;
	bool killed;             /* a drain kill was sent for it */
	int status;
	int reason;
	char *crash;             /* the zygote's crash report (crash.h), or NULL */
	struct run *next;
};

/* An idle executor forked ahead: its pid and the daemon's end of its exec
 * socket. */
struct idle {
	pid_t pid;
	int fd;
};

#define IDLE_MAX 128

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
	struct idle idle[IDLE_MAX]; /* the zygote's idle executors, ready to take a job */
	size_t n_idle;
	uint64_t next_id;
	size_t running;
	bool zygote_gone;        /* until the reader has restarted it */
	bool stopping;           /* executor_free: the zygote's EOF is its stop */
	bool drained;            /* executor_kill_all: no more runs */
	size_t restarts;
	char sandbox[512];       /* what the zygote's sandbox applies (sandbox.h) */
};

static void notify(int efd)
{
	uint64_t one = 1;

	while (write(efd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

/* Marks run r lost (its zygote is gone or stopped answering) unless it
 * has ended already; true when it was still running. Called with mu. */
static bool lose(struct run *r)
{
	if (r->exited)
		return false;
	r->exited = true;
	r->reason = REASON_LOST;
	return true;
}

/* Marks every run that waits for the zygote as lost. Called with mu. */
static void lose_all(struct executor *ex)
{
	ex->zygote_gone = true;
	for (struct run *r = ex->runs; r; r = r->next)
		if (lose(r))
			notify(r->efd);
}

/* The zygote's report that an executor ended: its run (matched by pid: a
 * report comes with the run's id only when the zygote had its "run"), or an
 * idle executor that died. Called with mu. */
static void on_exit_report(struct executor *ex, struct json_object *m)
{
	uint64_t id = (uint64_t)wire_jint(m, "id");
	pid_t pid = (pid_t)wire_jint(m, "pid");

	for (struct run *r = ex->runs; r; r = r->next) {
		if (!r->exited && (id ? r->id == id : pid > 0 && r->pid == pid)) {
			r->exited = true;
			r->status = (int)wire_jint(m, "status");
			r->reason = (int)wire_jint(m, "reason");
			if (wire_jstr(m, "crash"))
				r->crash = strdup(wire_jstr(m, "crash"));
			notify(r->efd);
			return;
		}
	}
	for (size_t i = 0; i < ex->n_idle; i++) {
		if (ex->idle[i].pid == pid) {
			close(ex->idle[i].fd);
			ex->idle[i] = ex->idle[--ex->n_idle];
			return;
		}
	}
}

/* Serves the zygote's messages until its socket closes. */
static void read_zygote(struct executor *ex)
{
	for (;;) {
		struct json_object *m = NULL;
		int fds[1], nfds = 1;

		if (wire_recv_json(ex->ctl, &m, fds, &nfds) < 0)
			break;
		pthread_mutex_lock(&ex->mu);
		if (wire_op_is(m, "exit")) {
			on_exit_report(ex, m);
		} else if (wire_op_is(m, "idle") && nfds == 1) {
			if (ex->n_idle < IDLE_MAX) {
				ex->idle[ex->n_idle++] = (struct idle){(pid_t)wire_jint(m, "pid"), fds[0]};
				nfds = 0;
			}
			/* else: closing fds[0] ends that executor (EOF) */
		}
		pthread_mutex_unlock(&ex->mu);
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		json_object_put(m);
	}
}

static int ctl_send(struct executor *ex, struct json_object *m, const int *fds, int nfds)
{
	int r;

	pthread_mutex_lock(&ex->send_mu);
	r = wire_send_json(ex->ctl, m, fds, nfds);
	pthread_mutex_unlock(&ex->send_mu);
	return r;
}

/* Starts the zygote binary on zfd, its end of a new ctl socket. */
static int spawn_zygote(struct executor *ex, int zfd, char *err, size_t errlen)
{
	pid_t pid;
	int r = executor_zygote_spawn(ex->opts.zygote_path, zfd, &pid, err, errlen);

	if (r == 0) {
		pthread_mutex_lock(&ex->mu);
		ex->zygote = pid;
		pthread_mutex_unlock(&ex->mu);
	}
	return r;
}

/* Waits up to LOAD_TIMEOUT_MS for the zygote's answer to a start-up
 * message, an op message: 0 with *m (owned by the caller), STATUS_ETIMEDOUT
 * when the zygote hung, STATUS_ECLOSED when it died or answered something
 * else. */
static int recv_reply(struct executor *ex, const char *op, struct json_object **m)
{
	struct pollfd p = {.fd = ex->ctl, .events = POLLIN};
	int r = poll(&p, 1, LOAD_TIMEOUT_MS);

	*m = NULL;
	if (r == 0)
		return STATUS_ETIMEDOUT;
	if (r > 0 && wire_recv_json(ex->ctl, m, NULL, NULL) == 0 && wire_op_is(*m, op))
		return 0;
	json_object_put(*m);
	*m = NULL;
	return STATUS_ECLOSED;
}

/* Sends a start-up message to the zygote and drops m; err says why it
 * failed. */
static int start_send(struct executor *ex, struct json_object *m, const int *fds, int nfds,
		      char *err, size_t errlen)
{
	int r = ctl_send(ex, m, fds, nfds);

	json_object_put(m);
	if (status_primary(r) == STATUS_ENOMEM) {
		util_set_err(err, errlen, "out of memory");
	} else if (r < 0) {
		util_set_err(err, errlen, "the zygote exited during start-up");
		r = STATUS_ECLOSED;
	}
	return r;
}

/* "config", and the sandbox report that answers it. */
static int start_config(struct executor *ex, char *err, size_t errlen)
{
	const struct executor_options *o = &ex->opts;
	struct json_object *m = wire_msg("config");
	int ret;

	wire_msg_int(m, "prefork", o->prefork);
	wire_msg_int(m, "memory_limit_mb", (int64_t)o->memory_limit_mb);
	wire_msg_int(m, "cpu_limit_s", o->cpu_limit_s);
	wire_msg_int(m, "uid", o->uid);
	wire_msg_int(m, "gid", o->gid);
	wire_msg_int(m, "max_processes", o->max_processes);
	ret = start_send(ex, m, NULL, 0, err, errlen);
	if (ret < 0)
		return ret;
	ret = recv_reply(ex, "sandbox", &m);
	if (ret < 0) {
		util_set_err(err, errlen, "the zygote %s during start-up",
			     ret == STATUS_ETIMEDOUT ? "hung" : "died");
		return ret;
	}
	pthread_mutex_lock(&ex->mu);
	snprintf(ex->sandbox, sizeof(ex->sandbox), "%s",
		 wire_jstr(m, "text") ? wire_jstr(m, "text") : "?");
	pthread_mutex_unlock(&ex->mu);
	json_object_put(m);
	return 0;
}

/* "load" of plugin i and its answer: *code and err (the refusal) when the
 * zygote could not open it; a negative return when the zygote is lost. */
static int start_load(struct executor *ex, size_t i, int *code, char *err, size_t errlen)
{
	struct loader_plugin *p = ex->plugins[i];
	struct json_object *m;
	int ret, fd;

	ret = loader_memfd(p, &fd); /* a descriptor only while handed over */
	if (ret < 0) {
		*code = LOADER_EIO;
		util_set_err(err, errlen, "%s.so: a memfd for its bytes: %s", p->name, status_str(ret));
		return 0;
	}
	m = wire_msg("load");
	wire_msg_int(m, "i", (int64_t)i);
	wire_msg_str(m, "name", p->name);
	wire_msg_str(m, "version", p->version);
	wire_msg_str(m, "hash", p->hash_hex);
	ret = start_send(ex, m, &fd, 1, err, errlen);
	close(fd);
	if (ret < 0)
		return ret;
	ret = recv_reply(ex, "loaded", &m);
	if (ret == 0 && (size_t)wire_jint(m, "i") != i)
		ret = STATUS_ECLOSED; /* out of step */
	if (ret < 0) {
		json_object_put(m);
		util_set_err(err, errlen, "the zygote %s while opening plugin %s",
			     ret == STATUS_ETIMEDOUT ? "hung" : "died", p->name);
		return ret;
	}
	*code = (int)wire_jint(m, "code");
	if (*code == LOADER_OK) {
		/* what the zygote found when it opened the plugin: the daemon,
		 * which only verified it, learns its kind here */
		ex->kind[i] = (int)wire_jint(m, "kind");
		if (!p->kind)
			p->kind = (enum loader_kind)ex->kind[i];
	} else {
		util_set_err(err, errlen, "%s", wire_jstr(m, "err") ? wire_jstr(m, "err") : "");
	}
	json_object_put(m);
	return 0;
}

/* Starts a zygote on a new ctl socket and takes it through start-up:
 * config, one load per plugin (results: each one's outcome; NULL on a
 * restart, where a plugin that opened before is expected to open again),
 * ready. */
static int start_zygote(struct executor *ex, struct executor_load_result *results, char *err,
			size_t errlen)
{
	int sv[2], ret, old;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		ret = status_from_errno(errno);
		util_set_err(err, errlen, "socketpair: %s", status_str(ret));
		return ret;
	}
	pthread_mutex_lock(&ex->send_mu);
	old = ex->ctl;
	ex->ctl = sv[0];
	pthread_mutex_unlock(&ex->send_mu);
	if (old >= 0)
		close(old);
	ret = spawn_zygote(ex, sv[1], err, errlen);
	close(sv[1]);
	if (ret == 0)
		ret = start_config(ex, err, errlen);
	for (size_t i = 0; ret == 0 && i < ex->n; i++) {
		char perr[512] = "";
		int code = LOADER_OK;

		ret = start_load(ex, i, &code, perr, sizeof(perr));
		if (ret < 0) {
			util_set_err(err, errlen, "%s", perr);
			break;
		}
		pthread_mutex_lock(&ex->mu);
		ex->iso_ok[i] = code == LOADER_OK;
		pthread_mutex_unlock(&ex->mu);
		if (code != LOADER_OK && results && results[i].code == LOADER_OK) {
			results[i].code = code;
			snprintf(results[i].err, sizeof(results[i].err), "%s", perr);
		}
	}
	if (ret == 0)
		ret = start_send(ex, wire_msg("ready"), NULL, 0, err, errlen);
	return ret;
}

/* Waits up to wait_us for the zygote to exit, then kills it; reaps it.
 * Its wait status, or -1 when there was none. */
static int reap_zygote(struct executor *ex, int64_t wait_us)
{
	int64_t until = util_mono_us() + wait_us;
	pid_t z;
	int st = -1;

	pthread_mutex_lock(&ex->mu);
	z = ex->zygote;
	ex->zygote = 0;
	pthread_mutex_unlock(&ex->mu);
	if (z <= 0)
		return -1;
	for (;;) {
		pid_t w = waitpid(z, &st, WNOHANG);

		if (w == z || (w < 0 && errno != EINTR))
			break;
		if (util_mono_us() > until) {
			kill(z, SIGKILL);
			waitpid(z, &st, 0);
			break;
		}
		usleep(1000);
	}
	return st;
}

/* Drops the idle executors' sockets (they belong to a zygote that is gone
 * or going). Called with mu. */
static void close_idle(struct executor *ex)
{
	for (size_t i = 0; i < ex->n_idle; i++)
		close(ex->idle[i].fd);
	ex->n_idle = 0;
}

static void describe_status(int st, char *buf, size_t len)
{
	if (st >= 0 && WIFSIGNALED(st))
		snprintf(buf, len, "killed by SIG%s", sigabbrev_np(WTERMSIG(st)) ?
			 sigabbrev_np(WTERMSIG(st)) : "?");
	else if (st >= 0 && WIFEXITED(st))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
	else
		snprintf(buf, len, "gone");
}

/* The zygote died on its own: what it ran is lost (lose_all), the runs
 * that arrive now wait (zygote_gone), and a new zygote is started for the
 * same plugins (the same verified memfds), again after a growing pause
 * while that fails. Returns false when the executor is stopping. */
static bool restart_zygote(struct executor *ex)
{
	int64_t wait_us = 0;
	char why[64], err[512];
	pid_t pid;
	int st;

	pthread_mutex_lock(&ex->mu);
	pid = ex->zygote;
	pthread_mutex_unlock(&ex->mu);
	st = reap_zygote(ex, 0);
	describe_status(st, why, sizeof(why));
	log_error("executor", "generation %lld: the zygote (pid %d) %s; the executions it ran "
		  "are recorded crashed; restarting it", (long long)ex->opts.generation, (int)pid, why);
	for (;;) {
		int64_t until = util_mono_us() + wait_us;
		int ret;

		pthread_mutex_lock(&ex->mu);
		close_idle(ex);
		while (!ex->stopping && util_mono_us() < until)
			util_cond_wait_us(&ex->changed, &ex->mu, until - util_mono_us());
		if (ex->stopping) {
			pthread_mutex_unlock(&ex->mu);
			return false;
		}
		pthread_mutex_unlock(&ex->mu);
		ret = start_zygote(ex, NULL, err, sizeof(err));
		pthread_mutex_lock(&ex->mu);
		if (ret == 0 && !ex->stopping) {
			ex->zygote_gone = false;
			ex->restarts++;
			pid = ex->zygote;
			pthread_cond_broadcast(&ex->changed);
			pthread_mutex_unlock(&ex->mu);
			log_info("executor", "generation %lld: zygote restarted (pid %d)",
				 (long long)ex->opts.generation, (int)pid);
			return true;
		}
		pthread_mutex_unlock(&ex->mu);
		if (ret == 0) {
			/* stopping began while it started: stop_zygote may have
			 * shut the old socket down, so tell the new one */
			pthread_mutex_lock(&ex->send_mu);
			shutdown(ex->ctl, SHUT_WR);
			pthread_mutex_unlock(&ex->send_mu);
			return false;
		}
		reap_zygote(ex, 0);
		wait_us = wait_us ? wait_us * 2 : RESTART_BACKOFF_MIN_US;
		if (wait_us > RESTART_BACKOFF_MAX_US)
			wait_us = RESTART_BACKOFF_MAX_US;
		log_error("executor", "generation %lld: cannot restart the zygote: %s; retrying in %lld ms",
			  (long long)ex->opts.generation, err, (long long)(wait_us / 1000));
	}
}

/* The reader thread: the zygote's messages, and its supervision. */
static void *reader_main(void *arg)
{
	struct executor *ex = arg;

	for (;;) {
		bool stopping;

		read_zygote(ex);
		pthread_mutex_lock(&ex->mu);
		lose_all(ex);
		stopping = ex->stopping;
		pthread_mutex_unlock(&ex->mu);
		if (stopping || !restart_zygote(ex))
			break;
	}
	/* stopping: the zygote waits for its running executors (their
	 * deadlines hold) and exits */
	reap_zygote(ex, ZYGOTE_EXIT_WAIT_US);
	return NULL;
}

static void stop_zygote(struct executor *ex)
{
	util_flag_raise(&ex->mu, &ex->changed, &ex->stopping);
	pthread_mutex_lock(&ex->send_mu);
	if (ex->ctl >= 0)
		shutdown(ex->ctl, SHUT_WR);
	pthread_mutex_unlock(&ex->send_mu);
	if (ex->reader_started) {
		pthread_join(ex->reader, NULL);
		ex->reader_started = false;
	} else {
		reap_zygote(ex, ZYGOTE_EXIT_WAIT_US);
	}
	pthread_mutex_lock(&ex->mu);
	close_idle(ex);
	pthread_mutex_unlock(&ex->mu);
	if (ex->ctl >= 0) {
		close(ex->ctl);
		ex->ctl = -1;
	}
}

/* Stops the zygote (if any) and frees ex, whatever executor_new() got to. */
static void destroy(struct executor *ex)
{
	stop_zygote(ex);
	pthread_cond_destroy(&ex->changed);
	pthread_mutex_destroy(&ex->send_mu);
	pthread_mutex_destroy(&ex->mu);
	util_free_all(ex->iso_ok, ex->inproc_ok, ex->kind, ex);
}

/* An executor with its memory and locks, nothing started yet. 0 with *out
 * (owned by the caller: destroy), or STATUS_ENOMEM. */
static int alloc_executor(const struct executor_options *opts, struct loader_plugin *const *plugins,
			  size_t n, struct executor **out)
{
	struct executor *ex = calloc(1, sizeof(*ex));

	*out = NULL;
	if (!ex)
		return STATUS_ENOMEM;
	ex->ctl = -1;
	ex->opts = *opts;
	ex->plugins = plugins;
	ex->n = n;
	ex->iso_ok = calloc(n ? n : 1, sizeof(bool));
	ex->inproc_ok = calloc(n ? n : 1, sizeof(bool));
	ex->kind = calloc(n ? n : 1, sizeof(int));
	pthread_mutex_init(&ex->mu, NULL);
	pthread_mutex_init(&ex->send_mu, NULL);
	util_cond_init_monotonic(&ex->changed);
	if (!ex->iso_ok || !ex->inproc_ok || !ex->kind) {
		destroy(ex);
		return STATUS_ENOMEM;
	}
	*out = ex;
	return 0;
}

/* Opens the plugins marked in_process (may be NULL: none) in this process;
 * results[i] says how each went. */
static void open_in_process(struct executor *ex, const bool *in_process,
			    struct executor_load_result *results)
{
	for (size_t i = 0; i < ex->n; i++) {
		results[i].code = LOADER_OK;
		results[i].err[0] = '\0';
	}
	for (size_t i = 0; in_process && i < ex->n; i++) {
		struct loader_plugin *p = ex->plugins[i];

		if (!in_process[i])
			continue;
		if (!p->handle)
			results[i].code = loader_open(p, results[i].err, sizeof(results[i].err));
		ex->inproc_ok[i] = results[i].code == LOADER_OK;
		if (ex->inproc_ok[i])
			ex->kind[i] = p->kind;
	}
}

int executor_new(const struct executor_options *opts, struct loader_plugin *const *plugins,
		 size_t n, const bool *in_process, struct executor_load_result *results,
		 struct executor **out, char *err, size_t errlen)
{
	struct executor *ex = NULL;
	int ret;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	ret = alloc_executor(opts, plugins, n, &ex);
	if (ret < 0) {
		util_set_err(err, errlen, "out of memory");
		return ret;
	}
	open_in_process(ex, in_process, results);

	/* the zygote and the isolated opens */
	ret = start_zygote(ex, results, err, errlen);
	if (ret < 0)
		goto fail;
	log_info("executor", "generation %lld: sandbox: %s", (long long)opts->generation,
		 ex->sandbox);
	ret = pthread_create(&ex->reader, NULL, reader_main, ex);
	if (ret != 0) {
		ret = status_from_errno(ret);
		util_set_err(err, errlen, "pthread_create: %s", status_str(ret));
		goto fail;
	}
	ex->reader_started = true;
	*out = ex;
	return 0;

fail:
	destroy(ex);
	return ret;
}

/* "kill" for run id (0: none) or executor pid (0: unknown). */
static void ctl_kill(struct executor *ex, uint64_t id, pid_t pid)
{
	struct json_object *m = wire_msg("kill");

	wire_msg_int(m, "id", (int64_t)id);
	wire_msg_int(m, "pid", pid);
	ctl_send(ex, m, NULL, 0);
	json_object_put(m);
}

/* Asks the zygote to kill run r's executor for a drain. Called with mu. */
static void send_kill(struct executor *ex, struct run *r)
{
	r->killed = true;
	ctl_kill(ex, r->id, r->pid);
}

/* Takes an idle executor the zygote forked ahead. Called with mu. 0 with
 * *pid and *fd (the daemon's end of its exec socket, now the caller's),
 * STATUS_EAGAIN when none is left. */
static int take_idle(struct executor *ex, pid_t *pid, int *fd)
{
	struct idle c;

	if (ex->n_idle == 0)
		return STATUS_EAGAIN;
	c = ex->idle[--ex->n_idle];
	*pid = c.pid;
	*fd = c.fd;
	return 0;
}

/* Removes r from the runs. Called with mu. */
static void unregister(struct executor *ex, struct run *r)
{
	for (struct run **pp = &ex->runs; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	}
}

/* Refuses new runs and kills the running ones. Called with mu. */
static void drain(struct executor *ex)
{
	ex->drained = true;
	for (struct run *r = ex->runs; r; r = r->next)
		if (!r->exited && !r->killed)
			send_kill(ex, r);
}

void executor_kill_all(struct executor *ex)
{
	if (!ex)
		return;
	pthread_mutex_lock(&ex->mu);
	drain(ex);
	pthread_mutex_unlock(&ex->mu);
}

/* A counter of ex read under its mutex. */
static size_t read_locked(const struct executor *ex, const size_t *v)
{
	size_t n;

	pthread_mutex_lock((pthread_mutex_t *)&ex->mu);
	n = *v;
	pthread_mutex_unlock((pthread_mutex_t *)&ex->mu);
	return n;
}

size_t executor_running(const struct executor *ex)
{
	return ex ? read_locked(ex, &ex->running) : 0;
}

size_t executor_idle(const struct executor *ex)
{
	return ex ? read_locked(ex, &ex->n_idle) : 0;
}

int executor_zygote_pid(const struct executor *ex)
{
	pid_t pid = 0;

	if (ex) {
		pthread_mutex_lock((pthread_mutex_t *)&ex->mu);
		pid = ex->zygote_gone ? 0 : ex->zygote;
		pthread_mutex_unlock((pthread_mutex_t *)&ex->mu);
	}
	return (int)pid;
}

bool executor_degraded(const struct executor *ex)
{
	return ex && executor_zygote_pid(ex) == 0;
}

uint64_t executor_zygote_restarts(const struct executor *ex)
{
	return ex ? read_locked(ex, &ex->restarts) : 0;
}

const char *executor_sandbox(const struct executor *ex)
{
	return ex ? ex->sandbox : "";
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
	if (!ex)
		return;
	pthread_mutex_lock(&ex->mu);
	while (ex->running > 0 && util_mono_us() < deadline_us) {
		util_cond_wait_us(&ex->changed, &ex->mu, deadline_us - util_mono_us());
	}
	if (ex->running > 0) {
		drain(ex);
		/* killed executions end at once; in-process ones cannot be
		 * killed and are waited for (documented) */
		while (ex->running > 0)
			pthread_cond_wait(&ex->changed, &ex->mu);
	}
	pthread_mutex_unlock(&ex->mu);
	destroy(ex);
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

/* What the daemon thread serving one isolated execution keeps. */
struct serve {
	struct executor *ex;
	struct run *r;
	struct hostapi_exec *host;
	int d;                          /* the daemon's end of the exec socket */
	int zfd;                        /* "spawn": the executor's end, until sent to the zygote */
	bool sock_open;                 /* d is in step with the executor */
	bool told;                      /* the zygote has its "run" or "spawn" */
	bool heard;                     /* a message came from the executor */
	int64_t deadline_us;
	int64_t notice_us;              /* when to tell the zygote, if not yet told */
	struct proxy_target *target;    /* resolved on the first proxy/paginate call */
	struct proxy_session *session;  /* made on the first proxy call */
	int rc;                         /* the result message's: the entry point's return */
	char *output;                   /* and its output (owned) */
};

static void serve_clear(struct serve *sv)
{
	proxy_session_free(sv->session);
	proxy_target_free(sv->target);
	free(sv->output);
	if (sv->d >= 0)
		close(sv->d);
	if (sv->zfd >= 0)
		close(sv->zfd);
	sv->session = NULL;
	sv->target = NULL;
	sv->output = NULL;
	sv->d = -1;
	sv->zfd = -1;
}

/* The proxy session's cancel check: the executor is gone (deadline, drain,
 * crash), nobody waits for the response. */
static bool serve_cancelled(void *user)
{
	struct serve *sv = user;
	bool gone;

	pthread_mutex_lock(&sv->ex->mu);
	gone = sv->r->exited;
	pthread_mutex_unlock(&sv->ex->mu);
	return gone;
}

static void serve_proxy_log(void *user, int level, const char *msg)
{
	hostapi_log(user, level, msg);
}

static int serve_target(struct serve *sv)
{
	return sv->target ? EVS_OK : hostapi_proxy_target(sv->host, &sv->target);
}

static int serve_session(struct serve *sv)
{
	int rc;

	if (sv->session)
		return EVS_OK;
	rc = serve_target(sv);
	if (rc != EVS_OK)
		return rc;
	rc = proxy_session_new(sv->target, sv->deadline_us, serve_proxy_log, sv->host, &sv->session);
	if (rc == EVS_OK)
		proxy_session_set_cancel(sv->session, serve_cancelled, sv);
	return rc;
}

/* A proxy call: its body (a raw message) follows m. Returns -1 when the
 * socket broke, else 0 (the reply, success or not, was sent). */
static int serve_proxy(struct serve *sv, struct json_object *m)
{
	struct proxy_call call;
	struct evs_response *resp = NULL;
	struct json_object *reply;
	int64_t body_len = wire_jint(m, "body_len");
	char *body = NULL;
	size_t got = 0;
	int rc, ret = 0;

	if (body_len < 0 || body_len > (int64_t)WIRE_MSG_MAX)
		return -1;
	if (body_len > 0 && (wire_recv_msg(sv->d, &body, &got, NULL, NULL) < 0 ||
			     got != (size_t)body_len)) {
		free(body);
		return -1;
	}
	rc = proxy_call_decode(m, body, got, &call);
	if (rc == EVS_OK)
		rc = serve_session(sv);
	if (rc == EVS_OK)
		rc = proxy_request(sv->session, &call.req, &resp);
	reply = proxy_reply_head(rc, resp);
	if (!reply || wire_send_json(sv->d, reply, NULL, 0) < 0 ||
	    (rc == EVS_OK && wire_send_msg(sv->d, resp->body ? resp->body : "", resp->body_len, NULL, 0) < 0))
		ret = -1;
	json_object_put(reply);
	proxy_response_free(resp);
	proxy_call_clear(&call);
	free(body);
	return ret;
}

/* The calls that take nothing and answer a string (secret: wiped after). */
static const struct getter {
	const char *fn;
	int (*get)(struct hostapi_exec *x, char **out);
	bool secret;
} getters[] = {
	{"get_connection", hostapi_get_connection, true},
	{"get_metadata", hostapi_get_metadata, false},
	{"get_webhook_url", hostapi_get_webhook_url, false},
	{"get_token", hostapi_get_token, true},
	{"get_integration", hostapi_get_integration, false},
	{"get_env_all", hostapi_get_env_all, false},
};

/* A call other than proxy: -1 when no reply could be sent (the executor,
 * which waits for one, must get EOF instead), else 0. */
static int reply_call(struct serve *sv, struct json_object *m)
{
	struct hostapi_exec *host = sv->host;
	const char *fn = wire_jstr(m, "fn");
	const struct getter *g = NULL;
	struct json_object *reply, *val = NULL;
	char *s = NULL;
	bool secret = false;
	int rc, ret = -1;

	for (size_t i = 0; fn && !g && i < sizeof(getters) / sizeof(getters[0]); i++)
		if (strcmp(fn, getters[i].fn) == 0)
			g = &getters[i];
	if (!fn) {
		rc = EVS_EINVAL;
	} else if (g) {
		rc = g->get(host, &s);
		secret = g->secret;
	} else if (strcmp(fn, "set_metadata") == 0) {
		rc = hostapi_set_metadata(host, wire_jstr(m, "j"));
	} else if (strcmp(fn, "update_metadata") == 0) {
		rc = hostapi_update_metadata(host, wire_jstr(m, "j"));
	} else if (strcmp(fn, "get_env") == 0) {
		rc = wire_jstr(m, "name") ? hostapi_get_env(host, wire_jstr(m, "name"), &s) : EVS_EINVAL;
	} else if (strcmp(fn, "trigger_action") == 0) {
		rc = wire_jstr(m, "name") ? hostapi_trigger_action(host, wire_jstr(m, "name"),
								  wire_jstr(m, "input"), &s)
					  : EVS_EINVAL;
	} else if (strcmp(fn, "set_action_error") == 0) {
		rc = hostapi_set_action_error(host, wire_jstr(m, "m"), wire_jstr(m, "payload"));
	} else if (strcmp(fn, "trigger_action_for") == 0) {
		rc = wire_jstr(m, "name") && wire_jstr(m, "cid")
			     ? hostapi_trigger_action_for(host, wire_jstr(m, "cid"), wire_jstr(m, "name"),
							  wire_jstr(m, "input"), &s)
			     : EVS_EINVAL;
	} else if (strcmp(fn, "paginate_settings") == 0) {
		/* the provider's paging style: no credentials in it */
		rc = serve_target(sv);
		if (rc == EVS_OK) {
			val = paginate_settings_to_json(&sv->target->paginate);
			if (!val)
				rc = EVS_ENOMEM;
		}
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
		ret = wire_send_json(sv->d, reply, NULL, 0) == 0 ? 0 : -1;
		if (secret)
			hostapi_json_put_secret(reply);
		else
			json_object_put(reply);
	} else {
		json_object_put(val);
	}
	if (secret)
		hostapi_secret_free(s);
	else
		free(s);
	return ret;
}

/* Handles one message from the executor: 1 when it was the result (kept
 * in sv->rc and sv->output), -1 when the exec socket is out of step (a
 * proxy body did not follow, a reply could not be sent), else 0. */
static int handle_exec_msg(struct serve *sv, struct json_object *m)
{
	if (wire_op_is(m, "log")) {
		const char *s = wire_jstr(m, "m");

		hostapi_log(sv->host, (int)wire_jint(m, "l"), s ? s : "");
	} else if (wire_op_is(m, "set_error")) {
		const char *s = wire_jstr(m, "m");

		if (s)
			hostapi_set_error(sv->host, s);
	} else if (wire_op_is(m, "call")) {
		const char *fn = wire_jstr(m, "fn");

		if (fn && strcmp(fn, "proxy") == 0)
			return serve_proxy(sv, m);
		return reply_call(sv, m);
	} else if (wire_op_is(m, "result")) {
		const char *o = wire_jstr(m, "output");

		sv->rc = (int)wire_jint(m, "rc");
		free(sv->output);
		sv->output = o ? strdup(o) : NULL;
		return 1;
	}
	return 0;
}

static struct json_object *job_message(const struct executor_job *job, int64_t deadline_us)
{
	struct json_object *m = wire_msg("job"), *ev;

	wire_msg_int(m, "plugin", (int64_t)job->plugin);
	wire_msg_int(m, "deadline_us", deadline_us);
	if (job->event) {
		const struct evs_event *e = job->event;

		ev = json_object_new_object();
		wire_msg_int(ev, "type", e->type);
		if (e->name)
			wire_msg_str(ev, "name", e->name);
		if (e->connection_id)
			wire_msg_str(ev, "connection_id", e->connection_id);
		if (e->provider_config_key)
			wire_msg_str(ev, "provider_config_key", e->provider_config_key);
		wire_msg_int(ev, "event_id", e->event_id);
		wire_msg_int(ev, "execution_id", e->execution_id);
		if (!ev || !m || json_object_object_add(m, "event", ev) < 0) {
			json_object_put(ev);
			json_object_put(m);
			return NULL;
		}
	} else {
		wire_msg_str(m, "input", job->input_json ? job->input_json : "null");
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

/* A poll() timeout for us microseconds (> 0), rounded up, at most
 * INT_MAX ms (a far deadline must not wrap into "forever"). */
static int poll_ms(int64_t us)
{
	return us / 1000 >= INT_MAX ? INT_MAX : (int)(us / 1000) + 1;
}

static void run_done(struct executor *ex)
{
	pthread_mutex_lock(&ex->mu);
	ex->running--;
	pthread_cond_broadcast(&ex->changed);
	pthread_mutex_unlock(&ex->mu);
}

static void tell_zygote(struct serve *sv);

/* Reads one message from the exec socket and handles it. Returns 1 when it
 * was the result; 0 otherwise. sv->sock_open turns false when the socket is
 * closed or out of step (then shut down, so the executor gets EOF, not a
 * hang). */
static int serve_one(struct serve *sv)
{
	struct json_object *m = NULL;
	int hr;

	if (wire_recv_json(sv->d, &m, NULL, NULL) < 0) {
		sv->sock_open = false;
		return 0;
	}
	sv->heard = true;
	/* a call may hold this thread past the notice (a proxy request, a
	 * nested action): the zygote watches the deadline meanwhile */
	if (!sv->told && wire_op_is(m, "call"))
		tell_zygote(sv);
	hr = handle_exec_msg(sv, m);
	json_object_put(m);
	if (hr < 0) {
		shutdown(sv->d, SHUT_RDWR);
		sv->sock_open = false;
	}
	return hr > 0;
}

/* Called with mu: waits while the zygote is being restarted, up to
 * deadline_us. 0 when a run may start; 1 when the generation is drained;
 * STATUS_ECLOSED when the zygote is still gone (res says so in both cases). */
static int wait_for_zygote(struct executor *ex, int64_t deadline_us, struct executor_result *res)
{
	while (ex->zygote_gone && !ex->stopping && !ex->drained && util_mono_us() < deadline_us)
		util_cond_wait_us(&ex->changed, &ex->mu, deadline_us - util_mono_us());
	if (ex->zygote_gone && !ex->drained) {
		set_error(res, "executor: the zygote of generation %lld is gone",
			  (long long)ex->opts.generation);
		return STATUS_ECLOSED;
	}
	if (ex->drained) {
		res->status = STORE_EXEC_TIMED_OUT;
		set_error(res, "%s", DRAINED_ERROR);
		return 1;
	}
	return 0;
}

/* No idle executor left: a new exec socket that already holds the job; the
 * zygote forks an executor on its other end (sv->zfd). */
static int make_exec_socket(struct serve *sv, struct json_object *job_msg,
			    struct executor_result *res)
{
	int pair[2], ret;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) {
		ret = status_from_errno(errno);
		set_error(res, "executor: socketpair: %s", status_str(ret));
		return ret;
	}
	sv->d = pair[0];
	sv->zfd = pair[1];
	ret = wire_send_json(sv->d, job_msg, NULL, 0);
	if (ret < 0)
		set_error(res, "executor: cannot send the job: %s", status_str(ret));
	return ret;
}

/* Registers sv->r and gives it an executor: an idle one, with the job
 * written straight to it (one that died while idle, so that the send
 * fails, is replaced), or, none left, a new exec socket that holds the job
 * ("spawn"). 0 with sv->d set; 1 when the generation is drained; else a
 * negative code. res says why in both cases. */
static int take_executor(struct serve *sv, struct json_object *job_msg,
			 struct executor_result *res)
{
	struct executor *ex = sv->ex;
	struct run *r = sv->r;
	int ret;

	for (int attempt = 0;; attempt++) {
		bool spawn;

		pthread_mutex_lock(&ex->mu);
		ret = wait_for_zygote(ex, sv->deadline_us, res);
		if (ret != 0) {
			pthread_mutex_unlock(&ex->mu);
			return ret;
		}
		r->pid = 0;
		spawn = attempt == 3 || take_idle(ex, &r->pid, &sv->d) < 0;
		r->id = ++ex->next_id;
		r->next = ex->runs;
		ex->runs = r;
		pthread_mutex_unlock(&ex->mu);
		if (spawn)
			return make_exec_socket(sv, job_msg, res);
		if (wire_send_json(sv->d, job_msg, NULL, 0) == 0)
			return 0;
		pthread_mutex_lock(&ex->mu);
		unregister(ex, r);
		pthread_mutex_unlock(&ex->mu);
		ctl_kill(ex, 0, r->pid);
		close(sv->d);
		sv->d = -1;
	}
}

/* Tells the zygote about the run ("run", or "spawn" with the executor's
 * end of a new exec socket): from here it watches the deadline and reports
 * the end with the run's id. A "spawn" goes at once (the zygote forks on
 * it). A "run" waits for the notice (NOTICE_US, or the first call the
 * executor makes): most runs end first, and then the zygote, which counts
 * the executor idle until it exits, is never woken for it. Meanwhile the
 * zygote does not watch the deadline, which lies beyond the notice, and a
 * drain's kill finds the executor by pid. A run the zygote cannot be told
 * about is lost; one that a drain missed while it was being registered is
 * killed now. */
static void tell_zygote(struct serve *sv)
{
	struct executor *ex = sv->ex;
	struct run *r = sv->r;
	bool spawn = sv->zfd >= 0;
	struct json_object *m = wire_msg(spawn ? "spawn" : "run");
	int ret;

	sv->told = true;
	wire_msg_int(m, "id", (int64_t)r->id);
	wire_msg_int(m, "pid", r->pid);
	wire_msg_int(m, "deadline_us", sv->deadline_us);
	ret = ctl_send(ex, m, spawn ? &sv->zfd : NULL, spawn ? 1 : 0);
	json_object_put(m);
	if (spawn) {
		close(sv->zfd);
		sv->zfd = -1;
	}
	pthread_mutex_lock(&ex->mu);
	if (ret < 0)
		lose(r);
	else if (ex->drained && !r->exited && !r->killed)
		send_kill(ex, r); /* executor_kill_all ran between registering and sending */
	pthread_mutex_unlock(&ex->mu);
}

static bool run_exited(struct serve *sv)
{
	bool exited;

	pthread_mutex_lock(&sv->ex->mu);
	exited = sv->r->exited;
	pthread_mutex_unlock(&sv->ex->mu);
	return exited;
}

/* The executor is gone: reads what it wrote before exiting. True when that
 * was the result. */
static bool serve_leftovers(struct serve *sv)
{
	while (sv->sock_open) {
		struct pollfd q = {.fd = sv->d, .events = POLLIN};

		if (poll(&q, 1, 0) <= 0)
			break;
		if (serve_one(sv))
			return true;
	}
	return false;
}

/* Serves the executor's calls until its result arrives (true) or it is
 * gone (false): the zygote's report, a lost zygote, or the daemon's own
 * watch, which past deadline + GRACE_US asks the zygote for a kill and one
 * grace period later stops waiting for it. */
static bool serve_run(struct serve *sv)
{
	int64_t deadline = sv->deadline_us;
	bool kill_sent = false;

	for (;;) {
		struct pollfd pfd[2] = {{.fd = sv->r->efd, .events = POLLIN},
					{.fd = sv->d, .events = POLLIN}};
		int64_t now = util_mono_us(), limit = deadline + GRACE_US;
		int pr;

		if (run_exited(sv))
			return serve_leftovers(sv);
		if (!sv->told && now >= sv->notice_us)
			tell_zygote(sv);
		if (!sv->told)
			limit = sv->notice_us;
		if (sv->told && now > limit) {
			if (!kill_sent) {
				ctl_kill(sv->ex, sv->r->id, sv->r->pid);
				kill_sent = true;
				deadline = now; /* one more grace period */
				continue;
			}
			pthread_mutex_lock(&sv->ex->mu);
			lose(sv->r);
			pthread_mutex_unlock(&sv->ex->mu);
			continue;
		}
		pr = poll(pfd, sv->sock_open ? 2 : 1, poll_ms(limit - now));
		if (pr < 0 && errno != EINTR)
			return false;
		/* the result ends the execution: its exit is the zygote's
		 * business (reaped in the background, its process group killed) */
		if (pr > 0 && sv->sock_open && pfd[1].revents && serve_one(sv))
			return true;
	}
}

/* Takes r out of the runs (a later exit report finds nothing to update)
 * and returns how its executor ended: the reason, and *status. */
static int end_run(struct executor *ex, struct run *r, int *status)
{
	int reason;

	pthread_mutex_lock(&ex->mu);
	unregister(ex, r);
	reason = r->reason;
	*status = r->status;
	if (r->killed && r->exited && reason != REASON_LOST)
		reason = REASON_KILLED; /* also when it was killed before its "run" */
	pthread_mutex_unlock(&ex->mu);
	return reason;
}

/* The verdict on an execution that sent no result, by how its executor
 * ended (enum wire_reason). NULL error: said from the deadline or from the
 * wait status. */
static const struct {
	enum store_exec_status status;
	const char *error;
} no_result[] = {
	[REASON_EXITED] = {STORE_EXEC_CRASHED, NULL},
	[REASON_DEADLINE] = {STORE_EXEC_TIMED_OUT, NULL},
	[REASON_KILLED] = {STORE_EXEC_TIMED_OUT, DRAINED_ERROR},
	[REASON_NOSTART] = {STORE_EXEC_CRASHED, "crashed: the executor could not be started"},
	[REASON_LOST] = {STORE_EXEC_CRASHED, "crashed: the executor was lost (its zygote died)"},
	[REASON_SANDBOX] = {STORE_EXEC_CRASHED, "crashed: the executor could not enter its sandbox"},
};

static void verdict_no_result(struct executor_result *res, int reason, int status, long long secs,
			      const char *crash)
{
	if (reason < 0 || (size_t)reason >= sizeof(no_result) / sizeof(no_result[0]))
		reason = REASON_EXITED; /* unknown: the wait status says */
	res->status = no_result[reason].status;
	if (no_result[reason].error) {
		set_error(res, "%s", no_result[reason].error);
	} else if (reason == REASON_DEADLINE) {
		set_error(res, "timed out after %lld s", secs);
	} else if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		const char *abbrev = sigabbrev_np(sig);

		set_error(res, "crashed: SIG%s (%s)%s%s", abbrev ? abbrev : "?", strsignal(sig), crash ? "\n" : "",
			  crash ? crash : "");
	} else {
		set_error(res, "exited with status %d before returning", WEXITSTATUS(status));
	}
}

/* A run lost with its zygote (REASON_LOST) before its executor said
 * anything is run again on the next zygote's executor, while its deadline
 * allows: in the sandbox a plugin does nothing anyone can see but through
 * a host call (a message), so a first attempt that sent none is neither
 * lost nor doubled. This is the run whose idle executor died with the
 * zygote around the moment it was handed the job. Resets r and sv for
 * the next attempt; false when there is none. */
static bool again_after_loss(struct serve *sv, int reason, int attempt)
{
	struct run *r = sv->r;
	uint64_t n;

	if (reason != REASON_LOST || sv->heard || attempt >= 2 || util_mono_us() >= sv->deadline_us)
		return false;
	log_info("executor", "generation %lld: a run lost with its zygote before it began runs again",
		 (long long)sv->ex->opts.generation);
	while (read(r->efd, &n, sizeof(n)) > 0) /* the loss's notify */
		;
	free(r->crash);
	*r = (struct run){.efd = r->efd};
	if (sv->d >= 0)
		close(sv->d);
	sv->d = -1;
	sv->sock_open = true;
	sv->told = false;
	return true;
}

/* One isolated execution, in steps: take an executor (or have one
 * spawned), tell the zygote, serve the executor's calls, decide. When the
 * result came it decides (how the process ended afterwards, a drain kill
 * or a lost zygote that raced with it, does not change that: executor.h);
 * else how the executor ended does. */
static int run_isolated(struct executor *ex, const struct executor_job *job,
			struct hostapi_exec *host, struct executor_result *res)
{
	struct run r = {.efd = -1};
	struct serve sv = {.ex = ex, .r = &r, .host = host, .d = -1, .zfd = -1, .sock_open = true};
	struct json_object *job_msg = NULL;
	int64_t start = util_mono_us();
	int ret, reason, status;
	bool have_result;

	sv.deadline_us = job->deadline_us > 0 ? job->deadline_us : start + DEFAULT_DEADLINE_US;
	r.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r.efd < 0) {
		ret = status_from_errno(errno);
		set_error(res, "executor: %s", status_str(ret));
		goto out;
	}
	job_msg = job_message(job, sv.deadline_us);
	if (!job_msg) {
		set_error(res, "executor: out of memory");
		ret = STATUS_ENOMEM;
		goto out;
	}
	for (int attempt = 0;; attempt++) {
		int64_t t0 = util_mono_us();

		ret = take_executor(&sv, job_msg, res);
		if (ret != 0)
			goto out; /* 1: drained, res says so */
		sv.notice_us = t0 + NOTICE_US < sv.deadline_us ? t0 + NOTICE_US : t0;
		if (sv.zfd >= 0 || sv.notice_us <= t0)
			tell_zygote(&sv);
		have_result = serve_run(&sv);
		reason = end_run(ex, &r, &status);
		if (have_result || !again_after_loss(&sv, reason, attempt))
			break;
	}
	if (have_result)
		result_from_rc(res, host, ex->plugins[job->plugin]->name, sv.rc, sv.output);
	else
		verdict_no_result(res, reason, status, (sv.deadline_us - start + 500000) / 1000000, r.crash);
out:
	/* a no-op unless a step failed with r registered */
	pthread_mutex_lock(&ex->mu);
	unregister(ex, &r);
	pthread_mutex_unlock(&ex->mu);
	free(r.crash);
	json_object_put(job_msg);
	serve_clear(&sv);
	if (r.efd >= 0)
		close(r.efd);
	return ret < 0 ? ret : 0;
}

int executor_run(struct executor *ex, const struct executor_job *job, struct hostapi_exec *host,
		 struct executor_result *res)
{
	int ret;

	memset(res, 0, sizeof(*res));
	res->status = STORE_EXEC_CRASHED;
	if (!ex || !job || !host) {
		set_error(res, "executor: invalid arguments");
		return STATUS_EINVAL;
	}
	if (job->plugin >= ex->n) {
		set_error(res, "script not loaded");
		return STATUS_ENOTFOUND;
	}
	if (ex->kind[job->plugin] == LOADER_EVENT_SCRIPT && !job->event) {
		set_error(res, "executor: %s is an event script and the job has no event",
			  ex->plugins[job->plugin]->name);
		return STATUS_EINVAL;
	}
	if (job->in_process ? !ex->inproc_ok[job->plugin] : !ex->iso_ok[job->plugin]) {
		set_error(res, "script not loaded: %s could not be opened%s",
			  ex->plugins[job->plugin]->name, job->in_process ? " in process" : "");
		return STATUS_ENOTFOUND;
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
