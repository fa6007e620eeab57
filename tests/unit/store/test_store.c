/*
 * test_store.c - the store against real SQLite files in a temporary
 * directory: every operation, the outbox's atomicity, claims from several
 * threads, recovery, encryption at rest, migrations, idempotency, metadata
 * merge, execution listing and the plugin ledger. A last test measures (and
 * prints, without asserting on time) upserts and claims per second.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <json-c/json.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "store_fixture.h"
#include "util.h"

/* Runs SQL on the database file through a connection of its own. */
static void raw_exec(const char *path, const char *sql)
{
	sqlite3 *db;
	char *msg = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("raw sql '%s': %s", sql, msg);
	sqlite3_close(db);
}

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

/* Flips one byte of a connection's stored credentials. */
static void raw_flip_byte(const char *path, const char *cid, int offset)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	unsigned char buf[4096];
	int len;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT credentials FROM connections"
						" WHERE connection_id = ?1",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_text(st, 1, cid, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	len = sqlite3_column_bytes(st, 0);
	assert_true(len > offset && len <= (int)sizeof(buf));
	memcpy(buf, sqlite3_column_blob(st, 0), (size_t)len);
	sqlite3_finalize(st);
	buf[offset] ^= 0x01;
	assert_int_equal(sqlite3_prepare_v2(db, "UPDATE connections SET credentials = ?2"
						" WHERE connection_id = ?1",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_text(st, 1, cid, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, buf, len, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static struct store_upsert_result upsert(struct store *s, const char *pck, const char *cid,
					 const char *creds)
{
	struct store_connection_input in = {
		.connection_id = cid,
		.provider_config_key = pck,
		.provider = "github",
		.credentials = creds,
	};
	struct store_upsert_result r;

	assert_int_equal(store_connection_upsert(s, &in, NULL, &r), 0);
	return r;
}

/* ---------------------------------------------------------------------------
 * Opening, migrations.
 */

static void test_open_migrations(void **state)
{
	struct fx *f = *state;
	struct store *s = NULL;
	char err[256];

	/* Open twice: the schema is in place and not migrated again. */
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"), store_schema_version());
	store_close(f->s);
	f->s = fx_open(f, NULL);
	upsert(f->s, "gh", "c1", "{}");
	store_close(f->s);
	f->s = fx_open(f, NULL);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM connections"), 1);
	store_close(f->s);
	f->s = NULL;

	/* A database from a newer evscript is refused, with a clear message. */
	raw_exec(f->path, "PRAGMA user_version = 99");
	assert_int_equal(store_open(f->url, NULL, &s, err, sizeof(err)), STORE_ESCHEMA);
	assert_null(s);
	assert_non_null(strstr(err, "newer"));
	assert_non_null(strstr(err, "99"));
	{
		char sql[64];

		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", store_schema_version());
		raw_exec(f->path, sql);
	}
	f->s = fx_open(f, NULL);

	/* Options. */
	{
		char url[256];

		snprintf(url, sizeof(url), "%s?synchronous=normal", f->url);
		assert_int_equal(store_open(url, NULL, &s, err, sizeof(err)), 0);
		upsert(s, "gh", "c2", "{}");
		store_close(s);
		s = NULL;
		snprintf(url, sizeof(url), "%s?cache=shared", f->url);
		assert_int_equal(store_open(url, NULL, &s, err, sizeof(err)), STORE_EURL);
		assert_non_null(strstr(err, "cache=shared"));
	}

	/* Bad URLs. */
	assert_int_equal(store_open("postgres-ish", NULL, &s, err, sizeof(err)), STORE_EURL);
	assert_int_equal(store_open("mysql:/x", NULL, &s, err, sizeof(err)), STORE_EURL);
	assert_int_equal(store_open("sqlite:", NULL, &s, err, sizeof(err)), STORE_EURL);
	assert_null(s);
	assert_int_equal(store_open("sqlite:/nonexistent-dir/x/evs.db", NULL, &s, err,
				    sizeof(err)),
			 STORE_EIO);
	assert_non_null(strstr(err, "/nonexistent-dir/x/evs.db"));
}

static void test_journal_mode(void **state)
{
	struct fx *f = *state;
	sqlite3 *db;
	sqlite3_stmt *st;

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* ---------------------------------------------------------------------------
 * Connections and the outbox.
 */

static void test_upsert_and_reconnect(void **state)
{
	struct fx *f = *state;
	struct store_connection_input in = {
		.connection_id = "conn-1",
		.provider_config_key = "github-app",
		.provider = "github",
		.credentials = "{\"type\":\"OAUTH2\",\"access_token\":\"t1\"}",
		.connection_config = "{\"owner\":\"acme\"}",
		.metadata = "{\"a\":1}",
	};
	struct store_upsert_result r1, r2;
	struct store_connection *c = NULL;
	struct store_event ev;
	int64_t pending;

	assert_int_equal(store_connection_upsert(f->s, &in, NULL, &r1), 0);
	assert_true(r1.created);
	assert_true(r1.event_id > 0);
	assert_true(r1.connection_row_id > 0);
	assert_true(r1.created_at > 0);

	assert_int_equal(store_connection_get(f->s, "github-app", "conn-1", &c), 0);
	assert_string_equal(c->connection_id, "conn-1");
	assert_string_equal(c->provider_config_key, "github-app");
	assert_string_equal(c->provider, "github");
	assert_string_equal(c->credentials, in.credentials);
	assert_string_equal(c->connection_config, "{\"owner\":\"acme\"}");
	assert_string_equal(c->metadata, "{\"a\":1}");
	assert_false(c->deleting);
	assert_false(c->credentials_encrypted);
	store_connection_free(c);

	assert_int_equal(store_event_get(f->s, r1.event_id, &ev), 0);
	assert_string_equal(ev.type, STORE_EVENT_POST_CONNECTION_CREATION);
	assert_int_equal(ev.status, STORE_EVENT_PENDING);
	assert_string_equal(ev.connection_id, "conn-1");
	assert_string_equal(ev.provider_config_key, "github-app");
	assert_string_equal(ev.script, "");

	/* Reconnect: new credentials, config and metadata kept (NULL), new event. */
	in.credentials = "{\"type\":\"OAUTH2\",\"access_token\":\"t2\"}";
	in.connection_config = NULL;
	in.metadata = NULL;
	assert_int_equal(store_connection_upsert(f->s, &in, NULL, &r2), 0);
	assert_false(r2.created);
	assert_int_equal(r2.connection_row_id, r1.connection_row_id);
	assert_int_equal(r2.created_at, r1.created_at);
	assert_true(r2.event_id > r1.event_id);
	assert_int_equal(store_connection_get(f->s, "github-app", "conn-1", &c), 0);
	assert_string_equal(c->credentials, in.credentials);
	assert_string_equal(c->connection_config, "{\"owner\":\"acme\"}");
	assert_string_equal(c->metadata, "{\"a\":1}");
	store_connection_free(c);
	assert_int_equal(store_event_count_pending(f->s, &pending), 0);
	assert_int_equal(pending, 2);

	/* Same connection id under another integration: another row. */
	r2 = upsert(f->s, "slack", "conn-1", "{}");
	assert_true(r2.created);
	assert_int_equal(store_connection_get(f->s, "nope", "conn-1", &c), STORE_ENOTFOUND);
	assert_null(c);
}

static void test_upsert_invalid(void **state)
{
	struct fx *f = *state;
	char longid[STORE_ID_MAX + 2];
	struct store_connection_input in = {
		.connection_id = "c",
		.provider_config_key = "p",
		.provider = "github",
		.credentials = "{\"x\":",
	};
	struct store_upsert_result r;
	int64_t pending;

	assert_int_equal(store_connection_upsert(f->s, &in, NULL, &r), STORE_EINVAL);
	assert_int_equal(r.event_id, 0);
	in.credentials = "\"a string\"";
	assert_int_equal(store_connection_upsert(f->s, &in, NULL, &r), STORE_EINVAL);
	in.credentials = "{} trailing";
	assert_int_equal(store_connection_upsert(f->s, &in, NULL, &r), STORE_EINVAL);
	in.credentials = "{}";
	in.metadata = "[1,2]";
	assert_int_equal(store_connection_upsert(f->s, &in, NULL, &r), STORE_EINVAL);
	in.metadata = NULL;
	in.connection_config = "null";
	assert_int_equal(store_connection_upsert(f->s, &in, NULL, &r), STORE_EINVAL);
	in.connection_config = NULL;
	memset(longid, 'x', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	in.connection_id = longid;
	assert_int_equal(store_connection_upsert(f->s, &in, NULL, &r), STORE_ETOOBIG);
	in.connection_id = "";
	assert_int_equal(store_connection_upsert(f->s, &in, NULL, &r), STORE_EINVAL);
	assert_int_equal(store_event_count_pending(f->s, &pending), 0);
	assert_int_equal(pending, 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM connections"), 0);
}

/* The event insert fails (an injected trigger): the connection is not
 * written either, new or reconnect. */
static void test_outbox_rollback_trigger(void **state)
{
	struct fx *f = *state;
	struct store_connection_input in = {
		.connection_id = "c1",
		.provider_config_key = "gh",
		.provider = "github",
		.credentials = "{\"v\":2}",
	};
	struct store_upsert_result r;
	struct store_connection *c = NULL;

	upsert(f->s, "gh", "c0", "{\"v\":1}");
	raw_exec(f->path, "CREATE TRIGGER no_events BEFORE INSERT ON events"
			  " BEGIN SELECT RAISE(ABORT, 'injected failure'); END");

	assert_int_equal(store_connection_upsert(f->s, &in, NULL, &r), STORE_EIO);
	assert_int_equal(r.event_id, 0);
	assert_int_equal(store_connection_get(f->s, "gh", "c1", &c), STORE_ENOTFOUND);

	in.connection_id = "c0";
	assert_int_equal(store_connection_upsert(f->s, &in, NULL, &r), STORE_EIO);
	assert_int_equal(store_connection_get(f->s, "gh", "c0", &c), 0);
	assert_string_equal(c->credentials, "{\"v\":1}");
	store_connection_free(c);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM events"), 1);

	raw_exec(f->path, "DROP TRIGGER no_events");
	assert_int_equal(store_connection_upsert(f->s, &in, NULL, &r), 0);
	assert_false(r.created);
}

static int respond_fail(void *user, const struct store_upsert_result *r, int *status,
			char **body)
{
	(void)user;
	(void)r;
	(void)status;
	(void)body;
	return -1;
}

struct respond_ctx {
	int calls;
};

static int respond_ok(void *user, const struct store_upsert_result *r, int *status, char **body)
{
	struct respond_ctx *ctx = user;
	char buf[128];

	ctx->calls++;
	snprintf(buf, sizeof(buf), "{\"event_id\":%lld,\"created\":%s}", (long long)r->event_id,
		 r->created ? "true" : "false");
	*status = r->created ? 201 : 200;
	*body = strdup(buf);
	return *body ? 0 : -1;
}

static void test_outbox_rollback_callback(void **state)
{
	struct fx *f = *state;
	struct store_connection_input in = {
		.connection_id = "c1",
		.provider_config_key = "gh",
		.provider = "github",
		.credentials = "{}",
	};
	struct store_idempotency_input idem = {
		.key = "key-1",
		.method_path = "POST /connections",
		.request_hash = "abc",
		.respond = respond_fail,
	};
	struct store_upsert_result r;
	struct store_idempotency *rec = NULL;
	struct store_connection *c = NULL;

	assert_int_equal(store_connection_upsert(f->s, &in, &idem, &r), STORE_ECALLBACK);
	assert_int_equal(store_connection_get(f->s, "gh", "c1", &c), STORE_ENOTFOUND);
	assert_int_equal(store_idempotency_get(f->s, "key-1", &rec), STORE_ENOTFOUND);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM events"), 0);
}

/* ---------------------------------------------------------------------------
 * Idempotency.
 */

static void test_idempotency(void **state)
{
	struct fx *f = *state;
	struct store_connection_input in = {
		.connection_id = "c1",
		.provider_config_key = "gh",
		.provider = "github",
		.credentials = "{}",
	};
	struct respond_ctx ctx = {0};
	struct store_idempotency_input idem = {
		.key = "idem-1",
		.method_path = "POST /connections",
		.request_hash = "h1",
		.respond = respond_ok,
		.user = &ctx,
	};
	struct store_upsert_result r, r2;
	struct store_idempotency *rec = NULL;
	char expect[128];
	int64_t pending;

	assert_int_equal(store_connection_upsert(f->s, &in, &idem, &r), 0);
	assert_int_equal(ctx.calls, 1);
	/* The retried request: refused, nothing written, the first response is there. */
	assert_int_equal(store_connection_upsert(f->s, &in, &idem, &r2), STORE_ECONFLICT);
	assert_int_equal(r2.event_id, 0);
	assert_int_equal(ctx.calls, 1);
	assert_int_equal(store_event_count_pending(f->s, &pending), 0);
	assert_int_equal(pending, 1);
	assert_int_equal(store_idempotency_get(f->s, "idem-1", &rec), 0);
	assert_string_equal(rec->method_path, "POST /connections");
	assert_string_equal(rec->request_hash, "h1");
	assert_int_equal(rec->status, 201);
	snprintf(expect, sizeof(expect), "{\"event_id\":%lld,\"created\":true}",
		 (long long)r.event_id);
	assert_string_equal(rec->body, expect);
	assert_true(rec->created_at > 0);
	store_idempotency_free(rec);

	/* A fixed response, and a standalone record. */
	idem.key = "idem-2";
	idem.respond = NULL;
	idem.status = 200;
	idem.body = "{\"ok\":true}";
	assert_int_equal(store_connection_upsert(f->s, &in, &idem, &r2), 0);
	assert_false(r2.created);
	assert_int_equal(store_idempotency_get(f->s, "idem-2", &rec), 0);
	assert_int_equal(rec->status, 200);
	assert_string_equal(rec->body, "{\"ok\":true}");
	store_idempotency_free(rec);

	idem.key = "idem-3";
	idem.status = 400;
	idem.body = "{\"error\":{\"code\":\"connection_validation_failed\"}}";
	assert_int_equal(store_idempotency_put(f->s, &idem), 0);
	assert_int_equal(store_idempotency_put(f->s, &idem), STORE_ECONFLICT);
	idem.status = 42;
	idem.key = "idem-4";
	assert_int_equal(store_idempotency_put(f->s, &idem), STORE_EINVAL);

	/* Expiry: a record older than 24 h is gone for lookups and purged on the
	 * next insert; its key can be used again. */
	raw_exec(f->path, "UPDATE idempotency_keys SET created_at = created_at - 90000000"
			  " WHERE key = 'idem-1'");
	assert_int_equal(store_idempotency_get(f->s, "idem-1", &rec), STORE_ENOTFOUND);
	assert_null(rec);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM idempotency_keys"), 3);
	idem.key = "idem-5";
	idem.status = 200;
	assert_int_equal(store_idempotency_put(f->s, &idem), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM idempotency_keys"), 3);
	assert_int_equal(raw_int(f->path,
				 "SELECT count(*) FROM idempotency_keys WHERE key = 'idem-1'"),
			 0);
	idem.key = "idem-1";
	assert_int_equal(store_idempotency_put(f->s, &idem), 0);
}

/* ---------------------------------------------------------------------------
 * Deletion, list, metadata.
 */

static void test_deleting(void **state)
{
	struct fx *f = *state;
	struct store_connection_input in = {
		.connection_id = "c1",
		.provider_config_key = "gh",
		.provider = "github",
		.credentials = "{}",
	};
	struct store_upsert_result r;
	struct store_connection *c = NULL;
	struct store_event ev;
	int64_t id, id2;

	upsert(f->s, "gh", "c1", "{}");
	assert_int_equal(store_connection_mark_deleting(f->s, "gh", "c1", false, 0, &id), 0);
	assert_true(id > 0);
	assert_int_equal(store_event_get(f->s, id, &ev), 0);
	assert_string_equal(ev.type, STORE_EVENT_PRE_CONNECTION_DELETION);
	assert_int_equal(ev.status, STORE_EVENT_PENDING);
	assert_int_equal(store_connection_get(f->s, "gh", "c1", &c), 0);
	assert_true(c->deleting);
	store_connection_free(c);

	/* No new events, no reconnect, no second deletion. */
	assert_int_equal(store_connection_upsert(f->s, &in, NULL, &r), STORE_EDELETING);
	assert_int_equal(store_event_insert(f->s, STORE_EVENT_VALIDATE_CONNECTION, "c1", "gh",
					    true, 1, &id2),
			 STORE_EDELETING);
	assert_int_equal(id2, 0);
	assert_int_equal(store_connection_mark_deleting(f->s, "gh", "c1", false, 0, &id2),
			 STORE_EDELETING);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM events"), 2);

	assert_int_equal(store_connection_delete(f->s, "gh", "c1"), 0);
	assert_int_equal(store_connection_get(f->s, "gh", "c1", &c), STORE_ENOTFOUND);
	assert_int_equal(store_connection_delete(f->s, "gh", "c1"), STORE_ENOTFOUND);
	assert_int_equal(store_connection_mark_deleting(f->s, "gh", "c1", false, 0, &id2),
			 STORE_ENOTFOUND);
	/* Its events stay as history. */
	assert_int_equal(store_event_get(f->s, id, &ev), 0);

	/* A deletion whose handler runs the scripts itself. */
	upsert(f->s, "gh", "c2", "{}");
	assert_int_equal(store_connection_mark_deleting(f->s, "gh", "c2", true, 7, &id), 0);
	assert_int_equal(store_event_get(f->s, id, &ev), 0);
	assert_int_equal(ev.status, STORE_EVENT_CLAIMED);
	assert_int_equal(ev.generation, 7);
	assert_true(ev.claimed_at > 0);
}

static void test_list(void **state)
{
	struct fx *f = *state;
	struct store_connection **v = NULL;
	struct store_connection_filter flt = {0};
	size_t n = 0;

	assert_int_equal(store_connection_list(f->s, NULL, &v, &n), 0);
	assert_null(v);
	assert_int_equal(n, 0);

	upsert(f->s, "slack", "b", "{\"secret\":1}");
	upsert(f->s, "gh", "b", "{}");
	upsert(f->s, "gh", "a", "{}");
	upsert(f->s, "slack", "c", "{}");

	/* newest first */
	assert_int_equal(store_connection_list(f->s, NULL, &v, &n), 0);
	assert_int_equal(n, 4);
	assert_string_equal(v[0]->provider_config_key, "slack");
	assert_string_equal(v[0]->connection_id, "c");
	assert_string_equal(v[1]->connection_id, "a");
	assert_string_equal(v[2]->provider_config_key, "gh");
	assert_string_equal(v[2]->connection_id, "b");
	assert_string_equal(v[3]->provider_config_key, "slack");
	assert_null(v[3]->credentials);
	assert_string_equal(v[3]->metadata, "{}");
	store_connection_list_free(v, n);

	flt.connection_id = "b";
	assert_int_equal(store_connection_list(f->s, &flt, &v, &n), 0);
	assert_int_equal(n, 2);
	store_connection_list_free(v, n);
	flt = (struct store_connection_filter){.provider_config_keys = "slack"};
	assert_int_equal(store_connection_list(f->s, &flt, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0]->provider_config_key, "slack");
	store_connection_list_free(v, n);
	/* several integrations; a prefix of an id is not a match */
	flt = (struct store_connection_filter){.provider_config_keys = "gh,sla,slack"};
	assert_int_equal(store_connection_list(f->s, &flt, &v, &n), 0);
	assert_int_equal(n, 4);
	store_connection_list_free(v, n);
	flt = (struct store_connection_filter){.provider_config_keys = "sla"};
	assert_int_equal(store_connection_list(f->s, &flt, &v, &n), 0);
	assert_int_equal(n, 0);
	flt = (struct store_connection_filter){.connection_id = "b", .provider_config_keys = "gh"};
	assert_int_equal(store_connection_list(f->s, &flt, &v, &n), 0);
	assert_int_equal(n, 1);
	store_connection_list_free(v, n);
	/* search and paging */
	flt = (struct store_connection_filter){.search = "b"};
	assert_int_equal(store_connection_list(f->s, &flt, &v, &n), 0);
	assert_int_equal(n, 2);
	store_connection_list_free(v, n);
	flt = (struct store_connection_filter){.limit = 3, .offset = 2};
	assert_int_equal(store_connection_list(f->s, &flt, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0]->connection_id, "b");
	assert_string_equal(v[0]->provider_config_key, "gh");
	store_connection_list_free(v, n);
	flt = (struct store_connection_filter){.connection_id = "zz"};
	assert_int_equal(store_connection_list(f->s, &flt, &v, &n), 0);
	assert_int_equal(n, 0);
	assert_null(v);
}

static void assert_metadata(struct store *s, const char *expect_json)
{
	struct store_connection *c = NULL;
	struct json_object *a, *b;

	assert_int_equal(store_connection_get(s, "gh", "c1", &c), 0);
	a = json_tokener_parse(c->metadata);
	b = json_tokener_parse(expect_json);
	assert_non_null(a);
	assert_non_null(b);
	if (!json_object_equal(a, b))
		fail_msg("metadata %s, expected %s", c->metadata, expect_json);
	json_object_put(a);
	json_object_put(b);
	store_connection_free(c);
}

struct meta_thread {
	struct store *s;
	int index;
};

static void *meta_worker(void *arg)
{
	struct meta_thread *t = arg;
	char patch[64];

	for (int i = 0; i < 20; i++) {
		snprintf(patch, sizeof(patch), "{\"k%d_%d\":%d}", t->index, i, i);
		if (store_connection_metadata_update(t->s, "gh", "c1", patch) != 0)
			return (void *)1;
	}
	return NULL;
}

static void test_metadata(void **state)
{
	struct fx *f = *state;
	struct store_connection *c = NULL;
	pthread_t th[4];
	struct meta_thread mt[4];

	upsert(f->s, "gh", "c1", "{}");
	assert_metadata(f->s, "{}");
	assert_int_equal(store_connection_metadata_set(f->s, "gh", "c1",
						       "{\"a\":1,\"b\":{\"x\":1}}"),
			 0);
	assert_metadata(f->s, "{\"a\":1,\"b\":{\"x\":1}}");
	/* Merge: top-level keys replace (not deep), new ones are added, null stays null. */
	assert_int_equal(store_connection_metadata_update(f->s, "gh", "c1",
							  "{\"b\":{\"y\":2},\"c\":\"s\",\"d\":null}"),
			 0);
	assert_metadata(f->s, "{\"a\":1,\"b\":{\"y\":2},\"c\":\"s\",\"d\":null}");
	/* Set replaces everything. */
	assert_int_equal(store_connection_metadata_set(f->s, "gh", "c1", "{\"z\":true}"), 0);
	assert_metadata(f->s, "{\"z\":true}");

	assert_int_equal(store_connection_metadata_set(f->s, "gh", "c1", "[1]"), STORE_EINVAL);
	assert_int_equal(store_connection_metadata_update(f->s, "gh", "c1", "{bad"),
			 STORE_EINVAL);
	assert_int_equal(store_connection_metadata_update(f->s, "gh", "nope", "{}"),
			 STORE_ENOTFOUND);
	assert_int_equal(store_connection_metadata_set(f->s, "gh", "nope", "{}"),
			 STORE_ENOTFOUND);

	/* Concurrent merges lose no key (read and write in one transaction). */
	assert_int_equal(store_connection_metadata_set(f->s, "gh", "c1", "{}"), 0);
	for (int i = 0; i < 4; i++) {
		mt[i].s = f->s;
		mt[i].index = i;
		assert_int_equal(pthread_create(&th[i], NULL, meta_worker, &mt[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		void *rv;

		pthread_join(th[i], &rv);
		assert_null(rv);
	}
	assert_int_equal(store_connection_get(f->s, "gh", "c1", &c), 0);
	{
		struct json_object *o = json_tokener_parse(c->metadata);

		assert_non_null(o);
		assert_int_equal(json_object_object_length(o), 80);
		json_object_put(o);
	}
	store_connection_free(c);
}

/* Several connections at once: all or nothing. */
static void test_metadata_many(void **state)
{
	struct fx *f = *state;
	const char *ids[3] = {"m1", "m2", "m3"};
	const char *with_unknown[3] = {"m1", "nope", "m3"};
	struct store_connection *c = NULL;
	size_t failed = 99;
	int64_t ev;

	for (int i = 0; i < 3; i++)
		upsert(f->s, "gh", ids[i], "{}");
	assert_int_equal(store_connection_metadata_write(f->s, "gh", ids, 3, "{\"a\":1}", false,
							 &failed), 0);
	assert_int_equal(store_connection_metadata_write(f->s, "gh", ids, 3, "{\"b\":2}", true,
							 &failed), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(store_connection_get(f->s, "gh", ids[i], &c), 0);
		assert_string_equal(c->metadata, "{\"a\":1,\"b\":2}");
		store_connection_free(c);
	}
	/* an unknown id in the middle: nothing is written, its index is named */
	assert_int_equal(store_connection_metadata_write(f->s, "gh", with_unknown, 3, "{}", false,
							 &failed), STORE_ENOTFOUND);
	assert_int_equal(failed, 1);
	assert_int_equal(store_connection_get(f->s, "gh", "m1", &c), 0);
	assert_string_equal(c->metadata, "{\"a\":1,\"b\":2}");
	store_connection_free(c);
	/* a connection being deleted refuses the whole write; the single-id
	 * functions (scripts during pre-connection-deletion) still may */
	assert_int_equal(store_connection_mark_deleting(f->s, "gh", "m3", false, 1, &ev), 0);
	assert_int_equal(store_connection_metadata_write(f->s, "gh", ids, 3, "{}", false, &failed),
			 STORE_EDELETING);
	assert_int_equal(failed, 2);
	assert_int_equal(store_connection_get(f->s, "gh", "m1", &c), 0);
	assert_string_equal(c->metadata, "{\"a\":1,\"b\":2}");
	store_connection_free(c);
	assert_int_equal(store_connection_metadata_set(f->s, "gh", "m3", "{\"bye\":true}"), 0);
}

/* ---------------------------------------------------------------------------
 * Events.
 */

static void test_events(void **state)
{
	struct fx *f = *state;
	struct store_event ev;
	int64_t v, p1, p2, count;

	assert_int_equal(store_event_claim(f->s, 1, &ev), STORE_ENOTFOUND);
	assert_int_equal(ev.id, 0);

	/* validate-connection: recorded, claimed by the request that runs it. */
	assert_int_equal(store_event_insert(f->s, STORE_EVENT_VALIDATE_CONNECTION, "new", "gh",
					    true, 3, &v),
			 0);
	p1 = upsert(f->s, "gh", "c1", "{}").event_id;
	assert_int_equal(store_event_insert(f->s, STORE_EVENT_PRE_CONNECTION_DELETION, "c1", "gh",
					    false, 0, &p2),
			 0);
	assert_int_equal(store_event_insert(f->s, "on-sync", "c1", "gh", false, 0, &count),
			 STORE_EINVAL);
	assert_int_equal(store_event_count_pending(f->s, &count), 0);
	assert_int_equal(count, 2);

	/* Oldest first; the validate event is not handed out. */
	assert_int_equal(store_event_claim(f->s, 5, &ev), 0);
	assert_int_equal(ev.id, p1);
	assert_int_equal(ev.status, STORE_EVENT_CLAIMED);
	assert_int_equal(ev.generation, 5);
	assert_true(ev.claimed_at > 0);
	assert_string_equal(ev.type, STORE_EVENT_POST_CONNECTION_CREATION);
	assert_int_equal(store_event_claim(f->s, 5, &ev), 0);
	assert_int_equal(ev.id, p2);
	assert_int_equal(store_event_claim(f->s, 5, &ev), STORE_ENOTFOUND);

	assert_int_equal(store_event_finish(f->s, p1), 0);
	assert_int_equal(store_event_finish(f->s, p1), STORE_ESTATE);
	assert_int_equal(store_event_finish(f->s, 9999), STORE_ENOTFOUND);
	assert_int_equal(store_event_get(f->s, p1, &ev), 0);
	assert_int_equal(ev.status, STORE_EVENT_DONE);
	assert_true(ev.finished_at >= ev.claimed_at);
	assert_int_equal(store_event_get(f->s, v, &ev), 0);
	assert_int_equal(ev.status, STORE_EVENT_CLAIMED);
	assert_string_equal(ev.type, STORE_EVENT_VALIDATE_CONNECTION);
	assert_int_equal(store_event_finish(f->s, v), 0);
	assert_int_equal(store_event_get(f->s, 12345, &ev), STORE_ENOTFOUND);
	assert_int_equal(store_event_count_pending(f->s, &count), 0);
	assert_int_equal(count, 0);
}

#define CLAIM_EVENTS 400
#define CLAIM_THREADS 8

struct claim_thread {
	struct store *s;
	int64_t ids[CLAIM_EVENTS];
	int n;
	int err;
};

static void *claim_worker(void *arg)
{
	struct claim_thread *t = arg;
	struct store_event ev;
	int ret;

	while ((ret = store_event_claim(t->s, 1, &ev)) == 0) {
		if (t->n < CLAIM_EVENTS)
			t->ids[t->n++] = ev.id;
	}
	if (ret != STORE_ENOTFOUND)
		t->err = ret;
	return NULL;
}

static void test_claim_exactly_once(void **state)
{
	struct fx *f = *state;
	static struct claim_thread t[CLAIM_THREADS];
	pthread_t th[CLAIM_THREADS];
	static unsigned char seen[CLAIM_EVENTS + 1];
	int64_t first = 0, total = 0, pending;

	for (int i = 0; i < CLAIM_EVENTS; i++) {
		char cid[32];
		int64_t id;

		snprintf(cid, sizeof(cid), "c%d", i);
		assert_int_equal(store_event_insert(f->s, STORE_EVENT_PRE_CONNECTION_DELETION, cid,
						    "gh", false, 0, &id),
				 0);
		if (!first)
			first = id;
	}
	memset(t, 0, sizeof(t));
	memset(seen, 0, sizeof(seen));
	for (int i = 0; i < CLAIM_THREADS; i++) {
		t[i].s = f->s;
		assert_int_equal(pthread_create(&th[i], NULL, claim_worker, &t[i]), 0);
	}
	for (int i = 0; i < CLAIM_THREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < CLAIM_THREADS; i++) {
		assert_int_equal(t[i].err, 0);
		for (int j = 0; j < t[i].n; j++) {
			int64_t k = t[i].ids[j] - first;

			assert_true(k >= 0 && k < CLAIM_EVENTS);
			assert_int_equal(seen[k], 0); /* claimed once */
			seen[k] = 1;
			total++;
		}
	}
	assert_int_equal(total, CLAIM_EVENTS);
	assert_int_equal(store_event_count_pending(f->s, &pending), 0);
	assert_int_equal(pending, 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM events WHERE status = 'claimed'"),
			 CLAIM_EVENTS);
}

/* A second store on the same file (another process would do the same):
 * claims from both are still exclusive. */
static void test_claim_two_handles(void **state)
{
	struct fx *f = *state;
	struct store *s2 = fx_open(f, NULL);
	struct store_event ev;
	int64_t id, got1 = 0, got2 = 0;

	for (int i = 0; i < 50; i++)
		assert_int_equal(store_event_insert(f->s, STORE_EVENT_VALIDATE_CONNECTION, "x", "gh",
						    false, 0, &id),
				 0);
	for (;;) {
		int a = store_event_claim(f->s, 1, &ev), b;

		got1 += a == 0;
		b = store_event_claim(s2, 2, &ev);
		got2 += b == 0;
		if (a == STORE_ENOTFOUND && b == STORE_ENOTFOUND)
			break;
		assert_true(a == 0 || a == STORE_ENOTFOUND);
		assert_true(b == 0 || b == STORE_ENOTFOUND);
	}
	assert_int_equal(got1 + got2, 50);
	assert_int_equal(got1, 25);
	store_close(s2);
}

/* ---------------------------------------------------------------------------
 * Executions.
 */

static int64_t exec_create(struct store *s, int64_t event_id, const char *script,
			   const char *cid, const char *pck)
{
	struct store_execution_input in = {
		.kind = STORE_EXEC_EVENT,
		.event_id = event_id,
		.script = script,
		.event = STORE_EVENT_POST_CONNECTION_CREATION,
		.connection_id = cid,
		.provider_config_key = pck,
		.plugin_version = "1.0.0",
	};
	int64_t id;

	assert_int_equal(store_execution_create(s, &in, &id), 0);
	assert_true(id > 0);
	return id;
}

static void test_executions(void **state)
{
	struct fx *f = *state;
	int64_t ev = upsert(f->s, "gh", "c1", "{}").event_id, x, a, id;
	struct store_execution_input ain = {
		.kind = STORE_EXEC_ACTION,
		.script = "create-webhook",
		.connection_id = "c1",
		.provider_config_key = "gh",
	};
	struct store_log_line_input lines[3] = {
		{.ts = 1000, .level = 1, .message = "first"},
		{.ts = 0, .level = 3, .message = "second"},
		{.ts = 1002, .level = 0, .message = "third \xc3\xa9"},
	};
	struct store_execution *e = NULL;
	char *big;

	x = exec_create(f->s, ev, "github-webhooks", "c1", "gh");
	ain.parent_execution_id = x;
	assert_int_equal(store_execution_create(f->s, &ain, &a), 0);

	assert_int_equal(store_execution_get(f->s, x, &e), 0);
	assert_int_equal(e->status, STORE_EXEC_RUNNING);
	assert_int_equal(e->event_id, ev);
	assert_int_equal(e->kind, STORE_EXEC_EVENT);
	assert_string_equal(e->script, "github-webhooks");
	assert_string_equal(e->event, STORE_EVENT_POST_CONNECTION_CREATION);
	assert_string_equal(e->plugin_version, "1.0.0");
	assert_int_equal(e->duration_ms, -1);
	assert_int_equal(e->ended_at, 0);
	assert_null(e->error);
	assert_int_equal(e->n_logs, 0);
	store_execution_free(e);

	/* Logs in batches; seq continues; dropped lines are counted. */
	assert_int_equal(store_execution_append_logs(f->s, x, lines, 2, 0), 0);
	assert_int_equal(store_execution_append_logs(f->s, x, lines + 2, 1, 5), 0);
	assert_int_equal(store_execution_append_logs(f->s, x, NULL, 0, 2), 0);
	big = malloc(STORE_LOG_MESSAGE_MAX + 100);
	assert_non_null(big);
	memset(big, 'y', STORE_LOG_MESSAGE_MAX + 99);
	big[STORE_LOG_MESSAGE_MAX + 99] = '\0';
	{
		struct store_log_line_input l = {.level = 2, .message = big};

		assert_int_equal(store_execution_append_logs(f->s, x, &l, 1, 0), 0);
	}
	free(big);
	assert_int_equal(store_execution_append_logs(f->s, 999, lines, 1, 0), STORE_ENOTFOUND);

	assert_int_equal(store_execution_finish(f->s, x, STORE_EXEC_FAILED, "boom", 42), 0);
	assert_int_equal(store_execution_finish(f->s, x, STORE_EXEC_SUCCEEDED, NULL, -1),
			 STORE_ESTATE);
	assert_int_equal(store_execution_finish(f->s, 999, STORE_EXEC_SUCCEEDED, NULL, -1),
			 STORE_ENOTFOUND);
	assert_int_equal(store_execution_finish(f->s, a, STORE_EXEC_RUNNING, NULL, -1),
			 STORE_EINVAL);
	assert_int_equal(store_execution_finish(f->s, a, STORE_EXEC_SUCCEEDED, NULL, -1), 0);

	assert_int_equal(store_execution_get(f->s, x, &e), 0);
	assert_int_equal(e->status, STORE_EXEC_FAILED);
	assert_string_equal(e->error, "boom");
	assert_int_equal(e->duration_ms, 42);
	assert_true(e->ended_at >= e->started_at);
	assert_int_equal(e->logs_dropped, 7);
	assert_int_equal(e->n_logs, 4);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(e->logs[i].seq, (int64_t)i + 1);
	assert_string_equal(e->logs[0].message, "first");
	assert_int_equal(e->logs[0].ts, 1000);
	assert_int_equal(e->logs[0].level, 1);
	assert_string_equal(e->logs[1].message, "second");
	assert_true(e->logs[1].ts > 1000000000000LL); /* now */
	assert_int_equal(e->logs[1].level, 3);
	assert_string_equal(e->logs[2].message, "third \xc3\xa9");
	assert_int_equal(strlen(e->logs[3].message), STORE_LOG_MESSAGE_MAX);
	store_execution_free(e);

	assert_int_equal(store_execution_get(f->s, a, &e), 0);
	assert_int_equal(e->kind, STORE_EXEC_ACTION);
	assert_int_equal(e->event_id, 0);
	assert_null(e->event);
	assert_int_equal(e->parent_execution_id, x);
	assert_int_equal(e->status, STORE_EXEC_SUCCEEDED);
	assert_true(e->duration_ms >= 0);
	assert_null(e->plugin_version);
	store_execution_free(e);

	/* References that do not exist; an event execution needs its event. */
	ain.parent_execution_id = 4242;
	assert_int_equal(store_execution_create(f->s, &ain, &id), STORE_ENOTFOUND);
	assert_int_equal(id, 0);
	{
		struct store_execution_input bad = {
			.kind = STORE_EXEC_EVENT,
			.event_id = 777,
			.script = "s",
			.event = STORE_EVENT_POST_CONNECTION_CREATION,
			.connection_id = "c1",
			.provider_config_key = "gh",
		};

		assert_int_equal(store_execution_create(f->s, &bad, &id), STORE_ENOTFOUND);
		bad.event_id = 0;
		assert_int_equal(store_execution_create(f->s, &bad, &id), STORE_EINVAL);
	}
	assert_int_equal(store_execution_get(f->s, 4242, &e), STORE_ENOTFOUND);
	assert_null(e);
}

/* A long error is cut at a UTF-8 boundary. */
static void test_execution_error_truncated(void **state)
{
	struct fx *f = *state;
	int64_t ev = upsert(f->s, "gh", "c1", "{}").event_id;
	int64_t x = exec_create(f->s, ev, "s", "c1", "gh");
	struct store_execution *e = NULL;
	size_t n = STORE_ERROR_MAX + 10;
	char *err = malloc(n + 1);

	assert_non_null(err);
	memset(err, 'a', n);
	/* A two-byte character straddles the cap. */
	err[STORE_ERROR_MAX - 1] = (char)0xc3;
	err[STORE_ERROR_MAX] = (char)0xa9;
	err[n] = '\0';
	assert_int_equal(store_execution_finish(f->s, x, STORE_EXEC_CRASHED, err, -1), 0);
	free(err);
	assert_int_equal(store_execution_get(f->s, x, &e), 0);
	assert_int_equal(strlen(e->error), STORE_ERROR_MAX - 1);
	assert_int_equal(e->status, STORE_EXEC_CRASHED);
	store_execution_free(e);
}

static void test_execution_list(void **state)
{
	struct fx *f = *state;
	int64_t ev1 = upsert(f->s, "gh", "c1", "{}").event_id;
	int64_t ev2 = upsert(f->s, "slack", "c2", "{}").event_id;
	struct store_execution_filter flt = {.status = -1};
	struct store_execution **v = NULL;
	size_t n = 0;
	int64_t next = 0, ids[30], last;
	int seen = 0;

	for (int i = 0; i < 30; i++) {
		bool first = i % 3 != 0;

		ids[i] = exec_create(f->s, first ? ev1 : ev2, i % 2 ? "script-a" : "script-b",
				     first ? "c1" : "c2", first ? "gh" : "slack");
		if (i % 5 == 0)
			assert_int_equal(store_execution_finish(f->s, ids[i], STORE_EXEC_SUCCEEDED,
								NULL, -1),
					 0);
	}

	/* Pages of 12: 12, 12, 6, newest first, no duplicates. */
	flt.limit = 12;
	last = INT64_MAX;
	for (int page = 0; page < 3; page++) {
		assert_int_equal(store_execution_list(f->s, &flt, &v, &n, &next), 0);
		assert_int_equal(n, page < 2 ? 12 : 6);
		for (size_t i = 0; i < n; i++) {
			assert_true(v[i]->id < last);
			last = v[i]->id;
			assert_int_equal(v[i]->n_logs, 0);
			seen++;
		}
		if (page < 2)
			assert_int_equal(next, v[n - 1]->id);
		else
			assert_int_equal(next, 0);
		store_execution_list_free(v, n);
		flt.cursor = next;
	}
	assert_int_equal(seen, 30);
	assert_int_equal(last, ids[0]);

	/* Filters. */
	memset(&flt, 0, sizeof(flt));
	flt.status = -1;
	flt.limit = 100;
	flt.provider_config_key = "slack";
	assert_int_equal(store_execution_list(f->s, &flt, &v, &n, &next), 0);
	assert_int_equal(n, 10);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(v[i]->provider_config_key, "slack");
	store_execution_list_free(v, n);

	flt.provider_config_key = NULL;
	flt.connection_id = "c1";
	flt.script = "script-a";
	assert_int_equal(store_execution_list(f->s, &flt, &v, &n, &next), 0);
	assert_int_equal(n, 10); /* odd i not divisible by 3 */
	store_execution_list_free(v, n);

	flt.connection_id = NULL;
	flt.script = NULL;
	flt.status = STORE_EXEC_SUCCEEDED;
	assert_int_equal(store_execution_list(f->s, &flt, &v, &n, &next), 0);
	assert_int_equal(n, 6);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(v[i]->status, STORE_EXEC_SUCCEEDED);
	store_execution_list_free(v, n);

	flt.status = -1;
	flt.event = STORE_EVENT_PRE_CONNECTION_DELETION;
	assert_int_equal(store_execution_list(f->s, &flt, &v, &n, &next), 0);
	assert_int_equal(n, 0);
	assert_null(v);
	flt.event = STORE_EVENT_POST_CONNECTION_CREATION;
	assert_int_equal(store_execution_list(f->s, &flt, &v, &n, &next), 0);
	assert_int_equal(n, 30);
	store_execution_list_free(v, n);

	flt.status = 77;
	assert_int_equal(store_execution_list(f->s, &flt, &v, &n, &next), STORE_EINVAL);
	assert_int_equal(store_exec_status_from_name("timed_out"), STORE_EXEC_TIMED_OUT);
	assert_int_equal(store_exec_status_from_name("nope"), -1);
}

static void test_retry(void **state)
{
	struct fx *f = *state;
	int64_t ev = upsert(f->s, "gh", "c1", "{}").event_id, x, a, rid, mark;
	struct store_execution_input ain = {
		.kind = STORE_EXEC_ACTION,
		.script = "create-webhook",
		.connection_id = "c1",
		.provider_config_key = "gh",
	};
	struct store_event e;

	assert_int_equal(store_event_claim(f->s, 1, &e), 0);
	x = exec_create(f->s, ev, "github-webhooks", "c1", "gh");
	assert_int_equal(store_execution_retry(f->s, x, &rid), STORE_ESTATE);
	assert_int_equal(rid, 0);
	assert_int_equal(store_execution_finish(f->s, x, STORE_EXEC_FAILED, "503", -1), 0);
	assert_int_equal(store_execution_retry(f->s, x, &rid), 0);
	assert_true(rid > ev);
	assert_int_equal(store_event_claim(f->s, 2, &e), 0);
	assert_int_equal(e.id, rid);
	assert_string_equal(e.type, STORE_EVENT_POST_CONNECTION_CREATION);
	assert_string_equal(e.script, "github-webhooks");
	assert_int_equal(e.retry_of, x);
	assert_string_equal(e.connection_id, "c1");

	assert_int_equal(store_execution_create(f->s, &ain, &a), 0);
	assert_int_equal(store_execution_finish(f->s, a, STORE_EXEC_FAILED, NULL, -1), 0);
	assert_int_equal(store_execution_retry(f->s, a, &rid), STORE_EINVAL);
	assert_int_equal(store_execution_retry(f->s, 999, &rid), STORE_ENOTFOUND);

	/* validate-connection: its candidate belonged to a request that is gone */
	{
		int64_t vev, v;
		struct store_execution_input vin = {
			.kind = STORE_EXEC_EVENT,
			.script = "check",
			.event = STORE_EVENT_VALIDATE_CONNECTION,
			.connection_id = "c9",
			.provider_config_key = "gh",
		};

		assert_int_equal(store_event_insert(f->s, STORE_EVENT_VALIDATE_CONNECTION, "c9", "gh",
						    true, 1, &vev), 0);
		vin.event_id = vev;
		assert_int_equal(store_execution_create(f->s, &vin, &v), 0);
		assert_int_equal(store_execution_finish(f->s, v, STORE_EXEC_FAILED, "no", -1), 0);
		assert_int_equal(store_execution_retry(f->s, v, &rid), STORE_EINVAL);
	}

	assert_int_equal(store_connection_mark_deleting(f->s, "gh", "c1", true, 1, &mark), 0);
	assert_int_equal(store_execution_retry(f->s, x, &rid), STORE_EDELETING);
}

/* ---------------------------------------------------------------------------
 * Recovery.
 */

static void test_recover(void **state)
{
	struct fx *f = *state;
	struct store_recovery r;
	struct store_event ev;
	struct store_execution *e = NULL;
	int64_t a, b, c, d, done, val, xb, xc;

	/* a: claimed, never started. b: claimed, an execution running.
	 * c: claimed, one execution finished (the next never started).
	 * d: pending. done: finished. val: a validate event claimed by a request. */
	a = upsert(f->s, "gh", "a", "{}").event_id;
	b = upsert(f->s, "gh", "b", "{}").event_id;
	c = upsert(f->s, "gh", "c", "{}").event_id;
	done = upsert(f->s, "gh", "e", "{}").event_id;
	for (int i = 0; i < 4; i++)
		assert_int_equal(store_event_claim(f->s, 1, &ev), 0);
	d = upsert(f->s, "gh", "d", "{}").event_id;
	assert_int_equal(store_event_finish(f->s, done), 0);
	assert_int_equal(store_event_insert(f->s, STORE_EVENT_VALIDATE_CONNECTION, "v", "gh", true,
					    1, &val),
			 0);
	xb = exec_create(f->s, b, "s1", "b", "gh");
	xc = exec_create(f->s, c, "s1", "c", "gh");
	assert_int_equal(store_execution_finish(f->s, xc, STORE_EXEC_SUCCEEDED, NULL, -1), 0);

	/* The daemon stops (kill -9) and starts again. */
	store_close(f->s);
	f->s = fx_open(f, NULL);
	assert_int_equal(store_recover(f->s, &r), 0);
	assert_int_equal(r.executions_interrupted, 1);
	assert_int_equal(r.events_requeued, 1);
	assert_int_equal(r.events_interrupted, 3);

	assert_int_equal(store_event_get(f->s, a, &ev), 0);
	assert_int_equal(ev.status, STORE_EVENT_PENDING);
	assert_int_equal(ev.claimed_at, 0);
	assert_int_equal(store_event_get(f->s, b, &ev), 0);
	assert_int_equal(ev.status, STORE_EVENT_INTERRUPTED);
	assert_true(ev.finished_at > 0);
	assert_int_equal(store_event_get(f->s, c, &ev), 0);
	assert_int_equal(ev.status, STORE_EVENT_INTERRUPTED);
	assert_int_equal(store_event_get(f->s, d, &ev), 0);
	assert_int_equal(ev.status, STORE_EVENT_PENDING);
	assert_int_equal(store_event_get(f->s, done, &ev), 0);
	assert_int_equal(ev.status, STORE_EVENT_DONE);
	assert_int_equal(store_event_get(f->s, val, &ev), 0);
	assert_int_equal(ev.status, STORE_EVENT_INTERRUPTED);

	assert_int_equal(store_execution_get(f->s, xb, &e), 0);
	assert_int_equal(e->status, STORE_EXEC_INTERRUPTED);
	assert_string_equal(e->error, "interrupted: the daemon stopped while it ran");
	assert_true(e->ended_at > 0);
	assert_true(e->duration_ms >= 0);
	store_execution_free(e);
	assert_int_equal(store_execution_get(f->s, xc, &e), 0);
	assert_int_equal(e->status, STORE_EXEC_SUCCEEDED);
	store_execution_free(e);

	/* Requeued events are dispatched, oldest first; nothing else is. */
	assert_int_equal(store_event_claim(f->s, 2, &ev), 0);
	assert_int_equal(ev.id, a);
	assert_int_equal(store_event_claim(f->s, 2, &ev), 0);
	assert_int_equal(ev.id, d);
	assert_int_equal(store_event_claim(f->s, 2, &ev), STORE_ENOTFOUND);

	/* Recovery again is a no-op. */
	store_close(f->s);
	f->s = fx_open(f, NULL);
	assert_int_equal(store_recover(f->s, &r), 0);
	assert_int_equal(r.executions_interrupted, 0);
	assert_int_equal(r.events_requeued, 2);
	assert_int_equal(r.events_interrupted, 0);

	/* Graceful shutdown past its deadline. */
	assert_int_equal(store_event_claim(f->s, 3, &ev), 0);
	xb = exec_create(f->s, ev.id, "s1", "a", "gh");
	assert_int_equal(store_interrupt_running(f->s, NULL, &a), 0);
	assert_int_equal(a, 1);
	assert_int_equal(store_execution_get(f->s, xb, &e), 0);
	assert_int_equal(e->status, STORE_EXEC_INTERRUPTED);
	store_execution_free(e);
}

/* ---------------------------------------------------------------------------
 * Encryption at rest.
 */

/* True when needle occurs in the database file or its WAL. */
static bool file_contains(const char *path, const char *needle)
{
	char p[200];
	const char *files[2] = {path, p};
	bool found = false;

	snprintf(p, sizeof(p), "%s-wal", path);
	for (int i = 0; i < 2; i++) {
		char *data = NULL;
		size_t len = 0;

		if (util_read_file(files[i], 64u << 20, &data, &len) != 0)
			continue;
		if (memmem(data, len, needle, strlen(needle)))
			found = true;
		free(data);
	}
	return found;
}

static void test_encryption(void **state)
{
	struct fx *f = *state;
	uint8_t key[STORE_KEY_BYTES], key2[STORE_KEY_BYTES];
	char b64[sodium_base64_ENCODED_LEN(STORE_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL)];
	const char *secret = "{\"access_token\":\"gho_SECRET_TOKEN_4815162342\"}";
	struct store_connection *c = NULL;
	struct store *s = NULL;
	char err[256];

	/* Plaintext without a key: the scan finds the secret (the check works). */
	upsert(f->s, "gh", "plain", secret);
	store_close(f->s);
	f->s = NULL;
	assert_true(file_contains(f->path, "gho_SECRET_TOKEN_4815162342"));
	raw_exec(f->path, "DELETE FROM connections; VACUUM;");
	assert_false(file_contains(f->path, "gho_SECRET_TOKEN_4815162342"));

	/* The key from EVSCRIPT_ENCRYPTION_KEY's form. */
	randombytes_buf(key2, sizeof(key2));
	sodium_bin2base64(b64, sizeof(b64), key2, sizeof(key2), sodium_base64_VARIANT_ORIGINAL);
	assert_int_equal(store_key_from_base64(b64, key), 0);
	assert_int_equal(sodium_memcmp(key, key2, sizeof(key)), 0);
	assert_int_equal(store_key_from_base64("c2hvcnQ=", key), STORE_EINVAL);
	assert_int_equal(store_key_from_base64("not base64 !!!", key), STORE_EINVAL);
	assert_int_equal(store_key_from_base64(NULL, key), STORE_EINVAL);
	assert_int_equal(store_key_from_base64(b64, key), 0);

	f->s = fx_open(f, key);
	upsert(f->s, "gh", "c1", secret);
	upsert(f->s, "gh", "c2", "{\"access_token\":\"other\"}");
	assert_int_equal(store_connection_get(f->s, "gh", "c1", &c), 0);
	assert_string_equal(c->credentials, secret);
	assert_true(c->credentials_encrypted);
	store_connection_free(c);
	assert_false(file_contains(f->path, "gho_SECRET_TOKEN_4815162342"));
	store_close(f->s);
	f->s = NULL;
	assert_false(file_contains(f->path, "gho_SECRET_TOKEN_4815162342"));
	assert_int_equal(raw_int(f->path, "SELECT credentials_encrypted FROM connections"
					  " WHERE connection_id = 'c1'"),
			 1);

	/* Without the key: the row says it is encrypted, reading it is an error. */
	f->s = fx_open(f, NULL);
	assert_int_equal(store_connection_get(f->s, "gh", "c1", &c), STORE_ENOKEY);
	assert_null(c);
	store_close(f->s);
	f->s = NULL;

	/* Another key: refused at open. */
	key2[0] ^= 1;
	assert_int_equal(store_open(f->url, key2, &s, err, sizeof(err)), STORE_EKEY);
	assert_null(s);
	assert_non_null(strstr(err, "encryption key"));

	/* AD binding: c2's ciphertext copied into c1's row does not decrypt. */
	raw_exec(f->path, "UPDATE connections SET credentials ="
			  " (SELECT credentials FROM connections WHERE connection_id = 'c2')"
			  " WHERE connection_id = 'c1'");
	f->s = fx_open(f, key);
	assert_int_equal(store_connection_get(f->s, "gh", "c1", &c), STORE_EDECRYPT);
	assert_int_equal(store_connection_get(f->s, "gh", "c2", &c), 0);
	assert_string_equal(c->credentials, "{\"access_token\":\"other\"}");
	store_connection_free(c);
	/* A flipped ciphertext byte does not decrypt either. */
	raw_flip_byte(f->path, "c2", 30);
	assert_int_equal(store_connection_get(f->s, "gh", "c2", &c), STORE_EDECRYPT);
	store_close(f->s);
	f->s = NULL;
	sodium_memzero(key, sizeof(key));
	sodium_memzero(key2, sizeof(key2));
}

/* A database written without a key is opened with one later: old rows read
 * as plaintext, new writes are encrypted. */
static void test_encryption_added_later(void **state)
{
	struct fx *f = *state;
	uint8_t key[STORE_KEY_BYTES];
	struct store_connection *c = NULL;

	upsert(f->s, "gh", "old", "{\"token\":\"plain-old\"}");
	store_close(f->s);
	randombytes_buf(key, sizeof(key));
	f->s = fx_open(f, key);
	assert_int_equal(store_connection_get(f->s, "gh", "old", &c), 0);
	assert_false(c->credentials_encrypted);
	assert_string_equal(c->credentials, "{\"token\":\"plain-old\"}");
	store_connection_free(c);
	upsert(f->s, "gh", "old", "{\"token\":\"now-sealed\"}");
	assert_int_equal(store_connection_get(f->s, "gh", "old", &c), 0);
	assert_true(c->credentials_encrypted);
	assert_string_equal(c->credentials, "{\"token\":\"now-sealed\"}");
	store_connection_free(c);
	sodium_memzero(key, sizeof(key));
}

/* ---------------------------------------------------------------------------
 * The plugin ledger.
 */

static void test_ledger(void **state)
{
	struct fx *f = *state;
	/* Exactly the loader's callback shapes. */
	int (*get)(void *, const char *, char[64], uint8_t[64]) = store_ledger_get;
	int (*put)(void *, const char *, const char *, const uint8_t[64]) = store_ledger_put;
	char version[64];
	uint8_t h1[64], h2[64], got[64];

	memset(h1, 0x11, sizeof(h1));
	memset(h2, 0x22, sizeof(h2));
	assert_int_equal(get(f->s, "hello", version, got), 1);
	assert_int_equal(put(f->s, "hello", "1.9.0", h1), 0);
	assert_int_equal(get(f->s, "hello", version, got), 0);
	assert_string_equal(version, "1.9.0");
	assert_memory_equal(got, h1, 64);

	/* Semantic order: 1.10.0 > 1.9.0. */
	assert_int_equal(put(f->s, "hello", "1.10.0", h2), 0);
	assert_int_equal(get(f->s, "hello", version, got), 0);
	assert_string_equal(version, "1.10.0");
	assert_memory_equal(got, h2, 64);

	/* A lower version (an allowed downgrade) leaves the bar where it is. */
	assert_int_equal(put(f->s, "hello", "1.2.0", h1), 0);
	assert_int_equal(get(f->s, "hello", version, got), 0);
	assert_string_equal(version, "1.10.0");
	assert_memory_equal(got, h2, 64);

	/* The same version with other bytes replaces the hash. */
	assert_int_equal(put(f->s, "hello", "1.10.0", h1), 0);
	assert_int_equal(get(f->s, "hello", version, got), 0);
	assert_memory_equal(got, h1, 64);

	/* Durable across a restart; names are separate. */
	store_close(f->s);
	f->s = fx_open(f, NULL);
	assert_int_equal(get(f->s, "hello", version, got), 0);
	assert_string_equal(version, "1.10.0");
	assert_int_equal(get(f->s, "other", version, got), 1);
	assert_int_equal(put(f->s, "", "1.0.0", h1), STORE_EINVAL);
}

/* ---------------------------------------------------------------------------
 * Throughput (reported, not asserted).
 */

static void measure(struct store *s, const char *label)
{
	const int n = 1000;
	struct store_event ev;
	int64_t t0, t1, t2, x;
	char cid[32];

	t0 = util_mono_us();
	for (int i = 0; i < n; i++) {
		snprintf(cid, sizeof(cid), "conn-%d", i);
		upsert(s, "gh", cid, "{\"access_token\":\"t\"}");
	}
	t1 = util_mono_us();
	/* One event's journal as a dispatcher writes it: claim, create the
	 * execution, a batch of logs, finish, event done. */
	for (int i = 0; i < n; i++) {
		struct store_log_line_input l = {.level = 1, .message = "hello"};

		assert_int_equal(store_event_claim(s, 1, &ev), 0);
		x = exec_create(s, ev.id, "s", "c", "gh");
		assert_int_equal(store_execution_append_logs(s, x, &l, 1, 0), 0);
		assert_int_equal(store_execution_finish(s, x, STORE_EXEC_SUCCEEDED, NULL, -1), 0);
		assert_int_equal(store_event_finish(s, ev.id), 0);
	}
	t2 = util_mono_us();
	assert_int_equal(store_event_claim(s, 1, &ev), STORE_ENOTFOUND);
	print_message("[ MEASURE  ] %s: connection+event upserts %.0f/s (%.0f us); event journal "
		      "(claim+create+logs+finish+done) %.0f/s (%.0f us)%s\n",
		      label, n * 1e6 / (double)(t1 - t0), (double)(t1 - t0) / n,
		      n * 1e6 / (double)(t2 - t1), (double)(t2 - t1) / n,
#if defined(__SANITIZE_ADDRESS__)
		      " [ASan build]"
#else
		      ""
#endif
	);
}

static void test_throughput(void **state)
{
	struct fx *f = *state;
	char url[256], path[200], err[256];
	struct store *s = NULL;

	measure(f->s, "default (execution creation and the outbox FULL)");
	snprintf(path, sizeof(path), "%s/normal.db", f->dir);
	snprintf(url, sizeof(url), "sqlite:%s?synchronous=normal", path);
	assert_int_equal(store_open(url, NULL, &s, err, sizeof(err)), 0);
	measure(s, "synchronous=normal");
	store_close(s);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_migrations, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_journal_mode, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_upsert_and_reconnect, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_metadata_many, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_upsert_invalid, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_outbox_rollback_trigger, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_outbox_rollback_callback, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_idempotency, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_deleting, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_list, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_metadata, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_events, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_claim_exactly_once, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_claim_two_handles, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_executions, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_execution_error_truncated, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_execution_list, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_retry, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_recover, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_encryption, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_encryption_added_later, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_ledger, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_throughput, fx_setup, fx_teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
