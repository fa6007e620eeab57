/*
 * store_sqlite_priv.h - shared by the files of the SQLite back end; not an
 * interface (store.h is the store's, store_backend.h a back end's).
 *
 *   store_sqlite.c         opening, migrations, the helpers below, the ops table
 *   store_sqlite_conn.c    connections (the outbox upsert, reads, deletion,
 *                          metadata) and Idempotency-Key records
 *   store_sqlite_exec.c    events, executions and their log lines, recovery
 *   store_sqlite_ledger.c  the plugin version ledger
 *
 * The conventions (one connection behind a mutex, cached statements, write
 * transactions with BEGIN IMMEDIATE, a durability class per commit) are
 * described at the top of store_sqlite.c. The helpers expect the mutex held
 * unless they take it (sq_lock_for, sq_txn_begin).
 */
#ifndef EVS_STORE_SQLITE_PRIV_H
#define EVS_STORE_SQLITE_PRIV_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store_backend.h"

#define STMT_CACHE 64

/* The back end's state (struct store's impl). */
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

static inline struct sq *B(struct store *s)
{
	return s->impl;
}

/* The durability class of a commit (Durability, at the top of store_sqlite.c). */
#define CRITICAL true
#define LOSSABLE false

/* ---- Helpers (store_sqlite.c). Codes are STORE_E*. */

/* A SQLite result as a store code, logged when it is not an expected outcome. */
int sq_fail(struct sq *b, int rc, const char *what);
/* A cached, reset statement for sql (a string literal: its address is the
 * key); give it back with sq_release(). */
int sq_prep(struct sq *b, const char *sql, sqlite3_stmt **st);
void sq_release(struct sq *b, sqlite3_stmt *st);
/* Binds s (NULL: SQL NULL) / a row id (0 or less: SQL NULL). */
void sq_bind_text(sqlite3_stmt *st, int i, const char *s);
void sq_bind_id(sqlite3_stmt *st, int i, int64_t id);
/* Runs a statement that returns no row / a cached one without parameters. */
int sq_run(struct sq *b, sqlite3_stmt *st, const char *what);
int sq_run_sql(struct sq *b, const char *sql, const char *what);
/* Steps to one row: 0 with the row ready, STORE_ENOTFOUND when none. */
int sq_step_row(struct sq *b, sqlite3_stmt *st, const char *what);

/* The mutex; sq_lock_for also sets the durability of the next commit. */
void sq_lock(struct sq *b);
void sq_unlock(struct sq *b);
int sq_lock_for(struct sq *b, bool critical);
/* Commits when ret is 0, rolls back otherwise; returns the final result. */
int sq_end(struct sq *b, int ret);
/* sq_lock_for + BEGIN IMMEDIATE; sq_end + unlock. */
int sq_txn_begin(struct sq *b, bool critical);
int sq_txn_end(struct sq *b, int ret);

/* 0 when sql (a row id as ?1) finds the row, STORE_ENOTFOUND when not. */
int sq_row_exists(struct sq *b, const char *sql, int64_t id, const char *what);
/* After a status-guarded UPDATE that changed nothing: STORE_ESTATE when the
 * row exists, STORE_ENOTFOUND when not. */
int sq_not_in_state(struct sq *b, const char *sql_exists, int64_t id, const char *what);

/* Column readers: a malloc'd copy (NULL for SQL NULL; *ret set to
 * STORE_ENOMEM when the copy fails), a copy cut to size, an int64 (0 for
 * SQL NULL). */
char *sq_col_dup(sqlite3_stmt *st, int i, int *ret);
void sq_col_copy(sqlite3_stmt *st, int i, char *dst, size_t size);
int64_t sq_col_i64(sqlite3_stmt *st, int i);

/* ---- Shared by connections and events (store_sqlite_conn.c), inside a
 * transaction. */

/* 0 when an event may be recorded for the connection, STORE_EDELETING when
 * it is being deleted. */
int sq_conn_accepts_events(struct sq *b, const char *pck, const char *cid);
/* Inserts an event (claimed by generation when claim). */
int sq_event_add(struct sq *b, const char *type, const char *cid, const char *pck,
                 const char *script, int64_t retry_of, bool claim, int64_t generation, int64_t now,
                 int64_t *event_id);

/* ---- The operations of store_sqlite_ops (store_backend.h says what each does). */

/* store_sqlite_conn.c */
int sq_connection_upsert(struct store *s, const struct store_connection_input *in,
                         const struct store_idempotency_input *idem, struct store_upsert_result *r);
int sq_connection_get(struct store *s, const char *pck, const char *cid,
                      struct store_connection **out);
int sq_connection_list(struct store *s, const struct store_connection_filter *f,
                       struct store_connection ***items, size_t *n);
int sq_connection_mark_deleting(struct store *s, const char *pck, const char *cid, bool claim,
                                int64_t generation, int64_t *event_id);
int sq_connection_delete(struct store *s, const char *pck, const char *cid);
int sq_connection_metadata(struct store *s, const char *pck, const char *const *cids, size_t n,
                           const char *json, bool merge, bool refuse_deleting, size_t *failed);
int sq_idempotency_get(struct store *s, const char *key, struct store_idempotency **out);
int sq_idempotency_put(struct store *s, const struct store_idempotency_input *in);

/* store_sqlite_exec.c */
int sq_event_insert(struct store *s, const char *type, const char *cid, const char *pck, bool claim,
                    int64_t generation, int64_t *event_id);
int sq_event_claim(struct store *s, int64_t generation, struct store_event *ev);
int sq_event_finish(struct store *s, int64_t event_id);
int sq_event_get(struct store *s, int64_t event_id, struct store_event *ev);
int sq_event_count_pending(struct store *s, int64_t *count);
int sq_execution_create(struct store *s, const struct store_execution_input *in, int64_t *id);
int sq_execution_finish(struct store *s, int64_t id, enum store_exec_status status,
                        const char *error, int64_t duration_ms);
int sq_execution_append_logs(struct store *s, int64_t id, const struct store_log_line_input *lines,
                             size_t n, int64_t dropped);
int sq_execution_get(struct store *s, int64_t id, struct store_execution **out);
int sq_execution_list(struct store *s, const struct store_execution_filter *f,
                      struct store_execution ***items, size_t *n, int64_t *next_cursor);
int sq_execution_retry(struct store *s, int64_t id, int64_t *event_id);
int sq_recover(struct store *s, struct store_recovery *r);
int sq_interrupt_running(struct store *s, const char *error, int64_t *count);

/* store_sqlite_ledger.c */
int sq_ledger_get(struct store *s, const char *name, char version[64],
                  uint8_t hash[STORE_HASH_BYTES]);
int sq_ledger_put(struct store *s, const char *name, const char *version,
                  const uint8_t hash[STORE_HASH_BYTES]);

#endif
