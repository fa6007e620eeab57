/*
 * proxy_msg.h - a proxy call on an exec socket, as the daemon reads it and
 * answers it (wire.h: the "proxy" message, its body as the next raw
 * message, and the reply: {"rc", "status", "headers", "body_len"} and the
 * response body as a raw message when rc is EVS_OK).
 */
#ifndef EVS_PROXY_MSG_H
#define EVS_PROXY_MSG_H

#include <json-c/json.h>
#include <stddef.h>

#include "evscript/sdk.h"
#include "wire.h"

/* A decoded call: req's strings are lent from the message and the body. */
struct proxy_call {
	struct evs_request req;
	struct evs_header *params, *headers; /* owned (proxy_call_clear) */
	int retry_on[WIRE_RETRY_ON_MAX];
};

/* Decodes message m and its body (lent) into *c: EVS_OK, EVS_EINVAL for
 * a malformed call, EVS_ENOMEM. Clear *c with proxy_call_clear either way. */
int proxy_call_decode(struct json_object *m, const char *body, size_t body_len,
		      struct proxy_call *c);
void proxy_call_clear(struct proxy_call *c);

/* The reply's head for rc (and resp when rc is EVS_OK); NULL when out of
 * memory. */
struct json_object *proxy_reply_head(int rc, const struct evs_response *resp);

#endif
