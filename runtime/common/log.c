#include "log.h"
#include "util.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

static int log_fd = 2;
static bool log_json;
static enum log_level log_min = LOG_LEVEL_INFO;

void log_setup(int fd, bool json, enum log_level min_level)
{
	log_fd = fd;
	log_json = json;
	log_min = min_level;
}

const char *log_level_name(enum log_level level)
{
	switch (level) {
	case LOG_LEVEL_DEBUG: return "debug";
	case LOG_LEVEL_INFO: return "info";
	case LOG_LEVEL_WARN: return "warn";
	case LOG_LEVEL_ERROR: return "error";
	}
	return "info";
}


/* {"ts","level","part","msg"} and a newline in one writev(). Escaping can
 * make the object several times longer than msg, so it is written whole
 * rather than cut into invalid JSON in a fixed buffer. */
static void write_json(const char *ts, enum log_level level, const char *part, const char *msg)
{
	struct json_object *o = json_object_new_object();
	struct iovec iov[2];
	const char *text;

	if (!o)
		return;
	json_object_object_add(o, "ts", json_object_new_string(ts));
	json_object_object_add(o, "level", json_object_new_string(log_level_name(level)));
	json_object_object_add(o, "part", json_object_new_string(part));
	json_object_object_add(o, "msg", json_object_new_string(msg));
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (text) {
		iov[0] = (struct iovec){.iov_base = (void *)text, .iov_len = strlen(text)};
		iov[1] = (struct iovec){.iov_base = "\n", .iov_len = 1};
		if (writev(log_fd, iov, 2) < 0) {
			/* the log is the place failures would be reported */
		}
	}
	json_object_put(o);
}

void log_write(enum log_level level, const char *part, const char *fmt, ...)
{
	char msg[LOG_LINE_MAX];
	char line[LOG_LINE_MAX + 128];
	char ts[64];
	va_list ap;
	int n;

	if (level < log_min)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* One event, one line: fold embedded newlines. */
	for (char *p = msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	util_iso_time(util_now_ms(), false, ts);
	if (log_json) {
		write_json(ts, level, part, msg);
		return;
	}
	n = snprintf(line, sizeof(line), "%s %-5s %s: %s\n", ts, log_level_name(level), part, msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	/* A single write keeps concurrent lines whole. */
	if (write(log_fd, line, (size_t)n) < 0)
		return;
}
