/*
 * api.c - the API's route table, its shared context and small helpers.
 */
#include "api_priv.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "generation.h"
#include "log.h"

/* ------------------------------------------------------ private part */

struct inflight_set {
	char **keys;
	size_t n;
};

struct api_private {
	pthread_mutex_t lock;                   /* guards everything below */
	char last_reload_error[API_ERROR_MAX];  /* "" when the last reload succeeded */
	struct inflight_set inflight[API_INFLIGHT_SETS];
	struct api_jobs *jobs;                  /* api_async.c; has its own lock */
};

int api_context_init(struct api_context *ctx)
{
	struct api_private *p = calloc(1, sizeof(*p));
	int ret;

	ctx->priv = NULL;
	if (!p)
		return STATUS_ENOMEM;
	p->jobs = api_jobs_new();
	if (!p->jobs) {
		free(p);
		return STATUS_ENOMEM;
	}
	ret = pthread_mutex_init(&p->lock, NULL);
	if (ret != 0) {
		api_jobs_free(p->jobs);
		free(p);
		return status_from_errno(ret);
	}
	ctx->priv = p;
	return 0;
}

void api_context_destroy(struct api_context *ctx)
{
	struct api_private *p = ctx ? ctx->priv : NULL;

	if (!p)
		return;
	for (size_t s = 0; s < API_INFLIGHT_SETS; s++) {
		for (size_t i = 0; i < p->inflight[s].n; i++)
			free(p->inflight[s].keys[i]);
		free(p->inflight[s].keys);
	}
	api_jobs_stop(ctx);
	api_jobs_free(p->jobs);
	pthread_mutex_destroy(&p->lock);
	free(p);
	ctx->priv = NULL;
}

struct api_jobs *api_jobs_of(struct api_context *ctx)
{
	return ctx->priv ? ctx->priv->jobs : NULL;
}

void api_set_last_reload_error(struct api_context *ctx, const char *err)
{
	pthread_mutex_lock(&ctx->priv->lock);
	snprintf(ctx->priv->last_reload_error, sizeof(ctx->priv->last_reload_error), "%s", err ? err : "");
	pthread_mutex_unlock(&ctx->priv->lock);
}

void api_last_reload_error(struct api_context *ctx, char out[API_ERROR_MAX])
{
	pthread_mutex_lock(&ctx->priv->lock);
	snprintf(out, API_ERROR_MAX, "%s", ctx->priv->last_reload_error);
	pthread_mutex_unlock(&ctx->priv->lock);
}

int api_inflight_add(struct api_context *ctx, enum api_inflight which, const char *key)
{
	struct inflight_set *set = &ctx->priv->inflight[which];
	int ret = 0;
	char **grown, *copy;

	pthread_mutex_lock(&ctx->priv->lock);
	for (size_t i = 0; i < set->n; i++) {
		if (strcmp(set->keys[i], key) == 0) {
			ret = 1;
			goto out;
		}
	}
	if (set->n >= API_INFLIGHT_MAX) {
		ret = STATUS_ENOMEM;
		goto out;
	}
	copy = strdup(key);
	grown = copy ? realloc(set->keys, (set->n + 1) * sizeof(*set->keys)) : NULL;
	if (!grown) {
		free(copy);
		ret = STATUS_ENOMEM;
		goto out;
	}
	set->keys = grown;
	set->keys[set->n++] = copy;
out:
	pthread_mutex_unlock(&ctx->priv->lock);
	return ret;
}

void api_inflight_remove(struct api_context *ctx, enum api_inflight which, const char *key)
{
	struct inflight_set *set = &ctx->priv->inflight[which];

	pthread_mutex_lock(&ctx->priv->lock);
	for (size_t i = 0; i < set->n; i++) {
		if (strcmp(set->keys[i], key) == 0) {
			free(set->keys[i]);
			set->keys[i] = set->keys[--set->n];
			break;
		}
	}
	pthread_mutex_unlock(&ctx->priv->lock);
}

int api_with_generation(struct http_request *req, struct http_response *resp, void *user,
			api_generation_fn fn)
{
	struct api_context *ctx = user;
	struct generation *g = dispatch_generation(ctx->dispatch);
	int ret = fn(ctx, g, req, resp);

	generation_unref(g);
	return ret;
}

/* ---------------------------------------------------------------- routes */

/* "/connections/{connection_id}" takes everything after "/connections/",
 * slashes included (the official client does not encode ids): one route
 * per number of segments, the handler reads the raw path. */
#define CONN_DEPTH_MAX (HTTP_MAX_SEGMENTS - 1)
#define FIXED_ROUTES 23

/* "/proxy/{path}": the same, for each method of the proxy API. */
#define PROXY_METHODS 5
static const char *const proxy_methods[PROXY_METHODS] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
static char proxy_patterns[CONN_DEPTH_MAX][16 + CONN_DEPTH_MAX * 8];

static struct http_route routes[FIXED_ROUTES + 3 * CONN_DEPTH_MAX + PROXY_METHODS * CONN_DEPTH_MAX];
static char conn_patterns[CONN_DEPTH_MAX][16 + CONN_DEPTH_MAX * 8];
static size_t n_routes;
static pthread_once_t routes_once = PTHREAD_ONCE_INIT;

static void build_routes(void)
{
	static const struct http_route fixed[FIXED_ROUTES] = {
		{"GET", "/healthz", api_healthz, true},
		{"GET", "/metrics", api_metrics, false},
		{"GET", "/connections", api_connections_list, false},
		{"POST", "/connections", api_connections_post, false},
		{"POST", "/connections/metadata", api_metadata_set, false},
		{"PATCH", "/connections/metadata", api_metadata_update, false},
		{"POST", "/action/trigger", api_action_trigger, false},
		{"GET", "/environment-variables", api_environment_variables, false},
		{"GET", "/executions", api_executions_list, false},
		{"GET", "/executions/{id}", api_execution_get, false},
		{"POST", "/executions/{id}/retry", api_execution_retry, false},
		{"GET", "/plugins", api_plugins, false},
		{"POST", "/reload", api_reload, false},
		{"GET", "/action/{id}", api_action_result, false},
		{"GET", "/integrations", api_integrations_list, false},
		{"GET", "/integrations/{unique_key}", api_integration_get, false},
		{"GET", "/providers", api_providers_list, false},
		{"GET", "/providers/{provider}", api_provider_get, false},
		{"POST", "/webhook/{integration}", api_webhook_receive, true},
		{"GET", "/webhooks", api_webhooks_list, false},
		{"GET", "/executions/stream", api_executions_stream, false},
		{"GET", "/executions/{id}/logs/stream", api_execution_logs_stream, false},
		{"GET", "/ui", api_ui, true},
	};

	memcpy(routes, fixed, sizeof(fixed));
	n_routes = FIXED_ROUTES;
	for (size_t depth = 1; depth <= CONN_DEPTH_MAX; depth++) {
		char *p = conn_patterns[depth - 1];
		size_t off = (size_t)snprintf(p, sizeof(conn_patterns[0]), "/connections");

		for (size_t i = 0; i < depth; i++)
			off += (size_t)snprintf(p + off, sizeof(conn_patterns[0]) - off, "/{p%zu}", i);
		routes[n_routes++] = (struct http_route){"GET", p, api_connection_get, false};
		routes[n_routes++] = (struct http_route){"DELETE", p, api_connection_delete, false};
		routes[n_routes++] = (struct http_route){"PATCH", p, api_connection_patch, false};
	}
	for (size_t depth = 1; depth <= CONN_DEPTH_MAX; depth++) {
		char *p = proxy_patterns[depth - 1];
		size_t off = (size_t)snprintf(p, sizeof(proxy_patterns[0]), "/proxy");

		for (size_t i = 0; i < depth; i++)
			off += (size_t)snprintf(p + off, sizeof(proxy_patterns[0]) - off, "/{p%zu}", i);
		for (size_t m = 0; m < PROXY_METHODS; m++)
			routes[n_routes++] = (struct http_route){proxy_methods[m], p, api_proxy, false};
	}
}

const struct http_route *api_routes(size_t *n)
{
	pthread_once(&routes_once, build_routes);
	*n = n_routes;
	return routes;
}

/* --------------------------------------------------------------- helpers */

void api_iso_time(int64_t ms, bool offset, char out[32])
{
	util_iso_time(ms, offset, out);
}

struct json_object *api_json_time(int64_t ms)
{
	char buf[32];

	if (ms == 0)
		return NULL;
	api_iso_time(ms, false, buf);
	return json_object_new_string(buf);
}

struct json_object *api_json_list(const char *name, struct json_object **arr)
{
	struct json_object *root = json_object_new_object();

	*arr = json_object_new_array();
	if (!root || !*arr) {
		json_object_put(root);
		json_object_put(*arr);
		*arr = NULL;
		return NULL;
	}
	json_object_object_add(root, name, *arr);
	return root;
}

struct json_object *api_json_member(const char *name, struct json_object *value)
{
	struct json_object *root = json_object_new_object();

	if (!root || json_object_object_add(root, name, value) != 0) {
		json_object_put(root);
		json_object_put(value);
		return NULL;
	}
	return root;
}

struct json_object *api_parse_doc(const char *s)
{
	struct json_tokener *tok;
	struct json_object *obj;

	if (!s)
		return NULL;
	tok = json_tokener_new_ex(64);
	if (!tok)
		return NULL;
	obj = json_tokener_parse_ex(tok, s, (int)strlen(s));
	if (json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(obj);
		obj = NULL;
	}
	json_tokener_free(tok);
	return obj;
}

int api_respond_problem(struct http_response *resp, unsigned status, const char *code,
			const char *message, struct json_object *errors, struct json_object *payload)
{
	struct json_object *root = json_object_new_object();
	struct json_object *err = json_object_new_object();

	if (!root || !err) {
		json_object_put(root);
		json_object_put(err);
		json_object_put(errors);
		json_object_put(payload);
		return http_respond_json(resp, status, NULL);
	}
	json_object_object_add(err, "code", json_object_new_string(code));
	json_object_object_add(err, "message", json_object_new_string(message ? message : ""));
	if (errors)
		json_object_object_add(err, "errors", errors);
	if (payload)
		json_object_object_add(err, "payload", payload);
	json_object_object_add(root, "error", err);
	return http_respond_json(resp, status, root);
}

int api_respond_parse_problem(struct http_response *resp, struct api_problem *p)
{
	struct json_object *errors = p->errors;

	p->errors = NULL;
	return api_respond_problem(resp, p->status, p->code, p->message, errors, NULL);
}

/* The parser of a kind of body (enum api_body): -1 with p filled when it
 * refuses the body. */
static int parse_body(enum api_body kind, struct json_object *body, void *out, struct api_problem *p)
{
	switch (kind) {
	case API_BODY_CONNECTION:
		return api_parse_connection(body, out, p);
	case API_BODY_METADATA:
		return api_parse_metadata(body, out, p);
	case API_BODY_ACTION:
		return api_parse_action(body, out, p);
	case API_BODY_CONNECTION_PATCH:
		return api_parse_connection_patch(body, out, p);
	}
	return -1;
}

int api_read_body(struct http_request *req, struct http_response *resp, enum api_body kind,
		  struct json_object **body, void *out)
{
	struct api_problem p;
	int ret;

	memset(&p, 0, sizeof(p));
	ret = http_json_body(req, body);
	if (ret < 0)
		return ret;
	if (parse_body(kind, *body, out, &p) == 0) {
		api_problem_clear(&p);
		return 0;
	}
	ret = api_respond_parse_problem(resp, &p);
	return ret < 0 ? ret : HTTP_EBADBODY;
}

int api_respond_unknown_connection(struct http_response *resp, const char *pck, const char *cid)
{
	return http_respond_error(resp, 404, "unknown_connection",
				  "Connection with connection id %s and provider config key %s not found",
				  cid, pck);
}

int api_respond_deleting(struct http_response *resp, const char *cid)
{
	return http_respond_error(resp, 409, "connection_deleting", "connection %s is being deleted", cid);
}

int api_respond_connection_error(struct http_response *resp, const char *pck, const char *cid,
				 const char *what, int err)
{
	if (err == STORE_ENOTFOUND)
		return api_respond_unknown_connection(resp, pck, cid);
	if (err == STORE_EDELETING)
		return api_respond_deleting(resp, cid);
	return api_respond_store_error(resp, what, err);
}

const struct config_integration *api_integration(struct http_response *resp,
						 const struct generation *g, const char *pck)
{
	const struct config_integration *in = config_integration_find(generation_config(g), pck);

	if (!in)
		http_respond_error(resp, 404, "unknown_provider_config", "integration %s is not configured", pck);
	return in;
}

const char *api_json_str(struct json_object *o)
{
	return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

bool api_parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	long long v;

	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

int api_respond_raw_json(struct http_response *resp, unsigned status, const char *json)
{
	return http_respond_text(resp, status, "application/json; charset=utf-8", json);
}

int api_respond_store_error(struct http_response *resp, const char *what, int err)
{
	log_error("api", "%s: %s", what, status_str(err));
	/* 500 even when busy: docs/api.md keeps 503 for GET /healthz */
	if (err == STORE_EBUSY)
		return http_respond_error(resp, 500, "server_error", "the store is busy, try again");
	return http_respond_error(resp, 500, "server_error", "%s failed: %s", what, status_str(err));
}

bool api_percent_decode(char *s)
{
	char *w = s;

	for (const char *r = s; *r; r++) {
		if (*r == '%') {
			int hi = util_hexval(r[1]), lo = hi >= 0 ? util_hexval(r[2]) : -1;

			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return false;
			*w++ = (char)(hi * 16 + lo);
			r += 2;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
	return true;
}
