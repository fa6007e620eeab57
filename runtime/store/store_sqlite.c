/*
 * store_sqlite.c - the embedded SQLite back end ("sqlite:PATH").
 *
 * Two connections per store, each guarded by a mutex of its own: the write
 * connection, for every operation that writes, and the read connection,
 * for the pure reads. HTTP and dispatcher threads may call in at once.
 * Statements are prepared once per connection and cached (keyed by their
 * SQL text's address).
 *
 * Group commit. A commit costs ~100 us with its fsync, and the HTTP and
 * dispatcher threads write at once: one commit per operation made them
 * queue on the mutex behind each other's fsyncs. So write operations share
 * transactions (batches), leader/follower style, with no thread or timer
 * of its own:
 *  - every write operation runs in the open batch (BEGIN IMMEDIATE, opened
 *    by the first operation that finds none) inside a savepoint of its own
 *    ("SAVEPOINT op" ... "RELEASE op"); an operation that fails goes back
 *    to its savepoint ("ROLLBACK TO op; RELEASE op"): the others' writes
 *    stay. Should SQLite roll the whole transaction back by itself (an I/O
 *    error, a full disk), every operation of the batch fails.
 *  - a writer counts itself in `announced` before it takes the mutex. An
 *    operation that ends while others are announced (and the batch holds
 *    fewer than BATCH_MAX) leaves the transaction open, releases the mutex
 *    and sleeps on a semaphore of its own; the one that ends with nobody
 *    announced (or fills the batch) commits: one COMMIT, one fsync, for
 *    the whole batch, and posts every waiter the COMMIT's result (a failed
 *    COMMIT fails them all). No call returns before the COMMIT holding its
 *    writes, so an acknowledgement means what it meant with one commit
 *    per call. Idle, a lone write commits at once.
 *  - no deadlock: whoever leaves the mutex with a batch open and nobody
 *    announced commits it (leave()); an announced writer always comes.
 *  - handing over (sq_txn_run, flat combining): the busiest writes (the
 *    upsert with its outbox row, the claim, an execution's end) do not
 *    queue on the mutex when it is held. They hand their statements to the
 *    holder, which runs each in a savepoint of its own in its batch until
 *    none is left, then commits (or leaves the batch to an announced
 *    writer) and posts every waiter. A writer then sleeps once, for its
 *    COMMIT, instead of twice (the mutex, then the COMMIT): on machines
 *    where a context switch is dear that was a quarter of the daemon's
 *    switches under load.
 *  - the durability class is the batch's: PRAGMA synchronous cannot change
 *    inside a transaction. A batch is opened at the class of its first
 *    operation; a LOSSABLE operation joins any batch (a FULL one only
 *    makes it more durable); a CRITICAL one that finds a NORMAL batch
 *    commits it first and opens a FULL one.
 *
 * Reads. Reads that are not part of a write (connection get/list,
 * idempotency get, event get/count, execution get/list, ledger get) go to
 * the read connection. In WAL mode it sees the last COMMIT, never an open
 * batch, and it does not wait for the writers' fsyncs nor cut their batches
 * short (the API reads a connection before every upsert). The other way,
 * readers on the write connection committing the open batch first, would
 * have split batches on every read. A call's own writes are committed
 * before it returns, so a later read sees them. For ":memory:" (one
 * connection only) reads take the write mutex and commit the open batch
 * first.
 *
 * Durability. WAL mode. A commit with synchronous=FULL is fsync'ed to the
 * WAL before it returns; with NORMAL it survives a crash of the daemon
 * (kill -9) but a power loss or kernel crash may roll the last commits back
 * (the database stays consistent, and WAL order means a later FULL commit
 * makes every earlier one durable too: one fsync of the WAL covers every
 * frame written before it). The setting is per batch here (a batch holds
 * one class of operations, or LOSSABLE ones in a FULL batch):
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
 *  - the combined writes (store.h, "Fewer writes per event") take the
 *    class of the strongest write they stand for: store_event_claim_start
 *    is FULL whatever its plan decides (it is the execution's creation; a
 *    claim alone or a claim marked done at once merely pays for a stronger
 *    commit, which under load it shares), store_execution_complete NORMAL.
 * FULL costs ~100 us per commit on this machine kind against ~17 us, so an
 * execution pays one fsync (its creation) rather than five (claim, create,
 * logs, finish, done), and under load it shares it with the batch.
 * "sqlite:PATH?synchronous=normal" makes every commit NORMAL (crash-safe,
 * not power-loss-safe: for benchmarks or disposable hosts).
 * busy_timeout 5 s covers another process (the CLI, a backup) holding the
 * write lock; foreign keys are on.
 *
 * Write transactions start with BEGIN IMMEDIATE: the write lock is taken up
 * front, so a read-then-write transaction cannot fail half-way on a lock.
 * Another process (the CLI, a backup) waits at most one batch for it.
 *
 * The back end is split by subject (store_sqlite_priv.h lists the files);
 * this one opens and migrates the database and holds the helpers the others
 * share.
 */
#include "store_sqlite_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "store_schema.h"
#include "util.h"

#define BUSY_TIMEOUT_MS 5000

/* ---------------------------------------------------------------------------
 * Migrations: the steps of store_schema.h, in SQLite's type names. All
 * pending steps run in one transaction with the new PRAGMA user_version.
 * Flags are 0 or 1; the log lines' table is keyed by its primary key alone.
 */
#define SCHEMA_ROWID "INTEGER PRIMARY KEY"
#define SCHEMA_SERIAL "INTEGER PRIMARY KEY AUTOINCREMENT"
#define SCHEMA_I64 "INTEGER"
#define SCHEMA_BLOB "BLOB"
#define SCHEMA_FLAG(col) "INTEGER NOT NULL DEFAULT 0 CHECK (" col " IN (0, 1))"
#define SCHEMA_NOROWID " WITHOUT ROWID"

static const char *const migrations[] = {
	STORE_SCHEMA_STEP1,
	STORE_SCHEMA_STEP2,
	STORE_SCHEMA_STEP3,
	STORE_SCHEMA_STEP4,
};

#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))
_Static_assert(SCHEMA_VERSION == STORE_SCHEMA_VERSION, "one schema version for every back end");

int store_schema_version(void)
{
	return SCHEMA_VERSION;
}

/* Maps a SQLite result to a store code; logs what is not an expected outcome.
 * The connection returns extended codes (SQLITE_BUSY_RECOVERY,
 * SQLITE_BUSY_SNAPSHOT, ...): constraints are told apart by their extended
 * code, the rest by the primary code in the low byte. */
static int sq_fail(struct sq *b, int rc, const char *what)
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
static int sq_prep(struct sq *b, const char *sql, sqlite3_stmt **st)
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
		return sq_fail(b, rc, "prepare");
	}
	if (b->ncache < STMT_CACHE) {
		b->cache[b->ncache].sql = sql;
		b->cache[b->ncache].st = *st;
		b->ncache++;
	}
	return 0;
}

/* Gives a statement back: reset, unbound (finalized when it is not cached). */
static void sq_release(struct sq *b, sqlite3_stmt *st)
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

/* Runs a statement that returns no row. */
static int sq_run(struct sq *b, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_DONE || rc == SQLITE_ROW)
		return 0;
	return sq_fail(b, rc, what);
}

/* Runs a cached statement that takes no parameter (BEGIN, COMMIT, a PRAGMA). */
int sq_run_sql(struct sq *b, const char *sql, const char *what)
{
	sqlite3_stmt *st;
	int ret = sq_prep(b, sql, &st);

	if (!ret)
		ret = sq_run(b, st, what);
	sq_release(b, st);
	return ret;
}

/* Steps a statement that reads one row: 0 with the row ready to read,
 * STORE_ENOTFOUND when there is none. */
static int sq_step_row(struct sq *b, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		return 0;
	return rc == SQLITE_DONE ? STORE_ENOTFOUND : sq_fail(b, rc, what);
}

/* A cached statement for sql with args bound; give it back with
 * sq_release() in every case (*st is NULL when this fails). */
static int sq_prep_args(struct sq *b, const char *sql, const struct store_arg *args,
			sqlite3_stmt **st)
{
	int ret = sq_prep(b, sql, st);

	for (int i = 0; !ret && args && args[i].type != STORE_ARG_END; i++) {
		const struct store_arg *a = &args[i];

		switch (a->type) {
		case STORE_ARG_TEXT:
			sqlite3_bind_text(*st, i + 1, a->p, -1, SQLITE_STATIC);
			break;
		case STORE_ARG_I64:
			sqlite3_bind_int64(*st, i + 1, a->v);
			break;
		case STORE_ARG_BLOB:
			sqlite3_bind_blob(*st, i + 1, a->p, (int)a->v, SQLITE_STATIC);
			break;
		default:
			sqlite3_bind_null(*st, i + 1);
			break;
		}
	}
	return ret;
}

int sq_exec(struct sq *b, const char *sql, const char *what, const struct store_arg *args)
{
	sqlite3_stmt *st;
	int ret = sq_prep_args(b, sql, args, &st);

	if (!ret)
		ret = sq_run(b, st, what);
	sq_release(b, st);
	return ret;
}

int sq_row(struct sq *b, const char *sql, const char *what, const struct store_arg *args,
	   sq_row_fn read, void *user)
{
	sqlite3_stmt *st;
	int ret = sq_prep_args(b, sql, args, &st);

	if (!ret)
		ret = sq_step_row(b, st, what);
	if (!ret && read)
		ret = read(st, user);
	sq_release(b, st);
	return ret;
}

int sq_get(struct sq *b, const char *sql, const char *what, const struct store_arg *args,
	   sq_row_fn read, void *user)
{
	struct sq *r = sq_read_lock(b);
	int ret = sq_row(r, sql, what, args, read, user);

	sq_unlock(r);
	return ret;
}

int sq_rows(struct sq *b, const char *sql, const char *what, const struct store_arg *args,
	    sq_row_fn read, void *user)
{
	sqlite3_stmt *st;
	int ret = sq_prep_args(b, sql, args, &st);
	int rc = SQLITE_DONE;

	while (!ret && (rc = sqlite3_step(st)) == SQLITE_ROW)
		ret = read(st, user);
	if (!ret && rc != SQLITE_DONE)
		ret = sq_fail(b, rc, what);
	sq_release(b, st);
	return ret > 0 ? 0 : ret;
}

/* Room for one more item in the array v of `count` items of `size` bytes,
 * *alloc of them allocated (doubling, `first` to start with): the array,
 * moved perhaps, or NULL (v is then left as it was). */
static void *sq_grow(void *v, size_t *alloc, size_t count, size_t size, size_t first)
{
	size_t na = *alloc ? *alloc * 2 : first;
	void *t;

	if (count < *alloc)
		return v;
	t = realloc(v, na * size);
	if (t)
		*alloc = na;
	return t;
}

int sq_page_add(sqlite3_stmt *st, void *user)
{
	struct sq_page *p = user;
	char *t = sq_grow(p->v, &p->alloc, p->n, p->size, 16);
	int ret;

	if (!t)
		return STORE_ENOMEM;
	p->v = t;
	ret = p->decode(st, t + p->n * p->size, p->ctx);
	if (!ret)
		p->n++;
	return ret;
}

static int exec(struct sq *b, const char *sql, const char *what)
{
	int rc = sqlite3_exec(b->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : sq_fail(b, rc, what);
}

void sq_lock(struct sq *b)
{
	pthread_mutex_lock(&b->mu);
}

void sq_unlock(struct sq *b)
{
	pthread_mutex_unlock(&b->mu);
}

static const char sql_sync_full[] = "PRAGMA synchronous = FULL";
static const char sql_sync_normal[] = "PRAGMA synchronous = NORMAL";

/* Sets the durability of the next commit (outside a transaction, under the
 * lock): 2 FULL, 1 NORMAL. */
static int durability(struct sq *b, int want)
{
	int ret;

	if (b->sync_level == want)
		return 0;
	ret = sq_run_sql(b, want == 2 ? sql_sync_full : sql_sync_normal, "set synchronous");
	if (!ret)
		b->sync_level = want;
	return ret;
}

static const char sql_begin[] = "BEGIN IMMEDIATE";
static const char sql_commit[] = "COMMIT";
static const char sql_rollback[] = "ROLLBACK";
static const char sql_savepoint[] = "SAVEPOINT op";
static const char sql_release[] = "RELEASE op";
static const char sql_rollback_to[] = "ROLLBACK TO op";

static int begin(struct sq *b)
{
	return sq_run_sql(b, sql_begin, "begin");
}

/* Commits when ret is 0, rolls back otherwise; returns the final result. */
int sq_end(struct sq *b, int ret)
{
	if (ret == 0) {
		ret = sq_run_sql(b, sql_commit, "commit");
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

/* Ends the open batch, under the mutex: COMMIT when ret is 0 (ROLLBACK
 * otherwise), then hands the result to every operation waiting on it.
 * Returns the result. */
static int batch_end(struct sq *b, int ret)
{
	struct sq_waiter *w, *next;

	if (!b->batch_open)
		return ret;
	ret = sq_end(b, ret);
	if (!ret && b->batch_ops > 0) {
		b->stat_commits++;
		b->stat_ops += (uint64_t)b->batch_ops;
	}
	b->batch_open = false;
	b->batch_ops = 0;
	w = b->waiters;
	b->waiters = NULL;
	for (; w; w = next) {
		next = w->next; /* w lives on a stack that goes once it is posted */
		w->ret = ret;
		sem_post(&w->done);
	}
	return ret;
}

/* Leaves the mutex. A batch may be left open only for a writer that has
 * announced itself (it holds the mutex next and ends the batch or leaves
 * it to the next one); with none, it is committed now. */
static void leave(struct sq *b)
{
	if (b->batch_open && atomic_load(&b->announced) == 0)
		batch_end(b, 0);
	sq_unlock(b);
}

int sq_txn_begin(struct sq *b, bool critical)
{
	int want = critical && !b->all_normal ? 2 : 1;
	int ret = 0;

	atomic_fetch_add(&b->announced, 1);
	sq_lock(b);
	atomic_fetch_sub(&b->announced, 1);
	/* synchronous cannot change inside a transaction: a CRITICAL operation
	 * that finds a NORMAL batch commits it first. Its waiters get its
	 * result; what it means for this operation is only that it opens the
	 * next batch. */
	if (b->batch_open && b->sync_level < want)
		batch_end(b, 0);
	if (!b->batch_open) {
		ret = durability(b, want);
		if (!ret)
			ret = begin(b);
		if (ret)
			goto out;
		b->batch_open = true;
	}
	ret = sq_run_sql(b, sql_savepoint, "savepoint");
out:
	if (ret)
		leave(b);
	return ret;
}

/* Undoes a failed operation's writes: back to its savepoint. When that
 * cannot be done, or SQLite rolled the whole transaction back by itself
 * (an I/O error, a full disk, a trigger's RAISE(ROLLBACK)), the batch is
 * lost: its other operations fail too (STORE_EIO). */
static void op_undo(struct sq *b)
{
	if (!sqlite3_get_autocommit(b->db) &&
	    (sq_run_sql(b, sql_rollback_to, "rollback to savepoint") ||
	     sq_run_sql(b, sql_release, "release savepoint")))
		batch_end(b, STORE_EIO);
	if (b->batch_open && sqlite3_get_autocommit(b->db)) {
		log_error("store", "a failed operation rolled back its whole batch");
		batch_end(b, STORE_EIO);
	}
}

int sq_txn_end(struct sq *b, int ret)
{
	struct sq_waiter w;

	if (!ret)
		ret = sq_run_sql(b, sql_release, "release savepoint");
	if (ret) {
		op_undo(b);
		leave(b);
		return ret;
	}
	b->batch_ops++;
	if (atomic_load(&b->announced) > 0 && b->batch_ops < BATCH_MAX) {
		/* Someone is coming: leave the batch to them and wait for its COMMIT. */
		sem_init(&w.done, 0, 0);
		w.ret = 0;
		w.next = b->waiters;
		b->waiters = &w;
		sq_unlock(b);
		while (sem_wait(&w.done) != 0)
			; /* EINTR */
		sem_destroy(&w.done);
		ret = w.ret;
	} else {
		ret = batch_end(b, 0);
		sq_unlock(b);
	}
	return ret;
}

/* Runs a handed-over operation w in the open batch, in a savepoint of its
 * own (under the mutex). On success w waits for the batch's COMMIT with
 * the others; on failure it is told at once (its writes are undone). */
static void run_handed(struct sq *b, struct sq_waiter *w)
{
	int want = w->critical && !b->all_normal ? 2 : 1;
	int ret = 0;

	if (b->batch_open && b->sync_level < want)
		batch_end(b, 0); /* as in sq_txn_begin */
	if (!b->batch_open) {
		ret = durability(b, want);
		if (!ret)
			ret = begin(b);
		if (!ret)
			b->batch_open = true;
	}
	if (!ret)
		ret = sq_run_sql(b, sql_savepoint, "savepoint");
	if (!ret) {
		ret = w->op(b, w->arg);
		if (!ret)
			ret = sq_run_sql(b, sql_release, "release savepoint");
		if (ret)
			op_undo(b);
	}
	if (ret) {
		w->ret = ret;
		sem_post(&w->done);
		return;
	}
	b->batch_ops++;
	w->ret = 0;
	w->next = b->waiters;
	b->waiters = w;
}

/* Takes what was handed over while this thread held the mutex, until
 * nothing is left; then stops taking (the next writer queues on the
 * mutex). Under the mutex. */
static void run_queue(struct sq *b)
{
	for (;;) {
		struct sq_waiter *q;

		pthread_mutex_lock(&b->qmu);
		q = b->queue;
		b->queue = NULL;
		b->queue_tail = &b->queue;
		if (!q)
			b->combining = false;
		pthread_mutex_unlock(&b->qmu);
		if (!q)
			return;
		while (q) {
			struct sq_waiter *next = q->qnext;

			run_handed(b, q);
			q = next;
		}
	}
}

int sq_txn_run(struct sq *b, bool critical, int (*op)(struct sq *b, void *arg), void *arg)
{
	struct sq_waiter w = {.op = op, .arg = arg, .critical = critical};
	int ret;

	sem_init(&w.done, 0, 0);
	pthread_mutex_lock(&b->qmu);
	if (b->combining) {
		/* the holder runs it in its batch and posts the COMMIT's result */
		if (!b->queue_tail)
			b->queue_tail = &b->queue;
		*b->queue_tail = &w;
		b->queue_tail = &w.qnext;
		pthread_mutex_unlock(&b->qmu);
		goto wait;
	}
	pthread_mutex_unlock(&b->qmu);

	ret = sq_txn_begin(b, critical);
	if (ret) {
		sem_destroy(&w.done);
		return ret;
	}
	pthread_mutex_lock(&b->qmu);
	b->combining = true;
	pthread_mutex_unlock(&b->qmu);
	ret = op(b, arg);
	if (!ret)
		ret = sq_run_sql(b, sql_release, "release savepoint");
	if (ret) {
		op_undo(b);
	} else {
		b->batch_ops++;
		w.next = b->waiters; /* posted by the batch's end, as the others */
		b->waiters = &w;
	}
	run_queue(b);
	if (atomic_load(&b->announced) == 0 || b->batch_ops >= BATCH_MAX)
		batch_end(b, 0);
	leave(b);
	if (ret) {
		sem_destroy(&w.done);
		return ret;
	}
wait:
	while (sem_wait(&w.done) != 0)
		; /* EINTR */
	sem_destroy(&w.done);
	return w.ret;
}

struct sq *sq_read_lock(struct sq *b)
{
	if (b->rd) {
		sq_lock(b->rd);
		return b->rd;
	}
	sq_lock(b);
	batch_end(b, 0); /* readers never see a batch that is not committed */
	return b;
}

void sq_batch_stats(struct store *s, uint64_t *ops, uint64_t *commits)
{
	struct sq *b = B(s);

	sq_lock(b);
	*ops = b->stat_ops;
	*commits = b->stat_commits;
	sq_unlock(b);
}

static int fail_commit_hook(void *user)
{
	struct sq *b = user;

	if (b->fail_commits <= 0 || b->batch_ops == 0)
		return 0; /* only COMMITs that hold some call's writes */
	b->fail_commits--;
	return 1; /* the COMMIT becomes a ROLLBACK and fails */
}

void sq_test_fail_commits(struct store *s, int n)
{
	struct sq *b = B(s);

	sq_lock(b);
	b->fail_commits = n;
	sqlite3_commit_hook(b->db, fail_commit_hook, b);
	sq_unlock(b);
}

/* 0 when sql (a row id as ?1) finds the row, STORE_ENOTFOUND when not. */
int sq_row_exists(struct sq *b, const char *sql, int64_t id, const char *what)
{
	return sq_row(b, sql, what, STORE_ARGS(arg_i64(id)), NULL, NULL);
}

int sq_read_i64(sqlite3_stmt *st, void *user)
{
	*(int64_t *)user = sqlite3_column_int64(st, 0);
	return 0;
}

char *sq_col_dup(sqlite3_stmt *st, int i, int *ret)
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

void sq_col_copy(sqlite3_stmt *st, int i, char *dst, size_t size)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	snprintf(dst, size, "%s", t ? (const char *)t : "");
}

int64_t sq_col_i64(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, i);
}

/* sq_exec() and, when it succeeds, the rows it changed into *changed. */
static int exec_counted(struct sq *b, const char *sql, const char *what,
			const struct store_arg *args, int64_t *changed)
{
	int ret = sq_exec(b, sql, what, args);

	if (!ret)
		*changed = sqlite3_changes(b->db);
	return ret;
}

int sq_write(struct sq *b, bool critical, const char *sql, const char *what,
	     const struct store_arg *args, int64_t *changed)
{
	int ret;

	*changed = 0;
	return SQ_TXN(ret, b, critical, exec_counted(b, sql, what, args, changed));
}

/* The column readers of a struct store_row (store_row.h) over a statement. */
static int64_t row_i64(const struct store_row *r, int col)
{
	return sq_col_i64((sqlite3_stmt *)r->res, col);
}

static const char *row_text(const struct store_row *r, int col)
{
	return (const char *)sqlite3_column_text((sqlite3_stmt *)r->res, col);
}

static int row_blob(const struct store_row *r, int col, uint8_t **out, size_t *len)
{
	sqlite3_stmt *st = (sqlite3_stmt *)r->res;
	const void *p = sqlite3_column_blob(st, col);
	size_t n = (size_t)sqlite3_column_bytes(st, col);

	*out = NULL;
	*len = 0;
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return 0;
	*out = malloc(n + 1);
	if (!*out)
		return STORE_ENOMEM;
	if (n)
		memcpy(*out, p, n);
	(*out)[n] = '\0';
	*len = n;
	return 0;
}

static const struct store_row_ops row_ops = {.i64 = row_i64, .text = row_text, .blob = row_blob};

struct store_row sq_row_of(sqlite3_stmt *st)
{
	return (struct store_row){.ops = &row_ops, .res = st};
}
/* ---------------------------------------------------------------------------
 * Opening.
 */

/* Closes one connection (committing a batch left open: none should be, no
 * call being in progress) and frees its state. NULL is fine. */
/* A connection's state, not yet open (sq_free frees it): NULL and err
 * written when there is no memory. */
static struct sq *sq_alloc(char *err, size_t errlen)
{
	struct sq *b = calloc(1, sizeof(*b));

	if (!b) {
		util_set_err(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&b->mu, NULL);
	pthread_mutex_init(&b->qmu, NULL);
	return b;
}

static void sq_free(struct sq *b)
{
	if (!b)
		return;
	batch_end(b, 0);
	for (size_t i = 0; i < b->ncache; i++)
		sqlite3_finalize(b->cache[i].st);
	sqlite3_close_v2(b->db);
	pthread_mutex_destroy(&b->mu);
	pthread_mutex_destroy(&b->qmu);
	free(b);
}

/* STORE_OPS close: commits any open batch, closes both connections and
 * frees the state. NULL impl is fine. */
void sq_close(struct store *s)
{
	struct sq *b = B(s);

	if (!b)
		return;
	sq_free(b->rd);
	sq_free(b);
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
		util_set_err(err, errlen, "%s: %s", path, sqlite3_errmsg(b->db));
		return (rc & 0xff) == SQLITE_BUSY ? STORE_EBUSY : STORE_EIO;
	}
	if (*version > SCHEMA_VERSION) {
		util_set_err(err, errlen,
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
			util_set_err(err, errlen, "%s: schema migration %d -> %d failed: %s", path, v,
				     v + 1, sqlite3_errmsg(b->db));
			ret = STORE_EIO;
		}
	}
	if (!ret && version < SCHEMA_VERSION) {
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", SCHEMA_VERSION);
		ret = exec(b, sql, "set schema version");
		if (ret)
			util_set_err(err, errlen, "%s: schema migration failed: %s", path,
				     status_str(ret));
	}
	if (ret) {
		sq_end(b, ret);
		return ret;
	}
	ret = sq_end(b, 0);
	if (ret)
		goto store_error;
	if (version == 0)
		log_info("store", "%s: created (schema version %d)", path, SCHEMA_VERSION);
	else if (version < SCHEMA_VERSION)
		log_info("store", "%s: schema migrated from version %d to %d", path, version,
			 SCHEMA_VERSION);
	return 0;
store_error:
	util_set_err(err, errlen, "%s: schema migration failed: %s", path, status_str(ret));
	return ret;
}

static const char sql_meta_get[] = "SELECT value FROM store_meta WHERE name = ?1";
static const char sql_meta_put[] = "INSERT INTO store_meta (name, value) VALUES (?1, ?2)";

struct key_check {
	struct store *s;
	const char *path;
};

/* sq_row_fn over sql_meta_get: the key-check value the database holds. */
static int read_key_check(sqlite3_stmt *st, void *user)
{
	struct key_check *k = user;

	if (k->s->has_key)
		return store_key_check_verify(k->s, sqlite3_column_blob(st, 0),
					      (size_t)sqlite3_column_bytes(st, 0));
	log_warn("store", "%s holds encrypted credentials and no encryption key "
		 "is set: reading them will fail", k->path);
	return 0;
}

/* With a key: the database's key-check value must open with it (written on
 * first use). Without: note when the database holds encrypted data. */
static int key_check(struct store *s, const char *path, char *err, size_t errlen)
{
	struct sq *b = B(s);
	struct key_check k = {.s = s, .path = path};
	uint8_t *blob = NULL;
	size_t len = 0;
	int ret;

	ret = begin(b);
	if (ret)
		goto out;
	ret = sq_row(b, sql_meta_get, "read key check", STORE_ARGS(arg_text("key_check")),
		     read_key_check, &k);
	if (ret != STORE_ENOTFOUND)
		goto out;
	ret = 0;
	if (!s->has_key)
		goto out;
	ret = store_key_check_make(s, &blob, &len);
	if (ret)
		goto out;
	ret = sq_exec(b, sql_meta_put, "write key check",
		      STORE_ARGS(arg_text("key_check"), arg_blob(blob, len)));
out:
	ret = sq_end(b, ret);
	free(blob);
	if (ret == STORE_EKEY)
		util_set_err(err, errlen, "%s: the encryption key is not the one this database was "
			     "written with", path);
	else if (ret)
		util_set_err(err, errlen, "%s: checking the encryption key: %s", path,
			     status_str(ret));
	return ret;
}

/* The read connection (Reads, at the top): the same file through a second
 * SQLite connection that never writes (query_only). Opened read-write all
 * the same: a read-only connection to a WAL database cannot always map its
 * -shm index. Not for ":memory:", where a second connection would be
 * another database: the reads then share the write connection. */
static int open_reader(struct sq *b, const char *path, char *err, size_t errlen)
{
	struct sq *r;
	int rc;

	if (strcmp(path, ":memory:") == 0)
		return 0;
	r = sq_alloc(err, errlen);
	if (!r)
		return STORE_ENOMEM;
	b->rd = r;
	rc = sqlite3_open_v2(path, &r->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
			     NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(r->db, BUSY_TIMEOUT_MS);
		rc = sqlite3_exec(r->db, "PRAGMA query_only = 1", NULL, NULL, NULL);
	}
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: read connection: %s", path,
			 r->db ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc));
		return STORE_EIO;
	}
	return 0;
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
		return status_from_errno(errno);
	return 0;
}

/* Process-wide settings, before SQLite initializes itself. Two blocks
 * SQLite allocates and frees around single statements are made small: a
 * statement journal (opened by each write that may abort part-way inside a
 * transaction) is kept in memory in 1 KiB pieces instead of one 64 KiB
 * block, and a page cache (a temporary table's too) starts empty instead
 * of with a block for 20 pages. Those blocks, freed at each statement's
 * end, made the allocator hand their pages back to the kernel and fault
 * them in again, event after event: about a tenth of the daemon's CPU
 * under load (perf). Our statements touch a few pages at most. */
static void configure_once(void)
{
	if (sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL, -1) != SQLITE_OK ||
	    sqlite3_config(SQLITE_CONFIG_PAGECACHE, (void *)NULL, 0, 0) != SQLITE_OK)
		log_warn("store", "SQLite was initialized before the store: its memory "
			 "settings stay the defaults");
}

static int open_path(struct store *s, const char *path, bool all_normal, char *err,
		     size_t errlen)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	struct sq *b;
	char mode[16] = "";
	int rc, ret, e;
	sqlite3_stmt *st = NULL;

	if (!*path) {
		util_set_err(err, errlen, "store URL: empty path (expected sqlite:PATH)");
		return STORE_EURL;
	}
	if (sqlite3_libversion_number() < 3035000) {
		util_set_err(err, errlen, "SQLite %s is too old (3.35 or newer is needed)",
			     sqlite3_libversion());
		return STORE_EIO;
	}
	pthread_once(&once, configure_once);
	e = precreate(path);
	if (e) {
		util_set_err(err, errlen, "%s: %s", path, status_str(e));
		return STORE_EIO;
	}
	b = sq_alloc(err, errlen);
	if (!b)
		return STORE_ENOMEM;
	b->all_normal = all_normal;
	b->host_id = s->host_id;
	s->impl = b;
	rc = sqlite3_open_v2(path, &b->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
				     SQLITE_OPEN_EXRESCODE,
			     NULL);
	if (rc != SQLITE_OK) {
		util_set_err(err, errlen, "%s: %s", path,
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
		util_set_err(err, errlen, "%s: %s", path, sqlite3_errmsg(b->db));
		ret = (rc & 0xff) == SQLITE_BUSY ? STORE_EBUSY : STORE_EIO;
		goto fail;
	}
	if (strcmp(mode, "wal") != 0 && strcmp(path, ":memory:") != 0) {
		util_set_err(err, errlen, "%s: could not switch to WAL mode (journal mode is %s)",
			     path, mode);
		ret = STORE_EIO;
		goto fail;
	}
	rc = sqlite3_exec(b->db, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;", NULL,
			  NULL, NULL);
	b->sync_level = 2;
	if (rc != SQLITE_OK) {
		util_set_err(err, errlen, "%s: %s", path, sqlite3_errmsg(b->db));
		ret = STORE_EIO;
		goto fail;
	}
	ret = migrate(b, path, err, errlen);
	if (ret)
		goto fail;
	ret = key_check(s, path, err, errlen);
	if (ret)
		goto fail;
	ret = open_reader(b, path, err, errlen);
	if (ret)
		goto fail;
	return 0;
fail:
	sq_close(s);
	return ret;
}

/* STORE_OPS open: location is PATH or PATH?synchronous=full|normal. */
int sq_open(struct store *s, const char *location, char *err, size_t errlen)
{
	char *path = strdup(location), *q;
	bool all_normal = false;
	int ret;

	if (!path) {
		util_set_err(err, errlen, "out of memory");
		return STORE_ENOMEM;
	}
	q = strchr(path, '?');
	if (q) {
		*q++ = '\0';
		if (strcmp(q, "synchronous=normal") == 0) {
			all_normal = true;
		} else if (strcmp(q, "synchronous=full") != 0) {
			util_set_err(err, errlen, "store URL: unknown option '%s' (expected "
				     "synchronous=full or synchronous=normal)", q);
			free(path);
			return STORE_EURL;
		}
	}
	ret = open_path(s, path, all_normal, err, errlen);
	free(path);
	return ret;
}

#define SQ_OP_ENTRY(ret, name, params) .name = sq_##name,

const struct store_ops store_sqlite_ops = {
	.scheme = "sqlite",
	STORE_OPS(SQ_OP_ENTRY)
	.async_recover = sq_async_recover,
};
