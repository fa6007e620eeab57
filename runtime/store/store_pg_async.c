/*
 * store_pg_async.c - connection tags and webhook URL override,
 * asynchronous actions' results and incoming webhook deliveries in the
 * PostgreSQL back end: store_sqlite_async.c's operations, made safe for
 * several hosts on one database.
 *
 * - An asynchronous action records the host that runs it (schema step
 *   3 -> 4): a host's start-up settles only its own running actions, and a
 *   survivor settles a dead host's with its executions (pg_settle_host),
 *   never another live host's.
 * - A due webhook delivery is leased to the host that takes it
 *   (store_webhook_due moves its next_attempt_at PG_WEBHOOK_LEASE_MS ahead
 *   in the statement that picks it, FOR UPDATE SKIP LOCKED), so two hosts
 *   forwarding at once never send one delivery twice; the attempt's record
 *   replaces the lease, and a host that dies holding one leaves the
 *   delivery to the others once the lease has run out.
 * - Rows are decoded by store_row.c, as SQLite's are.
 */
#include "store_pg_priv.h"

#include <stdlib.h>
#include <string.h>

#include "store_sql.h"
#include "util.h"

/* Longer than a forwarding attempt may take (api_webhooks.c's timeout). */
#define PG_WEBHOOK_LEASE_MS 60000

/* After a conditional write that changed nothing: STORE_ENOTFOUND when
 * sql (a read of the row) finds none, else `otherwise`. */
static int why_unchanged(struct store *s, const char *sql, const char *what,
			 const struct store_arg *args, int otherwise)
{
	PGresult *r;
	int ret = pg_read(s, sql, what, args, &r);

	if (!ret)
		ret = PQntuples(r) == 0 ? STORE_ENOTFOUND : otherwise;
	PQclear(r);
	return ret;
}

/* ---------------------------------------------------------------------------
 * Connection tags and webhook URL override.
 */

int pg_connection_patch(struct store *s, const char *pck, const char *cid, const char *tags_json,
			bool set_override, const char *override)
{
	int64_t changed;
	int ret;

	ret = pg_write(s, "UPDATE connections SET tags = coalesce($3, tags),"
		     " webhook_url_override = CASE WHEN $4::boolean THEN $5 ELSE webhook_url_override END,"
		     " updated_at = $6"
		     " WHERE provider_config_key = $1 AND connection_id = $2 AND NOT deleting",
		     "patch connection",
		     STORE_ARGS(arg_text(pck), arg_text(cid), arg_text(tags_json),
				pg_bool(set_override), arg_text(override), arg_i64(util_now_ms())),
		     &changed);
	if (!ret && changed == 0)
		ret = why_unchanged(s, "SELECT 1 FROM connections"
				    " WHERE provider_config_key = $1 AND connection_id = $2",
				    "read connection", STORE_ARGS(arg_text(pck), arg_text(cid)),
				    STORE_EDELETING);
	return ret;
}

/* ---------------------------------------------------------------------------
 * Asynchronous actions.
 */

int pg_async_create(struct store *s, const char *id, const char *pck, const char *cid,
		    const char *action, int64_t now)
{
	int64_t changed;
	int ret;

	/* the purge stands on its own: a failed insert need not undo it */
	ret = pg_write(s, "DELETE FROM async_actions WHERE created_at < $1", "purge async actions",
		       STORE_ARGS(arg_i64(now - STORE_ASYNC_TTL_MS)), &changed);
	if (!ret)
		ret = pg_write(s, "INSERT INTO async_actions (id, provider_config_key, connection_id,"
			       " action, status, created_at, host_id)"
			       " VALUES ($1, $2, $3, $4, 'running', $5, $6) ON CONFLICT (id) DO NOTHING",
			       "record async action",
			       STORE_ARGS(arg_text(id), arg_text(pck), arg_text(cid),
					  arg_text(action), arg_i64(now), arg_text(s->host_id)),
			       &changed);
	return !ret && changed == 0 ? STORE_ECONFLICT : ret;
}

int pg_async_finish(struct store *s, const char *id, int64_t execution_id, bool ok,
		    const char *output, const char *error, int64_t now)
{
	int64_t changed;
	int ret;

	ret = pg_write(s, "UPDATE async_actions SET status = $2, execution_id = $3, output = $4,"
		     " error = $5, finished_at = $6 WHERE id = $1 AND status = 'running'",
		     "finish async action",
		     STORE_ARGS(arg_text(id), arg_text(ok ? "succeeded" : "failed"),
				arg_id(execution_id), arg_text(output), arg_text(error),
				arg_i64(now)),
		     &changed);
	if (!ret && changed == 0)
		ret = why_unchanged(s, "SELECT 1 FROM async_actions WHERE id = $1",
				    "read async action", STORE_ARGS(arg_text(id)), STORE_ESTATE);
	return ret;
}

int pg_async_get(struct store *s, const char *id, int64_t not_before,
		 struct store_async_action **out)
{
	struct store_row row;
	PGresult *r;
	int ret;

	ret = pg_read_row(s, store_sql_async_get, "read async action",
			  STORE_ARGS(arg_text(id), arg_i64(not_before)), &r, &row);
	if (!ret)
		ret = store_row_async(&row, out);
	PQclear(r);
	return ret;
}

int pg_async_settle(struct pgc *c, const char *host_id, int64_t now)
{
	return pg_x(c, "UPDATE async_actions SET status = 'failed', finished_at = $2,"
		    " error = '{\"message\":\"" STORE_INTERRUPTED_ERROR "\",\"payload\":null}'"
		    " WHERE status = 'running' AND host_id = $1",
		    "recover async actions", STORE_ARGS(arg_text(host_id), arg_i64(now)), NULL);
}

/* ---------------------------------------------------------------------------
 * Webhook deliveries.
 */

int pg_webhook_insert(struct store *s, const char *integration, const char *headers,
		      const char *body, size_t len, enum store_webhook_status status, int64_t now,
		      int64_t *id)
{
	struct store_row row;
	PGresult *r;
	int ret;

	/* the purge touches other rows only: one statement, one round trip */
	ret = pg_read_row(s, "WITH purged AS (DELETE FROM webhook_deliveries"
			  "  WHERE status <> 'pending' AND received_at < $7)"
			  " INSERT INTO webhook_deliveries (integration, headers, body, status,"
			  " received_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
			  "record webhook",
			  STORE_ARGS(arg_text(integration), arg_text(headers), arg_blob(body, len),
				     arg_text(store_webhook_status_name(status)), arg_i64(now),
				     status == STORE_WEBHOOK_PENDING ? arg_i64(now) : arg_null(),
				     arg_i64(now - STORE_WEBHOOK_TTL_MS)),
			  &r, &row);
	if (!ret)
		*id = row.ops->i64(&row, 0);
	PQclear(r);
	return ret == STORE_ENOTFOUND ? STORE_EIO : ret;
}

/* The lease runs on the clock (now is the caller's "due by", which may be
 * any time). */
int pg_webhook_due(struct store *s, int64_t now, struct store_webhook **out)
{
	struct store_row row;
	PGresult *r;
	int ret;

	ret = pg_read_row(s,
			  "UPDATE webhook_deliveries SET next_attempt_at = $2 WHERE id ="
			  " (SELECT id FROM webhook_deliveries WHERE status = 'pending'"
			  "  AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT 1"
			  "  FOR UPDATE SKIP LOCKED)"
			  " RETURNING " STORE_WEBHOOK_COLS("body"),
			  "take due webhook",
			  STORE_ARGS(arg_i64(now), arg_i64(util_now_ms() + PG_WEBHOOK_LEASE_MS)),
			  &r, &row);
	if (!ret)
		ret = store_row_webhook(&row, out);
	PQclear(r);
	return ret;
}

int pg_webhook_attempt(struct store *s, int64_t id, enum store_webhook_status status,
		       const char *error, int64_t next_attempt_at, int64_t now)
{
	int64_t changed;
	int ret;

	ret = pg_write(s, "UPDATE webhook_deliveries SET attempts = attempts + 1, status = $2,"
		     " last_error = $3,"
		     " next_attempt_at = CASE WHEN $2 = 'pending' THEN $4::bigint ELSE NULL END,"
		     " delivered_at = CASE WHEN $2 = 'delivered' THEN $5::bigint ELSE delivered_at END"
		     " WHERE id = $1",
		     "record webhook attempt",
		     STORE_ARGS(arg_i64(id), arg_text(store_webhook_status_name(status)),
				arg_text(error), arg_i64(next_attempt_at), arg_i64(now)),
		     &changed);
	if (!ret && changed == 0)
		ret = STORE_ENOTFOUND;
	return ret;
}

int pg_webhook_list(struct store *s, const char *integration, size_t limit, int64_t cursor,
		    struct store_webhook ***items, size_t *n, int64_t *next_cursor)
{
	struct store_webhook **v = NULL;
	PGresult *r;
	int ret, rows;

	/* one row more than asked says whether there is a next page */
	ret = pg_read(s, "SELECT " STORE_WEBHOOK_COLS("NULL") " FROM webhook_deliveries"
		      " WHERE ($1::text IS NULL OR integration = $1::text) AND ($2 = 0 OR id < $2)"
		      " ORDER BY id DESC LIMIT $3", "list webhooks",
		      STORE_ARGS(arg_text(integration), arg_i64(cursor),
				 arg_i64((int64_t)limit + 1)), &r);
	if (ret)
		return ret;
	rows = PQntuples(r);
	if (rows > 0 && !(v = calloc((size_t)rows, sizeof(*v))))
		ret = STORE_ENOMEM;
	for (int i = 0; !ret && i < rows; i++) {
		struct store_row row = pg_row_of(r, i);

		ret = store_row_webhook(&row, &v[i]);
	}
	PQclear(r);
	if (ret) {
		store_webhook_list_free(v, (size_t)rows);
		return ret;
	}
	*n = (size_t)rows;
	if (*n > limit) {
		store_webhook_free(v[limit]);
		*n = limit;
		*next_cursor = v[limit - 1]->id;
	}
	*items = v;
	return 0;
}
