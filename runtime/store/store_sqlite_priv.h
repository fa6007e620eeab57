/*
 * store_sqlite_priv.h - shared by the files of the SQLite back end; not an
 * interface (store.h is the store's, store_backend.h a back end's).
 *
 *   store_sqlite.c         opening, migrations, the helpers below, the ops table
 *   store_sqlite_conn.c    connections (the outbox upsert, reads, deletion,
 *                          metadata) and Idempotency-Key records
 *   store_sqlite_exec.c    events, executions and their log lines, recovery
 *   store_sqlite_ledger.c  the plugin version ledger
 *   store_sqlite_async.c   connection tags, asynchronous actions' results,
 *                          webhook deliveries
 *
 * The conventions (one write connection behind a mutex, group commit, a
 * read connection, cached statements, write transactions with BEGIN
 * IMMEDIATE, a durability class per batch) are described at the top of
 * store_sqlite.c. The helpers expect the mutex held unless they take it
 * (sq_txn_begin, sq_read_lock, sq_get).
 */
#ifndef EVS_STORE_SQLITE_PRIV_H
#define EVS_STORE_SQLITE_PRIV_H

#include <pthread.h>
#include <semaphore.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store_backend.h"
#include "store_row.h"
#include "store_sql.h"

#define STMT_CACHE 64

/* Operations in one batch at most: the last one commits. */
#define BATCH_MAX 64

/* An operation of the open batch waiting for its COMMIT (on its own stack). */
struct sq;
struct sq_waiter {
	struct sq_waiter *next;
	sem_t done;
	int ret;   /* the batch's result, set before done is posted */
	/* sq_txn_run: an operation handed to the mutex's holder */
	int (*op)(struct sq *b, void *arg);
	void *arg;
	bool critical;
	struct sq_waiter *qnext;
};

/* The back end's state (struct store's impl): the write connection, and in
 * rd the read connection (a struct sq of its own, NULL for ":memory:"). */
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
	/* Group commit (top of store_sqlite.c); under mu but `announced`. */
	atomic_int announced;          /* writers on their way to the mutex */
	bool batch_open;               /* a write transaction is open */
	int batch_ops;                 /* operations done in it */
	struct sq_waiter *waiters;     /* those of them waiting for its COMMIT */
	/* Combining (sq_txn_run): operations handed to the holder, under qmu */
	pthread_mutex_t qmu;
	bool combining;                /* the holder takes operations from queue */
	struct sq_waiter *queue, **queue_tail;
	uint64_t stat_ops, stat_commits;
	int fail_commits;              /* test-only: COMMITs to turn into failures */
	const char *host_id;           /* the store's (struct store), for executions */
	struct sq *rd;
};

static inline struct sq *B(struct store *s)
{
	return s->impl;
}

/* The durability class of a commit (Durability, at the top of store_sqlite.c). */
#define CRITICAL true
#define LOSSABLE false

/* ---- Helpers (store_sqlite.c). Codes are STORE_E*. */

/* The mutex. */
void sq_lock(struct sq *b);
void sq_unlock(struct sq *b);
/* Commits when ret is 0, rolls back otherwise; returns the final result. */
int sq_end(struct sq *b, int ret);

/* A write operation: sq_txn_begin() takes the mutex, joins the open batch
 * (or opens one at the durability class given) and opens the operation's
 * savepoint; on failure nothing is held. sq_txn_end() releases the
 * savepoint when ret is 0 (rolls back to it otherwise: the batch's other
 * operations keep their writes), leaves the mutex, and returns only when
 * the COMMIT holding the operation is done: ret, or the COMMIT's error. */
int sq_txn_begin(struct sq *b, bool critical);
int sq_txn_end(struct sq *b, int ret);
/* The same for op(b, arg), the operation's statements: when another
 * thread holds the mutex, the operation is handed to it, which runs it in
 * its batch (in a savepoint of its own), so the caller sleeps once, for
 * the COMMIT, rather than for the mutex and then for the COMMIT. op runs
 * with the mutex held, on whichever thread holds it: it must use only
 * what arg gives it. Returns op's result, or the COMMIT's error. */
int sq_txn_run(struct sq *b, bool critical, int (*op)(struct sq *b, void *arg), void *arg);
/* A write operation whose statements are the expression op, evaluated
 * only once sq_txn_begin(b, critical) has succeeded (into ret, an int
 * the caller declares), its result handed to sq_txn_end(). The value is
 * sq_txn_begin's error or sq_txn_end's result. Multi-step operations are
 * a function of their own, named *_in (inside a transaction):
 *     return SQ_TXN(ret, b, CRITICAL, exec_insert(b, in, id)); */
#define SQ_TXN(ret, b, critical, op)                                                               \
	(((ret) = sq_txn_begin((b), (critical))) != 0 ? (ret) : sq_txn_end((b), (op)))

/* A pure read: the read connection, locked (or the write connection, with
 * any open batch committed first). Give it back with sq_unlock(). */
struct sq *sq_read_lock(struct sq *b);

/* Test-only: write operations acknowledged (sq_txn_end returned 0) and
 * COMMITs of batches since store_open; and a way to make the next n
 * COMMITs fail (as a failed fsync would). */
void sq_batch_stats(struct store *s, uint64_t *ops, uint64_t *commits);
void sq_test_fail_commits(struct store *s, int n);

/* ---- Statements. Each helper below takes a cached statement (prepared
 * once, keyed by the address of its SQL, a string literal), binds its
 * parameters, steps it and gives it back reset. The mutex is held by the
 * caller (sq_get takes it); `what` names the step in a logged error. */

/* A statement's parameters (struct store_arg, STORE_ARGS, arg_text() ...:
 * store_sql.h) are bound to ?1, ?2, ... in order. */

/* Reads the row a statement stands on (columns from 0); returns 0 or a
 * STORE_E* code (for sq_rows, a positive value stops without an error). */
typedef int (*sq_row_fn)(sqlite3_stmt *st, void *user);

/* Runs sql with args (NULL: none) once, for its effect; rows it returns
 * are not read. sqlite3_changes() and sqlite3_last_insert_rowid() tell
 * the rest while the mutex is held. */
int sq_exec(struct sq *b, const char *sql, const char *what, const struct store_arg *args);
/* sq_exec() as a write operation of its own (sq_txn_begin ... sq_txn_end)
 * at the durability class given; *changed: the rows it changed. */
int sq_write(struct sq *b, bool critical, const char *sql, const char *what,
	     const struct store_arg *args, int64_t *changed);
/* Runs sql without parameters (BEGIN, COMMIT, a PRAGMA). */
int sq_run_sql(struct sq *b, const char *sql, const char *what);
/* Runs sql with args and hands its first row to read (NULL: only say
 * whether there is one): 0, STORE_ENOTFOUND when there is no row, or
 * read's or SQLite's error. */
int sq_row(struct sq *b, const char *sql, const char *what, const struct store_arg *args,
           sq_row_fn read, void *user);
/* sq_row() as a read of its own, on the read connection (sq_read_lock). */
int sq_get(struct sq *b, const char *sql, const char *what, const struct store_arg *args,
           sq_row_fn read, void *user);
/* Runs sql with args to its end and hands every row to read in turn; a
 * nonzero result from read stops it: 0 (positive) or that error. */
int sq_rows(struct sq *b, const char *sql, const char *what, const struct store_arg *args,
            sq_row_fn read, void *user);

/* 0 when sql (a row id as ?1) finds the row, STORE_ENOTFOUND when not. */
int sq_row_exists(struct sq *b, const char *sql, int64_t id, const char *what);

/* A list read row by row: sq_rows() with sq_page_add and a struct
 * sq_page hands every row to decode, which makes the next item (`size`
 * bytes, at item) from it, ctx being decode's. v (malloc'd, n items of
 * which are made) is the caller's, as are the items: free them on
 * failure too. */
struct sq_page {
	void *v;
	size_t n, alloc, size;
	int (*decode)(sqlite3_stmt *st, void *item, void *ctx);
	void *ctx;
};
/* sq_row_fn: appends the row to (struct sq_page *)user; STORE_ENOMEM, or
 * decode's error (the item is then not counted). */
int sq_page_add(sqlite3_stmt *st, void *user);

/* Column readers: a malloc'd copy (NULL for SQL NULL; *ret set to
 * STORE_ENOMEM when the copy fails), a copy cut to size, an int64 (0 for
 * SQL NULL). */
char *sq_col_dup(sqlite3_stmt *st, int i, int *ret);
void sq_col_copy(sqlite3_stmt *st, int i, char *dst, size_t size);
int64_t sq_col_i64(sqlite3_stmt *st, int i);
/* The statement's current row for the shared decoders (store_row.h). */
struct store_row sq_row_of(sqlite3_stmt *st);
/* sq_row_fn: column 0 as an int64 into *(int64_t *)user. */
int sq_read_i64(sqlite3_stmt *st, void *user);

/* ---- Shared by connections and events (store_sqlite_conn.c), inside a
 * transaction. */

/* 0 when an event may be recorded for the connection, STORE_EDELETING when
 * it is being deleted. */
int sq_conn_accepts_events(struct sq *b, const char *pck, const char *cid);
/* Inserts an event (claimed by generation when claim). */
int sq_event_add(struct sq *b, const char *type, const char *cid, const char *pck,
                 const char *script, int64_t retry_of, bool claim, int64_t generation, int64_t now,
                 int64_t *event_id);

/* ---- The operations of store_sqlite_ops (store_backend.h's STORE_OPS
 * says what each does): sq_open and sq_close in store_sqlite.c, the
 * connections' and Idempotency-Key records' in store_sqlite_conn.c, the
 * events', executions' and recovery's in store_sqlite_exec.c, the ledger's
 * in store_sqlite_ledger.c, the rest in store_sqlite_async.c. */
#define SQ_OP_DECLARE(ret, name, params) ret sq_##name params;
STORE_OPS(SQ_OP_DECLARE)
/* The optional one SQLite has (store_sqlite_async.c). */
int sq_async_recover(struct store *s, int64_t now);

#endif
