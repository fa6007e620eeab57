/*
 * log.h - the daemon's own log: one line per event, plain text or JSON.
 *
 * Plain: "2026-11-27T05:22:07.123Z info  loader: refused plugin x: bad signature"
 * JSON:  {"ts":"...","level":"info","part":"loader","msg":"..."}
 * Thread-safe; each line is written with one write(2) so lines never interleave.
 */
#ifndef EVS_COMMON_LOG_H
#define EVS_COMMON_LOG_H

#include <stdbool.h>

enum log_level { LOG_LEVEL_DEBUG = 0, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/* Sets the output fd (default 2), the format and the lowest level written.
 * Call before threads start. */
void log_setup(int fd, bool json, enum log_level min_level);

/* "debug", "info", "warn", "error". */
const char *log_level_name(enum log_level level);

/* Writes one line. part names the component ("loader", "http", ...). */
void log_write(enum log_level level, const char *part, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_debug(part, ...) log_write(LOG_LEVEL_DEBUG, part, __VA_ARGS__)
#define log_info(part, ...) log_write(LOG_LEVEL_INFO, part, __VA_ARGS__)
#define log_warn(part, ...) log_write(LOG_LEVEL_WARN, part, __VA_ARGS__)
#define log_error(part, ...) log_write(LOG_LEVEL_ERROR, part, __VA_ARGS__)

#endif
