/*
 * parse_util.c - typed readers over ytree nodes, shared by the host,
 * nango.yaml and providers.yaml parsers.
 */
#include "parse_util.h"
#include "util.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int strlist_push(struct config_strlist *l, const char *s)
{
	char **items;
	char *copy;

	if (l->n >= CONFIG_LIST_MAX)
		return CONFIG_ETOOLARGE;
	copy = strdup(s);
	if (!copy)
		return CONFIG_ENOMEM;
	items = realloc(l->items, (l->n + 1) * sizeof(*items));
	if (!items) {
		free(copy);
		return CONFIG_ENOMEM;
	}
	l->items = items;
	l->items[l->n++] = copy;
	return 0;
}

int config_strlist_append(struct config_strlist *l, const char *s)
{
	return strlist_push(l, s);
}

void strlist_clear(struct config_strlist *l)
{
	if (l)
		util_array_free(&l->items, &l->n, sizeof(*l->items), util_item_free_str);
}

static void kv_free(void *item)
{
	struct config_kv *kv = item;

	util_free_all(kv->key, kv->value);
}

void map_clear(struct config_map *m)
{
	if (m)
		util_array_free(&m->items, &m->n, sizeof(*m->items), kv_free);
}

void secret_free(char *s)
{
	if (s) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

const char *config_map_get(const struct config_map *m, const char *key)
{
	if (!m || !key)
		return NULL;
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->items[i].key, key) == 0)
			return m->items[i].value;
	return NULL;
}

int p_expected(struct pctx *c, const struct ynode *n, const char *what, const char *expected)
{
	if (n && n->type == YNODE_SCALAR)
		return PFAIL(c, n, CONFIG_EINVALID, "%s: expected %s, found '%s'", what, expected, n->str);
	return PFAIL(c, n, CONFIG_EINVALID, "%s: expected %s, found %s", what, expected, ynode_kind(n));
}

int p_string(struct pctx *c, const struct ynode *n, const char *what, char **out)
{
	*out = NULL;
	if (!n || n->type != YNODE_SCALAR || ynode_is_null(n))
		return PFAIL(c, n, CONFIG_EINVALID, "%s: expected a string, found %s", what, ynode_kind(n));
	*out = strdup(n->str);
	if (!*out)
		return PFAIL(c, n, CONFIG_ENOMEM, "out of memory");
	return 0;
}

int p_uint(struct pctx *c, const struct ynode *n, const char *what, uint64_t min, uint64_t max,
	   uint64_t *out)
{
	uint64_t v = 0;
	bool ok = n && n->type == YNODE_SCALAR && n->len > 0 && n->len <= 19;

	*out = 0;
	for (size_t i = 0; ok && i < n->len; i++) {
		if (n->str[i] < '0' || n->str[i] > '9')
			ok = false;
		else
			v = v * 10 + (uint64_t)(n->str[i] - '0');
	}
	if (!ok || v < min || v > max) {
		char expected[96];

		snprintf(expected, sizeof(expected), "a whole number from %llu to %llu", (unsigned long long)min,
			 (unsigned long long)max);
		return p_expected(c, n, what, expected);
	}
	*out = v;
	return 0;
}

int p_bool(struct pctx *c, const struct ynode *n, const char *what, bool *out)
{
	static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"};
	static const char *const no[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"};

	*out = false;
	if (n && n->type == YNODE_SCALAR) {
		for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
			if (strcmp(n->str, yes[i]) == 0) {
				*out = true;
				return 0;
			}
			if (strcmp(n->str, no[i]) == 0)
				return 0;
		}
	}
	return p_expected(c, n, what, "true or false");
}

int p_strlist_or_string(struct pctx *c, const struct ynode *n, const char *what,
			struct config_strlist *out)
{
	int ret;

	if (ynode_is_null(n))
		return 0;
	if (n->type == YNODE_SCALAR) {
		ret = strlist_push(out, n->str);
		return ret ? PFAIL(c, n, ret, "%s: %s", what, status_str(ret)) : 0;
	}
	if (n->type != YNODE_SEQ)
		return PFAIL(c, n, CONFIG_EINVALID, "%s: expected a string or a list of strings, found %s",
			     what, ynode_kind(n));
	for (size_t i = 0; i < n->n; i++) {
		const struct ynode *it = n->items[i];

		if (it->type != YNODE_SCALAR || ynode_is_null(it))
			return PFAIL(c, it, CONFIG_EINVALID, "%s: expected a string in the list, found %s",
				     what, ynode_kind(it));
		ret = strlist_push(out, it->str);
		if (ret)
			return PFAIL(c, it, ret, "%s: %s", what, status_str(ret));
	}
	return 0;
}

int p_map_items(struct pctx *c, const struct ynode *n, const char *what, const char *of, unsigned max,
		size_t size, void **items)
{
	*items = NULL;
	if (n->type != YNODE_MAP)
		return PFAIL(c, n, CONFIG_EINVALID, "%s: expected a mapping of %s, found %s", what, of,
			     ynode_kind(n));
	if (n->n > max)
		return PFAIL(c, n, CONFIG_ETOOLARGE, "%s: more than %u entries", what, max);
	*items = calloc(n->n ? n->n : 1, size);
	if (!*items)
		return PFAIL(c, n, CONFIG_ENOMEM, "out of memory");
	return 0;
}

int p_each_required(struct pctx *c, const struct ynode *n, const char *prefix, const char *of,
		    p_entry_fn entry, void *user)
{
	char what[320];
	int ret = 0;

	if (n->type != YNODE_MAP)
		return PFAIL(c, n, CONFIG_EINVALID, "%s: expected a mapping%s, found %s", prefix, of, ynode_kind(n));
	for (size_t i = 0; i < n->n && !ret; i++) {
		snprintf(what, sizeof(what), "%s.%s", prefix, n->keys[i]->str);
		ret = entry(c, n->keys[i], n->items[i], what, user);
	}
	return ret;
}

int p_each(struct pctx *c, const struct ynode *n, const char *prefix, const char *of, p_entry_fn entry,
	   void *user)
{
	return ynode_is_null(n) ? 0 : p_each_required(c, n, prefix, of, entry, user);
}

int p_named_entry(struct pctx *c, const char *what, const struct ynode *name, const struct ynode *m,
		  bool required, const char *of, char **copy, p_entry_fn entry, void *user)
{
	char prefix[300];

	*copy = strdup(name->str);
	if (!*copy)
		return PFAIL(c, name, CONFIG_ENOMEM, "out of memory");
	snprintf(prefix, sizeof(prefix), "%s.%s", what, name->str);
	return required ? p_each_required(c, m, prefix, of, entry, user) : p_each(c, m, prefix, of, entry, user);
}

int p_opt_string(struct pctx *c, const struct ynode *n, const char *what, char **out)
{
	if (ynode_is_null(n))
		return 0;
	free(*out);
	return p_string(c, n, what, out);
}

int p_field(struct pctx *c, const struct ynode *key, const struct ynode *v, const char *what,
	    const struct p_field *fields, size_t n, void *base)
{
	for (size_t i = 0; i < n; i++) {
		void *slot = (char *)base + fields[i].offset;

		if (strcmp(key->str, fields[i].name) != 0)
			continue;
		switch (fields[i].kind) {
		case P_OPT_STRING: return p_opt_string(c, v, what, slot);
		case P_STRLIST: return p_strlist_or_string(c, v, what, slot);
		case P_STRMAP: return p_strmap(c, v, what, slot);
		case P_CALL: return fields[i].call(c, key, v, what, slot);
		}
	}
	return 0;
}

struct field_table {
	const struct p_field *fields;
	size_t n;
	void *base;
};

static int table_entry(struct pctx *c, const struct ynode *key, const struct ynode *v, const char *what,
		       void *user)
{
	const struct field_table *t = user;

	return p_field(c, key, v, what, t->fields, t->n, t->base);
}

int p_fields(struct pctx *c, const struct ynode *n, const char *prefix, const char *of,
	     const struct p_field *fields, size_t n_fields, void *base)
{
	struct field_table t = {fields, n_fields, base};

	return p_each(c, n, prefix, of, table_entry, &t);
}

int p_map_read(struct pctx *c, const struct ynode *n, const char *what, const char *of, unsigned max,
	       size_t size, void *array, size_t *count, p_item_fn entry, void *user)
{
	void *items;
	int ret = p_map_items(c, n, what, of, max, size, &items);

	/* the caller's T * (every object pointer has void *'s representation
	 * here, as POSIX requires), set before the entries so that it holds
	 * what they made should one fail */
	memcpy(array, &items, sizeof(items));
	*count = 0;
	for (size_t i = 0; i < n->n && !ret; i++) {
		*count = i + 1;
		ret = entry(c, n->keys[i], n->items[i], (char *)items + i * size, user);
	}
	return ret;
}

int p_strmap(struct pctx *c, const struct ynode *n, const char *what, struct config_map *out)
{
	void *items;
	int ret;

	if (ynode_is_null(n))
		return 0;
	ret = p_map_items(c, n, what, "names to strings", CONFIG_LIST_MAX, sizeof(*out->items), &items);
	if (ret)
		return ret;
	out->items = items;
	for (size_t i = 0; i < n->n; i++) {
		const struct ynode *v = n->items[i];

		if (v->type != YNODE_SCALAR)
			return PFAIL(c, v, CONFIG_EINVALID, "%s.%s: expected a string, found %s", what,
				     n->keys[i]->str, ynode_kind(v));
		out->items[i].key = strdup(n->keys[i]->str);
		out->items[i].value = strdup(ynode_is_null(v) ? "" : v->str);
		out->n = i + 1;
		if (!out->items[i].key || !out->items[i].value)
			return PFAIL(c, v, CONFIG_ENOMEM, "out of memory");
	}
	return 0;
}
