/*
 * json_check.c - what json-c accepts and a JSON API refuses (json_check.h).
 */
#include "json_check.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

static int hex4(const char *p, const char *end, unsigned *out)
{
	unsigned v = 0;

	if (end - p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		char c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* One \u escape at p (pointing at the backslash) inside a string: returns the
 * bytes it takes (a surrogate pair takes both escapes), or 0 when it is
 * refused (why written). */
static size_t check_escape(const char *p, const char *end, char *why, size_t whylen)
{
	unsigned cp, low;

	if (hex4(p + 2, end, &cp) != 0)
		return 6; /* json-c refused it already; nothing of ours */
	if (cp == 0) {
		snprintf(why, whylen, "\\u0000 (a NUL character) is not accepted");
		return 0;
	}
	if (cp >= 0xDC00 && cp <= 0xDFFF) {
		snprintf(why, whylen, "\\u%04X is a low surrogate without a high one before it", cp);
		return 0;
	}
	if (cp < 0xD800 || cp > 0xDBFF)
		return 6;
	if (end - p >= 12 && p[6] == '\\' && p[7] == 'u' && hex4(p + 8, end, &low) == 0 &&
	    low >= 0xDC00 && low <= 0xDFFF)
		return 12;
	snprintf(why, whylen, "\\u%04X is a high surrogate without a low one after it", cp);
	return 0;
}

/* The length of the UTF-8 sequence at p (RFC 3629, Unicode's table 3-7:
 * shortest form, no surrogates, at most U+10FFFF), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned char c = p[0];
	unsigned char lo = 0x80, hi = 0xBF;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4;
	else
		return 0;
	if ((size_t)(end - p) < n)
		return 0;
	if (c == 0xE0)
		lo = 0xA0;          /* overlong */
	else if (c == 0xED)
		hi = 0x9F;          /* surrogates */
	else if (c == 0xF0)
		lo = 0x90;          /* overlong */
	else if (c == 0xF4)
		hi = 0x8F;          /* past U+10FFFF */
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	return n;
}

int json_check_text(const char *text, size_t len, char *why, size_t whylen, size_t *offset)
{
	const char *end = text + len;
	bool in_string = false;

	*offset = 0;
	for (const char *p = text; p < end;) {
		size_t u = utf8_len((const unsigned char *)p, (const unsigned char *)end);

		if (u == 0) {
			snprintf(why, whylen, "invalid UTF-8 (byte 0x%02X)", (unsigned char)*p);
			*offset = (size_t)(p - text);
			return JSON_CHECK_VALUE;
		}
		if (u > 1) {
			p += u;
			continue;
		}
		if (!in_string) {
			if (*p == '\'') {
				snprintf(why, whylen, "single-quoted strings are not JSON");
				*offset = (size_t)(p - text);
				return JSON_CHECK_SYNTAX;
			}
			in_string = *p == '"';
			p++;
			continue;
		}
		if (*p == '"') {
			in_string = false;
			p++;
		} else if (*p == '\\' && p + 1 < end && p[1] == 'u') {
			size_t n = check_escape(p, end, why, whylen);

			if (n == 0) {
				*offset = (size_t)(p - text);
				return JSON_CHECK_VALUE;
			}
			p += n;
		} else if (*p == '\\' && p + 1 < end && (unsigned char)p[1] < 0x80) {
			p += 2;   /* \" \\ \/ \b \f \n \r \t */
		} else {
			p++;
		}
	}
	return 0;
}

int json_check_tree(struct json_object *o, char *why, size_t whylen)
{
	switch (json_object_get_type(o)) {
	case json_type_double: {
		double d = json_object_get_double(o);

		if (isnan(d) || isinf(d)) {
			snprintf(why, whylen, "%s is not a JSON number (NaN and infinities are not accepted, "
				 "nor numbers beyond a double's range)", json_object_to_json_string(o));
			return -1;
		}
		return 0;
	}
	case json_type_object: {
		json_object_object_foreach(o, k, v) {
			(void)k;
			if (json_check_tree(v, why, whylen) != 0)
				return -1;
		}
		return 0;
	}
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(o); i++)
			if (json_check_tree(json_object_array_get_idx(o, i), why, whylen) != 0)
				return -1;
		return 0;
	default:
		return 0;
	}
}
