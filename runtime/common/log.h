/*
 * log.h - the daemon's own log: one line per event, plain text or JSON.
 *
 * Plain: "2026-11-27T05:22:07.123Z info  loader: refused plugin x: bad signature"
 * JSON:  {"ts":"...","level":"info","part":"loader","msg":"..."}
 * Thread-safe; each line is written with one write(2) so lines never interleave.
 *
 * A message never carries a raw control byte: CR and LF become spaces (one
 * event, one line) and every other byte below 0x20 but TAB, and DEL, is
 * written "\xNN", so a file name or a header cannot move the terminal's
 * cursor or forge a line.
 *
 * Refusals (a request or a connection turned away: limits, timeouts, bad
 * input) go through log_refusal(), never one line each: a flood of them
 * would fill the disk faster than it could be read.
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

/* The refusal window: at most one summary line per window. */
#define LOG_REFUSAL_WINDOW_MS 10000
#define LOG_REFUSAL_REASONS 8     /* distinct reasons counted per window */
#define LOG_REFUSAL_REASON_MAX 48 /* a reason is cut at this length */

/* Counts one refusal under a short reason ("connection limit", "header
 * timeout"). The first refusal after a quiet window is logged at once, as a
 * warning; the others are summed up in one line per window:
 *   "http: 1234 requests refused in the last 10 s (connection limit: 1200, header timeout: 34)"
 * Reasons past LOG_REFUSAL_REASONS distinct ones are counted as "other".
 * Thread-safe. */
void log_refusal(const char *part, const char *reason);

/* Writes the pending summary when its window has ended. Call it now and then
 * (the HTTP server's watchdog does), so that the last summary of a burst is
 * not held back until the next refusal. Thread-safe. */
void log_refusal_flush(void);

/* Sets the window (milliseconds, > 0) and forgets what was counted. For
 * tests; the daemon keeps LOG_REFUSAL_WINDOW_MS. */
void log_refusal_window(unsigned ms);

/* Refusals counted since the start (log_refusal_window() does not reset
 * it), for /metrics. Thread-safe. */
unsigned long long log_refusal_total(void);

#define log_debug(part, ...) log_write(LOG_LEVEL_DEBUG, part, __VA_ARGS__)
#define log_info(part, ...) log_write(LOG_LEVEL_INFO, part, __VA_ARGS__)
#define log_warn(part, ...) log_write(LOG_LEVEL_WARN, part, __VA_ARGS__)
#define log_error(part, ...) log_write(LOG_LEVEL_ERROR, part, __VA_ARGS__)

#endif
