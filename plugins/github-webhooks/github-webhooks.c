/*
 * github-webhooks: keeps a GitHub repository webhook for each connection.
 *
 * On post-connection-creation it creates a webhook on the repository named by
 * the connection's connection_config ({"owner": "...", "repo": "..."}),
 * pointing at the host's webhook URL for the integration, and stores the
 * hook's id in the connection metadata as "github_webhook_id". On a
 * reconnect, a stored hook that still exists is kept rather than duplicated.
 *
 * On pre-connection-deletion it deletes that webhook. A hook that is already
 * gone (404) or that was never stored is fine: the deletion goes on.
 *
 * nango.yaml:
 *     integrations:
 *         github:
 *             on-events:
 *                 post-connection-creation: [github-webhooks]
 *                 pre-connection-deletion: [github-webhooks]
 */
#include <evscript/sdk.h>

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "../github-common/github.h"

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

/* Reads owner and repo from the connection's connection_config into the
 * buffers. Returns 0, or -1 after set_error(). */
static int get_repository(const struct evs_host *host, struct evs_ctx *ctx, char *owner, char *repo,
			  size_t n)
{
	struct json_object *conn, *cfg = NULL;
	const char *text = NULL, *o, *r;
	int ret = -1;

	ret = host->get_connection(ctx, &text);
	if (ret != EVS_OK) {
		host->set_error(ctx, "cannot read the connection: %s", evs_strerror(ret));
		return -1;
	}
	conn = json_tokener_parse(text); /* the connection holds credentials: never log it */
	json_object_object_get_ex(conn, "connection_config", &cfg);
	o = github_string_field(cfg, "owner");
	r = github_string_field(cfg, "repo");
	ret = -1;
	if (!o || !r)
		host->set_error(ctx, "connection_config needs \"owner\" and \"repo\" (strings)");
	else if (!github_valid_name(o) || !github_valid_name(r))
		host->set_error(ctx, "connection_config owner/repo is not a GitHub repository name");
	else
		ret = 0;
	if (ret == 0) {
		snprintf(owner, n, "%s", o);
		snprintf(repo, n, "%s", r);
	}
	json_object_put(conn);
	return ret;
}

/* GitHub's error text from a response body ({"message": "..."}), into buf. */
static const char *github_message(const struct evs_response *resp, char *buf, size_t n)
{
	struct json_object *body = json_tokener_parse(resp->body);
	const char *msg = github_string_field(body, "message");

	snprintf(buf, n, "%s", msg ? msg : "no message");
	json_object_put(body);
	return buf;
}

/* One request without a body. Returns 0 with *resp set, or -1 after
 * set_error(). */
static int request(const struct evs_host *host, struct evs_ctx *ctx, const char *method,
		   const char *path, uint32_t retries, struct evs_response **resp)
{
	struct evs_request req = {.size = sizeof(req), .method = method, .endpoint = path,
				  .retries = retries};
	int ret;

	ret = host->proxy(ctx, &req, resp);
	if (ret != EVS_OK) {
		host->set_error(ctx, "%s %s: %s", method, path, evs_strerror(ret));
		return -1;
	}
	return 0;
}

/* The id stored by an earlier creation, or -1. */
static long long stored_hook_id(const struct evs_host *host, struct evs_ctx *ctx)
{
	struct json_object *meta, *id = NULL;
	const char *text = NULL;
	long long value = -1;

	if (host->get_metadata(ctx, &text) != EVS_OK)
		return -1;
	meta = json_tokener_parse(text);
	if (json_object_object_get_ex(meta, "github_webhook_id", &id) && json_object_is_type(id, json_type_int))
		value = json_object_get_int64(id);
	json_object_put(meta);
	return value > 0 ? value : -1;
}

/* True when the hook `id` still exists on owner/repo. */
static int hook_exists(const struct evs_host *host, struct evs_ctx *ctx, const char *owner,
		       const char *repo, long long id)
{
	struct evs_response *resp = NULL;
	char path[320];
	int exists;

	snprintf(path, sizeof(path), "/repos/%s/%s/hooks/%lld", owner, repo, id);
	if (request(host, ctx, "GET", path, 2, &resp) != 0)
		return 0;
	exists = resp->status >= 200 && resp->status < 300;
	host->free_response(ctx, resp);
	return exists;
}

static int create_hook(const struct evs_host *host, struct evs_ctx *ctx)
{
	struct json_object *update, *events;
	char owner[128], repo[128];
	const char *url = NULL;
	long long id;
	int ret;

	if (get_repository(host, ctx, owner, repo, sizeof(owner)) != 0)
		return 1;
	id = stored_hook_id(host, ctx);
	if (id > 0 && hook_exists(host, ctx, owner, repo, id)) {
		host->log(ctx, EVS_LOG_INFO, "webhook %lld on %s/%s exists already; kept", id, owner, repo);
		return 0;
	}
	ret = host->get_webhook_url(ctx, &url);
	if (ret != EVS_OK) {
		host->set_error(ctx, "no webhook URL for this integration: %s", evs_strerror(ret));
		return 1;
	}
	events = json_object_new_array();
	json_object_array_add(events, json_object_new_string("push"));
	json_object_array_add(events, json_object_new_string("pull_request"));
	id = github_create_hook(host, ctx, owner, repo, url, events);
	if (id < 0)
		return 1;
	update = json_object_new_object();
	json_object_object_add(update, "github_webhook_id", json_object_new_int64(id));
	ret = host->update_metadata(ctx, json_object_to_json_string_ext(update, JSON_C_TO_STRING_PLAIN));
	json_object_put(update);
	if (ret != EVS_OK) {
		host->set_error(ctx, "webhook %lld created but its id could not be stored", id);
		return 1;
	}
	host->log(ctx, EVS_LOG_INFO, "created webhook %lld on %s/%s for %s", id, owner, repo, url);
	return 0;
}

static int delete_hook(const struct evs_host *host, struct evs_ctx *ctx)
{
	struct evs_response *resp = NULL;
	char owner[128], repo[128], path[320], msg[512];
	long long id;
	int ret = 1;

	id = stored_hook_id(host, ctx);
	if (id <= 0) {
		host->log(ctx, EVS_LOG_INFO, "no webhook id in the metadata; nothing to delete");
		return 0;
	}
	if (get_repository(host, ctx, owner, repo, sizeof(owner)) != 0)
		return 1;
	snprintf(path, sizeof(path), "/repos/%s/%s/hooks/%lld", owner, repo, id);
	if (request(host, ctx, "DELETE", path, 2, &resp) != 0)
		return 1;
	if (resp->status == 404) {
		host->log(ctx, EVS_LOG_INFO, "webhook %lld on %s/%s was already gone", id, owner, repo);
		ret = 0;
	} else if (resp->status >= 200 && resp->status < 300) {
		host->log(ctx, EVS_LOG_INFO, "deleted webhook %lld on %s/%s", id, owner, repo);
		ret = 0;
	} else {
		host->set_error(ctx, "GitHub refused to delete webhook %lld on %s/%s (HTTP %d): %s", id,
				owner, repo, resp->status, github_message(resp, msg, sizeof(msg)));
	}
	host->free_response(ctx, resp);
	return ret;
}

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	switch (event->type) {
	case EVS_EVENT_POST_CONNECTION_CREATION:
		return create_hook(host, ctx);
	case EVS_EVENT_PRE_CONNECTION_DELETION:
		return delete_hook(host, ctx);
	default:
		host->log(ctx, EVS_LOG_DEBUG, "nothing to do on %s", event->name);
		return 0;
	}
}
