/*
 * host.c - the host file (evscriptd --config FILE): its top-level keys are a
 * public contract (docs/config.md), each one row of host_keys[] below.
 * Unknown keys are errors, so that a typo is never silently a default.
 */
#include "parse_util.h"
#include "util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stddef.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEADLINE_MAX 86400u


/*
 * The keys. host_keys[] below has one row per top-level key, as nginx's
 * ngx_command_t has one per directive: the key's name; the function that
 * reads its value (a generic one that stores into struct config_host at
 * offset, within [min, max] for numbers, or the key's own); its default, as
 * the YAML text one would write, read by that same function before the file
 * is; and the "type" and "default" cells of docs/config.md's key table, which
 * a unit test holds equal to the docs. Parsing, defaults, `key:` with no
 * value and "did you mean" all come from this one table: a new key is one
 * new row (and one line of docs/config.md).
 */
struct host_key;

/* Reads v, the non-null value of key k, into h; k is NULL when v is the
 * key's default. 0, or a CONFIG_E* code with the message written. */
typedef int (*host_key_fn)(struct pctx *c, const struct host_key *key, const struct ynode *k,
			   const struct ynode *v, struct config_host *h);

struct host_key {
	const char *name;
	host_key_fn set;
	size_t offset;           /* the field, for the generic readers */
	uint64_t min, max;       /* bounds, for numbers */
	const char *doc_type;    /* docs/config.md's "type" cell ('|' unescaped) */
	const char *def;         /* the default, as YAML text; NULL: none */
	const char *doc_default; /* docs/config.md's "default" cell */
};

static void *slot(struct config_host *h, const struct host_key *key)
{
	return (char *)h + key->offset;
}

/* ---- the generic readers: a field of struct config_host at key->offset ---- */

static int set_string(struct pctx *c, const struct host_key *key, const struct ynode *k,
		      const struct ynode *v, struct config_host *h)
{
	char **field = slot(h, key);

	(void)k;
	free(*field);
	return p_string(c, v, key->name, field);
}

static int set_bool(struct pctx *c, const struct host_key *key, const struct ynode *k,
		    const struct ynode *v, struct config_host *h)
{
	(void)k;
	return p_bool(c, v, key->name, slot(h, key));
}

static int set_u32(struct pctx *c, const struct host_key *key, const struct ynode *k,
		   const struct ynode *v, struct config_host *h)
{
	uint64_t u;
	int ret = p_uint(c, v, key->name, key->min, key->max, &u);

	(void)k;
	*(uint32_t *)slot(h, key) = (uint32_t)u;
	return ret;
}

static int set_u64(struct pctx *c, const struct host_key *key, const struct ynode *k,
		   const struct ynode *v, struct config_host *h)
{
	(void)k;
	return p_uint(c, v, key->name, key->min, key->max, slot(h, key));
}

/* ---- the keys with readers of their own ---- */

/* "host:port", "[v6]:port". */
static int set_listen(struct pctx *c, const struct host_key *key, const struct ynode *k,
		      const struct ynode *v, struct config_host *h)
{
	const char *s, *colon, *host;
	size_t hostlen;
	char hostbuf[256];
	uint64_t port = 0;
	unsigned char addr[16];

	(void)key;
	(void)k;
	if (v->type != YNODE_SCALAR)
		return PFAIL(c, v, CONFIG_EINVALID, "listen: expected HOST:PORT, found %s", ynode_kind(v));
	s = v->str;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			goto bad;
		host = s + 1;
		hostlen = (size_t)(close - host);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			goto bad;
		host = s;
		hostlen = (size_t)(colon - s);
	}
	if (hostlen == 0 || hostlen >= sizeof(hostbuf))
		goto bad;
	memcpy(hostbuf, host, hostlen);
	hostbuf[hostlen] = '\0';
	if (s[0] == '[') {
		if (inet_pton(AF_INET6, hostbuf, addr) != 1)
			goto bad;
	} else if (inet_pton(AF_INET, hostbuf, addr) != 1 && strcmp(hostbuf, "localhost") != 0) {
		/* the HTTP server binds numeric addresses (and localhost) only:
		 * say so here rather than fail at start-up */
		goto bad;
	}
	if (colon[1] == '\0' || strlen(colon + 1) > 5)
		goto bad;
	for (const char *p = colon + 1; *p; p++) {
		if (*p < '0' || *p > '9')
			goto bad;
		port = port * 10 + (uint64_t)(*p - '0');
	}
	if (port > 65535)
		goto bad;
	free(h->listen);
	free(h->listen_host);
	h->listen = strdup(s);
	h->listen_host = strdup(hostbuf);
	h->listen_port = (uint16_t)port;
	if (!h->listen || !h->listen_host)
		return PFAIL(c, v, CONFIG_ENOMEM, "out of memory");
	return 0;
bad:
	return PFAIL(c, v, CONFIG_EINVALID,
		     "listen: bad address '%s', expected IPV4:PORT, [IPV6]:PORT or localhost:PORT, "
		     "such as 127.0.0.1:3003 or [::1]:3003", s);
}

#define STORE_FORMS "sqlite:PATH or postgresql://USER@HOST[:PORT]/DB"

/* sqlite:PATH (resolved against the config's directory by config_load), or
 * a postgresql:// / postgres:// URL handed to the store as it is. The value
 * is never echoed: a URL may hold a password. */
static int set_store(struct pctx *c, const struct host_key *key, const struct ynode *k,
		     const struct ynode *v, struct config_host *h)
{
	const char *colon;

	(void)key;
	(void)k;
	if (v->type != YNODE_SCALAR)
		return PFAIL(c, v, CONFIG_EINVALID, "store: expected " STORE_FORMS ", found %s", ynode_kind(v));
	secret_free(h->store); /* a URL may hold a password */
	h->store = NULL;
	if (strncmp(v->str, "postgresql://", 13) == 0 || strncmp(v->str, "postgres://", 11) == 0) {
		h->store_kind = CONFIG_STORE_URL;
	} else if (strncmp(v->str, "sqlite:", 7) == 0) {
		if (v->str[7] == '\0')
			return PFAIL(c, v, CONFIG_EINVALID, "store: empty path, expected sqlite:PATH");
		h->store_kind = CONFIG_STORE_SQLITE;
	} else {
		colon = strchr(v->str, ':');
		return PFAIL(c, v, CONFIG_EINVALID, "store: unsupported store '%.*s', expected " STORE_FORMS,
			     colon ? (int)(colon - v->str) : (int)strlen(v->str), v->str);
	}
	h->store = strdup(v->str);
	if (!h->store)
		return PFAIL(c, v, CONFIG_ENOMEM, "out of memory");
	return 0;
}

/* A name for this host among those sharing a store: printable, no spaces. */
static int set_host_id(struct pctx *c, const struct host_key *key, const struct ynode *k,
		       const struct ynode *v, struct config_host *h)
{
	int ret = set_string(c, key, k, v, h);

	if (ret)
		return ret;
	if (!h->host_id[0] || strlen(h->host_id) > 255)
		return PFAIL(c, v, CONFIG_EINVALID, "host_id: expected 1 to 255 characters");
	for (const char *p = h->host_id; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return PFAIL(c, v, CONFIG_EINVALID,
				     "host_id: '%s' has a space or a control character", h->host_id);
	return 0;
}

/* A string that is wiped before it is replaced. */
static int set_secret_key(struct pctx *c, const struct host_key *key, const struct ynode *k,
			  const struct ynode *v, struct config_host *h)
{
	(void)k;
	secret_free(h->secret_key);
	return p_string(c, v, key->name, &h->secret_key);
}

static int set_revoked_keys(struct pctx *c, const struct host_key *key, const struct ynode *k,
			    const struct ynode *v, struct config_host *h)
{
	char id[17];
	int ret;

	(void)key;
	(void)k;
	if (v->type != YNODE_SEQ)
		return PFAIL(c, v, CONFIG_EINVALID, "revoked_keys: expected a list of key ids, found %s", ynode_kind(v));
	for (size_t i = 0; i < v->n; i++) {
		const struct ynode *it = v->items[i];

		if (it->type != YNODE_SCALAR || it->len != 16)
			goto bad;
		for (size_t j = 0; j < 16; j++) {
			if (!isxdigit((unsigned char)it->str[j]))
				goto bad;
			id[j] = (char)toupper((unsigned char)it->str[j]);
		}
		id[16] = '\0';
		ret = strlist_push(&h->revoked_keys, id);
		if (ret)
			return PFAIL(c, it, ret, "revoked_keys: %s", status_str(ret));
		continue;
bad:
		if (it->type == YNODE_SCALAR)
			return PFAIL(c, it, CONFIG_EINVALID,
				     "revoked_keys: bad key id '%s', expected 16 hexadecimal digits as minisign prints them",
				     it->str);
		return PFAIL(c, it, CONFIG_EINVALID, "revoked_keys: expected a key id, found %s", ynode_kind(it));
	}
	return 0;
}

static bool valid_env_name(const char *s)
{
	if (!s || !(isalpha((unsigned char)*s) || *s == '_'))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return false;
	return true;
}

static int set_environment(struct pctx *c, const struct host_key *key, const struct ynode *k,
			   const struct ynode *v, struct config_host *h)
{
	int ret;

	(void)k;
	map_clear(&h->environment);
	ret = p_strmap(c, v, key->name, &h->environment);
	if (ret)
		return ret;
	for (size_t i = 0; i < v->n && v->type == YNODE_MAP; i++)
		if (!valid_env_name(v->keys[i]->str))
			return PFAIL(c, v->keys[i], CONFIG_EINVALID,
				     "environment: bad variable name '%s', expected [A-Za-z_][A-Za-z0-9_]*",
				     v->keys[i]->str);
	return 0;
}

static int set_webhook_base_url(struct pctx *c, const struct host_key *key, const struct ynode *k,
				const struct ynode *v, struct config_host *h)
{
	size_t len;

	(void)key;
	(void)k;
	if (v->type != YNODE_SCALAR)
		return PFAIL(c, v, CONFIG_EINVALID, "webhook_base_url: expected a URL, found %s", ynode_kind(v));
	if (strncmp(v->str, "http://", 7) != 0 && strncmp(v->str, "https://", 8) != 0)
		return PFAIL(c, v, CONFIG_EINVALID,
			     "webhook_base_url: bad URL '%s', expected one starting with http:// or https://", v->str);
	free(h->webhook_base_url);
	h->webhook_base_url = strdup(v->str);
	if (!h->webhook_base_url)
		return PFAIL(c, v, CONFIG_ENOMEM, "out of memory");
	len = strlen(h->webhook_base_url);
	while (len > 0 && h->webhook_base_url[len - 1] == '/')
		h->webhook_base_url[--len] = '\0';
	h->webhook_base_url_is_default = false;
	return 0;
}

static int set_integrations(struct pctx *c, const struct host_key *key, const struct ynode *k,
			    const struct ynode *v, struct config_host *h)
{
	(void)key;
	(void)k;
	return nango_parse_integrations(c, v, &h->nango);
}

/* Accepted for an inline nango.yaml, and noted as ignored (at the key). */
static int set_models(struct pctx *c, const struct host_key *key, const struct ynode *k,
		      const struct ynode *v, struct config_host *h)
{
	(void)v;
	return nango_note_ignored(c, k, &h->nango, key->name, "models describe syncs and actions' data");
}

static int set_execution(struct pctx *c, const struct host_key *key, const struct ynode *k,
			 const struct ynode *v, struct config_host *h)
{
	(void)k;
	return p_execution(c, v, key->name, &h->execution);
}

static int set_log_format(struct pctx *c, const struct host_key *key, const struct ynode *k,
			  const struct ynode *v, struct config_host *h)
{
	(void)key;
	(void)k;
	if (v->type == YNODE_SCALAR && strcmp(v->str, "text") == 0)
		h->log_format = CONFIG_LOG_TEXT;
	else if (v->type == YNODE_SCALAR && strcmp(v->str, "json") == 0)
		h->log_format = CONFIG_LOG_JSON;
	else
		return p_expected(c, v, "log_format", "text or json");
	return 0;
}

/* The user's name, and where it was written: config_load resolves it and
 * points there when it cannot (line 0: the default). */
static int set_sandbox_user(struct pctx *c, const struct host_key *key, const struct ynode *k,
			    const struct ynode *v, struct config_host *h)
{
	(void)k;
	free(h->sandbox_user);
	h->sandbox_user = NULL;
	h->sandbox_user_line = v->line;
	h->sandbox_user_column = v->column;
	return p_string(c, v, key->name, &h->sandbox_user);
}

static int script_key(struct pctx *c, const struct ynode *key, const struct ynode *v, const char *what,
		      void *user)
{
	struct config_script *sc = user;
	uint64_t u;
	int ret;

	if (strcmp(key->str, "deadline_s") == 0) {
		ret = p_uint(c, v, what, 1, DEADLINE_MAX, &u);
		sc->deadline_s = (uint32_t)u;
		return ret;
	}
	if (strcmp(key->str, "execution") == 0)
		return p_execution(c, v, what, &sc->execution);
	return PFAIL(c, key, CONFIG_EINVALID, "scripts.%s: unknown key '%s', expected deadline_s or execution",
		     sc->name, key->str);
}

static int script_entry(struct pctx *c, const struct ynode *name, const struct ynode *s, void *item, void *user)
{
	struct config_script *sc = item;

	(void)user;
	if (!util_valid_name(name->str))
		return PFAIL(c, name, CONFIG_EINVALID,
			     "scripts: bad script name '%s', expected letters, digits, '_' and '-' only", name->str);
	return p_named_entry(c, "scripts", name, s, false, " with deadline_s and/or execution", &sc->name,
			     script_key, sc);
}

static int set_scripts(struct pctx *c, const struct host_key *key, const struct ynode *k,
		       const struct ynode *v, struct config_host *h)
{
	(void)k;
	return p_map_read(c, v, key->name, "script names to settings", CONFIG_LIST_MAX, sizeof(*h->scripts),
			  &h->scripts, &h->n_scripts, script_entry, NULL);
}

static int set_oauth_clients(struct pctx *c, const struct host_key *key, const struct ynode *k,
			     const struct ynode *v, struct config_host *h)
{
	(void)key;
	(void)k;
	return oauth_clients_parse(c, v, h);
}

static int set_webhook_forward_url(struct pctx *c, const struct host_key *key, const struct ynode *k,
				   const struct ynode *v, struct config_host *h)
{
	(void)key;
	(void)k;
	return config_set_webhook_forward_url(c, v, h);
}

static int set_webhook_secrets(struct pctx *c, const struct host_key *key, const struct ynode *k,
			       const struct ynode *v, struct config_host *h)
{
	(void)key;
	(void)k;
	return config_set_webhook_secrets(c, v, h);
}

/* ---- the table ---- */

#define SLOT(field) offsetof(struct config_host, field)
#define STRING(field) set_string, SLOT(field), 0, 0
#define BOOL(field) set_bool, SLOT(field), 0, 0
#define U32(field, min, max) set_u32, SLOT(field), min, max
#define U64(field, min, max) set_u64, SLOT(field), min, max
#define OWN(fn) fn, 0, 0, 0
/* A reader of its own over a field (it may call a generic one). */
#define OWN_SLOT(fn, field) fn, SLOT(field), 0, 0
/* A default: the YAML text the reader gets, and the docs' cell for it. */
#define DEFAULT(yaml) yaml, "`" yaml "`"
/* No default value: the docs' cell says what stands instead. */
#define NO_DEFAULT(doc) NULL, doc

/* In docs/config.md's order. */
static const struct host_key host_keys[] = {
	/* name              reader                             docs/config.md: type, default */
	{"listen",           OWN(set_listen),                   "`HOST:PORT`", DEFAULT("127.0.0.1:3003")},
	{"secret_key",       OWN(set_secret_key),               "string", NO_DEFAULT("none: **required**")},
	{"store",            OWN(set_store),                    "`sqlite:PATH` | `postgresql://...`", DEFAULT("sqlite:./evscript.db")},
	{"plugin_dir",       STRING(plugin_dir),                "path", DEFAULT("./plugins.d")},
	{"trusted_keys_dir", STRING(trusted_keys_dir),          "path", DEFAULT("./keys")},
	{"revoked_keys",     OWN(set_revoked_keys),             "list of key ids", NO_DEFAULT("`[]`")},
	{"allow_downgrade",  BOOL(allow_downgrade),             "bool", DEFAULT("false")},
	{"dev_accept_rebuilds", BOOL(dev_accept_rebuilds),      "bool", DEFAULT("false")},
	{"providers",        STRING(providers),                 "path", DEFAULT("./providers.yaml")},
	{"deadline_s",       U32(deadline_s, 1, DEADLINE_MAX),  "1..86400", DEFAULT("300")},
	{"environment",      OWN(set_environment),              "map of name to string", NO_DEFAULT("`{}`")},
	{"webhook_base_url", OWN(set_webhook_base_url),         "`http://` or `https://` URL",
	 NO_DEFAULT("`http://<listen>/webhook`")},
	{"nango_yaml",       STRING(nango_yaml),                "path", NO_DEFAULT("none")},
	{"integrations",     OWN(set_integrations),             "mapping", NO_DEFAULT("none")},
	{"models",           OWN(set_models),                   "any", NO_DEFAULT("")},
	{"execution",        OWN(set_execution),                "`isolated` | `in-process`", DEFAULT("isolated")},
	{"max_concurrency",  U32(max_concurrency, 1, 4096),     "1..4096", DEFAULT("8")},
	{"log_lines_max",    U32(log_lines_max, 1, 1000000),    "1..1000000", DEFAULT("1000")},
	{"log_bytes_max",    U64(log_bytes_max, 1024, 1u << 30), "1024..1073741824", DEFAULT("1048576")},
	{"memory_limit_mb",  U64(memory_limit_mb, 0, 1u << 20), "0..1048576", DEFAULT("512")},
	{"cpu_limit_s",      U32(cpu_limit_s, 0, DEADLINE_MAX), "0..86400", DEFAULT("0")},
	{"max_processes",    U32(max_processes, 1, 4096),       "1..4096", DEFAULT("16")},
	{"sandbox_user",     OWN(set_sandbox_user),             "user name", DEFAULT("nobody")},
	{"core_dumps",       BOOL(core_dumps),                  "bool", DEFAULT("false")},
	{"drain_deadline_s", U32(drain_deadline_s, 0, DEADLINE_MAX), "0..86400", DEFAULT("30")},
	{"host_id",          OWN_SLOT(set_host_id, host_id),    "string", NO_DEFAULT("the machine's host name")},
	{"host_timeout_s",   U32(host_timeout_s, 2, DEADLINE_MAX), "2..86400", DEFAULT("30")},
	{"log_format",       OWN(set_log_format),               "`text` | `json`", DEFAULT("text")},
	{"log_plugin_lines", BOOL(log_plugin_lines),            "bool", DEFAULT("false")},
	{"http_max_connections", U32(http_max_connections, 16, 4096), "16..4096", DEFAULT("1024")},
	{"http_max_connections_per_address", U32(http_max_connections_per_address, 0, 4096), "0..4096",
	 DEFAULT("256")},
	{"http_header_timeout_s", U32(http_header_timeout_s, 1, 3600), "1..3600", DEFAULT("10")},
	{"http_body_timeout_s", U32(http_body_timeout_s, 1, 3600), "1..3600", DEFAULT("60")},
	{"action_tree_max_executions", U32(action_tree_max_executions, 1, 100000), "1..100000",
	 DEFAULT("100")},
	{"scripts",          OWN(set_scripts),                  "map of script name to settings", NO_DEFAULT("`{}`")},
	{"oauth_clients",    OWN(set_oauth_clients),            "map of integration id to OAuth client", NO_DEFAULT("`{}`")},
	{"proxy_base_url_override", BOOL(proxy_base_url_override), "bool", DEFAULT("true")},
	{"webhook_forward_url", OWN(set_webhook_forward_url),   "`http://` or `https://` URL", NO_DEFAULT("none")},
	{"webhook_max_attempts", U32(webhook_max_attempts, 1, 100), "1..100", DEFAULT("8")},
	{"webhook_retry_base_ms", U32(webhook_retry_base_ms, 10, 3600000), "10..3600000", DEFAULT("1000")},
	{"webhook_secrets",  OWN(set_webhook_secrets),          "map of integration id to settings", NO_DEFAULT("`{}`")},
};

#define N_KEYS (sizeof(host_keys) / sizeof(host_keys[0]))

size_t config_host_key_count(void)
{
	return N_KEYS;
}

struct config_host_key_doc config_host_key_doc(size_t i)
{
	struct config_host_key_doc doc = {NULL, NULL, NULL};

	if (i < N_KEYS) {
		doc.name = host_keys[i].name;
		doc.type = host_keys[i].doc_type;
		doc.default_value = host_keys[i].doc_default;
	}
	return doc;
}

static const struct host_key *host_key_find(const char *name)
{
	return UTIL_FIND_NAME(host_keys, N_KEYS, struct host_key, name, name);
}

/* Levenshtein distance, capped: for "did you mean". */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), prev[40], cur[40];

	if (la >= 39 || lb >= 39)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t del = prev[j] + 1, ins = cur[j - 1] + 1, sub = prev[j - 1] + (a[i - 1] != b[j - 1]);

			cur[j] = del < ins ? del : ins;
			if (sub < cur[j])
				cur[j] = sub;
		}
		memcpy(prev, cur, sizeof(cur));
	}
	return prev[lb];
}

static int unknown_key(struct pctx *c, const struct ynode *k)
{
	const char *best = NULL;
	size_t bestd = 3;

	for (size_t i = 0; i < N_KEYS; i++) {
		size_t d = distance(k->str, host_keys[i].name);

		if (d < bestd) {
			bestd = d;
			best = host_keys[i].name;
		}
	}
	if (best)
		return PFAIL(c, k, CONFIG_EINVALID, "unknown key '%s', did you mean '%s'? (keys: docs/config.md)",
			     k->str, best);
	return PFAIL(c, k, CONFIG_EINVALID, "unknown key '%s', expected a host setting (keys: docs/config.md)",
		     k->str);
}

/* Every key's default, read by the key's own reader: a default is what
 * writing it in the file gives. */
static int host_defaults(struct pctx *c, struct config_host *h)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < N_KEYS; i++) {
		const struct host_key *key = &host_keys[i];
		struct ynode text = {.type = YNODE_SCALAR, .plain = true};

		if (!key->def)
			continue;
		text.str = (char *)key->def; /* read, never written */
		text.len = strlen(key->def);
		ret = key->set(c, key, NULL, &text, h);
	}
	h->webhook_base_url_is_default = true;
	return ret;
}

/* 127.0.0.0/8, ::1 or localhost: only this machine can reach it. */
static bool listen_is_loopback(const char *host)
{
	return strcmp(host, "localhost") == 0 || strcmp(host, "::1") == 0 || strncmp(host, "127.", 4) == 0;
}

/* One top-level key. */
static int host_key(struct pctx *c, const struct ynode *k, const struct ynode *v, struct config_host *h)
{
	const struct host_key *key = host_key_find(k->str);

	if (!key)
		return unknown_key(c, k);
	if (ynode_is_null(v))
		return 0; /* `key:` with nothing after it keeps the default. */
	return key->set(c, key, k, v, h);
}

int config_parse_host(const char *bytes, size_t len, const char *filename,
		      struct config_host **out, char *err, size_t errlen)
{
	struct pctx c = {filename, err, errlen};
	struct config_host *h;
	struct ytree t;
	const struct ynode *root, *nango_key = NULL, *integrations_key = NULL, *rebuilds_key = NULL;
	int ret;

	*out = NULL;
	ret = ytree_parse(bytes, len, filename, &t, err, errlen);
	if (ret)
		return ret;
	h = calloc(1, sizeof(*h));
	if (!h) {
		ret = PFAIL(&c, NULL, CONFIG_ENOMEM, "out of memory");
		goto out_tree;
	}
	h->file = strdup(filename ? filename : "<config>");
	h->nango.file = strdup(filename ? filename : "<config>");
	ret = host_defaults(&c, h);
	if (ret || !h->file || !h->nango.file) {
		ret = PFAIL(&c, NULL, CONFIG_ENOMEM, "out of memory");
		goto out_host;
	}
	root = t.root;
	if (!ynode_is_null(root) && root->type != YNODE_MAP) {
		ret = PFAIL(&c, root, CONFIG_EINVALID, "expected a mapping of settings, found %s", ynode_kind(root));
		goto out_host;
	}
	for (size_t i = 0; !ynode_is_null(root) && i < root->n; i++) {
		const struct ynode *k = root->keys[i];

		if (strcmp(k->str, "nango_yaml") == 0)
			nango_key = k;
		if (strcmp(k->str, "integrations") == 0)
			integrations_key = k;
		if (strcmp(k->str, "dev_accept_rebuilds") == 0)
			rebuilds_key = k;
		if (nango_key && integrations_key) {
			ret = PFAIL(&c, k, CONFIG_EINVALID,
				    "both nango_yaml and an inline integrations key, expected only one");
			goto out_host;
		}
		ret = host_key(&c, k, root->items[i], h);
		if (ret)
			goto out_host;
	}
	if (h->dev_accept_rebuilds && !listen_is_loopback(h->listen_host)) {
		ret = PFAIL(&c, rebuilds_key, CONFIG_EINVALID,
			    "dev_accept_rebuilds: true needs a loopback listen address (127.0.0.1, ::1 or "
			    "localhost), found '%s': it is a development setting", h->listen);
		goto out_host;
	}
	if (h->webhook_base_url_is_default) {
		size_t n = strlen(h->listen) + sizeof("http:///webhook");

		h->webhook_base_url = malloc(n);
		if (!h->webhook_base_url) {
			ret = PFAIL(&c, NULL, CONFIG_ENOMEM, "out of memory");
			goto out_host;
		}
		snprintf(h->webhook_base_url, n, "http://%s/webhook", h->listen);
	}
	if (h->store_kind == CONFIG_STORE_SQLITE)
		h->store_path = strdup(h->store + 7);
	if (h->store_kind == CONFIG_STORE_SQLITE && !h->store_path) {
		ret = PFAIL(&c, NULL, CONFIG_ENOMEM, "out of memory");
		goto out_host;
	}
	*out = h;
	h = NULL;
out_host:
	config_host_free(h);
out_tree:
	ytree_free(&t);
	return ret;
}

void config_host_free(struct config_host *h)
{
	if (!h)
		return;
	secret_free(h->secret_key);
	secret_free(h->store);
	strlist_clear(&h->revoked_keys);
	map_clear(&h->environment);
	for (size_t i = 0; i < h->n_scripts; i++)
		free(h->scripts[i].name);
	oauth_clients_free(h);
	config_webhook_secrets_clear(h);
	config_nango_clear(&h->nango);
	config_providers_free(h->catalogue);
	util_free_all(h->file, h->dir, h->listen, h->listen_host, h->store_path, h->host_id, h->plugin_dir,
		      h->trusted_keys_dir, h->providers, h->sandbox_user, h->webhook_base_url, h->nango_yaml,
		      h->scripts, h->webhook_forward_url, h);
}

const struct config_integration *config_integration_find(const struct config_host *h, const char *id)
{
	return h ? UTIL_FIND_NAME(h->nango.integrations, h->nango.n_integrations,
				  struct config_integration, id, id)
		 : NULL;
}

const struct config_script *config_script_find(const struct config_host *h, const char *name)
{
	return h ? UTIL_FIND_NAME(h->scripts, h->n_scripts, struct config_script, name, name) : NULL;
}

uint32_t config_script_deadline(const struct config_host *h, const char *script)
{
	const struct config_script *s = config_script_find(h, script);

	if (s && s->deadline_s)
		return s->deadline_s;
	return h ? h->deadline_s : 300;
}

enum config_execution config_script_execution(const struct config_host *h,
					      const struct config_integration *integration,
					      const char *script)
{
	const struct config_script *s = config_script_find(h, script);

	if (s && s->execution != CONFIG_EXEC_INHERIT)
		return s->execution;
	if (integration && integration->execution != CONFIG_EXEC_INHERIT)
		return integration->execution;
	return h && h->execution != CONFIG_EXEC_INHERIT ? h->execution : CONFIG_EXEC_ISOLATED;
}
