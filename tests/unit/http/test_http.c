/*
 * test_http.c - the HTTP server layer driven over real sockets with libcurl.
 *
 * One server (body cap 1 KiB) on 127.0.0.1 port 0 serves most tests; the
 * lifecycle tests (quiesce, drain, free with a request in flight, stats,
 * IPv6, port clash) start their own. The daemon's log goes to a temporary
 * file so that the access log lines can be checked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "http.h"
#include "log.h"

#define SECRET "s3cret-key-for-tests"
#define BODY_CAP 1024

/* ------------------------------------------------------------ handlers */

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int blocked;      /* handlers waiting in /block */
	int entered;      /* handlers that ever entered /block */
	bool release;
	int twice_rc;     /* what the second respond call returned */
} g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, false, 0 };

static void add_str(struct json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, v ? json_object_new_string(v) : NULL);
}

static int h_health(struct http_request *req, struct http_response *resp, void *user)
{
	struct json_object *o = json_object_new_object();

	(void)req;
	(void)user;
	add_str(o, "status", "ok");
	return http_respond_json(resp, 200, o);
}

/* http_query_each / http_header_each: "name=value;" for each (value "-"
 * when valueless), the headers only for those starting with "x-each". */
static int each_query(void *user, const char *name, const char *value)
{
	char *buf = user;
	size_t n = strlen(buf);

	snprintf(buf + n, 512 - n, "%s=%s;", name, value ? value : "-");
	return 0;
}

static int each_header(void *user, const char *name, const char *value)
{
	return strncasecmp(name, "x-each", 6) == 0 ? each_query(user, name, value) : 0;
}

/* Echoes what the framework extracted from the request. */
static int h_echo(struct http_request *req, struct http_response *resp, void *user)
{
	struct json_object *o = json_object_new_object();

	add_str(o, "route", user ? (const char *)user : "");
	add_str(o, "method", http_method(req));
	add_str(o, "path", http_path(req));
	add_str(o, "connection_id", http_param(req, "connection_id"));
	add_str(o, "a", http_param(req, "a"));
	add_str(o, "b", http_param(req, "b"));
	add_str(o, "nope", http_param(req, "nope"));
	add_str(o, "key", http_query(req, "provider_config_key"));
	add_str(o, "flag", http_query(req, "flag"));
	add_str(o, "idem", http_header(req, "Idempotency-Key"));
	{
		char q[512] = "", h[512] = "";

		http_query_each(req, each_query, q);
		http_header_each(req, each_header, h);
		add_str(o, "query_all", q);
		add_str(o, "headers_x_each", h);
	}
	return http_respond_json(resp, 200, o);
}

static int h_meta(struct http_request *req, struct http_response *resp, void *user)
{
	struct json_object *o = json_object_new_object();

	(void)req;
	(void)user;
	add_str(o, "route", "metadata");
	return http_respond_json(resp, 201, o);
}

static int h_json(struct http_request *req, struct http_response *resp, void *user)
{
	struct json_object *body, *o;
	int rc;

	(void)user;
	rc = http_json_body(req, &body);
	if (rc)
		return rc;
	o = json_object_new_object();
	add_str(o, "type", json_type_to_name(json_object_get_type(body)));
	json_object_put(body);
	return http_respond_json(resp, 200, o);
}

static int h_body_echo(struct http_request *req, struct http_response *resp, void *user)
{
	struct json_object *body;
	int rc;

	(void)user;
	rc = http_json_body(req, &body);
	if (rc)
		return rc;
	return http_respond_json(resp, 200, body);
}

static int h_raw(struct http_request *req, struct http_response *resp, void *user)
{
	struct json_object *o = json_object_new_object();
	size_t len;
	const char *b = http_body(req, &len);
	bool all_x = true;

	(void)user;
	for (size_t i = 0; i < len; i++)
		all_x = all_x && b[i] == 'x';
	json_object_object_add(o, "len", json_object_new_int64((int64_t)len));
	json_object_object_add(o, "all_x", json_object_new_boolean(all_x));
	return http_respond_json(resp, 200, o);
}

static int h_block(struct http_request *req, struct http_response *resp, void *user)
{
	(void)req;
	(void)user;
	pthread_mutex_lock(&g.lock);
	g.blocked++;
	g.entered++;
	pthread_cond_broadcast(&g.cond);
	while (!g.release)
		pthread_cond_wait(&g.cond, &g.lock);
	g.blocked--;
	pthread_mutex_unlock(&g.lock);
	return http_respond_text(resp, 200, "text/plain", "released");
}

static int h_fail(struct http_request *req, struct http_response *resp, void *user)
{
	(void)req;
	(void)resp;
	(void)user;
	return -1;
}

static int h_noresp(struct http_request *req, struct http_response *resp, void *user)
{
	(void)req;
	(void)resp;
	(void)user;
	return 0;
}

static int h_metrics(struct http_request *req, struct http_response *resp, void *user)
{
	(void)req;
	(void)user;
	assert_int_equal(http_response_header(resp, "X-Test", "yes"), 0);
	assert_int_equal(http_response_header(resp, "X-Bad", "a\r\nInjected: 1"), HTTP_EINVAL);
	return http_respond_text(resp, 200, "text/plain; version=0.0.4", "evs_requests_total 1\n");
}

static int h_twice(struct http_request *req, struct http_response *resp, void *user)
{
	(void)req;
	(void)user;
	http_respond_error(resp, 409, "conflict", "first %d", 1);
	g.twice_rc = http_respond_error(resp, 200, "ok", "second");
	return 0;
}

static const struct http_route routes[] = {
	{ "GET", "/healthz", h_health, true },
	{ "GET", "/connections/{connection_id}", h_echo, false },
	{ "DELETE", "/connections/{connection_id}", h_echo, false },
	{ "POST", "/connections/metadata", h_meta, false },
	{ "GET", "/items/{a}/sub/{b}", h_echo, false },
	{ "GET", "/", h_echo, false },
	{ "POST", "/json", h_json, false },
	{ "POST", "/body-echo", h_body_echo, false },
	{ "POST", "/raw", h_raw, false },
	{ "GET", "/block", h_block, false },
	{ "GET", "/fail", h_fail, false },
	{ "GET", "/noresp", h_noresp, false },
	{ "GET", "/metrics", h_metrics, false },
	{ "GET", "/twice", h_twice, false },
};

/* --------------------------------------------------------------- client */

static struct http_server *srv;
static uint16_t port;
static char log_path[] = "/tmp/evs-test-http-log-XXXXXX";

struct reply {
	CURLcode cc;
	long status;
	char body[8192];
	size_t len;
	char headers[4096];
	size_t hlen;
};

struct upload {
	const char *data;   /* NULL: len bytes of 'x' */
	size_t len;
	size_t off;
	size_t piece;       /* at most this many bytes per read */
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct reply *r = ud;
	size_t len = size * n;
	size_t room = sizeof(r->body) - 1 - r->len;

	memcpy(r->body + r->len, p, len < room ? len : room);
	r->len += len < room ? len : room;
	r->body[r->len] = '\0';
	return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct reply *r = ud;
	size_t len = size * n;
	size_t room = sizeof(r->headers) - 1 - r->hlen;

	memcpy(r->headers + r->hlen, p, len < room ? len : room);
	r->hlen += len < room ? len : room;
	r->headers[r->hlen] = '\0';
	return len;
}

/* Feeds the body in small pieces (chunked transfer). */
static size_t on_read(char *p, size_t size, size_t n, void *ud)
{
	struct upload *u = ud;
	size_t len = size * n;

	if (len > u->piece)
		len = u->piece;
	if (len > u->len - u->off)
		len = u->len - u->off;
	if (u->data)
		memcpy(p, u->data + u->off, len);
	else
		memset(p, 'x', len);
	u->off += len;
	return len;
}

/* One request. auth: the bearer token, or NULL for none. hdr: one more
 * request header line, or NULL. body: sent with Content-Length unless
 * chunked. */
static void request_on(const char *host, uint16_t p, struct reply *r, const char *method, const char *path,
		       const char *auth, const char *hdr, const char *body, size_t blen, bool chunked)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	struct upload up = { body, blen, 0, body ? 700 : 64 * 1024 };
	char url[512], authz[256];

	assert_non_null(c);
	memset(r, 0, sizeof(*r));
	snprintf(url, sizeof(url), "http://%s:%u%s", host, (unsigned)p, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	if (auth) {
		snprintf(authz, sizeof(authz), "Authorization: %s", auth);
		h = curl_slist_append(h, authz);
	}
	if (hdr)
		h = curl_slist_append(h, hdr);
	h = curl_slist_append(h, "Expect:");
	if (chunked) {
		h = curl_slist_append(h, "Transfer-Encoding: chunked");
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(c, CURLOPT_READDATA, &up);
	} else if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)blen);
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	else if (strcmp(method, "POST") == 0 && body == NULL && !chunked)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	r->cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
}

static void request(struct reply *r, const char *method, const char *path, const char *auth, const char *hdr,
		    const char *body, size_t blen, bool chunked)
{
	request_on("127.0.0.1", port, r, method, path, auth, hdr, body, blen, chunked);
}

static void get(struct reply *r, const char *path)
{
	request(r, "GET", path, "Bearer " SECRET, NULL, NULL, 0, false);
}

/* The reply's body as JSON; the caller puts it. */
static struct json_object *reply_json(const struct reply *r)
{
	struct json_object *o = json_tokener_parse(r->body);

	assert_non_null(o);
	assert_non_null(strcasestr(r->headers, "Content-Type: application/json"));
	return o;
}

static const char *jstr(struct json_object *o, const char *path1, const char *path2)
{
	struct json_object *v = NULL;

	if (!json_object_object_get_ex(o, path1, &v))
		return NULL;
	if (path2 && !json_object_object_get_ex(v, path2, &v))
		return NULL;
	return v ? json_object_get_string(v) : NULL;
}

/* Asserts an error reply: status, JSON {"error":{"code":code,"message":...}}. */
static void assert_error(const struct reply *r, long status, const char *code)
{
	struct json_object *o;

	assert_int_equal(r->cc, CURLE_OK);
	assert_int_equal(r->status, status);
	o = reply_json(r);
	assert_string_equal(jstr(o, "error", "code"), code);
	assert_non_null(jstr(o, "error", "message"));
	json_object_put(o);
}

/* -------------------------------------------------------------- fixture */

static int start_server_with(struct http_server **out, const char *listen, size_t cap, unsigned max_conn,
			     unsigned idle_s)
{
	struct http_config cfg = {
		.listen = listen,
		.secret_key = SECRET,
		.max_body = cap,
		.max_connections = max_conn,
		.idle_timeout_s = idle_s,
		.routes = routes,
		.n_routes = sizeof(routes) / sizeof(routes[0]),
		.user = "user-data",
	};
	char err[256];
	int rc = http_server_new(&cfg, out, err, sizeof(err));

	if (rc) {
		fprintf(stderr, "http_server_new: %s\n", err);
		return rc;
	}
	rc = http_server_start(*out, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "http_server_start: %s\n", err);
		http_server_free(*out);
		*out = NULL;
	}
	return rc;
}

static int start_server(struct http_server **out, const char *listen, size_t cap)
{
	return start_server_with(out, listen, cap, 32, 0);
}

static int group_setup(void **state)
{
	(void)state;
	if (start_server(&srv, "127.0.0.1:0", BODY_CAP) != 0)
		return -1;
	port = http_server_port(srv);
	return port == 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
	(void)state;
	http_server_free(srv);
	srv = NULL;
	return 0;
}

static void reset_block(void)
{
	pthread_mutex_lock(&g.lock);
	g.release = false;
	g.entered = 0;
	pthread_mutex_unlock(&g.lock);
}

static void release_block(void)
{
	pthread_mutex_lock(&g.lock);
	g.release = true;
	pthread_cond_broadcast(&g.cond);
	pthread_mutex_unlock(&g.lock);
}

/* Waits until `n` handlers have entered /block (10 s at most). */
static void wait_entered(int n)
{
	struct timespec ts;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	pthread_mutex_lock(&g.lock);
	while (g.entered < n && rc == 0)
		rc = pthread_cond_timedwait(&g.cond, &g.lock, &ts);
	pthread_mutex_unlock(&g.lock);
	assert_int_equal(rc, 0);
}

struct bg_request {
	pthread_t thread;
	uint16_t port;
	struct reply r;
	const char *path;
};

static void *bg_run(void *arg)
{
	struct bg_request *b = arg;

	request_on("127.0.0.1", b->port, &b->r, "GET", b->path, "Bearer " SECRET, NULL, NULL, 0, false);
	return NULL;
}

/* ----------------------------------------------------------------- tests */

static void test_routing_params_query_headers(void **state)
{
	struct reply r;
	struct json_object *o;

	(void)state;
	/* %2F inside a parameter is part of the value, not a separator. */
	request(&r, "GET", "/connections/a%2Fb%20c%C3%A9+d?provider_config_key=x%20y+z&flag",
		"Bearer " SECRET, "idempotency-key: k-123", NULL, 0, false);
	assert_int_equal(r.cc, CURLE_OK);
	assert_int_equal(r.status, 200);
	o = reply_json(&r);
	assert_string_equal(jstr(o, "route", NULL), "user-data");
	assert_string_equal(jstr(o, "method", NULL), "GET");
	assert_string_equal(jstr(o, "path", NULL), "/connections/a%2Fb%20c%C3%A9+d");
	assert_string_equal(jstr(o, "connection_id", NULL), "a/b c\xc3\xa9+d");
	assert_string_equal(jstr(o, "key", NULL), "x y z");
	assert_null(jstr(o, "flag", NULL));
	assert_null(jstr(o, "nope", NULL));
	assert_string_equal(jstr(o, "idem", NULL), "k-123");
	assert_string_equal(jstr(o, "query_all", NULL), "provider_config_key=x y z;flag=-;");
	json_object_put(o);

	/* every query argument and header in order, decoded: tags[k]=v as the client sends them */
	request(&r, "GET", "/connections/c?tags%5Bteam%5D=core&tags%5Benv%5D=a%20b&x=1&x=2", "Bearer " SECRET,
		"X-Each-One: 1", NULL, 0, false);
	assert_int_equal(r.status, 200);
	o = reply_json(&r);
	assert_string_equal(jstr(o, "query_all", NULL), "tags[team]=core;tags[env]=a b;x=1;x=2;");
	assert_string_equal(jstr(o, "headers_x_each", NULL), "X-Each-One=1;");
	json_object_put(o);

	/* Several parameters; no header, no query. */
	get(&r, "/items/one/sub/t%77o");
	assert_int_equal(r.status, 200);
	o = reply_json(&r);
	assert_string_equal(jstr(o, "a", NULL), "one");
	assert_string_equal(jstr(o, "b", NULL), "two");
	assert_null(jstr(o, "key", NULL));
	assert_null(jstr(o, "idem", NULL));
	assert_null(jstr(o, "connection_id", NULL));
	json_object_put(o);

	/* A literal route beats a parameter route for the same method... */
	request(&r, "POST", "/connections/metadata", "Bearer " SECRET, NULL, "{}", 2, false);
	assert_int_equal(r.status, 201);
	o = reply_json(&r);
	assert_string_equal(jstr(o, "route", NULL), "metadata");
	json_object_put(o);
	/* ...and other methods on that path go to the parameter route. */
	request(&r, "DELETE", "/connections/metadata", "Bearer " SECRET, NULL, NULL, 0, false);
	assert_int_equal(r.status, 200);
	o = reply_json(&r);
	assert_string_equal(jstr(o, "method", NULL), "DELETE");
	assert_string_equal(jstr(o, "connection_id", NULL), "metadata");
	json_object_put(o);

	/* The root pattern. */
	get(&r, "/");
	assert_int_equal(r.status, 200);
	o = reply_json(&r);
	assert_string_equal(jstr(o, "path", NULL), "/");
	json_object_put(o);
}

static void test_auth(void **state)
{
	struct reply r;
	struct json_object *o;

	(void)state;
	request(&r, "GET", "/connections/x", NULL, NULL, NULL, 0, false);
	assert_error(&r, 401, "unauthorized");
	o = reply_json(&r);
	assert_string_equal(jstr(o, "error", "message"), "Unauthorized");
	json_object_put(o);

	const char *bad[] = {
		"Bearer wrong", "Bearer " SECRET "x", "Bearer s3cret", "Basic " SECRET, "Bearer",
		"Bearer  ", SECRET, "Bearer" SECRET,
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		request(&r, "GET", "/connections/x", bad[i], NULL, NULL, 0, false);
		assert_error(&r, 401, "unauthorized");
	}
	/* The scheme is case-insensitive; surrounding blanks are ignored. */
	request(&r, "GET", "/connections/x", "bearer   " SECRET "  ", NULL, NULL, 0, false);
	assert_int_equal(r.status, 200);
	get(&r, "/connections/x");
	assert_int_equal(r.status, 200);

	/* Public route: no key needed, a wrong one does not matter. */
	request(&r, "GET", "/healthz", NULL, NULL, NULL, 0, false);
	assert_int_equal(r.status, 200);
	o = reply_json(&r);
	assert_string_equal(jstr(o, "status", NULL), "ok");
	json_object_put(o);
	request(&r, "GET", "/healthz", "Bearer wrong", NULL, NULL, 0, false);
	assert_int_equal(r.status, 200);

	/* Unauthenticated clients learn nothing about paths or methods. */
	request(&r, "GET", "/no/such/path", NULL, NULL, NULL, 0, false);
	assert_error(&r, 401, "unauthorized");
	request(&r, "PUT", "/connections/x", NULL, NULL, NULL, 0, false);
	assert_error(&r, 401, "unauthorized");
	request(&r, "POST", "/healthz", NULL, NULL, NULL, 0, false);
	assert_error(&r, 401, "unauthorized");
	/* ...nor is the body looked at. */
	request(&r, "POST", "/json", NULL, NULL, "{bad", 4, false);
	assert_error(&r, 401, "unauthorized");
}

static void test_not_found_and_method(void **state)
{
	struct reply r;

	(void)state;
	get(&r, "/nope");
	assert_error(&r, 404, "not_found");
	get(&r, "/connections/");            /* empty parameter */
	assert_error(&r, 404, "not_found");
	get(&r, "/connections/a/b");
	assert_error(&r, 404, "not_found");
	get(&r, "/connections/a%00b");       /* decodes to a NUL */
	assert_error(&r, 404, "not_found");
	get(&r, "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s");
	assert_error(&r, 404, "not_found");

	request(&r, "PUT", "/connections/x", "Bearer " SECRET, NULL, "{}", 2, false);
	assert_error(&r, 405, "method_not_allowed");
	assert_non_null(strcasestr(r.headers, "\nAllow: GET, DELETE\r\n"));
	request(&r, "POST", "/healthz", "Bearer " SECRET, NULL, NULL, 0, false);
	assert_error(&r, 405, "method_not_allowed");
	assert_non_null(strcasestr(r.headers, "\nAllow: GET\r\n"));
}

static void test_body_cap(void **state)
{
	char big[5000];
	struct reply r;
	struct json_object *o;

	(void)state;
	memset(big, 'x', sizeof(big));

	/* Exactly the cap, with Content-Length and chunked. */
	request(&r, "POST", "/raw", "Bearer " SECRET, NULL, big, BODY_CAP, false);
	assert_int_equal(r.status, 200);
	o = reply_json(&r);
	assert_int_equal(json_object_get_int(json_object_object_get(o, "len")), BODY_CAP);
	assert_true(json_object_get_boolean(json_object_object_get(o, "all_x")));
	json_object_put(o);
	request(&r, "POST", "/raw", "Bearer " SECRET, NULL, big, BODY_CAP, true);
	assert_int_equal(r.status, 200);
	o = reply_json(&r);
	assert_int_equal(json_object_get_int(json_object_object_get(o, "len")), BODY_CAP);
	assert_true(json_object_get_boolean(json_object_object_get(o, "all_x")));
	json_object_put(o);

	/* One byte over, by Content-Length: refused before the body is read. */
	request(&r, "POST", "/raw", "Bearer " SECRET, NULL, big, BODY_CAP + 1, false);
	assert_error(&r, 413, "request_too_large");
	/* A chunked body that grows past the cap. */
	request(&r, "POST", "/raw", "Bearer " SECRET, NULL, big, sizeof(big), true);
	assert_error(&r, 413, "request_too_large");
	request(&r, "POST", "/raw", "Bearer " SECRET, NULL, big, BODY_CAP + 1, true);
	assert_error(&r, 413, "request_too_large");

	/* A chunked body far over the cap: read and dropped, then answered 413
	 * like any other (only past 256 MiB is the connection cut). */
	request(&r, "POST", "/raw", "Bearer " SECRET, NULL, NULL, 40u << 20, true);
	assert_error(&r, 413, "request_too_large");

	/* The server carries on. */
	request(&r, "POST", "/raw", "Bearer " SECRET, NULL, "xyz", 3, false);
	assert_int_equal(r.status, 200);
	o = reply_json(&r);
	assert_int_equal(json_object_get_int(json_object_object_get(o, "len")), 3);
	assert_false(json_object_get_boolean(json_object_object_get(o, "all_x")));
	json_object_put(o);
}

static void test_json_body(void **state)
{
	struct reply r;
	struct json_object *o;
	const char *msg;

	(void)state;
	request(&r, "POST", "/json", "Bearer " SECRET, NULL, "{\"a\": }", 7, false);
	assert_error(&r, 400, "invalid_json");
	o = reply_json(&r);
	msg = jstr(o, "error", "message");
	assert_non_null(strstr(msg, "offset 6"));
	json_object_put(o);

	request(&r, "POST", "/json", "Bearer " SECRET, NULL, "{\"a\":1", 6, false);
	assert_error(&r, 400, "invalid_json");
	request(&r, "POST", "/json", "Bearer " SECRET, NULL, "{\"a\":1} x", 9, false);
	assert_error(&r, 400, "invalid_json");
	o = reply_json(&r);
	assert_non_null(strstr(jstr(o, "error", "message"), "offset 8: unexpected data after"));
	json_object_put(o);
	request(&r, "POST", "/json", "Bearer " SECRET, NULL, "{}\0{}", 5, false);
	assert_error(&r, 400, "invalid_json");
	request(&r, "POST", "/json", "Bearer " SECRET, NULL, NULL, 0, false);
	assert_error(&r, 400, "invalid_json");

	/* Any JSON value, trailing blanks allowed; "12" is a whole number. */
	request(&r, "POST", "/json", "Bearer " SECRET, NULL, "12", 2, false);
	assert_int_equal(r.status, 200);
	o = reply_json(&r);
	assert_string_equal(jstr(o, "type", NULL), "int");
	json_object_put(o);
	request(&r, "POST", "/json", "Bearer " SECRET, NULL, " [1,2] \n", 8, false);
	assert_int_equal(r.status, 200);
	o = reply_json(&r);
	assert_string_equal(jstr(o, "type", NULL), "array");
	json_object_put(o);

	/* Echoed as it came: compact, '/' not escaped. */
	request(&r, "POST", "/body-echo", "Bearer " SECRET, NULL, "{\"k\":\"v/w\"}", 11, false);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "{\"k\":\"v/w\"}");
}

static void test_handler_responses(void **state)
{
	struct reply r;

	(void)state;
	get(&r, "/fail");
	assert_error(&r, 500, "server_error");
	get(&r, "/noresp");
	assert_error(&r, 500, "server_error");

	get(&r, "/metrics");
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "evs_requests_total 1\n");
	assert_non_null(strcasestr(r.headers, "Content-Type: text/plain; version=0.0.4\r\n"));
	assert_non_null(strcasestr(r.headers, "X-Test: yes\r\n"));
	assert_null(strcasestr(r.headers, "Injected"));

	g.twice_rc = 0;
	get(&r, "/twice");
	assert_error(&r, 409, "conflict");
	assert_int_equal(g.twice_rc, HTTP_ERESPONDED);
}

/* A handler blocked on a condition does not hold up other requests. */
static void test_blocking_handler_concurrency(void **state)
{
	struct bg_request b[3];
	struct reply r;

	(void)state;
	reset_block();
	for (int i = 0; i < 3; i++) {
		b[i].port = port;
		b[i].path = "/block";
		assert_int_equal(pthread_create(&b[i].thread, NULL, bg_run, &b[i]), 0);
	}
	wait_entered(3);
	for (int i = 0; i < 10; i++) {
		get(&r, i % 2 ? "/healthz" : "/connections/c1");
		assert_int_equal(r.cc, CURLE_OK);
		assert_int_equal(r.status, 200);
	}
	pthread_mutex_lock(&g.lock);
	assert_int_equal(g.blocked, 3);
	pthread_mutex_unlock(&g.lock);

	release_block();
	for (int i = 0; i < 3; i++) {
		pthread_join(b[i].thread, NULL);
		assert_int_equal(b[i].r.cc, CURLE_OK);
		assert_int_equal(b[i].r.status, 200);
		assert_string_equal(b[i].r.body, "released");
	}
}

static void test_secret_change(void **state)
{
	struct reply r;

	(void)state;
	assert_int_equal(http_server_set_secret(srv, "the-new-key"), 0);
	get(&r, "/connections/x");
	assert_error(&r, 401, "unauthorized");
	request(&r, "GET", "/connections/x", "Bearer the-new-key", NULL, NULL, 0, false);
	assert_int_equal(r.status, 200);
	assert_int_equal(http_server_set_secret(srv, ""), HTTP_EINVAL);
	assert_int_equal(http_server_set_secret(srv, NULL), HTTP_EINVAL);
	request(&r, "GET", "/connections/x", "Bearer the-new-key", NULL, NULL, 0, false);
	assert_int_equal(r.status, 200);
	assert_int_equal(http_server_set_secret(srv, SECRET), 0);
	get(&r, "/connections/x");
	assert_int_equal(r.status, 200);
}

/* The access log: one line per request, the query string left out. */
static void test_access_log(void **state)
{
	struct reply r;
	char buf[65536];
	ssize_t n;
	int fd;

	(void)state;
	log_refusal_window(LOG_REFUSAL_WINDOW_MS); /* quiet: the next refusal is logged at once */
	get(&r, "/connections/logged-conn?provider_config_key=hidden-query-value");
	assert_int_equal(r.status, 200);
	request(&r, "GET", "/connections/logged-401", NULL, NULL, NULL, 0, false);
	assert_int_equal(r.status, 401);
	assert_int_equal(http_server_drain(srv, 5000), 0); /* completed: logged */

	fd = open(log_path, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "http: GET /connections/logged-conn 200 "));
	/* a refusal is counted, not access-logged */
	assert_null(strstr(buf, "http: GET /connections/logged-401 401 "));
	assert_non_null(strstr(buf, "http: request refused (unauthorized (401))"));
	assert_null(strstr(buf, "hidden-query-value"));
	assert_null(strstr(buf, SECRET));
}

static void test_stats(void **state)
{
	struct http_server *s;
	struct http_stats st;
	struct reply r;
	uint16_t p;

	(void)state;
	assert_int_equal(start_server(&s, "127.0.0.1:0", BODY_CAP), 0);
	p = http_server_port(s);
	request_on("127.0.0.1", p, &r, "GET", "/healthz", NULL, NULL, NULL, 0, false);
	assert_int_equal(r.status, 200);
	request_on("127.0.0.1", p, &r, "GET", "/connections/z", "Bearer " SECRET, NULL, NULL, 0, false);
	assert_int_equal(r.status, 200);
	request_on("127.0.0.1", p, &r, "GET", "/zz", "Bearer " SECRET, NULL, NULL, 0, false);
	assert_int_equal(r.status, 404);
	request_on("127.0.0.1", p, &r, "GET", "/zz", NULL, NULL, NULL, 0, false);
	assert_int_equal(r.status, 401);
	request_on("127.0.0.1", p, &r, "GET", "/fail", "Bearer " SECRET, NULL, NULL, 0, false);
	assert_int_equal(r.status, 500);
	assert_int_equal(http_server_drain(s, 5000), 0);
	http_server_stats(s, &st);
	assert_int_equal(st.requests, 5);
	assert_int_equal(st.by_class[0], 0);
	assert_int_equal(st.by_class[1], 2);
	assert_int_equal(st.by_class[2], 0);
	assert_int_equal(st.by_class[3], 2);
	assert_int_equal(st.by_class[4], 1);
	assert_int_equal(st.in_flight, 0);
	http_server_free(s);
}

struct bg_free {
	pthread_t thread;
	struct http_server *s;
	bool done;
	pthread_mutex_t lock;
};

static void *bg_free_run(void *arg)
{
	struct bg_free *f = arg;

	http_server_free(f->s);
	pthread_mutex_lock(&f->lock);
	f->done = true;
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

/* Quiesce with a request in flight: new connections are refused, the
 * request completes, and free waits for it. */
static void test_quiesce_then_free_with_request_in_flight(void **state)
{
	struct bg_free f = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct bg_request b;
	struct http_server *s;
	struct http_stats st;
	struct reply r;
	bool done;
	uint16_t p;

	(void)state;
	reset_block();
	assert_int_equal(start_server(&s, "127.0.0.1:0", BODY_CAP), 0);
	p = http_server_port(s);
	b.port = p;
	b.path = "/block";
	assert_int_equal(pthread_create(&b.thread, NULL, bg_run, &b), 0);
	wait_entered(1);

	http_server_quiesce(s);
	http_server_quiesce(s); /* idempotent */
	request_on("127.0.0.1", p, &r, "GET", "/healthz", NULL, NULL, NULL, 0, false);
	assert_int_equal(r.cc, CURLE_COULDNT_CONNECT);
	assert_int_equal(http_server_drain(s, 100), HTTP_ETIMEDOUT);
	http_server_stats(s, &st);
	assert_int_equal(st.in_flight, 1);

	f.s = s;
	assert_int_equal(pthread_create(&f.thread, NULL, bg_free_run, &f), 0);
	usleep(300 * 1000);
	pthread_mutex_lock(&f.lock);
	done = f.done;
	pthread_mutex_unlock(&f.lock);
	assert_false(done); /* free waits for the handler */

	release_block();
	pthread_join(b.thread, NULL);
	assert_int_equal(b.r.cc, CURLE_OK);
	assert_int_equal(b.r.status, 200);
	assert_string_equal(b.r.body, "released");
	assert_non_null(strcasestr(b.r.headers, "Connection: close"));
	pthread_join(f.thread, NULL);
	assert_true(f.done);
}

/* A handler may run longer than the idle timeout: the connection is busy,
 * not idle, and the response still goes out. */
static void test_handler_outlives_idle_timeout(void **state)
{
	struct http_server *s;
	struct bg_request b;

	(void)state;
	reset_block();
	assert_int_equal(start_server_with(&s, "127.0.0.1:0", BODY_CAP, 4, 1), 0);
	b.port = http_server_port(s);
	b.path = "/block";
	assert_int_equal(pthread_create(&b.thread, NULL, bg_run, &b), 0);
	wait_entered(1);
	usleep(2200 * 1000);
	release_block();
	pthread_join(b.thread, NULL);
	assert_int_equal(b.r.cc, CURLE_OK);
	assert_int_equal(b.r.status, 200);
	assert_string_equal(b.r.body, "released");
	http_server_free(s);
}

/* The connection cap: beyond it, connections are closed at once, and the
 * server serves again when a slot frees up. */
static void test_connection_limit(void **state)
{
	struct http_server *s;
	struct bg_request b[2];
	struct reply r;
	uint16_t p;

	(void)state;
	reset_block();
	assert_int_equal(start_server_with(&s, "127.0.0.1:0", BODY_CAP, 2, 0), 0);
	p = http_server_port(s);
	for (int i = 0; i < 2; i++) {
		b[i].port = p;
		b[i].path = "/block";
		assert_int_equal(pthread_create(&b[i].thread, NULL, bg_run, &b[i]), 0);
	}
	wait_entered(2);
	request_on("127.0.0.1", p, &r, "GET", "/healthz", NULL, NULL, NULL, 0, false);
	assert_int_not_equal(r.cc, CURLE_OK);
	release_block();
	for (int i = 0; i < 2; i++) {
		pthread_join(b[i].thread, NULL);
		assert_int_equal(b[i].r.status, 200);
	}
	/* The clients have closed; the server notices within moments. */
	for (int i = 0; i < 50; i++) {
		request_on("127.0.0.1", p, &r, "GET", "/healthz", NULL, NULL, NULL, 0, false);
		if (r.cc == CURLE_OK)
			break;
		usleep(50 * 1000);
	}
	assert_int_equal(r.cc, CURLE_OK);
	assert_int_equal(r.status, 200);
	http_server_free(s);
}

static void test_ipv6_loopback(void **state)
{
	struct http_server *s;
	struct reply r;

	(void)state;
	if (start_server(&s, "[::1]:0", BODY_CAP) != 0)
		skip(); /* no IPv6 on this machine */
	request_on("[::1]", http_server_port(s), &r, "GET", "/healthz", NULL, NULL, NULL, 0, false);
	assert_int_equal(r.cc, CURLE_OK);
	assert_int_equal(r.status, 200);
	http_server_free(s);
}

static void test_lifecycle_errors(void **state)
{
	struct http_config cfg = {
		.secret_key = SECRET, .routes = routes, .n_routes = 1,
	};
	struct http_server *s;
	char listen[64], err[256];

	(void)state;
	/* The port is taken. */
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", (unsigned)port);
	cfg.listen = listen;
	assert_int_equal(http_server_new(&cfg, &s, err, sizeof(err)), 0);
	assert_int_equal(http_server_port(s), 0);
	assert_int_equal(http_server_start(s, err, sizeof(err)), HTTP_ELISTEN);
	assert_non_null(strstr(err, listen));
	http_server_free(s);

	/* Started twice; freed without a request ever made. */
	cfg.listen = "localhost:0";
	assert_int_equal(http_server_new(&cfg, &s, err, sizeof(err)), 0);
	assert_int_equal(http_server_start(s, err, sizeof(err)), 0);
	assert_true(http_server_port(s) > 0);
	assert_int_equal(http_server_start(s, err, sizeof(err)), HTTP_ESTATE);
	http_server_free(s);
	http_server_free(NULL);

	/* Never started. */
	assert_int_equal(http_server_new(&cfg, &s, err, sizeof(err)), 0);
	http_server_quiesce(s);
	assert_int_equal(http_server_drain(s, 0), 0);
	http_server_free(s);
}

static void expect_config_error(const char *listen, const char *secret, const struct http_route *rt, size_t n,
				const char *needle)
{
	struct http_config cfg = {
		.listen = listen, .secret_key = secret, .routes = rt, .n_routes = n,
	};
	struct http_server *s = (struct http_server *)&cfg; /* must be reset */
	char err[256] = "";

	assert_int_equal(http_server_new(&cfg, &s, err, sizeof(err)), HTTP_EINVAL);
	assert_null(s);
	if (strstr(err, needle) == NULL)
		fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
}

static void test_config_errors(void **state)
{
	struct http_route r[2] = { { "GET", "/ok", h_health, false }, { "GET", "/ok", h_health, false } };

	(void)state;
	expect_config_error("127.0.0.1:0", NULL, NULL, 0, "secret key");
	expect_config_error("127.0.0.1:0", "", NULL, 0, "secret key");
	expect_config_error(NULL, SECRET, NULL, 0, "listen");
	expect_config_error("127.0.0.1", SECRET, NULL, 0, "host:port");
	expect_config_error("127.0.0.1:65536", SECRET, NULL, 0, "host:port");
	expect_config_error("127.0.0.1:-1", SECRET, NULL, 0, "host:port");
	expect_config_error("127.0.0.1:80x", SECRET, NULL, 0, "host:port");
	expect_config_error("::1:80", SECRET, NULL, 0, "host:port");
	expect_config_error("example.com:80", SECRET, NULL, 0, "IPv4 or IPv6");
	expect_config_error("127.0.0.1:0", SECRET, r, 2, "clash");
	r[1] = (struct http_route){ "GET", "ok", h_health, false };
	expect_config_error("127.0.0.1:0", SECRET, r, 2, "start with '/'");
	r[1] = (struct http_route){ "GET", "/a/", h_health, false };
	expect_config_error("127.0.0.1:0", SECRET, r, 2, "empty path segment");
	r[1] = (struct http_route){ "GET", "/a//b", h_health, false };
	expect_config_error("127.0.0.1:0", SECRET, r, 2, "empty path segment");
	r[1] = (struct http_route){ "GET", "/a/{b", h_health, false };
	expect_config_error("127.0.0.1:0", SECRET, r, 2, "whole segment");
	r[1] = (struct http_route){ "GET", "/a/x{b}", h_health, false };
	expect_config_error("127.0.0.1:0", SECRET, r, 2, "whole segment");
	r[1] = (struct http_route){ "GET", "/a/{b-c}", h_health, false };
	expect_config_error("127.0.0.1:0", SECRET, r, 2, "parameter names");
	r[1] = (struct http_route){ "GET", "/a/{b}/{b}", h_health, false };
	expect_config_error("127.0.0.1:0", SECRET, r, 2, "twice");
	r[1] = (struct http_route){ "get", "/b", h_health, false };
	expect_config_error("127.0.0.1:0", SECRET, r, 2, "method");
	r[1] = (struct http_route){ "GET", "/b", NULL, false };
	expect_config_error("127.0.0.1:0", SECRET, r, 2, "no handler");
	r[1] = (struct http_route){ "GET", "/{x}", h_health, false };
	{
		/* Same shape, different parameter names: a clash too. */
		struct http_route r2[2] = { { "GET", "/{y}", h_health, false }, r[1] };
		expect_config_error("127.0.0.1:0", SECRET, r2, 2, "clash");
	}
	assert_string_equal(http_strerror(HTTP_ELISTEN), "cannot listen on the address");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routing_params_query_headers),
		cmocka_unit_test(test_auth),
		cmocka_unit_test(test_not_found_and_method),
		cmocka_unit_test(test_body_cap),
		cmocka_unit_test(test_json_body),
		cmocka_unit_test(test_handler_responses),
		cmocka_unit_test(test_blocking_handler_concurrency),
		cmocka_unit_test(test_secret_change),
		cmocka_unit_test(test_access_log),
		cmocka_unit_test(test_stats),
		cmocka_unit_test(test_quiesce_then_free_with_request_in_flight),
		cmocka_unit_test(test_handler_outlives_idle_timeout),
		cmocka_unit_test(test_connection_limit),
		cmocka_unit_test(test_ipv6_loopback),
		cmocka_unit_test(test_lifecycle_errors),
		cmocka_unit_test(test_config_errors),
	};
	int log_fd, rc;

	log_fd = mkstemp(log_path);
	if (log_fd < 0) {
		perror("mkstemp");
		return 1;
	}
	log_setup(log_fd, false, LOG_LEVEL_INFO);
	curl_global_init(CURL_GLOBAL_ALL);
	rc = cmocka_run_group_tests_name("http", tests, group_setup, group_teardown);
	curl_global_cleanup();
	if (rc != 0) {
		/* Show the server's log for the failure. */
		char buf[4096];
		ssize_t n;

		lseek(log_fd, 0, SEEK_SET);
		while ((n = read(log_fd, buf, sizeof(buf))) > 0)
			fwrite(buf, 1, (size_t)n, stderr);
	}
	close(log_fd);
	unlink(log_path);
	return rc;
}
