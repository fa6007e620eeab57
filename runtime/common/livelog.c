/*
 * livelog.c - the live log bus of livelog.h: a fixed ring and a counter
 * under one mutex, with a monotonic condition variable for the waiters.
 */
#include "livelog.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"
#include "util.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static struct livelog_line ring[LIVELOG_RING_LINES];
static size_t head;        /* the next slot to write */
static uint64_t version;

static void init(void)
{
	util_cond_init_monotonic(&changed);
}

static char *dup_cut(const char *s)
{
	size_t len = strnlen(s, LIVELOG_LINE_MAX - 1);
	char *d = malloc(len + 1);

	if (d) {
		memcpy(d, s, len);
		d[len] = '\0';
	}
	return d;
}

void livelog_publish(int64_t execution_id, int64_t seq, int64_t ts_ms, int level, const char *message)
{
	char *copy = dup_cut(message ? message : "");
	struct livelog_line *slot;

	if (!copy)
		return;
	pthread_once(&once, init);
	pthread_mutex_lock(&lock);
	slot = &ring[head];
	free(slot->message);
	*slot = (struct livelog_line){execution_id, seq, ts_ms, level, copy};
	head = (head + 1) % LIVELOG_RING_LINES;
	version++;
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&lock);
}

void livelog_changed(void)
{
	pthread_once(&once, init);
	pthread_mutex_lock(&lock);
	version++;
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&lock);
}

uint64_t livelog_version(void)
{
	uint64_t v;

	pthread_mutex_lock(&lock);
	v = version;
	pthread_mutex_unlock(&lock);
	return v;
}

uint64_t livelog_wait(uint64_t seen, int timeout_ms)
{
	int64_t deadline = util_mono_us() + (int64_t)timeout_ms * 1000;
	uint64_t v;

	pthread_once(&once, init);
	pthread_mutex_lock(&lock);
	while (version == seen) {
		int64_t left = deadline - util_mono_us();

		if (left <= 0)
			break;
		util_cond_wait_us(&changed, &lock, left);
	}
	v = version;
	pthread_mutex_unlock(&lock);
	return v;
}

static void line_free(void *item)
{
	free(((struct livelog_line *)item)->message);
}

void livelog_lines_free(struct livelog_line *lines, size_t n)
{
	util_array_free(&lines, &n, sizeof(*lines), line_free);
}

int livelog_lines(int64_t execution_id, int64_t from_seq, struct livelog_line **out, size_t *n)
{
	struct livelog_line *lines = NULL;
	size_t count = 0, cap = 0;
	int ret = 0;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&lock);
	/* oldest first: from head round to head - 1 */
	for (size_t k = 0; k < LIVELOG_RING_LINES; k++) {
		const struct livelog_line *l = &ring[(head + k) % LIVELOG_RING_LINES];

		if (!l->message || l->execution_id != execution_id || l->seq < from_seq)
			continue;
		if (count == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct livelog_line *grown = realloc(lines, ncap * sizeof(*grown));

			if (!grown) {
				ret = STATUS_ENOMEM;
				break;
			}
			lines = grown;
			cap = ncap;
		}
		lines[count] = *l;
		lines[count].message = strdup(l->message);
		if (!lines[count].message) {
			ret = STATUS_ENOMEM;
			break;
		}
		count++;
	}
	pthread_mutex_unlock(&lock);
	if (ret < 0) {
		livelog_lines_free(lines, count);
		return ret;
	}
	*out = lines;
	*n = count;
	return 0;
}
