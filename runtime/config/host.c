/*
 * host.c - the host file (evscriptd --config FILE): its top-level keys are a
 * public contract (docs/config.md). Unknown keys are errors, so that a typo
 * is never silently a default.
 */
#include "parse_util.h"
#include "util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_LISTEN "127.0.0.1:3003"
#define DEFAULT_STORE "sqlite:./evscript.db"
#define DEADLINE_MAX 86400u

const char *config_strerror(int err)
{
	switch (err) {
	case CONFIG_OK:
		return "success";
	case CONFIG_ESYNTAX:
		return "YAML syntax error";
	case CONFIG_EINVALID:
		return "invalid configuration";
	case CONFIG_ENOMEM:
		return "out of memory";
	case CONFIG_EIO:
		return "cannot read a configuration file";
	case CONFIG_ETOOLARGE:
		return "too large";
	case CONFIG_EUNDEFINED:
		return "template variable has no value";
	case CONFIG_ETEMPLATE:
		return "malformed template";
	}
	return "unknown error";
}

/* "host:port", "[v6]:port". */
static int parse_listen(struct pctx *c, const struct ynode *n, struct config_host *h)
{
	const char *s = n->str, *colon, *host;
	size_t hostlen;
	char hostbuf[256];
	uint64_t port = 0;
	unsigned char addr[16];

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
		return PFAIL(c, n, CONFIG_ENOMEM, "out of memory");
	return 0;
bad:
	return PFAIL(c, n, CONFIG_EINVALID,
		     "listen: bad address '%s', expected IPV4:PORT, [IPV6]:PORT or localhost:PORT, "
		     "such as 127.0.0.1:3003 or [::1]:3003", s);
}

static int parse_store(struct pctx *c, const struct ynode *n, struct config_host *h)
{
	free(h->store);
	h->store = NULL;
	if (strncmp(n->str, "sqlite:", 7) != 0)
		return PFAIL(c, n, CONFIG_EINVALID, "store: unsupported store '%s', expected sqlite:PATH", n->str);
	if (n->str[7] == '\0')
		return PFAIL(c, n, CONFIG_EINVALID, "store: empty path, expected sqlite:PATH");
	h->store = strdup(n->str);
	if (!h->store)
		return PFAIL(c, n, CONFIG_ENOMEM, "out of memory");
	h->store_kind = CONFIG_STORE_SQLITE;
	return 0;
}

static int parse_revoked(struct pctx *c, const struct ynode *n, struct config_host *h)
{
	char id[17];
	int ret;

	if (ynode_is_null(n))
		return 0;
	if (n->type != YNODE_SEQ)
		return PFAIL(c, n, CONFIG_EINVALID, "revoked_keys: expected a list of key ids, found %s", ynode_kind(n));
	for (size_t i = 0; i < n->n; i++) {
		const struct ynode *it = n->items[i];

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
			return PFAIL(c, it, ret, "revoked_keys: %s", config_strerror(ret));
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

static int parse_environment(struct pctx *c, const struct ynode *n, struct config_host *h)
{
	int ret;

	map_clear(&h->environment);
	ret = p_strmap(c, n, "environment", &h->environment);
	if (ret)
		return ret;
	for (size_t i = 0; i < n->n && n->type == YNODE_MAP; i++)
		if (!valid_env_name(n->keys[i]->str))
			return PFAIL(c, n->keys[i], CONFIG_EINVALID,
				     "environment: bad variable name '%s', expected [A-Za-z_][A-Za-z0-9_]*",
				     n->keys[i]->str);
	return 0;
}

static int parse_scripts(struct pctx *c, const struct ynode *n, struct config_host *h)
{
	char what[256];
	uint64_t v;
	int ret;

	if (ynode_is_null(n))
		return 0;
	if (n->type != YNODE_MAP)
		return PFAIL(c, n, CONFIG_EINVALID, "scripts: expected a mapping of script names to settings, found %s",
			     ynode_kind(n));
	if (n->n > CONFIG_LIST_MAX)
		return PFAIL(c, n, CONFIG_ETOOLARGE, "scripts: more than %u entries", CONFIG_LIST_MAX);
	h->scripts = calloc(n->n ? n->n : 1, sizeof(*h->scripts));
	if (!h->scripts)
		return PFAIL(c, n, CONFIG_ENOMEM, "out of memory");
	for (size_t i = 0; i < n->n; i++) {
		const struct ynode *k = n->keys[i], *s = n->items[i];
		struct config_script *sc = &h->scripts[i];

		h->n_scripts = i + 1;
		if (!util_valid_name(k->str))
			return PFAIL(c, k, CONFIG_EINVALID,
				     "scripts: bad script name '%s', expected letters, digits, '_' and '-' only", k->str);
		sc->name = strdup(k->str);
		if (!sc->name)
			return PFAIL(c, k, CONFIG_ENOMEM, "out of memory");
		if (ynode_is_null(s))
			continue;
		if (s->type != YNODE_MAP)
			return PFAIL(c, s, CONFIG_EINVALID,
				     "scripts.%s: expected a mapping with deadline_s and/or execution, found %s",
				     k->str, ynode_kind(s));
		for (size_t j = 0; j < s->n; j++) {
			snprintf(what, sizeof(what), "scripts.%s.%s", k->str, s->keys[j]->str);
			if (strcmp(s->keys[j]->str, "deadline_s") == 0) {
				ret = p_uint(c, s->items[j], what, 1, DEADLINE_MAX, &v);
				sc->deadline_s = (uint32_t)v;
			} else if (strcmp(s->keys[j]->str, "execution") == 0) {
				ret = p_execution(c, s->items[j], what, &sc->execution);
			} else {
				ret = PFAIL(c, s->keys[j], CONFIG_EINVALID,
					    "scripts.%s: unknown key '%s', expected deadline_s or execution",
					    k->str, s->keys[j]->str);
			}
			if (ret)
				return ret;
		}
	}
	return 0;
}

static int parse_webhook_base(struct pctx *c, const struct ynode *n, struct config_host *h)
{
	size_t len;

	if (strncmp(n->str, "http://", 7) != 0 && strncmp(n->str, "https://", 8) != 0)
		return PFAIL(c, n, CONFIG_EINVALID,
			     "webhook_base_url: bad URL '%s', expected one starting with http:// or https://", n->str);
	free(h->webhook_base_url);
	h->webhook_base_url = strdup(n->str);
	if (!h->webhook_base_url)
		return PFAIL(c, n, CONFIG_ENOMEM, "out of memory");
	len = strlen(h->webhook_base_url);
	while (len > 0 && h->webhook_base_url[len - 1] == '/')
		h->webhook_base_url[--len] = '\0';
	h->webhook_base_url_is_default = false;
	return 0;
}

static const char *const host_keys[] = {
	"listen", "secret_key", "store", "plugin_dir", "trusted_keys_dir", "revoked_keys",
	"allow_downgrade", "providers", "deadline_s", "environment", "webhook_base_url",
	"nango_yaml", "integrations", "models", "execution", "max_concurrency", "log_lines_max",
	"log_bytes_max", "memory_limit_mb", "cpu_limit_s", "drain_deadline_s", "log_format", "scripts",
	"sandbox_user", "max_processes", "core_dumps",
};

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

	for (size_t i = 0; i < sizeof(host_keys) / sizeof(host_keys[0]); i++) {
		size_t d = distance(k->str, host_keys[i]);

		if (d < bestd) {
			bestd = d;
			best = host_keys[i];
		}
	}
	if (best)
		return PFAIL(c, k, CONFIG_EINVALID, "unknown key '%s', did you mean '%s'? (keys: docs/config.md)",
			     k->str, best);
	return PFAIL(c, k, CONFIG_EINVALID, "unknown key '%s', expected a host setting (keys: docs/config.md)",
		     k->str);
}

static int host_defaults(struct config_host *h)
{
	h->listen = strdup(DEFAULT_LISTEN);
	h->listen_host = strdup("127.0.0.1");
	h->listen_port = 3003;
	h->store = strdup(DEFAULT_STORE);
	h->store_kind = CONFIG_STORE_SQLITE;
	h->plugin_dir = strdup("./plugins.d");
	h->trusted_keys_dir = strdup("./keys");
	h->providers = strdup("./providers.yaml");
	h->deadline_s = 300;
	h->execution = CONFIG_EXEC_ISOLATED;
	h->max_concurrency = 8;
	h->log_lines_max = 1000;
	h->log_bytes_max = 1u << 20;
	h->memory_limit_mb = 512;
	h->cpu_limit_s = 0;
	h->drain_deadline_s = 30;
	h->sandbox_user = strdup("nobody");
	h->max_processes = 16;
	h->log_format = CONFIG_LOG_TEXT;
	h->webhook_base_url_is_default = true;
	if (!h->listen || !h->listen_host || !h->store || !h->plugin_dir || !h->trusted_keys_dir || !h->providers ||
	    !h->sandbox_user)
		return CONFIG_ENOMEM;
	return 0;
}

/* One top-level key. */
static int host_key(struct pctx *c, const struct ynode *k, const struct ynode *v, struct config_host *h)
{
	const char *key = k->str;
	uint64_t u;
	int ret;

	if (ynode_is_null(v)) {
		/* `key:` with nothing after it keeps the default. */
		for (size_t i = 0; i < sizeof(host_keys) / sizeof(host_keys[0]); i++)
			if (strcmp(key, host_keys[i]) == 0)
				return 0;
		return unknown_key(c, k);
	}
	if (strcmp(key, "listen") == 0) {
		if (v->type != YNODE_SCALAR)
			return PFAIL(c, v, CONFIG_EINVALID, "listen: expected HOST:PORT, found %s", ynode_kind(v));
		return parse_listen(c, v, h);
	}
	if (strcmp(key, "secret_key") == 0) {
		if (h->secret_key)
			sodium_memzero(h->secret_key, strlen(h->secret_key));
		free(h->secret_key);
		return p_string(c, v, key, &h->secret_key);
	}
	if (strcmp(key, "store") == 0) {
		if (v->type != YNODE_SCALAR)
			return PFAIL(c, v, CONFIG_EINVALID, "store: expected sqlite:PATH, found %s", ynode_kind(v));
		return parse_store(c, v, h);
	}
	if (strcmp(key, "plugin_dir") == 0) {
		free(h->plugin_dir);
		return p_string(c, v, key, &h->plugin_dir);
	}
	if (strcmp(key, "trusted_keys_dir") == 0) {
		free(h->trusted_keys_dir);
		return p_string(c, v, key, &h->trusted_keys_dir);
	}
	if (strcmp(key, "providers") == 0) {
		free(h->providers);
		return p_string(c, v, key, &h->providers);
	}
	if (strcmp(key, "nango_yaml") == 0)
		return p_string(c, v, key, &h->nango_yaml);
	if (strcmp(key, "revoked_keys") == 0)
		return parse_revoked(c, v, h);
	if (strcmp(key, "allow_downgrade") == 0)
		return p_bool(c, v, key, &h->allow_downgrade);
	if (strcmp(key, "deadline_s") == 0) {
		ret = p_uint(c, v, key, 1, DEADLINE_MAX, &u);
		h->deadline_s = (uint32_t)u;
		return ret;
	}
	if (strcmp(key, "environment") == 0)
		return parse_environment(c, v, h);
	if (strcmp(key, "webhook_base_url") == 0) {
		if (v->type != YNODE_SCALAR)
			return PFAIL(c, v, CONFIG_EINVALID, "webhook_base_url: expected a URL, found %s", ynode_kind(v));
		return parse_webhook_base(c, v, h);
	}
	if (strcmp(key, "integrations") == 0)
		return nango_parse_integrations(c, v, &h->nango);
	if (strcmp(key, "models") == 0)
		return nango_note_ignored(c, k, &h->nango, "models", "models describe syncs and actions' data");
	if (strcmp(key, "execution") == 0) {
		ret = p_execution(c, v, key, &h->execution);
		return ret;
	}
	if (strcmp(key, "max_concurrency") == 0) {
		ret = p_uint(c, v, key, 1, 4096, &u);
		h->max_concurrency = (uint32_t)u;
		return ret;
	}
	if (strcmp(key, "log_lines_max") == 0) {
		ret = p_uint(c, v, key, 1, 1000000, &u);
		h->log_lines_max = (uint32_t)u;
		return ret;
	}
	if (strcmp(key, "log_bytes_max") == 0)
		return p_uint(c, v, key, 1024, 1u << 30, &h->log_bytes_max);
	if (strcmp(key, "memory_limit_mb") == 0)
		return p_uint(c, v, key, 0, 1u << 20, &h->memory_limit_mb);
	if (strcmp(key, "cpu_limit_s") == 0) {
		ret = p_uint(c, v, key, 0, DEADLINE_MAX, &u);
		h->cpu_limit_s = (uint32_t)u;
		return ret;
	}
	if (strcmp(key, "drain_deadline_s") == 0) {
		ret = p_uint(c, v, key, 0, DEADLINE_MAX, &u);
		h->drain_deadline_s = (uint32_t)u;
		return ret;
	}
	if (strcmp(key, "log_format") == 0) {
		if (v->type == YNODE_SCALAR && strcmp(v->str, "text") == 0)
			h->log_format = CONFIG_LOG_TEXT;
		else if (v->type == YNODE_SCALAR && strcmp(v->str, "json") == 0)
			h->log_format = CONFIG_LOG_JSON;
		else
			return PFAIL(c, v, CONFIG_EINVALID, "log_format: expected text or json, found %s%s%s",
				     v->type == YNODE_SCALAR ? "'" : "",
				     v->type == YNODE_SCALAR ? v->str : ynode_kind(v),
				     v->type == YNODE_SCALAR ? "'" : "");
		return 0;
	}
	if (strcmp(key, "scripts") == 0)
		return parse_scripts(c, v, h);
	if (strcmp(key, "sandbox_user") == 0) {
		free(h->sandbox_user);
		h->sandbox_user = NULL;
		h->sandbox_user_line = v->line;
		h->sandbox_user_column = v->column;
		return p_string(c, v, key, &h->sandbox_user);
	}
	if (strcmp(key, "max_processes") == 0) {
		ret = p_uint(c, v, key, 1, 4096, &u);
		h->max_processes = (uint32_t)u;
		return ret;
	}
	if (strcmp(key, "core_dumps") == 0)
		return p_bool(c, v, key, &h->core_dumps);
	return unknown_key(c, k);
}

int config_parse_host(const char *bytes, size_t len, const char *filename,
		      struct config_host **out, char *err, size_t errlen)
{
	struct pctx c = {filename, err, errlen};
	struct config_host *h;
	struct ytree t;
	const struct ynode *root, *nango_key = NULL, *integrations_key = NULL;
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
	ret = host_defaults(h);
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
		if (nango_key && integrations_key) {
			ret = PFAIL(&c, k, CONFIG_EINVALID,
				    "both nango_yaml and an inline integrations key, expected only one");
			goto out_host;
		}
		ret = host_key(&c, k, root->items[i], h);
		if (ret)
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
	h->store_path = strdup(h->store + 7);
	if (!h->store_path) {
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
	free(h->file);
	free(h->dir);
	free(h->listen);
	free(h->listen_host);
	if (h->secret_key) {
		sodium_memzero(h->secret_key, strlen(h->secret_key));
		free(h->secret_key);
	}
	free(h->store);
	free(h->store_path);
	free(h->plugin_dir);
	free(h->trusted_keys_dir);
	strlist_clear(&h->revoked_keys);
	free(h->providers);
	free(h->sandbox_user);
	map_clear(&h->environment);
	free(h->webhook_base_url);
	free(h->nango_yaml);
	for (size_t i = 0; i < h->n_scripts; i++)
		free(h->scripts[i].name);
	free(h->scripts);
	config_nango_clear(&h->nango);
	config_providers_free(h->catalogue);
	free(h);
}

const struct config_integration *config_integration_find(const struct config_host *h, const char *id)
{
	if (!h || !id)
		return NULL;
	for (size_t i = 0; i < h->nango.n_integrations; i++)
		if (strcmp(h->nango.integrations[i].id, id) == 0)
			return &h->nango.integrations[i];
	return NULL;
}

const struct config_script *config_script_find(const struct config_host *h, const char *name)
{
	if (!h || !name)
		return NULL;
	for (size_t i = 0; i < h->n_scripts; i++)
		if (strcmp(h->scripts[i].name, name) == 0)
			return &h->scripts[i];
	return NULL;
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
