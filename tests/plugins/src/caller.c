/* caller: sends one request through host->proxy, as the configured
 * environment describes it: CALLER_METHOD (default GET), CALLER_PATH
 * (default /echo), CALLER_BODY (a JSON body; default none) and
 * CALLER_RETRIES (default 0). Logs the status and merges
 * {"call": {"rc", "status", "body"}} into the connection's metadata, the
 * body as a JSON string. Fails when the request got no response. */
#include <evscript/sdk.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

#define BODY_MAX 8192

static const char *env_or(const struct evs_host *host, struct evs_ctx *ctx, const char *name,
			  const char *dflt)
{
	const char *v = NULL;

	return host->get_env(ctx, name, &v) == 0 && v ? v : dflt;
}

/* Writes s (n bytes, at most BODY_MAX) as a JSON string into out (at least
 * 6 * BODY_MAX + 3 bytes). */
static void json_string(char *out, const char *s, size_t n)
{
	char *o = out;

	if (n > BODY_MAX)
		n = BODY_MAX;
	*o++ = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			*o++ = '\\';
			*o++ = (char)c;
		} else if (c < 0x20) {
			o += sprintf(o, "\\u%04x", c);
		} else {
			*o++ = (char)c;
		}
	}
	*o++ = '"';
	*o = '\0';
}

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	const char *body = env_or(host, ctx, "CALLER_BODY", NULL);
	struct evs_header json_type = {"content-type", "application/json"};
	struct evs_request req = {
		.size = sizeof(req),
		.method = env_or(host, ctx, "CALLER_METHOD", "GET"),
		.endpoint = env_or(host, ctx, "CALLER_PATH", "/echo"),
		.headers = body ? &json_type : NULL,
		.n_headers = body ? 1 : 0,
		.body = body,
		.body_len = body ? strlen(body) : 0,
		.retries = (uint32_t)strtoul(env_or(host, ctx, "CALLER_RETRIES", "0"), NULL, 10),
	};
	struct evs_response *resp = NULL;
	char *escaped = NULL, *meta = NULL;
	int rc, ret = 1;

	(void)event;
	rc = host->proxy(ctx, &req, &resp);
	escaped = malloc(6 * BODY_MAX + 3);
	meta = malloc(6 * BODY_MAX + 128);
	if (!escaped || !meta) {
		host->set_error(ctx, "out of memory");
		goto out;
	}
	json_string(escaped, resp ? resp->body : "", resp ? resp->body_len : 0);
	snprintf(meta, 6 * BODY_MAX + 128, "{\"call\":{\"rc\":%d,\"status\":%d,\"body\":%s}}", rc,
		 resp ? resp->status : 0, escaped);
	if (rc != 0) {
		host->set_error(ctx, "%s %s: %s", req.method, req.endpoint, evs_strerror(rc));
		host->update_metadata(ctx, meta);
		goto out;
	}
	host->log(ctx, EVS_LOG_INFO, "%s %s answered %d", req.method, req.endpoint, resp->status);
	rc = host->update_metadata(ctx, meta);
	if (rc != 0) {
		host->set_error(ctx, "update_metadata: %s", evs_strerror(rc));
		goto out;
	}
	ret = 0;
out:
	host->free_response(ctx, resp);
	free(meta);
	free(escaped);
	return ret;
}
