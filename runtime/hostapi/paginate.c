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

#define PAGINATE_LOG_MAX 1024

static void pg_log(const struct paginate_transport *t, int level, const char *fmt, ...) EVS_PRINTF(3, 4);
static void pg_log(const struct paginate_transport *t, int level, const char *fmt, ...)
{
	char line[PAGINATE_LOG_MAX];
	va_list ap;

	if (!t->log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	t->log(t->user, level, line);
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
	memset(out, 0, sizeof(*out));
	out->type = src->type;
	for (size_t i = 0; i < CONFIG_PAGINATE_N_FIELDS; i++) {
		const char *v = config_paginate_get(src, i);

		if (v && !(*config_paginate_field(out, i) = strdup(v)))
			return EVS_ENOMEM;
	}
	return EVS_OK;
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

/* The effective pagination settings. */
struct pg {
	enum config_paginate_type type;
	const struct config_paginate *c;
	const char *response_path;
	uint32_t limit;          /* 0: none */
	uint32_t max_pages;
	bool in_body;            /* POST/PUT/PATCH: parameters go in the JSON body */
};

/* Sets name=value among the page's parameters (replacing a request param
 * of the same name) or in the body object. */
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

/* Paginates req in the provider's style (opts override it): calls on_page
 * with each non-empty page's records (a JSON array, lent for the call).
 * Stops on an empty or missing records array, at the last page (no next
 * cursor or link; an offset page shorter than the limit), after max_pages,
 * or when on_page returns non-zero; all of those are EVS_OK. A non-2xx page
 * or a body that is not JSON is EVS_EFAILED (logged); a page whose records
 * are not an array is EVS_EFAILED; proxy_request's errors pass through.
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
	struct evs_request r = {0}, page = {0};
	struct evs_paginate_options o = {0};
	struct pg g = {0};
	struct page_params pp = {0};
	struct json_object *body = NULL, *root = NULL;
	char *cursor = NULL, *next_link = NULL, *body_text = NULL;
	char limit_buf[24], offset_buf[24];
	long long offset = 0;
	uint32_t pages = 0;
	int ret = EVS_EINVAL;

	if (!settings || !t || !t->request || !t->free_response || !req || !on_page || req->size < offsetof(struct evs_request, params))
		return EVS_EINVAL;
	memcpy(&r, req, req->size < sizeof(r) ? req->size : sizeof(r));
	if (opts) {
		if (opts->size < offsetof(struct evs_paginate_options, type) + sizeof(opts->type))
			return EVS_EINVAL;
		memcpy(&o, opts, opts->size < sizeof(o) ? opts->size : sizeof(o));
	}
	g.c = settings;
	g.type = g.c->type;
	if (o.type && config_paginate_type_from_name(o.type, &g.type)) {
		pg_log(t, EVS_LOG_ERROR, "paginate: unknown type \"%.32s\", expected cursor, link or offset", o.type);
		return EVS_EINVAL;
	}
	g.response_path = o.response_path ? o.response_path : g.c->response_path;
	g.limit = o.limit;
	g.max_pages = o.max_pages;
	switch (g.type) {
	case CONFIG_PAGINATE_CURSOR:
		if (!g.c->cursor_name_in_request || !g.c->cursor_path_in_response) {
			pg_log(t, EVS_LOG_ERROR, "paginate: cursor pagination needs the provider's "
					       "cursor_name_in_request and cursor_path_in_response");
			return EVS_EINVAL;
		}
		break;
	case CONFIG_PAGINATE_LINK:
		if (!g.c->link_rel_in_response_header && !g.c->link_path_in_response_body) {
			pg_log(t, EVS_LOG_ERROR, "paginate: link pagination needs the provider's "
					       "link_rel_in_response_header or link_path_in_response_body");
			return EVS_EINVAL;
		}
		break;
	case CONFIG_PAGINATE_OFFSET:
		if (!g.c->offset_name_in_request) {
			pg_log(t, EVS_LOG_ERROR, "paginate: offset pagination needs the provider's "
					       "offset_name_in_request");
			return EVS_EINVAL;
		}
		if (g.c->offset_start_value) {
			char *end;

			offset = strtoll(g.c->offset_start_value, &end, 10);
			if (*end || offset < 0)
				return EVS_EINVAL;
		}
		break;
	default:
		pg_log(t, EVS_LOG_ERROR, "paginate: the provider has no pagination style; pass opts->type");
		return EVS_EINVAL;
	}
	{
		const char *m = r.method ? r.method : "GET";

		g.in_body = strcasecmp(m, "POST") == 0 || strcasecmp(m, "PUT") == 0 ||
			    strcasecmp(m, "PATCH") == 0;
	}
	if (g.limit && !g.c->limit_name_in_request) {
		pg_log(t, EVS_LOG_ERROR, "paginate: a limit needs the provider's limit_name_in_request");
		return EVS_EINVAL;
	}
	if (!g.limit && g.c->limit_name_in_request) {
		/* The request's own limit param counts for the last-page test. */
		for (size_t i = 0; r.params && i < r.n_params; i++)
			if (r.params[i].name && strcmp(r.params[i].name, g.c->limit_name_in_request) == 0 &&
			    r.params[i].value)
				g.limit = (uint32_t)strtoul(r.params[i].value, NULL, 10);
	}
	if (r.n_params && !r.params)
		return EVS_EINVAL;

	if (g.in_body) {
		if (r.body_len) {
			struct json_tokener *tok = json_tokener_new();

			if (!tok)
				return EVS_ENOMEM;
			body = json_tokener_parse_ex(tok, r.body, (int)r.body_len);
			if (json_tokener_get_error(tok) != json_tokener_success)
				body = NULL;
			json_tokener_free(tok);
			if (!json_object_is_type(body, json_type_object)) {
				json_object_put(body);
				pg_log(t, EVS_LOG_ERROR, "paginate: a %s body must be a JSON object", r.method);
				return EVS_EINVAL;
			}
		} else {
			body = json_object_new_object();
			if (!body)
				return EVS_ENOMEM;
		}
	}
	pp.items = calloc(r.n_params + 3, sizeof(*pp.items));
	ret = EVS_ENOMEM;
	if (!pp.items)
		goto out;
	for (size_t i = 0; i < r.n_params; i++)
		pp.items[pp.n++] = r.params[i];
	if (g.limit) {
		snprintf(limit_buf, sizeof(limit_buf), "%" PRIu32, g.limit);
		if (g.in_body)
			body_set(body, g.c->limit_name_in_request, limit_buf, true);
		else
			params_set(&pp, g.c->limit_name_in_request, limit_buf);
	}

	for (;;) {
		struct evs_response *resp = NULL;
		struct json_object *records;
		struct json_tokener *tok;
		size_t n;
		int stop;

		page = r;
		page.size = sizeof(page);
		page.params = pp.items;
		page.n_params = pp.n;
		if (g.type == CONFIG_PAGINATE_OFFSET) {
			snprintf(offset_buf, sizeof(offset_buf), "%lld", offset);
			if (g.in_body)
				body_set(body, g.c->offset_name_in_request, offset_buf, true);
			else
				params_set(&pp, g.c->offset_name_in_request, offset_buf);
			page.n_params = pp.n;
		}
		if (next_link) {
			page.endpoint = next_link;
			page.params = NULL;
			page.n_params = 0;
		}
		if (body) {
			const char *txt = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN);

			free(body_text);
			body_text = strdup(txt ? txt : "{}");
			ret = EVS_ENOMEM;
			if (!body_text)
				goto out;
			page.body = body_text;
			page.body_len = strlen(body_text);
		}
		ret = t->request(t->user, &page, &resp);
		if (ret)
			goto out;
		if (resp->status < 200 || resp->status > 299) {
			pg_log(t, EVS_LOG_ERROR, "paginate: page %" PRIu32 " came back with status %d", pages + 1,
			     resp->status);
			t->free_response(t->user, resp);
			ret = EVS_EFAILED;
			goto out;
		}
		json_object_put(root);
		root = NULL;
		tok = json_tokener_new();
		if (!tok) {
			t->free_response(t->user, resp);
			ret = EVS_ENOMEM;
			goto out;
		}
		root = json_tokener_parse_ex(tok, resp->body, (int)resp->body_len);
		if (json_tokener_get_error(tok) != json_tokener_success) {
			json_object_put(root);
			root = NULL;
			json_tokener_free(tok);
			pg_log(t, EVS_LOG_ERROR, "paginate: page %" PRIu32 " is not JSON", pages + 1);
			ret = EVS_EFAILED;
			goto page_done;
		}
		json_tokener_free(tok);
		records = json_path(root, g.response_path);
		if (!records) {
			ret = EVS_OK; /* nothing more (Nango stops on a missing array) */
			goto page_done;
		}
		if (!json_object_is_type(records, json_type_array)) {
			pg_log(t, EVS_LOG_ERROR, "paginate: page %" PRIu32 ": \"%s\" is not an array", pages + 1,
			     g.response_path ? g.response_path : "");
			ret = EVS_EFAILED;
			goto page_done;
		}
		n = json_object_array_length(records);
		if (n == 0) {
			ret = EVS_OK;
			goto page_done;
		}
		pages++;
		stop = on_page(user, json_object_to_json_string_ext(records, JSON_C_TO_STRING_PLAIN), n);
		ret = EVS_OK;
		if (stop || (g.max_pages && pages >= g.max_pages))
			goto page_done;

		/* The next page. */
		ret = 1; /* "go on" marker */
		switch (g.type) {
		case CONFIG_PAGINATE_CURSOR: {
			struct json_object *cv = json_path(root, g.c->cursor_path_in_response);
			char tmp[32];
			const char *val = NULL;

			if (json_object_is_type(cv, json_type_string)) {
				val = json_object_get_string(cv);
				while (isspace((unsigned char)*val))
					val++;
			} else if (json_object_is_type(cv, json_type_int)) {
				snprintf(tmp, sizeof(tmp), "%" PRId64, json_object_get_int64(cv));
				val = tmp;
			}
			if (!val || !*val) {
				ret = EVS_OK;
				break;
			}
			free(cursor);
			cursor = strdup(val);
			if (!cursor) {
				ret = EVS_ENOMEM;
				break;
			}
			for (size_t l = strlen(cursor); l && isspace((unsigned char)cursor[l - 1]); l--)
				cursor[l - 1] = '\0';
			if (g.in_body)
				body_set(body, g.c->cursor_name_in_request, cursor, false);
			else
				params_set(&pp, g.c->cursor_name_in_request, cursor);
			break;
		}
		case CONFIG_PAGINATE_LINK: {
			char *link = NULL;

			if (g.c->link_rel_in_response_header) {
				for (size_t i = 0; !link && i < resp->n_headers; i++)
					if (strcasecmp(resp->headers[i].name, "Link") == 0)
						link = link_find(resp->headers[i].value,
								 g.c->link_rel_in_response_header);
			} else {
				struct json_object *lv = json_path(root, g.c->link_path_in_response_body);

				if (json_object_is_type(lv, json_type_string) && *json_object_get_string(lv))
					link = strdup(json_object_get_string(lv));
			}
			free(next_link);
			next_link = link;
			if (!link)
				ret = EVS_OK;
			break;
		}
		case CONFIG_PAGINATE_OFFSET:
			if (g.limit && n < g.limit) {
				ret = EVS_OK;
				break;
			}
			if (g.c->offset_calculation_method &&
			    strcmp(g.c->offset_calculation_method, "per-page") == 0)
				offset += 1;
			else
				offset += (long long)n;
			break;
		default:
			ret = EVS_OK;
			break;
		}
page_done:
		t->free_response(t->user, resp);
		if (ret != 1)
			goto out;
	}
out:
	json_object_put(root);
	json_object_put(body);
	free(body_text);
	free(cursor);
	free(next_link);
	free(pp.items);
	return ret;
}
