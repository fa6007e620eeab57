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

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
	       ch == '.' || ch == '-';
}

/* Expands [s, s+n) into b. */
static int expand(const char *s, size_t n, config_lookup_fn lookup, void *ud, struct dynbuf *b,
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
		ret = expand(p, (size_t)(end - p), lookup, ud, &b, tmpl, one, sizeof(one));
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
