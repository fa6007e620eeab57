/*
 * test_proxy.c - host->proxy() and host->paginate() against a fake provider:
 * libmicrohttpd on 127.0.0.1 port 0 in this process, recording every
 * request it receives (method, path, decoded query, headers, body, client
 * port, arrival time) and answering through a per-test route function.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <microhttpd.h>
#include <sodium.h>

#include "proxy.h"
#include "util.h"

/* ------------------------------------------------------------ fake provider */

#define MAX_REQS 64
#define MAX_KV 32

struct kv {
	char k[128];
	char v[512];
};

struct rec_req {
	char method[16];
	char path[512];
	struct kv args[MAX_KV];
	int n_args;
	struct kv hdrs[MAX_KV];
	int n_hdrs;
	char body[8192];
	size_t body_len;
	unsigned short client_port;
	int64_t at_us;
};

struct reply {
	int status;
	struct kv hdrs[8];
	int n_hdrs;
	char *body;       /* malloc'd, or NULL for "" */
	size_t body_len;  /* 0: strlen(body) */
	int delay_ms;
};

typedef void (*route_fn)(const struct rec_req *rq, int index, struct reply *out);

static struct {
	struct MHD_Daemon *d;
	uint16_t port;
	char base[64];
	pthread_mutex_t lock;
	struct rec_req reqs[MAX_REQS];
	int n_reqs;
	int connections;
	route_fn route;
} F = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void reply_hdr(struct reply *r, const char *k, const char *v)
{
	snprintf(r->hdrs[r->n_hdrs].k, sizeof(r->hdrs[0].k), "%s", k);
	snprintf(r->hdrs[r->n_hdrs].v, sizeof(r->hdrs[0].v), "%s", v);
	r->n_hdrs++;
}

static void reply_body(struct reply *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply_body(struct reply *r, const char *fmt, ...)
{
	va_list ap;

	free(r->body);
	va_start(ap, fmt);
	assert_true(vasprintf(&r->body, fmt, ap) >= 0);
	va_end(ap);
}

static const char *rq_arg(const struct rec_req *rq, const char *k)
{
	for (int i = 0; i < rq->n_args; i++)
		if (strcmp(rq->args[i].k, k) == 0)
			return rq->args[i].v;
	return NULL;
}

static const char *rq_hdr(const struct rec_req *rq, const char *k)
{
	for (int i = 0; i < rq->n_hdrs; i++)
		if (strcasecmp(rq->hdrs[i].k, k) == 0)
			return rq->hdrs[i].v;
	return NULL;
}

static int rq_arg_count(const struct rec_req *rq, const char *k)
{
	int n = 0;

	for (int i = 0; i < rq->n_args; i++)
		n += strcmp(rq->args[i].k, k) == 0;
	return n;
}

static void route_ok(const struct rec_req *rq, int index, struct reply *out)
{
	(void)index;
	out->status = 200;
	reply_hdr(out, "Content-Type", "application/json");
	reply_hdr(out, "X-Echo-Path", rq->path);
	reply_body(out, "{\"ok\":true}");
}

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
	struct rec_req *rq = cls;

	(void)kind;
	if (rq->n_args < MAX_KV) {
		snprintf(rq->args[rq->n_args].k, sizeof(rq->args[0].k), "%s", k);
		snprintf(rq->args[rq->n_args].v, sizeof(rq->args[0].v), "%s", v ? v : "");
		rq->n_args++;
	}
	return MHD_YES;
}

static enum MHD_Result collect_hdr(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
	struct rec_req *rq = cls;

	(void)kind;
	if (rq->n_hdrs < MAX_KV) {
		snprintf(rq->hdrs[rq->n_hdrs].k, sizeof(rq->hdrs[0].k), "%s", k);
		snprintf(rq->hdrs[rq->n_hdrs].v, sizeof(rq->hdrs[0].v), "%s", v ? v : "");
		rq->n_hdrs++;
	}
	return MHD_YES;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
			       const char *method, const char *version, const char *upload,
			       size_t *upload_size, void **con_cls)
{
	struct rec_req *rq = *con_cls;
	struct reply rep = {0};
	struct MHD_Response *resp;
	const union MHD_ConnectionInfo *ci;
	enum MHD_Result ret;
	route_fn route;
	int index;

	(void)cls;
	(void)version;
	if (!rq) {
		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		rq->at_us = util_mono_us();
		snprintf(rq->method, sizeof(rq->method), "%s", method);
		snprintf(rq->path, sizeof(rq->path), "%s", url);
		*con_cls = rq;
		return MHD_YES;
	}
	if (*upload_size) {
		size_t n = *upload_size;

		if (n > sizeof(rq->body) - 1 - rq->body_len)
			n = sizeof(rq->body) - 1 - rq->body_len;
		memcpy(rq->body + rq->body_len, upload, n);
		rq->body_len += n;
		*upload_size = 0;
		return MHD_YES;
	}
	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_arg, rq);
	MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_hdr, rq);
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci && ci->client_addr)
		rq->client_port = ntohs(((const struct sockaddr_in *)ci->client_addr)->sin_port);

	pthread_mutex_lock(&F.lock);
	index = F.n_reqs;
	if (F.n_reqs < MAX_REQS)
		F.reqs[F.n_reqs++] = *rq;
	route = F.route ? F.route : route_ok;
	route(rq, index, &rep);
	pthread_mutex_unlock(&F.lock);

	if (rep.delay_ms)
		usleep((useconds_t)rep.delay_ms * 1000);
	if (!rep.body_len && rep.body)
		rep.body_len = strlen(rep.body);
	resp = MHD_create_response_from_buffer(rep.body_len, rep.body ? rep.body : (char *)"",
					       rep.body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	for (int i = 0; i < rep.n_hdrs; i++)
		MHD_add_response_header(resp, rep.hdrs[i].k, rep.hdrs[i].v);
	ret = MHD_queue_response(conn, (unsigned)rep.status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	(void)toe;
	free(*con_cls);
	*con_cls = NULL;
}

static void notify_conn(void *cls, struct MHD_Connection *conn, void **socket_context,
			enum MHD_ConnectionNotificationCode toe)
{
	(void)cls;
	(void)conn;
	(void)socket_context;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		pthread_mutex_lock(&F.lock);
		F.connections++;
		pthread_mutex_unlock(&F.lock);
	}
}

static int group_setup(void **state)
{
	struct sockaddr_in sa = {0};
	const union MHD_DaemonInfo *di;

	(void)state;
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = 0;
	F.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL,
			       NULL, handler, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
			       MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
			       MHD_OPTION_NOTIFY_CONNECTION, notify_conn, NULL,
			       MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
	if (!F.d)
		return -1;
	di = MHD_get_daemon_info(F.d, MHD_DAEMON_INFO_BIND_PORT);
	F.port = di->port;
	snprintf(F.base, sizeof(F.base), "http://127.0.0.1:%u", F.port);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	MHD_stop_daemon(F.d);
	return 0;
}

/* ------------------------------------------------------------ log capture */

#define MAX_LINES 512
static struct {
	char *lines[MAX_LINES];
	int levels[MAX_LINES];
	int n;
} L;

static void capture_log(void *user, int level, const char *msg)
{
	(void)user;
	if (L.n < MAX_LINES) {
		L.levels[L.n] = level;
		L.lines[L.n++] = strdup(msg);
	}
}

static bool log_has(const char *needle)
{
	for (int i = 0; i < L.n; i++)
		if (strstr(L.lines[i], needle))
			return true;
	return false;
}

static void log_reset(void)
{
	for (int i = 0; i < L.n; i++)
		free(L.lines[i]);
	L.n = 0;
}

static int test_setup(void **state)
{
	(void)state;
	pthread_mutex_lock(&F.lock);
	F.n_reqs = 0;
	F.route = NULL;
	pthread_mutex_unlock(&F.lock);
	log_reset();
	return 0;
}

static int test_teardown(void **state)
{
	(void)state;
	log_reset();
	return 0;
}

static int n_reqs(void)
{
	int n;

	pthread_mutex_lock(&F.lock);
	n = F.n_reqs;
	pthread_mutex_unlock(&F.lock);
	return n;
}

/* ------------------------------------------------------------ helpers */

static void tmap_add(struct config_map *m, const char *k, const char *v)
{
	m->items = realloc(m->items, (m->n + 1) * sizeof(*m->items));
	assert_non_null(m->items);
	m->items[m->n].key = strdup(k);
	m->items[m->n].value = strdup(v);
	m->n++;
}

static void tlist_add(struct config_strlist *l, const char *s)
{
	l->items = realloc(l->items, (l->n + 1) * sizeof(*l->items));
	assert_non_null(l->items);
	l->items[l->n++] = strdup(s);
}

/* A target on the fake provider; path is appended to its base URL. */
static struct proxy_target *target_new(const char *path)
{
	struct proxy_target *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	assert_true(asprintf(&t->base_url, "%s%s", F.base, path ? path : "") > 0);
	return t;
}

static struct proxy_session *session(const struct proxy_target *t, int64_t deadline_ms)
{
	struct proxy_session *s = NULL;
	int64_t deadline = deadline_ms ? util_mono_us() + deadline_ms * 1000 : 0;

	assert_int_equal(proxy_session_new(t, deadline, capture_log, NULL, &s), EVS_OK);
	assert_non_null(s);
	return s;
}

static struct evs_request get(const char *endpoint)
{
	struct evs_request r = {.size = sizeof(r), .endpoint = endpoint};

	return r;
}

static const char *resp_hdr(const struct evs_response *r, const char *name)
{
	for (size_t i = 0; i < r->n_headers; i++)
		if (strcasecmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	return NULL;
}

/* ------------------------------------------------------------ auth injection */

static void test_bearer_header(void **state)
{
	struct proxy_target *t = target_new(NULL);
	struct evs_header h[] = {{"Authorization", "Bearer evil"}, {"X-Extra", "1"}};
	struct evs_request r = get("/user");
	struct evs_response *resp = NULL;
	struct proxy_session *s;

	(void)state;
	tmap_add(&t->headers, "Authorization", "Bearer tok-123456");
	s = session(t, 0);
	proxy_target_free(t); /* the session keeps its own copy */
	r.headers = h;
	r.n_headers = 2;
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_int_equal(resp->status, 200);
	assert_string_equal(resp->body, "{\"ok\":true}");
	assert_int_equal(resp->body_len, strlen("{\"ok\":true}"));
	assert_string_equal(resp_hdr(resp, "X-Echo-Path"), "/user");
	assert_string_equal(resp_hdr(resp, "content-type"), "application/json");
	assert_int_equal(n_reqs(), 1);
	assert_string_equal(F.reqs[0].method, "GET");
	assert_string_equal(F.reqs[0].path, "/user");
	/* a request header named like the auth header replaces it, as in Nango */
	assert_string_equal(rq_hdr(&F.reqs[0], "Authorization"), "Bearer evil");
	assert_string_equal(rq_hdr(&F.reqs[0], "X-Extra"), "1");
	assert_non_null(rq_hdr(&F.reqs[0], "User-Agent"));
	assert_true(log_has("GET http://127.0.0.1:"));
	assert_true(log_has("/user -> 200 ("));
	proxy_response_free(resp);
	proxy_session_free(s);
}

static void test_api_key_header(void **state)
{
	struct proxy_target *t = target_new("/v2");
	struct evs_header h[] = {{"x-api-key", "override"}, {"Accept", "application/json"}};
	struct evs_request r = get("/me");
	struct evs_response *resp = NULL;
	struct proxy_session *s;

	(void)state;
	tmap_add(&t->headers, "X-API-Key", "key-abcdef");
	tmap_add(&t->headers, "Notion-Version", "2022-06-28");
	s = session(t, 0);
	r.headers = h;
	r.n_headers = 2;
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_int_equal(resp->status, 200);
	assert_string_equal(F.reqs[0].path, "/v2/me");
	assert_string_equal(rq_hdr(&F.reqs[0], "X-API-Key"), "override"); /* the script's own, as in Nango */
	assert_string_equal(rq_hdr(&F.reqs[0], "Notion-Version"), "2022-06-28");
	assert_string_equal(rq_hdr(&F.reqs[0], "Accept"), "application/json");
	proxy_response_free(resp);
	proxy_session_free(s);
	proxy_target_free(t);
}

static void test_api_key_query_and_encoding(void **state)
{
	struct proxy_target *t = target_new(NULL);
	const char *tricky = "a b&c=d+e/f?g#h%20é";
	struct evs_header p[] = {{"q", tricky}, {"x y", "1"}, {"api_key", "evil"}, {"empty", ""}};
	struct evs_request r = get("/search?fixed=yes");
	struct evs_response *resp = NULL;
	struct proxy_session *s;

	(void)state;
	tmap_add(&t->query, "api_key", "qkey-987654");
	s = session(t, 0);
	r.params = p;
	r.n_params = 4;
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_int_equal(resp->status, 200);
	assert_string_equal(F.reqs[0].path, "/search");
	assert_string_equal(rq_arg(&F.reqs[0], "fixed"), "yes");
	assert_string_equal(rq_arg(&F.reqs[0], "q"), tricky);
	assert_string_equal(rq_arg(&F.reqs[0], "x y"), "1");
	assert_string_equal(rq_arg(&F.reqs[0], "empty"), "");
	assert_int_equal(rq_arg_count(&F.reqs[0], "api_key"), 1);
	assert_string_equal(rq_arg(&F.reqs[0], "api_key"), "qkey-987654");
	/* The query string never reaches the log. */
	assert_false(log_has("qkey"));
	assert_false(log_has("fixed"));
	proxy_response_free(resp);
	proxy_session_free(s);
	proxy_target_free(t);
}

static void test_basic_auth(void **state)
{
	struct proxy_target *t = target_new(NULL);
	struct evs_header h[] = {{"Authorization", "Bearer evil"}};
	struct evs_request r = get("/basic");
	struct evs_response *resp = NULL;
	struct proxy_session *s;
	char b64[128], expect[160];
	const char *cred = "alice:pa ss:w0rd";

	(void)state;
	t->basic_user = strdup("alice");
	t->basic_password = strdup("pa ss:w0rd");
	s = session(t, 0);
	r.headers = h;
	r.n_headers = 1;
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_int_equal(resp->status, 200);
	sodium_bin2base64(b64, sizeof(b64), (const unsigned char *)cred, strlen(cred),
			  sodium_base64_VARIANT_ORIGINAL);
	snprintf(expect, sizeof(expect), "Basic %s", b64);
	assert_string_equal(rq_hdr(&F.reqs[0], "Authorization"), expect);
	proxy_response_free(resp);
	proxy_session_free(s);
	proxy_target_free(t);
}

static void test_no_auth(void **state)
{
	struct proxy_target *t = target_new(NULL);
	struct evs_request r = get("/public");
	struct evs_response *resp = NULL;
	struct proxy_session *s = session(t, 0);

	(void)state;
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_null(rq_hdr(&F.reqs[0], "Authorization"));
	proxy_response_free(resp);
	proxy_session_free(s);
	proxy_target_free(t);
}

/* ------------------------------------------------------------ methods, bodies, URLs */

static void route_echo_body(const struct rec_req *rq, int index, struct reply *out)
{
	(void)index;
	out->status = 201;
	reply_body(out, "%s %s %zu", rq->method, rq->path, rq->body_len);
}

static void test_method_and_body(void **state)
{
	struct proxy_target *t = target_new(NULL);
	struct proxy_session *s = session(t, 0);
	struct evs_request r = get("/items");
	struct evs_response *resp = NULL;
	const char *json = "{\"name\":\"hook\",\"n\":1}";
	struct evs_header ct[] = {{"Content-Type", "text/plain"}};

	(void)state;
	F.route = route_echo_body;
	r.method = "POST";
	r.body = json;
	r.body_len = strlen(json);
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_int_equal(resp->status, 201);
	assert_string_equal(F.reqs[0].method, "POST");
	assert_int_equal(F.reqs[0].body_len, strlen(json));
	assert_memory_equal(F.reqs[0].body, json, strlen(json));
	assert_string_equal(rq_hdr(&F.reqs[0], "Content-Type"), "application/json");
	assert_null(rq_hdr(&F.reqs[0], "Expect"));
	proxy_response_free(resp);

	r.method = "put";
	r.headers = ct;
	r.n_headers = 1;
	r.body = "plain";
	r.body_len = 5;
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_string_equal(F.reqs[1].method, "PUT");
	assert_string_equal(F.reqs[1].body, "plain");
	assert_string_equal(rq_hdr(&F.reqs[1], "Content-Type"), "text/plain");
	assert_string_equal(resp->body, "PUT /items 5");
	proxy_response_free(resp);

	r = get("/items/7");
	r.method = "DELETE";
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_string_equal(F.reqs[2].method, "DELETE");
	assert_int_equal(F.reqs[2].body_len, 0);
	proxy_response_free(resp);

	r.method = "PATCH";
	r.body = "{}";
	r.body_len = 2;
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_string_equal(F.reqs[3].method, "PATCH");
	assert_string_equal(F.reqs[3].body, "{}");
	proxy_response_free(resp);

	/* Bad methods and header injection are refused before anything is sent. */
	r = get("/x");
	r.method = "GET /y";
	assert_int_equal(proxy_request(s, &r, &resp), EVS_EINVAL);
	assert_null(resp);
	{
		struct evs_header bad[] = {{"X-A", "1\r\nX-Injected: 1"}};

		r = get("/x");
		r.headers = bad;
		r.n_headers = 1;
		assert_int_equal(proxy_request(s, &r, &resp), EVS_EINVAL);
	}
	{
		struct evs_header bad[] = {{"X A", "1"}};

		r = get("/x");
		r.headers = bad;
		r.n_headers = 1;
		assert_int_equal(proxy_request(s, &r, &resp), EVS_EINVAL);
	}
	assert_int_equal(n_reqs(), 4);
	proxy_session_free(s);
	proxy_target_free(t);
}

static void test_absolute_urls(void **state)
{
	struct proxy_target *t = target_new("/api");
	struct proxy_session *s = session(t, 0);
	struct evs_response *resp = NULL;
	struct evs_request r;
	char url[256];
	const char *denied[] = {
		"relative/path", "http://127.0.0.1:1/api/x", "/../secret", "/a/./b",
		"/a/..", "//evil.example/x", NULL,
	};

	(void)state;
	snprintf(url, sizeof(url), "%s/api/abs?x=1", F.base);
	r = get(url);
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_string_equal(F.reqs[0].path, "/api/abs");
	assert_string_equal(rq_arg(&F.reqs[0], "x"), "1");
	proxy_response_free(resp);

	snprintf(url, sizeof(url), "%s/api", F.base);
	r = get(url);
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_string_equal(F.reqs[1].path, "/api");
	proxy_response_free(resp);

	/* Same prefix, different path segment: not under the base. */
	snprintf(url, sizeof(url), "%s/apix/y", F.base);
	r = get(url);
	assert_int_equal(proxy_request(s, &r, &resp), EVS_EDENIED);
	assert_null(resp);
	/* A host that merely starts like the base. */
	snprintf(url, sizeof(url), "%s0/api/y", F.base);
	r = get(url);
	assert_int_equal(proxy_request(s, &r, &resp), EVS_EDENIED);
	for (int i = 0; denied[i]; i++) {
		r = get(denied[i]);
		assert_int_equal(proxy_request(s, &r, &resp), EVS_EDENIED);
		assert_null(resp);
	}
	r = get("");
	assert_int_equal(proxy_request(s, &r, &resp), EVS_EINVAL);
	r = get("/has space");
	assert_int_equal(proxy_request(s, &r, &resp), EVS_EINVAL);
	assert_int_equal(n_reqs(), 2);
	assert_true(log_has("not allowed"));
	proxy_session_free(s);
	proxy_target_free(t);
}

static void route_redirect(const struct rec_req *rq, int index, struct reply *out)
{
	(void)rq;
	(void)index;
	out->status = 302;
	reply_hdr(out, "Location", "http://127.0.0.1:1/elsewhere");
}

static void test_redirect_not_followed(void **state)
{
	struct proxy_target *t = target_new(NULL);
	struct proxy_session *s;
	struct evs_request r = get("/moved");
	struct evs_response *resp = NULL;

	(void)state;
	tmap_add(&t->headers, "Authorization", "Bearer tok-123456");
	s = session(t, 0);
	F.route = route_redirect;
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_int_equal(resp->status, 302);
	assert_string_equal(resp_hdr(resp, "Location"), "http://127.0.0.1:1/elsewhere");
	proxy_response_free(resp);
	proxy_session_free(s);
	proxy_target_free(t);
}

static void route_big(const struct rec_req *rq, int index, struct reply *out)
{
	size_t n = strcmp(rq->path, "/big") == 0 ? (17u << 20) : (1u << 20);

	(void)index;
	out->status = 200;
	out->body = malloc(n);
	assert_non_null(out->body);
	memset(out->body, 'x', n);
	out->body_len = n;
}

static void test_body_cap(void **state)
{
	struct proxy_target *t = target_new(NULL);
	struct proxy_session *s = session(t, 0);
	struct evs_request r = get("/big");
	struct evs_response *resp = NULL;

	(void)state;
	F.route = route_big;
	assert_int_equal(proxy_request(s, &r, &resp), EVS_ENOMEM);
	assert_null(resp);
	r = get("/mib");
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_int_equal(resp->body_len, 1u << 20);
	assert_int_equal(resp->body[resp->body_len], '\0');
	proxy_response_free(resp);
	proxy_session_free(s);
	proxy_target_free(t);
}

/* ------------------------------------------------------------ retries */

static int seq_status[8];
static const char *seq_hdr_name[8];
static char seq_hdr_value[8][64];
static const char *seq_hdr2_name[8];
static char seq_hdr2_value[8][64];

static void route_seq(const struct rec_req *rq, int index, struct reply *out)
{
	int i = index < 8 ? index : 7;

	(void)rq;
	out->status = seq_status[i];
	if (seq_hdr_name[i])
		reply_hdr(out, seq_hdr_name[i], seq_hdr_value[i]);
	if (seq_hdr2_name[i])
		reply_hdr(out, seq_hdr2_name[i], seq_hdr2_value[i]);
	reply_body(out, "{\"attempt\":%d}", index);
}

static void seq_set(int i, int status, const char *h, const char *v, const char *h2, const char *v2)
{
	seq_status[i] = status;
	seq_hdr_name[i] = h;
	snprintf(seq_hdr_value[i], sizeof(seq_hdr_value[i]), "%s", v ? v : "");
	seq_hdr2_name[i] = h2;
	snprintf(seq_hdr2_value[i], sizeof(seq_hdr2_value[i]), "%s", v2 ? v2 : "");
}

static void seq_fill(int status)
{
	for (int i = 0; i < 8; i++)
		seq_set(i, status, NULL, NULL, NULL, NULL);
}

static int64_t gap_ms(int a, int b)
{
	return (F.reqs[b].at_us - F.reqs[a].at_us) / 1000;
}

static void test_retry_500_then_200(void **state)
{
	struct proxy_target *t = target_new(NULL);
	struct proxy_session *s = session(t, 0);
	struct evs_request r = get("/flaky");
	struct evs_response *resp = NULL;

	(void)state;
	seq_fill(200);
	seq_set(0, 500, NULL, NULL, NULL, NULL);
	seq_set(1, 503, NULL, NULL, NULL, NULL);
	F.route = route_seq;
	r.retries = 3;
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_int_equal(resp->status, 200);
	assert_string_equal(resp->body, "{\"attempt\":2}");
	assert_int_equal(n_reqs(), 3);
	/* Backoff: 100 ms * 2^n with half of it random. */
	assert_true(gap_ms(0, 1) >= 45);
	assert_true(gap_ms(1, 2) >= 95);
	assert_true(gap_ms(1, 2) < 1000);
	assert_true(log_has("-> 500 ("));
	assert_true(log_has("-> 503 (") && log_has("(retry 1/3)"));
	assert_true(log_has("-> 200 (") && log_has("(retry 2/3)"));
	proxy_response_free(resp);
	proxy_session_free(s);
	proxy_target_free(t);
}

/* Appends a copy of v to l. */
static void strlist_add_test(struct config_strlist *l, const char *v)
{
	l->items = realloc(l->items, (l->n + 1) * sizeof(*l->items));
	assert_non_null(l->items);
	l->items[l->n++] = strdup(v);
}

/* proxy.retry.error_code: a listed status is retried ("5xx" style too). */
static void test_retry_error_code(void **state)
{
	struct proxy_target *t = target_new(NULL);
	struct proxy_session *s;
	struct evs_request r = get("/forbidden");
	struct evs_response *resp = NULL;

	(void)state;
	seq_fill(200);
	seq_set(0, 403, NULL, NULL, NULL, NULL);
	F.route = route_seq;
	r.retries = 2;
	s = session(t, 0); /* without error_code: 403 is an answer */
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_int_equal(resp->status, 403);
	assert_int_equal(n_reqs(), 1);
	proxy_response_free(resp);
	proxy_session_free(s);
	strlist_add_test(&t->retry.error_code, "5xx");
	strlist_add_test(&t->retry.error_code, "403");
	s = session(t, 0);
	pthread_mutex_lock(&F.lock);
	F.n_reqs = 0;
	pthread_mutex_unlock(&F.lock);
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_int_equal(resp->status, 200);
	assert_int_equal(n_reqs(), 2);
	proxy_response_free(resp);
	proxy_session_free(s);
	proxy_target_free(t);
}

static char in_body_message[128];

static void route_in_body(const struct rec_req *rq, int index, struct reply *out)
{
	(void)rq;
	out->status = index == 0 ? 403 : 200;
	if (index == 0)
		reply_body(out, "{\"error\":{\"message\":\"%s\"}}", in_body_message);
	else
		reply_body(out, "{\"attempt\":%d}", index);
}

/* proxy.retry.in_body (Google's rule): the body's message says when. */
static void test_retry_in_body(void **state)
{
	struct proxy_target *t = target_new(NULL);
	struct proxy_session *s;
	struct evs_request r = get("/quota");
	struct evs_response *resp = NULL;
	time_t when = time(NULL) + 2;
	struct tm tm;
	char iso[32];

	(void)state;
	gmtime_r(&when, &tm);
	strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(in_body_message, sizeof(in_body_message), "User-rate limit exceeded.  Retry after %s", iso);
	t->retry.in_body_path = strdup("error.message");
	t->retry.in_body_value = strdup("/User-rate limit exceeded\\. +Retry after (.+)/");
	t->retry.in_body_strategy = strdup("at");
	s = session(t, 0);
	F.route = route_in_body;
	r.retries = 1;
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_int_equal(resp->status, 200);
	assert_int_equal(n_reqs(), 2);
	assert_true(gap_ms(0, 1) >= 900); /* waited for the time in the body, not 100 ms of backoff */
	proxy_response_free(resp);
	proxy_session_free(s);
	proxy_target_free(t);
}

static void test_no_retry_by_default(void **state)
{
	struct proxy_target *t = target_new(NULL);
	struct proxy_session *s = session(t, 0);
	struct evs_request r = get("/down");
	struct evs_response *resp = NULL;

	(void)state;
	seq_fill(500);
	F.route = route_seq;
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_int_equal(resp->status, 500);
	assert_int_equal(n_reqs(), 1);
	proxy_response_free(resp);
	/* 4xx other than 429 is never retried. */
	seq_fill(404);
	r.retries = 3;
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_int_equal(resp->status, 404);
	assert_int_equal(n_reqs(), 2);
	proxy_response_free(resp);
	proxy_session_free(s);
	proxy_target_free(t);
}

static void test_retry_after_429(void **state)
{
	struct proxy_target *t = target_new(NULL);
	struct proxy_session *s = session(t, 0);
	struct evs_request r = get("/limited");
	struct evs_response *resp = NULL;

	(void)state;
	seq_fill(200);
	seq_set(0, 429, "Retry-After", "1", NULL, NULL);
	F.route = route_seq;
	r.retries = 1;
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_int_equal(resp->status, 200);
	assert_int_equal(n_reqs(), 2);
	assert_true(gap_ms(0, 1) >= 950);
	assert_true(gap_ms(0, 1) < 2000);
	proxy_response_free(resp);
	proxy_session_free(s);
	proxy_target_free(t);
}

static void test_retry_after_http_date(void **state)
{
	struct proxy_target *t = target_new(NULL);
	struct proxy_session *s = session(t, 0);
	struct evs_request r = get("/limited");
	struct evs_response *resp = NULL;
	char date[64];
	time_t when = time(NULL) + 2;
	struct tm tm;

	(void)state;
	gmtime_r(&when, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	seq_fill(200);
	seq_set(0, 503, "Retry-After", date, NULL, NULL);
	F.route = route_seq;
	r.retries = 1;
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_int_equal(resp->status, 200);
	/* now+2 s at one-second resolution: between 1 and 2 s. */
	assert_true(gap_ms(0, 1) >= 900);
	assert_true(gap_ms(0, 1) < 2600);
	proxy_response_free(resp);
	proxy_session_free(s);
	proxy_target_free(t);
}

static void test_provider_after_header(void **state)
{
	struct proxy_target *t = target_new(NULL);
	struct proxy_session *s;
	struct evs_request r = get("/limited");
	struct evs_response *resp = NULL;

	(void)state;
	tlist_add(&t->retry.after, "X-Wait-Seconds");
	s = session(t, 0);
	seq_fill(200);
	seq_set(0, 429, "x-wait-seconds", "1", NULL, NULL);
	F.route = route_seq;
	r.retries = 2;
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_int_equal(resp->status, 200);
	assert_int_equal(n_reqs(), 2);
	assert_true(gap_ms(0, 1) >= 950);
	assert_true(gap_ms(0, 1) < 2000);
	proxy_response_free(resp);
	proxy_session_free(s);
	proxy_target_free(t);
}

static void test_provider_remaining_at_headers(void **state)
{
	struct proxy_target *t = target_new(NULL);
	struct proxy_session *s;
	struct evs_request r = get("/limited");
	struct evs_response *resp = NULL;
	char at[32];

	(void)state;
	tlist_add(&t->retry.at, "X-RateLimit-Reset");
	tlist_add(&t->retry.remaining, "X-RateLimit-Remaining");
	s = session(t, 0);
	snprintf(at, sizeof(at), "%lld", (long long)time(NULL) + 2);
	seq_fill(200);
	seq_set(0, 429, "X-RateLimit-Remaining", "0", "X-RateLimit-Reset", at);
	F.route = route_seq;
	r.retries = 1;
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_int_equal(resp->status, 200);
	assert_true(gap_ms(0, 1) >= 900);
	assert_true(gap_ms(0, 1) < 2600);
	proxy_response_free(resp);

	/* Requests left: the reset time is not a reason to wait; backoff. */
	pthread_mutex_lock(&F.lock);
	F.n_reqs = 0;
	pthread_mutex_unlock(&F.lock);
	snprintf(at, sizeof(at), "%lld", (long long)time(NULL) + 30);
	seq_set(0, 429, "X-RateLimit-Remaining", "5", "X-RateLimit-Reset", at);
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_int_equal(resp->status, 200);
	assert_true(gap_ms(0, 1) < 500);
	proxy_response_free(resp);
	proxy_session_free(s);
	proxy_target_free(t);
}

static void test_deadline_caps_retries(void **state)
{
	struct proxy_target *t = target_new(NULL);
	struct proxy_session *s = session(t, 1000);
	struct evs_request r = get("/limited");
	struct evs_response *resp = NULL;
	int64_t start = util_mono_us();

	(void)state;
	/* A Retry-After past the deadline: the 429 comes back at once. */
	seq_fill(200);
	seq_set(0, 429, "Retry-After", "5", NULL, NULL);
	F.route = route_seq;
	r.retries = 3;
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_int_equal(resp->status, 429);
	assert_int_equal(n_reqs(), 1);
	assert_true(util_mono_us() - start < 500000);
	assert_true(log_has("would pass the deadline"));
	proxy_response_free(resp);
	proxy_session_free(s);

	/* Backoff until the deadline, then the last response. */
	s = session(t, 700);
	start = util_mono_us();
	seq_fill(500);
	r.retries = 100;
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_int_equal(resp->status, 500);
	assert_true(n_reqs() >= 2 && n_reqs() < 10);
	assert_true(util_mono_us() - start < 900000);
	proxy_response_free(resp);
	proxy_session_free(s);
	proxy_target_free(t);
}

/* A port on 127.0.0.1 where nothing listens. */
static uint16_t closed_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static void test_network_errors(void **state)
{
	struct proxy_target t = {0};
	struct proxy_session *s;
	struct evs_request r = get("/x");
	struct evs_response *resp = NULL;
	char base[64];
	int64_t start;

	(void)state;
	snprintf(base, sizeof(base), "http://127.0.0.1:%u", closed_port());
	t.base_url = base;
	s = session(&t, 0);
	assert_int_equal(proxy_request(s, &r, &resp), EVS_ENETWORK);
	assert_null(resp);
	assert_true(log_has("network error"));
	proxy_session_free(s);

	/* Retried until the deadline, then timed out. */
	s = session(&t, 500);
	start = util_mono_us();
	r.retries = 50;
	assert_int_equal(proxy_request(s, &r, &resp), EVS_ETIMEDOUT);
	assert_null(resp);
	assert_true(util_mono_us() - start < 1000000);
	assert_true(log_has("(retry 2/50)"));
	proxy_session_free(s);
}

static void route_slow(const struct rec_req *rq, int index, struct reply *out)
{
	(void)rq;
	(void)index;
	out->status = 200;
	out->delay_ms = 700;
	reply_body(out, "late");
}

static void test_timeouts(void **state)
{
	struct proxy_target *t = target_new(NULL);
	struct proxy_session *s = session(t, 0);
	struct evs_request r = get("/slow");
	struct evs_response *resp = NULL;
	int64_t start = util_mono_us();

	(void)state;
	F.route = route_slow;
	r.timeout_ms = 150;
	assert_int_equal(proxy_request(s, &r, &resp), EVS_ETIMEDOUT);
	assert_null(resp);
	assert_true(util_mono_us() - start < 600000);
	proxy_session_free(s);

	/* The deadline shortens the per-attempt timeout. */
	s = session(t, 150);
	start = util_mono_us();
	r.timeout_ms = 0;
	assert_int_equal(proxy_request(s, &r, &resp), EVS_ETIMEDOUT);
	assert_true(util_mono_us() - start < 600000);
	/* And once it has passed, nothing is sent. */
	usleep(20000);
	{
		int before = n_reqs();

		assert_int_equal(proxy_request(s, &r, &resp), EVS_ETIMEDOUT);
		assert_int_equal(n_reqs(), before);
	}
	proxy_session_free(s);
	proxy_target_free(t);
	usleep(800000); /* let the slow handlers finish */
}

static void test_connection_reuse(void **state)
{
	struct proxy_target *t = target_new(NULL);
	struct proxy_session *s = session(t, 0);
	struct evs_response *resp = NULL;
	int before;

	(void)state;
	pthread_mutex_lock(&F.lock);
	before = F.connections;
	pthread_mutex_unlock(&F.lock);
	for (int i = 0; i < 3; i++) {
		struct evs_request r = get("/again");

		if (i == 1) {
			r.method = "POST";
			r.body = "{}";
			r.body_len = 2;
		}
		assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
		proxy_response_free(resp);
	}
	assert_int_equal(n_reqs(), 3);
	assert_int_equal(F.reqs[0].client_port, F.reqs[1].client_port);
	assert_int_equal(F.reqs[1].client_port, F.reqs[2].client_port);
	pthread_mutex_lock(&F.lock);
	assert_int_equal(F.connections - before, 1);
	pthread_mutex_unlock(&F.lock);
	proxy_session_free(s);

	/* Another session (another execution) has its own connection. */
	s = session(t, 0);
	{
		struct evs_request r = get("/again");

		assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
		proxy_response_free(resp);
	}
	pthread_mutex_lock(&F.lock);
	assert_int_equal(F.connections - before, 2);
	pthread_mutex_unlock(&F.lock);
	assert_int_not_equal(F.reqs[3].client_port, F.reqs[0].client_port);
	proxy_session_free(s);
	proxy_target_free(t);
}

/* ------------------------------------------------------------ pagination */

#define N_ITEMS 7

struct pages {
	int calls;
	int counts[16];
	int ids[64];
	int n_ids;
	int stop_after; /* 0: never */
};

static int on_page(void *user, const char *records_json, size_t n)
{
	struct pages *p = user;
	struct json_object *a = json_tokener_parse(records_json);

	assert_non_null(a);
	assert_true(json_object_is_type(a, json_type_array));
	assert_int_equal(json_object_array_length(a), n);
	for (size_t i = 0; i < n; i++) {
		struct json_object *id;

		assert_true(json_object_object_get_ex(json_object_array_get_idx(a, i), "id", &id));
		p->ids[p->n_ids++] = json_object_get_int(id);
	}
	json_object_put(a);
	p->counts[p->calls++] = (int)n;
	return p->stop_after && p->calls >= p->stop_after;
}

static void assert_ids(const struct pages *p, int n)
{
	assert_int_equal(p->n_ids, n);
	for (int i = 0; i < n; i++)
		assert_int_equal(p->ids[i], i);
}

static char *items_json(int from, int to)
{
	char *s = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&s, &len);

	fputc('[', f);
	for (int i = from; i < to && i < N_ITEMS; i++)
		fprintf(f, "%s{\"id\":%d}", i > from ? "," : "", i);
	fputc(']', f);
	fclose(f);
	return s;
}

/* Cursor: ?cursor=c<start>&limit=N -> {"data":[...],"meta":{"next":"c<k>"|""}} */
static void route_cursor(const struct rec_req *rq, int index, struct reply *out)
{
	const char *c = rq_arg(rq, "cursor"), *l = rq_arg(rq, "limit");
	int start = c ? atoi(c + 1) : 0, limit = l ? atoi(l) : 2;
	char *items = items_json(start, start + limit);
	char next[16] = "";

	(void)index;
	if (start + limit < N_ITEMS)
		snprintf(next, sizeof(next), "c%d", start + limit);
	out->status = 200;
	reply_body(out, "{\"data\":%s,\"meta\":{\"next\":\"%s\"}}", items, next);
	free(items);
}

static struct proxy_target *cursor_target(void)
{
	struct proxy_target *t = target_new(NULL);

	t->paginate.type = CONFIG_PAGINATE_CURSOR;
	t->paginate.cursor_name_in_request = strdup("cursor");
	t->paginate.cursor_path_in_response = strdup("meta.next");
	t->paginate.limit_name_in_request = strdup("limit");
	t->paginate.response_path = strdup("data");
	return t;
}

static void test_paginate_cursor(void **state)
{
	struct proxy_target *t = cursor_target();
	struct proxy_session *s = session(t, 0);
	struct evs_request r = get("/list");
	struct evs_header extra[] = {{"filter", "all"}};
	struct evs_paginate_options o = {.size = sizeof(o), .limit = 3};
	struct pages p = {0};

	(void)state;
	F.route = route_cursor;
	r.params = extra;
	r.n_params = 1;
	assert_int_equal(proxy_paginate(s, &r, &o, on_page, &p), EVS_OK);
	assert_int_equal(p.calls, 3);
	assert_int_equal(p.counts[0], 3);
	assert_int_equal(p.counts[1], 3);
	assert_int_equal(p.counts[2], 1);
	assert_ids(&p, N_ITEMS);
	assert_int_equal(n_reqs(), 3);
	assert_null(rq_arg(&F.reqs[0], "cursor"));
	assert_string_equal(rq_arg(&F.reqs[1], "cursor"), "c3");
	assert_string_equal(rq_arg(&F.reqs[2], "cursor"), "c6");
	for (int i = 0; i < 3; i++) {
		assert_string_equal(rq_arg(&F.reqs[i], "limit"), "3");
		assert_string_equal(rq_arg(&F.reqs[i], "filter"), "all");
	}

	/* max_pages */
	memset(&p, 0, sizeof(p));
	o.max_pages = 2;
	assert_int_equal(proxy_paginate(s, &r, &o, on_page, &p), EVS_OK);
	assert_int_equal(p.calls, 2);
	assert_int_equal(n_reqs(), 5);

	/* on_page stops it */
	memset(&p, 0, sizeof(p));
	p.stop_after = 1;
	o.max_pages = 0;
	assert_int_equal(proxy_paginate(s, &r, &o, on_page, &p), EVS_OK);
	assert_int_equal(p.calls, 1);
	assert_int_equal(n_reqs(), 6);

	/* No opts: the provider's settings, the server's page size (2). */
	memset(&p, 0, sizeof(p));
	assert_int_equal(proxy_paginate(s, &r, NULL, on_page, &p), EVS_OK);
	assert_int_equal(p.calls, 4);
	assert_ids(&p, N_ITEMS);
	proxy_session_free(s);
	proxy_target_free(t);
}

/* Link header: /items?page=N, 3 per page, array body. */
static void route_link_header(const struct rec_req *rq, int index, struct reply *out)
{
	const char *pg = rq_arg(rq, "page");
	int page = pg ? atoi(pg) : 1;
	char *items = items_json((page - 1) * 3, page * 3);
	char link[512];

	(void)index;
	out->status = 200;
	if (page * 3 < N_ITEMS) {
		/* "next" among other relations, with a comma inside a URL. */
		snprintf(link, sizeof(link),
			 "<%s/items?page=1&x=a,b>; rel=\"first\", <%s/items?page=%d>; rel=\"prefetch next\", "
			 "<%s/items?page=3>; rel=last",
			 F.base, F.base, page + 1, F.base);
		reply_hdr(out, "Link", link);
	}
	out->body = items;
}

static void test_paginate_link_header(void **state)
{
	struct proxy_target *t = target_new(NULL);
	struct proxy_session *s;
	struct evs_request r = get("/items");
	struct evs_header extra[] = {{"sort", "id"}};
	struct pages p = {0};
	struct evs_paginate_options o = {.size = sizeof(o), .type = "link"};

	(void)state;
	t->paginate.type = CONFIG_PAGINATE_NONE; /* opts->type picks the style */
	t->paginate.link_rel_in_response_header = strdup("next");
	s = session(t, 0);
	F.route = route_link_header;
	r.params = extra;
	r.n_params = 1;
	assert_int_equal(proxy_paginate(s, &r, &o, on_page, &p), EVS_OK);
	assert_int_equal(p.calls, 3);
	assert_ids(&p, N_ITEMS);
	assert_int_equal(n_reqs(), 3);
	assert_string_equal(rq_arg(&F.reqs[0], "sort"), "id");
	assert_string_equal(rq_arg(&F.reqs[1], "page"), "2");
	assert_null(rq_arg(&F.reqs[1], "sort")); /* the link carries the whole query */
	assert_string_equal(rq_arg(&F.reqs[2], "page"), "3");
	proxy_session_free(s);
	proxy_target_free(t);
}

/* Link in the body: {"items":[...],"paging":{"next":"/items?page=N"|null}} */
static void route_link_body(const struct rec_req *rq, int index, struct reply *out)
{
	const char *pg = rq_arg(rq, "page");
	int page = pg ? atoi(pg) : 1;
	char *items = items_json((page - 1) * 4, page * 4);

	(void)index;
	out->status = 200;
	if (page * 4 < N_ITEMS)
		reply_body(out, "{\"items\":%s,\"paging\":{\"next\":\"/items?page=%d\"}}", items, page + 1);
	else
		reply_body(out, "{\"items\":%s,\"paging\":{\"next\":null}}", items);
	free(items);
}

static void test_paginate_link_body(void **state)
{
	struct proxy_target *t = target_new(NULL);
	struct proxy_session *s;
	struct evs_request r = get("/items");
	struct pages p = {0};

	(void)state;
	t->paginate.type = CONFIG_PAGINATE_LINK;
	t->paginate.link_path_in_response_body = strdup("paging.next");
	t->paginate.response_path = strdup("items");
	s = session(t, 0);
	F.route = route_link_body;
	assert_int_equal(proxy_paginate(s, &r, NULL, on_page, &p), EVS_OK);
	assert_int_equal(p.calls, 2);
	assert_int_equal(p.counts[0], 4);
	assert_int_equal(p.counts[1], 3);
	assert_ids(&p, N_ITEMS);
	proxy_session_free(s);
	proxy_target_free(t);
}

static void route_link_elsewhere(const struct rec_req *rq, int index, struct reply *out)
{
	(void)rq;
	(void)index;
	out->status = 200;
	reply_hdr(out, "Link", "<http://evil.example/items?page=2>; rel=\"next\"");
	reply_body(out, "[{\"id\":0}]");
}

static void test_paginate_link_off_base(void **state)
{
	struct proxy_target *t = target_new(NULL);
	struct proxy_session *s;
	struct evs_request r = get("/items");
	struct pages p = {0};

	(void)state;
	t->paginate.type = CONFIG_PAGINATE_LINK;
	t->paginate.link_rel_in_response_header = strdup("next");
	s = session(t, 0);
	F.route = route_link_elsewhere;
	assert_int_equal(proxy_paginate(s, &r, NULL, on_page, &p), EVS_EDENIED);
	assert_int_equal(p.calls, 1);
	assert_int_equal(n_reqs(), 1);
	proxy_session_free(s);
	proxy_target_free(t);
}

/* Offset: ?offset=N&limit=L (or a JSON body with them), or ?page=N. The
 * server's own page size is 3 when no limit is sent. */
static void route_offset(const struct rec_req *rq, int index, struct reply *out)
{
	const char *o = rq_arg(rq, "offset"), *l = rq_arg(rq, "limit"), *pg = rq_arg(rq, "page");
	int limit = l ? atoi(l) : 3, start;
	char *items;

	(void)index;
	if (rq->body_len) {
		struct json_object *b = json_tokener_parse(rq->body), *v;

		assert_non_null(b);
		assert_true(json_object_object_get_ex(b, "offset", &v));
		assert_true(json_object_is_type(v, json_type_int));
		start = json_object_get_int(v);
		assert_true(json_object_object_get_ex(b, "limit", &v));
		limit = json_object_get_int(v);
		assert_true(json_object_object_get_ex(b, "filter", &v));
		json_object_put(b);
	} else if (pg) {
		start = (atoi(pg) - 1) * limit;
	} else {
		start = o ? atoi(o) : -1;
	}
	items = items_json(start, start + limit);
	out->status = start < 0 ? 400 : 200;
	reply_body(out, "{\"result\":{\"records\":%s}}", items);
	free(items);
}

static void test_paginate_offset_by_size(void **state)
{
	struct proxy_target *t = target_new(NULL);
	struct proxy_session *s;
	struct evs_request r = get("/records");
	struct evs_paginate_options o = {.size = sizeof(o), .limit = 3};
	struct pages p = {0};

	(void)state;
	t->paginate.type = CONFIG_PAGINATE_OFFSET;
	t->paginate.offset_name_in_request = strdup("offset");
	t->paginate.limit_name_in_request = strdup("limit");
	t->paginate.response_path = strdup("result.records");
	s = session(t, 0);
	F.route = route_offset;
	assert_int_equal(proxy_paginate(s, &r, &o, on_page, &p), EVS_OK);
	assert_int_equal(p.calls, 3);
	assert_ids(&p, N_ITEMS);
	/* The short last page ends it: no fourth request. */
	assert_int_equal(n_reqs(), 3);
	assert_string_equal(rq_arg(&F.reqs[0], "offset"), "0");
	assert_string_equal(rq_arg(&F.reqs[1], "offset"), "3");
	assert_string_equal(rq_arg(&F.reqs[2], "offset"), "6");

	/* POST: the parameters go in the JSON body, next to the caller's. */
	memset(&p, 0, sizeof(p));
	r.method = "POST";
	r.body = "{\"filter\":\"x\"}";
	r.body_len = strlen(r.body);
	assert_int_equal(proxy_paginate(s, &r, &o, on_page, &p), EVS_OK);
	assert_int_equal(p.calls, 3);
	assert_ids(&p, N_ITEMS);
	assert_null(rq_arg(&F.reqs[4], "offset"));
	proxy_session_free(s);
	proxy_target_free(t);
}

static void test_paginate_offset_per_page(void **state)
{
	struct proxy_target *t = target_new(NULL);
	struct proxy_session *s;
	struct evs_request r = get("/records");
	struct pages p = {0};

	(void)state;
	t->paginate.type = CONFIG_PAGINATE_OFFSET;
	t->paginate.offset_name_in_request = strdup("page");
	t->paginate.offset_start_value = strdup("1");
	t->paginate.offset_calculation_method = strdup("per-page");
	t->paginate.response_path = strdup("result.records");
	s = session(t, 0);
	F.route = route_offset;
	/* No limit known: it goes on until an empty page. */
	assert_int_equal(proxy_paginate(s, &r, NULL, on_page, &p), EVS_OK);
	assert_int_equal(p.calls, 3);
	assert_ids(&p, N_ITEMS);
	assert_int_equal(n_reqs(), 4);
	for (int i = 0; i < 4; i++) {
		char want[8];

		snprintf(want, sizeof(want), "%d", i + 1);
		assert_string_equal(rq_arg(&F.reqs[i], "page"), want);
	}
	/* max_pages */
	memset(&p, 0, sizeof(p));
	{
		struct evs_paginate_options o = {.size = sizeof(o), .max_pages = 1};

		assert_int_equal(proxy_paginate(s, &r, &o, on_page, &p), EVS_OK);
		assert_int_equal(p.calls, 1);
		assert_int_equal(n_reqs(), 5);
	}
	proxy_session_free(s);
	proxy_target_free(t);
}

static void route_fail_second(const struct rec_req *rq, int index, struct reply *out)
{
	(void)rq;
	out->status = index == 0 ? 200 : 502;
	reply_body(out, "{\"data\":[{\"id\":0}],\"meta\":{\"next\":\"c1\"}}");
}

static void test_paginate_non_2xx(void **state)
{
	struct proxy_target *t = cursor_target();
	struct proxy_session *s = session(t, 0);
	struct evs_request r = get("/list");
	struct pages p = {0};

	(void)state;
	F.route = route_fail_second;
	assert_int_equal(proxy_paginate(s, &r, NULL, on_page, &p), EVS_EFAILED);
	assert_int_equal(p.calls, 1);
	assert_true(log_has("page 2 came back with status 502"));

	/* A provider without pagination, and no type in opts. */
	{
		struct proxy_target *plain = target_new(NULL);
		struct proxy_session *s2 = session(plain, 0);

		assert_int_equal(proxy_paginate(s2, &r, NULL, on_page, &p), EVS_EINVAL);
		proxy_session_free(s2);
		proxy_target_free(plain);
	}
	proxy_session_free(s);
	proxy_target_free(t);
}

/* ------------------------------------------------------------ secrets in logs */

static void route_secret_paths(const struct rec_req *rq, int index, struct reply *out)
{
	(void)index;
	if (strstr(rq->path, "/fail")) {
		out->status = 500;
		reply_body(out, "{}");
		return;
	}
	if (strstr(rq->path, "/pages")) {
		out->status = index % 2 ? 500 : 200;
		reply_body(out, "{\"data\":[{\"id\":0}],\"meta\":{\"next\":\"c1\"}}");
		return;
	}
	route_ok(rq, index, out);
}

static void test_logs_never_hold_secrets(void **state)
{
	const char *secrets[] = {"TOKEN-8c1d2e3f", "QKEY-5a6b7c8d", "BASICPW-11aa22", "PATHKEY-99zz88",
				 "USERNAME-42xy"};
	struct proxy_target *t = target_new("/botPATHKEY-99zz88");
	struct proxy_session *s;
	struct evs_response *resp = NULL;
	struct evs_request r = get("/me");
	struct pages p = {0};
	char url[256];

	(void)state;
	tmap_add(&t->headers, "Authorization", "Bearer TOKEN-8c1d2e3f");
	tmap_add(&t->query, "key", "QKEY-5a6b7c8d");
	tmap_add(&t->query, "path_secret", "PATHKEY-99zz88");
	t->basic_user = strdup("USERNAME-42xy");
	t->basic_password = strdup("BASICPW-11aa22");
	t->paginate.type = CONFIG_PAGINATE_CURSOR;
	t->paginate.cursor_name_in_request = strdup("cursor");
	t->paginate.cursor_path_in_response = strdup("meta.next");
	t->paginate.response_path = strdup("data");
	s = session(t, 0);
	F.route = route_secret_paths;

	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_int_equal(resp->status, 200);
	proxy_response_free(resp);
	r = get("/fail");
	r.retries = 1;
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	proxy_response_free(resp);
	snprintf(url, sizeof(url), "%s/botPATHKEY-99zz88/me?token=x", F.base);
	r = get(url);
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	proxy_response_free(resp);
	r = get("/../escape");
	assert_int_equal(proxy_request(s, &r, &resp), EVS_EDENIED);
	r = get("/pages");
	assert_int_equal(proxy_paginate(s, &r, NULL, on_page, &p), EVS_EFAILED);
	proxy_session_free(s);

	/* A network error, whose curl message names the URL's host. */
	{
		char base[96];

		free(t->base_url);
		snprintf(base, sizeof(base), "http://127.0.0.1:%u/botPATHKEY-99zz88", closed_port());
		t->base_url = strdup(base);
		s = session(t, 0);
		r = get("/me");
		assert_int_equal(proxy_request(s, &r, &resp), EVS_ENETWORK);
		proxy_session_free(s);
	}

	assert_true(L.n >= 7);
	for (int i = 0; i < L.n; i++) {
		for (size_t j = 0; j < sizeof(secrets) / sizeof(secrets[0]); j++) {
			if (strstr(L.lines[i], secrets[j]))
				fail_msg("log line %d holds secret %s: %s", i, secrets[j], L.lines[i]);
		}
		assert_null(strchr(L.lines[i], '?'));
	}
	assert_true(log_has("/bot***/me -> 200 ("));
	assert_true(log_has("/bot***/fail -> 500 (") && log_has("(retry 1/1)"));
	proxy_target_free(t);
}

/* ABI 1.1: base_url_override moves a request within the provider only. */
static void test_base_url_override(void **state)
{
	struct proxy_target *t = target_new("/api");
	struct evs_request r = get("/user");
	struct evs_response *resp = NULL;
	struct proxy_session *s;
	char over[256], *base = NULL;
	static const struct {
		const char *base, *override;
		int want;
	} rules[] = {
		{"https://api.example.com/v1", "https://uploads.example.com", EVS_OK},
		{"https://api.example.com/v1", "https://api.example.com/v2/", EVS_OK},
		{"https://api.example.com", "https://API.example.com/x", EVS_OK},
		{"https://api.example.com", "http://api.example.com", EVS_EDENIED},
		{"https://api.example.com", "https://evil.com", EVS_EDENIED},
		{"https://api.example.com", "https://example.com.evil.com", EVS_EDENIED},
		{"https://example.com", "https://api.example.com", EVS_EDENIED},
		{"https://api.example.com", "https://u:p@api.example.com", EVS_EINVAL},
		{"https://api.example.com", "https://api.example.com/?k=v", EVS_EINVAL},
		{"https://api.example.com", "https://api.example.com/#f", EVS_EINVAL},
		{"https://api.example.com", "ftp://api.example.com", EVS_EDENIED},
		{"http://127.0.0.1:1", "http://127.0.0.2:1", EVS_EDENIED},
		{"https://eu.api.example.com", "https://us.api.example.com", EVS_OK},
		{"https://eu.api.example.com", "https://api.example.com", EVS_EDENIED},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		int ret = proxy_override_base(rules[i].base, rules[i].override, &base);

		if (ret != rules[i].want)
			fail_msg("%s over %s: %d, expected %d", rules[i].override, rules[i].base, ret, rules[i].want);
		if (ret == EVS_OK) {
			assert_non_null(base);
			assert_true(base[strlen(base) - 1] != '/');
		} else {
			assert_null(base);
		}
		free(base);
		base = NULL;
	}
	assert_int_equal(proxy_override_base("https://a.b.c", NULL, &base), EVS_OK);
	assert_null(base);

	tmap_add(&t->headers, "x-api-key", "key-1");
	s = session(t, 0);
	snprintf(over, sizeof(over), "%s/v2/", F.base);
	r.base_url_override = over;
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_string_equal(F.reqs[0].path, "/v2/user");
	assert_string_equal(rq_hdr(&F.reqs[0], "x-api-key"), "key-1");
	proxy_response_free(resp);
	/* an absolute endpoint is checked against the override */
	snprintf(over, sizeof(over), "%s/v2", F.base);
	{
		char abs[300];

		snprintf(abs, sizeof(abs), "%s/api/user", F.base);
		r.endpoint = abs;
		assert_int_equal(proxy_request(s, &r, &resp), EVS_EDENIED);
	}
	/* another host: refused, nothing sent */
	r.endpoint = "/user";
	r.base_url_override = "http://localhost:1/v2";
	assert_int_equal(proxy_request(s, &r, &resp), EVS_EDENIED);
	assert_null(resp);
	/* a plugin built against ABI 1.0 has no such field: what lies past its size is ignored */
	r.size = offsetof(struct evs_request, base_url_override);
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_string_equal(F.reqs[1].path, "/api/user");
	assert_int_equal(n_reqs(), 2);
	proxy_response_free(resp);
	proxy_session_free(s);
	proxy_target_free(t);
}

/* ABI 1.1: retry_on adds statuses to the retried ones. */
static void test_retry_on(void **state)
{
	struct proxy_target *t = target_new(NULL);
	struct proxy_session *s = session(t, 0);
	struct evs_request r = get("/eventually");
	struct evs_response *resp = NULL;
	int on[] = {404, 409};
	int many[PROXY_RETRY_ON_MAX + 1] = {0};

	(void)state;
	seq_fill(200);
	seq_set(0, 404, NULL, NULL, NULL, NULL);
	seq_set(1, 409, NULL, NULL, NULL, NULL);
	F.route = route_seq;
	r.retries = 3;
	r.retry_on = on;
	r.n_retry_on = 2;
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_int_equal(resp->status, 200);
	assert_int_equal(n_reqs(), 3);
	proxy_response_free(resp);
	/* without retries, retry_on does nothing */
	seq_fill(404);
	r.retries = 0;
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_int_equal(resp->status, 404);
	assert_int_equal(n_reqs(), 4);
	proxy_response_free(resp);
	/* an ABI 1.0 request's size ends before retry_on: not retried on 404 */
	r.retries = 3;
	r.size = offsetof(struct evs_request, base_url_override);
	assert_int_equal(proxy_request(s, &r, &resp), EVS_OK);
	assert_int_equal(n_reqs(), 5);
	proxy_response_free(resp);
	r.size = sizeof(r);
	r.retry_on = many;
	r.n_retry_on = PROXY_RETRY_ON_MAX + 1;
	assert_int_equal(proxy_request(s, &r, &resp), EVS_EINVAL);
	r.retry_on = NULL;
	r.n_retry_on = 1;
	assert_int_equal(proxy_request(s, &r, &resp), EVS_EINVAL);
	assert_int_equal(n_reqs(), 5);
	proxy_session_free(s);
	proxy_target_free(t);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, test_setup, test_teardown)
	const struct CMUnitTest tests[] = {
		T(test_bearer_header),
		T(test_api_key_header),
		T(test_api_key_query_and_encoding),
		T(test_basic_auth),
		T(test_no_auth),
		T(test_method_and_body),
		T(test_absolute_urls),
		T(test_redirect_not_followed),
		T(test_body_cap),
		T(test_retry_500_then_200),
		T(test_retry_error_code),
		T(test_retry_in_body),
		T(test_no_retry_by_default),
		T(test_retry_after_429),
		T(test_retry_after_http_date),
		T(test_provider_after_header),
		T(test_provider_remaining_at_headers),
		T(test_deadline_caps_retries),
		T(test_network_errors),
		T(test_timeouts),
		T(test_connection_reuse),
		T(test_paginate_cursor),
		T(test_paginate_link_header),
		T(test_paginate_link_body),
		T(test_paginate_link_off_base),
		T(test_paginate_offset_by_size),
		T(test_paginate_offset_per_page),
		T(test_paginate_non_2xx),
		T(test_logs_never_hold_secrets),
		T(test_base_url_override),
		T(test_retry_on),
	};
#undef T
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
