/*
 * proxy.h - host->proxy() and host->paginate(): requests to a provider's API
 * with libcurl, credentials injected, retries, pagination.
 *
 * Runs in the daemon only, for both modes: on the worker thread calling the
 * plugin (in-process), or on the daemon thread serving an isolated
 * execution, which receives the executor's requests over its socket
 * (runtime/executor). The credentials (the proxy_target) thus never enter
 * an executor process. Everything it needs comes in a proxy_target that the
 * daemon resolves (hostapi_proxy_target). paginate's paging logic is
 * paginate.c (the executor runs it itself over its RPC proxy).
 */
#ifndef EVS_PROXY_H
#define EVS_PROXY_H

#include <evscript/sdk.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* OAuth 1.0a signing keys (OAUTH1, TBA): each attempt gets an
 * Authorization header signed with them (proxy_oauth1.c). All owned. */
struct proxy_oauth1 {
	char *consumer_key;          /* NULL: no OAuth 1.0a signing */
	char *consumer_secret;
	char *token;
	char *token_secret;
	char *signature_method;      /* "HMAC-SHA256" or "PLAINTEXT" */
	char *realm;                 /* or NULL */
};

/* The provider's API as one connection sees it. All strings owned. */
struct proxy_target {
	char *base_url;              /* interpolated, no trailing '/' */
	struct config_map headers;   /* interpolated auth/static headers (secrets!) */
	struct config_map query;     /* interpolated query params (secrets!) */
	char *basic_user;            /* BASIC credentials, or NULL */
	char *basic_password;
	char *aws_sigv4;             /* "aws:amz:REGION:SERVICE": libcurl signs each request
	                                (CURLOPT_AWS_SIGV4) with aws_key / aws_secret; or NULL */
	char *aws_key;
	char *aws_secret;
	struct proxy_oauth1 oauth1;
	struct config_retry retry;   /* header names for Retry-After style waits */
	struct config_paginate paginate;
};

void proxy_target_free(struct proxy_target *t);  /* wipes secrets; NULL is fine */

/* Caps and defaults (see proxy.c for the rules they enforce). */
#define PROXY_BODY_MAX (16u << 20)        /* response body; past it EVS_ENOMEM */
#define PROXY_TIMEOUT_MS_DEFAULT 30000    /* per attempt when req->timeout_ms is 0 */
#define PROXY_BACKOFF_BASE_MS 100         /* retry n waits 100 ms * 2^n, half of it jitter */
#define PROXY_BACKOFF_MAX_MS 10000
#define PROXY_RETRY_ON_MAX 32             /* req->retry_on / proxy_session_set_retry_on statuses */

/* proxy_override.c: the base URL for a request with base_url_override
 * (ABI 1.1). override NULL: EVS_OK with *out NULL (use base_url). Else
 * *out is a malloc'd copy without trailing '/', when override is an
 * http(s) URL without userinfo, query or fragment, with base_url's scheme,
 * and a host equal to base_url's or, for DNS names of three labels or
 * more, sharing its parent domain (api.example.com: x.example.com);
 * otherwise EVS_EDENIED (EVS_EINVAL for a URL that does not parse). */
int proxy_override_base(const char *base_url, const char *override, char **out);

/* Writes a line to the execution's log (the proxy logs each attempt:
 * "GET https://host/path -> 200 (12 ms)", URL without query string or
 * userinfo, every credential of the target scrubbed). level is an
 * enum evs_log_level. msg is lent for the call. */
typedef void (*proxy_log_fn)(void *user, int level, const char *msg);

/* One execution's connection reuse (a CURL easy handle) and settings. */
struct proxy_session;

/* target is copied (the caller keeps and frees its own). deadline_us:
 * util_mono_us() time by which everything must be done (per-attempt
 * timeouts and retries are capped by it); 0 means none. log may be NULL.
 * *out owned by the caller (proxy_session_free). A session is used by one
 * thread at a time. */
int proxy_session_new(const struct proxy_target *target, int64_t deadline_us, proxy_log_fn log,
		      void *log_user, struct proxy_session **out);
void proxy_session_free(struct proxy_session *s);

/* Makes the session's requests abortable: cancelled(user) is asked about
 * once a second or more often during a transfer, every 50 ms of a retry
 * wait and before each attempt; when it says true the request ends with
 * EVS_ETIMEDOUT. The daemon serving an isolated execution uses it to stop
 * a request once its executor is gone (deadline, drain). cancelled is
 * called on the thread using the session. */
void proxy_session_set_cancel(struct proxy_session *s, bool (*cancelled)(void *user), void *user);

/* Statuses retried besides 5xx and 429 (the proxy API's Retry-On header):
 * at most PROXY_RETRY_ON_MAX, copied; n 0 clears them. */
void proxy_session_set_retry_on(struct proxy_session *s, const int *codes, size_t n);

/* host->proxy(): EVS_OK with *resp whenever an HTTP response arrived,
 * whatever its status (free with proxy_response_free: the struct, the
 * headers array, each header's name and value, and the NUL-terminated body
 * are separate malloc'd blocks), or an EVS_E* code with *resp NULL:
 * EVS_EDENIED for a URL outside the base, EVS_EINVAL for a malformed
 * request (method, header with CR/LF), EVS_ENETWORK, EVS_ETIMEDOUT,
 * EVS_ENOMEM (body over PROXY_BODY_MAX). A request header named like one
 * of the target's headers replaces it (as in Nango); a query parameter
 * named like one of the target's is dropped (auth wins). */
int proxy_request(struct proxy_session *s, const struct evs_request *req,
		  struct evs_response **resp);
void proxy_response_free(struct evs_response *resp);

/* host->paginate(): paginate_run() (paginate.h) over this session;
 * opts (may be NULL) override the target's paginate settings. */
int proxy_paginate(struct proxy_session *s, const struct evs_request *req,
		   const struct evs_paginate_options *opts, evs_page_fn on_page, void *user);

#endif
