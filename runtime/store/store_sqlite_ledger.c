/*
 * store_sqlite_ledger.c - the plugin version ledger in the SQLite back end:
 * per plugin, the highest version accepted and its hash (what the loader's
 * downgrade check reads).
 */
#include "store_sqlite_priv.h"

#include <string.h>

#include "log.h"
#include "store_sql.h"
#include "util.h"

/* ---------------------------------------------------------------------------
 * The plugin version ledger.
 */

/* A plugin's record: its name, and where its version and hash go. */
struct ledger_rec {
	const char *name;
	char *version;   /* 64 bytes */
	uint8_t *hash;   /* STORE_HASH_BYTES */
};

static int read_ledger(sqlite3_stmt *st, void *user)
{
	struct ledger_rec *r = user;

	if (sqlite3_column_bytes(st, 1) != STORE_HASH_BYTES) {
		log_error("store", "plugin ledger: the hash recorded for %s is corrupt", r->name);
		return STORE_EIO;
	}
	sq_col_copy(st, 0, r->version, 64);
	memcpy(r->hash, sqlite3_column_blob(st, 1), STORE_HASH_BYTES);
	return 0;
}

/* Reads name's record inside the lock: 0 found, 1 none. */
static int ledger_read(struct sq *b, const char *name, char version[64],
		       uint8_t hash[STORE_HASH_BYTES])
{
	struct ledger_rec r = {.name = name, .version = version, .hash = hash};
	int ret = sq_row(b, store_sql_ledger_get, "read plugin ledger", STORE_ARGS(arg_text(name)),
			 read_ledger, &r);

	return ret == STORE_ENOTFOUND ? 1 : ret;
}

int sq_ledger_get(struct store *s, const char *name, char version[64],
		  uint8_t hash[STORE_HASH_BYTES])
{
	struct sq *b = sq_read_lock(B(s));
	int ret;

	ret = ledger_read(b, name, version, hash);
	sq_unlock(b);
	return ret;
}

/* Records name's version and hash unless a higher version is recorded
 * (inside a transaction). */
static int ledger_put_in(struct sq *b, const char *name, const char *version,
			 const uint8_t hash[STORE_HASH_BYTES])
{
	char old[64];
	uint8_t oldhash[STORE_HASH_BYTES];
	int ret;

	ret = ledger_read(b, name, old, oldhash);
	if (ret < 0)
		return ret;
	if (ret == 0 && store_version_cmp(version, old) < 0)
		return ret; /* keep the highest version accepted */
	return sq_exec(b, store_sql_ledger_put, "write plugin ledger",
		       STORE_ARGS(arg_text(name), arg_text(version),
				  arg_blob(hash, STORE_HASH_BYTES), arg_i64(util_now_ms())));
}

int sq_ledger_put(struct store *s, const char *name, const char *version,
		  const uint8_t hash[STORE_HASH_BYTES])
{
	int ret;

	return SQ_TXN(ret, B(s), CRITICAL, ledger_put_in(B(s), name, version, hash));
}
