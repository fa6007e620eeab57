/*
 * proxy_retry.c - proxy.retry.error_code and proxy.retry.in_body.
 *
 * in_body's value is a JavaScript regular expression literal in Nango's
 * catalogue ("/User-rate limit exceeded\. +Retry after (.+)/"): the slashes
 * and any flags are taken off and the rest compiled as a POSIX extended
 * expression (regcomp), which covers what the catalogue writes.
 */
#include "proxy_retry.h"

#include <ctype.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "util.h"

#define CAPTURE_MAX 256

bool proxy_retry_status_listed(const struct config_retry *rt, int status)
{
	for (size_t i = 0; i < rt->error_code.n; i++) {
		const char *c = rt->error_code.items[i];

		if (strlen(c) == 3 && c[1] == 'x' && c[2] == 'x' && isdigit((unsigned char)c[0])) {
			if (status / 100 == c[0] - '0')
				return true;
		} else if (atoi(c) == status) {
			return true;
		}
	}
	return false;
}

/* The string at a dotted path of a JSON document, or NULL. */
static const char *at_path(struct json_object *o, const char *path)
{
	char key[128];

	while (o && *path) {
		size_t n = strcspn(path, ".");

		if (n >= sizeof(key))
			return NULL;
		memcpy(key, path, n);
		key[n] = '\0';
		if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &o))
			return NULL;
		path += n + (path[n] == '.');
	}
	return o && json_object_is_type(o, json_type_string) ? json_object_get_string(o) : NULL;
}

/* Compiles Nango's /re/flags (or a bare expression). */
static bool compile(const char *value, regex_t *re)
{
	char *pat = strdup(value);
	size_t n;
	bool ok;

	if (!pat)
		return false;
	n = strlen(pat);
	if (n >= 2 && pat[0] == '/') {
		char *last = strrchr(pat, '/');

		if (last > pat) {
			*last = '\0';
			memmove(pat, pat + 1, strlen(pat + 1) + 1);
		}
	}
	ok = regcomp(re, pat, REG_EXTENDED) == 0;
	free(pat);
	return ok;
}

/* The wait a captured text asks for under strategy ("at" or "after"). */
static int64_t wait_for(const char *strategy, const char *text)
{
	char *end;
	double d = strtod(text, &end);
	time_t when;

	if (strategy && strcmp(strategy, "after") == 0)
		return end != text && d >= 0 ? (int64_t)(d * 1000) : 0;
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (end != text && !*end && d > 1e9) /* epoch seconds */
		when = (time_t)d;
	else if (strptime(text, "%Y-%m-%dT%H:%M:%S", &tm)) /* ISO 8601, UTC */
		when = timegm(&tm);
	else
		when = curl_getdate(text, NULL); /* RFC 822/850, asctime... */
	if (when == (time_t)-1)
		return 0;
	d = (double)when * 1000 - (double)util_now_ms();
	return d > 0 ? (int64_t)d : 0;
}

int64_t proxy_retry_in_body(const struct config_retry *rt, const struct evs_response *r)
{
	struct json_object *doc;
	const char *s;
	regex_t re;
	regmatch_t m[2];
	int64_t wait = -1;

	if (!rt->in_body_path || !rt->in_body_value || !r || !r->body || !r->body_len)
		return -1;
	doc = json_tokener_parse(r->body);
	s = doc ? at_path(doc, rt->in_body_path) : NULL;
	if (s && compile(rt->in_body_value, &re)) {
		if (regexec(&re, s, 2, m, 0) == 0) {
			char cap[CAPTURE_MAX] = "";

			if (m[1].rm_so >= 0 && m[1].rm_eo - m[1].rm_so < CAPTURE_MAX) {
				memcpy(cap, s + m[1].rm_so, (size_t)(m[1].rm_eo - m[1].rm_so));
				cap[m[1].rm_eo - m[1].rm_so] = '\0';
			}
			wait = cap[0] ? wait_for(rt->in_body_strategy, cap) : 0;
		}
		regfree(&re);
	}
	json_object_put(doc);
	return wait;
}
