/*
 * validate-api-key: checks a new connection's credentials before they are
 * stored.
 *
 * On validate-connection it calls the provider's "who am I" endpoint with the
 * candidate credentials (injected by the host as for any request): /whoami,
 * or the path in the VALIDATE_API_KEY_PATH variable when the host
 * configuration exposes one (`environment:`). A 401 or 403 refuses the
 * connection with "the credentials were rejected by <integration> (HTTP
 * 401)", which is what the API client sees; any other failure refuses it too,
 * with the reason. On success the identity the provider reports (login,
 * name, email or username) is stored in the metadata as "validated_as"; the
 * host keeps that metadata with the connection it then creates.
 *
 * nango.yaml:
 *     integrations:
 *         acme:
 *             on-events:
 *                 validate-connection: [validate-api-key]
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
 * Validation.
 */
#define DEFAULT_PATH "/whoami"

/* Fields of a "who am I" reply that name the account, in order of preference
 * (GitHub: login; Slack auth.test: user; many APIs: name, email, username). */
static const char *const identity_fields[] = {"login", "user", "username", "name", "email"};

/* The provider's error text from a reply body, if it has one. */
static const char *provider_message(const struct evs_response *resp, char *buf, size_t n)
{
	static const char *const fields[] = {"message", "error", "detail"};
	size_t i;

	for (i = 0; resp->body && i < sizeof(fields) / sizeof(fields[0]); i++)
		if (json_string(json_field(resp->body, fields[i]), buf, n) == 0)
			return buf;
	return "no message";
}

static void remember_identity(const struct evs_host *host, struct evs_ctx *ctx,
			      const struct evs_response *resp)
{
	struct jbuf update = {0};
	char who[256];
	size_t i;

	for (i = 0; i < sizeof(identity_fields) / sizeof(identity_fields[0]); i++)
		if (json_string(json_field(resp->body, identity_fields[i]), who, sizeof(who)) == 0 &&
		    who[0] != '\0')
			break;
	if (i == sizeof(identity_fields) / sizeof(identity_fields[0])) {
		host->log(ctx, EVS_LOG_INFO, "credentials accepted; the reply names no account");
		return;
	}
	jb_add(&update, "{\"validated_as\":");
	jb_str(&update, who);
	jb_add(&update, "}");
	if (update.overflow || host->update_metadata(ctx, update.data) != EVS_OK)
		host->log(ctx, EVS_LOG_WARN, "credentials accepted; validated_as not stored");
	else
		host->log(ctx, EVS_LOG_INFO, "credentials accepted for %s", who);
}

static int validate(const struct evs_host *host, struct evs_ctx *ctx,
		    const struct evs_event *event)
{
	struct evs_request req = {0};
	struct evs_response *resp = NULL;
	const char *path = NULL;
	char msg[256];
	int ret;

	if (host->get_env(ctx, "VALIDATE_API_KEY_PATH", &path) != EVS_OK || path[0] == '\0')
		path = DEFAULT_PATH;
	req.size = sizeof(req);
	req.method = "GET";
	req.endpoint = path;
	req.retries = 2; /* a GET: safe to repeat on 5xx, 429 and network errors */
	ret = host->proxy(ctx, &req, &resp);
	if (ret != EVS_OK) {
		host->set_error(ctx, "could not check the credentials with %s: GET %s: %s",
				event->provider_config_key, path, evs_strerror(ret));
		return 1;
	}
	ret = 1;
	if (resp->status == 401 || resp->status == 403) {
		host->set_error(ctx, "the credentials were rejected by %s (HTTP %d)",
				event->provider_config_key, resp->status);
	} else if (resp->status < 200 || resp->status >= 300) {
		host->set_error(ctx, "could not check the credentials with %s: GET %s answered HTTP %d: %s",
				event->provider_config_key, path, resp->status,
				provider_message(resp, msg, sizeof(msg)));
	} else {
		remember_identity(host, ctx, resp);
		ret = 0;
	}
	host->free_response(ctx, resp);
	return ret;
}

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	if (event->type != EVS_EVENT_VALIDATE_CONNECTION) {
		host->log(ctx, EVS_LOG_DEBUG, "nothing to do on %s", event->name);
		return 0;
	}
	return validate(host, ctx, event);
}
