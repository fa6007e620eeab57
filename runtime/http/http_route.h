/*
 * http_route.h - the routes of http.c: "METHOD /literal/{param}" patterns
 * compiled into segments, checked for clashes, and matched against a
 * request's decoded path segments. Private to runtime/http.
 */
#ifndef EVS_HTTP_ROUTE_H
#define EVS_HTTP_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"

struct route {
	char *method;
	char *pattern;
	http_handler_fn fn;
	bool public;
	size_t n_segs;
	char *segs[HTTP_MAX_SEGMENTS];  /* literal text, or the parameter's name */
	bool is_param[HTTP_MAX_SEGMENTS];
	uint32_t specificity;           /* literal segments as bits, leftmost highest */
};

/* Compiles one route (HTTP_EINVAL, HTTP_ENOMEM; err says why). */
int route_compile(struct route *r, const struct http_route *in, char *err, size_t errlen);
void route_clear(struct route *r);
/* Same method and same shape: the two can never be told apart. */
bool routes_clash(const struct route *a, const struct route *b);
/* r matches the n decoded segments segs (an empty segment matches nothing). */
bool route_matches_path(const struct route *r, const char *const *segs, int n);

#endif
