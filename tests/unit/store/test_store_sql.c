/*
 * test_store_sql.c - the translation of SQLite's ?N parameters into
 * PostgreSQL's $N (store_sql_dollar), which runs on every statement the
 * PostgreSQL back end prepares: parameters are rewritten, and nothing that
 * only looks like one (text in quotes, quoted names, dollar-quoted bodies,
 * the jsonb operators ?, ?| and ?&) is touched. And the parameter list both
 * back ends bind (struct store_arg, STORE_ARGS).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "store_sql.h"

struct sql_case {
	const char *in, *out;
};

static const struct sql_case cases[] = {
	{"SELECT 1 FROM t WHERE a = ?1", "SELECT 1 FROM t WHERE a = $1"},
	{"VALUES (?1, ?2, ?10, ?12)", "VALUES ($1, $2, $10, $12)"},
	{"UPDATE t SET a = ?2 WHERE id = ?1 AND b = ?2", "UPDATE t SET a = $2 WHERE id = $1 AND b = $2"},
	/* already PostgreSQL's: left as it is */
	{"SELECT 1 FROM t WHERE a = $1 AND b = $2", "SELECT 1 FROM t WHERE a = $1 AND b = $2"},
	{"", ""},
	{"?1", "$1"},
	/* jsonb operators: '?' not followed by a digit */
	{"SELECT d ? 'k', d ?| array['a'], d ?& array['b'] FROM t WHERE x = ?1",
	 "SELECT d ? 'k', d ?| array['a'], d ?& array['b'] FROM t WHERE x = $1"},
	{"SELECT d ?'k' FROM t", "SELECT d ?'k' FROM t"},
	{"a ? ?1", "a ? $1"},
	/* quoted text and names */
	{"SELECT '?1', ?1", "SELECT '?1', $1"},
	{"SELECT 'it''s ?2' WHERE a = ?1", "SELECT 'it''s ?2' WHERE a = $1"},
	{"SELECT \"col?1\" FROM t WHERE a = ?1", "SELECT \"col?1\" FROM t WHERE a = $1"},
	{"SELECT '?1", "SELECT '?1"}, /* unterminated: left alone to the end */
	/* dollar quoting */
	{"CREATE FUNCTION f() AS $$ SELECT ?1 $$; SELECT ?2",
	 "CREATE FUNCTION f() AS $$ SELECT ?1 $$; SELECT $2"},
	{"DO $body$ ?1 $$ ?2 $body$ ?3", "DO $body$ ?1 $$ ?2 $body$ $3"},
	{"SELECT $$ ?1", "SELECT $$ ?1"}, /* unterminated */
	/* a '$' inside a name starts no quote */
	{"SELECT a$b$ FROM t WHERE c = ?1", "SELECT a$b$ FROM t WHERE c = $1"},
	{"SELECT $1, ?2", "SELECT $1, $2"},
};

static void test_translations(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *s = strdup(cases[i].in);

		assert_non_null(s);
		store_sql_dollar(s);
		assert_string_equal(s, cases[i].out);
		free(s);
	}
}

/* The shared statements come out with PostgreSQL's parameters only. */
static void test_shared_statements(void **state)
{
	const char *const texts[] = {
		store_sql_idem_purge, store_sql_idem_exists, store_sql_idem_insert,
		store_sql_idem_get,   store_sql_conn_get,    store_sql_event_get,
		store_sql_exec_get,   store_sql_exec_exists, store_sql_async_get,
		store_sql_ledger_get, store_sql_ledger_put,
	};

	(void)state;
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		char *s = strdup(texts[i]);

		assert_non_null(s);
		assert_non_null(strstr(s, "?1"));
		store_sql_dollar(s);
		assert_null(strchr(s, '?'));
		assert_non_null(strstr(s, "$1"));
		assert_int_equal(strlen(s), strlen(texts[i]));
		free(s);
	}
}

/* STORE_ARGS keeps the order it is given and ends with STORE_ARG_END; a
 * NULL text and a row id of 0 or less are SQL NULL. */
static void test_args(void **state)
{
	static const char blob[3] = {1, 0, 2};
	const struct store_arg *a =
		STORE_ARGS(arg_text("x"), arg_text(NULL), arg_i64(-7), arg_id(0), arg_id(-1),
			   arg_id(42), arg_blob(blob, sizeof(blob)), arg_null());
	const enum store_arg_type want[] = {
		STORE_ARG_TEXT, STORE_ARG_NULL, STORE_ARG_I64,  STORE_ARG_NULL,
		STORE_ARG_NULL, STORE_ARG_I64,  STORE_ARG_BLOB, STORE_ARG_NULL,
	};
	size_t n = 0;

	(void)state;
	while (a[n].type != STORE_ARG_END)
		n++;
	assert_int_equal(n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < n; i++)
		assert_int_equal(a[i].type, want[i]);
	assert_string_equal(a[0].p, "x");
	assert_int_equal(a[2].v, -7);
	assert_int_equal(a[5].v, 42);
	assert_ptr_equal(a[6].p, blob);
	assert_int_equal(a[6].v, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_translations),
		cmocka_unit_test(test_shared_statements),
		cmocka_unit_test(test_args),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
