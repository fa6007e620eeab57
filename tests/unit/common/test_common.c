/*
 * test_common.c - unit tests for runtime/common: dynbuf (growth, the cap,
 * sticky errors, printf, take, reset, the wipes) and the file reads that use
 * it (util_read_file, util_read_file_secret, util_read_fd).
 *
 * free, malloc and realloc are wrapped at link time (see CMakeLists.txt):
 * __wrap_free checks that a watched block is all zeroes when it is let go
 * of, and fail_allocs makes the next allocations fail.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dynbuf.h"
#include "status.h"
#include "util.h"

/* ---- the allocator wraps */

void __real_free(void *p);
void *__real_malloc(size_t n);
void *__real_realloc(void *p, size_t n);

static const void *watched;    /* a block whose release is checked */
static size_t watched_len;     /* its size */
static int watched_freed;      /* times it was freed */
static bool watched_was_wiped; /* all zeroes when it was */
static int fail_allocs;        /* allocations still to fail */

void __wrap_free(void *p)
{
	if (p && p == watched) {
		const unsigned char *c = p;

		watched_was_wiped = true;
		for (size_t i = 0; i < watched_len; i++)
			if (c[i])
				watched_was_wiped = false;
		watched_freed++;
	}
	__real_free(p);
}

void *__wrap_malloc(size_t n)
{
	if (fail_allocs > 0) {
		fail_allocs--;
		return NULL;
	}
	return __real_malloc(n);
}

void *__wrap_realloc(void *p, size_t n)
{
	if (fail_allocs > 0) {
		fail_allocs--;
		return NULL;
	}
	return __real_realloc(p, n);
}

static void watch(const void *p, size_t len)
{
	watched = p;
	watched_len = len;
	watched_freed = 0;
	watched_was_wiped = false;
}

/* ---- dynbuf */

static void test_empty(void **state)
{
	struct dynbuf b;
	char *out;
	size_t len = 99;

	(void)state;
	dynbuf_init(&b, 100, 0);
	assert_string_equal(dynbuf_str(&b), "");
	assert_int_equal(dynbuf_len(&b), 0);
	assert_null(b.data); /* nothing allocated until the first add */
	dynbuf_free(&b);     /* fine on a buffer never added to */

	/* take of an empty buffer: an allocated "" */
	assert_int_equal(dynbuf_take(&b, &out, &len), 0);
	assert_non_null(out);
	assert_string_equal(out, "");
	assert_int_equal(len, 0);
	free(out);

	/* adding 0 bytes allocates "" too */
	assert_int_equal(dynbuf_add(&b, "", 0), 0);
	assert_non_null(b.data);
	assert_string_equal(dynbuf_str(&b), "");
	dynbuf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.max, 100);
}

static void test_add_grows(void **state)
{
	struct dynbuf b;

	(void)state;
	dynbuf_init(&b, 1 << 20, 0);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(dynbuf_add(&b, "abc", 3), 0);
	assert_int_equal(dynbuf_len(&b), 3000);
	assert_int_equal(strlen(dynbuf_str(&b)), 3000); /* NUL-terminated */
	for (size_t i = 0; i < 3000; i++)
		assert_int_equal(dynbuf_str(&b)[i], "abc"[i % 3]);
	assert_true(b.alloc >= 3001 && b.alloc <= 2 * 3001); /* doubling */
	assert_int_equal(dynbuf_add_str(&b, "de"), 0);
	assert_int_equal(dynbuf_len(&b), 3002);
	assert_string_equal(dynbuf_str(&b) + 2998, "bcde");
	dynbuf_free(&b);
}

static void test_cap(void **state)
{
	struct dynbuf b;
	char *out = (char *)1;
	size_t len = 7;

	(void)state;
	dynbuf_init(&b, 10, 0);
	assert_int_equal(dynbuf_add_str(&b, "01234"), 0);
	assert_int_equal(dynbuf_add_str(&b, "56789"), 0); /* exactly the cap */
	assert_int_equal(b.alloc, 11);                    /* growth clipped to cap + 1 */
	assert_int_equal(dynbuf_add(&b, "x", 1), STATUS_ETOOBIG);
	assert_string_equal(dynbuf_str(&b), "0123456789"); /* unchanged */

	/* sticky: every later add and take fail the same way */
	assert_int_equal(dynbuf_add(&b, "", 0), STATUS_ETOOBIG);
	assert_int_equal(dynbuf_addf(&b, "%d", 1), STATUS_ETOOBIG);
	assert_int_equal(dynbuf_take(&b, &out, &len), STATUS_ETOOBIG);
	assert_null(out);
	assert_int_equal(len, 0);
	assert_string_equal(dynbuf_str(&b), "0123456789");

	/* reset clears the error */
	dynbuf_reset(&b);
	assert_string_equal(dynbuf_str(&b), "");
	assert_int_equal(dynbuf_add_str(&b, "ab"), 0);
	assert_string_equal(dynbuf_str(&b), "ab");
	dynbuf_free(&b);

	/* one add past the cap at once */
	dynbuf_init(&b, 4, 0);
	assert_int_equal(dynbuf_add_str(&b, "abcde"), STATUS_ETOOBIG);
	assert_null(b.data);
	dynbuf_free(&b);

	/* a cap of 0 holds only "" */
	dynbuf_init(&b, 0, 0);
	assert_int_equal(dynbuf_add(&b, "", 0), 0);
	assert_int_equal(b.alloc, 1);
	assert_int_equal(dynbuf_add(&b, "a", 1), STATUS_ETOOBIG);
	dynbuf_free(&b);

	/* a cap larger than memory does not overflow */
	dynbuf_init(&b, SIZE_MAX, 0);
	assert_int_equal(b.max, SIZE_MAX / 2);
	assert_int_equal(dynbuf_add_str(&b, "x"), 0);
	dynbuf_free(&b);
}

static void test_sequence_checked_once(void **state)
{
	struct dynbuf b;
	int ret;

	(void)state;
	dynbuf_init(&b, 8, 0);
	dynbuf_add_str(&b, "1234");
	dynbuf_add_str(&b, "56789"); /* fails */
	ret = dynbuf_add_str(&b, "a");
	assert_int_equal(ret, STATUS_ETOOBIG); /* the last add reports the first failure */
	assert_string_equal(dynbuf_str(&b), "1234");
	dynbuf_free(&b);
}

static void test_addf(void **state)
{
	struct dynbuf b;
	char *out;
	size_t len;

	(void)state;
	dynbuf_init(&b, 4096, 0);
	assert_int_equal(dynbuf_addf(&b, "%s=%d", "n", 42), 0);
	assert_int_equal(dynbuf_addf(&b, ";%0300d", 7), 0); /* grows past the first allocation */
	assert_int_equal(dynbuf_len(&b), 4 + 301);
	assert_memory_equal(dynbuf_str(&b), "n=42;000", 8);
	assert_string_equal(dynbuf_str(&b) + 4 + 300, "7");
	assert_int_equal(dynbuf_take(&b, &out, &len), 0);
	assert_int_equal(len, 305);
	assert_int_equal(strlen(out), 305);
	free(out);

	/* past the cap: nothing written */
	dynbuf_init(&b, 8, 0);
	assert_int_equal(dynbuf_addf(&b, "%s", "abc"), 0);
	assert_int_equal(dynbuf_addf(&b, "%d", 123456), STATUS_ETOOBIG);
	assert_string_equal(dynbuf_str(&b), "abc");
	dynbuf_free(&b);
}

static void test_take(void **state)
{
	struct dynbuf b;
	char *out;
	size_t len;

	(void)state;
	dynbuf_init(&b, 100, DYNBUF_WIPE);
	assert_int_equal(dynbuf_add_str(&b, "hello"), 0);
	assert_int_equal(dynbuf_take(&b, &out, &len), 0);
	assert_string_equal(out, "hello");
	assert_int_equal(len, 5);
	/* b is empty again, with its cap and flags */
	assert_null(b.data);
	assert_int_equal(dynbuf_len(&b), 0);
	assert_int_equal(b.max, 100);
	assert_int_equal(b.flags, DYNBUF_WIPE);
	free(out);

	/* len may be NULL */
	assert_int_equal(dynbuf_add_str(&b, "x"), 0);
	assert_int_equal(dynbuf_take(&b, &out, NULL), 0);
	assert_string_equal(out, "x");
	free(out);
	dynbuf_free(&b);
}

static void test_reset_keeps_allocation(void **state)
{
	struct dynbuf b;
	const char *before;

	(void)state;
	dynbuf_init(&b, 100, 0);
	assert_int_equal(dynbuf_add_str(&b, "first"), 0);
	before = b.data;
	dynbuf_reset(&b);
	assert_ptr_equal(b.data, before);
	assert_string_equal(dynbuf_str(&b), "");
	assert_int_equal(dynbuf_add_str(&b, "second"), 0);
	assert_string_equal(dynbuf_str(&b), "second");
	dynbuf_free(&b);
}

static void test_out_of_memory(void **state)
{
	struct dynbuf b;
	char *out = (char *)1;

	(void)state;
	for (unsigned flags = 0; flags <= DYNBUF_WIPE; flags++) {
		dynbuf_init(&b, 1 << 20, flags);
		assert_int_equal(dynbuf_add_str(&b, "keep"), 0);
		fail_allocs = 1;
		assert_int_equal(dynbuf_add(&b, NULL, 0), 0); /* no growth, no allocation */
		assert_int_equal(dynbuf_addf(&b, "%0100d", 1), STATUS_ENOMEM);
		fail_allocs = 0;
		assert_string_equal(dynbuf_str(&b), "keep"); /* unchanged */
		assert_int_equal(dynbuf_add_str(&b, "x"), STATUS_ENOMEM); /* sticky */
		dynbuf_reset(&b);
		assert_int_equal(dynbuf_add_str(&b, "x"), 0);
		dynbuf_free(&b);
	}

	/* take of an empty buffer must allocate its "" */
	dynbuf_init(&b, 10, 0);
	fail_allocs = 1;
	assert_int_equal(dynbuf_take(&b, &out, NULL), STATUS_ENOMEM);
	fail_allocs = 0;
	assert_null(out);
	assert_int_equal(b.err, 0); /* take's own failure is not sticky */
	dynbuf_free(&b);
}

static void test_wipe_on_grow(void **state)
{
	struct dynbuf b;
	char secret[40];

	(void)state;
	memset(secret, 'S', sizeof(secret));
	dynbuf_init(&b, 4096, DYNBUF_WIPE);
	assert_int_equal(dynbuf_add(&b, secret, sizeof(secret)), 0);
	watch(b.data, b.alloc);
	assert_int_equal(dynbuf_add(&b, secret, sizeof(secret)), 0); /* 81 > 64: grows */
	assert_int_equal(watched_freed, 1);
	assert_true(watched_was_wiped);
	assert_int_equal(dynbuf_len(&b), 80);
	for (size_t i = 0; i < 80; i++)
		assert_int_equal(dynbuf_str(&b)[i], 'S'); /* the content moved whole */

	/* and on free */
	watch(b.data, b.alloc);
	dynbuf_free(&b);
	assert_int_equal(watched_freed, 1);
	assert_true(watched_was_wiped);
	watch(NULL, 0);
}

static void test_wipe_on_reset(void **state)
{
	struct dynbuf b;

	(void)state;
	dynbuf_init(&b, 100, DYNBUF_WIPE);
	assert_int_equal(dynbuf_add_str(&b, "password"), 0);
	dynbuf_reset(&b);
	for (size_t i = 0; i < 8; i++)
		assert_int_equal(b.data[i], 0);
	dynbuf_free(&b);

	/* without the flag the old allocation is released unwiped (realloc) */
	dynbuf_init(&b, 100, 0);
	assert_int_equal(dynbuf_add_str(&b, "plain"), 0);
	watch(b.data, b.alloc);
	dynbuf_free(&b);
	assert_int_equal(watched_freed, 1);
	assert_false(watched_was_wiped);
	watch(NULL, 0);
}

/* ---- file reads */

static char *temp_file(const void *data, size_t len)
{
	char *path = strdup("/tmp/evs_test_common.XXXXXX");
	int fd;

	assert_non_null(path);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	return path;
}

static void test_read_file(void **state)
{
	size_t n = 100000, len = 1;
	char *content = malloc(n), *path, *data = (char *)1;
	int fd;

	(void)state;
	assert_non_null(content);
	for (size_t i = 0; i < n; i++)
		content[i] = (char)('a' + i % 26);
	path = temp_file(content, n);

	/* exactly the cap, plain and secret */
	assert_int_equal(util_read_file(path, n, &data, &len), 0);
	assert_int_equal(len, n);
	assert_memory_equal(data, content, n);
	assert_int_equal(data[n], '\0');
	free(data);
	assert_int_equal(util_read_file_secret(path, n, &data, &len), 0);
	assert_int_equal(len, n);
	assert_memory_equal(data, content, n);
	free(data);

	/* one byte over */
	assert_int_equal(util_read_file(path, n - 1, &data, &len), STATUS_ETOOBIG);
	assert_null(data);
	assert_int_equal(len, 0);
	assert_int_equal(util_read_file_secret(path, 10, &data, &len), STATUS_ETOOBIG);
	assert_null(data);

	/* from an fd's current offset */
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(lseek(fd, (off_t)(n - 3), SEEK_SET), (off_t)(n - 3));
	assert_int_equal(util_read_fd(fd, 3, &data, &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(data, content + n - 3, 3);
	free(data);
	/* at the end: an allocated "" */
	assert_int_equal(util_read_fd(fd, 3, &data, &len), 0);
	assert_non_null(data);
	assert_string_equal(data, "");
	assert_int_equal(len, 0);
	free(data);
	close(fd);

	unlink(path);
	free(path);
	assert_int_equal(util_read_file("/nonexistent/evs", 10, &data, &len), status_from_errno(ENOENT));
	assert_null(data);
	free(content);
}

static void test_wipe(void **state)
{
	unsigned char b[32];

	(void)state;
	memset(b, 0xa5, sizeof(b));
	util_wipe(b, sizeof(b));
	for (size_t i = 0; i < sizeof(b); i++)
		assert_int_equal(b[i], 0);
}

/* util_find_name: the first item whose name member matches, by offset,
 * whatever the member's place in the struct; NULL names never match. */
struct named {
	int value;
	const char *name;
};

static void test_find_name(void **state)
{
	const struct named items[] = {{1, "alpha"}, {2, NULL}, {3, "beta"}, {4, "beta"}};
	const struct named *hit;

	(void)state;
	hit = UTIL_FIND_NAME(items, 4, struct named, name, "beta");
	assert_ptr_equal(hit, &items[2]);
	assert_int_equal(hit->value, 3);
	assert_ptr_equal(UTIL_FIND_NAME(items, 4, struct named, name, "alpha"), &items[0]);
	assert_null(UTIL_FIND_NAME(items, 4, struct named, name, "gamma"));
	assert_null(UTIL_FIND_NAME(items, 4, struct named, name, NULL));
	assert_null(UTIL_FIND_NAME(items, 2, struct named, name, "beta"));
	assert_null(UTIL_FIND_NAME(NULL, 0, struct named, name, "alpha"));
}

/* util_flag_raise: a thread asleep on the condition until the flag is up
 * wakes and sees it (the test hangs, and ctest times it out, if not). */
struct flag_waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool flag, seen;
};

static void *wait_for_flag(void *arg)
{
	struct flag_waiter *w = arg;

	pthread_mutex_lock(&w->mu);
	while (!w->flag)
		pthread_cond_wait(&w->cv, &w->mu);
	w->seen = true;
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

static void test_flag_raise(void **state)
{
	struct flag_waiter w = {.flag = false, .seen = false};
	pthread_t t;

	(void)state;
	assert_int_equal(util_lock_init(&w.mu, &w.cv), 0);
	assert_int_equal(pthread_create(&t, NULL, wait_for_flag, &w), 0);
	util_flag_raise(&w.mu, &w.cv, &w.flag);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_true(w.flag);
	assert_true(w.seen);
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
}

/* util_array_free: every item's free function runs once, on each item in
 * turn; the array and its count are left empty (LeakSanitizer checks that
 * what the items owned is gone). */
struct pair {
	char *a, *b;
};
static size_t pairs_freed;

static void pair_free(void *item)
{
	struct pair *p = item;

	assert_non_null(p->a);
	util_free_all(p->a, p->b);
	pairs_freed++;
}

static void test_array_free(void **state)
{
	struct pair *pairs = calloc(3, sizeof(*pairs));
	char **strs = calloc(2, sizeof(*strs));
	size_t n_pairs = 3, n_strs = 2, none = 0;
	struct pair *empty = NULL;

	(void)state;
	assert_non_null(pairs);
	assert_non_null(strs);
	for (size_t i = 0; i < n_pairs; i++) {
		pairs[i].a = strdup("a");
		pairs[i].b = i == 1 ? NULL : strdup("b");
	}
	strs[0] = strdup("one");
	strs[1] = strdup("two");
	pairs_freed = 0;
	util_array_free(&pairs, &n_pairs, sizeof(*pairs), pair_free);
	assert_null(pairs);
	assert_int_equal(n_pairs, 0);
	assert_int_equal(pairs_freed, 3);
	util_array_free(&strs, &n_strs, sizeof(*strs), util_item_free_str);
	assert_null(strs);
	assert_int_equal(n_strs, 0);
	/* an array never made: nothing to free, no item visited */
	util_array_free(&empty, &none, sizeof(*empty), pair_free);
	assert_int_equal(pairs_freed, 3);
}

/* Every code has its own text and a primary that is itself a primary. */
#define STATUS_CODE_ROW(name, value, primary, text) {name, primary, text, #name},
static const struct {
	int code, primary;
	const char *text, *name;
} status_rows[] = {STATUS_CODES(STATUS_CODE_ROW)};
#undef STATUS_CODE_ROW

static void test_status_str(void **state)
{
	(void)state;
	assert_string_equal(status_str(0), "success");
	for (size_t i = 0; i < sizeof(status_rows) / sizeof(status_rows[0]); i++) {
		assert_string_equal(status_str(status_rows[i].code), status_rows[i].text);
		assert_true(status_known(status_rows[i].code));
		for (size_t j = 0; j < i; j++)
			if (status_rows[i].code == status_rows[j].code)
				fail_msg("%s and %s share a value", status_rows[i].name, status_rows[j].name);
	}
	/* the texts the parts gave before there was one space */
	assert_string_equal(status_str(STATUS_EINVAL), "invalid argument");
	assert_string_equal(status_str(LOADER_EDOWNGRADE), "downgrade refused");
	assert_string_equal(status_str(SIGN_EBADSIG),
			    "signature verification failed (the file does not match its signature)");
	assert_string_equal(status_str(STORE_ECONFLICT), "the idempotency key is already recorded");
	assert_string_equal(status_str(HTTP_ELISTEN), "cannot listen on the address");
	assert_string_equal(status_str(CONFIG_EINVALID), "invalid configuration");
	/* not codes */
	assert_string_equal(status_str(1), "unknown error");
	assert_string_equal(status_str(-100), "unknown error");
	assert_string_equal(status_str(-1000), "unknown error");
	assert_string_equal(status_str(-(STATUS_MAX + 1)), "unknown error");
	assert_string_equal(status_str(-0x7fffffff - 1), "unknown error");
	assert_false(status_known(-100));
	assert_false(status_known(-(STATUS_MAX + 1)));
}

static void test_status_primary(void **state)
{
	(void)state;
	assert_int_equal(status_primary(0), 0);
	for (size_t i = 0; i < sizeof(status_rows) / sizeof(status_rows[0]); i++) {
		int p = status_primary(status_rows[i].code);

		assert_int_equal(p, status_rows[i].primary);
		assert_int_equal(status_primary(p), p); /* a primary is its own */
		assert_true(p <= STATUS_EINVAL && p >= STATUS_ESYS);
	}
	/* the SDK's codes keep their values */
	assert_int_equal(STATUS_EINVAL, -1);
	assert_int_equal(STATUS_ENOMEM, -2);
	assert_int_equal(STATUS_EHOST, -10);
	assert_int_equal(status_primary(STORE_ENOTFOUND), STATUS_ENOTFOUND);
	assert_int_equal(status_primary(LOADER_EBADSIG), STATUS_EREFUSED);
	assert_int_equal(status_primary(STORE_ENOMEM), STATUS_ENOMEM);
	assert_int_equal(status_primary(-100), -100); /* not a code: as it is */
}

static void test_status_from_errno(void **state)
{
	int code;

	(void)state;
	code = status_from_errno(ENOENT);
	assert_true(code < 0);
	assert_int_not_equal(code, -ENOENT);
	assert_int_equal(status_primary(code), STATUS_ESYS);
	assert_int_equal(status_errno(code), ENOENT);
	assert_string_equal(status_str(code), strerror(ENOENT));
	assert_true(status_known(code));
	/* distinct from every other code, and from each other */
	for (size_t i = 0; i < sizeof(status_rows) / sizeof(status_rows[0]); i++)
		assert_int_not_equal(code, status_rows[i].code);
	assert_int_not_equal(status_from_errno(EPIPE), status_from_errno(EPROTO));
	assert_string_equal(status_str(status_from_errno(EPIPE)), strerror(EPIPE));
	/* no errno: the bare primary */
	assert_int_equal(status_from_errno(0), STATUS_ESYS);
	assert_int_equal(status_errno(STATUS_ESYS), 0);
	assert_int_equal(status_errno(STORE_EIO), 0);
	assert_int_equal(status_errno(0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_add_grows),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_sequence_checked_once),
		cmocka_unit_test(test_addf),
		cmocka_unit_test(test_take),
		cmocka_unit_test(test_reset_keeps_allocation),
		cmocka_unit_test(test_out_of_memory),
		cmocka_unit_test(test_wipe_on_grow),
		cmocka_unit_test(test_wipe_on_reset),
		cmocka_unit_test(test_read_file),
		cmocka_unit_test(test_wipe),
		cmocka_unit_test(test_find_name),
		cmocka_unit_test(test_flag_raise),
		cmocka_unit_test(test_array_free),
		cmocka_unit_test(test_status_str),
		cmocka_unit_test(test_status_primary),
		cmocka_unit_test(test_status_from_errno),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
