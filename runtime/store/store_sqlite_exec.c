/*
 * store_sqlite_exec.c - events, executions and their log lines in the SQLite
 * back end, and the start-up recovery over both (store.h's rule 3).
 * Locking and durability: the top of store_sqlite.c.
 */
#include "store_sqlite_priv.h"

#include <stdlib.h>
#include <string.h>

#include "store_sql.h"
#include "util.h"

#define LOG_READ_MAX 100000 /* log lines returned by store_execution_get */

static const char sql_begin_read[] = "BEGIN"; /* store_execution_get's snapshot */

/* ---------------------------------------------------------------------------
 * Events.
 */

/* Records an event (sq_event_add, now) for a connection that accepts
 * events (sq_conn_accepts_events), inside a transaction. */
static int event_add_accepted(struct sq *b, const char *type, const char *cid, const char *pck,
			      const char *script, int64_t retry_of, bool claim,
			      int64_t generation, int64_t *event_id)
{
	int ret = sq_conn_accepts_events(b, pck, cid);

	if (!ret)
		ret = sq_event_add(b, type, cid, pck, script, retry_of, claim, generation,
				   util_now_ms(), event_id);
	return ret;
}

int sq_event_insert(struct store *s, const char *type, const char *cid, const char *pck,
		    bool claim, int64_t generation, int64_t *event_id)
{
	struct sq *b = B(s);
	int ret;

	return SQ_TXN(ret, b, CRITICAL,
		      event_add_accepted(b, type, cid, pck, NULL, 0, claim, generation, event_id));
}

static const char sql_event_claim[] =
	"UPDATE events SET status = 'claimed', claimed_at = ?1, generation = ?2"
	" WHERE id = (SELECT id FROM events WHERE status = 'pending' ORDER BY id LIMIT 1)"
	" RETURNING " STORE_EVENT_COLS;

/* sq_row_fn: the event of a row of STORE_EVENT_COLS into (struct store_event *)user. */
static int read_event(sqlite3_stmt *st, void *user)
{
	struct store_row r = sq_row_of(st);

	store_row_event(&r, user);
	return 0;
}

/* Claims the oldest pending event into *ev (inside a transaction):
 * STORE_ENOTFOUND when none is pending. */
static int claim_row(struct sq *b, int64_t generation, struct store_event *ev)
{
	int ret;

	/* Run to completion (sq_rows) so that the statement is done before
	 * the transaction ends; it returns the one row it claimed, or none
	 * (ids start at 1). */
	memset(ev, 0, sizeof(*ev));
	ret = sq_rows(b, sql_event_claim, "claim event",
		      STORE_ARGS(arg_i64(util_now_ms()), arg_i64(generation)), read_event, ev);
	if (!ret && ev->id == 0)
		ret = STORE_ENOTFOUND;
	return ret;
}

int sq_event_claim(struct store *s, int64_t generation, struct store_event *ev)
{
	struct sq *b = B(s);
	int ret;

	/* NORMAL: see Durability atop store_sqlite.c (the first execution's creation
	 * makes the claim durable before anything runs). store_event_claim
	 * zeroes *ev on failure. */
	return SQ_TXN(ret, b, LOSSABLE, claim_row(b, generation, ev));
}

/* A row that finishes once (an event, an execution): its UPDATE, guarded
 * by the row's status, and the query that finds the row by id. */
struct finish {
	const char *sql, *what;
	const char *sql_exists, *what_exists;
};

/* Runs f's UPDATE with args (the row id as ?1) inside a transaction: 0
 * when it changed the row, STORE_ESTATE when the row is in another state,
 * STORE_ENOTFOUND when there is none. */
static int finish_in(struct sq *b, const struct finish *f, int64_t id, const struct store_arg *args)
{
	int ret = sq_exec(b, f->sql, f->what, args);

	if (!ret && sqlite3_changes(b->db) == 0) {
		ret = sq_row_exists(b, f->sql_exists, id, f->what_exists);
		if (!ret)
			ret = STORE_ESTATE;
	}
	return ret;
}

/* finish_in() as a write of its own (LOSSABLE: see Durability atop
 * store_sqlite.c). */
static int finish_row(struct sq *b, const struct finish *f, int64_t id,
		      const struct store_arg *args)
{
	int ret;

	return SQ_TXN(ret, b, LOSSABLE, finish_in(b, f, id, args));
}

static const struct finish event_finish = {
	.sql = "UPDATE events SET status = 'done', finished_at = ?2"
	       " WHERE id = ?1 AND status = 'claimed'",
	.what = "finish event",
	.sql_exists = "SELECT 1 FROM events WHERE id = ?1",
	.what_exists = "read event",
};

int sq_event_finish(struct store *s, int64_t event_id)
{
	return finish_row(B(s), &event_finish, event_id,
			  STORE_ARGS(arg_i64(event_id), arg_i64(util_now_ms())));
}

int sq_event_get(struct store *s, int64_t event_id, struct store_event *ev)
{
	return sq_get(B(s), store_sql_event_get, "read event", STORE_ARGS(arg_i64(event_id)),
		      read_event, ev);
}

static const char sql_event_count[] = "SELECT count(*) FROM events WHERE status = 'pending'";

int sq_event_count_pending(struct store *s, int64_t *count)
{
	return sq_get(B(s), sql_event_count, "count events", NULL, sq_read_i64, count);
}

/* ---------------------------------------------------------------------------
 * Executions.
 */

static const char sql_exec_insert[] =
	"INSERT INTO executions (event_id, parent_execution_id, kind, script, event,"
	" connection_id, provider_config_key, status, started_at, plugin_version, host_id)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running', ?8, ?9, ?10)";

/* Inserts a running execution (inside a transaction); *id its row id. */
static int exec_insert(struct sq *b, const struct store_execution_input *in, int64_t *id)
{
	int ret = sq_exec(b, sql_exec_insert, "insert execution",
			  STORE_ARGS(arg_id(in->event_id), arg_id(in->parent_execution_id),
				     arg_text(store_exec_kind_name(in->kind)), arg_text(in->script),
				     arg_text(in->event), arg_text(in->connection_id),
				     arg_text(in->provider_config_key), arg_i64(util_now_ms()),
				     arg_text(in->plugin_version), arg_text(b->host_id)));

	*id = ret ? 0 : sqlite3_last_insert_rowid(b->db);
	return ret;
}

int sq_execution_create(struct store *s, const struct store_execution_input *in,
			int64_t *id)
{
	struct sq *b = B(s);
	int ret;

	/* store_execution_create zeroes *id on failure */
	return SQ_TXN(ret, b, CRITICAL, exec_insert(b, in, id));
}

static const struct finish exec_finish = {
	.sql = "UPDATE executions SET status = ?2, error = ?3, ended_at = ?4,"
	       " duration_ms = CASE WHEN ?5 < 0 THEN max(?4 - started_at, 0) ELSE ?5 END"
	       " WHERE id = ?1 AND status = 'running'",
	.what = "finish execution",
	.sql_exists = store_sql_exec_exists,
	.what_exists = "read execution",
};

/* The arguments of exec_finish for execution id ended now. */
#define EXEC_FINISH_ARGS(id, status, err, duration_ms)                                    \
	STORE_ARGS(arg_i64(id), arg_text(store_exec_status_name(status)), arg_text(err),  \
		   arg_i64(util_now_ms()), arg_i64((duration_ms) < 0 ? -1 : (duration_ms)))

int sq_execution_finish(struct store *s, int64_t id, enum store_exec_status status,
			const char *error, int64_t duration_ms)
{
	char *err = NULL;
	int ret;

	ret = store_truncate_copy(error, STORE_ERROR_MAX, &err);
	if (ret)
		return ret;
	ret = finish_row(B(s), &exec_finish, id, EXEC_FINISH_ARGS(id, status, err, duration_ms));
	free(err);
	return ret;
}

static const char sql_log_next_seq[] =
	"SELECT COALESCE(MAX(seq), 0) FROM execution_logs WHERE execution_id = ?1";
static const char sql_log_insert[] =
	"INSERT INTO execution_logs (execution_id, seq, ts, level, message)"
	" VALUES (?1, ?2, ?3, ?4, ?5)";
static const char sql_exec_dropped[] =
	"UPDATE executions SET logs_dropped = logs_dropped + ?2 WHERE id = ?1";

/* Appends n log lines to execution id and adds dropped to its count
 * (inside a transaction). STORE_ENOTFOUND. */
static int append_logs_in(struct sq *b, int64_t id, const struct store_log_line_input *lines,
			  size_t n, int64_t dropped)
{
	int64_t seq = 0, now = util_now_ms();
	char *msg = NULL;
	int ret;

	ret = sq_row_exists(b, store_sql_exec_exists, id, "read execution");
	if (ret)
		return ret;
	ret = sq_row(b, sql_log_next_seq, "read log sequence", STORE_ARGS(arg_i64(id)), sq_read_i64,
		     &seq);
	for (size_t i = 0; i < n && !ret; i++) {
		ret = store_truncate_copy(lines[i].message, STORE_LOG_MESSAGE_MAX, &msg);
		if (ret)
			return ret;
		seq++;
		ret = sq_exec(b, sql_log_insert, "insert log line",
			      STORE_ARGS(arg_i64(id), arg_i64(seq),
					 arg_i64(lines[i].ts ? lines[i].ts : now),
					 arg_i64(lines[i].level), arg_text(msg)));
		free(msg);
		msg = NULL;
	}
	if (!ret && dropped > 0)
		ret = sq_exec(b, sql_exec_dropped, "count dropped log lines",
			      STORE_ARGS(arg_i64(id), arg_i64(dropped)));
	return ret;
}

int sq_execution_append_logs(struct store *s, int64_t id,
			     const struct store_log_line_input *lines, size_t n,
			     int64_t dropped)
{
	struct sq *b = B(s);
	int ret;

	return SQ_TXN(ret, b, LOSSABLE, append_logs_in(b, id, lines, n, dropped));
}

/* ---------------------------------------------------------------------------
 * The combined writes (store.h: "Fewer writes per event").
 */

/* An execution's end (store_execution_complete) inside the caller's
 * transaction. The finish goes first: an execution that is not running
 * (interrupted by a shutdown) fails the call before any line is written. */
static int complete_in(struct sq *b, int64_t id, const struct store_execution_end *end)
{
	char *err = NULL;
	int ret;

	ret = store_truncate_copy(end->error, STORE_ERROR_MAX, &err);
	if (ret)
		return ret;
	ret = finish_in(b, &exec_finish, id,
			EXEC_FINISH_ARGS(id, end->status, err, end->duration_ms));
	if (!ret && (end->n_lines > 0 || end->dropped > 0))
		ret = append_logs_in(b, id, end->lines, end->n_lines, end->dropped);
	if (!ret && end->event_id > 0)
		ret = finish_in(b, &event_finish, end->event_id,
				STORE_ARGS(arg_i64(end->event_id), arg_i64(util_now_ms())));
	free(err);
	return ret;
}

struct complete {
	int64_t id;
	const struct store_execution_end *end;
};

static int complete_op(struct sq *b, void *arg)
{
	struct complete *c = arg;

	return complete_in(b, c->id, c->end);
}

int sq_execution_complete(struct store *s, int64_t id, const struct store_execution_end *end)
{
	struct complete c = {.id = id, .end = end};

	/* LOSSABLE, as each of the three writes it stands for (Durability atop
	 * store_sqlite.c). */
	return sq_txn_run(B(s), LOSSABLE, complete_op, &c);
}

/* One claim of sq_event_claim_batch: claims the oldest pending event into
 * c->ev and does what plan says (*p). */
static int claim_one(struct sq *b, int64_t generation, store_claim_fn plan, void *user,
		     struct store_claimed *c, int *p)
{
	struct store_execution_input in = {0};
	int ret;

	c->execution_id = 0;
	ret = claim_row(b, generation, &c->ev);
	if (ret)
		return ret;
	*p = store_plan_claim(plan, user, &c->ev, &in);
	if (*p == STORE_CLAIM_START)
		return exec_insert(b, &in, &c->execution_id);
	if (*p == STORE_CLAIM_DONE) {
		ret = finish_in(b, &event_finish, c->ev.id,
				STORE_ARGS(arg_i64(c->ev.id), arg_i64(util_now_ms())));
		if (!ret)
			c->ev.status = STORE_EVENT_DONE;
		return ret;
	}
	return *p < 0 ? *p : 0; /* STORE_CLAIM_ONLY */
}

static const char sql_event_pending[] = "SELECT 1 FROM events WHERE status = 'pending' LIMIT 1";

/* The claim's statements (sq_txn_run). */
static int claim_op(struct sq *b, void *arg)
{
	struct store_claim_batch *c = arg;
	struct store_claimed cur;
	size_t claimed = 0;
	int ret = 0, p = STORE_CLAIM_DONE;

	c->n = 0;
	c->more = false;
	for (size_t i = 0; !ret && i < c->n_ends; i++)
		ret = complete_in(b, c->ends[i].execution_id, c->ends[i].end);
	/* events with nothing to run are claimed and done on the way, up to
	 * STORE_CLAIM_BATCH in all */
	while (!ret && p != STORE_CLAIM_ONLY && c->n < c->max && claimed < STORE_CLAIM_BATCH) {
		ret = claim_one(b, c->generation, c->plan, c->user, &cur, &p);
		if (ret)
			break;
		claimed++;
		c->last = cur.ev;
		if (p != STORE_CLAIM_DONE)
			c->out[c->n++] = cur;
	}
	if (!ret && p != STORE_CLAIM_ONLY) {
		/* stopped at max: is there more for the caller to say? */
		ret = sq_row(b, sql_event_pending, "look for pending events", NULL, NULL, NULL);
		c->more = ret == 0;
		ret = ret == STORE_ENOTFOUND ? 0 : ret;
	}
	/* what was done before the queue ran dry is kept */
	if (ret == STORE_ENOTFOUND && (claimed > 0 || c->n_ends > 0))
		return 0;
	return ret;
}

int sq_event_claim_batch(struct store *s, struct store_claim_batch *c)
{
	/* CRITICAL: the executions' creation is the fsync their scripts wait
	 * for (and it carries the claims); a claim alone or a claim marked
	 * done at once only pays for a stronger commit than it needs. */
	int ret = sq_txn_run(B(s), CRITICAL, claim_op, c);

	if (ret == 0 && c->last.id == 0)
		ret = STORE_ENOTFOUND; /* only the ends were written */
	return ret;
}

static const char sql_exec_logs[] =
	"SELECT " STORE_LOG_COLS " FROM execution_logs WHERE execution_id = ?1"
	" ORDER BY seq LIMIT ?2";
static const char sql_exec_list[] =
	"SELECT " STORE_EXEC_COLS " FROM executions"
	" WHERE (?1 IS NULL OR connection_id = ?1) AND (?2 IS NULL OR provider_config_key = ?2)"
	" AND (?3 IS NULL OR script = ?3)"
	" AND (?4 IS NULL OR event = ?4 OR (?4 = 'action' AND kind = 'action'))"
	" AND (?5 IS NULL OR status = ?5) AND (?6 IS NULL OR id < ?6)"
	" ORDER BY id DESC LIMIT ?7";

/* Builds the execution of a row of STORE_EXEC_COLS. */
static int exec_from_row(sqlite3_stmt *st, struct store_execution **out)
{
	struct store_row r = sq_row_of(st);

	return store_row_execution(&r, out);
}

/* sq_row_fn over store_sql_exec_get into (struct store_execution **)user. */
static int read_exec(sqlite3_stmt *st, void *user)
{
	return exec_from_row(st, user);
}

/* sq_page's decode over sql_exec_logs: a line of an execution's logs. */
static int log_item(sqlite3_stmt *st, void *item, void *ctx)
{
	struct store_row row = sq_row_of(st);

	(void)ctx;
	return store_row_log_line(&row, item);
}

int sq_execution_get(struct store *s, int64_t id, struct store_execution **out)
{
	struct sq_page lines = {.size = sizeof(struct store_log_line), .decode = log_item};
	struct store_execution *e = NULL;
	struct sq *b;
	int ret;

	b = sq_read_lock(B(s));
	/* One read transaction: the row and its lines are a consistent snapshot. */
	ret = sq_run_sql(b, sql_begin_read, "begin read");
	if (ret)
		goto out;
	ret = sq_row(b, store_sql_exec_get, "read execution", STORE_ARGS(arg_i64(id)), read_exec,
		     &e);
	if (ret)
		goto out;
	ret = sq_rows(b, sql_exec_logs, "read execution logs",
		      STORE_ARGS(arg_i64(id), arg_i64(LOG_READ_MAX)), sq_page_add, &lines);
	e->logs = lines.v; /* freed with e on failure */
	e->n_logs = lines.n;
out:
	ret = sq_end(b, ret);
	sq_unlock(b);
	return store_row_execution_out(ret, e, out);
}

/* sq_row_fn over sql_exec_list: one page of executions, newest first. */
struct exec_page {
	struct store_execution **v;
	size_t n, limit;
	int64_t *next_cursor;
};

static int add_exec(sqlite3_stmt *st, void *user)
{
	struct exec_page *p = user;
	int ret;

	if (p->n == p->limit) {
		/* One more row exists: the page ends at the last one kept. */
		*p->next_cursor = p->v[p->n - 1]->id;
		return 1;
	}
	ret = exec_from_row(st, &p->v[p->n]);
	if (!ret)
		p->n++;
	return ret;
}

int sq_execution_list(struct store *s, const struct store_execution_filter *f,
		      struct store_execution ***items, size_t *n, int64_t *next_cursor)
{
	struct exec_page p = {.limit = f->limit, .next_cursor = next_cursor};
	struct sq *b;
	int ret;

	p.v = calloc(f->limit, sizeof(*p.v));
	if (!p.v)
		return STORE_ENOMEM;
	b = sq_read_lock(B(s));
	ret = sq_rows(b, sql_exec_list, "list executions",
		      STORE_ARGS(arg_text(f->connection_id), arg_text(f->provider_config_key),
				 arg_text(f->script), arg_text(f->event),
				 arg_text(f->status >= 0 ? store_exec_status_name(f->status)
							 : NULL),
				 arg_id(f->cursor), arg_i64((int64_t)f->limit + 1)),
		      add_exec, &p);
	sq_unlock(b);
	if (ret || p.n == 0) {
		store_execution_list_free(p.v, p.n);
		return ret;
	}
	*items = p.v;
	*n = p.n;
	return 0;
}

static const char sql_exec_retry_info[] =
	"SELECT " STORE_RETRY_COLS " FROM executions WHERE id = ?1";

/* sq_row_fn over sql_exec_retry_info: store_row_retry's verdict and copies. */
static int read_retry_info(sqlite3_stmt *st, void *user)
{
	struct store_row r = sq_row_of(st);

	return store_row_retry(&r, user);
}

/* A retry of execution id (inside a transaction): reads what it ran
 * into *r (the caller frees it) and records its event again. */
static int retry_in(struct sq *b, int64_t id, struct store_retry *r, int64_t *event_id)
{
	int ret = sq_row(b, sql_exec_retry_info, "read execution", STORE_ARGS(arg_i64(id)),
			 read_retry_info, r);

	if (!ret)
		ret = event_add_accepted(b, r->event, r->cid, r->pck, r->script, id, false, 0,
					 event_id);
	return ret;
}

int sq_execution_retry(struct store *s, int64_t id, int64_t *event_id)
{
	struct sq *b = B(s);
	struct store_retry r = {0};
	int ret, txn;

	ret = SQ_TXN(txn, b, CRITICAL, retry_in(b, id, &r, event_id));
	store_retry_free(&r);
	return ret;
}

/* ---------------------------------------------------------------------------
 * Recovery.
 */

static const char sql_interrupt_running[] =
	"UPDATE executions SET status = 'interrupted', ended_at = ?1,"
	" duration_ms = max(?1 - started_at, 0), error = ?2 WHERE status = 'running'";
/* A validate-connection event belongs to a request that is gone: never
 * requeued. Other claimed events that never started an execution are. */
static const char sql_requeue[] =
	"UPDATE events SET status = 'pending', claimed_at = NULL, generation = NULL"
	" WHERE status = 'claimed' AND type <> 'validate-connection'"
	" AND NOT EXISTS (SELECT 1 FROM executions x WHERE x.event_id = events.id)";
static const char sql_interrupt_claimed[] =
	"UPDATE events SET status = 'interrupted', finished_at = ?1 WHERE status = 'claimed'";

static int interrupt_running(struct sq *b, const char *error, int64_t now, int64_t *count)
{
	int ret = sq_exec(b, sql_interrupt_running, "interrupt running executions",
			  STORE_ARGS(arg_i64(now), arg_text(error)));

	if (!ret)
		*count = sqlite3_changes64(b->db);
	return ret;
}

/* The recovery's statements at time now (inside a transaction). */
static int recover_in(struct sq *b, struct store_recovery *r, int64_t now)
{
	int ret;

	ret = interrupt_running(b, STORE_INTERRUPTED_ERROR, now, &r->executions_interrupted);
	if (ret)
		return ret;
	ret = sq_exec(b, sql_requeue, "requeue events", NULL);
	if (ret)
		return ret;
	r->events_requeued = sqlite3_changes64(b->db);
	ret = sq_exec(b, sql_interrupt_claimed, "interrupt events", STORE_ARGS(arg_i64(now)));
	if (!ret)
		r->events_interrupted = sqlite3_changes64(b->db);
	return ret;
}

int sq_recover(struct store *s, struct store_recovery *r)
{
	struct sq *b = B(s);
	int64_t now = util_now_ms();
	int ret;

	return SQ_TXN(ret, b, CRITICAL, recover_in(b, r, now));
}

int sq_interrupt_running(struct store *s, const char *error, int64_t *count)
{
	struct sq *b = B(s);
	int ret;

	return SQ_TXN(ret, b, CRITICAL, interrupt_running(b, error, util_now_ms(), count));
}
