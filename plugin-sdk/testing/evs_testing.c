/*
 * evs_testing.c - the fake host of <evscript/testing.h>.
 *
 * The state is json-c documents (the connection, the metadata, the
 * environment, the canned responses and actions) and plain arrays of what
 * the plugin did. Strings lent to the plugin are kept in `lent` and freed at
 * the next run or at evs_test_free(), as the daemon keeps them for the
 * length of an execution.
 */
#include <evscript/testing.h>

#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_BYTES 4096
#define CAPTURE_MAX 100000 /* log lines, requests and lent strings kept; past it, dropped */

struct evs_ctx {
	struct evs_test *t;
};

struct line {
	int level;
	char *text;
};

struct request {
	char *method, *endpoint, *body;
};

struct evs_test {
	struct evs_ctx ctx;
	struct evs_host host;
	struct json_object *connection;  /* without "metadata" */
	struct json_object *metadata;
	struct json_object *env;         /* name -> string */
	struct json_object *responses;   /* "METHOD ENDPOINT" -> [{status, body}, ...] */
	struct json_object *actions;     /* name -> {result, output} */
	char *webhook_url;
	char *error;
	struct line *lines;
	size_t n_lines;
	struct request *requests;
	size_t n_requests;
	size_t unmatched, metadata_writes;
	char **lent;
	size_t n_lent;
	char *metadata_text;             /* evs_test_metadata()'s answer */
};

/* ---- helpers ---------------------------------------------------------- */

/* Keeps s until the next run; returns it (NULL when s is NULL or on OOM). */
static const char *lend(struct evs_test *t, char *s)
{
	char **n;

	if (!s)
		return NULL;
	n = t->n_lent < CAPTURE_MAX ? realloc(t->lent, (t->n_lent + 1) * sizeof(*n)) : NULL;
	if (!n) {
		free(s);
		return NULL;
	}
	t->lent = n;
	t->lent[t->n_lent++] = s;
	return s;
}

static void free_lent(struct evs_test *t)
{
	for (size_t i = 0; i < t->n_lent; i++)
		free(t->lent[i]);
	free(t->lent);
	t->lent = NULL;
	t->n_lent = 0;
}

static char *text_of(struct json_object *o)
{
	return strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* json parsed as an object, or NULL. */
static struct json_object *parse_object(const char *json)
{
	struct json_object *o = json ? json_tokener_parse(json) : NULL;

	if (o && !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static char *vformat(const char *fmt, va_list ap)
{
	char *s = malloc(LINE_MAX_BYTES);

	if (s)
		vsnprintf(s, LINE_MAX_BYTES, fmt, ap);
	return s;
}

/* ---- the vtable ------------------------------------------------------- */

static void h_log(struct evs_ctx *ctx, enum evs_log_level level, const char *fmt, ...)
{
	struct evs_test *t = ctx->t;
	struct line *n;
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = vformat(fmt, ap);
	va_end(ap);
	n = s && t->n_lines < CAPTURE_MAX ? realloc(t->lines, (t->n_lines + 1) * sizeof(*n)) : NULL;
	if (!n) {
		free(s);
		return;
	}
	t->lines = n;
	t->lines[t->n_lines].level = (int)level;
	t->lines[t->n_lines++].text = s;
}

static void h_set_error(struct evs_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = vformat(fmt, ap);
	va_end(ap);
	if (s) {
		free(ctx->t->error);
		ctx->t->error = s;
	}
}

static int h_get_connection(struct evs_ctx *ctx, const char **json)
{
	struct evs_test *t = ctx->t;
	struct json_object *doc = NULL;

	*json = NULL;
	if (json_object_deep_copy(t->connection, &doc, NULL) != 0)
		return EVS_ENOMEM;
	json_object_object_add(doc, "metadata", json_object_get(t->metadata));
	*json = lend(t, text_of(doc));
	json_object_put(doc);
	return *json ? EVS_OK : EVS_ENOMEM;
}

static int h_get_metadata(struct evs_ctx *ctx, const char **json)
{
	*json = lend(ctx->t, text_of(ctx->t->metadata));
	return *json ? EVS_OK : EVS_ENOMEM;
}

static int h_set_metadata(struct evs_ctx *ctx, const char *json)
{
	struct json_object *o = parse_object(json);

	if (!o)
		return EVS_EINVAL;
	json_object_put(ctx->t->metadata);
	ctx->t->metadata = o;
	ctx->t->metadata_writes++;
	return EVS_OK;
}

static int h_update_metadata(struct evs_ctx *ctx, const char *json)
{
	struct json_object *o = parse_object(json);

	if (!o)
		return EVS_EINVAL;
	json_object_object_foreach(o, key, val)
		json_object_object_add(ctx->t->metadata, key, json_object_get(val));
	json_object_put(o);
	ctx->t->metadata_writes++;
	return EVS_OK;
}

/* Records the request and finds its canned response: the queue's next, the
 * last one staying. NULL when there is none. */
static struct json_object *next_response(struct evs_test *t, const struct evs_request *req)
{
	const char *method = req->method ? req->method : "GET", *endpoint = req->endpoint ? req->endpoint : "";
	struct json_object *queue = NULL, *r;
	struct request *n;
	char key[1024];
	size_t len = strcspn(endpoint, "?");

	n = t->n_requests < CAPTURE_MAX ? realloc(t->requests, (t->n_requests + 1) * sizeof(*n)) : NULL;
	if (n) {
		t->requests = n;
		n[t->n_requests].method = strdup(method);
		n[t->n_requests].endpoint = strdup(endpoint);
		n[t->n_requests].body = strndup(req->body ? (const char *)req->body : "", req->body ? req->body_len : 0);
		t->n_requests++;
	}
	snprintf(key, sizeof(key), "%s %.*s", method, (int)len, endpoint);
	if (!json_object_object_get_ex(t->responses, key, &queue) || json_object_array_length(queue) == 0)
		return NULL;
	r = json_object_get(json_object_array_get_idx(queue, 0));
	if (json_object_array_length(queue) > 1)
		json_object_array_del_idx(queue, 0, 1);
	return r;
}

static int h_proxy(struct evs_ctx *ctx, const struct evs_request *req, struct evs_response **resp)
{
	struct evs_test *t = ctx->t;
	struct json_object *r, *status = NULL, *body = NULL;
	struct evs_response *out;
	char missing[1200];
	const char *text;

	*resp = NULL;
	if (!req || req->size < sizeof(uint32_t))
		return EVS_EINVAL;
	r = next_response(t, req);
	if (r) {
		json_object_object_get_ex(r, "status", &status);
		json_object_object_get_ex(r, "body", &body);
		text = json_object_get_string(body);
	} else {
		t->unmatched++;
		snprintf(missing, sizeof(missing), "{\"error\":\"evs_test: no response for %s %s\"}",
			 req->method ? req->method : "GET", req->endpoint ? req->endpoint : "");
		text = missing;
	}
	out = calloc(1, sizeof(*out));
	if (out) {
		out->size = sizeof(*out);
		out->status = r ? json_object_get_int(status) : 404;
		out->body = strdup(text);
		out->body_len = out->body ? strlen(out->body) : 0;
	}
	json_object_put(r);
	if (!out || !out->body) {
		free(out);
		return EVS_ENOMEM;
	}
	*resp = out;
	return EVS_OK;
}

static void h_free_response(struct evs_ctx *ctx, struct evs_response *resp)
{
	(void)ctx;
	if (resp)
		free((char *)resp->body);
	free(resp);
}

/* The records of one page: the array at path (dotted), else the body when
 * it is an array, else its "items". Borrowed from body; NULL when none. */
static struct json_object *records_of(struct json_object *body, const char *path)
{
	struct json_object *cur = body;
	char part[256];

	if (!path || !*path)
		path = json_object_is_type(body, json_type_array) ? "" : "items";
	while (*path && cur) {
		size_t n = strcspn(path, ".");

		snprintf(part, sizeof(part), "%.*s", (int)n, path);
		if (!json_object_object_get_ex(cur, part, &cur))
			cur = NULL;
		path += n + (path[n] == '.');
	}
	return json_object_is_type(cur, json_type_array) ? cur : NULL;
}

/* How many responses are queued for req (the last one stays: 1 means this
 * is the last page). */
static size_t queued(const struct evs_test *t, const struct evs_request *req)
{
	const char *endpoint = req->endpoint ? req->endpoint : "";
	struct json_object *queue;
	char key[1024];

	snprintf(key, sizeof(key), "%s %.*s", req->method ? req->method : "GET", (int)strcspn(endpoint, "?"),
		 endpoint);
	return json_object_object_get_ex(t->responses, key, &queue) ? json_object_array_length(queue) : 0;
}

/* One page: 0 to go on, 1 when done, or an EVS_E* code. */
static int one_page(struct evs_ctx *ctx, const struct evs_request *req, const char *path, evs_page_fn on_page,
		    void *user)
{
	bool last = queued(ctx->t, req) <= 1;
	struct evs_response *resp = NULL;
	struct json_object *body, *records;
	size_t n;
	int ret;

	ret = h_proxy(ctx, req, &resp);
	if (ret != EVS_OK)
		return ret;
	body = resp->status / 100 == 2 ? json_tokener_parse(resp->body) : NULL;
	records = records_of(body, path);
	n = records ? json_object_array_length(records) : 0;
	if (!records)
		ret = EVS_EFAILED; /* a non-2xx page, not JSON, or no records array */
	else if (n == 0 || on_page(user, json_object_to_json_string_ext(records, JSON_C_TO_STRING_PLAIN), n) || last)
		ret = 1;
	json_object_put(body);
	h_free_response(ctx, resp);
	return ret;
}

static int h_paginate(struct evs_ctx *ctx, const struct evs_request *req, const struct evs_paginate_options *opts,
		      evs_page_fn on_page, void *user)
{
	const char *path = opts ? opts->response_path : NULL;
	uint32_t max_pages = opts ? opts->max_pages : 0;
	int ret = 0;

	if (!req || !on_page)
		return EVS_EINVAL;
	for (uint32_t page = 0; ret == 0 && (max_pages == 0 || page < max_pages); page++)
		ret = one_page(ctx, req, path, on_page, user);
	return ret < 0 ? ret : EVS_OK;
}

static int h_get_env(struct evs_ctx *ctx, const char *name, const char **value)
{
	struct json_object *v;

	*value = NULL;
	if (!name || !json_object_object_get_ex(ctx->t->env, name, &v))
		return EVS_ENOTFOUND;
	*value = json_object_get_string(v);
	return EVS_OK;
}

static int h_get_webhook_url(struct evs_ctx *ctx, const char **url)
{
	*url = ctx->t->webhook_url;
	return *url ? EVS_OK : EVS_ENOTFOUND;
}

static int h_trigger_action(struct evs_ctx *ctx, const char *name, const char *input_json,
			    const char **output_json)
{
	struct json_object *a, *result = NULL, *output = NULL;

	(void)input_json;
	*output_json = NULL;
	if (!name || !json_object_object_get_ex(ctx->t->actions, name, &a))
		return EVS_ENOTFOUND;
	json_object_object_get_ex(a, "result", &result);
	json_object_object_get_ex(a, "output", &output);
	if (json_object_get_int(result) != EVS_OK)
		return json_object_get_int(result);
	*output_json = lend(ctx->t, strdup(output ? json_object_get_string(output) : "null"));
	return *output_json ? EVS_OK : EVS_ENOMEM;
}

/* ---- set-up ----------------------------------------------------------- */

struct evs_test *evs_test_new(void)
{
	struct evs_test *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->ctx.t = t;
	t->host = (struct evs_host){
		.size = sizeof(struct evs_host), .abi_major = EVS_ABI_MAJOR, .abi_minor = EVS_ABI_MINOR,
		.log = h_log, .set_error = h_set_error, .get_connection = h_get_connection,
		.get_metadata = h_get_metadata, .set_metadata = h_set_metadata,
		.update_metadata = h_update_metadata, .proxy = h_proxy, .free_response = h_free_response,
		.paginate = h_paginate, .get_env = h_get_env, .get_webhook_url = h_get_webhook_url,
		.trigger_action = h_trigger_action,
	};
	t->connection = json_tokener_parse("{\"connection_id\":\"test-connection\",\"provider_config_key\":"
					   "\"test-integration\",\"provider\":\"test\",\"credentials\":"
					   "{\"type\":\"NONE\"},\"connection_config\":{}}");
	t->metadata = json_object_new_object();
	t->env = json_object_new_object();
	t->responses = json_object_new_object();
	t->actions = json_object_new_object();
	t->webhook_url = strdup("http://127.0.0.1:3003/webhook/test-integration");
	if (!t->connection || !t->metadata || !t->env || !t->responses || !t->actions || !t->webhook_url) {
		evs_test_free(t);
		return NULL;
	}
	return t;
}

void evs_test_reset_captures(struct evs_test *t)
{
	for (size_t i = 0; i < t->n_lines; i++)
		free(t->lines[i].text);
	for (size_t i = 0; i < t->n_requests; i++) {
		free(t->requests[i].method);
		free(t->requests[i].endpoint);
		free(t->requests[i].body);
	}
	free(t->lines);
	free(t->requests);
	free(t->error);
	t->lines = NULL;
	t->requests = NULL;
	t->error = NULL;
	t->n_lines = t->n_requests = t->unmatched = t->metadata_writes = 0;
}

void evs_test_free(struct evs_test *t)
{
	if (!t)
		return;
	evs_test_reset_captures(t);
	free_lent(t);
	json_object_put(t->connection);
	json_object_put(t->metadata);
	json_object_put(t->env);
	json_object_put(t->responses);
	json_object_put(t->actions);
	free(t->webhook_url);
	free(t->metadata_text);
	free(t);
}

int evs_test_set_connection(struct evs_test *t, const char *json)
{
	struct json_object *o = parse_object(json);

	if (!o)
		return -1;
	json_object_object_foreach(o, key, val) {
		if (strcmp(key, "metadata") == 0) {
			if (!json_object_is_type(val, json_type_object)) {
				json_object_put(o);
				return -1;
			}
			json_object_put(t->metadata);
			t->metadata = json_object_get(val);
		} else {
			json_object_object_add(t->connection, key, json_object_get(val));
		}
	}
	json_object_put(o);
	return 0;
}

int evs_test_set_metadata(struct evs_test *t, const char *json)
{
	struct json_object *o = parse_object(json);

	if (!o)
		return -1;
	json_object_put(t->metadata);
	t->metadata = o;
	return 0;
}

int evs_test_set_env(struct evs_test *t, const char *name, const char *value)
{
	if (!name || !value)
		return -1;
	return json_object_object_add(t->env, name, json_object_new_string(value)) == 0 ? 0 : -1;
}

int evs_test_set_webhook_url(struct evs_test *t, const char *url)
{
	char *copy = url ? strdup(url) : NULL;

	if (url && !copy)
		return -1;
	free(t->webhook_url);
	t->webhook_url = copy;
	return 0;
}

int evs_test_respond(struct evs_test *t, const char *method, const char *endpoint, int status, const char *body)
{
	struct json_object *queue = NULL, *r;
	char key[1024];

	if (!method || !endpoint)
		return -1;
	snprintf(key, sizeof(key), "%s %.*s", method, (int)strcspn(endpoint, "?"), endpoint);
	if (!json_object_object_get_ex(t->responses, key, &queue)) {
		queue = json_object_new_array();
		json_object_object_add(t->responses, key, queue);
	}
	r = json_object_new_object();
	json_object_object_add(r, "status", json_object_new_int(status));
	json_object_object_add(r, "body", json_object_new_string(body ? body : ""));
	return json_object_array_add(queue, r) == 0 ? 0 : -1;
}

int evs_test_action(struct evs_test *t, const char *name, int result, const char *output)
{
	struct json_object *a = json_object_new_object();

	if (!name || !a)
		return -1;
	json_object_object_add(a, "result", json_object_new_int(result));
	json_object_object_add(a, "output", json_object_new_string(output ? output : "null"));
	return json_object_object_add(t->actions, name, a) == 0 ? 0 : -1;
}

/* ---- running ---------------------------------------------------------- */

static const char *conn_string(const struct evs_test *t, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(t->connection, key, &v) ? json_object_get_string(v) : "";
}

int evs_test_run_event(struct evs_test *t, evs_on_event_fn on_event, const char *event)
{
	static int64_t next_id = 1;
	struct evs_event ev = {.size = sizeof(ev), .name = event};

	free_lent(t);
	if (strcmp(event, "post-connection-creation") == 0)
		ev.type = EVS_EVENT_POST_CONNECTION_CREATION;
	else if (strcmp(event, "pre-connection-deletion") == 0)
		ev.type = EVS_EVENT_PRE_CONNECTION_DELETION;
	else if (strcmp(event, "validate-connection") == 0)
		ev.type = EVS_EVENT_VALIDATE_CONNECTION;
	ev.connection_id = conn_string(t, "connection_id");
	ev.provider_config_key = conn_string(t, "provider_config_key");
	ev.event_id = next_id;
	ev.execution_id = next_id++;
	return on_event(&t->host, &t->ctx, &ev);
}

int evs_test_run_action(struct evs_test *t, evs_run_action_fn run_action, const char *input, char **output)
{
	char *out = NULL;
	int ret;

	free_lent(t);
	ret = run_action(&t->host, &t->ctx, input ? input : "null", &out);
	if (output)
		*output = out;
	else
		free(out);
	return ret;
}

const struct evs_host *evs_test_host(struct evs_test *t)
{
	return &t->host;
}

struct evs_ctx *evs_test_ctx(struct evs_test *t)
{
	return &t->ctx;
}

/* ---- captures --------------------------------------------------------- */

size_t evs_test_log_count(const struct evs_test *t)
{
	return t->n_lines;
}

const char *evs_test_log(const struct evs_test *t, size_t i, int *level)
{
	if (i >= t->n_lines)
		return NULL;
	if (level)
		*level = t->lines[i].level;
	return t->lines[i].text;
}

bool evs_test_logged(const struct evs_test *t, const char *text)
{
	for (size_t i = 0; i < t->n_lines; i++)
		if (strstr(t->lines[i].text, text))
			return true;
	return false;
}

const char *evs_test_error(const struct evs_test *t)
{
	return t->error;
}

const char *evs_test_metadata(const struct evs_test *t)
{
	struct evs_test *mut = (struct evs_test *)t; /* a cache of the text */

	free(mut->metadata_text);
	mut->metadata_text = text_of(t->metadata);
	return mut->metadata_text;
}

size_t evs_test_metadata_writes(const struct evs_test *t)
{
	return t->metadata_writes;
}

size_t evs_test_request_count(const struct evs_test *t)
{
	return t->n_requests;
}

const char *evs_test_request(const struct evs_test *t, size_t i, const char **endpoint, const char **body)
{
	if (i >= t->n_requests)
		return NULL;
	if (endpoint)
		*endpoint = t->requests[i].endpoint;
	if (body)
		*body = t->requests[i].body;
	return t->requests[i].method;
}

size_t evs_test_unmatched(const struct evs_test *t)
{
	return t->unmatched;
}
