/*
 * test_safe_path.c - unit tests for runtime/common/safe_path.c (StrictModes):
 * one case per verdict, on a directory of its own under /tmp (whose sticky
 * bit lets it pass as an ancestor).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safe_path.h"
#include "status.h"

static char base[64];

static int setup(void **state)
{
	(void)state;
	strcpy(base, "/tmp/evs-safe-XXXXXX");
	assert_non_null(mkdtemp(base));
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void path_in(char *out, size_t n, const char *rel)
{
	snprintf(out, n, "%s/%s", base, rel);
}

static void test_verdicts(void **state)
{
	char p[128], q[128], err[400];
	FILE *f;

	(void)state;
	/* private: passes, /tmp above it included */
	assert_int_equal(safe_path_check(base, err, sizeof(err)), 0);

	/* writable by others, by the group */
	assert_int_equal(chmod(base, 0777), 0);
	assert_int_equal(safe_path_check(base, err, sizeof(err)), STATUS_EDENIED);
	assert_string_equal(err, "refused: it is writable by others (mode 0777)");
	assert_int_equal(chmod(base, 0770), 0);
	assert_int_equal(safe_path_check(base, err, sizeof(err)), STATUS_EDENIED);
	assert_string_equal(err, "refused: it is writable by its group (mode 0770)");

	/* the sticky bit passes an ancestor (root's /tmp), never the path itself */
	assert_int_equal(chmod(base, 01777), 0);
	assert_int_equal(safe_path_check(base, err, sizeof(err)), STATUS_EDENIED);

	/* a file in a directory writable by others: the directory is named */
	path_in(p, sizeof(p), "key.pub");
	f = fopen(p, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(chmod(p, 0644), 0);
	assert_int_equal(chmod(base, 0777), 0);
	assert_int_equal(safe_path_check(p, err, sizeof(err)), STATUS_EDENIED);
	assert_non_null(strstr(err, "refused: its directory "));
	assert_non_null(strstr(err, " is writable by others (mode 0777)"));
	assert_int_equal(chmod(base, 0755), 0);
	assert_int_equal(safe_path_check(p, err, sizeof(err)), 0);
	assert_int_equal(chmod(p, 0666), 0);
	assert_int_equal(safe_path_check(p, err, sizeof(err)), STATUS_EDENIED);

	/* a symbolic link is judged by where it leads */
	path_in(q, sizeof(q), "link");
	assert_int_equal(symlink(p, q), 0);
	assert_int_equal(safe_path_check(q, err, sizeof(err)), STATUS_EDENIED);
	assert_int_equal(chmod(p, 0600), 0);
	assert_int_equal(safe_path_check(q, err, sizeof(err)), 0);

	/* owned by someone else (root can give it away) */
	if (geteuid() == 0) {
		assert_int_equal(chown(p, 65534, 65534), 0);
		assert_int_equal(safe_path_check(p, err, sizeof(err)), STATUS_EDENIED);
		assert_non_null(strstr(err, "owned by uid 65534"));
	}

	/* missing: an errno code, not a verdict */
	path_in(p, sizeof(p), "missing");
	assert_int_equal(status_primary(safe_path_check(p, err, sizeof(err))), STATUS_ESYS);
	assert_int_equal(status_errno(safe_path_check(p, err, sizeof(err))), ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_verdicts, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
