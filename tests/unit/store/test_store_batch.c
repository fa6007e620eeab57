/*
 * test_store_batch.c - the SQLite back end's group commit: many threads
 * writing at once share commits, every call that returned 0 is in the
 * database after a reopen, a call that fails does not undo the others of
 * its batch, a failed COMMIT fails every call of its batch, and a reader
 * never sees a write whose call failed. Counts come from the back end's
 * test-only counters (store_sqlite_priv.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "store_fixture.h"
#include "store_sqlite_priv.h"

#define THREADS 16
#define PER_THREAD 24

static void stats(struct store *s, uint64_t *ops, uint64_t *commits)
{
	sq_batch_stats(s, ops, commits);
}

static int upsert(struct store *s, const char *cid, const char *idem_key,
		  int (*respond)(void *, const struct store_upsert_result *, int *, char **),
		  int64_t *event_id)
{
	struct store_connection_input in = {
		.connection_id = cid,
		.provider_config_key = "gh",
		.provider = "github",
		.credentials = "{\"access_token\":\"t\"}",
	};
	struct store_idempotency_input idem = {
		.key = idem_key,
		.method_path = "POST /connections",
		.request_hash = "h",
		.status = 201,
		.body = "{}",
		.respond = respond,
	};
	struct store_upsert_result r;
	int ret = store_connection_upsert(s, &in, idem_key ? &idem : NULL, &r);

	*event_id = ret ? 0 : r.event_id;
	return ret;
}

/* Alone, each write call is a commit of its own. */
static void test_serial_commits_each(void **state)
{
	struct fx *f = *state;
	uint64_t ops0, c0, ops1, c1;
	struct store_event ev;
	int64_t id;
	char cid[32];

	stats(f->s, &ops0, &c0);
	for (int i = 0; i < 20; i++) {
		snprintf(cid, sizeof(cid), "c%d", i);
		assert_int_equal(upsert(f->s, cid, NULL, NULL, &id), 0);
		assert_int_equal(store_event_claim(f->s, 1, &ev), 0);
	}
	/* a call that fails commits nothing of its own */
	assert_int_equal(store_event_claim(f->s, 1, &ev), STORE_ENOTFOUND);
	stats(f->s, &ops1, &c1);
	assert_int_equal(ops1 - ops0, 40);
	assert_int_equal(c1 - c0, 40);
}

/* ---------------------------------------------------------------------------
 * Many writers: upserts (a few of them reusing an Idempotency-Key another
 * thread uses too: exactly one wins) and claims.
 */

struct writer {
	struct store *s;
	int t;
	int up_ret[PER_THREAD];
	int64_t up_event[PER_THREAD];
	int claim_ret[PER_THREAD];
	int64_t claimed[PER_THREAD];
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct store_event ev;
	char cid[32], key[32];

	for (int i = 0; i < PER_THREAD; i++) {
		snprintf(cid, sizeof(cid), "w%d-%d", w->t, i);
		if (i % 6 == 0)
			snprintf(key, sizeof(key), "shared-%d", i); /* every thread: one wins */
		else
			snprintf(key, sizeof(key), "k%d-%d", w->t, i);
		w->up_ret[i] = upsert(w->s, cid, key, NULL, &w->up_event[i]);
		w->claim_ret[i] = store_event_claim(w->s, 7, &ev);
		w->claimed[i] = w->claim_ret[i] ? 0 : ev.id;
	}
	return NULL;
}

static void test_concurrent_writers(void **state)
{
	struct fx *f = *state;
	static struct writer w[THREADS];
	pthread_t th[THREADS];
	uint64_t ops0, c0, ops1, c1;
	int winners[PER_THREAD] = {0};
	int64_t acked = 0, claims = 0;
	struct store_event ev;

	stats(f->s, &ops0, &c0);
	memset(w, 0, sizeof(w));
	for (int t = 0; t < THREADS; t++) {
		w[t].s = f->s;
		w[t].t = t;
		assert_int_equal(pthread_create(&th[t], NULL, writer_main, &w[t]), 0);
	}
	for (int t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	stats(f->s, &ops1, &c1);

	for (int t = 0; t < THREADS; t++) {
		for (int i = 0; i < PER_THREAD; i++) {
			int r = w[t].up_ret[i];

			if (i % 6 == 0) {
				assert_true(r == 0 || r == STORE_ECONFLICT);
				winners[i] += r == 0;
			} else {
				assert_int_equal(r, 0);
			}
			acked += r == 0;
			assert_true(w[t].claim_ret[i] == 0 || w[t].claim_ret[i] == STORE_ENOTFOUND);
			claims += w[t].claim_ret[i] == 0;
		}
	}
	for (int i = 0; i < PER_THREAD; i += 6)
		assert_int_equal(winners[i], 1);
	assert_int_equal(ops1 - ops0, (uint64_t)(acked + claims));
	print_message("[ BATCHES  ] %d threads: %llu acknowledged write calls in %llu commits\n",
		      THREADS, (unsigned long long)(ops1 - ops0), (unsigned long long)(c1 - c0));
	assert_true(c1 - c0 < ops1 - ops0); /* batches formed */

	/* Everything acknowledged is in the database once reopened; no
	 * refused upsert left anything. */
	store_close(f->s);
	f->s = fx_open(f, NULL);
	for (int t = 0; t < THREADS; t++) {
		for (int i = 0; i < PER_THREAD; i++) {
			struct store_connection *c = NULL;
			char cid[32];
			int r;

			snprintf(cid, sizeof(cid), "w%d-%d", t, i);
			r = store_connection_get(f->s, "gh", cid, &c);
			if (w[t].up_ret[i] == 0) {
				assert_int_equal(r, 0);
				assert_int_equal(store_event_get(f->s, w[t].up_event[i], &ev), 0);
				assert_string_equal(ev.connection_id, cid);
			} else {
				assert_int_equal(r, STORE_ENOTFOUND);
			}
			store_connection_free(c);
			if (w[t].claim_ret[i] == 0) {
				assert_int_equal(store_event_get(f->s, w[t].claimed[i], &ev), 0);
				assert_int_equal(ev.status, STORE_EVENT_CLAIMED);
				assert_int_equal(ev.generation, 7);
			}
		}
	}
}

/* ---------------------------------------------------------------------------
 * Failures inside batches, and readers alongside: calls whose respond
 * callback fails (rolled back to their savepoint), and COMMITs made to
 * fail. A reader must never see a connection whose call failed.
 */

#define RW_THREADS 8
#define RW_PER 30
#define RW_READERS 2

static atomic_int seen[RW_THREADS * RW_PER];
static atomic_int writers_done;

struct rw {
	struct store *s;
	int t;
	int ret[RW_PER];
};

static int respond_fail(void *user, const struct store_upsert_result *r, int *status,
			char **body)
{
	(void)user;
	(void)r;
	(void)status;
	(void)body;
	return -1;
}

static void *rw_writer(void *arg)
{
	struct rw *w = arg;
	char cid[32], key[32];
	int64_t id;

	for (int i = 0; i < RW_PER; i++) {
		snprintf(cid, sizeof(cid), "w%d-%d", w->t, i);
		snprintf(key, sizeof(key), "k%d-%d", w->t, i);
		w->ret[i] = upsert(w->s, cid, key, i % 3 == 1 ? respond_fail : NULL, &id);
	}
	return NULL;
}

static void mark_seen(const char *cid)
{
	int t, i;

	if (sscanf(cid, "w%d-%d", &t, &i) == 2 && t >= 0 && t < RW_THREADS && i >= 0 &&
	    i < RW_PER)
		atomic_store(&seen[t * RW_PER + i], 1);
}

static void *rw_reader(void *arg)
{
	struct store *s = arg;
	struct store_connection_filter flt = {.provider_config_keys = "gh"};

	while (!atomic_load(&writers_done)) {
		struct store_connection **v = NULL;
		size_t n = 0;

		if (store_connection_list(s, &flt, &v, &n) == 0)
			for (size_t k = 0; k < n; k++)
				mark_seen(v[k]->connection_id);
		store_connection_list_free(v, n);
	}
	return NULL;
}

static void test_failures_in_batches(void **state)
{
	struct fx *f = *state;
	static struct rw w[RW_THREADS];
	pthread_t th[RW_THREADS], rd[RW_READERS];
	int failed_commit = 0, ok = 0;

	memset(w, 0, sizeof(w));
	for (int k = 0; k < RW_THREADS * RW_PER; k++)
		atomic_store(&seen[k], 0);
	atomic_store(&writers_done, 0);
	sq_test_fail_commits(f->s, 3);
	for (int r = 0; r < RW_READERS; r++)
		assert_int_equal(pthread_create(&rd[r], NULL, rw_reader, f->s), 0);
	for (int t = 0; t < RW_THREADS; t++) {
		w[t].s = f->s;
		w[t].t = t;
		assert_int_equal(pthread_create(&th[t], NULL, rw_writer, &w[t]), 0);
	}
	for (int t = 0; t < RW_THREADS; t++)
		pthread_join(th[t], NULL);
	atomic_store(&writers_done, 1);
	for (int r = 0; r < RW_READERS; r++)
		pthread_join(rd[r], NULL);

	for (int t = 0; t < RW_THREADS; t++) {
		for (int i = 0; i < RW_PER; i++) {
			int r = w[t].ret[i];

			if (i % 3 == 1)
				assert_int_equal(r, STORE_ECALLBACK);
			else
				assert_true(r == 0 || r == STORE_EIO);
			failed_commit += r == STORE_EIO;
			ok += r == 0;
			if (r != 0 && atomic_load(&seen[t * RW_PER + i]))
				fail_msg("a reader saw w%d-%d, whose upsert failed (%s)", t, i,
					 store_strerror(r));
		}
	}
	assert_true(failed_commit >= 3); /* each failed COMMIT failed its calls */
	assert_true(ok > 0);

	store_close(f->s);
	f->s = fx_open(f, NULL);
	for (int t = 0; t < RW_THREADS; t++) {
		for (int i = 0; i < RW_PER; i++) {
			struct store_connection *c = NULL;
			struct store_idempotency *rec = NULL;
			char cid[32], key[32];

			snprintf(cid, sizeof(cid), "w%d-%d", t, i);
			snprintf(key, sizeof(key), "k%d-%d", t, i);
			assert_int_equal(store_connection_get(f->s, "gh", cid, &c),
					 w[t].ret[i] == 0 ? 0 : STORE_ENOTFOUND);
			assert_int_equal(store_idempotency_get(f->s, key, &rec),
					 w[t].ret[i] == 0 ? 0 : STORE_ENOTFOUND);
			store_connection_free(c);
			store_idempotency_free(rec);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_serial_commits_each, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_writers, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_failures_in_batches, fx_setup, fx_teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
