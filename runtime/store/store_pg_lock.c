/*
 * store_pg_lock.c - the cross-host half of store_connection_lock on
 * PostgreSQL: a session-level advisory lock on the connection's key, so
 * that two hosts refreshing one connection's tokens at once make one
 * refresh; the second host takes the lock after the first has stored the
 * new tokens, and re-reads them (hostapi/credentials.c re-reads under the
 * lock).
 *
 * A session-level lock belongs to the database session that took it, and
 * a session waiting for one can do nothing else; the refresh in between
 * reads and writes through the pool. So the locks are taken on
 * connections of their own (PG_LOCK_MAX, opened when first needed, kept
 * for the next refresh), never on the pool's: holders never wait for a
 * lock connection again (the lock is not reentrant), so the pool cannot
 * run dry under them. A refresh that finds every lock connection busy
 * waits for one.
 *
 * The key is the two-integer form, (PG_LOCK_CLASS, the connection's 32-bit
 * hash, store_connection_hash), whose key space is not the one-bigint form's of the
 * schema lock. Two connections whose hashes collide share a lock: one
 * waits for the other's refresh, nothing worse. A lock connection that
 * breaks loses its locks with its session; it is closed, and the next
 * lock opens another. A host that dies releases its locks with its
 * sessions.
 */
#include "store_pg_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* The advisory lock class of connections' credentials (any constant every
 * host shares). */
#define PG_LOCK_CLASS "7305712"

/* Runs the lock or unlock statement on l's session: 0 or STORE_EIO. */
static int lock_sql(struct pg *p, struct pg_lock *l, const char *fn)
{
	char sql[96], key[16];
	const char *values[] = {key};
	PGresult *r;
	int ret = 0;

	snprintf(sql, sizeof(sql), "SELECT %s(" PG_LOCK_CLASS ", $1::integer)", fn);
	/* the hash as a signed 32-bit integer */
	snprintf(key, sizeof(key), "%d", (int)(int32_t)l->key);
	r = PQexecParams(l->conn, sql, 1, NULL, values, NULL, NULL, 0);
	if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
		log_error("store", "%s: %s: %s", p->shown, fn,
			  r ? PQresultErrorMessage(r) : PQerrorMessage(l->conn));
		ret = STORE_EIO;
	}
	PQclear(r);
	return ret;
}

static bool lock_free(const struct pg *p, size_t i)
{
	return !p->locks[i].busy;
}

int pg_connection_lock(struct store *s, const char *pck, const char *cid)
{
	struct pg *p = P(s);
	struct pg_lock *l;
	char err[512];
	int ret;

	pthread_mutex_lock(&p->mu);
	l = &p->locks[pg_wait_slot(p, &p->lock_freed, PG_LOCK_MAX, lock_free)];
	l->busy = true;
	pthread_mutex_unlock(&p->mu);

	l->key = store_connection_hash(pck, cid);
	if (l->conn && PQstatus(l->conn) != CONNECTION_OK) {
		PQfinish(l->conn);
		l->conn = NULL;
	}
	if (!l->conn && !(l->conn = pg_connect(p, err, sizeof(err)))) {
		log_error("store", "%s", err);
		ret = STORE_EIO;
	} else {
		ret = lock_sql(p, l, "pg_advisory_lock");
	}
	if (ret) {
		pg_lock_give(p, l, true);
		return ret;
	}
	pthread_mutex_lock(&p->mu);
	snprintf(l->pck, sizeof(l->pck), "%s", pck);
	snprintf(l->cid, sizeof(l->cid), "%s", cid);
	l->held = true;
	pthread_mutex_unlock(&p->mu);
	return 0;
}

void pg_connection_unlock(struct store *s, const char *pck, const char *cid)
{
	struct pg *p = P(s);
	struct pg_lock *l = NULL;

	/* the caller's in-process lock on (pck, cid) is held: one match */
	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i < PG_LOCK_MAX && !l; i++)
		if (p->locks[i].held && strcmp(p->locks[i].pck, pck) == 0 &&
		    strcmp(p->locks[i].cid, cid) == 0)
			l = &p->locks[i];
	pthread_mutex_unlock(&p->mu);
	if (!l)
		return;
	/* a session that cannot say unlock is ended: that releases it */
	pg_lock_give(p, l, lock_sql(p, l, "pg_advisory_unlock") != 0);
}

void pg_lock_give(struct pg *p, struct pg_lock *l, bool broken)
{
	if (broken) {
		PQfinish(l->conn);
		l->conn = NULL;
	}
	pthread_mutex_lock(&p->mu);
	l->held = false;
	l->busy = false;
	pthread_cond_signal(&p->lock_freed);
	pthread_mutex_unlock(&p->mu);
}
