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

#include "store_sql.h"
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

/* A connection's row as the writes below need it. */
struct conn_state {
	int64_t id;
	bool deleting;
	int64_t created_at;
};

static int read_conn_state(sqlite3_stmt *st, void *user)
{
	struct conn_state *c = user;

	c->id = sqlite3_column_int64(st, 0);
	c->deleting = sqlite3_column_int(st, 1) != 0;
	c->created_at = sqlite3_column_int64(st, 2);
	return 0;
}

/* Looks the connection up inside a transaction: 0 and its state when it
 * exists, STORE_ENOTFOUND (and a zeroed state) when not. */
static int conn_state(struct sq *b, const char *pck, const char *cid, struct conn_state *c)
{
	memset(c, 0, sizeof(*c));
	return sq_row(b, sql_conn_state, "read connection",
		      STORE_ARGS(arg_text(pck), arg_text(cid)), read_conn_state, c);
}

/* Inside a transaction: store_events_accepted's verdict on the connection. */
int sq_conn_accepts_events(struct sq *b, const char *pck, const char *cid)
{
	struct conn_state c;
	int ret = conn_state(b, pck, cid, &c);

	return store_events_accepted(ret, c.deleting);
}

/* Inserts an event inside a transaction. */
int sq_event_add(struct sq *b, const char *type, const char *cid, const char *pck,
		 const char *script, int64_t retry_of, bool claim, int64_t generation,
		 int64_t now, int64_t *event_id)
{
	int ret = sq_exec(b, sql_event_insert, "insert event",
			  STORE_ARGS(arg_text(type), arg_text(cid), arg_text(pck), arg_text(script),
				     arg_id(retry_of), arg_text(claim ? "claimed" : "pending"),
				     claim ? arg_i64(generation) : arg_null(), arg_i64(now),
				     claim ? arg_i64(now) : arg_null()));

	*event_id = ret ? 0 : sqlite3_last_insert_rowid(b->db);
	return ret;
}

/* Purges expired idempotency records, then says whether key is recorded. */
static int idem_purge_check(struct sq *b, const char *key, int64_t now)
{
	int ret = sq_exec(b, store_sql_idem_purge, "purge idempotency keys",
			  STORE_ARGS(arg_i64(now - STORE_IDEMPOTENCY_TTL_MS)));

	if (ret)
		return ret;
	ret = sq_row(b, store_sql_idem_exists, "read idempotency key", STORE_ARGS(arg_text(key)),
		     NULL, NULL);
	return ret == 0 ? STORE_ECONFLICT : ret == STORE_ENOTFOUND ? 0 : ret;
}

static int idem_insert(struct sq *b, const struct store_idempotency_input *in, int status,
		       const char *body, int64_t now)
{
	return sq_exec(b, store_sql_idem_insert, "insert idempotency key",
		       STORE_ARGS(arg_text(in->key), arg_text(in->method_path),
				  arg_text(in->request_hash), arg_i64(status),
				  arg_text(body ? body : ""), arg_i64(now)));
}

/* The upsert's statements (sq_txn_run). */
struct upsert {
	const struct store_upsert_call *call;
	char *body; /* idem->respond's, freed by the caller */
};

static int upsert_op(struct sq *b, void *arg)
{
	struct upsert *up = arg;
	const struct store_upsert_call *u = up->call;
	const struct store_connection_input *in = u->in;
	const struct store_idempotency_input *idem = u->idem;
	struct store_upsert_result *r = u->r;
	struct conn_state c;
	const char *body;
	bool created;
	int status, ret;

	if (idem) {
		ret = idem_purge_check(b, idem->key, u->now);
		if (ret)
			return ret;
	}
	ret = conn_state(b, in->provider_config_key, in->connection_id, &c);
	if (ret == 0 && c.deleting)
		return STORE_EDELETING;
	created = ret == STORE_ENOTFOUND;
	if (created) {
		ret = sq_exec(b, sql_conn_insert, "insert connection",
			      STORE_ARGS(arg_text(in->connection_id),
					 arg_text(in->provider_config_key), arg_text(in->provider),
					 arg_blob(u->cred->blob, u->cred->len),
					 arg_i64(u->cred->encrypted),
					 arg_text(in->connection_config), arg_text(in->metadata),
					 arg_i64(u->now)));
		c.id = sqlite3_last_insert_rowid(b->db);
		c.created_at = u->now;
	} else if (ret == 0) {
		ret = sq_exec(b, sql_conn_update, "update connection",
			      STORE_ARGS(arg_i64(c.id), arg_text(in->provider),
					 arg_blob(u->cred->blob, u->cred->len),
					 arg_i64(u->cred->encrypted),
					 arg_text(in->connection_config), arg_text(in->metadata),
					 arg_i64(u->now)));
	}
	if (ret)
		return ret;
	r->connection_row_id = c.id;
	r->created = created;
	r->created_at = c.created_at;
	r->updated_at = u->now;
	ret = sq_event_add(b, STORE_EVENT_POST_CONNECTION_CREATION, in->connection_id,
			   in->provider_config_key, NULL, 0, false, 0, u->now, &r->event_id);
	if (ret || !idem)
		return ret;
	free(up->body); /* a retry after a batch's failure */
	ret = store_idem_response(idem, r, &status, &body, &up->body);
	return ret ? ret : idem_insert(b, idem, status, body, u->now);
}

int sq_connection_upsert(struct store *s, const struct store_upsert_call *u)
{
	struct upsert up = {.call = u};
	int ret = sq_txn_run(B(s), CRITICAL, upsert_op, &up);

	free(up.body);
	return ret;
}

static const char sql_conn_list[] =
	"SELECT " STORE_CONN_COLS("NULL")
	" FROM connections WHERE (?1 IS NULL OR connection_id = ?1)"
	" AND (?2 IS NULL OR instr(',' || ?2 || ',', ',' || provider_config_key || ',') > 0)"
	" AND (?3 IS NULL OR instr(connection_id, ?3) > 0)"
	" AND (?6 IS NULL OR NOT EXISTS (SELECT 1 FROM json_each(?6) AS want WHERE NOT EXISTS"
	"   (SELECT 1 FROM json_each(connections.tags) AS have"
	"    WHERE have.key = want.key AND have.value = want.value)))"
	" ORDER BY created_at DESC, id DESC LIMIT ?4 OFFSET ?5";

/* Builds a connection from a row of store_sql_conn_get / sql_conn_list. */
static int conn_from_row(struct store *s, sqlite3_stmt *st, bool with_credentials,
			 struct store_connection **out)
{
	struct store_row r = sq_row_of(st);

	return store_row_connection(s, &r, with_credentials, out);
}

/* What read_conn fills: a connection. */
struct conn_read {
	struct store *s;
	struct store_connection *one;
};

static int read_conn(sqlite3_stmt *st, void *user)
{
	struct conn_read *r = user;

	return conn_from_row(r->s, st, true, &r->one);
}

/* sq_page's decode over sql_conn_list: a connection (ctx: the store). */
static int conn_item(sqlite3_stmt *st, void *item, void *ctx)
{
	return conn_from_row(ctx, st, false, item);
}

int sq_connection_get(struct store *s, const char *pck, const char *cid,
		      struct store_connection **out)
{
	struct conn_read r = {.s = s};
	int ret = sq_get(B(s), store_sql_conn_get, "read connection",
			 STORE_ARGS(arg_text(pck), arg_text(cid)), read_conn, &r);

	if (!ret)
		*out = r.one;
	return ret;
}

int sq_connection_list(struct store *s, const struct store_connection_filter *f,
		       struct store_connection ***items, size_t *n)
{
	struct sq *b;
	struct sq_page p = {
		.size = sizeof(struct store_connection *), .decode = conn_item, .ctx = s};
	const char *pcks = f->provider_config_keys && *f->provider_config_keys
				   ? f->provider_config_keys : NULL;
	int ret;

	b = sq_read_lock(B(s));
	ret = sq_rows(b, sql_conn_list, "list connections",
		      STORE_ARGS(arg_text(f->connection_id), arg_text(pcks),
				 arg_text(f->search && *f->search ? f->search : NULL),
				 arg_i64((int64_t)f->limit), arg_i64((int64_t)f->offset),
				 arg_text(f->tags)),
		      sq_page_add, &p);
	sq_unlock(b);
	if (ret) {
		store_connection_list_free(p.v, p.n);
		return ret;
	}
	*items = p.v;
	*n = p.n;
	return 0;
}

static const char sql_conn_mark_deleting[] =
	"UPDATE connections SET deleting = 1, updated_at = ?2 WHERE id = ?1";

/* Marks a connection being deleted and records its pre-deletion event
 * (inside a transaction): STORE_EDELETING when it already is. */
static int mark_deleting_in(struct sq *b, const char *pck, const char *cid, bool claim,
			    int64_t generation, int64_t now, int64_t *event_id)
{
	struct conn_state c;
	int ret;

	ret = conn_state(b, pck, cid, &c);
	if (ret)
		return ret;
	if (c.deleting)
		return STORE_EDELETING;
	ret = sq_exec(b, sql_conn_mark_deleting, "mark connection deleting",
		      STORE_ARGS(arg_i64(c.id), arg_i64(now)));
	if (ret)
		return ret;
	return sq_event_add(b, STORE_EVENT_PRE_CONNECTION_DELETION, cid, pck, NULL, 0, claim,
			    generation, now, event_id);
}

int sq_connection_mark_deleting(struct store *s, const char *pck, const char *cid,
				bool claim, int64_t generation, int64_t *event_id)
{
	int64_t now = util_now_ms();
	int ret;

	return SQ_TXN(ret, B(s), CRITICAL,
		      mark_deleting_in(B(s), pck, cid, claim, generation, now, event_id));
}

static const char sql_conn_delete[] =
	"DELETE FROM connections WHERE provider_config_key = ?1 AND connection_id = ?2";

int sq_connection_delete(struct store *s, const char *pck, const char *cid)
{
	int64_t changed;
	int ret = sq_write(B(s), CRITICAL, sql_conn_delete, "delete connection",
			   STORE_ARGS(arg_text(pck), arg_text(cid)), &changed);

	return !ret && changed == 0 ? STORE_ENOTFOUND : ret;
}

static const char sql_meta_read[] =
	"SELECT metadata, deleting FROM connections WHERE provider_config_key = ?1 AND connection_id = ?2";
static const char sql_meta_write[] =
	"UPDATE connections SET metadata = ?3, updated_at = ?4"
	" WHERE provider_config_key = ?1 AND connection_id = ?2";

/* A metadata write: what it is asked, and (merge) the merged document. */
struct meta_write {
	const char *json;
	bool merge, refuse_deleting;
	char *merged;
};

static int read_meta(sqlite3_stmt *st, void *user)
{
	struct meta_write *m = user;

	if (m->refuse_deleting && sqlite3_column_int(st, 1))
		return STORE_EDELETING;
	if (!m->merge)
		return 0;
	return store_json_merge((const char *)sqlite3_column_text(st, 0), m->json, &m->merged);
}

/* One connection's metadata, inside the caller's transaction. */
static int meta_write_one(struct sq *b, const char *pck, const char *cid, const char *json,
			  bool merge, bool refuse_deleting)
{
	struct meta_write m = {.json = json, .merge = merge, .refuse_deleting = refuse_deleting};
	int ret;

	ret = sq_row(b, sql_meta_read, "read metadata", STORE_ARGS(arg_text(pck), arg_text(cid)),
		     read_meta, &m);
	if (!ret)
		ret = sq_exec(b, sql_meta_write, "write metadata",
			      STORE_ARGS(arg_text(pck), arg_text(cid),
					 arg_text(merge ? m.merged : json),
					 arg_i64(util_now_ms())));
	free(m.merged);
	return ret;
}

/* Every connection's metadata in turn (inside a transaction); *failed:
 * the first that failed. */
static int metadata_in(struct sq *b, const char *pck, const char *const *cids, size_t n,
		       const char *json, bool merge, bool refuse_deleting, size_t *failed)
{
	int ret = 0;

	for (size_t i = 0; i < n && !ret; i++) {
		ret = meta_write_one(b, pck, cids[i], json, merge, refuse_deleting);
		if (ret)
			*failed = i;
	}
	return ret;
}

int sq_connection_metadata(struct store *s, const char *pck, const char *const *cids,
			   size_t n, const char *json, bool merge, bool refuse_deleting,
			   size_t *failed)
{
	int ret;

	return SQ_TXN(ret, B(s), CRITICAL,
		      metadata_in(B(s), pck, cids, n, json, merge, refuse_deleting, failed));
}

static const char sql_cred_write[] =
	"UPDATE connections SET credentials = ?3, credentials_encrypted = ?4, updated_at = ?5"
	" WHERE provider_config_key = ?1 AND connection_id = ?2";

/* Writes the credentials of a connection that is not being deleted
 * (inside a transaction). */
static int credentials_in(struct sq *b, const char *pck, const char *cid,
			  const struct store_sealed *cred)
{
	struct conn_state c;
	int ret;

	ret = conn_state(b, pck, cid, &c);
	if (ret == 0 && c.deleting)
		ret = STORE_EDELETING;
	if (ret == 0)
		ret = sq_exec(b, sql_cred_write, "write credentials",
			      STORE_ARGS(arg_text(pck), arg_text(cid),
					 arg_blob(cred->blob, cred->len), arg_i64(cred->encrypted),
					 arg_i64(util_now_ms())));
	return ret;
}

int sq_connection_credentials(struct store *s, const char *pck, const char *cid,
			      const struct store_sealed *cred)
{
	int ret;

	return SQ_TXN(ret, B(s), CRITICAL, credentials_in(B(s), pck, cid, cred));
}

/* ---------------------------------------------------------------------------
 * Idempotency.
 */


/* Builds the record of a store_sql_idem_get row into *(struct store_idempotency **)user. */
static int read_idem(sqlite3_stmt *st, void *user)
{
	struct store_row r = sq_row_of(st);

	return store_row_idempotency(&r, user);
}

int sq_idempotency_get(struct store *s, const char *key, struct store_idempotency **out)
{
	return sq_get(B(s), store_sql_idem_get, "read idempotency key",
		      STORE_ARGS(arg_text(key), arg_i64(util_now_ms() - STORE_IDEMPOTENCY_TTL_MS)),
		      read_idem, out);
}

/* Purges the expired records and records in (inside a transaction):
 * STORE_ECONFLICT when its key is recorded. */
static int idem_put_in(struct sq *b, const struct store_idempotency_input *in, int64_t now)
{
	int ret;

	ret = idem_purge_check(b, in->key, now);
	if (!ret)
		ret = idem_insert(b, in, in->status, in->body, now);
	return ret;
}

int sq_idempotency_put(struct store *s, const struct store_idempotency_input *in)
{
	int64_t now = util_now_ms();
	int ret;

	return SQ_TXN(ret, B(s), CRITICAL, idem_put_in(B(s), in, now));
}
