/*
 * test_store_combined.c - the combined writes of "fewer writes per event"
 * (store.h): store_event_claim_start (a claim and its event's first
 * execution in one transaction) and store_execution_complete (an
 * execution's end, its last log lines and its event's "done" in one),
 * the batch of events with nothing to run that one claim marks done, and
 * store_event_claim_next (an end and the next claim in one).
 * Each does all of its writes or none (a refused plan, a bad input, a row
 * in the wrong state, a failed COMMIT), and a crash between two of them
 * leaves what store_recover() turns into pending or interrupted as
 * documented. The failed COMMIT comes from the back end's test-only hook
 * (store_sqlite_priv.h).
 */
#include <sqlite3.h>

#include "store_fixture.h"
#include "store_sqlite_priv.h"

/* One integer from the database file, through a connection of its own
 * (it sees only committed writes). */
static int64_t raw_int(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t v = -1;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static int64_t count(struct fx *f, const char *table)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
	return raw_int(f->path, sql);
}

static int64_t new_event(struct store *s, const char *cid)
{
	struct store_connection_input in = {
		.connection_id = cid,
		.provider_config_key = "gh",
		.provider = "github",
		.credentials = "{}",
	};
	struct store_upsert_result r;

	assert_int_equal(store_connection_upsert(s, &in, NULL, &r), 0);
	return r.event_id;
}

static enum store_event_status event_status(struct store *s, int64_t id)
{
	struct store_event ev;

	assert_int_equal(store_event_get(s, id, &ev), 0);
	return ev.status;
}

static enum store_exec_status exec_status(struct store *s, int64_t id, size_t *n_logs,
					  int64_t *dropped)
{
	struct store_execution *e = NULL;
	enum store_exec_status st;

	assert_int_equal(store_execution_get(s, id, &e), 0);
	st = e->status;
	if (n_logs)
		*n_logs = e->n_logs;
	if (dropped)
		*dropped = e->logs_dropped;
	store_execution_free(e);
	return st;
}

/* A plan: returns what it is told, and fills the first script's execution. */
struct plan {
	int verdict;
	const char *script;
	int64_t event_id_delta; /* added to the event's id (a wrong one) */
	int calls;
	int64_t seen;
};

static int plan(void *user, const struct store_event *ev, struct store_execution_input *in)
{
	struct plan *p = user;

	p->calls++;
	p->seen = ev->id;
	assert_int_equal(ev->status, STORE_EVENT_CLAIMED);
	if (p->verdict != STORE_CLAIM_START)
		return p->verdict;
	*in = (struct store_execution_input){
		.kind = STORE_EXEC_EVENT,
		.event_id = ev->id + p->event_id_delta,
		.script = p->script,
		.event = ev->type,
		.connection_id = ev->connection_id,
		.provider_config_key = ev->provider_config_key,
		.plugin_version = "1.0.0",
	};
	return STORE_CLAIM_START;
}

static int claim_start(struct store *s, struct plan *p, struct store_event *ev, int64_t *xid)
{
	return store_event_claim_start(s, 7, plan, p, ev, xid);
}

/* ---------------------------------------------------------------------------
 * store_event_claim_start.
 */

static void test_claim_start(void **state)
{
	struct fx *f = *state;
	struct plan p = {.verdict = STORE_CLAIM_START, .script = "s1"};
	struct store_event ev;
	int64_t a, b, c, xid = -1;

	assert_int_equal(claim_start(f->s, &p, &ev, &xid), STORE_ENOTFOUND);
	assert_int_equal(p.calls, 0);
	assert_int_equal(xid, 0);
	assert_int_equal(store_event_claim_start(f->s, 7, NULL, NULL, &ev, &xid), STORE_EINVAL);

	a = new_event(f->s, "a");
	b = new_event(f->s, "b");
	c = new_event(f->s, "c");

	/* Claimed with its first execution: running, and the claim committed
	 * with it (a reader of its own sees both). */
	assert_int_equal(claim_start(f->s, &p, &ev, &xid), 0);
	assert_int_equal(p.calls, 1);
	assert_int_equal(ev.id, a);
	assert_int_equal(ev.status, STORE_EVENT_CLAIMED);
	assert_int_equal(ev.generation, 7);
	assert_true(xid > 0);
	assert_int_equal(exec_status(f->s, xid, NULL, NULL), STORE_EXEC_RUNNING);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM executions x JOIN events e"
					  " ON x.event_id = e.id WHERE e.status = 'claimed'"
					  " AND x.script = 's1' AND x.status = 'running'"),
			 1);

	/* Claimed only. */
	p.verdict = STORE_CLAIM_ONLY;
	assert_int_equal(claim_start(f->s, &p, &ev, &xid), 0);
	assert_int_equal(ev.id, b);
	assert_int_equal(xid, 0);
	assert_int_equal(event_status(f->s, b), STORE_EVENT_CLAIMED);

	/* Claimed and done at once: nothing to run. */
	p.verdict = STORE_CLAIM_DONE;
	assert_int_equal(claim_start(f->s, &p, &ev, &xid), 0);
	assert_int_equal(ev.id, c);
	assert_int_equal(ev.status, STORE_EVENT_DONE);
	assert_int_equal(xid, 0);
	assert_int_equal(event_status(f->s, c), STORE_EVENT_DONE);
	assert_int_equal(count(f, "executions"), 1);
	assert_int_equal(claim_start(f->s, &p, &ev, &xid), STORE_ENOTFOUND);
}

/* A failure writes nothing: the event is pending again, with no execution,
 * and the next claim hands it out. */
static void test_claim_start_all_or_nothing(void **state)
{
	struct fx *f = *state;
	struct plan p = {.verdict = -1, .script = "s1"};
	struct store_event ev;
	int64_t a, xid = -1;

	a = new_event(f->s, "a");

	assert_int_equal(claim_start(f->s, &p, &ev, &xid), STORE_ECALLBACK);
	assert_int_equal(p.seen, a);
	assert_int_equal(ev.id, 0);
	assert_int_equal(xid, 0);
	assert_int_equal(event_status(f->s, a), STORE_EVENT_PENDING);

	p.verdict = 42; /* not a store_claim_plan */
	assert_int_equal(claim_start(f->s, &p, &ev, &xid), STORE_ECALLBACK);
	assert_int_equal(event_status(f->s, a), STORE_EVENT_PENDING);

	p.verdict = STORE_CLAIM_START;
	p.script = ""; /* store_execution_create would refuse it */
	assert_int_equal(claim_start(f->s, &p, &ev, &xid), STORE_EINVAL);
	assert_int_equal(event_status(f->s, a), STORE_EVENT_PENDING);

	p.script = "s1";
	p.event_id_delta = 1; /* an execution for another event */
	assert_int_equal(claim_start(f->s, &p, &ev, &xid), STORE_EINVAL);
	assert_int_equal(event_status(f->s, a), STORE_EVENT_PENDING);

	/* A COMMIT that fails (as a failed fsync would). */
	p.event_id_delta = 0;
	sq_test_fail_commits(f->s, 1);
	assert_int_equal(claim_start(f->s, &p, &ev, &xid), STORE_EIO);
	assert_int_equal(xid, 0);
	assert_int_equal(event_status(f->s, a), STORE_EVENT_PENDING);
	assert_int_equal(count(f, "executions"), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM events WHERE status <> 'pending'"),
			 0);

	assert_int_equal(claim_start(f->s, &p, &ev, &xid), 0);
	assert_int_equal(ev.id, a);
	assert_true(xid > 0);
	assert_int_equal(count(f, "executions"), 1);
}

/* ---------------------------------------------------------------------------
 * store_execution_complete.
 */

static const struct store_log_line_input lines[3] = {
	{.level = 1, .message = "one"},
	{.level = 2, .message = "two"},
	{.ts = 5, .level = 3, .message = "three"},
};

/* Events with nothing to run are claimed and done in one call, up to
 * STORE_CLAIM_BATCH of them; the first with something to run ends it. */
static void test_claim_done_batch(void **state)
{
	struct fx *f = *state;
	struct plan p = {.verdict = STORE_CLAIM_DONE};
	struct store_event ev;
	int64_t first = 0, last = 0, xid;
	char cid[16];

	for (int i = 0; i < STORE_CLAIM_BATCH + 3; i++) {
		snprintf(cid, sizeof(cid), "c%d", i);
		last = new_event(f->s, cid);
		if (i == 0)
			first = last;
	}
	assert_int_equal(claim_start(f->s, &p, &ev, &xid), 0);
	assert_int_equal(p.calls, STORE_CLAIM_BATCH);
	assert_int_equal(ev.id, first + STORE_CLAIM_BATCH - 1);
	assert_int_equal(ev.status, STORE_EVENT_DONE);
	assert_int_equal(xid, 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM events WHERE status = 'done'"),
			 STORE_CLAIM_BATCH);

	/* the queue runs dry after four: what was claimed is kept */
	p.calls = 0;
	(void)new_event(f->s, "one-more");
	assert_int_equal(claim_start(f->s, &p, &ev, &xid), 0);
	assert_int_equal(p.calls, 4);
	assert_int_equal(event_status(f->s, last), STORE_EVENT_DONE);
	assert_int_equal(claim_start(f->s, &p, &ev, &xid), STORE_ENOTFOUND);
}

/* A plan that says done to every event but one (by id), which it starts. */
struct plan_one {
	struct plan base;
	int64_t start;
};

static int plan_start_one(void *user, const struct store_event *ev,
			  struct store_execution_input *in)
{
	struct plan_one *p = user;

	p->base.verdict = ev->id == p->start ? STORE_CLAIM_START : STORE_CLAIM_DONE;
	return plan(&p->base, ev, in);
}

static void test_claim_done_then_start(void **state)
{
	struct fx *f = *state;
	struct plan_one p = {.base = {.script = "s1"}};
	struct store_event ev;
	int64_t a, b, c, xid;

	a = new_event(f->s, "a");
	b = new_event(f->s, "b");
	c = new_event(f->s, "c");
	p.start = b;
	assert_int_equal(store_event_claim_start(f->s, 7, plan_start_one, &p, &ev, &xid), 0);
	assert_int_equal(p.base.calls, 2);
	assert_int_equal(ev.id, b);
	assert_int_equal(ev.status, STORE_EVENT_CLAIMED);
	assert_true(xid > 0);
	assert_int_equal(event_status(f->s, a), STORE_EVENT_DONE);
	assert_int_equal(event_status(f->s, c), STORE_EVENT_PENDING);
}

/* ---------------------------------------------------------------------------
 * store_event_claim_next: the last end and the next claim in one write.
 */

static void test_claim_next(void **state)
{
	struct fx *f = *state;
	struct plan p = {.verdict = STORE_CLAIM_START, .script = "s1"};
	struct store_execution_end end = {
		.status = STORE_EXEC_SUCCEEDED, .duration_ms = 3, .lines = lines, .n_lines = 3,
	};
	struct store_event ev;
	int64_t a, b, xa, xb;
	size_t n;

	a = new_event(f->s, "a");
	b = new_event(f->s, "b");
	assert_int_equal(claim_start(f->s, &p, &ev, &xa), 0);
	assert_int_equal(ev.id, a);

	/* a's end and b's claim and start */
	end.event_id = a;
	assert_int_equal(store_event_claim_next(f->s, xa, &end, 7, plan, &p, &ev, &xb), 0);
	assert_int_equal(ev.id, b);
	assert_true(xb > xa);
	assert_int_equal(exec_status(f->s, xa, &n, NULL), STORE_EXEC_SUCCEEDED);
	assert_int_equal(n, 3);
	assert_int_equal(event_status(f->s, a), STORE_EVENT_DONE);
	assert_int_equal(exec_status(f->s, xb, NULL, NULL), STORE_EXEC_RUNNING);

	/* nothing left to claim: b's end is written all the same */
	end.event_id = b;
	end.n_lines = 0;
	assert_int_equal(store_event_claim_next(f->s, xb, &end, 7, plan, &p, &ev, &xa),
			 STORE_ENOTFOUND);
	assert_int_equal(xa, 0);
	assert_int_equal(exec_status(f->s, xb, NULL, NULL), STORE_EXEC_SUCCEEDED);
	assert_int_equal(event_status(f->s, b), STORE_EVENT_DONE);

	/* an end store_execution_complete would refuse */
	end.status = STORE_EXEC_RUNNING;
	assert_int_equal(store_event_claim_next(f->s, xb, &end, 7, plan, &p, &ev, &xa),
			 STORE_EINVAL);
}

/* A failure writes nothing: neither the end nor the claim. */
static void test_claim_next_all_or_nothing(void **state)
{
	struct fx *f = *state;
	struct plan p = {.verdict = STORE_CLAIM_START, .script = "s1"};
	struct store_execution_end end = {.status = STORE_EXEC_FAILED, .error = "boom"};
	struct store_event ev;
	int64_t a, b, xa, xb;

	a = new_event(f->s, "a");
	assert_int_equal(claim_start(f->s, &p, &ev, &xa), 0);
	b = new_event(f->s, "b");
	end.event_id = a;

	p.verdict = -1; /* the plan refuses b */
	assert_int_equal(store_event_claim_next(f->s, xa, &end, 7, plan, &p, &ev, &xb),
			 STORE_ECALLBACK);
	assert_int_equal(exec_status(f->s, xa, NULL, NULL), STORE_EXEC_RUNNING);
	assert_int_equal(event_status(f->s, a), STORE_EVENT_CLAIMED);
	assert_int_equal(event_status(f->s, b), STORE_EVENT_PENDING);

	p.verdict = STORE_CLAIM_START;
	sq_test_fail_commits(f->s, 1);
	assert_int_equal(store_event_claim_next(f->s, xa, &end, 7, plan, &p, &ev, &xb),
			 STORE_EIO);
	assert_int_equal(xb, 0);
	assert_int_equal(exec_status(f->s, xa, NULL, NULL), STORE_EXEC_RUNNING);
	assert_int_equal(event_status(f->s, b), STORE_EVENT_PENDING);
	assert_int_equal(count(f, "executions"), 1);

	/* the end of an execution that is not running (a shutdown marked it
	 * interrupted): nothing is claimed */
	assert_int_equal(store_execution_finish(f->s, xa, STORE_EXEC_INTERRUPTED, "stop", 1), 0);
	assert_int_equal(store_event_claim_next(f->s, xa, &end, 7, plan, &p, &ev, &xb),
			 STORE_ESTATE);
	assert_int_equal(event_status(f->s, b), STORE_EVENT_PENDING);
}

/* ---------------------------------------------------------------------------
 * store_event_claim_batch: several ends and several starts in one write.
 */

/* A plan that marks every event whose connection id starts with 'd' done
 * and starts the others (script s1). */
static int plan_mixed(void *user, const struct store_event *ev, struct store_execution_input *in)
{
	struct plan *p = user;

	if (ev->connection_id[0] == 'd') {
		p->calls++;
		return STORE_CLAIM_DONE;
	}
	return plan(user, ev, in);
}

static void test_claim_batch(void **state)
{
	struct fx *f = *state;
	struct plan p = {.verdict = STORE_CLAIM_START, .script = "s1"};
	struct store_claimed out[4];
	struct store_completion ends[4];
	struct store_execution_end end[4];
	struct store_claim_batch b = {.generation = 7, .plan = plan_mixed, .user = &p, .out = out};
	int64_t ev[6];

	ev[0] = new_event(f->s, "a");
	ev[1] = new_event(f->s, "d1"); /* done on the way: not counted in max */
	ev[2] = new_event(f->s, "b");
	ev[3] = new_event(f->s, "c");
	ev[4] = new_event(f->s, "e");
	ev[5] = new_event(f->s, "f");

	/* three started, one done, and more pending */
	b.max = 3;
	assert_int_equal(store_event_claim_batch(f->s, &b), 0);
	assert_int_equal(b.n, 3);
	assert_true(b.more);
	assert_int_equal(out[0].ev.id, ev[0]);
	assert_int_equal(out[1].ev.id, ev[2]);
	assert_int_equal(out[2].ev.id, ev[3]);
	assert_int_equal(b.last.id, ev[3]);
	for (size_t i = 0; i < 3; i++) {
		assert_true(out[i].execution_id > 0);
		assert_int_equal(exec_status(f->s, out[i].execution_id, NULL, NULL),
				 STORE_EXEC_RUNNING);
	}
	assert_int_equal(event_status(f->s, ev[1]), STORE_EVENT_DONE);
	assert_int_equal(p.calls, 4);

	/* their three ends and the last two events: the queue runs dry */
	for (size_t i = 0; i < 3; i++) {
		end[i] = (struct store_execution_end){.status = STORE_EXEC_SUCCEEDED,
						      .event_id = out[i].ev.id};
		ends[i] = (struct store_completion){out[i].execution_id, &end[i]};
	}
	b.ends = ends;
	b.n_ends = 3;
	b.max = 4;
	assert_int_equal(store_event_claim_batch(f->s, &b), 0);
	assert_int_equal(b.n, 2);
	assert_false(b.more);
	assert_int_equal(out[0].ev.id, ev[4]);
	assert_int_equal(out[1].ev.id, ev[5]);
	for (size_t i = 0; i < 4; i++)
		if (i != 1)
			assert_int_equal(event_status(f->s, ev[i]), STORE_EVENT_DONE);
	assert_int_equal(count(f, "executions"), 5);

	/* the last two ends: nothing left, the ends are written */
	for (size_t i = 0; i < 2; i++) {
		end[i] = (struct store_execution_end){.status = STORE_EXEC_FAILED, .error = "x",
						      .event_id = out[i].ev.id};
		ends[i] = (struct store_completion){out[i].execution_id, &end[i]};
	}
	b.n_ends = 2;
	assert_int_equal(store_event_claim_batch(f->s, &b), STORE_ENOTFOUND);
	assert_int_equal(b.n, 0);
	assert_int_equal(event_status(f->s, ev[4]), STORE_EVENT_DONE);
	assert_int_equal(event_status(f->s, ev[5]), STORE_EVENT_DONE);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM executions WHERE status = 'failed'"),
			 2);

	/* refused arguments */
	b.max = 0;
	assert_int_equal(store_event_claim_batch(f->s, &b), STORE_EINVAL);
	b.max = 1;
	end[0].status = STORE_EXEC_RUNNING;
	assert_int_equal(store_event_claim_batch(f->s, &b), STORE_EINVAL);
}

/* plan, but refuses the second event it is shown. */
static int plan_refuse_second(void *user, const struct store_event *ev,
			      struct store_execution_input *in)
{
	struct plan *p = user;

	if (p->calls == 1) {
		p->calls++;
		return -1;
	}
	return plan(user, ev, in);
}

/* A failure anywhere in a batch writes none of it: no end, no claim. */
static void test_claim_batch_all_or_nothing(void **state)
{
	struct fx *f = *state;
	struct plan p = {.verdict = STORE_CLAIM_START, .script = "s1"};
	struct store_claimed out[3];
	struct store_completion ends[1];
	struct store_execution_end end = {.status = STORE_EXEC_SUCCEEDED};
	struct store_claim_batch b = {.generation = 7, .plan = plan, .user = &p, .out = out,
				      .max = 3};
	int64_t a, c, d, xa;
	struct store_event ev;

	a = new_event(f->s, "a");
	assert_int_equal(claim_start(f->s, &p, &ev, &xa), 0);
	c = new_event(f->s, "c");
	d = new_event(f->s, "d");
	end.event_id = a;
	ends[0] = (struct store_completion){xa, &end};
	b.ends = ends;
	b.n_ends = 1;

	/* the commit fails: a stays running, c and d pending */
	sq_test_fail_commits(f->s, 1);
	assert_int_equal(store_event_claim_batch(f->s, &b), STORE_EIO);
	assert_int_equal(b.n, 0);
	assert_int_equal(b.last.id, 0);
	assert_int_equal(exec_status(f->s, xa, NULL, NULL), STORE_EXEC_RUNNING);
	assert_int_equal(event_status(f->s, c), STORE_EVENT_PENDING);
	assert_int_equal(event_status(f->s, d), STORE_EVENT_PENDING);
	assert_int_equal(count(f, "executions"), 1);

	/* the plan refuses the second event: the first's start goes too */
	p.calls = 0;
	b.plan = plan_refuse_second;
	assert_int_equal(store_event_claim_batch(f->s, &b), STORE_ECALLBACK);
	assert_int_equal(b.n, 0);
	assert_int_equal(p.calls, 2);
	assert_int_equal(exec_status(f->s, xa, NULL, NULL), STORE_EXEC_RUNNING);
	assert_int_equal(event_status(f->s, c), STORE_EVENT_PENDING);
	assert_int_equal(event_status(f->s, d), STORE_EVENT_PENDING);
	assert_int_equal(count(f, "executions"), 1);

	/* and then it goes through */
	b.plan = plan;
	assert_int_equal(store_event_claim_batch(f->s, &b), 0);
	assert_int_equal(b.n, 2);
	assert_int_equal(count(f, "executions"), 3);
	assert_int_equal(exec_status(f->s, xa, NULL, NULL), STORE_EXEC_SUCCEEDED);
}

static void test_complete(void **state)
{
	struct fx *f = *state;
	struct plan p = {.verdict = STORE_CLAIM_START, .script = "s1"};
	struct store_execution_end end = {
		.status = STORE_EXEC_SUCCEEDED, .duration_ms = 3, .lines = lines, .n_lines = 3,
		.dropped = 2,
	};
	struct store_execution *e = NULL;
	struct store_event ev;
	int64_t a, b, xa, xb;
	size_t n;
	int64_t dropped;

	a = new_event(f->s, "a");
	b = new_event(f->s, "b");
	assert_int_equal(claim_start(f->s, &p, &ev, &xa), 0);
	assert_int_equal(claim_start(f->s, &p, &ev, &xb), 0);

	assert_int_equal(store_execution_complete(f->s, 0, &end), STORE_EINVAL);
	assert_int_equal(store_execution_complete(f->s, xa, NULL), STORE_EINVAL);
	end.status = STORE_EXEC_RUNNING;
	assert_int_equal(store_execution_complete(f->s, xa, &end), STORE_EINVAL);
	end.status = STORE_EXEC_SUCCEEDED;

	/* Not the event's last script: the event stays claimed. Lines come
	 * after any written while it ran. */
	assert_int_equal(store_execution_append_logs(f->s, xa, lines, 1, 0), 0);
	assert_int_equal(store_execution_complete(f->s, xa, &end), 0);
	assert_int_equal(store_execution_get(f->s, xa, &e), 0);
	assert_int_equal(e->status, STORE_EXEC_SUCCEEDED);
	assert_int_equal(e->duration_ms, 3);
	assert_true(e->ended_at > 0);
	assert_int_equal(e->logs_dropped, 2);
	assert_int_equal(e->n_logs, 4);
	assert_int_equal(e->logs[3].seq, 4);
	assert_int_equal(e->logs[3].ts, 5);
	assert_string_equal(e->logs[3].message, "three");
	store_execution_free(e);
	assert_int_equal(event_status(f->s, a), STORE_EVENT_CLAIMED);

	/* The last script: the event is done with it. */
	end.status = STORE_EXEC_FAILED;
	end.error = "it broke";
	end.n_lines = 0;
	end.dropped = 0;
	end.event_id = b;
	assert_int_equal(store_execution_complete(f->s, xb, &end), 0);
	assert_int_equal(exec_status(f->s, xb, &n, &dropped), STORE_EXEC_FAILED);
	assert_int_equal(n, 0);
	assert_int_equal(dropped, 0);
	assert_int_equal(event_status(f->s, b), STORE_EVENT_DONE);
	assert_int_equal(store_event_get(f->s, b, &ev), 0);
	assert_true(ev.finished_at > 0);
}

/* A failure writes nothing: not the end, not the lines, not the "done". */
static void test_complete_all_or_nothing(void **state)
{
	struct fx *f = *state;
	struct plan p = {.verdict = STORE_CLAIM_START, .script = "s1"};
	struct store_execution_end end = {
		.status = STORE_EXEC_SUCCEEDED, .duration_ms = -1, .lines = lines, .n_lines = 3,
		.dropped = 1,
	};
	struct store_event ev;
	int64_t a, b, xa;
	size_t n;
	int64_t dropped;

	a = new_event(f->s, "a");
	b = new_event(f->s, "b"); /* stays pending */
	assert_int_equal(claim_start(f->s, &p, &ev, &xa), 0);

	/* The event is not claimed, or does not exist. */
	end.event_id = b;
	assert_int_equal(store_execution_complete(f->s, xa, &end), STORE_ESTATE);
	end.event_id = b + 100;
	assert_int_equal(store_execution_complete(f->s, xa, &end), STORE_ENOTFOUND);
	/* A COMMIT that fails. */
	end.event_id = a;
	sq_test_fail_commits(f->s, 1);
	assert_int_equal(store_execution_complete(f->s, xa, &end), STORE_EIO);
	assert_int_equal(exec_status(f->s, xa, &n, &dropped), STORE_EXEC_RUNNING);
	assert_int_equal(n, 0);
	assert_int_equal(dropped, 0);
	assert_int_equal(count(f, "execution_logs"), 0);
	assert_int_equal(event_status(f->s, a), STORE_EVENT_CLAIMED);
	assert_int_equal(event_status(f->s, b), STORE_EVENT_PENDING);

	/* The execution was interrupted by a shutdown: nothing is written; the
	 * separate calls still take the lines. */
	assert_int_equal(store_interrupt_running(f->s, "stopping", NULL), 0);
	assert_int_equal(store_execution_complete(f->s, xa, &end), STORE_ESTATE);
	assert_int_equal(count(f, "execution_logs"), 0);
	assert_int_equal(event_status(f->s, a), STORE_EVENT_CLAIMED);
	assert_int_equal(store_execution_complete(f->s, 9999, &end), STORE_ENOTFOUND);
	assert_int_equal(store_execution_append_logs(f->s, xa, lines, 3, 1), 0);
	assert_int_equal(exec_status(f->s, xa, &n, &dropped), STORE_EXEC_INTERRUPTED);
	assert_int_equal(n, 3);
	assert_int_equal(dropped, 1);
}

/* ---------------------------------------------------------------------------
 * A crash (the store closed without a word, as after kill -9) between the
 * combined writes, then store_recover().
 */

static void test_recover_between_steps(void **state)
{
	struct fx *f = *state;
	struct plan p = {.verdict = STORE_CLAIM_START, .script = "s1"};
	struct store_execution_end end = {.status = STORE_EXEC_SUCCEEDED, .duration_ms = -1};
	struct store_recovery r;
	struct store_event ev;
	int64_t started, only, ended, done, xs, xe, xd, x;

	started = new_event(f->s, "started"); /* claimed with its execution running */
	only = new_event(f->s, "only");       /* claimed only, nothing started */
	ended = new_event(f->s, "ended");     /* its first script ended, a second never began */
	done = new_event(f->s, "done");       /* its last script ended with the "done" */

	assert_int_equal(claim_start(f->s, &p, &ev, &xs), 0);
	p.verdict = STORE_CLAIM_ONLY;
	assert_int_equal(claim_start(f->s, &p, &ev, &x), 0);
	p.verdict = STORE_CLAIM_START;
	assert_int_equal(claim_start(f->s, &p, &ev, &xe), 0);
	assert_int_equal(store_execution_complete(f->s, xe, &end), 0);
	assert_int_equal(claim_start(f->s, &p, &ev, &xd), 0);
	end.event_id = done;
	assert_int_equal(store_execution_complete(f->s, xd, &end), 0);

	store_close(f->s);
	f->s = fx_open(f, NULL);
	assert_int_equal(store_recover(f->s, &r), 0);
	assert_int_equal(r.executions_interrupted, 1);
	assert_int_equal(r.events_requeued, 1);
	assert_int_equal(r.events_interrupted, 2);

	assert_int_equal(event_status(f->s, started), STORE_EVENT_INTERRUPTED);
	assert_int_equal(exec_status(f->s, xs, NULL, NULL), STORE_EXEC_INTERRUPTED);
	assert_int_equal(event_status(f->s, only), STORE_EVENT_PENDING);
	assert_int_equal(event_status(f->s, ended), STORE_EVENT_INTERRUPTED);
	assert_int_equal(exec_status(f->s, xe, NULL, NULL), STORE_EXEC_SUCCEEDED);
	assert_int_equal(event_status(f->s, done), STORE_EVENT_DONE);
	assert_int_equal(exec_status(f->s, xd, NULL, NULL), STORE_EXEC_SUCCEEDED);

	/* The requeued event is handed out again; the others never are. */
	assert_int_equal(claim_start(f->s, &p, &ev, &x), 0);
	assert_int_equal(ev.id, only);
	assert_int_equal(claim_start(f->s, &p, &ev, &x), STORE_ENOTFOUND);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_claim_start, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_claim_start_all_or_nothing, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_claim_done_batch, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_claim_done_then_start, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_claim_next, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_claim_next_all_or_nothing, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_claim_batch, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_claim_batch_all_or_nothing, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_complete, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_complete_all_or_nothing, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_recover_between_steps, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
