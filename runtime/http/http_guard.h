/*
 * http_guard.h - private to runtime/http: who holds the server's connections,
 * and the watchdog that takes them back (see http.c for the request's life).
 *
 * libmicrohttpd's own idle timeout restarts with every byte, so a client that
 * trickles one header line every few seconds holds its connection (and, with
 * a thread per connection, a thread) for ever. The guard keeps one record per
 * open connection with its phase and since when it is in it, and a watchdog
 * thread shuts down (shutdown(2), which wakes the connection's thread) every
 * connection that stays too long in a phase that is the client's doing:
 *   - GUARD_HEADERS: from the accept, or from the end of the previous request
 *     on a kept-alive connection, to the end of the request's headers:
 *     header_timeout_s (1 s while the server is under pressure, below);
 *   - GUARD_BODY: from the end of the headers to the end of the body:
 *     body_timeout_s;
 *   - GUARD_HANDLER: the handler and the response: no limit here (handlers
 *     are bounded; libmicrohttpd's idle timeout covers a client that does not
 *     read its response).
 * Under pressure (more than max_connections - max_connections/4 open),
 * connections that wait in GUARD_HEADERS for more than 1 s are cut first;
 * past max_connections - max_connections/8, new requests are shed (http.c answers 503 "overloaded" with Retry-After). A
 * per-address cap (max_per_address, 0: none) is applied when a connection is
 * accepted (libmicrohttpd's accept policy callback).
 *
 * Every connection cut and every refusal is counted with log_refusal(), never
 * logged one line each; the watchdog also flushes those summaries.
 *
 * Threads: the notify and policy callbacks run on libmicrohttpd's threads,
 * the watchdog on its own; one mutex guards the table. A record is removed in
 * the MHD_CONNECTION_NOTIFY_CLOSED callback, which libmicrohttpd makes before
 * it closes the socket, so the watchdog never shuts down a reused descriptor.
 */
#ifndef EVS_HTTP_GUARD_H
#define EVS_HTTP_GUARD_H

#include <stdbool.h>
#include <sys/socket.h>

#include <microhttpd.h>

enum http_guard_phase { GUARD_HEADERS = 0, GUARD_BODY, GUARD_HANDLER };

struct http_guard_config {
	unsigned max_connections;   /* libmicrohttpd's limit, > 0 */
	unsigned max_per_address;   /* 0: no per-address cap */
	unsigned header_timeout_s;  /* > 0 */
	unsigned body_timeout_s;    /* > 0 */
};

struct http_guard;

/* Builds the guard and starts its watchdog. Returns 0 or HTTP_ENOMEM (the
 * thread could not start); *out is the caller's, freed by http_guard_free(). */
int http_guard_new(const struct http_guard_config *cfg, struct http_guard **out);

/* Stops the watchdog and frees the guard. Call after MHD_stop_daemon(). NULL
 * is a no-op. */
void http_guard_free(struct http_guard *g);

/* MHD_OPTION_NOTIFY_CONNECTION's callback (cls: the guard). */
void http_guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
		       enum MHD_ConnectionNotificationCode code);

/* The accept policy callback (cls: the guard): MHD_NO past the per-address
 * cap (counted as a refusal). */
enum MHD_Result http_guard_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen);

/* Moves conn's record to phase, since now. */
void http_guard_phase(struct http_guard *g, struct MHD_Connection *conn, enum http_guard_phase phase);

/* True when new requests are to be shed (more than max_connections -
 * max_connections/8 connections are open). */
bool http_guard_shedding(struct http_guard *g);

/* Open connections now. */
unsigned http_guard_open(struct http_guard *g);

#endif
