/*
 * test_parse_util.c - the YAML readers the config parsers share
 * (runtime/config/parse_util.h): walking a mapping (p_each,
 * p_each_required), reading one by a table of keys (p_fields), reading a
 * mapping into an array (p_map_read), the "expected X, found Y" message
 * (p_expected); and the copies of a provider's retry and paginate settings
 * (config_retry_copy, config_paginate_copy).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "parse_util.h"
#include "ytree.h"

static char err[CONFIG_ERR_MAX];
static struct ytree tree;
static struct pctx ctx = {"t.yaml", err, sizeof(err)};

/* The root of yaml, parsed into the file-wide tree (freed by teardown). */
static const struct ynode *root_of(const char *yaml)
{
	ytree_free(&tree);
	assert_int_equal(ytree_parse(yaml, strlen(yaml), "t.yaml", &tree, err, sizeof(err)), 0);
	return tree.root;
}

static int teardown(void **state)
{
	(void)state;
	ytree_free(&tree);
	return 0;
}

static void assert_err(const char *want)
{
	if (strcmp(err, want) != 0)
		fail_msg("expected '%s', got '%s'", want, err);
}

/* ---- p_each ---- */

struct seen {
	char keys[256];
	char whats[512];
	int stop_at;                /* the entry (1-based) that fails; 0: none */
	int calls;
};

static int record(struct pctx *c, const struct ynode *key, const struct ynode *v, const char *what, void *user)
{
	struct seen *s = user;

	(void)v;
	strcat(s->keys, key->str);
	strcat(s->whats, what);
	strcat(s->whats, " ");
	if (++s->calls == s->stop_at)
		return PFAIL(c, key, CONFIG_EINVALID, "%s: stop", what);
	return 0;
}

static void test_each_walks_in_order_with_what(void **state)
{
	struct seen s = {.stop_at = 0};

	(void)state;
	assert_int_equal(p_each(&ctx, root_of("a: 1\nb: [x]\nc: ~\n"), "top", "", record, &s), 0);
	assert_string_equal(s.keys, "abc");
	assert_string_equal(s.whats, "top.a top.b top.c ");
}

static void test_each_stops_at_the_first_failure(void **state)
{
	struct seen s = {.stop_at = 2};

	(void)state;
	assert_int_equal(p_each(&ctx, root_of("a: 1\nb: 2\nc: 3\n"), "top", "", record, &s), CONFIG_EINVALID);
	assert_int_equal(s.calls, 2);
	assert_err("t.yaml:2:1: top.b: stop");
}

static void test_each_null_is_empty_required_refuses_it(void **state)
{
	struct seen s = {.stop_at = 0};

	(void)state;
	assert_int_equal(p_each(&ctx, root_of("k: ~\n")->items[0], "k", "", record, &s), 0);
	assert_int_equal(s.calls, 0);
	assert_int_equal(p_each_required(&ctx, root_of("k: ~\n")->items[0], "k", " with x", record, &s),
			 CONFIG_EINVALID);
	assert_err("t.yaml:1:4: k: expected a mapping with x, found null");
}

static void test_each_refuses_a_list_at_its_position(void **state)
{
	struct seen s = {.stop_at = 0};

	(void)state;
	assert_int_equal(p_each(&ctx, root_of("k:\n  - a\n")->items[0], "top.k", " of names to strings", record, &s),
			 CONFIG_EINVALID);
	assert_int_equal(s.calls, 0);
	assert_err("t.yaml:2:3: top.k: expected a mapping of names to strings, found a list");
}

/* ---- p_fields ---- */

struct sample {
	char *name;
	struct config_strlist list;
	struct config_map map;
	int called;
};

static int count_call(struct pctx *c, const struct ynode *key, const struct ynode *v, const char *what, void *user)
{
	(void)c;
	(void)key;
	(void)v;
	(void)what;
	((struct sample *)user)->called++;
	return 0;
}

static const struct p_field sample_fields[] = {
	{"name", P_OPT_STRING, offsetof(struct sample, name), NULL},
	{"list", P_STRLIST, offsetof(struct sample, list), NULL},
	{"map", P_STRMAP, offsetof(struct sample, map), NULL},
	{"call", P_CALL, 0, count_call},
};

static void sample_clear(struct sample *s)
{
	free(s->name);
	strlist_clear(&s->list);
	map_clear(&s->map);
}

static void test_fields_read_by_kind_and_skip_unknown_keys(void **state)
{
	struct sample s = {0};

	(void)state;
	assert_int_equal(p_fields(&ctx, root_of("name: n\nlist: [a, b]\nmap: {k: v}\ncall: 1\nother: {x: y}\n"),
				  "s", "", sample_fields, 4, &s), 0);
	assert_string_equal(s.name, "n");
	assert_int_equal(s.list.n, 2);
	assert_string_equal(s.list.items[1], "b");
	assert_int_equal(s.map.n, 1);
	assert_string_equal(config_map_get(&s.map, "k"), "v");
	assert_int_equal(s.called, 1);
	/* a null string keeps what was there */
	assert_int_equal(p_fields(&ctx, root_of("name: ~\n"), "s", "", sample_fields, 4, &s), 0);
	assert_string_equal(s.name, "n");
	sample_clear(&s);
}

static void test_fields_say_which_key_is_wrong(void **state)
{
	struct sample s = {0};

	(void)state;
	assert_int_equal(p_fields(&ctx, root_of("name: n\nmap: [a]\n"), "prov.proxy", "", sample_fields, 4, &s),
			 CONFIG_EINVALID);
	assert_err("t.yaml:2:6: prov.proxy.map: expected a mapping of names to strings, found a list");
	assert_int_equal(p_fields(&ctx, root_of("name: [x]\n"), "prov", "", sample_fields, 4, &s), CONFIG_EINVALID);
	assert_err("t.yaml:1:7: prov.name: expected a string, found a list");
	sample_clear(&s);
}

/* ---- p_map_read ---- */

struct item {
	char *key;
};

static int read_item(struct pctx *c, const struct ynode *key, const struct ynode *v, void *item, void *user)
{
	struct item *it = item;

	(void)user;
	it->key = strdup(key->str);
	if (ynode_is_null(v))
		return PFAIL(c, v, CONFIG_EINVALID, "%s: null", key->str);
	return 0;
}

static void free_items(struct item *items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(items[i].key);
	free(items);
}

static void test_map_read_counts_what_it_read(void **state)
{
	void *items = NULL;
	size_t n = 99;

	(void)state;
	assert_int_equal(p_map_read(&ctx, root_of("a: 1\nb: 2\n"), "m", "names", 8, sizeof(struct item), &items, &n,
				    read_item, NULL), 0);
	assert_int_equal(n, 2);
	assert_string_equal(((struct item *)items)[1].key, "b");
	free_items(items, n);
	/* a failing entry: the entries so far are counted, so that they can be freed */
	assert_int_equal(p_map_read(&ctx, root_of("a: 1\nb: ~\nc: 3\n"), "m", "names", 8, sizeof(struct item),
				    &items, &n, read_item, NULL), CONFIG_EINVALID);
	assert_int_equal(n, 2);
	assert_err("t.yaml:2:4: b: null");
	free_items(items, n);
	/* too many entries, and not a mapping */
	assert_int_equal(p_map_read(&ctx, root_of("a: 1\nb: 2\n"), "m", "names", 1, sizeof(struct item), &items, &n,
				    read_item, NULL), CONFIG_ETOOLARGE);
	assert_int_equal(n, 0);
	assert_null(items);
	assert_int_equal(p_map_read(&ctx, root_of("[a]\n"), "m", "names", 8, sizeof(struct item), &items, &n,
				    read_item, NULL), CONFIG_EINVALID);
	assert_err("t.yaml:1:1: m: expected a mapping of names, found a list");
	assert_null(items);
}

/* ---- p_expected ---- */

static void test_expected_quotes_a_scalar_and_names_a_node(void **state)
{
	(void)state;
	assert_int_equal(p_expected(&ctx, root_of("k: xml\n")->items[0], "k", "text or json"), CONFIG_EINVALID);
	assert_err("t.yaml:1:4: k: expected text or json, found 'xml'");
	assert_int_equal(p_expected(&ctx, root_of("k: {a: b}\n")->items[0], "k", "text or json"), CONFIG_EINVALID);
	assert_err("t.yaml:1:4: k: expected text or json, found a mapping");
}

/* ---- copies ---- */

static void test_retry_copy_is_deep(void **state)
{
	struct config_retry src = {0}, dst = {0};

	(void)state;
	assert_int_equal(config_strlist_append(&src.at, "X-Reset"), 0);
	assert_int_equal(config_strlist_append(&src.error_code, "5xx"), 0);
	src.in_body_path = strdup("error.code");
	assert_int_equal(config_retry_copy(&dst, &src), 0);
	config_retry_clear(&src);
	assert_int_equal(dst.at.n, 1);
	assert_string_equal(dst.at.items[0], "X-Reset");
	assert_string_equal(dst.error_code.items[0], "5xx");
	assert_int_equal(dst.after.n, 0);
	assert_string_equal(dst.in_body_path, "error.code");
	assert_null(dst.in_body_value);
	config_retry_clear(&dst);
	assert_null(dst.at.items);
	assert_null(dst.in_body_path);
}

static void test_paginate_copy_is_deep(void **state)
{
	struct config_paginate src = {0}, dst = {0};

	(void)state;
	src.type = CONFIG_PAGINATE_CURSOR;
	src.cursor_path_in_response = strdup("next");
	src.response_path = strdup("items");
	assert_int_equal(config_paginate_copy(&dst, &src), 0);
	config_paginate_clear(&src);
	assert_int_equal(dst.type, CONFIG_PAGINATE_CURSOR);
	assert_string_equal(dst.cursor_path_in_response, "next");
	assert_string_equal(dst.response_path, "items");
	assert_null(dst.link_rel_in_response_header);
	config_paginate_clear(&dst);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_each_walks_in_order_with_what, teardown),
		cmocka_unit_test_teardown(test_each_stops_at_the_first_failure, teardown),
		cmocka_unit_test_teardown(test_each_null_is_empty_required_refuses_it, teardown),
		cmocka_unit_test_teardown(test_each_refuses_a_list_at_its_position, teardown),
		cmocka_unit_test_teardown(test_fields_read_by_kind_and_skip_unknown_keys, teardown),
		cmocka_unit_test_teardown(test_fields_say_which_key_is_wrong, teardown),
		cmocka_unit_test_teardown(test_map_read_counts_what_it_read, teardown),
		cmocka_unit_test_teardown(test_expected_quotes_a_scalar_and_names_a_node, teardown),
		cmocka_unit_test(test_retry_copy_is_deep),
		cmocka_unit_test(test_paginate_copy_is_deep),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
