/*
 * providers.c - Nango's providers.yaml: provider name -> {display_name,
 * auth_mode, alias, proxy: {base_url, headers, query, retry, paginate}, ...}.
 * What evscript uses is read and type-checked; every other key (OAuth URLs,
 * connection_config schemas, docs...) is skipped without being walked.
 *
 * Aliases follow Nango's loader: the entry gets the target's top-level keys,
 * each overridden by the entry's own (a shallow merge: an entry with its own
 * `proxy:` replaces the whole proxy block). Chains are followed; a missing
 * target or a cycle is an error at the alias.
 */
#include "parse_util.h"
#include "util.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <json-c/json.h>

#define ALIAS_DEPTH_MAX 16

struct raw {
	const struct ynode *key;
	const struct ynode *alias;          /* the alias value node */
	bool has_display_name, has_auth_mode, has_proxy;
	int state;                          /* 0 new, 1 resolving, 2 resolved */
};

static enum config_auth_mode auth_mode_of(const char *s)
{
	static const struct {
		const char *name;
		enum config_auth_mode mode;
	} modes[] = {
		{"NONE", CONFIG_AUTH_NONE},         {"OAUTH2", CONFIG_AUTH_OAUTH2},
		{"OAUTH2_CC", CONFIG_AUTH_OAUTH2_CC}, {"API_KEY", CONFIG_AUTH_API_KEY},
		{"BASIC", CONFIG_AUTH_BASIC},       {"APP", CONFIG_AUTH_APP},
		{"OAUTH1", CONFIG_AUTH_OAUTH1},     {"JWT", CONFIG_AUTH_JWT},
		{"TWO_STEP", CONFIG_AUTH_TWO_STEP},
	};

	for (size_t i = 0; s && i < sizeof(modes) / sizeof(modes[0]); i++)
		if (strcmp(s, modes[i].name) == 0)
			return modes[i].mode;
	return CONFIG_AUTH_OTHER;
}

#define N_FIELDS(t) (sizeof(t) / sizeof((t)[0]))

static int paginate_entry(struct pctx *c, const struct ynode *key, const struct ynode *v, const char *what,
			  void *user)
{
	struct config_paginate *pg = user;
	int ret = 0;

	if (strcmp(key->str, "type") == 0) {
		if (v->type != YNODE_SCALAR || config_paginate_type_from_name(v->str, &pg->type) != 0 ||
		    pg->type == CONFIG_PAGINATE_NONE)
			return p_expected(c, v, what, "cursor, link or offset");
		return 0;
	}
	for (size_t f = 0; f < CONFIG_PAGINATE_N_FIELDS && !ret; f++)
		if (strcmp(key->str, config_paginate_fields[f].name) == 0)
			ret = p_opt_string(c, v, what, config_paginate_field(pg, f));
	return ret;
}

/* proxy.paginate, into user (struct config_paginate). */
static int parse_paginate(struct pctx *c, const struct ynode *key, const struct ynode *n, const char *what,
			  void *user)
{
	struct config_paginate *pg = user;
	int ret;

	(void)key;
	if (ynode_is_null(n))
		return 0;
	ret = p_each(c, n, what, "", paginate_entry, pg);
	if (!ret && pg->type == CONFIG_PAGINATE_NONE)
		ret = PFAIL(c, n, CONFIG_EINVALID, "%s: no type, expected type: cursor, link or offset", what);
	return ret;
}

static const struct p_field in_body_fields[] = {
	{"path", P_OPT_STRING, offsetof(struct config_retry, in_body_path), NULL},
	{"value", P_OPT_STRING, offsetof(struct config_retry, in_body_value), NULL},
	{"strategy", P_OPT_STRING, offsetof(struct config_retry, in_body_strategy), NULL},
};

/* proxy.retry.in_body, into user (struct config_retry). */
static int parse_in_body(struct pctx *c, const struct ynode *key, const struct ynode *n, const char *what,
			 void *user)
{
	struct config_retry *r = user;
	int ret;

	(void)key;
	if (ynode_is_null(n))
		return 0;
	ret = p_fields(c, n, what, " with path, value and strategy", in_body_fields, N_FIELDS(in_body_fields), r);
	if (!ret && (!r->in_body_path || !r->in_body_value))
		ret = PFAIL(c, n, CONFIG_EINVALID, "%s: path and value are required", what);
	return ret;
}

static const struct p_field retry_fields[] = {
	{"at", P_STRLIST, offsetof(struct config_retry, at), NULL},
	{"after", P_STRLIST, offsetof(struct config_retry, after), NULL},
	{"remaining", P_STRLIST, offsetof(struct config_retry, remaining), NULL},
	{"error_code", P_STRLIST, offsetof(struct config_retry, error_code), NULL},
	{"in_body", P_CALL, 0, parse_in_body},
};

static int parse_retry(struct pctx *c, const struct ynode *key, const struct ynode *n, const char *what,
		       void *user)
{
	(void)key;
	return p_fields(c, n, what, "", retry_fields, N_FIELDS(retry_fields), user);
}

/* A YAML value as JSON (json-c) into *out (NULL is JSON null): plain
 * scalars that read as integers, booleans or null become those; everything
 * else a string. -1 when out of memory or nested deeper than
 * YTREE_MAX_DEPTH. */
static int to_json(const struct ynode *n, unsigned depth, struct json_object **out)
{
	struct json_object *o;

	*out = NULL;
	if (depth > YTREE_MAX_DEPTH)
		return -1;
	if (n->type == YNODE_SCALAR) {
		char *end;
		long long v;

		if (ynode_is_null(n))
			return 0;
		if (n->plain && (strcmp(n->str, "true") == 0 || strcmp(n->str, "false") == 0))
			*out = json_object_new_boolean(n->str[0] == 't');
		else if (n->plain && n->str[0] && (v = strtoll(n->str, &end, 10), !*end))
			*out = json_object_new_int64(v);
		else
			*out = json_object_new_string(n->str);
		return *out ? 0 : -1;
	}
	o = n->type == YNODE_SEQ ? json_object_new_array() : json_object_new_object();
	for (size_t i = 0; o && i < n->n; i++) {
		struct json_object *v;

		if (to_json(n->items[i], depth + 1, &v) < 0) {
			json_object_put(o);
			return -1;
		}
		if (n->type == YNODE_SEQ)
			json_object_array_add(o, v);
		else
			json_object_object_add(o, n->keys[i]->str, v);
	}
	*out = o;
	return o ? 0 : -1;
}

/* verification.data: any YAML, kept as JSON text in user (char *). */
static int parse_data(struct pctx *c, const struct ynode *key, const struct ynode *it, const char *what,
		      void *user)
{
	char **data = user;
	struct json_object *j = NULL;
	const char *text;

	(void)key;
	(void)what;
	if (ynode_is_null(it))
		return 0;
	text = to_json(it, 0, &j) == 0 && j
		       ? json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
		       : NULL;
	free(*data);
	*data = text ? strdup(text) : NULL;
	json_object_put(j);
	return *data ? 0 : PFAIL(c, it, CONFIG_ENOMEM, "out of memory");
}

static const struct p_field verification_fields[] = {
	{"method", P_OPT_STRING, offsetof(struct config_verification, method), NULL},
	{"endpoints", P_STRLIST, offsetof(struct config_verification, endpoints), NULL},
	{"endpoint", P_STRLIST, offsetof(struct config_verification, endpoints), NULL},
	{"headers", P_STRMAP, offsetof(struct config_verification, headers), NULL},
	{"base_url_override", P_OPT_STRING, offsetof(struct config_verification, base_url_override), NULL},
	{"data", P_CALL, offsetof(struct config_verification, data), parse_data},
};

static int parse_verification(struct pctx *c, const struct ynode *key, const struct ynode *n, const char *what,
			      void *user)
{
	struct config_verification *v = user;

	(void)key;
	v->present = !ynode_is_null(n);
	return p_fields(c, n, what, "", verification_fields, N_FIELDS(verification_fields), v);
}

static void verification_clear(struct config_verification *v)
{
	free(v->method);
	strlist_clear(&v->endpoints);
	map_clear(&v->headers);
	free(v->base_url_override);
	free(v->data);
	memset(v, 0, sizeof(*v));
}

static const struct p_field proxy_fields[] = {
	{"base_url", P_OPT_STRING, offsetof(struct config_provider, base_url), NULL},
	{"headers", P_STRMAP, offsetof(struct config_provider, headers), NULL},
	{"query", P_STRMAP, offsetof(struct config_provider, query), NULL},
	{"retry", P_CALL, offsetof(struct config_provider, retry), parse_retry},
	{"paginate", P_CALL, offsetof(struct config_provider, paginate), parse_paginate},
	{"verification", P_CALL, offsetof(struct config_provider, verification), parse_verification},
};

/* token_params / refresh_params: scalars are kept; a nested mapping (two
 * providers of Nango's catalogue have one) is skipped: evscript sends form
 * fields only. */
static int param_entry(struct pctx *c, const struct ynode *key, const struct ynode *v, const char *what,
		       void *user)
{
	struct config_map *out = user;
	struct config_kv *items;

	(void)what;
	if (v->type != YNODE_SCALAR)
		return 0;
	items = realloc(out->items, (out->n + 1) * sizeof(*items));
	if (!items)
		return PFAIL(c, v, CONFIG_ENOMEM, "out of memory");
	out->items = items;
	items[out->n].key = strdup(key->str);
	items[out->n].value = strdup(v->str ? v->str : "");
	out->n++;
	if (!items[out->n - 1].key || !items[out->n - 1].value)
		return PFAIL(c, v, CONFIG_ENOMEM, "out of memory");
	return 0;
}

static int parse_params(struct pctx *c, const struct ynode *key, const struct ynode *n, const char *what,
			void *user)
{
	(void)key;
	if (n->type == YNODE_MAP)
		map_clear(user);
	return p_each(c, n, what, "", param_entry, user);
}

/* token_url: a template, or (github-app-oauth) a mapping of auth mode to
 * template, of which the OAUTH2 entry is the token endpoint. */
static int parse_token_url(struct pctx *c, const struct ynode *key, const struct ynode *n, const char *what,
			   void *user)
{
	(void)key;
	if (n->type == YNODE_MAP) {
		for (size_t i = 0; i < n->n; i++)
			if (strcmp(n->keys[i]->str, "OAUTH2") == 0)
				return p_opt_string(c, n->items[i], what, user);
		return 0;
	}
	return p_opt_string(c, n, what, user);
}

/* A provider's keys besides display_name, auth_mode, alias and proxy: the
 * OAuth2 token endpoint's (read by token refresh). */
static const struct p_field oauth_fields[] = {
	{"token_url", P_CALL, offsetof(struct config_provider, token_url), parse_token_url},
	{"refresh_url", P_OPT_STRING, offsetof(struct config_provider, refresh_url), NULL},
	{"token_params", P_CALL, offsetof(struct config_provider, token_params), parse_params},
	{"refresh_params", P_CALL, offsetof(struct config_provider, refresh_params), parse_params},
	{"token_request_auth_method", P_OPT_STRING, offsetof(struct config_provider, token_request_auth_method),
	 NULL},
	{"signature_method", P_OPT_STRING, offsetof(struct config_provider, signature_method), NULL},
	{"authorization_method", P_OPT_STRING, offsetof(struct config_provider, authorization_method), NULL},
	{"body_format", P_OPT_STRING, offsetof(struct config_provider, body_format), NULL},
};

/* The keys of one provider; user is its struct provider_entry. */
struct provider_entry {
	struct config_provider *p;
	struct raw *raw;
};

static int provider_key(struct pctx *c, const struct ynode *key, const struct ynode *v, const char *what,
			void *user)
{
	struct config_provider *p = ((struct provider_entry *)user)->p;
	struct raw *raw = ((struct provider_entry *)user)->raw;
	const char *k = key->str;
	int ret;

	if (strcmp(k, "display_name") == 0) {
		raw->has_display_name = !ynode_is_null(v);
		return p_opt_string(c, v, what, &p->display_name);
	}
	if (strcmp(k, "auth_mode") == 0) {
		raw->has_auth_mode = !ynode_is_null(v);
		ret = p_opt_string(c, v, what, &p->auth_mode_name);
		p->auth_mode = auth_mode_of(p->auth_mode_name);
		return ret;
	}
	if (strcmp(k, "alias") == 0) {
		ret = p_opt_string(c, v, what, &p->alias);
		if (p->alias)
			raw->alias = v;
		return ret;
	}
	if (strcmp(k, "proxy") == 0) {
		raw->has_proxy = !ynode_is_null(v);
		return p_fields(c, v, what, "", proxy_fields, N_FIELDS(proxy_fields), p);
	}
	return p_field(c, key, v, what, oauth_fields, N_FIELDS(oauth_fields), p);
}

static int parse_entry(struct pctx *c, const struct ynode *key, const struct ynode *n, struct config_provider *p,
		       struct raw *raw)
{
	struct provider_entry e = {p, raw};

	raw->key = key;
	p->line = key->line;
	p->column = key->column;
	p->name = strdup(key->str);
	if (!p->name)
		return PFAIL(c, key, CONFIG_ENOMEM, "out of memory");
	return p_each(c, n, key->str, " (a provider)", provider_key, &e);
}

static int copy_str(char **dst, const char *src)
{
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : CONFIG_ENOMEM;
}

static int copy_list(struct config_strlist *dst, const struct config_strlist *src)
{
	for (size_t i = 0; i < src->n; i++)
		if (strlist_push(dst, src->items[i]))
			return CONFIG_ENOMEM;
	return 0;
}

static int copy_map(struct config_map *dst, const struct config_map *src)
{
	if (!src->n)
		return 0;
	dst->items = calloc(src->n, sizeof(*dst->items));
	if (!dst->items)
		return CONFIG_ENOMEM;
	for (size_t i = 0; i < src->n; i++) {
		dst->items[i].key = strdup(src->items[i].key);
		dst->items[i].value = strdup(src->items[i].value);
		dst->n = i + 1;
		if (!dst->items[i].key || !dst->items[i].value)
			return CONFIG_ENOMEM;
	}
	return 0;
}

void config_retry_clear(struct config_retry *r)
{
	strlist_clear(&r->at);
	strlist_clear(&r->after);
	strlist_clear(&r->remaining);
	strlist_clear(&r->error_code);
	util_free_all(r->in_body_path, r->in_body_value, r->in_body_strategy);
	memset(r, 0, sizeof(*r));
}

int config_retry_copy(struct config_retry *dst, const struct config_retry *src)
{
	if (copy_list(&dst->at, &src->at) || copy_list(&dst->after, &src->after) ||
	    copy_list(&dst->remaining, &src->remaining) || copy_list(&dst->error_code, &src->error_code) ||
	    copy_str(&dst->in_body_path, src->in_body_path) || copy_str(&dst->in_body_value, src->in_body_value) ||
	    copy_str(&dst->in_body_strategy, src->in_body_strategy))
		return CONFIG_ENOMEM;
	return 0;
}

static void proxy_clear(struct config_provider *p)
{
	free(p->base_url);
	p->base_url = NULL;
	map_clear(&p->headers);
	map_clear(&p->query);
	config_retry_clear(&p->retry);
	config_paginate_clear(&p->paginate);
	verification_clear(&p->verification);
}

static int copy_proxy(struct config_provider *dst, const struct config_provider *src)
{
	dst->verification.present = src->verification.present;
	if (copy_str(&dst->verification.method, src->verification.method) ||
	    copy_list(&dst->verification.endpoints, &src->verification.endpoints) ||
	    copy_map(&dst->verification.headers, &src->verification.headers) ||
	    copy_str(&dst->verification.base_url_override, src->verification.base_url_override) ||
	    copy_str(&dst->verification.data, src->verification.data))
		return CONFIG_ENOMEM;
	if (copy_str(&dst->base_url, src->base_url) || copy_map(&dst->headers, &src->headers) ||
	    copy_map(&dst->query, &src->query) || config_retry_copy(&dst->retry, &src->retry) ||
	    config_paginate_copy(&dst->paginate, &src->paginate))
		return CONFIG_ENOMEM;
	return 0;
}

static int cmp_index(const void *a, const void *b, void *arg)
{
	const struct config_providers *p = arg;

	return strcmp(p->items[*(const size_t *)a].name, p->items[*(const size_t *)b].name);
}

static ssize_t find_index(const struct config_providers *p, const char *name)
{
	size_t lo = 0, hi = p->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, p->items[p->by_name[mid]].name);

		if (c == 0)
			return (ssize_t)p->by_name[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

const struct config_provider *config_provider_find(const struct config_providers *p, const char *name)
{
	ssize_t i;

	if (!p || !name || !p->by_name)
		return NULL;
	i = find_index(p, name);
	return i < 0 ? NULL : &p->items[i];
}

static int resolve(struct pctx *c, struct config_providers *p, struct raw *raws, size_t i, unsigned depth)
{
	struct config_provider *me = &p->items[i], *target;
	struct raw *r = &raws[i];
	ssize_t t;
	int ret;

	if (r->state == 2 || !me->alias) {
		r->state = 2;
		return 0;
	}
	if (r->state == 1 || depth > ALIAS_DEPTH_MAX)
		return PFAIL(c, r->alias, CONFIG_EINVALID, "%s.alias: alias loop through '%s', expected a chain that ends",
			     me->name, me->alias);
	t = find_index(p, me->alias);
	if (t < 0)
		return PFAIL(c, r->alias, CONFIG_EINVALID, "%s.alias: no provider named '%s' in this catalogue",
			     me->name, me->alias);
	r->state = 1;
	ret = resolve(c, p, raws, (size_t)t, depth + 1);
	if (ret)
		return ret;
	target = &p->items[t];
	if (!r->has_display_name && copy_str(&me->display_name, target->display_name))
		goto nomem;
	if (!r->has_auth_mode) {
		if (copy_str(&me->auth_mode_name, target->auth_mode_name))
			goto nomem;
		me->auth_mode = target->auth_mode;
	}
	if (!r->has_proxy) {
		proxy_clear(me);
		if (copy_proxy(me, target))
			goto nomem;
	}
	if ((!me->token_url && copy_str(&me->token_url, target->token_url)) ||
	    (!me->refresh_url && copy_str(&me->refresh_url, target->refresh_url)) ||
	    (!me->token_params.n && copy_map(&me->token_params, &target->token_params)) ||
	    (!me->refresh_params.n && copy_map(&me->refresh_params, &target->refresh_params)) ||
	    (!me->token_request_auth_method &&
	     copy_str(&me->token_request_auth_method, target->token_request_auth_method)) ||
	    (!me->signature_method && copy_str(&me->signature_method, target->signature_method)) ||
	    (!me->authorization_method && copy_str(&me->authorization_method, target->authorization_method)) ||
	    (!me->body_format && copy_str(&me->body_format, target->body_format)))
		goto nomem;
	r->state = 2;
	return 0;
nomem:
	return PFAIL(c, r->alias, CONFIG_ENOMEM, "out of memory");
}

void config_providers_free(struct config_providers *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++) {
		struct config_provider *it = &p->items[i];

		proxy_clear(it);
		map_clear(&it->token_params);
		map_clear(&it->refresh_params);
		util_free_all(it->name, it->display_name, it->auth_mode_name, it->alias, it->token_url,
			      it->refresh_url, it->token_request_auth_method, it->signature_method,
			      it->authorization_method, it->body_format);
	}
	util_free_all(p->items, p->by_name, p->file, p);
}

int config_parse_providers(const char *bytes, size_t len, const char *filename,
			   struct config_providers **out, char *err, size_t errlen)
{
	struct pctx c = {filename, err, errlen};
	struct config_providers *p;
	struct raw *raws = NULL;
	struct ytree t;
	const struct ynode *root;
	int ret;

	*out = NULL;
	ret = ytree_parse(bytes, len, filename, &t, err, errlen);
	if (ret)
		return ret;
	p = calloc(1, sizeof(*p));
	if (!p || !(p->file = strdup(filename ? filename : "<providers>"))) {
		ret = PFAIL(&c, NULL, CONFIG_ENOMEM, "out of memory");
		goto out;
	}
	root = t.root;
	if (ynode_is_null(root)) {
		p->by_name = calloc(1, sizeof(*p->by_name));
		ret = p->by_name ? 0 : PFAIL(&c, NULL, CONFIG_ENOMEM, "out of memory");
		goto out;
	}
	if (root->type != YNODE_MAP) {
		ret = PFAIL(&c, root, CONFIG_EINVALID, "expected a mapping of provider names to providers, found %s",
			    ynode_kind(root));
		goto out;
	}
	p->items = calloc(root->n, sizeof(*p->items));
	raws = calloc(root->n, sizeof(*raws));
	p->by_name = calloc(root->n, sizeof(*p->by_name));
	if (!p->items || !raws || !p->by_name) {
		ret = PFAIL(&c, NULL, CONFIG_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < root->n; i++) {
		p->n = i + 1;
		p->by_name[i] = i;
		ret = parse_entry(&c, root->keys[i], root->items[i], &p->items[i], &raws[i]);
		if (ret)
			goto out;
	}
	/* Names are unique (duplicate keys were refused), so the order is total. */
	qsort_r(p->by_name, p->n, sizeof(*p->by_name), cmp_index, p);
	for (size_t i = 0; i < p->n; i++) {
		ret = resolve(&c, p, raws, i, 0);
		if (ret)
			goto out;
	}
out:
	free(raws);
	ytree_free(&t);
	if (ret)
		config_providers_free(p);
	else
		*out = p;
	return ret;
}
