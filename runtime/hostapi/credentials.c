/*
 * credentials.c - hostapi_connection_fresh(): OAuth2 refresh and the
 * client-credentials grant (the contract is credentials.h).
 *
 * Steps of one call:
 *   1. read the connection; if its credentials need nothing, return them;
 *   2. take the connection's lock and read it again (another caller may
 *      have refreshed it while we waited);
 *   3. if it still needs it: build the grant's form, POST it to the token
 *      URL (through a proxy session: same libcurl rules, no redirects),
 *      and merge the token response into the credentials;
 *   4. write the credentials (new tokens, or the old ones with a
 *      refresh_error), unlock, and return the connection or the error.
 */
#include "credentials.h"
#include "hostapi.h"
#include "proxy.h"
#include "proxy_oauth1.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <sodium.h>

#include "dynbuf.h"
#include "log.h"
#include "util.h"

#define FORM_MAX (64u << 10)
#define CRED_EXPIRES_IN_MAX_S (10LL * 365 * 86400) /* a provider's expires_in, capped */
#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

enum need { NEED_NOTHING, NEED_REFRESH, NEED_CC };

/* ------------------------------------------------------------ helpers */

bool credentials_oauth1_supported(const char *signature_method)
{
	return proxy_oauth1_supported(signature_method) != 0;
}

int64_t credentials_parse_time(const char *s)
{
	struct tm tm;
	const char *p;
	int64_t ms = 0, off = 0;
	time_t t;

	if (!s)
		return -1;
	memset(&tm, 0, sizeof(tm));
	p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		p = strptime(s, "%Y-%m-%d %H:%M:%S", &tm);
	if (!p)
		return -1;
	if (*p == '.') {
		int digits = 0;

		for (p++; *p >= '0' && *p <= '9'; p++, digits++)
			if (digits < 3)
				ms = ms * 10 + (*p - '0');
		for (; digits < 3; digits++)
			ms *= 10;
	}
	if (*p == '+' || *p == '-') {
		int hh = 0, mm = 0;

		if (sscanf(p + 1, "%2d:%2d", &hh, &mm) < 1 && sscanf(p + 1, "%2d%2d", &hh, &mm) < 1)
			return -1;
		off = (int64_t)(hh * 60 + mm) * 60 * (*p == '+' ? 1 : -1);
	} else if (*p && strcmp(p, "Z") != 0) {
		return -1;
	}
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	return ((int64_t)t - off) * 1000 + ms;
}

static const char *str_of(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* What the credentials need now. */
static enum need need_of(struct json_object *cred, bool force, int64_t now_ms)
{
	const char *type = str_of(cred, "type");
	const char *exp = str_of(cred, "expires_at");
	int64_t at = exp ? credentials_parse_time(exp) : -1;
	bool soon = at >= 0 && at - now_ms < (int64_t)CRED_REFRESH_MARGIN_S * 1000;

	if (!type)
		return NEED_NOTHING;
	if (strcmp(type, "OAUTH2") == 0)
		return force || soon ? NEED_REFRESH : NEED_NOTHING;
	if (strcmp(type, "OAUTH2_CC") == 0)
		return force || soon || !str_of(cred, "token") ? NEED_CC : NEED_NOTHING;
	return NEED_NOTHING;
}

/* ------------------------------------------------------------ the grant */

/* One form field, appended URL-encoded. */
static void form_add(struct dynbuf *f, const char *k, const char *v)
{
	char *ek = curl_easy_escape(NULL, k, 0), *ev = curl_easy_escape(NULL, v, 0);

	if (ek && ev) {
		if (dynbuf_len(f))
			dynbuf_add_str(f, "&");
		dynbuf_add_str(f, ek);
		dynbuf_add_str(f, "=");
		dynbuf_add_str(f, ev);
	} else {
		dynbuf_add_str(f, "\x01"); /* poisons the form: checked by the caller */
	}
	if (ev)
		sodium_memzero(ev, strlen(ev));
	curl_free(ek);
	curl_free(ev);
}

/* How a grant's fields travel: Nango's body_format (form, json, query). */
enum grant_format { GRANT_FORM, GRANT_JSON, GRANT_QUERY };

/* What a grant sends: its fixed fields, then the provider's params (a
 * param named like a fixed field replaces it). */
struct grant {
	const char *url;
	const char *fields[4][2];          /* NULL-terminated by name */
	const struct config_map *params;
	const char *client_id, *client_secret;
	bool basic;                        /* client in HTTP basic auth, not the fields */
	enum grant_format format;
};

#define GRANT_FIELDS_MAX 64

/* The grant's fields, in order, into kv (n of them). */
static size_t grant_fields(const struct grant *g, struct evs_header kv[GRANT_FIELDS_MAX])
{
	size_t n = 0;

	for (size_t i = 0; i < 4 && g->fields[i][0]; i++)
		if (!g->params || !config_map_get(g->params, g->fields[i][0]))
			kv[n++] = (struct evs_header){g->fields[i][0], g->fields[i][1]};
	if (!g->basic) {
		kv[n++] = (struct evs_header){"client_id", g->client_id};
		kv[n++] = (struct evs_header){"client_secret", g->client_secret};
	}
	for (size_t i = 0; g->params && i < g->params->n && n < GRANT_FIELDS_MAX; i++)
		kv[n++] = (struct evs_header){g->params->items[i].key, g->params->items[i].value};
	return n;
}

/* The body of a form or JSON grant into b; its Content-Type into *ctype. */
static int grant_body(const struct grant *g, const struct evs_header *kv, size_t n, struct dynbuf *b,
		      const char **ctype)
{
	struct json_object *o;
	const char *text;
	int ret;

	if (g->format == GRANT_FORM) {
		*ctype = "application/x-www-form-urlencoded";
		for (size_t i = 0; i < n; i++)
			form_add(b, kv[i].name, kv[i].value);
		return strchr(dynbuf_str(b), '\x01') ? EVS_ENOMEM : EVS_OK;
	}
	*ctype = "application/json";
	o = json_object_new_object();
	for (size_t i = 0; o && i < n; i++)
		json_object_object_add(o, kv[i].name, json_object_new_string(kv[i].value));
	text = o ? json_object_to_json_string_ext(o, JSON_FLAGS) : NULL;
	ret = text && dynbuf_add_str(b, text) == 0 ? EVS_OK : EVS_ENOMEM;
	hostapi_json_put_secret(o);
	return ret;
}

/* POSTs the grant; *resp is the token response object (put_secret it). */
static int grant_send(const struct grant *g, struct json_object **resp, char *err, size_t errlen)
{
	struct proxy_target t = {0};
	struct proxy_session *s = NULL;
	struct evs_response *r = NULL;
	struct evs_header kv[GRANT_FIELDS_MAX];
	struct dynbuf body;
	struct evs_header hdrs[] = {{"Content-Type", NULL}, {"Accept", "application/json"}};
	struct evs_request req = {.size = sizeof(req), .method = "POST", .headers = hdrs, .n_headers = 2,
				  .timeout_ms = CRED_TOKEN_TIMEOUT_MS};
	size_t n = grant_fields(g, kv);
	int ret = EVS_OK;

	*resp = NULL;
	dynbuf_init(&body, FORM_MAX, DYNBUF_WIPE);
	if (g->format == GRANT_QUERY) {
		req.params = kv; /* the proxy encodes them into the URL */
		req.n_params = n;
		req.headers = &hdrs[1];
		req.n_headers = 1;
	} else {
		ret = grant_body(g, kv, n, &body, &hdrs[0].value);
		req.body = dynbuf_str(&body);
		req.body_len = dynbuf_len(&body);
	}
	if (ret) {
		util_set_err(err, errlen, "out of memory building the token request");
		goto out;
	}
	t.base_url = (char *)g->url;
	t.basic_user = g->basic ? (char *)g->client_id : NULL;
	t.basic_password = g->basic ? (char *)g->client_secret : NULL;
	ret = proxy_session_new(&t, util_mono_us() + (int64_t)CRED_TOKEN_TIMEOUT_MS * 1000, NULL, NULL, &s);
	if (ret) {
		util_set_err(err, errlen, "out of memory starting the token request");
		goto out;
	}
	req.endpoint = g->url;
	ret = proxy_request(s, &req, &r);
	if (ret) {
		util_set_err(err, errlen, "the token endpoint could not be reached: %s", status_str(ret));
		ret = CRED_EREFRESH;
		goto out;
	}
	*resp = json_tokener_parse(r->body);
	if (r->status < 200 || r->status > 299 || !*resp || !json_object_is_type(*resp, json_type_object)) {
		const char *e = *resp ? str_of(*resp, "error") : NULL;

		util_set_err(err, errlen, "the token endpoint answered %d%s%.64s%s", r->status,
			     e ? " (" : "", e ? e : "", e ? ")" : "");
		hostapi_json_put_secret(*resp);
		*resp = NULL;
		ret = CRED_EREFRESH;
		goto out;
	}
	if (!str_of(*resp, "access_token")) {
		util_set_err(err, errlen, "the token endpoint's answer has no access_token");
		hostapi_json_put_secret(*resp);
		*resp = NULL;
		ret = CRED_EREFRESH;
	}
out:
	if (r) {
		sodium_memzero((char *)r->body, r->body_len);
		proxy_response_free(r);
	}
	proxy_session_free(s);
	dynbuf_free(&body);
	return ret;
}

/* ------------------------------------------------------------ merging */

/* Sets cred's token fields from the token response resp (taken). */
static void merge_tokens(struct json_object *cred, struct json_object *resp, bool cc, int64_t now_ms)
{
	struct json_object *v;
	char ts[UTIL_ISO_TIME_MAX];

	json_object_object_add(cred, cc ? "token" : "access_token",
			       json_object_new_string(str_of(resp, "access_token")));
	if (!cc && str_of(resp, "refresh_token"))
		json_object_object_add(cred, "refresh_token",
				       json_object_new_string(str_of(resp, "refresh_token")));
	json_object_object_del(cred, "expires_at");
	if (json_object_object_get_ex(resp, "expires_in", &v) &&
	    (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_string) ||
	     json_object_is_type(v, json_type_double))) {
		int64_t secs = json_object_get_int64(v);

		if (secs > CRED_EXPIRES_IN_MAX_S)
			secs = CRED_EXPIRES_IN_MAX_S;
		if (secs > 0) {
			util_iso_time(now_ms + secs * 1000, false, ts);
			json_object_object_add(cred, "expires_at", json_object_new_string(ts));
		}
	}
	json_object_object_del(cred, "refresh_error");
	json_object_object_add(cred, "raw", resp);
}

static void mark_error(struct json_object *cred, const char *message, int64_t now_ms)
{
	struct json_object *e = json_object_new_object();
	char ts[UTIL_ISO_TIME_MAX];

	if (!e)
		return;
	util_iso_time(now_ms, false, ts);
	json_object_object_add(e, "message", json_object_new_string(message));
	json_object_object_add(e, "at", json_object_new_string(ts));
	json_object_object_add(cred, "refresh_error", e);
}

/* ------------------------------------------------------------ the refresh */

struct tmpl_ctx {
	struct json_object *cred, *config;
};

/* A scalar member as text (numbers and booleans as JSON writes them). */
static const char *scalar_of(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !v || json_object_is_type(v, json_type_object) ||
	    json_object_is_type(v, json_type_array))
		return NULL;
	return json_object_get_string(v);
}

static const char *tmpl_lookup(void *ud, const char *name)
{
	struct tmpl_ctx *t = ud;

	if (strncmp(name, "connectionConfig.", 17) == 0)
		return scalar_of(t->config, name + 17);
	if (strncmp(name, "credentials.", 12) == 0)
		return scalar_of(t->cred, name + 12);
	return scalar_of(t->cred, name);
}

/* The client that refreshes an OAUTH2 connection: its config_override when
 * that has both an id and a secret (Nango's rule), else the host file's
 * oauth_clients entry. */
static int oauth_client(const struct config_host *cfg, const char *pck, struct json_object *cred,
			const char **id, const char **secret, char *err, size_t errlen)
{
	struct json_object *ov;
	const struct config_oauth_client *oc;

	*id = *secret = NULL;
	if (json_object_object_get_ex(cred, "config_override", &ov)) {
		*id = str_of(ov, "client_id");
		*secret = str_of(ov, "client_secret");
	}
	oc = config_oauth_client_find(cfg, pck);
	if ((!*id || !*secret) && oc) {
		*id = oc->client_id;
		*secret = oc->client_secret;
	}
	if (!*id || !*secret) {
		util_set_err(err, errlen,
			     "the token of a connection of integration %s needs a refresh and there is no OAuth "
			     "client for it (host file: oauth_clients.%s)", pck, pck);
		return CRED_ENOCLIENT;
	}
	return 0;
}

/* How the provider's token endpoint wants the grant: the client in basic
 * auth (token_request_auth_method: basic, or authorization_method: header)
 * or in the fields; the fields as a form, JSON or the query (body_format). */
static int grant_style(const struct config_provider *p, struct grant *g, char *err, size_t errlen)
{
	g->basic = (p->token_request_auth_method && strcmp(p->token_request_auth_method, "basic") == 0) ||
		   (p->authorization_method && strcmp(p->authorization_method, "header") == 0);
	if (!p->body_format || strcmp(p->body_format, "form") == 0) {
		g->format = GRANT_FORM;
	} else if (strcmp(p->body_format, "json") == 0) {
		g->format = GRANT_JSON;
	} else if (strcmp(p->body_format, "query") == 0) {
		g->format = GRANT_QUERY;
	} else {
		util_set_err(err, errlen, "provider %s's token endpoint wants body_format %.32s, which evscript does not "
			     "send (form, json or query)", p->name, p->body_format);
		return CRED_EREFRESH;
	}
	return 0;
}

/* Runs the grant that cred needs (under the connection's lock) and merges
 * its answer into cred. */
static int refresh(const struct config_host *cfg, const struct config_provider *p,
		   const struct store_connection *c, struct json_object *cred, enum need need,
		   char *err, size_t errlen)
{
	struct tmpl_ctx tc = {.cred = cred, .config = json_tokener_parse(c->connection_config)};
	struct grant g = {0};
	struct json_object *resp = NULL;
	char *url = NULL;
	char terr[CONFIG_ERR_MAX];
	const char *rt = str_of(cred, "refresh_token");
	bool to_refresh_url = need == NEED_REFRESH && p->refresh_url;
	const char *endpoint = to_refresh_url ? p->refresh_url : p->token_url;
	int ret;

	if (!endpoint) {
		util_set_err(err, errlen, "provider %s has no token_url: its token cannot be refreshed", p->name);
		ret = CRED_EREFRESH;
		goto out;
	}
	if (need == NEED_REFRESH && !rt) {
		util_set_err(err, errlen, "the access token needs a refresh and the connection has no refresh_token");
		ret = CRED_EEXPIRED;
		goto out;
	}
	if (config_interpolate(endpoint, tmpl_lookup, &tc, &url, terr, sizeof(terr)) < 0) {
		util_set_err(err, errlen, "%s of provider %s: %s", to_refresh_url ? "refresh_url" : "token_url",
			     p->name, terr);
		ret = CRED_EREFRESH;
		goto out;
	}
	g.url = url;
	ret = grant_style(p, &g, err, errlen);
	if (ret)
		goto out;
	if (need == NEED_REFRESH) {
		ret = oauth_client(cfg, c->provider_config_key, cred, &g.client_id, &g.client_secret, err, errlen);
		if (ret)
			goto out;
		g.fields[0][0] = "grant_type";
		g.fields[0][1] = "refresh_token";
		g.fields[1][0] = "refresh_token";
		g.fields[1][1] = rt;
		/* Nango: refresh_params, else token_params */
		g.params = p->refresh_params.n ? &p->refresh_params : &p->token_params;
	} else {
		g.client_id = str_of(cred, "client_id");
		g.client_secret = str_of(cred, "client_secret");
		if (!g.client_id || !g.client_secret) {
			util_set_err(err, errlen, "OAUTH2_CC credentials without client_id and client_secret");
			ret = CRED_EREFRESH;
			goto out;
		}
		g.fields[0][0] = "grant_type";
		g.fields[0][1] = "client_credentials";
		g.params = &p->token_params;
	}
	ret = grant_send(&g, &resp, err, errlen);
	if (ret == 0)
		merge_tokens(cred, resp, need == NEED_CC, util_now_ms());
out:
	if (url) {
		sodium_memzero(url, strlen(url));
		free(url);
	}
	json_object_put(tc.config);
	return ret;
}

/* The message of a refresh that failed at or after since_ms (while this
 * caller waited for the lock), or NULL: waiters share one failure as they
 * share one success, rather than each asking the provider again. */
static const char *failed_since(struct json_object *cred, int64_t since_ms)
{
	struct json_object *e;
	const char *at, *msg;

	if (!json_object_object_get_ex(cred, "refresh_error", &e))
		return NULL;
	at = str_of(e, "at");
	msg = str_of(e, "message");
	return at && msg && credentials_parse_time(at) >= since_ms ? msg : NULL;
}

/* store_connection_get, saying in err why it failed. */
static int read_connection(struct store *s, const char *pck, const char *cid, struct store_connection **c,
			   char *err, size_t errlen)
{
	int ret = store_connection_get(s, pck, cid, c);

	if (ret)
		util_set_err(err, errlen, "could not read the connection: %s", status_str(ret));
	return ret;
}

/* Steps 2-4 under the lock: *c is the connection as read before; it is
 * replaced by the fresh one. */
static int refresh_locked(struct store *s, const struct config_host *cfg, const struct config_provider *p,
			  bool force, struct store_connection **c, char *err, size_t errlen)
{
	const char *pck = (*c)->provider_config_key, *cid = (*c)->connection_id;
	struct store_connection *now = NULL;
	struct json_object *cred = NULL;
	enum need need;
	int64_t waited_from = util_now_ms();
	int ret, wret;
	const char *text, *failed;

	ret = store_connection_lock(s, pck, cid);
	if (ret) {
		util_set_err(err, errlen, "could not lock the connection for its token refresh: %s", status_str(ret));
		return ret;
	}
	ret = read_connection(s, pck, cid, &now, err, errlen);
	if (ret)
		goto out;
	cred = json_tokener_parse(now->credentials);
	need = cred ? need_of(cred, force, util_now_ms()) : NEED_NOTHING;
	if (need == NEED_NOTHING)
		goto out;
	if (!force && (failed = failed_since(cred, waited_from)) != NULL) {
		util_set_err(err, errlen, "%s", failed);
		ret = CRED_EREFRESH;
		goto out;
	}
	ret = refresh(cfg, p, now, cred, need, err, errlen);
	/* the daemon log says it once per attempt, never with a secret */
	if (ret)
		log_warn("credentials", "%s/%s: %s", pck, cid, err);
	else
		log_info("credentials", "%s/%s: %s", pck, cid,
			 need == NEED_CC ? "client-credentials token fetched" : "access token refreshed");
	if (ret && ret != CRED_EREFRESH && ret != CRED_EEXPIRED)
		goto out; /* nothing to record: a configuration problem */
	if (ret)
		mark_error(cred, err, util_now_ms());
	text = json_object_to_json_string_ext(cred, JSON_FLAGS);
	wret = text ? store_connection_credentials_set(s, pck, cid, text) : STORE_ENOMEM;
	if (wret && !ret) {
		util_set_err(err, errlen, "could not store the refreshed token: %s", status_str(wret));
		ret = wret;
	}
	if (!ret) {
		store_connection_free(now);
		now = NULL;
		ret = store_connection_get(s, pck, cid, &now);
	}
out:
	store_connection_unlock(s, pck, cid);
	hostapi_json_put_secret(cred);
	if (ret) {
		store_connection_free(now);
	} else {
		store_connection_free(*c);
		*c = now;
	}
	return ret;
}

int hostapi_connection_fresh(struct store *s, const struct config_host *cfg,
			     const struct config_provider *provider, const char *pck, const char *cid,
			     bool force, struct store_connection **out, char *err, size_t errlen)
{
	struct store_connection *c = NULL;
	struct json_object *cred;
	enum need need;
	int ret;

	*out = NULL;
	ret = read_connection(s, pck, cid, &c, err, errlen);
	if (ret)
		return ret;
	cred = json_tokener_parse(c->credentials);
	need = cred && provider ? need_of(cred, force, util_now_ms()) : NEED_NOTHING;
	hostapi_json_put_secret(cred);
	if (need != NEED_NOTHING) {
		ret = refresh_locked(s, cfg, provider, force, &c, err, errlen);
		if (ret) {
			store_connection_free(c);
			return ret;
		}
	}
	*out = c;
	return 0;
}
