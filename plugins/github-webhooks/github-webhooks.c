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
 * GitHub.
 */

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

/* Reads owner and repo from the connection's connection_config. Returns 0,
 * or -1 after set_error(). */
static int get_repository(const struct evs_host *host, struct evs_ctx *ctx,
			  char *owner, char *repo, size_t n)
{
	const char *conn = NULL, *cfg;
	int ret;

	ret = host->get_connection(ctx, &conn);
	if (ret != EVS_OK) {
		host->set_error(ctx, "cannot read the connection: %s", evs_strerror(ret));
		return -1;
	}
	cfg = json_field(conn, "connection_config");
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
static const char *provider_message(const struct evs_response *resp, char *buf, size_t n)
{
	if (resp->body && json_string(json_field(resp->body, "message"), buf, n) == 0)
		return buf;
	return "no message";
}

/* One request with a JSON body (or none). Returns 0 with *resp set, or -1
 * after set_error(). */
static int request(const struct evs_host *host, struct evs_ctx *ctx, const char *method,
		   const char *path, const struct jbuf *body, uint32_t retries,
		   struct evs_response **resp)
{
	static const struct evs_header json_header = {"Content-Type", "application/json"};
	struct evs_request req = {0};
	int ret;

	req.size = sizeof(req);
	req.method = method;
	req.endpoint = path;
	if (body) {
		req.body = body->data;
		req.body_len = body->len;
		req.headers = &json_header;
		req.n_headers = 1;
	}
	req.retries = retries;
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
	struct evs_response *resp = NULL;
	char owner[128], repo[128], path[320], msg[512], update[64];
	const char *url = NULL;
	struct jbuf body = {0};
	long long id;
	int ret = 1;

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
	jb_add(&body, "{\"name\":\"web\",\"active\":true,\"events\":[\"push\",\"pull_request\"],"
		      "\"config\":{\"url\":");
	jb_str(&body, url);
	jb_add(&body, ",\"content_type\":\"json\"}}");
	if (body.overflow) {
		host->set_error(ctx, "the webhook URL is too long");
		return 1;
	}
	snprintf(path, sizeof(path), "/repos/%s/%s/hooks", owner, repo);
	/* No retries: a creation that reached GitHub must not run twice. */
	if (request(host, ctx, "POST", path, &body, 0, &resp) != 0)
		return 1;
	ret = 1;
	if (resp->status < 200 || resp->status >= 300) {
		host->set_error(ctx, "GitHub refused to create the webhook on %s/%s (HTTP %d): %s",
				owner, repo, resp->status, provider_message(resp, msg, sizeof(msg)));
		goto out;
	}
	if (json_int(json_field(resp->body, "id"), &id) != 0) {
		host->set_error(ctx, "GitHub's reply has no webhook id");
		goto out;
	}
	snprintf(update, sizeof(update), "{\"github_webhook_id\":%lld}", id);
	if (host->update_metadata(ctx, update) != EVS_OK) {
		host->set_error(ctx, "webhook %lld created but its id could not be stored", id);
		goto out;
	}
	host->log(ctx, EVS_LOG_INFO, "created webhook %lld on %s/%s for %s", id, owner, repo, url);
	ret = 0;
out:
	host->free_response(ctx, resp);
	return ret;
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
				owner, repo, resp->status, provider_message(resp, msg, sizeof(msg)));
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
