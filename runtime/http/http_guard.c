/*
 * http_guard.c - the connection table and its watchdog (see http_guard.h).
 */
#include "http_guard.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "status.h"
#include "util.h"

#define GUARD_TICK_MS 200
#define GUARD_PRESSURE_IDLE_US 1000000 /* under pressure, waiting for headers longer than this is cut */

struct guard_conn {
	struct guard_conn *prev, *next;
	MHD_socket fd;
	struct sockaddr_storage addr;
	enum http_guard_phase phase;
	int64_t since_us;
	bool cut;                 /* shut down by the watchdog; waiting for its close */
};

struct http_guard {
	struct http_guard_config cfg;
	pthread_mutex_t lock;     /* guards everything below */
	pthread_cond_t wake;
	struct guard_conn *head;
	unsigned open;
	bool stop;
	pthread_t watchdog;
};

/* Same address (not port): the per-address cap's identity. */
static bool same_address(const struct sockaddr *a, const struct sockaddr_storage *b)
{
	if (a->sa_family != b->ss_family)
		return false;
	if (a->sa_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	if (a->sa_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
			      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
	return false;
}

enum MHD_Result http_guard_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	struct http_guard *g = cls;
	unsigned n = 0;

	(void)addrlen;
	if (g->cfg.max_per_address == 0 || addr == NULL)
		return MHD_YES;
	pthread_mutex_lock(&g->lock);
	for (struct guard_conn *c = g->head; c; c = c->next)
		if (!c->cut && same_address(addr, &c->addr))
			n++;
	pthread_mutex_unlock(&g->lock);
	if (n < g->cfg.max_per_address)
		return MHD_YES;
	log_refusal("http", "per-address limit");
	return MHD_NO;
}

static void conn_started(struct http_guard *g, struct MHD_Connection *conn, void **socket_context)
{
	const union MHD_ConnectionInfo *info;
	struct guard_conn *c = calloc(1, sizeof(*c));

	*socket_context = c;
	if (c == NULL)
		return;  /* not tracked: only libmicrohttpd's idle timeout applies */
	/* each answer is copied before the next call: a libmicrohttpd may
	 * answer every query from one scratch field */
	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	c->fd = info ? info->connect_fd : MHD_INVALID_SOCKET;
	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (info && info->client_addr) {
		size_t len = info->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
								       : sizeof(struct sockaddr_in);

		memcpy(&c->addr, info->client_addr, len);
	}
	c->phase = GUARD_HEADERS;
	c->since_us = util_mono_us();
	pthread_mutex_lock(&g->lock);
	c->next = g->head;
	if (g->head)
		g->head->prev = c;
	g->head = c;
	g->open++;
	pthread_mutex_unlock(&g->lock);
}

static void conn_closed(struct http_guard *g, void **socket_context)
{
	struct guard_conn *c = *socket_context;

	*socket_context = NULL;
	if (c == NULL)
		return;
	pthread_mutex_lock(&g->lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		g->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	g->open--;
	pthread_mutex_unlock(&g->lock);
	free(c);
}

void http_guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
		       enum MHD_ConnectionNotificationCode code)
{
	struct http_guard *g = cls;

	if (code == MHD_CONNECTION_NOTIFY_STARTED)
		conn_started(g, conn, socket_context);
	else if (code == MHD_CONNECTION_NOTIFY_CLOSED)
		conn_closed(g, socket_context);
}

void http_guard_phase(struct http_guard *g, struct MHD_Connection *conn, enum http_guard_phase phase)
{
	const union MHD_ConnectionInfo *info;
	struct guard_conn *c;

	if (g == NULL || conn == NULL)
		return;
	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	c = info ? info->socket_context : NULL;
	if (c == NULL)
		return;
	pthread_mutex_lock(&g->lock);
	c->phase = phase;
	c->since_us = util_mono_us();
	pthread_mutex_unlock(&g->lock);
}

bool http_guard_shedding(struct http_guard *g)
{
	bool shed;

	pthread_mutex_lock(&g->lock);
	shed = g->open > g->cfg.max_connections - g->cfg.max_connections / 8;
	pthread_mutex_unlock(&g->lock);
	return shed;
}

unsigned http_guard_open(struct http_guard *g)
{
	unsigned n;

	pthread_mutex_lock(&g->lock);
	n = g->open;
	pthread_mutex_unlock(&g->lock);
	return n;
}

/* One pass over the table: the reason c is to be cut now, or NULL. Called
 * with the lock held. */
static const char *overdue(const struct http_guard *g, const struct guard_conn *c, int64_t now, bool pressure)
{
	int64_t age = now - c->since_us;

	if (c->cut || c->fd == MHD_INVALID_SOCKET)
		return NULL;
	switch (c->phase) {
	case GUARD_HEADERS:
		if (age >= (int64_t)g->cfg.header_timeout_s * 1000000)
			return "header timeout";
		if (pressure && age >= GUARD_PRESSURE_IDLE_US)
			return "idle connection closed under load";
		return NULL;
	case GUARD_BODY:
		return age >= (int64_t)g->cfg.body_timeout_s * 1000000 ? "body timeout" : NULL;
	case GUARD_HANDLER:
		return NULL;
	}
	return NULL;
}

static void *watchdog_main(void *arg)
{
	struct http_guard *g = arg;
	struct timespec ts;

	pthread_mutex_lock(&g->lock);
	while (!g->stop) {
		int64_t now = util_mono_us();
		bool pressure = g->open > g->cfg.max_connections - g->cfg.max_connections / 4;

		for (struct guard_conn *c = g->head; c; c = c->next) {
			const char *why = overdue(g, c, now, pressure);

			if (why == NULL)
				continue;
			/* The record is removed (under this lock) before the
			 * socket is closed: fd is still this connection's. */
			shutdown(c->fd, SHUT_RDWR);
			c->cut = true;
			log_refusal("http", why);
		}
		pthread_mutex_unlock(&g->lock);
		log_refusal_flush();
		pthread_mutex_lock(&g->lock);
		if (g->stop)
			break;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += GUARD_TICK_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&g->wake, &g->lock, &ts);
	}
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

int http_guard_new(const struct http_guard_config *cfg, struct http_guard **out)
{
	struct http_guard *g = calloc(1, sizeof(*g));

	*out = NULL;
	if (g == NULL)
		return HTTP_ENOMEM;
	g->cfg = *cfg;
	if (util_lock_init(&g->lock, &g->wake) != 0) {
		free(g);
		return HTTP_ENOMEM;
	}
	if (pthread_create(&g->watchdog, NULL, watchdog_main, g) != 0) {
		pthread_cond_destroy(&g->wake);
		pthread_mutex_destroy(&g->lock);
		free(g);
		return HTTP_ENOMEM;
	}
	*out = g;
	return 0;
}

void http_guard_free(struct http_guard *g)
{
	struct guard_conn *c;

	if (g == NULL)
		return;
	util_flag_raise(&g->lock, &g->wake, &g->stop);
	pthread_join(g->watchdog, NULL);
	while ((c = g->head) != NULL) {
		g->head = c->next;
		free(c);
	}
	pthread_cond_destroy(&g->wake);
	pthread_mutex_destroy(&g->lock);
	free(g);
}
