/*
 * api_admin.c - operating the daemon: GET /plugins, POST /reload,
 * GET /healthz and GET /metrics.
 */
#include "api_priv.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generation.h"
#include "log.h"

#define METRICS_MAX 8192

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

int api_plugins(struct http_request *req, struct http_response *resp, void *user)
{
	struct api_context *ctx = user;
	struct generation *g = dispatch_generation(ctx->dispatch);
	struct json_object *o = json_object_new_object();
	char err[API_ERROR_MAX];
	int ret;

	(void)req;
	api_last_reload_error(ctx, err);
	if (o) {
		json_object_object_add(o, "generation", json_object_new_int64(generation_number(g)));
		json_object_object_add(o, "loaded", loaded_json(g));
		json_object_object_add(o, "refused", refused_json(g));
		json_object_object_add(o, "last_reload_error", err[0] ? json_object_new_string(err) : NULL);
	}
	ret = http_respond_json(resp, 200, o);
	generation_unref(g);
	return ret;
}

/* 422 reload_failed with {"generation","refused","config_error"}. Takes
 * ownership of refused. */
static int respond_reload_failed(struct http_response *resp, const char *msg, int64_t generation,
				 struct json_object *refused, const char *config_error)
{
	struct json_object *payload = json_object_new_object();

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
		return respond_reload_failed(resp, rep.error, rep.generation, json_object_new_array(), rep.error);

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
		ret = respond_reload_failed(resp, msg, generation_number(g), refused_json(g), NULL);
	} else {
		struct json_object *o = json_object_new_object();

		if (o) {
			json_object_object_add(o, "generation", json_object_new_int64(generation_number(g)));
			json_object_object_add(o, "loaded", loaded_json(g));
			json_object_object_add(o, "refused", json_object_new_array());
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

/* Appends to a fixed buffer; output past the cap is cut. */
struct text {
	char buf[METRICS_MAX];
	size_t len;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->len >= sizeof(t->buf) - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(t->buf + t->len, sizeof(t->buf) - t->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		t->len = t->len + (size_t)n < sizeof(t->buf) ? t->len + (size_t)n : sizeof(t->buf) - 1;
}

int api_metrics(struct http_request *req, struct http_response *resp, void *user)
{
	static const char *const classes[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
	struct api_context *ctx = user;
	struct generation *g = dispatch_generation(ctx->dispatch);
	struct dispatch_stats ds;
	struct http_stats hs;
	struct text *t = calloc(1, sizeof(*t));
	int64_t pending = 0;
	int ret;

	(void)req;
	if (!t) {
		ret = http_respond_json(resp, 500, NULL);
		goto out;
	}
	memset(&hs, 0, sizeof(hs));
	if (ctx->server)
		http_server_stats(ctx->server, &hs);
	if (store_event_count_pending(ctx->store, &pending) < 0)
		pending = -1;
	dispatch_get_stats(ctx->dispatch, &ds);

	put(t, "# HELP evscript_generation The generation in service.\n"
	       "# TYPE evscript_generation gauge\nevscript_generation %lld\n", (long long)generation_number(g));
	put(t, "# HELP evscript_plugins_loaded Plugins in service.\n"
	       "# TYPE evscript_plugins_loaded gauge\nevscript_plugins_loaded %zu\n", generation_plugin_count(g));
	put(t, "# HELP evscript_plugins_refused Plugins refused by the current generation.\n"
	       "# TYPE evscript_plugins_refused gauge\nevscript_plugins_refused %zu\n", generation_refusal_count(g));
	put(t, "# HELP evscript_zygote_restarts_total Times the current generation's zygote died and was restarted.\n"
	       "# TYPE evscript_zygote_restarts_total counter\nevscript_zygote_restarts_total %llu\n",
	    (unsigned long long)executor_zygote_restarts(generation_executor(g)));
	put(t, "# HELP evscript_zygote_up Whether the current generation's zygote is running (0: being restarted).\n"
	       "# TYPE evscript_zygote_up gauge\nevscript_zygote_up %d\n", executor_degraded(generation_executor(g)) ? 0 : 1);
	if (pending >= 0)
		put(t, "# HELP evscript_events_pending Events waiting for a worker.\n"
		       "# TYPE evscript_events_pending gauge\nevscript_events_pending %lld\n",
		    (long long)pending);
	put(t, "# HELP evscript_executions_total Finished executions by event and status, since start.\n"
	       "# TYPE evscript_executions_total counter\n");
	for (int k = 0; k < DISPATCH_STAT_KINDS; k++)
		for (int st = STORE_EXEC_SUCCEEDED; st <= STORE_EXEC_INTERRUPTED; st++)
			put(t, "evscript_executions_total{event=\"%s\",status=\"%s\"} %llu\n",
			    dispatch_stat_kind_name(k), store_exec_status_name(st),
			    (unsigned long long)ds.finished[k][st]);
	put(t, "# HELP evscript_execution_duration_seconds Execution durations by event.\n"
	       "# TYPE evscript_execution_duration_seconds histogram\n");
	for (int k = 0; k < DISPATCH_STAT_KINDS; k++) {
		const char *ev = dispatch_stat_kind_name(k);

		for (int b = 0; b < DISPATCH_DURATION_BUCKETS; b++)
			put(t, "evscript_execution_duration_seconds_bucket{event=\"%s\",le=\"%g\"} %llu\n",
			    ev, dispatch_duration_bounds[b], (unsigned long long)ds.duration_le[k][b]);
		put(t, "evscript_execution_duration_seconds_bucket{event=\"%s\",le=\"+Inf\"} %llu\n"
		       "evscript_execution_duration_seconds_sum{event=\"%s\"} %.6f\n"
		       "evscript_execution_duration_seconds_count{event=\"%s\"} %llu\n",
		    ev, (unsigned long long)ds.duration_count[k], ev, ds.duration_sum_s[k], ev,
		    (unsigned long long)ds.duration_count[k]);
	}
	put(t, "# HELP evscript_executions_running Executions running now.\n"
	       "# TYPE evscript_executions_running gauge\nevscript_executions_running %zu\n",
	    ds.running);
	put(t, "# HELP evscript_http_requests_total HTTP responses by status class.\n"
	       "# TYPE evscript_http_requests_total counter\n");
	for (int i = 0; i < 5; i++)
		put(t, "evscript_http_requests_total{status=\"%s\"} %llu\n", classes[i],
		    (unsigned long long)hs.by_class[i]);
	put(t, "# HELP evscript_http_requests_in_flight HTTP requests being processed.\n"
	       "# TYPE evscript_http_requests_in_flight gauge\nevscript_http_requests_in_flight %u\n",
	    hs.in_flight);
	put(t, "# HELP evscript_http_connections_open HTTP connections open now.\n"
	       "# TYPE evscript_http_connections_open gauge\nevscript_http_connections_open %u\n",
	    hs.connections);
	put(t, "# HELP evscript_http_refused_total Requests and connections refused (limits, timeouts, shedding, "
	       "bad requests), which the log sums up per 10 s.\n"
	       "# TYPE evscript_http_refused_total counter\nevscript_http_refused_total %llu\n",
	    (unsigned long long)hs.refused);
	ret = http_respond_text(resp, 200, "text/plain; version=0.0.4", t->buf);
out:
	free(t);
	generation_unref(g);
	return ret;
}
