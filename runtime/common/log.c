#include "log.h"
#include "util.h"

#include <json-c/json.h>
#include <pthread.h>
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

/* Copies raw into out (outlen > 4): CR and LF as spaces (one event, one
 * line), other control bytes but TAB, and DEL, as "\xNN"; cut at outlen. */
static void escape_controls(char *out, size_t outlen, const char *raw)
{
	static const char hex[] = "0123456789abcdef";
	size_t i = 0;

	for (const unsigned char *p = (const unsigned char *)raw; *p && i + 5 <= outlen; p++) {
		if (*p == '\n' || *p == '\r') {
			out[i++] = ' ';
		} else if ((*p < 0x20 && *p != '\t') || *p == 0x7f) {
			out[i++] = '\\';
			out[i++] = 'x';
			out[i++] = hex[*p >> 4];
			out[i++] = hex[*p & 0xf];
		} else {
			out[i++] = (char)*p;
		}
	}
	out[i] = '\0';
}

void log_write(enum log_level level, const char *part, const char *fmt, ...)
{
	char raw[LOG_LINE_MAX];
	char msg[LOG_LINE_MAX];
	char line[LOG_LINE_MAX + 128];
	char ts[64];
	va_list ap;
	int n;

	if (level < log_min)
		return;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	escape_controls(msg, sizeof(msg), raw);
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

/* ---- refusals, summed up per window */

struct refusal_count {
	char reason[LOG_REFUSAL_REASON_MAX];
	unsigned long long n;
};

static pthread_mutex_t refusal_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned refusal_window_ms = LOG_REFUSAL_WINDOW_MS;
static int64_t refusal_window_start;   /* monotonic us; 0: quiet, the next refusal is logged at once */
static char refusal_part[32] = "http";
static struct refusal_count refusals[LOG_REFUSAL_REASONS + 1]; /* the last one is "other" */
static unsigned long long refusal_total;

/* "10 s", or "250 ms" for a window that is not whole seconds (tests). */
static void window_text(char out[32])
{
	if (refusal_window_ms % 1000 == 0)
		snprintf(out, 32, "%u s", refusal_window_ms / 1000);
	else
		snprintf(out, 32, "%u ms", refusal_window_ms);
}

/* The summary line of the window that ended, if it counted anything; then a
 * new window (refusals went on) or quiet (none). Called with the lock held. */
static void refusal_summary(int64_t now)
{
	char detail[LOG_LINE_MAX / 2];
	char window[32];
	unsigned long long total = 0;
	size_t used = 0;

	detail[0] = '\0';
	for (size_t i = 0; i <= LOG_REFUSAL_REASONS && refusals[i].reason[0]; i++) {
		int n;

		if (refusals[i].n == 0)
			continue;
		total += refusals[i].n;
		n = snprintf(detail + used, sizeof(detail) - used, "%s%s: %llu", used ? ", " : "",
			     refusals[i].reason, refusals[i].n);
		if (n > 0 && (size_t)n < sizeof(detail) - used)
			used += (size_t)n;
		refusals[i].n = 0;
	}
	if (total == 0) {
		refusal_window_start = 0;
		return;
	}
	window_text(window);
	log_warn(refusal_part, "%llu requests refused in the last %s (%s)", total, window, detail);
	refusal_window_start = now;
}

static struct refusal_count *refusal_slot(const char *reason)
{
	size_t i;

	for (i = 0; i < LOG_REFUSAL_REASONS && refusals[i].reason[0]; i++)
		if (strncmp(refusals[i].reason, reason, sizeof(refusals[i].reason) - 1) == 0)
			return &refusals[i];
	if (i < LOG_REFUSAL_REASONS) {
		snprintf(refusals[i].reason, sizeof(refusals[i].reason), "%s", reason);
		return &refusals[i];
	}
	snprintf(refusals[LOG_REFUSAL_REASONS].reason, LOG_REFUSAL_REASON_MAX, "other");
	return &refusals[LOG_REFUSAL_REASONS];
}

void log_refusal(const char *part, const char *reason)
{
	int64_t now = util_mono_us();
	char window[32];

	if (reason == NULL || *reason == '\0')
		reason = "other";
	pthread_mutex_lock(&refusal_lock);
	refusal_total++;
	if (refusal_window_start != 0 && now - refusal_window_start >= (int64_t)refusal_window_ms * 1000)
		refusal_summary(now);
	if (refusal_window_start == 0) {
		snprintf(refusal_part, sizeof(refusal_part), "%s", part ? part : "http");
		window_text(window);
		log_warn(refusal_part, "request refused (%s); further refusals are summed up every %s",
			 reason, window);
		refusal_window_start = now;
	} else {
		refusal_slot(reason)->n++;
	}
	pthread_mutex_unlock(&refusal_lock);
}

void log_refusal_flush(void)
{
	int64_t now = util_mono_us();

	pthread_mutex_lock(&refusal_lock);
	if (refusal_window_start != 0 && now - refusal_window_start >= (int64_t)refusal_window_ms * 1000)
		refusal_summary(now);
	pthread_mutex_unlock(&refusal_lock);
}

void log_refusal_window(unsigned ms)
{
	pthread_mutex_lock(&refusal_lock);
	refusal_window_ms = ms ? ms : LOG_REFUSAL_WINDOW_MS;
	refusal_window_start = 0;
	memset(refusals, 0, sizeof(refusals));
	pthread_mutex_unlock(&refusal_lock);
}

unsigned long long log_refusal_total(void)
{
	unsigned long long n;

	pthread_mutex_lock(&refusal_lock);
	n = refusal_total;
	pthread_mutex_unlock(&refusal_lock);
	return n;
}
