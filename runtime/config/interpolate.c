/*
 * interpolate.c - ${name} templates of providers.yaml ("Bearer ${apiKey}",
 * "https://${connectionConfig.subdomain}.example.com || https://example.com").
 *
 * Values are often credentials (apiKey, access_token), so the expansion is
 * built in a DYNBUF_WIPE buffer: every copy it lets go of is wiped, the old
 * one when it grows included.
 */
#include "config.h"
#include "dynbuf.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int is_name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
	       ch == '.' || ch == '-';
}

static int expand(const char *s, size_t n, config_lookup_fn lookup, void *ud, struct dynbuf *b,
		  const char *tmpl, unsigned depth, char *err, size_t errlen);

#define NESTING_MAX 8 /* ${base64(${base64(...)})}: Nango's catalogue nests 2 */

/* ---- functions: ${base64(...)}, ${now}, ${now:FORMAT}, ${now+N:unit:FORMAT} ---- */

/* The functions of Nango's catalogue that evscript refuses, and why: each
 * signs or hashes the outgoing request, which a template expanded once per
 * connection cannot do. */
static const char *const refused_functions[] = {
	"sha256Hex", "sha256Base64", "hmacSha1Hex", "awsSigV4", "ed25519Sign", "fingerprint", NULL,
};

/* The ')' that closes the '(' at s[open], skipping nested ${...} and
 * parentheses; n when there is none. */
static size_t closing_paren(const char *s, size_t open, size_t n)
{
	int depth = 0;

	for (size_t i = open; i < n; i++) {
		if (s[i] == '(' || s[i] == '{')
			depth++;
		else if ((s[i] == ')' || s[i] == '}') && --depth == 0)
			return s[i] == ')' ? i : n;
	}
	return n;
}

/* moment.js tokens of ${now:FORMAT} that Nango's catalogue uses: YYYY MM
 * DD HH mm ss X (epoch seconds) ddd MMM ZZ (+0000) Z (+00:00), T (itself)
 * and [literal]; any other letter is refused. */
static int format_time(struct dynbuf *b, time_t t, const char *f, size_t n)
{
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	struct tm tm;
	char num[32];
	size_t i = 0;

	gmtime_r(&t, &tm);
	while (i < n) {
		const char *rest = f + i;
		size_t left = n - i;

#define TOKEN(tok) (left >= sizeof(tok) - 1 && strncmp(rest, tok, sizeof(tok) - 1) == 0 && (i += sizeof(tok) - 1))
		if (*rest == '[') {
			const char *end = memchr(rest, ']', left);

			if (!end)
				return -1;
			dynbuf_add(b, rest + 1, (size_t)(end - rest - 1));
			i += (size_t)(end - rest) + 1;
			continue;
		}
		num[0] = '\0';
		if (TOKEN("YYYY"))
			snprintf(num, sizeof(num), "%04d", tm.tm_year + 1900);
		else if (TOKEN("MMM"))
			snprintf(num, sizeof(num), "%s", months[tm.tm_mon]);
		else if (TOKEN("MM"))
			snprintf(num, sizeof(num), "%02d", tm.tm_mon + 1);
		else if (TOKEN("DD"))
			snprintf(num, sizeof(num), "%02d", tm.tm_mday);
		else if (TOKEN("ddd"))
			snprintf(num, sizeof(num), "%s", days[tm.tm_wday]);
		else if (TOKEN("HH"))
			snprintf(num, sizeof(num), "%02d", tm.tm_hour);
		else if (TOKEN("mm"))
			snprintf(num, sizeof(num), "%02d", tm.tm_min);
		else if (TOKEN("ss"))
			snprintf(num, sizeof(num), "%02d", tm.tm_sec);
		else if (TOKEN("ZZ"))
			snprintf(num, sizeof(num), "+0000");
		else if (TOKEN("X"))
			snprintf(num, sizeof(num), "%lld", (long long)t);
		else if (TOKEN("Z"))
			snprintf(num, sizeof(num), "+00:00");
		else if (TOKEN("T"))
			snprintf(num, sizeof(num), "T"); /* not a moment token: itself */
		else if (isalpha((unsigned char)*rest))
			return -1; /* a token we do not know: refuse rather than guess */
		else {
			dynbuf_add(b, rest, 1);
			i++;
			continue;
		}
#undef TOKEN
		dynbuf_add_str(b, num);
	}
	return 0;
}

/* ${now...}: body is what is between "${" and "}". */
static int expand_now(const char *body, size_t n, struct dynbuf *b, const char *tmpl, char *err, size_t errlen)
{
	time_t t = time(NULL);
	const char *p = body + 3, *end = body + n;

	if (p < end && *p == '+') {
		char *q;
		long v = strtol(p + 1, &q, 10);
		size_t ulen;

		if (q == p + 1 || q >= end || *q != ':' || v < 0 || v > 100000)
			goto bad;
		p = q + 1;
		ulen = (size_t)(memchr(p, ':', (size_t)(end - p)) ? (const char *)memchr(p, ':', (size_t)(end - p)) - p
								    : end - p);
		if (ulen == 7 && strncmp(p, "minutes", 7) == 0)
			t += v * 60;
		else if (ulen == 5 && strncmp(p, "hours", 5) == 0)
			t += v * 3600;
		else if (ulen == 4 && strncmp(p, "days", 4) == 0)
			t += v * 86400;
		else if (ulen == 7 && strncmp(p, "seconds", 7) == 0)
			t += v;
		else
			goto bad;
		p += ulen;
	}
	if (p == end)
		return format_time(b, t, "YYYY-MM-DD[T]HH:mm:ss[Z]", 24) ? CONFIG_ETEMPLATE : 0;
	if (*p != ':' || format_time(b, t, p + 1, (size_t)(end - p - 1)) != 0)
		goto bad;
	return 0;
bad:
	util_set_err(err, errlen, "template '%s': unsupported ${now...} form '%.*s'", tmpl, (int)n, body);
	return CONFIG_ETEMPLATE;
}

/* ${base64(inner)}: inner expanded (variables, text and nested functions),
 * then encoded (standard base64). */
static int expand_base64(const char *inner, size_t n, config_lookup_fn lookup, void *ud, struct dynbuf *b,
			 const char *tmpl, unsigned depth, char *err, size_t errlen)
{
	struct dynbuf in;
	char *enc;
	size_t enc_len;
	int ret;

	dynbuf_init(&in, CONFIG_INTERPOLATE_MAX - 1, DYNBUF_WIPE);
	if (depth >= NESTING_MAX) {
		util_set_err(err, errlen, "template '%s': functions nested more than %d deep", tmpl, NESTING_MAX);
		ret = CONFIG_ETEMPLATE;
		goto out;
	}
	ret = expand(inner, n, lookup, ud, &in, tmpl, depth + 1, err, errlen);
	if (ret)
		goto out;
	enc_len = sodium_base64_encoded_len(dynbuf_len(&in), sodium_base64_VARIANT_ORIGINAL);
	enc = malloc(enc_len);
	if (!enc) {
		ret = STATUS_ENOMEM;
		util_set_err(err, errlen, "template '%s': out of memory", tmpl);
		goto out;
	}
	sodium_bin2base64(enc, enc_len, (const unsigned char *)dynbuf_str(&in), dynbuf_len(&in),
			  sodium_base64_VARIANT_ORIGINAL);
	dynbuf_add_str(b, enc);
	sodium_memzero(enc, enc_len);
	free(enc);
out:
	dynbuf_free(&in);
	return ret;
}

/* A function call at s[at] ("${name(" or "${now"): expanded into b; *next
 * is the index after its closing '}'. */
static int expand_function(const char *s, size_t at, size_t n, config_lookup_fn lookup, void *ud,
			   struct dynbuf *b, size_t *next, const char *tmpl, unsigned depth, char *err,
			   size_t errlen)
{
	size_t start = at + 2, name_end = start, close;

	while (name_end < n && isalnum((unsigned char)s[name_end]))
		name_end++;
	if (name_end - start == 3 && strncmp(s + start, "now", 3) == 0 &&
	    (name_end == n || s[name_end] != '(')) {
		const char *brace = memchr(s + start, '}', n - start);

		if (!brace)
			goto bad;
		*next = (size_t)(brace - s) + 1;
		return expand_now(s + start, (size_t)(brace - s) - start, b, tmpl, err, errlen);
	}
	if (name_end >= n || s[name_end] != '(')
		goto bad;
	for (size_t i = 0; refused_functions[i]; i++)
		if (strlen(refused_functions[i]) == name_end - start &&
		    strncmp(s + start, refused_functions[i], name_end - start) == 0) {
			util_set_err(err, errlen,
				     "template '%s': function %s() is not supported (it signs or hashes each request)",
				     tmpl, refused_functions[i]);
			return CONFIG_ETEMPLATE;
		}
	if (name_end - start != 6 || strncmp(s + start, "base64", 6) != 0)
		goto bad;
	close = closing_paren(s, name_end, n);
	if (close + 1 >= n || s[close + 1] != '}')
		goto bad;
	*next = close + 2;
	return expand_base64(s + name_end + 1, close - name_end - 1, lookup, ud, b, tmpl, depth, err, errlen);
bad:
	util_set_err(err, errlen, "template '%s': unsupported function or expression at '%.*s'", tmpl,
		     (int)(n - at > 40 ? 40 : n - at), s + at);
	return CONFIG_ETEMPLATE;
}

/* Expands [s, s+n) into b; depth: how deep in function calls. */
static int expand(const char *s, size_t n, config_lookup_fn lookup, void *ud, struct dynbuf *b,
		  const char *tmpl, unsigned depth, char *err, size_t errlen)
{
	size_t i = 0;
	char name[256];
	int ret;

	while (i < n) {
		const char *dollar = memchr(s + i, '$', n - i);
		size_t start, end;
		const char *val;

		if (!dollar || (size_t)(dollar - s) + 1 >= n || dollar[1] != '{') {
			size_t upto = dollar ? (size_t)(dollar - s) + 1 : n;

			ret = dynbuf_add(b, s + i, upto - i);
			if (ret)
				goto add_failed;
			i = upto;
			continue;
		}
		ret = dynbuf_add(b, s + i, (size_t)(dollar - s) - i);
		if (ret)
			goto add_failed;
		start = (size_t)(dollar - s) + 2;
		end = start;
		while (end < n && is_name_char(s[end]))
			end++;
		if (end < n && (s[end] == '(' ||
				(end - start == 3 && strncmp(s + start, "now", 3) == 0 &&
				 (s[end] == ':' || s[end] == '+' || s[end] == '}')))) {
			size_t next;

			ret = expand_function(s, (size_t)(dollar - s), n, lookup, ud, b, &next, tmpl, depth, err,
					      errlen);
			if (ret)
				return ret == STATUS_ENOMEM ? CONFIG_ENOMEM : ret;
			i = next;
			continue;
		}
		if (end >= n || s[end] != '}' || end == start) {
			if (end < n && s[end] != '}')
				util_set_err(err, errlen,
					     "template '%s': unsupported function or expression at '%.*s', expected ${name}",
					     tmpl, (int)(end + 1 - (size_t)(dollar - s)), dollar);
			else
				util_set_err(err, errlen, "template '%s': unterminated or empty '${', expected ${name}", tmpl);
			return CONFIG_ETEMPLATE;
		}
		if (end - start >= sizeof(name)) {
			util_set_err(err, errlen, "template '%s': variable name too long", tmpl);
			return CONFIG_ETEMPLATE;
		}
		memcpy(name, s + start, end - start);
		name[end - start] = '\0';
		val = lookup ? lookup(ud, name) : NULL;
		if (!val) {
			util_set_err(err, errlen, "variable '%s' has no value (template '%s')", name, tmpl);
			return CONFIG_EUNDEFINED;
		}
		ret = dynbuf_add_str(b, val);
		if (ret)
			goto add_failed;
		i = end + 1;
	}
	return 0;
add_failed:
	if (ret == STATUS_ETOOBIG) {
		util_set_err(err, errlen, "template '%s': result longer than %u bytes", tmpl, CONFIG_INTERPOLATE_MAX);
		return CONFIG_ETOOLARGE;
	}
	util_set_err(err, errlen, "template '%s': out of memory", tmpl);
	return CONFIG_ENOMEM;
}

int config_interpolate(const char *tmpl, config_lookup_fn lookup, void *ud, char **out,
		       char *err, size_t errlen)
{
	struct dynbuf b;
	const char *p, *alt;
	char first_err[CONFIG_ERR_MAX] = "";
	int first_ret = 0, ret = 0;
	bool several;

	*out = NULL;
	if (!tmpl)
		return CONFIG_ETEMPLATE;
	/* At most CONFIG_INTERPOLATE_MAX bytes with the NUL. */
	dynbuf_init(&b, CONFIG_INTERPOLATE_MAX - 1, DYNBUF_WIPE);
	several = strstr(tmpl, "||") != NULL;
	alt = tmpl;
	for (;;) {
		const char *bar = strstr(alt, "||");
		const char *end = bar ? bar : alt + strlen(alt);
		char one[CONFIG_ERR_MAX] = "";

		p = alt;
		if (several) {
			while (p < end && (*p == ' ' || *p == '\t'))
				p++;
			while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
				end--;
		}
		dynbuf_reset(&b);
		ret = expand(p, (size_t)(end - p), lookup, ud, &b, tmpl, 0, one, sizeof(one));
		if (ret == 0)
			break;
		if (ret != CONFIG_EUNDEFINED) {
			util_set_err(first_err, sizeof(first_err), "%s", one);
			first_ret = ret;
			break;
		}
		if (!first_ret) {
			util_set_err(first_err, sizeof(first_err), "%s", one);
			first_ret = ret;
		}
		if (!bar)
			break;
		alt = bar + 2;
	}
	if (ret) {
		dynbuf_free(&b);
		if (err && errlen)
			util_set_err(err, errlen, "%s", first_err);
		return first_ret ? first_ret : ret;
	}
	/* ownership moves; an empty expansion is an allocated "" */
	if (dynbuf_take(&b, out, NULL)) {
		dynbuf_free(&b);
		if (err && errlen)
			util_set_err(err, errlen, "template '%s': out of memory", tmpl);
		return CONFIG_ENOMEM;
	}
	return 0;
}
