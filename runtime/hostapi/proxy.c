/*
 * proxy.c - host->proxy() and host->paginate() over libcurl.
 *
 * A request is built from the proxy_target (the provider's API as one
 * connection sees it: base URL, auth headers and query, basic credentials,
 * retry header names, pagination style) and the plugin's evs_request:
 *
 *   URL      base_url + endpoint. The endpoint starts with '/', or is an
 *            absolute URL equal to base_url or starting with base_url + "/".
 *            Anything else, and any "." or ".." path segment (curl would
 *            collapse it and climb out of the base path), is EVS_EDENIED.
 *   query    the request's params, then the target's query (API keys), each
 *            URL-encoded with curl_easy_escape. A request param named like
 *            a target query param is dropped: auth wins.
 *   headers  the target's headers, then the request's. A request header
 *            named like a target header (case-insensitive) replaces it, as
 *            in Nango (a script may send the provider's auth header with a
 *            value of its own); "Authorization" when basic credentials are
 *            set is dropped (curl sends the basic credentials). Header names must be RFC 9110 tokens and values
 *            free of CR, LF and NUL (EVS_EINVAL). A body without a
 *            Content-Type gets "application/json" (Nango's proxy default).
 *   redirects are not followed (credentials must not travel elsewhere): a
 *            3xx comes back to the plugin as is.
 *
 * base_url_override (ABI 1.1) replaces base_url for one request when
 * proxy_override_base() allows it (same scheme, same host or a host of the
 * same parent domain: the credentials go there).
 *
 * Retries (only when req->retries > 0) on network errors, 5xx and 429, the
 * provider's proxy.retry.error_code statuses, the session's Retry-On ones,
 * the request's retry_on ones (ABI 1.1), and a body matching
 * proxy.retry.in_body (proxy_retry.c). The wait before retry n (0-based)
 * is, in order of preference:
 *   - the response's Retry-After (seconds or an HTTP date);
 *   - the time a body matching in_body gives;
 *   - the provider's retry headers: an `after` header (seconds), or, when
 *     no `remaining` header is configured or the response's says "0", an
 *     `at` header (epoch seconds of the reset);
 *   - exponential backoff: 100 ms * 2^n (capped at 10 s), with "equal
 *     jitter": half of it fixed, the other half random. Nango starts at 3 s;
 *     we start lower because scripts run inside a deadline.
 * A wait that would end past the execution's deadline is not taken: the
 * last response is returned (or EVS_ETIMEDOUT after a network error).
 * Each attempt's timeout is req->timeout_ms (default 30 s), never past the
 * deadline.
 *
 * Logging: one line per attempt through the log callback,
 *   "GET https://api.example.com/user -> 200 (12 ms)"
 *   "GET https://api.example.com/user -> 503 (4 ms) (retry 1/3)"
 * The URL is logged without its query string, fragment and userinfo, and
 * every line is scrubbed of every credential of the target (header values,
 * query values, basic credentials, word by word, raw and URL-encoded) in
 * case a provider puts a key in the path.
 *
 * One CURL easy handle per session: curl_easy_reset() between requests
 * keeps its connection cache, so consecutive requests to the same host
 * reuse the TCP (and TLS) connection.
 */
#include "proxy.h"
#include "paginate.h"
#include "proxy_retry.h"
#include "proxy_oauth1.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <sodium.h>

#include "dynbuf.h"
#include "metrics.h"
#include "util.h"

#define PROXY_HEADERS_MAX 256             /* response headers */
#define PROXY_HEADER_BYTES_MAX (256u << 10)
#define PROXY_URL_MAX (64u << 10)
#define PROXY_WAIT_MAX_MS (600 * 1000)    /* Nango's cap on a retry wait */
#define PROXY_LOG_MAX 2048
#define PROXY_SECRET_MIN 6                /* shorter words are not scrubbed */
#define CANCEL_SLICE_MS 50                /* retry waits check for cancellation this often */

struct proxy_session {
	struct proxy_target *t;      /* own deep copy */
	int64_t deadline_us;         /* 0: none */
	proxy_log_fn log;
	void *log_user;
	CURL *curl;
	char errbuf[CURL_ERROR_SIZE];
	bool (*cancelled)(void *user); /* proxy_session_set_cancel; may be NULL */
	void *cancel_user;
	int retry_on[PROXY_RETRY_ON_MAX]; /* proxy_session_set_retry_on */
	size_t n_retry_on;
};

void proxy_session_set_retry_on(struct proxy_session *s, const int *codes, size_t n)
{
	if (!s)
		return;
	if (n > PROXY_RETRY_ON_MAX)
		n = PROXY_RETRY_ON_MAX;
	if (n)
		memcpy(s->retry_on, codes, n * sizeof(*codes));
	s->n_retry_on = n;
}

/* ------------------------------------------------------------------ small helpers */

static void wipe_free(char *s)
{
	if (s) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

static void map_clear(struct config_map *m, bool wipe)
{
	for (size_t i = 0; i < m->n; i++) {
		if (wipe) {
			wipe_free(m->items[i].key);
			wipe_free(m->items[i].value);
		} else {
			free(m->items[i].key);
			free(m->items[i].value);
		}
	}
	free(m->items);
	m->items = NULL;
	m->n = 0;
}

/* An array of n items of size bytes each, grown by one item (the old one is
 * then gone), or NULL when it holds CONFIG_LIST_MAX or memory ran out (the
 * old one is kept). */
static void *grow_by_one(void *items, size_t n, size_t size)
{
	if (n >= CONFIG_LIST_MAX)
		return NULL;
	return realloc(items, (n + 1) * size);
}

/* Appends (key, value) copies to m. */
static int map_add(struct config_map *m, const char *key, const char *value)
{
	struct config_kv *items = grow_by_one(m->items, m->n, sizeof(*items));

	if (!items)
		return EVS_ENOMEM;
	m->items = items;
	items[m->n].key = strdup(key);
	items[m->n].value = strdup(value);
	if (!items[m->n].key || !items[m->n].value) {
		wipe_free(items[m->n].key);
		wipe_free(items[m->n].value);
		return EVS_ENOMEM;
	}
	m->n++;
	return EVS_OK;
}

/* ------------------------------------------------------------------ targets */

/* Frees t and wipes its credentials. NULL is fine. */
void proxy_target_free(struct proxy_target *t)
{
	if (!t)
		return;
	wipe_free(t->base_url); /* may be interpolated from connection config */
	map_clear(&t->headers, true);
	map_clear(&t->query, true);
	wipe_free(t->basic_user);
	wipe_free(t->basic_password);
	free(t->aws_sigv4);
	wipe_free(t->aws_key);
	wipe_free(t->aws_secret);
	wipe_free(t->oauth1.consumer_key);
	wipe_free(t->oauth1.consumer_secret);
	wipe_free(t->oauth1.token);
	wipe_free(t->oauth1.token_secret);
	free(t->oauth1.signature_method);
	free(t->oauth1.realm);
	config_retry_clear(&t->retry);
	config_paginate_clear(&t->paginate);
	free(t);
}


static int oauth1_copy(const struct proxy_oauth1 *src, struct proxy_oauth1 *dst)
{
	const char *const from[] = {src->consumer_key, src->consumer_secret, src->token, src->token_secret,
				    src->signature_method, src->realm};
	char **const to[] = {&dst->consumer_key, &dst->consumer_secret, &dst->token, &dst->token_secret,
			     &dst->signature_method, &dst->realm};

	for (size_t i = 0; i < sizeof(from) / sizeof(from[0]); i++)
		if (from[i] && !(*to[i] = strdup(from[i])))
			return EVS_ENOMEM;
	return EVS_OK;
}

static int target_copy(const struct proxy_target *src, struct proxy_target **out)
{
	struct proxy_target *t;
	int ret = EVS_ENOMEM;

	*out = NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return EVS_ENOMEM;
	t->base_url = strdup(src->base_url);
	if (!t->base_url)
		goto fail;
	/* No trailing '/': base + "/endpoint". */
	for (size_t n = strlen(t->base_url); n > 0 && t->base_url[n - 1] == '/'; n--)
		t->base_url[n - 1] = '\0';
	for (size_t i = 0; i < src->headers.n; i++)
		if (map_add(&t->headers, src->headers.items[i].key, src->headers.items[i].value))
			goto fail;
	for (size_t i = 0; i < src->query.n; i++)
		if (map_add(&t->query, src->query.items[i].key, src->query.items[i].value))
			goto fail;
	if ((src->basic_user && !(t->basic_user = strdup(src->basic_user))) ||
	    (src->basic_password && !(t->basic_password = strdup(src->basic_password))) ||
	    (src->aws_sigv4 && !(t->aws_sigv4 = strdup(src->aws_sigv4))) ||
	    (src->aws_key && !(t->aws_key = strdup(src->aws_key))) ||
	    (src->aws_secret && !(t->aws_secret = strdup(src->aws_secret))))
		goto fail;
	if (oauth1_copy(&src->oauth1, &t->oauth1))
		goto fail;
	if (config_retry_copy(&t->retry, &src->retry))
		goto fail;
	if (paginate_settings_copy(&src->paginate, &t->paginate))
		goto fail;
	*out = t;
	return EVS_OK;
fail:
	proxy_target_free(t);
	return ret;
}

/* ------------------------------------------------------------------ logging */

/* Replaces every occurrence of word in line (in place, NUL-terminated,
 * capacity cap) with "***". */
static void scrub_word(char *line, size_t cap, const char *word, size_t wlen)
{
	char *p = line;

	if (wlen < PROXY_SECRET_MIN)
		return;
	while ((p = memmem(p, strlen(p), word, wlen)) != NULL) {
		size_t tail = strlen(p + wlen);

		if ((size_t)(p - line) + 3 + tail + 1 > cap)
			break;
		memmove(p + 3, p + wlen, tail + 1);
		memcpy(p, "***", 3);
		p += 3;
	}
}

/* Scrubs each whitespace-separated word of secret, raw and URL-encoded. */
static void scrub_secret(struct proxy_session *s, char *line, size_t cap, const char *secret)
{
	const char *w = secret;

	if (!secret)
		return;
	scrub_word(line, cap, secret, strlen(secret));
	while (*w) {
		size_t n;

		while (*w == ' ' || *w == '\t')
			w++;
		n = strcspn(w, " \t");
		if (n >= PROXY_SECRET_MIN) {
			char *enc;

			scrub_word(line, cap, w, n);
			enc = curl_easy_escape(s->curl, w, (int)n);
			if (enc) {
				scrub_word(line, cap, enc, strlen(enc));
				sodium_memzero(enc, strlen(enc));
				curl_free(enc);
			}
		}
		w += n;
	}
}

/* One line of the session's log, with every secret of its target scrubbed
 * (user: the session; the paginate transport's log). */
static void plogv(void *user, int level, const char *fmt, va_list ap)
{
	struct proxy_session *s = user;
	char line[PROXY_LOG_MAX];
	const struct proxy_target *t = s->t;

	if (!s->log)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	for (size_t i = 0; i < t->headers.n; i++)
		scrub_secret(s, line, sizeof(line), t->headers.items[i].value);
	for (size_t i = 0; i < t->query.n; i++)
		scrub_secret(s, line, sizeof(line), t->query.items[i].value);
	scrub_secret(s, line, sizeof(line), t->basic_user);
	scrub_secret(s, line, sizeof(line), t->basic_password);
	scrub_secret(s, line, sizeof(line), t->aws_key);
	scrub_secret(s, line, sizeof(line), t->aws_secret);
	scrub_secret(s, line, sizeof(line), t->oauth1.consumer_secret);
	scrub_secret(s, line, sizeof(line), t->oauth1.token);
	scrub_secret(s, line, sizeof(line), t->oauth1.token_secret);
	s->log(s->log_user, level, line);
	sodium_memzero(line, sizeof(line));
}

static void plog(struct proxy_session *s, int level, const char *fmt, ...) EVS_PRINTF(3, 4);
static void plog(struct proxy_session *s, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	plogv(s, level, fmt, ap);
	va_end(ap);
}

/* The URL for logs: scheme, host, port and path only. malloc'd. */
static char *log_url(const char *url)
{
	CURLU *u = curl_url();
	char *out = NULL, *tmp = NULL;

	if (!u)
		return NULL;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_QUERY, NULL, 0) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_USER, NULL, 0) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_URL, &tmp, 0) == CURLUE_OK)
		out = strdup(tmp);
	curl_free(tmp);
	curl_url_cleanup(u);
	if (!out) {
		/* Not parseable: everything before the query, whatever it is. */
		out = strndup(url, strcspn(url, "?#"));
	}
	return out;
}

/* ------------------------------------------------------------------ sessions */

/* Starts a session for one execution. target is copied (the caller keeps
 * and frees its own); deadline_us is a util_mono_us() time (0: none); log
 * may be NULL. On success *out is owned by the caller (proxy_session_free). */
int proxy_session_new(const struct proxy_target *target, int64_t deadline_us, proxy_log_fn log,
		      void *log_user, struct proxy_session **out)
{
	struct proxy_session *s;
	int ret;

	*out = NULL;
	if (!target || !target->base_url || !*target->base_url)
		return EVS_EINVAL;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return EVS_EHOST;
	s = calloc(1, sizeof(*s));
	if (!s)
		return EVS_ENOMEM;
	ret = target_copy(target, &s->t);
	if (ret)
		goto fail;
	ret = EVS_ENOMEM;
	s->curl = curl_easy_init();
	if (!s->curl)
		goto fail;
	s->deadline_us = deadline_us > 0 ? deadline_us : 0;
	s->log = log;
	s->log_user = log_user;
	*out = s;
	return EVS_OK;
fail:
	proxy_session_free(s);
	return ret;
}

/* Closes the session's connections and wipes its copy of the target. */
void proxy_session_set_cancel(struct proxy_session *s, bool (*cancelled)(void *user), void *user)
{
	if (!s)
		return;
	s->cancelled = cancelled;
	s->cancel_user = user;
}

void proxy_session_free(struct proxy_session *s)
{
	if (!s)
		return;
	if (s->curl)
		curl_easy_cleanup(s->curl);
	proxy_target_free(s->t);
	free(s);
	curl_global_cleanup();
}

/* ------------------------------------------------------------------ responses */

/* Frees a response from proxy_request(): the headers array, each header's
 * name and value, and the body are separate malloc'd blocks. NULL is fine. */
void proxy_response_free(struct evs_response *resp)
{
	if (!resp)
		return;
	for (size_t i = 0; i < resp->n_headers; i++) {
		free((char *)resp->headers[i].name);
		free((char *)resp->headers[i].value);
	}
	free((struct evs_header *)resp->headers);
	free((char *)resp->body);
	free(resp);
}

/* What one attempt collects. */
struct capture {
	struct dynbuf body;     /* capped at PROXY_BODY_MAX */
	bool too_big;
	struct evs_header *hdrs;
	size_t n_hdrs, cap_hdrs, hdr_bytes;
};

static void capture_clear_headers(struct capture *c)
{
	for (size_t i = 0; i < c->n_hdrs; i++) {
		free((char *)c->hdrs[i].name);
		free((char *)c->hdrs[i].value);
	}
	c->n_hdrs = 0;
	c->hdr_bytes = 0;
}

static void capture_free(struct capture *c)
{
	capture_clear_headers(c);
	free(c->hdrs);
	dynbuf_free(&c->body);
	memset(c, 0, sizeof(*c));
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *user)
{
	struct capture *c = user;
	size_t n = size * nmemb;

	if (dynbuf_add(&c->body, data, n)) {
		c->too_big = true; /* past PROXY_BODY_MAX, or out of memory */
		return 0;
	}
	return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *user)
{
	struct capture *c = user;
	size_t n = size * nmemb, nlen, vstart, vend;
	const char *colon;
	char *name, *value;

	if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		/* A new response (after 100 Continue, for instance). */
		capture_clear_headers(c);
		return n;
	}
	colon = memchr(data, ':', n);
	if (!colon || colon == data)
		return n; /* the blank line, or an obsolete folded line */
	if (c->n_hdrs >= PROXY_HEADERS_MAX || c->hdr_bytes + n > PROXY_HEADER_BYTES_MAX) {
		c->too_big = true;
		return 0;
	}
	nlen = (size_t)(colon - data);
	vstart = nlen + 1;
	while (vstart < n && (data[vstart] == ' ' || data[vstart] == '\t'))
		vstart++;
	vend = n;
	while (vend > vstart && (data[vend - 1] == '\r' || data[vend - 1] == '\n' ||
				 data[vend - 1] == ' ' || data[vend - 1] == '\t'))
		vend--;
	if (c->n_hdrs == c->cap_hdrs) {
		size_t cap = c->cap_hdrs ? c->cap_hdrs * 2 : 16;
		struct evs_header *h = realloc(c->hdrs, cap * sizeof(*h));

		if (!h) {
			c->too_big = true;
			return 0;
		}
		c->hdrs = h;
		c->cap_hdrs = cap;
	}
	name = strndup(data, nlen);
	value = strndup(data + vstart, vend - vstart);
	if (!name || !value) {
		free(name);
		free(value);
		c->too_big = true;
		return 0;
	}
	c->hdrs[c->n_hdrs].name = name;
	c->hdrs[c->n_hdrs].value = value;
	c->n_hdrs++;
	c->hdr_bytes += n;
	return n;
}

static const char *header_get(const struct evs_header *h, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(h[i].name, name) == 0)
			return h[i].value;
	return NULL;
}

/* ------------------------------------------------------------------ building requests */

static bool is_tchar(unsigned char ch)
{
	return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static bool valid_header_name(const char *s)
{
	if (!s || !*s)
		return false;
	for (; *s; s++)
		if (!is_tchar((unsigned char)*s))
			return false;
	return true;
}

static bool valid_header_value(const char *s)
{
	return s && !strpbrk(s, "\r\n");
}

/* A request as it is sent, built once and sent once per attempt. */
struct prepared {
	char method[17];
	char *url;                 /* wiped: may carry API keys */
	char *url_for_log;
	struct curl_slist *headers;
	const void *body;
	size_t body_len;
	uint32_t retries;
	uint32_t timeout_ms;
	char *base;                /* base_url_override when allowed, else NULL */
	int retry_on[PROXY_RETRY_ON_MAX];
	size_t n_retry_on;
};

static void slist_wipe_free(struct curl_slist *l)
{
	for (struct curl_slist *p = l; p; p = p->next)
		sodium_memzero(p->data, strlen(p->data));
	curl_slist_free_all(l);
}

static void prepared_clear(struct prepared *p)
{
	wipe_free(p->url);
	free(p->url_for_log);
	free(p->base);
	slist_wipe_free(p->headers);
	memset(p, 0, sizeof(*p));
}

/* URLs and header lines carry API keys: built in wiping buffers of at most
 * PROXY_URL_MAX bytes with the NUL. */
static void secret_buf_init(struct dynbuf *b)
{
	dynbuf_init(b, PROXY_URL_MAX - 1, DYNBUF_WIPE);
}

static int add_header(struct curl_slist **l, const char *name, const char *value)
{
	struct dynbuf b;
	struct curl_slist *n = NULL;
	int ret;

	secret_buf_init(&b);
	if (*value)
		ret = dynbuf_addf(&b, "%s: %s", name, value);
	else
		ret = dynbuf_addf(&b, "%s;", name); /* curl's way to send an empty header */
	if (!ret)
		n = curl_slist_append(*l, dynbuf_str(&b));
	dynbuf_free(&b);
	if (!n)
		return EVS_ENOMEM;
	*l = n;
	return EVS_OK;
}

/* "." or ".." as a segment of the path (before '?' or '#'). */
static bool has_dot_segment(const char *path)
{
	size_t end = strcspn(path, "?#");
	size_t i = 0;

	while (i < end) {
		size_t seg;

		if (path[i] == '/') {
			i++;
			continue;
		}
		seg = strcspn(path + i, "/?#");
		if ((seg == 1 && path[i] == '.') || (seg == 2 && path[i] == '.' && path[i + 1] == '.'))
			return true;
		i += seg;
	}
	return false;
}

/* Appends "?k=v" (the first) or "&k=v", both URL-encoded. EVS_OK or
 * EVS_ENOMEM. */
static int add_query(struct proxy_session *s, struct dynbuf *b, bool *has_query, const char *k,
		     const char *v)
{
	char *ek = curl_easy_escape(s->curl, k, 0), *ev = curl_easy_escape(s->curl, v, 0);
	int ret = EVS_ENOMEM;

	if (ek && ev && dynbuf_addf(b, "%c%s=%s", *has_query ? '&' : '?', ek, ev) == 0) {
		*has_query = true;
		ret = EVS_OK;
	}
	if (ek) {
		sodium_memzero(ek, strlen(ek));
		curl_free(ek);
	}
	if (ev) {
		sodium_memzero(ev, strlen(ev));
		curl_free(ev);
	}
	return ret;
}

/* The method, upper-cased: 1 to 16 letters. */
static int prepare_method(const struct evs_request *r, struct prepared *p)
{
	const char *m = r->method ? r->method : "GET";
	size_t mlen = strlen(m);

	if (mlen == 0 || mlen >= sizeof(p->method))
		return EVS_EINVAL;
	for (size_t i = 0; i < mlen; i++) {
		if (!isalpha((unsigned char)m[i]))
			return EVS_EINVAL;
		p->method[i] = (char)toupper((unsigned char)m[i]);
	}
	return EVS_OK;
}

/* An endpoint without spaces or control characters, and arrays where
 * their counts say there are some. */
static bool request_well_formed(const struct evs_request *r)
{
	if (!r->endpoint || !*r->endpoint)
		return false;
	for (const unsigned char *c = (const unsigned char *)r->endpoint; *c; c++)
		if (*c <= 0x20 || *c == 0x7f)
			return false;
	return !(r->n_params && !r->params) && !(r->n_headers && !r->headers) &&
	       !(r->body_len && !r->body);
}

/* base_url + endpoint, or an absolute endpoint under base_url, into url
 * (a failure to grow is sticky: the caller checks). EVS_EDENIED for any
 * other endpoint and for "." and ".." segments. */
static int url_base(const char *base_url, const char *endpoint, struct dynbuf *url)
{
	size_t base_len = strlen(base_url);

	if (endpoint[0] == '/') {
		if (endpoint[1] == '/')
			return EVS_EDENIED; /* "//host" would be taken for a host by some */
		if (has_dot_segment(endpoint))
			return EVS_EDENIED;
		dynbuf_add_str(url, base_url);
		dynbuf_add_str(url, endpoint);
	} else {
		const char *rest = endpoint + base_len;

		if (strncmp(endpoint, base_url, base_len) != 0 ||
		    (*rest && *rest != '/' && *rest != '?'))
			return EVS_EDENIED;
		if (has_dot_segment(rest))
			return EVS_EDENIED;
		dynbuf_add_str(url, endpoint);
	}
	return EVS_OK;
}

/* p->url: the base and endpoint, the request's params (but those the
 * target's query names: auth wins), then the target's query; and
 * p->url_for_log. */
static int prepare_url(struct proxy_session *s, const struct evs_request *r, struct prepared *p)
{
	const struct proxy_target *t = s->t;
	struct dynbuf url;
	bool has_query;
	int ret;

	secret_buf_init(&url);
	ret = url_base(p->base ? p->base : t->base_url, r->endpoint, &url);
	if (ret)
		goto out;
	has_query = strchr(dynbuf_str(&url), '?') != NULL;
	for (size_t i = 0; i < r->n_params; i++) {
		const struct evs_header *q = &r->params[i];

		if (!q->name || !*q->name || !q->value) {
			ret = EVS_EINVAL;
			goto out;
		}
		if (!config_map_get(&t->query, q->name) && add_query(s, &url, &has_query, q->name, q->value))
			ret = EVS_ENOMEM; /* noted; a bad param after it is still EVS_EINVAL */
	}
	for (size_t i = 0; i < t->query.n; i++)
		if (add_query(s, &url, &has_query, t->query.items[i].key, t->query.items[i].value))
			ret = EVS_ENOMEM;
	/* ownership moves; wiped in prepared_clear */
	if (ret || dynbuf_take(&url, &p->url, NULL)) {
		ret = EVS_ENOMEM;
		goto out;
	}
	p->url_for_log = log_url(p->url);
	if (!p->url_for_log)
		ret = EVS_ENOMEM;
out:
	dynbuf_free(&url);
	return ret;
}

/* Which headers prepare_headers has added that evscript would otherwise
 * add itself. */
struct headers_seen {
	bool content_type;
	bool user_agent;
};

/* Adds the header name: value (EVS_EINVAL unless both are valid). */
static int header_put(struct prepared *p, struct headers_seen *seen, const char *name, const char *value)
{
	int ret;

	if (!valid_header_name(name) || !valid_header_value(value))
		return EVS_EINVAL;
	ret = add_header(&p->headers, name, value);
	if (ret)
		return ret;
	seen->content_type |= strcasecmp(name, "Content-Type") == 0;
	seen->user_agent |= strcasecmp(name, "User-Agent") == 0;
	return EVS_OK;
}

/* A request header that curl's basic auth sets: Authorization with basic
 * credentials. */
static bool auth_header(const struct proxy_target *t, const char *name)
{
	return (t->basic_user || t->aws_sigv4 || t->oauth1.consumer_key) && strcasecmp(name, "Authorization") == 0;
}

/* Whether the request sends a header called name (it replaces the target's). */
static bool request_has_header(const struct evs_request *r, const char *name)
{
	for (size_t i = 0; i < r->n_headers; i++)
		if (r->headers[i].name && strcasecmp(r->headers[i].name, name) == 0)
			return true;
	return false;
}

/* p->headers: the target's, the request's (but those auth sets), then a
 * default Content-Type for a body and User-Agent, and an empty Expect. */
static int prepare_headers(struct proxy_session *s, const struct evs_request *r, struct prepared *p)
{
	const struct proxy_target *t = s->t;
	struct headers_seen seen = {0};
	struct curl_slist *l;
	int ret;

	for (size_t i = 0; i < t->headers.n; i++) {
		if (request_has_header(r, t->headers.items[i].key))
			continue;
		ret = header_put(p, &seen, t->headers.items[i].key, t->headers.items[i].value);
		if (ret)
			return ret;
	}
	for (size_t i = 0; i < r->n_headers; i++) {
		const char *k = r->headers[i].name, *v = r->headers[i].value;

		if (!valid_header_name(k) || !valid_header_value(v))
			return EVS_EINVAL;
		if (auth_header(t, k))
			continue;
		ret = header_put(p, &seen, k, v);
		if (ret)
			return ret;
	}
	if (r->body_len && !seen.content_type &&
	    (ret = add_header(&p->headers, "Content-Type", "application/json")))
		return ret;
	if (!seen.user_agent && (ret = add_header(&p->headers, "User-Agent", "evscript")))
		return ret;
	/* "Name:" with no value makes curl drop its own Expect: 100-continue.
	 * Not with SigV4: libcurl would sign that empty header, which is never
	 * sent, and the signature would not verify. */
	if (t->aws_sigv4)
		return EVS_OK;
	l = curl_slist_append(p->headers, "Expect:");
	if (!l)
		return EVS_ENOMEM;
	p->headers = l;
	return EVS_OK;
}

/* Builds p from r (see the top of this file); the caller clears it with
 * prepared_clear. On failure p is cleared here. */
static int prepare(struct proxy_session *s, const struct evs_request *r, struct prepared *p)
{
	int ret;

	memset(p, 0, sizeof(*p));
	ret = prepare_method(r, p);
	if (ret)
		goto fail;
	ret = EVS_EINVAL;
	if (!request_well_formed(r) || r->n_retry_on > PROXY_RETRY_ON_MAX || (r->n_retry_on && !r->retry_on))
		goto fail;
	p->n_retry_on = r->n_retry_on;
	if (r->n_retry_on)
		memcpy(p->retry_on, r->retry_on, r->n_retry_on * sizeof(*r->retry_on));
	ret = proxy_override_base(s->t->base_url, r->base_url_override, &p->base);
	if (ret)
		goto fail;
	ret = prepare_url(s, r, p);
	if (ret)
		goto fail;
	ret = prepare_headers(s, r, p);
	if (ret)
		goto fail;
	p->body = r->body;
	p->body_len = r->body_len;
	p->retries = r->retries;
	p->timeout_ms = r->timeout_ms ? r->timeout_ms : PROXY_TIMEOUT_MS_DEFAULT;
	return EVS_OK;
fail:
	prepared_clear(p);
	return ret;
}

/* ------------------------------------------------------------------ sending */

/* libcurl's progress callback: non-zero aborts the transfer. */
static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct proxy_session *s = user;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return s->cancelled(s->cancel_user) ? 1 : 0;
}

static int64_t ms_since(int64_t start_us)
{
	return (util_mono_us() - start_us) / 1000;
}

/* p's headers and an OAuth 1.0a Authorization signed for this attempt
 * (a fresh nonce and timestamp each time). *out: the caller frees it
 * (slist_wipe_free). */
static int oauth1_headers(const struct proxy_session *s, const struct prepared *p, struct curl_slist **out)
{
	const struct proxy_oauth1 *o = &s->t->oauth1;
	struct oauth1_keys k = {o->consumer_key, o->consumer_secret, o->token, o->token_secret,
				o->signature_method, o->realm};
	struct curl_slist *l = NULL, *n;
	char *auth = NULL, *line = NULL;
	int ret = proxy_oauth1_header(&k, p->method, p->url, &auth);

	*out = NULL;
	if (ret)
		return ret;
	ret = EVS_ENOMEM;
	if (asprintf(&line, "Authorization: %s", auth) < 0) {
		line = NULL;
		goto out;
	}
	for (const struct curl_slist *h = p->headers; h; h = h->next) {
		n = curl_slist_append(l, h->data);
		if (!n)
			goto out;
		l = n;
	}
	n = curl_slist_append(l, line);
	if (!n)
		goto out;
	*out = l = n;
	ret = EVS_OK;
out:
	if (ret)
		slist_wipe_free(l);
	wipe_free(auth);
	wipe_free(line);
	return ret;
}

/* One attempt. EVS_OK with *resp, or an EVS_E* code (*cc: curl's code). */
static int attempt(struct proxy_session *s, const struct prepared *p, long timeout_ms,
		   struct evs_response **resp, CURLcode *cc)
{
	CURL *c = s->curl;
	struct capture cap = {0};
	struct curl_slist *signed_headers = NULL;
	char *body;
	long status = 0;
	int ret;

	dynbuf_init(&cap.body, PROXY_BODY_MAX, 0);
	*resp = NULL;
	*cc = CURLE_OK;
	if (s->t->oauth1.consumer_key) {
		ret = oauth1_headers(s, p, &signed_headers);
		if (ret)
			goto out;
	}
	curl_easy_reset(c); /* keeps the connection cache */
	s->errbuf[0] = '\0';
	curl_easy_setopt(c, CURLOPT_URL, p->url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, signed_headers ? signed_headers : p->headers);
	curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &cap);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &cap);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, s->errbuf);
	if (s->cancelled) {
		curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(c, CURLOPT_XFERINFODATA, s);
		curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	}
	if (s->t->aws_sigv4) {
		/* libcurl computes Authorization (and X-Amz-Date unless the
		 * request has one) over the request as sent */
		curl_easy_setopt(c, CURLOPT_AWS_SIGV4, s->t->aws_sigv4);
		curl_easy_setopt(c, CURLOPT_USERNAME, s->t->aws_key);
		curl_easy_setopt(c, CURLOPT_PASSWORD, s->t->aws_secret ? s->t->aws_secret : "");
	} else if (s->t->basic_user) {
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(c, CURLOPT_USERNAME, s->t->basic_user);
		curl_easy_setopt(c, CURLOPT_PASSWORD, s->t->basic_password ? s->t->basic_password : "");
	}
	if (strcmp(p->method, "HEAD") == 0) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	} else if (strcmp(p->method, "GET") == 0 && !p->body_len) {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	} else {
		if (strcmp(p->method, "POST") == 0 || p->body_len) {
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)p->body_len);
			curl_easy_setopt(c, CURLOPT_POSTFIELDS, p->body_len ? p->body : "");
		}
		if (strcmp(p->method, "POST") != 0)
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, p->method);
	}

	*cc = curl_easy_perform(c);
	if (*cc != CURLE_OK) {
		metrics_proxy(0);
		if (cap.too_big)
			ret = EVS_ENOMEM;
		else if (*cc == CURLE_OPERATION_TIMEDOUT)
			ret = EVS_ETIMEDOUT;
		else if (*cc == CURLE_OUT_OF_MEMORY)
			ret = EVS_ENOMEM;
		else if (*cc == CURLE_URL_MALFORMAT)
			ret = EVS_EINVAL;
		else if (*cc == CURLE_UNSUPPORTED_PROTOCOL)
			ret = EVS_EDENIED;
		else
			ret = EVS_ENETWORK;
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	metrics_proxy(status);
	ret = EVS_ENOMEM;
	*resp = calloc(1, sizeof(**resp));
	if (!*resp)
		goto out;
	/* an allocated "" when the response had no body */
	if (dynbuf_take(&cap.body, &body, &(*resp)->body_len)) {
		free(*resp);
		*resp = NULL;
		goto out;
	}
	(*resp)->size = sizeof(**resp);
	(*resp)->status = (int)status;
	(*resp)->headers = cap.hdrs;
	(*resp)->n_headers = cap.n_hdrs;
	(*resp)->body = body;
	memset(&cap, 0, sizeof(cap));
	ret = EVS_OK;
out:
	capture_free(&cap);
	slist_wipe_free(signed_headers);
	return ret;
}

static bool retryable(const struct proxy_session *s, int ret, const struct evs_response *r,
		      const struct prepared *p)
{
	if (ret == EVS_ENETWORK || ret == EVS_ETIMEDOUT)
		return true;
	if (ret != EVS_OK)
		return false;
	for (size_t i = 0; i < s->n_retry_on; i++)
		if (r->status == s->retry_on[i])
			return true;
	if (proxy_retry_status_listed(&s->t->retry, r->status) || proxy_retry_in_body(&s->t->retry, r) >= 0)
		return true;
	for (size_t i = 0; i < p->n_retry_on; i++)
		if (r->status == p->retry_on[i])
			return true;
	return r->status >= 500 || r->status == 429;
}

/* A non-negative decimal number of seconds, or -1. */
static int64_t parse_seconds(const char *v)
{
	char *end;
	double d;

	if (!v)
		return -1;
	while (*v == ' ')
		v++;
	if (!isdigit((unsigned char)*v))
		return -1;
	errno = 0;
	d = strtod(v, &end);
	while (*end == ' ')
		end++;
	if (errno || *end || d < 0 || d > 1e12)
		return -1;
	return (int64_t)d;
}

static const char *first_header(const struct evs_response *r, const struct config_strlist *names)
{
	for (size_t i = 0; i < names->n; i++) {
		const char *v = header_get(r->headers, r->n_headers, names->items[i]);

		if (v)
			return v;
	}
	return NULL;
}

/* Milliseconds to wait before retry number n (0-based). */
static int64_t retry_wait_ms(struct proxy_session *s, const struct evs_response *r, uint32_t n)
{
	const struct config_retry *rt = &s->t->retry;
	int64_t base, v;

	if (r) {
		const char *ra = header_get(r->headers, r->n_headers, "Retry-After");

		if (ra) {
			if ((v = parse_seconds(ra)) >= 0)
				return v * 1000;
			time_t when = curl_getdate(ra, NULL);

			if (when != (time_t)-1) {
				v = (int64_t)when * 1000 - util_now_ms();
				return v > 0 ? v : 0;
			}
		}
		if ((v = proxy_retry_in_body(rt, r)) >= 0)
			return v;
		if ((v = parse_seconds(first_header(r, &rt->after))) >= 0)
			return v * 1000;
		if (rt->at.n) {
			const char *rem = first_header(r, &rt->remaining);
			int64_t at = parse_seconds(first_header(r, &rt->at));

			if (at >= 0 && (!rt->remaining.n || (rem && parse_seconds(rem) == 0))) {
				v = at * 1000 - util_now_ms();
				return v > 0 ? v : 0;
			}
		}
	}
	base = PROXY_BACKOFF_BASE_MS << (n < 10 ? n : 10);
	if (base > PROXY_BACKOFF_MAX_MS)
		base = PROXY_BACKOFF_MAX_MS;
	return base / 2 + (int64_t)randombytes_uniform((uint32_t)(base / 2) + 1);
}

static bool cancelled(struct proxy_session *s)
{
	return s->cancelled && s->cancelled(s->cancel_user);
}

/* Sleeps ms, in slices of CANCEL_SLICE_MS when the session can be cancelled. */
static void sleep_ms(struct proxy_session *s, int64_t ms)
{
	while (ms > 0 && !cancelled(s)) {
		int64_t step = s->cancelled && ms > CANCEL_SLICE_MS ? CANCEL_SLICE_MS : ms;
		struct timespec ts = {.tv_sec = step / 1000, .tv_nsec = (step % 1000) * 1000000};

		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
		ms -= step;
	}
}

/* Sends a plugin's request. EVS_OK with *resp (owned by the caller,
 * proxy_response_free) whenever an HTTP response arrived, whatever its
 * status; otherwise an EVS_E* code and *resp NULL. req is only read; its
 * fields past req->size count as zero. */
int proxy_request(struct proxy_session *s, const struct evs_request *req,
		  struct evs_response **resp)
{
	struct evs_request r = {0};
	struct prepared p;
	struct evs_response *last = NULL;
	int ret;

	if (!resp)
		return EVS_EINVAL;
	*resp = NULL;
	if (!s || !req || req->size < offsetof(struct evs_request, params))
		return EVS_EINVAL;
	memcpy(&r, req, req->size < sizeof(r) ? req->size : sizeof(r));
	ret = prepare(s, &r, &p);
	if (ret) {
		plog(s, EVS_LOG_ERROR, "%s %s: refused: %s", r.method ? r.method : "GET",
		     ret == EVS_EDENIED ? "(URL outside the provider's base URL)" : "(request)",
		     status_str(ret));
		return ret;
	}
	for (uint32_t n = 0;; n++) {
		int64_t now = util_mono_us(), start;
		long timeout_ms = (long)p.timeout_ms;
		CURLcode cc;
		char retry_note[48] = "";

		if (cancelled(s)) {
			ret = EVS_ETIMEDOUT;
			plog(s, EVS_LOG_WARN, "%s %s -> cancelled", p.method, p.url_for_log);
			break;
		}
		if (s->deadline_us) {
			int64_t left_ms = (s->deadline_us - now) / 1000;

			if (left_ms <= 0) {
				ret = last ? EVS_OK : EVS_ETIMEDOUT;
				if (!last)
					plog(s, EVS_LOG_WARN, "%s %s -> deadline passed", p.method, p.url_for_log);
				break;
			}
			if (left_ms < timeout_ms)
				timeout_ms = (long)left_ms;
		}
		proxy_response_free(last);
		last = NULL;
		if (n > 0)
			snprintf(retry_note, sizeof(retry_note), " (retry %" PRIu32 "/%" PRIu32 ")", n, p.retries);
		start = util_mono_us();
		ret = attempt(s, &p, timeout_ms, &last, &cc);
		if (ret == EVS_OK)
			plog(s, last->status < 400 ? EVS_LOG_INFO : EVS_LOG_WARN, "%s %s -> %d (%" PRId64 " ms)%s",
			     p.method, p.url_for_log, last->status, ms_since(start), retry_note);
		else
			plog(s, EVS_LOG_WARN, "%s %s -> %s: %s (%" PRId64 " ms)%s", p.method, p.url_for_log,
			     status_str(ret), s->errbuf[0] ? s->errbuf : curl_easy_strerror(cc),
			     ms_since(start), retry_note);
		if (!retryable(s, ret, last, &p) || n >= p.retries)
			break;
		{
			int64_t wait = retry_wait_ms(s, last, n);

			if (wait > PROXY_WAIT_MAX_MS)
				wait = PROXY_WAIT_MAX_MS;
			if (s->deadline_us && util_mono_us() + wait * 1000 >= s->deadline_us) {
				plog(s, EVS_LOG_WARN, "%s %s: no retry, a wait of %" PRId64 " ms would pass the deadline",
				     p.method, p.url_for_log, wait);
				if (ret != EVS_OK)
					ret = EVS_ETIMEDOUT;
				break;
			}
			sleep_ms(s, wait);
		}
	}
	prepared_clear(&p);
	if (ret == EVS_OK)
		*resp = last;
	else
		proxy_response_free(last);
	return ret;
}

/* ------------------------------------------------------------------ pagination */

static int pg_request(void *user, const struct evs_request *req, struct evs_response **resp)
{
	return proxy_request(user, req, resp);
}

static void pg_free_response(void *user, struct evs_response *resp)
{
	(void)user;
	proxy_response_free(resp);
}

int proxy_paginate(struct proxy_session *s, const struct evs_request *req,
		   const struct evs_paginate_options *opts, evs_page_fn on_page, void *user)
{
	struct paginate_transport t = {.request = pg_request, .free_response = pg_free_response,
				       .log = plogv, .user = s};

	if (!s)
		return EVS_EINVAL;
	return paginate_run(&s->t->paginate, &t, req, opts, on_page, user);
}
