/*
 * evs_example_json.h: the small helpers the example plugins share.
 *
 * This is not part of the SDK: it lives next to the examples, and a plugin
 * copied out of this repository takes this header along (or brings its own
 * JSON code). Everything here is `static inline`, so each plugin compiles in
 * only what it uses and exports nothing more than the SDK entry points.
 *
 * Reading. The host hands plugins compact, valid json-c output; json_field()
 * finds a member of an object, json_string() / json_int() / json_is_true()
 * read its value. This is not a general parser: a malformed document simply
 * yields "not found".
 *
 * Writing. struct json_buf is a JSON text built in a fixed buffer;
 * json_put() appends raw text, json_put_string() a quoted, escaped string.
 *
 * Host calls. json_request() sends one request through host->proxy with a
 * json_buf as its body; metadata_put_string() / metadata_put_int() merge one
 * member into the connection's metadata; get_connection_config() reads the
 * connection's connection_config.
 *
 * GitHub. valid_github_name() and github_create_hook(), for github-webhooks
 * and create-webhook.
 */
#ifndef EVS_EXAMPLE_JSON_H
#define EVS_EXAMPLE_JSON_H

#include <evscript/sdk.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------
 * Reading JSON.
 */
#define JSON_MAX_DEPTH 64
#define JSON_VALUE_END ",}] \t\r\n" /* what may follow a number or a literal */

static inline const char *json_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* The position after the JSON string whose opening quote is at p, or NULL. */
static inline const char *json_skip_string(const char *p)
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
static inline const char *json_skip_value(const char *p)
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
			while (*p && !strchr(JSON_VALUE_END, *p))
				p++;
			return p;
		} else {
			p++;
		}
	} while (depth > 0);
	return p;
}

/* The value of `key` in the JSON object at obj (its own members only, not
 * nested ones), or NULL when obj is NULL, not an object or has no such key. */
static inline const char *json_field(const char *obj, const char *key)
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

/* The value of the 4 hex digits at p, or -1. */
static inline long json_hex4(const char *p)
{
	long cp = 0;
	int i;

	for (i = 0; i < 4; i++) {
		cp <<= 4;
		if (p[i] >= '0' && p[i] <= '9')
			cp |= p[i] - '0';
		else if (p[i] >= 'a' && p[i] <= 'f')
			cp |= p[i] - 'a' + 10;
		else if (p[i] >= 'A' && p[i] <= 'F')
			cp |= p[i] - 'A' + 10;
		else
			return -1;
	}
	return cp;
}

/* Decodes the JSON string at v into buf (n bytes, NUL-terminated). Returns
 * 0, or -1 when v is NULL or not a string, does not fit, holds a NUL or a
 * surrogate escape. */
static inline int json_string(const char *v, char *buf, size_t n)
{
	size_t len = 0, k;
	char out[3];
	long cp;

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
				cp = json_hex4(v + 1);
				if (cp <= 0 || (cp >= 0xD800 && cp <= 0xDFFF))
					return -1;
				v += 4;
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

/* The JSON string at v decoded into buf (n bytes), or `fallback` copied
 * there when v is not a string that fits. Returns buf. */
static inline const char *json_string_or(const char *v, char *buf, size_t n,
					 const char *fallback)
{
	if (json_string(v, buf, n) != 0)
		snprintf(buf, n, "%s", fallback);
	return buf;
}

/* Reads the JSON integer at v into *out. Returns 0, or -1 when v is NULL or
 * not an integer. */
static inline int json_int(const char *v, long long *out)
{
	char *end;

	if (!v || !(*v == '-' || (*v >= '0' && *v <= '9')))
		return -1;
	errno = 0;
	*out = strtoll(v, &end, 10);
	if (errno || !strchr(JSON_VALUE_END, *end))
		return -1;
	return 0;
}

/* True when v is the JSON literal true. */
static inline int json_is_true(const char *v)
{
	return v && strncmp(v, "true", 4) == 0 && strchr(JSON_VALUE_END, v[4]);
}

/* ---------------------------------------------------------------------------
 * Writing JSON.
 */

/* A JSON text being written into a fixed buffer; `overflow` is set when it
 * did not fit, and the text must then not be used. Start it zeroed. As a
 * request body it is sent as `content_type` (NULL: application/json). */
struct json_buf {
	char data[4096];
	size_t len;
	int overflow;
	const char *content_type;
};

/* Appends s as it is. */
static inline void json_put(struct json_buf *b, const char *s)
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
static inline void json_put_string(struct json_buf *b, const char *s)
{
	char esc[8];

	json_put(b, "\"");
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
		json_put(b, esc);
	}
	json_put(b, "\"");
}

/* ---------------------------------------------------------------------------
 * Host calls.
 */

/* Sends method path through the host's proxy with `body` (NULL for none) and
 * `retries` extra attempts (0 for anything that must not run twice). Returns
 * the host's EVS_* code; on EVS_OK *resp is the caller's to release with
 * host->free_response(). */
static inline int json_request(const struct evs_host *host, struct evs_ctx *ctx,
			       const char *method, const char *path,
			       const struct json_buf *body, uint32_t retries,
			       struct evs_response **resp)
{
	struct evs_header content_type = {"Content-Type", "application/json"};
	struct evs_request req = {0};

	req.size = sizeof(req);
	req.method = method;
	req.endpoint = path;
	if (body) {
		if (body->content_type)
			content_type.value = body->content_type;
		req.body = body->data;
		req.body_len = body->len;
		req.headers = &content_type;
		req.n_headers = 1;
	}
	req.retries = retries;
	return host->proxy(ctx, &req, resp);
}

/* Merges {"key": "value"} into the connection's metadata. Returns the
 * host's EVS_* code (EVS_ENOMEM when it is too long). */
static inline int metadata_put_string(const struct evs_host *host, struct evs_ctx *ctx,
				      const char *key, const char *value)
{
	struct json_buf update = {0};

	json_put(&update, "{");
	json_put_string(&update, key);
	json_put(&update, ":");
	json_put_string(&update, value);
	json_put(&update, "}");
	if (update.overflow)
		return EVS_ENOMEM;
	return host->update_metadata(ctx, update.data);
}

/* Merges {"key": value} into the connection's metadata. Returns the host's
 * EVS_* code (EVS_ENOMEM when the key is too long). */
static inline int metadata_put_int(const struct evs_host *host, struct evs_ctx *ctx,
				   const char *key, long long value)
{
	struct json_buf update = {0};
	char number[32];

	snprintf(number, sizeof(number), ":%lld}", value);
	json_put(&update, "{");
	json_put_string(&update, key);
	json_put(&update, number);
	if (update.overflow)
		return EVS_ENOMEM;
	return host->update_metadata(ctx, update.data);
}

/* Points *cfg at the connection's connection_config (NULL when it has none).
 * Returns 0, or -1 after host->set_error(). */
static inline int get_connection_config(const struct evs_host *host, struct evs_ctx *ctx,
					const char **cfg)
{
	const char *conn = NULL;
	int ret;

	ret = host->get_connection(ctx, &conn);
	if (ret != EVS_OK) {
		host->set_error(ctx, "cannot read the connection: %s", evs_strerror(ret));
		return -1;
	}
	*cfg = json_field(conn, "connection_config");
	return 0;
}

/* ---------------------------------------------------------------------------
 * GitHub (github-webhooks, create-webhook).
 */

/* GitHub owner and repository names: letters, digits, '.', '-', '_'. */
static inline int valid_github_name(const char *s)
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

/* Creates a webhook on owner/repo: POST /repos/owner/repo/hooks with `body`
 * (GitHub's hook object), not retried since a creation must not run twice.
 * Returns 0 with the new hook's id in *id, or -1 after host->set_error(). */
static inline int github_create_hook(const struct evs_host *host, struct evs_ctx *ctx,
				     const char *owner, const char *repo,
				     const struct json_buf *body, long long *id)
{
	struct evs_response *resp = NULL;
	char path[320], msg[512];
	int ret;

	snprintf(path, sizeof(path), "/repos/%s/%s/hooks", owner, repo);
	ret = json_request(host, ctx, "POST", path, body, 0, &resp);
	if (ret != EVS_OK) {
		host->set_error(ctx, "POST %s: %s", path, evs_strerror(ret));
		return -1;
	}
	ret = -1;
	if (resp->status < 200 || resp->status >= 300)
		host->set_error(ctx, "GitHub refused to create the webhook on %s/%s (HTTP %d): %s",
				owner, repo, resp->status,
				json_string_or(json_field(resp->body, "message"), msg, sizeof(msg),
					       "no message"));
	else if (json_int(json_field(resp->body, "id"), id) != 0)
		host->set_error(ctx, "GitHub's reply has no webhook id");
	else
		ret = 0;
	host->free_response(ctx, resp);
	return ret;
}

#endif /* EVS_EXAMPLE_JSON_H */
