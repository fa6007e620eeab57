/*
 * store_sqlite_ledger.c - the plugin version ledger in the SQLite back end:
 * per plugin, the highest version accepted and its hash (what the loader's
 * downgrade check reads).
 */
#include "store_sqlite_priv.h"

#include <string.h>

#include "log.h"
#include "util.h"

/* ---------------------------------------------------------------------------
 * The plugin version ledger.
 */

static const char sql_ledger_get[] = "SELECT version, hash FROM plugin_versions WHERE name = ?1";
static const char sql_ledger_put[] =
	"INSERT INTO plugin_versions (name, version, hash, accepted_at) VALUES (?1, ?2, ?3, ?4)"
	" ON CONFLICT (name) DO UPDATE SET version = excluded.version, hash = excluded.hash,"
	" accepted_at = excluded.accepted_at";

/* Reads name's record inside the lock: 0 found, 1 none. */
static int ledger_read(struct sq *b, const char *name, char version[64],
		       uint8_t hash[STORE_HASH_BYTES])
{
	sqlite3_stmt *st;
	int ret = sq_prep(b, sql_ledger_get, &st);

	if (ret)
		return ret;
	sq_bind_text(st, 1, name);
	ret = sq_step_row(b, st, "read plugin ledger");
	if (ret == 0) {
		if (sqlite3_column_bytes(st, 1) != STORE_HASH_BYTES) {
			log_error("store", "plugin ledger: the hash recorded for %s is corrupt",
				  name);
			ret = STORE_EIO;
		} else {
			sq_col_copy(st, 0, version, 64);
			memcpy(hash, sqlite3_column_blob(st, 1), STORE_HASH_BYTES);
		}
	} else if (ret == STORE_ENOTFOUND) {
		ret = 1;
	}
	sq_release(b, st);
	return ret;
}

int sq_ledger_get(struct store *s, const char *name, char version[64],
		  uint8_t hash[STORE_HASH_BYTES])
{
	struct sq *b = B(s);
	int ret;

	sq_lock(b);
	ret = ledger_read(b, name, version, hash);
	sq_unlock(b);
	return ret;
}

int sq_ledger_put(struct store *s, const char *name, const char *version,
		  const uint8_t hash[STORE_HASH_BYTES])
{
	struct sq *b = B(s);
	sqlite3_stmt *st = NULL;
	char old[64];
	uint8_t oldhash[STORE_HASH_BYTES];
	int ret;

	ret = sq_txn_begin(b, CRITICAL);
	if (ret)
		return ret;
	ret = ledger_read(b, name, old, oldhash);
	if (ret < 0)
		goto out;
	if (ret == 0 && store_version_cmp(version, old) < 0)
		goto out; /* keep the highest version accepted */
	ret = sq_prep(b, sql_ledger_put, &st);
	if (ret)
		goto out;
	sq_bind_text(st, 1, name);
	sq_bind_text(st, 2, version);
	sqlite3_bind_blob(st, 3, hash, STORE_HASH_BYTES, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, util_now_ms());
	ret = sq_run(b, st, "write plugin ledger");
out:
	sq_release(b, st);
	return sq_txn_end(b, ret);
}
