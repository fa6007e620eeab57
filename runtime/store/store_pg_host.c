/*
 * store_pg_host.c - the thread every host runs beside its pool, on a
 * connection of its own:
 *  1. heartbeat: every host_timeout_s / 3 (at least 1 s) it writes its
 *     hosts row with the database's clock (clock_timestamp()), so hosts'
 *     clocks need not agree;
 *  2. dead-host sweep: right after each beat, every other host whose beat
 *     is older than its own host_timeout_s (each host writes its own in
 *     its row, so hosts need not share one) and that still has running
 *     executions or claimed events is settled, in one transaction per dead
 *     host, holding its hosts row (FOR UPDATE SKIP LOCKED: two survivors
 *     never settle one host at once): its running executions become
 *     interrupted, its claimed but unstarted events pending again (never
 *     re-run when one of their scripts started: pg_settle_host);
 *     Its own claims that no worker holds for a minute (a claim whose
 *     COMMIT answer was lost) go back to pending at the same time;
 *  3. LISTEN evscript_events: a trigger announces every event that becomes
 *     pending (store_pg.c's migration 2); the thread wakes the dispatcher
 *     through store_wakeup(). Polling stays the fallback (the dispatcher's
 *     own), and after a reconnection the thread wakes it once, since
 *     announcements sent while it was away are lost.
 */
#include "store_pg_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static const char sql_register[] =
	"INSERT INTO hosts (host_id, started_at, timeout_s, heartbeat_at)"
	" VALUES ($1, $2, $3, clock_timestamp())"
	" ON CONFLICT (host_id) DO UPDATE SET started_at = excluded.started_at,"
	" timeout_s = excluded.timeout_s, heartbeat_at = excluded.heartbeat_at";
static const char sql_beat[] =
	"INSERT INTO hosts (host_id, started_at, timeout_s, heartbeat_at)"
	" VALUES ($1, $2, $3, clock_timestamp())"
	" ON CONFLICT (host_id) DO UPDATE SET timeout_s = excluded.timeout_s,"
	" heartbeat_at = excluded.heartbeat_at";
/* Dead hosts that left something to settle: each judged by its own
 * host_timeout_s (hosts need not share one). */
static const char sql_dead[] =
	"SELECT h.host_id, floor(extract(epoch FROM clock_timestamp() - h.heartbeat_at))::bigint,"
	" h.timeout_s FROM hosts h WHERE h.host_id <> $1"
	" AND h.heartbeat_at < clock_timestamp() - make_interval(secs => h.timeout_s)"
	" AND (EXISTS (SELECT 1 FROM executions x WHERE x.host_id = h.host_id AND x.status = 'running')"
	"  OR EXISTS (SELECT 1 FROM events e WHERE e.host_id = h.host_id AND e.status = 'claimed'))";
/* Still dead, and nobody else settling it. */
static const char sql_dead_lock[] =
	"SELECT 1 FROM hosts WHERE host_id = $1"
	" AND heartbeat_at < clock_timestamp() - make_interval(secs => timeout_s)"
	" FOR UPDATE SKIP LOCKED";

/* The host thread's connection: a struct pgc outside the pool. */
struct host_conn {
	struct pgc c;
	bool listening;
};

static int64_t interval_ms(const struct pg *p)
{
	int64_t ms = (int64_t)p->s->host_timeout_s * 1000 / 3;

	return ms < 1000 ? 1000 : ms;
}

static int beat(struct pg *p, struct pgc *c, const char *sql)
{
	int ret = pg_x(c, sql, "heartbeat",
		       STORE_ARGS(arg_text(p->s->host_id), arg_i64(util_now_ms()),
				  arg_i64(p->s->host_timeout_s)),
		       NULL);

	if (!ret)
		atomic_fetch_add(&p->heartbeats, 1);
	return ret;
}

/* Settles one dead host, unless another survivor is at it or it beat again. */
static int settle_dead(struct pgc *c, const char *dead, int64_t silent_s, int64_t timeout_s)
{
	struct store_recovery r = {0};
	char error[STORE_ID_MAX + 96];
	PGresult *res = NULL;
	int ret;

	ret = pg_x(c, "BEGIN", "begin", NULL, NULL);
	if (ret)
		return ret;
	ret = pg_q(c, sql_dead_lock, "lock dead host", STORE_ARGS(arg_text(dead)), &res);
	if (!ret && PQntuples(res) == 1) {
		snprintf(error, sizeof(error), "interrupted: host %s stopped while it ran (no "
			 "heartbeat for %lld s)", dead, (long long)silent_s);
		ret = pg_settle_host(c, dead, error, &r);
	}
	PQclear(res);
	res = PQexec(c->conn, ret ? "ROLLBACK" : "COMMIT");
	if (!ret && (!res || PQresultStatus(res) != PGRES_COMMAND_OK))
		ret = STORE_EIO;
	PQclear(res);
	if (!ret && (r.executions_interrupted || r.events_requeued || r.events_interrupted))
		log_warn("store", "host %s: no heartbeat for %lld s (its host_timeout_s is %lld): "
			 "%lld running executions marked interrupted, %lld claimed events put "
			 "back, %lld interrupted", dead, (long long)silent_s,
			 (long long)timeout_s, (long long)r.executions_interrupted,
			 (long long)r.events_requeued, (long long)r.events_interrupted);
	return ret;
}

static int sweep(struct pg *p, struct pgc *c)
{
	PGresult *res = NULL;
	int64_t strays = 0;
	int ret;

	ret = pg_release_strays(p, c, &strays);
	if (!ret && strays > 0)
		log_warn("store", "%lld events claimed by this host and held by no worker for %d s "
			 "put back", (long long)strays, PG_STRAY_CLAIM_MS / 1000);
	if (!ret)
		ret = pg_q(c, sql_dead, "find dead hosts", STORE_ARGS(arg_text(p->s->host_id)),
			   &res);
	for (int i = 0; !ret && i < PQntuples(res); i++)
		ret = settle_dead(c, PQgetvalue(res, i, 0), pg_col_i64(res, i, 1),
				  pg_col_i64(res, i, 2));
	PQclear(res);
	return ret;
}

/* Reads the announcements that arrived; true when there was one. */
static bool drain_notifies(PGconn *conn)
{
	PGnotify *n;
	bool any = false;

	while ((n = PQnotifies(conn))) {
		any = true;
		PQfreemem(n);
	}
	return any;
}

/* (Re)connects and listens; false when the database cannot be reached. */
static bool host_connect(struct pg *p, struct host_conn *h)
{
	char err[512];

	if (h->c.conn && PQstatus(h->c.conn) == CONNECTION_OK && h->listening)
		return true;
	PQfinish(h->c.conn);
	pg_forget(&h->c);
	h->listening = false;
	h->c.conn = pg_connect(p, err, sizeof(err));
	if (!h->c.conn)
		return false;
	if (pg_x(&h->c, "LISTEN evscript_events", "listen", NULL, NULL)) {
		PQfinish(h->c.conn); /* not polled: a dead socket would spin the loop */
		h->c.conn = NULL;
		return false;
	}
	h->listening = true;
	/* what was announced while we were away is lost: look once */
	store_wakeup(p->s);
	return true;
}

/* Waits for an announcement, the stop pipe or ms; false when stopping. */
static bool host_wait(struct pg *p, struct host_conn *h, int64_t ms)
{
	struct pollfd fds[2] = {{.fd = p->stop_pipe[0], .events = POLLIN},
				{.fd = h->c.conn ? PQsocket(h->c.conn) : -1, .events = POLLIN}};

	if (ms < 0)
		ms = 0;
	if (poll(fds, fds[1].fd >= 0 ? 2 : 1, (int)ms) < 0 && errno != EINTR)
		return true;
	if (fds[0].revents)
		return false;
	if (fds[1].fd >= 0 && fds[1].revents) {
		if (!PQconsumeInput(h->c.conn))
			h->listening = false; /* lost: reconnect next round */
		else if (drain_notifies(h->c.conn))
			store_wakeup(p->s);
	}
	return true;
}

static void *host_main(void *arg)
{
	struct pg *p = arg;
	struct host_conn h = {0};
	int64_t next_beat = 0, warned = 0;

	for (;;) {
		int64_t now = util_mono_us() / 1000;

		if (!host_connect(p, &h)) {
			if (now - warned >= 10000) {
				log_warn("store", "%s: the host thread cannot reach the database; "
					 "retrying", p->shown);
				warned = now;
			}
			if (!host_wait(p, &h, 1000))
				break;
			continue;
		}
		if (now >= next_beat) {
			/* a failure is logged where it happens; a lost connection
			 * is made again next round */
			if ((beat(p, &h.c, sql_beat) || sweep(p, &h.c)) &&
			    PQstatus(h.c.conn) != CONNECTION_OK)
				h.listening = false;
			if (drain_notifies(h.c.conn))
				store_wakeup(p->s);
			next_beat = now + interval_ms(p);
		}
		if (!host_wait(p, &h, next_beat - util_mono_us() / 1000))
			break;
	}
	PQfinish(h.c.conn);
	return NULL;
}

int pg_host_start(struct pg *p, char *err, size_t errlen)
{
	struct pgc c = {0};
	int ret, e;

	/* Register before anything is claimed, so that a survivor can settle
	 * this host even if it dies before its thread beats once. */
	c.conn = pg_connect(p, err, errlen);
	if (!c.conn)
		return STORE_EIO;
	ret = beat(p, &c, sql_register);
	PQfinish(c.conn);
	if (ret) {
		util_set_err(err, errlen, "%s: registering host %s failed: %s", p->shown,
			     p->s->host_id, status_str(ret));
		return ret;
	}
	if (pipe2(p->stop_pipe, O_CLOEXEC) != 0) {
		ret = status_from_errno(errno);
		util_set_err(err, errlen, "pipe: %s", status_str(ret));
		return ret;
	}
	e = pthread_create(&p->thread, NULL, host_main, p);
	if (e) {
		ret = status_from_errno(e);
		util_set_err(err, errlen, "the store's host thread: %s", status_str(ret));
		return ret;
	}
	p->thread_started = true;
	return 0;
}

void pg_host_stop(struct pg *p)
{
	if (p->thread_started) {
		while (write(p->stop_pipe[1], "x", 1) < 0 && errno == EINTR)
			;
		pthread_join(p->thread, NULL);
		p->thread_started = false;
	}
	for (int i = 0; i < 2; i++) {
		if (p->stop_pipe[i] >= 0)
			close(p->stop_pipe[i]);
		p->stop_pipe[i] = -1;
	}
}
