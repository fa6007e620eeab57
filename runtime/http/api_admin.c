/*
 * api_admin.c - operating the daemon: GET /plugins, POST /reload and
 * GET /healthz (GET /metrics is api_metrics.c).
 */
#include "api_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generation.h"
#include "log.h"

static struct json_object *loaded_json(const struct generation *g)
{
	struct json_object *arr = json_object_new_array();
	char ts[32];

	if (!arr)
		return NULL;
	for (size_t i = 0; i < generation_plugin_count(g); i++) {
		int64_t since;
		const struct loader_plugin *p = generation_plugin_at(g, i, &since);
		struct json_object *o = json_object_new_object();

		if (!o)
			continue;
		api_iso_time(p->loaded_at_ms ? p->loaded_at_ms : generation_created_at_ms(g), false, ts);
		json_object_object_add(o, "name", json_object_new_string(p->name));
		json_object_object_add(o, "version", json_object_new_string(p->version));
		json_object_object_add(o, "kind", json_object_new_string(p->kind == LOADER_ACTION ? "action" : "event"));
		json_object_object_add(o, "key_id", json_object_new_string(p->keyid));
		json_object_object_add(o, "hash", json_object_new_string(p->hash_hex));
		json_object_object_add(o, "size", json_object_new_int64((int64_t)p->size));
		json_object_object_add(o, "loaded_at", json_object_new_string(ts));
		json_object_object_add(o, "generation", json_object_new_int64(
			since));
		json_object_object_add(o, "subscriptions", api_plugin_subscriptions(g, p->name));
		json_object_array_add(arr, o);
	}
	return arr;
}

static struct json_object *refused_json(const struct generation *g)
{
	struct json_object *arr = json_object_new_array();

	if (!arr)
		return NULL;
	for (size_t i = 0; i < generation_refusal_count(g); i++) {
		const struct generation_refusal *r = generation_refusal_at(g, i);
		struct json_object *o = json_object_new_object();
		const char *code = api_loader_reason_code(r->code, r->name);

		if (!o)
			continue;
		json_object_object_add(o, "file", json_object_new_string(r->file));
		json_object_object_add(o, "name", strcmp(code, "invalid_name") == 0
							  ? NULL : json_object_new_string(r->name));
		json_object_object_add(o, "reason_code", json_object_new_string(code));
		json_object_object_add(o, "reason", json_object_new_string(r->reason));
		json_object_object_add(o, "kept_previous", json_object_new_boolean(r->kept_previous));
		json_object_array_add(arr, o);
	}
	return arr;
}

static void add_warning(void *user, const char *note)
{
	json_object_array_add(user, json_object_new_string(note));
}

/* The script names the config lists that g cannot run, one text each. */
static struct json_object *warnings_json(const struct generation *g)
{
	struct json_object *arr = json_object_new_array();

	if (arr)
		generation_missing_scripts(g, add_warning, arr);
	return arr;
}

static int plugins_doc(struct api_context *ctx, struct generation *g, struct http_request *req,
		       struct http_response *resp)
{
	struct json_object *o = json_object_new_object();
	char err[API_ERROR_MAX];

	(void)req;
	api_last_reload_error(ctx, err);
	if (o) {
		json_object_object_add(o, "generation", json_object_new_int64(generation_number(g)));
		json_object_object_add(o, "loaded", loaded_json(g));
		json_object_object_add(o, "refused", refused_json(g));
		json_object_object_add(o, "last_reload_error", err[0] ? json_object_new_string(err) : NULL);
		json_object_object_add(o, "warnings", warnings_json(g));
	}
	return http_respond_json(resp, 200, o);
}

API_GENERATION_ROUTE(api_plugins, plugins_doc)

/* 422 reload_failed with {"generation","refused","config_error"} and, when
 * given, "warnings". Takes ownership of refused and warnings. */
static int respond_reload_failed(struct http_response *resp, const char *msg, int64_t generation,
				 struct json_object *refused, const char *config_error, struct json_object *warnings)
{
	struct json_object *payload = json_object_new_object();

	if (payload && warnings)
		json_object_object_add(payload, "warnings", warnings);
	else
		json_object_put(warnings);
	if (payload) {
		json_object_object_add(payload, "generation", json_object_new_int64(generation));
		json_object_object_add(payload, "refused", refused);
		json_object_object_add(payload, "config_error",
				       config_error ? json_object_new_string(config_error) : NULL);
	} else {
		json_object_put(refused);
	}
	return api_respond_problem(resp, 422, "reload_failed", msg, NULL, payload);
}

int api_reload(struct http_request *req, struct http_response *resp, void *user)
{
	struct api_context *ctx = user;
	struct api_reload_report rep;
	struct generation *g;
	int ret;

	(void)req;
	memset(&rep, 0, sizeof(rep));
	if (!ctx->reload)
		return api_respond_problem(resp, 422, "reload_failed", "this server cannot reload", NULL, NULL);
	ret = ctx->reload(ctx->reload_user, &rep);
	if (ret == API_RELOAD_BUSY)
		return http_respond_error(resp, 409, "reload_in_progress", "a reload is already running");
	if (ret != API_RELOAD_OK)
		return respond_reload_failed(resp, rep.error, rep.generation, json_object_new_array(), rep.error, NULL);

	/* What this reload built, even when a SIGHUP reload has replaced it
	 * since: the report must not describe someone else's work. */
	g = rep.built;
	if (!g)
		return http_respond_error(resp, 500, "server_error", "the reload did not report its generation");
	if (generation_refusal_count(g) > 0) {
		/* the new generation is in service (refused plugins keep their
		 * previous version), but not everything loaded: say so */
		char msg[API_ERROR_MAX];

		snprintf(msg, sizeof(msg), "%s: %s", generation_refusal_at(g, 0)->file,
			 generation_refusal_at(g, 0)->reason);
		ret = respond_reload_failed(resp, msg, generation_number(g), refused_json(g), NULL,
					    warnings_json(g));
	} else {
		struct json_object *o = json_object_new_object();

		if (o) {
			json_object_object_add(o, "generation", json_object_new_int64(generation_number(g)));
			json_object_object_add(o, "loaded", loaded_json(g));
			json_object_object_add(o, "refused", json_object_new_array());
			json_object_object_add(o, "warnings", warnings_json(g));
		}
		ret = http_respond_json(resp, 200, o);
	}
	generation_unref(g);
	return ret;
}

int api_healthz(struct http_request *req, struct http_response *resp, void *user)
{
	struct api_context *ctx = user;
	struct json_object *o = json_object_new_object();
	struct generation *g = dispatch_generation(ctx->dispatch);
	int64_t pending;
	bool ok = store_event_count_pending(ctx->store, &pending) == 0;
	/* no zygote (it died and is being restarted): the API works and
	 * isolated executions wait, so degraded, not unavailable */
	bool degraded = g && executor_degraded(generation_executor(g));

	(void)req;
	if (o) {
		json_object_object_add(o, "status", json_object_new_string(
			!ok ? "unavailable" : degraded ? "degraded" : "ok"));
		if (ok && degraded)
			json_object_object_add(o, "reason", json_object_new_string(
				"the executors' zygote is being restarted"));
	}
	generation_unref(g);
	return http_respond_json(resp, ok ? 200 : 503, o);
}
