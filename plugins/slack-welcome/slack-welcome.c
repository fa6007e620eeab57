/*
 * slack-welcome: posts a welcome message when a Slack connection is created.
 *
 * The channel is connection_config.channel, else metadata.channel, else
 * #general; the text is the SLACK_WELCOME_TEXT variable when the host
 * configuration exposes one (`environment:`), else a default. The request is
 * retried (on network errors, 5xx and 429, honouring Retry-After), since
 * Slack rate-limits chat.postMessage. Slack answers 200 with
 * {"ok":false,"error":"..."} when it refuses a message: that fails the
 * execution with Slack's error. On success the message's timestamp is kept
 * in the metadata as "slack_welcome_ts".
 *
 * nango.yaml:
 *     integrations:
 *         slack:
 *             on-events:
 *                 post-connection-creation: [slack-welcome]
 */
#include <evscript/sdk.h>

#include "evs_example_json.h"

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

#define DEFAULT_CHANNEL "#general"
#define POST_RETRIES 3
#define SLACK_JSON "application/json; charset=utf-8" /* Slack asks for the charset */

/* The channel to post to (see the top of this file). */
static void pick_channel(const struct evs_host *host, struct evs_ctx *ctx, char *buf, size_t n)
{
	const char *conn = NULL;

	if (host->get_connection(ctx, &conn) == EVS_OK &&
	    (json_string(json_field(json_field(conn, "connection_config"), "channel"), buf, n) == 0 ||
	     json_string(json_field(json_field(conn, "metadata"), "channel"), buf, n) == 0) &&
	    buf[0] != '\0')
		return;
	snprintf(buf, n, "%s", DEFAULT_CHANNEL);
}

static int post_welcome(const struct evs_host *host, struct evs_ctx *ctx,
			const struct evs_event *event)
{
	struct evs_response *resp = NULL;
	struct json_buf body = {.content_type = SLACK_JSON};
	char channel[256], text[1024], error[256], ts[64];
	const char *custom = NULL;
	int ret;

	pick_channel(host, ctx, channel, sizeof(channel));
	if (host->get_env(ctx, "SLACK_WELCOME_TEXT", &custom) == EVS_OK && custom[0] != '\0')
		snprintf(text, sizeof(text), "%s", custom);
	else
		snprintf(text, sizeof(text),
			 "Hello! evscript is now connected to this workspace (connection %s).",
			 event->connection_id);
	json_put(&body, "{\"channel\":");
	json_put_string(&body, channel);
	json_put(&body, ",\"text\":");
	json_put_string(&body, text);
	json_put(&body, "}");
	if (body.overflow) {
		host->set_error(ctx, "the welcome message is too long");
		return 1;
	}

	ret = json_request(host, ctx, "POST", "/chat.postMessage", &body, POST_RETRIES, &resp);
	if (ret != EVS_OK) {
		host->set_error(ctx, "chat.postMessage: %s", evs_strerror(ret));
		return 1;
	}
	ret = 1;
	if (resp->status < 200 || resp->status >= 300) {
		host->set_error(ctx, "Slack answered HTTP %d to chat.postMessage", resp->status);
		goto out;
	}
	if (!json_is_true(json_field(resp->body, "ok"))) {
		host->set_error(ctx, "Slack refused the welcome message to %s: %s", channel,
				json_string_or(json_field(resp->body, "error"), error, sizeof(error),
					       "no error given"));
		goto out;
	}
	if (json_string(json_field(resp->body, "ts"), ts, sizeof(ts)) == 0 &&
	    metadata_put_string(host, ctx, "slack_welcome_ts", ts) != EVS_OK)
		host->log(ctx, EVS_LOG_WARN, "posted, but the message timestamp was not stored");
	host->log(ctx, EVS_LOG_INFO, "welcome message posted to %s", channel);
	ret = 0;
out:
	host->free_response(ctx, resp);
	return ret;
}

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	if (event->type != EVS_EVENT_POST_CONNECTION_CREATION) {
		host->log(ctx, EVS_LOG_DEBUG, "nothing to do on %s", event->name);
		return 0;
	}
	return post_welcome(host, ctx, event);
}
