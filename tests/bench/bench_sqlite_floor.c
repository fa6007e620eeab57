/* bench_sqlite_floor [N [DIR]]: the floor of a journaled event, measured with
 * SQLite alone: one thread inserts N rows shaped like a row of evscript's
 * events table (an AUTOINCREMENT id, three short strings, a status, a
 * timestamp), each INSERT its own transaction (autocommit), in a database in
 * WAL mode with synchronous=FULL, evscript's default durability: every
 * commit is on disk when it returns. No lock, no thread hand-off, no HTTP:
 * what one writer that commits once per event can reach on this disk.
 *
 * The database is made in DIR (default: $TMPDIR or /tmp) and removed after;
 * tests/bench/load.sh puts it in the directory that holds the daemon's
 * store, so that both write to the same file system.
 *
 * Prints one JSON line, as bench_fork_floor does:
 * {"name","kind":"sqlite-floor","n","p50_us","p99_us","per_s"}, per_s being
 * N divided by the wall time of the whole loop. Links SQLite only and is
 * never sanitized. No timing assertions: load.sh makes the table. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "bench_util.h"

#define WARMUP_MAX 100

static const char schema[] =
	"PRAGMA journal_mode = WAL;"
	"PRAGMA synchronous = FULL;"
	"CREATE TABLE events ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  type TEXT NOT NULL,"
	"  connection_id TEXT NOT NULL,"
	"  provider_config_key TEXT NOT NULL,"
	"  status TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL);";

static const char insert_sql[] =
	"INSERT INTO events (type, connection_id, provider_config_key, status, created_at)"
	" VALUES ('post-connection-creation', ?1, 'inproc', 'pending', ?2)";

/* One INSERT, its own transaction. Returns its duration in ns, or -1. */
static int64_t insert_once(sqlite3 *db, sqlite3_stmt *st, int i)
{
	char cid[32];
	int64_t t0 = bench_now_ns(), t;
	int rc;

	snprintf(cid, sizeof(cid), "floor-%d", i);
	sqlite3_bind_text(st, 1, cid, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, t0 / 1000000);
	rc = sqlite3_step(st);
	t = bench_now_ns() - t0;
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		fprintf(stderr, "bench_sqlite_floor: insert failed: %s\n", sqlite3_errmsg(db));
		t = -1;
	}
	return t;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 5000;
	const char *parent = argc > 2 ? argv[2] : getenv("TMPDIR");
	int warmup = n / 10 < WARMUP_MAX ? n / 10 : WARMUP_MAX;
	char dir[PATH_MAX], path[PATH_MAX + 32];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t *t = NULL, total, start;
	struct bench_summary s;
	int made_dir = 0, ret = 1;

	if (n < 1 || n > 10000000) {
		fprintf(stderr, "usage: bench_sqlite_floor [N (1..10000000) [DIR]]\n");
		return 2;
	}
	if (!parent || !parent[0])
		parent = "/tmp";
	snprintf(dir, sizeof(dir), "%s/bench_sqlite_floor.XXXXXX", parent);
	if (!mkdtemp(dir)) {
		perror("bench_sqlite_floor: mkdtemp");
		goto out;
	}
	made_dir = 1;
	snprintf(path, sizeof(path), "%s/floor.db", dir);
	t = calloc((size_t)n, sizeof(*t));
	if (!t)
		goto out;
	if (sqlite3_open(path, &db) != SQLITE_OK ||
	    sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, insert_sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "bench_sqlite_floor: %s: %s\n", path,
			db ? sqlite3_errmsg(db) : "out of memory");
		goto out;
	}

	for (int i = 0; i < warmup; i++)
		if (insert_once(db, st, i) < 0)
			goto out;
	start = bench_now_ns();
	for (int i = 0; i < n; i++) {
		t[i] = insert_once(db, st, warmup + i);
		if (t[i] < 0)
			goto out;
	}
	total = bench_now_ns() - start;

	s = bench_summarise(t, n);
	/* per_s over the wall time of the loop, not the sum of the inserts */
	s.per_s = total > 0 ? n / (total / 1e9) : 0.0;
	printf("{\"name\":\"floor: raw SQLite insert, WAL, synchronous=FULL, one per commit\","
	       "\"kind\":\"sqlite-floor\",\"n\":%d,\"p50_us\":%.3f,\"p99_us\":%.3f,\"per_s\":%.0f}\n",
	       n, s.p50_us, s.p99_us, s.per_s);
	fflush(stdout);
	ret = 0;
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(t);
	if (made_dir) {
		static const char *const files[] = {"floor.db", "floor.db-wal", "floor.db-shm"};

		for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
			snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
			unlink(path);
		}
		rmdir(dir);
	}
	return ret;
}
