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

#include "evs_example_json.h"

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

/* Reads owner and repo from the connection's connection_config. Returns 0,
 * or -1 after set_error(). */
static int get_repository(const struct evs_host *host, struct evs_ctx *ctx,
			  char *owner, char *repo, size_t n)
{
	const char *cfg;

	if (get_connection_config(host, ctx, &cfg) != 0)
		return -1;
	if (json_string(json_field(cfg, "owner"), owner, n) != 0 ||
	    json_string(json_field(cfg, "repo"), repo, n) != 0) {
		host->set_error(ctx, "connection_config needs \"owner\" and \"repo\" (strings)");
		return -1;
	}
	if (!valid_github_name(owner) || !valid_github_name(repo)) {
		host->set_error(ctx, "connection_config owner/repo is not a GitHub repository name");
		return -1;
	}
	return 0;
}

/* GitHub's error text from a response body ({"message": "..."}). */
static const char *github_message(const struct evs_response *resp, char *buf, size_t n)
{
	return json_string_or(json_field(resp->body, "message"), buf, n, "no message");
}

/* One request with a JSON body (or none). Returns 0 with *resp set, or -1
 * after set_error(). */
static int request(const struct evs_host *host, struct evs_ctx *ctx, const char *method,
		   const char *path, const struct json_buf *body, uint32_t retries,
		   struct evs_response **resp)
{
	int ret = json_request(host, ctx, method, path, body, retries, resp);

	if (ret != EVS_OK) {
		host->set_error(ctx, "%s %s: %s", method, path, evs_strerror(ret));
		return -1;
	}
	return 0;
}

/* The id stored by an earlier creation, or -1. */
static long long stored_hook_id(const struct evs_host *host, struct evs_ctx *ctx)
{
	const char *meta = NULL;
	long long id;

	if (host->get_metadata(ctx, &meta) != EVS_OK ||
	    json_int(json_field(meta, "github_webhook_id"), &id) != 0 || id <= 0)
		return -1;
	return id;
}

/* True when the hook `id` still exists on owner/repo. */
static int hook_exists(const struct evs_host *host, struct evs_ctx *ctx, const char *owner,
		       const char *repo, long long id)
{
	struct evs_response *resp = NULL;
	char path[320];
	int exists;

	snprintf(path, sizeof(path), "/repos/%s/%s/hooks/%lld", owner, repo, id);
	if (request(host, ctx, "GET", path, NULL, 2, &resp) != 0)
		return 0;
	exists = resp->status >= 200 && resp->status < 300;
	host->free_response(ctx, resp);
	return exists;
}

static int create_hook(const struct evs_host *host, struct evs_ctx *ctx)
{
	char owner[128], repo[128];
	const char *url = NULL;
	struct json_buf body = {0};
	long long id;
	int ret;

	if (get_repository(host, ctx, owner, repo, sizeof(owner)) != 0)
		return 1;
	id = stored_hook_id(host, ctx);
	if (id > 0 && hook_exists(host, ctx, owner, repo, id)) {
		host->log(ctx, EVS_LOG_INFO, "webhook %lld on %s/%s exists already; kept", id, owner,
			  repo);
		return 0;
	}
	ret = host->get_webhook_url(ctx, &url);
	if (ret != EVS_OK) {
		host->set_error(ctx, "no webhook URL for this integration: %s", evs_strerror(ret));
		return 1;
	}
	json_put(&body, "{\"name\":\"web\",\"active\":true,\"events\":[\"push\",\"pull_request\"],"
			"\"config\":{\"url\":");
	json_put_string(&body, url);
	json_put(&body, ",\"content_type\":\"json\"}}");
	if (body.overflow) {
		host->set_error(ctx, "the webhook URL is too long");
		return 1;
	}
	if (github_create_hook(host, ctx, owner, repo, &body, &id) != 0)
		return 1;
	if (metadata_put_int(host, ctx, "github_webhook_id", id) != EVS_OK) {
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
	if (request(host, ctx, "DELETE", path, NULL, 2, &resp) != 0)
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
