/*
 * paginate.c - the paging logic of host->paginate(), over a transport (see
 * paginate.h). json-c and libc only: it is linked into the small zygote
 * binary (the executor runs it) as well as into the daemon.
 */
#include "paginate.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

static void pg_log(const struct paginate_transport *t, int level, const char *fmt, ...) EVS_PRINTF(3, 4);
static void pg_log(const struct paginate_transport *t, int level, const char *fmt, ...)
{
	va_list ap;

	if (t->log) {
		va_start(ap, fmt);
		t->log(t->user, level, fmt, ap);
		va_end(ap);
	}
}

/* ------------------------------------------------------------------ settings */

struct json_object *paginate_settings_to_json(const struct config_paginate *p)
{
	struct json_object *pg = json_object_new_object();

	if (!pg)
		return NULL;
	json_object_object_add(pg, "type", json_object_new_string(config_paginate_type_name(p->type)));
	for (size_t i = 0; i < CONFIG_PAGINATE_N_FIELDS; i++) {
		const char *v = config_paginate_get(p, i);

		if (v)
			json_object_object_add(pg, config_paginate_fields[i].name, json_object_new_string(v));
	}
	return pg;
}

int paginate_settings_from_json(struct json_object *o, struct config_paginate *out)
{
	struct json_object *v;

	memset(out, 0, sizeof(*out));
	if (!json_object_is_type(o, json_type_object))
		return EVS_EINVAL;
	if (json_object_object_get_ex(o, "type", &v) && v) {
		if (!json_object_is_type(v, json_type_string) ||
		    config_paginate_type_from_name(json_object_get_string(v), &out->type))
			return EVS_EINVAL;
	}
	for (size_t i = 0; i < CONFIG_PAGINATE_N_FIELDS; i++) {
		char **dst = config_paginate_field(out, i);

		if (!json_object_object_get_ex(o, config_paginate_fields[i].name, &v) || !v)
			continue;
		if (!json_object_is_type(v, json_type_string))
			return EVS_EINVAL;
		*dst = strdup(json_object_get_string(v));
		if (!*dst)
			return EVS_ENOMEM;
	}
	return EVS_OK;
}

int paginate_settings_copy(const struct config_paginate *src, struct config_paginate *out)
{
	return config_paginate_copy(out, src) ? EVS_ENOMEM : EVS_OK;
}


/* The value at a dotted path ("data.items", "a.0.b"); the root for "". */
static struct json_object *json_path(struct json_object *root, const char *path)
{
	struct json_object *cur = root;
	const char *p = path;

	if (!path || !*path)
		return root;
	while (cur && *p) {
		size_t n = strcspn(p, ".");
		char key[256];

		if (n >= sizeof(key))
			return NULL;
		memcpy(key, p, n);
		key[n] = '\0';
		if (json_object_is_type(cur, json_type_object)) {
			if (!json_object_object_get_ex(cur, key, &cur))
				return NULL;
		} else if (json_object_is_type(cur, json_type_array) && n > 0 &&
			   strspn(key, "0123456789") == n) {
			cur = json_object_array_get_idx(cur, (size_t)strtoul(key, NULL, 10));
		} else {
			return NULL;
		}
		p += n;
		if (*p == '.')
			p++;
	}
	return cur;
}

/* The URL of the first link with relation rel in a Link header value
 * (RFC 8288: `<url>; rel="next", <url>; rel=last`), malloc'd, or NULL. */
static char *link_find(const char *v, const char *rel)
{
	const char *p = v;

	while (p && *p) {
		const char *url, *url_end;
		bool match = false;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p != '<')
			return NULL;
		url = p + 1;
		url_end = strchr(url, '>');
		if (!url_end)
			return NULL;
		p = url_end + 1;
		/* Parameters up to the next ',' outside quotes. */
		while (*p && *p != ',') {
			const char *name, *val;
			size_t nlen, vlen;

			while (*p == ' ' || *p == '\t' || *p == ';')
				p++;
			if (!*p || *p == ',')
				break;
			name = p;
			nlen = strcspn(p, "=;, \t");
			p += nlen;
			while (*p == ' ' || *p == '\t')
				p++;
			val = "";
			vlen = 0;
			if (*p == '=') {
				p++;
				while (*p == ' ' || *p == '\t')
					p++;
				if (*p == '"') {
					val = ++p;
					while (*p && *p != '"')
						p++;
					vlen = (size_t)(p - val);
					if (*p == '"')
						p++;
				} else {
					val = p;
					vlen = strcspn(p, ";,");
					while (vlen && (val[vlen - 1] == ' ' || val[vlen - 1] == '\t'))
						vlen--;
					p += strcspn(p, ";,");
				}
			}
			if (nlen == 3 && strncasecmp(name, "rel", 3) == 0) {
				/* rel may hold several space-separated types. */
				const char *w = val, *end = val + vlen;

				while (w < end) {
					size_t wl = 0;

					while (w < end && *w == ' ')
						w++;
					while (w + wl < end && w[wl] != ' ')
						wl++;
					if (wl && wl == strlen(rel) && strncasecmp(w, rel, wl) == 0)
						match = true;
					w += wl;
				}
			}
		}
		if (match)
			return strndup(url, (size_t)(url_end - url));
	}
	return NULL;
}

/* The request's parameters for one page: the caller's, then the limit, the
 * offset and the cursor, each replacing a caller's param of its name. */
struct page_params {
	struct evs_header *items;
	size_t n;
};

static void params_set(struct page_params *pp, const char *name, const char *value)
{
	for (size_t i = 0; i < pp->n; i++) {
		if (strcmp(pp->items[i].name, name) == 0) {
			pp->items[i].value = value;
			return;
		}
	}
	pp->items[pp->n].name = name;
	pp->items[pp->n].value = value;
	pp->n++;
}

static void body_set(struct json_object *body, const char *name, const char *value, bool number)
{
	json_object_object_add(body, name,
			       number ? json_object_new_int64(strtoll(value, NULL, 10))
				      : json_object_new_string(value));
}

/* One run of paginate_run: the effective settings, and what moves on from
 * page to page. Everything it points to is freed by run_clear. */
struct run {
	const struct paginate_transport *t;
	const struct config_paginate *c;
	enum config_paginate_type type;
	const char *response_path;
	uint32_t limit;          /* 0: none */
	uint32_t max_pages;      /* 0: no cap */
	uint32_t pages;          /* delivered so far */
	bool in_body;            /* POST/PUT/PATCH: parameters go in the JSON body */
	struct evs_request req;  /* the caller's, copied */
	struct page_params pp;   /* req's params plus ours; borrows their strings */
	struct json_object *body;  /* in_body: the body object */
	char *body_text;         /* body, serialised for the current page */
	char *cursor;            /* cursor: the value sent with the next page */
	char *next_link;         /* link: the next page's URL; NULL for the first */
	long long offset;        /* offset: sent with the next page */
	char limit_buf[24], offset_buf[24];
};

/* One fetched page: the response, its JSON and the records array in it. */
struct page {
	struct evs_response *resp;
	struct json_object *root;
	struct json_object *records;   /* borrowed from root */
	size_t n;                      /* records; 0: the run is over */
};

/* Sets name=value among the page's parameters, or in the body object. */
static void param_put(struct run *g, const char *name, const char *value, bool number)
{
	if (g->in_body)
		body_set(g->body, name, value, number);
	else
		params_set(&g->pp, name, value);
}

/* Parses len bytes of s into *out (NULL for a JSON null): EVS_OK,
 * EVS_EINVAL if it is not JSON (*out NULL), EVS_ENOMEM. */
static int json_parse(const char *s, size_t len, struct json_object **out)
{
	struct json_tokener *tok = json_tokener_new();
	int ret = EVS_OK;

	*out = NULL;
	if (!tok)
		return EVS_ENOMEM;
	*out = json_tokener_parse_ex(tok, s, (int)len);
	if (json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(*out);
		*out = NULL;
		ret = EVS_EINVAL;
	}
	json_tokener_free(tok);
	return ret;
}

/* ------------------------------------------------------------ paging styles */

/* Each style's next page, after a delivered one: *more says whether there
 * is one; EVS_OK, or EVS_ENOMEM. */

/* Cursor: the value at cursor_path_in_response (a string, trimmed, or an
 * integer) goes out as cursor_name_in_request; none or empty ends the run. */
static int cursor_next(struct run *g, const struct page *p, bool *more)
{
	struct json_object *cv = json_path(p->root, g->c->cursor_path_in_response);
	const char *val = NULL;
	char tmp[32];

	*more = false;
	if (json_object_is_type(cv, json_type_string)) {
		val = json_object_get_string(cv);
		while (isspace((unsigned char)*val))
			val++;
	} else if (json_object_is_type(cv, json_type_int)) {
		snprintf(tmp, sizeof(tmp), "%" PRId64, json_object_get_int64(cv));
		val = tmp;
	}
	if (!val || !*val)
		return EVS_OK;
	free(g->cursor);
	g->cursor = strdup(val);
	if (!g->cursor)
		return EVS_ENOMEM;
	for (size_t l = strlen(g->cursor); l && isspace((unsigned char)g->cursor[l - 1]); l--)
		g->cursor[l - 1] = '\0';
	param_put(g, g->c->cursor_name_in_request, g->cursor, false);
	*more = true;
	return EVS_OK;
}

/* Link: the Link header's link_rel_in_response_header, or the URL at
 * link_path_in_response_body; none ends the run. */
static int link_next(struct run *g, const struct page *p, bool *more)
{
	char *link = NULL;

	if (g->c->link_rel_in_response_header) {
		for (size_t i = 0; !link && i < p->resp->n_headers; i++)
			if (strcasecmp(p->resp->headers[i].name, "Link") == 0)
				link = link_find(p->resp->headers[i].value, g->c->link_rel_in_response_header);
	} else {
		struct json_object *lv = json_path(p->root, g->c->link_path_in_response_body);

		if (json_object_is_type(lv, json_type_string) && *json_object_get_string(lv))
			link = strdup(json_object_get_string(lv));
	}
	free(g->next_link);
	g->next_link = link;
	*more = link != NULL;
	return EVS_OK;
}

/* Offset: a page shorter than the limit is the last; otherwise the offset
 * moves by one ("per-page") or by the page's record count. */
static int offset_next(struct run *g, const struct page *p, bool *more)
{
	*more = !(g->limit && p->n < g->limit);
	if (!*more)
		return EVS_OK;
	if (g->c->offset_calculation_method && strcmp(g->c->offset_calculation_method, "per-page") == 0)
		g->offset += 1;
	else
		g->offset += (long long)p->n;
	return EVS_OK;
}

static bool cursor_ready(const struct config_paginate *c)
{
	return c->cursor_name_in_request && c->cursor_path_in_response;
}

static bool link_ready(const struct config_paginate *c)
{
	return c->link_rel_in_response_header || c->link_path_in_response_body;
}

static bool offset_ready(const struct config_paginate *c)
{
	return c->offset_name_in_request;
}

/* By enum config_paginate_type; CONFIG_PAGINATE_NONE has no row. */
static const struct style {
	bool (*ready)(const struct config_paginate *c);  /* has the provider what it needs? */
	const char *needs;                               /* if not, the log line */
	int (*next)(struct run *g, const struct page *p, bool *more);
} styles[] = {
	[CONFIG_PAGINATE_CURSOR] = {cursor_ready, "paginate: cursor pagination needs the provider's "
			"cursor_name_in_request and cursor_path_in_response", cursor_next},
	[CONFIG_PAGINATE_LINK] = {link_ready, "paginate: link pagination needs the provider's "
			"link_rel_in_response_header or link_path_in_response_body", link_next},
	[CONFIG_PAGINATE_OFFSET] = {offset_ready, "paginate: offset pagination needs the provider's "
			"offset_name_in_request", offset_next},
};

/* ------------------------------------------------------------------- set-up */

/* The style (opts->type, else the provider's), checked against the
 * provider's settings, and the offset's start value. */
static int style_choose(struct run *g, const struct evs_paginate_options *o)
{
	g->type = g->c->type;
	if (o->type && config_paginate_type_from_name(o->type, &g->type)) {
		pg_log(g->t, EVS_LOG_ERROR, "paginate: unknown type \"%.32s\", expected cursor, link or offset",
		       o->type);
		return EVS_EINVAL;
	}
	if ((size_t)g->type >= sizeof(styles) / sizeof(styles[0]) || !styles[g->type].ready) {
		pg_log(g->t, EVS_LOG_ERROR, "paginate: the provider has no pagination style; pass opts->type");
		return EVS_EINVAL;
	}
	if (!styles[g->type].ready(g->c)) {
		pg_log(g->t, EVS_LOG_ERROR, "%s", styles[g->type].needs);
		return EVS_EINVAL;
	}
	if (g->type == CONFIG_PAGINATE_OFFSET && g->c->offset_start_value) {
		char *end;

		g->offset = strtoll(g->c->offset_start_value, &end, 10);
		if (*end || g->offset < 0)
			return EVS_EINVAL;
	}
	return EVS_OK;
}

/* The page size: opts->limit (which needs limit_name_in_request), else the
 * request's own limit param, which still counts for the last-page test. */
static int limit_choose(struct run *g, const struct evs_paginate_options *o)
{
	const char *name = g->c->limit_name_in_request;

	g->limit = o->limit;
	if (g->limit && !name) {
		pg_log(g->t, EVS_LOG_ERROR, "paginate: a limit needs the provider's limit_name_in_request");
		return EVS_EINVAL;
	}
	if (!g->limit && name) {
		for (size_t i = 0; g->req.params && i < g->req.n_params; i++)
			if (g->req.params[i].name && strcmp(g->req.params[i].name, name) == 0 &&
			    g->req.params[i].value)
				g->limit = (uint32_t)strtoul(g->req.params[i].value, NULL, 10);
	}
	return EVS_OK;
}

/* in_body: the request's body as the object the parameters go into. */
static int body_start(struct run *g)
{
	int ret;

	if (!g->in_body)
		return EVS_OK;
	if (!g->req.body_len) {
		g->body = json_object_new_object();
		return g->body ? EVS_OK : EVS_ENOMEM;
	}
	ret = json_parse(g->req.body, g->req.body_len, &g->body);
	if (ret == EVS_ENOMEM)
		return ret;
	if (!json_object_is_type(g->body, json_type_object)) {
		pg_log(g->t, EVS_LOG_ERROR, "paginate: a %s body must be a JSON object", g->req.method);
		return EVS_EINVAL;
	}
	return EVS_OK;
}

/* The caller's params, room for the limit, the offset and the cursor, and
 * the limit. */
static int params_start(struct run *g)
{
	g->pp.items = calloc(g->req.n_params + 3, sizeof(*g->pp.items));
	if (!g->pp.items)
		return EVS_ENOMEM;
	for (size_t i = 0; i < g->req.n_params; i++)
		g->pp.items[g->pp.n++] = g->req.params[i];
	if (g->limit) {
		snprintf(g->limit_buf, sizeof(g->limit_buf), "%" PRIu32, g->limit);
		param_put(g, g->c->limit_name_in_request, g->limit_buf, true);
	}
	return EVS_OK;
}

static bool method_has_body(const char *method)
{
	const char *m = method ? method : "GET";

	return strcasecmp(m, "POST") == 0 || strcasecmp(m, "PUT") == 0 || strcasecmp(m, "PATCH") == 0;
}

/* Checks the arguments and settles the run's settings. */
static int run_start(struct run *g, const struct config_paginate *settings,
		     const struct paginate_transport *t, const struct evs_request *req,
		     const struct evs_paginate_options *opts)
{
	struct evs_paginate_options o = {0};
	int ret;

	if (!settings || !t || !t->request || !t->free_response || !req ||
	    req->size < offsetof(struct evs_request, params))
		return EVS_EINVAL;
	memcpy(&g->req, req, req->size < sizeof(g->req) ? req->size : sizeof(g->req));
	if (opts) {
		if (opts->size < offsetof(struct evs_paginate_options, type) + sizeof(opts->type))
			return EVS_EINVAL;
		memcpy(&o, opts, opts->size < sizeof(o) ? opts->size : sizeof(o));
	}
	g->t = t;
	g->c = settings;
	g->response_path = o.response_path ? o.response_path : g->c->response_path;
	g->max_pages = o.max_pages;
	ret = style_choose(g, &o);
	if (ret)
		return ret;
	g->in_body = method_has_body(g->req.method);
	ret = limit_choose(g, &o);
	if (ret)
		return ret;
	if (g->req.n_params && !g->req.params)
		return EVS_EINVAL;
	ret = body_start(g);
	if (ret)
		return ret;
	return params_start(g);
}

static void run_clear(struct run *g)
{
	json_object_put(g->body);
	util_free_all(g->body_text, g->cursor, g->next_link, g->pp.items);
}

/* ------------------------------------------------------------------ a page */

/* The next page's request: the caller's, with this run's parameters (none
 * when following a link) and body. */
static int page_request(struct run *g, struct evs_request *page)
{
	*page = g->req;
	page->size = sizeof(*page);
	if (g->type == CONFIG_PAGINATE_OFFSET) {
		snprintf(g->offset_buf, sizeof(g->offset_buf), "%lld", g->offset);
		param_put(g, g->c->offset_name_in_request, g->offset_buf, true);
	}
	page->params = g->pp.items;
	page->n_params = g->pp.n;
	if (g->next_link) {
		page->endpoint = g->next_link;
		page->params = NULL;
		page->n_params = 0;
	}
	if (g->body) {
		const char *txt = json_object_to_json_string_ext(g->body, JSON_C_TO_STRING_PLAIN);

		free(g->body_text);
		g->body_text = strdup(txt ? txt : "{}");
		if (!g->body_text)
			return EVS_ENOMEM;
		page->body = g->body_text;
		page->body_len = strlen(g->body_text);
	}
	return EVS_OK;
}

/* Fetches the next page into p (released by page_release, also on
 * failure): EVS_OK with p->n records, 0 when the records array is missing
 * or empty (Nango stops there); EVS_EFAILED for a non-2xx page, a body
 * that is not JSON or records that are not an array; the transport's
 * errors. */
static int page_fetch(struct run *g, struct page *p)
{
	struct evs_request req;
	struct evs_response *resp = NULL;
	uint32_t no = g->pages + 1;
	int ret;

	ret = page_request(g, &req);
	if (ret)
		return ret;
	ret = g->t->request(g->t->user, &req, &resp);
	if (ret)
		return ret;
	p->resp = resp;
	if (resp->status < 200 || resp->status > 299) {
		pg_log(g->t, EVS_LOG_ERROR, "paginate: page %" PRIu32 " came back with status %d", no,
		       resp->status);
		return EVS_EFAILED;
	}
	ret = json_parse(resp->body, resp->body_len, &p->root);
	if (ret == EVS_EINVAL) {
		pg_log(g->t, EVS_LOG_ERROR, "paginate: page %" PRIu32 " is not JSON", no);
		return EVS_EFAILED;
	}
	if (ret)
		return ret;
	p->records = json_path(p->root, g->response_path);
	if (p->records && !json_object_is_type(p->records, json_type_array)) {
		pg_log(g->t, EVS_LOG_ERROR, "paginate: page %" PRIu32 ": \"%s\" is not an array", no,
		       g->response_path ? g->response_path : "");
		return EVS_EFAILED;
	}
	p->n = p->records ? json_object_array_length(p->records) : 0;
	return EVS_OK;
}

/* Hands p's records to on_page: true if the caller wants the next page
 * (on_page returned 0 and max_pages is not reached). */
static bool page_deliver(struct run *g, const struct page *p, evs_page_fn on_page, void *user)
{
	g->pages++;
	if (on_page(user, json_object_to_json_string_ext(p->records, JSON_C_TO_STRING_PLAIN), p->n))
		return false;
	return !(g->max_pages && g->pages >= g->max_pages);
}

static void page_release(struct run *g, struct page *p)
{
	json_object_put(p->root);
	if (p->resp)
		g->t->free_response(g->t->user, p->resp);
}

/* Paginates req in the provider's style (opts override it): see paginate.h.
 *
 * Nango's semantics: cursor sends cursor_name_in_request=<the value at
 * cursor_path_in_response>; link follows the Link header's rel (or the URL
 * at link_path_in_response_body) and drops the request's params; offset
 * sends offset_name_in_request starting at offset_start_value (default 0)
 * and advances by the page's record count ("by-response-size", the
 * default) or by one ("per-page": a page number). For POST, PUT and PATCH
 * the parameters go into the JSON body object instead of the query. */
int paginate_run(const struct config_paginate *settings, const struct paginate_transport *t,
		 const struct evs_request *req, const struct evs_paginate_options *opts,
		 evs_page_fn on_page, void *user)
{
	struct run g = {0};
	bool more = true;
	int ret = EVS_EINVAL;

	if (on_page)
		ret = run_start(&g, settings, t, req, opts);
	while (!ret && more) {
		struct page p = {0};

		more = false;
		ret = page_fetch(&g, &p);
		if (!ret && p.n > 0 && page_deliver(&g, &p, on_page, user))
			ret = styles[g.type].next(&g, &p, &more);
		page_release(&g, &p);
	}
	run_clear(&g);
	return ret;
}
