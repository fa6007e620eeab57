/*
 * http.c - the HTTP server layer over libmicrohttpd (see http.h).
 *
 * A request's life, in libmicrohttpd's callbacks (all on the connection's
 * own thread):
 *   1. uri_log(): the request line has been read. We allocate our request
 *      (it becomes MHD's per-request context), keep the raw URI (MHD later
 *      decodes it in place, and we route on the raw one) and count it in
 *      flight. From here on, MHD calls completed() for this request.
 *   2. access() first call (headers complete, no body yet): draining? route,
 *      authenticate, check Content-Length. Any refusal is queued right away,
 *      so the body is never read.
 *   3. access() with body data: appended to a buffer capped at max_body; past
 *      the cap the rest is read and dropped (MHD cannot queue a response in
 *      the middle of a body) up to HTTP_DISCARD_MAX, then the connection is
 *      closed.
 *   4. access() last call: 413 for an oversized chunked body, else the
 *      handler runs and its response is queued.
 *   5. completed(): access log line, in-flight count down, request freed.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <sodium.h>

#include "dynbuf.h"
#include "http_guard.h"
#include "http_route.h"
#include "json_check.h"
#include "log.h"
#include "util.h"

/* Past the cap, a chunked body is read and dropped up to this many more
 * bytes so that the client can get its 413 (libmicrohttpd cannot answer in
 * the middle of a body); beyond, the connection is cut. The body timeout
 * bounds the time this takes. */
#define HTTP_DISCARD_MAX (256u * 1024 * 1024)
/* libmicrohttpd's per-connection memory: the request line and headers must
 * fit in it, or libmicrohttpd answers 414/431 itself (HTML, not replaceable).
 * Our caps below are well inside it: heads up to ~63 KiB get JSON. Each
 * kept-alive connection holds it all (docs/operations.md has the costs). */
#define HTTP_CONNECTION_MEMORY (64u * 1024)
#define HTTP_MAX_URI 8192               /* request-target bytes; longer: 414 */
#define HTTP_MAX_HEADER_BYTES 16384     /* names and values of all headers; more: 431 */
#define HTTP_MAX_HEADERS 100            /* header fields; more: 431 */
#define HTTP_STR_(x) #x
#define HTTP_STR(x) HTTP_STR_(x)
/* max_body is passed to json-c as an int, with room for the NUL. */
#define HTTP_MAX_BODY_LIMIT (256u * 1024 * 1024)
#define HTTP_MAX_CONNECTIONS_LIMIT 4096
#define HTTP_MAX_HEADER_VALUE 4096
#define HTTP_MAX_LOGGED_PATH 256
#define HTTP_ALLOW_MAX 128

struct header {
	char *name;
	char *value;
};

struct http_response {
	bool responded;
	unsigned status;
	char *content_type;
	char *body;
	size_t body_len;
	struct header headers[HTTP_MAX_RESPONSE_HEADERS];
	size_t n_headers;
	struct stream *stream;          /* http_respond_stream(); NULL for a body */
};

struct http_request {
	struct http_server *srv;
	struct MHD_Connection *conn;
	int64_t start_us;
	char *uri;                      /* raw request-target, as received */
	char *path;                     /* raw path: uri without the query */
	char *method;
	bool started;                   /* access() has seen the headers */
	bool queued;                    /* a response has been queued */
	unsigned status;                /* the queued status, for the log */
	const struct route *route;
	char *seg_buf;                  /* the decoded path segments */
	const char *params[HTTP_MAX_SEGMENTS];  /* decoded values, by segment */
	struct dynbuf body;             /* capped at max_body; wiped (credentials) */
	bool too_large;
	size_t discarded;
	const char *refusal;            /* refused before a handler: counted, not access-logged */
	bool uri_too_long;              /* seen in on_uri(), answered 414 in begin_request() */
	bool close;                     /* answer with "Connection: close" (shed) */
	struct http_response resp;
};

struct http_server {
	/* fixed after http_server_new() */
	struct route *routes;
	size_t n_routes;
	size_t max_body;
	unsigned max_connections;
	unsigned idle_timeout_s;
	struct http_guard_config guard_cfg;
	void *user;
	char listen[128];               /* as configured */
	char bound[128];                /* with the bound port, once started */
	struct sockaddr_storage addr;
	int family;

	struct MHD_Daemon *daemon;
	struct http_guard *guard;       /* connection records and their watchdog, while started */
	MHD_socket quiesced_fd;         /* returned by MHD_quiesce_daemon(), closed after stop */

	pthread_mutex_t lock;           /* guards everything below */
	pthread_cond_t idle;            /* signalled when in_flight drops to 0 */
	unsigned char secret_hash[crypto_generichash_BYTES];
	bool quiescing;
	unsigned in_flight;
	uint64_t requests;
	uint64_t by_class[5];
	char last_mhd_error[256];       /* what libmicrohttpd said last (start errors) */
	bool serving;                   /* started: libmicrohttpd's messages are refusals */
};

const char *http_strerror(int err)
{
	return status_str(err);
}

/* ---------------------------------------------------------------- routes */

/* Splits req->path into decoded segments (req->seg_buf). Returns the count,
 * -1 when the path cannot match any route (too many segments, not
 * absolute), -2 when a segment decodes to a NUL byte, -3 out of memory. */
static int split_path(struct http_request *req, const char *segs[HTTP_MAX_SEGMENTS])
{
	char *p;
	int n = 0;

	if (req->path[0] != '/')
		return -1;
	req->seg_buf = strdup(req->path + 1);
	if (req->seg_buf == NULL)
		return -3;
	if (req->seg_buf[0] == '\0')
		return 0;            /* "/" */
	p = req->seg_buf;
	for (;;) {
		char *end = strchr(p, '/');
		size_t len;

		if (n == HTTP_MAX_SEGMENTS)
			return -1;
		if (end)
			*end = '\0';
		len = MHD_http_unescape(p);
		if (strlen(p) != len)
			return -2;
		segs[n++] = p;
		if (end == NULL)
			break;
		p = end + 1;
	}
	return n;
}

/* ------------------------------------------------------------- responses */

/* ---------------------------------------------------------------- streams */

static int respond_raw(struct http_response *resp, unsigned status, const char *content_type,
		       char *body, size_t len);
static bool header_text_ok(const char *s, bool name);

struct stream {
	struct http_server *srv;
	http_stream_read_fn read;
	http_stream_free_fn free_fn;
	void *cls;
};

static void stream_free(struct stream *st)
{
	if (!st)
		return;
	if (st->free_fn)
		st->free_fn(st->cls);
	free(st);
}

static void stream_free_cb(void *cls)
{
	stream_free(cls);
}

static bool server_quiescing(struct http_server *srv)
{
	bool q;

	pthread_mutex_lock(&srv->lock);
	q = srv->quiescing;
	pthread_mutex_unlock(&srv->lock);
	return q;
}

/* MHD's content reader: the handler's read(), which blocks for a second at
 * most; 0 (nothing yet) is not passed on, since MHD would call again at
 * once without waiting. */
static ssize_t stream_read_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *st = cls;
	long n;

	(void)pos;
	do {
		n = st->read(st->cls, buf, max, server_quiescing(st->srv));
	} while (n == 0);
	if (n < 0 || (size_t)n > max)
		return MHD_CONTENT_READER_END_OF_STREAM;
	return (ssize_t)n;
}

/* A response over st (which it owns from now on, also when it fails). */
static struct MHD_Response *stream_response(struct http_server *srv, struct stream *st)
{
	struct MHD_Response *r;

	st->srv = srv;
	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read_cb, st,
					      stream_free_cb);
	if (!r)
		stream_free(st);
	return r;
}

int http_respond_stream(struct http_response *resp, unsigned status, const char *content_type,
			http_stream_read_fn read, http_stream_free_fn free_fn, void *cls)
{
	struct stream *st = calloc(1, sizeof(*st));
	int ret;

	if (!st) {
		if (free_fn)
			free_fn(cls);
		return HTTP_ENOMEM;
	}
	*st = (struct stream){NULL, read, free_fn, cls};
	if (resp == NULL || read == NULL || !header_text_ok(content_type, false) || *content_type == '\0') {
		stream_free(st);
		return HTTP_EINVAL;
	}
	ret = respond_raw(resp, status, content_type, NULL, 0);
	if (ret < 0) {
		stream_free(st);
		return ret;
	}
	resp->stream = st;
	return 0;
}

static void response_clear(struct http_response *resp)
{
	stream_free(resp->stream);
	free(resp->content_type);
	free(resp->body);
	for (size_t i = 0; i < resp->n_headers; i++) {
		free(resp->headers[i].name);
		free(resp->headers[i].value);
	}
	memset(resp, 0, sizeof(*resp));
}

/* Takes ownership of body (malloc'd). */
static int respond_raw(struct http_response *resp, unsigned status, const char *content_type,
		       char *body, size_t len)
{
	char *ct;

	if (resp->responded) {
		free(body);
		return HTTP_ERESPONDED;
	}
	if (status < 100 || status > 599) {
		free(body);
		return HTTP_EINVAL;
	}
	ct = strdup(content_type);
	if (ct == NULL) {
		free(body);
		return HTTP_ENOMEM;
	}
	resp->responded = true;
	resp->status = status;
	resp->content_type = ct;
	resp->body = body;
	resp->body_len = len;
	return 0;
}

/* The error document; falls back to a fixed text when json-c fails. */
static int respond_error_str(struct http_response *resp, unsigned status, const char *code, const char *msg)
{
	struct json_object *doc = json_object_new_object();
	struct json_object *e = json_object_new_object();
	const char *s;
	char *body = NULL;
	int rc;

	if (doc == NULL || e == NULL)
		goto fallback;
	if (json_object_object_add(doc, "error", e) != 0) {
		json_object_put(e);
		goto fallback;
	}
	if (json_object_object_add(e, "code", json_object_new_string(code)) != 0 ||
	    json_object_object_add(e, "message", json_object_new_string(msg)) != 0)
		goto fallback;
	s = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (s == NULL || (body = strdup(s)) == NULL)
		goto fallback;
	json_object_put(doc);
	return respond_raw(resp, status, "application/json; charset=utf-8", body, strlen(body));

fallback:
	json_object_put(doc);
	body = strdup("{\"error\":{\"code\":\"server_error\",\"message\":\"out of memory\"}}");
	if (body == NULL)
		return HTTP_ENOMEM;
	rc = respond_raw(resp, 500, "application/json; charset=utf-8", body, strlen(body));
	return rc ? rc : HTTP_ENOMEM;
}

int http_respond_error(struct http_response *resp, unsigned status, const char *code, const char *fmt, ...)
{
	char msg[HTTP_MAX_ERROR_MESSAGE];
	va_list ap;

	if (resp == NULL || code == NULL || fmt == NULL)
		return HTTP_EINVAL;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return respond_error_str(resp, status, code, msg);
}

int http_respond_json(struct http_response *resp, unsigned status, struct json_object *obj)
{
	const char *s;
	char *body;

	if (resp == NULL) {
		json_object_put(obj);
		return HTTP_EINVAL;
	}
	if (resp->responded) {
		json_object_put(obj);
		return HTTP_ERESPONDED;
	}
	if (obj == NULL) {
		respond_error_str(resp, 500, "server_error", "out of memory");
		return HTTP_ENOMEM;
	}
	s = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	body = s ? strdup(s) : NULL;
	json_object_put(obj);
	if (body == NULL) {
		respond_error_str(resp, 500, "server_error", "out of memory");
		return HTTP_ENOMEM;
	}
	return respond_raw(resp, status, "application/json; charset=utf-8", body, strlen(body));
}

static bool header_text_ok(const char *s, bool name)
{
	if (s == NULL || strlen(s) > HTTP_MAX_HEADER_VALUE || (name && *s == '\0'))
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '\r' || *p == '\n' || (name && (*p <= ' ' || *p == ':' || *p >= 0x7f)))
			return false;
	}
	return true;
}

int http_respond_text(struct http_response *resp, unsigned status, const char *content_type, const char *text)
{
	char *body;

	if (resp == NULL || text == NULL || !header_text_ok(content_type, false) || *content_type == '\0')
		return HTTP_EINVAL;
	if (resp->responded)
		return HTTP_ERESPONDED;
	body = strdup(text);
	if (body == NULL)
		return HTTP_ENOMEM;
	return respond_raw(resp, status, content_type, body, strlen(body));
}

int http_respond_bytes(struct http_response *resp, unsigned status, const char *content_type,
		       const void *body, size_t len)
{
	char *copy;

	if (resp == NULL || (body == NULL && len) || !header_text_ok(content_type, false) || *content_type == '\0')
		return HTTP_EINVAL;
	if (resp->responded)
		return HTTP_ERESPONDED;
	copy = malloc(len + 1);
	if (copy == NULL)
		return HTTP_ENOMEM;
	if (len)
		memcpy(copy, body, len);
	copy[len] = '\0';
	return respond_raw(resp, status, content_type, copy, len);
}

int http_response_header(struct http_response *resp, const char *name, const char *value)
{
	char *n, *v;

	if (resp == NULL || !header_text_ok(name, true) || !header_text_ok(value, false))
		return HTTP_EINVAL;
	if (resp->n_headers == HTTP_MAX_RESPONSE_HEADERS)
		return HTTP_EINVAL;
	n = strdup(name);
	v = strdup(value);
	if (n == NULL || v == NULL) {
		free(n);
		free(v);
		return HTTP_ENOMEM;
	}
	resp->headers[resp->n_headers].name = n;
	resp->headers[resp->n_headers].value = v;
	resp->n_headers++;
	return 0;
}

/* -------------------------------------------------------------- requests */

const char *http_method(const struct http_request *req)
{
	return req->method;
}

const char *http_path(const struct http_request *req)
{
	return req->path;
}

const char *http_param(const struct http_request *req, const char *name)
{
	const struct route *r = req->route;

	if (r == NULL || name == NULL)
		return NULL;
	for (size_t i = 0; i < r->n_segs; i++)
		if (r->is_param[i] && strcmp(r->segs[i], name) == 0)
			return req->params[i];
	return NULL;
}

struct query_lookup {
	const char *name;
	size_t name_len;
	const char *value; /* the last match: a repeated parameter's last value wins */
	bool bad;          /* the last match holds a NUL byte */
};

static enum MHD_Result query_last(void *cls, enum MHD_ValueKind kind, const char *key,
				  size_t key_size, const char *value, size_t value_size)
{
	struct query_lookup *q = cls;

	(void)kind;
	if (key && key_size == q->name_len && memcmp(key, q->name, key_size) == 0) {
		q->value = value;
		q->bad = value && strlen(value) != value_size;
	}
	return MHD_YES;
}

const char *http_query(const struct http_request *req, const char *name)
{
	struct query_lookup q = {name, name ? strlen(name) : 0, NULL, false};

	if (name == NULL)
		return NULL;
	MHD_get_connection_values_n(req->conn, MHD_GET_ARGUMENT_KIND, query_last, &q);
	return q.bad ? NULL : q.value;
}

struct query_each {
	http_query_fn fn;
	void *user;
	int ret;
};

/* One query argument or header: fn, unless its key or value holds a NUL
 * (or, for a header, it has no value). */
static enum MHD_Result checked_value(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
				     const char *value, size_t value_size)
{
	struct query_each *q = cls;

	if (!key || strlen(key) != key_size || (value && strlen(value) != value_size) ||
	    (!value && kind == MHD_HEADER_KIND))
		return MHD_YES;
	q->ret = q->fn(q->user, key, value);
	return q->ret == 0 ? MHD_YES : MHD_NO;
}

static int each_checked(const struct http_request *req, enum MHD_ValueKind kind, http_query_fn fn, void *user)
{
	struct query_each q = {fn, user, 0};

	MHD_get_connection_values_n(req->conn, kind, checked_value, &q);
	return q.ret;
}

int http_query_each(const struct http_request *req, http_query_fn fn, void *user)
{
	return each_checked(req, MHD_GET_ARGUMENT_KIND, fn, user);
}

int http_header_each(const struct http_request *req, http_query_fn fn, void *user)
{
	return each_checked(req, MHD_HEADER_KIND, fn, user);
}

const char *http_header(const struct http_request *req, const char *name)
{
	if (name == NULL)
		return NULL;
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

struct each_ctx {
	bool (*fn)(void *user, const char *name, const char *value);
	void *user;
};

static enum MHD_Result each_value(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct each_ctx *e = cls;

	(void)kind;
	return e->fn(e->user, key, value) ? MHD_YES : MHD_NO;
}

void http_each(const struct http_request *req, bool headers,
	       bool (*fn)(void *user, const char *name, const char *value), void *user)
{
	struct each_ctx e = {fn, user};

	if (req == NULL || fn == NULL)
		return;
	MHD_get_connection_values(req->conn, headers ? MHD_HEADER_KIND : MHD_GET_ARGUMENT_KIND, each_value, &e);
}

const char *http_body(const struct http_request *req, size_t *len)
{
	if (len)
		*len = dynbuf_len(&req->body);
	return dynbuf_str(&req->body);
}

int http_json_body(struct http_request *req, struct json_object **out)
{
	struct json_tokener *tok;
	struct json_object *obj = NULL;
	enum json_tokener_error jerr;
	size_t len = 0, end;
	const char *body = http_body(req, &len);
	char why[160];
	int rc = HTTP_EBADBODY;

	*out = NULL;
	if (len == 0) {
		http_respond_error(&req->resp, 400, "invalid_json", "the request body is empty; expected JSON");
		return HTTP_EBADBODY;
	}
	tok = json_tokener_new();
	if (tok == NULL) {
		http_respond_error(&req->resp, 500, "server_error", "out of memory");
		return HTTP_ENOMEM;
	}
	/* Strict: no comments or trailing commas; UTF-8 checked; data after the
	 * value is ours to report (below). */
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS |
				    JSON_TOKENER_VALIDATE_UTF8);
	/* len + 1: the NUL tells json-c the input ends (so "12" is a number). */
	obj = json_tokener_parse_ex(tok, body, (int)(len + 1));
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	if (jerr == json_tokener_error_parse_utf8_string) {
		http_respond_error(&req->resp, 400, "invalid_body",
				   "invalid UTF-8 in the JSON body near byte offset %zu", end > len ? len : end);
		goto out;
	}
	if (obj == NULL || jerr != json_tokener_success) {
		if (end > len)
			end = len;
		http_respond_error(&req->resp, 400, "invalid_json", "invalid JSON at byte offset %zu: %s", end,
				   jerr == json_tokener_continue ? "unexpected end of data"
								 : json_tokener_error_desc(jerr));
		goto out;
	}
	for (size_t i = end; i < len; i++) {
		char c = body[i];
		if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
			http_respond_error(&req->resp, 400, "invalid_json",
					   "invalid JSON at byte offset %zu: unexpected data after the JSON value", i);
			goto out;
		}
	}
	switch (json_check_text(body, len, why, sizeof(why), &end)) {
	case 0:
		break;
	case JSON_CHECK_SYNTAX:
		http_respond_error(&req->resp, 400, "invalid_json", "invalid JSON at byte offset %zu: %s", end, why);
		goto out;
	default:
		http_respond_error(&req->resp, 400, "invalid_body", "the JSON body at byte offset %zu: %s", end, why);
		goto out;
	}
	if (json_check_tree(obj, why, sizeof(why)) != 0) {
		http_respond_error(&req->resp, 400, "invalid_body", "the JSON body: %s", why);
		goto out;
	}
	*out = obj;
	obj = NULL;
	rc = 0;
out:
	json_object_put(obj);
	json_tokener_free(tok);
	return rc;
}

static void request_free(struct http_request *req)
{
	if (req == NULL)
		return;
	response_clear(&req->resp);
	dynbuf_free(&req->body); /* wiped: bodies carry credentials */
	util_free_all(req->uri, req->path, req->method, req->seg_buf, req);
}

/* ----------------------------------------------------------------- server */

static void count_status(struct http_server *srv, unsigned status)
{
	pthread_mutex_lock(&srv->lock);
	srv->requests++;
	if (status >= 100 && status <= 599)
		srv->by_class[status / 100 - 1]++;
	pthread_mutex_unlock(&srv->lock);
}

/* Queues req->resp (500 when the handler set none). */
static enum MHD_Result queue_response(struct http_request *req)
{
	struct http_server *srv = req->srv;
	struct http_response *resp = &req->resp;
	struct MHD_Response *r;
	enum MHD_Result ret;
	bool quiescing;

	if (!resp->responded)
		respond_error_str(resp, 500, "server_error", "internal error");
	if (!resp->responded)
		return MHD_NO;
	if (resp->stream) {
		r = stream_response(srv, resp->stream);
		resp->stream = NULL; /* the response owns it now, even when r is NULL */
	} else {
		r = MHD_create_response_from_buffer(resp->body_len, resp->body, MHD_RESPMEM_MUST_COPY);
	}
	if (r == NULL)
		return MHD_NO;
	if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type) != MHD_YES)
		goto fail;
	for (size_t i = 0; i < resp->n_headers; i++)
		if (MHD_add_response_header(r, resp->headers[i].name, resp->headers[i].value) != MHD_YES)
			log_warn("http", "%s %s: response header %s refused", req->method, req->path,
				 resp->headers[i].name);
	pthread_mutex_lock(&srv->lock);
	quiescing = srv->quiescing;
	pthread_mutex_unlock(&srv->lock);
	if ((quiescing || req->close) && MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close") != MHD_YES)
		goto fail;
	ret = MHD_queue_response(req->conn, resp->status, r);
	MHD_destroy_response(r);
	if (ret == MHD_YES) {
		req->queued = true;
		req->status = resp->status;
		count_status(srv, resp->status);
	}
	return ret;
fail:
	MHD_destroy_response(r);
	return MHD_NO;
}

static enum MHD_Result queue_error(struct http_request *req, unsigned status, const char *code, const char *msg)
{
	respond_error_str(&req->resp, status, code, msg);
	return queue_response(req);
}

/* A request refused before any handler: answered like any error, counted
 * under reason (a static string) instead of an access log line. */
static enum MHD_Result refuse(struct http_request *req, const char *reason, unsigned status, const char *code,
			      const char *msg)
{
	req->refusal = reason;
	return queue_error(req, status, code, msg);
}

struct header_tally {
	size_t bytes;
	size_t count;
};

static enum MHD_Result tally_header(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
				    const char *value, size_t value_size)
{
	struct header_tally *t = cls;

	(void)kind;
	(void)key;
	(void)value;
	t->bytes += key_size + value_size;
	t->count++;
	return MHD_YES;
}

/* What is refused before routing: load shedding, then the request line's and
 * the headers' caps. MHD_YES with nothing queued lets the request go on. */
static enum MHD_Result refuse_early(struct http_request *req, bool *refused)
{
	struct header_tally t = {0, 0};

	*refused = true;
	if (req->srv->guard && http_guard_shedding(req->srv->guard)) {
		req->close = true;
		respond_error_str(&req->resp, 503, "overloaded",
				  "the server has too many connections open; retry later");
		http_response_header(&req->resp, "Retry-After", "1");
		req->refusal = "overloaded (503)";
		return queue_response(req);
	}
	if (req->uri_too_long)
		return refuse(req, "request-target too long (414)", 414, "uri_too_long",
			      "the request-target is longer than " HTTP_STR(HTTP_MAX_URI) " bytes");
	MHD_get_connection_values_n(req->conn, MHD_HEADER_KIND, tally_header, &t);
	if (t.bytes > HTTP_MAX_HEADER_BYTES || t.count > HTTP_MAX_HEADERS)
		return refuse(req, "headers too large (431)", 431, "headers_too_large",
			      "the request headers are larger than " HTTP_STR(HTTP_MAX_HEADER_BYTES)
			      " bytes or more than " HTTP_STR(HTTP_MAX_HEADERS) " fields");
	*refused = false;
	return MHD_YES;
}

static bool authorized(struct http_server *srv, const char *auth)
{
	unsigned char got[crypto_generichash_BYTES];
	unsigned char want[crypto_generichash_BYTES];
	const char *tok, *end;
	bool ok;

	if (auth == NULL || strncasecmp(auth, "Bearer", 6) != 0 || (auth[6] != ' ' && auth[6] != '\t'))
		return false;
	tok = auth + 6;
	while (*tok == ' ' || *tok == '\t')
		tok++;
	end = tok + strlen(tok);
	while (end > tok && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (end == tok)
		return false;
	/* Hashes of equal size, compared in constant time: neither the key's
	 * length nor its bytes leak through timing. */
	crypto_generichash(got, sizeof(got), (const unsigned char *)tok, (size_t)(end - tok), NULL, 0);
	pthread_mutex_lock(&srv->lock);
	memcpy(want, srv->secret_hash, sizeof(want));
	pthread_mutex_unlock(&srv->lock);
	ok = sodium_memcmp(got, want, sizeof(got)) == 0;
	sodium_memzero(got, sizeof(got));
	sodium_memzero(want, sizeof(want));
	return ok;
}

/* True when word is one of the ", "-separated items of list. */
static bool in_list(const char *list, const char *word)
{
	size_t wl = strlen(word);

	for (const char *p = list; *p;) {
		const char *end = strchr(p, ',');
		size_t l = end ? (size_t)(end - p) : strlen(p);

		if (l == wl && memcmp(p, word, wl) == 0)
			return true;
		if (end == NULL)
			break;
		p = end + 2;
	}
	return false;
}

/* The first call for a request: everything decided from the headers. */
static enum MHD_Result begin_request(struct http_request *req, const char *method)
{
	struct http_server *srv = req->srv;
	const char *segs[HTTP_MAX_SEGMENTS];
	const struct route *best = NULL;
	char allow[HTTP_ALLOW_MAX] = "";
	bool path_known = false;
	bool quiescing;
	const char *cl;
	int n;

	req->method = strdup(method);
	if (req->method == NULL)
		return MHD_NO;
	pthread_mutex_lock(&srv->lock);
	quiescing = srv->quiescing;
	pthread_mutex_unlock(&srv->lock);
	if (quiescing)
		return queue_error(req, 503, "shutting_down", "the server is shutting down");
	http_guard_phase(srv->guard, req->conn, GUARD_BODY);
	{
		bool refused;
		enum MHD_Result r = refuse_early(req, &refused);

		if (refused)
			return r;
	}

	n = split_path(req, segs);
	if (n == -3)
		return queue_error(req, 500, "server_error", "out of memory");
	if (n == -2) {
		/* A decoded NUL: nothing a handler could use. Refused like an
		 * unknown path, after authentication (below). */
		n = -1;
	}
	for (int i = 0; n >= 0 && i < (int)srv->n_routes; i++) {
		const struct route *r = &srv->routes[i];
		if (!route_matches_path(r, segs, n))
			continue;
		path_known = true;
		if (strcmp(r->method, req->method) == 0) {
			if (best == NULL || r->specificity > best->specificity)
				best = r;
		} else if (!in_list(allow, r->method) &&
			   strlen(allow) + strlen(r->method) + 3 < sizeof(allow)) {
			if (allow[0])
				strcat(allow, ", ");
			strcat(allow, r->method);
		}
	}

	if (best == NULL || !best->public) {
		if (!authorized(srv, http_header(req, MHD_HTTP_HEADER_AUTHORIZATION)))
		{
			req->refusal = "unauthorized (401)";
			respond_error_str(&req->resp, 401, "unauthorized", "Unauthorized");
			http_response_header(&req->resp, "WWW-Authenticate", "Bearer");
			return queue_response(req);
		}
	}
	if (best == NULL && !path_known)
		return refuse(req, "no such resource (404)", 404, "not_found", "no such resource");
	if (best == NULL) {
		char msg[HTTP_ALLOW_MAX + 64];
		snprintf(msg, sizeof(msg), "method %s not allowed here (allowed: %s)", req->method, allow);
		req->refusal = "method not allowed (405)";
		respond_error_str(&req->resp, 405, "method_not_allowed", msg);
		http_response_header(&req->resp, MHD_HTTP_HEADER_ALLOW, allow);
		return queue_response(req);
	}
	req->route = best;
	for (int i = 0; i < n; i++)
		req->params[i] = best->is_param[i] ? segs[i] : NULL;

	cl = http_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl != NULL) {
		char *end;
		unsigned long long v;

		errno = 0;
		v = strtoull(cl, &end, 10);
		if (errno != 0 || end == cl || v > srv->max_body)
			return refuse(req, "body too large (413)", 413, "request_too_large",
				      "the request body is too large");
	}
	return MHD_YES;
}

static enum MHD_Result append_body(struct http_request *req, const char *data, size_t len)
{
	int ret;

	if (req->too_large || req->queued) {
		req->discarded += len;
		if (req->discarded > HTTP_DISCARD_MAX) {
			log_refusal("http", "body far over the cap: connection closed");
			return MHD_NO;
		}
		return MHD_YES;
	}
	ret = dynbuf_add(&req->body, data, len);
	if (ret == STATUS_ETOOBIG) {
		req->too_large = true;
		req->discarded = len;
		return MHD_YES;
	}
	return ret ? MHD_NO : MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				 const char *version, const char *upload_data, size_t *upload_data_size,
				 void **req_cls)
{
	struct http_request *req = *req_cls;
	int rc;

	(void)cls;
	(void)url;
	(void)version;
	if (req == NULL)
		return MHD_NO; /* uri_log() could not allocate */
	req->conn = conn;
	if (!req->started) {
		req->started = true;
		return begin_request(req, method);
	}
	if (*upload_data_size != 0) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		return append_body(req, upload_data, n);
	}
	if (req->queued)
		return MHD_YES;
	if (req->too_large)
		return refuse(req, "body too large (413)", 413, "request_too_large", "the request body is too large");

	http_guard_phase(req->srv->guard, conn, GUARD_HANDLER);
	rc = req->route->fn(req, &req->resp, req->srv->user);
	if (!req->resp.responded) {
		if (rc >= 0)
			log_error("http", "%s %s: the handler returned without a response", req->method, req->path);
		respond_error_str(&req->resp, 500, "server_error", "internal error");
	}
	return queue_response(req);
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct http_server *srv = cls;
	struct http_request *req = calloc(1, sizeof(*req));
	const char *q;

	(void)conn;
	if (req == NULL)
		return NULL;
	req->srv = srv;
	dynbuf_init(&req->body, srv->max_body, DYNBUF_WIPE);
	req->start_us = util_mono_us();
	req->uri_too_long = strlen(uri) > HTTP_MAX_URI;
	if (req->uri_too_long)
		uri = "/";   /* never routed: answered 414 */
	req->uri = strdup(uri);
	q = strchr(uri, '?');
	req->path = q ? strndup(uri, (size_t)(q - uri)) : strdup(uri);
	if (req->uri == NULL || req->path == NULL) {
		request_free(req);
		return NULL;
	}
	pthread_mutex_lock(&srv->lock);
	srv->in_flight++;
	pthread_mutex_unlock(&srv->lock);
	return req;
}

/* Copies path into out for the log: printable ASCII, cut at the cap. */
static void loggable_path(char *out, size_t outlen, const char *path)
{
	size_t i = 0;

	for (; path && *path && i + 4 < outlen; path++) {
		unsigned char c = (unsigned char)*path;
		out[i++] = (c > ' ' && c < 0x7f) ? (char)c : '?';
	}
	if (path && *path)
		out[i++] = '.', out[i++] = '.', out[i++] = '.';
	out[i] = '\0';
}

static const char *termination_name(enum MHD_RequestTerminationCode toe)
{
	switch (toe) {
	case MHD_REQUEST_TERMINATED_COMPLETED_OK: return "completed";
	case MHD_REQUEST_TERMINATED_WITH_ERROR: return "error";
	case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED: return "timeout";
	case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN: return "server shutdown";
	case MHD_REQUEST_TERMINATED_READ_ERROR: return "read error";
	case MHD_REQUEST_TERMINATED_CLIENT_ABORT: return "client aborted";
	default: return "unknown";
	}
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct http_server *srv = cls;
	struct http_request *req = *req_cls;
	char path[HTTP_MAX_LOGGED_PATH + 4];
	int64_t us;

	if (req == NULL)
		return;
	*req_cls = NULL;
	us = util_mono_us() - req->start_us;
	loggable_path(path, sizeof(path), req->path);
	http_guard_phase(srv->guard, conn, GUARD_HEADERS);  /* kept alive: waits for the next request */
	if (req->refusal)
		log_refusal("http", req->refusal);
	else if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
		log_info("http", "%s %s %u %lld.%03lldms", req->method ? req->method : "-", path, req->status,
			 (long long)(us / 1000), (long long)(us % 1000));
	else
		log_info("http", "%s %s %u %lld.%03lldms (%s)", req->method ? req->method : "-", path,
			 req->status, (long long)(us / 1000), (long long)(us % 1000), termination_name(toe));
	request_free(req);
	pthread_mutex_lock(&srv->lock);
	srv->in_flight--;
	if (srv->in_flight == 0)
		pthread_cond_broadcast(&srv->idle);
	pthread_mutex_unlock(&srv->lock);
}

/* libmicrohttpd's messages once it serves are about connections it turned
 * away or lost: each is counted as a refusal under a short reason, never
 * logged one line each (an accept loop on EMFILE writes one per try). */
static const struct {
	const char *prefix;
	const char *reason;     /* NULL: already counted elsewhere */
} mhd_refusals[] = {
	{"Server reached connection limit", "connection limit"},
	{"Connection rejected by application", NULL},
	{"Error accepting connection", "accept failed (descriptors or memory)"},
	{"Hit process or system resource limit", "accept failed (descriptors or memory)"},
	{"Error processing request (HTTP response code is 414", "request line over the connection's memory (414)"},
	{"Error processing request (HTTP response code is 431", "headers over the connection's memory (431)"},
	{"Error processing request", "malformed request"},
	{"Failed to create a thread", "no thread for the connection"},
	{"Error allocating memory", "out of memory"},
};

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct http_server *srv = cls;
	char msg[256];
	size_t len;
	bool serving;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	len = strlen(msg);
	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
		msg[--len] = '\0';
	pthread_mutex_lock(&srv->lock);
	memcpy(srv->last_mhd_error, msg, len + 1);
	serving = srv->serving;
	pthread_mutex_unlock(&srv->lock);
	for (size_t i = 0; serving && i < sizeof(mhd_refusals) / sizeof(mhd_refusals[0]); i++) {
		if (strncmp(msg, mhd_refusals[i].prefix, strlen(mhd_refusals[i].prefix)) != 0)
			continue;
		if (mhd_refusals[i].reason)
			log_refusal("http", mhd_refusals[i].reason);
		return;
	}
	if (serving)
		log_refusal("http", "other libmicrohttpd message");
	else
		log_warn("http", "libmicrohttpd: %s", msg);
}

/* "host:port", "[v6]:port"; numeric hosts, or "localhost" (127.0.0.1). */
static int parse_listen(struct http_server *srv, const char *listen, char *err, size_t errlen)
{
	char host[64];
	const char *colon, *port_s;
	size_t hlen;
	char *end;
	unsigned long port;

	if (listen == NULL || strlen(listen) >= sizeof(srv->listen)) {
		util_set_err(err, errlen, "listen address missing or too long");
		return HTTP_EINVAL;
	}
	if (listen[0] == '[') {
		const char *rb = strchr(listen, ']');
		if (rb == NULL || rb[1] != ':')
			goto bad;
		hlen = (size_t)(rb - listen - 1);
		if (hlen == 0 || hlen >= sizeof(host))
			goto bad;
		memcpy(host, listen + 1, hlen);
		host[hlen] = '\0';
		port_s = rb + 2;
	} else {
		colon = strrchr(listen, ':');
		if (colon == NULL || colon == listen || memchr(listen, ':', (size_t)(colon - listen)))
			goto bad;
		hlen = (size_t)(colon - listen);
		if (hlen >= sizeof(host))
			goto bad;
		memcpy(host, listen, hlen);
		host[hlen] = '\0';
		port_s = colon + 1;
	}
	if (*port_s < '0' || *port_s > '9')
		goto bad;
	errno = 0;
	port = strtoul(port_s, &end, 10);
	if (errno != 0 || *end != '\0' || port > 65535)
		goto bad;
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");

	memset(&srv->addr, 0, sizeof(srv->addr));
	{
		struct sockaddr_in *a4 = (struct sockaddr_in *)&srv->addr;
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&srv->addr;

		if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
			a4->sin_family = AF_INET;
			a4->sin_port = htons((uint16_t)port);
			srv->family = AF_INET;
			if ((ntohl(a4->sin_addr.s_addr) >> 24) != 127)
				log_warn("http", "listening on %s, which is not a loopback address", listen);
		} else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
			a6->sin6_family = AF_INET6;
			a6->sin6_port = htons((uint16_t)port);
			srv->family = AF_INET6;
			if (!IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr))
				log_warn("http", "listening on %s, which is not a loopback address", listen);
		} else {
			util_set_err(err, errlen, "listen address %s: the host must be an IPv4 or IPv6 address "
				"or localhost", listen);
			return HTTP_EINVAL;
		}
	}
	strcpy(srv->listen, listen);
	return 0;
bad:
	util_set_err(err, errlen, "listen address %s: expected host:port or [ipv6]:port, port 0-65535", listen);
	return HTTP_EINVAL;
}

static void hash_secret(unsigned char out[crypto_generichash_BYTES], const char *secret)
{
	crypto_generichash(out, crypto_generichash_BYTES, (const unsigned char *)secret, strlen(secret), NULL, 0);
}

int http_server_new(const struct http_config *cfg, struct http_server **out, char *err, size_t errlen)
{
	struct http_server *srv = NULL;
	int rc = HTTP_EINVAL;

	if (out == NULL)
		return HTTP_EINVAL;
	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (cfg == NULL) {
		util_set_err(err, errlen, "no configuration");
		return HTTP_EINVAL;
	}
	if (sodium_init() < 0) {
		util_set_err(err, errlen, "libsodium failed to initialize");
		return HTTP_ENOMEM;
	}
	if (cfg->secret_key == NULL || cfg->secret_key[0] == '\0') {
		util_set_err(err, errlen, "a secret key is required");
		return HTTP_EINVAL;
	}
	if (cfg->n_routes > HTTP_MAX_ROUTES || (cfg->n_routes > 0 && cfg->routes == NULL)) {
		util_set_err(err, errlen, "at most %d routes", HTTP_MAX_ROUTES);
		return HTTP_EINVAL;
	}
	if (cfg->max_body > HTTP_MAX_BODY_LIMIT) {
		util_set_err(err, errlen, "max body size %zu is over the limit of %u bytes", cfg->max_body,
			HTTP_MAX_BODY_LIMIT);
		return HTTP_EINVAL;
	}
	if (cfg->max_connections > HTTP_MAX_CONNECTIONS_LIMIT) {
		util_set_err(err, errlen, "max connections %u is over the limit of %d", cfg->max_connections,
			HTTP_MAX_CONNECTIONS_LIMIT);
		return HTTP_EINVAL;
	}

	srv = calloc(1, sizeof(*srv));
	if (srv == NULL) {
		util_set_err(err, errlen, "out of memory");
		return HTTP_ENOMEM;
	}
	srv->quiesced_fd = MHD_INVALID_SOCKET;
	if (util_lock_init(&srv->lock, &srv->idle) != 0) {
		free(srv);
		util_set_err(err, errlen, "out of memory");
		return HTTP_ENOMEM;
	}
	srv->max_body = cfg->max_body ? cfg->max_body : HTTP_DEFAULT_MAX_BODY;
	srv->max_connections = cfg->max_connections ? cfg->max_connections : HTTP_DEFAULT_MAX_CONNECTIONS;
	srv->idle_timeout_s = cfg->idle_timeout_s ? cfg->idle_timeout_s : HTTP_DEFAULT_IDLE_TIMEOUT_S;
	srv->guard_cfg.max_connections = srv->max_connections;
	srv->guard_cfg.max_per_address = cfg->max_per_address;
	srv->guard_cfg.header_timeout_s = cfg->header_timeout_s ? cfg->header_timeout_s
								: HTTP_DEFAULT_HEADER_TIMEOUT_S;
	srv->guard_cfg.body_timeout_s = cfg->body_timeout_s ? cfg->body_timeout_s : HTTP_DEFAULT_BODY_TIMEOUT_S;
	srv->user = cfg->user;
	rc = parse_listen(srv, cfg->listen, err, errlen);
	if (rc)
		goto fail;
	hash_secret(srv->secret_hash, cfg->secret_key);

	if (cfg->n_routes > 0) {
		srv->routes = calloc(cfg->n_routes, sizeof(*srv->routes));
		if (srv->routes == NULL) {
			rc = HTTP_ENOMEM;
			goto fail;
		}
	}
	for (size_t i = 0; i < cfg->n_routes; i++) {
		rc = route_compile(&srv->routes[i], &cfg->routes[i], err, errlen);
		if (rc)
			goto fail;
		srv->n_routes++;
		for (size_t j = 0; j < i; j++)
			if (routes_clash(&srv->routes[j], &srv->routes[i])) {
				util_set_err(err, errlen, "routes %s %s and %s %s clash", srv->routes[j].method,
					srv->routes[j].pattern, srv->routes[i].method, srv->routes[i].pattern);
				rc = HTTP_EINVAL;
				goto fail;
			}
	}
	*out = srv;
	return 0;

fail:
	if (rc == HTTP_ENOMEM)
		util_set_err(err, errlen, "out of memory");
	http_server_free(srv);
	return rc;
}

int http_server_start(struct http_server *srv, char *err, size_t errlen)
{
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
			 MHD_USE_AUTO | MHD_USE_ERROR_LOG;
	char host[INET6_ADDRSTRLEN];
	uint16_t port;

	if (srv == NULL)
		return HTTP_EINVAL;
	if (srv->daemon != NULL || srv->quiescing) {
		util_set_err(err, errlen, "the server is already started or quiesced");
		return HTTP_ESTATE;
	}
	if (srv->family == AF_INET6) {
		flags |= MHD_USE_IPv6;
		port = ntohs(((struct sockaddr_in6 *)&srv->addr)->sin6_port);
	} else {
		port = ntohs(((struct sockaddr_in *)&srv->addr)->sin_port);
	}
	if (http_guard_new(&srv->guard_cfg, &srv->guard) != 0) {
		util_set_err(err, errlen, "out of memory");
		return HTTP_ENOMEM;
	}
	/* The port argument only shows in libmicrohttpd's messages: the
	 * address to bind is MHD_OPTION_SOCK_ADDR. */
	srv->daemon = MHD_start_daemon(flags, port, http_guard_accept, srv->guard, on_access, srv,
				       MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv,
				       MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
				       MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
				       MHD_OPTION_NOTIFY_CONNECTION, http_guard_notify, srv->guard,
				       MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&srv->addr,
				       MHD_OPTION_CONNECTION_LIMIT, srv->max_connections,
				       MHD_OPTION_CONNECTION_TIMEOUT, srv->idle_timeout_s,
				       MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONNECTION_MEMORY,
				       MHD_OPTION_END);
	if (srv->daemon == NULL) {
		http_guard_free(srv->guard);
		srv->guard = NULL;
		pthread_mutex_lock(&srv->lock);
		util_set_err(err, errlen, "cannot listen on %s: %s", srv->listen,
			srv->last_mhd_error[0] ? srv->last_mhd_error : "libmicrohttpd failed to start");
		pthread_mutex_unlock(&srv->lock);
		return HTTP_ELISTEN;
	}
	if (srv->family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&srv->addr)->sin6_addr, host, sizeof(host));
		snprintf(srv->bound, sizeof(srv->bound), "[%s]:%u", host, (unsigned)http_server_port(srv));
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&srv->addr)->sin_addr, host, sizeof(host));
		snprintf(srv->bound, sizeof(srv->bound), "%s:%u", host, (unsigned)http_server_port(srv));
	}
	pthread_mutex_lock(&srv->lock);
	srv->serving = true;
	pthread_mutex_unlock(&srv->lock);
	log_info("http", "listening on %s (at most %u connections, %u per address, headers within %u s, "
		 "bodies within %u s)", srv->bound, srv->max_connections, srv->guard_cfg.max_per_address,
		 srv->guard_cfg.header_timeout_s, srv->guard_cfg.body_timeout_s);
	return 0;
}

uint16_t http_server_port(const struct http_server *srv)
{
	const union MHD_DaemonInfo *info;

	if (srv == NULL || srv->daemon == NULL)
		return 0;
	info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
	return info ? info->port : 0;
}

int http_server_set_secret(struct http_server *srv, const char *secret_key)
{
	unsigned char h[crypto_generichash_BYTES];

	if (srv == NULL || secret_key == NULL || secret_key[0] == '\0')
		return HTTP_EINVAL;
	hash_secret(h, secret_key);
	pthread_mutex_lock(&srv->lock);
	memcpy(srv->secret_hash, h, sizeof(h));
	pthread_mutex_unlock(&srv->lock);
	sodium_memzero(h, sizeof(h));
	return 0;
}

void http_server_quiesce(struct http_server *srv)
{
	MHD_socket fd;

	if (srv == NULL)
		return;
	pthread_mutex_lock(&srv->lock);
	if (srv->quiescing) {
		pthread_mutex_unlock(&srv->lock);
		return;
	}
	srv->quiescing = true;
	pthread_mutex_unlock(&srv->lock);
	if (srv->daemon == NULL)
		return;
	fd = MHD_quiesce_daemon(srv->daemon);
	if (fd != MHD_INVALID_SOCKET) {
		/* MHD stops accepting but keeps the socket open until it stops:
		 * shut it down so that connection attempts are refused instead of
		 * waiting in the backlog (Linux). It is closed after the stop. */
		shutdown(fd, SHUT_RDWR);
		srv->quiesced_fd = fd;
	}
	log_info("http", "no longer accepting connections on %s", srv->bound);
}

int http_server_drain(struct http_server *srv, int timeout_ms)
{
	struct timespec deadline;
	int rc = 0;

	if (srv == NULL)
		return HTTP_EINVAL;
	if (timeout_ms >= 0) {
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&srv->lock);
	while (srv->in_flight > 0) {
		if (timeout_ms < 0) {
			pthread_cond_wait(&srv->idle, &srv->lock);
		} else if (pthread_cond_timedwait(&srv->idle, &srv->lock, &deadline) == ETIMEDOUT) {
			if (srv->in_flight > 0)
				rc = HTTP_ETIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&srv->lock);
	return rc;
}

void http_server_stats(struct http_server *srv, struct http_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (srv == NULL)
		return;
	pthread_mutex_lock(&srv->lock);
	out->requests = srv->requests;
	memcpy(out->by_class, srv->by_class, sizeof(out->by_class));
	out->in_flight = srv->in_flight;
	pthread_mutex_unlock(&srv->lock);
	out->connections = srv->guard ? http_guard_open(srv->guard) : 0;
	out->refused = log_refusal_total();
}

void http_server_free(struct http_server *srv)
{
	if (srv == NULL)
		return;
	if (srv->daemon != NULL) {
		http_server_quiesce(srv);
		http_server_drain(srv, -1);
		MHD_stop_daemon(srv->daemon);
		srv->daemon = NULL;
		http_guard_free(srv->guard);
		srv->guard = NULL;
		if (srv->quiesced_fd != MHD_INVALID_SOCKET)
			close(srv->quiesced_fd);
		log_info("http", "stopped serving %s", srv->bound);
	}
	for (size_t i = 0; i < srv->n_routes; i++)
		route_clear(&srv->routes[i]);
	free(srv->routes);
	sodium_memzero(srv->secret_hash, sizeof(srv->secret_hash));
	pthread_cond_destroy(&srv->idle);
	pthread_mutex_destroy(&srv->lock);
	free(srv);
}
