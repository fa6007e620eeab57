/*
 * api.h - the routes of evscriptd's HTTP API (docs/api.md is the contract),
 * plugged into the server framework of http.h.
 *
 * The handlers share one struct api_context, given to the server as its
 * `user`. The daemon fills the public fields, calls api_context_init() once
 * before the server starts and api_context_destroy() after it is freed.
 *
 * This header is the daemon's interface; what the api_*.c files share
 * among themselves (handlers, helpers, the pure body parsers) is in
 * api_priv.h.
 */
#ifndef EVS_API_H
#define EVS_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dispatch.h"
#include "http.h"
#include "store.h"

#define API_ERROR_MAX 1024          /* reload error messages */

/* What the daemon's reload function reports. */
enum api_reload_status {
	API_RELOAD_OK = 0,        /* a new generation is current */
	API_RELOAD_FAILED = -1,   /* config error: the current generation stays; error says why */
	API_RELOAD_BUSY = -2      /* another reload runs now */
};

struct api_reload_report {
	int64_t generation;          /* FAILED: the generation that stays in service */
	struct generation *built;    /* OK: the generation this reload built, one
	                                reference owned by the caller (generation_unref);
	                                NULL otherwise */
	char error[API_ERROR_MAX];   /* "" unless FAILED */
};

/* Builds and switches to a new generation, synchronously, on the calling
 * thread; never waits for another reload (API_RELOAD_BUSY instead). The
 * report describes what this call did, not what is current when it returns:
 * another reload (SIGHUP) may have switched generations again since. */
typedef int (*api_reload_fn)(void *user, struct api_reload_report *rep);

struct api_private;   /* the API's own state (api.c) */

struct api_context {
	/* Set by the daemon; borrowed, must outlive the server. */
	struct store *store;
	struct dispatch *dispatch;
	struct http_server *server;   /* for /metrics; may be NULL until started */
	api_reload_fn reload;         /* NULL: POST /reload answers 422 */
	void *reload_user;
	int64_t started_at_ms;

	/* Owned by the API: api_context_init() makes it, api_context_destroy()
	 * frees it; the daemon does not look inside. */
	struct api_private *priv;
};

/* Makes the private part (the public fields are left as they are).
 * Returns 0, STATUS_ENOMEM, or status_from_errno() of pthread_mutex_init's; on
 * failure ctx->priv is NULL and there is nothing to destroy. */
int api_context_init(struct api_context *ctx);

/* Frees the private part and sets ctx->priv to NULL; ctx itself (the
 * caller's) and its public fields are left alone. Accepts NULL and a
 * context whose init failed. No handler may be running. */
void api_context_destroy(struct api_context *ctx);

/* Starts the API's background work (the webhook forwarder) once the
 * public fields are set: 0 or a negative status code. */
int api_jobs_begin(struct api_context *ctx);

/* Stops the API's background work: refuses new jobs (asynchronous actions,
 * webhook forwarding) and waits for those running. Call it after the
 * server is freed and before the dispatcher is. NULL is fine. */
void api_jobs_stop(struct api_context *ctx);

/* Remembers the error of the last reload for GET /plugins (NULL or "":
 * the last reload succeeded); the text is copied, cut to API_ERROR_MAX.
 * Thread-safe. */
void api_set_last_reload_error(struct api_context *ctx, const char *err);

/* The route table, static; *n gets its length. Give it to http_config with
 * the context as `user`. */
const struct http_route *api_routes(size_t *n);

/* The stable reason code of a LOADER_E* refusal ("bad_signature", ...), as
 * GET /plugins shows it; the daemon's config check prints the same. */
const char *api_loader_reason_code(int code, const char *name);

#endif
