/*
 * api_parse.c - pure validation of the API's JSON bodies: a json-c object in,
 * a validated request (pointers borrowed from the object) or a problem out.
 * No I/O, no store, no config: fuzzed by tests/fuzz/fuzz_api_json.c.
 *
 * The schemas are Nango's (strict: an unknown member of credentials is an
 * error), as docs/api.md lists them.
 */
#include "api_priv.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "loader.h"
#include "util.h"

#define NAME_MAX_BYTES 255

void api_problem_clear(struct api_problem *p)
{
	if (!p)
		return;
	json_object_put(p->errors);
	p->errors = NULL;
}

/* A string member of credentials and its rule. */
struct cred_string {
	const char *key;
	bool required;
	size_t min, max;
};

#define CRED_STRINGS_MAX 6

/* The credential types Nango takes: the "type" value, the string members
 * each allows besides "type" (checked in this order), and whether it takes
 * a config_override object (OAUTH2; parse_credentials checks it). */
static const struct cred_schema {
	const char *name;
	enum api_cred_type type;
	struct cred_string strings[CRED_STRINGS_MAX];
	bool config_override;
} cred_schemas[] = {
	{.name = "OAUTH2", .type = API_CRED_OAUTH2, .config_override = true,
	 .strings = {{"access_token", true, 1, 4096}, {"refresh_token", false, 0, 4096},
		     {"expires_at", false, 1, 64}}},
	{.name = "API_KEY", .type = API_CRED_API_KEY, .strings = {{"apiKey", true, 1, 1024}}},
	{.name = "BASIC", .type = API_CRED_BASIC,
	 .strings = {{"username", true, 0, 1024}, {"password", true, 0, 1024}}},
	{.name = "OAUTH2_CC", .type = API_CRED_OAUTH2_CC,
	 .strings = {{"token", true, 1, 4096}, {"client_id", true, 1, 255}, {"client_secret", true, 1, 2048},
		     {"client_certificate", false, 1, 10000}, {"client_private_key", false, 1, 10000},
		     {"expires_at", false, 1, 64}}},
	{.name = "OAUTH1", .type = API_CRED_OAUTH1,
	 .strings = {{"oauth_token", true, 1, 2048}, {"oauth_token_secret", true, 1, 2048}}},
	{.name = "TBA", .type = API_CRED_TBA, .config_override = true,
	 .strings = {{"token_id", true, 1, 4096}, {"token_secret", true, 1, 4096}}},
	{.name = "NONE", .type = API_CRED_NONE},
};

/* Auth modes of Nango's catalogue that POST /connections refuses, each with
 * its reason (422 invalid_credentials_type). */
static const struct {
	const char *name;
	const char *why;
} cred_refused[] = {
	{"APP", "a GitHub App installation token needs a JWT signed RS256 with the app's private key, and RSA is "
		"in none of evscript's dependencies"},
	{"JWT", "Nango's API defines no import shape for it (Nango makes these credentials in its connect flow)"},
	{"TWO_STEP", "Nango's API defines no import shape for it (Nango makes these credentials in its connect flow)"},
	{"SIGNATURE", "Nango's API defines no import shape for it (Nango makes these credentials in its connect flow)"},
	{"BILL", "Nango's API defines no import shape for it (Nango makes these credentials in its connect flow)"},
	{"CUSTOM", "Nango's API defines no import shape for it (Nango makes these credentials in its connect flow)"},
	{"AWS_SIGV4", "Nango's API defines no import shape for it (Nango makes these credentials in its connect flow)"},
	{"INSTALL_PLUGIN", "Nango's API defines no import shape for it"},
	{"MCP_OAUTH2", "import it as OAUTH2 credentials"},
	{"MCP_OAUTH2_GENERIC", "import it as OAUTH2 credentials"},
};

#define N_CRED_SCHEMAS (sizeof(cred_schemas) / sizeof(cred_schemas[0]))

const char *api_cred_type_name(enum api_cred_type t)
{
	for (size_t i = 0; i < N_CRED_SCHEMAS; i++)
		if (cred_schemas[i].type == t)
			return cred_schemas[i].name;
	return "?";
}

static void problem(struct api_problem *p, unsigned status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void problem(struct api_problem *p, unsigned status, const char *code, const char *fmt, ...)
{
	va_list ap;

	p->status = status;
	p->code = code;
	va_start(ap, fmt);
	vsnprintf(p->message, sizeof(p->message), fmt, ap);
	va_end(ap);
}

/* Every parser's start: req (size bytes) and p emptied, and the body must
 * be a JSON object (else a 400 invalid_json in p, and false). */
static bool begin(struct json_object *body, void *req, size_t size, struct api_problem *p)
{
	memset(req, 0, size);
	memset(p, 0, sizeof(*p));
	if (!json_object_is_type(body, json_type_object)) {
		problem(p, 400, "invalid_json", "the body must be a JSON object");
		return false;
	}
	return true;
}

/* Adds {"path":[a, b],"message":msg} to p->errors (b may be NULL) and makes
 * the problem a 400 invalid_body whose message is the first entry's. */
static void invalid(struct api_problem *p, const char *a, const char *b, const char *msg)
{
	struct json_object *e, *path;

	if (!p->errors)
		p->errors = json_object_new_array();
	if (!p->code)
		problem(p, 400, "invalid_body", "%s%s%s: %s", a, b ? "." : "", b ? b : "", msg);
	if (!p->errors)
		return;
	e = json_object_new_object();
	path = json_object_new_array();
	if (!e || !path) {
		json_object_put(e);
		json_object_put(path);
		return;
	}
	json_object_array_add(path, json_object_new_string(a));
	if (b)
		json_object_array_add(path, json_object_new_string(b));
	json_object_object_add(e, "path", path);
	json_object_object_add(e, "message", json_object_new_string(msg));
	json_object_array_add(p->errors, e);
}

static bool valid_utf8_printable(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		uint32_t cp;
		size_t n;

		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				return false;
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			n = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (i + n >= len)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		/* overlong forms, surrogates, beyond U+10FFFF, C1 controls */
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff || (cp >= 0x80 && cp < 0xa0))
			return false;
		i += n + 1;
	}
	return true;
}

bool api_valid_connection_id(const char *s)
{
	size_t len;

	if (!s)
		return false;
	len = strlen(s);
	return len >= 1 && len <= NAME_MAX_BYTES && valid_utf8_printable((const unsigned char *)s, len);
}

bool api_valid_idempotency_key(const char *s)
{
	size_t len;

	if (!s)
		return false;
	len = strlen(s);
	if (len < 1 || len > 255)
		return false;
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	}
	return true;
}

/* A string member: NULL when absent or JSON null; sets *bad when present
 * with another type. json-c strings may hold NUL bytes: refused as well. */
static const char *get_string(struct json_object *obj, const char *key, bool *bad)
{
	struct json_object *v;

	*bad = false;
	if (!json_object_object_get_ex(obj, key, &v) || v == NULL)
		return NULL;
	if (!json_object_is_type(v, json_type_string) ||
	    strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v)) {
		*bad = true;
		return NULL;
	}
	return json_object_get_string(v);
}

/* A string member with a length range; records the problem. Returns the
 * string, or NULL (absent when required: a problem too). */
static const char *want_string(struct api_problem *p, struct json_object *obj, const char *a,
			       const char *key, bool required, size_t min, size_t max)
{
	bool bad;
	const char *s = get_string(obj, key, &bad);
	char msg[96];

	if (bad) {
		invalid(p, a ? a : key, a ? key : NULL, "must be a string");
		return NULL;
	}
	if (!s) {
		if (required)
			invalid(p, a ? a : key, a ? key : NULL, "is required");
		return NULL;
	}
	if (strlen(s) < min || strlen(s) > max) {
		snprintf(msg, sizeof(msg), "must be %zu to %zu bytes long", min, max);
		invalid(p, a ? a : key, a ? key : NULL, msg);
		return NULL;
	}
	return s;
}

static bool only_members(struct api_problem *p, struct json_object *obj, const char *a,
			 const char *const *allowed)
{
	bool ok = true;

	json_object_object_foreach(obj, key, val) {
		bool found = false;

		(void)val;
		for (size_t i = 0; allowed[i]; i++)
			found = found || strcmp(key, allowed[i]) == 0;
		if (!found) {
			invalid(p, a, key, "unknown member");
			ok = false;
		}
	}
	return ok;
}

static const struct cred_schema *cred_schema(const char *name)
{
	return UTIL_FIND_NAME(cred_schemas, N_CRED_SCHEMAS, struct cred_schema, name, name);
}

static int parse_credentials(struct json_object *c, struct api_connection_req *req,
			     struct api_problem *p)
{
	static const char *const override[] = {"client_id", "client_secret", NULL};
	const char *allowed[1 + CRED_STRINGS_MAX + 2] = {"type"};
	const struct cred_schema *schema;
	struct json_object *v;
	const char *type;
	size_t n = 1;
	bool bad;

	type = get_string(c, "type", &bad);
	if (!type) {
		invalid(p, "credentials", "type", bad ? "must be a string" : "is required");
		return -1;
	}
	schema = cred_schema(type);
	if (!schema) {
		const char *why = NULL;

		for (size_t i = 0; i < sizeof(cred_refused) / sizeof(cred_refused[0]) && !why; i++)
			if (strcmp(type, cred_refused[i].name) == 0)
				why = cred_refused[i].why;
		json_object_put(p->errors);
		p->errors = NULL;
		if (why)
			problem(p, 422, "invalid_credentials_type", "credentials type %s cannot be imported: %s",
				type, why);
		else
			problem(p, 422, "invalid_credentials_type",
				"credentials type %.64s is not supported (OAUTH2, OAUTH2_CC, OAUTH1, TBA, API_KEY, BASIC or NONE)",
				type);
		return -1;
	}
	req->cred_type = schema->type;
	for (size_t i = 0; i < CRED_STRINGS_MAX && schema->strings[i].key; i++)
		allowed[n++] = schema->strings[i].key;
	if (schema->config_override)
		allowed[n++] = "config_override";
	allowed[n] = NULL;
	only_members(p, c, "credentials", allowed);
	for (size_t i = 0; i < CRED_STRINGS_MAX && schema->strings[i].key; i++) {
		const struct cred_string *m = &schema->strings[i];

		want_string(p, c, "credentials", m->key, m->required, m->min, m->max);
	}
	if (schema->config_override && json_object_object_get_ex(c, "config_override", &v) && v) {
		if (!json_object_is_type(v, json_type_object)) {
			invalid(p, "credentials", "config_override", "must be an object");
		} else {
			only_members(p, v, "config_override", override);
			want_string(p, v, "config_override", "client_id", false, 0, 4096);
			want_string(p, v, "config_override", "client_secret", false, 0, 4096);
		}
	}
	return p->code ? -1 : 0;
}

static struct json_object *object_member(struct api_problem *p, struct json_object *body,
					 const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(body, key, &v) || v == NULL)
		return NULL;
	if (!json_object_is_type(v, json_type_object)) {
		invalid(p, key, NULL, "must be an object");
		return NULL;
	}
	return v;
}

int api_parse_connection(struct json_object *body, struct api_connection_req *req,
			 struct api_problem *p)
{
	struct json_object *c;
	bool bad;

	if (!begin(body, req, sizeof(*req), p))
		return -1;
	req->provider_config_key = want_string(p, body, NULL, "provider_config_key", true, 1,
					       NAME_MAX_BYTES);
	req->connection_id = get_string(body, "connection_id", &bad);
	if (bad || (req->connection_id && !api_valid_connection_id(req->connection_id))) {
		invalid(p, "connection_id", NULL,
			"must be a string of 1 to 255 bytes of printable UTF-8");
		req->connection_id = NULL;
	}
	if (!json_object_object_get_ex(body, "credentials", &c) || c == NULL) {
		invalid(p, "credentials", NULL, "is required");
	} else if (!json_object_is_type(c, json_type_object)) {
		invalid(p, "credentials", NULL, "must be an object");
	} else {
		req->credentials = c;
		if (!p->code && parse_credentials(c, req, p) < 0 && p->status == 422)
			return -1;
	}
	req->metadata = object_member(p, body, "metadata");
	req->connection_config = object_member(p, body, "connection_config");
	if (p->code) {
		if (p->status != 422 && !p->errors)
			problem(p, 400, "invalid_body", "invalid body");
		return -1;
	}
	return 0;
}

struct json_object *api_credentials_stored(const struct api_connection_req *req)
{
	struct json_object *out, *v;
	static const char *const keep[] = {"type", "access_token", "refresh_token", "expires_at",
					   "config_override", NULL};

	if (req->cred_type != API_CRED_OAUTH2) {
		out = NULL;
		if (json_object_deep_copy(req->credentials, &out, NULL) != 0)
			return NULL;
		return out;
	}
	out = json_object_new_object();
	if (!out)
		return NULL;
	for (size_t i = 0; keep[i]; i++) {
		struct json_object *copy = NULL;

		if (!json_object_object_get_ex(req->credentials, keep[i], &v) || v == NULL)
			continue;
		if (json_object_deep_copy(v, &copy, NULL) != 0)
			goto fail;
		json_object_object_add(out, keep[i], copy);
	}
	v = NULL;
	if (json_object_deep_copy(req->credentials, &v, NULL) != 0)
		goto fail;
	json_object_object_add(out, "raw", v);
	return out;
fail:
	json_object_put(out);
	return NULL;
}

struct json_object *api_credentials_view(struct json_object *stored, bool with_refresh)
{
	struct json_object *out = NULL, *raw;

	if (!stored || json_object_deep_copy(stored, &out, NULL) != 0)
		return NULL;
	if (json_object_is_type(out, json_type_object))
		json_object_object_del(out, "refresh_error");
	if (!with_refresh && json_object_is_type(out, json_type_object)) {
		json_object_object_del(out, "refresh_token");
		if (json_object_object_get_ex(out, "raw", &raw) && json_object_is_type(raw, json_type_object))
			json_object_object_del(raw, "refresh_token");
	}
	return out;
}

struct json_object *api_credentials_errors(struct json_object *stored)
{
	struct json_object *arr = json_object_new_array(), *e, *v, *item;

	if (!arr || !stored || !json_object_object_get_ex(stored, "refresh_error", &e) ||
	    !json_object_is_type(e, json_type_object))
		return arr;
	item = json_object_new_object();
	if (!item)
		return arr;
	json_object_object_add(item, "type", json_object_new_string("auth"));
	json_object_object_add(item, "log_id", NULL);
	if (json_object_object_get_ex(e, "message", &v))
		json_object_object_add(item, "message", json_object_get(v));
	if (json_object_object_get_ex(e, "at", &v))
		json_object_object_add(item, "at", json_object_get(v));
	json_object_array_add(arr, item);
	return arr;
}

int api_parse_metadata(struct json_object *body, struct api_metadata_req *req,
		       struct api_problem *p)
{
	struct json_object *ids, *m;

	if (!begin(body, req, sizeof(*req), p))
		return -1;
	if (!json_object_object_get_ex(body, "connection_id", &ids) || ids == NULL) {
		invalid(p, "connection_id", NULL, "is required");
	} else if (json_object_is_type(ids, json_type_string)) {
		req->ids[0] = json_object_get_string(ids);
		req->n_ids = 1;
		if (!api_valid_connection_id(req->ids[0]) ||
		    strlen(req->ids[0]) != (size_t)json_object_get_string_len(ids))
			invalid(p, "connection_id", NULL, "must be 1 to 255 bytes of printable UTF-8");
	} else if (json_object_is_type(ids, json_type_array)) {
		size_t n = json_object_array_length(ids);

		if (n == 0 || n > API_METADATA_IDS_MAX) {
			invalid(p, "connection_id", NULL, "must hold 1 to 100 connection ids");
		} else {
			for (size_t i = 0; i < n; i++) {
				struct json_object *e = json_object_array_get_idx(ids, i);

				if (!json_object_is_type(e, json_type_string) ||
				    !api_valid_connection_id(json_object_get_string(e)) ||
				    strlen(json_object_get_string(e)) !=
					    (size_t)json_object_get_string_len(e)) {
					invalid(p, "connection_id", NULL,
						"each id must be 1 to 255 bytes of printable UTF-8");
					break;
				}
				req->ids[req->n_ids++] = json_object_get_string(e);
			}
		}
	} else {
		invalid(p, "connection_id", NULL, "must be a string or an array of strings");
	}
	req->provider_config_key = want_string(p, body, NULL, "provider_config_key", true, 1,
					       NAME_MAX_BYTES);
	if (!json_object_object_get_ex(body, "metadata", &m) || m == NULL)
		invalid(p, "metadata", NULL, "is required");
	else if (!json_object_is_type(m, json_type_object))
		invalid(p, "metadata", NULL, "must be an object");
	else
		req->metadata = m;
	return p->code ? -1 : 0;
}

int api_parse_action(struct json_object *body, struct api_action_req *req, struct api_problem *p)
{
	if (!begin(body, req, sizeof(*req), p))
		return -1;
	req->action_name = want_string(p, body, NULL, "action_name", true, 1, NAME_MAX_BYTES);
	if (req->action_name && !util_valid_name(req->action_name)) {
		invalid(p, "action_name", NULL, "must match ^[a-zA-Z0-9_-]+$");
		req->action_name = NULL;
	}
	if (!json_object_object_get_ex(body, "input", &req->input))
		req->input = NULL;
	return p->code ? -1 : 0;
}

/* The reason codes of the loader's refusals, by code number (the loader's
 * codes are one run of numbers, status.h). LOADER_ENAME's depends on the
 * name: see api_loader_reason_code(). */
static const char *const loader_reasons[] = {
	[-LOADER_ENOSIG] = "no_signature",
	[-LOADER_EMALFORMED] = "malformed_signature",
	[-LOADER_ELEGACY] = "legacy_signature",
	[-LOADER_EUNKNOWNKEY] = "unknown_key",
	[-LOADER_EREVOKED] = "revoked_key",
	[-LOADER_EBADSIG] = "bad_signature",
	[-LOADER_EBADGLOBALSIG] = "bad_global_signature",
	[-LOADER_ECOMMENT] = "bad_trusted_comment",
	[-LOADER_ENAME] = "name_mismatch",
	[-LOADER_EVERSION] = "version_mismatch",
	[-LOADER_EABI] = "abi_mismatch",
	[-LOADER_EDOWNGRADE] = "downgrade",
	[-LOADER_ENOTELF] = "not_elf",
	[-LOADER_ENOENTRY] = "no_entry_point",
	[-LOADER_ETOOBIG] = "too_large",
	[-LOADER_EIO] = "io_error",
	[-LOADER_EDLOPEN] = "dlopen_failed",
	[-LOADER_ENOMEM] = "out_of_memory",
	[-LOADER_ETOOMANY] = "too_many",
	[-LOADER_ESUBSCRIPTION] = "bad_subscription",
};

const char *api_loader_reason_code(int code, const char *name)
{
	if (code == LOADER_ENAME && !(name && util_valid_name(name)))
		return "invalid_name";
	if (code < 0 && code > -(int)(sizeof(loader_reasons) / sizeof(loader_reasons[0])) && loader_reasons[-code])
		return loader_reasons[-code];
	return "unknown";
}

/* ------------------------------------------- PATCH /connections/{id} */

bool api_valid_tag_key(const char *k)
{
	size_t n = k ? strlen(k) : 0;

	if (n == 0 || n > API_TAG_KEY_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = k[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

/* Checks a tags object and builds its stored form (keys in lower case). */
static struct json_object *parse_tags(struct api_problem *p, struct json_object *t)
{
	struct json_object *out;
	size_t n = 0;

	if (!json_object_is_type(t, json_type_object)) {
		invalid(p, "tags", NULL, "must be an object of strings");
		return NULL;
	}
	out = json_object_new_object();
	if (!out) {
		problem(p, 500, "server_error", "out of memory");
		return NULL;
	}
	json_object_object_foreach(t, key, val) {
		char lower[API_TAG_KEY_MAX + 1];
		size_t len;

		if (++n > API_TAGS_MAX) {
			invalid(p, "tags", NULL, "at most 64 tags");
			break;
		}
		if (!api_valid_tag_key(key)) {
			invalid(p, "tags", key, "a key is 1 to 64 letters, digits, '_', '-' or '.'");
			break;
		}
		if (!json_object_is_type(val, json_type_string) ||
		    (len = strlen(json_object_get_string(val))) == 0 || len > API_TAG_VALUE_MAX ||
		    len != (size_t)json_object_get_string_len(val)) {
			invalid(p, "tags", key, "must be a string of 1 to 255 bytes");
			break;
		}
		for (size_t i = 0; key[i]; i++)
			lower[i] = (char)((key[i] >= 'A' && key[i] <= 'Z') ? key[i] + 32 : key[i]);
		lower[strlen(key)] = '\0';
		json_object_object_add(out, lower, json_object_get(val));
	}
	if (p->code) {
		json_object_put(out);
		return NULL;
	}
	return out;
}

int api_parse_connection_patch(struct json_object *body, struct api_connection_patch *req,
			       struct api_problem *p)
{
	static const char *const allowed[] = {"end_user", "tags", "webhook_url_override", NULL};
	struct json_object *t, *w;

	if (!begin(body, req, sizeof(*req), p))
		return -1;
	if (!only_members(p, body, "body", allowed))
		return -1;
	if (json_object_object_get_ex(body, "tags", &t) && t)
		req->tags = parse_tags(p, t);
	if (json_object_object_get_ex(body, "webhook_url_override", &w)) {
		req->set_override = true;
		req->webhook_url_override = want_string(p, body, NULL, "webhook_url_override", false, 1,
							API_URL_MAX);
		if (req->webhook_url_override && strncmp(req->webhook_url_override, "http://", 7) != 0 &&
		    strncmp(req->webhook_url_override, "https://", 8) != 0)
			invalid(p, "webhook_url_override", NULL, "must be an http:// or https:// URL");
	}
	if (p->code) {
		json_object_put(req->tags);
		req->tags = NULL;
		return -1;
	}
	return 0;
}
