/*
 * http.h - the HTTP server layer: a small framework over libmicrohttpd that
 * the API handlers (runtime/http/api_*.c) plug into.
 *
 * What the framework does for every request, before a handler runs:
 *   - routing on the raw request path: "/connections/{connection_id}";
 *     segments are split on '/' first and percent-decoded after, so "%2F"
 *     inside a path parameter is a '/' in the value, never a separator;
 *     among the routes that match, the most specific wins (a literal segment
 *     beats a parameter, compared from the left);
 *   - authentication: every route but the public ones needs
 *     "Authorization: Bearer <secret key>"; a missing or wrong key gets 401
 *     {"error":{"code":"unauthorized",...}} and nothing else (an unknown path
 *     gets 401 too, so an unauthenticated client learns nothing);
 *   - unknown path: 404 "not_found"; known path, other method: 405
 *     "method_not_allowed" with an Allow header;
 *   - body cap: a Content-Length over the cap gets 413 "request_too_large"
 *     before the body is read; a chunked body that grows past the cap gets
 *     413 too (the rest is read and dropped, never stored, up to a limit
 *     past which the connection is closed);
 *   - one access log line per request (log_info "http": method, path without
 *     the query string, status, duration) and per-status-class counters;
 *     a request refused before a handler (401, 404, 405, 413, 414, 431, a
 *     shed 503) and every connection libmicrohttpd or the guard turns away
 *     are counted with log_refusal() instead: one summary line per 10 s;
 *   - a request-target over 8 KiB gets 414 "uri_too_long", headers over
 *     16 KiB or 100 fields 431 "headers_too_large" (libmicrohttpd answers a
 *     request that does not even fit its 64 KiB per connection itself);
 *   - connections no client can hoard (http_guard.h): the headers of a
 *     request must arrive within header_timeout_s, its body within
 *     body_timeout_s, at most max_per_address connections per client
 *     address; past 3/4 of max_connections, connections idle between
 *     requests are closed after 1 s; past 7/8, requests are shed with 503
 *     "overloaded", "Retry-After: 1" and "Connection: close".
 *
 * Threading: libmicrohttpd runs one thread per connection
 * (MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD), capped
 * by max_connections. Handlers run on those threads and MAY BLOCK for a long
 * time (DELETE /connections waits for scripts up to their deadline): a slow
 * request never delays another one. A thread pool would not do: each pool
 * thread runs an event loop over many connections, so one blocking handler
 * would stall every connection on its thread. Handlers must be thread-safe
 * and bounded in time (http_server_free() waits for them).
 *
 * Errors: functions return 0 or a negative HTTP_E* code; status_str()
 * says what it means.
 */
#ifndef EVS_HTTP_H
#define EVS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "status.h"

#define HTTP_DEFAULT_MAX_BODY (1024 * 1024)  /* bytes; larger bodies get 413 */
#define HTTP_DEFAULT_MAX_CONNECTIONS 1024    /* = at most this many handler threads */
#define HTTP_DEFAULT_IDLE_TIMEOUT_S 30       /* no byte either way for this long: closed */
#define HTTP_DEFAULT_HEADER_TIMEOUT_S 10     /* a request's headers must arrive within this */
#define HTTP_DEFAULT_BODY_TIMEOUT_S 60       /* and its body within this after them */
#define HTTP_MAX_ROUTES 256
#define HTTP_MAX_SEGMENTS 16                 /* path segments in a pattern or a routed path */
#define HTTP_MAX_RESPONSE_HEADERS 16         /* extra headers per response */
#define HTTP_MAX_ERROR_MESSAGE 1024          /* http_respond_error() messages are cut here */

/* The codes http functions return (defined in status.h, text by
 * status_str()):
 *   HTTP_EINVAL     invalid configuration or argument
 *   HTTP_ENOMEM     out of memory
 *   HTTP_ELISTEN    the server could not listen on the address
 *   HTTP_ESTATE     not allowed in this state (e.g. started twice)
 *   HTTP_ETIMEDOUT  requests still in flight when the wait ended
 *   HTTP_EBADBODY   request body is not what was expected; 400 already answered
 *   HTTP_ERESPONDED the response was already set; the first one stands */

/* Kept for the unit tests that call it: status_str(err). New code calls
 * status_str(). */
const char *http_strerror(int err);

struct http_server;
struct http_request;   /* valid only during the handler call */
struct http_response;  /* idem */

/* A handler answers with one of the http_respond_*() calls and returns 0.
 * A negative return without a response gives 500 "server_error"; a
 * negative return after a response (e.g. http_json_body() answered 400)
 * sends that response. Returning without any response is a bug: 500. */
typedef int (*http_handler_fn)(struct http_request *req, struct http_response *resp, void *user);

struct http_route {
	const char *method;    /* "GET", "POST", ... (exact, case-sensitive as in HTTP) */
	const char *pattern;   /* "/connections/{connection_id}": '/'-separated, a
	                          segment is a literal or a whole "{name}", name [A-Za-z0-9_]+ */
	http_handler_fn fn;
	bool public;           /* no authentication (/healthz) */
};

struct http_config {
	const char *listen;        /* "127.0.0.1:3003", "[::1]:3003", "localhost:0"; port 0
	                              picks a free port (see http_server_port()). Required. */
	const char *secret_key;    /* the bearer token; required, non-empty */
	size_t max_body;           /* 0: HTTP_DEFAULT_MAX_BODY */
	unsigned max_connections;  /* 0: HTTP_DEFAULT_MAX_CONNECTIONS */
	unsigned idle_timeout_s;   /* 0: HTTP_DEFAULT_IDLE_TIMEOUT_S */
	unsigned max_per_address;  /* open connections from one client address; 0: no cap */
	unsigned header_timeout_s; /* 0: HTTP_DEFAULT_HEADER_TIMEOUT_S */
	unsigned body_timeout_s;   /* 0: HTTP_DEFAULT_BODY_TIMEOUT_S */
	const struct http_route *routes;
	size_t n_routes;           /* at most HTTP_MAX_ROUTES */
	void *user;                /* passed to every handler */
};

/* Request counters, for /metrics. by_class[0] counts 1xx ... by_class[4] 5xx
 * responses queued by this server (libmicrohttpd's own answers to malformed
 * requests are not seen). in_flight: requests begun and not yet completed. */
struct http_stats {
	uint64_t requests;
	uint64_t by_class[5];
	unsigned in_flight;
	unsigned connections;      /* open now (the guard's count) */
	uint64_t refused;          /* requests and connections refused (log_refusal_total()) */
};

/* Validates cfg and builds a server (not yet listening). Copies everything in
 * cfg except `user`; the secret is kept only as a hash. On failure returns a
 * negative code, writes a message a user can read into err (when errlen > 0)
 * and sets *out to NULL. The caller owns *out and frees it with
 * http_server_free(). */
int http_server_new(const struct http_config *cfg, struct http_server **out, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Binds the address and starts serving. Returns 0, HTTP_ELISTEN (err says
 * why, e.g. the address is in use) or HTTP_ESTATE when called twice. */
int http_server_start(struct http_server *srv, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The bound port once started (useful with port 0), else 0. */
uint16_t http_server_port(const struct http_server *srv);

/* Replaces the secret key (reload). Thread-safe; requests authenticated
 * after the call use the new key. Returns 0 or HTTP_EINVAL (empty key). */
int http_server_set_secret(struct http_server *srv, const char *secret_key);

/* Stops accepting connections: the listening socket is shut down, so new
 * connection attempts are refused. Requests already being processed
 * complete; a new request arriving on a kept-alive connection gets 503
 * "shutting_down" with "Connection: close". Idempotent; thread-safe. */
void http_server_quiesce(struct http_server *srv);

/* Waits until no request is in flight, at most timeout_ms (< 0: no limit).
 * Meant after http_server_quiesce(). Returns 0 or HTTP_ETIMEDOUT. */
int http_server_drain(struct http_server *srv, int timeout_ms);

/* A snapshot of the counters. Thread-safe. */
void http_server_stats(struct http_server *srv, struct http_stats *out);

/* Quiesces, waits for every request in flight (without a limit: handlers
 * must be bounded), stops the server and frees it. NULL is a no-op. Must not
 * be called from a handler. */
void http_server_free(struct http_server *srv);

/* ---- In a handler. Returned strings belong to the request and live until
 * the handler returns. ---- */

const char *http_method(const struct http_request *req);
/* The raw (still percent-encoded) path, without the query string. */
const char *http_path(const struct http_request *req);
/* A path parameter by name, percent-decoded; NULL if the route has none. */
const char *http_param(const struct http_request *req, const char *name);
/* A query argument, decoded ('+' is a space); NULL when absent, valueless
 * ("?flag") or holding a NUL byte. The last one wins when repeated. */
const char *http_query(const struct http_request *req, const char *name);
/* Calls fn for every query argument in order (decoded; value NULL when
 * valueless; arguments holding a NUL byte are skipped) until fn returns
 * non-zero; returns that value, or 0. */
typedef int (*http_query_fn)(void *user, const char *name, const char *value);
int http_query_each(const struct http_request *req, http_query_fn fn, void *user);
/* The same over the request headers, in the order received (names as
 * the client wrote them). */
int http_header_each(const struct http_request *req, http_query_fn fn, void *user);
/* A request header, name case-insensitive; NULL when absent. */
const char *http_header(const struct http_request *req, const char *name);
/* Calls fn for each request header (headers true) or each query argument
 * (false; decoded, NULL value for "?flag"), in the order received, until fn
 * returns false. Strings live until the handler returns. */
void http_each(const struct http_request *req, bool headers,
	       bool (*fn)(void *user, const char *name, const char *value), void *user);
/* The raw body, NUL-terminated (the NUL is not counted); "" when none. */
const char *http_body(const struct http_request *req, size_t *len);

/* Parses the body as JSON. On success *out is a new reference owned by the
 * caller (json_object_put()). When the body is empty or not valid JSON
 * (json-c's strict mode: no comments, single quotes or trailing commas), or
 * has data after the value, answers 400 "invalid_json" with json-c's reason
 * and the byte offset; when it is JSON but holds invalid UTF-8, NaN or an
 * infinity, a lone surrogate or \u0000 (json_check.h), answers 400
 * "invalid_body". Either way sets *out to NULL and returns HTTP_EBADBODY: the
 * handler just returns that code. */
int http_json_body(struct http_request *req, struct json_object **out)
	__attribute__((warn_unused_result));

/* ---- Responses. The first response set stands; a later one returns
 * HTTP_ERESPONDED and changes nothing. All copy their inputs. ---- */

/* Serializes obj as the body with Content-Type application/json. Takes
 * ownership of obj (also on failure). obj NULL (an allocation failed in the
 * handler) answers 500 "server_error" and returns HTTP_ENOMEM. */
int http_respond_json(struct http_response *resp, unsigned status, struct json_object *obj);

/* {"error":{"code":code,"message":<printf>}}, application/json. */
int http_respond_error(struct http_response *resp, unsigned status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* len bytes of body (any bytes, copied) with the given Content-Type. */
int http_respond_bytes(struct http_response *resp, unsigned status, const char *content_type,
		       const void *body, size_t len);

/* A text body (e.g. Prometheus exposition) with the given Content-Type. */
int http_respond_text(struct http_response *resp, unsigned status, const char *content_type, const char *text);

/* A streamed response (server-sent events): the body is what read() gives,
 * sent as it comes (chunked), until read() says the end. read(cls, buf, max,
 * stopping) runs on the connection's own thread and may block, but for a
 * second at most, so that a shutdown is never held up: it returns the bytes
 * it wrote into buf (1..max), or HTTP_STREAM_END. stopping is true once the
 * server quiesces: the stream should end now. A client that goes away is
 * seen at the next write, so a stream that is idle should write something
 * (an SSE comment) every few seconds. free_fn(cls) runs once, when the
 * response is done or could not be sent, also when this call fails. */
#define HTTP_STREAM_END (-1L)
typedef long (*http_stream_read_fn)(void *cls, char *buf, size_t max, bool stopping);
typedef void (*http_stream_free_fn)(void *cls);
int http_respond_stream(struct http_response *resp, unsigned status, const char *content_type,
			http_stream_read_fn read, http_stream_free_fn free_fn, void *cls);

/* An extra response header (before or after the respond call). Returns
 * HTTP_EINVAL for a name or value with CR/LF, or beyond
 * HTTP_MAX_RESPONSE_HEADERS. */
int http_response_header(struct http_response *resp, const char *name, const char *value);

#endif
