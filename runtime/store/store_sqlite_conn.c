/*
 * store_sqlite_conn.c - connections and Idempotency-Key records in the SQLite
 * back end: the outbox upsert (a connection, its post-connection-creation
 * event and the request's Idempotency-Key record in one transaction), reads
 * and lists, deletion marks and deletes, metadata. Locking and durability:
 * the top of store_sqlite.c.
 */
#include "store_sqlite_priv.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ---------------------------------------------------------------------------
 * Connections.
 */

static const char sql_conn_state[] =
	"SELECT id, deleting, created_at FROM connections"
	" WHERE provider_config_key = ?1 AND connection_id = ?2";
static const char sql_conn_insert[] =
	"INSERT INTO connections (connection_id, provider_config_key, provider, credentials,"
	" credentials_encrypted, connection_config, metadata, created_at, updated_at)"
	" VALUES (?1, ?2, ?3, ?4, ?5, COALESCE(?6, '{}'), COALESCE(?7, '{}'), ?8, ?8)";
static const char sql_conn_update[] =
	"UPDATE connections SET provider = ?2, credentials = ?3, credentials_encrypted = ?4,"
	" connection_config = COALESCE(?5, connection_config), metadata = COALESCE(?6, metadata),"
	" updated_at = ?7 WHERE id = ?1";
static const char sql_event_insert[] =
	"INSERT INTO events (type, connection_id, provider_config_key, script, retry_of, status,"
	" generation, created_at, claimed_at)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
static const char sql_idem_purge[] = "DELETE FROM idempotency_keys WHERE created_at < ?1";
static const char sql_idem_exists[] = "SELECT 1 FROM idempotency_keys WHERE key = ?1";
static const char sql_idem_insert[] =
	"INSERT INTO idempotency_keys (key, method_path, request_hash, status, body, created_at)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/* Looks the connection up inside a transaction: 0 and its row id (and
 * deleting flag, created_at) when it exists, STORE_ENOTFOUND when not. */
static int conn_state(struct sq *b, const char *pck, const char *cid, int64_t *id,
		      bool *deleting, int64_t *created_at)
{
	sqlite3_stmt *st;
	int ret = sq_prep(b, sql_conn_state, &st);

	*id = 0;
	*deleting = false;
	if (created_at)
		*created_at = 0;
	if (ret)
		return ret;
	sq_bind_text(st, 1, pck);
	sq_bind_text(st, 2, cid);
	ret = sq_step_row(b, st, "read connection");
	if (ret == 0) {
		*id = sqlite3_column_int64(st, 0);
		*deleting = sqlite3_column_int(st, 1) != 0;
		if (created_at)
			*created_at = sqlite3_column_int64(st, 2);
	}
	sq_release(b, st);
	return ret;
}

/* Inside a transaction: 0 when an event may be recorded for the connection
 * (it exists and is not being deleted, or it does not exist: validate runs
 * before it is stored, a retry may outlive it), STORE_EDELETING when not. */
int sq_conn_accepts_events(struct sq *b, const char *pck, const char *cid)
{
	int64_t row;
	bool deleting;
	int ret = conn_state(b, pck, cid, &row, &deleting, NULL);

	if (ret == STORE_ENOTFOUND)
		return 0;
	return ret == 0 && deleting ? STORE_EDELETING : ret;
}

/* Inserts an event inside a transaction. */
int sq_event_add(struct sq *b, const char *type, const char *cid, const char *pck,
		 const char *script, int64_t retry_of, bool claim, int64_t generation,
		 int64_t now, int64_t *event_id)
{
	sqlite3_stmt *st;
	int ret = sq_prep(b, sql_event_insert, &st);

	*event_id = 0;
	if (ret)
		return ret;
	sq_bind_text(st, 1, type);
	sq_bind_text(st, 2, cid);
	sq_bind_text(st, 3, pck);
	sq_bind_text(st, 4, script);
	sq_bind_id(st, 5, retry_of);
	sq_bind_text(st, 6, claim ? "claimed" : "pending");
	if (claim) {
		sqlite3_bind_int64(st, 7, generation);
		sqlite3_bind_int64(st, 9, now);
	}
	sqlite3_bind_int64(st, 8, now);
	ret = sq_run(b, st, "insert event");
	if (!ret)
		*event_id = sqlite3_last_insert_rowid(b->db);
	sq_release(b, st);
	return ret;
}

/* Purges expired idempotency records, then says whether key is recorded. */
static int idem_purge_check(struct sq *b, const char *key, int64_t now)
{
	sqlite3_stmt *st;
	int ret;

	ret = sq_prep(b, sql_idem_purge, &st);
	if (ret)
		return ret;
	sqlite3_bind_int64(st, 1, now - STORE_IDEMPOTENCY_TTL_MS);
	ret = sq_run(b, st, "purge idempotency keys");
	sq_release(b, st);
	if (ret)
		return ret;
	ret = sq_prep(b, sql_idem_exists, &st);
	if (ret)
		return ret;
	sq_bind_text(st, 1, key);
	ret = sq_step_row(b, st, "read idempotency key");
	sq_release(b, st);
	return ret == 0 ? STORE_ECONFLICT : ret == STORE_ENOTFOUND ? 0 : ret;
}

static int idem_insert(struct sq *b, const struct store_idempotency_input *in, int status,
		       const char *body, int64_t now)
{
	sqlite3_stmt *st;
	int ret = sq_prep(b, sql_idem_insert, &st);

	if (ret)
		return ret;
	sq_bind_text(st, 1, in->key);
	sq_bind_text(st, 2, in->method_path);
	sq_bind_text(st, 3, in->request_hash);
	sqlite3_bind_int(st, 4, status);
	sq_bind_text(st, 5, body ? body : "");
	sqlite3_bind_int64(st, 6, now);
	ret = sq_run(b, st, "insert idempotency key");
	sq_release(b, st);
	return ret;
}

int sq_connection_upsert(struct store *s, const struct store_connection_input *in,
			 const struct store_idempotency_input *idem,
			 struct store_upsert_result *r)
{
	struct sq *b = B(s);
	sqlite3_stmt *st = NULL;
	uint8_t *blob = NULL;
	size_t len = 0;
	bool encrypted, deleting;
	int64_t now = util_now_ms(), row, created_at;
	char *body = NULL;
	int status, ret;

	/* Seal outside the lock: it does not touch the database. */
	ret = store_seal_credentials(s, in->provider_config_key, in->connection_id,
				     in->credentials, &blob, &len, &encrypted);
	if (ret)
		return ret;
	ret = sq_txn_begin(b, CRITICAL);
	if (ret) {
		store_blob_free(blob, len);
		return ret;
	}
	if (idem) {
		ret = idem_purge_check(b, idem->key, now);
		if (ret)
			goto out;
	}
	ret = conn_state(b, in->provider_config_key, in->connection_id, &row, &deleting,
			 &created_at);
	if (ret == 0 && deleting) {
		ret = STORE_EDELETING;
		goto out;
	}
	if (ret == STORE_ENOTFOUND) {
		ret = sq_prep(b, sql_conn_insert, &st);
		if (ret)
			goto out;
		sq_bind_text(st, 1, in->connection_id);
		sq_bind_text(st, 2, in->provider_config_key);
		sq_bind_text(st, 3, in->provider);
		sqlite3_bind_blob(st, 4, blob, (int)len, SQLITE_STATIC);
		sqlite3_bind_int(st, 5, encrypted);
		sq_bind_text(st, 6, in->connection_config);
		sq_bind_text(st, 7, in->metadata);
		sqlite3_bind_int64(st, 8, now);
		ret = sq_run(b, st, "insert connection");
		if (ret)
			goto out;
		r->connection_row_id = sqlite3_last_insert_rowid(b->db);
		r->created = true;
		r->created_at = now;
	} else if (ret == 0) {
		ret = sq_prep(b, sql_conn_update, &st);
		if (ret)
			goto out;
		sqlite3_bind_int64(st, 1, row);
		sq_bind_text(st, 2, in->provider);
		sqlite3_bind_blob(st, 3, blob, (int)len, SQLITE_STATIC);
		sqlite3_bind_int(st, 4, encrypted);
		sq_bind_text(st, 5, in->connection_config);
		sq_bind_text(st, 6, in->metadata);
		sqlite3_bind_int64(st, 7, now);
		ret = sq_run(b, st, "update connection");
		if (ret)
			goto out;
		r->connection_row_id = row;
		r->created = false;
		r->created_at = created_at;
	} else {
		goto out;
	}
	r->updated_at = now;
	ret = sq_event_add(b, STORE_EVENT_POST_CONNECTION_CREATION, in->connection_id,
			   in->provider_config_key, NULL, 0, false, 0, now, &r->event_id);
	if (ret)
		goto out;
	if (idem) {
		status = idem->status;
		if (idem->respond) {
			status = 0;
			if (idem->respond(idem->user, r, &status, &body) != 0 || status < 100 ||
			    status > 599) {
				ret = STORE_ECALLBACK;
				goto out;
			}
			if (body && strlen(body) > STORE_JSON_MAX) {
				ret = STORE_ETOOBIG;
				goto out;
			}
		}
		ret = idem_insert(b, idem, status, idem->respond ? body : idem->body, now);
	}
out:
	sq_release(b, st);
	ret = sq_txn_end(b, ret);
	free(body);
	store_blob_free(blob, len);
	return ret;
}

static const char sql_conn_get[] =
	"SELECT id, connection_id, provider_config_key, provider, credentials,"
	" credentials_encrypted, connection_config, metadata, created_at, updated_at, deleting"
	" FROM connections WHERE provider_config_key = ?1 AND connection_id = ?2";
static const char sql_conn_list[] =
	"SELECT id, connection_id, provider_config_key, provider, NULL,"
	" credentials_encrypted, connection_config, metadata, created_at, updated_at, deleting"
	" FROM connections WHERE (?1 IS NULL OR connection_id = ?1)"
	" AND (?2 IS NULL OR instr(',' || ?2 || ',', ',' || provider_config_key || ',') > 0)"
	" AND (?3 IS NULL OR instr(connection_id, ?3) > 0)"
	" ORDER BY created_at DESC, id DESC LIMIT ?4 OFFSET ?5";

/* Builds a connection from a row of sql_conn_get / sql_conn_list. */
static int conn_from_row(struct store *s, sqlite3_stmt *st, bool with_credentials,
			 struct store_connection **out)
{
	struct store_connection *c = calloc(1, sizeof(*c));
	int ret = 0;

	*out = NULL;
	if (!c)
		return STORE_ENOMEM;
	c->id = sqlite3_column_int64(st, 0);
	c->connection_id = sq_col_dup(st, 1, &ret);
	c->provider_config_key = sq_col_dup(st, 2, &ret);
	c->provider = sq_col_dup(st, 3, &ret);
	c->credentials_encrypted = sqlite3_column_int(st, 5) != 0;
	c->connection_config = sq_col_dup(st, 6, &ret);
	c->metadata = sq_col_dup(st, 7, &ret);
	c->created_at = sqlite3_column_int64(st, 8);
	c->updated_at = sqlite3_column_int64(st, 9);
	c->deleting = sqlite3_column_int(st, 10) != 0;
	if (ret)
		goto out;
	if (with_credentials) {
		const void *blob = sqlite3_column_blob(st, 4);
		size_t len = (size_t)sqlite3_column_bytes(st, 4);

		ret = store_open_credentials(s, c->provider_config_key, c->connection_id,
					     blob ? blob : "", len, c->credentials_encrypted,
					     &c->credentials);
	}
out:
	if (ret)
		store_connection_free(c);
	else
		*out = c;
	return ret;
}

int sq_connection_get(struct store *s, const char *pck, const char *cid,
		      struct store_connection **out)
{
	struct sq *b = B(s);
	sqlite3_stmt *st;
	int ret;

	sq_lock(b);
	ret = sq_prep(b, sql_conn_get, &st);
	if (ret)
		goto out;
	sq_bind_text(st, 1, pck);
	sq_bind_text(st, 2, cid);
	ret = sq_step_row(b, st, "read connection");
	if (ret == 0)
		ret = conn_from_row(s, st, true, out);
	sq_release(b, st);
out:
	sq_unlock(b);
	return ret;
}

int sq_connection_list(struct store *s, const struct store_connection_filter *f,
		       struct store_connection ***items, size_t *n)
{
	struct sq *b = B(s);
	struct store_connection **v = NULL, *c;
	size_t count = 0, alloc = 0;
	sqlite3_stmt *st;
	int ret, rc;

	sq_lock(b);
	ret = sq_prep(b, sql_conn_list, &st);
	if (ret)
		goto out;
	sq_bind_text(st, 1, f->connection_id);
	sq_bind_text(st, 2, f->provider_config_keys && *f->provider_config_keys
				    ? f->provider_config_keys : NULL);
	sq_bind_text(st, 3, f->search && *f->search ? f->search : NULL);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)f->limit);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)f->offset);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (count == alloc) {
			size_t na = alloc ? alloc * 2 : 16;
			struct store_connection **t = realloc(v, na * sizeof(*v));

			if (!t) {
				ret = STORE_ENOMEM;
				break;
			}
			v = t;
			alloc = na;
		}
		ret = conn_from_row(s, st, false, &c);
		if (ret)
			break;
		v[count++] = c;
	}
	if (!ret && rc != SQLITE_ROW && rc != SQLITE_DONE)
		ret = sq_fail(b, rc, "list connections");
	sq_release(b, st);
out:
	sq_unlock(b);
	if (ret) {
		store_connection_list_free(v, count);
		return ret;
	}
	*items = v;
	*n = count;
	return 0;
}

static const char sql_conn_mark_deleting[] =
	"UPDATE connections SET deleting = 1, updated_at = ?2 WHERE id = ?1";

int sq_connection_mark_deleting(struct store *s, const char *pck, const char *cid,
				bool claim, int64_t generation, int64_t *event_id)
{
	struct sq *b = B(s);
	sqlite3_stmt *st = NULL;
	int64_t row, now = util_now_ms();
	bool deleting;
	int ret;

	ret = sq_txn_begin(b, CRITICAL);
	if (ret)
		return ret;
	ret = conn_state(b, pck, cid, &row, &deleting, NULL);
	if (ret)
		goto out;
	if (deleting) {
		ret = STORE_EDELETING;
		goto out;
	}
	ret = sq_prep(b, sql_conn_mark_deleting, &st);
	if (ret)
		goto out;
	sqlite3_bind_int64(st, 1, row);
	sqlite3_bind_int64(st, 2, now);
	ret = sq_run(b, st, "mark connection deleting");
	if (ret)
		goto out;
	ret = sq_event_add(b, STORE_EVENT_PRE_CONNECTION_DELETION, cid, pck, NULL, 0, claim,
			   generation, now, event_id);
out:
	sq_release(b, st);
	return sq_txn_end(b, ret);
}

static const char sql_conn_delete[] =
	"DELETE FROM connections WHERE provider_config_key = ?1 AND connection_id = ?2";

int sq_connection_delete(struct store *s, const char *pck, const char *cid)
{
	struct sq *b = B(s);
	sqlite3_stmt *st;
	int ret;

	ret = sq_lock_for(b, CRITICAL);
	if (ret)
		return ret;
	ret = sq_prep(b, sql_conn_delete, &st);
	if (ret)
		goto out;
	sq_bind_text(st, 1, pck);
	sq_bind_text(st, 2, cid);
	ret = sq_run(b, st, "delete connection");
	if (!ret && sqlite3_changes(b->db) == 0)
		ret = STORE_ENOTFOUND;
	sq_release(b, st);
out:
	sq_unlock(b);
	return ret;
}

static const char sql_meta_read[] =
	"SELECT metadata, deleting FROM connections WHERE provider_config_key = ?1 AND connection_id = ?2";
static const char sql_meta_write[] =
	"UPDATE connections SET metadata = ?3, updated_at = ?4"
	" WHERE provider_config_key = ?1 AND connection_id = ?2";

/* One connection's metadata, inside the caller's transaction. */
static int meta_write_one(struct sq *b, const char *pck, const char *cid, const char *json,
			  bool merge, bool refuse_deleting)
{
	sqlite3_stmt *st = NULL;
	char *merged = NULL;
	int ret;

	ret = sq_prep(b, sql_meta_read, &st);
	if (ret)
		goto out;
	sq_bind_text(st, 1, pck);
	sq_bind_text(st, 2, cid);
	ret = sq_step_row(b, st, "read metadata");
	if (ret)
		goto out;
	if (refuse_deleting && sqlite3_column_int(st, 1)) {
		ret = STORE_EDELETING;
		goto out;
	}
	if (merge) {
		ret = store_json_merge((const char *)sqlite3_column_text(st, 0), json, &merged);
		if (ret)
			goto out;
	}
	sq_release(b, st);
	st = NULL;
	ret = sq_prep(b, sql_meta_write, &st);
	if (ret)
		goto out;
	sq_bind_text(st, 1, pck);
	sq_bind_text(st, 2, cid);
	sq_bind_text(st, 3, merge ? merged : json);
	sqlite3_bind_int64(st, 4, util_now_ms());
	ret = sq_run(b, st, "write metadata");
out:
	sq_release(b, st);
	free(merged);
	return ret;
}

int sq_connection_metadata(struct store *s, const char *pck, const char *const *cids,
			   size_t n, const char *json, bool merge, bool refuse_deleting,
			   size_t *failed)
{
	struct sq *b = B(s);
	int ret;

	ret = sq_txn_begin(b, CRITICAL);
	if (ret)
		return ret;
	for (size_t i = 0; i < n && !ret; i++) {
		ret = meta_write_one(b, pck, cids[i], json, merge, refuse_deleting);
		if (ret)
			*failed = i;
	}
	return sq_txn_end(b, ret);
}

/* ---------------------------------------------------------------------------
 * Idempotency.
 */

static const char sql_idem_get[] =
	"SELECT key, method_path, request_hash, status, body, created_at FROM idempotency_keys"
	" WHERE key = ?1 AND created_at >= ?2";

int sq_idempotency_get(struct store *s, const char *key, struct store_idempotency **out)
{
	struct sq *b = B(s);
	struct store_idempotency *r = NULL;
	sqlite3_stmt *st;
	int ret;

	sq_lock(b);
	ret = sq_prep(b, sql_idem_get, &st);
	if (ret)
		goto out;
	sq_bind_text(st, 1, key);
	sqlite3_bind_int64(st, 2, util_now_ms() - STORE_IDEMPOTENCY_TTL_MS);
	ret = sq_step_row(b, st, "read idempotency key");
	if (ret == 0) {
		r = calloc(1, sizeof(*r));
		if (!r) {
			ret = STORE_ENOMEM;
		} else {
			r->key = sq_col_dup(st, 0, &ret);
			r->method_path = sq_col_dup(st, 1, &ret);
			r->request_hash = sq_col_dup(st, 2, &ret);
			r->status = sqlite3_column_int(st, 3);
			r->body = sq_col_dup(st, 4, &ret);
			r->created_at = sqlite3_column_int64(st, 5);
		}
	}
	sq_release(b, st);
out:
	sq_unlock(b);
	if (ret)
		store_idempotency_free(r);
	else
		*out = r;
	return ret;
}

int sq_idempotency_put(struct store *s, const struct store_idempotency_input *in)
{
	struct sq *b = B(s);
	int64_t now = util_now_ms();
	int ret;

	ret = sq_txn_begin(b, CRITICAL);
	if (ret)
		return ret;
	ret = idem_purge_check(b, in->key, now);
	if (!ret)
		ret = idem_insert(b, in, in->status, in->body, now);
	return sq_txn_end(b, ret);
}
