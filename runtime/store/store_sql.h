/*
 * store_sql.h - what both back ends share of their SQL: a statement's
 * parameters (struct store_arg), the statements they run with the same
 * text, written once in SQLite's dialect (parameters ?1, ?2, ...), and
 * the translation of that dialect's parameters into PostgreSQL's ($1, $2,
 * ...).
 *
 * A back end keys its cache of prepared statements by a text's address,
 * so a shared text is prepared (and, on PostgreSQL, translated) once per
 * connection, like the texts of its own. The caller's `what` names the
 * statement in a logged error, as for any other.
 */
#ifndef EVS_STORE_SQL_H
#define EVS_STORE_SQL_H

#include <stddef.h>
#include <stdint.h>

/* One parameter of a statement. Make them with arg_text() and the others
 * below, and a list of them with STORE_ARGS(...): a back end binds them to
 * its parameters in order (?1, ?2, ... in SQLite, $1, $2, ... in
 * PostgreSQL). Text and blobs are borrowed for the statement's run. */
enum store_arg_type {
	STORE_ARG_END = 0,
	STORE_ARG_NULL,
	STORE_ARG_TEXT,
	STORE_ARG_I64,
	STORE_ARG_BLOB,
};
struct store_arg {
	enum store_arg_type type;
	const void *p;   /* STORE_ARG_TEXT, STORE_ARG_BLOB */
	int64_t v;       /* STORE_ARG_I64; STORE_ARG_BLOB: its length */
};
#define STORE_ARGS(...) ((const struct store_arg[]){__VA_ARGS__, {.type = STORE_ARG_END}})

static inline struct store_arg arg_null(void)
{
	return (struct store_arg){.type = STORE_ARG_NULL};
}
/* s NULL: SQL NULL. */
static inline struct store_arg arg_text(const char *s)
{
	return (struct store_arg){.type = s ? STORE_ARG_TEXT : STORE_ARG_NULL, .p = s};
}
static inline struct store_arg arg_i64(int64_t v)
{
	return (struct store_arg){.type = STORE_ARG_I64, .v = v};
}
/* A row id; 0 or less: SQL NULL. */
static inline struct store_arg arg_id(int64_t id)
{
	return id > 0 ? arg_i64(id) : arg_null();
}
static inline struct store_arg arg_blob(const void *p, size_t len)
{
	return (struct store_arg){.type = STORE_ARG_BLOB, .p = p, .v = (int64_t)len};
}

/* Idempotency-Key records: purge those created before ?1; is ?1 recorded;
 * record (key, method_path, request_hash, status, body, created_at). */
extern const char store_sql_idem_purge[];
extern const char store_sql_idem_exists[];
extern const char store_sql_idem_insert[];
/* A connection with its credentials (STORE_CONN_COLS), by
 * provider_config_key ?1 and connection_id ?2. */
extern const char store_sql_conn_get[];
/* One row by its key, with the columns store_row.h decodes: an
 * Idempotency-Key record (key ?1, created at ?2 or later), an event (id
 * ?1), an execution (id ?1), an asynchronous action (id ?1, created at ?2
 * or later). */
extern const char store_sql_idem_get[];
extern const char store_sql_event_get[];
extern const char store_sql_exec_get[];
extern const char store_sql_async_get[];
/* Is there an execution with id ?1. */
extern const char store_sql_exec_exists[];
/* The plugin version ledger: the version and hash recorded for plugin ?1;
 * record (name, version, hash, accepted_at), replacing the name's record. */
extern const char store_sql_ledger_get[];
extern const char store_sql_ledger_put[];

/* Rewrites sql, in place, from ?N parameters to $N (the same length):
 * only a '?' followed by a digit, outside quoted text ('...'), quoted
 * names ("...") and PostgreSQL's dollar quoting ($$...$$, $tag$...$tag$),
 * so that PostgreSQL's jsonb operators (?, ?|, ?&) are left alone. It
 * knows no comments and no E'...' escapes: the back ends' texts use
 * neither. */
void store_sql_dollar(char *sql);

#endif
