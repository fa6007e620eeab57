/*
 * dynbuf.c - the capped growable buffer of dynbuf.h.
 *
 * Invariants: len <= max; when data is not NULL, len < alloc <= max + 1 and
 * data[len] is the NUL. Growth doubles the allocation from FIRST_ALLOC and
 * clips it to max + 1, so the cap also bounds the memory used.
 */
#include "dynbuf.h"
#include "status.h"
#include "util.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIRST_ALLOC 64
#define MAX_CAP (SIZE_MAX / 2) /* so that max + 1 and every doubling fit a size_t */

void dynbuf_init(struct dynbuf *b, size_t max, unsigned flags)
{
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
	b->max = max > MAX_CAP ? MAX_CAP : max;
	b->err = 0;
	b->flags = flags;
}

/* Makes room for n more bytes and the NUL. 0, STATUS_ETOOBIG or STATUS_ENOMEM; on failure
 * b is unchanged. */
static int grow(struct dynbuf *b, size_t n)
{
	size_t fit, a;
	char *p;

	if (n > b->max - b->len)
		return STATUS_ETOOBIG;
	fit = b->len + n + 1;
	if (fit <= b->alloc)
		return 0;
	a = b->alloc ? b->alloc : FIRST_ALLOC;
	while (a < fit)
		a *= 2;
	if (a > b->max + 1)
		a = b->max + 1;
	if (!(b->flags & DYNBUF_WIPE)) {
		p = realloc(b->data, a);
		if (!p)
			return STATUS_ENOMEM;
	} else {
		/* Not realloc(): it would free the old copy unwiped. */
		p = malloc(a);
		if (!p)
			return STATUS_ENOMEM;
		if (b->data) {
			memcpy(p, b->data, b->len + 1);
			util_wipe(b->data, b->alloc);
			free(b->data);
		}
	}
	b->data = p;
	b->alloc = a;
	return 0;
}

int dynbuf_add(struct dynbuf *b, const void *data, size_t n)
{
	int ret;

	if (b->err)
		return b->err;
	ret = grow(b, n);
	if (ret) {
		b->err = ret;
		return ret;
	}
	if (n)
		memcpy(b->data + b->len, data, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int dynbuf_add_str(struct dynbuf *b, const char *s)
{
	return dynbuf_add(b, s, strlen(s));
}

int dynbuf_vaddf(struct dynbuf *b, const char *fmt, va_list ap)
{
	va_list measure;
	int n, ret;

	if (b->err)
		return b->err;
	/* Measured first, then written in place: no copy of the text (which may
	 * be a secret) is made anywhere else. */
	va_copy(measure, ap);
	n = vsnprintf(NULL, 0, fmt, measure);
	va_end(measure);
	ret = n < 0 ? STATUS_EINVAL : grow(b, (size_t)n);
	if (ret) {
		b->err = ret;
		return ret;
	}
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int dynbuf_addf(struct dynbuf *b, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = dynbuf_vaddf(b, fmt, ap);
	va_end(ap);
	return ret;
}

const char *dynbuf_str(const struct dynbuf *b)
{
	return b->data ? b->data : "";
}

size_t dynbuf_len(const struct dynbuf *b)
{
	return b->len;
}

int dynbuf_take(struct dynbuf *b, char **out, size_t *len)
{
	int ret = b->err;

	*out = NULL;
	if (len)
		*len = 0;
	if (!ret && !b->data) {
		ret = grow(b, 0);
		if (!ret)
			b->data[0] = '\0';
	}
	if (ret)
		return ret;
	*out = b->data;
	if (len)
		*len = b->len;
	dynbuf_init(b, b->max, b->flags);
	return 0;
}

void dynbuf_reset(struct dynbuf *b)
{
	if (b->data) {
		if (b->flags & DYNBUF_WIPE)
			util_wipe(b->data, b->len);
		b->data[0] = '\0';
	}
	b->len = 0;
	b->err = 0;
}

void dynbuf_free(struct dynbuf *b)
{
	if (b->data && (b->flags & DYNBUF_WIPE))
		util_wipe(b->data, b->alloc);
	free(b->data);
	dynbuf_init(b, b->max, b->flags);
}
