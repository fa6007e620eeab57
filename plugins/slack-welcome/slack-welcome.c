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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

/* ---------------------------------------------------------------------------
 * Minimal JSON reading and writing. The host hands plugins compact, valid
 * json-c output; these helpers find a field of an object and read a string
 * or an integer, and write strings with the escapes JSON needs. They are not
 * a general parser: a malformed document simply yields "not found".
 */
#define JSON_MAX_DEPTH 64

static const char *json_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* The position after the JSON string whose opening quote is at p, or NULL. */
static const char *json_skip_string(const char *p)
{
	for (p++; *p; p++) {
		if (*p == '\\') {
			if (!*++p)
				return NULL;
		} else if (*p == '"') {
			return p + 1;
		}
	}
	return NULL;
}

/* The position after the JSON value at p, or NULL when it is malformed. */
static const char *json_skip_value(const char *p)
{
	int depth = 0;

	p = json_ws(p);
	do {
		if (*p == '"') {
			p = json_skip_string(p);
			if (!p)
				return NULL;
		} else if (*p == '{' || *p == '[') {
			if (++depth > JSON_MAX_DEPTH)
				return NULL;
			p++;
		} else if (*p == '}' || *p == ']') {
			if (--depth < 0)
				return NULL;
			p++;
		} else if (*p == '\0') {
			return NULL;
		} else if (depth == 0) { /* a number, true, false or null */
			while (*p && !strchr(",}] \t\r\n", *p))
				p++;
			return p;
		} else {
			p++;
		}
	} while (depth > 0);
	return p;
}

/* The value of `key` in the JSON object at obj (its own members only, not
 * nested ones), or NULL when obj is not an object or has no such key. */
static const char *json_field(const char *obj, const char *key)
{
	size_t klen = strlen(key);
	const char *p, *k, *end;

	if (!obj)
		return NULL;
	p = json_ws(obj);
	if (*p++ != '{')
		return NULL;
	for (;;) {
		p = json_ws(p);
		if (*p != '"')
			return NULL; /* also the end of an empty object */
		k = p + 1;
		end = json_skip_string(p);
		if (!end)
			return NULL;
		p = json_ws(end);
		if (*p++ != ':')
			return NULL;
		p = json_ws(p);
		if ((size_t)(end - 1 - k) == klen && memcmp(k, key, klen) == 0)
			return p;
		p = json_skip_value(p);
		if (!p)
			return NULL;
		p = json_ws(p);
		if (*p++ != ',')
			return NULL;
	}
}

/* Decodes the JSON string at v into buf (n bytes, NUL-terminated). Returns
 * 0, or -1 when v is not a string, does not fit, holds a NUL or a surrogate
 * escape. */
static int json_string(const char *v, char *buf, size_t n)
{
	size_t len = 0;
	unsigned cp;
	char out[3];
	size_t k, i;

	if (!v || *v != '"' || n == 0)
		return -1;
	for (v++; *v != '"'; v++) {
		k = 1;
		if (*v == '\0') {
			return -1;
		} else if (*v != '\\') {
			out[0] = *v;
		} else {
			switch (*++v) {
			case '"': case '\\': case '/': out[0] = *v; break;
			case 'b': out[0] = '\b'; break;
			case 'f': out[0] = '\f'; break;
			case 'n': out[0] = '\n'; break;
			case 'r': out[0] = '\r'; break;
			case 't': out[0] = '\t'; break;
			case 'u':
				cp = 0;
				for (i = 1; i <= 4; i++) {
					char c = v[i];
					cp <<= 4;
					if (c >= '0' && c <= '9') cp |= (unsigned)(c - '0');
					else if (c >= 'a' && c <= 'f') cp |= (unsigned)(c - 'a' + 10);
					else if (c >= 'A' && c <= 'F') cp |= (unsigned)(c - 'A' + 10);
					else return -1;
				}
				v += 4;
				if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF))
					return -1;
				if (cp < 0x80) {
					out[0] = (char)cp;
				} else if (cp < 0x800) {
					out[0] = (char)(0xC0 | (cp >> 6));
					out[1] = (char)(0x80 | (cp & 0x3F));
					k = 2;
				} else {
					out[0] = (char)(0xE0 | (cp >> 12));
					out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
					out[2] = (char)(0x80 | (cp & 0x3F));
					k = 3;
				}
				break;
			default:
				return -1;
			}
		}
		if (len + k >= n)
			return -1;
		memcpy(buf + len, out, k);
		len += k;
	}
	buf[len] = '\0';
	return 0;
}

/* A JSON text being written into a fixed buffer; `overflow` is set when it
 * did not fit, and the text must then not be used. */
struct jbuf {
	char data[4096];
	size_t len;
	int overflow;
};

static void jb_add(struct jbuf *b, const char *s)
{
	size_t n = strlen(s);

	if (b->overflow || b->len + n >= sizeof(b->data)) {
		b->overflow = 1;
		return;
	}
	memcpy(b->data + b->len, s, n + 1);
	b->len += n;
}

/* Appends s as a JSON string, quotes included. */
static void jb_str(struct jbuf *b, const char *s)
{
	char esc[8];

	jb_add(b, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			esc[2] = '\0';
		} else if (c < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
		} else {
			esc[0] = (char)c;
			esc[1] = '\0';
		}
		jb_add(b, esc);
	}
	jb_add(b, "\"");
}

/* ---------------------------------------------------------------------------
 * Slack.
 */
#define DEFAULT_CHANNEL "#general"
#define POST_RETRIES 3

/* True when v is the JSON literal true. */
static int json_is_true(const char *v)
{
	return v && strncmp(v, "true", 4) == 0 && strchr(",}] \t\r\n", v[4]);
}

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
	static const struct evs_header json_header = {"Content-Type",
						      "application/json; charset=utf-8"};
	struct evs_request req = {0};
	struct evs_response *resp = NULL;
	struct jbuf body = {0}, update = {0};
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
	jb_add(&body, "{\"channel\":");
	jb_str(&body, channel);
	jb_add(&body, ",\"text\":");
	jb_str(&body, text);
	jb_add(&body, "}");
	if (body.overflow) {
		host->set_error(ctx, "the welcome message is too long");
		return 1;
	}

	req.size = sizeof(req);
	req.method = "POST";
	req.endpoint = "/chat.postMessage";
	req.headers = &json_header;
	req.n_headers = 1;
	req.body = body.data;
	req.body_len = body.len;
	req.retries = POST_RETRIES;
	ret = host->proxy(ctx, &req, &resp);
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
		if (json_string(json_field(resp->body, "error"), error, sizeof(error)) != 0)
			snprintf(error, sizeof(error), "no error given");
		host->set_error(ctx, "Slack refused the welcome message to %s: %s", channel, error);
		goto out;
	}
	if (json_string(json_field(resp->body, "ts"), ts, sizeof(ts)) == 0) {
		jb_add(&update, "{\"slack_welcome_ts\":");
		jb_str(&update, ts);
		jb_add(&update, "}");
		if (!update.overflow && host->update_metadata(ctx, update.data) != EVS_OK)
			host->log(ctx, EVS_LOG_WARN, "posted, but the message timestamp was not stored");
	}
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
