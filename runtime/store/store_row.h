/*
 * store_row.h - rows decoded once for both back ends (private to
 * runtime/store/).
 *
 * Both back ends select the same columns in the same order (the *_COLS
 * lists below) and hand each row to one decoder here, through a struct
 * store_row: the result the row belongs to and three column readers.
 * SQLite's readers are in store_sqlite.c (sq_row_of), PostgreSQL's in
 * store_pg.c (pg_row_of). So what a row means (which column is what, how
 * a status word maps to its enum, how credentials are opened) is written
 * once.
 */
#ifndef EVS_STORE_ROW_H
#define EVS_STORE_ROW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store_backend.h"

struct store_row;

struct store_row_ops {
	/* The column as an integer: 0 for NULL; a boolean column reads 0 or 1. */
	int64_t (*i64)(const struct store_row *r, int col);
	/* The column's text, valid while the row is; NULL for NULL. */
	const char *(*text)(const struct store_row *r, int col);
	/* A blob column: *out a malloc'd copy of its *len bytes with a NUL
	 * after them (wipe and free it: store_blob_free); *out NULL for NULL.
	 * 0 or STORE_ENOMEM. */
	int (*blob)(const struct store_row *r, int col, uint8_t **out, size_t *len);
};

struct store_row {
	const struct store_row_ops *ops;
	const void *res; /* the back end's (sqlite3_stmt *, PGresult *) */
	int row;         /* the row's index in res (PostgreSQL) */
};

/* ---- Column lists, in the decoders' order. */

/* A connection; cred is the credentials column ("credentials", or "NULL"
 * for a list, which never opens them). */
#define STORE_CONN_COLS(cred)                                                              \
	"id, connection_id, provider_config_key, provider, " cred ", credentials_encrypted,"  \
	" connection_config, metadata, created_at, updated_at, deleting, tags,"             \
	" webhook_url_override"

#define STORE_EVENT_COLS                                                                   \
	"id, type, connection_id, provider_config_key, script, retry_of, status, generation," \
	" created_at, claimed_at, finished_at"

#define STORE_EXEC_COLS                                                                    \
	"id, event_id, parent_execution_id, kind, script, event, connection_id,"             \
	" provider_config_key, status, started_at, ended_at, duration_ms, error,"            \
	" plugin_version, logs_dropped, host_id"

/* An execution's log line. */
#define STORE_LOG_COLS "seq, ts, level, message"

#define STORE_IDEM_COLS "key, method_path, request_hash, status, body, created_at"

#define STORE_ASYNC_COLS                                                                   \
	"id, provider_config_key, connection_id, action, status, execution_id, output, error," \
	" created_at, finished_at"

/* A webhook delivery; body is "body", or "NULL" for a list. */
#define STORE_WEBHOOK_COLS(body)                                                           \
	"id, integration, headers, status, attempts, received_at, next_attempt_at,"         \
	" delivered_at, last_error, " body

/* ---- Decoders: 0, or STORE_ENOMEM / what opening the credentials
 * answers (STORE_ENOKEY, STORE_EDECRYPT). *out is malloc'd, owned by the
 * caller (the matching store_*_free), and NULL on failure. */

/* with_credentials: opens the credentials column with s's key. */
int store_row_connection(struct store *s, const struct store_row *r, bool with_credentials,
			 struct store_connection **out);
/* An event (fixed-size fields: nothing to allocate, nothing fails). */
void store_row_event(const struct store_row *r, struct store_event *ev);
/* An execution, without its log lines. STORE_EIO for an unknown status. */
int store_row_execution(const struct store_row *r, struct store_execution **out);
/* The end of an execution's read: e (NULL is fine) handed to *out when
 * ret is 0, freed (store_execution_free) otherwise. Returns ret. */
int store_row_execution_out(int ret, struct store_execution *e, struct store_execution **out);
/* A log line into *l (its message malloc'd: store_execution_free frees it). */
int store_row_log_line(const struct store_row *r, struct store_log_line *l);
int store_row_idempotency(const struct store_row *r, struct store_idempotency **out);
int store_row_async(const struct store_row *r, struct store_async_action **out);
int store_row_webhook(const struct store_row *r, struct store_webhook **out);

/* What a retry (store_execution_retry) repeats of an execution: copies,
 * freed by store_retry_free. */
#define STORE_RETRY_COLS "kind, status, event, script, connection_id, provider_config_key"
struct store_retry {
	char *event, *script, *cid, *pck;
};
/* The execution's columns into *out, or why it cannot be retried:
 * STORE_EINVAL for an action (its input is not kept) or a
 * validate-connection run (it belonged to a request, and its candidate
 * connection, that are gone), STORE_ESTATE while it runs. *out is left
 * zeroed on failure. */
int store_row_retry(const struct store_row *r, struct store_retry *out);
void store_retry_free(struct store_retry *r);

/* A malloc'd copy of a text column (NULL for NULL; *ret = STORE_ENOMEM
 * when the copy fails, else left as it is). */
char *store_row_dup(const struct store_row *r, int col, int *ret);

#endif
