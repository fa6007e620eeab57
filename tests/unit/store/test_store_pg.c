/*
 * test_store_pg.c - the PostgreSQL back end through store.h, two stores on
 * one database standing for two hosts, on the private server the ctest
 * fixture starts (EVS_PG_DIR, tests/integration/pg_server.py; a fresh
 * database per test). What the integration tests cannot show from outside:
 *  - a store is woken (store_set_wakeup) by an event another host records:
 *    only LISTEN/NOTIFY can call it, the store has no polling of its own;
 *  - claims from two hosts and several threads each start every event
 *    exactly once (batched claims, FOR UPDATE SKIP LOCKED);
 *  - a host that closes gives back the events it claimed ahead;
 *  - store_recover settles this host's rows only;
 *  - a survivor settles a host whose heartbeat is older than its
 *    host_timeout_s, and leaves a live host's rows alone;
 *  - a host gives back its own claims that no worker holds;
 *  - tags written on one host filter another's list;
 *  - store_recover fails this host's running asynchronous actions only;
 *  - a due webhook delivery is taken by one host at a time (leased);
 *  - executions' ends recorded by many threads at once (which share
 *    transactions) are each all or nothing, one failing end not failing
 *    the others.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "store_fixture.h"

#define EVENTS 120
#define THREADS 3

struct db {
	char url[512];    /* the fresh database */
	char admin[512];  /* the server's postgres database */
	char name[64];
};

static void admin_exec(const struct db *d, const char *sql)
{
	PGconn *c = PQconnectdb(d->admin);
	PGresult *r;

	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("connecting to %s: %s", d->admin, PQerrorMessage(c));
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
}

static int db_setup(void **state)
{
	const char *dir = getenv("EVS_PG_DIR");
	struct db *d = calloc(1, sizeof(*d));
	char path[512], sql[128];
	FILE *f;
	size_t n;

	assert_non_null(d);
	assert_non_null(dir);
	snprintf(path, sizeof(path), "%s/url", dir);
	f = fopen(path, "r");
	assert_non_null(f);
	n = fread(d->admin, 1, sizeof(d->admin) - 1, f);
	fclose(f);
	while (n > 0 && (d->admin[n - 1] == '\n' || d->admin[n - 1] == ' '))
		n--;
	d->admin[n] = '\0';
	snprintf(d->name, sizeof(d->name), "evs_unit_%d_%ld", (int)getpid(), (long)random());
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", d->name);
	admin_exec(d, sql);
	snprintf(d->url, sizeof(d->url), "%.*s/%s", (int)(strrchr(d->admin, '/') - d->admin),
		 d->admin, d->name);
	*state = d;
	return 0;
}

static int db_teardown(void **state)
{
	struct db *d = *state;
	char sql[128];

	snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", d->name);
	admin_exec(d, sql);
	free(d);
	return 0;
}

static struct store *open_host(const struct db *d, const char *host_id)
{
	struct store_host h = {.host_id = host_id, .timeout_s = 30};
	struct store *s = NULL;
	char err[512];
	int ret = store_open_host(d->url, NULL, &h, &s, err, sizeof(err));

	if (ret)
		fail_msg("store_open_host: %s (%s)", err, store_strerror(ret));
	return s;
}

static int64_t add_event(struct store *s, int i)
{
	char cid[32];
	int64_t id = 0;

	snprintf(cid, sizeof(cid), "c%d", i);
	assert_int_equal(store_event_insert(s, STORE_EVENT_PRE_CONNECTION_DELETION, cid, "gh", false,
					    1, &id), 0);
	return id;
}

/* ---- LISTEN/NOTIFY reaches another host's store */

struct woken {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int count;
};

static void wake(void *user)
{
	struct woken *w = user;

	pthread_mutex_lock(&w->mu);
	w->count++;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static void test_wakeup_from_another_host(void **state)
{
	struct db *d = *state;
	struct store *a = open_host(d, "a"), *b = open_host(d, "b");
	struct woken w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	struct timespec until;
	int before;

	store_set_wakeup(b, wake, &w);
	/* b's thread listens once it is connected; it wakes b once then */
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 30;
	pthread_mutex_lock(&w.mu);
	while (w.count == 0 && pthread_cond_timedwait(&w.cv, &w.mu, &until) == 0)
		;
	before = w.count;
	pthread_mutex_unlock(&w.mu);
	assert_true(before > 0);

	/* an event recorded by a wakes b: nothing in b polls */
	add_event(a, 1);
	pthread_mutex_lock(&w.mu);
	while (w.count == before && pthread_cond_timedwait(&w.cv, &w.mu, &until) == 0)
		;
	assert_true(w.count > before);
	pthread_mutex_unlock(&w.mu);
	store_set_wakeup(b, NULL, NULL);
	store_close(a);
	store_close(b);
}

/* ---- claims from two hosts, several threads each */

struct worker {
	struct store *s;
	atomic_int *started;
};

static int plan(void *user, const struct store_event *ev, struct store_execution_input *in)
{
	(void)user;
	*in = (struct store_execution_input){
		.kind = STORE_EXEC_EVENT, .event_id = ev->id, .script = "s1", .event = ev->type,
		.connection_id = ev->connection_id, .provider_config_key = ev->provider_config_key};
	return STORE_CLAIM_START;
}

static void *claimer(void *arg)
{
	struct worker *w = arg;
	struct store_event ev;
	int64_t xid;

	while (store_event_claim_start(w->s, 1, plan, NULL, &ev, &xid) == 0) {
		struct store_execution_end end = {.status = STORE_EXEC_SUCCEEDED, .duration_ms = 0,
						  .event_id = ev.id};

		assert_true(xid > 0);
		assert_int_equal(store_execution_complete(w->s, xid, &end), 0);
		atomic_fetch_add(w->started, 1);
	}
	return NULL;
}

static void test_two_hosts_claim_once(void **state)
{
	struct db *d = *state;
	struct store *hosts[2] = {open_host(d, "a"), open_host(d, "b")};
	struct worker w[2 * THREADS];
	pthread_t t[2 * THREADS];
	atomic_int started = 0;
	struct store_execution **items = NULL;
	size_t n = 0, on[2] = {0, 0};
	int64_t cursor = 0, pending = -1;
	bool seen[EVENTS + 1] = {false};

	for (int i = 0; i < EVENTS; i++)
		assert_int_equal(add_event(hosts[i % 2], i), i + 1);
	for (int i = 0; i < 2 * THREADS; i++) {
		w[i] = (struct worker){.s = hosts[i % 2], .started = &started};
		assert_int_equal(pthread_create(&t[i], NULL, claimer, &w[i]), 0);
	}
	for (int i = 0; i < 2 * THREADS; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(atomic_load(&started), EVENTS);
	assert_int_equal(store_event_count_pending(hosts[0], &pending), 0);
	assert_int_equal(pending, 0);
	/* one execution per event, done, and both hosts ran some */
	do {
		struct store_execution_filter f = {.status = -1, .limit = 200, .cursor = cursor};

		assert_int_equal(store_execution_list(hosts[0], &f, &items, &n, &cursor), 0);
		for (size_t i = 0; i < n; i++) {
			assert_true(items[i]->event_id >= 1 && items[i]->event_id <= EVENTS);
			assert_false(seen[items[i]->event_id]);
			seen[items[i]->event_id] = true;
			assert_int_equal(items[i]->status, STORE_EXEC_SUCCEEDED);
			on[strcmp(items[i]->host_id, "a") == 0 ? 0 : 1]++;
		}
		store_execution_list_free(items, n);
	} while (cursor);
	assert_int_equal(on[0] + on[1], EVENTS);
	store_close(hosts[0]);
	store_close(hosts[1]);
}

/* ---- a closing host gives back what it claimed ahead; recovery is per host */

static int plan_only(void *user, const struct store_event *ev, struct store_execution_input *in)
{
	(void)user;
	(void)ev;
	(void)in;
	return STORE_CLAIM_ONLY;
}

static void test_close_gives_back_and_recover_is_per_host(void **state)
{
	struct db *d = *state;
	struct store *a = open_host(d, "a"), *b;
	struct store_recovery r;
	struct store_event ev;
	int64_t xid, pending = 0, running_b;
	struct store_execution_input in = {.kind = STORE_EXEC_ACTION, .script = "act",
					   .connection_id = "c", .provider_config_key = "gh"};

	for (int i = 0; i < 5; i++)
		add_event(a, i);
	/* a claims a batch ahead and starts one (plan: claim only) */
	assert_int_equal(store_event_claim_start(a, 1, plan_only, NULL, &ev, &xid), 0);
	assert_int_equal(store_event_count_pending(a, &pending), 0);
	assert_int_equal(pending, 0);
	store_close(a);
	/* the four it held ahead are pending again; the one it took stays claimed */
	b = open_host(d, "b");
	assert_int_equal(store_event_count_pending(b, &pending), 0);
	assert_int_equal(pending, 4);
	/* b's recovery settles b's rows, not a's claim */
	assert_int_equal(store_execution_create(b, &in, &running_b), 0);
	assert_int_equal(store_recover(b, &r), 0);
	assert_int_equal(r.executions_interrupted, 1);
	assert_int_equal(r.events_requeued, 0);
	store_close(b);
	/* a, restarted under its host id, requeues its claim */
	a = open_host(d, "a");
	assert_int_equal(store_recover(a, &r), 0);
	assert_int_equal(r.events_requeued, 1);
	assert_int_equal(store_event_count_pending(a, &pending), 0);
	assert_int_equal(pending, 5);
	store_close(a);
}

/* ---- a silent host is settled by a survivor; a live one is not */

static void db_exec(const struct db *d, const char *sql)
{
	PGconn *c = PQconnectdb(d->url);
	PGresult *r;

	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("connecting to %s: %s", d->url, PQerrorMessage(c));
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
}

static int64_t run_action(struct store *s)
{
	struct store_execution_input in = {.kind = STORE_EXEC_ACTION, .script = "act",
					   .connection_id = "c", .provider_config_key = "gh"};
	int64_t id = 0;

	assert_int_equal(store_execution_create(s, &in, &id), 0);
	return id;
}

static void test_dead_host_settled(void **state)
{
	struct db *d = *state;
	struct store *dead = open_host(d, "dead"), *alive = open_host(d, "alive"), *survivor;
	struct store_host h = {.host_id = "survivor", .timeout_s = 2};
	struct store_execution *e = NULL;
	struct store_event ev;
	int64_t x_dead, x_alive, started, pending = 0;
	char err[512];

	/* "dead" runs an execution, has started one event and claimed more
	 * ahead, then stops beating without settling anything (as a crash):
	 * its connections close, its rows stay */
	for (int i = 0; i < 3; i++)
		add_event(dead, i);
	x_dead = run_action(dead);
	assert_int_equal(store_event_claim_start(dead, 1, plan, NULL, &ev, &started), 0);
	db_exec(d, "CREATE TABLE held AS SELECT id FROM events WHERE status = 'claimed'");
	store_close(dead); /* gives back its claims ahead: claim them again as its own */
	db_exec(d, "UPDATE events SET status = 'claimed', host_id = 'dead' WHERE id IN (SELECT id FROM held)");
	db_exec(d, "UPDATE hosts SET heartbeat_at = clock_timestamp() - interval '1 hour'"
		   " WHERE host_id = 'dead'");
	x_alive = run_action(alive);

	assert_int_equal(store_open_host(d->url, NULL, &h, &survivor, err, sizeof(err)), 0);
	/* its first beat sweeps (at most host_timeout_s / 3, at least 1 s) */
	for (int i = 0; i < 300; i++) {
		store_execution_free(e);
		e = NULL;
		assert_int_equal(store_execution_get(survivor, x_dead, &e), 0);
		if (e->status != STORE_EXEC_RUNNING)
			break;
		usleep(100 * 1000);
	}
	assert_int_equal(e->status, STORE_EXEC_INTERRUPTED);
	assert_non_null(strstr(e->error, "host dead stopped"));
	store_execution_free(e);
	/* the started event's execution too; the events claimed ahead are pending */
	assert_int_equal(store_execution_get(survivor, started, &e), 0);
	assert_int_equal(e->status, STORE_EXEC_INTERRUPTED);
	store_execution_free(e);
	assert_int_equal(store_event_count_pending(survivor, &pending), 0);
	assert_int_equal(pending, 2);
	/* the live host's execution is left alone */
	assert_int_equal(store_execution_get(survivor, x_alive, &e), 0);
	assert_int_equal(e->status, STORE_EXEC_RUNNING);
	store_execution_free(e);
	store_close(survivor);
	store_close(alive);
}

/* A claim of this host that no worker holds (a COMMIT whose answer was
 * lost) is given back by the host's own thread after a minute. */
static void test_stray_claim_given_back(void **state)
{
	struct db *d = *state;
	struct store *a = open_host(d, "a");
	int64_t pending = -1;
	char sql[256];

	add_event(a, 1);
	add_event(a, 2);
	store_close(a);
	/* event 1 claimed by a two minutes ago, started nowhere; event 2 just now */
	snprintf(sql, sizeof(sql), "UPDATE events SET status = 'claimed', host_id = 'a', claimed_at ="
		 " (extract(epoch FROM now()) * 1000)::bigint - (CASE id WHEN 1 THEN 120000 ELSE 0 END)");
	db_exec(d, sql);
	a = open_host(d, "a"); /* its thread beats, and looks, at once */
	for (int i = 0; i < 300 && pending != 1; i++) {
		assert_int_equal(store_event_count_pending(a, &pending), 0);
		if (pending != 1)
			usleep(100 * 1000);
	}
	assert_int_equal(pending, 1);
	store_close(a);
	/* the fresh claim is still a's */
	a = open_host(d, "b");
	assert_int_equal(store_event_count_pending(a, &pending), 0);
	assert_int_equal(pending, 1);
	store_close(a);
}

/* ---- refreshed credentials written by one host are what another reads */

static void test_credentials_set(void **state)
{
	struct db *d = *state;
	struct store *a = open_host(d, "a"), *b = open_host(d, "b");
	struct store_connection_input in = {.connection_id = "c1", .provider_config_key = "gh",
					    .provider = "github",
					    .credentials = "{\"type\":\"OAUTH2\",\"access_token\":\"old\"}"};
	struct store_upsert_result r;
	struct store_connection *c = NULL;
	int64_t ev = 0;

	assert_int_equal(store_connection_upsert(a, &in, NULL, &r), 0);
	assert_int_equal(store_connection_credentials_set(b, "gh", "c1",
							  "{\"type\":\"OAUTH2\",\"access_token\":\"new\"}"), 0);
	assert_int_equal(store_connection_get(a, "gh", "c1", &c), 0);
	assert_non_null(strstr(c->credentials, "\"new\""));
	store_connection_free(c);
	assert_int_equal(store_connection_credentials_set(b, "gh", "nope", "{}"), STORE_ENOTFOUND);
	assert_int_equal(store_connection_mark_deleting(a, "gh", "c1", false, 1, &ev), 0);
	assert_int_equal(store_connection_credentials_set(b, "gh", "c1", "{\"type\":\"NONE\"}"), STORE_EDELETING);
	assert_int_equal(store_connection_get(a, "gh", "c1", &c), 0);
	assert_non_null(strstr(c->credentials, "\"new\"")); /* unchanged */
	store_connection_free(c);
	store_close(a);
	store_close(b);
}

/* ---- "postgres:" opens the same back end as "postgresql:"; a scheme
 * that only starts like one of them opens none */

static void test_scheme_alias(void **state)
{
	struct db *d = *state;
	struct store_host h = {.host_id = "alias", .timeout_s = 30};
	const char *rest = strstr(d->url, "://");
	struct store *a = open_host(d, "a"), *b = NULL;
	struct store_connection_input in = {.connection_id = "c1", .provider_config_key = "gh",
					    .provider = "github", .credentials = "{}"};
	struct store_upsert_result r;
	struct store_connection *c = NULL;
	char url[600], err[512];

	assert_non_null(rest);
	assert_int_equal(store_connection_upsert(a, &in, NULL, &r), 0);
	snprintf(url, sizeof(url), "postgres%s", rest);
	assert_int_equal(store_open_host(url, NULL, &h, &b, err, sizeof(err)), 0);
	assert_int_equal(store_connection_get(b, "gh", "c1", &c), 0);
	assert_string_equal(c->provider, "github");
	store_connection_free(c);
	store_close(b);
	b = NULL;
	snprintf(url, sizeof(url), "postgre%s", rest);
	assert_int_equal(store_open_host(url, NULL, &h, &b, err, sizeof(err)), STORE_EURL);
	assert_null(b);
	assert_non_null(strstr(err, "unsupported scheme"));
	snprintf(url, sizeof(url), "postgresqlx%s", rest);
	assert_int_equal(store_open_host(url, NULL, &h, &b, err, sizeof(err)), STORE_EURL);
	assert_null(b);
	store_close(a);
}

/* ---- tags and the override, written on one host, read on another */

static void test_tags_across_hosts(void **state)
{
	struct db *d = *state;
	struct store *a = open_host(d, "a"), *b = open_host(d, "b");
	struct store_connection_input in = {.connection_id = "c1", .provider_config_key = "gh",
					    .provider = "github", .credentials = "{\"type\":\"NONE\"}"};
	struct store_upsert_result r;
	struct store_connection *c = NULL;
	int64_t ev = 0;

	assert_int_equal(store_connection_upsert(a, &in, NULL, &r), 0);
	in.connection_id = "c2";
	assert_int_equal(store_connection_upsert(a, &in, NULL, &r), 0);
	assert_int_equal(store_connection_patch(a, "gh", "c1", "{\"env\":\"prod\",\"team\":\"x\"}",
						true, "https://hooks.example/c1"), 0);
	assert_int_equal(fx_count_tagged(b, "{\"env\":\"prod\"}"), 1);
	assert_int_equal(fx_count_tagged(b, "{\"env\":\"prod\",\"team\":\"x\"}"), 1);
	assert_int_equal(fx_count_tagged(b, "{\"env\":\"prod\",\"team\":\"y\"}"), 0);
	assert_int_equal(fx_count_tagged(b, "{\"env\":\"dev\"}"), 0);
	assert_int_equal(fx_count_tagged(b, "{}"), 2);
	assert_int_equal(store_connection_get(b, "gh", "c1", &c), 0);
	assert_non_null(strstr(c->tags, "\"team\""));
	assert_string_equal(c->webhook_url_override, "https://hooks.example/c1");
	store_connection_free(c);
	/* tags only: the override stays; set_override with NULL clears it */
	assert_int_equal(store_connection_patch(b, "gh", "c1", "{}", false, NULL), 0);
	assert_int_equal(store_connection_get(a, "gh", "c1", &c), 0);
	assert_string_equal(c->tags, "{}");
	assert_string_equal(c->webhook_url_override, "https://hooks.example/c1");
	store_connection_free(c);
	assert_int_equal(store_connection_patch(b, "gh", "c1", NULL, true, NULL), 0);
	assert_int_equal(store_connection_get(a, "gh", "c1", &c), 0);
	assert_null(c->webhook_url_override);
	store_connection_free(c);
	assert_int_equal(store_connection_patch(a, "gh", "nope", "{}", false, NULL), STORE_ENOTFOUND);
	assert_int_equal(store_connection_mark_deleting(a, "gh", "c2", false, 1, &ev), 0);
	assert_int_equal(store_connection_patch(b, "gh", "c2", "{}", false, NULL), STORE_EDELETING);
	store_close(a);
	store_close(b);
}

/* ---- asynchronous actions: a host's recovery settles only its own */

static enum store_async_status async_status(struct store *s, const char *id)
{
	struct store_async_action *x = NULL;
	enum store_async_status st;

	assert_int_equal(store_async_action_get(s, id, &x), 0);
	st = x->status;
	store_async_action_free(x);
	return st;
}

static void test_async_recover_is_per_host(void **state)
{
	struct db *d = *state;
	struct store *a = open_host(d, "a"), *b = open_host(d, "b");
	struct store_async_action *x = NULL;
	struct store_recovery rec;

	assert_int_equal(store_async_action_create(a, "id-a", "gh", "c", "act"), 0);
	assert_int_equal(store_async_action_create(b, "id-b", "gh", "c", "act"), 0);
	assert_int_equal(store_async_action_create(b, "id-a", "gh", "c", "act"), STORE_ECONFLICT);
	assert_int_equal(store_async_action_create(b, "id-done", "gh", "c", "act"), 0);
	assert_int_equal(store_async_action_finish(a, "id-done", 7, true, "{\"n\":1}", NULL), 0);
	assert_int_equal(store_async_action_finish(a, "id-done", 7, true, NULL, NULL), STORE_ESTATE);
	assert_int_equal(store_async_action_finish(a, "nope", 7, true, NULL, NULL), STORE_ENOTFOUND);
	/* b restarts: its running action fails, a's keeps running */
	store_close(b);
	b = open_host(d, "b");
	assert_int_equal(store_recover(b, &rec), 0);
	assert_int_equal(async_status(a, "id-b"), STORE_ASYNC_FAILED);
	assert_int_equal(async_status(b, "id-a"), STORE_ASYNC_RUNNING);
	assert_int_equal(store_async_action_get(a, "id-done", &x), 0);
	assert_int_equal(x->status, STORE_ASYNC_SUCCEEDED);
	assert_int_equal(x->execution_id, 7);
	assert_string_equal(x->output, "{\"n\":1}");
	store_async_action_free(x);
	assert_int_equal(store_async_action_get(a, "id-b", &x), 0);
	assert_non_null(strstr(x->error, "interrupted"));
	store_async_action_free(x);
	store_close(a);
	store_close(b);
}

/* ---- a due webhook delivery is taken by one host at a time */

static void test_webhook_due_leased(void **state)
{
	struct db *d = *state;
	struct store *a = open_host(d, "a"), *b = open_host(d, "b");
	struct store_webhook *w = NULL, *w2 = NULL;
	static const char body[] = "{\"x\":1}\0tail";
	int64_t id = 0, now;

	assert_int_equal(store_webhook_insert(a, "gh", "{\"X-A\":\"1\"}", body, sizeof(body) - 1,
					      STORE_WEBHOOK_PENDING, &id), 0);
	now = (int64_t)time(NULL) * 1000 + 1000;
	assert_int_equal(store_webhook_due(a, now, &w), 0);
	assert_int_equal(w->id, id);
	assert_int_equal(w->body_len, sizeof(body) - 1);
	assert_memory_equal(w->body, body, sizeof(body) - 1);
	/* while a forwards it, b finds nothing due */
	assert_int_equal(store_webhook_due(b, now, &w2), STORE_ENOTFOUND);
	assert_null(w2);
	/* a's attempt failed, to be tried again now: b takes it */
	assert_int_equal(store_webhook_attempt(a, id, STORE_WEBHOOK_PENDING, "502", now), 0);
	assert_int_equal(store_webhook_due(b, now, &w2), 0);
	assert_int_equal(w2->id, id);
	assert_int_equal(w2->attempts, 1);
	assert_string_equal(w2->last_error, "502");
	assert_int_equal(store_webhook_attempt(b, id, STORE_WEBHOOK_DELIVERED, NULL, 0), 0);
	store_webhook_free(w);
	assert_int_equal(store_webhook_due(a, now + 3600 * 1000, &w), STORE_ENOTFOUND);
	store_webhook_free(w2);
	store_close(a);
	store_close(b);
}

/* ---- concurrent ends: shared transactions, each end all or nothing */

#define ENDS 24
#define END_THREADS 8

struct ender {
	struct store *s;
	pthread_barrier_t *go;
	const int64_t *ids;
	const int64_t *events;
	int first;       /* ends first, first + END_THREADS, ... */
	int ret[ENDS];
};

static void *end_some(void *arg)
{
	struct ender *e = arg;

	pthread_barrier_wait(e->go);
	for (int i = e->first; i < ENDS; i += END_THREADS) {
		char msg[32];
		struct store_log_line_input line = {.level = 2, .message = msg};
		struct store_execution_end end = {.status = STORE_EXEC_SUCCEEDED, .duration_ms = 5,
						  .lines = &line, .n_lines = 1,
						  .event_id = e->events[i]};

		snprintf(msg, sizeof(msg), "end %d", i);
		e->ret[i] = store_execution_complete(e->s, e->ids[i], &end);
	}
	return NULL;
}

static void test_concurrent_ends(void **state)
{
	struct db *d = *state;
	struct store *a = open_host(d, "a");
	struct ender e[END_THREADS];
	pthread_t t[END_THREADS];
	pthread_barrier_t go;
	int64_t ids[ENDS], events[ENDS] = {0};
	struct store_execution *x = NULL;

	for (int i = 0; i < ENDS; i++)
		ids[i] = run_action(a);
	/* 5 ended already; 7's end names an event that is not claimed: both
	 * STORE_ESTATE, and nothing of 7's end is written */
	assert_int_equal(store_execution_finish(a, ids[5], STORE_EXEC_FAILED, "before", 1), 0);
	events[7] = add_event(a, 7);
	assert_int_equal(pthread_barrier_init(&go, NULL, END_THREADS), 0);
	for (int i = 0; i < END_THREADS; i++) {
		e[i] = (struct ender){.s = a, .go = &go, .ids = ids, .events = events, .first = i};
		assert_int_equal(pthread_create(&t[i], NULL, end_some, &e[i]), 0);
	}
	for (int i = 0; i < END_THREADS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	pthread_barrier_destroy(&go);
	for (int i = 0; i < ENDS; i++) {
		char msg[32];

		snprintf(msg, sizeof(msg), "end %d", i);
		assert_int_equal(e[i % END_THREADS].ret[i], i == 5 || i == 7 ? STORE_ESTATE : 0);
		assert_int_equal(store_execution_get(a, ids[i], &x), 0);
		if (i == 5) {
			assert_int_equal(x->status, STORE_EXEC_FAILED);
			assert_int_equal(x->n_logs, 0);
		} else if (i == 7) {
			assert_int_equal(x->status, STORE_EXEC_RUNNING);
			assert_int_equal(x->n_logs, 0);
		} else {
			assert_int_equal(x->status, STORE_EXEC_SUCCEEDED);
			assert_int_equal(x->n_logs, 1);
			assert_string_equal(x->logs[0].message, msg);
		}
		store_execution_free(x);
		x = NULL;
	}
	store_close(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_wakeup_from_another_host, db_setup, db_teardown),
		cmocka_unit_test_setup_teardown(test_two_hosts_claim_once, db_setup, db_teardown),
		cmocka_unit_test_setup_teardown(test_close_gives_back_and_recover_is_per_host, db_setup,
						db_teardown),
		cmocka_unit_test_setup_teardown(test_dead_host_settled, db_setup, db_teardown),
		cmocka_unit_test_setup_teardown(test_stray_claim_given_back, db_setup, db_teardown),
		cmocka_unit_test_setup_teardown(test_credentials_set, db_setup, db_teardown),
		cmocka_unit_test_setup_teardown(test_scheme_alias, db_setup, db_teardown),
		cmocka_unit_test_setup_teardown(test_tags_across_hosts, db_setup, db_teardown),
		cmocka_unit_test_setup_teardown(test_async_recover_is_per_host, db_setup, db_teardown),
		cmocka_unit_test_setup_teardown(test_webhook_due_leased, db_setup, db_teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_ends, db_setup, db_teardown),
	};

	srandom((unsigned)time(NULL) ^ (unsigned)getpid());
	return cmocka_run_group_tests(tests, NULL, NULL);
}
