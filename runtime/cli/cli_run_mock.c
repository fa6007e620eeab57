/*
 * cli_run_mock.c - `evscript run --record DIR` and `--mock DIR`: the
 * provider's responses saved as files and played back (Nango's `dryrun
 * --save` and mocks).
 *
 * One file per request, DIR/METHOD-ENDPOINT-HASH-N.json, where HASH is a
 * BLAKE2b of the method, endpoint, query parameters and body, and N counts
 * the same request within one run (so a request repeated gets its answers
 * in order). The file is {"request": {"method", "endpoint", "params",
 * "body"}, "response": {"status", "headers": [[name, value], ...],
 * "body"}}: what the plugin sent (never the credentials, which the host
 * adds) and what came back. A replay that finds no file answers the plugin
 * EVS_ENETWORK and says in the log which file it looked for.
 * paginate() runs the daemon's paging logic over these same requests, so
 * each page is one file.
 */
#include "cli_run.h"

#include <errno.h>
#include <json-c/json.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "paginate.h"
#include "proxy.h"
#include "status.h"
#include "util.h"

#define MOCK_FILE_MAX (PROXY_BODY_MAX + (1u << 20))

struct run_seen {
	char key[33];
	unsigned count;
};

static struct run_ctx *rc(struct evs_ctx *ctx)
{
	return (struct run_ctx *)ctx;
}

static void note(struct run_ctx *c, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void note(struct run_ctx *c, int level, const char *fmt, ...)
{
	char line[1200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	hostapi_log(c->inproc.exec, level, line);
}

/* The request as JSON: what identifies it, without credentials. */
static struct json_object *request_json(const struct evs_request *req)
{
	struct json_object *o = json_object_new_object(), *params = json_object_new_array();

	for (size_t i = 0; req->params && i < req->n_params; i++) {
		struct json_object *p = json_object_new_array();

		json_object_array_add(p, json_object_new_string(req->params[i].name ? req->params[i].name : ""));
		json_object_array_add(p, json_object_new_string(req->params[i].value ? req->params[i].value : ""));
		json_object_array_add(params, p);
	}
	json_object_object_add(o, "method", json_object_new_string(req->method ? req->method : "GET"));
	json_object_object_add(o, "endpoint", json_object_new_string(req->endpoint ? req->endpoint : ""));
	json_object_object_add(o, "params", params);
	json_object_object_add(o, "body", json_object_new_string_len(req->body ? req->body : "",
								      req->body ? (int)req->body_len : 0));
	return o;
}

/* DIR/METHOD-ENDPOINT-HASH-N.json for this request, counting it as seen
 * once more. NULL on allocation failure. */
static char *file_for(struct run_ctx *c, const struct evs_request *req)
{
	struct json_object *o = request_json(req);
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	unsigned char hash[16];
	char key[33], slug[61], *path = NULL;
	const char *ep = req->endpoint ? req->endpoint : "";
	struct run_seen *seen = NULL, *grown;
	size_t n = 0;

	crypto_generichash(hash, sizeof(hash), (const unsigned char *)text, strlen(text), NULL, 0);
	sodium_bin2hex(key, sizeof(key), hash, sizeof(hash));
	json_object_put(o);
	for (; *ep && n < sizeof(slug) - 1; ep++)
		if ((*ep >= 'a' && *ep <= 'z') || (*ep >= 'A' && *ep <= 'Z') || (*ep >= '0' && *ep <= '9'))
			slug[n++] = *ep;
		else if (n > 0 && slug[n - 1] != '_')
			slug[n++] = '_';
	slug[n] = '\0';
	for (size_t i = 0; i < c->n_seen && !seen; i++)
		if (strcmp(c->seen[i].key, key) == 0)
			seen = &c->seen[i];
	if (!seen) {
		grown = realloc(c->seen, (c->n_seen + 1) * sizeof(*grown));
		if (!grown)
			return NULL;
		c->seen = grown;
		seen = &c->seen[c->n_seen++];
		memcpy(seen->key, key, sizeof(key));
		seen->count = 0;
	}
	seen->count++;
	if (asprintf(&path, "%s/%s-%s-%.16s-%u.json", c->dir, req->method ? req->method : "GET", slug, key,
		     seen->count) < 0)
		return NULL;
	return path;
}

static const char *or_empty(const char *s)
{
	return s ? s : "";
}

/* A response as the daemon's proxy makes them (separate blocks, freed by
 * proxy_response_free), from a saved {"status", "headers", "body"}. */
static struct evs_response *response_from(struct json_object *r)
{
	struct json_object *status = NULL, *headers = NULL, *body = NULL;
	struct evs_response *resp = calloc(1, sizeof(*resp));
	struct evs_header *h;
	size_t n;

	if (!resp)
		return NULL;
	json_object_object_get_ex(r, "status", &status);
	json_object_object_get_ex(r, "headers", &headers);
	json_object_object_get_ex(r, "body", &body);
	n = json_object_is_type(headers, json_type_array) ? json_object_array_length(headers) : 0;
	resp->size = sizeof(*resp);
	resp->status = json_object_get_int(status);
	resp->body_len = (size_t)json_object_get_string_len(body);
	resp->body = malloc(resp->body_len + 1);
	h = n ? calloc(n, sizeof(*h)) : NULL;
	if (resp->body) {
		memcpy((char *)resp->body, or_empty(json_object_get_string(body)), resp->body_len);
		((char *)resp->body)[resp->body_len] = '\0';
	}
	for (size_t i = 0; h && i < n; i++) {
		struct json_object *pair = json_object_array_get_idx(headers, i);

		h[i].name = strdup(or_empty(json_object_get_string(json_object_array_get_idx(pair, 0))));
		h[i].value = strdup(or_empty(json_object_get_string(json_object_array_get_idx(pair, 1))));
	}
	resp->headers = h;
	resp->n_headers = h ? n : 0;
	if (!resp->body || (n && !h)) {
		proxy_response_free(resp);
		return NULL;
	}
	return resp;
}

static int replay(struct run_ctx *c, const struct evs_request *req, struct evs_response **resp)
{
	struct json_object *doc = NULL, *r = NULL;
	char *path = file_for(c, req), *text = NULL;
	size_t len;
	int ret;

	if (!path)
		return EVS_ENOMEM;
	ret = util_read_file(path, MOCK_FILE_MAX, &text, &len);
	if (ret == 0)
		doc = json_tokener_parse(text);
	if (!json_object_object_get_ex(doc, "response", &r)) {
		c->missing++;
		note(c, EVS_LOG_ERROR, "mock: no recorded response for %s %s: %s %s (record it with --record)",
		     req->method ? req->method : "GET", req->endpoint ? req->endpoint : "", path,
		     ret ? status_str(ret) : "is not a recording");
		ret = EVS_ENETWORK;
	} else {
		*resp = response_from(r);
		ret = *resp ? EVS_OK : EVS_ENOMEM;
		c->replayed++;
		if (ret == EVS_OK)
			note(c, EVS_LOG_INFO, "mock: %s %s -> %d (%s)", req->method ? req->method : "GET",
			     req->endpoint ? req->endpoint : "", (*resp)->status, path);
	}
	json_object_put(doc);
	free(text);
	free(path);
	return ret;
}

static int record(struct run_ctx *c, const struct evs_request *req, const struct evs_response *resp)
{
	struct json_object *doc = json_object_new_object(), *r = json_object_new_object();
	struct json_object *headers = json_object_new_array();
	char *path = file_for(c, req);
	const char *text;
	int ret;

	for (size_t i = 0; i < resp->n_headers; i++) {
		struct json_object *pair = json_object_new_array();

		json_object_array_add(pair, json_object_new_string(resp->headers[i].name));
		json_object_array_add(pair, json_object_new_string(resp->headers[i].value));
		json_object_array_add(headers, pair);
	}
	json_object_object_add(r, "status", json_object_new_int(resp->status));
	json_object_object_add(r, "headers", headers);
	json_object_object_add(r, "body", json_object_new_string_len(resp->body, (int)resp->body_len));
	json_object_object_add(doc, "request", request_json(req));
	json_object_object_add(doc, "response", r);
	text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	ret = path ? util_write_file_atomic(path, text, strlen(text), 0644) : STATUS_ENOMEM;
	if (ret)
		note(c, EVS_LOG_ERROR, "record: %s: %s", path ? path : c->dir, status_str(ret));
	else
		c->recorded++;
	json_object_put(doc);
	free(path);
	return ret;
}

static int run_proxy(struct evs_ctx *ctx, const struct evs_request *req, struct evs_response **resp)
{
	struct run_ctx *c = rc(ctx);
	int ret;

	if (!resp)
		return EVS_EINVAL;
	*resp = NULL;
	if (!req)
		return EVS_EINVAL;
	if (c->mode == RUN_MOCK)
		return replay(c, req, resp);
	ret = hostapi_inproc_vtable()->proxy(ctx, req, resp);
	if (ret == EVS_OK && c->mode == RUN_RECORD)
		record(c, req, *resp);
	return ret;
}

static void run_free_response(struct evs_ctx *ctx, struct evs_response *resp)
{
	(void)ctx;
	proxy_response_free(resp);
}

/* paginate's transport: each page through run_proxy. */
static int page_request(void *user, const struct evs_request *req, struct evs_response **resp)
{
	return run_proxy(user, req, resp);
}

static void page_free(void *user, struct evs_response *resp)
{
	run_free_response(user, resp);
}

static void page_log(void *user, int level, const char *fmt, va_list ap)
{
	char line[HOSTAPI_LOG_LINE_MAX];

	vsnprintf(line, sizeof(line), fmt, ap);
	hostapi_log(rc(user)->inproc.exec, level, line);
}

static int run_paginate(struct evs_ctx *ctx, const struct evs_request *req, const struct evs_paginate_options *opts,
			evs_page_fn on_page, void *user)
{
	struct run_ctx *c = rc(ctx);
	struct paginate_transport t = {page_request, page_free, page_log, ctx};
	int ret;

	if (!req || !on_page)
		return EVS_EINVAL;
	if (!c->target) {
		ret = hostapi_proxy_target(c->inproc.exec, &c->target); /* the provider's paginate settings */
		if (ret < 0)
			return ret;
	}
	return paginate_run(&c->target->paginate, &t, req, opts, on_page, user);
}

void run_host_init(struct evs_host *host, const struct run_ctx *c)
{
	*host = *hostapi_inproc_vtable();
	if (c->mode == RUN_LIVE)
		return;
	host->proxy = run_proxy;
	host->free_response = run_free_response;
	host->paginate = run_paginate;
}

void run_ctx_clear(struct run_ctx *c)
{
	proxy_target_free(c->target);
	free(c->seen);
	c->target = NULL;
	c->seen = NULL;
	c->n_seen = 0;
}
