/*
 * dispatch.c - workers that claim events and run their scripts.
 *
 * The store holds the queue: a worker claims one pending event at a time
 * (store_event_claim_batch hands each event out once), runs the event's
 * scripts one after another in config order on the current generation, and
 * marks the event done. Nothing is queued in memory, so max_concurrency
 * bounds the work in flight and a burst of events waits in the store.
 *
 * Every run is journaled the same way, whoever asks for it (a worker, the
 * DELETE handler, validate-connection, an action): the execution is created
 * running, the script runs through the executor with a hostapi_exec that
 * buffers its log lines, then the execution is finished with its status
 * and its last log lines in one write (store_execution_complete). A reader
 * that sees a final status sees all the lines.
 *
 * Fewer writes per event (issue 10): a worker claims an event and creates
 * its first execution in one write (store_event_claim_start, whose plan
 * picks the first script with the store locked), and the end of the
 * event's last script carries the event's "done". An event with one script
 * costs two write calls (plus a batch of log lines per 128 lines), an event
 * with none one. Should a combined end fail (a shutdown interrupted the
 * execution), the separate calls take over and say which part failed.
 *
 * A worker does not wait for the end of its event's last execution on its
 * own: it keeps the end (struct pending_end) and writes it with its next
 * claim (store_event_claim_batch), one write and one commit wait per event
 * instead of two. A worker whose runs are short claims several events in
 * that write and runs them one after another (struct batch): one commit
 * wait for the batch. A worker that empties the queue keeps its ends for
 * a few milliseconds, for the claim of the next event to arrive, before it
 * writes them alone. A run stays counted in until its end is written, so
 * dispatch_stop() waits for it; a worker that stops has written it.
 * Events with no script are claimed and marked done in batches by the same
 * call. No client waits on a worker's run (DELETE, validate-connection and
 * actions write their ends at once).
 */
#include "dispatch.h"

#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hostapi.h"
#include "livelog.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

/* An execution's end not written yet (execution_id 0: only its event's
 * "done", end.event_id). A worker writes its own together with its next
 * claim (store_event_claim_batch), then counts the run out; an end the
 * store refused waits on the dispatcher's unwritten list, retried. */
struct pending_end {
	int64_t execution_id;
	struct store_execution_end end;
	char *error;                 /* end.error, owned */
	struct store_log_line_input *lines; /* end.lines, owned */
	int stat_kind;
	int64_t duration_us;
	struct pending_end *next;    /* on the unwritten list */
};

struct dispatch {
	struct store *store;
	pthread_mutex_t lock;
	pthread_cond_t wake;     /* an event is pending, or stop (CLOCK_MONOTONIC) */
	pthread_cond_t idle;     /* a run ended, for dispatch_stop (CLOCK_MONOTONIC) */
	struct generation *gen;  /* current; under lock */
	uint64_t wake_seq;       /* bumped by dispatch_notify */
	uint32_t looking;        /* workers that look at the queue before they sleep */
	uint32_t waiting;        /* workers waiting on wake */
	struct pending_end *unwritten; /* ends the store refused, retried by the workers */
	atomic_size_t n_unwritten;
	int64_t retry_at_us;     /* when the next retry of unwritten is due */
	int64_t retry_backoff_us;
	bool stopping;
	size_t running;          /* runs in progress, all callers */
	pthread_t *threads;
	uint32_t n_threads;
	struct dispatch_stats stats;
};

void dispatch_outcome_clear(struct dispatch_outcome *o)
{
	if (!o)
		return;
	util_free_all(o->error, o->error_payload, o->output_json, o->metadata);
	memset(o, 0, sizeof(*o));
}

/* Waits on cv (a CLOCK_MONOTONIC condition variable, with d->lock held) for
 * at most us microseconds. */
static void wait_us(struct dispatch *d, pthread_cond_t *cv, int64_t us)
{
	util_cond_wait_us(cv, &d->lock, us);
}

struct generation *dispatch_generation(struct dispatch *d)
{
	struct generation *g;

	pthread_mutex_lock(&d->lock);
	g = generation_ref(d->gen);
	pthread_mutex_unlock(&d->lock);
	return g;
}

void dispatch_swap_generation(struct dispatch *d, struct generation *g)
{
	struct generation *old;

	pthread_mutex_lock(&d->lock);
	old = d->gen;
	d->gen = g;
	d->wake_seq++;
	pthread_cond_broadcast(&d->wake);
	pthread_mutex_unlock(&d->lock);
	/* executions in flight hold their own references: the old generation
	 * drains as they end */
	generation_unref(old);
}

/* A worker that is looking (awake and not running a script) checks
 * wake_seq before it sleeps, so it sees the new event: one is woken only
 * when none is looking. A worker that claims an event to run wakes a
 * sleeping one (worker()), which claims the next or goes back to sleep: a
 * burst reaches every worker at once, and events with nothing to run
 * (claimed in batches) wake no one else. */
void dispatch_notify(struct dispatch *d)
{
	pthread_mutex_lock(&d->lock);
	d->wake_seq++;
	if (d->looking == 0)
		pthread_cond_signal(&d->wake);
	pthread_mutex_unlock(&d->lock);
}

void dispatch_get_stats(struct dispatch *d, struct dispatch_stats *st)
{
	pthread_mutex_lock(&d->lock);
	*st = d->stats;
	st->running = d->running;
	pthread_mutex_unlock(&d->lock);
}

/* One run of one script: what the store records of it (in.plugin_version
 * is set by run_once), and what the host functions need. */
struct run {
	struct store_execution_input in;  /* kind, event, script, connection */
	struct generation *gen;
	const struct config_integration *integration;
	int event_type;              /* enum evs_event_type; 0 for actions */
	const char *candidate_json;  /* validate-connection */
	const char *input_json;      /* actions */
	int depth;
	struct hostapi_tree *tree;   /* the caller's action tree; NULL: a root */
	bool gated;                  /* does not start once the dispatcher stops */
	int64_t execution_id;        /* > 0: created already and counted in (claim_start) */
	int64_t done_event_id;       /* > 0: mark this event done with the run's end */
	bool event_done;             /* out: the run's end marked done_event_id done */
	struct pending_end *defer;   /* non-NULL: hand the end's write to the worker */
};


/* A run of kind on g for a connection of integ; the caller says what runs. */
static struct run run_for(struct generation *g, const struct config_integration *integ,
			  enum store_exec_kind kind, const char *connection_id,
			  const char *provider_config_key)
{
	struct run r = {
		.in = {.kind = kind, .connection_id = connection_id,
		       .provider_config_key = provider_config_key},
		.gen = g,
		.integration = integ,
	};

	return r;
}

/* A run of one of the scripts of event event_id (type: an enum
 * config_event); the caller names the script. */
static struct run event_run(struct generation *g, const struct config_integration *integ, int type,
			    int64_t event_id, const char *connection_id, const char *provider_config_key)
{
	struct run r = run_for(g, integ, STORE_EXEC_EVENT, connection_id, provider_config_key);

	r.in.event_id = event_id;
	r.in.event = config_event_name(type);
	r.event_type = type + 1; /* enum evs_event_type */
	return r;
}

/* run_once(): the run did not start because the dispatcher stops. */
#define RUN_STOPPING 1

/* Counts a run in, unless it is gated and the dispatcher stops. The check and
 * the count are under one lock: dispatch_stop() sets stopping, then waits for
 * running to fall to 0, so a run either is counted or never starts. */
static bool run_begin(struct dispatch *d, bool gated)
{
	bool go;

	pthread_mutex_lock(&d->lock);
	go = !(gated && d->stopping);
	if (go)
		d->running++;
	pthread_mutex_unlock(&d->lock);
	return go;
}

const double dispatch_duration_bounds[DISPATCH_DURATION_BUCKETS] = {
	0.001, 0.005, 0.025, 0.1, 0.5, 1, 5, 30, 120, 600};

const char *dispatch_stat_kind_name(int kind)
{
	return kind == DISPATCH_STAT_ACTION ? "action" : config_event_name(kind);
}

static int run_stat_kind(const struct run *r)
{
	return r->in.kind == STORE_EXEC_ACTION ? DISPATCH_STAT_ACTION : r->event_type - 1;
}

/* Counts a run out; kind -1 for a run that recorded nothing (no stats). */
static void run_end(struct dispatch *d, int kind, enum store_exec_status st, int64_t duration_us)
{
	double s = (double)duration_us / 1e6;

	pthread_mutex_lock(&d->lock);
	d->running--;
	if (kind >= 0 && kind < DISPATCH_STAT_KINDS && (unsigned)st < 6) {
		d->stats.finished[kind][st]++;
		d->stats.duration_count[kind]++;
		d->stats.duration_sum_s[kind] += s;
		for (int b = 0; b < DISPATCH_DURATION_BUCKETS; b++)
			if (s <= dispatch_duration_bounds[b])
				d->stats.duration_le[kind][b]++;
	}
	pthread_cond_broadcast(&d->idle);
	pthread_mutex_unlock(&d->lock);
	if (kind >= 0)
		livelog_changed(); /* its end is in the store: live readers look again */
}

/* ---------------------------------------------------------------------------
 * One execution.
 */


static int trigger(void *user, struct hostapi_exec *parent, const char *action,
		   const char *input_json, char **output_json, char *err, size_t errlen);
static int trigger_for(void *user, struct hostapi_exec *parent, const char *connection_id,
		       const char *action, const char *input_json, char **output_json, char *err,
		       size_t errlen);

static const char *plugin_kind_name(bool action)
{
	return action ? "an action" : "an event script";
}

/* Whether p is loaded as what r runs (an action or an event script); if
 * not, res says why. */
static bool plugin_fits(const struct run *r, const struct loader_plugin *p,
			struct executor_result *res)
{
	bool action = r->in.kind == STORE_EXEC_ACTION;

	if (p && p->kind == (action ? LOADER_ACTION : LOADER_EVENT_SCRIPT))
		return true;
	res->status = STORE_EXEC_FAILED;
	if (asprintf(&res->error, p ? "script not loaded: %s is %s, not %s" : "script not loaded: %s",
		     r->in.script, plugin_kind_name(p && p->kind == LOADER_ACTION),
		     plugin_kind_name(action)) < 0)
		res->error = NULL;
	return false;
}

/* The host functions' side of execution execution_id of r. */
static int host_new(struct dispatch *d, const struct run *r, int64_t execution_id,
		    int64_t deadline_us, struct hostapi_tree *tree, struct hostapi_exec **hx)
{
	const struct config_host *cfg = generation_config(r->gen);
	struct hostapi_exec_info info = {
		.store = d->store,
		.config = cfg,
		.integration = r->integration,
		.provider = r->integration
				    ? config_provider_find(cfg->catalogue, r->integration->provider)
				    : NULL,
		.execution_id = execution_id,
		.event_id = r->in.event_id,
		.event_type = r->event_type,
		.script = r->in.script,
		.connection_id = r->in.connection_id,
		.provider_config_key = r->in.provider_config_key,
		.depth = r->depth,
		.deadline_us = deadline_us,
		.candidate_json = r->candidate_json,
		.trigger = trigger,
		.trigger_user = d,
		.trigger_for = trigger_for,
		.tree = tree,
	};

	return hostapi_exec_new(&info, hx);
}

/* Runs plugin idx for r through the executor, with the host functions of
 * execution o->execution_id, until the script's deadline (from t0): res
 * gets the verdict, o the candidate's metadata, logs the log lines not
 * written yet (the caller's to write and free). Frees the host side before
 * it returns. */
/* An execution's log lines not written yet (hostapi_exec_take_logs). */
struct run_logs {
	struct store_log_line_input *lines;
	size_t n;
	int64_t dropped;
};

static void execute(struct dispatch *d, const struct run *r, size_t idx, int64_t t0,
		    struct dispatch_outcome *o, struct executor_result *res, struct run_logs *logs)
{
	const struct config_host *cfg = generation_config(r->gen);
	int64_t deadline_us = t0 + (int64_t)config_script_deadline(cfg, r->in.script) * 1000000;
	struct hostapi_tree root_tree, *tree = r->tree;
	struct hostapi_exec *hx = NULL;
	struct evs_event ev = {
		.size = sizeof(ev),
		.type = (uint32_t)r->event_type,
		.name = r->in.event,
		.event_id = r->in.event_id,
		.execution_id = o->execution_id,
		.connection_id = r->in.connection_id,
		.provider_config_key = r->in.provider_config_key,
	};
	struct executor_job job = {
		.plugin = idx,
		.in_process = config_script_execution(cfg, r->integration, r->in.script) ==
			      CONFIG_EXEC_IN_PROCESS,
		.event = r->in.kind == STORE_EXEC_EVENT ? &ev : NULL,
		.input_json = r->input_json ? r->input_json : "null",
		.deadline_us = deadline_us,
	};

	if (tree == NULL) {
		/* a root: its deadline and its cap are its tree's */
		root_tree.root_execution_id = o->execution_id;
		root_tree.deadline_us = deadline_us;
		root_tree.max_executions = cfg->action_tree_max_executions;
		atomic_init(&root_tree.executions, 1);
		tree = &root_tree;
	} else if (tree->deadline_us < deadline_us) {
		job.deadline_us = deadline_us = tree->deadline_us;  /* what is left of the root's */
	}
	if (host_new(d, r, o->execution_id, deadline_us, tree, &hx) < 0) {
		res->status = STORE_EXEC_FAILED;
		res->error = strdup("the host could not set up the execution (out of memory)");
		return;
	}
	if (executor_run(generation_executor(r->gen), &job, hx, res) < 0) {
		if (!res->error)
			res->error = strdup("the executor could not start the execution");
		res->status = STORE_EXEC_FAILED;
	}
	if (r->candidate_json && hostapi_candidate_metadata(hx))
		o->metadata = strdup(hostapi_candidate_metadata(hx));
	if (hostapi_action_error_payload(hx))
		o->error_payload = strdup(hostapi_action_error_payload(hx));
	hostapi_exec_take_logs(hx, &logs->lines, &logs->n, &logs->dropped);
	hostapi_exec_free(hx);
}

/* ---------------------------------------------------------------------------
 * Ends the store refused. A write that fails because the store fails (a
 * full disk, an I/O error) is kept here and retried by the workers, oldest
 * first, with a backoff, until the store takes it: nothing stays running or
 * claimed once the store recovers. Only what is still here when the daemon
 * stops is lost (the next start marks it interrupted, as after a crash).
 */

#define RETRY_MIN_US 100000LL
#define RETRY_MAX_US 5000000LL

static void pending_end_free(struct pending_end *p)
{
	hostapi_logs_free(p->lines, p->end.n_lines);
	free(p->error);
	memset(p, 0, sizeof(*p));
}

/* Moves *p (its allocations too) onto the unwritten list. */
static void unwritten_add(struct dispatch *d, struct pending_end *p)
{
	struct pending_end *u = malloc(sizeof(*u)), **tail;

	if (!u) {
		log_error("dispatch", "execution %lld / event %lld: its end is lost (out of memory)",
			  (long long)p->execution_id, (long long)p->end.event_id);
		pending_end_free(p);
		return;
	}
	*u = *p;
	u->next = NULL;
	memset(p, 0, sizeof(*p));
	log_warn("dispatch", "execution %lld / event %lld: the store refused its end; retrying "
		 "until it takes it", (long long)u->execution_id, (long long)u->end.event_id);
	pthread_mutex_lock(&d->lock);
	for (tail = &d->unwritten; *tail; tail = &(*tail)->next)
		;
	*tail = u;
	atomic_fetch_add(&d->n_unwritten, 1);
	if (d->retry_at_us == 0) {
		d->retry_backoff_us = RETRY_MIN_US;
		d->retry_at_us = util_mono_us() + RETRY_MIN_US;
	}
	pthread_mutex_unlock(&d->lock);
}

/* Marks a claimed event done, or keeps that for a retry. */
static void event_finish(struct dispatch *d, int64_t event_id)
{
	struct pending_end p = {.end = {.event_id = event_id}};
	int ret = store_event_finish(d->store, event_id);

	if (ret == 0 || ret == STORE_ESTATE || ret == STORE_ENOTFOUND)
		return;
	log_error("dispatch", "marking event %lld done failed: %s", (long long)event_id,
		  status_str(ret));
	unwritten_add(d, &p);
}

/* One retry: the end in one write, or the event's "done". 0 once the
 * store has it, or when there is nothing left to write. */
static int unwritten_write(struct dispatch *d, struct pending_end *u)
{
	int ret = u->execution_id > 0 ? store_execution_complete(d->store, u->execution_id, &u->end)
				      : store_event_finish(d->store, u->end.event_id);

	/* not running / not claimed any more: something else ended it */
	return ret == STORE_ESTATE || ret == STORE_ENOTFOUND ? 0 : ret;
}

/* Retries the unwritten ends when a retry is due (force: now), oldest
 * first; the first failure backs off. */
static void unwritten_flush(struct dispatch *d, bool force)
{
	for (;;) {
		struct pending_end *u;
		int ret;

		pthread_mutex_lock(&d->lock);
		u = d->unwritten;
		if (!u || (!force && util_mono_us() < d->retry_at_us)) {
			pthread_mutex_unlock(&d->lock);
			return;
		}
		d->unwritten = u->next;
		atomic_fetch_sub(&d->n_unwritten, 1);
		pthread_mutex_unlock(&d->lock);

		ret = unwritten_write(d, u);
		pthread_mutex_lock(&d->lock);
		if (ret == 0) {
			if (!d->unwritten)
				d->retry_at_us = 0;
		} else {
			u->next = d->unwritten;
			d->unwritten = u;
			atomic_fetch_add(&d->n_unwritten, 1);
			d->retry_backoff_us = d->retry_backoff_us * 2 > RETRY_MAX_US
						      ? RETRY_MAX_US : d->retry_backoff_us * 2;
			d->retry_at_us = util_mono_us() + d->retry_backoff_us;
		}
		pthread_mutex_unlock(&d->lock);
		if (ret != 0) {
			log_warn("dispatch", "the store still refuses %zu ends: %s",
				 atomic_load(&d->n_unwritten), status_str(ret));
			return;
		}
		log_info("dispatch", "execution %lld / event %lld: its end is recorded now",
			 (long long)u->execution_id, (long long)u->end.event_id);
		pending_end_free(u);
		free(u);
	}
}

/* At stop: a last try, then what is left is said and dropped. */
static void unwritten_drop(struct dispatch *d)
{
	struct pending_end *u, *next;

	unwritten_flush(d, true);
	for (u = d->unwritten; u; u = next) {
		next = u->next;
		log_error("dispatch", "execution %lld / event %lld: its end (%s) was never recorded: "
			  "the store refused it until the daemon stopped; the next start marks "
			  "it interrupted", (long long)u->execution_id, (long long)u->end.event_id,
			  u->execution_id ? store_exec_status_name(u->end.status) : "done");
		pending_end_free(u);
		free(u);
	}
	d->unwritten = NULL;
	atomic_store(&d->n_unwritten, 0);
}

/* Writes the end of execution id: in one write (store_execution_complete)
 * or, should that fail, apart (its log lines, its status, its event's
 * "done"). A shutdown past its deadline may have marked the execution
 * interrupted already: then STORE_ESTATE, and the event stays claimed.
 * *event_done: end->event_id was marked done. */
static int write_end(struct dispatch *d, int64_t id, const struct store_execution_end *end,
		     bool *event_done)
{
	int ret;

	*event_done = false;
	ret = store_execution_complete(d->store, id, end);
	if (ret == 0) {
		*event_done = end->event_id > 0;
		return 0;
	}
	if (ret != STORE_ESTATE)
		return ret; /* the store failed: the caller keeps the end for a retry */
	if (end->n_lines > 0 || end->dropped > 0) {
		ret = store_execution_append_logs(d->store, id, end->lines, end->n_lines,
						  end->dropped);
		if (ret < 0)
			log_warn("dispatch", "execution %lld: %zu log lines not written: %s",
				 (long long)id, end->n_lines, status_str(ret));
	}
	ret = store_execution_finish(d->store, id, end->status, end->error, end->duration_ms);
	if (ret == 0 && end->event_id > 0) {
		event_finish(d, end->event_id);
		*event_done = true;
	}
	if (ret < 0 && ret != STORE_ESTATE)
		log_error("dispatch", "recording the end of execution %lld failed: %s",
			  (long long)id, status_str(ret));
	return ret;
}

/* Fills p with a copy of end that owns its error, and takes logs' lines. */
static void pending_from(struct pending_end *p, int64_t id, const struct store_execution_end *end,
			 struct run_logs *logs, int stat_kind, int64_t duration_us)
{
	p->execution_id = id;
	p->end = *end;
	p->error = end->error ? strdup(end->error) : NULL;
	p->end.error = end->error && !p->error ? "(out of memory)" : p->error;
	p->lines = logs->lines;
	p->end.lines = logs->lines;
	logs->lines = NULL;
	logs->n = 0;
	p->stat_kind = stat_kind;
	p->duration_us = duration_us;
}

/* Hands res to o and records the end of execution o->execution_id with its
 * last log lines and, when r says so, its event's "done" (write_end); or,
 * with r->defer, leaves that write to the worker. Counts the run out
 * unless deferred. */
static void record_finish(struct dispatch *d, struct run *r, int64_t t0,
			  struct executor_result *res, struct dispatch_outcome *o,
			  struct run_logs *logs)
{
	int64_t duration_us = util_mono_us() - t0;
	struct store_execution_end end;
	int ret = 0;

	o->status = res->status;
	o->error = res->error;
	o->output_json = res->output_json;
	res->error = res->output_json = NULL;
	end = (struct store_execution_end){
		.status = o->status,
		.error = o->error,
		.duration_ms = duration_us / 1000,
		.lines = logs->lines,
		.n_lines = logs->n,
		.dropped = logs->dropped,
		/* an interrupted run leaves its event claimed (run_event_on) */
		.event_id = o->status == STORE_EXEC_INTERRUPTED ? 0 : r->done_event_id,
	};
	if (r->defer) {
		pending_from(r->defer, o->execution_id, &end, logs, run_stat_kind(r), duration_us);
		r->event_done = end.event_id > 0;
	} else {
		ret = write_end(d, o->execution_id, &end, &r->event_done);
		if (ret == STORE_ESTATE) {
			o->status = STORE_EXEC_INTERRUPTED;
		} else if (ret < 0) {
			struct pending_end p;

			/* not reported as final until the store has it */
			pending_from(&p, o->execution_id, &end, logs, run_stat_kind(r), duration_us);
			unwritten_add(d, &p);
			o->unrecorded = true;
			r->event_done = end.event_id > 0; /* with the retry */
		}
	}
	log_info("dispatch", "execution %lld: %s %s for %s/%s (generation %lld): %s in %lld ms%s%s",
		 (long long)o->execution_id, r->in.kind == STORE_EXEC_ACTION ? "action" : "script",
		 r->in.script, r->in.provider_config_key, r->in.connection_id,
		 (long long)generation_number(r->gen), store_exec_status_name(o->status),
		 (long long)(duration_us / 1000), o->error ? ": " : "", o->error ? o->error : "");
	/* GET /metrics (a deferred end that a shutdown then marks interrupted
	 * stays counted with the status it ran to) */
	metrics_execution(r->in.provider_config_key, r->in.script,
			  r->in.kind == STORE_EXEC_ACTION ? "action" : r->in.event, store_exec_status_name(o->status));
	if (!r->defer)
		run_end(d, run_stat_kind(r), o->status, duration_us);
}

/* The worker's deferred end: written already with its next claim
 * (written), or now. Then the run is counted out. */
static void pending_end_done(struct dispatch *d, struct pending_end *p, bool written)
{
	enum store_exec_status st = p->end.status;
	bool event_done;

	int kind = p->stat_kind, ret = 0;
	int64_t duration_us = p->duration_us;

	if (!p->execution_id)
		return;
	if (!written)
		ret = write_end(d, p->execution_id, &p->end, &event_done);
	if (ret == STORE_ESTATE) {
		log_info("dispatch", "execution %lld: marked interrupted by the shutdown before "
			 "its end was recorded", (long long)p->execution_id);
		st = STORE_EXEC_INTERRUPTED;
	}
	if (ret < 0 && ret != STORE_ESTATE)
		unwritten_add(d, p); /* takes it */
	else
		pending_end_free(p);
	run_end(d, kind, st, duration_us);
}

/* Runs r->in.script once and journals it: the execution is recorded
 * running (unless r->execution_id says it is already), the plugin runs (if
 * it is loaded as what r runs), and the execution is finished with its
 * status and its log lines (and r->done_event_id marked done: then
 * r->event_done is set). Returns 0 with o filled; RUN_STOPPING when r is
 * gated and the dispatcher stops; a negative code when the execution could
 * not be recorded. In the last two cases nothing ran and nothing was
 * recorded. */
static int run_once(struct dispatch *d, struct run *r, struct dispatch_outcome *o)
{
	struct store_execution_input in = r->in;
	struct executor_result res = {0};
	struct run_logs logs = {0};
	struct loader_plugin *p;
	int64_t t0 = util_mono_us();
	size_t idx = 0;
	int ret;

	memset(o, 0, sizeof(*o));
	r->event_done = false;
	snprintf(o->script, sizeof(o->script), "%s", r->in.script);
	p = generation_plugin(r->gen, r->in.script, &idx);
	in.plugin_version = p ? p->version : NULL;
	if (r->execution_id > 0) {
		o->execution_id = r->execution_id; /* claim_start created and counted it */
	} else {
		if (!run_begin(d, r->gated))
			return RUN_STOPPING;
		ret = store_execution_create(d->store, &in, &o->execution_id);
		if (ret < 0) {
			log_error("dispatch", "recording an execution of %s failed: %s",
				  r->in.script, status_str(ret));
			run_end(d, -1, 0, 0);
			return ret;
		}
	}
	livelog_changed(); /* the execution is recorded running */
	if (plugin_fits(r, p, &res))
		execute(d, r, idx, t0, o, &res, &logs);
	record_finish(d, r, t0, &res, o, &logs);
	hostapi_logs_free(logs.lines, logs.n);
	return 0;
}

static const struct config_integration *integration_of(const struct generation *g,
							const char *provider_config_key)
{
	return config_integration_find(generation_config(g), provider_config_key);
}

/* ---------------------------------------------------------------------------
 * Events.
 */

/* The scripts event ev runs on g. */
struct event_scripts {
	const struct config_integration *integ;
	int type;                    /* enum config_event */
	const char *single[1];
	const char *const *scripts;
	size_t n;
};

/* Fills es for ev; false (logged) when ev's type is unknown. An integration
 * that is not configured runs no scripts (logged). */
static bool event_scripts(struct generation *g, const struct store_event *ev,
			  struct event_scripts *es)
{
	memset(es, 0, sizeof(*es));
	es->integ = integration_of(g, ev->provider_config_key);
	es->type = config_event_from_name(ev->type);
	if (es->type < 0) {
		log_error("dispatch", "event %lld has unknown type '%s'", (long long)ev->id, ev->type);
		return false;
	}
	if (ev->script[0]) { /* a retry of one execution */
		es->single[0] = ev->script;
		es->scripts = es->single;
		es->n = 1;
	} else if (es->integ) {
		es->scripts = (const char *const *)es->integ->events[es->type].items;
		es->n = es->integ->events[es->type].n;
	} else {
		log_warn("dispatch", "event %lld: integration %s is not in the configuration; no "
			 "scripts to run", (long long)ev->id, ev->provider_config_key);
	}
	return true;
}

/* Runs ev's scripts on g and marks ev done (with the end of its last
 * script, or apart). queued: ev was claimed from the store by a worker
 * (not DELETE's own event). first: the execution of its first script, when
 * store_event_claim_start created it (and counted it in), else 0. */
static int run_event_on(struct dispatch *d, struct generation *g, const struct store_event *ev,
			bool queued, int64_t first, struct pending_end *defer)
{
	struct event_scripts es;
	bool done = false;
	int ret;

	if (!event_scripts(g, ev, &es))
		goto done;
	for (size_t i = 0; i < es.n; i++) {
		struct run r = event_run(g, es.integ, es.type, ev->id, ev->connection_id,
					 ev->provider_config_key);
		struct dispatch_outcome o;
		bool interrupted;

		r.in.script = es.scripts[i];
		r.execution_id = i == 0 ? first : 0;
		r.done_event_id = i + 1 == es.n ? ev->id : 0;
		r.defer = i + 1 == es.n ? defer : NULL;
		/* once stopping, no script of a claimed event starts, and no
		 * further script of any event */
		r.gated = queued || i > 0;
		/* several scripts for one event run one after another, in
		 * config order; a failure does not stop the next one */
		ret = run_once(d, &r, &o);
		if (ret < 0 && !queued)
			continue; /* DELETE deletes anyway: nothing could run this later */
		if (ret == RUN_STOPPING) {
			/* the event stays claimed: the next start requeues it if
			 * none of its scripts started, else marks it interrupted */
			log_info("dispatch", "event %lld left unfinished: the daemon is stopping",
				 (long long)ev->id);
			return 0;
		}
		if (ret < 0) {
			/* the store failed: the scripts from this one on do not
			 * run, and the event is done (once the store takes it) */
			log_error("dispatch", "event %lld: script %s and those after it did not run: "
				  "their executions could not be recorded", (long long)ev->id,
				  r.in.script);
			break;
		}
		done = r.event_done;
		interrupted = o.status == STORE_EXEC_INTERRUPTED;
		dispatch_outcome_clear(&o);
		if (interrupted) {
			/* marked interrupted by a shutdown past its deadline: the
			 * event stays claimed, as above */
			log_info("dispatch", "event %lld left unfinished: the daemon is stopping",
				 (long long)ev->id);
			return 0;
		}
	}
done:
	if (!done)
		event_finish(d, ev->id);
	return 0;
}

int dispatch_run_event(struct dispatch *d, const struct store_event *ev)
{
	struct generation *g = dispatch_generation(d);
	int ret = run_event_on(d, g, ev, false, 0, NULL);

	generation_unref(g);
	return ret;
}

/* What a worker's claim planned (store_event_claim_batch's plan). */
struct claim_plan {
	struct dispatch *d;
	struct generation *g; /* a reference, taken by the plan */
	size_t counted;       /* first runs counted in (run_begin) */
};

/* store_claim_fn: the first execution of the event just claimed, on the
 * newest generation. Runs with the store locked: no store calls. An event
 * with no script to run is done at once; claimed as the daemon stops, it
 * starts nothing (its first run is gated) and the next start requeues it. */
static int plan_first(void *user, const struct store_event *ev, struct store_execution_input *in)
{
	struct claim_plan *cp = user;
	struct event_scripts es;
	struct loader_plugin *p;
	struct run r;

	if (!cp->g)
		cp->g = dispatch_generation(cp->d);
	if (!event_scripts(cp->g, ev, &es) || es.n == 0)
		return STORE_CLAIM_DONE;
	if (!run_begin(cp->d, true))
		return STORE_CLAIM_ONLY;
	cp->counted++;
	r = event_run(cp->g, es.integ, es.type, ev->id, ev->connection_id,
		      ev->provider_config_key);
	r.in.script = es.scripts[0];
	p = generation_plugin(cp->g, r.in.script, NULL);
	r.in.plugin_version = p ? p->version : NULL;
	*in = r.in;
	return STORE_CLAIM_START;
}

/* A worker's batch: the events it claimed in one write, and the ends of
 * their last runs, which it writes with its next claim. A worker whose
 * runs are short claims several events at once, as many as run in about
 * WORKER_BATCH_US by its own recent runs (at most WORKER_BATCH, at least
 * one): a batch then costs one commit wait instead of one per event,
 * while a slow script is never held up behind another (store.h,
 * store_event_claim_batch: all the runs of a batch are recorded started
 * by the same write). When no other worker sleeps (all are running
 * events: a backlog), nothing the batch holds could start sooner
 * elsewhere, and the budget is WORKER_BATCH_BUSY_US: isolated runs, whose
 * time is mostly the executor's round trip, then share a claim too. */
#define WORKER_BATCH 16
#define WORKER_BATCH_US 2000
#define WORKER_BATCH_BUSY_US 16000

struct batch {
	struct store_claimed claimed[WORKER_BATCH];
	struct pending_end pend[WORKER_BATCH];
	size_t n_pend;
	int64_t run_us; /* an event's runs, a moving average; 0: none yet */
};

static size_t batch_size(const struct batch *b, bool busy)
{
	int64_t budget = busy ? WORKER_BATCH_BUSY_US : WORKER_BATCH_US;
	int64_t k = b->run_us > 0 ? budget / b->run_us : 1;

	return k < 1 ? 1 : k > WORKER_BATCH ? WORKER_BATCH : (size_t)k;
}

/* The ends of b's runs, written with the claim (written) or now. */
static void batch_ends_done(struct dispatch *d, struct batch *b, bool written)
{
	for (size_t i = 0; i < b->n_pend; i++)
		pending_end_done(d, &b->pend[i], written);
	b->n_pend = 0;
}

/* Runs the n events just claimed, one after another, each handing the end
 * of its last run to b. */
static void batch_run(struct dispatch *d, struct generation *g, struct batch *b, size_t n)
{
	int64_t t0 = util_mono_us(), us;
	size_t started = 0;

	for (size_t i = 0; i < n; i++) {
		const struct store_claimed *c = &b->claimed[i];

		if (c->execution_id == 0) {
			log_info("dispatch", "event %lld left unfinished: the daemon is stopping",
				 (long long)c->ev.id);
			continue;
		}
		run_event_on(d, g, &c->ev, true, c->execution_id, &b->pend[b->n_pend]);
		if (b->pend[b->n_pend].execution_id > 0)
			b->n_pend++;
		started++;
	}
	if (started == 0)
		return;
	us = (util_mono_us() - t0) / (int64_t)started;
	b->run_us = b->run_us ? (3 * b->run_us + us) / 4 : us;
	if (b->run_us < 1)
		b->run_us = 1;
}

/* Sleeps until notified (or a while, in case an event was written by
 * something that does not notify) unless wake_seq moved on from seq. */
static void worker_sleep(struct dispatch *d, uint64_t seq, int64_t us)
{
	pthread_mutex_lock(&d->lock);
	if (!d->stopping && d->wake_seq == seq) {
		if (d->unwritten) { /* and until the next retry */
			int64_t due = d->retry_at_us - util_mono_us();

			us = due < 1000 ? 1000 : due < us ? due : us;
		}
		d->looking--;
		d->waiting++;
		wait_us(d, &d->wake, us);
		d->waiting--;
		d->looking++;
	}
	pthread_mutex_unlock(&d->lock);
}

/* One claim of a worker: the ends of its last batch and its next batch in
 * one write, then the batch's runs. 0 when it claimed something; *more:
 * the claim left events pending. */
static int worker_claim(struct dispatch *d, struct batch *b, int64_t number, bool busy,
			bool *more)
{
	struct claim_plan cp = {.d = d};
	struct store_completion ends[WORKER_BATCH];
	struct store_claim_batch c = {
		.ends = ends, .n_ends = b->n_pend, .generation = number, .plan = plan_first,
		.user = &cp, .out = b->claimed, .max = batch_size(b, busy),
	};
	int ret;

	for (size_t i = 0; i < b->n_pend; i++)
		ends[i] = (struct store_completion){b->pend[i].execution_id, &b->pend[i].end};
	ret = store_event_claim_batch(d->store, &c);
	batch_ends_done(d, b, ret == 0 || ret == STORE_ENOTFOUND);
	*more = ret == 0 && c.more;
	if (ret == 0 && c.n > 0) {
		/* a sleeping worker takes what this one left while it runs (and
		 * wakes the next if it leaves more) */
		pthread_mutex_lock(&d->lock);
		d->looking--;
		if (c.more && d->waiting > 0)
			pthread_cond_signal(&d->wake);
		pthread_mutex_unlock(&d->lock);
		batch_run(d, cp.g, b, c.n);
		pthread_mutex_lock(&d->lock);
		d->looking++;
		pthread_mutex_unlock(&d->lock);
	}
	if (ret != 0) {
		for (size_t i = 0; i < cp.counted; i++)
			run_end(d, -1, 0, 0); /* the claim was rolled back: nothing ran */
		if (ret != STORE_ENOTFOUND)
			log_error("dispatch", "claiming an event failed: %s", status_str(ret));
	}
	generation_unref(cp.g);
	return ret;
}

/* How long a worker that emptied the queue keeps the ends of its runs for
 * its next claim, rather than write them apart: under a steady trickle of
 * events, ends and claims share writes. */
#define WORKER_LINGER_US 5000

static void *worker(void *arg)
{
	struct dispatch *d = arg;
	struct batch *b = calloc(1, sizeof(*b));

	if (!b) {
		log_error("dispatch", "a worker could not start: out of memory");
		return NULL;
	}
	for (;;) {
		int64_t number;
		uint64_t seq;
		bool more, busy;
		int ret;

		pthread_mutex_lock(&d->lock);
		if (d->stopping) {
			pthread_mutex_unlock(&d->lock);
			break;
		}
		seq = d->wake_seq;
		number = generation_number(d->gen);
		busy = d->waiting == 0;
		pthread_mutex_unlock(&d->lock);
		if (atomic_load(&d->n_unwritten) > 0)
			unwritten_flush(d, false);

		ret = worker_claim(d, b, number, busy, &more);
		if (more)
			continue;
		/* the queue is empty (or the store failed): wait for an event,
		 * briefly while ends wait to be written */
		worker_sleep(d, seq, b->n_pend > 0 ? WORKER_LINGER_US
				   : ret == 0 || ret == STORE_ENOTFOUND ? 1000000 : 2000000);
	}
	batch_ends_done(d, b, false);
	free(b);
	return NULL;
}

/* ---------------------------------------------------------------------------
 * Synchronous runs.
 */

/* Returns the candidate with its "metadata" replaced by metadata (a JSON
 * object text), malloc'd; NULL on error. */
static char *candidate_with_metadata(const char *candidate, const char *metadata)
{
	struct json_object *c = json_tokener_parse(candidate);
	struct json_object *m = json_tokener_parse(metadata);
	char *out = NULL;

	if (c && m && json_object_is_type(c, json_type_object)) {
		json_object_object_add(c, "metadata", m);
		m = NULL;
		out = strdup(json_object_to_json_string_ext(c, JSON_C_TO_STRING_PLAIN));
	}
	json_object_put(m);
	json_object_put(c);
	return out;
}

int dispatch_validate(struct dispatch *d, const char *provider_config_key,
		      const char *connection_id, const char *candidate_json,
		      struct dispatch_outcome *o)
{
	struct generation *g = dispatch_generation(d);
	const struct config_integration *integ = integration_of(g, provider_config_key);
	const struct config_strlist *scripts;
	char *candidate = NULL, *metadata = NULL;
	int64_t event_id = 0;
	bool done = false;
	int ret = 0;

	memset(o, 0, sizeof(*o));
	if (!integ) {
		ret = STATUS_ENOTFOUND;
		goto out;
	}
	scripts = &integ->events[CONFIG_EVENT_VALIDATE_CONNECTION];
	if (scripts->n == 0)
		goto out;
	ret = store_event_insert(d->store, STORE_EVENT_VALIDATE_CONNECTION, connection_id,
				 provider_config_key, true, generation_number(g), &event_id);
	if (ret < 0)
		goto out;
	candidate = strdup(candidate_json);
	if (!candidate) {
		ret = STATUS_ENOMEM;
		goto finish;
	}
	for (size_t i = 0; i < scripts->n; i++) {
		struct run r = event_run(g, integ, CONFIG_EVENT_VALIDATE_CONNECTION, event_id,
					 connection_id, provider_config_key);
		struct dispatch_outcome one;

		r.in.script = scripts->items[i];
		r.candidate_json = candidate;
		r.done_event_id = i + 1 == scripts->n ? event_id : 0;
		ret = run_once(d, &r, &one);
		if (ret < 0)
			goto finish;
		done = r.event_done;
		if (one.unrecorded) {
			/* its verdict is not in the journal: not acted upon */
			dispatch_outcome_clear(&one);
			ret = STATUS_EIO;
			goto finish;
		}
		if (one.status != STORE_EXEC_SUCCEEDED) {
			*o = one;
			ret = 1;
			goto finish;
		}
		if (one.metadata) {
			/* the next script sees what this one left */
			char *next = candidate_with_metadata(candidate, one.metadata);

			if (next) {
				free(candidate);
				candidate = next;
			}
			free(metadata);
			metadata = one.metadata;
			one.metadata = NULL;
		}
		dispatch_outcome_clear(&one);
	}
	o->metadata = metadata;
	metadata = NULL;
	ret = 0;
finish:
	if (!done)
		event_finish(d, event_id);
out:
	free(candidate);
	free(metadata);
	generation_unref(g);
	return ret;
}

static bool listed(const struct config_strlist *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->items[i], name) == 0)
			return true;
	return false;
}

/* dispatch_action() within tree (NULL: the action is a root). A nested
 * action starts only before its tree's deadline and under its cap. */
static int action_in_tree(struct dispatch *d, const char *provider_config_key, const char *connection_id,
			  const char *name, const char *input_json, int64_t parent, int depth,
			  struct hostapi_tree *tree, struct dispatch_outcome *o)
{
	struct generation *g;
	const struct config_integration *integ;
	struct loader_plugin *p;
	int ret;

	memset(o, 0, sizeof(*o));
	if (depth > DISPATCH_ACTION_DEPTH_MAX)
		return EVS_EDEPTH;
	if (tree && util_mono_us() >= tree->deadline_us)
		return EVS_ETIMEDOUT;
	if (tree && atomic_fetch_add(&tree->executions, 1) >= tree->max_executions)
		return EVS_EDENIED;
	g = dispatch_generation(d);
	integ = integration_of(g, provider_config_key);
	p = generation_plugin(g, name, NULL);
	if (!integ || !listed(&integ->actions, name) || !p || p->kind != LOADER_ACTION) {
		ret = EVS_ENOTFOUND;
		goto out;
	}
	struct run r = run_for(g, integ, STORE_EXEC_ACTION, connection_id, provider_config_key);

	r.in.script = name;
	r.in.parent_execution_id = parent;
	r.input_json = input_json;
	r.depth = depth;
	r.tree = tree;
	ret = run_once(d, &r, o) < 0 ? EVS_EHOST : o->unrecorded ? STATUS_EIO : 0;
out:
	generation_unref(g);
	return ret;
}

int dispatch_action(struct dispatch *d, const char *provider_config_key, const char *connection_id,
		    const char *name, const char *input_json, int64_t parent, int depth,
		    struct dispatch_outcome *o)
{
	return action_in_tree(d, provider_config_key, connection_id, name, input_json, parent, depth, NULL, o);
}

/* host->trigger_action(), from any execution. */
static int trigger(void *user, struct hostapi_exec *parent, const char *action,
		   const char *input_json, char **output_json, char *err, size_t errlen)
{
	return trigger_for(user, parent, hostapi_exec_info(parent)->connection_id, action, input_json,
			   output_json, err, errlen);
}

/* host->trigger_action_for(): the same on another connection of the
 * parent's integration (hostapi checked that it exists). */
static int trigger_for(void *user, struct hostapi_exec *parent, const char *connection_id,
		       const char *action, const char *input_json, char **output_json, char *err,
		       size_t errlen)
{
	const struct hostapi_exec_info *pi = hostapi_exec_info(parent);
	struct dispatch_outcome o;
	int ret;

	*output_json = NULL;
	ret = action_in_tree(user, pi->provider_config_key, connection_id, action, input_json,
			     pi->execution_id, pi->depth + 1, pi->tree, &o);
	if (ret == EVS_ETIMEDOUT) {
		util_set_err(err, errlen, "not started: the deadline of its action tree (root execution %lld) "
			     "has passed", (long long)pi->tree->root_execution_id);
	} else if (ret == EVS_EDENIED) {
		util_set_err(err, errlen, "not started: its action tree (root execution %lld) has started "
			     "%u executions, action_tree_max_executions", (long long)pi->tree->root_execution_id,
			     pi->tree->max_executions);
	} else if (ret == EVS_ENOTFOUND) {
		util_set_err(err, errlen, "action %s is not configured for %s or not loaded", action,
			     pi->provider_config_key);
	} else if (ret == EVS_EDEPTH) {
		util_set_err(err, errlen, "actions nested deeper than %d", DISPATCH_ACTION_DEPTH_MAX);
	} else if (ret < 0) {
		util_set_err(err, errlen, "action %s could not run", action);
	} else if (o.status != STORE_EXEC_SUCCEEDED) {
		util_set_err(err, errlen, "action %s (execution %lld) %s%s%s", action,
			     (long long)o.execution_id, store_exec_status_name(o.status),
			     o.error ? ": " : "", o.error ? o.error : "");
		ret = EVS_EFAILED;
	} else {
		*output_json = o.output_json;
		o.output_json = NULL;
	}
	dispatch_outcome_clear(&o);
	return ret;
}

/* ---------------------------------------------------------------------------
 * Life cycle.
 */

int dispatch_new(struct store *store, struct generation *gen, uint32_t workers,
		 struct dispatch **out)
{
	struct dispatch *d = calloc(1, sizeof(*d));

	*out = NULL;
	if (!d)
		return STATUS_ENOMEM;
	d->store = store;
	d->gen = generation_ref(gen);
	d->n_threads = workers ? workers : 1;
	pthread_mutex_init(&d->lock, NULL);
	util_cond_init_monotonic(&d->wake);
	util_cond_init_monotonic(&d->idle);
	*out = d;
	return 0;
}

int dispatch_start(struct dispatch *d)
{
	d->threads = calloc(d->n_threads, sizeof(*d->threads));
	if (!d->threads)
		return STATUS_ENOMEM;
	d->looking = d->n_threads; /* each counts itself out while it runs or waits */
	for (uint32_t i = 0; i < d->n_threads; i++) {
		int e = pthread_create(&d->threads[i], NULL, worker, d);

		if (e) {
			d->n_threads = i;
			dispatch_stop(d, 0);
			return status_from_errno(e);
		}
	}
	return 0;
}

size_t dispatch_stop(struct dispatch *d, int64_t deadline_us)
{
	size_t left;

	pthread_mutex_lock(&d->lock);
	d->stopping = true;
	pthread_cond_broadcast(&d->wake);
	while (d->running > 0) {
		int64_t left_us = deadline_us - util_mono_us();

		if (left_us <= 0)
			break;
		wait_us(d, &d->idle, left_us); /* run_end() broadcasts */
	}
	left = d->running;
	pthread_mutex_unlock(&d->lock);
	if (left == 0 && d->threads) {
		for (uint32_t i = 0; i < d->n_threads; i++)
			pthread_join(d->threads[i], NULL);
		free(d->threads);
		d->threads = NULL;
		d->n_threads = 0;
	}
	if (left == 0)
		unwritten_drop(d);
	return left;
}

void dispatch_free(struct dispatch *d)
{
	if (!d)
		return;
	if (d->threads && dispatch_stop(d, 0) > 0)
		return; /* executions still run on its threads: leave it to process exit */
	unwritten_drop(d);
	generation_unref(d->gen);
	pthread_cond_destroy(&d->idle);
	pthread_cond_destroy(&d->wake);
	pthread_mutex_destroy(&d->lock);
	free(d);
}
