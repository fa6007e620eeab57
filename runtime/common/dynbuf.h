/*
 * dynbuf.h - the growable buffer every part uses (modelled on curl's
 * lib/curlx/dynbuf.c).
 *
 * A buffer is given the most it may ever hold when it is initialised and
 * refuses to pass that cap: an add that would is an error, never a larger
 * allocation. It grows by doubling and its content is always NUL-terminated
 * (the NUL is not counted in its length), so it can be read as a string at
 * any time with dynbuf_str().
 *
 * Errors are status codes (status.h): STATUS_ETOOBIG (the add would pass
 * the cap), STATUS_ENOMEM, STATUS_EINVAL (a printf format failed). A failed add leaves the content
 * as it was and is sticky: every later add and dynbuf_take() return the same
 * error until dynbuf_reset(). So a sequence of adds can be checked once, by
 * the result of the last one.
 *
 * Secrets: with DYNBUF_WIPE, every copy the buffer lets go of is wiped
 * first: the old allocation when it grows (it is never realloc'd), the
 * content on dynbuf_reset(), the allocation on dynbuf_free(). The wipe is
 * util_wipe(), not libsodium, so that the zygote can use this buffer too.
 * What dynbuf_take() hands over is the caller's to wipe.
 *
 * The data given to an add must not point into the buffer itself (it may
 * move). A buffer is used by one thread at a time.
 */
#ifndef EVS_COMMON_DYNBUF_H
#define EVS_COMMON_DYNBUF_H

#include <stdarg.h>
#include <stddef.h>

/* Wipe every copy let go of: for buffers that may hold secrets. */
#define DYNBUF_WIPE 1u

/* The fields are the functions' business: read the buffer through
 * dynbuf_str() and dynbuf_len(). */
struct dynbuf {
	char *data;     /* NULL until the first add */
	size_t len;     /* bytes held, not counting the NUL */
	size_t alloc;   /* bytes allocated */
	size_t max;     /* the cap on len */
	int err;        /* the first failed add's code; 0 when none */
	unsigned flags; /* DYNBUF_WIPE or 0 */
};

/* Prepares b to hold at most max bytes (a max above SIZE_MAX / 2 is taken
 * as SIZE_MAX / 2). Allocates nothing: a buffer never added to needs no
 * dynbuf_free(). */
void dynbuf_init(struct dynbuf *b, size_t max, unsigned flags);

/* Appends n bytes of data (n may be 0: the buffer then holds at least an
 * allocated ""). Returns 0, STATUS_ETOOBIG or STATUS_ENOMEM, or the sticky error. */
int dynbuf_add(struct dynbuf *b, const void *data, size_t n);

/* Appends the string s (without its NUL). As dynbuf_add(). */
int dynbuf_add_str(struct dynbuf *b, const char *s);

/* Appends printf-formatted text. As dynbuf_add(), and -EINVAL when the
 * format cannot be applied. */
int dynbuf_addf(struct dynbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int dynbuf_vaddf(struct dynbuf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* The content, NUL-terminated; "" when nothing was added. Borrowed: valid
 * until the next call that changes b. */
const char *dynbuf_str(const struct dynbuf *b);

/* The content's length in bytes, not counting the NUL. */
size_t dynbuf_len(const struct dynbuf *b);

/* Hands the content over: *out is malloc'd and NUL-terminated (an empty
 * buffer gives an allocated ""), owned by the caller; *len (when len is not
 * NULL) is its length. b is left empty, as dynbuf_init() left it, with the
 * same cap and flags. Returns 0, STATUS_ENOMEM, or the sticky error; on failure
 * *out is NULL, *len 0 and b is unchanged. */
int dynbuf_take(struct dynbuf *b, char **out, size_t *len);

/* Empties b and clears its sticky error; keeps the allocation (wiping the
 * content with DYNBUF_WIPE) for what is added next. */
void dynbuf_reset(struct dynbuf *b);

/* Frees the content (wiped first with DYNBUF_WIPE) and leaves b as
 * dynbuf_init() left it, with the same cap and flags. */
void dynbuf_free(struct dynbuf *b);

#endif
