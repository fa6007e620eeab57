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

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../github-common/github.h"

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

#define MAX_EVENTS 32

/* input.key when it is a string, else connection_config.key, else NULL. */
static const char *input_or_config(struct json_object *input, struct json_object *cfg, const char *key)
{
	const char *v = github_string_field(input, key);

	return v ? v : github_string_field(cfg, key);
}

/* The events array to send: a copy of input.events (1 to MAX_EVENTS
 * non-empty strings), or ["push"] when the input has none; NULL for bad
 * input. */
static struct json_object *events_of(struct json_object *input)
{
	struct json_object *given = NULL, *out = json_object_new_array();
	size_t n;

	if (!json_object_object_get_ex(input, "events", &given) || !given) {
		json_object_array_add(out, json_object_new_string("push"));
		return out;
	}
	n = json_object_is_type(given, json_type_array) ? json_object_array_length(given) : 0;
	for (size_t i = 0; i < n && n <= MAX_EVENTS; i++) {
		struct json_object *e = json_object_array_get_idx(given, i);

		if (!json_object_is_type(e, json_type_string) || json_object_get_string_len(e) == 0)
			break;
		json_object_array_add(out, json_object_new_string(json_object_get_string(e)));
	}
	if (n == 0 || n > MAX_EVENTS || json_object_array_length(out) != n) {
		json_object_put(out);
		return NULL;
	}
	return out;
}

/* The events to subscribe the hook to, with its URL in url; NULL after
 * set_error(). */
static struct json_object *hook_events(const struct evs_host *host, struct evs_ctx *ctx,
				       struct json_object *input, char *url, size_t n)
{
	struct json_object *events;
	const char *given = github_string_field(input, "url"), *webhook_url = NULL;
	int ret;

	if (!given) {
		ret = host->get_webhook_url(ctx, &webhook_url);
		if (ret != EVS_OK) {
			host->set_error(ctx, "no \"url\" in the input and no webhook URL: %s", evs_strerror(ret));
			return NULL;
		}
		given = webhook_url;
	}
	if (strncmp(given, "https://", 8) != 0 && strncmp(given, "http://", 7) != 0) {
		host->set_error(ctx, "\"url\" must be an http(s) URL");
		return NULL;
	}
	events = events_of(input);
	if (!events) {
		host->set_error(ctx, "\"events\" must be an array of 1 to %d event names", MAX_EVENTS);
		return NULL;
	}
	snprintf(url, n, "%s", given);
	return events;
}

int run_action(const struct evs_host *host, struct evs_ctx *ctx, const char *input_json,
	       char **output_json)
{
	struct json_object *input = json_tokener_parse(input_json), *conn = NULL, *cfg = NULL, *body = NULL;
	struct json_object *events;
	const char *text = NULL, *owner, *repo;
	char url[2048], repo_name[300];
	long long id = -1;
	int ret;

	ret = host->get_connection(ctx, &text);
	if (ret != EVS_OK) {
		host->set_error(ctx, "cannot read the connection: %s", evs_strerror(ret));
		goto out;
	}
	conn = json_tokener_parse(text);
	json_object_object_get_ex(conn, "connection_config", &cfg);
	owner = input_or_config(input, cfg, "owner");
	repo = input_or_config(input, cfg, "repo");
	if (!github_valid_name(owner) || !github_valid_name(repo)) {
		host->set_error(ctx, "no repository: give \"owner\" and \"repo\" in the input or the "
				     "connection_config");
		goto out;
	}
	snprintf(repo_name, sizeof(repo_name), "%s/%s", owner, repo);
	events = hook_events(host, ctx, input, url, sizeof(url));
	if (events)
		id = github_create_hook(host, ctx, owner, repo, url, events);
	if (id < 0)
		goto out;
	body = json_object_new_object();
	json_object_object_add(body, "id", json_object_new_int64(id));
	*output_json = strdup(json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN)); /* the host free()s it */
	if (!*output_json) {
		host->set_error(ctx, "out of memory");
		id = -1;
		goto out;
	}
	host->log(ctx, EVS_LOG_INFO, "created webhook %lld on %s for %s", id, repo_name, url);
out:
	json_object_put(body);
	json_object_put(conn);
	json_object_put(input);
	return id < 0 ? 1 : 0;
}
