/*
 * store.h - the durable journal: connections, events, executions and their
 * logs, idempotency records and the plugin version ledger.
 *
 * This header is the whole interface. The back end is chosen by the URL
 * given to store_open(): "sqlite:PATH" (one host, embedded) or
 * "postgresql://..." (several hosts sharing one database), each a table of
 * operations (store_backend.h). Nothing outside runtime/store/ knows which
 * one runs.
 *
 * Several hosts. Every host has a host_id (store_open_host). Executions
 * record the host that ran them, claimed events the host that claimed them.
 * With a shared back end each host heartbeats; a host whose heartbeat is
 * older than its timeout is dead, and a survivor settles its rows exactly
 * as store_recover() settles a host's own at start-up (its running
 * executions interrupted, its claimed but unstarted events pending again).
 * store_recover() and store_interrupt_running() touch this host's rows only.
 *
 * Exactly once. Three rules carry the daemon's guarantee:
 *  1. Outbox: a connection and its post-connection-creation event are written
 *     in one transaction (store_connection_upsert), optionally together with
 *     the Idempotency-Key record of the request that made them. Either all of
 *     it is durable or none of it is.
 *  2. Claim: store_event_claim() moves the oldest pending event to claimed in
 *     one atomic statement; however many dispatcher threads (or, with a
 *     shared back end, hosts) call it, each event is handed out once.
 *  3. Recovery: store_recover() at start-up, before dispatching. An event
 *     claimed but never started goes back to pending (but for
 *     validate-connection, whose request is gone: it is marked interrupted);
 *     an execution that was running is marked interrupted and its event is
 *     never re-run by itself (store_execution_retry() re-runs on request).
 *     A caller runs a script only after store_execution_create() (or
 *     store_event_claim_start(), which claims and creates in one
 *     transaction) returned.
 *
 * Durability. The rules hold against a crash of the daemon at any point
 * (kill -9, abort, an OOM kill): every call that returned is in the
 * database. Against a power loss or a kernel crash they hold too, by
 * default: these calls are on disk when they return (fsync), and so is
 * everything any call wrote before them: store_connection_upsert,
 * store_connection_mark_deleting, store_connection_delete, the metadata
 * setters, store_idempotency_put, store_event_insert,
 * store_execution_create, store_event_claim_start, store_execution_retry, store_recover,
 * store_interrupt_running and store_ledger_put. The others may be rolled
 * back by a power loss: a claim (the event is pending again, which is what
 * recovery makes of a claimed event that started nothing; the execution
 * creation that precedes any script makes its claim durable), execution
 * results, log lines and "done" marks, alone or together
 * (store_execution_complete) (the execution and its event read as running
 * / claimed, and store_recover() marks them interrupted). So an
 * event none of whose scripts started may run after a power loss; one
 * whose script started is never run again by itself. With
 * "?synchronous=normal" (store_open) nothing is forced to disk: a power
 * loss may roll back any recent call, an acknowledged upsert or an
 * execution creation included, and a script may then run twice.
 *
 * Batching. Concurrent writes share transactions (group commit): a write
 * call returns only after the COMMIT that holds its writes, and that COMMIT
 * is forced to disk whenever the call is one of those listed above, so an
 * acknowledgement (a 0) guarantees exactly what it would with one commit
 * per call. A call that fails leaves the other calls of its batch as they
 * were. Should the batch's COMMIT fail, every write call of the batch
 * fails with that error (usually STORE_EIO) and none of their writes is
 * in the database. Readers only ever see committed writes. Nothing waits
 * for a batch to fill: an idle store commits a lone write at once.
 * (PostgreSQL: each call is a transaction of its own; concurrent calls,
 * from every host, share WAL flushes in the server, and the calls listed
 * above commit with synchronous_commit on, the others without waiting for
 * the flush: the same guarantees, store_pg.c.)
 *
 * Fewer writes per event. A dispatcher can journal an event in two write
 * calls rather than 3 + 3 per script: store_event_claim_start (the claim
 * and the first execution's creation) and store_execution_complete (an
 * execution's end with its remaining log lines, and for the last script
 * its event's "done"); the scripts after the first are created with
 * store_execution_create. Each combined call is one transaction, all or
 * nothing, with the durability of the strongest call it stands for; a
 * crash between two of them leaves what the separate calls would have
 * left at the same point, and store_recover() treats it the same way.
 * A worker that goes straight on to its next event needs one write per
 * event: store_event_claim_next records the previous execution's end and
 * claims (and starts) the next event in one transaction. Events with no
 * script to run are claimed and marked done in one write, up to
 * STORE_CLAIM_BATCH of them. A worker whose scripts are short needs less
 * than one: store_event_claim_batch writes the ends of its last few runs
 * and starts its next few in one transaction.
 *
 * Conventions. Every function returns 0 or a negative STORE_E* code
 * (store_strerror). Out-parameters are zeroed on failure. Strings passed in
 * are borrowed for the call. Objects returned through pointers are owned by
 * the caller and freed with the matching *_free() (NULL is fine). JSON
 * documents (credentials, connection_config, metadata, response bodies) are
 * passed as strings. Timestamps are milliseconds since the epoch
 * (util_now_ms); 0 means "not set". Row ids are > 0; 0 means "none".
 * Database errors are logged once, with the back end's detail, under the
 * "store" part of the daemon log, and returned as STORE_EIO.
 *
 * Thread safety: a struct store may be used from any number of threads at
 * once (HTTP threads and dispatcher threads). Not across fork().
 *
 * Credentials are encrypted at rest with XChaCha20-Poly1305 when a key is
 * given to store_open(): a random nonce per write, and the connection's key
 * (provider_config_key, connection_id) as associated data, so a ciphertext
 * copied to another row does not decrypt. Without a key they are stored as
 * plaintext JSON and the row says so; a database may be opened with a key
 * later (new writes are then encrypted). Reading an encrypted row without
 * the key is STORE_ENOKEY; opening with a key other than the one the
 * database was written with is refused (STORE_EKEY).
 */
#ifndef EVS_STORE_H
#define EVS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* The codes store functions return (defined in status.h, text by
 * status_str()):
 *   STORE_EINVAL    invalid argument (bad JSON, unknown event type, empty id...)
 *   STORE_ENOMEM    out of memory
 *   STORE_EIO       the database failed (detail in the daemon log)
 *   STORE_ENOTFOUND no such row (or, for claim, no pending event)
 *   STORE_EDELETING the connection is being deleted: no new events for it
 *   STORE_ECONFLICT the Idempotency-Key is already recorded
 *   STORE_ESCHEMA   the database was written by a newer evscript
 *   STORE_ENOKEY    encrypted credentials and no encryption key
 *   STORE_EDECRYPT  credentials do not decrypt (tampered or moved to another row)
 *   STORE_EKEY      the encryption key is not the one the database was written with
 *   STORE_EURL      unsupported store URL
 *   STORE_ESTATE    the row is not in a state that allows this (e.g. finish twice)
 *   STORE_EBUSY     the database stayed locked past the busy timeout
 *   STORE_ETOOBIG   a value is over its cap (ids, JSON documents, bodies)
 *   STORE_ECALLBACK the caller's callback failed; the transaction was rolled back */

/* Kept for the unit tests that call it: status_str(err). New code calls
 * status_str(). */
const char *store_strerror(int err);

/* Caps. Longer ids and documents are refused with STORE_ETOOBIG; longer log
 * messages and execution errors are truncated (at a UTF-8 boundary). */
#define STORE_ID_MAX 255                 /* connection_id, provider_config_key, provider, script */
#define STORE_JSON_MAX (1u << 20)        /* credentials, connection_config, metadata, bodies */
#define STORE_LOG_MESSAGE_MAX 8192
#define STORE_ERROR_MAX 4096
#define STORE_LIST_MAX 1000              /* page size cap for the list functions */
#define STORE_IDEMPOTENCY_TTL_MS (24LL * 3600 * 1000)
#define STORE_KEY_BYTES 32
#define STORE_HASH_BYTES 64              /* plugin hashes (BLAKE2b-512), as sign.h */

/* Event types: the Nango event names, stored as they are. */
#define STORE_EVENT_POST_CONNECTION_CREATION "post-connection-creation"
#define STORE_EVENT_PRE_CONNECTION_DELETION "pre-connection-deletion"
#define STORE_EVENT_VALIDATE_CONNECTION "validate-connection"

struct store;

/* ---------------------------------------------------------------------------
 * Opening and closing.
 */

/* Opens (creating if needed) the store at url and brings its schema up to
 * date. url is "sqlite:PATH" (PATH relative to the working directory; the
 * caller resolves config-relative paths), optionally followed by
 * "?synchronous=normal" to trade power-loss durability for speed (see
 * Durability above; the default keeps exactly-once and the outbox
 * power-loss safe).
 * The database file is created with mode 0600. enc_key is 32 bytes or NULL (no
 * encryption of new writes); it is copied and wiped on close. On success
 * *out is owned by the caller (store_close). On failure *out is NULL, the
 * code says what kind of failure, and err holds one line for the user
 * (e.g. "schema version 7 is newer than this evscript supports (3)"). */
int store_open(const char *url, const uint8_t *enc_key, struct store **out, char *err,
	       size_t errlen);

/* Who this process is among the hosts that share a store. */
#define STORE_HOST_TIMEOUT_DEFAULT_S 30
struct store_host {
	const char *host_id; /* NULL or "": the machine's host name; at most STORE_ID_MAX */
	uint32_t timeout_s;  /* this host is dead once silent this long (others judge it by
			      * this value, kept with its heartbeat); 0: the default (30) */
};

/* store_open() for a host: url may also be "postgresql://USER[:PASSWORD]@
 * HOST[:PORT]/DB[?PARAM=VALUE&...]" (or "postgres://", libpq's URI form:
 * any libpq parameter). host NULL: the defaults. store_open(url, ...) is
 * store_open_host(url, ..., NULL, ...). Errors never show a password. */
int store_open_host(const char *url, const uint8_t *enc_key, const struct store_host *host,
		    struct store **out, char *err, size_t errlen);

/* The host_id the store writes (borrowed; lives as long as s). */
const char *store_host_id(const struct store *s);

/* Copies url into out (outlen bytes) with its password masked ("***"),
 * for logs and status pages: the user info's password of a URI and any
 * password=... parameter. Always NUL-terminates (outlen > 0). */
void store_url_redact(const char *url, char *out, size_t outlen);

/* Called from a thread of the store when new events may be pending that
 * this process did not record itself (another host's, announced by the
 * database), and after the store reconnected (it may have missed some).
 * It must not block; it may call store functions from another thread
 * only. */
typedef void (*store_wakeup_fn)(void *user);

/* Registers fn (NULL: none). When it returns, a previous fn is not running
 * and will not be called again. A back end that shares nothing never calls
 * it: the caller polls as well. */
void store_set_wakeup(struct store *s, store_wakeup_fn fn, void *user);

/* Closes the store and wipes the key. NULL is fine. No call may be in
 * progress on another thread. */
void store_close(struct store *s);

/* Decodes EVSCRIPT_ENCRYPTION_KEY (standard base64 of exactly 32 bytes;
 * surrounding whitespace ignored). Returns 0, or STORE_EINVAL with key
 * wiped. */
int store_key_from_base64(const char *b64, uint8_t key[STORE_KEY_BYTES]);

/* The schema version this build writes, the same for every back end
 * (SQLite keeps it in PRAGMA user_version, PostgreSQL in evscript_schema;
 * migrations are applied up to it, and a newer one is refused). */
int store_schema_version(void);

/* ---------------------------------------------------------------------------
 * Connections.
 */
struct store_connection {
	int64_t id;
	char *connection_id;
	char *provider_config_key;
	char *provider;
	char *credentials;       /* JSON; NULL in list results. Wiped by store_connection_free. */
	char *connection_config; /* JSON object */
	char *metadata;          /* JSON object */
	int64_t created_at;
	int64_t updated_at;
	bool deleting;
	bool credentials_encrypted; /* how the row is stored */
	char *tags;                 /* JSON object of strings, "{}" by default */
	char *webhook_url_override; /* NULL when none */
};

/* Wipes the credentials and the connection_config and frees c. NULL is fine. */
void store_connection_free(struct store_connection *c);

/* Frees an array returned by store_connection_list (each element and the
 * array). NULL is fine. */
void store_connection_list_free(struct store_connection **items, size_t n);

/* What a POST /connections writes. connection_config and metadata may be
 * NULL: "{}" for a new connection, unchanged on a reconnect. */
struct store_connection_input {
	const char *connection_id;
	const char *provider_config_key;
	const char *provider;
	const char *credentials;       /* JSON object (required) */
	const char *connection_config; /* JSON object or NULL */
	const char *metadata;          /* JSON object or NULL */
};

/* The outcome of an upsert, as the transaction saw it. */
struct store_upsert_result {
	int64_t connection_row_id;
	int64_t event_id;       /* the post-connection-creation event (pending) */
	bool created;           /* true: new connection; false: reconnect (import over an existing one) */
	int64_t created_at;
	int64_t updated_at;
};

/* The Idempotency-Key record to write in the same transaction. The response
 * is either given (status, body) or, when respond is non-NULL, produced by
 * respond() inside the transaction from the upsert's result (so the stored
 * response can carry the row's timestamps). respond returns 0 and sets
 * *status and *body (malloc'd, the store frees it), or non-zero to roll the
 * whole transaction back (STORE_ECALLBACK). respond runs with the store
 * locked, possibly on another thread: it must not call any store_*
 * function (it would deadlock) and must use only what user gives it. Its
 * response is stored only if the whole call succeeds (Batching, at the
 * top). */
struct store_idempotency_input {
	const char *key;
	const char *method_path;         /* e.g. "POST /connections" */
	const char *request_hash;        /* the caller's fingerprint of the request body */
	int status;
	const char *body;
	int (*respond)(void *user, const struct store_upsert_result *r, int *status, char **body);
	void *user;
};

/* The outbox: inserts or updates the connection (provider_config_key,
 * connection_id) AND inserts its pending post-connection-creation event, in
 * one transaction; when idem is non-NULL the Idempotency-Key record is
 * written in it too (and records older than 24 h are purged). A reconnect
 * replaces credentials (and connection_config/metadata when given) and is a
 * new occurrence: a new event. Returns 0 and fills *r; STORE_EDELETING when
 * the connection is being deleted; STORE_ECONFLICT when the idempotency key
 * is already recorded (nothing is written: look the key up and answer with
 * the stored response); STORE_EINVAL for JSON that does not parse, a
 * connection_config or metadata that is not an object, or a missing field. */
int store_connection_upsert(struct store *s, const struct store_connection_input *in,
			    const struct store_idempotency_input *idem,
			    struct store_upsert_result *r);

/* Reads one connection, credentials decrypted. *out is owned by the caller
 * (store_connection_free). STORE_ENOTFOUND, STORE_ENOKEY, STORE_EDECRYPT. */
int store_connection_get(struct store *s, const char *provider_config_key,
			 const char *connection_id, struct store_connection **out);

/* Filters for store_connection_list; NULL / 0 mean "any". */
struct store_connection_filter {
	const char *connection_id;        /* exact match */
	const char *provider_config_keys; /* integration ids separated by commas */
	const char *search;               /* a substring of connection_id */
	const char *tags;                 /* JSON object: every key must hold this value */
	size_t limit;                     /* 0: STORE_CONNECTION_LIST_MAX; capped at it */
	size_t offset;                    /* rows to skip (paging) */
};
#define STORE_CONNECTION_LIST_MAX 10000

/* Lists connections matching f (NULL: all), newest first (created_at, then
 * row id), one page of at most f->limit. Credentials are not read (NULL in
 * the results). *items is owned by the caller (store_connection_list_free);
 * with no match it is NULL and *n 0. */
int store_connection_list(struct store *s, const struct store_connection_filter *f,
			  struct store_connection ***items, size_t *n);

/* Marks the connection as being deleted AND records its
 * pre-connection-deletion event in one transaction. From then on no other
 * event can be recorded for it (STORE_EDELETING) and an upsert is refused.
 * The event starts claimed (by generation) when claim is true (the DELETE
 * handler runs the scripts itself and waits for them), pending otherwise.
 * STORE_ENOTFOUND; STORE_EDELETING when it is already being deleted (e.g.
 * a DELETE retried after a crash: the caller may go on with
 * store_connection_delete, the first request recorded the event). */
int store_connection_mark_deleting(struct store *s, const char *provider_config_key,
				   const char *connection_id, bool claim, int64_t generation,
				   int64_t *event_id);

/* Deletes the connection row (its events and executions stay as history).
 * STORE_ENOTFOUND. */
int store_connection_delete(struct store *s, const char *provider_config_key,
			    const char *connection_id);

/* Replaces the metadata with metadata_json (a JSON object). STORE_ENOTFOUND,
 * STORE_EINVAL. */
int store_connection_metadata_set(struct store *s, const char *provider_config_key,
				  const char *connection_id, const char *metadata_json);

/* Merges the top-level keys of patch_json (a JSON object) into the metadata,
 * read and written in one transaction (concurrent updates do not lose keys).
 * A key set to null is stored as null. STORE_ENOTFOUND, STORE_EINVAL. */
int store_connection_metadata_update(struct store *s, const char *provider_config_key,
				     const char *connection_id, const char *patch_json);

/* POST/PATCH /connections/metadata: replaces (merge false) or merges json
 * into the metadata of n connections of one integration, in one
 * transaction, all or nothing. A connection that does not exist is
 * STORE_ENOTFOUND, one being deleted STORE_EDELETING; then nothing is
 * written and *failed (may be NULL) is the index of the first such id. */
int store_connection_metadata_write(struct store *s, const char *provider_config_key,
				    const char *const *connection_ids, size_t n, const char *json,
				    bool merge, size_t *failed);

/* Replaces the connection's credentials (a JSON object, sealed like an
 * upsert's) and nothing else: no event, metadata and config unchanged. What
 * a token refresh writes (runtime/hostapi/credentials.h). STORE_ENOTFOUND,
 * STORE_EDELETING, STORE_EINVAL; STORE_EURL from a back end that does not
 * implement it. Durable when it returns. */
int store_connection_credentials_set(struct store *s, const char *provider_config_key,
				     const char *connection_id, const char *credentials_json);

/* The connection's credentials lock: held by whoever refreshes its tokens,
 * so that concurrent users wait for one refresh instead of each making
 * their own (a provider often revokes the refresh token it has just
 * exchanged). Within one process it is a mutex picked by the connection's
 * key (a fixed table: two connections may share one, never one two); on
 * PostgreSQL it is also a lock across hosts (a session-level advisory lock
 * on the connection's key, on a database connection kept for it until the
 * unlock), so that hosts sharing the database make one refresh between
 * them. The caller re-reads the connection once it holds the lock. Lock and
 * unlock are paired on the same thread; not reentrant. lock returns 0 or
 * a STORE_E* code (then nothing is held). */
int store_connection_lock(struct store *s, const char *provider_config_key, const char *connection_id);
void store_connection_unlock(struct store *s, const char *provider_config_key,
			     const char *connection_id);

/* ---------------------------------------------------------------------------
 * Idempotency keys (kept 24 h).
 */
struct store_idempotency {
	char *key;
	char *method_path;
	char *request_hash;
	int status;
	char *body;
	int64_t created_at;
};

void store_idempotency_free(struct store_idempotency *r);

/* Looks a key up. A record older than 24 h is as good as absent
 * (STORE_ENOTFOUND). *out is owned by the caller (store_idempotency_free).
 * The caller compares method_path and request_hash with the new request to
 * answer a reuse with another request as an error. */
int store_idempotency_get(struct store *s, const char *key, struct store_idempotency **out);

/* Records a response for a request that is not an upsert (e.g. a refused
 * one). respond must be NULL. Purges records older than 24 h.
 * STORE_ECONFLICT when the key exists. */
int store_idempotency_put(struct store *s, const struct store_idempotency_input *in);

/* ---------------------------------------------------------------------------
 * Events.
 */
enum store_event_status {
	STORE_EVENT_PENDING = 0,
	STORE_EVENT_CLAIMED = 1,
	STORE_EVENT_DONE = 2,
	STORE_EVENT_INTERRUPTED = 3
};

/* "pending", "claimed", "done", "interrupted". */
const char *store_event_status_name(enum store_event_status st);

struct store_event {
	int64_t id;
	char type[32];                             /* STORE_EVENT_* name */
	char connection_id[STORE_ID_MAX + 1];
	char provider_config_key[STORE_ID_MAX + 1];
	char script[STORE_ID_MAX + 1];             /* "": every script of the event; else a retry of one */
	int64_t retry_of;                          /* the execution retried, or 0 */
	enum store_event_status status;
	int64_t generation;                        /* of the dispatcher that claimed it */
	int64_t created_at;
	int64_t claimed_at;
	int64_t finished_at;
};

/* Records an event for a connection (validate-connection,
 * pre-connection-deletion; post-connection-creation goes through
 * store_connection_upsert). The connection need not exist (validate runs
 * before it is stored). Refused with STORE_EDELETING when the connection
 * exists and is being deleted. The event starts claimed by generation when
 * claim is true (the caller runs it itself, e.g. synchronously in a
 * request), pending otherwise. */
int store_event_insert(struct store *s, const char *type, const char *connection_id,
		       const char *provider_config_key, bool claim, int64_t generation,
		       int64_t *event_id);

/* Atomically takes the oldest pending event, marks it claimed by generation
 * and fills *ev. Each event is handed out exactly once, whatever the number
 * of concurrent callers. The claim is not forced to disk (Durability, at
 * the top): create the execution before running anything for the event.
 * STORE_ENOTFOUND when nothing is pending. */
int store_event_claim(struct store *s, int64_t generation, struct store_event *ev);

/* What store_event_claim_start's plan decides for the event it is shown. */
enum store_claim_plan {
	STORE_CLAIM_START = 0, /* create the execution described in *in */
	STORE_CLAIM_ONLY = 1,  /* claim it, start nothing (e.g. the daemon stops) */
	STORE_CLAIM_DONE = 2   /* claim it and mark it done: nothing to run */
};

/* Called by store_event_claim_start with the event just claimed (borrowed
 * for the call). Returns a store_claim_plan; for STORE_CLAIM_START it fills
 * *in (zeroed; event_id must be ev->id; its strings must live until
 * store_event_claim_start returns: ev's own are fine). A negative value
 * rolls the claim back (STORE_ECALLBACK). It runs with the store locked,
 * possibly on another thread (the one committing the batch): it must not
 * call any store_* function (it would deadlock) and must use only what
 * user gives it. */
struct store_execution_input;
typedef int (*store_claim_fn)(void *user, const struct store_event *ev,
			      struct store_execution_input *in);

/* store_event_claim and the creation of the event's first execution in one
 * transaction (one write instead of two): takes the oldest pending event as
 * store_event_claim does, shows it to plan, and does what plan returns. On
 * success *ev is the event (status DONE for STORE_CLAIM_DONE) and
 * *execution_id the execution created, or 0 when plan created none. The
 * call is forced to disk when it returns (Durability: it is an execution
 * creation), so rule 3 holds as with store_execution_create: run the
 * script only after this returned 0. All or nothing: on failure neither
 * the claim nor the execution nor the done mark is written (the event is
 * pending again), and ev and *execution_id are zeroed; plan's side effects
 * are the caller's to undo. STORE_ENOTFOUND when nothing is pending (plan
 * is not called); STORE_ECALLBACK; STORE_EINVAL / STORE_ETOOBIG for an
 * input store_execution_create would refuse.
 *
 * An event for which plan returns STORE_CLAIM_DONE does not end the call:
 * the next pending event is claimed in the same transaction and shown to
 * plan, up to STORE_CLAIM_BATCH events in all. The call returns 0 when it
 * claimed at least one event (even if the queue ran dry after it); *ev is
 * the last event claimed. */
#define STORE_CLAIM_BATCH 32
struct store_execution_end;
int store_event_claim_start(struct store *s, int64_t generation, store_claim_fn plan, void *user,
			    struct store_event *ev, int64_t *execution_id);

/* store_execution_complete(complete_id, complete) and then
 * store_event_claim_start, in one transaction: one write where a worker
 * would make two. complete_id 0: none (store_event_claim_start). Returns
 * 0 or STORE_ENOTFOUND (nothing pending) when the execution's end was
 * written, whatever was claimed; on any other result nothing was written
 * (the end included: record it with store_execution_complete). */
int store_event_claim_next(struct store *s, int64_t complete_id,
			   const struct store_execution_end *complete, int64_t generation,
			   store_claim_fn plan, void *user, struct store_event *ev,
			   int64_t *execution_id);

/* An execution's end for store_event_claim_batch. */
struct store_completion {
	int64_t execution_id;
	const struct store_execution_end *end;
};

/* An event store_event_claim_batch claimed and did not mark done. */
struct store_claimed {
	struct store_event ev;
	int64_t execution_id; /* its first execution; 0 when plan started none */
};

/* store_event_claim_next for a worker that runs several events per write
 * (store_event_claim_batch). */
struct store_claim_batch {
	/* in: the ends to write first, then what to claim */
	const struct store_completion *ends;
	size_t n_ends;
	int64_t generation;
	store_claim_fn plan;
	void *user;
	struct store_claimed *out; /* room for max */
	size_t max;                /* > 0 */
	/* out */
	size_t n;                  /* out[0..n): started or claimed only */
	bool more;                 /* the claim stopped at max with more pending */
	struct store_event last;   /* the last event claimed, one marked done included */
};

/* The n_ends ends (store_execution_complete each), then claims as
 * store_event_claim_start does, but goes on after an event plan starts,
 * until max events are started or claimed only, plan says
 * STORE_CLAIM_ONLY, the queue runs dry, or STORE_CLAIM_BATCH events are
 * claimed in all (those marked done included). All in one transaction,
 * forced to disk as an execution creation is: each of the n scripts may
 * run once this returned 0. A crash after it marks every one of them
 * interrupted (rule 3), also those whose script had not begun yet: a
 * caller batches only scripts that run one after another within
 * milliseconds. Returns 0 when at least one event was claimed,
 * STORE_ENOTFOUND when none was (the ends are written all the same); on
 * any other result nothing was written and the out fields are zeroed. A
 * back end may start fewer than max (PostgreSQL: what its host has
 * claimed ahead). */
int store_event_claim_batch(struct store *s, struct store_claim_batch *b);

/* Marks a claimed event done. STORE_ENOTFOUND; STORE_ESTATE when not claimed. */
int store_event_finish(struct store *s, int64_t event_id);

/* Reads one event. STORE_ENOTFOUND. */
int store_event_get(struct store *s, int64_t event_id, struct store_event *ev);

/* Counts pending events. */
int store_event_count_pending(struct store *s, int64_t *count);

/* ---------------------------------------------------------------------------
 * Executions and their logs.
 */
enum store_exec_kind { STORE_EXEC_EVENT = 0, STORE_EXEC_ACTION = 1 };

enum store_exec_status {
	STORE_EXEC_RUNNING = 0,
	STORE_EXEC_SUCCEEDED = 1,
	STORE_EXEC_FAILED = 2,
	STORE_EXEC_CRASHED = 3,
	STORE_EXEC_TIMED_OUT = 4,
	STORE_EXEC_INTERRUPTED = 5
};

/* "event", "action"; "running", "succeeded", "failed", "crashed",
 * "timed_out", "interrupted". */
const char *store_exec_kind_name(enum store_exec_kind k);
const char *store_exec_status_name(enum store_exec_status st);
/* The status for a name, or -1. */
int store_exec_status_from_name(const char *name);

struct store_execution_input {
	enum store_exec_kind kind;
	int64_t event_id;             /* 0 for an action triggered by the API or by a script */
	int64_t parent_execution_id;  /* the script that triggered this action, or 0 */
	const char *script;           /* plugin name */
	const char *event;            /* event name; NULL for actions */
	const char *connection_id;
	const char *provider_config_key;
	const char *plugin_version;   /* may be NULL */
};

/* Log levels are the SDK's (EVS_LOG_DEBUG..EVS_LOG_ERROR, 0..3). */
struct store_log_line {
	int64_t seq;      /* 1, 2, ... per execution (assigned by the store) */
	int64_t ts;
	int level;
	char *message;    /* in store_log_line_input: borrowed; in results: owned by the execution */
};

struct store_log_line_input {
	int64_t ts;       /* 0: now */
	int level;
	const char *message;
};

struct store_execution {
	int64_t id;
	int64_t event_id;
	int64_t parent_execution_id;
	enum store_exec_kind kind;
	char *script;
	char *event;              /* NULL for actions */
	char *connection_id;
	char *provider_config_key;
	enum store_exec_status status;
	int64_t started_at;
	int64_t ended_at;
	int64_t duration_ms;      /* -1 while running */
	char *error;              /* NULL when none */
	char *plugin_version;     /* NULL when unknown */
	int64_t logs_dropped;
	size_t n_logs;            /* store_execution_get only */
	struct store_log_line *logs;
	char *host_id;            /* the host that ran it; NULL for rows older than host ids */
};

/* Frees e and its log lines. NULL is fine. */
void store_execution_free(struct store_execution *e);
void store_execution_list_free(struct store_execution **items, size_t n);

/* Records a running execution (started_at = now). */
int store_execution_create(struct store *s, const struct store_execution_input *in,
			   int64_t *execution_id);

/* Ends a running execution: status (not RUNNING), error (NULL: none;
 * truncated to STORE_ERROR_MAX), ended_at = now, duration_ms as measured by
 * the caller (< 0: ended_at - started_at). STORE_ESTATE when it is not
 * running (it was finished or interrupted already). */
int store_execution_finish(struct store *s, int64_t execution_id, enum store_exec_status status,
			   const char *error, int64_t duration_ms);

/* Appends n log lines in one transaction and adds dropped (lines the caller
 * discarded under its per-execution cap) to logs_dropped. STORE_ENOTFOUND. */
int store_execution_append_logs(struct store *s, int64_t execution_id,
				const struct store_log_line_input *lines, size_t n,
				int64_t dropped);

/* How an execution ended, for store_execution_complete. */
struct store_execution_end {
	enum store_exec_status status;              /* not RUNNING */
	const char *error;                          /* NULL: none; truncated to STORE_ERROR_MAX */
	int64_t duration_ms;                        /* < 0: ended_at - started_at */
	const struct store_log_line_input *lines;   /* its remaining log lines (borrowed) */
	size_t n_lines;
	int64_t dropped;                            /* lines discarded, not counted yet */
	int64_t event_id;                           /* > 0: also mark this claimed event done */
};

/* store_execution_finish, store_execution_append_logs of the execution's
 * remaining lines and (end->event_id > 0, for its event's last script)
 * store_event_finish, in one transaction: one write instead of three. Its
 * durability is theirs (Durability, at the top: none of the three is
 * forced to disk; store_recover() makes an execution or event whose end
 * was lost interrupted). All or nothing: STORE_ESTATE when the execution
 * is not running (a shutdown marked it interrupted) or the event is not
 * claimed, STORE_ENOTFOUND when either does not exist; then nothing is
 * written, not even the lines: the caller may write them with
 * store_execution_append_logs and the rest with the separate calls. */
int store_execution_complete(struct store *s, int64_t execution_id,
			     const struct store_execution_end *end);

/* Reads one execution with its log lines (in seq order). *out is owned by
 * the caller (store_execution_free). STORE_ENOTFOUND. */
int store_execution_get(struct store *s, int64_t execution_id, struct store_execution **out);

/* Filters for store_execution_list; NULL / -1 / 0 mean "any". */
struct store_execution_filter {
	const char *connection_id;
	const char *provider_config_key;  /* the integration */
	const char *script;
	const char *event;                /* an event name, or "action" for actions */
	int status;                       /* enum store_exec_status, or -1 */
	size_t limit;                     /* 0: 50; capped at STORE_LIST_MAX */
	int64_t cursor;                   /* 0: from the newest; else a next_cursor */
};

/* Lists executions, newest first, without their log lines. *next_cursor is
 * the cursor of the next page, 0 when this page is the last. *items is owned
 * by the caller (store_execution_list_free); NULL and *n 0 when empty. */
int store_execution_list(struct store *s, const struct store_execution_filter *f,
			 struct store_execution ***items, size_t *n, int64_t *next_cursor);

/* POST /executions/{id}/retry: records a NEW pending event of the same type
 * for the same connection that runs only this execution's script, linked to
 * it (retry_of). The dispatcher picks it up as any other event. Refused with
 * STORE_ESTATE while the execution runs, STORE_EINVAL for an action (its
 * input is not kept) and for validate-connection (its candidate connection
 * belonged to a request that is gone), STORE_EDELETING for a connection
 * being deleted. */
int store_execution_retry(struct store *s, int64_t execution_id, int64_t *event_id);

/* ---------------------------------------------------------------------------
 * Recovery at start-up (before the dispatcher starts).
 */
struct store_recovery {
	int64_t executions_interrupted; /* running -> interrupted */
	int64_t events_requeued;        /* claimed, never started -> pending */
	int64_t events_interrupted;     /* claimed, started (or validate-connection) ->
					 * interrupted (never re-run silently) */
};

/* Executions left running by a stopped daemon become interrupted (ended_at
 * now, error "interrupted: the daemon stopped while it ran"); claimed events
 * with no execution go back to pending, but for validate-connection events
 * (their request is gone); every other claimed event becomes interrupted.
 * One transaction. With a shared back end, only this host's rows (its
 * host_id): the other hosts' are theirs, or their survivors'. */
int store_recover(struct store *s, struct store_recovery *r);

/* Marks every running execution of this host interrupted (graceful
 * shutdown past its deadline). *count may be NULL. */
int store_interrupt_running(struct store *s, const char *error, int64_t *count);

/* ---------------------------------------------------------------------------
 * The plugin version ledger. These two have exactly the shape of
 * struct loader_ledger's callbacks (loader.h); user is the struct store.
 */

/* 0 and version/hash filled when name has a record, 1 when none, negative on
 * error. */
int store_ledger_get(void *user, const char *name, char version[64],
		     uint8_t hash[STORE_HASH_BYTES]);

/* Records name's accepted version and hash, keeping the highest version
 * (semantic X.Y.Z order): a lower version than the one recorded leaves the
 * record as it is (an allowed downgrade does not lower the bar); the same
 * version replaces the hash. */
int store_ledger_put(void *user, const char *name, const char *version,
		     const uint8_t hash[STORE_HASH_BYTES]);

/* ---------------------------------------------------------------------------
 * Connection tags and webhook URL override (PATCH /connections/{id}).
 */

/* Replaces the tags (a JSON object, when tags_json is non-NULL) and the
 * webhook URL override (when set_override; NULL clears it) of one
 * connection, and sets updated_at. STORE_ENOTFOUND, STORE_EDELETING,
 * STORE_EINVAL (tags not an object). Forced to disk. */
int store_connection_patch(struct store *s, const char *provider_config_key,
			   const char *connection_id, const char *tags_json, bool set_override,
			   const char *webhook_url_override);

/* ---------------------------------------------------------------------------
 * Asynchronous actions (POST /action/trigger with X-Async: true). A record
 * is written before the action runs and holds its result once it ended; it
 * is kept STORE_ASYNC_TTL_MS after it was created (records older than that
 * are purged by store_async_action_create and read as absent).
 */
#define STORE_ASYNC_TTL_MS (24LL * 3600 * 1000)
#define STORE_ASYNC_ID_MAX 64

enum store_async_status {
	STORE_ASYNC_RUNNING = 0,
	STORE_ASYNC_SUCCEEDED = 1,
	STORE_ASYNC_FAILED = 2
};

struct store_async_action {
	char id[STORE_ASYNC_ID_MAX + 1];
	char *provider_config_key;
	char *connection_id;
	char *action;
	enum store_async_status status;
	int64_t execution_id;   /* 0 until it ended (or when it never ran) */
	char *output;           /* JSON text when succeeded, else NULL */
	char *error;            /* JSON object text {"message","payload"} when failed, else NULL */
	int64_t created_at;
	int64_t finished_at;
};

void store_async_action_free(struct store_async_action *a);

/* Records a running asynchronous action under id (the caller's UUID), and
 * purges expired records. Forced to disk. STORE_ECONFLICT when id exists. */
int store_async_action_create(struct store *s, const char *id, const char *provider_config_key,
			      const char *connection_id, const char *action);

/* Ends it: ok with output_json (JSON text; NULL: "null"), or failed with
 * error_json (a JSON object). STORE_ENOTFOUND; STORE_ESTATE when it ended
 * already. Forced to disk. */
int store_async_action_finish(struct store *s, const char *id, int64_t execution_id, bool ok,
			      const char *output_json, const char *error_json);

/* Reads one record. *out is owned by the caller (store_async_action_free).
 * STORE_ENOTFOUND (also for an expired record). */
int store_async_action_get(struct store *s, const char *id, struct store_async_action **out);

/* store_recover() also ends the records a stopped daemon left running:
 * failed, with error {"message":"interrupted: the daemon stopped while it
 * ran","payload":null}. On a store shared by several hosts, only this
 * host's; a dead host's are ended with its executions. */

/* ---------------------------------------------------------------------------
 * Incoming webhook deliveries (POST <webhook path>/<integration>): recorded
 * before the 200, then forwarded at least once. A delivery that is no longer
 * pending is kept STORE_WEBHOOK_TTL_MS after it was received (older ones are
 * purged by store_webhook_insert); a pending one until it ends.
 */
#define STORE_WEBHOOK_BODY_MAX (1u << 20)
#define STORE_WEBHOOK_TTL_MS (7LL * 24 * 3600 * 1000)

enum store_webhook_status {
	STORE_WEBHOOK_PENDING = 0,   /* waiting for (another) forwarding attempt */
	STORE_WEBHOOK_DELIVERED = 1, /* the forward URL answered 2xx */
	STORE_WEBHOOK_FAILED = 2,    /* attempts exhausted */
	STORE_WEBHOOK_STORED = 3     /* no forward URL configured: recorded only */
};

/* "pending", "delivered", "failed", "stored". */
const char *store_webhook_status_name(enum store_webhook_status st);

struct store_webhook {
	int64_t id;
	char *integration;
	char *headers;           /* JSON object of the forwarded request headers */
	char *body;              /* the raw body (may hold NULs: use body_len) */
	size_t body_len;
	enum store_webhook_status status;
	int attempts;
	int64_t received_at;
	int64_t next_attempt_at;
	int64_t delivered_at;    /* 0 unless delivered */
	char *last_error;        /* NULL when none */
};

void store_webhook_free(struct store_webhook *w);
void store_webhook_list_free(struct store_webhook **items, size_t n);

/* Records a delivery (status PENDING with next_attempt_at now, or STORED),
 * and purges expired ones. Forced to disk. */
int store_webhook_insert(struct store *s, const char *integration, const char *headers_json,
			 const char *body, size_t body_len, enum store_webhook_status status,
			 int64_t *id);

/* The oldest PENDING delivery whose next_attempt_at <= now, with its body.
 * STORE_ENOTFOUND when none is due. On a store shared by several hosts
 * (PostgreSQL) the delivery is leased to the caller for a minute (its
 * next_attempt_at moves ahead, so no other host takes it meanwhile) until
 * store_webhook_attempt records the attempt. */
int store_webhook_due(struct store *s, int64_t now, struct store_webhook **out);

/* Records one forwarding attempt: attempts + 1, last_error (NULL: none),
 * and status DELIVERED, FAILED or PENDING again at next_attempt_at.
 * STORE_ENOTFOUND. */
int store_webhook_attempt(struct store *s, int64_t id, enum store_webhook_status status,
			  const char *error, int64_t next_attempt_at);

/* Lists deliveries (without bodies), newest first; integration NULL: all.
 * cursor 0: from the newest, else a *next_cursor (0 after the last page). */
int store_webhook_list(struct store *s, const char *integration, size_t limit, int64_t cursor,
		       struct store_webhook ***items, size_t *n, int64_t *next_cursor);

#endif
