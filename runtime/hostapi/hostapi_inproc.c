/*
 * hostapi_inproc.c - the in-process vtable: struct evs_host for a plugin
 * loaded into the daemon, calling the host functions of hostapi.c
 * directly. Strings handed to the plugin are lent: they live until its
 * next call of the same kind, or the end of the execution
 * (hostapi_inproc_ctx_clear).
 */
#include "hostapi.h"
#include "hostapi_vtable.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* ---------------------------------------------------------------------------
 * The in-process vtable.
 */
static struct hostapi_inproc_ctx *inproc(struct evs_ctx *ctx)
{
	return (struct hostapi_inproc_ctx *)ctx;
}

/* Keeps s until the execution ends and returns it (NULL: not kept, freed). */
static const char *lend(struct hostapi_inproc_ctx *c, char *s)
{
	if (!s)
		return NULL;
	if (c->n_lent == c->cap_lent) {
		size_t cap = c->cap_lent ? c->cap_lent * 2 : 8;
		char **l;

		if (cap > HOSTAPI_LENT_MAX || !(l = realloc(c->lent, cap * sizeof(*l)))) {
			hostapi_secret_free(s);
			return NULL;
		}
		c->lent = l;
		c->cap_lent = cap;
	}
	c->lent[c->n_lent++] = s;
	return s;
}

/* The line of ip_set_error (as_error: the execution's error, at most
 * HOSTAPI_ERROR_MAX bytes) or of ip_log (logged at level). */
static void ip_vsay(struct evs_ctx *ctx, bool as_error, int level, const char *fmt, va_list ap)
{
	char line[HOSTAPI_LOG_LINE_MAX > HOSTAPI_ERROR_MAX ? HOSTAPI_LOG_LINE_MAX : HOSTAPI_ERROR_MAX];

	if (!ctx || !fmt)
		return;
	vsnprintf(line, as_error ? HOSTAPI_ERROR_MAX : HOSTAPI_LOG_LINE_MAX, fmt, ap);
	if (as_error)
		hostapi_set_error(inproc(ctx)->exec, line);
	else
		hostapi_log(inproc(ctx)->exec, level, line);
}

static void ip_log(struct evs_ctx *ctx, enum evs_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ip_vsay(ctx, false, (int)level, fmt, ap);
	va_end(ap);
}

static void ip_set_error(struct evs_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ip_vsay(ctx, true, 0, fmt, ap);
	va_end(ap);
}

/* Lends what a char ** host function returned. */
static int lend_result(struct hostapi_inproc_ctx *c, int ret, char *s, const char **out)
{
	if (ret < 0) {
		hostapi_secret_free(s);
		return ret;
	}
	*out = lend(c, s);
	return *out ? EVS_OK : EVS_ENOMEM;
}

/* A host function without arguments whose string is lent to the plugin. */
static int lend_call(struct evs_ctx *ctx, int (*fn)(struct hostapi_exec *, char **),
		     const char **out)
{
	char *s = NULL;
	int ret;

	if (!ctx || !out)
		return EVS_EINVAL;
	*out = NULL;
	ret = fn(inproc(ctx)->exec, &s);
	return lend_result(inproc(ctx), ret, s, out);
}

static int ip_get_connection(struct evs_ctx *ctx, const char **json)
{
	return lend_call(ctx, hostapi_get_connection, json);
}

static int ip_get_metadata(struct evs_ctx *ctx, const char **json)
{
	return lend_call(ctx, hostapi_get_metadata, json);
}

static int ip_set_metadata(struct evs_ctx *ctx, const char *json)
{
	if (!ctx)
		return EVS_EINVAL;
	return hostapi_set_metadata(inproc(ctx)->exec, json);
}

static int ip_update_metadata(struct evs_ctx *ctx, const char *json)
{
	if (!ctx)
		return EVS_EINVAL;
	return hostapi_update_metadata(inproc(ctx)->exec, json);
}

static int ip_get_env(struct evs_ctx *ctx, const char *name, const char **value)
{
	char *s = NULL;
	int ret;

	if (!ctx || !value)
		return EVS_EINVAL;
	*value = NULL;
	ret = hostapi_get_env(inproc(ctx)->exec, name, &s);
	return lend_result(inproc(ctx), ret, s, value);
}

static int ip_get_webhook_url(struct evs_ctx *ctx, const char **url)
{
	return lend_call(ctx, hostapi_get_webhook_url, url);
}

static int ip_trigger_action(struct evs_ctx *ctx, const char *name, const char *input_json,
			     const char **output_json)
{
	char *s = NULL;
	int ret;

	if (!ctx || !output_json)
		return EVS_EINVAL;
	*output_json = NULL;
	ret = hostapi_trigger_action(inproc(ctx)->exec, name, input_json, &s);
	return lend_result(inproc(ctx), ret, s, output_json);
}

static int ip_trigger_action_for(struct evs_ctx *ctx, const char *connection_id, const char *name,
				 const char *input_json, const char **output_json)
{
	char *s = NULL;
	int ret;

	if (!ctx || !output_json)
		return EVS_EINVAL;
	*output_json = NULL;
	ret = hostapi_trigger_action_for(inproc(ctx)->exec, connection_id, name, input_json, &s);
	return lend_result(inproc(ctx), ret, s, output_json);
}

static int ip_get_token(struct evs_ctx *ctx, const char **token)
{
	return lend_call(ctx, hostapi_get_token, token);
}

static int ip_get_integration(struct evs_ctx *ctx, const char **json)
{
	return lend_call(ctx, hostapi_get_integration, json);
}

static int ip_get_env_all(struct evs_ctx *ctx, const char **json)
{
	return lend_call(ctx, hostapi_get_env_all, json);
}

static int ip_set_action_error(struct evs_ctx *ctx, const char *message, const char *payload_json)
{
	if (!ctx)
		return EVS_EINVAL;
	return hostapi_set_action_error(inproc(ctx)->exec, message, payload_json);
}

static void proxy_log(void *user, int level, const char *msg)
{
	hostapi_log(user, level, msg);
}

static int session(struct hostapi_inproc_ctx *c)
{
	int ret;

	if (c->proxy)
		return EVS_OK;
	if (!c->target) {
		ret = hostapi_proxy_target(c->exec, &c->target);
		if (ret < 0)
			return ret;
	}
	return proxy_session_new(c->target, hostapi_exec_info(c->exec)->deadline_us, proxy_log,
				 c->exec, &c->proxy);
}

static int ip_proxy(struct evs_ctx *ctx, const struct evs_request *req, struct evs_response **resp)
{
	int ret;

	if (!resp)
		return EVS_EINVAL;
	*resp = NULL;
	if (!ctx || !req)
		return EVS_EINVAL;
	ret = session(inproc(ctx));
	if (ret < 0)
		return ret;
	return proxy_request(inproc(ctx)->proxy, req, resp);
}

static void ip_free_response(struct evs_ctx *ctx, struct evs_response *resp)
{
	(void)ctx;
	proxy_response_free(resp);
}

static int ip_paginate(struct evs_ctx *ctx, const struct evs_request *req,
		       const struct evs_paginate_options *opts, evs_page_fn on_page, void *user)
{
	int ret;

	if (!ctx || !req || !on_page)
		return EVS_EINVAL;
	ret = session(inproc(ctx));
	if (ret < 0)
		return ret;
	return proxy_paginate(inproc(ctx)->proxy, req, opts, on_page, user);
}

static const struct evs_host inproc_vtable = HOSTAPI_VTABLE(ip_);

const struct evs_host *hostapi_inproc_vtable(void)
{
	return &inproc_vtable;
}

static void lent_free(void *item)
{
	hostapi_secret_free(*(char **)item);
}

void hostapi_inproc_ctx_clear(struct hostapi_inproc_ctx *c)
{
	if (!c)
		return;
	util_array_free(&c->lent, &c->n_lent, sizeof(*c->lent), lent_free);
	c->cap_lent = 0;
	proxy_session_free(c->proxy);
	proxy_target_free(c->target);
	c->proxy = NULL;
	c->target = NULL;
}
