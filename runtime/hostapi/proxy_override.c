/*
 * proxy_override.c - whether a request's base_url_override may replace the
 * provider's base URL. The connection's credentials are injected into the
 * request, so the override may move it only within the provider: the same
 * scheme, and the same host or (DNS names of three labels or more) a host
 * under the same parent domain. URLs are parsed with libcurl's URL API.
 */
#include "proxy.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The parts of url that decide where it goes; 0 or -1 (does not parse,
 * or has userinfo, a query or a fragment when strict). */
struct where {
	char *scheme, *host;
};

static void where_free(struct where *w)
{
	curl_free(w->scheme);
	curl_free(w->host);
}

static int where_of(const char *url, bool strict, struct where *w)
{
	CURLU *u = curl_url();
	char *extra = NULL;
	int ret = -1;

	memset(w, 0, sizeof(*w));
	if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
		goto out;
	if (curl_url_get(u, CURLUPART_SCHEME, &w->scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &w->host, 0) != CURLUE_OK)
		goto out;
	if (strict && (curl_url_get(u, CURLUPART_USER, &extra, 0) == CURLUE_OK ||
		       curl_url_get(u, CURLUPART_QUERY, &extra, 0) == CURLUE_OK ||
		       curl_url_get(u, CURLUPART_FRAGMENT, &extra, 0) == CURLUE_OK))
		goto out;
	ret = 0;
out:
	curl_free(extra);
	curl_url_cleanup(u);
	if (ret)
		where_free(w);
	return ret;
}

static bool is_ip(const char *host)
{
	unsigned char buf[16];

	return host[0] == '[' || inet_pton(AF_INET, host, buf) == 1;
}

/* host without its first label when it has three labels or more, else NULL. */
static const char *parent_domain(const char *host)
{
	const char *dot = strchr(host, '.');

	return dot && strchr(dot + 1, '.') ? dot + 1 : NULL;
}

static bool same_provider(const struct where *base, const struct where *o)
{
	const char *pb, *po;

	if (strcasecmp(base->scheme, o->scheme) != 0)
		return false;
	if (strcasecmp(base->host, o->host) == 0)
		return true;
	if (is_ip(base->host) || is_ip(o->host))
		return false;
	pb = parent_domain(base->host);
	po = parent_domain(o->host);
	return pb && po && strcasecmp(pb, po) == 0;
}

int proxy_override_base(const char *base_url, const char *override, char **out)
{
	struct where b, o;
	int ret;

	*out = NULL;
	if (!override)
		return EVS_OK;
	if (strncmp(override, "http://", 7) != 0 && strncmp(override, "https://", 8) != 0)
		return EVS_EDENIED;
	if (where_of(override, true, &o) < 0)
		return EVS_EINVAL;
	if (where_of(base_url, false, &b) < 0) {
		where_free(&o);
		return EVS_EDENIED;
	}
	ret = same_provider(&b, &o) ? EVS_OK : EVS_EDENIED;
	where_free(&b);
	where_free(&o);
	if (ret)
		return ret;
	*out = strdup(override);
	if (!*out)
		return EVS_ENOMEM;
	for (size_t n = strlen(*out); n > 0 && (*out)[n - 1] == '/'; n--)
		(*out)[n - 1] = '\0';
	return EVS_OK;
}
