/*
 * store_sqlite.c - the embedded SQLite back end ("sqlite:PATH").
 *
 * One connection per store, guarded by a mutex: every operation takes the
 * mutex for its whole transaction, so HTTP and dispatcher threads may call
 * in at once. At 17-100 us a commit, a single writer is not the bottleneck
 * (the tests measure it), and it keeps transactions simple. Statements are
 * prepared once and cached (keyed by their SQL text's address).
 *
 * Durability. WAL mode. A commit with synchronous=FULL is fsync'ed to the
 * WAL before it returns; with NORMAL it survives a crash of the daemon
 * (kill -9) but a power loss or kernel crash may roll the last commits back
 * (the database stays consistent, and WAL order means a later FULL commit
 * makes every earlier one durable too: one fsync of the WAL covers every
 * frame written before it). The setting is per commit here:
 *  - FULL for what exactly-once or an acknowledged request rests on:
 *    execution creation, the outbox upsert, deletion marks and deletes,
 *    event inserts, retries, idempotency records, recovery, metadata and the
 *    plugin ledger. An execution's creation is the fsync its script waits
 *    for: were the row lost, its event would read as claimed with nothing
 *    started, store_recover() would requeue it, and a script that had
 *    already called an external API would run a second time. A lost upsert
 *    is an acknowledged POST /connections that vanished.
 *  - NORMAL for what may be lost without a re-run:
 *    - claims. A lost claim leaves the event pending, which is exactly what
 *      store_recover() makes of a claimed event that started no execution;
 *      and the claim is on disk before any script runs, carried by the
 *      FULL commit of the event's first execution (same connection, later
 *      in the WAL). An event that runs no script only comes back pending.
 *    - execution results, log lines, an event's "done". After a power cut
 *      they read as running / claimed, and store_recover() marks them
 *      interrupted: never re-run, only less precise.
 * FULL costs ~100 us per commit on this machine kind against ~17 us, so an
 * execution pays one fsync (its creation) rather than five (claim, create,
 * logs, finish, done).
 * "sqlite:PATH?synchronous=normal" makes every commit NORMAL (crash-safe,
 * not power-loss-safe: for benchmarks or disposable hosts).
 * busy_timeout 5 s covers another process (the CLI, a backup) holding the
 * write lock; foreign keys are on.
 *
 * Write transactions start with BEGIN IMMEDIATE: the write lock is taken up
 * front, so a read-then-write transaction cannot fail half-way on a lock.
 */
#include "store.h"
#include "store_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define BUSY_TIMEOUT_MS 5000
#define STMT_CACHE 64
#define LOG_READ_MAX 100000 /* log lines returned by store_execution_get */

/* ---------------------------------------------------------------------------
 * Migrations: step i brings the schema from version i to i+1. Append only;
 * never edit a step that has shipped. All pending steps run in one
 * transaction with the new PRAGMA user_version.
 */
static const char *const migrations[] = {
	/* 0 -> 1: the initial schema. Statuses are stored as words so that an
	 * operator reading the database with sqlite3 sees what the API shows. */
	"CREATE TABLE connections ("
	"  id INTEGER PRIMARY KEY,"
	"  connection_id TEXT NOT NULL,"
	"  provider_config_key TEXT NOT NULL,"
	"  provider TEXT NOT NULL,"
	"  credentials BLOB NOT NULL,"
	"  credentials_encrypted INTEGER NOT NULL DEFAULT 0 CHECK (credentials_encrypted IN (0, 1)),"
	"  connection_config TEXT NOT NULL DEFAULT '{}',"
	"  metadata TEXT NOT NULL DEFAULT '{}',"
	"  created_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL,"
	"  deleting INTEGER NOT NULL DEFAULT 0 CHECK (deleting IN (0, 1)),"
	"  UNIQUE (provider_config_key, connection_id));"
	"CREATE INDEX connections_by_id ON connections (connection_id);"
	"CREATE TABLE events ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  type TEXT NOT NULL CHECK (type IN ('post-connection-creation',"
	"    'pre-connection-deletion', 'validate-connection')),"
	"  connection_id TEXT NOT NULL,"
	"  provider_config_key TEXT NOT NULL,"
	"  script TEXT,"
	"  retry_of INTEGER,"
	"  status TEXT NOT NULL CHECK (status IN ('pending', 'claimed', 'done', 'interrupted')),"
	"  generation INTEGER,"
	"  created_at INTEGER NOT NULL,"
	"  claimed_at INTEGER,"
	"  finished_at INTEGER);"
	"CREATE INDEX events_pending ON events (id) WHERE status = 'pending';"
	"CREATE INDEX events_claimed ON events (id) WHERE status = 'claimed';"
	"CREATE TABLE executions ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  event_id INTEGER REFERENCES events (id),"
	"  parent_execution_id INTEGER REFERENCES executions (id),"
	"  kind TEXT NOT NULL CHECK (kind IN ('event', 'action')),"
	"  script TEXT NOT NULL,"
	"  event TEXT,"
	"  connection_id TEXT NOT NULL,"
	"  provider_config_key TEXT NOT NULL,"
	"  status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'crashed',"
	"    'timed_out', 'interrupted')),"
	"  started_at INTEGER NOT NULL,"
	"  ended_at INTEGER,"
	"  duration_ms INTEGER,"
	"  error TEXT,"
	"  plugin_version TEXT,"
	"  logs_dropped INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX executions_event ON executions (event_id);"
	"CREATE INDEX executions_parent ON executions (parent_execution_id);"
	"CREATE INDEX executions_running ON executions (id) WHERE status = 'running';"
	"CREATE INDEX executions_connection ON executions (connection_id, id);"
	"CREATE INDEX executions_integration ON executions (provider_config_key, id);"
	"CREATE INDEX executions_script ON executions (script, id);"
	"CREATE TABLE execution_logs ("
	"  execution_id INTEGER NOT NULL REFERENCES executions (id) ON DELETE CASCADE,"
	"  seq INTEGER NOT NULL,"
	"  ts INTEGER NOT NULL,"
	"  level INTEGER NOT NULL,"
	"  message TEXT NOT NULL,"
	"  PRIMARY KEY (execution_id, seq)) WITHOUT ROWID;"
	"CREATE TABLE plugin_versions ("
	"  name TEXT PRIMARY KEY,"
	"  version TEXT NOT NULL,"
	"  hash BLOB NOT NULL,"
	"  accepted_at INTEGER NOT NULL);"
	"CREATE TABLE idempotency_keys ("
	"  key TEXT PRIMARY KEY,"
	"  method_path TEXT NOT NULL,"
	"  request_hash TEXT NOT NULL,"
	"  status INTEGER NOT NULL,"
	"  body TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL);"
	"CREATE INDEX idempotency_by_age ON idempotency_keys (created_at);"
	"CREATE TABLE store_meta ("
	"  name TEXT PRIMARY KEY,"
	"  value BLOB NOT NULL);",
};

#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

int store_schema_version(void)
{
	return SCHEMA_VERSION;
}

struct sq {
	sqlite3 *db;
	pthread_mutex_t mu;
	bool all_normal; /* ?synchronous=normal */
	int sync_level;  /* what the connection is set to now: 1 NORMAL, 2 FULL */
	struct {
		const char *sql;
		sqlite3_stmt *st;
	} cache[STMT_CACHE];
	size_t ncache;
};

static struct sq *B(struct store *s)
{
	return s->impl;
}

/* Maps a SQLite result to a store code; logs what is not an expected outcome.
 * The connection returns extended codes (SQLITE_BUSY_RECOVERY,
 * SQLITE_BUSY_SNAPSHOT, ...): constraints are told apart by their extended
 * code, the rest by the primary code in the low byte. */
static int fail(struct sq *b, int rc, const char *what)
{
	switch (rc) {
	case SQLITE_CONSTRAINT_FOREIGNKEY:
		return STORE_ENOTFOUND;
	case SQLITE_CONSTRAINT_PRIMARYKEY:
	case SQLITE_CONSTRAINT_UNIQUE:
		return STORE_ECONFLICT;
	}
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		log_error("store", "%s: database locked: %s", what, sqlite3_errmsg(b->db));
		return STORE_EBUSY;
	case SQLITE_NOMEM:
		return STORE_ENOMEM;
	case SQLITE_TOOBIG:
		return STORE_ETOOBIG;
	}
	log_error("store", "%s: %s (%s)", what, sqlite3_errmsg(b->db), sqlite3_errstr(rc));
	return STORE_EIO;
}

/* A cached, reset statement for sql (a string literal: its address is the key). */
static int prep(struct sq *b, const char *sql, sqlite3_stmt **st)
{
	int rc;

	*st = NULL;
	for (size_t i = 0; i < b->ncache; i++) {
		if (b->cache[i].sql == sql) {
			*st = b->cache[i].st;
			return 0;
		}
	}
	rc = sqlite3_prepare_v3(b->db, sql, -1,
				b->ncache < STMT_CACHE ? SQLITE_PREPARE_PERSISTENT : 0, st, NULL);
	if (rc != SQLITE_OK) {
		*st = NULL;
		return fail(b, rc, "prepare");
	}
	if (b->ncache < STMT_CACHE) {
		b->cache[b->ncache].sql = sql;
		b->cache[b->ncache].st = *st;
		b->ncache++;
	}
	return 0;
}

/* Gives a statement back: reset, unbound (finalized when it is not cached). */
static void release(struct sq *b, sqlite3_stmt *st)
{
	if (!st)
		return;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	for (size_t i = 0; i < b->ncache; i++)
		if (b->cache[i].st == st)
			return;
	sqlite3_finalize(st);
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

static void bind_id(sqlite3_stmt *st, int i, int64_t id)
{
	if (id > 0)
		sqlite3_bind_int64(st, i, id);
	else
		sqlite3_bind_null(st, i);
}

/* Runs a statement that returns no row. */
static int run(struct sq *b, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_DONE || rc == SQLITE_ROW)
		return 0;
	return fail(b, rc, what);
}

/* Runs a cached statement that takes no parameter (BEGIN, COMMIT, a PRAGMA). */
static int run_sql(struct sq *b, const char *sql, const char *what)
{
	sqlite3_stmt *st;
	int ret = prep(b, sql, &st);

	if (!ret)
		ret = run(b, st, what);
	release(b, st);
	return ret;
}

/* Steps a statement that reads one row: 0 with the row ready to read,
 * STORE_ENOTFOUND when there is none. */
static int step_row(struct sq *b, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		return 0;
	return rc == SQLITE_DONE ? STORE_ENOTFOUND : fail(b, rc, what);
}

static int exec(struct sq *b, const char *sql, const char *what)
{
	int rc = sqlite3_exec(b->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : fail(b, rc, what);
}

static void lock(struct sq *b)
{
	pthread_mutex_lock(&b->mu);
}

static void unlock(struct sq *b)
{
	pthread_mutex_unlock(&b->mu);
}

static const char sql_sync_full[] = "PRAGMA synchronous = FULL";
static const char sql_sync_normal[] = "PRAGMA synchronous = NORMAL";

/* Sets the durability of the next commit (outside a transaction, under the
 * lock): critical commits are FULL unless the URL asked for NORMAL. */
static int durability(struct sq *b, bool critical)
{
	int want = critical && !b->all_normal ? 2 : 1;
	int ret;

	if (b->sync_level == want)
		return 0;
	ret = run_sql(b, want == 2 ? sql_sync_full : sql_sync_normal, "set synchronous");
	if (!ret)
		b->sync_level = want;
	return ret;
}

/* Takes the lock and sets the durability class of what follows. */
static int lock_for(struct sq *b, bool critical)
{
	int ret;

	lock(b);
	ret = durability(b, critical);
	if (ret)
		unlock(b);
	return ret;
}

/* The durability class of a commit (Durability, at the top of this file). */
#define CRITICAL true
#define LOSSABLE false

static const char sql_begin[] = "BEGIN IMMEDIATE";
static const char sql_begin_read[] = "BEGIN";
static const char sql_commit[] = "COMMIT";
static const char sql_rollback[] = "ROLLBACK";

static int begin(struct sq *b)
{
	return run_sql(b, sql_begin, "begin");
}

/* Commits when ret is 0, rolls back otherwise; returns the final result. */
static int end(struct sq *b, int ret)
{
	if (ret == 0) {
		ret = run_sql(b, sql_commit, "commit");
		if (ret == 0)
			return 0;
	}
	/* After a failed COMMIT or a statement error the transaction may still
	 * be open (SQLite rolls some errors back by itself). One left open
	 * would make every later BEGIN fail: say so if it cannot be closed. */
	if (!sqlite3_get_autocommit(b->db) &&
	    sqlite3_exec(b->db, sql_rollback, NULL, NULL, NULL) != SQLITE_OK)
		log_error("store", "rollback: %s", sqlite3_errmsg(b->db));
	return ret;
}

/* Takes the lock, sets the durability of the commit and opens a write
 * transaction; on failure nothing is held. */
static int txn_begin(struct sq *b, bool critical)
{
	int ret = lock_for(b, critical);

	if (ret)
		return ret;
	ret = begin(b);
	if (ret)
		unlock(b);
	return ret;
}

/* Ends what txn_begin opened (end(), then the lock); returns the final result. */
static int txn_end(struct sq *b, int ret)
{
	ret = end(b, ret);
	unlock(b);
	return ret;
}

/* 0 when sql (a row id as ?1) finds the row, STORE_ENOTFOUND when not. */
static int row_exists(struct sq *b, const char *sql, int64_t id, const char *what)
{
	sqlite3_stmt *st;
	int ret = prep(b, sql, &st);

	if (ret)
		return ret;
	sqlite3_bind_int64(st, 1, id);
	ret = step_row(b, st, what);
	release(b, st);
	return ret;
}

/* For an UPDATE guarded by the row's status that changed nothing:
 * STORE_ESTATE when the row exists (in another state), STORE_ENOTFOUND when
 * it does not. */
static int not_in_state(struct sq *b, const char *sql_exists, int64_t id, const char *what)
{
	int ret = row_exists(b, sql_exists, id, what);

	return ret ? ret : STORE_ESTATE;
}

static char *col_dup(sqlite3_stmt *st, int i, int *ret)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	char *s;

	if (!t)
		return NULL;
	s = strdup((const char *)t);
	if (!s)
		*ret = STORE_ENOMEM;
	return s;
}

static void col_copy(sqlite3_stmt *st, int i, char *dst, size_t size)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	snprintf(dst, size, "%s", t ? (const char *)t : "");
}

static int64_t col_i64(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, i);
}

/* ---------------------------------------------------------------------------
 * Opening.
 */

static void sq_close(struct store *s)
{
	struct sq *b = B(s);

	if (!b)
		return;
	for (size_t i = 0; i < b->ncache; i++)
		sqlite3_finalize(b->cache[i].st);
	sqlite3_close_v2(b->db);
	pthread_mutex_destroy(&b->mu);
	free(b);
	s->impl = NULL;
}

static int pragma_int(sqlite3 *db, const char *sql, int *val)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	*val = 0;
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*val = sqlite3_column_int(st, 0);
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(st);
	return rc;
}

/* Reads the schema version and refuses one newer than this build's. */
static int schema_read(struct sq *b, const char *path, int *version, char *err, size_t errlen)
{
	int rc = pragma_int(b->db, "PRAGMA user_version", version);

	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(b->db));
		return (rc & 0xff) == SQLITE_BUSY ? STORE_EBUSY : STORE_EIO;
	}
	if (*version > SCHEMA_VERSION) {
		snprintf(err, errlen,
			 "%s: schema version %d is newer than this evscript supports (%d); "
			 "use a newer evscript or another database",
			 path, *version, SCHEMA_VERSION);
		return STORE_ESCHEMA;
	}
	return 0;
}

static int migrate(struct sq *b, const char *path, char *err, size_t errlen)
{
	char sql[64];
	int version, ret;

	/* Read first: an up-to-date database is opened without the write lock. */
	ret = schema_read(b, path, &version, err, errlen);
	if (ret || version == SCHEMA_VERSION)
		return ret;
	ret = begin(b);
	if (ret)
		goto store_error;
	/* Another process may have migrated between the read and the lock. */
	ret = schema_read(b, path, &version, err, errlen);
	for (int v = version; !ret && v < SCHEMA_VERSION; v++) {
		if (sqlite3_exec(b->db, migrations[v], NULL, NULL, NULL) != SQLITE_OK) {
			snprintf(err, errlen, "%s: schema migration %d -> %d failed: %s", path, v,
				 v + 1, sqlite3_errmsg(b->db));
			ret = STORE_EIO;
		}
	}
	if (!ret && version < SCHEMA_VERSION) {
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", SCHEMA_VERSION);
		ret = exec(b, sql, "set schema version");
		if (ret)
			snprintf(err, errlen, "%s: schema migration failed: %s", path,
				 store_strerror(ret));
	}
	if (ret) {
		end(b, ret);
		return ret;
	}
	ret = end(b, 0);
	if (ret)
		goto store_error;
	if (version == 0)
		log_info("store", "%s: created (schema version %d)", path, SCHEMA_VERSION);
	else if (version < SCHEMA_VERSION)
		log_info("store", "%s: schema migrated from version %d to %d", path, version,
			 SCHEMA_VERSION);
	return 0;
store_error:
	snprintf(err, errlen, "%s: schema migration failed: %s", path, store_strerror(ret));
	return ret;
}

static const char sql_meta_get[] = "SELECT value FROM store_meta WHERE name = ?1";
static const char sql_meta_put[] = "INSERT INTO store_meta (name, value) VALUES (?1, ?2)";

/* With a key: the database's key-check value must open with it (written on
 * first use). Without: note when the database holds encrypted data. */
static int key_check(struct store *s, const char *path, char *err, size_t errlen)
{
	struct sq *b = B(s);
	sqlite3_stmt *st = NULL;
	uint8_t *blob = NULL;
	size_t len = 0;
	int ret;

	ret = begin(b);
	if (ret)
		goto out;
	ret = prep(b, sql_meta_get, &st);
	if (ret)
		goto out;
	sqlite3_bind_text(st, 1, "key_check", -1, SQLITE_STATIC);
	ret = step_row(b, st, "read key check");
	if (ret == 0) {
		if (s->has_key)
			ret = store_key_check_verify(s, sqlite3_column_blob(st, 0),
						     (size_t)sqlite3_column_bytes(st, 0));
		else
			log_warn("store", "%s holds encrypted credentials and no encryption key "
				 "is set: reading them will fail", path);
		goto out;
	}
	if (ret != STORE_ENOTFOUND)
		goto out;
	ret = 0;
	if (!s->has_key)
		goto out;
	release(b, st);
	st = NULL;
	ret = store_key_check_make(s, &blob, &len);
	if (ret)
		goto out;
	ret = prep(b, sql_meta_put, &st);
	if (ret)
		goto out;
	sqlite3_bind_text(st, 1, "key_check", -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, blob, (int)len, SQLITE_STATIC);
	ret = run(b, st, "write key check");
out:
	release(b, st);
	ret = end(b, ret);
	free(blob);
	if (ret == STORE_EKEY)
		snprintf(err, errlen, "%s: the encryption key is not the one this database was "
			 "written with", path);
	else if (ret)
		snprintf(err, errlen, "%s: checking the encryption key: %s", path,
			 store_strerror(ret));
	return ret;
}

/* The database holds credentials: create it readable by its owner only
 * (SQLite gives the -wal and -shm files the database file's mode). */
static int precreate(const char *path)
{
	int fd;

	if (strcmp(path, ":memory:") == 0 || strncmp(path, "file:", 5) == 0)
		return 0;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	else if (errno != EEXIST)
		return -errno;
	return 0;
}

static int open_path(struct store *s, const char *path, bool all_normal, char *err,
		     size_t errlen)
{
	struct sq *b;
	char mode[16] = "";
	int rc, ret, e;
	sqlite3_stmt *st = NULL;

	if (!*path) {
		snprintf(err, errlen, "store URL: empty path (expected sqlite:PATH)");
		return STORE_EURL;
	}
	if (sqlite3_libversion_number() < 3035000) {
		snprintf(err, errlen, "SQLite %s is too old (3.35 or newer is needed)",
			 sqlite3_libversion());
		return STORE_EIO;
	}
	e = precreate(path);
	if (e) {
		snprintf(err, errlen, "%s: %s", path, strerror(-e));
		return STORE_EIO;
	}
	b = calloc(1, sizeof(*b));
	if (!b) {
		snprintf(err, errlen, "out of memory");
		return STORE_ENOMEM;
	}
	pthread_mutex_init(&b->mu, NULL);
	b->all_normal = all_normal;
	s->impl = b;
	rc = sqlite3_open_v2(path, &b->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
				     SQLITE_OPEN_EXRESCODE,
			     NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path,
			 b->db ? sqlite3_errmsg(b->db) : sqlite3_errstr(rc));
		ret = STORE_EIO;
		goto fail;
	}
	sqlite3_extended_result_codes(b->db, 1);
	sqlite3_busy_timeout(b->db, BUSY_TIMEOUT_MS);
	rc = sqlite3_prepare_v2(b->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		snprintf(mode, sizeof(mode), "%s", (const char *)sqlite3_column_text(st, 0));
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(b->db));
		ret = (rc & 0xff) == SQLITE_BUSY ? STORE_EBUSY : STORE_EIO;
		goto fail;
	}
	if (strcmp(mode, "wal") != 0 && strcmp(path, ":memory:") != 0) {
		snprintf(err, errlen, "%s: could not switch to WAL mode (journal mode is %s)",
			 path, mode);
		ret = STORE_EIO;
		goto fail;
	}
	rc = sqlite3_exec(b->db, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;", NULL,
			  NULL, NULL);
	b->sync_level = 2;
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(b->db));
		ret = STORE_EIO;
		goto fail;
	}
	ret = migrate(b, path, err, errlen);
	if (ret)
		goto fail;
	ret = key_check(s, path, err, errlen);
	if (ret)
		goto fail;
	return 0;
fail:
	sq_close(s);
	return ret;
}

/* location is PATH or PATH?synchronous=full|normal. */
static int sq_open(struct store *s, const char *location, char *err, size_t errlen)
{
	char *path = strdup(location), *q;
	bool all_normal = false;
	int ret;

	if (!path) {
		snprintf(err, errlen, "out of memory");
		return STORE_ENOMEM;
	}
	q = strchr(path, '?');
	if (q) {
		*q++ = '\0';
		if (strcmp(q, "synchronous=normal") == 0) {
			all_normal = true;
		} else if (strcmp(q, "synchronous=full") != 0) {
			snprintf(err, errlen, "store URL: unknown option '%s' (expected "
				 "synchronous=full or synchronous=normal)", q);
			free(path);
			return STORE_EURL;
		}
	}
	ret = open_path(s, path, all_normal, err, errlen);
	free(path);
	return ret;
}

/* ---------------------------------------------------------------------------
 * Connections.
 */

static const char sql_conn_state[] =
	"SELECT id, deleting, created_at FROM connections"
	" WHERE provider_config_key = ?1 AND connection_id = ?2";
static const char sql_conn_insert[] =
	"INSERT INTO connections (connection_id, provider_config_key, provider, credentials,"
	" credentials_encrypted, connection_config, metadata, created_at, updated_at)"
	" VALUES (?1, ?2, ?3, ?4, ?5, COALESCE(?6, '{}'), COALESCE(?7, '{}'), ?8, ?8)";
static const char sql_conn_update[] =
	"UPDATE connections SET provider = ?2, credentials = ?3, credentials_encrypted = ?4,"
	" connection_config = COALESCE(?5, connection_config), metadata = COALESCE(?6, metadata),"
	" updated_at = ?7 WHERE id = ?1";
static const char sql_event_insert[] =
	"INSERT INTO events (type, connection_id, provider_config_key, script, retry_of, status,"
	" generation, created_at, claimed_at)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
static const char sql_idem_purge[] = "DELETE FROM idempotency_keys WHERE created_at < ?1";
static const char sql_idem_exists[] = "SELECT 1 FROM idempotency_keys WHERE key = ?1";
static const char sql_idem_insert[] =
	"INSERT INTO idempotency_keys (key, method_path, request_hash, status, body, created_at)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/* Looks the connection up inside a transaction: 0 and its row id (and
 * deleting flag, created_at) when it exists, STORE_ENOTFOUND when not. */
static int conn_state(struct sq *b, const char *pck, const char *cid, int64_t *id,
		      bool *deleting, int64_t *created_at)
{
	sqlite3_stmt *st;
	int ret = prep(b, sql_conn_state, &st);

	*id = 0;
	*deleting = false;
	if (created_at)
		*created_at = 0;
	if (ret)
		return ret;
	bind_text(st, 1, pck);
	bind_text(st, 2, cid);
	ret = step_row(b, st, "read connection");
	if (ret == 0) {
		*id = sqlite3_column_int64(st, 0);
		*deleting = sqlite3_column_int(st, 1) != 0;
		if (created_at)
			*created_at = sqlite3_column_int64(st, 2);
	}
	release(b, st);
	return ret;
}

/* Inside a transaction: 0 when an event may be recorded for the connection
 * (it exists and is not being deleted, or it does not exist: validate runs
 * before it is stored, a retry may outlive it), STORE_EDELETING when not. */
static int conn_accepts_events(struct sq *b, const char *pck, const char *cid)
{
	int64_t row;
	bool deleting;
	int ret = conn_state(b, pck, cid, &row, &deleting, NULL);

	if (ret == STORE_ENOTFOUND)
		return 0;
	return ret == 0 && deleting ? STORE_EDELETING : ret;
}

/* Inserts an event inside a transaction. */
static int event_add(struct sq *b, const char *type, const char *cid, const char *pck,
		     const char *script, int64_t retry_of, bool claim, int64_t generation,
		     int64_t now, int64_t *event_id)
{
	sqlite3_stmt *st;
	int ret = prep(b, sql_event_insert, &st);

	*event_id = 0;
	if (ret)
		return ret;
	bind_text(st, 1, type);
	bind_text(st, 2, cid);
	bind_text(st, 3, pck);
	bind_text(st, 4, script);
	bind_id(st, 5, retry_of);
	bind_text(st, 6, claim ? "claimed" : "pending");
	if (claim) {
		sqlite3_bind_int64(st, 7, generation);
		sqlite3_bind_int64(st, 9, now);
	}
	sqlite3_bind_int64(st, 8, now);
	ret = run(b, st, "insert event");
	if (!ret)
		*event_id = sqlite3_last_insert_rowid(b->db);
	release(b, st);
	return ret;
}

/* Purges expired idempotency records, then says whether key is recorded. */
static int idem_purge_check(struct sq *b, const char *key, int64_t now)
{
	sqlite3_stmt *st;
	int ret;

	ret = prep(b, sql_idem_purge, &st);
	if (ret)
		return ret;
	sqlite3_bind_int64(st, 1, now - STORE_IDEMPOTENCY_TTL_MS);
	ret = run(b, st, "purge idempotency keys");
	release(b, st);
	if (ret)
		return ret;
	ret = prep(b, sql_idem_exists, &st);
	if (ret)
		return ret;
	bind_text(st, 1, key);
	ret = step_row(b, st, "read idempotency key");
	release(b, st);
	return ret == 0 ? STORE_ECONFLICT : ret == STORE_ENOTFOUND ? 0 : ret;
}

static int idem_insert(struct sq *b, const struct store_idempotency_input *in, int status,
		       const char *body, int64_t now)
{
	sqlite3_stmt *st;
	int ret = prep(b, sql_idem_insert, &st);

	if (ret)
		return ret;
	bind_text(st, 1, in->key);
	bind_text(st, 2, in->method_path);
	bind_text(st, 3, in->request_hash);
	sqlite3_bind_int(st, 4, status);
	bind_text(st, 5, body ? body : "");
	sqlite3_bind_int64(st, 6, now);
	ret = run(b, st, "insert idempotency key");
	release(b, st);
	return ret;
}

static int sq_connection_upsert(struct store *s, const struct store_connection_input *in,
				const struct store_idempotency_input *idem,
				struct store_upsert_result *r)
{
	struct sq *b = B(s);
	sqlite3_stmt *st = NULL;
	uint8_t *blob = NULL;
	size_t len = 0;
	bool encrypted, deleting;
	int64_t now = util_now_ms(), row, created_at;
	char *body = NULL;
	int status, ret;

	/* Seal outside the lock: it does not touch the database. */
	ret = store_seal_credentials(s, in->provider_config_key, in->connection_id,
				     in->credentials, &blob, &len, &encrypted);
	if (ret)
		return ret;
	ret = txn_begin(b, CRITICAL);
	if (ret) {
		store_blob_free(blob, len);
		return ret;
	}
	if (idem) {
		ret = idem_purge_check(b, idem->key, now);
		if (ret)
			goto out;
	}
	ret = conn_state(b, in->provider_config_key, in->connection_id, &row, &deleting,
			 &created_at);
	if (ret == 0 && deleting) {
		ret = STORE_EDELETING;
		goto out;
	}
	if (ret == STORE_ENOTFOUND) {
		ret = prep(b, sql_conn_insert, &st);
		if (ret)
			goto out;
		bind_text(st, 1, in->connection_id);
		bind_text(st, 2, in->provider_config_key);
		bind_text(st, 3, in->provider);
		sqlite3_bind_blob(st, 4, blob, (int)len, SQLITE_STATIC);
		sqlite3_bind_int(st, 5, encrypted);
		bind_text(st, 6, in->connection_config);
		bind_text(st, 7, in->metadata);
		sqlite3_bind_int64(st, 8, now);
		ret = run(b, st, "insert connection");
		if (ret)
			goto out;
		r->connection_row_id = sqlite3_last_insert_rowid(b->db);
		r->created = true;
		r->created_at = now;
	} else if (ret == 0) {
		ret = prep(b, sql_conn_update, &st);
		if (ret)
			goto out;
		sqlite3_bind_int64(st, 1, row);
		bind_text(st, 2, in->provider);
		sqlite3_bind_blob(st, 3, blob, (int)len, SQLITE_STATIC);
		sqlite3_bind_int(st, 4, encrypted);
		bind_text(st, 5, in->connection_config);
		bind_text(st, 6, in->metadata);
		sqlite3_bind_int64(st, 7, now);
		ret = run(b, st, "update connection");
		if (ret)
			goto out;
		r->connection_row_id = row;
		r->created = false;
		r->created_at = created_at;
	} else {
		goto out;
	}
	r->updated_at = now;
	ret = event_add(b, STORE_EVENT_POST_CONNECTION_CREATION, in->connection_id,
			in->provider_config_key, NULL, 0, false, 0, now, &r->event_id);
	if (ret)
		goto out;
	if (idem) {
		status = idem->status;
		if (idem->respond) {
			status = 0;
			if (idem->respond(idem->user, r, &status, &body) != 0 || status < 100 ||
			    status > 599) {
				ret = STORE_ECALLBACK;
				goto out;
			}
			if (body && strlen(body) > STORE_JSON_MAX) {
				ret = STORE_ETOOBIG;
				goto out;
			}
		}
		ret = idem_insert(b, idem, status, idem->respond ? body : idem->body, now);
	}
out:
	release(b, st);
	ret = txn_end(b, ret);
	free(body);
	store_blob_free(blob, len);
	return ret;
}

static const char sql_conn_get[] =
	"SELECT id, connection_id, provider_config_key, provider, credentials,"
	" credentials_encrypted, connection_config, metadata, created_at, updated_at, deleting"
	" FROM connections WHERE provider_config_key = ?1 AND connection_id = ?2";
static const char sql_conn_list[] =
	"SELECT id, connection_id, provider_config_key, provider, NULL,"
	" credentials_encrypted, connection_config, metadata, created_at, updated_at, deleting"
	" FROM connections WHERE (?1 IS NULL OR connection_id = ?1)"
	" AND (?2 IS NULL OR instr(',' || ?2 || ',', ',' || provider_config_key || ',') > 0)"
	" AND (?3 IS NULL OR instr(connection_id, ?3) > 0)"
	" ORDER BY created_at DESC, id DESC LIMIT ?4 OFFSET ?5";

/* Builds a connection from a row of sql_conn_get / sql_conn_list. */
static int conn_from_row(struct store *s, sqlite3_stmt *st, bool with_credentials,
			 struct store_connection **out)
{
	struct store_connection *c = calloc(1, sizeof(*c));
	int ret = 0;

	*out = NULL;
	if (!c)
		return STORE_ENOMEM;
	c->id = sqlite3_column_int64(st, 0);
	c->connection_id = col_dup(st, 1, &ret);
	c->provider_config_key = col_dup(st, 2, &ret);
	c->provider = col_dup(st, 3, &ret);
	c->credentials_encrypted = sqlite3_column_int(st, 5) != 0;
	c->connection_config = col_dup(st, 6, &ret);
	c->metadata = col_dup(st, 7, &ret);
	c->created_at = sqlite3_column_int64(st, 8);
	c->updated_at = sqlite3_column_int64(st, 9);
	c->deleting = sqlite3_column_int(st, 10) != 0;
	if (ret)
		goto out;
	if (with_credentials) {
		const void *blob = sqlite3_column_blob(st, 4);
		size_t len = (size_t)sqlite3_column_bytes(st, 4);

		ret = store_open_credentials(s, c->provider_config_key, c->connection_id,
					     blob ? blob : "", len, c->credentials_encrypted,
					     &c->credentials);
	}
out:
	if (ret)
		store_connection_free(c);
	else
		*out = c;
	return ret;
}

static int sq_connection_get(struct store *s, const char *pck, const char *cid,
			     struct store_connection **out)
{
	struct sq *b = B(s);
	sqlite3_stmt *st;
	int ret;

	lock(b);
	ret = prep(b, sql_conn_get, &st);
	if (ret)
		goto out;
	bind_text(st, 1, pck);
	bind_text(st, 2, cid);
	ret = step_row(b, st, "read connection");
	if (ret == 0)
		ret = conn_from_row(s, st, true, out);
	release(b, st);
out:
	unlock(b);
	return ret;
}

static int sq_connection_list(struct store *s, const struct store_connection_filter *f,
			      struct store_connection ***items, size_t *n)
{
	struct sq *b = B(s);
	struct store_connection **v = NULL, *c;
	size_t count = 0, alloc = 0;
	sqlite3_stmt *st;
	int ret, rc;

	lock(b);
	ret = prep(b, sql_conn_list, &st);
	if (ret)
		goto out;
	bind_text(st, 1, f->connection_id);
	bind_text(st, 2, f->provider_config_keys && *f->provider_config_keys
				 ? f->provider_config_keys : NULL);
	bind_text(st, 3, f->search && *f->search ? f->search : NULL);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)f->limit);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)f->offset);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (count == alloc) {
			size_t na = alloc ? alloc * 2 : 16;
			struct store_connection **t = realloc(v, na * sizeof(*v));

			if (!t) {
				ret = STORE_ENOMEM;
				break;
			}
			v = t;
			alloc = na;
		}
		ret = conn_from_row(s, st, false, &c);
		if (ret)
			break;
		v[count++] = c;
	}
	if (!ret && rc != SQLITE_ROW && rc != SQLITE_DONE)
		ret = fail(b, rc, "list connections");
	release(b, st);
out:
	unlock(b);
	if (ret) {
		store_connection_list_free(v, count);
		return ret;
	}
	*items = v;
	*n = count;
	return 0;
}

static const char sql_conn_mark_deleting[] =
	"UPDATE connections SET deleting = 1, updated_at = ?2 WHERE id = ?1";

static int sq_connection_mark_deleting(struct store *s, const char *pck, const char *cid,
				       bool claim, int64_t generation, int64_t *event_id)
{
	struct sq *b = B(s);
	sqlite3_stmt *st = NULL;
	int64_t row, now = util_now_ms();
	bool deleting;
	int ret;

	ret = txn_begin(b, CRITICAL);
	if (ret)
		return ret;
	ret = conn_state(b, pck, cid, &row, &deleting, NULL);
	if (ret)
		goto out;
	if (deleting) {
		ret = STORE_EDELETING;
		goto out;
	}
	ret = prep(b, sql_conn_mark_deleting, &st);
	if (ret)
		goto out;
	sqlite3_bind_int64(st, 1, row);
	sqlite3_bind_int64(st, 2, now);
	ret = run(b, st, "mark connection deleting");
	if (ret)
		goto out;
	ret = event_add(b, STORE_EVENT_PRE_CONNECTION_DELETION, cid, pck, NULL, 0, claim,
			generation, now, event_id);
out:
	release(b, st);
	return txn_end(b, ret);
}

static const char sql_conn_delete[] =
	"DELETE FROM connections WHERE provider_config_key = ?1 AND connection_id = ?2";

static int sq_connection_delete(struct store *s, const char *pck, const char *cid)
{
	struct sq *b = B(s);
	sqlite3_stmt *st;
	int ret;

	ret = lock_for(b, CRITICAL);
	if (ret)
		return ret;
	ret = prep(b, sql_conn_delete, &st);
	if (ret)
		goto out;
	bind_text(st, 1, pck);
	bind_text(st, 2, cid);
	ret = run(b, st, "delete connection");
	if (!ret && sqlite3_changes(b->db) == 0)
		ret = STORE_ENOTFOUND;
	release(b, st);
out:
	unlock(b);
	return ret;
}

static const char sql_meta_read[] =
	"SELECT metadata, deleting FROM connections WHERE provider_config_key = ?1 AND connection_id = ?2";
static const char sql_meta_write[] =
	"UPDATE connections SET metadata = ?3, updated_at = ?4"
	" WHERE provider_config_key = ?1 AND connection_id = ?2";

/* One connection's metadata, inside the caller's transaction. */
static int meta_write_one(struct sq *b, const char *pck, const char *cid, const char *json,
			  bool merge, bool refuse_deleting)
{
	sqlite3_stmt *st = NULL;
	char *merged = NULL;
	int ret;

	ret = prep(b, sql_meta_read, &st);
	if (ret)
		goto out;
	bind_text(st, 1, pck);
	bind_text(st, 2, cid);
	ret = step_row(b, st, "read metadata");
	if (ret)
		goto out;
	if (refuse_deleting && sqlite3_column_int(st, 1)) {
		ret = STORE_EDELETING;
		goto out;
	}
	if (merge) {
		ret = store_json_merge((const char *)sqlite3_column_text(st, 0), json, &merged);
		if (ret)
			goto out;
	}
	release(b, st);
	st = NULL;
	ret = prep(b, sql_meta_write, &st);
	if (ret)
		goto out;
	bind_text(st, 1, pck);
	bind_text(st, 2, cid);
	bind_text(st, 3, merge ? merged : json);
	sqlite3_bind_int64(st, 4, util_now_ms());
	ret = run(b, st, "write metadata");
out:
	release(b, st);
	free(merged);
	return ret;
}

static int sq_connection_metadata(struct store *s, const char *pck, const char *const *cids,
				  size_t n, const char *json, bool merge, bool refuse_deleting,
				  size_t *failed)
{
	struct sq *b = B(s);
	int ret;

	ret = txn_begin(b, CRITICAL);
	if (ret)
		return ret;
	for (size_t i = 0; i < n && !ret; i++) {
		ret = meta_write_one(b, pck, cids[i], json, merge, refuse_deleting);
		if (ret)
			*failed = i;
	}
	return txn_end(b, ret);
}

/* ---------------------------------------------------------------------------
 * Idempotency.
 */

static const char sql_idem_get[] =
	"SELECT key, method_path, request_hash, status, body, created_at FROM idempotency_keys"
	" WHERE key = ?1 AND created_at >= ?2";

static int sq_idempotency_get(struct store *s, const char *key, struct store_idempotency **out)
{
	struct sq *b = B(s);
	struct store_idempotency *r = NULL;
	sqlite3_stmt *st;
	int ret;

	lock(b);
	ret = prep(b, sql_idem_get, &st);
	if (ret)
		goto out;
	bind_text(st, 1, key);
	sqlite3_bind_int64(st, 2, util_now_ms() - STORE_IDEMPOTENCY_TTL_MS);
	ret = step_row(b, st, "read idempotency key");
	if (ret == 0) {
		r = calloc(1, sizeof(*r));
		if (!r) {
			ret = STORE_ENOMEM;
		} else {
			r->key = col_dup(st, 0, &ret);
			r->method_path = col_dup(st, 1, &ret);
			r->request_hash = col_dup(st, 2, &ret);
			r->status = sqlite3_column_int(st, 3);
			r->body = col_dup(st, 4, &ret);
			r->created_at = sqlite3_column_int64(st, 5);
		}
	}
	release(b, st);
out:
	unlock(b);
	if (ret)
		store_idempotency_free(r);
	else
		*out = r;
	return ret;
}

static int sq_idempotency_put(struct store *s, const struct store_idempotency_input *in)
{
	struct sq *b = B(s);
	int64_t now = util_now_ms();
	int ret;

	ret = txn_begin(b, CRITICAL);
	if (ret)
		return ret;
	ret = idem_purge_check(b, in->key, now);
	if (!ret)
		ret = idem_insert(b, in, in->status, in->body, now);
	return txn_end(b, ret);
}

/* ---------------------------------------------------------------------------
 * Events.
 */

static int sq_event_insert(struct store *s, const char *type, const char *cid, const char *pck,
			   bool claim, int64_t generation, int64_t *event_id)
{
	struct sq *b = B(s);
	int ret;

	ret = txn_begin(b, CRITICAL);
	if (ret)
		return ret;
	ret = conn_accepts_events(b, pck, cid);
	if (!ret)
		ret = event_add(b, type, cid, pck, NULL, 0, claim, generation, util_now_ms(),
				event_id);
	return txn_end(b, ret);
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
	col_copy(st, 1, ev->type, sizeof(ev->type));
	col_copy(st, 2, ev->connection_id, sizeof(ev->connection_id));
	col_copy(st, 3, ev->provider_config_key, sizeof(ev->provider_config_key));
	col_copy(st, 4, ev->script, sizeof(ev->script));
	ev->retry_of = col_i64(st, 5);
	ev->status = event_status_from(sqlite3_column_text(st, 6));
	ev->generation = col_i64(st, 7);
	ev->created_at = col_i64(st, 8);
	ev->claimed_at = col_i64(st, 9);
	ev->finished_at = col_i64(st, 10);
}

static int sq_event_claim(struct store *s, int64_t generation, struct store_event *ev)
{
	struct sq *b = B(s);
	sqlite3_stmt *st;
	int ret, rc;

	/* NORMAL: see Durability at the top (the first execution's creation
	 * makes the claim durable before anything runs). */
	ret = lock_for(b, LOSSABLE);
	if (ret)
		return ret;
	ret = prep(b, sql_event_claim, &st);
	if (ret)
		goto out;
	sqlite3_bind_int64(st, 1, util_now_ms());
	sqlite3_bind_int64(st, 2, generation);
	ret = step_row(b, st, "claim event");
	if (ret == 0) {
		event_from_row(st, ev);
		/* Run the statement to completion so the change is committed. */
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			;
		if (rc != SQLITE_DONE)
			ret = fail(b, rc, "claim event");
	}
	release(b, st);
out:
	unlock(b);
	return ret;
}

static const char sql_event_finish[] =
	"UPDATE events SET status = 'done', finished_at = ?2 WHERE id = ?1 AND status = 'claimed'";
static const char sql_event_exists[] = "SELECT 1 FROM events WHERE id = ?1";

static int sq_event_finish(struct store *s, int64_t event_id)
{
	struct sq *b = B(s);
	sqlite3_stmt *st;
	int ret;

	ret = lock_for(b, LOSSABLE);
	if (ret)
		return ret;
	ret = prep(b, sql_event_finish, &st);
	if (ret)
		goto out;
	sqlite3_bind_int64(st, 1, event_id);
	sqlite3_bind_int64(st, 2, util_now_ms());
	ret = run(b, st, "finish event");
	release(b, st);
	if (!ret && sqlite3_changes(b->db) == 0)
		ret = not_in_state(b, sql_event_exists, event_id, "read event");
out:
	unlock(b);
	return ret;
}

static int sq_event_get(struct store *s, int64_t event_id, struct store_event *ev)
{
	struct sq *b = B(s);
	sqlite3_stmt *st;
	int ret;

	lock(b);
	ret = prep(b, sql_event_get, &st);
	if (ret)
		goto out;
	sqlite3_bind_int64(st, 1, event_id);
	ret = step_row(b, st, "read event");
	if (ret == 0)
		event_from_row(st, ev);
	release(b, st);
out:
	unlock(b);
	return ret;
}

static const char sql_event_count[] = "SELECT count(*) FROM events WHERE status = 'pending'";

static int sq_event_count_pending(struct store *s, int64_t *count)
{
	struct sq *b = B(s);
	sqlite3_stmt *st;
	int ret;

	lock(b);
	ret = prep(b, sql_event_count, &st);
	if (ret)
		goto out;
	ret = step_row(b, st, "count events");
	if (ret == 0)
		*count = sqlite3_column_int64(st, 0);
	release(b, st);
out:
	unlock(b);
	return ret;
}

/* ---------------------------------------------------------------------------
 * Executions.
 */

static const char sql_exec_insert[] =
	"INSERT INTO executions (event_id, parent_execution_id, kind, script, event,"
	" connection_id, provider_config_key, status, started_at, plugin_version)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running', ?8, ?9)";

static int sq_execution_create(struct store *s, const struct store_execution_input *in,
			       int64_t *id)
{
	struct sq *b = B(s);
	sqlite3_stmt *st;
	int ret;

	ret = lock_for(b, CRITICAL);
	if (ret)
		return ret;
	ret = prep(b, sql_exec_insert, &st);
	if (ret)
		goto out;
	bind_id(st, 1, in->event_id);
	bind_id(st, 2, in->parent_execution_id);
	bind_text(st, 3, store_exec_kind_name(in->kind));
	bind_text(st, 4, in->script);
	bind_text(st, 5, in->event);
	bind_text(st, 6, in->connection_id);
	bind_text(st, 7, in->provider_config_key);
	sqlite3_bind_int64(st, 8, util_now_ms());
	bind_text(st, 9, in->plugin_version);
	ret = run(b, st, "insert execution");
	if (!ret)
		*id = sqlite3_last_insert_rowid(b->db);
	release(b, st);
out:
	unlock(b);
	return ret;
}

static const char sql_exec_finish[] =
	"UPDATE executions SET status = ?2, error = ?3, ended_at = ?4,"
	" duration_ms = CASE WHEN ?5 < 0 THEN max(?4 - started_at, 0) ELSE ?5 END"
	" WHERE id = ?1 AND status = 'running'";
static const char sql_exec_exists[] = "SELECT 1 FROM executions WHERE id = ?1";

static int sq_execution_finish(struct store *s, int64_t id, enum store_exec_status status,
			       const char *error, int64_t duration_ms)
{
	struct sq *b = B(s);
	sqlite3_stmt *st;
	char *err = NULL;
	int ret;

	ret = store_truncate_copy(error, STORE_ERROR_MAX, &err);
	if (ret)
		return ret;
	ret = lock_for(b, LOSSABLE);
	if (ret) {
		free(err);
		return ret;
	}
	ret = prep(b, sql_exec_finish, &st);
	if (ret)
		goto out;
	sqlite3_bind_int64(st, 1, id);
	bind_text(st, 2, store_exec_status_name(status));
	bind_text(st, 3, err);
	sqlite3_bind_int64(st, 4, util_now_ms());
	sqlite3_bind_int64(st, 5, duration_ms < 0 ? -1 : duration_ms);
	ret = run(b, st, "finish execution");
	release(b, st);
	if (!ret && sqlite3_changes(b->db) == 0)
		ret = not_in_state(b, sql_exec_exists, id, "read execution");
out:
	unlock(b);
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

static int sq_execution_append_logs(struct store *s, int64_t id,
				    const struct store_log_line_input *lines, size_t n,
				    int64_t dropped)
{
	struct sq *b = B(s);
	sqlite3_stmt *st = NULL;
	int64_t seq = 0, now = util_now_ms();
	char *msg = NULL;
	int ret;

	ret = txn_begin(b, LOSSABLE);
	if (ret)
		return ret;
	ret = row_exists(b, sql_exec_exists, id, "read execution");
	if (ret)
		goto out;
	ret = prep(b, sql_log_next_seq, &st);
	if (ret)
		goto out;
	sqlite3_bind_int64(st, 1, id);
	ret = step_row(b, st, "read log sequence");
	if (ret)
		goto out;
	seq = sqlite3_column_int64(st, 0);
	release(b, st);
	st = NULL;
	ret = prep(b, sql_log_insert, &st);
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
		bind_text(st, 5, msg);
		ret = run(b, st, "insert log line");
		sqlite3_reset(st);
		free(msg);
		msg = NULL;
		if (ret)
			goto out;
	}
	release(b, st);
	st = NULL;
	if (dropped > 0) {
		ret = prep(b, sql_exec_dropped, &st);
		if (ret)
			goto out;
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, dropped);
		ret = run(b, st, "count dropped log lines");
	}
out:
	release(b, st);
	return txn_end(b, ret);
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
	e->event_id = col_i64(st, 1);
	e->parent_execution_id = col_i64(st, 2);
	t = sqlite3_column_text(st, 3);
	e->kind = t && strcmp((const char *)t, "action") == 0 ? STORE_EXEC_ACTION
							      : STORE_EXEC_EVENT;
	e->script = col_dup(st, 4, &ret);
	e->event = col_dup(st, 5, &ret);
	e->connection_id = col_dup(st, 6, &ret);
	e->provider_config_key = col_dup(st, 7, &ret);
	t = sqlite3_column_text(st, 8);
	e->status = (enum store_exec_status)store_exec_status_from_name((const char *)t);
	if ((int)e->status < 0)
		ret = STORE_EIO;
	e->started_at = col_i64(st, 9);
	e->ended_at = col_i64(st, 10);
	e->duration_ms = sqlite3_column_type(st, 11) == SQLITE_NULL ? -1
								   : sqlite3_column_int64(st, 11);
	e->error = col_dup(st, 12, &ret);
	e->plugin_version = col_dup(st, 13, &ret);
	e->logs_dropped = col_i64(st, 14);
	if (ret)
		store_execution_free(e);
	else
		*out = e;
	return ret;
}

static int sq_execution_get(struct store *s, int64_t id, struct store_execution **out)
{
	struct sq *b = B(s);
	struct store_execution *e = NULL;
	sqlite3_stmt *st = NULL;
	size_t alloc = 0;
	int ret, rc;

	lock(b);
	/* One read transaction: the row and its lines are a consistent snapshot. */
	ret = run_sql(b, sql_begin_read, "begin read");
	if (ret)
		goto out;
	ret = prep(b, sql_exec_get, &st);
	if (ret)
		goto out;
	sqlite3_bind_int64(st, 1, id);
	ret = step_row(b, st, "read execution");
	if (ret)
		goto out;
	ret = exec_from_row(st, &e);
	if (ret)
		goto out;
	release(b, st);
	st = NULL;
	ret = prep(b, sql_exec_logs, &st);
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
		l->message = col_dup(st, 3, &ret);
		if (ret)
			goto out;
		e->n_logs++;
	}
	if (rc != SQLITE_DONE)
		ret = fail(b, rc, "read execution logs");
out:
	release(b, st);
	ret = end(b, ret);
	unlock(b);
	if (ret)
		store_execution_free(e);
	else
		*out = e;
	return ret;
}

static int sq_execution_list(struct store *s, const struct store_execution_filter *f,
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
	lock(b);
	ret = prep(b, sql_exec_list, &st);
	if (ret)
		goto out;
	bind_text(st, 1, f->connection_id);
	bind_text(st, 2, f->provider_config_key);
	bind_text(st, 3, f->script);
	bind_text(st, 4, f->event);
	bind_text(st, 5, f->status >= 0 ? store_exec_status_name(f->status) : NULL);
	bind_id(st, 6, f->cursor);
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
		ret = fail(b, rc, "list executions");
	release(b, st);
out:
	unlock(b);
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

static int sq_execution_retry(struct store *s, int64_t id, int64_t *event_id)
{
	struct sq *b = B(s);
	sqlite3_stmt *st = NULL;
	char *event = NULL, *script = NULL, *cid = NULL, *pck = NULL;
	int ret;

	ret = txn_begin(b, CRITICAL);
	if (ret)
		return ret;
	ret = prep(b, sql_exec_retry_info, &st);
	if (ret)
		goto out;
	sqlite3_bind_int64(st, 1, id);
	ret = step_row(b, st, "read execution");
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
	event = col_dup(st, 2, &ret);
	script = col_dup(st, 3, &ret);
	cid = col_dup(st, 4, &ret);
	pck = col_dup(st, 5, &ret);
	if (ret)
		goto out;
	/* an action's input is not kept, and a validate-connection run
	 * belonged to a request (its candidate connection) that is gone */
	if (!event || strcmp(event, "validate-connection") == 0) {
		ret = STORE_EINVAL;
		goto out;
	}
	release(b, st);
	st = NULL;
	ret = conn_accepts_events(b, pck, cid);
	if (ret)
		goto out;
	ret = event_add(b, event, cid, pck, script, id, false, 0, util_now_ms(), event_id);
out:
	release(b, st);
	ret = txn_end(b, ret);
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
	int ret = prep(b, sql_interrupt_running, &st);

	if (ret)
		return ret;
	sqlite3_bind_int64(st, 1, now);
	bind_text(st, 2, error);
	ret = run(b, st, "interrupt running executions");
	if (!ret)
		*count = sqlite3_changes64(b->db);
	release(b, st);
	return ret;
}

static int sq_recover(struct store *s, struct store_recovery *r)
{
	struct sq *b = B(s);
	sqlite3_stmt *st = NULL;
	int64_t now = util_now_ms();
	int ret;

	ret = txn_begin(b, CRITICAL);
	if (ret)
		return ret;
	ret = interrupt_running(b, STORE_INTERRUPTED_ERROR, now, &r->executions_interrupted);
	if (ret)
		goto out;
	ret = prep(b, sql_requeue, &st);
	if (ret)
		goto out;
	ret = run(b, st, "requeue events");
	if (ret)
		goto out;
	r->events_requeued = sqlite3_changes64(b->db);
	release(b, st);
	st = NULL;
	ret = prep(b, sql_interrupt_claimed, &st);
	if (ret)
		goto out;
	sqlite3_bind_int64(st, 1, now);
	ret = run(b, st, "interrupt events");
	if (!ret)
		r->events_interrupted = sqlite3_changes64(b->db);
out:
	release(b, st);
	return txn_end(b, ret);
}

static int sq_interrupt_running(struct store *s, const char *error, int64_t *count)
{
	struct sq *b = B(s);
	int ret;

	ret = lock_for(b, CRITICAL);
	if (ret)
		return ret;
	ret = interrupt_running(b, error, util_now_ms(), count);
	unlock(b);
	return ret;
}

/* ---------------------------------------------------------------------------
 * The plugin version ledger.
 */

static const char sql_ledger_get[] = "SELECT version, hash FROM plugin_versions WHERE name = ?1";
static const char sql_ledger_put[] =
	"INSERT INTO plugin_versions (name, version, hash, accepted_at) VALUES (?1, ?2, ?3, ?4)"
	" ON CONFLICT (name) DO UPDATE SET version = excluded.version, hash = excluded.hash,"
	" accepted_at = excluded.accepted_at";

/* Reads name's record inside the lock: 0 found, 1 none. */
static int ledger_read(struct sq *b, const char *name, char version[64],
		       uint8_t hash[STORE_HASH_BYTES])
{
	sqlite3_stmt *st;
	int ret = prep(b, sql_ledger_get, &st);

	if (ret)
		return ret;
	bind_text(st, 1, name);
	ret = step_row(b, st, "read plugin ledger");
	if (ret == 0) {
		if (sqlite3_column_bytes(st, 1) != STORE_HASH_BYTES) {
			log_error("store", "plugin ledger: the hash recorded for %s is corrupt",
				  name);
			ret = STORE_EIO;
		} else {
			col_copy(st, 0, version, 64);
			memcpy(hash, sqlite3_column_blob(st, 1), STORE_HASH_BYTES);
		}
	} else if (ret == STORE_ENOTFOUND) {
		ret = 1;
	}
	release(b, st);
	return ret;
}

static int sq_ledger_get(struct store *s, const char *name, char version[64],
			 uint8_t hash[STORE_HASH_BYTES])
{
	struct sq *b = B(s);
	int ret;

	lock(b);
	ret = ledger_read(b, name, version, hash);
	unlock(b);
	return ret;
}

static int sq_ledger_put(struct store *s, const char *name, const char *version,
			 const uint8_t hash[STORE_HASH_BYTES])
{
	struct sq *b = B(s);
	sqlite3_stmt *st = NULL;
	char old[64];
	uint8_t oldhash[STORE_HASH_BYTES];
	int ret;

	ret = txn_begin(b, CRITICAL);
	if (ret)
		return ret;
	ret = ledger_read(b, name, old, oldhash);
	if (ret < 0)
		goto out;
	if (ret == 0 && store_version_cmp(version, old) < 0)
		goto out; /* keep the highest version accepted */
	ret = prep(b, sql_ledger_put, &st);
	if (ret)
		goto out;
	bind_text(st, 1, name);
	bind_text(st, 2, version);
	sqlite3_bind_blob(st, 3, hash, STORE_HASH_BYTES, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, util_now_ms());
	ret = run(b, st, "write plugin ledger");
out:
	release(b, st);
	return txn_end(b, ret);
}

const struct store_ops store_sqlite_ops = {
	.scheme = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.connection_upsert = sq_connection_upsert,
	.connection_get = sq_connection_get,
	.connection_list = sq_connection_list,
	.connection_mark_deleting = sq_connection_mark_deleting,
	.connection_delete = sq_connection_delete,
	.connection_metadata = sq_connection_metadata,
	.idempotency_get = sq_idempotency_get,
	.idempotency_put = sq_idempotency_put,
	.event_insert = sq_event_insert,
	.event_claim = sq_event_claim,
	.event_finish = sq_event_finish,
	.event_get = sq_event_get,
	.event_count_pending = sq_event_count_pending,
	.execution_create = sq_execution_create,
	.execution_finish = sq_execution_finish,
	.execution_append_logs = sq_execution_append_logs,
	.execution_get = sq_execution_get,
	.execution_list = sq_execution_list,
	.execution_retry = sq_execution_retry,
	.recover = sq_recover,
	.interrupt_running = sq_interrupt_running,
	.ledger_get = sq_ledger_get,
	.ledger_put = sq_ledger_put,
};
