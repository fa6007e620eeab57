/*
 * http_route.c - route patterns: compiled, compared, matched
 * (http_route.h).
 */
#include "http_route.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

static bool valid_param_name(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	return true;
}

static bool valid_method(const char *m)
{
	if (m == NULL || *m == '\0' || strlen(m) > 16)
		return false;
	for (const char *p = m; *p; p++)
		if (*p < 'A' || *p > 'Z')
			return false;
	return true;
}

void route_clear(struct route *r)
{
	free(r->method);
	free(r->pattern);
	for (size_t i = 0; i < r->n_segs; i++)
		free(r->segs[i]);
	memset(r, 0, sizeof(*r));
}

int route_compile(struct route *r, const struct http_route *in, char *err, size_t errlen)
{
	const char *p;
	int rc = HTTP_EINVAL;

	memset(r, 0, sizeof(*r));
	if (!valid_method(in->method)) {
		util_set_err(err, errlen, "route %s: invalid method", in->pattern ? in->pattern : "(null)");
		goto fail;
	}
	if (in->pattern == NULL || in->pattern[0] != '/') {
		util_set_err(err, errlen, "route %s: the pattern must start with '/'", in->method);
		goto fail;
	}
	if (in->fn == NULL) {
		util_set_err(err, errlen, "route %s %s: no handler", in->method, in->pattern);
		goto fail;
	}
	r->fn = in->fn;
	r->public = in->public;
	r->method = strdup(in->method);
	r->pattern = strdup(in->pattern);
	if (r->method == NULL || r->pattern == NULL) {
		rc = HTTP_ENOMEM;
		goto fail;
	}
	p = in->pattern + 1;
	/* "/" has no segment; "/a/" ends with an empty one (refused) */
	while (in->pattern[1] != '\0') {
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		bool param = len >= 2 && p[0] == '{' && p[len - 1] == '}';

		if (len == 0) {
			util_set_err(err, errlen, "route %s %s: empty path segment", in->method, in->pattern);
			goto fail;
		}
		if (r->n_segs == HTTP_MAX_SEGMENTS) {
			util_set_err(err, errlen, "route %s %s: more than %d segments", in->method, in->pattern,
				HTTP_MAX_SEGMENTS);
			goto fail;
		}
		if (param) {
			if (!valid_param_name(p + 1, len - 2)) {
				util_set_err(err, errlen, "route %s %s: parameter names are [A-Za-z0-9_]+",
					in->method, in->pattern);
				goto fail;
			}
			r->segs[r->n_segs] = strndup(p + 1, len - 2);
		} else {
			if (memchr(p, '{', len) || memchr(p, '}', len) || memchr(p, '%', len)) {
				util_set_err(err, errlen, "route %s %s: a parameter must be a whole segment \"{name}\" "
					"and literals are not percent-encoded", in->method, in->pattern);
				goto fail;
			}
			r->segs[r->n_segs] = strndup(p, len);
		}
		if (r->segs[r->n_segs] == NULL) {
			rc = HTTP_ENOMEM;
			goto fail;
		}
		r->is_param[r->n_segs] = param;
		if (!param)
			r->specificity |= 1u << (HTTP_MAX_SEGMENTS - 1 - r->n_segs);
		r->n_segs++;
		if (end == NULL)
			break;
		p = end + 1;
	}
	for (size_t i = 0; i < r->n_segs; i++)
		for (size_t j = i + 1; j < r->n_segs; j++)
			if (r->is_param[i] && r->is_param[j] && strcmp(r->segs[i], r->segs[j]) == 0) {
				util_set_err(err, errlen, "route %s %s: parameter {%s} appears twice",
					in->method, in->pattern, r->segs[i]);
				goto fail;
			}
	return 0;

fail:
	route_clear(r);
	return rc;
}

bool routes_clash(const struct route *a, const struct route *b)
{
	if (strcmp(a->method, b->method) != 0 || a->n_segs != b->n_segs)
		return false;
	for (size_t i = 0; i < a->n_segs; i++) {
		if (a->is_param[i] != b->is_param[i])
			return false;
		if (!a->is_param[i] && strcmp(a->segs[i], b->segs[i]) != 0)
			return false;
	}
	return true;
}

bool route_matches_path(const struct route *r, const char *const *segs, int n)
{
	if ((int)r->n_segs != n)
		return false;
	for (int i = 0; i < n; i++) {
		if (segs[i][0] == '\0')
			return false; /* an empty segment matches nothing */
		if (!r->is_param[i] && strcmp(r->segs[i], segs[i]) != 0)
			return false;
	}
	return true;
}
