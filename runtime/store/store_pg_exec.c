/*
 * store_pg_exec.c - events, executions and their log lines in the
 * PostgreSQL back end, the claim protocol, and settling a host's rows.
 *
 * The claim protocol (store.h's rule 2 across hosts):
 *  1. Claim ahead, in batches. A worker that finds this host's local queue
 *     empty claims up to PG_CLAIM_BATCH of the oldest pending events in
 *     one statement and one commit:
 *       UPDATE events SET status = 'claimed', host_id = <me>, ...
 *       WHERE id IN (SELECT id FROM events WHERE status = 'pending'
 *                    ORDER BY id LIMIT n FOR UPDATE SKIP LOCKED)
 *     Row locks make the claim exclusive: a row another host is claiming
 *     is skipped, not waited for, and a row is claimed only while it is
 *     pending, so each event is claimed by one host, once. The ids go to
 *     the local queue; the other workers of the host take theirs from it
 *     without a round trip (one claim statement per batch instead of one
 *     per event: Graphile Worker's lesson).
 *  2. Start, one transaction: the worker takes an id from the queue,
 *     re-reads the event guarded by "still claimed by me" (an UPDATE: it
 *     holds the row until COMMIT) and creates its first execution in the
 *     same transaction (store_event_claim_start). An event a survivor gave
 *     back meanwhile (this host was late with its heartbeat) fails the
 *     guard and is skipped: it belongs to whoever claimed it next.
 *  3. Settle (pg_settle_host): at a host's start-up for itself
 *     (store_recover), and by a survivor for a host whose heartbeat is
 *     older than host_timeout_s: running executions become interrupted;
 *     the claimed events are locked first, then those with no execution
 *     go back to pending (a fresh statement, so it sees an execution that
 *     a start committed while it waited for the lock) and the rest become
 *     interrupted, never re-run by themselves.
 * So an event is run by the one host whose start transaction committed,
 * and an execution that started is never started again by itself. The
 * events left in the queue when the store closes are given back to
 * pending (pg_release_claims); after a crash, step 3 does it.
 */
#include "store_pg_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynbuf.h"
#include "log.h"
#include "util.h"

#define LOG_READ_MAX 100000 /* log lines returned by store_execution_get */

#define EVENT_COLS                                                                         \
	"id, type, connection_id, provider_config_key, script, retry_of, status, generation," \
	" created_at, claimed_at, finished_at"

/* ---------------------------------------------------------------------------
 * Events.
 */

int pg_event_insert(struct store *s, const char *type, const char *cid, const char *pck,
		    bool claim, int64_t generation, int64_t *event_id)
{
	struct pgc *c;
	int ret;

	ret = pg_begin(P(s), &c);
	if (ret)
		return ret;
	ret = pg_conn_accepts_events(c, pck, cid);
	if (!ret)
		ret = pg_event_add(c, type, cid, pck, NULL, 0, claim, generation, s->host_id,
				   util_now_ms(), event_id);
	return pg_end(P(s), c, ret);
}

static enum store_event_status event_status_from(const char *s)
{
	if (strcmp(s, "claimed") == 0)
		return STORE_EVENT_CLAIMED;
	if (strcmp(s, "done") == 0)
		return STORE_EVENT_DONE;
	if (strcmp(s, "interrupted") == 0)
		return STORE_EVENT_INTERRUPTED;
	return STORE_EVENT_PENDING;
}

static void event_from_row(const PGresult *r, int i, struct store_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->id = pg_col_i64(r, i, 0);
	pg_col_copy(r, i, 1, ev->type, sizeof(ev->type));
	pg_col_copy(r, i, 2, ev->connection_id, sizeof(ev->connection_id));
	pg_col_copy(r, i, 3, ev->provider_config_key, sizeof(ev->provider_config_key));
	pg_col_copy(r, i, 4, ev->script, sizeof(ev->script));
	ev->retry_of = pg_col_i64(r, i, 5);
	ev->status = event_status_from(PQgetvalue(r, i, 6));
	ev->generation = pg_col_i64(r, i, 7);
	ev->created_at = pg_col_i64(r, i, 8);
	ev->claimed_at = pg_col_i64(r, i, 9);
	ev->finished_at = pg_col_i64(r, i, 10);
}

static const char sql_claim_batch[] =
	"UPDATE events SET status = 'claimed', claimed_at = $1, generation = $2, host_id = $3"
	" WHERE id IN (SELECT id FROM events WHERE status = 'pending' ORDER BY id LIMIT $4"
	" FOR UPDATE SKIP LOCKED) RETURNING " EVENT_COLS;
/* Step 2's guard: still claimed by this host. */
static const char sql_claim_mine[] =
	"UPDATE events SET generation = $2, claimed_at = $3"
	" WHERE id = $1 AND status = 'claimed' AND host_id = $4"
	" AND NOT EXISTS (SELECT 1 FROM executions x WHERE x.event_id = events.id)"
	" RETURNING " EVENT_COLS;
static const char sql_release[] =
	"UPDATE events SET status = 'pending', claimed_at = NULL, generation = NULL, host_id = NULL"
	" WHERE id = $1 AND status = 'claimed' AND host_id = $2";

static int cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Claims up to n pending events for this host in one statement, on c
 * (in a transaction of its own). ids (sorted) and *count are what it got. */
static int claim_batch(struct store *s, struct pgc *c, int64_t generation, int n, int64_t *ids,
		       size_t *count)
{
	PGresult *r = NULL;
	int ret;

	*count = 0;
	ret = pg_q(c, sql_claim_batch, "claim events",
		   PG_ARGS(pg_i64(util_now_ms()), pg_i64(generation), pg_text(s->host_id),
			   pg_i64(n)),
		   &r);
	if (ret)
		return ret;
	for (int i = 0; i < PQntuples(r) && i < n; i++)
		ids[(*count)++] = pg_col_i64(r, i, 0);
	PQclear(r);
	qsort(ids, *count, sizeof(*ids), cmp_id);
	return 0;
}

/* Step 1: when this host's queue is empty, claims a batch on c (one
 * worker claims, the others wait for its batch). STORE_ENOTFOUND when the
 * queue stays empty: nothing is pending. */
static int queue_fill(struct store *s, struct pgc *c, int64_t generation)
{
	struct pg *p = P(s);
	int ret = 0;

	pthread_mutex_lock(&p->qmu);
	if (p->qn == 0) {
		/* lossable: a claim lost with its COMMIT is a pending event again,
		 * what settling makes of a claim that started nothing */
		p->qhead = 0;
		ret = pg_begin_on(p, c, true);
		if (!ret)
			ret = claim_batch(s, c, generation, PG_CLAIM_BATCH, p->queue, &p->qn);
		ret = pg_commit_on(p, c, ret);
		if (ret)
			p->qn = 0;
	}
	if (!ret && p->qn == 0)
		ret = STORE_ENOTFOUND;
	pthread_mutex_unlock(&p->qmu);
	return ret;
}

/* The next event claimed ahead, or false when the queue is empty. */
static bool queue_pop(struct pg *p, int64_t *id)
{
	bool got;

	pthread_mutex_lock(&p->qmu);
	got = p->qn > 0;
	if (got) {
		*id = p->queue[p->qhead++];
		p->qn--;
	}
	pthread_mutex_unlock(&p->qmu);
	return got;
}

/* Puts id back at the head of the queue (its start failed on the way to
 * the database: the next worker tries again). When the queue is full it
 * goes back to pending instead. */
static void release_one(struct store *s, struct pgc *c, int64_t id);
static void queue_unget(struct store *s, struct pgc *c, int64_t id)
{
	struct pg *p = P(s);
	bool kept = false;

	pthread_mutex_lock(&p->qmu);
	if (p->qn == 0)
		p->qhead = PG_CLAIM_BATCH;
	if (p->qhead > 0) {
		p->queue[--p->qhead] = id;
		p->qn++;
		kept = true;
	}
	pthread_mutex_unlock(&p->qmu);
	if (!kept)
		release_one(s, c, id);
}

/* Gives one claimed event back to pending (on c, outside a transaction;
 * a failure leaves it to the next settling of this host). */
static void release_one(struct store *s, struct pgc *c, int64_t id)
{
	pg_x(c, sql_release, "give back a claimed event", PG_ARGS(pg_i64(id), pg_text(s->host_id)),
	     NULL);
}

void pg_release_claims(struct pg *p)
{
	struct pgc *c;
	int64_t id;
	bool any;

	pthread_mutex_lock(&p->qmu);
	any = p->qn > 0;
	pthread_mutex_unlock(&p->qmu);
	if (!any || pg_take(p, &c))
		return;
	while (queue_pop(p, &id))
		release_one(p->s, c, id);
	pg_give(p, c);
}

int pg_event_claim(struct store *s, int64_t generation, struct store_event *ev)
{
	struct pgc *c;
	PGresult *r = NULL;
	int ret;

	ret = pg_take(P(s), &c);
	if (ret)
		return ret;
	ret = pg_q(c, sql_claim_batch, "claim event",
		   PG_ARGS(pg_i64(util_now_ms()), pg_i64(generation), pg_text(s->host_id),
			   pg_i64(1)),
		   &r);
	pg_give(P(s), c);
	if (ret)
		return ret;
	if (PQntuples(r) == 1)
		event_from_row(r, 0, ev);
	else
		ret = STORE_ENOTFOUND;
	PQclear(r);
	return ret;
}

/* A row that finishes once: UPDATE guarded by its status, then (when it
 * changed nothing) STORE_ESTATE if the row exists, STORE_ENOTFOUND if not. */
static int finish_in(struct pgc *c, const char *sql, const char *what, const char *sql_exists,
		     const struct pg_arg *args)
{
	int64_t changed = 0;
	PGresult *r;
	int ret = pg_x(c, sql, what, args, &changed);

	if (ret || changed > 0)
		return ret;
	ret = pg_q(c, sql_exists, what, PG_ARGS(args[0]), &r);
	if (!ret)
		ret = PQntuples(r) > 0 ? STORE_ESTATE : STORE_ENOTFOUND;
	PQclear(r);
	return ret;
}

static const char sql_event_finish[] =
	"UPDATE events SET status = 'done', finished_at = $2 WHERE id = $1 AND status = 'claimed'";
static const char sql_event_exists[] = "SELECT 1 FROM events WHERE id = $1";

static int event_finish_in(struct pgc *c, int64_t id)
{
	return finish_in(c, sql_event_finish, "finish event", sql_event_exists,
			 PG_ARGS(pg_i64(id), pg_i64(util_now_ms())));
}

static int event_finish_txn(struct store *s, struct pgc *c, void *arg)
{
	(void)s;
	return event_finish_in(c, *(const int64_t *)arg);
}

int pg_event_finish(struct store *s, int64_t event_id)
{
	return pg_txn(P(s), true, event_finish_txn, &event_id);
}

/* A read of one statement whose rows the caller reads. */
static int read_q(struct store *s, const char *sql, const char *what, const struct pg_arg *args,
		  PGresult **res)
{
	struct pgc *c;
	int ret = pg_take(P(s), &c);

	*res = NULL;
	if (ret)
		return ret;
	ret = pg_q(c, sql, what, args, res);
	pg_give(P(s), c);
	return ret;
}

int pg_event_get(struct store *s, int64_t event_id, struct store_event *ev)
{
	PGresult *r;
	int ret = read_q(s, "SELECT " EVENT_COLS " FROM events WHERE id = $1", "read event",
			 PG_ARGS(pg_i64(event_id)), &r);

	if (ret)
		return ret;
	if (PQntuples(r) == 1)
		event_from_row(r, 0, ev);
	else
		ret = STORE_ENOTFOUND;
	PQclear(r);
	return ret;
}

int pg_event_count_pending(struct store *s, int64_t *count)
{
	PGresult *r;
	int ret = read_q(s, "SELECT count(*) FROM events WHERE status = 'pending'", "count events",
			 NULL, &r);

	if (!ret)
		*count = pg_col_i64(r, 0, 0);
	PQclear(r);
	return ret;
}

/* ---------------------------------------------------------------------------
 * Executions.
 */

static const char sql_exec_insert[] =
	"INSERT INTO executions (event_id, parent_execution_id, kind, script, event,"
	" connection_id, provider_config_key, status, started_at, plugin_version, host_id)"
	" VALUES ($1, $2, $3, $4, $5, $6, $7, 'running', $8, $9, $10) RETURNING id";

static int exec_insert(struct store *s, struct pgc *c, const struct store_execution_input *in,
		       int64_t *id)
{
	PGresult *r;
	int ret = pg_q(c, sql_exec_insert, "insert execution",
		       PG_ARGS(pg_id(in->event_id), pg_id(in->parent_execution_id),
			       pg_text(store_exec_kind_name(in->kind)), pg_text(in->script),
			       pg_text(in->event), pg_text(in->connection_id),
			       pg_text(in->provider_config_key), pg_i64(util_now_ms()),
			       pg_text(in->plugin_version), pg_text(s->host_id)),
		       &r);

	*id = 0;
	if (ret)
		return ret;
	*id = PQntuples(r) == 1 ? pg_col_i64(r, 0, 0) : 0;
	PQclear(r);
	return *id ? 0 : STORE_EIO;
}

struct create_args {
	const struct store_execution_input *in;
	int64_t *id;
};

static int create_txn(struct store *s, struct pgc *c, void *arg)
{
	struct create_args *a = arg;

	return exec_insert(s, c, a->in, a->id);
}

int pg_execution_create(struct store *s, const struct store_execution_input *in, int64_t *id)
{
	int ret = pg_txn(P(s), false, create_txn, &(struct create_args){.in = in, .id = id});

	if (ret)
		*id = 0;
	return ret;
}

static const char sql_exec_finish[] =
	"UPDATE executions SET status = $2, error = $3, ended_at = $4,"
	" duration_ms = CASE WHEN $5::bigint < 0 THEN GREATEST($4::bigint - started_at, 0)"
	" ELSE $5::bigint END WHERE id = $1 AND status = 'running'";
static const char sql_exec_exists[] = "SELECT 1 FROM executions WHERE id = $1";

static int exec_finish_in(struct pgc *c, int64_t id, enum store_exec_status status,
			  const char *err, int64_t duration_ms)
{
	return finish_in(c, sql_exec_finish, "finish execution", sql_exec_exists,
			 PG_ARGS(pg_i64(id), pg_text(store_exec_status_name(status)), pg_text(err),
				 pg_i64(util_now_ms()), pg_i64(duration_ms < 0 ? -1 : duration_ms)));
}

/* An execution's end: finish_txn (store_execution_finish) or
 * complete_txn (store_execution_complete, with end). */
struct end_args {
	int64_t id;
	enum store_exec_status status;
	const char *err;
	int64_t duration_ms;
	const struct store_execution_end *end;
};

static int finish_txn(struct store *s, struct pgc *c, void *arg)
{
	struct end_args *a = arg;

	(void)s;
	return exec_finish_in(c, a->id, a->status, a->err, a->duration_ms);
}

int pg_execution_finish(struct store *s, int64_t id, enum store_exec_status status,
			const char *error, int64_t duration_ms)
{
	struct end_args a = {.id = id, .status = status, .duration_ms = duration_ms};
	char *err = NULL;
	int ret;

	ret = store_truncate_copy(error, STORE_ERROR_MAX, &err);
	if (ret)
		return ret;
	a.err = err;
	ret = pg_txn(P(s), true, finish_txn, &a);
	free(err);
	return ret;
}

/* The arrays of one batch of log lines, as PostgreSQL array literals. */
struct log_arrays {
	struct dynbuf ts, level, message;
};

#define LOG_ARRAYS_MAX (64u << 20)

/* Appends s to b as one quoted element of an array literal. */
static int add_element(struct dynbuf *b, const char *s)
{
	int ret = dynbuf_add_str(b, "\"");

	for (const char *p = s; !ret && *p; p++) {
		if (*p == '"' || *p == '\\')
			ret = dynbuf_add(b, "\\", 1);
		if (!ret)
			ret = dynbuf_add(b, p, 1);
	}
	return ret ? ret : dynbuf_add_str(b, "\"");
}

/* Fills a with lines (messages cut to STORE_LOG_MESSAGE_MAX). A dynbuf's
 * error is sticky: the closing add of each array says whether all of its
 * adds went in. */
static int log_arrays_make(struct log_arrays *a, const struct store_log_line_input *lines,
			   size_t n, int64_t now)
{
	char *msg = NULL;
	int ret = 0;

	dynbuf_init(&a->ts, LOG_ARRAYS_MAX, 0);
	dynbuf_init(&a->level, LOG_ARRAYS_MAX, 0);
	dynbuf_init(&a->message, LOG_ARRAYS_MAX, 0);
	for (size_t i = 0; i < n && !ret; i++) {
		const char *sep = i ? "," : "{";

		ret = store_truncate_copy(lines[i].message, STORE_LOG_MESSAGE_MAX, &msg);
		if (ret)
			return ret;
		dynbuf_addf(&a->ts, "%s%lld", sep, (long long)(lines[i].ts ? lines[i].ts : now));
		dynbuf_addf(&a->level, "%s%d", sep, lines[i].level);
		dynbuf_add_str(&a->message, sep);
		ret = add_element(&a->message, msg);
		free(msg);
	}
	if (!ret)
		ret = dynbuf_add_str(&a->ts, "}");
	if (!ret)
		ret = dynbuf_add_str(&a->level, "}");
	if (!ret)
		ret = dynbuf_add_str(&a->message, "}");
	return !ret ? 0 : ret == STATUS_ETOOBIG ? STORE_ETOOBIG : STORE_ENOMEM;
}

static void log_arrays_free(struct log_arrays *a)
{
	dynbuf_free(&a->ts);
	dynbuf_free(&a->level);
	dynbuf_free(&a->message);
}

/* Appends n lines to execution id in one statement (holding its row, so
 * that sequence numbers are not raced) and adds dropped to its count.
 * STORE_ENOTFOUND. */
static int append_logs_in(struct pgc *c, int64_t id, const struct store_log_line_input *lines,
			  size_t n, int64_t dropped)
{
	struct log_arrays a;
	int64_t seq = 0;
	PGresult *r;
	int ret;

	ret = pg_q(c, "SELECT (SELECT COALESCE(MAX(seq), 0) FROM execution_logs"
		   " WHERE execution_id = $1) FROM executions WHERE id = $1 FOR UPDATE",
		   "read log sequence", PG_ARGS(pg_i64(id)), &r);
	if (ret)
		return ret;
	if (PQntuples(r) == 0)
		ret = STORE_ENOTFOUND;
	else
		seq = pg_col_i64(r, 0, 0);
	PQclear(r);
	if (!ret && n > 0) {
		ret = log_arrays_make(&a, lines, n, util_now_ms());
		if (!ret)
			ret = pg_x(c, "INSERT INTO execution_logs (execution_id, seq, ts, level, message)"
				   " SELECT $1, $2 + l.n, l.ts, l.level, l.message FROM unnest($3::bigint[],"
				   " $4::integer[], $5::text[]) WITH ORDINALITY AS l (ts, level, message, n)",
				   "insert log lines",
				   PG_ARGS(pg_i64(id), pg_i64(seq), pg_text(dynbuf_str(&a.ts)),
					   pg_text(dynbuf_str(&a.level)), pg_text(dynbuf_str(&a.message))),
				   NULL);
		log_arrays_free(&a);
	}
	if (!ret && dropped > 0)
		ret = pg_x(c, "UPDATE executions SET logs_dropped = logs_dropped + $2 WHERE id = $1",
			   "count dropped log lines", PG_ARGS(pg_i64(id), pg_i64(dropped)), NULL);
	return ret;
}

struct logs_args {
	int64_t id;
	const struct store_log_line_input *lines;
	size_t n;
	int64_t dropped;
};

static int logs_txn(struct store *s, struct pgc *c, void *arg)
{
	struct logs_args *a = arg;

	(void)s;
	return append_logs_in(c, a->id, a->lines, a->n, a->dropped);
}

int pg_execution_append_logs(struct store *s, int64_t id, const struct store_log_line_input *lines,
			     size_t n, int64_t dropped)
{
	return pg_txn(P(s), true, logs_txn,
		      &(struct logs_args){.id = id, .lines = lines, .n = n, .dropped = dropped});
}

/* ---------------------------------------------------------------------------
 * The combined writes (store.h: "Fewer writes per event").
 */

/* Step 2 of the claim protocol for event id: the guard, the plan, and what
 * it decides, in c's transaction. STORE_ENOTFOUND when the event is no
 * longer this host's to start. *more: plan said done, the next may follow. */
static int start_one(struct store *s, struct pgc *c, int64_t id, int64_t generation,
		     store_claim_fn plan, void *user, struct store_event *ev,
		     int64_t *execution_id, bool *more)
{
	struct store_execution_input in = {0};
	PGresult *r;
	int ret, p;

	*more = false;
	ret = pg_q(c, sql_claim_mine, "start event",
		   PG_ARGS(pg_i64(id), pg_i64(generation), pg_i64(util_now_ms()),
			   pg_text(s->host_id)),
		   &r);
	if (ret)
		return ret;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return STORE_ENOTFOUND;
	}
	event_from_row(r, 0, ev);
	PQclear(r);
	p = plan(user, ev, &in);
	if (p < 0)
		return STORE_ECALLBACK;
	if (p == STORE_CLAIM_START) {
		ret = store_execution_input_check(&in);
		if (!ret && in.event_id != ev->id)
			ret = STORE_EINVAL;
		return ret ? ret : exec_insert(s, c, &in, execution_id);
	}
	if (p == STORE_CLAIM_DONE) {
		ret = event_finish_in(c, ev->id);
		if (!ret)
			ev->status = STORE_EVENT_DONE;
		*more = !ret;
		return ret;
	}
	return p == STORE_CLAIM_ONLY ? 0 : STORE_ECALLBACK;
}

/* What one store_event_claim_next did: the ids it started, in order. */
struct claim_run {
	int64_t ids[STORE_CLAIM_BATCH];
	size_t n;
};

/* Step 2 for as many events as plan marks done at once, up to
 * STORE_CLAIM_BATCH, and the first that starts something, inside c's
 * transaction. Stops early when the queue runs dry (the rest stays
 * pending for the next call). 0 with run->n > 0, or STORE_ENOTFOUND. */
static int start_some(struct store *s, struct pgc *c, int64_t generation, store_claim_fn plan,
		      void *user, struct store_event *ev, int64_t *execution_id,
		      struct claim_run *run)
{
	struct store_event cur;
	bool more = true;
	int64_t id;
	int ret = 0;

	while (more && run->n < STORE_CLAIM_BATCH && queue_pop(P(s), &id)) {
		ret = start_one(s, c, id, generation, plan, user, &cur, execution_id, &more);
		if (ret == STORE_ENOTFOUND) {
			more = true; /* given back by a survivor meanwhile: not ours */
			ret = 0;
			continue;
		}
		run->ids[run->n++] = id;
		if (ret)
			return ret;
		*ev = cur;
	}
	return run->n > 0 ? 0 : STORE_ENOTFOUND;
}

/* After a failed claim_next: the events it took go back to the queue
 * when the database failed (they are still claimed by this host), to
 * pending otherwise (all or nothing: store.h). */
static void claim_undo(struct store *s, struct pgc *c, const struct claim_run *run, int ret)
{
	for (size_t i = run->n; i > 0; i--) {
		if (ret == STORE_EIO)
			queue_unget(s, c, run->ids[i - 1]);
		else
			release_one(s, c, run->ids[i - 1]);
	}
}

static int complete_in(struct pgc *c, int64_t id, const struct store_execution_end *end,
		       const char *err);

int pg_event_claim_start(struct store *s, int64_t complete_id,
			 const struct store_execution_end *complete, int64_t generation,
			 store_claim_fn plan, void *user, struct store_event *ev,
			 int64_t *execution_id)
{
	struct claim_run run = {.n = 0};
	struct pgc *c;
	char *err = NULL;
	int ret, filled;

	if (complete_id > 0 && (ret = store_truncate_copy(complete->error, STORE_ERROR_MAX, &err)))
		return ret;
	ret = pg_take(P(s), &c);
	if (ret)
		goto out;
	/* step 1, committed by itself; then the end and the starts in one */
	filled = queue_fill(s, c, generation);
	if (filled && (filled != STORE_ENOTFOUND || complete_id == 0)) {
		ret = filled;
		goto give;
	}
	ret = pg_begin_on(P(s), c, false); /* a start is a creation: synchronous */
	if (ret)
		goto give;
	if (complete_id > 0)
		ret = complete_in(c, complete_id, complete, err);
	if (!ret)
		ret = start_some(s, c, generation, plan, user, ev, execution_id, &run);
	if (ret == STORE_ENOTFOUND && complete_id > 0) {
		/* the end is written even when nothing was left to claim */
		ret = pg_commit_on(P(s), c, 0);
		ret = ret ? ret : STORE_ENOTFOUND;
	} else {
		ret = pg_commit_on(P(s), c, ret);
	}
	if (ret && ret != STORE_ENOTFOUND)
		claim_undo(s, c, &run, ret);
give:
	pg_give(P(s), c);
out:
	free(err);
	return ret;
}

/* An execution's end with its last lines and its event's "done", inside
 * c's transaction (err: the error, already cut to STORE_ERROR_MAX). */
static int complete_in(struct pgc *c, int64_t id, const struct store_execution_end *end,
		       const char *err)
{
	int ret = exec_finish_in(c, id, end->status, err, end->duration_ms);

	if (!ret && (end->n_lines > 0 || end->dropped > 0))
		ret = append_logs_in(c, id, end->lines, end->n_lines, end->dropped);
	if (!ret && end->event_id > 0)
		ret = event_finish_in(c, end->event_id);
	return ret;
}

static int complete_txn(struct store *s, struct pgc *c, void *arg)
{
	struct end_args *a = arg;

	(void)s;
	return complete_in(c, a->id, a->end, a->err);
}

int pg_execution_complete(struct store *s, int64_t id, const struct store_execution_end *end)
{
	struct end_args a = {.id = id, .end = end};
	char *err = NULL;
	int ret;

	ret = store_truncate_copy(end->error, STORE_ERROR_MAX, &err);
	if (ret)
		return ret;
	a.err = err;
	ret = pg_txn(P(s), true, complete_txn, &a);
	free(err);
	return ret;
}

#define EXEC_COLS                                                                         \
	"id, event_id, parent_execution_id, kind, script, event, connection_id,"             \
	" provider_config_key, status, started_at, ended_at, duration_ms, error,"            \
	" plugin_version, logs_dropped, host_id"

static int exec_from_row(const PGresult *r, int i, struct store_execution **out)
{
	struct store_execution *e = calloc(1, sizeof(*e));
	int ret = 0;

	*out = NULL;
	if (!e)
		return STORE_ENOMEM;
	e->id = pg_col_i64(r, i, 0);
	e->event_id = pg_col_i64(r, i, 1);
	e->parent_execution_id = pg_col_i64(r, i, 2);
	e->kind = strcmp(PQgetvalue(r, i, 3), "action") == 0 ? STORE_EXEC_ACTION : STORE_EXEC_EVENT;
	e->script = pg_col_dup(r, i, 4, &ret);
	e->event = pg_col_dup(r, i, 5, &ret);
	e->connection_id = pg_col_dup(r, i, 6, &ret);
	e->provider_config_key = pg_col_dup(r, i, 7, &ret);
	e->status = (enum store_exec_status)store_exec_status_from_name(PQgetvalue(r, i, 8));
	if ((int)e->status < 0)
		ret = STORE_EIO;
	e->started_at = pg_col_i64(r, i, 9);
	e->ended_at = pg_col_i64(r, i, 10);
	e->duration_ms = PQgetisnull(r, i, 11) ? -1 : pg_col_i64(r, i, 11);
	e->error = pg_col_dup(r, i, 12, &ret);
	e->plugin_version = pg_col_dup(r, i, 13, &ret);
	e->logs_dropped = pg_col_i64(r, i, 14);
	e->host_id = pg_col_dup(r, i, 15, &ret);
	if (ret)
		store_execution_free(e);
	else
		*out = e;
	return ret;
}

static int read_logs(const PGresult *r, struct store_execution *e)
{
	int n = PQntuples(r), ret = 0;

	if (n == 0)
		return 0;
	e->logs = calloc((size_t)n, sizeof(*e->logs));
	if (!e->logs)
		return STORE_ENOMEM;
	for (int i = 0; i < n && !ret; i++) {
		struct store_log_line *l = &e->logs[i];

		l->seq = pg_col_i64(r, i, 0);
		l->ts = pg_col_i64(r, i, 1);
		l->level = (int)pg_col_i64(r, i, 2);
		l->message = pg_col_dup(r, i, 3, &ret);
		if (!ret)
			e->n_logs++;
	}
	return ret;
}

int pg_execution_get(struct store *s, int64_t id, struct store_execution **out)
{
	struct store_execution *e = NULL;
	PGresult *r = NULL;
	struct pgc *c;
	int ret;

	/* The row first, then its lines: a row read with a final status was
	 * committed with its last lines, so they are all there. */
	ret = pg_take(P(s), &c);
	if (ret)
		return ret;
	ret = pg_q(c, "SELECT " EXEC_COLS " FROM executions WHERE id = $1", "read execution",
		   PG_ARGS(pg_i64(id)), &r);
	if (!ret)
		ret = PQntuples(r) == 1 ? exec_from_row(r, 0, &e) : STORE_ENOTFOUND;
	PQclear(r);
	r = NULL;
	if (!ret)
		ret = pg_q(c, "SELECT seq, ts, level, message FROM execution_logs"
			   " WHERE execution_id = $1 ORDER BY seq LIMIT $2",
			   "read execution logs", PG_ARGS(pg_i64(id), pg_i64(LOG_READ_MAX)), &r);
	pg_give(P(s), c);
	if (!ret)
		ret = read_logs(r, e);
	PQclear(r);
	if (ret)
		store_execution_free(e);
	else
		*out = e;
	return ret;
}

static const char sql_exec_list[] =
	"SELECT " EXEC_COLS " FROM executions"
	" WHERE ($1::text IS NULL OR connection_id = $1::text)"
	" AND ($2::text IS NULL OR provider_config_key = $2::text)"
	" AND ($3::text IS NULL OR script = $3::text)"
	" AND ($4::text IS NULL OR event = $4::text OR ($4::text = 'action' AND kind = 'action'))"
	" AND ($5::text IS NULL OR status = $5::text) AND ($6::bigint IS NULL OR id < $6::bigint)"
	" ORDER BY id DESC LIMIT $7";

int pg_execution_list(struct store *s, const struct store_execution_filter *f,
		      struct store_execution ***items, size_t *n, int64_t *next_cursor)
{
	struct store_execution **v;
	PGresult *r;
	size_t got = 0;
	int ret, rows;

	ret = read_q(s, sql_exec_list, "list executions",
		     PG_ARGS(pg_text(f->connection_id), pg_text(f->provider_config_key),
			     pg_text(f->script), pg_text(f->event),
			     pg_text(f->status >= 0 ? store_exec_status_name(f->status) : NULL),
			     pg_id(f->cursor), pg_i64((int64_t)f->limit + 1)),
		     &r);
	if (ret)
		return ret;
	rows = PQntuples(r);
	v = rows ? calloc((size_t)rows, sizeof(*v)) : NULL;
	if (rows && !v)
		ret = STORE_ENOMEM;
	for (int i = 0; !ret && i < rows && got < f->limit; i++)
		if (!(ret = exec_from_row(r, i, &v[got])))
			got++;
	PQclear(r);
	if (ret || got == 0) {
		store_execution_list_free(v, got);
		return ret;
	}
	/* one more row than the page: the next page starts after the last kept */
	if ((size_t)rows > f->limit)
		*next_cursor = v[got - 1]->id;
	*items = v;
	*n = got;
	return 0;
}

int pg_execution_retry(struct store *s, int64_t id, int64_t *event_id)
{
	char *event = NULL, *script = NULL, *cid = NULL, *pck = NULL;
	PGresult *r = NULL;
	struct pgc *c;
	int ret;

	ret = pg_begin(P(s), &c);
	if (ret)
		return ret;
	ret = pg_q(c, "SELECT kind, status, event, script, connection_id, provider_config_key"
		   " FROM executions WHERE id = $1 FOR UPDATE", "read execution",
		   PG_ARGS(pg_i64(id)), &r);
	if (!ret && PQntuples(r) == 0)
		ret = STORE_ENOTFOUND;
	else if (!ret && strcmp(PQgetvalue(r, 0, 0), "action") == 0)
		ret = STORE_EINVAL;
	else if (!ret && strcmp(PQgetvalue(r, 0, 1), "running") == 0)
		ret = STORE_ESTATE;
	if (!ret) {
		event = pg_col_dup(r, 0, 2, &ret);
		script = pg_col_dup(r, 0, 3, &ret);
		cid = pg_col_dup(r, 0, 4, &ret);
		pck = pg_col_dup(r, 0, 5, &ret);
	}
	PQclear(r);
	/* a validate-connection run belonged to a request that is gone */
	if (!ret && (!event || strcmp(event, "validate-connection") == 0))
		ret = STORE_EINVAL;
	if (!ret)
		ret = pg_conn_accepts_events(c, pck, cid);
	if (!ret)
		ret = pg_event_add(c, event, cid, pck, script, id, false, 0, NULL, util_now_ms(),
				   event_id);
	ret = pg_end(P(s), c, ret);
	free(event);
	free(script);
	free(cid);
	free(pck);
	return ret;
}

/* ---------------------------------------------------------------------------
 * Settling a host, recovery.
 */

static const char sql_interrupt_running[] =
	"UPDATE executions SET status = 'interrupted', ended_at = $2,"
	" duration_ms = GREATEST($2::bigint - started_at, 0), error = $3"
	" WHERE host_id = $1 AND status = 'running'";

int pg_settle_host(struct pgc *c, const char *host_id, const char *error,
		   struct store_recovery *r)
{
	int64_t now = util_now_ms();
	int ret;

	memset(r, 0, sizeof(*r));
	ret = pg_x(c, sql_interrupt_running, "interrupt running executions",
		   PG_ARGS(pg_text(host_id), pg_i64(now), pg_text(error)),
		   &r->executions_interrupted);
	/* Lock first: a start that holds one of these rows commits (or not)
	 * before the next statement's snapshot is taken. */
	if (!ret)
		ret = pg_x(c, "SELECT id FROM events WHERE host_id = $1 AND status = 'claimed'"
			   " FOR UPDATE", "lock claimed events", PG_ARGS(pg_text(host_id)), NULL);
	if (!ret)
		ret = pg_x(c, "UPDATE events SET status = 'pending', claimed_at = NULL,"
			   " generation = NULL, host_id = NULL"
			   " WHERE host_id = $1 AND status = 'claimed' AND type <> 'validate-connection'"
			   " AND NOT EXISTS (SELECT 1 FROM executions x WHERE x.event_id = events.id)",
			   "requeue events", PG_ARGS(pg_text(host_id)), &r->events_requeued);
	if (!ret)
		ret = pg_x(c, "UPDATE events SET status = 'interrupted', finished_at = $2"
			   " WHERE host_id = $1 AND status = 'claimed'", "interrupt events",
			   PG_ARGS(pg_text(host_id), pg_i64(now)), &r->events_interrupted);
	return ret;
}

int pg_recover(struct store *s, struct store_recovery *r)
{
	struct pgc *c;
	int ret = pg_begin(P(s), &c);

	if (ret)
		return ret;
	ret = pg_settle_host(c, s->host_id, STORE_INTERRUPTED_ERROR, r);
	return pg_end(P(s), c, ret);
}

int pg_interrupt_running(struct store *s, const char *error, int64_t *count)
{
	struct pgc *c;
	int ret = pg_begin(P(s), &c);

	if (ret)
		return ret;
	ret = pg_x(c, sql_interrupt_running, "interrupt running executions",
		   PG_ARGS(pg_text(s->host_id), pg_i64(util_now_ms()), pg_text(error)), count);
	return pg_end(P(s), c, ret);
}
