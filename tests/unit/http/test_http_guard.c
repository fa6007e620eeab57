/*
 * test_http_guard.c - unit tests for the connection guard of runtime/http
 * (http_guard.c): a real server on 127.0.0.1 port 0 and raw sockets as
 * clients. Headers that trickle past the header timeout and bodies past the
 * body timeout get their connection closed, a connection past the
 * per-address cap is closed as it is accepted, and each is counted as a
 * refusal, not logged one line each.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "log.h"

#define SECRET "guard-secret"

static int h_ok(struct http_request *req, struct http_response *resp, void *user)
{
	(void)req;
	(void)user;
	return http_respond_text(resp, 200, "text/plain", "ok");
}

static const struct http_route routes[] = {
	{"GET", "/ok", h_ok, true},
	{"POST", "/ok", h_ok, true},
};

static struct http_server *start(unsigned per_address, unsigned header_s, unsigned body_s)
{
	struct http_config cfg = {
		.listen = "127.0.0.1:0", .secret_key = SECRET, .max_connections = 32,
		.max_per_address = per_address, .header_timeout_s = header_s, .body_timeout_s = body_s,
		.routes = routes, .n_routes = 2,
	};
	struct http_server *s = NULL;
	char err[256];

	assert_int_equal(http_server_new(&cfg, &s, err, sizeof(err)), 0);
	assert_int_equal(http_server_start(s, err, sizeof(err)), 0);
	return s;
}

static int connect_to(uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

static void send_text(int fd, const char *s)
{
	(void)send(fd, s, strlen(s), MSG_NOSIGNAL);
}

/* Whether the server closed fd within ms (EOF or reset), reading what it
 * sent meanwhile into buf (may be NULL). */
static bool closed_within(int fd, int ms, char *buf, size_t buflen)
{
	size_t used = 0;

	for (int waited = 0; waited < ms; waited += 50) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		char tmp[4096];
		ssize_t n;

		if (poll(&p, 1, 50) <= 0)
			continue;
		n = recv(fd, tmp, sizeof(tmp), 0);
		if (n <= 0)
			return true;
		if (buf && used + (size_t)n < buflen) {
			memcpy(buf + used, tmp, (size_t)n);
			used += (size_t)n;
			buf[used] = '\0';
		}
	}
	return false;
}

static void test_header_timeout(void **state)
{
	struct http_server *s;
	int fd;
	bool closed = false;

	(void)state;
	log_refusal_window(LOG_REFUSAL_WINDOW_MS);
	s = start(0, 1, 30);
	fd = connect_to(http_server_port(s));
	send_text(fd, "GET /ok HTTP/1.1\r\nHost: x\r\n");
	/* a header line every 200 ms: each resets libmicrohttpd's idle timeout,
	 * not the header timeout */
	for (int i = 0; i < 40 && !closed; i++) {
		send_text(fd, "X-Slow: 1\r\n");
		closed = closed_within(fd, 200, NULL, 0);
	}
	assert_true(closed);
	close(fd);
	/* a prompt client is served */
	fd = connect_to(http_server_port(s));
	send_text(fd, "GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	{
		char buf[4096] = "";

		assert_true(closed_within(fd, 5000, buf, sizeof(buf)));
		assert_non_null(strstr(buf, "HTTP/1.1 200"));
	}
	close(fd);
	assert_true(log_refusal_total() >= 1);
	http_server_free(s);
}

static void test_body_timeout(void **state)
{
	struct http_server *s;
	int fd;

	(void)state;
	s = start(0, 30, 1);
	fd = connect_to(http_server_port(s));
	send_text(fd, "POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789");
	assert_true(closed_within(fd, 10000, NULL, 0));
	close(fd);
	http_server_free(s);
}

static void test_per_address_cap(void **state)
{
	struct http_server *s;
	unsigned long long before = log_refusal_total();
	int fds[3];

	(void)state;
	s = start(2, 30, 30);
	for (int i = 0; i < 3; i++) {
		fds[i] = connect_to(http_server_port(s));
		send_text(fds[i], "GET /ok HTTP/1.1\r\n");
	}
	/* the third is closed as it is accepted; the first two wait */
	assert_true(closed_within(fds[2], 5000, NULL, 0));
	assert_false(closed_within(fds[0], 300, NULL, 0));
	assert_false(closed_within(fds[1], 300, NULL, 0));
	assert_true(log_refusal_total() > before);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	http_server_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_timeout),
		cmocka_unit_test(test_body_timeout),
		cmocka_unit_test(test_per_address_cap),
	};

	log_setup(2, false, LOG_LEVEL_WARN);
	return cmocka_run_group_tests_name("http_guard", tests, NULL, NULL);
}
