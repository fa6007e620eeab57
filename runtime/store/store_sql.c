/*
 * store_sql.c - the statements both back ends share, and the translation
 * of their parameters for PostgreSQL (store_sql.h).
 */
#include "store_sql.h"

#include <ctype.h>
#include <string.h>

#include "store_row.h"

const char store_sql_idem_purge[] = "DELETE FROM idempotency_keys WHERE created_at < ?1";
const char store_sql_idem_exists[] = "SELECT 1 FROM idempotency_keys WHERE key = ?1";
const char store_sql_idem_insert[] =
	"INSERT INTO idempotency_keys (key, method_path, request_hash, status, body, created_at)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
const char store_sql_conn_get[] =
	"SELECT " STORE_CONN_COLS("credentials")
	" FROM connections WHERE provider_config_key = ?1 AND connection_id = ?2";
const char store_sql_idem_get[] =
	"SELECT " STORE_IDEM_COLS " FROM idempotency_keys WHERE key = ?1 AND created_at >= ?2";
const char store_sql_event_get[] = "SELECT " STORE_EVENT_COLS " FROM events WHERE id = ?1";
const char store_sql_exec_get[] = "SELECT " STORE_EXEC_COLS " FROM executions WHERE id = ?1";
const char store_sql_async_get[] =
	"SELECT " STORE_ASYNC_COLS " FROM async_actions WHERE id = ?1 AND created_at >= ?2";
const char store_sql_exec_exists[] = "SELECT 1 FROM executions WHERE id = ?1";
const char store_sql_ledger_get[] = "SELECT version, hash FROM plugin_versions WHERE name = ?1";
const char store_sql_ledger_put[] =
	"INSERT INTO plugin_versions (name, version, hash, accepted_at) VALUES (?1, ?2, ?3, ?4)"
	" ON CONFLICT (name) DO UPDATE SET version = excluded.version, hash = excluded.hash,"
	" accepted_at = excluded.accepted_at";

/* The length of a dollar quote's tag at p ("$$" or "$name$"), 0 when p
 * starts none ($1 is a parameter, not a tag). */
static size_t dollar_tag(const char *p)
{
	size_t n = 1;

	if (isdigit((unsigned char)p[1]))
		return 0;
	while (isalnum((unsigned char)p[n]) || p[n] == '_')
		n++;
	return p[n] == '$' ? n + 1 : 0;
}

/* Whether p follows a name's character (PostgreSQL's names may hold '$'). */
static int after_name(const char *sql, const char *p)
{
	return p > sql && (isalnum((unsigned char)p[-1]) || p[-1] == '_' || p[-1] == '$');
}

void store_sql_dollar(char *sql)
{
	char *p = sql;

	while (*p) {
		size_t tag;

		if (*p == '\'' || *p == '"') { /* a doubled quote inside reads as two strings */
			char *end = strchr(p + 1, *p);

			p = end ? end + 1 : p + strlen(p);
		} else if (*p == '$' && !after_name(sql, p) && (tag = dollar_tag(p)) > 0) {
			char *end = p + tag;

			while (*end && strncmp(end, p, tag) != 0)
				end++;
			p = *end ? end + tag : end;
		} else {
			if (*p == '?' && isdigit((unsigned char)p[1]))
				*p = '$';
			p++;
		}
	}
}
