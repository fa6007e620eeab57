#include "util.h"
#include "status.h"
#include "dynbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

ssize_t util_read(int fd, void *buf, size_t len)
{
	ssize_t n;

	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n;
}

int util_write_all(int fd, const void *p, size_t len)
{
	const char *c = p;

	while (len > 0) {
		ssize_t n = write(fd, c, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return status_from_errno(errno);
		}
		c += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads fd to its end into a buffer capped at cap. With secret, every copy
 * let go of is wiped: the buffer's old allocations as it grows, the chunk
 * read into, the buffer on failure. */
static int read_fd(int fd, size_t cap, bool secret, char **data, size_t *len)
{
	struct dynbuf b;
	char chunk[16384];
	ssize_t n;
	int ret;

	*data = NULL;
	*len = 0;
	dynbuf_init(&b, cap, secret ? DYNBUF_WIPE : 0);
	for (;;) {
		n = util_read(fd, chunk, sizeof(chunk));
		if (n < 0) {
			ret = status_from_errno(errno);
			goto out;
		}
		if (n == 0)
			break;
		ret = dynbuf_add(&b, chunk, (size_t)n);
		if (ret)
			goto out;
	}
	ret = dynbuf_take(&b, data, len);
out:
	if (secret)
		util_wipe(chunk, sizeof(chunk));
	dynbuf_free(&b);
	return ret;
}

static int read_file(const char *path, size_t cap, bool secret, char **data, size_t *len)
{
	int fd, ret;

	*data = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return status_from_errno(errno);
	ret = read_fd(fd, cap, secret, data, len);
	close(fd);
	return ret;
}

int util_read_fd(int fd, size_t cap, char **data, size_t *len)
{
	return read_fd(fd, cap, false, data, len);
}

int util_read_file(const char *path, size_t cap, char **data, size_t *len)
{
	return read_file(path, cap, false, data, len);
}

int util_read_file_secret(const char *path, size_t cap, char **data, size_t *len)
{
	return read_file(path, cap, true, data, len);
}

int util_write_file_atomic(const char *path, const void *data, size_t len, unsigned mode)
{
	size_t plen = strlen(path);
	char *tmp = malloc(plen + 16);
	int fd = -1, ret = 0;

	if (!tmp)
		return STATUS_ENOMEM;
	snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		ret = status_from_errno(errno);
		goto out;
	}
	ret = util_write_all(fd, data, len);
	if (ret)
		goto out;
	if (fchmod(fd, mode) < 0 || fsync(fd) < 0) {
		ret = status_from_errno(errno);
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		ret = status_from_errno(errno);
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		ret = status_from_errno(errno);
out:
	if (fd >= 0)
		close(fd);
	if (ret)
		unlink(tmp);
	free(tmp);
	return ret;
}

void util_free_n(void *const *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(p[i]);
}

void util_array_free(void *array, size_t *n, size_t size, void (*item_free)(void *item))
{
	char *items;

	memcpy(&items, array, sizeof(items)); /* the caller's T *, as p_map_read */
	for (size_t i = 0; items && i < *n; i++)
		item_free(items + i * size);
	free(items);
	items = NULL;
	memcpy(array, &items, sizeof(items));
	*n = 0;
}

void util_item_free_str(void *item)
{
	free(*(char **)item);
}

const void *util_find_name(const void *base, size_t n, size_t size, size_t off, const char *name)
{
	const char *item = base;

	for (size_t i = 0; name && i < n; i++, item += size) {
		const char *s;

		memcpy(&s, item + off, sizeof(s));
		if (s && strcmp(s, name) == 0)
			return item;
	}
	return NULL;
}

void util_wipe(void *p, size_t n)
{
	explicit_bzero(p, n); /* glibc 2.25: a memset the optimiser keeps */
}

void util_hex(char *out, const unsigned char *bin, size_t len)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[bin[i] >> 4];
		out[2 * i + 1] = digits[bin[i] & 15];
	}
	out[2 * len] = '\0';
}

int util_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void util_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void util_iso_time(int64_t ms, bool offset, char out[UTIL_ISO_TIME_MAX])
{
	time_t secs = (time_t)(ms / 1000);
	int frac = (int)(ms % 1000);
	struct tm tm;
	char tmp[96];

	if (frac < 0) {
		frac += 1000;
		secs -= 1;
	}
	if (!gmtime_r(&secs, &tm))
		memset(&tm, 0, sizeof(tm));
	/* formatted wide enough for any int fields (so the compiler sees no
	 * truncation), then cut: only absurd years do not fit */
	snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%03d%s", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac,
		 offset ? "+00:00" : "Z");
	snprintf(out, UTIL_ISO_TIME_MAX, "%.31s", tmp);
}

int64_t util_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int util_lock_init(pthread_mutex_t *mu, pthread_cond_t *cv)
{
	if (pthread_mutex_init(mu, NULL) != 0)
		return STATUS_ENOMEM;
	if (pthread_cond_init(cv, NULL) != 0) {
		pthread_mutex_destroy(mu);
		return STATUS_ENOMEM;
	}
	return 0;
}

void util_flag_raise(pthread_mutex_t *mu, pthread_cond_t *cv, bool *flag)
{
	pthread_mutex_lock(mu);
	*flag = true;
	pthread_cond_broadcast(cv);
	pthread_mutex_unlock(mu);
}

int util_cond_init_monotonic(pthread_cond_t *cv)
{
	pthread_condattr_t ca;
	int ret;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	ret = pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
	return ret;
}

int util_cond_wait_us(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t us)
{
	struct timespec ts;

	if (us < 0)
		us = 0;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(us / 1000000);
	ts.tv_nsec += (long)(us % 1000000) * 1000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return pthread_cond_timedwait(cv, mu, &ts);
}

int64_t util_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

bool util_valid_name(const char *s)
{
	if (!s || !*s)
		return false;
	for (; *s; s++) {
		char c = *s;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

char *util_path_join(const char *dir, const char *path)
{
	size_t n;
	char *out;

	if (path[0] == '/' || !dir || !*dir)
		return strdup(path);
	n = strlen(dir) + strlen(path) + 2;
	out = malloc(n);
	if (out)
		snprintf(out, n, "%s/%s", dir, path);
	return out;
}
