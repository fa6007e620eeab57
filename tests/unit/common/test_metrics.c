/*
 * test_metrics.c - unit tests for runtime/common's process-wide registries:
 * metrics.c (the counters behind GET /metrics and their text) and livelog.c
 * (the live log bus the streams read).
 *
 * Both are one per process and only grow, so each test uses labels or
 * execution ids of its own, and the series cap is filled last.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynbuf.h"
#include "livelog.h"
#include "metrics.h"
#include "status.h"

static char *render(void)
{
	struct dynbuf b;
	char *text = NULL;

	dynbuf_init(&b, 64u << 20, 0);
	assert_int_equal(metrics_render(&b), 0);
	assert_int_equal(dynbuf_take(&b, &text, NULL), 0);
	return text;
}

/* The value of the sample line that starts with `series ` (-1: none). */
static long long sample(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return atoll(p + n + 1);
	return -1;
}

static void test_executions_by_labels(void **state)
{
	char *text;

	(void)state;
	metrics_execution("crm", "hello", "post-connection-creation", "succeeded");
	metrics_execution("crm", "hello", "post-connection-creation", "succeeded");
	metrics_execution("crm", "hello", "post-connection-creation", "failed");
	metrics_execution("crm", "sync", "action", "succeeded");
	text = render();
	assert_non_null(strstr(text, "# TYPE evscript_executions_total counter\n"));
	assert_int_equal(sample(text, "evscript_executions_total{integration=\"crm\",script=\"hello\","
				      "event=\"post-connection-creation\",status=\"succeeded\"}"), 2);
	assert_int_equal(sample(text, "evscript_executions_total{integration=\"crm\",script=\"hello\","
				      "event=\"post-connection-creation\",status=\"failed\"}"), 1);
	assert_int_equal(sample(text, "evscript_executions_total{integration=\"crm\",script=\"sync\","
				      "event=\"action\",status=\"succeeded\"}"), 1);
	free(text);
}

static void test_label_values_are_escaped(void **state)
{
	char *text;

	(void)state;
	metrics_execution("a\"b\\c\nd", "s", "action", "failed");
	metrics_execution(NULL, NULL, NULL, NULL); /* counted, with empty labels */
	text = render();
	assert_int_equal(sample(text, "evscript_executions_total{integration=\"a\\\"b\\\\c\\nd\",script=\"s\","
				      "event=\"action\",status=\"failed\"}"), 1);
	assert_int_equal(sample(text, "evscript_executions_total{integration=\"\",script=\"\",event=\"\","
				      "status=\"\"}"), 1);
	free(text);
}

static void test_proxy_and_reloads(void **state)
{
	char *text;

	(void)state;
	metrics_proxy(200);
	metrics_proxy(200);
	metrics_proxy(404);
	metrics_proxy(0);
	metrics_proxy(999);
	metrics_reload(true, 0);
	metrics_reload(true, 2);
	metrics_reload(false, 0);
	text = render();
	assert_int_equal(sample(text, "evscript_proxy_requests_total{status=\"200\"}"), 2);
	assert_int_equal(sample(text, "evscript_proxy_requests_total{status=\"404\"}"), 1);
	assert_int_equal(sample(text, "evscript_proxy_requests_total{status=\"error\"}"), 1);
	assert_int_equal(sample(text, "evscript_proxy_requests_total{status=\"other\"}"), 1);
	assert_int_equal(sample(text, "evscript_proxy_requests_total{status=\"500\"}"), -1); /* none: no line */
	assert_int_equal(sample(text, "evscript_reloads_total"), 3);
	assert_int_equal(sample(text, "evscript_reload_failures_total"), 1);
	assert_int_equal(sample(text, "evscript_reload_refusals_total"), 2);
	free(text);
}

static void test_render_stops_at_the_cap(void **state)
{
	struct dynbuf b;

	(void)state;
	dynbuf_init(&b, 64, 0);
	assert_int_equal(metrics_render(&b), STATUS_ETOOBIG);
	dynbuf_free(&b);
}

/* Last: fills the registry. */
static void test_series_cap(void **state)
{
	char name[32], *text;

	(void)state;
	for (int i = 0; i < METRICS_SERIES_MAX + 3; i++) {
		snprintf(name, sizeof(name), "cap-%d", i);
		metrics_execution("cap", name, "action", "succeeded");
	}
	metrics_execution("crm", "hello", "post-connection-creation", "succeeded"); /* an old series still counts */
	text = render();
	/* the series made before this test, plus those that fit */
	assert_true(sample(text, "evscript_metrics_series_dropped_total") > 3);
	assert_int_equal(sample(text, "evscript_executions_total{integration=\"cap\",script=\"cap-0\","
				      "event=\"action\",status=\"succeeded\"}"), 1);
	assert_int_equal(sample(text, "evscript_executions_total{integration=\"crm\",script=\"hello\","
				      "event=\"post-connection-creation\",status=\"succeeded\"}"), 3);
	free(text);
}

/* ---- livelog */

static void test_lines_of_one_execution_in_order(void **state)
{
	struct livelog_line *lines;
	size_t n;

	(void)state;
	livelog_publish(101, 1, 1000, 1, "one");
	livelog_publish(102, 1, 1001, 1, "other execution");
	livelog_publish(101, 2, 1002, 2, "two");
	livelog_publish(101, 3, 1003, 3, "three");
	assert_int_equal(livelog_lines(101, 2, &lines, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(lines[0].seq, 2);
	assert_string_equal(lines[0].message, "two");
	assert_int_equal(lines[0].level, 2);
	assert_int_equal(lines[0].ts_ms, 1002);
	assert_string_equal(lines[1].message, "three");
	livelog_lines_free(lines, n);
	assert_int_equal(livelog_lines(103, 1, &lines, &n), 0);
	assert_null(lines);
	assert_int_equal(n, 0);
}

static void test_ring_keeps_the_newest_lines(void **state)
{
	struct livelog_line *lines;
	char big[LIVELOG_LINE_MAX + 100];
	size_t n;

	(void)state;
	for (int i = 1; i <= LIVELOG_RING_LINES + 10; i++)
		livelog_publish(201, i, i, 1, "line");
	assert_int_equal(livelog_lines(201, 1, &lines, &n), 0);
	assert_int_equal(n, LIVELOG_RING_LINES);
	assert_int_equal(lines[0].seq, 11); /* the first ten are only in the store */
	assert_int_equal(lines[n - 1].seq, LIVELOG_RING_LINES + 10);
	livelog_lines_free(lines, n);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	livelog_publish(202, 1, 1, 1, big);
	assert_int_equal(livelog_lines(202, 1, &lines, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(strlen(lines[0].message), LIVELOG_LINE_MAX - 1);
	livelog_lines_free(lines, n);
}

static void *publisher(void *arg)
{
	(void)arg;
	livelog_changed();
	return NULL;
}

static void test_wait_wakes_on_change(void **state)
{
	uint64_t v = livelog_version(), after;
	pthread_t t;

	(void)state;
	assert_int_equal(livelog_wait(v, 0), v); /* nothing new, no wait */
	livelog_publish(301, 1, 1, 1, "x");
	assert_true(livelog_wait(v, 60000) > v); /* passed already: returns at once */
	v = livelog_version();
	assert_int_equal(pthread_create(&t, NULL, publisher, NULL), 0);
	after = livelog_wait(v, 60000); /* woken by the other thread, long before the limit */
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_true(after > v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_executions_by_labels),
		cmocka_unit_test(test_label_values_are_escaped),
		cmocka_unit_test(test_proxy_and_reloads),
		cmocka_unit_test(test_render_stops_at_the_cap),
		cmocka_unit_test(test_series_cap),
		cmocka_unit_test(test_lines_of_one_execution_in_order),
		cmocka_unit_test(test_ring_keeps_the_newest_lines),
		cmocka_unit_test(test_wait_wakes_on_change),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
