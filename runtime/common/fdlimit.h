/*
 * fdlimit.h - the daemon's file descriptors against RLIMIT_NOFILE.
 *
 * The daemon keeps no descriptor per plugin in service: a verified plugin's
 * sealed bytes stay mapped, and its memfd is closed once the generation's
 * zygote has it (loader_memfd_close(); a plugin run in-process keeps one while
 * it is loaded), so only a generation being built holds one per plugin. It
 * holds two for the store and one socket per HTTP connection and per pooled
 * executor. The zygote receives one memfd per plugin and holds
 * them all while it opens them (each plugin's /proc/self/fd/N path must stay
 * unique until all are open), then closes them: for that moment a thousand
 * plugins need a thousand descriptors, under the limit the zygote inherits.
 * The usual soft limit of 1024 is too low for that: at start the soft limit
 * is raised to the hard one, and the daemon refuses to start, naming the
 * limit, when even that cannot hold its plugins; a reload that would bring
 * more plugins than the limit holds is refused the same way
 * (generation_build()).
 */
#ifndef EVS_COMMON_FDLIMIT_H
#define EVS_COMMON_FDLIMIT_H

#include <stddef.h>

/* Descriptors the daemon keeps besides plugins and HTTP connections (store,
 * log, zygote control, signal and timer descriptors, a reload's open files). */
#define FDLIMIT_RESERVE 64

struct fdlimit_need {
	size_t plugins;          /* "*.so" files in plugin_dir */
	unsigned concurrency;    /* max_concurrency: pooled executor sockets */
	unsigned connections;    /* http_max_connections */
};

/* Counts the "*.so" entries of dir (0 when it cannot be read: the generation
 * reports that). */
size_t fdlimit_count_plugins(const char *dir);

/* Raises the soft RLIMIT_NOFILE to the hard limit and checks it against
 * need. Returns 0 (a warning is logged when the HTTP connections may not all
 * fit), or STATUS_ETOOBIG with a sentence naming the limit and what to do in
 * err when the plugins do not fit. */
int fdlimit_setup(const struct fdlimit_need *need, char *err, size_t errlen);

/* The check alone, against the soft limit in force: 0, or STATUS_ETOOBIG
 * with the same sentence in err when the plugins do not fit. */
int fdlimit_check(const struct fdlimit_need *need, char *err, size_t errlen);

#endif
