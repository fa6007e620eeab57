/*
 * api_executions.c - GET /executions, GET /executions/{id} and
 * POST /executions/{id}/retry.
 */
#include "api_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "generation.h"
#include "log.h"
#include "util.h"

#define LIST_DEFAULT 50
#define LIST_MAX 200
#define RETRY_WAIT_MS 5000

static const char *const event_names[] = {STORE_EVENT_POST_CONNECTION_CREATION,
					  STORE_EVENT_PRE_CONNECTION_DELETION,
					  STORE_EVENT_VALIDATE_CONNECTION, "action", NULL};

static struct json_object *str_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static struct json_object *id_or_null(int64_t id)
{
	return id > 0 ? json_object_new_int64(id) : NULL;
}

/* The execution object of docs/api.md. */
static struct json_object *execution_json(struct api_context *ctx, const struct store_execution *e)
{
	struct json_object *o = json_object_new_object();
	struct store_event ev;
	int64_t retry_of = 0;

	if (!o)
		return NULL;
	if (e->event_id > 0 && store_event_get(ctx->store, e->event_id, &ev) == 0)
		retry_of = ev.retry_of;
	json_object_object_add(o, "id", json_object_new_int64(e->id));
	json_object_object_add(o, "event_id", id_or_null(e->event_id));
	json_object_object_add(o, "event", json_object_new_string(
		e->kind == STORE_EXEC_ACTION ? "action" : e->event ? e->event : ""));
	json_object_object_add(o, "script", json_object_new_string(e->script ? e->script : ""));
	json_object_object_add(o, "script_version", str_or_null(e->plugin_version));
	json_object_object_add(o, "host_id", str_or_null(e->host_id));
	json_object_object_add(o, "connection_id", json_object_new_string(e->connection_id ? e->connection_id : ""));
	json_object_object_add(o, "provider_config_key",
			       json_object_new_string(e->provider_config_key ? e->provider_config_key : ""));
	json_object_object_add(o, "status", json_object_new_string(store_exec_status_name(e->status)));
	json_object_object_add(o, "started_at", api_json_time(e->started_at));
	json_object_object_add(o, "ended_at", api_json_time(e->ended_at));
	json_object_object_add(o, "duration_ms", e->duration_ms >= 0 && e->ended_at
						 ? json_object_new_int64(e->duration_ms) : NULL);
	json_object_object_add(o, "error", str_or_null(e->error));
	json_object_object_add(o, "retry_of", id_or_null(retry_of));
	json_object_object_add(o, "parent_execution_id", id_or_null(e->parent_execution_id));
	json_object_object_add(o, "logs_dropped", json_object_new_int64(e->logs_dropped));
	return o;
}

static bool in_list(const char *const *list, const char *s)
{
	for (size_t i = 0; list[i]; i++) {
		if (strcmp(list[i], s) == 0)
			return true;
	}
	return false;
}

int api_executions_list(struct http_request *req, struct http_response *resp, void *user)
{
	struct api_context *ctx = user;
	struct store_execution_filter f = {.status = -1, .limit = LIST_DEFAULT};
	const char *event = http_query(req, "event"), *status = http_query(req, "status");
	const char *limit = http_query(req, "limit"), *cursor = http_query(req, "cursor");
	struct store_execution **items = NULL;
	struct json_object *root, *arr;
	int64_t next = 0, v;
	size_t n = 0;
	int ret;

	f.connection_id = http_query(req, "connection_id");
	f.provider_config_key = http_query(req, "provider_config_key");
	if (!f.provider_config_key)
		f.provider_config_key = http_query(req, "integration");
	f.script = http_query(req, "script");
	if (event) {
		if (!in_list(event_names, event))
			return http_respond_error(resp, 400, "invalid_query_params",
						  "event must be post-connection-creation, pre-connection-deletion, "
						  "validate-connection or action");
		f.event = event;
	}
	if (status) {
		f.status = store_exec_status_from_name(status);
		if (f.status < 0)
			return http_respond_error(resp, 400, "invalid_query_params",
						  "status must be running, succeeded, failed, crashed, timed_out "
						  "or interrupted");
	}
	if (limit) {
		if (!api_parse_int(limit, 1, LIST_MAX, &v))
			return http_respond_error(resp, 400, "invalid_query_params", "limit must be 1 to 200");
		f.limit = (size_t)v;
	}
	if (cursor) {
		if (!api_parse_int(cursor, 1, INT64_MAX, &v))
			return http_respond_error(resp, 400, "invalid_query_params", "invalid cursor");
		f.cursor = v;
	}
	ret = store_execution_list(ctx->store, &f, &items, &n, &next);
	if (ret == STORE_EINVAL)
		return http_respond_error(resp, 400, "invalid_query_params", "invalid filter");
	if (ret < 0)
		return api_respond_store_error(resp, "listing executions", ret);
	root = api_json_list("executions", &arr);
	if (root) {
		char buf[24];

		for (size_t i = 0; i < n; i++)
			json_object_array_add(arr, execution_json(ctx, items[i]));
		snprintf(buf, sizeof(buf), "%lld", (long long)next);
		json_object_object_add(root, "next_cursor", next > 0 ? json_object_new_string(buf) : NULL);
	}
	ret = http_respond_json(resp, 200, root);
	store_execution_list_free(items, n);
	return ret;
}

static int get_execution(struct api_context *ctx, struct http_request *req, struct http_response *resp,
			 struct store_execution **e)
{
	int64_t id;
	int ret;

	*e = NULL;
	if (!api_parse_int(http_param(req, "id"), 1, INT64_MAX, &id))
		return http_respond_error(resp, 404, "not_found", "Execution not found") < 0 ? -1 : 1;
	ret = store_execution_get(ctx->store, id, e);
	if (ret == STORE_ENOTFOUND)
		return http_respond_error(resp, 404, "not_found", "Execution not found") < 0 ? -1 : 1;
	if (ret < 0)
		return api_respond_store_error(resp, "reading the execution", ret) < 0 ? -1 : 1;
	return 0;
}

int api_execution_get(struct http_request *req, struct http_response *resp, void *user)
{
	struct api_context *ctx = user;
	struct store_execution *e = NULL;
	struct json_object *o, *logs;
	int ret = get_execution(ctx, req, resp, &e);

	if (ret != 0)
		return ret < 0 ? ret : 0;
	o = execution_json(ctx, e);
	logs = json_object_new_array();
	if (!o || !logs) {
		json_object_put(o);
		json_object_put(logs);
		ret = http_respond_json(resp, 500, NULL);
		goto out;
	}
	for (size_t i = 0; i < e->n_logs; i++) {
		struct json_object *l = json_object_new_object();
		int level = e->logs[i].level;

		if (!l)
			continue;
		if (level < 0 || level > LOG_LEVEL_ERROR)
			level = LOG_LEVEL_INFO;
		json_object_object_add(l, "ts", api_json_time(e->logs[i].ts));
		json_object_object_add(l, "level", json_object_new_string(log_level_name(level)));
		json_object_object_add(l, "message", json_object_new_string(e->logs[i].message ? e->logs[i].message : ""));
		json_object_array_add(logs, l);
	}
	if (e->logs_dropped > 0) {
		struct json_object *l = json_object_new_object();
		char msg[128];
		int64_t ts = e->ended_at ? e->ended_at : e->n_logs ? e->logs[e->n_logs - 1].ts : e->started_at;

		snprintf(msg, sizeof(msg), "%lld log lines were dropped (per-execution cap)",
			 (long long)e->logs_dropped);
		if (l) {
			json_object_object_add(l, "ts", api_json_time(ts));
			json_object_object_add(l, "level", json_object_new_string("warn"));
			json_object_object_add(l, "message", json_object_new_string(msg));
			json_object_array_add(logs, l);
		}
	}
	json_object_object_add(o, "logs", logs);
	ret = http_respond_json(resp, 200, o);
out:
	store_execution_free(e);
	return ret;
}

/* The execution the dispatcher made for event_id, waiting a little for it
 * to claim the event. NULL when it did not appear in time. */
static struct store_execution *wait_execution(struct api_context *ctx, const struct store_execution *orig,
					      int64_t event_id)
{
	int64_t deadline = util_mono_us() + (int64_t)RETRY_WAIT_MS * 1000;

	for (;;) {
		struct store_execution_filter f = {
			.connection_id = orig->connection_id,
			.provider_config_key = orig->provider_config_key,
			.script = orig->script,
			.status = -1,
			.limit = 20,
		};
		struct store_execution **items = NULL, *found = NULL;
		size_t n = 0;
		int64_t next;

		if (store_execution_list(ctx->store, &f, &items, &n, &next) == 0) {
			for (size_t i = 0; i < n; i++) {
				if (items[i]->event_id == event_id) {
					found = items[i];
					items[i] = NULL;
					break;
				}
			}
			store_execution_list_free(items, n);
		}
		if (found || util_mono_us() > deadline)
			return found;
		nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
	}
}

static int execution_retry(struct api_context *ctx, struct generation *g, struct http_request *req,
			   struct http_response *resp)
{
	struct store_execution *e = NULL, *ne = NULL;
	int64_t event_id = 0;
	int ret = get_execution(ctx, req, resp, &e);

	if (ret != 0) {
		ret = ret < 0 ? ret : 0;
		goto out;
	}
	if (e->status == STORE_EXEC_RUNNING) {
		ret = http_respond_error(resp, 409, "execution_running", "execution %lld has not finished",
					 (long long)e->id);
		goto out;
	}
	if (e->kind == STORE_EXEC_ACTION || !e->event ||
	    strcmp(e->event, STORE_EVENT_VALIDATE_CONNECTION) == 0) {
		ret = http_respond_error(resp, 422, "not_retryable",
					 "validate-connection and action executions cannot be retried");
		goto out;
	}
	if (!generation_plugin(g, e->script, NULL)) {
		ret = http_respond_error(resp, 422, "script_not_loaded",
					 "script %s is not loaded in generation %lld", e->script,
					 (long long)generation_number(g));
		goto out;
	}
	if (strcmp(e->event, STORE_EVENT_POST_CONNECTION_CREATION) == 0) {
		struct store_connection *c = NULL;

		ret = store_connection_get(ctx->store, e->provider_config_key, e->connection_id, &c);
		store_connection_free(c);
		if (ret == STORE_ENOTFOUND) {
			ret = http_respond_error(resp, 409, "connection_gone", "connection %s no longer exists",
						 e->connection_id);
			goto out;
		}
	}
	ret = store_execution_retry(ctx->store, e->id, &event_id);
	if (ret == STORE_ESTATE) {
		ret = http_respond_error(resp, 409, "execution_running", "execution %lld has not finished",
					 (long long)e->id);
		goto out;
	}
	if (ret == STORE_EINVAL) {
		ret = http_respond_error(resp, 422, "not_retryable", "this execution cannot be retried");
		goto out;
	}
	if (ret == STORE_EDELETING) {
		ret = api_respond_deleting(resp, e->connection_id);
		goto out;
	}
	if (ret < 0) {
		ret = api_respond_store_error(resp, "recording the retry", ret);
		goto out;
	}
	log_info("api", "retry of execution %lld: event %lld", (long long)e->id, (long long)event_id);
	dispatch_notify(ctx->dispatch);
	ne = wait_execution(ctx, e, event_id);
	if (ne) {
		ret = http_respond_json(resp, 202, execution_json(ctx, ne));
	} else {
		/* not claimed yet (the workers are busy): what will run */
		struct json_object *o = json_object_new_object();

		if (o) {
			json_object_object_add(o, "id", NULL);
			json_object_object_add(o, "event_id", json_object_new_int64(event_id));
			json_object_object_add(o, "event", json_object_new_string(e->event));
			json_object_object_add(o, "script", json_object_new_string(e->script));
			json_object_object_add(o, "connection_id", json_object_new_string(e->connection_id));
			json_object_object_add(o, "provider_config_key", json_object_new_string(e->provider_config_key));
			json_object_object_add(o, "status", json_object_new_string("pending"));
			json_object_object_add(o, "retry_of", json_object_new_int64(e->id));
		}
		ret = http_respond_json(resp, 202, o);
	}
out:
	store_execution_free(ne);
	store_execution_free(e);
	return ret;
}

API_GENERATION_ROUTE(api_execution_retry, execution_retry)

struct json_object *api_execution_json(struct api_context *ctx, const struct store_execution *e)
{
	return execution_json(ctx, e);
}
