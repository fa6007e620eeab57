/* Shared by the store's unit tests (test_store_pg.c: fx_count_tagged only): a SQLite store in a
 * temporary directory of its own, opened before each test and removed with
 * its -wal and -shm files after it. Built with EVS_FX_PG (test_store_async_pg),
 * the store is instead a fresh database on the private PostgreSQL server of
 * the ctest fixture `pg` (EVS_PG_DIR), dropped after the test: the same
 * tests then hold the other back end to the same contract. */
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

#ifdef EVS_FX_PG
#define FX_URL_MAX 512
#else
#define FX_URL_MAX 160
#endif

struct fx {
	char dir[64];	/* the temporary directory */
	char path[128];	/* the database file in it */
	char url[FX_URL_MAX];	/* "sqlite:" path, or the PostgreSQL database's URL */
	char admin[512];	/* EVS_FX_PG: the server's own database */
	char name[64];	/* EVS_FX_PG: the fresh database's name */
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

/* How many connections carry all of tags (a JSON object), by the list's
 * tag filter. */
static inline size_t fx_count_tagged(struct store *s, const char *tags)
{
	struct store_connection_filter f = {.tags = tags};
	struct store_connection **items = NULL;
	size_t n = 0;

	assert_int_equal(store_connection_list(s, &f, &items, &n), 0);
	store_connection_list_free(items, n);
	return n;
}

#ifdef EVS_FX_PG
#include <libpq-fe.h>
#include <time.h>

static inline void fx_admin(struct fx *f, const char *sql)
{
	PGconn *c = PQconnectdb(f->admin);
	PGresult *r;

	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("connecting to %s: %s", f->admin, PQerrorMessage(c));
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
}

/* cmocka setup: a fresh database on the fixture's server, the store opened on it. */
static inline int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const char *dir = getenv("EVS_PG_DIR");
	char sql[128];
	FILE *u;
	size_t n;

	assert_non_null(f);
	assert_non_null(dir);
	snprintf(f->path, sizeof(f->path), "%s/url", dir);
	u = fopen(f->path, "r");
	assert_non_null(u);
	n = fread(f->admin, 1, sizeof(f->admin) - 1, u);
	fclose(u);
	while (n > 0 && (f->admin[n - 1] == '\n' || f->admin[n - 1] == ' '))
		n--;
	f->admin[n] = '\0';
	snprintf(f->name, sizeof(f->name), "evs_fx_%d_%ld_%ld", (int)getpid(), (long)time(NULL),
		 (long)random());
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", f->name);
	fx_admin(f, sql);
	snprintf(f->url, sizeof(f->url), "%.*s/%s", (int)(strrchr(f->admin, '/') - f->admin),
		 f->admin, f->name);
	f->s = fx_open(f, NULL);
	*state = f;
	return 0;
}

/* cmocka teardown: closes f->s and drops its database. */
static inline int fx_teardown(void **state)
{
	struct fx *f = *state;
	char sql[128];

	store_close(f->s);
	snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", f->name);
	fx_admin(f, sql);
	free(f);
	return 0;
}
#else
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

#endif
