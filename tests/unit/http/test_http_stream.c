/*
 * test_http_stream.c - http_respond_stream(): a streamed body over a real
 * server on 127.0.0.1 port 0 with libcurl as the client. What it must do:
 * send the chunks read() gives in order until HTTP_STREAM_END; end a stream
 * that never ends by itself when the server stops (stopping), so that a
 * shutdown is never held up; notice a client that went away; and call
 * free_fn exactly once whatever happens, failures included.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "http.h"
#include "log.h"

#define SECRET "stream-test-secret"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int frees;          /* free_fn calls */
static int saw_stopping;   /* read() calls that were told the server stops */
static int chunks_sent;    /* by every read() */

struct source {
	int left;          /* chunks still to send; -1: never ends by itself */
	int sent;
	int calls;
};

static void pause_ms(long ms)
{
	struct timespec ts = {0, ms * 1000000L};

	nanosleep(&ts, NULL);
}

static long read_chunks(void *cls, char *buf, size_t max, bool stopping)
{
	struct source *s = cls;

	if (stopping) {
		pthread_mutex_lock(&lock);
		saw_stopping++;
		pthread_cond_broadcast(&changed);
		pthread_mutex_unlock(&lock);
		return HTTP_STREAM_END;
	}
	if (s->left == 0)
		return HTTP_STREAM_END;
	if (s->left < 0 && s->sent > 0) {
		pause_ms(20); /* blocks a little, as a real stream waits for news */
		if (++s->calls % 3)
			return 0;  /* nothing this time: called again */
	}
	if (s->left > 0)
		s->left--;
	pthread_mutex_lock(&lock);
	chunks_sent++;
	pthread_mutex_unlock(&lock);
	return snprintf(buf, max, "chunk %d\n", s->sent++);
}

static void free_source(void *cls)
{
	free(cls);
	pthread_mutex_lock(&lock);
	frees++;
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&lock);
}

static int h_stream(struct http_request *req, struct http_response *resp, void *user)
{
	struct source *s = calloc(1, sizeof(*s));
	const char *n = http_query(req, "n");

	(void)user;
	if (!s)
		return HTTP_ENOMEM;
	s->left = n ? atoi(n) : -1;
	http_response_header(resp, "Cache-Control", "no-store");
	return http_respond_stream(resp, 200, "text/event-stream", read_chunks, free_source, s);
}

/* A stream after a response: refused, and its source still freed. */
static int h_twice(struct http_request *req, struct http_response *resp, void *user)
{
	int rc;

	(void)req;
	(void)user;
	http_respond_text(resp, 200, "text/plain", "first\n");
	rc = http_respond_stream(resp, 200, "text/event-stream", read_chunks, free_source,
				 calloc(1, sizeof(struct source)));
	assert_int_equal(rc, HTTP_ERESPONDED);
	rc = http_respond_stream(resp, 200, "bad\r\ntype", read_chunks, free_source,
				 calloc(1, sizeof(struct source)));
	assert_int_equal(rc, HTTP_EINVAL);
	return 0;
}

static const struct http_route routes[] = {
	{"GET", "/stream", h_stream, false},
	{"GET", "/twice", h_twice, false},
};

static struct http_server *start(void)
{
	struct http_config cfg = {.listen = "127.0.0.1:0", .secret_key = SECRET, .routes = routes,
				  .n_routes = sizeof(routes) / sizeof(routes[0])};
	struct http_server *srv = NULL;
	char err[256];

	assert_int_equal(http_server_new(&cfg, &srv, err, sizeof(err)), 0);
	assert_int_equal(http_server_start(srv, err, sizeof(err)), 0);
	return srv;
}

struct got {
	char body[65536];
	size_t len;
	size_t stop_after;  /* > 0: abort the transfer once this much arrived */
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct got *g = ud;
	size_t len = size * n, room = sizeof(g->body) - 1 - g->len;

	memcpy(g->body + g->len, p, len < room ? len : room);
	g->len += len < room ? len : room;
	g->body[g->len] = '\0';
	return g->stop_after && g->len >= g->stop_after ? 0 : len;
}

static CURLcode get(struct http_server *srv, const char *path, struct got *g, long *status, char *ctype,
		    size_t ctype_len)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = curl_slist_append(NULL, "Authorization: Bearer " SECRET);
	char url[256];
	char *ct = NULL;
	CURLcode cc;

	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", http_server_port(srv), path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, g);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	if (ctype && curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
		snprintf(ctype, ctype_len, "%s", ct);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return cc;
}

static void wait_frees(int n)
{
	pthread_mutex_lock(&lock);
	while (frees < n)
		pthread_cond_wait(&changed, &lock);
	pthread_mutex_unlock(&lock);
}

static void test_chunks_in_order_then_end(void **state)
{
	struct http_server *srv = start();
	struct got g = {0};
	char ctype[64] = "";
	long status = 0;
	int before = frees;

	(void)state;
	assert_int_equal(get(srv, "/stream?n=3", &g, &status, ctype, sizeof(ctype)), CURLE_OK);
	assert_int_equal(status, 200);
	assert_string_equal(ctype, "text/event-stream");
	assert_string_equal(g.body, "chunk 0\nchunk 1\nchunk 2\n");
	wait_frees(before + 1);
	http_server_free(srv);
	assert_int_equal(frees, before + 1);
}

struct client {
	struct http_server *srv;
	struct got g;
	CURLcode cc;
};

static void *client_thread(void *arg)
{
	struct client *cl = arg;
	long status;

	cl->cc = get(cl->srv, "/stream", &cl->g, &status, NULL, 0);
	return NULL;
}

/* A stream that never ends: the server's stop ends it (free waits for it). */
static void test_endless_stream_ends_at_shutdown(void **state)
{
	struct client cl = {0};
	pthread_t t;
	int before = frees, sent0;

	(void)state;
	pthread_mutex_lock(&lock);
	sent0 = chunks_sent;
	pthread_mutex_unlock(&lock);
	cl.srv = start();
	assert_int_equal(pthread_create(&t, NULL, client_thread, &cl), 0);
	/* wait for a few chunks to have arrived: read() counts them */
	while (1) {
		bool enough;

		pthread_mutex_lock(&lock);
		enough = chunks_sent >= sent0 + 3;
		pthread_mutex_unlock(&lock);
		if (enough)
			break;
		pause_ms(10);
	}
	http_server_free(cl.srv); /* returns: the stream was told to stop */
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(cl.cc, CURLE_OK); /* a clean end of the chunked body */
	assert_non_null(strstr(cl.g.body, "chunk 0\nchunk 1\nchunk 2\n"));
	assert_true(saw_stopping > 0);
	assert_int_equal(frees, before + 1);
}

/* The client goes away: the next write fails and the stream is freed. */
static void test_client_going_away_frees_the_stream(void **state)
{
	struct http_server *srv = start();
	struct got g = {.stop_after = 8};
	long status = 0;
	int before = frees;

	(void)state;
	assert_int_equal(get(srv, "/stream", &g, &status, NULL, 0), CURLE_WRITE_ERROR);
	wait_frees(before + 1);
	http_server_free(srv);
	assert_int_equal(frees, before + 1);
}

static void test_refused_streams_are_freed(void **state)
{
	struct http_server *srv = start();
	struct got g = {0};
	long status = 0;
	int before = frees;

	(void)state;
	assert_int_equal(get(srv, "/twice", &g, &status, NULL, 0), CURLE_OK);
	assert_int_equal(status, 200);
	assert_string_equal(g.body, "first\n");
	assert_int_equal(frees, before + 2);
	http_server_free(srv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chunks_in_order_then_end),
		cmocka_unit_test(test_endless_stream_ends_at_shutdown),
		cmocka_unit_test(test_client_going_away_frees_the_stream),
		cmocka_unit_test(test_refused_streams_are_freed),
	};
	int rc;

	log_setup(2, false, LOG_LEVEL_WARN);
	curl_global_init(CURL_GLOBAL_ALL);
	rc = cmocka_run_group_tests_name("http_stream", tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
