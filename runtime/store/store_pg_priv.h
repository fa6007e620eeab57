/*
 * store_pg_priv.h - shared by the files of the PostgreSQL back end; not an
 * interface (store.h is the store's, store_backend.h a back end's).
 *
 *   store_pg.c         opening, migrations under an advisory lock, the key
 *                      check, the connection pool, the statement helpers
 *                      below, the ops table
 *   store_pg_host.c    the host's own thread: heartbeat, dead-host sweep,
 *                      LISTEN for new events
 *   store_pg_conn.c    connections, Idempotency-Key records, the ledger
 *   store_pg_exec.c    events, executions and their log lines
 *   store_pg_claim.c   the claim protocol (batched claims, starts), settling
 *                      a host's rows (recovery, the dead-host sweep)
 *   store_pg_async.c   connection tags, asynchronous actions' results,
 *                      webhook deliveries
 *   store_pg_lock.c    the cross-host credentials lock (advisory locks)
 *   store_pg_ends.c    executions' ends recorded at once share a transaction
 *
 * Conventions: every operation takes a connection of the pool, runs one
 * transaction on it (pg_begin ... pg_end) and gives it back; statements
 * are sent with parameters (never spliced into the SQL), results are read
 * in text form. The claim protocol and why it is exactly once are at the
 * top of store_pg_claim.c.
 */
#ifndef EVS_STORE_PG_PRIV_H
#define EVS_STORE_PG_PRIV_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store_backend.h"
#include "store_row.h"
#include "store_sql.h"

#define PG_POOL_MAX 8     /* connections per store (each host) */
#define PG_CLAIM_BATCH 8  /* events claimed per round trip, at most */

#define PG_STMT_CACHE 64 /* prepared statements per connection */

/* A connection of the pool, and the statements prepared on it (keyed by
 * the address of their SQL, a string literal; named "s<index>"). The
 * cache is emptied whenever the connection is new (pg_forget). */
struct pgc {
	PGconn *conn;
	bool busy;
	const char *prepared[PG_STMT_CACHE];
	size_t nprepared;
};

/* The connection is new (opened or reset): nothing is prepared on it. */
static inline void pg_forget(struct pgc *c)
{
	c->nprepared = 0;
}

#define PG_LOCK_MAX 4 /* connections for connections' credential locks */

/* A connection holding (or taking) a credentials lock (store_pg_lock.c). */
struct pg_lock {
	PGconn *conn;       /* opened when first needed, NULL when broken */
	bool busy;          /* taken by a lock, until its unlock */
	bool held;          /* the advisory lock is taken */
	uint32_t key;
	char pck[STORE_ID_MAX + 1], cid[STORE_ID_MAX + 1]; /* whose, while held */
};

/* The back end's state (struct store's impl). */
struct pg {
	struct store *s;
	char *conninfo;            /* the URL as given: libpq parses it */
	char *shown;               /* the URL with its password masked */
	pthread_mutex_t mu;        /* the pool */
	pthread_cond_t freed;
	struct pgc pool[PG_POOL_MAX];
	/* Events claimed ahead for this host (store_pg_exec.c), under qmu. */
	pthread_mutex_t qmu;
	int64_t queue[PG_CLAIM_BATCH];
	size_t qhead, qn;
	/* The host thread (store_pg_host.c). */
	pthread_t thread;
	bool thread_started;
	int stop_pipe[2];
	atomic_int heartbeats;     /* beats written since open */
	/* Executions' ends waiting to share a transaction (store_pg_ends.c),
	 * under emu; ending: a worker is recording a batch. */
	pthread_mutex_t emu;
	pthread_cond_t ended;
	struct pg_end_req *ends;
	bool ending;
	/* Credentials locks (store_pg_lock.c), under mu. */
	struct pg_lock locks[PG_LOCK_MAX];
	pthread_cond_t lock_freed;
};

static inline struct pg *P(struct store *s)
{
	return s->impl;
}

/* ---- The pool and transactions (store_pg.c). Codes are STORE_E*. */

/* Opens a connection to p's database: NULL and err written on failure. */
PGconn *pg_connect(struct pg *p, char *err, size_t errlen);

/* With p->mu held: the index of a free slot of n (is_free(p, i) says
 * which are), waiting on freed, which the slots' givers signal, until
 * there is one. The pool's connections and the lock connections. */
size_t pg_wait_slot(struct pg *p, pthread_cond_t *freed, size_t n,
		    bool (*is_free)(const struct pg *p, size_t i));

/* Takes a connection for a read of one statement (no transaction),
 * waiting for one when all are busy; pg_give() gives it back (NULL is
 * fine). */
int pg_take(struct pg *p, struct pgc **c);
void pg_give(struct pg *p, struct pgc *c);

/* Takes a connection (waiting for one when all are busy), reconnecting it
 * when it was lost, and opens a transaction on it. On failure nothing is
 * held. */
int pg_begin(struct pg *p, struct pgc **c);
/* Commits when ret is 0, rolls back otherwise, gives the connection back;
 * returns ret or the COMMIT's error. */
int pg_end(struct pg *p, struct pgc *c, int ret);
/* pg_begin and pg_end on a connection already taken (pg_take), which
 * pg_commit_on keeps; lossable as for pg_txn. */
int pg_begin_on(struct pg *p, struct pgc *c, bool lossable);
int pg_commit_on(struct pg *p, struct pgc *c, int ret);

/* A transaction's body for pg_txn: its statements on c (no BEGIN/COMMIT). */
typedef int (*pg_txn_fn)(struct store *s, struct pgc *c, void *arg);

/* How long pg_txn keeps trying while the database cannot be reached. */
#define PG_RETRY_MS 30000

/* Runs fn in a transaction (pg_begin ... pg_end). When the database cannot
 * be reached, or the connection is lost before COMMIT was sent (so the
 * transaction cannot have committed), it tries again on a new connection,
 * backing off, for up to PG_RETRY_MS: a database restart then delays the
 * call instead of failing it. A COMMIT whose answer is lost is not
 * retried (its outcome is unknown): STORE_EIO. For the dispatcher's writes,
 * whose failure would leave an execution running on a live host.
 * lossable: the COMMIT does not wait for its WAL flush, for the writes
 * store.h lets a power loss roll back (ends, log lines, "done" marks,
 * claims); the others (creations) wait, as every other call does. */
int pg_txn(struct pg *p, bool lossable, pg_txn_fn fn, void *arg);

/* A statement's parameters (struct store_arg, STORE_ARGS, arg_text() ...:
 * store_sql.h) are bound to $1, $2, ... in order; a bool is sent as text. */
static inline struct store_arg pg_bool(bool b)
{
	return arg_text(b ? "true" : "false");
}

/* Runs sql with args (NULL: none), prepared on c the first time (sql
 * must be a string literal or live as long as c). *res (NULL: not wanted) is the result,
 * owned by the caller (PQclear). 0, or the error mapped to a STORE_E*
 * code (logged under "store" with `what`, but for the expected ones:
 * unique and foreign-key violations). */
int pg_q(struct pgc *c, const char *sql, const char *what, const struct store_arg *args,
	 PGresult **res);
/* pg_q for a statement whose result is not read; *changed (may be NULL)
 * is the number of rows it changed. */
int pg_x(struct pgc *c, const char *sql, const char *what, const struct store_arg *args,
	 int64_t *changed);

/* pg_q on a connection of the pool taken for it (pg_take), outside any
 * transaction: a read of one statement, or a write that is one (its own
 * transaction). */
int pg_read(struct store *s, const char *sql, const char *what, const struct store_arg *args,
	    PGresult **res);
/* The same for a write: *changed is the number of rows it changed. */
int pg_write(struct store *s, const char *sql, const char *what, const struct store_arg *args,
	     int64_t *changed);
/* pg_read for the first row: *row stands on it; STORE_ENOTFOUND when there
 * is none. PQclear(*res) in every case. */
struct store_row;
int pg_read_row(struct store *s, const char *sql, const char *what, const struct store_arg *args,
		PGresult **res, struct store_row *row);

/* Column readers (text results): an int64 (0 for NULL), a bool, a
 * malloc'd copy (NULL for NULL; *ret = STORE_ENOMEM when the copy fails),
 * a copy cut to size. */
int64_t pg_col_i64(const PGresult *r, int row, int col);
bool pg_col_bool(const PGresult *r, int row, int col);
char *pg_col_dup(const PGresult *r, int row, int col, int *ret);
void pg_col_copy(const PGresult *r, int row, int col, char *dst, size_t size);
/* A bytea column: *out malloc'd, a NUL after its *len bytes (wipe it:
 * store_blob_free). */
int pg_col_bytea(const PGresult *r, int row, int col, uint8_t **out, size_t *len);

/* Row `row` of r for the shared decoders (store_row.h). */
struct store_row pg_row_of(const PGresult *r, int row);

/* ---- Shared by store_pg_exec.c and store_pg_claim.c. */

/* Reads row i of a result with STORE_EVENT_COLS into *ev. */
void pg_event_from_row(const PGresult *r, int i, struct store_event *ev);
/* Inside c's transaction: inserts a running execution of this host (*id);
 * marks a claimed event done (STORE_ESTATE when it is not claimed,
 * STORE_ENOTFOUND); records an execution's end with its last lines and its
 * event's "done" (err: the error, cut to STORE_ERROR_MAX). */
int pg_exec_insert(struct store *s, struct pgc *c, const struct store_execution_input *in,
		   int64_t *id);
int pg_event_finish_in(struct pgc *c, int64_t id);
int pg_complete_in(struct pgc *c, int64_t id, const struct store_execution_end *end,
		   const char *err);

/* ---- Settling a host (store_pg_claim.c): what store_recover does for this
 * host at start-up, and a survivor for a dead one. Inside a transaction. */
int pg_settle_host(struct pgc *c, const char *host_id, const char *error,
		   struct store_recovery *r);

/* ---- The host thread (store_pg_host.c). */
int pg_host_start(struct pg *p, char *err, size_t errlen);
void pg_host_stop(struct pg *p);
/* Gives back to pending the events claimed ahead and not started. */
void pg_release_claims(struct pg *p);
/* Gives back, on c, this host's claims that no worker holds (a claim whose
 * COMMIT answer was lost, a give-back that failed): see store_pg_claim.c.
 * *count: how many. */
#define PG_STRAY_CLAIM_MS 60000
int pg_release_strays(struct pg *p, struct pgc *c, int64_t *count);

/* ---- The operations of store_pg_ops (store_backend.h's STORE_OPS says
 * what each does): pg_open and pg_close in store_pg.c, the connections',
 * Idempotency-Key records' and the ledger's in store_pg_conn.c, the
 * events' and executions' in store_pg_exec.c but event_claim,
 * event_claim_batch, recover and interrupt_running (store_pg_claim.c) and
 * execution_complete (store_pg_ends.c), the rest in store_pg_async.c. */
#define PG_OP_DECLARE(ret, name, params) ret pg_##name params;
STORE_OPS(PG_OP_DECLARE)

/* store_pg_conn.c: inside a transaction, 0 when an event may be recorded
 * for the connection, STORE_EDELETING when it is being deleted. */
int pg_conn_accepts_events(struct pgc *c, const char *pck, const char *cid);
/* Inserts an event inside a transaction (claimed by host_id when claim). */
int pg_event_add(struct pgc *c, const char *type, const char *cid, const char *pck,
		 const char *script, int64_t retry_of, bool claim, int64_t generation,
		 const char *host_id, int64_t now, int64_t *event_id);

/* store_pg_lock.c: the optional operations PostgreSQL has. */
int pg_connection_lock(struct store *s, const char *pck, const char *cid);
void pg_connection_unlock(struct store *s, const char *pck, const char *cid);
/* Gives a lock connection back (broken: closes its session first). */
void pg_lock_give(struct pg *p, struct pg_lock *l, bool broken);

/* store_pg_async.c: inside a transaction, host_id's running asynchronous
 * actions failed as interrupted (pg_settle_host: store_recover's and the
 * dead-host sweep's). */
int pg_async_settle(struct pgc *c, const char *host_id, int64_t now);

#endif
