/*
 * store_pg_claim.c - the claim protocol of the PostgreSQL back end
 * (store_event_claim_start/_next, store_event_claim), and settling a
 * host's rows (store_recover, store_interrupt_running, and the dead-host
 * sweep of store_pg_host.c).
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

#include "log.h"
#include "util.h"

/* ---------------------------------------------------------------------------
 * Claims ahead (step 1), the queue of this host's claimed events.
 */

static const char sql_claim_batch[] =
	"UPDATE events SET status = 'claimed', claimed_at = $1, generation = $2, host_id = $3"
	" WHERE id IN (SELECT id FROM events WHERE status = 'pending' ORDER BY id LIMIT $4"
	" FOR UPDATE SKIP LOCKED) RETURNING " STORE_EVENT_COLS;
/* Step 2's guard: still claimed by this host. */
static const char sql_claim_mine[] =
	"UPDATE events SET generation = $2, claimed_at = $3"
	" WHERE id = $1 AND status = 'claimed' AND host_id = $4"
	" AND NOT EXISTS (SELECT 1 FROM executions x WHERE x.event_id = events.id)"
	" RETURNING " STORE_EVENT_COLS;
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
		   STORE_ARGS(arg_i64(util_now_ms()), arg_i64(generation), arg_text(s->host_id),
			      arg_i64(n)),
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
	pg_x(c, sql_release, "give back a claimed event",
	     STORE_ARGS(arg_i64(id), arg_text(s->host_id)), NULL);
}

/* A claim of this host that no worker holds: not in the queue, no
 * execution, older than PG_STRAY_CLAIM_MS (a start re-stamps claimed_at).
 * validate-connection and a DELETE's own events are claimed by their
 * request, which creates their executions at once. */
static const char sql_strays[] =
	"UPDATE events SET status = 'pending', claimed_at = NULL, generation = NULL, host_id = NULL"
	" WHERE host_id = $1 AND status = 'claimed' AND claimed_at < $2"
	" AND type <> 'validate-connection' AND NOT (id = ANY ($3::bigint[]))"
	" AND NOT EXISTS (SELECT 1 FROM executions x WHERE x.event_id = events.id)";

int pg_release_strays(struct pg *p, struct pgc *c, int64_t *count)
{
	char ids[PG_CLAIM_BATCH * 24 + 4] = "{";
	size_t at = 1;
	int ret;

	/* The queue as it is now; qmu is not held across the statement (a
	 * worker holds an event's row while it pops the next id: waiting for
	 * that row with qmu held would deadlock). An id popped since is being
	 * started: its start re-stamps claimed_at (this statement then waits
	 * for its row and finds it fresh), or, given back first, the start's
	 * guard finds it no longer this host's and skips it. */
	pthread_mutex_lock(&p->qmu);
	for (size_t i = 0; i < p->qn; i++)
		at += (size_t)snprintf(ids + at, sizeof(ids) - at, "%s%lld", i ? "," : "",
				       (long long)p->queue[p->qhead + i]);
	pthread_mutex_unlock(&p->qmu);
	snprintf(ids + at, sizeof(ids) - at, "}");
	ret = pg_x(c, sql_strays, "give back stray claims",
		   STORE_ARGS(arg_text(p->s->host_id), arg_i64(util_now_ms() - PG_STRAY_CLAIM_MS),
			      arg_text(ids)),
		   count);
	return ret;
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
	struct store_row row;
	PGresult *r;
	int ret = pg_read_row(s, sql_claim_batch, "claim event",
			      STORE_ARGS(arg_i64(util_now_ms()), arg_i64(generation),
					 arg_text(s->host_id), arg_i64(1)),
			      &r, &row);

	if (!ret)
		store_row_event(&row, ev);
	PQclear(r);
	return ret;
}

/* ---------------------------------------------------------------------------
 * Starts (step 2).
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
		   STORE_ARGS(arg_i64(id), arg_i64(generation), arg_i64(util_now_ms()),
			      arg_text(s->host_id)),
		   &r);
	if (ret)
		return ret;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return STORE_ENOTFOUND;
	}
	pg_event_from_row(r, 0, ev);
	PQclear(r);
	p = store_plan_claim(plan, user, ev, &in);
	if (p == STORE_CLAIM_START)
		return pg_exec_insert(s, c, &in, execution_id);
	if (p == STORE_CLAIM_DONE) {
		ret = pg_event_finish_in(c, ev->id);
		if (!ret)
			ev->status = STORE_EVENT_DONE;
		*more = !ret;
		return ret;
	}
	return p < 0 ? p : 0; /* STORE_CLAIM_ONLY */
}

/* What one store_event_claim_batch did: the ids it claimed, in order. */
struct claim_run {
	int64_t ids[STORE_CLAIM_BATCH];
	size_t n;
};

/* Step 2 for as many events as plan marks done at once, up to
 * STORE_CLAIM_BATCH, and up to b->max that it starts (or claims only),
 * inside c's transaction. Stops early when the queue runs dry (the rest
 * stays pending for the next call). 0 with run->n > 0, or
 * STORE_ENOTFOUND. */
static int start_some(struct store *s, struct pgc *c, struct store_claim_batch *b,
		      struct claim_run *run)
{
	struct store_claimed cur;
	bool more = true;
	int64_t id;
	int ret = 0;

	while (more && b->n < b->max && run->n < STORE_CLAIM_BATCH && queue_pop(P(s), &id)) {
		cur.execution_id = 0;
		ret = start_one(s, c, id, b->generation, b->plan, b->user, &cur.ev,
				&cur.execution_id, &more);
		if (ret == STORE_ENOTFOUND) {
			more = true; /* given back by a survivor meanwhile: not ours */
			ret = 0;
			continue;
		}
		run->ids[run->n++] = id;
		if (ret)
			return ret;
		b->last = cur.ev;
		if (cur.ev.status != STORE_EVENT_DONE) {
			b->out[b->n++] = cur;
			/* started: the next may follow; claimed only: the end */
			more = cur.execution_id > 0;
		}
	}
	/* not stopped by a claim only: maybe more (the local queue, or the
	 * next call's claim ahead) */
	b->more = more;
	return run->n > 0 ? 0 : STORE_ENOTFOUND;
}

/* After a failed claim: the events it took go back to the queue when the
 * database failed (they are still claimed by this host), to pending
 * otherwise (all or nothing: store.h). */
static void claim_undo(struct store *s, struct pgc *c, const struct claim_run *run, int ret)
{
	for (size_t i = run->n; i > 0; i--) {
		if (ret == STORE_EIO)
			queue_unget(s, c, run->ids[i - 1]);
		else
			release_one(s, c, run->ids[i - 1]);
	}
}

/* The ends of a claim, inside c's transaction. */
static int complete_all(struct pgc *c, const struct store_completion *ends, size_t n_ends)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < n_ends; i++) {
		char *err = NULL;

		ret = store_truncate_copy(ends[i].end->error, STORE_ERROR_MAX, &err);
		if (!ret)
			ret = pg_complete_in(c, ends[i].execution_id, ends[i].end, err);
		free(err);
	}
	return ret;
}

int pg_event_claim_batch(struct store *s, struct store_claim_batch *b)
{
	struct claim_run run = {.n = 0};
	struct pgc *c;
	int ret, filled;

	ret = pg_take(P(s), &c);
	if (ret)
		return ret;
	/* step 1, committed by itself; then the ends and the starts in one */
	filled = queue_fill(s, c, b->generation);
	if (filled && (filled != STORE_ENOTFOUND || b->n_ends == 0)) {
		ret = filled;
		goto give;
	}
	ret = pg_begin_on(P(s), c, false); /* a start is a creation: synchronous */
	if (ret)
		goto give;
	ret = complete_all(c, b->ends, b->n_ends);
	if (!ret)
		ret = start_some(s, c, b, &run);
	if (ret == STORE_ENOTFOUND && b->n_ends > 0) {
		/* the ends are written even when nothing was left to claim */
		ret = pg_commit_on(P(s), c, 0);
		ret = ret ? ret : STORE_ENOTFOUND;
	} else {
		ret = pg_commit_on(P(s), c, ret);
	}
	if (ret && ret != STORE_ENOTFOUND)
		claim_undo(s, c, &run, ret);
give:
	pg_give(P(s), c);
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
		   STORE_ARGS(arg_text(host_id), arg_i64(now), arg_text(error)),
		   &r->executions_interrupted);
	/* Lock first: a start that holds one of these rows commits (or not)
	 * before the next statement's snapshot is taken. */
	if (!ret)
		ret = pg_x(c,
			   "SELECT id FROM events WHERE host_id = $1 AND status = 'claimed'"
			   " FOR UPDATE",
			   "lock claimed events", STORE_ARGS(arg_text(host_id)), NULL);
	if (!ret)
		ret = pg_x(c, "UPDATE events SET status = 'pending', claimed_at = NULL,"
			   " generation = NULL, host_id = NULL"
			   " WHERE host_id = $1 AND status = 'claimed' AND type <> 'validate-connection'"
			   " AND NOT EXISTS (SELECT 1 FROM executions x WHERE x.event_id = events.id)",
			   "requeue events", STORE_ARGS(arg_text(host_id)), &r->events_requeued);
	if (!ret)
		ret = pg_x(c, "UPDATE events SET status = 'interrupted', finished_at = $2"
			   " WHERE host_id = $1 AND status = 'claimed'", "interrupt events",
			   STORE_ARGS(arg_text(host_id), arg_i64(now)), &r->events_interrupted);
	if (!ret)
		ret = pg_async_settle(c, host_id, now);
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
		   STORE_ARGS(arg_text(s->host_id), arg_i64(util_now_ms()), arg_text(error)),
		   count);
	return pg_end(P(s), c, ret);
}
