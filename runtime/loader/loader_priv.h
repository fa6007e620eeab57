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

#endif
