/*
 * store_pg.c - the PostgreSQL back end ("postgresql://..." or
 * "postgres://...", libpq's URI form), for several hosts sharing one
 * database.
 *
 * Connections. A pool of PG_POOL_MAX libpq connections per store, opened
 * at start. Every operation takes one, runs one transaction on it (READ
 * COMMITTED; a single statement runs as its own) and gives it back.
 * Statements are prepared once per connection. A connection found broken
 * (the server restarted, the network dropped) is reset before it is used
 * again, and a transaction whose BEGIN fails on a connection that turns
 * out broken is retried once on a fresh one: nothing was sent yet, so that
 * is safe. A failure after BEGIN fails the call (STORE_EIO) and rolls it
 * back (the dispatcher's writes retry: pg_txn); only a COMMIT whose answer
 * is lost leaves the outcome unknown to the caller, as with any database
 * (a client retries with its Idempotency-Key).
 *
 * Group commit. Each call commits, and the commits of concurrent calls,
 * from this host's pool and from every other host, share WAL flushes in
 * the server: PostgreSQL's own group commit (commit_delay and
 * commit_siblings tune it). The calls store.h forces to disk commit with
 * synchronous_commit on (a COMMIT returns once its WAL is flushed); the
 * others (claims, ends, log lines, done marks) without waiting for the
 * flush, which a later synchronous COMMIT covers. So an acknowledgement
 * means what store.h says. What batching the back end does itself is in
 * the claims (store_pg_claim.c).
 *
 * Schema. One versioned schema for both back ends (STORE_SCHEMA_VERSION):
 * migrations[] below runs the steps both back ends share
 * (store_schema.h) in PostgreSQL's type names, with a few additions of its
 * own. The version is kept in evscript_schema. Hosts that start together
 * serialize on a transaction-level advisory lock, so one of them migrates
 * and the others find the schema in place; a database whose schema is
 * newer than this build knows is refused.
 *
 * Encryption. The key-check value in store_meta is written by the first
 * host that opens the database with a key (under the same lock); a host
 * with another key is refused (STORE_EKEY) before it writes anything.
 */
#include "store_pg_priv.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store_schema.h"
#include "store_sql.h"
#include "util.h"

/* Any constant will do, as long as every host uses the same one. */
#define SCHEMA_LOCK_KEY "7305711"

/* ---------------------------------------------------------------------------
 * Migrations: the steps of store_schema.h, in PostgreSQL's type names, and
 * what only several hosts need appended to the step that brought it.
 */
#define SCHEMA_ROWID "BIGSERIAL PRIMARY KEY"
#define SCHEMA_SERIAL "BIGSERIAL PRIMARY KEY"
#define SCHEMA_I64 "BIGINT"
#define SCHEMA_BLOB "BYTEA"
#define SCHEMA_FLAG(col) "BOOLEAN NOT NULL DEFAULT false"
#define SCHEMA_NOROWID ""

static const char *const migrations[] = {
	STORE_SCHEMA_STEP1,
	/* 1 -> 2: hosts holds every host's heartbeat (the database's clock, so
	 * hosts' clocks need not agree) and the timeout it is to be judged by
	 * (its own host_timeout_s). A new pending event, or one put back, is
	 * announced on channel evscript_events (delivered at COMMIT, once per
	 * transaction). */
	STORE_SCHEMA_STEP2
	"CREATE INDEX executions_host_running ON executions (host_id) WHERE status = 'running';"
	"CREATE INDEX events_host_claimed ON events (host_id) WHERE status = 'claimed';"
	"CREATE TABLE hosts ("
	"  host_id TEXT PRIMARY KEY,"
	"  started_at BIGINT NOT NULL,"
	"  timeout_s INTEGER NOT NULL,"
	"  heartbeat_at TIMESTAMPTZ NOT NULL);"
	"CREATE FUNCTION evscript_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$"
	" BEGIN PERFORM pg_notify('evscript_events', ''); RETURN NULL; END $$;"
	"CREATE TRIGGER events_notify AFTER INSERT OR UPDATE OF status ON events"
	"  FOR EACH ROW WHEN (NEW.status = 'pending') EXECUTE FUNCTION evscript_events_notify();",
	/* 2 -> 3: the operations on its tables: store_pg_async.c. */
	STORE_SCHEMA_STEP3,
	/* 3 -> 4: pg_settle_host finds a host's running actions by host_id. */
	STORE_SCHEMA_STEP4
	"CREATE INDEX async_actions_host_running ON async_actions (host_id)"
	"  WHERE status = 'running';",
};

#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))
_Static_assert(SCHEMA_VERSION == STORE_SCHEMA_VERSION, "one schema version for every back end");

/* ---------------------------------------------------------------------------
 * Statements.
 */

/* SQLSTATEs with a meaning of their own. */
static int map_sqlstate(const char *st)
{
	if (!st)
		return STORE_EIO;
	if (strcmp(st, "23505") == 0)
		return STORE_ECONFLICT;          /* unique_violation */
	if (strcmp(st, "23503") == 0)
		return STORE_ENOTFOUND;          /* foreign_key_violation */
	if (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0 || strcmp(st, "55P03") == 0)
		return STORE_EBUSY;              /* serialization, deadlock, lock not available */
	if (strcmp(st, "54000") == 0)
		return STORE_ETOOBIG;            /* program_limit_exceeded */
	return STORE_EIO;
}

#define PG_MAX_ARGS 16

/* Runs sql as a statement prepared on c (parsed and planned once per
 * connection, not per call: the server's CPU is what a busy host spends),
 * or unprepared when the cache is full or the preparation fails. Texts
 * may be written with SQLite's ?N (store_sql.h): they are translated when
 * they are prepared. NULL with *nomem set when the translation's copy
 * cannot be made. */
static PGresult *run_prepared(struct pgc *c, const char *sql, int n, const char *const *values,
			      const int *lengths, const int *formats, bool *nomem)
{
	PGresult *r;
	char name[24], *text;
	size_t i;

	for (i = 0; i < c->nprepared && c->prepared[i] != sql; i++)
		;
	if (i < c->nprepared) {
		snprintf(name, sizeof(name), "s%zu", i);
		return PQexecPrepared(c->conn, name, n, values, lengths, formats, 0);
	}
	text = strdup(sql);
	*nomem = !text;
	if (!text)
		return NULL;
	store_sql_dollar(text);
	if (i < PG_STMT_CACHE) {
		snprintf(name, sizeof(name), "s%zu", i);
		r = PQprepare(c->conn, name, text, n, NULL);
		if (r && PQresultStatus(r) == PGRES_COMMAND_OK)
			c->prepared[c->nprepared++] = sql;
		PQclear(r);
	}
	if (i == c->nprepared) /* not prepared: the error, if any, comes again */
		r = PQexecParams(c->conn, text, n, NULL, values, lengths, formats, 0);
	else
		r = PQexecPrepared(c->conn, name, n, values, lengths, formats, 0);
	free(text);
	return r;
}

int pg_q(struct pgc *c, const char *sql, const char *what, const struct store_arg *args,
	 PGresult **res)
{
	const char *values[PG_MAX_ARGS];
	int lengths[PG_MAX_ARGS], formats[PG_MAX_ARGS], n = 0, ret = 0;
	char nums[PG_MAX_ARGS][24];
	bool nomem = false;
	ExecStatusType st;
	PGresult *r;

	if (res)
		*res = NULL;
	for (; args && args[n].type != STORE_ARG_END; n++) {
		const struct store_arg *a = &args[n];

		if (n == PG_MAX_ARGS)
			return STORE_EINVAL;
		lengths[n] = 0;
		formats[n] = 0;
		switch (a->type) {
		case STORE_ARG_TEXT:
			values[n] = a->p;
			break;
		case STORE_ARG_I64:
			snprintf(nums[n], sizeof(nums[n]), "%lld", (long long)a->v);
			values[n] = nums[n];
			break;
		case STORE_ARG_BLOB:
			values[n] = a->p ? a->p : "";
			lengths[n] = (int)a->v;
			formats[n] = 1; /* binary: the bytes as they are */
			break;
		default:
			values[n] = NULL;
			break;
		}
	}
	r = run_prepared(c, sql, n, values, lengths, formats, &nomem);
	if (nomem)
		return STORE_ENOMEM;
	st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		ret = map_sqlstate(r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL);
		if (ret != STORE_ECONFLICT && ret != STORE_ENOTFOUND)
			log_error("store", "%s: %s", what,
				  r ? PQresultErrorMessage(r) : PQerrorMessage(c->conn));
		PQclear(r);
		return ret;
	}
	if (res)
		*res = r;
	else
		PQclear(r);
	return 0;
}

int pg_x(struct pgc *c, const char *sql, const char *what, const struct store_arg *args,
	 int64_t *changed)
{
	PGresult *r;
	int ret = pg_q(c, sql, what, args, &r);

	if (changed)
		*changed = ret ? 0 : strtoll(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return ret;
}

int64_t pg_col_i64(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

bool pg_col_bool(const PGresult *r, int row, int col)
{
	return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] == 't';
}

char *pg_col_dup(const PGresult *r, int row, int col, int *ret)
{
	char *s;

	if (PQgetisnull(r, row, col))
		return NULL;
	s = strdup(PQgetvalue(r, row, col));
	if (!s)
		*ret = STORE_ENOMEM;
	return s;
}

void pg_col_copy(const PGresult *r, int row, int col, char *dst, size_t size)
{
	snprintf(dst, size, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

int pg_col_bytea(const PGresult *r, int row, int col, uint8_t **out, size_t *len)
{
	unsigned char *u;
	size_t n = 0;

	*out = NULL;
	*len = 0;
	u = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), &n);
	if (!u)
		return STORE_ENOMEM;
	*out = malloc(n + 1);
	if (*out) {
		memcpy(*out, u, n);
		(*out)[n] = '\0';
		*len = n;
	}
	sodium_memzero(u, n); /* the libpq copy may hold a secret too */
	PQfreemem(u);
	return *out ? 0 : STORE_ENOMEM;
}

/* The column readers of a struct store_row (store_row.h) over a result. */
static int64_t row_i64(const struct store_row *r, int col)
{
	const PGresult *res = r->res;
	const char *v;

	if (PQgetisnull(res, r->row, col))
		return 0;
	v = PQgetvalue(res, r->row, col);
	return v[0] == 't' ? 1 : v[0] == 'f' ? 0 : strtoll(v, NULL, 10); /* booleans: t, f */
}

static const char *row_text(const struct store_row *r, int col)
{
	return PQgetisnull(r->res, r->row, col) ? NULL : PQgetvalue(r->res, r->row, col);
}

static int row_blob(const struct store_row *r, int col, uint8_t **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	if (PQgetisnull(r->res, r->row, col))
		return 0;
	return pg_col_bytea(r->res, r->row, col, out, len);
}

static const struct store_row_ops row_ops = {.i64 = row_i64, .text = row_text, .blob = row_blob};

struct store_row pg_row_of(const PGresult *r, int row)
{
	return (struct store_row){.ops = &row_ops, .res = r, .row = row};
}

/* ---------------------------------------------------------------------------
 * The pool.
 */

/* The server's notices and asynchronous messages (a shutdown's "terminating
 * connection"), which libpq would print on stderr, go to the daemon log. */
static void notice(void *user, const char *message)
{
	int n = (int)strcspn(message, "\n");

	(void)user;
	log_info("store", "server: %.*s", n, message);
}

PGconn *pg_connect(struct pg *p, char *err, size_t errlen)
{
	/* connect_timeout before dbname: the URL's own value wins */
	const char *const keys[] = {"connect_timeout", "fallback_application_name", "dbname", NULL};
	const char *const values[] = {"10", "evscriptd", p->conninfo, NULL};
	PGconn *c = PQconnectdbParams(keys, values, 1);
	char why[512];

	if (c && PQstatus(c) == CONNECTION_OK) {
		PQsetNoticeProcessor(c, notice, NULL);
		return c;
	}
	/* libpq quotes a URI it cannot parse, password and all */
	store_url_redact(c ? PQerrorMessage(c) : "out of memory", why, sizeof(why));
	util_set_err(err, errlen, "%s: could not connect: %s", p->shown, why);
	/* libpq's messages end with a newline */
	if (errlen && strlen(err) && err[strlen(err) - 1] == '\n')
		err[strlen(err) - 1] = '\0';
	PQfinish(c);
	return NULL;
}

size_t pg_wait_slot(struct pg *p, pthread_cond_t *freed, size_t n,
		    bool (*is_free)(const struct pg *p, size_t i))
{
	for (;;) {
		for (size_t i = 0; i < n; i++)
			if (is_free(p, i))
				return i;
		pthread_cond_wait(freed, &p->mu);
	}
}

static bool slot_free(const struct pg *p, size_t i)
{
	return !p->pool[i].busy;
}

/* Takes a free slot of the pool, waiting for one. */
static struct pgc *slot_take(struct pg *p)
{
	struct pgc *c;

	pthread_mutex_lock(&p->mu);
	c = &p->pool[pg_wait_slot(p, &p->freed, PG_POOL_MAX, slot_free)];
	c->busy = true;
	pthread_mutex_unlock(&p->mu);
	return c;
}

static void slot_give(struct pg *p, struct pgc *c)
{
	pthread_mutex_lock(&p->mu);
	c->busy = false;
	pthread_cond_signal(&p->freed);
	pthread_mutex_unlock(&p->mu);
}

/* Makes c's connection usable: opened, or reset when it was lost. */
static int slot_ready(struct pg *p, struct pgc *c)
{
	char err[512];

	if (c->conn && PQstatus(c->conn) == CONNECTION_OK)
		return 0;
	pg_forget(c);
	if (c->conn) {
		PQreset(c->conn);
		if (PQstatus(c->conn) == CONNECTION_OK) {
			log_info("store", "%s: reconnected", p->shown);
			return 0;
		}
		PQfinish(c->conn);
		c->conn = NULL;
	}
	c->conn = pg_connect(p, err, sizeof(err));
	if (!c->conn) {
		log_error("store", "%s", err);
		return STORE_EIO;
	}
	return 0;
}

/* A connection for a read of one statement (no transaction). */
int pg_take(struct pg *p, struct pgc **out)
{
	struct pgc *c = slot_take(p);
	int ret = slot_ready(p, c);

	*out = NULL;
	if (ret) {
		slot_give(p, c);
		return ret;
	}
	*out = c;
	return 0;
}

void pg_give(struct pg *p, struct pgc *c)
{
	if (c)
		slot_give(p, c);
}

/* One statement on a connection of the pool, outside any transaction:
 * its result (res) or the rows it changed. */
static int once(struct store *s, const char *sql, const char *what, const struct store_arg *args,
		PGresult **res, int64_t *changed)
{
	struct pgc *c;
	int ret = pg_take(P(s), &c);

	if (res)
		*res = NULL;
	if (ret)
		return ret;
	ret = res ? pg_q(c, sql, what, args, res) : pg_x(c, sql, what, args, changed);
	pg_give(P(s), c);
	return ret;
}

int pg_read(struct store *s, const char *sql, const char *what, const struct store_arg *args,
	    PGresult **res)
{
	return once(s, sql, what, args, res, NULL);
}

int pg_write(struct store *s, const char *sql, const char *what, const struct store_arg *args,
	     int64_t *changed)
{
	*changed = 0;
	return once(s, sql, what, args, NULL, changed);
}

int pg_read_row(struct store *s, const char *sql, const char *what, const struct store_arg *args,
		PGresult **res, struct store_row *row)
{
	int ret = pg_read(s, sql, what, args, res);

	if (!ret && PQntuples(*res) == 0)
		ret = STORE_ENOTFOUND;
	*row = pg_row_of(*res, 0);
	return ret;
}

static bool run_plain(struct pgc *c, const char *sql)
{
	PGresult *r = PQexec(c->conn, sql);
	bool ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;

	PQclear(r);
	return ok;
}

/* A lossable transaction does not wait for its WAL flush (store.h's
 * Durability: what a power loss may roll back); a later synchronous
 * COMMIT flushes it with its own, as SQLite's WAL order does. */
static const char sql_begin[] = "BEGIN";
static const char sql_begin_lossable[] = "BEGIN; SET LOCAL synchronous_commit = off";

int pg_begin_on(struct pg *p, struct pgc *c, bool lossable)
{
	const char *sql = lossable ? sql_begin_lossable : sql_begin;

	if (run_plain(c, sql))
		return 0;
	/* A connection the server dropped shows it only now: nothing was sent
	 * in it yet, so it is safe to reconnect and begin again. */
	if (PQstatus(c->conn) != CONNECTION_OK && !slot_ready(p, c) && run_plain(c, sql))
		return 0;
	log_error("store", "%s: BEGIN failed: %s", p->shown, PQerrorMessage(c->conn));
	return STORE_EIO;
}

int pg_begin(struct pg *p, struct pgc **out)
{
	struct pgc *c;
	int ret;

	*out = NULL;
	ret = pg_take(p, &c);
	if (ret)
		return ret;
	ret = pg_begin_on(p, c, false);
	if (ret) {
		slot_give(p, c);
		return ret;
	}
	*out = c;
	return 0;
}

int pg_commit_on(struct pg *p, struct pgc *c, int ret)
{
	PGresult *r;

	if (ret) {
		if (PQstatus(c->conn) == CONNECTION_OK)
			run_plain(c, "ROLLBACK");
		return ret;
	}
	r = PQexec(c->conn, "COMMIT");
	/* COMMIT of a transaction that failed answers ROLLBACK */
	if (!r || PQresultStatus(r) != PGRES_COMMAND_OK || strcmp(PQcmdStatus(r), "COMMIT") != 0) {
		log_error("store", "%s: COMMIT failed: %s", p->shown,
			  r && PQresultStatus(r) != PGRES_COMMAND_OK ? PQresultErrorMessage(r)
								    : PQerrorMessage(c->conn));
		ret = STORE_EIO;
	}
	PQclear(r);
	return ret;
}

int pg_end(struct pg *p, struct pgc *c, int ret)
{
	ret = pg_commit_on(p, c, ret);
	slot_give(p, c);
	return ret;
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0)
		;
}

int pg_txn(struct pg *p, bool lossable, pg_txn_fn fn, void *arg)
{
	int64_t deadline = util_mono_us() + (int64_t)PG_RETRY_MS * 1000, pause_ms = 50;
	struct pgc *c;
	int ret;

	for (;;) {
		ret = pg_take(p, &c);
		if (!ret && (ret = pg_begin_on(p, c, lossable)))
			slot_give(p, c);
		if (!ret) {
			ret = fn(p->s, c, arg);
			if (!ret || PQstatus(c->conn) == CONNECTION_OK)
				return pg_end(p, c, ret); /* a lost COMMIT is not retried */
			/* lost before COMMIT was sent: it cannot have committed */
			pg_end(p, c, ret);
			ret = STORE_EIO;
		}
		if (ret != STORE_EIO || util_mono_us() + pause_ms * 1000 > deadline)
			return ret;
		sleep_ms(pause_ms);
		pause_ms = pause_ms < 1000 ? pause_ms * 2 : 1000;
	}
}

/* ---------------------------------------------------------------------------
 * Opening.
 */

/* Applies the migrations this database lacks (under the schema lock). */
static int migrate(struct pg *p, struct pgc *c, char *err, size_t errlen)
{
	PGresult *r = NULL;
	int version = 0, ret;

	ret = pg_x(c, "SELECT pg_advisory_xact_lock(" SCHEMA_LOCK_KEY ")", "lock schema", NULL, NULL);
	if (!ret)
		ret = pg_x(c, "SET LOCAL client_min_messages = warning", "quiet", NULL, NULL);
	if (!ret)
		ret = pg_x(c, "CREATE TABLE IF NOT EXISTS evscript_schema ("
			   " id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)",
			   "create schema table", NULL, NULL);
	if (!ret)
		ret = pg_q(c, "SELECT version FROM evscript_schema WHERE id = 1", "read schema",
			   NULL, &r);
	if (ret) {
		util_set_err(err, errlen, "%s: reading the schema version failed: %s", p->shown,
			     status_str(ret));
		return ret;
	}
	if (PQntuples(r) == 1)
		version = (int)pg_col_i64(r, 0, 0);
	PQclear(r);
	if (version > SCHEMA_VERSION) {
		util_set_err(err, errlen,
			     "%s: schema version %d is newer than this evscript supports (%d); "
			     "use a newer evscript or another database",
			     p->shown, version, SCHEMA_VERSION);
		return STORE_ESCHEMA;
	}
	for (int v = version; v < SCHEMA_VERSION; v++) {
		if (!run_plain(c, migrations[v])) {
			util_set_err(err, errlen, "%s: schema migration %d -> %d failed: %s", p->shown,
				     v, v + 1, PQerrorMessage(c->conn));
			return STORE_EIO;
		}
	}
	if (version < SCHEMA_VERSION) {
		ret = pg_x(c, "INSERT INTO evscript_schema (id, version) VALUES (1, $1)"
			   " ON CONFLICT (id) DO UPDATE SET version = excluded.version",
			   "write schema version", STORE_ARGS(arg_i64(SCHEMA_VERSION)), NULL);
		if (ret) {
			util_set_err(err, errlen, "%s: schema migration failed: %s", p->shown,
				     status_str(ret));
			return ret;
		}
		if (version == 0)
			log_info("store", "%s: created (schema version %d)", p->shown, SCHEMA_VERSION);
		else
			log_info("store", "%s: schema migrated from version %d to %d", p->shown,
				 version, SCHEMA_VERSION);
	}
	return 0;
}

/* With a key: the database's key-check value must open with it (written by
 * the first host with a key). Without: note when the database has one. */
static int key_check(struct pg *p, struct pgc *c, char *err, size_t errlen)
{
	struct store *s = p->s;
	PGresult *r = NULL;
	uint8_t *blob = NULL;
	size_t len = 0;
	int ret;

	ret = pg_q(c, "SELECT value FROM store_meta WHERE name = 'key_check'", "read key check",
		   NULL, &r);
	if (ret)
		goto out;
	if (PQntuples(r) == 1) {
		if (!s->has_key) {
			log_warn("store", "%s holds encrypted credentials and no encryption key "
				 "is set: reading them will fail", p->shown);
			goto out;
		}
		ret = pg_col_bytea(r, 0, 0, &blob, &len);
		if (!ret)
			ret = store_key_check_verify(s, blob, len);
		goto out;
	}
	if (!s->has_key)
		goto out;
	ret = store_key_check_make(s, &blob, &len);
	if (!ret)
		ret = pg_x(c, "INSERT INTO store_meta (name, value) VALUES ('key_check', $1)",
			   "write key check", STORE_ARGS(arg_blob(blob, len)), NULL);
out:
	PQclear(r);
	free(blob);
	if (ret == STORE_EKEY)
		util_set_err(err, errlen, "%s: the encryption key (EVSCRIPT_ENCRYPTION_KEY) is not "
			     "the one this database was written with; every host must share it",
			     p->shown);
	else if (ret)
		util_set_err(err, errlen, "%s: checking the encryption key: %s", p->shown,
			     status_str(ret));
	return ret;
}

/* The server's synchronous_commit as this connection has it: "off" makes
 * every acknowledgement lossable, which store.h does not allow. Warns. */
static void check_sync(struct pg *p, struct pgc *c)
{
	PGresult *r = NULL;

	if (pg_q(c, "SHOW synchronous_commit", "read synchronous_commit", NULL, &r) == 0 &&
	    PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "off") == 0)
		log_warn("store", "%s: synchronous_commit is off: a crash of the database server may "
			 "lose acknowledged writes (connections, executions' creations), and a script may "
			 "then run twice; set it to on (docs/operations.md)", p->shown);
	PQclear(r);
}

/* STORE_OPS close: stops the host thread, gives back its claims, closes
 * every connection and frees the state. NULL impl is fine. */
void pg_close(struct store *s)
{
	struct pg *p = P(s);

	if (!p)
		return;
	pg_host_stop(p);
	pg_release_claims(p);
	for (size_t i = 0; i < PG_POOL_MAX; i++)
		PQfinish(p->pool[i].conn);
	for (size_t i = 0; i < PG_LOCK_MAX; i++)
		PQfinish(p->locks[i].conn);
	pthread_cond_destroy(&p->lock_freed);
	pthread_cond_destroy(&p->ended);
	pthread_mutex_destroy(&p->emu);
	pthread_cond_destroy(&p->freed);
	pthread_mutex_destroy(&p->qmu);
	pthread_mutex_destroy(&p->mu);
	store_secret_free(p->conninfo); /* it may hold the password */
	util_free_all(p->shown, p);
	s->impl = NULL;
}

/* STORE_OPS open: url is the whole URL, given to libpq as it is. */
int pg_open(struct store *s, const char *url, char *err, size_t errlen)
{
	char shown[512];
	struct pgc *c = NULL;
	struct pg *p;
	int ret;

	store_url_redact(url, shown, sizeof(shown));
	p = calloc(1, sizeof(*p));
	if (!p) {
		util_set_err(err, errlen, "out of memory");
		return STORE_ENOMEM;
	}
	p->s = s;
	p->stop_pipe[0] = p->stop_pipe[1] = -1;
	pthread_mutex_init(&p->mu, NULL);
	pthread_mutex_init(&p->qmu, NULL);
	pthread_cond_init(&p->freed, NULL);
	pthread_cond_init(&p->lock_freed, NULL);
	pthread_mutex_init(&p->emu, NULL);
	pthread_cond_init(&p->ended, NULL);
	s->impl = p;
	p->conninfo = strdup(url);
	p->shown = strdup(shown);
	if (!p->conninfo || !p->shown) {
		util_set_err(err, errlen, "out of memory");
		ret = STORE_ENOMEM;
		goto fail;
	}
	c = &p->pool[0];
	c->busy = true;
	c->conn = pg_connect(p, err, errlen);
	if (!c->conn) {
		ret = STORE_EIO;
		goto fail;
	}
	if (PQserverVersion(c->conn) < 110000) {
		util_set_err(err, errlen, "%s: PostgreSQL %d is too old (11 or newer is needed)",
			     p->shown, PQserverVersion(c->conn) / 10000);
		ret = STORE_EIO;
		goto fail;
	}
	if (!run_plain(c, "BEGIN")) {
		util_set_err(err, errlen, "%s: %s", p->shown, PQerrorMessage(c->conn));
		ret = STORE_EIO;
		goto fail;
	}
	ret = migrate(p, c, err, errlen);
	if (!ret)
		ret = key_check(p, c, err, errlen);
	if (!ret)
		check_sync(p, c);
	c->busy = false;
	ret = pg_end(p, c, ret);
	if (ret) {
		if (errlen && !err[0])
			util_set_err(err, errlen, "%s: schema migration failed: %s", p->shown,
				     status_str(ret));
		goto fail;
	}
	c = NULL;
	/* The whole pool now: a server short of connections says so at start,
	 * and the host's descriptors stay as they are under load. */
	for (size_t i = 1; i < PG_POOL_MAX; i++) {
		p->pool[i].conn = pg_connect(p, err, errlen);
		if (!p->pool[i].conn) {
			ret = STORE_EIO;
			goto fail;
		}
	}
	ret = pg_host_start(p, err, errlen);
	if (ret)
		goto fail;
	return 0;
fail:
	if (c)
		c->busy = false;
	pg_close(s);
	return ret;
}

#define PG_OP_ENTRY(ret, name, params) .name = pg_##name,

const struct store_ops store_pg_ops = {
	.scheme = "postgresql",
	.alias = "postgres",
	.full_url = true,
	STORE_OPS(PG_OP_ENTRY)
	/* async_recover: pg_settle_host */
	.connection_lock = pg_connection_lock,
	.connection_unlock = pg_connection_unlock,
};
