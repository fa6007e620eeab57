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

#include <errno.h>
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

/* Reads the JSON integer at v into *out. Returns 0, or -1 when v is not an
 * integer. */
static int json_int(const char *v, long long *out)
{
	char *end;

	if (!v || !(*v == '-' || (*v >= '0' && *v <= '9')))
		return -1;
	errno = 0;
	*out = strtoll(v, &end, 10);
	if (errno || !strchr(",}] \t\r\n", *end))
		return -1;
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
 * The action.
 */
#define MAX_EVENTS 32

/* GitHub owner and repository names: letters, digits, '.', '-', '_'. */
static int valid_github_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 100 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '.' || *s == '-' || *s == '_'))
			return 0;
	return 1;
}

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
static int add_events(struct jbuf *b, const char *input)
{
	const char *p = json_field(input, "events");
	char name[128];
	int n = 0;

	if (!p || strncmp(p, "null", 4) == 0) {
		jb_add(b, "[\"push\"]");
		return 0;
	}
	if (*p++ != '[')
		return -1;
	jb_add(b, "[");
	for (;;) {
		p = json_ws(p);
		if (++n > MAX_EVENTS || json_string(p, name, sizeof(name)) != 0 || name[0] == '\0')
			return -1;
		if (n > 1)
			jb_add(b, ",");
		jb_str(b, name);
		p = json_ws(json_skip_string(p));
		if (*p == ']')
			break;
		if (*p++ != ',')
			return -1;
	}
	jb_add(b, "]");
	return 0;
}

int run_action(const struct evs_host *host, struct evs_ctx *ctx, const char *input_json,
	       char **output_json)
{
	static const struct evs_header json_header = {"Content-Type", "application/json"};
	struct evs_request req = {0};
	struct evs_response *resp = NULL;
	struct jbuf body = {0};
	char owner[128], repo[128], url[2048], path[320], msg[512], out[64];
	const char *conn = NULL, *cfg, *webhook_url = NULL;
	long long id;
	int ret;

	ret = host->get_connection(ctx, &conn);
	if (ret != EVS_OK) {
		host->set_error(ctx, "cannot read the connection: %s", evs_strerror(ret));
		return 1;
	}
	cfg = json_field(conn, "connection_config");
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

	jb_add(&body, "{\"name\":\"web\",\"active\":true,\"events\":");
	if (add_events(&body, input_json) != 0) {
		host->set_error(ctx, "\"events\" must be an array of 1 to %d event names",
				MAX_EVENTS);
		return 1;
	}
	jb_add(&body, ",\"config\":{\"url\":");
	jb_str(&body, url);
	jb_add(&body, ",\"content_type\":\"json\"}}");
	if (body.overflow) {
		host->set_error(ctx, "the webhook request is too large");
		return 1;
	}

	snprintf(path, sizeof(path), "/repos/%s/%s/hooks", owner, repo);
	req.size = sizeof(req);
	req.method = "POST";
	req.endpoint = path;
	req.headers = &json_header;
	req.n_headers = 1;
	req.body = body.data;
	req.body_len = body.len;
	ret = host->proxy(ctx, &req, &resp); /* no retries: a creation must not run twice */
	if (ret != EVS_OK) {
		host->set_error(ctx, "POST %s: %s", path, evs_strerror(ret));
		return 1;
	}
	ret = 1;
	if (resp->status < 200 || resp->status >= 300) {
		if (json_string(json_field(resp->body, "message"), msg, sizeof(msg)) != 0)
			snprintf(msg, sizeof(msg), "no message");
		host->set_error(ctx, "GitHub refused to create the webhook on %s/%s (HTTP %d): %s",
				owner, repo, resp->status, msg);
		goto out;
	}
	if (json_int(json_field(resp->body, "id"), &id) != 0) {
		host->set_error(ctx, "GitHub's reply has no webhook id");
		goto out;
	}
	snprintf(out, sizeof(out), "{\"id\":%lld}", id);
	*output_json = strdup(out); /* the host free()s it */
	if (!*output_json) {
		host->set_error(ctx, "out of memory");
		goto out;
	}
	host->log(ctx, EVS_LOG_INFO, "created webhook %lld on %s/%s for %s", id, owner, repo, url);
	ret = 0;
out:
	host->free_response(ctx, resp);
	return ret;
}
