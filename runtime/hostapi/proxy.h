/*
 * proxy.h - host->proxy() and host->paginate(): requests to a provider's API
 * with libcurl, credentials injected, retries, pagination.
 *
 * Pure of the daemon: it runs in the executor process (isolated mode) or on
 * the worker thread (in-process mode). Everything it needs comes in a
 * proxy_target that the daemon resolves (hostapi_proxy_target) and that can
 * travel to the executor as JSON.
 */
#ifndef EVS_PROXY_H
#define EVS_PROXY_H

#include <evscript/sdk.h>
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* The provider's API as one connection sees it. All strings owned. */
struct proxy_target {
	char *base_url;              /* interpolated, no trailing '/' */
	struct config_map headers;   /* interpolated auth/static headers (secrets!) */
	struct config_map query;     /* interpolated query params (secrets!) */
	char *basic_user;            /* BASIC credentials, or NULL */
	char *basic_password;
	struct config_retry retry;   /* header names for Retry-After style waits */
	struct config_paginate paginate;
};

void proxy_target_free(struct proxy_target *t);  /* wipes secrets; NULL is fine */
/* To and from JSON, for the trip to the executor. */
struct json_object *proxy_target_to_json(const struct proxy_target *t);
int proxy_target_from_json(struct json_object *o, struct proxy_target **out);

/* Writes a line to the execution's log (the proxy logs each request:
 * method, URL without secrets, status, duration). */
typedef void (*proxy_log_fn)(void *user, int level, const char *msg);

/* One execution's connection reuse (a CURL easy handle) and settings. */
struct proxy_session;

/* deadline_us: util_mono_us() time by which everything must be done
 * (retries are capped by it). */
int proxy_session_new(const struct proxy_target *target, int64_t deadline_us, proxy_log_fn log,
		      void *log_user, struct proxy_session **out);
void proxy_session_free(struct proxy_session *s);

/* host->proxy(): EVS_OK with *resp (free with proxy_response_free), or an
 * EVS_E* code. */
int proxy_request(struct proxy_session *s, const struct evs_request *req,
		  struct evs_response **resp);
void proxy_response_free(struct evs_response *resp);

/* host->paginate(). */
int proxy_paginate(struct proxy_session *s, const struct evs_request *req,
		   const struct evs_paginate_options *opts, evs_page_fn on_page, void *user);

#endif
