/* sdk11: calls every host function of ABI 1.1 and records what it got in
 * the connection's metadata (the test reads it back). The environment
 * gives EXPECTED_TOKEN, OVERRIDE_URL (a base URL for base_url_override) and
 * OTHER_CONNECTION (a connection of the same integration). */
#include <evscript/sdk.h>
#include <stdio.h>
#include <string.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

static const char *env(const struct evs_host *host, struct evs_ctx *ctx, const char *name)
{
	const char *v = NULL;

	return host->get_env(ctx, name, &v) == 0 && v ? v : "";
}

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	const char *token = NULL, *integ = NULL, *all = NULL, *out = NULL;
	static const int retry_on[] = {404};
	struct evs_request req = {.size = sizeof(req), .endpoint = "/retry", .retries = 2,
				  .retry_on = retry_on, .n_retry_on = 1};
	struct evs_response *resp = NULL;
	char meta[8192];
	int rt, ri, ra, rf, rp, rbad, status = 0;

	(void)event;
	if (!EVS_HOST_HAS(host, get_token) || !EVS_HOST_HAS(host, trigger_action_for) ||
	    host->abi_minor < 1) {
		host->set_error(ctx, "host lacks ABI 1.1");
		return 1;
	}
	rt = host->get_token(ctx, &token);
	ri = host->get_integration(ctx, &integ);
	ra = host->get_env_all(ctx, &all);
	rf = host->trigger_action_for(ctx, env(host, ctx, "OTHER_CONNECTION"), "sdk11-action",
				      "{\"who\":true}", &out);
	rbad = host->set_action_error(ctx, "not in an action", NULL);
	req.base_url_override = env(host, ctx, "OVERRIDE_URL");
	rp = host->proxy(ctx, &req, &resp);
	if (rp == 0)
		status = resp->status;
	host->free_response(ctx, resp);
	snprintf(meta, sizeof(meta),
		 "{\"token_ok\":%s,\"integration\":%s,\"env\":%s,\"other\":%s,\"rc\":[%d,%d,%d,%d,%d],"
		 "\"set_action_error_in_event\":%d,\"retry_status\":%d}",
		 rt == 0 && strcmp(token, env(host, ctx, "EXPECTED_TOKEN")) == 0 ? "true" : "false",
		 ri == 0 ? integ : "null", ra == 0 ? all : "null", rf == 0 ? out : "null", rt, ri, ra, rf, rp,
		 rbad, status);
	return host->set_metadata(ctx, meta) == 0 ? 0 : 1;
}
