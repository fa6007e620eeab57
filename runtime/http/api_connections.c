/*
 * api_connections.c - the Nango-compatible connection routes: import
 * (POST /connections, with validate-connection and Idempotency-Key), list,
 * get, delete (with pre-connection-deletion) and metadata.
 */
#include "api_priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "config.h"
#include "credentials.h"
#include "generation.h"
#include "log.h"
#include "util.h"

#define METHOD_PATH_POST "POST /connections"
#define LIST_LIMIT_MAX STORE_CONNECTION_LIST_MAX
#define LIST_PAGE_MAX 1000000000

/* ------------------------------------------------------------- shapes */

static struct json_object *doc_or_empty(const char *s)
{
	struct json_object *o = api_parse_doc(s);

	return o ? o : json_object_new_object();
}

/* The full Connection (ApiPublicConnectionFull). */
static struct json_object *connection_full(const struct store_connection *c, bool with_refresh)
{
	struct json_object *o = json_object_new_object(), *stored;

	if (!o)
		return NULL;
	stored = api_parse_doc(c->credentials);
	json_object_object_add(o, "id", json_object_new_int64(c->id));
	json_object_object_add(o, "connection_id", json_object_new_string(c->connection_id));
	json_object_object_add(o, "provider_config_key", json_object_new_string(c->provider_config_key));
	json_object_object_add(o, "provider", json_object_new_string(c->provider ? c->provider : ""));
	json_object_object_add(o, "connection_config", doc_or_empty(c->connection_config));
	json_object_object_add(o, "metadata", doc_or_empty(c->metadata));
	json_object_object_add(o, "credentials",
			       stored ? api_credentials_view(stored, with_refresh) : json_object_new_object());
	json_object_object_add(o, "created_at", api_json_time(c->created_at));
	json_object_object_add(o, "updated_at", api_json_time(c->updated_at));
	json_object_object_add(o, "last_fetched_at", NULL);
	json_object_object_add(o, "webhook_url_override", c->webhook_url_override
			       ? json_object_new_string(c->webhook_url_override) : NULL);
	json_object_object_add(o, "errors", api_credentials_errors(stored));
	json_object_object_add(o, "end_user", NULL);
	json_object_object_add(o, "tags", doc_or_empty(c->tags));
	json_object_put(stored);
	return o;
}

/* The list item (ApiPublicConnection). */
static struct json_object *connection_item(const struct store_connection *c)
{
	struct json_object *o = json_object_new_object();
	char created[32];

	if (!o)
		return NULL;
	api_iso_time(c->created_at, true, created);
	json_object_object_add(o, "id", json_object_new_int64(c->id));
	json_object_object_add(o, "connection_id", json_object_new_string(c->connection_id));
	json_object_object_add(o, "provider_config_key", json_object_new_string(c->provider_config_key));
	json_object_object_add(o, "provider", json_object_new_string(c->provider ? c->provider : ""));
	json_object_object_add(o, "created", json_object_new_string(created));
	json_object_object_add(o, "metadata", doc_or_empty(c->metadata));
	json_object_object_add(o, "errors", json_object_new_array());
	json_object_object_add(o, "end_user", NULL);
	json_object_object_add(o, "tags", doc_or_empty(c->tags));
	return o;
}

/* The connection id of /connections/{...}: everything after "/connections/"
 * in the raw path, percent-decoded. NULL when it is not a valid id. */
static char *path_connection_id(struct http_request *req)
{
	static const char prefix[] = "/connections/";
	const char *path = http_path(req);
	char *id;

	if (strncmp(path, prefix, sizeof(prefix) - 1) != 0)
		return NULL;
	id = strdup(path + sizeof(prefix) - 1);
	if (id && (!api_percent_decode(id) || !api_valid_connection_id(id))) {
		free(id);
		id = NULL;
	}
	return id;
}

/* What /connections/{connection_id}?provider_config_key=K names: K is
 * required (400 invalid_query_params) and must be configured in g (404
 * unknown_provider_config). Returns false after answering; true with *pck
 * (borrowed from req) and *cid (owned; NULL when the path cannot name a
 * connection, or out of memory). */
static bool connection_target(struct http_request *req, struct http_response *resp,
			      const struct generation *g, const char **pck, char **cid)
{
	*pck = http_query(req, "provider_config_key");
	*cid = NULL;
	if (!*pck || !**pck) {
		http_respond_error(resp, 400, "invalid_query_params", "provider_config_key is required");
		return false;
	}
	if (!api_integration(resp, g, *pck))
		return false;
	*cid = path_connection_id(req);
	return true;
}

static bool auth_mode_matches(const struct config_provider *p, enum api_cred_type t)
{
	if (!p)
		return false;
	switch (t) {
	case API_CRED_OAUTH2:
		return p->auth_mode == CONFIG_AUTH_OAUTH2 ||
		       (p->auth_mode_name && strncmp(p->auth_mode_name, "MCP_OAUTH2", 10) == 0);
	case API_CRED_OAUTH2_CC: return p->auth_mode == CONFIG_AUTH_OAUTH2_CC;
	case API_CRED_OAUTH1: return p->auth_mode == CONFIG_AUTH_OAUTH1;
	case API_CRED_TBA: return p->auth_mode_name && strcmp(p->auth_mode_name, "TBA") == 0;
	case API_CRED_API_KEY: return p->auth_mode == CONFIG_AUTH_API_KEY;
	case API_CRED_BASIC: return p->auth_mode == CONFIG_AUTH_BASIC;
	case API_CRED_NONE: return p->auth_mode == CONFIG_AUTH_NONE;
	}
	return false;
}

/* Answers 422 invalid_credentials_type when credentials of type t cannot
 * be imported for the integration's provider: another auth mode, or an
 * OAUTH1 signature method evscript cannot make. */
static bool credentials_refused(struct http_response *resp, const struct config_integration *integ,
				const struct config_provider *prov, enum api_cred_type t)
{
	if (!auth_mode_matches(prov, t)) {
		http_respond_error(resp, 422, "invalid_credentials_type",
				   "credentials of type %s do not match the auth mode %s of provider %s",
				   api_cred_type_name(t), prov && prov->auth_mode_name ? prov->auth_mode_name : "(none)",
				   integ->provider);
		return true;
	}
	if (t == API_CRED_OAUTH1 && !credentials_oauth1_supported(prov->signature_method)) {
		http_respond_error(resp, 422, "invalid_credentials_type",
				   "credentials type OAUTH1 cannot be imported for provider %s: its signature method %s is "
				   "not supported (HMAC-SHA256 and PLAINTEXT are; HMAC-SHA1 is in none of evscript's "
				   "dependencies)",
				   integ->provider, prov->signature_method ? prov->signature_method : "HMAC-SHA1");
		return true;
	}
	return false;
}

void api_uuid_v4(char out[37])
{
	unsigned char b[16];
	char hex[33];

	randombytes_buf(b, sizeof(b));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	util_hex(hex, b, sizeof(b));
	snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

/* -------------------------------------------------- POST /connections */

/* The 201 body of an import, from the row as written: its fields borrowed
 * from the request, id and timestamps from the upsert. Called inside the
 * store's transaction too, for the Idempotency-Key record. Owned by the
 * caller (it holds credentials: wipe before freeing). */
static char *import_body(struct store_connection *row, const struct store_upsert_result *r)
{
	struct json_object *o;
	char *body;

	row->id = r->connection_row_id;
	row->created_at = r->created_at;
	row->updated_at = r->updated_at;
	o = connection_full(row, false);
	if (!o)
		return NULL;
	body = strdup(api_json_str(o));
	json_object_put(o);
	return body;
}

static int import_respond(void *user, const struct store_upsert_result *r, int *status, char **body)
{
	*body = import_body(user, r);
	*status = 201;
	return *body ? 0 : -1;
}

/* Answers from a stored Idempotency-Key record: replay or reuse. */
static int idem_replay(struct http_response *resp, const struct store_idempotency *rec,
		       const char *hash)
{
	if (strcmp(rec->method_path, METHOD_PATH_POST) != 0 || strcmp(rec->request_hash, hash) != 0)
		return http_respond_error(resp, 422, "idempotency_key_reused",
					  "this Idempotency-Key was used with another request");
	http_response_header(resp, "Idempotent-Replayed", "true");
	return api_respond_raw_json(resp, (unsigned)rec->status, rec->body);
}

/* The candidate connection that validate-connection scripts see (the
 * get_connection() shape). New reference, NULL when out of memory. */
static struct json_object *validation_candidate(const struct store_connection *row,
						struct json_object *credentials, int64_t created_at)
{
	struct json_object *cand = json_object_new_object();
	char now_iso[32], created_iso[32];

	if (!cand)
		return NULL;
	api_iso_time(util_now_ms(), false, now_iso);
	api_iso_time(created_at, false, created_iso);
	json_object_object_add(cand, "connection_id", json_object_new_string(row->connection_id));
	json_object_object_add(cand, "provider_config_key", json_object_new_string(row->provider_config_key));
	json_object_object_add(cand, "provider", json_object_new_string(row->provider));
	json_object_object_add(cand, "credentials", json_object_get(credentials));
	json_object_object_add(cand, "connection_config", doc_or_empty(row->connection_config));
	json_object_object_add(cand, "metadata", doc_or_empty(row->metadata));
	json_object_object_add(cand, "created_at", json_object_new_string(created_iso));
	json_object_object_add(cand, "updated_at", json_object_new_string(now_iso));
	return cand;
}

/* 400 connection_validation_failed for a validate-connection script that
 * did not succeed. */
static int respond_validation_failed(struct http_response *resp, const struct dispatch_outcome *o)
{
	struct json_object *payload = json_object_new_object();
	char msg[512];

	if (o->error && o->error[0])
		snprintf(msg, sizeof(msg), "%s", o->error);
	else
		snprintf(msg, sizeof(msg), "%s %s", o->script,
			 o->status == STORE_EXEC_CRASHED ? "crashed"
			 : o->status == STORE_EXEC_TIMED_OUT ? "timed out" : "failed");
	if (payload) {
		json_object_object_add(payload, "script", json_object_new_string(o->script));
		json_object_object_add(payload, "execution_id", json_object_new_int64(o->execution_id));
	}
	return api_respond_problem(resp, 400, "connection_validation_failed", msg, NULL, payload);
}

/* Step (5) of an import: the connection, its event and the Idempotency-Key
 * record in one transaction, then the reply. config_given/metadata_given:
 * replace those of an existing connection (else kept). */
static int store_import(struct api_context *ctx, struct http_response *resp, struct store_connection *row,
			bool config_given, bool metadata_given, const char *idem_key, const char *hash)
{
	struct store_connection_input in = {
		.connection_id = row->connection_id,
		.provider_config_key = row->provider_config_key,
		.provider = row->provider,
		.credentials = row->credentials,
		.connection_config = config_given ? row->connection_config : NULL,
		.metadata = metadata_given ? row->metadata : NULL,
	};
	struct store_idempotency_input idem = {
		.key = idem_key,
		.method_path = METHOD_PATH_POST,
		.request_hash = hash,
		.respond = import_respond,
		.user = row,
	};
	struct store_idempotency *rec = NULL;
	struct store_upsert_result r;
	char *body;
	int ret;

	ret = store_connection_upsert(ctx->store, &in, idem_key ? &idem : NULL, &r);
	if (ret == STORE_EDELETING)
		return api_respond_deleting(resp, row->connection_id);
	if (ret == STORE_ECONFLICT && idem_key) {
		/* another daemon on the same store recorded the key meanwhile */
		ret = store_idempotency_get(ctx->store, idem_key, &rec);
		ret = ret == 0 ? idem_replay(resp, rec, hash)
			       : http_respond_error(resp, 409, "idempotency_key_in_use",
						    "a request with this Idempotency-Key is in progress");
		store_idempotency_free(rec);
		return ret;
	}
	if (ret == STORE_EINVAL || ret == STORE_ETOOBIG)
		return http_respond_error(resp, 400, "invalid_body", "the connection was refused: %s",
					  status_str(ret));
	if (ret < 0)
		return api_respond_store_error(resp, "storing the connection", ret);
	log_info("api", "connection %s/%s %s (event %lld)", row->provider_config_key, row->connection_id,
		 r.created ? "created" : "reconnected", (long long)r.event_id);
	dispatch_notify(ctx->dispatch);
	body = import_body(row, &r);
	if (!body)
		return http_respond_json(resp, 500, NULL);
	ret = api_respond_raw_json(resp, 201, body);
	sodium_memzero(body, strlen(body));
	free(body);
	return ret;
}

/* Steps (1) to (6) of POST /connections (docs/api.md). */
static int do_import(struct api_context *ctx, struct generation *g, struct http_request *req,
		     struct http_response *resp, const char *idem_key, const char *hash)
{
	struct json_object *body = NULL, *stored = NULL, *cand = NULL;
	struct store_connection *existing = NULL;
	struct store_connection row;
	struct dispatch_outcome o;
	struct api_connection_req creq;
	const struct config_integration *integ;
	const struct config_provider *prov;
	char uuid[37];
	char *creds = NULL, *metadata = NULL, *cconfig = NULL;
	bool metadata_given, config_given;
	const char *cid;
	int ret;

	memset(&o, 0, sizeof(o));
	ret = api_read_body(req, resp, API_BODY_CONNECTION, &body, &creq);
	if (ret < 0)
		goto out;
	integ = api_integration(resp, g, creq.provider_config_key);
	if (!integ) {
		ret = 0;
		goto out;
	}
	prov = config_provider_find(generation_config(g)->catalogue, integ->provider);
	if (credentials_refused(resp, integ, prov, creq.cred_type)) {
		ret = 0;
		goto out;
	}
	cid = creq.connection_id;
	if (!cid) {
		api_uuid_v4(uuid);
		cid = uuid;
	}
	ret = store_connection_get(ctx->store, integ->id, cid, &existing);
	if (ret == 0 && existing->deleting) {
		ret = api_respond_deleting(resp, cid);
		goto out;
	}
	if (ret < 0 && ret != STORE_ENOTFOUND) {
		ret = api_respond_store_error(resp, "reading the connection", ret);
		goto out;
	}

	stored = api_credentials_stored(&creq);
	metadata_given = creq.metadata != NULL;
	config_given = creq.connection_config != NULL;
	creds = stored ? strdup(api_json_str(stored)) : NULL;
	metadata = strdup(metadata_given ? api_json_str(creq.metadata) : existing ? existing->metadata : "{}");
	cconfig = strdup(config_given ? api_json_str(creq.connection_config)
				      : existing ? existing->connection_config : "{}");
	if (!creds || !metadata || !cconfig) {
		ret = http_respond_json(resp, 500, NULL);
		goto out;
	}
	memset(&row, 0, sizeof(row));
	row.connection_id = (char *)cid;
	row.provider_config_key = integ->id;
	row.provider = integ->provider;
	row.credentials = creds;
	row.connection_config = cconfig;
	row.metadata = metadata;

	cand = validation_candidate(&row, stored, existing ? existing->created_at : util_now_ms());
	if (!cand) {
		ret = http_respond_json(resp, 500, NULL);
		goto out;
	}
	if (api_verify_needed(prov, api_cred_type_name(creq.cred_type)) &&
	    api_verify_connection(generation_config(g), integ, prov, cid, cand, resp) != 0) {
		ret = 0; /* answered: connection_test_failed */
		goto out;
	}
	ret = dispatch_validate(ctx->dispatch, integ->id, cid, api_json_str(cand), &o);
	if (ret < 0) {
		log_error("api", "validate-connection for %s/%s failed to run: %s", integ->id, cid,
			  status_str(ret));
		ret = ret == STATUS_EIO
			      ? http_respond_error(resp, 503, "store_unavailable",
						   "the store refused a write; nothing was imported")
			      : http_respond_error(resp, 500, "server_error",
						   "validate-connection could not run");
		goto out;
	}
	if (ret == 1) {
		ret = respond_validation_failed(resp, &o);
		goto out;
	}
	if (o.metadata) {
		/* a script set metadata on the candidate: store that */
		free(metadata);
		row.metadata = metadata = strdup(o.metadata);
		metadata_given = true;
		if (!metadata) {
			ret = http_respond_json(resp, 500, NULL);
			goto out;
		}
	}
	ret = store_import(ctx, resp, &row, config_given, metadata_given, idem_key, hash);
out:
	if (creds)
		sodium_memzero(creds, strlen(creds));
	free(creds);
	free(metadata);
	free(cconfig);
	dispatch_outcome_clear(&o);
	json_object_put(cand);
	json_object_put(stored);
	store_connection_free(existing);
	json_object_put(body);
	return ret;
}

static int connections_post(struct api_context *ctx, struct generation *g, struct http_request *req,
			    struct http_response *resp)
{
	const char *key = http_header(req, "Idempotency-Key");
	char hash[2 * crypto_generichash_BYTES + 1];
	bool registered = false;
	int ret;

	if (key) {
		struct store_idempotency *rec = NULL;
		unsigned char h[crypto_generichash_BYTES];
		size_t len;
		const char *raw = http_body(req, &len);

		if (!api_valid_idempotency_key(key)) {
			ret = http_respond_error(resp, 400, "invalid_headers",
						 "Idempotency-Key must be 1 to 255 visible ASCII characters");
			goto out;
		}
		crypto_generichash(h, sizeof(h), (const unsigned char *)raw, len, NULL, 0);
		util_hex(hash, h, sizeof(h));
		ret = api_inflight_add(ctx, API_INFLIGHT_IDEMPOTENCY, key);
		if (ret != 0) {
			ret = ret == 1 ? http_respond_error(resp, 409, "idempotency_key_in_use",
							    "a request with this Idempotency-Key is in progress")
				       : http_respond_error(resp, 500, "server_error", "too many requests in flight");
			goto out;
		}
		registered = true;
		ret = store_idempotency_get(ctx->store, key, &rec);
		if (ret == 0) {
			ret = idem_replay(resp, rec, hash);
			store_idempotency_free(rec);
			goto out;
		}
		if (ret != STORE_ENOTFOUND) {
			ret = api_respond_store_error(resp, "reading the Idempotency-Key", ret);
			goto out;
		}
	}
	ret = do_import(ctx, g, req, resp, key, key ? hash : NULL);
out:
	if (registered)
		api_inflight_remove(ctx, API_INFLIGHT_IDEMPOTENCY, key);
	return ret;
}

API_GENERATION_ROUTE(api_connections_post, connections_post)

/* --------------------------------------------------- GET /connections */

int api_connections_list(struct http_request *req, struct http_response *resp, void *user)
{
	struct api_context *ctx = user;
	const char *cid = http_query(req, "connectionId");
	const char *integrations = http_query(req, "integrationId");
	const char *search = http_query(req, "search");
	const char *slimit = http_query(req, "limit"), *spage = http_query(req, "page");
	int64_t limit = LIST_LIMIT_MAX, page = 0;
	struct store_connection **items = NULL;
	struct json_object *root, *arr, *tags = NULL;
	size_t n = 0;
	int ret;

	if (api_tags_filter(req, &tags) < 0)
		return http_respond_error(resp, 400, "invalid_query_params",
					  "tags[<key>] must name a key of 1 to 64 bytes and give a value");
	if ((slimit && !api_parse_int(slimit, 1, LIST_LIMIT_MAX, &limit)) ||
	    (spage && !api_parse_int(spage, 0, LIST_PAGE_MAX, &page))) {
		ret = http_respond_error(resp, 400, "invalid_query_params",
					 "limit must be 1 to 10000 and page a number from 0");
		goto out;
	}
	/* evscript has no end users */
	if (!http_query(req, "endUserId") && !http_query(req, "endUserOrganizationId")) {
		struct store_connection_filter f = {
			.connection_id = cid && *cid ? cid : NULL,
			.provider_config_keys = integrations,
			.search = search,
			.tags = tags ? api_json_str(tags) : NULL,
			.limit = (size_t)limit,
			.offset = (size_t)(page * limit),
		};

		ret = store_connection_list(ctx->store, &f, &items, &n);
		if (ret < 0) {
			ret = api_respond_store_error(resp, "listing connections", ret);
			goto out;
		}
	}
	root = api_json_list("connections", &arr);
	for (size_t i = 0; root && i < n; i++)
		json_object_array_add(arr, connection_item(items[i]));
	ret = http_respond_json(resp, 200, root);
out:
	store_connection_list_free(items, n);
	json_object_put(tags);
	return ret;
}

/* ------------------------------------------- GET /connections/{id} */

/* The connection with fresh credentials (credentials.h): refreshed when
 * they need it, or when force_refresh=true. A failed refresh answers 424
 * refresh_token_external_error (and returns 1) when it was forced;
 * otherwise the connection is answered as stored, the failure in its
 * "errors". Else as store_connection_get. */
static int connection_fresh(struct api_context *ctx, struct generation *g, struct http_request *req,
			    const char *pck, const char *cid, struct store_connection **c,
			    struct http_response *resp)
{
	const struct config_host *cfg = generation_config(g);
	const struct config_integration *integ = config_integration_find(cfg, pck);
	const char *force = http_query(req, "force_refresh");
	char err[CRED_ERR_MAX];
	int ret;

	ret = hostapi_connection_fresh(ctx->store, cfg,
				       integ ? config_provider_find(cfg->catalogue, integ->provider) : NULL,
				       pck, cid, force && strcmp(force, "true") == 0, c, err, sizeof(err));
	if (ret == CRED_EREFRESH || ret == CRED_ENOCLIENT || ret == CRED_EEXPIRED) {
		if (force && strcmp(force, "true") == 0) {
			http_respond_error(resp, 424, "refresh_token_external_error", "%s", err);
			return 1;
		}
		ret = store_connection_get(ctx->store, pck, cid, c);
	}
	return ret;
}

static int connection_get(struct api_context *ctx, struct generation *g, struct http_request *req,
			  struct http_response *resp)
{
	const char *refresh = http_query(req, "refresh_token");
	const char *pck;
	struct store_connection *c = NULL;
	char *cid = NULL;
	int ret;

	if (refresh && strcmp(refresh, "true") != 0 && strcmp(refresh, "false") != 0) {
		ret = http_respond_error(resp, 400, "invalid_query_params", "refresh_token must be true or false");
		goto out;
	}
	if (!connection_target(req, resp, g, &pck, &cid)) {
		ret = 0;
		goto out;
	}
	ret = cid ? connection_fresh(ctx, g, req, pck, cid, &c, resp) : STORE_ENOTFOUND;
	if (ret == 1) {
		ret = 0; /* answered */
		goto out;
	}
	if (ret == STORE_ENOTFOUND) {
		ret = http_respond_error(resp, 404, "not_found", "Connection not found");
		goto out;
	}
	if (ret < 0) {
		ret = api_respond_store_error(resp, "reading the connection", ret);
		goto out;
	}
	ret = http_respond_json(resp, 200, connection_full(c, refresh && strcmp(refresh, "true") == 0));
out:
	store_connection_free(c);
	free(cid);
	return ret;
}

API_GENERATION_ROUTE(api_connection_get, connection_get)

/* ---------------------------------------- DELETE /connections/{id} */

static int connection_delete(struct api_context *ctx, struct generation *g, struct http_request *req,
			     struct http_response *resp)
{
	const char *pck;
	char *cid = NULL, *key = NULL;
	bool registered = false;
	int64_t event_id = 0;
	int ret;

	if (!connection_target(req, resp, g, &pck, &cid)) {
		ret = 0;
		goto out;
	}
	if (!cid) {
		ret = http_respond_error(resp, 404, "unknown_connection", "Connection not found");
		goto out;
	}
	if (asprintf(&key, "%s\n%s", pck, cid) < 0) {
		key = NULL;
		ret = http_respond_json(resp, 500, NULL);
		goto out;
	}
	ret = api_inflight_add(ctx, API_INFLIGHT_DELETE, key);
	if (ret != 0) {
		ret = ret == 1 ? api_respond_deleting(resp, cid)
			       : http_respond_error(resp, 500, "server_error", "too many requests in flight");
		goto out;
	}
	registered = true;
	ret = store_connection_mark_deleting(ctx->store, pck, cid, true, generation_number(g), &event_id);
	if (ret == STORE_EDELETING) {
		/* marked by a daemon that stopped before deleting: finish its work */
		log_warn("api", "connection %s/%s was left deleting; deleting it now", pck, cid);
	} else if (ret < 0) {
		ret = api_respond_connection_error(resp, pck, cid, "marking the connection deleting", ret);
		goto out;
	} else {
		struct store_event ev;

		ret = store_event_get(ctx->store, event_id, &ev);
		if (ret == 0)
			ret = dispatch_run_event(ctx->dispatch, &ev);
		if (ret < 0)
			log_error("api", "pre-connection-deletion for %s/%s (event %lld) did not run: %d; "
				  "deleting anyway", pck, cid, (long long)event_id, ret);
	}
	ret = store_connection_delete(ctx->store, pck, cid);
	if (ret < 0) {
		ret = api_respond_connection_error(resp, pck, cid, "deleting the connection", ret);
		goto out;
	}
	log_info("api", "connection %s/%s deleted", pck, cid);
	ret = http_respond_json(resp, 200, api_json_member("success", json_object_new_boolean(1)));
out:
	if (registered)
		api_inflight_remove(ctx, API_INFLIGHT_DELETE, key);
	free(key);
	free(cid);
	return ret;
}

API_GENERATION_ROUTE(api_connection_delete, connection_delete)

/* ------------------------------- POST/PATCH /connections/metadata */

static int metadata_route(struct http_request *req, struct http_response *resp, void *user, bool merge)
{
	struct api_context *ctx = user;
	struct json_object *body = NULL, *echo = NULL, *v;
	struct api_metadata_req mreq;
	size_t failed = 0;
	int ret;

	ret = api_read_body(req, resp, API_BODY_METADATA, &body, &mreq);
	if (ret < 0)
		goto out;
	/* all or nothing, in one transaction: every connection must exist and
	 * not be being deleted */
	ret = store_connection_metadata_write(ctx->store, mreq.provider_config_key,
					      mreq.ids, mreq.n_ids,
					      api_json_str(mreq.metadata), merge, &failed);
	if (ret == STORE_EINVAL || ret == STORE_ETOOBIG) {
		ret = http_respond_error(resp, 400, "invalid_body", "metadata: %s", status_str(ret));
		goto out;
	}
	if (ret < 0) {
		ret = api_respond_connection_error(resp, mreq.provider_config_key, mreq.ids[failed],
						   "writing the metadata", ret);
		goto out;
	}
	echo = json_object_new_object();
	if (echo) {
		json_object_object_get_ex(body, "connection_id", &v);
		json_object_object_add(echo, "connection_id", json_object_get(v));
		json_object_object_add(echo, "provider_config_key",
				       json_object_new_string(mreq.provider_config_key));
		json_object_object_add(echo, "metadata", json_object_get(mreq.metadata));
	}
	ret = http_respond_json(resp, merge ? 200 : 201, echo);
out:
	json_object_put(body);
	return ret;
}

int api_metadata_set(struct http_request *req, struct http_response *resp, void *user)
{
	return metadata_route(req, resp, user, false);
}

int api_metadata_update(struct http_request *req, struct http_response *resp, void *user)
{
	return metadata_route(req, resp, user, true);
}

/* ----------------------------------------- PATCH /connections/{id} */

static int connection_patch(struct api_context *ctx, struct generation *g, struct http_request *req,
			    struct http_response *resp)
{
	struct api_connection_patch patch;
	struct json_object *body = NULL;
	const char *pck;
	char *cid = NULL;
	int ret;

	memset(&patch, 0, sizeof(patch));
	if (!connection_target(req, resp, g, &pck, &cid)) {
		ret = 0;
		goto out;
	}
	ret = api_read_body(req, resp, API_BODY_CONNECTION_PATCH, &body, &patch);
	if (ret < 0)
		goto out;
	ret = cid ? store_connection_patch(ctx->store, pck, cid,
					   patch.tags ? api_json_str(patch.tags) : NULL,
					   patch.set_override, patch.webhook_url_override)
		  : STORE_ENOTFOUND;
	if (ret == STORE_ENOTFOUND) {
		ret = http_respond_error(resp, 404, "not_found", "Connection not found");
		goto out;
	}
	if (ret < 0) {
		ret = api_respond_connection_error(resp, pck, cid, "updating the connection", ret);
		goto out;
	}
	ret = api_respond_raw_json(resp, 200, "{\"success\":true}");
out:
	json_object_put(patch.tags);
	json_object_put(body);
	free(cid);
	return ret;
}

API_GENERATION_ROUTE(api_connection_patch, connection_patch)

/* One tags[<key>]=<value> argument of GET /connections into *tags. */
static int add_tag_filter(void *user, const char *name, const char *value)
{
	struct json_object **tags = user;
	char key[API_TAG_KEY_MAX + 1];
	size_t len = strlen(name);

	if (strncmp(name, "tags[", 5) != 0)
		return 0;
	if (len < 7 || name[len - 1] != ']' || len - 6 > API_TAG_KEY_MAX || !value || !*value)
		return -1;
	memcpy(key, name + 5, len - 6);
	key[len - 6] = '\0';
	if (!api_valid_tag_key(key))
		return -1;
	for (size_t i = 0; key[i]; i++)
		key[i] = (char)((key[i] >= 'A' && key[i] <= 'Z') ? key[i] + 32 : key[i]);
	if (!*tags && !(*tags = json_object_new_object()))
		return -1;
	json_object_object_add(*tags, key, json_object_new_string(value));
	return 0;
}

int api_tags_filter(struct http_request *req, struct json_object **tags)
{
	int ret;

	*tags = NULL;
	ret = http_query_each(req, add_tag_filter, tags);
	if (ret < 0) {
		json_object_put(*tags);
		*tags = NULL;
	}
	return ret;
}
