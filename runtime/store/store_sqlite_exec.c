/*
 * store_sqlite_exec.c - events, executions and their log lines in the SQLite
 * back end, and the start-up recovery over both (store.h's rule 3).
 * Locking and durability: the top of store_sqlite.c.
 */
#include "store_sqlite_priv.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#define LOG_READ_MAX 100000 /* log lines returned by store_execution_get */

static const char sql_begin_read[] = "BEGIN"; /* store_execution_get's snapshot */

/* ---------------------------------------------------------------------------
 * Events.
 */

int sq_event_insert(struct store *s, const char *type, const char *cid, const char *pck,
		    bool claim, int64_t generation, int64_t *event_id)
{
	struct sq *b = B(s);
	int ret;

	ret = sq_txn_begin(b, CRITICAL);
	if (ret)
		return ret;
	ret = sq_conn_accepts_events(b, pck, cid);
	if (!ret)
		ret = sq_event_add(b, type, cid, pck, NULL, 0, claim, generation, util_now_ms(),
				   event_id);
	return sq_txn_end(b, ret);
}

#define EVENT_COLS                                                                         \
	"id, type, connection_id, provider_config_key, script, retry_of, status, generation," \
	" created_at, claimed_at, finished_at"

static const char sql_event_claim[] =
	"UPDATE events SET status = 'claimed', claimed_at = ?1, generation = ?2"
	" WHERE id = (SELECT id FROM events WHERE status = 'pending' ORDER BY id LIMIT 1)"
	" RETURNING " EVENT_COLS;
static const char sql_event_get[] = "SELECT " EVENT_COLS " FROM events WHERE id = ?1";

static enum store_event_status event_status_from(const unsigned char *t)
{
	const char *s = t ? (const char *)t : "";

	if (strcmp(s, "claimed") == 0)
		return STORE_EVENT_CLAIMED;
	if (strcmp(s, "done") == 0)
		return STORE_EVENT_DONE;
	if (strcmp(s, "interrupted") == 0)
		return STORE_EVENT_INTERRUPTED;
	return STORE_EVENT_PENDING;
}

static void event_from_row(sqlite3_stmt *st, struct store_event *ev)
{
	ev->id = sqlite3_column_int64(st, 0);
	sq_col_copy(st, 1, ev->type, sizeof(ev->type));
	sq_col_copy(st, 2, ev->connection_id, sizeof(ev->connection_id));
	sq_col_copy(st, 3, ev->provider_config_key, sizeof(ev->provider_config_key));
	sq_col_copy(st, 4, ev->script, sizeof(ev->script));
	ev->retry_of = sq_col_i64(st, 5);
	ev->status = event_status_from(sqlite3_column_text(st, 6));
	ev->generation = sq_col_i64(st, 7);
	ev->created_at = sq_col_i64(st, 8);
	ev->claimed_at = sq_col_i64(st, 9);
	ev->finished_at = sq_col_i64(st, 10);
}

int sq_event_claim(struct store *s, int64_t generation, struct store_event *ev)
{
	struct sq *b = B(s);
	sqlite3_stmt *st;
	int ret, rc;

	/* NORMAL: see Durability atop store_sqlite.c (the first execution's creation
	 * makes the claim durable before anything runs). */
	ret = sq_lock_for(b, LOSSABLE);
	if (ret)
		return ret;
	ret = sq_prep(b, sql_event_claim, &st);
	if (ret)
		goto out;
	sqlite3_bind_int64(st, 1, util_now_ms());
	sqlite3_bind_int64(st, 2, generation);
	ret = sq_step_row(b, st, "claim event");
	if (ret == 0) {
		event_from_row(st, ev);
		/* Run the statement to completion so the change is committed. */
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			;
		if (rc != SQLITE_DONE)
			ret = sq_fail(b, rc, "claim event");
	}
	sq_release(b, st);
out:
	sq_unlock(b);
	return ret;
}

static const char sql_event_finish[] =
	"UPDATE events SET status = 'done', finished_at = ?2 WHERE id = ?1 AND status = 'claimed'";
static const char sql_event_exists[] = "SELECT 1 FROM events WHERE id = ?1";

int sq_event_finish(struct store *s, int64_t event_id)
{
	struct sq *b = B(s);
	sqlite3_stmt *st;
	int ret;

	ret = sq_lock_for(b, LOSSABLE);
	if (ret)
		return ret;
	ret = sq_prep(b, sql_event_finish, &st);
	if (ret)
		goto out;
	sqlite3_bind_int64(st, 1, event_id);
	sqlite3_bind_int64(st, 2, util_now_ms());
	ret = sq_run(b, st, "finish event");
	sq_release(b, st);
	if (!ret && sqlite3_changes(b->db) == 0)
		ret = sq_not_in_state(b, sql_event_exists, event_id, "read event");
out:
	sq_unlock(b);
	return ret;
}

int sq_event_get(struct store *s, int64_t event_id, struct store_event *ev)
{
	struct sq *b = B(s);
	sqlite3_stmt *st;
	int ret;

	sq_lock(b);
	ret = sq_prep(b, sql_event_get, &st);
	if (ret)
		goto out;
	sqlite3_bind_int64(st, 1, event_id);
	ret = sq_step_row(b, st, "read event");
	if (ret == 0)
		event_from_row(st, ev);
	sq_release(b, st);
out:
	sq_unlock(b);
	return ret;
}

static const char sql_event_count[] = "SELECT count(*) FROM events WHERE status = 'pending'";

int sq_event_count_pending(struct store *s, int64_t *count)
{
	struct sq *b = B(s);
	sqlite3_stmt *st;
	int ret;

	sq_lock(b);
	ret = sq_prep(b, sql_event_count, &st);
	if (ret)
		goto out;
	ret = sq_step_row(b, st, "count events");
	if (ret == 0)
		*count = sqlite3_column_int64(st, 0);
	sq_release(b, st);
out:
	sq_unlock(b);
	return ret;
}

/* ---------------------------------------------------------------------------
 * Executions.
 */

static const char sql_exec_insert[] =
	"INSERT INTO executions (event_id, parent_execution_id, kind, script, event,"
	" connection_id, provider_config_key, status, started_at, plugin_version)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running', ?8, ?9)";

int sq_execution_create(struct store *s, const struct store_execution_input *in,
			int64_t *id)
{
	struct sq *b = B(s);
	sqlite3_stmt *st;
	int ret;

	ret = sq_lock_for(b, CRITICAL);
	if (ret)
		return ret;
	ret = sq_prep(b, sql_exec_insert, &st);
	if (ret)
		goto out;
	sq_bind_id(st, 1, in->event_id);
	sq_bind_id(st, 2, in->parent_execution_id);
	sq_bind_text(st, 3, store_exec_kind_name(in->kind));
	sq_bind_text(st, 4, in->script);
	sq_bind_text(st, 5, in->event);
	sq_bind_text(st, 6, in->connection_id);
	sq_bind_text(st, 7, in->provider_config_key);
	sqlite3_bind_int64(st, 8, util_now_ms());
	sq_bind_text(st, 9, in->plugin_version);
	ret = sq_run(b, st, "insert execution");
	if (!ret)
		*id = sqlite3_last_insert_rowid(b->db);
	sq_release(b, st);
out:
	sq_unlock(b);
	return ret;
}

static const char sql_exec_finish[] =
	"UPDATE executions SET status = ?2, error = ?3, ended_at = ?4,"
	" duration_ms = CASE WHEN ?5 < 0 THEN max(?4 - started_at, 0) ELSE ?5 END"
	" WHERE id = ?1 AND status = 'running'";
static const char sql_exec_exists[] = "SELECT 1 FROM executions WHERE id = ?1";

int sq_execution_finish(struct store *s, int64_t id, enum store_exec_status status,
			const char *error, int64_t duration_ms)
{
	struct sq *b = B(s);
	sqlite3_stmt *st;
	char *err = NULL;
	int ret;

	ret = store_truncate_copy(error, STORE_ERROR_MAX, &err);
	if (ret)
		return ret;
	ret = sq_lock_for(b, LOSSABLE);
	if (ret) {
		free(err);
		return ret;
	}
	ret = sq_prep(b, sql_exec_finish, &st);
	if (ret)
		goto out;
	sqlite3_bind_int64(st, 1, id);
	sq_bind_text(st, 2, store_exec_status_name(status));
	sq_bind_text(st, 3, err);
	sqlite3_bind_int64(st, 4, util_now_ms());
	sqlite3_bind_int64(st, 5, duration_ms < 0 ? -1 : duration_ms);
	ret = sq_run(b, st, "finish execution");
	sq_release(b, st);
	if (!ret && sqlite3_changes(b->db) == 0)
		ret = sq_not_in_state(b, sql_exec_exists, id, "read execution");
out:
	sq_unlock(b);
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

int sq_execution_append_logs(struct store *s, int64_t id,
			     const struct store_log_line_input *lines, size_t n,
			     int64_t dropped)
{
	struct sq *b = B(s);
	sqlite3_stmt *st = NULL;
	int64_t seq = 0, now = util_now_ms();
	char *msg = NULL;
	int ret;

	ret = sq_txn_begin(b, LOSSABLE);
	if (ret)
		return ret;
	ret = sq_row_exists(b, sql_exec_exists, id, "read execution");
	if (ret)
		goto out;
	ret = sq_prep(b, sql_log_next_seq, &st);
	if (ret)
		goto out;
	sqlite3_bind_int64(st, 1, id);
	ret = sq_step_row(b, st, "read log sequence");
	if (ret)
		goto out;
	seq = sqlite3_column_int64(st, 0);
	sq_release(b, st);
	st = NULL;
	ret = sq_prep(b, sql_log_insert, &st);
	if (ret)
		goto out;
	for (size_t i = 0; i < n; i++) {
		ret = store_truncate_copy(lines[i].message, STORE_LOG_MESSAGE_MAX, &msg);
		if (ret)
			goto out;
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, ++seq);
		sqlite3_bind_int64(st, 3, lines[i].ts ? lines[i].ts : now);
		sqlite3_bind_int(st, 4, lines[i].level);
		sq_bind_text(st, 5, msg);
		ret = sq_run(b, st, "insert log line");
		sqlite3_reset(st);
		free(msg);
		msg = NULL;
		if (ret)
			goto out;
	}
	sq_release(b, st);
	st = NULL;
	if (dropped > 0) {
		ret = sq_prep(b, sql_exec_dropped, &st);
		if (ret)
			goto out;
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, dropped);
		ret = sq_run(b, st, "count dropped log lines");
	}
out:
	sq_release(b, st);
	return sq_txn_end(b, ret);
}

#define EXEC_COLS                                                                         \
	"id, event_id, parent_execution_id, kind, script, event, connection_id,"             \
	" provider_config_key, status, started_at, ended_at, duration_ms, error,"            \
	" plugin_version, logs_dropped"

static const char sql_exec_get[] = "SELECT " EXEC_COLS " FROM executions WHERE id = ?1";
static const char sql_exec_logs[] =
	"SELECT seq, ts, level, message FROM execution_logs WHERE execution_id = ?1"
	" ORDER BY seq LIMIT ?2";
static const char sql_exec_list[] =
	"SELECT " EXEC_COLS " FROM executions"
	" WHERE (?1 IS NULL OR connection_id = ?1) AND (?2 IS NULL OR provider_config_key = ?2)"
	" AND (?3 IS NULL OR script = ?3)"
	" AND (?4 IS NULL OR event = ?4 OR (?4 = 'action' AND kind = 'action'))"
	" AND (?5 IS NULL OR status = ?5) AND (?6 IS NULL OR id < ?6)"
	" ORDER BY id DESC LIMIT ?7";

static int exec_from_row(sqlite3_stmt *st, struct store_execution **out)
{
	struct store_execution *e = calloc(1, sizeof(*e));
	const unsigned char *t;
	int ret = 0;

	*out = NULL;
	if (!e)
		return STORE_ENOMEM;
	e->id = sqlite3_column_int64(st, 0);
	e->event_id = sq_col_i64(st, 1);
	e->parent_execution_id = sq_col_i64(st, 2);
	t = sqlite3_column_text(st, 3);
	e->kind = t && strcmp((const char *)t, "action") == 0 ? STORE_EXEC_ACTION
							      : STORE_EXEC_EVENT;
	e->script = sq_col_dup(st, 4, &ret);
	e->event = sq_col_dup(st, 5, &ret);
	e->connection_id = sq_col_dup(st, 6, &ret);
	e->provider_config_key = sq_col_dup(st, 7, &ret);
	t = sqlite3_column_text(st, 8);
	e->status = (enum store_exec_status)store_exec_status_from_name((const char *)t);
	if ((int)e->status < 0)
		ret = STORE_EIO;
	e->started_at = sq_col_i64(st, 9);
	e->ended_at = sq_col_i64(st, 10);
	e->duration_ms = sqlite3_column_type(st, 11) == SQLITE_NULL ? -1
								   : sqlite3_column_int64(st, 11);
	e->error = sq_col_dup(st, 12, &ret);
	e->plugin_version = sq_col_dup(st, 13, &ret);
	e->logs_dropped = sq_col_i64(st, 14);
	if (ret)
		store_execution_free(e);
	else
		*out = e;
	return ret;
}

int sq_execution_get(struct store *s, int64_t id, struct store_execution **out)
{
	struct sq *b = B(s);
	struct store_execution *e = NULL;
	sqlite3_stmt *st = NULL;
	size_t alloc = 0;
	int ret, rc;

	sq_lock(b);
	/* One read transaction: the row and its lines are a consistent snapshot. */
	ret = sq_run_sql(b, sql_begin_read, "begin read");
	if (ret)
		goto out;
	ret = sq_prep(b, sql_exec_get, &st);
	if (ret)
		goto out;
	sqlite3_bind_int64(st, 1, id);
	ret = sq_step_row(b, st, "read execution");
	if (ret)
		goto out;
	ret = exec_from_row(st, &e);
	if (ret)
		goto out;
	sq_release(b, st);
	st = NULL;
	ret = sq_prep(b, sql_exec_logs, &st);
	if (ret)
		goto out;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int(st, 2, LOG_READ_MAX);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_log_line *l;

		if (e->n_logs == alloc) {
			size_t na = alloc ? alloc * 2 : 32;
			struct store_log_line *t = realloc(e->logs, na * sizeof(*t));

			if (!t) {
				ret = STORE_ENOMEM;
				goto out;
			}
			e->logs = t;
			alloc = na;
		}
		l = &e->logs[e->n_logs];
		l->seq = sqlite3_column_int64(st, 0);
		l->ts = sqlite3_column_int64(st, 1);
		l->level = sqlite3_column_int(st, 2);
		l->message = sq_col_dup(st, 3, &ret);
		if (ret)
			goto out;
		e->n_logs++;
	}
	if (rc != SQLITE_DONE)
		ret = sq_fail(b, rc, "read execution logs");
out:
	sq_release(b, st);
	ret = sq_end(b, ret);
	sq_unlock(b);
	if (ret)
		store_execution_free(e);
	else
		*out = e;
	return ret;
}

int sq_execution_list(struct store *s, const struct store_execution_filter *f,
		      struct store_execution ***items, size_t *n, int64_t *next_cursor)
{
	struct sq *b = B(s);
	struct store_execution **v = NULL, *e;
	size_t count = 0;
	sqlite3_stmt *st;
	int ret, rc;

	v = calloc(f->limit, sizeof(*v));
	if (!v)
		return STORE_ENOMEM;
	sq_lock(b);
	ret = sq_prep(b, sql_exec_list, &st);
	if (ret)
		goto out;
	sq_bind_text(st, 1, f->connection_id);
	sq_bind_text(st, 2, f->provider_config_key);
	sq_bind_text(st, 3, f->script);
	sq_bind_text(st, 4, f->event);
	sq_bind_text(st, 5, f->status >= 0 ? store_exec_status_name(f->status) : NULL);
	sq_bind_id(st, 6, f->cursor);
	sqlite3_bind_int64(st, 7, (int64_t)f->limit + 1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (count == f->limit) {
			/* One more row exists: the page ends at the last one kept. */
			*next_cursor = v[count - 1]->id;
			break;
		}
		ret = exec_from_row(st, &e);
		if (ret)
			break;
		v[count++] = e;
	}
	if (!ret && rc != SQLITE_ROW && rc != SQLITE_DONE)
		ret = sq_fail(b, rc, "list executions");
	sq_release(b, st);
out:
	sq_unlock(b);
	if (ret || count == 0) {
		store_execution_list_free(v, count);
		return ret;
	}
	*items = v;
	*n = count;
	return 0;
}

static const char sql_exec_retry_info[] =
	"SELECT kind, status, event, script, connection_id, provider_config_key"
	" FROM executions WHERE id = ?1";

int sq_execution_retry(struct store *s, int64_t id, int64_t *event_id)
{
	struct sq *b = B(s);
	sqlite3_stmt *st = NULL;
	char *event = NULL, *script = NULL, *cid = NULL, *pck = NULL;
	int ret;

	ret = sq_txn_begin(b, CRITICAL);
	if (ret)
		return ret;
	ret = sq_prep(b, sql_exec_retry_info, &st);
	if (ret)
		goto out;
	sqlite3_bind_int64(st, 1, id);
	ret = sq_step_row(b, st, "read execution");
	if (ret)
		goto out;
	if (strcmp((const char *)sqlite3_column_text(st, 0), "action") == 0) {
		ret = STORE_EINVAL;
		goto out;
	}
	if (strcmp((const char *)sqlite3_column_text(st, 1), "running") == 0) {
		ret = STORE_ESTATE;
		goto out;
	}
	event = sq_col_dup(st, 2, &ret);
	script = sq_col_dup(st, 3, &ret);
	cid = sq_col_dup(st, 4, &ret);
	pck = sq_col_dup(st, 5, &ret);
	if (ret)
		goto out;
	/* an action's input is not kept, and a validate-connection run
	 * belonged to a request (its candidate connection) that is gone */
	if (!event || strcmp(event, "validate-connection") == 0) {
		ret = STORE_EINVAL;
		goto out;
	}
	sq_release(b, st);
	st = NULL;
	ret = sq_conn_accepts_events(b, pck, cid);
	if (ret)
		goto out;
	ret = sq_event_add(b, event, cid, pck, script, id, false, 0, util_now_ms(), event_id);
out:
	sq_release(b, st);
	ret = sq_txn_end(b, ret);
	free(event);
	free(script);
	free(cid);
	free(pck);
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
	sqlite3_stmt *st;
	int ret = sq_prep(b, sql_interrupt_running, &st);

	if (ret)
		return ret;
	sqlite3_bind_int64(st, 1, now);
	sq_bind_text(st, 2, error);
	ret = sq_run(b, st, "interrupt running executions");
	if (!ret)
		*count = sqlite3_changes64(b->db);
	sq_release(b, st);
	return ret;
}

int sq_recover(struct store *s, struct store_recovery *r)
{
	struct sq *b = B(s);
	sqlite3_stmt *st = NULL;
	int64_t now = util_now_ms();
	int ret;

	ret = sq_txn_begin(b, CRITICAL);
	if (ret)
		return ret;
	ret = interrupt_running(b, STORE_INTERRUPTED_ERROR, now, &r->executions_interrupted);
	if (ret)
		goto out;
	ret = sq_prep(b, sql_requeue, &st);
	if (ret)
		goto out;
	ret = sq_run(b, st, "requeue events");
	if (ret)
		goto out;
	r->events_requeued = sqlite3_changes64(b->db);
	sq_release(b, st);
	st = NULL;
	ret = sq_prep(b, sql_interrupt_claimed, &st);
	if (ret)
		goto out;
	sqlite3_bind_int64(st, 1, now);
	ret = sq_run(b, st, "interrupt events");
	if (!ret)
		r->events_interrupted = sqlite3_changes64(b->db);
out:
	sq_release(b, st);
	return sq_txn_end(b, ret);
}

int sq_interrupt_running(struct store *s, const char *error, int64_t *count)
{
	struct sq *b = B(s);
	int ret;

	ret = sq_lock_for(b, CRITICAL);
	if (ret)
		return ret;
	ret = interrupt_running(b, error, util_now_ms(), count);
	sq_unlock(b);
	return ret;
}
