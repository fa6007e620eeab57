/*
 * api_proxy.c - Nango's proxy API: GET|POST|PUT|PATCH|DELETE /proxy/{path}
 * sends {path} to the provider's API with the connection's credentials, as
 * a script's proxy() does (runtime/hostapi/proxy.c), and answers with the
 * provider's status, headers and body.
 *
 * Request headers it reads (those the official client sends):
 *   Connection-Id, Provider-Config-Key   required: which connection
 *   Nango-Proxy-<Name>                   sent to the provider as <Name>
 *   Content-Type                         sent as is with a body
 *   Retries                              extra attempts (0..10)
 *   Retry-On                             comma-separated statuses that are
 *                                        retried besides 5xx and 429
 *   Base-Url-Override                    another base URL for this request
 *                                        (credentials go there too; the host
 *                                        setting proxy_base_url_override: false
 *                                        refuses it with 400)
 * The query string is forwarded as it came. Other headers of the caller
 * (its Authorization above all) are not forwarded.
 */
#include "api_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "config.h"
#include "credentials.h"
#include "dispatch.h"
#include "generation.h"
#include "hostapi.h"
#include "proxy.h"
#include "util.h"

#define PROXY_PREFIX "/proxy"
#define FORWARD_PREFIX "Nango-Proxy-"
#define FORWARD_MAX 64             /* forwarded headers and query parameters, each */
#define RETRIES_MAX 10

/* What is collected from the HTTP request; strings borrowed from it. */
struct forward {
	struct evs_header headers[FORWARD_MAX + 1];
	size_t n_headers;
	struct evs_header params[FORWARD_MAX];
	size_t n_params;
	bool too_many;
};

static bool collect_header(void *user, const char *name, const char *value)
{
	struct forward *f = user;
	size_t plen = sizeof(FORWARD_PREFIX) - 1;

	if (strncasecmp(name, FORWARD_PREFIX, plen) != 0 || !name[plen])
		return true;
	if (f->n_headers == FORWARD_MAX) {
		f->too_many = true;
		return false;
	}
	f->headers[f->n_headers++] = (struct evs_header){name + plen, value ? value : ""};
	return true;
}

static bool collect_param(void *user, const char *name, const char *value)
{
	struct forward *f = user;

	if (f->n_params == FORWARD_MAX) {
		f->too_many = true;
		return false;
	}
	f->params[f->n_params++] = (struct evs_header){name, value ? value : ""};
	return true;
}

/* Retry-On: "409,423" into codes; false when malformed. */
static bool parse_retry_on(const char *s, int *codes, size_t *n)
{
	*n = 0;
	while (s && *s) {
		int64_t v;
		char num[8];
		size_t len = strcspn(s, ",");

		while (len && *s == ' ')
			s++, len--;
		if (len == 0 || len >= sizeof(num) || *n == PROXY_RETRY_ON_MAX)
			return false;
		memcpy(num, s, len);
		num[len] = '\0';
		while (len && num[len - 1] == ' ')
			num[--len] = '\0';
		if (!api_parse_int(num, 100, 599, &v))
			return false;
		codes[(*n)++] = (int)v;
		s += strcspn(s, ",");
		if (*s == ',')
			s++;
	}
	return true;
}

/* Whether a provider's response header goes back to the caller: not the
 * ones about this hop or the body's encoding (curl decoded it), nor Date
 * (evscriptd's server sends its own). */
static bool passes_back(const char *name)
{
	static const char *const drop[] = {"Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive",
					   "Content-Encoding", "Content-Type", "Upgrade", "Proxy-Connection",
					   "Trailer", "Date", NULL};

	for (size_t i = 0; drop[i]; i++)
		if (strcasecmp(name, drop[i]) == 0)
			return false;
	return true;
}

static int respond_provider(struct http_response *resp, const struct evs_response *r)
{
	const char *ctype = "application/octet-stream";
	size_t sent = 0;

	for (size_t i = 0; i < r->n_headers; i++) {
		const struct evs_header *h = &r->headers[i];

		if (strcasecmp(h->name, "Content-Type") == 0 && h->value && *h->value)
			ctype = h->value;
		else if (passes_back(h->name) && sent < HTTP_MAX_RESPONSE_HEADERS &&
			 http_response_header(resp, h->name, h->value) == 0)
			sent++;
	}
	return http_respond_bytes(resp, (unsigned)r->status, ctype, r->body, r->body_len);
}

/* The error lines hostapi logged while resolving the target, joined. */
static void logged_reason(struct hostapi_exec *x, char *out, size_t outlen)
{
	struct store_log_line_input *lines;
	size_t n, off = 0;
	int64_t dropped;

	out[0] = '\0';
	hostapi_exec_take_logs(x, &lines, &n, &dropped);
	for (size_t i = 0; i < n && off + 1 < outlen; i++)
		off += (size_t)snprintf(out + off, outlen - off, "%s%s", off ? "; " : "", lines[i].message);
	hostapi_logs_free(lines, n);
}

/* The connection's proxy target (its token refreshed first when it needs
 * it); answers and returns NULL when there is none: 404 for an unknown
 * connection, 424 for a failed refresh, 400 with hostapi's reason else. */
static struct proxy_target *resolve_target(struct api_context *ctx, const struct config_host *cfg,
					   const struct config_integration *integ,
					   const struct config_provider *prov, const char *cid,
					   struct http_response *resp)
{
	struct hostapi_exec_info info = {.store = ctx->store, .config = cfg, .integration = integ,
					 .provider = prov, .connection_id = cid,
					 .provider_config_key = integ->id, .script = "proxy"};
	struct hostapi_exec *x = NULL;
	struct proxy_target *t = NULL;
	char reason[1024];
	int ret;

	if (hostapi_exec_new(&info, &x)) {
		http_respond_error(resp, 500, "server_error", "out of memory");
		return NULL;
	}
	ret = hostapi_proxy_target(x, &t);
	if (ret) {
		logged_reason(x, reason, sizeof(reason));
		if (ret == EVS_ENOTFOUND && !reason[0])
			api_respond_unknown_connection(resp, integ->id, cid);
		else if (ret == EVS_EFAILED)
			http_respond_error(resp, 424, "refresh_token_external_error", "%s", reason);
		else
			http_respond_error(resp, 400, "invalid_connection", "%s",
					   reason[0] ? reason : status_str(ret));
	}
	hostapi_exec_free(x);
	return t;
}

/* Applies Base-Url-Override to t: 0, or -1 after answering 400 (refused by
 * the host setting, or not an http(s) URL) or 500. */
static int override_base(struct proxy_target *t, const struct config_host *cfg, const char *override,
			 struct http_response *resp)
{
	char *copy;

	if (!override || !*override)
		return 0;
	if (!cfg->proxy_base_url_override) {
		http_respond_error(resp, 400, "base_url_override_refused",
				   "Base-Url-Override is refused by this host (proxy_base_url_override: false)");
		return -1;
	}
	if (strncmp(override, "http://", 7) != 0 && strncmp(override, "https://", 8) != 0) {
		http_respond_error(resp, 400, "invalid_base_url_override",
				   "Base-Url-Override must be an http:// or https:// URL");
		return -1;
	}
	copy = strdup(override);
	if (!copy) {
		http_respond_error(resp, 500, "server_error", "out of memory");
		return -1;
	}
	sodium_memzero(t->base_url, strlen(t->base_url));
	free(t->base_url);
	t->base_url = copy;
	return 0;
}

/* Sends req through a session on t and answers with what came back. */
static int send_and_answer(const struct config_host *cfg, struct proxy_target *t, struct evs_request *req,
			   const int *retry_on, size_t n_retry_on, struct http_response *resp)
{
	struct proxy_session *s = NULL;
	struct evs_response *r = NULL;
	int ret;

	ret = proxy_session_new(t, util_mono_us() + (int64_t)cfg->deadline_s * 1000000, NULL, NULL, &s);
	if (ret)
		return http_respond_error(resp, 500, "server_error", "out of memory");
	proxy_session_set_retry_on(s, retry_on, n_retry_on);
	ret = proxy_request(s, req, &r);
	if (ret == EVS_EDENIED)
		ret = http_respond_error(resp, 400, "invalid_endpoint",
					"the endpoint is outside the provider's base URL");
	else if (ret == EVS_EINVAL)
		ret = http_respond_error(resp, 400, "invalid_request", "a header or parameter is not valid");
	else if (ret)
		ret = http_respond_error(resp, 502, "proxy_failed", "the provider could not be reached: %s",
					status_str(ret));
	else
		ret = respond_provider(resp, r);
	proxy_response_free(r);
	proxy_session_free(s);
	return ret;
}

static int proxy_route(struct api_context *ctx, struct generation *g, struct http_request *req,
		       struct http_response *resp)
{
	const struct config_host *cfg = generation_config(g);
	const char *cid = http_header(req, "Connection-Id");
	const char *pck = http_header(req, "Provider-Config-Key");
	const char *retries = http_header(req, "Retries");
	const struct config_integration *integ;
	struct proxy_target *t = NULL;
	struct forward f = {0};
	struct evs_request r = {.size = sizeof(r)};
	int retry_on[PROXY_RETRY_ON_MAX];
	size_t n_retry_on = 0, blen = 0;
	int64_t nretries = 0;
	int ret = 0;

	if (!cid || !*cid || !pck || !*pck) {
		ret = http_respond_error(resp, 400, !cid || !*cid ? "missing_connection_id" : "missing_provider_config_key",
					 "the Connection-Id and Provider-Config-Key headers are required");
		goto out;
	}
	if ((retries && *retries && !api_parse_int(retries, 0, RETRIES_MAX, &nretries)) ||
	    !parse_retry_on(http_header(req, "Retry-On"), retry_on, &n_retry_on)) {
		ret = http_respond_error(resp, 400, "invalid_headers",
					 "Retries must be 0 to %d and Retry-On a comma-separated list of HTTP statuses",
					 RETRIES_MAX);
		goto out;
	}
	integ = api_integration(resp, g, pck);
	if (!integ)
		goto out;
	t = resolve_target(ctx, cfg, integ, config_provider_find(cfg->catalogue, integ->provider), cid, resp);
	if (!t || override_base(t, cfg, http_header(req, "Base-Url-Override"), resp) < 0)
		goto out;
	http_each(req, true, collect_header, &f);
	http_each(req, false, collect_param, &f);
	if (f.too_many) {
		ret = http_respond_error(resp, 400, "invalid_request",
					 "at most %d forwarded headers and %d query parameters", FORWARD_MAX, FORWARD_MAX);
		goto out;
	}
	r.body = http_body(req, &blen);
	r.body_len = blen;
	if (blen && http_header(req, "Content-Type"))
		f.headers[f.n_headers++] = (struct evs_header){"Content-Type", http_header(req, "Content-Type")};
	r.method = http_method(req);
	r.endpoint = http_path(req) + sizeof(PROXY_PREFIX) - 1;
	r.headers = f.headers;
	r.n_headers = f.n_headers;
	r.params = f.params;
	r.n_params = f.n_params;
	r.retries = (uint32_t)nretries;
	ret = send_and_answer(cfg, t, &r, retry_on, n_retry_on, resp);
out:
	proxy_target_free(t);
	return ret;
}

API_GENERATION_ROUTE(api_proxy, proxy_route)
