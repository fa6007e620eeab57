/* callall: calls every host function once and records what each returned
 * in the connection's metadata (update_metadata), for the tests to check
 * that both vtables (in-process and isolated) carry every call. */
#include <evscript/sdk.h>
#include <stdio.h>
#include <string.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

static int on_page(void *user, const char *records_json, size_t n_records)
{
	(void)user;
	(void)records_json;
	(void)n_records;
	return 0;
}

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	const char *conn = NULL, *meta = NULL, *env = NULL, *other = NULL, *url = NULL, *out = NULL,
		   *missing = NULL;
	struct evs_request req = {.size = sizeof(req), .endpoint = "/ping"};
	struct evs_response *resp = NULL;
	char json[2048];
	int rc_conn, rc_set, rc_upd, rc_meta, rc_env, rc_other, rc_url, rc_act, rc_proxy, rc_page,
		rc_bad, rc_missing;

	host->log(ctx, EVS_LOG_INFO, "callall for %s", event->connection_id);
	rc_conn = host->get_connection(ctx, &conn);
	rc_set = host->set_metadata(ctx, "{\"a\":1}");
	rc_upd = host->update_metadata(ctx, "{\"b\":2}");
	rc_meta = host->get_metadata(ctx, &meta);
	rc_env = host->get_env(ctx, "GREETING", &env);
	rc_other = host->get_env(ctx, "PATH", &other);
	rc_url = host->get_webhook_url(ctx, &url);
	rc_act = host->trigger_action(ctx, "echo", "{\"x\":1}", &out);
	rc_missing = host->trigger_action(ctx, "no-such-action", NULL, &missing);
	rc_proxy = host->proxy(ctx, &req, &resp);
	host->free_response(ctx, resp);
	rc_page = host->paginate(ctx, &req, NULL, on_page, NULL);
	rc_bad = host->set_metadata(ctx, "[1]");
	snprintf(json, sizeof(json),
		 "{\"rc_conn\":%d,\"conn_has_credentials\":%s,\"conn_id_ok\":%s,"
		 "\"rc_set\":%d,\"rc_upd\":%d,\"rc_meta\":%d,\"meta_has_a_b\":%s,"
		 "\"rc_env\":%d,\"env\":\"%s\",\"rc_env_other\":%d,"
		 "\"rc_url\":%d,\"webhook\":\"%s\",\"rc_act\":%d,\"action_out\":%s,"
		 "\"rc_missing_action\":%d,\"rc_proxy\":%d,\"rc_paginate\":%d,\"rc_bad_metadata\":%d}",
		 rc_conn, conn && strstr(conn, "\"credentials\"") ? "true" : "false",
		 conn && strstr(conn, event->connection_id) ? "true" : "false", rc_set, rc_upd,
		 rc_meta, meta && strstr(meta, "\"a\"") && strstr(meta, "\"b\"") ? "true" : "false",
		 rc_env, env ? env : "", rc_other, rc_url, url ? url : "", rc_act,
		 rc_act == 0 && out ? out : "null", rc_missing, rc_proxy, rc_page,
		 rc_bad);
	host->log(ctx, EVS_LOG_INFO, "results: %s", json);
	if (host->update_metadata(ctx, json) != 0) {
		host->set_error(ctx, "could not record the results");
		return 1;
	}
	return 0;
}
