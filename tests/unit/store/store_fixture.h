/* Shared by test_store.c, test_store_batch.c and test_store_combined.c: a SQLite store in a
 * temporary directory of its own, opened before each test and removed with
 * its -wal and -shm files after it. */
#ifndef EVS_TEST_STORE_FIXTURE_H
#define EVS_TEST_STORE_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

struct fx {
	char dir[64];	/* the temporary directory */
	char path[128];	/* the database file in it */
	char url[160];	/* "sqlite:" path */
	struct store *s;
};

/* Opens the store at f->url with key (NULL: no encryption at rest); fails the
 * test if it cannot. The caller owns the store and closes it. */
static inline struct store *fx_open(struct fx *f, const uint8_t *key)
{
	char err[256];
	struct store *s = NULL;
	int ret = store_open(f->url, key, &s, err, sizeof(err));

	if (ret)
		fail_msg("store_open: %s (%s)", err, store_strerror(ret));
	return s;
}

/* cmocka setup: a fresh directory and the store opened in it as f->s. */
static inline int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	strcpy(f->dir, "/tmp/evs-store-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/evs.db", f->dir);
	snprintf(f->url, sizeof(f->url), "sqlite:%s", f->path);
	f->s = fx_open(f, NULL);
	*state = f;
	return 0;
}

/* cmocka teardown: closes f->s and removes the database, its -wal and -shm
 * files and the directory (a test that made other files removes them). */
static inline int fx_teardown(void **state)
{
	struct fx *f = *state;
	char p[200];

	store_close(f->s);
	unlink(f->path);
	snprintf(p, sizeof(p), "%s-wal", f->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", f->path);
	unlink(p);
	rmdir(f->dir);
	free(f);
	return 0;
}

#endif
