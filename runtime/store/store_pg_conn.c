/*
 * store_pg_conn.c - connections, Idempotency-Key records and the plugin
 * version ledger in the PostgreSQL back end. The same statements as
 * store_sqlite_conn.c and store_sqlite_ledger.c, made safe for several
 * hosts writing at once: a connection is written holding its row (FOR
 * UPDATE, or INSERT ... ON CONFLICT for the upsert that may create it),
 * so two hosts creating one connection at once serialize (one inserts,
 * the other updates: two occurrences, two events) instead of one failing
 * on the unique key; two hosts recording one
 * Idempotency-Key at once leave one record, the other call failing with
 * STORE_ECONFLICT as store.h says; ledger writes hold a lock on the
 * plugin's name, so the highest version wins whichever host writes last.
 */
#include "store_pg_priv.h"

#include <stdlib.h>
#include <string.h>

#include "store_sql.h"
#include "util.h"

/* ---------------------------------------------------------------------------
 * Connections.
 */

static const char sql_conn_state[] =
	"SELECT id, deleting, created_at FROM connections"
	" WHERE provider_config_key = $1 AND connection_id = $2 FOR UPDATE";
static const char sql_event_insert[] =
	"INSERT INTO events (type, connection_id, provider_config_key, script, retry_of, status,"
	" generation, created_at, claimed_at, host_id)"
	" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id";

struct conn_state {
	int64_t id;
	bool deleting;
	int64_t created_at;
};

/* The connection's row, locked: 0, or STORE_ENOTFOUND (state zeroed). */
static int conn_state(struct pgc *c, const char *pck, const char *cid, struct conn_state *st)
{
	PGresult *r;
	int ret;

	memset(st, 0, sizeof(*st));
	ret = pg_q(c, sql_conn_state, "read connection", STORE_ARGS(arg_text(pck), arg_text(cid)),
		   &r);
	if (ret)
		return ret;
	if (PQntuples(r) == 0) {
		ret = STORE_ENOTFOUND;
	} else {
		st->id = pg_col_i64(r, 0, 0);
		st->deleting = pg_col_bool(r, 0, 1);
		st->created_at = pg_col_i64(r, 0, 2);
	}
	PQclear(r);
	return ret;
}

int pg_conn_accepts_events(struct pgc *c, const char *pck, const char *cid)
{
	struct conn_state st;
	int ret = conn_state(c, pck, cid, &st);

	return store_events_accepted(ret, st.deleting);
}

/* Runs sql (which returns one id) into *id. */
static int insert_id(struct pgc *c, const char *sql, const char *what, const struct store_arg *args,
		     int64_t *id)
{
	PGresult *r;
	int ret = pg_q(c, sql, what, args, &r);

	*id = 0;
	if (ret)
		return ret;
	if (PQntuples(r) == 1)
		*id = pg_col_i64(r, 0, 0);
	else
		ret = STORE_EIO;
	PQclear(r);
	return ret;
}

int pg_event_add(struct pgc *c, const char *type, const char *cid, const char *pck,
		 const char *script, int64_t retry_of, bool claim, int64_t generation,
		 const char *host_id, int64_t now, int64_t *event_id)
{
	return insert_id(c, sql_event_insert, "insert event",
			 STORE_ARGS(arg_text(type), arg_text(cid), arg_text(pck), arg_text(script),
				    arg_id(retry_of), arg_text(claim ? "claimed" : "pending"),
				    claim ? arg_i64(generation) : arg_null(), arg_i64(now),
				    claim ? arg_i64(now) : arg_null(),
				    arg_text(claim ? host_id : NULL)),
			 event_id);
}

static int idem_purge_check(struct pgc *c, const char *key, int64_t now)
{
	PGresult *r;
	int ret = pg_x(c, store_sql_idem_purge, "purge idempotency keys",
		       STORE_ARGS(arg_i64(now - STORE_IDEMPOTENCY_TTL_MS)), NULL);

	if (ret)
		return ret;
	ret = pg_q(c, store_sql_idem_exists, "read idempotency key", STORE_ARGS(arg_text(key)), &r);
	if (!ret && PQntuples(r) > 0)
		ret = STORE_ECONFLICT;
	PQclear(r);
	return ret;
}

static int idem_insert(struct pgc *c, const struct store_idempotency_input *in, int status,
		       const char *body, int64_t now)
{
	return pg_x(c, store_sql_idem_insert, "insert idempotency key",
		    STORE_ARGS(arg_text(in->key), arg_text(in->method_path),
			       arg_text(in->request_hash), arg_i64(status),
			       arg_text(body ? body : ""), arg_i64(now)),
		    NULL);
}

/* The Idempotency-Key record of an upsert, with its response. */
static int upsert_idem(struct pgc *c, const struct store_idempotency_input *idem,
		       const struct store_upsert_result *r, int64_t now)
{
	const char *body;
	char *made;
	int status, ret = store_idem_response(idem, r, &status, &body, &made);

	if (!ret)
		ret = idem_insert(c, idem, status, body, now);
	free(made);
	return ret;
}

/* Inserts or updates the connection and records its event, in one
 * statement: INSERT ... ON CONFLICT holds the row, so two hosts creating
 * one connection at once serialize (one inserts, the other updates: two
 * occurrences, two events); a connection being deleted is not updated and
 * returns no row. xmax is 0 in a row this statement inserted. */
static const char sql_upsert[] =
	"WITH c AS (INSERT INTO connections AS t (connection_id, provider_config_key, provider,"
	"  credentials, credentials_encrypted, connection_config, metadata, created_at, updated_at)"
	" VALUES ($1, $2, $3, $4, $5, COALESCE($6, '{}'), COALESCE($7, '{}'), $8, $8)"
	" ON CONFLICT (provider_config_key, connection_id) DO UPDATE SET provider = excluded.provider,"
	"  credentials = excluded.credentials, credentials_encrypted = excluded.credentials_encrypted,"
	"  connection_config = COALESCE($6, t.connection_config), metadata = COALESCE($7, t.metadata),"
	"  updated_at = excluded.updated_at WHERE NOT t.deleting"
	" RETURNING t.id, t.created_at, (t.xmax = 0) AS created),"
	" e AS (INSERT INTO events (type, connection_id, provider_config_key, status, created_at)"
	"  SELECT 'post-connection-creation', $1, $2, 'pending', $8 FROM c RETURNING id)"
	" SELECT c.id, c.created_at, c.created, e.id FROM c, e";

static int upsert_row(struct pgc *c, const struct store_connection_input *in,
		      const struct store_sealed *cred, int64_t now, struct store_upsert_result *r)
{
	PGresult *res;
	int ret;

	ret = pg_q(c, sql_upsert, "upsert connection",
		   STORE_ARGS(arg_text(in->connection_id), arg_text(in->provider_config_key),
			      arg_text(in->provider), arg_blob(cred->blob, cred->len),
			      pg_bool(cred->encrypted), arg_text(in->connection_config),
			      arg_text(in->metadata), arg_i64(now)),
		   &res);
	if (ret)
		return ret;
	if (PQntuples(res) != 1) {
		ret = STORE_EDELETING; /* the row is there, and being deleted */
	} else {
		r->connection_row_id = pg_col_i64(res, 0, 0);
		r->created_at = pg_col_i64(res, 0, 1);
		r->created = pg_col_bool(res, 0, 2);
		r->event_id = pg_col_i64(res, 0, 3);
		r->updated_at = now;
	}
	PQclear(res);
	return ret;
}

/* A write with an Idempotency-Key record, in one transaction: the
 * record's check, the upsert (when w->in), the record. */
static int idem_write(struct store *s, const struct store_upsert_call *w)
{
	struct pgc *c;
	int ret = pg_begin(P(s), &c);

	if (ret)
		return ret;
	ret = idem_purge_check(c, w->idem->key, w->now);
	if (!ret && w->in)
		ret = upsert_row(c, w->in, w->cred, w->now, w->r);
	if (!ret)
		ret = upsert_idem(c, w->idem, w->r, w->now);
	return pg_end(P(s), c, ret);
}

int pg_connection_upsert(struct store *s, const struct store_upsert_call *u)
{
	struct pgc *c = NULL;
	int ret;

	if (u->idem) {
		ret = idem_write(s, u);
	} else if (!(ret = pg_take(P(s), &c))) {
		/* one statement: its own transaction, no BEGIN/COMMIT round trips */
		ret = upsert_row(c, u->in, u->cred, u->now, u->r);
		pg_give(P(s), c);
	}
	return ret;
}

/* tags: every key of $6 holds its value ($6 an object of strings, as
 * json_each's comparison in SQLite's list) */
static const char sql_conn_list[] =
	"SELECT " STORE_CONN_COLS("NULL")
	" FROM connections WHERE ($1::text IS NULL OR connection_id = $1::text)"
	" AND ($2::text IS NULL OR position(',' || provider_config_key || ',' in ',' || $2::text || ',') > 0)"
	" AND ($3::text IS NULL OR position($3::text in connection_id) > 0)"
	" AND ($6::jsonb IS NULL OR tags::jsonb @> $6::jsonb)"
	" ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5";

/* Builds a connection from row i of store_sql_conn_get / sql_conn_list. */
static int conn_from_row(struct store *s, const PGresult *r, int i, bool with_credentials,
			 struct store_connection **out)
{
	struct store_row row = pg_row_of(r, i);

	return store_row_connection(s, &row, with_credentials, out);
}

int pg_connection_get(struct store *s, const char *pck, const char *cid,
		      struct store_connection **out)
{
	struct store_row row;
	PGresult *r;
	int ret = pg_read_row(s, store_sql_conn_get, "read connection",
			      STORE_ARGS(arg_text(pck), arg_text(cid)), &r, &row);

	if (!ret)
		ret = store_row_connection(s, &row, true, out);
	PQclear(r);
	return ret;
}

int pg_connection_list(struct store *s, const struct store_connection_filter *f,
		       struct store_connection ***items, size_t *n)
{
	const char *pcks = f->provider_config_keys && *f->provider_config_keys
				   ? f->provider_config_keys : NULL;
	struct store_connection **v = NULL;
	PGresult *r;
	int ret, rows;

	ret = pg_read(s, sql_conn_list, "list connections",
		     STORE_ARGS(arg_text(f->connection_id), arg_text(pcks),
				arg_text(f->search && *f->search ? f->search : NULL),
				arg_i64((int64_t)f->limit), arg_i64((int64_t)f->offset),
				arg_text(f->tags)),
		     &r);
	if (ret)
		return ret;
	rows = PQntuples(r);
	if (rows > 0 && !(v = calloc((size_t)rows, sizeof(*v))))
		ret = STORE_ENOMEM;
	for (int i = 0; !ret && i < rows; i++)
		ret = conn_from_row(s, r, i, false, &v[i]);
	PQclear(r);
	if (ret) {
		store_connection_list_free(v, (size_t)rows);
		return ret;
	}
	*items = v;
	*n = (size_t)rows;
	return 0;
}

int pg_connection_mark_deleting(struct store *s, const char *pck, const char *cid, bool claim,
				int64_t generation, int64_t *event_id)
{
	struct conn_state st;
	struct pgc *c;
	int64_t now = util_now_ms();
	int ret;

	ret = pg_begin(P(s), &c);
	if (ret)
		return ret;
	ret = conn_state(c, pck, cid, &st);
	if (!ret && st.deleting)
		ret = STORE_EDELETING;
	if (!ret)
		ret = pg_x(c,
			   "UPDATE connections SET deleting = true, updated_at = $2 WHERE id = $1",
			   "mark connection deleting", STORE_ARGS(arg_i64(st.id), arg_i64(now)),
			   NULL);
	if (!ret)
		ret = pg_event_add(c, STORE_EVENT_PRE_CONNECTION_DELETION, cid, pck, NULL, 0, claim,
				   generation, s->host_id, now, event_id);
	return pg_end(P(s), c, ret);
}

int pg_connection_delete(struct store *s, const char *pck, const char *cid)
{
	int64_t changed;
	int ret = pg_write(s, "DELETE FROM connections WHERE provider_config_key = $1"
			   " AND connection_id = $2", "delete connection",
			   STORE_ARGS(arg_text(pck), arg_text(cid)), &changed);

	return !ret && changed == 0 ? STORE_ENOTFOUND : ret;
}

/* One connection's metadata, inside the caller's transaction. */
static int meta_write_one(struct pgc *c, const char *pck, const char *cid, const char *json,
			  bool merge, bool refuse_deleting)
{
	char *merged = NULL;
	PGresult *r;
	int ret;

	ret = pg_q(c, "SELECT metadata, deleting FROM connections"
		   " WHERE provider_config_key = $1 AND connection_id = $2 FOR UPDATE",
		   "read metadata", STORE_ARGS(arg_text(pck), arg_text(cid)), &r);
	if (ret)
		return ret;
	if (PQntuples(r) == 0)
		ret = STORE_ENOTFOUND;
	else if (refuse_deleting && pg_col_bool(r, 0, 1))
		ret = STORE_EDELETING;
	else if (merge)
		ret = store_json_merge(PQgetvalue(r, 0, 0), json, &merged);
	PQclear(r);
	if (!ret)
		ret = pg_x(c, "UPDATE connections SET metadata = $3, updated_at = $4"
			   " WHERE provider_config_key = $1 AND connection_id = $2",
			   "write metadata",
			   STORE_ARGS(arg_text(pck), arg_text(cid), arg_text(merge ? merged : json),
				      arg_i64(util_now_ms())),
			   NULL);
	free(merged);
	return ret;
}

int pg_connection_metadata(struct store *s, const char *pck, const char *const *cids, size_t n,
			   const char *json, bool merge, bool refuse_deleting, size_t *failed)
{
	struct pgc *c;
	int ret;

	ret = pg_begin(P(s), &c);
	if (ret)
		return ret;
	for (size_t i = 0; i < n && !ret; i++) {
		ret = meta_write_one(c, pck, cids[i], json, merge, refuse_deleting);
		if (ret)
			*failed = i;
	}
	return pg_end(P(s), c, ret);
}

/* store_connection_credentials_set: the sealed credentials of one row, in
 * one statement (a row being deleted is left alone: STORE_EDELETING). */
int pg_connection_credentials(struct store *s, const char *pck, const char *cid,
			      const struct store_sealed *cred)
{
	struct pgc *c;
	PGresult *r;
	int ret;

	ret = pg_begin(P(s), &c);
	if (ret)
		return ret;
	ret = pg_q(c, "UPDATE connections SET credentials = $3, credentials_encrypted = $4, updated_at = $5"
		   " WHERE provider_config_key = $1 AND connection_id = $2 RETURNING deleting",
		   "write credentials",
		   STORE_ARGS(arg_text(pck), arg_text(cid), arg_blob(cred->blob, cred->len),
			      pg_bool(cred->encrypted), arg_i64(util_now_ms())),
		   &r);
	if (!ret) {
		if (PQntuples(r) == 0)
			ret = STORE_ENOTFOUND;
		else if (pg_col_bool(r, 0, 0))
			ret = STORE_EDELETING; /* rolled back below */
		PQclear(r);
	}
	return pg_end(P(s), c, ret);
}

/* ---------------------------------------------------------------------------
 * Idempotency.
 */

int pg_idempotency_get(struct store *s, const char *key, struct store_idempotency **out)
{
	struct store_row row;
	PGresult *r;
	int ret;

	ret = pg_read_row(s, store_sql_idem_get, "read idempotency key",
			  STORE_ARGS(arg_text(key),
				     arg_i64(util_now_ms() - STORE_IDEMPOTENCY_TTL_MS)),
			  &r, &row);
	if (!ret)
		ret = store_row_idempotency(&row, out);
	PQclear(r);
	return ret;
}

int pg_idempotency_put(struct store *s, const struct store_idempotency_input *in)
{
	struct store_upsert_call w = {.idem = in, .now = util_now_ms()};

	return idem_write(s, &w);
}

/* ---------------------------------------------------------------------------
 * The plugin version ledger, shared by every host.
 */

/* Reads name's record on c: 0 found, 1 none. */
static int ledger_read(struct pgc *c, const char *name, char version[64],
		       uint8_t hash[STORE_HASH_BYTES])
{
	uint8_t *blob = NULL;
	size_t len = 0;
	PGresult *r;
	int ret = pg_q(c, store_sql_ledger_get, "read plugin ledger", STORE_ARGS(arg_text(name)),
		       &r);

	if (ret)
		return ret;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return 1;
	}
	ret = pg_col_bytea(r, 0, 1, &blob, &len);
	if (!ret && len != STORE_HASH_BYTES)
		ret = STORE_EIO;
	if (!ret) {
		pg_col_copy(r, 0, 0, version, 64);
		memcpy(hash, blob, STORE_HASH_BYTES);
	}
	free(blob);
	PQclear(r);
	return ret;
}

int pg_ledger_get(struct store *s, const char *name, char version[64],
		  uint8_t hash[STORE_HASH_BYTES])
{
	struct pgc *c;
	int ret = pg_take(P(s), &c);

	if (ret)
		return ret;
	ret = ledger_read(c, name, version, hash);
	pg_give(P(s), c);
	return ret;
}

int pg_ledger_put(struct store *s, const char *name, const char *version,
		  const uint8_t hash[STORE_HASH_BYTES])
{
	char old[64];
	uint8_t oldhash[STORE_HASH_BYTES];
	struct pgc *c;
	int ret;

	ret = pg_begin(P(s), &c);
	if (ret)
		return ret;
	ret = pg_x(c, "SELECT pg_advisory_xact_lock(hashtextextended('plugin:' || $1, 0))",
		   "lock plugin ledger", STORE_ARGS(arg_text(name)), NULL);
	if (!ret)
		ret = ledger_read(c, name, old, oldhash);
	if (ret < 0 || (ret == 0 && store_version_cmp(version, old) < 0)) {
		ret = ret < 0 ? ret : 0; /* keep the highest version accepted */
		return pg_end(P(s), c, ret);
	}
	ret = pg_x(c, store_sql_ledger_put, "write plugin ledger",
		   STORE_ARGS(arg_text(name), arg_text(version), arg_blob(hash, STORE_HASH_BYTES),
			      arg_i64(util_now_ms())),
		   NULL);
	return pg_end(P(s), c, ret);
}
