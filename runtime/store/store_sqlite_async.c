/*
 * store_sqlite_async.c - connection tags and webhook URL override,
 * asynchronous actions' results and incoming webhook deliveries in the
 * SQLite back end (schema step 1 -> 2 in store_sqlite.c).
 */
#include "store_sqlite_priv.h"

#include <stdlib.h>
#include <string.h>

#include "store_sql.h"
#include "util.h"

/* ---------------------------------------------------------------------------
 * Connection tags and webhook URL override.
 */

static const char sql_conn_deleting[] =
	"SELECT deleting FROM connections WHERE provider_config_key = ?1 AND connection_id = ?2";
static const char sql_conn_patch[] =
	"UPDATE connections SET tags = coalesce(?3, tags),"
	" webhook_url_override = CASE WHEN ?4 THEN ?5 ELSE webhook_url_override END,"
	" updated_at = ?6 WHERE provider_config_key = ?1 AND connection_id = ?2";

static int read_deleting(sqlite3_stmt *st, void *user)
{
	(void)user;
	return sqlite3_column_int(st, 0) ? STORE_EDELETING : 0;
}

/* The patch of a connection that is not being deleted (inside a transaction). */
static int patch_in(struct sq *b, const char *pck, const char *cid, const char *tags_json,
		    bool set_override, const char *override)
{
	int ret;

	ret = sq_row(b, sql_conn_deleting, "read connection",
		     STORE_ARGS(arg_text(pck), arg_text(cid)), read_deleting, NULL);
	if (!ret)
		ret = sq_exec(b, sql_conn_patch, "patch connection",
			      STORE_ARGS(arg_text(pck), arg_text(cid), arg_text(tags_json),
					 arg_i64(set_override), arg_text(override),
					 arg_i64(util_now_ms())));
	return ret;
}

int sq_connection_patch(struct store *s, const char *pck, const char *cid, const char *tags_json,
			bool set_override, const char *override)
{
	int ret;

	return SQ_TXN(ret, B(s), CRITICAL,
		      patch_in(B(s), pck, cid, tags_json, set_override, override));
}

/* ---------------------------------------------------------------------------
 * Asynchronous actions.
 */

static const char sql_async_purge[] = "DELETE FROM async_actions WHERE created_at < ?1";
static const char sql_async_exists[] = "SELECT 1 FROM async_actions WHERE id = ?1";
static const char sql_async_insert[] =
	"INSERT INTO async_actions (id, provider_config_key, connection_id, action, status,"
	" created_at, host_id) VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6)";
static const char sql_async_status[] = "SELECT status = 'running' FROM async_actions WHERE id = ?1";
static const char sql_async_finish[] =
	"UPDATE async_actions SET status = ?2, execution_id = ?3, output = ?4, error = ?5,"
	" finished_at = ?6 WHERE id = ?1";
static const char sql_async_recover[] =
	"UPDATE async_actions SET status = 'failed', finished_at = ?1,"
	" error = '{\"message\":\"" STORE_INTERRUPTED_ERROR "\",\"payload\":null}'"
	" WHERE status = 'running'";

/* Purges the expired actions and records id, new (inside a transaction):
 * STORE_ECONFLICT when id is taken. */
static int async_create_in(struct sq *b, const char *id, const char *pck, const char *cid,
			   const char *action, int64_t now)
{
	int ret;

	ret = sq_exec(b, sql_async_purge, "purge async actions",
		      STORE_ARGS(arg_i64(now - STORE_ASYNC_TTL_MS)));
	if (!ret) {
		ret = sq_row(b, sql_async_exists, "read async action", STORE_ARGS(arg_text(id)),
			     NULL, NULL);
		ret = ret == 0 ? STORE_ECONFLICT : ret == STORE_ENOTFOUND ? 0 : ret;
	}
	if (!ret)
		ret = sq_exec(b, sql_async_insert, "record async action",
			      STORE_ARGS(arg_text(id), arg_text(pck), arg_text(cid),
					 arg_text(action), arg_i64(now), arg_text(b->host_id)));
	return ret;
}

int sq_async_create(struct store *s, const char *id, const char *pck, const char *cid,
		    const char *action, int64_t now)
{
	int ret;

	return SQ_TXN(ret, B(s), CRITICAL, async_create_in(B(s), id, pck, cid, action, now));
}

static int read_running(sqlite3_stmt *st, void *user)
{
	(void)user;
	return sqlite3_column_int(st, 0) ? 0 : STORE_ESTATE;
}

/* Records the end of running action id (inside a transaction):
 * STORE_ESTATE when it is not running. */
static int async_finish_in(struct sq *b, const char *id, int64_t execution_id, bool ok,
			   const char *output, const char *error, int64_t now)
{
	int ret;

	ret = sq_row(b, sql_async_status, "read async action", STORE_ARGS(arg_text(id)),
		     read_running, NULL);
	if (!ret)
		ret = sq_exec(b, sql_async_finish, "finish async action",
			      STORE_ARGS(arg_text(id), arg_text(ok ? "succeeded" : "failed"),
					 arg_id(execution_id), arg_text(output), arg_text(error),
					 arg_i64(now)));
	return ret;
}

int sq_async_finish(struct store *s, const char *id, int64_t execution_id, bool ok,
		    const char *output, const char *error, int64_t now)
{
	int ret;

	return SQ_TXN(ret, B(s), CRITICAL,
		      async_finish_in(B(s), id, execution_id, ok, output, error, now));
}

static int read_async(sqlite3_stmt *st, void *user)
{
	struct store_row r = sq_row_of(st);

	return store_row_async(&r, user);
}

int sq_async_get(struct store *s, const char *id, int64_t not_before, struct store_async_action **out)
{
	return sq_get(B(s), store_sql_async_get, "read async action",
		      STORE_ARGS(arg_text(id), arg_i64(not_before)), read_async, out);
}

int sq_async_recover(struct store *s, int64_t now)
{
	int64_t changed;

	return sq_write(B(s), CRITICAL, sql_async_recover, "recover async actions",
			STORE_ARGS(arg_i64(now)), &changed);
}

/* ---------------------------------------------------------------------------
 * Webhook deliveries.
 */

static const char sql_wh_purge[] =
	"DELETE FROM webhook_deliveries WHERE status <> 'pending' AND received_at < ?1";
static const char sql_wh_insert[] =
	"INSERT INTO webhook_deliveries (integration, headers, body, status, received_at,"
	" next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
static const char sql_wh_due[] =
	"SELECT " STORE_WEBHOOK_COLS("body") " FROM webhook_deliveries"
	" WHERE status = 'pending' AND next_attempt_at <= ?1 ORDER BY next_attempt_at, id LIMIT 1";
static const char sql_wh_attempt[] =
	"UPDATE webhook_deliveries SET attempts = attempts + 1, status = ?2, last_error = ?3,"
	" next_attempt_at = CASE WHEN ?2 = 'pending' THEN ?4 ELSE NULL END,"
	" delivered_at = CASE WHEN ?2 = 'delivered' THEN ?5 ELSE delivered_at END WHERE id = ?1";
static const char sql_wh_list[] =
	"SELECT " STORE_WEBHOOK_COLS("NULL") " FROM webhook_deliveries"
	" WHERE (?1 IS NULL OR integration = ?1) AND (?2 = 0 OR id < ?2)"
	" ORDER BY id DESC LIMIT ?3";

/* Purges the old deliveries and records one (inside a transaction). */
static int webhook_insert_in(struct sq *b, const char *integration, const char *headers,
			     const char *body, size_t len, enum store_webhook_status status,
			     int64_t now, int64_t *id)
{
	int ret;

	ret = sq_exec(b, sql_wh_purge, "purge webhooks",
		      STORE_ARGS(arg_i64(now - STORE_WEBHOOK_TTL_MS)));
	if (!ret)
		ret = sq_exec(b, sql_wh_insert, "record webhook",
		      STORE_ARGS(arg_text(integration), arg_text(headers), arg_blob(body, len),
				 arg_text(store_webhook_status_name(status)), arg_i64(now),
				 status == STORE_WEBHOOK_PENDING ? arg_i64(now) : arg_null()));
	if (!ret)
		*id = sqlite3_last_insert_rowid(b->db);
	return ret;
}

int sq_webhook_insert(struct store *s, const char *integration, const char *headers,
		      const char *body, size_t len, enum store_webhook_status status, int64_t now,
		      int64_t *id)
{
	int ret;

	return SQ_TXN(ret, B(s), CRITICAL,
		      webhook_insert_in(B(s), integration, headers, body, len, status, now, id));
}

/* A delivery from a row of sql_wh_due / sql_wh_list. */
static int wh_from_row(sqlite3_stmt *st, struct store_webhook **out)
{
	struct store_row r = sq_row_of(st);

	return store_row_webhook(&r, out);
}

static int read_wh(sqlite3_stmt *st, void *user)
{
	return wh_from_row(st, user);
}

int sq_webhook_due(struct store *s, int64_t now, struct store_webhook **out)
{
	return sq_get(B(s), sql_wh_due, "read due webhook", STORE_ARGS(arg_i64(now)), read_wh, out);
}

int sq_webhook_attempt(struct store *s, int64_t id, enum store_webhook_status status,
		       const char *error, int64_t next_attempt_at, int64_t now)
{
	int64_t changed;
	int ret = sq_write(B(s), CRITICAL, sql_wh_attempt, "record webhook attempt",
			   STORE_ARGS(arg_i64(id), arg_text(store_webhook_status_name(status)),
				      arg_text(error), arg_i64(next_attempt_at), arg_i64(now)),
			   &changed);

	return !ret && changed == 0 ? STORE_ENOTFOUND : ret;
}

/* sq_page's decode over sql_wh_list: a delivery. */
static int wh_item(sqlite3_stmt *st, void *item, void *ctx)
{
	(void)ctx;
	return wh_from_row(st, item);
}

int sq_webhook_list(struct store *s, const char *integration, size_t limit, int64_t cursor,
		    struct store_webhook ***items, size_t *n, int64_t *next_cursor)
{
	struct sq_page p = {.size = sizeof(struct store_webhook *), .decode = wh_item};
	struct store_webhook **v;
	struct sq *b;
	int ret;

	b = sq_read_lock(B(s));
	/* one row more than asked says whether there is a next page */
	ret = sq_rows(b, sql_wh_list, "list webhooks",
		      STORE_ARGS(arg_text(integration), arg_i64(cursor),
				 arg_i64((int64_t)limit + 1)),
		      sq_page_add, &p);
	sq_unlock(b);
	v = p.v;
	if (ret) {
		store_webhook_list_free(v, p.n);
		return ret;
	}
	if (p.n > limit) {
		store_webhook_free(v[limit]);
		p.n = limit;
		*next_cursor = v[limit - 1]->id;
	}
	*items = v;
	*n = p.n;
	return 0;
}
