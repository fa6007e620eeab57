/*
 * util.h - small helpers shared by every part.
 */
#ifndef EVS_COMMON_UTIL_H
#define EVS_COMMON_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* read(2), retried when a signal interrupts it: the bytes read, 0 at the end
 * of the file, or -1 with errno set. */
ssize_t util_read(int fd, void *buf, size_t len);

/* Writes all len bytes of p to fd, retrying interrupted and short writes.
 * Returns 0 or a status code (status_from_errno). */
int util_write_all(int fd, const void *p, size_t len);

/* Reads a whole file of at most `cap` bytes. On success *data is a malloc'd
 * buffer owned by the caller, NUL-terminated (the NUL is not counted in
 * *len). Returns 0, STATUS_ETOOBIG when the file is larger than cap, or a status code
 * (status_from_errno for a failed system call). On
 * failure *data is NULL and *len 0. */
int util_read_file(const char *path, size_t cap, char **data, size_t *len);

/* Like util_read_file() on an open fd (read from its current offset). */
int util_read_fd(int fd, size_t cap, char **data, size_t *len);

/* Like util_read_file() for a file that may hold a secret (the host file and
 * its secret key): every copy made while reading is wiped before it is let
 * go of. The caller wipes *data (all *len bytes) before freeing it. */
int util_read_file_secret(const char *path, size_t cap, char **data, size_t *len);

/* Writes len bytes to path atomically: a temporary file in the same
 * directory, fsync, rename(). mode is the new file's mode. Returns 0 or a status code
 * (status_from_errno). */
int util_write_file_atomic(const char *path, const void *data, size_t len, unsigned mode);

/* Zeroes n bytes of p in a way the compiler cannot remove as a dead store.
 * For the code that does not link libsodium (runtime/common, the zygote);
 * elsewhere sodium_memzero() is the rule. */
void util_wipe(void *p, size_t n);

/* free() of each pointer given, in order (NULL ones too, as free does):
 * util_free_all(r->a, r->b, r). For the destructors of structures whose
 * fields are plain allocations; what holds a secret is wiped by its own
 * free function, not here. */
#define util_free_all(...)                                                     \
	util_free_n((void *[]){__VA_ARGS__}, sizeof((void *[]){__VA_ARGS__}) / sizeof(void *))
void util_free_n(void *const *p, size_t n);

/* Frees an array of *n items of `size` bytes: item_free(&array[i]) for
 * each (it frees what the item owns, not the item), then the array. array
 * is the address of the caller's `T *`, left NULL, and *n is left 0.
 * util_item_free_str is the item_free of an array of char * strings. */
void util_array_free(void *array, size_t *n, size_t size, void (*item_free)(void *item));
void util_item_free_str(void *item);

/* The first of n items of `size` bytes from base whose string member at
 * offset off (a char * or const char *; NULL ones never match) equals name,
 * or NULL (none, or name NULL). UTIL_FIND_NAME is the typed form the
 * lookups by name use: UTIL_FIND_NAME(h->scripts, h->n_scripts,
 * struct config_script, name, wanted) is a const struct config_script *.
 * It does not compile for a member that is not a pointer (a char array). */
const void *util_find_name(const void *base, size_t n, size_t size, size_t off, const char *name);
#define UTIL_FIND_NAME(items, n, type, member, name)                                               \
	((const type *)util_find_name((items), (n), sizeof(type),                                \
				      offsetof(type, member) + UTIL_STRING_MEMBER_(type, member), (name)))
#define UTIL_STRING_MEMBER_(type, member) (0 * _Generic(&((type *)0)->member, char **: 1, const char **: 1))

/* Lowercase hex of bin into out, which must hold 2*len+1 bytes. */
void util_hex(char *out, const unsigned char *bin, size_t len);

/* The value of one hex digit (either case), or -1. */
int util_hexval(char c);

/* printf into a caller's message buffer err[errlen]; does nothing when err
 * is NULL or errlen is 0 (callers may pass no buffer). */
void util_set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ISO 8601 UTC with milliseconds of ms since the epoch:
 * "2026-11-27T05:22:07.123Z", or with offset "...07.123+00:00" (the form
 * Nango's list items use). out holds UTIL_ISO_TIME_MAX bytes. */
#define UTIL_ISO_TIME_MAX 32
void util_iso_time(int64_t ms, bool offset, char out[UTIL_ISO_TIME_MAX]);

/* Monotonic and wall-clock time. */
int64_t util_now_ms(void);      /* CLOCK_REALTIME, milliseconds since the epoch */
int64_t util_mono_us(void);     /* CLOCK_MONOTONIC, microseconds */

/* Initializes a mutex and a condition variable (default attributes) that
 * guard one structure: 0, or STATUS_ENOMEM with neither left initialized. */
int util_lock_init(pthread_mutex_t *mu, pthread_cond_t *cv);

/* Sets *flag under mu and wakes every thread waiting on cv: how a thread
 * that sleeps on cv until the flag is up is told to stop, or that there is
 * work for it. */
void util_flag_raise(pthread_mutex_t *mu, pthread_cond_t *cv, bool *flag);

/* Condition variables timed on CLOCK_MONOTONIC, so a change of the wall
 * clock neither stretches nor cuts a wait. init: returns pthread_cond_init's
 * result. wait: waits on cv (mu held) for at most us microseconds (negative:
 * not at all); returns pthread_cond_timedwait's result. */
int util_cond_init_monotonic(pthread_cond_t *cv);
int util_cond_wait_us(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t us);

/* True when s matches ^[a-zA-Z0-9_-]+$ (script, plugin and integration names). */
bool util_valid_name(const char *s);

/* Joins dir and a relative path into a malloc'd string; an absolute path is
 * returned as a copy. NULL on allocation failure. */
char *util_path_join(const char *dir, const char *path);

#endif
