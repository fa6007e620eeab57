/*
 * store_pg_exec.c - events, executions and their log lines in the
 * PostgreSQL back end: the same statements as store_sqlite_exec.c, one
 * transaction per call (store_pg.c), the dispatcher's writes retried
 * through a restart of the server (pg_txn). The claim protocol, and
 * settling a host's rows, are in store_pg_claim.c.
 */
#include "store_pg_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynbuf.h"
#include "log.h"
#include "store_sql.h"
#include "util.h"

#define LOG_READ_MAX 100000 /* log lines returned by store_execution_get */

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

void pg_event_from_row(const PGresult *r, int i, struct store_event *ev)
{
	struct store_row row = pg_row_of(r, i);

	store_row_event(&row, ev);
}

/* A row that finishes once: UPDATE guarded by its status, then (when it
 * changed nothing) STORE_ESTATE if the row exists, STORE_ENOTFOUND if not. */
static int finish_in(struct pgc *c, const char *sql, const char *what, const char *sql_exists,
		     const struct store_arg *args)
{
	int64_t changed = 0;
	PGresult *r;
	int ret = pg_x(c, sql, what, args, &changed);

	if (ret || changed > 0)
		return ret;
	ret = pg_q(c, sql_exists, what, STORE_ARGS(args[0]), &r);
	if (!ret)
		ret = PQntuples(r) > 0 ? STORE_ESTATE : STORE_ENOTFOUND;
	PQclear(r);
	return ret;
}

static const char sql_event_finish[] =
	"UPDATE events SET status = 'done', finished_at = $2 WHERE id = $1 AND status = 'claimed'";
static const char sql_event_exists[] = "SELECT 1 FROM events WHERE id = $1";

int pg_event_finish_in(struct pgc *c, int64_t id)
{
	return finish_in(c, sql_event_finish, "finish event", sql_event_exists,
			 STORE_ARGS(arg_i64(id), arg_i64(util_now_ms())));
}

static int event_finish_txn(struct store *s, struct pgc *c, void *arg)
{
	(void)s;
	return pg_event_finish_in(c, *(const int64_t *)arg);
}

int pg_event_finish(struct store *s, int64_t event_id)
{
	return pg_txn(P(s), true, event_finish_txn, &event_id);
}

/* A read of one statement whose rows the caller reads. */
int pg_event_get(struct store *s, int64_t event_id, struct store_event *ev)
{
	struct store_row row;
	PGresult *r;
	int ret = pg_read_row(s, store_sql_event_get, "read event", STORE_ARGS(arg_i64(event_id)),
			      &r, &row);

	if (!ret)
		store_row_event(&row, ev);
	PQclear(r);
	return ret;
}

int pg_event_count_pending(struct store *s, int64_t *count)
{
	PGresult *r;
	int ret = pg_read(s, "SELECT count(*) FROM events WHERE status = 'pending'", "count events",
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

int pg_exec_insert(struct store *s, struct pgc *c, const struct store_execution_input *in,
		   int64_t *id)
{
	PGresult *r;
	int ret = pg_q(c, sql_exec_insert, "insert execution",
		       STORE_ARGS(arg_id(in->event_id), arg_id(in->parent_execution_id),
				  arg_text(store_exec_kind_name(in->kind)), arg_text(in->script),
				  arg_text(in->event), arg_text(in->connection_id),
				  arg_text(in->provider_config_key), arg_i64(util_now_ms()),
				  arg_text(in->plugin_version), arg_text(s->host_id)),
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

	return pg_exec_insert(s, c, a->in, a->id);
}

int pg_execution_create(struct store *s, const struct store_execution_input *in, int64_t *id)
{
	/* store_execution_create zeroes *id on failure */
	return pg_txn(P(s), false, create_txn, &(struct create_args){.in = in, .id = id});
}

static const char sql_exec_finish[] =
	"UPDATE executions SET status = $2, error = $3, ended_at = $4,"
	" duration_ms = CASE WHEN $5::bigint < 0 THEN GREATEST($4::bigint - started_at, 0)"
	" ELSE $5::bigint END WHERE id = $1 AND status = 'running'";

static int exec_finish_in(struct pgc *c, int64_t id, enum store_exec_status status,
			  const char *err, int64_t duration_ms)
{
	return finish_in(c, sql_exec_finish, "finish execution", store_sql_exec_exists,
			 STORE_ARGS(arg_i64(id), arg_text(store_exec_status_name(status)),
				    arg_text(err), arg_i64(util_now_ms()),
				    arg_i64(duration_ms < 0 ? -1 : duration_ms)));
}

/* An execution's end for finish_txn (store_execution_finish; its
 * store_execution_complete is store_pg_ends.c's). */
struct end_args {
	int64_t id;
	enum store_exec_status status;
	const char *err;
	int64_t duration_ms;
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
		   "read log sequence", STORE_ARGS(arg_i64(id)), &r);
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
				   STORE_ARGS(arg_i64(id), arg_i64(seq),
					      arg_text(dynbuf_str(&a.ts)),
					      arg_text(dynbuf_str(&a.level)),
					      arg_text(dynbuf_str(&a.message))),
				   NULL);
		log_arrays_free(&a);
	}
	if (!ret && dropped > 0)
		ret = pg_x(c,
			   "UPDATE executions SET logs_dropped = logs_dropped + $2 WHERE id = $1",
			   "count dropped log lines", STORE_ARGS(arg_i64(id), arg_i64(dropped)),
			   NULL);
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
 * An execution's end in one write (store.h: "Fewer writes per event"; the
 * claim that may go with it is store_pg_claim.c's).
 */

/* An execution's end with its last lines and its event's "done", inside
 * c's transaction (err: the error, already cut to STORE_ERROR_MAX). */
int pg_complete_in(struct pgc *c, int64_t id, const struct store_execution_end *end,
		   const char *err)
{
	int ret = exec_finish_in(c, id, end->status, err, end->duration_ms);

	if (!ret && (end->n_lines > 0 || end->dropped > 0))
		ret = append_logs_in(c, id, end->lines, end->n_lines, end->dropped);
	if (!ret && end->event_id > 0)
		ret = pg_event_finish_in(c, end->event_id);
	return ret;
}

static int exec_from_row(const PGresult *r, int i, struct store_execution **out)
{
	struct store_row row = pg_row_of(r, i);

	return store_row_execution(&row, out);
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
		struct store_row row = pg_row_of(r, i);

		ret = store_row_log_line(&row, &e->logs[i]);
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
	ret = pg_q(c, store_sql_exec_get, "read execution", STORE_ARGS(arg_i64(id)), &r);
	if (!ret)
		ret = PQntuples(r) == 1 ? exec_from_row(r, 0, &e) : STORE_ENOTFOUND;
	PQclear(r);
	r = NULL;
	if (!ret)
		ret = pg_q(c,
			   "SELECT " STORE_LOG_COLS " FROM execution_logs"
			   " WHERE execution_id = $1 ORDER BY seq LIMIT $2",
			   "read execution logs", STORE_ARGS(arg_i64(id), arg_i64(LOG_READ_MAX)),
			   &r);
	pg_give(P(s), c);
	if (!ret)
		ret = read_logs(r, e);
	PQclear(r);
	return store_row_execution_out(ret, e, out);
}

static const char sql_exec_list[] =
	"SELECT " STORE_EXEC_COLS " FROM executions"
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

	ret = pg_read(s, sql_exec_list, "list executions",
		     STORE_ARGS(arg_text(f->connection_id), arg_text(f->provider_config_key),
				arg_text(f->script), arg_text(f->event),
				arg_text(f->status >= 0 ? store_exec_status_name(f->status) : NULL),
				arg_id(f->cursor), arg_i64((int64_t)f->limit + 1)),
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
	struct store_retry x = {0};
	struct store_row row;
	PGresult *r = NULL;
	struct pgc *c;
	int ret;

	ret = pg_begin(P(s), &c);
	if (ret)
		return ret;
	ret = pg_q(c, "SELECT " STORE_RETRY_COLS " FROM executions WHERE id = $1 FOR UPDATE",
		   "read execution", STORE_ARGS(arg_i64(id)), &r);
	if (!ret && PQntuples(r) == 0)
		ret = STORE_ENOTFOUND;
	if (!ret) {
		row = pg_row_of(r, 0);
		ret = store_row_retry(&row, &x);
	}
	PQclear(r);
	if (!ret)
		ret = pg_conn_accepts_events(c, x.pck, x.cid);
	if (!ret)
		ret = pg_event_add(c, x.event, x.cid, x.pck, x.script, id, false, 0, NULL,
				   util_now_ms(), event_id);
	ret = pg_end(P(s), c, ret);
	store_retry_free(&x);
	return ret;
}

