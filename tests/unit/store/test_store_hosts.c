/*
 * test_store_hosts.c - what issue 11 adds to the store that does not need a
 * PostgreSQL server (tests/integration/test_hosts.py runs the rest against
 * a real one): URLs shown with their password masked, the host id written
 * into every execution, the current schema version reached from a version-1 SQLite
 * database, and URLs the store refuses.
 */
#include "store_fixture.h"

#include <sqlite3.h>

/* ---- store_url_redact */

static void test_redact(void **state)
{
	static const struct {
		const char *url, *shown;
	} cases[] = {
		{"postgresql://evs:s3cret@db:5432/evscript", "postgresql://evs:***@db:5432/evscript"},
		{"postgres://evs@db/evscript", "postgres://evs@db/evscript"},
		{"postgresql://db/evscript?password=s3cret&sslmode=require",
		 "postgresql://db/evscript?password=***&sslmode=require"},
		{"postgresql://u:p%40ss@db/x?password=a", "postgresql://u:***@db/x?password=***"},
		{"postgresql://u:p@ss@db/x", "postgresql://u:***@db/x"}, /* the last @ ends the user info */
		{"host=db password=s3cret dbname=x", "host=db password=*** dbname=x"},
		{"sqlite:./evscript.db", "sqlite:./evscript.db"},
	};
	char out[128];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		store_url_redact(cases[i].url, out, sizeof(out));
		assert_string_equal(out, cases[i].shown);
	}
	/* cut, never overrun */
	store_url_redact("postgresql://evs:s3cret@db/evscript", out, 20);
	assert_int_equal(strlen(out), 19);
	assert_null(strstr(out, "s3cret"));
}

/* A refused URL's message does not show its password. */
static void test_refused_urls(void **state)
{
	struct store *s = (void *)1;
	char err[256];

	(void)state;
	assert_int_equal(store_open("mysql://u:s3cret@db/x", NULL, &s, err, sizeof(err)), STORE_EURL);
	assert_null(s);
	assert_null(strstr(err, "s3cret"));
	assert_non_null(strstr(err, "postgresql://"));
	/* nothing listens on port 1: a connection error, masked */
	assert_int_equal(store_open("postgresql://u:s3cret@127.0.0.1:1/x?connect_timeout=2", NULL, &s,
				    err, sizeof(err)), STORE_EIO);
	assert_null(s);
	assert_null(strstr(err, "s3cret"));
	assert_non_null(strstr(err, "u:***@127.0.0.1:1/x"));
	assert_non_null(strstr(err, "could not connect"));
	/* a URL libpq cannot parse: it quotes it in its message, masked too */
	assert_int_equal(store_open("postgresql://u:s3cret@[bad/x", NULL, &s, err, sizeof(err)),
			 STORE_EIO);
	assert_null(strstr(err, "s3cret"));
	assert_non_null(strstr(err, "could not connect"));
}

/* ---- host ids on SQLite */

static int64_t raw_int(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t v = -1;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static int64_t action(struct store *s)
{
	struct store_execution_input in = {.kind = STORE_EXEC_ACTION, .script = "act",
					   .connection_id = "c1", .provider_config_key = "gh"};
	int64_t id = 0;

	assert_int_equal(store_execution_create(s, &in, &id), 0);
	return id;
}

static void test_host_id(void **state)
{
	struct fx *f = *state;
	struct store_host host = {.host_id = "web-1"};
	struct store_execution *e = NULL;
	struct store *s = NULL;
	char err[256], name[256] = "";
	int64_t id;

	/* the default: the machine's host name */
	id = action(f->s);
	assert_int_equal(store_execution_get(f->s, id, &e), 0);
	assert_int_equal(gethostname(name, sizeof(name) - 1), 0);
	assert_string_equal(e->host_id, name);
	assert_string_equal(store_host_id(f->s), name);
	store_execution_free(e);
	store_close(f->s);
	f->s = NULL;

	assert_int_equal(store_open_host(f->url, NULL, &host, &s, err, sizeof(err)), 0);
	id = action(s);
	assert_int_equal(store_execution_get(s, id, &e), 0);
	assert_string_equal(e->host_id, "web-1");
	store_execution_free(e);
	store_close(s);

	/* too long for a host id */
	{
		char longid[STORE_ID_MAX + 2];

		memset(longid, 'h', sizeof(longid) - 1);
		longid[sizeof(longid) - 1] = '\0';
		host.host_id = longid;
		assert_int_equal(store_open_host(f->url, NULL, &host, &s, err, sizeof(err)),
				 STORE_ETOOBIG);
		assert_null(s);
	}
}

/* A database at schema version 1 (before host ids) is migrated to the
 * current version; its old executions read with no host id. */
static void test_migrate_1_to_2(void **state)
{
	struct fx *f = *state;
	struct store_execution *e = NULL;
	sqlite3 *db;
	int64_t old;

	old = action(f->s);
	store_close(f->s);
	f->s = NULL;
	/* back to what version 1 was: no host_id columns, nor what step 2 -> 3
	 * adds (tags, async actions, webhook deliveries) */
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "ALTER TABLE executions DROP COLUMN host_id;"
				      "ALTER TABLE events DROP COLUMN host_id;"
				      "ALTER TABLE connections DROP COLUMN tags;"
				      "ALTER TABLE connections DROP COLUMN webhook_url_override;"
				      "DROP TABLE async_actions;"
				      "DROP TABLE webhook_deliveries;"
				      "PRAGMA user_version = 1;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	f->s = fx_open(f, NULL);
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"), 4);
	assert_int_equal(store_schema_version(), 4);
	assert_int_equal(store_execution_get(f->s, old, &e), 0);
	assert_null(e->host_id);
	store_execution_free(e);
	assert_int_equal(store_execution_get(f->s, action(f->s), &e), 0);
	assert_non_null(e->host_id);
	store_execution_free(e);
}

/* SQLite shares nothing: a wake-up hook is accepted and never called. */
static void wake(void *user)
{
	(*(int *)user)++;
}

static void test_wakeup_sqlite(void **state)
{
	struct fx *f = *state;
	int64_t id = 0;
	int woken = 0;

	store_set_wakeup(f->s, wake, &woken);
	assert_int_equal(store_event_insert(f->s, STORE_EVENT_VALIDATE_CONNECTION, "c1", "gh", false,
					    1, &id), 0);
	store_set_wakeup(f->s, NULL, NULL);
	assert_int_equal(woken, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_redact),
		cmocka_unit_test(test_refused_urls),
		cmocka_unit_test_setup_teardown(test_host_id, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_migrate_1_to_2, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_wakeup_sqlite, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
