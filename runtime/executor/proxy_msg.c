/*
 * proxy_msg.c - a proxy call on an exec socket, decoded and answered
 * (proxy_msg.h).
 */
#include "proxy_msg.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* [[name, value], ...] of a proxy message into *out (strings lent from m). */
static int read_pairs(struct json_object *m, const char *k, struct evs_header **out, size_t *n)
{
	struct json_object *a;
	size_t len;

	*out = NULL;
	*n = 0;
	if (!json_object_object_get_ex(m, k, &a) || !a)
		return EVS_OK;
	if (!json_object_is_type(a, json_type_array))
		return EVS_EINVAL;
	len = json_object_array_length(a);
	if (len == 0)
		return EVS_OK;
	if (len > WIRE_PAIRS_MAX)
		return EVS_EINVAL;
	*out = calloc(len, sizeof(**out));
	if (!*out)
		return EVS_ENOMEM;
	for (size_t i = 0; i < len; i++) {
		struct json_object *p = json_object_array_get_idx(a, i), *kk, *vv;

		if (!json_object_is_type(p, json_type_array) || json_object_array_length(p) != 2)
			return EVS_EINVAL;
		kk = json_object_array_get_idx(p, 0);
		vv = json_object_array_get_idx(p, 1);
		if (!json_object_is_type(kk, json_type_string) || !json_object_is_type(vv, json_type_string))
			return EVS_EINVAL;
		(*out)[i].name = json_object_get_string(kk);
		(*out)[i].value = json_object_get_string(vv);
		*n = i + 1;
	}
	return EVS_OK;
}

/* The proxy message's "retry_on" statuses into v (at most
 * WIRE_RETRY_ON_MAX): EVS_OK, or EVS_EINVAL for anything else. */
static int read_retry_on(struct json_object *m, int v[WIRE_RETRY_ON_MAX], size_t *n)
{
	struct json_object *a;

	*n = 0;
	if (!json_object_object_get_ex(m, "retry_on", &a) || !a)
		return EVS_OK;
	if (!json_object_is_type(a, json_type_array) || json_object_array_length(a) > WIRE_RETRY_ON_MAX)
		return EVS_EINVAL;
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		struct json_object *e = json_object_array_get_idx(a, i);

		if (!json_object_is_type(e, json_type_int))
			return EVS_EINVAL;
		v[i] = json_object_get_int(e);
	}
	*n = json_object_array_length(a);
	return EVS_OK;
}

int proxy_call_decode(struct json_object *m, const char *body, size_t body_len,
		      struct proxy_call *c)
{
	int64_t retries = wire_jint(m, "retries"), timeout_ms = wire_jint(m, "timeout_ms");
	int rc;

	memset(c, 0, sizeof(*c));
	c->req.size = sizeof(c->req);
	c->req.method = wire_jstr(m, "method");
	c->req.endpoint = wire_jstr(m, "endpoint");
	c->req.body = body;
	c->req.body_len = body_len;
	c->req.retries = retries < 0 ? 0 : retries > UINT32_MAX ? UINT32_MAX : (uint32_t)retries;
	c->req.timeout_ms = timeout_ms < 0 ? 0
			    : timeout_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)timeout_ms;
	c->req.base_url_override = wire_jstr(m, "base_url_override");
	rc = c->req.endpoint ? EVS_OK : EVS_EINVAL;
	if (rc == EVS_OK)
		rc = read_pairs(m, "params", &c->params, &c->req.n_params);
	if (rc == EVS_OK)
		rc = read_pairs(m, "headers", &c->headers, &c->req.n_headers);
	c->req.params = c->params;
	c->req.headers = c->headers;
	if (rc == EVS_OK)
		rc = read_retry_on(m, c->retry_on, &c->req.n_retry_on);
	c->req.retry_on = c->retry_on;
	return rc;
}

void proxy_call_clear(struct proxy_call *c)
{
	free(c->params);
	free(c->headers);
	memset(c, 0, sizeof(*c));
}

struct json_object *proxy_reply_head(int rc, const struct evs_response *resp)
{
	struct json_object *reply = json_object_new_object(), *ha = json_object_new_array();

	if (!reply || !ha) {
		json_object_put(reply);
		json_object_put(ha);
		return NULL;
	}
	json_object_object_add(reply, "rc", json_object_new_int(rc));
	if (rc != EVS_OK) {
		json_object_put(ha);
		return reply;
	}
	json_object_object_add(reply, "status", json_object_new_int(resp->status));
	for (size_t i = 0; i < resp->n_headers; i++) {
		struct json_object *p = json_object_new_array();

		if (!p)
			continue;
		json_object_array_add(p, json_object_new_string(resp->headers[i].name));
		json_object_array_add(p, json_object_new_string(resp->headers[i].value));
		json_object_array_add(ha, p);
	}
	json_object_object_add(reply, "headers", ha);
	json_object_object_add(reply, "body_len", json_object_new_int64((int64_t)resp->body_len));
	return reply;
}
