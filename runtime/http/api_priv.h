/*
 * api_priv.h - shared by the api_*.c files; not an interface (api.h is the
 * daemon's).
 *
 * Files: api.c (context, routes, shared helpers), api_parse.c (pure body
 * parsers: JSON objects in, validated requests or a problem out; fuzzed),
 * api_connections.c, api_actions.c, api_executions.c, api_admin.c.
 */
#ifndef EVS_API_PRIV_H
#define EVS_API_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "api.h"
#include "config.h"

#define API_INFLIGHT_MAX 4096       /* Idempotency-Keys / deletions in flight at once */

/* ---- Handlers (http_handler_fn), one file per group; api.c routes them. ---- */

int api_connections_post(struct http_request *req, struct http_response *resp, void *user);
int api_connections_list(struct http_request *req, struct http_response *resp, void *user);
int api_connection_get(struct http_request *req, struct http_response *resp, void *user);
int api_connection_delete(struct http_request *req, struct http_response *resp, void *user);
int api_metadata_set(struct http_request *req, struct http_response *resp, void *user);
int api_metadata_update(struct http_request *req, struct http_response *resp, void *user);
int api_action_trigger(struct http_request *req, struct http_response *resp, void *user);
int api_environment_variables(struct http_request *req, struct http_response *resp, void *user);
int api_executions_list(struct http_request *req, struct http_response *resp, void *user);
int api_execution_get(struct http_request *req, struct http_response *resp, void *user);
int api_execution_retry(struct http_request *req, struct http_response *resp, void *user);
int api_plugins(struct http_request *req, struct http_response *resp, void *user);
int api_reload(struct http_request *req, struct http_response *resp, void *user);
int api_healthz(struct http_request *req, struct http_response *resp, void *user);
int api_metrics(struct http_request *req, struct http_response *resp, void *user);
int api_proxy(struct http_request *req, struct http_response *resp, void *user);
int api_action_result(struct http_request *req, struct http_response *resp, void *user);
int api_integrations_list(struct http_request *req, struct http_response *resp, void *user);
int api_integration_get(struct http_request *req, struct http_response *resp, void *user);
int api_providers_list(struct http_request *req, struct http_response *resp, void *user);
int api_provider_get(struct http_request *req, struct http_response *resp, void *user);
int api_connection_patch(struct http_request *req, struct http_response *resp, void *user);
int api_webhook_receive(struct http_request *req, struct http_response *resp, void *user);
int api_webhooks_list(struct http_request *req, struct http_response *resp, void *user);

/* The work of a handler that reads the running generation:
 * api_with_generation() takes a reference to the generation, calls
 * fn(ctx, g, req, resp) and lets the reference go (fn neither takes nor
 * releases it). Returns fn's result. */
typedef int (*api_generation_fn)(struct api_context *ctx, struct generation *g, struct http_request *req,
				 struct http_response *resp);
int api_with_generation(struct http_request *req, struct http_response *resp, void *user,
			api_generation_fn fn);
/* Defines the handler `name` (declared above) as api_with_generation()
 * around fn: API_GENERATION_ROUTE(api_plugins, plugins_doc) */
#define API_GENERATION_ROUTE(name, fn)                                                             \
	int name(struct http_request *req, struct http_response *resp, void *user)                 \
	{                                                                                          \
		return api_with_generation(req, resp, user, fn);                                   \
	}

/* ---- Asynchronous actions and background jobs (api_async.c). ---- */

/* The job set of the context's private part. */
struct api_jobs;
struct api_jobs *api_jobs_new(void);
/* ctx's job set (api.c), NULL after api_context_destroy(). */
struct api_jobs *api_jobs_of(struct api_context *ctx);
void api_jobs_free(struct api_jobs *j);
/* Starts fn(arg) on a detached thread that calls api_job_end(ctx) last:
 * 0, STATUS_ESTATE once api_jobs_stop() was called, STATUS_EBUSY with
 * API_JOBS_MAX jobs running, or a system error (fn does not run; arg stays
 * the caller's). */
#define API_JOBS_MAX 256
int api_job_start(struct api_context *ctx, void *(*fn)(void *), void *arg);
void api_job_end(struct api_context *ctx);
/* Wakes the jobs waiting in api_jobs_sleep() (new work). */
void api_jobs_wake(struct api_context *ctx);
/* Webhooks since start: received (recorded), refused for a bad signature,
 * forwarded, failed for good (api_webhooks.c). */
void api_webhook_counters(uint64_t out[4]);
/* Waits up to ms or until api_jobs_stop(); true when stopping. */
bool api_jobs_sleep(struct api_context *ctx, int64_t ms);

/* Records an asynchronous run of action name (input: JSON text) and
 * starts it; answers 202 {"id","statusUrl"}. The request was validated. */
int api_action_async_start(struct api_context *ctx, struct http_response *resp, const char *pck,
			   const char *cid, const char *name, const char *input);

/* The payload of a failed action run (new reference): the action's own
 * (set_action_error), else {"execution_id","status"}. */
struct json_object *api_action_failure_payload(const struct dispatch_outcome *o);

/* The tags[<key>]=<value> arguments of a GET /connections as an object
 * (*tags new, NULL when there are none): 0, or -1 for a malformed one. */
int api_tags_filter(struct http_request *req, struct json_object **tags);

/* [{"integration","event","sources":["nango.yaml"|"plugin",...]}] of a
 * loaded plugin in g (api_catalogue.c); event "action" for an action. */
struct json_object *api_plugin_subscriptions(const struct generation *g, const char *plugin);

/* A random UUID v4, lower case (api_connections.c). */
void api_uuid_v4(char out[37]);
int api_executions_stream(struct http_request *req, struct http_response *resp, void *user);
int api_execution_logs_stream(struct http_request *req, struct http_response *resp, void *user);
int api_ui(struct http_request *req, struct http_response *resp, void *user);

/* ---- The context's private part (api.c), under its lock. ---- */

/* Copies the last reload's error into out ("" when it succeeded). */
void api_last_reload_error(struct api_context *ctx, char out[API_ERROR_MAX]);

/* The requests in progress on this daemon, by key: POST /connections by
 * Idempotency-Key, DELETE by "pck\ncid". */
enum api_inflight { API_INFLIGHT_IDEMPOTENCY, API_INFLIGHT_DELETE, API_INFLIGHT_SETS };

/* Adds a copy of key to set `which`: 0, 1 when it is already there, STATUS_ENOMEM
 * (out of memory, or API_INFLIGHT_MAX keys in the set already). */
int api_inflight_add(struct api_context *ctx, enum api_inflight which, const char *key);

/* Removes key from set `which` (nothing when it is not there). */
void api_inflight_remove(struct api_context *ctx, enum api_inflight which, const char *key);

/* ---- Helpers (api.c). ---- */

/* ISO 8601 UTC with milliseconds: "2025-01-31T12:34:56.789Z", or with
 * offset true "...789+00:00". out must hold 32 bytes. */
void api_iso_time(int64_t ms, bool offset, char out[32]);

/* A JSON string of an ISO time, or JSON null for ms == 0. New reference. */
struct json_object *api_json_time(int64_t ms);

/* A new object {"<name>": []} for a list response; *arr gets its array
 * (borrowed from the object). NULL, with *arr NULL, when an allocation
 * fails: http_respond_json() answers that with 500. */
struct json_object *api_json_list(const char *name, struct json_object **arr);

/* A new object {"<name>": value} for a response; takes value (which may be
 * NULL: JSON null). NULL when out of memory (value then freed):
 * http_respond_json() answers that with 500. */
struct json_object *api_json_member(const char *name, struct json_object *value);

/* The execution object of docs/api.md (api_executions.c); a new reference,
 * NULL when out of memory. */
struct json_object *api_execution_json(struct api_context *ctx, const struct store_execution *e);

/* Parses a JSON document string (from the store); NULL on failure. */
struct json_object *api_parse_doc(const char *s);

/* {"error":{"code","message"[,"errors"][,"payload"]}}. Takes ownership of
 * errors and payload (either may be NULL). */
int api_respond_problem(struct http_response *resp, unsigned status, const char *code,
			const char *message, struct json_object *errors, struct json_object *payload);

/* Serialized JSON with "application/json; charset=utf-8". */
int api_respond_raw_json(struct http_response *resp, unsigned status, const char *json);

/* Answers a store error with 500 server_error (logged once). */
int api_respond_store_error(struct http_response *resp, const char *what, int err);

/* Percent-decodes in place; false when the result holds a NUL or a bad escape. */
bool api_percent_decode(char *s);

/* A query-string number: decimal digits only (no sign, no space), within
 * [min, max]. False when s is NULL or anything else. */
bool api_parse_int(const char *s, int64_t min, int64_t max, int64_t *out);

/* Compact JSON text of o ("/" not escaped); owned by o, valid until o
 * changes or is freed. */
const char *api_json_str(struct json_object *o);

/* The integration pck of g's config (borrowed from g), or NULL after
 * answering 404 unknown_provider_config. */
const struct config_integration *api_integration(struct http_response *resp,
						 const struct generation *g, const char *pck);

/* 404 unknown_connection with Nango's message. */
int api_respond_unknown_connection(struct http_response *resp, const char *pck, const char *cid);

/* 409 connection_deleting. */
int api_respond_deleting(struct http_response *resp, const char *cid);

/* Answers a store error about connection pck/cid: STORE_ENOTFOUND with
 * api_respond_unknown_connection, STORE_EDELETING with
 * api_respond_deleting, any other with api_respond_store_error(what). */
int api_respond_connection_error(struct http_response *resp, const char *pck, const char *cid,
				 const char *what, int err);

/* ---- proxy.verification on import (api_verify.c). ---- */

/* Whether an import of credentials of cred_type ("API_KEY", ...) for
 * provider p runs p's verification request: API_KEY and BASIC, when the
 * provider has one. */
bool api_verify_needed(const struct config_provider *p, const char *cred_type);

/* Runs it with the candidate connection cand (the get_connection() shape):
 * 0 when an endpoint answered 2xx; 1 after answering 400
 * connection_test_failed (no endpoint did, or the request could not be
 * made). Blocks for at most 15 s per endpoint. */
int api_verify_connection(const struct config_host *cfg, const struct config_integration *integ,
			  const struct config_provider *p, const char *cid, struct json_object *cand,
			  struct http_response *resp);

/* ---- Pure parsers (api_parse.c); fuzzed by tests/fuzz/fuzz_api_json.c. ---- */

/* A refusal: HTTP status, error code and message, and for invalid_body the
 * list of {"path":[...],"message"} (owned; api_problem_clear). */
struct api_problem {
	unsigned status;
	const char *code;
	char message[256];
	struct json_object *errors;
};
void api_problem_clear(struct api_problem *p);

/* Answers with a parser's refusal; takes p->errors (p is left clear). */
int api_respond_parse_problem(struct http_response *resp, struct api_problem *p);

enum api_cred_type { API_CRED_OAUTH2 = 1, API_CRED_API_KEY, API_CRED_BASIC, API_CRED_NONE, API_CRED_OAUTH2_CC,
		    API_CRED_OAUTH1, API_CRED_TBA };
const char *api_cred_type_name(enum api_cred_type t);

/* A validated POST /connections body. Every pointer is borrowed from the
 * body object the parser was given. */
struct api_connection_req {
	const char *provider_config_key;
	const char *connection_id;             /* NULL: absent (generate one) */
	enum api_cred_type cred_type;
	struct json_object *credentials;       /* the object as submitted */
	struct json_object *metadata;          /* NULL when absent */
	struct json_object *connection_config; /* NULL when absent */
};

/* Validates a POST /connections body (a JSON object). Returns 0 and fills
 * req, or -1 and fills p (400 invalid_body, 422 invalid_credentials_type). */
int api_parse_connection(struct json_object *body, struct api_connection_req *req,
			 struct api_problem *p);

/* The credentials as stored (a new object): API_KEY, BASIC, NONE as given;
 * OAUTH2 {type, access_token, refresh_token?, expires_at?, config_override?,
 * raw: <as submitted>}. NULL on allocation failure. */
struct json_object *api_credentials_stored(const struct api_connection_req *req);

/* The credentials for a response (a new object) from the stored JSON:
 * refresh_token and raw.refresh_token are dropped unless with_refresh;
 * refresh_error is never shown there (see api_credentials_errors). */
struct json_object *api_credentials_view(struct json_object *stored, bool with_refresh);

/* The connection's errors for a response (a new array): one
 * {"type":"auth","log_id":null,"message","at"} when the stored credentials
 * carry a refresh_error (credentials.h), else empty. */
struct json_object *api_credentials_errors(struct json_object *stored);

/* A validated metadata body (POST/PATCH /connections/metadata). */
#define API_METADATA_IDS_MAX 100
struct api_metadata_req {
	const char *provider_config_key;
	const char *ids[API_METADATA_IDS_MAX];
	size_t n_ids;
	struct json_object *metadata;          /* borrowed */
};
int api_parse_metadata(struct json_object *body, struct api_metadata_req *req,
		       struct api_problem *p);

/* A validated POST /action/trigger body; input is never NULL ("null"). */
struct api_action_req {
	const char *action_name;
	struct json_object *input;             /* borrowed; NULL means JSON null */
};
int api_parse_action(struct json_object *body, struct api_action_req *req, struct api_problem *p);

/* A validated PATCH /connections/{id} body (Nango's PatchPublicConnection:
 * end_user is accepted and ignored, evscript has no end users). */
#define API_TAGS_MAX 64
#define API_TAG_KEY_MAX 64
#define API_TAG_VALUE_MAX 255
#define API_URL_MAX 2048
struct api_connection_patch {
	struct json_object *tags;            /* owned: keys in lower case; NULL when absent */
	bool set_override;                   /* webhook_url_override was given (null clears it) */
	const char *webhook_url_override;    /* borrowed from the body */
};
int api_parse_connection_patch(struct json_object *body, struct api_connection_patch *req,
			       struct api_problem *p);

/* The request bodies a handler reads with api_read_body(): each kind's
 * parser above, and the struct it fills. */
enum api_body {
	API_BODY_CONNECTION,       /* api_parse_connection: struct api_connection_req */
	API_BODY_METADATA,         /* api_parse_metadata: struct api_metadata_req */
	API_BODY_ACTION,           /* api_parse_action: struct api_action_req */
	API_BODY_CONNECTION_PATCH, /* api_parse_connection_patch: struct api_connection_patch */
};

/* Reads the request's body as JSON (http_json_body) and validates it with
 * the parser of kind, which fills *out (the struct the kind names). Returns
 * 0, or a negative code once the request has been answered: HTTP_EBADBODY
 * for JSON that does not parse or a body the parser refuses (its problem is
 * the answer), or the code of an answer that could not be made. *body is a
 * new reference or NULL, the caller's to put whatever the result (out
 * borrows from it). */
int api_read_body(struct http_request *req, struct http_response *resp, enum api_body kind,
		  struct json_object **body, void *out);

/* Tag key rule: 1-64 bytes of [A-Za-z0-9_.-]. */
bool api_valid_tag_key(const char *k);

/* connection_id rule: 1-255 bytes of valid UTF-8 without control characters. */
bool api_valid_connection_id(const char *s);

/* Idempotency-Key rule: 1-255 bytes of 0x21-0x7E. */
bool api_valid_idempotency_key(const char *s);

#endif
