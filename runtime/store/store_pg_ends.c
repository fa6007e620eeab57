/*
 * store_pg_ends.c - executions' ends that several workers record at once
 * share one transaction (PostgreSQL back end).
 *
 * A worker that goes straight on to its next event carries its end with
 * that claim (store_event_claim_batch, store_pg_claim.c). The others record
 * their end alone (store_execution_complete): BEGIN, the end's statements,
 * COMMIT. When several do so at once (the queue ran dry and every worker
 * ends), the first becomes the combiner: it takes every end queued so far
 * (up to PG_END_BATCH) and records them in one transaction, while the
 * others wait for it; ends that arrive meanwhile form the next batch. So
 * n concurrent ends cost one BEGIN and one COMMIT instead of n of each,
 * the same combining as SQLite's group commit (store_sqlite.c).
 *
 * All or nothing per end, as store.h says: when a statement of a batch
 * fails (an execution another host settled: STORE_ESTATE, or an error),
 * the batch's transaction is rolled back and each of its ends is recorded
 * again alone, each with its own result. That is rare (a settled host, a
 * database error), so the common path stays one transaction. A batch
 * whose COMMIT fails gives its error to every end in it, as a lone end's
 * failed COMMIT does (a COMMIT whose answer is lost may have been
 * applied: recording its ends again would write their lines twice).
 */
#include "store_pg_priv.h"

#include <stdlib.h>

#define PG_END_BATCH 16

/* One end waiting to be recorded (on its worker's stack). */
struct pg_end_req {
	int64_t id;
	const struct store_execution_end *end;
	const char *err;
	int ret;
	bool done;
	struct pg_end_req *next;
};

static int one_txn(struct store *s, struct pgc *c, void *arg)
{
	struct pg_end_req *r = arg;

	(void)s;
	return pg_complete_in(c, r->id, r->end, r->err);
}

/* A batch of ends, and whether its transaction failed in its statements
 * (rolled back: none of it was written) rather than at its COMMIT (whose
 * outcome a lost answer leaves unknown). */
struct batch {
	struct pg_end_req *first;
	bool body_failed;
};

static int batch_txn(struct store *s, struct pgc *c, void *arg)
{
	struct batch *b = arg;
	int ret = 0;

	(void)s;
	for (struct pg_end_req *r = b->first; r && !ret; r = r->next)
		ret = pg_complete_in(c, r->id, r->end, r->err);
	b->body_failed = ret != 0;
	return ret;
}

/* Records a batch (a list of at least one end): ret set for each. An end
 * is recorded again alone only when the batch certainly wrote nothing. */
static void record(struct pg *p, struct pg_end_req *first)
{
	struct batch b = {.first = first};
	int ret;

	if (!first->next) {
		first->ret = pg_txn(p, true, one_txn, first);
		return;
	}
	ret = pg_txn(p, true, batch_txn, &b);
	for (struct pg_end_req *r = first; r; r = r->next)
		r->ret = ret && b.body_failed ? pg_txn(p, true, one_txn, r) : ret;
}

/* Takes up to PG_END_BATCH queued ends, in order (under emu). */
static struct pg_end_req *take_batch(struct pg *p)
{
	struct pg_end_req *batch = p->ends, *last = batch;

	for (int n = 1; last && n < PG_END_BATCH && last->next; n++)
		last = last->next;
	p->ends = last ? last->next : NULL;
	if (last)
		last->next = NULL;
	return batch;
}

int pg_execution_complete(struct store *s, int64_t id, const struct store_execution_end *end)
{
	struct pg *p = P(s);
	struct pg_end_req req = {.id = id, .end = end}, **tail, *batch, *next;
	char *err = NULL;
	int ret;

	ret = store_truncate_copy(end->error, STORE_ERROR_MAX, &err);
	if (ret)
		return ret;
	req.err = err;
	pthread_mutex_lock(&p->emu);
	for (tail = &p->ends; *tail; tail = &(*tail)->next)
		;
	*tail = &req;
	while (!req.done) {
		if (p->ending) {
			pthread_cond_wait(&p->ended, &p->emu);
			continue;
		}
		batch = take_batch(p);
		p->ending = true;
		pthread_mutex_unlock(&p->emu);
		record(p, batch);
		pthread_mutex_lock(&p->emu);
		for (struct pg_end_req *r = batch; r; r = next) {
			next = r->next; /* r may be gone once done is seen */
			r->done = true;
		}
		p->ending = false;
		pthread_cond_broadcast(&p->ended);
	}
	pthread_mutex_unlock(&p->emu);
	free(err);
	return req.ret;
}
