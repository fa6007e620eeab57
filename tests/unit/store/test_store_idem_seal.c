/*
 * test_store_idem_seal.c - Idempotency-Key replies are sealed like the
 * credentials when the store has a key: what the database holds has no
 * plain text of the reply, a reply cannot be moved to another key's row, and
 * without the key it is not read.
 */
#include "store_fixture.h"

#include <sqlite3.h>

static const uint8_t key32[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
				  17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

#define REPLY "{\"connection_id\":\"c1\",\"credentials\":{\"apiKey\":\"secret-cred-123\"}}"

/* The body column of key's row, as the database holds it (malloc'd). */
static char *raw_body(struct fx *f, const char *key)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	char *out = NULL;

	assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT body FROM idempotency_keys WHERE key = ?1", -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		out = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	assert_non_null(out);
	return out;
}

static void exec_sql(struct fx *f, const char *sql)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/* key's reply is REPLY when read through the store, and the database holds
 * it sealed (no plain text of it) or, without a key, as it is. */
static void assert_stored(struct fx *f, const char *key, bool sealed)
{
	struct store_idempotency *rec = NULL;
	char *raw = raw_body(f, key);

	if (sealed) {
		assert_true(strncmp(raw, "sealed:v1:", 10) == 0);
		assert_null(strstr(raw, "secret-cred"));
	} else {
		assert_string_equal(raw, REPLY);
	}
	free(raw);
	assert_int_equal(store_idempotency_get(f->s, key, &rec), 0);
	assert_string_equal(rec->body, REPLY);
	store_idempotency_free(rec);
}

static int keyed_setup(void **state)
{
	struct fx *f;

	fx_setup(state);
	f = *state;
	store_close(f->s);
	f->s = fx_open(f, key32);
	return 0;
}

static void test_put_sealed(void **state)
{
	struct fx *f = *state;
	struct store_idempotency_input idem = {
		.key = "idem-a", .method_path = "POST /connections", .request_hash = "h1",
		.status = 201, .body = REPLY,
	};
	struct store_idempotency *rec = NULL;

	assert_int_equal(store_idempotency_put(f->s, &idem), 0);
	assert_stored(f, "idem-a", true);
	assert_int_equal(store_idempotency_get(f->s, "idem-a", &rec), 0);
	assert_int_equal(rec->status, 201);
	store_idempotency_free(rec);

	/* moved to another key's row: refused, not served */
	idem.key = "idem-b";
	idem.body = "{\"other\":true}";
	assert_int_equal(store_idempotency_put(f->s, &idem), 0);
	exec_sql(f, "UPDATE idempotency_keys SET body = (SELECT body FROM idempotency_keys WHERE key = 'idem-a')"
		    " WHERE key = 'idem-b'");
	assert_int_equal(store_idempotency_get(f->s, "idem-b", &rec), STORE_EDECRYPT);
	assert_null(rec);

	/* without the key: not read */
	store_close(f->s);
	f->s = fx_open(f, NULL);
	assert_int_equal(store_idempotency_get(f->s, "idem-a", &rec), STORE_ENOKEY);
	assert_null(rec);
}

static int respond(void *user, const struct store_upsert_result *r, int *status, char **body)
{
	(void)user;
	(void)r;
	*status = 201;
	*body = strdup(REPLY);
	return *body ? 0 : -1;
}

static void test_upsert_reply_sealed(void **state)
{
	struct fx *f = *state;
	struct store_connection_input in = {
		.connection_id = "c1", .provider_config_key = "demo", .provider = "local-test",
		.credentials = "{\"type\":\"API_KEY\",\"apiKey\":\"secret-cred-123\"}",
	};
	struct store_idempotency_input idem = {
		.key = "idem-u", .method_path = "POST /connections", .request_hash = "h2", .respond = respond,
	};
	struct store_upsert_result r;

	assert_int_equal(store_connection_upsert(f->s, &in, &idem, &r), 0);
	assert_stored(f, "idem-u", true);
}

static void test_plain_without_key(void **state)
{
	struct fx *f = *state;
	struct store_idempotency_input idem = {
		.key = "idem-p", .method_path = "POST /connections", .request_hash = "h3",
		.status = 201, .body = REPLY,
	};

	assert_int_equal(store_idempotency_put(f->s, &idem), 0);
	assert_stored(f, "idem-p", false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_sealed, keyed_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_upsert_reply_sealed, keyed_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_plain_without_key, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
