/*
 * create-webhook: an action that creates a GitHub repository webhook.
 *
 * Input (every member optional; null is fine):
 *     {"url": "https://...", "events": ["push", ...], "owner": "...", "repo": "..."}
 * url defaults to the host's webhook URL for the integration, events (1 to
 * 32 names) to ["push"], owner and repo to the connection's connection_config.
 * Output: {"id": <the hook's id>}.
 *
 * Run it over HTTP (POST /action/trigger, action_name "create-webhook") or
 * from another script with host->trigger_action(); see github-setup.
 *
 * nango.yaml:
 *     integrations:
 *         github:
 *             actions:
 *                 create-webhook:
 *                     endpoint: POST /webhooks
 */
#include <evscript/sdk.h>

#include "evs_example_json.h"

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

#define MAX_EVENTS 32

/* input.key when it is a string, else connection_config.key. */
static int input_or_config(const char *input, const char *cfg, const char *key, char *buf,
			   size_t n)
{
	if (json_string(json_field(input, key), buf, n) == 0)
		return 0;
	return json_string(json_field(cfg, key), buf, n);
}

/* Appends the events array: input.events (1 to MAX_EVENTS strings), or
 * ["push"] when the input has none. Returns 0, or -1 for bad input. */
static int add_events(struct json_buf *b, const char *input)
{
	const char *p = json_field(input, "events");
	char name[128];
	int n = 0;

	if (!p || strncmp(p, "null", 4) == 0) {
		json_put(b, "[\"push\"]");
		return 0;
	}
	if (*p++ != '[')
		return -1;
	json_put(b, "[");
	for (;;) {
		p = json_ws(p);
		if (++n > MAX_EVENTS || json_string(p, name, sizeof(name)) != 0 || name[0] == '\0')
			return -1;
		if (n > 1)
			json_put(b, ",");
		json_put_string(b, name);
		p = json_ws(json_skip_string(p));
		if (*p == ']')
			break;
		if (*p++ != ',')
			return -1;
	}
	json_put(b, "]");
	return 0;
}

int run_action(const struct evs_host *host, struct evs_ctx *ctx, const char *input_json,
	       char **output_json)
{
	struct json_buf body = {0};
	char owner[128], repo[128], url[2048], out[64];
	const char *cfg, *webhook_url = NULL;
	long long id;
	int ret;

	if (get_connection_config(host, ctx, &cfg) != 0)
		return 1;
	if (input_or_config(input_json, cfg, "owner", owner, sizeof(owner)) != 0 ||
	    input_or_config(input_json, cfg, "repo", repo, sizeof(repo)) != 0 ||
	    !valid_github_name(owner) || !valid_github_name(repo)) {
		host->set_error(ctx, "no repository: give \"owner\" and \"repo\" in the input or the "
				     "connection_config");
		return 1;
	}
	if (json_string(json_field(input_json, "url"), url, sizeof(url)) != 0) {
		ret = host->get_webhook_url(ctx, &webhook_url);
		if (ret != EVS_OK) {
			host->set_error(ctx, "no \"url\" in the input and no webhook URL: %s",
					evs_strerror(ret));
			return 1;
		}
		snprintf(url, sizeof(url), "%s", webhook_url);
	}
	if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0) {
		host->set_error(ctx, "\"url\" must be an http(s) URL");
		return 1;
	}

	json_put(&body, "{\"name\":\"web\",\"active\":true,\"events\":");
	if (add_events(&body, input_json) != 0) {
		host->set_error(ctx, "\"events\" must be an array of 1 to %d event names",
				MAX_EVENTS);
		return 1;
	}
	json_put(&body, ",\"config\":{\"url\":");
	json_put_string(&body, url);
	json_put(&body, ",\"content_type\":\"json\"}}");
	if (body.overflow) {
		host->set_error(ctx, "the webhook request is too large");
		return 1;
	}

	if (github_create_hook(host, ctx, owner, repo, &body, &id) != 0)
		return 1;
	snprintf(out, sizeof(out), "{\"id\":%lld}", id);
	*output_json = strdup(out); /* the host free()s it */
	if (!*output_json) {
		host->set_error(ctx, "out of memory");
		return 1;
	}
	host->log(ctx, EVS_LOG_INFO, "created webhook %lld on %s/%s for %s", id, owner, repo, url);
	return 0;
}
