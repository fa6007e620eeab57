/* loader_priv.h - shared by loader.c and loader_open.c; not an interface. */
#ifndef EVS_LOADER_PRIV_H
#define EVS_LOADER_PRIV_H

#include <stddef.h>

/* Sets err to "<status_str(code)>: <detail>" and returns code. */
int loader_refuse(char *err, size_t errlen, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

struct loader_plugin;
/* loader_subs.c: reads p's declared subscriptions from the sealed memfd fd
 * of size bytes into p: 0, or a LOADER_E* code with err set. */
int loader_read_subscriptions(struct loader_plugin *p, int fd, size_t size, char *err, size_t errlen);

/* loader_bytes.c: a new memfd (close-on-exec, sealable, executable) named
 * after the plugin; -1 with errno on failure. */
int loader_new_memfd(const char *name);

/* loader_bytes.c: maps len bytes of the sealed memfd read-only into
 * p->bytes (p->image, p->image_len); the memfd stays the caller's (close it:
 * the mapping keeps the bytes). 0, LOADER_ENOMEM or LOADER_EIO (errno set). */
int loader_bytes_keep(struct loader_plugin *p, int memfd, size_t len);

/* loader_bytes.c: unmaps p's bytes. */
void loader_bytes_release(struct loader_plugin *p);
/* loader_bytes.c: p no longer refers to a mapping (which it does not own: a
 * copy of another plugin's fields), without unmapping it. */
void loader_bytes_forget(struct loader_plugin *p);

#endif
