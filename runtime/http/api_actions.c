/*
 * api_actions.c - POST /action/trigger (a synchronous action run) and
 * GET /environment-variables.
 */
#include "api_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "generation.h"
#include "log.h"

static bool action_listed(const struct config_integration *in, const char *name)
{
	for (size_t i = 0; i < in->actions.n; i++) {
		if (strcmp(in->actions.items[i], name) == 0)
			return true;
	}
	return false;
}

struct json_object *api_action_failure_payload(const struct dispatch_outcome *o)
{
	struct json_object *payload;

	/* the action's own (set_action_error, Nango's ActionError payload) */
	if (o->error_payload)
		return api_parse_doc(o->error_payload);
	payload = json_object_new_object();

	if (payload) {
		json_object_object_add(payload, "execution_id", json_object_new_int64(o->execution_id));
		json_object_object_add(payload, "status", json_object_new_string(store_exec_status_name(o->status)));
	}
	return payload;
}

static int action_trigger(struct api_context *ctx, struct generation *g, struct http_request *req,
			  struct http_response *resp)
{
	const char *cid = http_header(req, "Connection-Id");
	const char *pck = http_header(req, "Provider-Config-Key");
	const char *async = http_header(req, "X-Async");
	const struct config_integration *in;
	struct store_connection *c = NULL;
	struct json_object *body = NULL;
	struct dispatch_outcome o;
	struct api_action_req areq;
	const char *input;
	int ret;

	memset(&o, 0, sizeof(o));
	if (!cid || !*cid || !pck || !*pck) {
		ret = http_respond_error(resp, 400, "invalid_headers",
					 "the Connection-Id and Provider-Config-Key headers are required");
		goto out;
	}
	ret = api_read_body(req, resp, API_BODY_ACTION, &body, &areq);
	if (ret < 0)
		goto out;
	in = api_integration(resp, g, pck);
	if (!in) {
		ret = 0;
		goto out;
	}
	ret = api_valid_connection_id(cid) ? store_connection_get(ctx->store, pck, cid, &c) : STORE_ENOTFOUND;
	if (ret < 0) {
		ret = api_respond_connection_error(resp, pck, cid, "reading the connection", ret);
		goto out;
	}
	if (c->deleting) {
		ret = api_respond_deleting(resp, cid);
		goto out;
	}
	if (!action_listed(in, areq.action_name) || !generation_plugin(g, areq.action_name, NULL)) {
		ret = http_respond_error(resp, 404, "not_found", "Action not found");
		goto out;
	}
	input = areq.input ? api_json_str(areq.input) : "null";
	if (async && strcasecmp(async, "true") == 0) {
		ret = api_action_async_start(ctx, resp, pck, cid, areq.action_name, input);
		goto out;
	}
	ret = dispatch_action(ctx->dispatch, pck, cid, areq.action_name, input, 0, 0, &o);
	if (ret == EVS_ENOTFOUND) {
		ret = http_respond_error(resp, 404, "not_found", "Action not found");
		goto out;
	}
	if (ret == STATUS_EIO) {
		ret = http_respond_error(resp, 503, "store_unavailable",
					 "action %s ran (execution %lld) but the store refused its "
					 "result; it is recorded once the store recovers (GET "
					 "/executions/%lld)", areq.action_name,
					 (long long)o.execution_id, (long long)o.execution_id);
		goto out;
	}
	if (ret < 0) {
		log_error("api", "action %s for %s/%s could not run: %s", areq.action_name, pck, cid,
			  status_str(ret));
		ret = http_respond_error(resp, 500, "server_error", "the action could not run");
		goto out;
	}
	if (o.status != STORE_EXEC_SUCCEEDED) {
		struct json_object *payload = api_action_failure_payload(&o);
		char msg[512];

		if (o.error && o.error[0])
			snprintf(msg, sizeof(msg), "%s", o.error);
		else
			snprintf(msg, sizeof(msg), "action %s %s", areq.action_name, store_exec_status_name(o.status));
		ret = api_respond_problem(resp, 500, "action_script_failure", msg, NULL, payload);
		goto out;
	}
	ret = api_respond_raw_json(resp, 200, o.output_json ? o.output_json : "null");
out:
	dispatch_outcome_clear(&o);
	store_connection_free(c);
	json_object_put(body);
	return ret;
}

API_GENERATION_ROUTE(api_action_trigger, action_trigger)

static int cmp_kv(const void *a, const void *b)
{
	const struct config_kv *x = *(const struct config_kv *const *)a;
	const struct config_kv *y = *(const struct config_kv *const *)b;

	return strcmp(x->key, y->key);
}

static int environment_variables(struct api_context *ctx, struct generation *g, struct http_request *req,
				 struct http_response *resp)
{
	const struct config_map *env = &generation_config(g)->environment;
	const struct config_kv **sorted = NULL;
	struct json_object *arr = NULL;
	int ret;

	(void)ctx;
	(void)req;
	sorted = calloc(env->n ? env->n : 1, sizeof(*sorted));
	arr = json_object_new_array();
	if (!sorted || !arr) {
		json_object_put(arr);
		ret = http_respond_json(resp, 500, NULL);
		goto out;
	}
	for (size_t i = 0; i < env->n; i++)
		sorted[i] = &env->items[i];
	qsort(sorted, env->n, sizeof(*sorted), cmp_kv);
	for (size_t i = 0; i < env->n; i++) {
		struct json_object *o = json_object_new_object();

		if (!o)
			continue;
		json_object_object_add(o, "name", json_object_new_string(sorted[i]->key));
		json_object_object_add(o, "value", json_object_new_string(sorted[i]->value));
		json_object_array_add(arr, o);
	}
	ret = http_respond_json(resp, 200, arr);
out:
	free(sorted);
	return ret;
}

API_GENERATION_ROUTE(api_environment_variables, environment_variables)
