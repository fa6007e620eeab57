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

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

#define DEFAULT_CHANNEL "#general"
#define POST_RETRIES 3
#define SLACK_JSON "application/json; charset=utf-8" /* Slack asks for the charset */

/* o.key when it is a string, else NULL (borrowed from o). */
static const char *string_field(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* connection_config.channel, else metadata.channel, else DEFAULT_CHANNEL. */
static void pick_channel(const struct evs_host *host, struct evs_ctx *ctx, char *buf, size_t n)
{
	struct json_object *conn = NULL, *cfg = NULL, *meta = NULL;
	const char *text = NULL, *channel = NULL;

	if (host->get_connection(ctx, &text) == EVS_OK)
		conn = json_tokener_parse(text);
	json_object_object_get_ex(conn, "connection_config", &cfg);
	json_object_object_get_ex(conn, "metadata", &meta);
	channel = string_field(cfg, "channel");
	if (!channel || !*channel)
		channel = string_field(meta, "channel");
	snprintf(buf, n, "%s", channel && *channel ? channel : DEFAULT_CHANNEL);
	json_object_put(conn);
}

/* Slack's verdict on chat.postMessage: 0, or 1 after set_error(). */
static int check_reply(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_response *resp,
		       const char *channel)
{
	struct json_object *reply, *ok = NULL, *update;
	const char *error, *ts;
	int ret = 1;

	if (resp->status < 200 || resp->status >= 300) {
		host->set_error(ctx, "Slack answered HTTP %d to chat.postMessage", resp->status);
		return 1;
	}
	reply = json_tokener_parse(resp->body);
	if (!json_object_object_get_ex(reply, "ok", &ok) || !json_object_get_boolean(ok)) {
		error = string_field(reply, "error");
		host->set_error(ctx, "Slack refused the welcome message to %s: %s", channel,
				error ? error : "no error given");
		goto out;
	}
	ts = string_field(reply, "ts");
	if (ts) {
		update = json_object_new_object();
		json_object_object_add(update, "slack_welcome_ts", json_object_new_string(ts));
		if (host->update_metadata(ctx, json_object_to_json_string_ext(update, JSON_C_TO_STRING_PLAIN)) != EVS_OK)
			host->log(ctx, EVS_LOG_WARN, "posted, but the message timestamp was not stored");
		json_object_put(update);
	}
	host->log(ctx, EVS_LOG_INFO, "welcome message posted to %s", channel);
	ret = 0;
out:
	json_object_put(reply);
	return ret;
}

static int post_welcome(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	struct evs_header content_type = {"Content-Type", SLACK_JSON};
	struct evs_request req = {.size = sizeof(req), .method = "POST", .endpoint = "/chat.postMessage",
				  .headers = &content_type, .n_headers = 1, .retries = POST_RETRIES};
	struct evs_response *resp = NULL;
	struct json_object *body = json_object_new_object();
	char channel[256], text[1024];
	const char *custom = NULL;
	int ret;

	pick_channel(host, ctx, channel, sizeof(channel));
	if (host->get_env(ctx, "SLACK_WELCOME_TEXT", &custom) == EVS_OK && custom[0] != '\0')
		snprintf(text, sizeof(text), "%s", custom);
	else
		snprintf(text, sizeof(text), "Hello! evscript is now connected to this workspace (connection %s).",
			 event->connection_id);
	json_object_object_add(body, "channel", json_object_new_string(channel));
	json_object_object_add(body, "text", json_object_new_string(text));
	req.body = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN);
	req.body_len = strlen(req.body);
	ret = host->proxy(ctx, &req, &resp);
	json_object_put(body);
	if (ret != EVS_OK) {
		host->set_error(ctx, "chat.postMessage: %s", evs_strerror(ret));
		return 1;
	}
	ret = check_reply(host, ctx, resp, channel);
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
