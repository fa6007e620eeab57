/*
 * store_backend.h - what a store back end implements (private to
 * runtime/store/).
 *
 * store.c owns the public functions: it checks the arguments, zeroes the
 * out-parameters, and calls the back end through struct store_ops. A back
 * end (store_sqlite*.c, store_pg*.c) fills one table and uses the
 * shared helpers below for what does not depend on the database: sealing
 * credentials, JSON checks and the metadata merge, version ordering.
 * Arguments reaching a back end are already validated (non-NULL where
 * required, lengths within the caps, JSON parsed).
 */
#ifndef EVS_STORE_BACKEND_H
#define EVS_STORE_BACKEND_H

#include <pthread.h>

#include "store.h"

/* A connection's credentials as a back end writes them: sealed by store.c
 * (store_seal_credentials) before the back end is called, so that no
 * lock is held while they are encrypted. Lent for the call. */
struct store_sealed {
	const uint8_t *blob; /* the credentials column */
	size_t len;
	bool encrypted;      /* the credentials_encrypted column */
};

/* A connection's upsert as store.c hands it to a back end, arguments
 * checked; for a back end's Idempotency-Key write alone (in NULL) too. */
struct store_upsert_call {
	const struct store_connection_input *in;
	const struct store_sealed *cred;            /* in->credentials, sealed */
	const struct store_idempotency_input *idem; /* NULL: no record */
	struct store_upsert_result *r;              /* zeroed */
	int64_t now;                                /* the write's time, ms */
};

/* The operations every back end implements, one X(ret, name, params) a
 * line. The function-pointer fields of struct store_ops below, each back
 * end's prototypes (sq_name, pg_name: its private header) and its table
 * (.name = sq_name, ...) all come from this one list, so an operation is
 * added here once and no back end builds without it. The optional ones,
 * which one back end has and the other leaves NULL, are written out in
 * struct store_ops. */
#define STORE_OPS(X)                                                                               \
	/* location is the URL after "scheme:" (the whole URL when full_url).                      \
	 * Sets s->impl. On failure frees what it made and writes err, which                       \
	 * must never hold a password. */                                                          \
	X(int, open, (struct store *s, const char *location, char *err, size_t errlen))            \
	X(void, close, (struct store *s))                                                          \
	X(int, connection_upsert, (struct store *s, const struct store_upsert_call *u))            \
	X(int, connection_get, (struct store *s, const char *pck, const char *cid,                 \
				struct store_connection **out))                                    \
	/* f is complete (no NULL), limit within 1..STORE_CONNECTION_LIST_MAX */                   \
	X(int, connection_list, (struct store *s, const struct store_connection_filter *f,         \
				 struct store_connection ***items, size_t *n))                     \
	X(int, connection_mark_deleting, (struct store *s, const char *pck, const char *cid,       \
					  bool claim, int64_t generation, int64_t *event_id))      \
	X(int, connection_delete, (struct store *s, const char *pck, const char *cid))             \
	/* One transaction over n connections of pck, all or nothing. merge                        \
	 * false: replace; true: merge top-level keys (store_json_merge).                          \
	 * refuse_deleting: a connection being deleted is STORE_EDELETING. On                      \
	 * STORE_ENOTFOUND/STORE_EDELETING *failed is the offending index. */                      \
	X(int, connection_metadata, (struct store *s, const char *pck, const char *const *cids,    \
				     size_t n, const char *json, bool merge,                       \
				     bool refuse_deleting, size_t *failed))                        \
	/* store_connection_credentials_set: credentials already checked JSON,                     \
	 * and sealed. Required for token refresh. */                                              \
	X(int, connection_credentials, (struct store *s, const char *pck, const char *cid,         \
					const struct store_sealed *cred))                          \
	X(int, idempotency_get, (struct store *s, const char *key,                                 \
				 struct store_idempotency **out))                                  \
	X(int, idempotency_put, (struct store *s, const struct store_idempotency_input *in))       \
	X(int, event_insert, (struct store *s, const char *type, const char *cid,                  \
			      const char *pck, bool claim, int64_t generation,                     \
			      int64_t *event_id))                                                  \
	X(int, event_claim, (struct store *s, int64_t generation, struct store_event *ev))         \
	X(int, event_finish, (struct store *s, int64_t event_id))                                  \
	X(int, event_get, (struct store *s, int64_t event_id, struct store_event *ev))             \
	X(int, event_count_pending, (struct store *s, int64_t *count))                             \
	X(int, execution_create, (struct store *s, const struct store_execution_input *in,         \
				  int64_t *id))                                                    \
	X(int, execution_finish, (struct store *s, int64_t id, enum store_exec_status status,      \
				  const char *error, int64_t duration_ms))                         \
	X(int, execution_append_logs, (struct store *s, int64_t id,                                \
				       const struct store_log_line_input *lines, size_t n,         \
				       int64_t dropped))                                           \
	X(int, execution_get, (struct store *s, int64_t id, struct store_execution **out))         \
	X(int, execution_list, (struct store *s, const struct store_execution_filter *f,           \
				struct store_execution ***items, size_t *n,                        \
				int64_t *next_cursor))                                             \
	X(int, execution_retry, (struct store *s, int64_t id, int64_t *event_id))                  \
	X(int, recover, (struct store *s, struct store_recovery *r))                               \
	X(int, interrupt_running, (struct store *s, const char *error, int64_t *count))            \
	X(int, ledger_get, (struct store *s, const char *name, char version[64],                   \
			    uint8_t hash[STORE_HASH_BYTES]))                                       \
	X(int, ledger_put, (struct store *s, const char *name, const char *version,                \
			    const uint8_t hash[STORE_HASH_BYTES]))                                 \
	/* store_event_claim_batch (store_event_claim_next and _start: at most                     \
	 * one end, max 1) and store_execution_complete: each in one                               \
	 * transaction, all or nothing (arguments checked by store.c), except                      \
	 * that a claim keeps what it did before the queue ran dry (see                            \
	 * store.h). */                                                                            \
	X(int, event_claim_batch, (struct store *s, struct store_claim_batch *b))                  \
	X(int, execution_complete, (struct store *s, int64_t id,                                   \
				    const struct store_execution_end *end))                        \
	/* Tags and webhook URL override of a connection (store_connection_patch). */              \
	X(int, connection_patch, (struct store *s, const char *pck, const char *cid,               \
				  const char *tags_json, bool set_override,                        \
				  const char *override))                                           \
	/* Asynchronous actions (store.h). */                                                      \
	X(int, async_create, (struct store *s, const char *id, const char *pck, const char *cid,   \
			      const char *action, int64_t now))                                    \
	X(int, async_finish, (struct store *s, const char *id, int64_t execution_id, bool ok,      \
			      const char *output, const char *error, int64_t now))                 \
	X(int, async_get, (struct store *s, const char *id, int64_t not_before,                    \
			   struct store_async_action **out))                                       \
	/* Webhook deliveries (store.h). */                                                        \
	X(int, webhook_insert, (struct store *s, const char *integration, const char *headers,     \
				const char *body, size_t len, enum store_webhook_status status,    \
				int64_t now, int64_t *id))                                         \
	X(int, webhook_due, (struct store *s, int64_t now, struct store_webhook **out))            \
	X(int, webhook_attempt, (struct store *s, int64_t id, enum store_webhook_status status,    \
				 const char *error, int64_t next_attempt_at, int64_t now))         \
	X(int, webhook_list, (struct store *s, const char *integration, size_t limit,              \
			      int64_t cursor, struct store_webhook ***items, size_t *n,            \
			      int64_t *next_cursor))

/* A field of struct store_ops (STORE_OPS). */
#define STORE_OP_FIELD(ret, name, params) ret(*name) params;

struct store_ops {
	const char *scheme; /* "sqlite", "postgresql" */
	const char *alias;  /* another name of the scheme ("postgres"), or NULL */
	bool full_url; /* open gets the whole URL ("postgresql://..."), not what follows ':' */
	STORE_OPS(STORE_OP_FIELD)
	/* Optional (NULL: the in-process lock alone): a cross-host lock taken
	 * after the in-process one, released before it. PostgreSQL's. */
	int (*connection_lock)(struct store *s, const char *pck, const char *cid);
	void (*connection_unlock)(struct store *s, const char *pck, const char *cid);
	/* Optional: run by store_recover. SQLite's (PostgreSQL's asynchronous
	 * actions are settled with the rest of a host's rows). */
	int (*async_recover)(struct store *s, int64_t now);
};

struct store {
	const struct store_ops *ops;
	void *impl;
	bool has_key;
	uint8_t key[STORE_KEY_BYTES];
	char host_id[STORE_ID_MAX + 1];
	uint32_t host_timeout_s;
	pthread_mutex_t wake_mu;  /* guards wake, wake_user and their calls */
	store_wakeup_fn wake;
	void *wake_user;
};

extern const struct store_ops store_sqlite_ops;
extern const struct store_ops store_pg_ops; /* "postgresql", "postgres" */

/* The schema version of both back ends: each keeps a list of migrations
 * (step i brings version i to i+1) of exactly this length. */
#define STORE_SCHEMA_VERSION 4

/* Calls the registered wake-up function, if any (store_set_wakeup). */
void store_wakeup(struct store *s);

#define STORE_INTERRUPTED_ERROR "interrupted: the daemon stopped while it ran"

/* Sealed credentials: version byte 1 || 24-byte nonce || ciphertext+tag, the
 * associated data being "provider_config_key\0connection_id". */
#define STORE_SEAL_VERSION 1

/* Prepares credentials for writing: with a key, *blob is the sealed form
 * and *encrypted true; without, *blob is a copy of the JSON text. *blob is
 * malloc'd, owned by the caller (wipe and free with store_blob_free). */
int store_seal_credentials(const struct store *s, const char *pck, const char *cid,
			   const char *json, uint8_t **blob, size_t *len, bool *encrypted);

/* Reverses store_seal_credentials. *json is malloc'd and NUL-terminated,
 * owned by the caller (wipe it: store_secret_free). STORE_ENOKEY,
 * STORE_EDECRYPT. */
int store_open_credentials(const struct store *s, const char *pck, const char *cid,
			   const uint8_t *blob, size_t len, bool encrypted, char **json);

/* The key-check value kept in the database: the sealed form of a fixed text,
 * so that opening with another key is refused at once. */
int store_key_check_make(const struct store *s, uint8_t **blob, size_t *len);
int store_key_check_verify(const struct store *s, const uint8_t *blob, size_t len);

/* Wipes len bytes and frees. NULL is fine. */
void store_blob_free(void *p, size_t len);
/* Wipes a NUL-terminated string and frees. NULL is fine. */
void store_secret_free(char *p);

/* Merges the top-level keys of patch (an object) into doc (an object).
 * *out is malloc'd, owned by the caller. STORE_EINVAL, STORE_ENOMEM,
 * STORE_ETOOBIG. */
int store_json_merge(const char *doc, const char *patch, char **out);

/* 0 when text is JSON (an object when want_object); STORE_EINVAL,
 * STORE_ETOOBIG (over STORE_JSON_MAX). */
int store_json_check(const char *text, bool want_object);

/* The FNV-1a hash of "pck\0cid": the key of a connection's credentials
 * lock (store_connection_lock; a back end's cross-host lock uses it too). */
uint32_t store_connection_hash(const char *pck, const char *cid);

/* Semantic-version order of "X.Y.Z" strings: <0, 0, >0. Unparsable versions
 * sort below every parsable one and among themselves by strcmp. */
int store_version_cmp(const char *a, const char *b);

/* Whether an event may be recorded for a connection, from the lookup of
 * its row (ret: 0 found, STORE_ENOTFOUND, or the lookup's error) and
 * whether it is being deleted: 0 when it exists and is not being deleted,
 * or does not exist (validate runs before it is stored, a retry may
 * outlive it); STORE_EDELETING; or the lookup's error. */
int store_events_accepted(int ret, bool deleting);

/* store_execution_create's checks of in: 0 or STORE_EINVAL / STORE_ETOOBIG.
 * For a back end that creates an execution from a plan (claim_start). */
int store_execution_input_check(const struct store_execution_input *in);

/* The response an upsert records under its Idempotency-Key: idem's own
 * (status, body), or what idem->respond makes of r. *made is respond's
 * body (malloc'd, free it in every case; *body points to it or to
 * idem->body). STORE_ECALLBACK (respond failed or gave no HTTP status),
 * STORE_ETOOBIG (its body is over STORE_JSON_MAX). */
int store_idem_response(const struct store_idempotency_input *idem,
			const struct store_upsert_result *r, int *status, const char **body,
			char **made);

/* Asks plan what to do with a claimed event (store_event_claim_start):
 * STORE_CLAIM_START with *in checked (store_execution_input_check, and
 * for this event), STORE_CLAIM_ONLY, STORE_CLAIM_DONE; or STORE_ECALLBACK
 * (plan failed or answered something else), STORE_EINVAL, STORE_ETOOBIG. */
int store_plan_claim(store_claim_fn plan, void *user, const struct store_event *ev,
		     struct store_execution_input *in);

/* Truncates s (a copy) to at most max bytes on a UTF-8 boundary. *out is
 * malloc'd. NULL in, NULL out (returns 0). */
int store_truncate_copy(const char *s, size_t max, char **out);

#endif
