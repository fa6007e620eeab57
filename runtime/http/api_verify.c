/*
 * api_verify.c - proxy.verification on import: before an API_KEY or BASIC
 * connection is stored, evscript makes the provider's verification request
 * with the candidate credentials, as Nango does; when no endpoint answers
 * 2xx the import is refused (400 connection_test_failed) and nothing is
 * stored.
 *
 * The request goes through the proxy engine (runtime/hostapi/proxy.c) with
 * the candidate's target: the provider's base URL (or the verification's
 * base_url_override, a template), its auth headers and query, then the
 * verification's method, headers and data (as JSON), endpoint by endpoint.
 */
#include "api_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "config.h"
#include "hostapi.h"
#include "proxy.h"
#include "util.h"

#define VERIFY_TIMEOUT_MS 15000
#define VERIFY_HEADERS_MAX 32

bool api_verify_needed(const struct config_provider *p, const char *cred_type)
{
	return p && p->verification.present && p->verification.endpoints.n > 0 &&
	       (strcmp(cred_type, "API_KEY") == 0 || strcmp(cred_type, "BASIC") == 0);
}

static const char *config_value(void *ud, const char *name)
{
	struct json_object *cfg = ud, *v;

	if (strncmp(name, "connectionConfig.", 17) != 0 || !cfg ||
	    !json_object_object_get_ex(cfg, name + 17, &v) || !v || json_object_is_type(v, json_type_object) ||
	    json_object_is_type(v, json_type_array))
		return NULL;
	return json_object_get_string(v);
}

/* The candidate's proxy target, base_url_override applied. */
static int candidate_target(const struct config_host *cfg, const struct config_integration *integ,
			    const struct config_provider *p, const char *cid, struct json_object *cand,
			    struct proxy_target **t, char *why, size_t whylen)
{
	struct hostapi_exec_info info = {.config = cfg, .integration = integ, .provider = p, .connection_id = cid,
					 .provider_config_key = integ->id, .script = "verification",
					 .candidate_json = json_object_to_json_string_ext(
						 cand, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)};
	struct hostapi_exec *x = NULL;
	struct json_object *cc = NULL;
	char err[CONFIG_ERR_MAX];
	char *base = NULL;
	int ret;

	*t = NULL;
	if (hostapi_exec_new(&info, &x))
		return STATUS_ENOMEM;
	ret = hostapi_proxy_target(x, t);
	if (ret) {
		struct store_log_line_input *lines;
		size_t n;
		int64_t dropped;

		hostapi_exec_take_logs(x, &lines, &n, &dropped);
		util_set_err(why, whylen, "%s", n ? lines[n - 1].message : status_str(ret));
		hostapi_logs_free(lines, n);
		goto out;
	}
	if (p->verification.base_url_override) {
		json_object_object_get_ex(cand, "connection_config", &cc);
		ret = config_interpolate(p->verification.base_url_override, config_value, cc, &base, err, sizeof(err));
		if (ret) {
			util_set_err(why, whylen, "verification base_url_override: %s", err);
			goto out;
		}
		free((*t)->base_url);
		(*t)->base_url = base;
	}
out:
	if (ret) {
		proxy_target_free(*t);
		*t = NULL;
	}
	hostapi_exec_free(x);
	return ret;
}

/* One endpoint: the status it answered (0: no answer, why set). */
static int try_endpoint(struct proxy_session *s, const struct config_verification *v, const char *endpoint,
			char *why, size_t whylen)
{
	struct evs_header h[VERIFY_HEADERS_MAX];
	struct evs_request r = {.size = sizeof(r), .method = v->method ? v->method : "GET", .endpoint = endpoint,
				.timeout_ms = VERIFY_TIMEOUT_MS};
	struct evs_response *resp = NULL;
	int status, ret;

	for (size_t i = 0; i < v->headers.n && i < VERIFY_HEADERS_MAX; i++)
		h[r.n_headers++] = (struct evs_header){v->headers.items[i].key, v->headers.items[i].value};
	r.headers = h;
	if (v->data && strcmp(r.method, "GET") != 0) {
		r.body = v->data;
		r.body_len = strlen(v->data);
	}
	ret = proxy_request(s, &r, &resp);
	if (ret) {
		util_set_err(why, whylen, "%s %s: %s", r.method, endpoint, status_str(ret));
		return 0;
	}
	status = resp->status;
	util_set_err(why, whylen, "%s %s answered %d", r.method, endpoint, status);
	proxy_response_free(resp);
	return status;
}

int api_verify_connection(const struct config_host *cfg, const struct config_integration *integ,
			  const struct config_provider *p, const char *cid, struct json_object *cand,
			  struct http_response *resp)
{
	const struct config_verification *v = &p->verification;
	struct proxy_target *t = NULL;
	struct proxy_session *s = NULL;
	char why[512] = "";
	int ret;

	ret = candidate_target(cfg, integ, p, cid, cand, &t, why, sizeof(why));
	if (ret == 0)
		ret = proxy_session_new(t, util_mono_us() + (int64_t)VERIFY_TIMEOUT_MS * 1000 * (int64_t)v->endpoints.n,
					NULL, NULL, &s);
	if (ret) {
		http_respond_error(resp, 400, "connection_test_failed",
				   "the credentials could not be checked against provider %s: %s", p->name,
				   why[0] ? why : status_str(ret));
		goto out;
	}
	for (size_t i = 0; i < v->endpoints.n; i++) {
		int status = try_endpoint(s, v, v->endpoints.items[i], why, sizeof(why));

		if (status >= 200 && status < 300)
			goto out; /* passed: ret is 0 */
	}
	ret = 1;
	http_respond_error(resp, 400, "connection_test_failed",
			   "the credentials were refused by provider %s's verification request (%s); nothing was stored",
			   p->name, why);
out:
	proxy_session_free(s);
	proxy_target_free(t);
	return ret ? 1 : 0;
}
