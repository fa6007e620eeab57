/*
 * test_log.c - unit tests for runtime/common/log.c: control bytes are escaped
 * in both formats, and refusals are summed up per window instead of one line
 * each.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static int log_fd = -1;

/* Everything written to the log since the last call. */
static char *drain(void)
{
	static char buf[1 << 16];
	off_t end = lseek(log_fd, 0, SEEK_END);
	ssize_t n;

	assert_true(end >= 0 && (size_t)end < sizeof(buf));
	n = pread(log_fd, buf, (size_t)end, 0);
	assert_int_equal(n, end);
	buf[n] = '\0';
	assert_int_equal(ftruncate(log_fd, 0), 0);
	lseek(log_fd, 0, SEEK_SET);
	return buf;
}

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static int setup(void **state)
{
	(void)state;
	log_fd = memfd_create("log", 0);
	assert_true(log_fd >= 0);
	log_setup(log_fd, false, LOG_LEVEL_DEBUG);
	log_refusal_window(LOG_REFUSAL_WINDOW_MS);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	log_setup(2, false, LOG_LEVEL_INFO);
	close(log_fd);
	return 0;
}

static void test_control_bytes_escaped(void **state)
{
	char *out;

	(void)state;
	log_warn("loader", "refused plugin %s: bad", "ev\x1b[31mil\x07\x7f\tname\nnext");
	out = drain();
	assert_non_null(strstr(out, "refused plugin ev\\x1b[31mil\\x07\\x7f\tname next: bad\n"));
	assert_int_equal(count_lines(out), 1);
	for (const char *p = out; *p; p++)
		assert_true(*p == '\n' || *p == '\t' || ((unsigned char)*p >= 0x20 && *p != 0x7f));
}

static void test_control_bytes_escaped_json(void **state)
{
	char *out;

	(void)state;
	log_setup(log_fd, true, LOG_LEVEL_DEBUG);
	log_warn("loader", "name %s", "a\x1b" "b");
	out = drain();
	assert_non_null(strstr(out, "\"msg\":\"name a\\\\x1bb\""));
	assert_int_equal(count_lines(out), 1);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0)
		;
}

static void test_refusals_summed_up(void **state)
{
	char *out;

	(void)state;
	log_refusal_window(200);
	log_refusal("http", "connection limit");
	out = drain();
	assert_int_equal(count_lines(out), 1);
	assert_non_null(strstr(out, "warn  http: request refused (connection limit)"));

	/* a flood within the window: not one line more */
	for (int i = 0; i < 5000; i++)
		log_refusal("http", i % 5 ? "connection limit" : "header timeout");
	log_refusal_flush();
	assert_int_equal(count_lines(drain()), 0);

	/* the window ends: one summary, with the counts per reason */
	sleep_ms(250);
	log_refusal_flush();
	out = drain();
	assert_int_equal(count_lines(out), 1);
	assert_non_null(strstr(out, "http: 5000 requests refused in the last 200 ms "
				    "(header timeout: 1000, connection limit: 4000)"));

	/* a window without refusals: nothing, and the next refusal is logged at once */
	sleep_ms(250);
	log_refusal_flush();
	assert_int_equal(count_lines(drain()), 0);
	log_refusal("http", "per-address limit");
	out = drain();
	assert_int_equal(count_lines(out), 1);
	assert_non_null(strstr(out, "request refused (per-address limit)"));
}

static void test_refusal_reasons_capped(void **state)
{
	char reason[32];
	char *out;

	(void)state;
	log_refusal_window(100);
	log_refusal("http", "first");
	drain();
	for (int i = 0; i < LOG_REFUSAL_REASONS + 5; i++) {
		snprintf(reason, sizeof(reason), "reason %d", i);
		log_refusal("http", reason);
	}
	sleep_ms(150);
	log_refusal_flush();
	out = drain();
	assert_int_equal(count_lines(out), 1);
	assert_non_null(strstr(out, "13 requests refused"));
	assert_non_null(strstr(out, "other: 5"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_control_bytes_escaped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_control_bytes_escaped_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals_summed_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusal_reasons_capped, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
