/*
 * interpolate.c - ${name} templates of providers.yaml ("Bearer ${apiKey}",
 * "https://${connectionConfig.subdomain}.example.com || https://example.com").
 *
 * Values are often credentials (apiKey, access_token), so every buffer that
 * held an expansion is wiped before it is freed, including the old buffer
 * when one grows.
 */
#include "config.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct buf {
	char *data;
	size_t len, cap;
};

static int buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > CONFIG_INTERPOLATE_MAX)
		return CONFIG_ETOOLARGE;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		char *d;

		while (cap < b->len + n + 1)
			cap *= 2;
		if (cap > CONFIG_INTERPOLATE_MAX)
			cap = CONFIG_INTERPOLATE_MAX;
		/* Not realloc(): it would free the old copy unwiped. */
		d = malloc(cap);
		if (!d)
			return CONFIG_ENOMEM;
		if (b->data) {
			memcpy(d, b->data, b->len);
			sodium_memzero(b->data, b->cap);
			free(b->data);
		}
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

static void buf_wipe_free(struct buf *b)
{
	if (b->data) {
		sodium_memzero(b->data, b->cap);
		free(b->data);
	}
	memset(b, 0, sizeof(*b));
}

static int is_name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
	       ch == '.' || ch == '-';
}

/* Expands [s, s+n) into b. */
static int expand(const char *s, size_t n, config_lookup_fn lookup, void *ud, struct buf *b,
		  const char *tmpl, char *err, size_t errlen)
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

			ret = buf_add(b, s + i, upto - i);
			if (ret)
				goto add_failed;
			i = upto;
			continue;
		}
		ret = buf_add(b, s + i, (size_t)(dollar - s) - i);
		if (ret)
			goto add_failed;
		start = (size_t)(dollar - s) + 2;
		end = start;
		while (end < n && is_name_char(s[end]))
			end++;
		if (end >= n || s[end] != '}' || end == start) {
			if (end < n && s[end] != '}')
				snprintf(err, errlen,
					 "template '%s': unsupported function or expression at '%.*s', expected ${name}",
					 tmpl, (int)(end + 1 - (size_t)(dollar - s)), dollar);
			else
				snprintf(err, errlen, "template '%s': unterminated or empty '${', expected ${name}", tmpl);
			return CONFIG_ETEMPLATE;
		}
		if (end - start >= sizeof(name)) {
			snprintf(err, errlen, "template '%s': variable name too long", tmpl);
			return CONFIG_ETEMPLATE;
		}
		memcpy(name, s + start, end - start);
		name[end - start] = '\0';
		val = lookup ? lookup(ud, name) : NULL;
		if (!val) {
			snprintf(err, errlen, "variable '%s' has no value (template '%s')", name, tmpl);
			return CONFIG_EUNDEFINED;
		}
		ret = buf_add(b, val, strlen(val));
		if (ret)
			goto add_failed;
		i = end + 1;
	}
	return 0;
add_failed:
	if (ret == CONFIG_ETOOLARGE)
		snprintf(err, errlen, "template '%s': result longer than %u bytes", tmpl, CONFIG_INTERPOLATE_MAX);
	else
		snprintf(err, errlen, "template '%s': out of memory", tmpl);
	return ret;
}

int config_interpolate(const char *tmpl, config_lookup_fn lookup, void *ud, char **out,
		       char *err, size_t errlen)
{
	struct buf b = {0};
	const char *p, *alt;
	char first_err[CONFIG_ERR_MAX] = "";
	int first_ret = 0, ret = 0;
	bool several;

	*out = NULL;
	if (!tmpl)
		return CONFIG_ETEMPLATE;
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
		b.len = 0;
		if (b.data)
			b.data[0] = '\0';
		ret = expand(p, (size_t)(end - p), lookup, ud, &b, tmpl, one, sizeof(one));
		if (ret == 0 && b.len == 0 && !b.data)
			ret = buf_add(&b, "", 0);
		if (ret == 0)
			break;
		if (ret != CONFIG_EUNDEFINED) {
			snprintf(first_err, sizeof(first_err), "%s", one);
			first_ret = ret;
			break;
		}
		if (!first_ret) {
			snprintf(first_err, sizeof(first_err), "%s", one);
			first_ret = ret;
		}
		if (!bar)
			break;
		alt = bar + 2;
	}
	if (ret) {
		buf_wipe_free(&b);
		if (err && errlen)
			snprintf(err, errlen, "%s", first_err);
		return first_ret ? first_ret : ret;
	}
	*out = b.data;
	return 0;
}
