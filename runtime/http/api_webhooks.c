/*
 * api_webhooks.c - incoming webhooks at the URL get_webhook_url() hands
 * out: POST /webhook/{integration} (public: the provider has no bearer
 * key; the integration's signature, when webhook_secrets configures one,
 * authenticates it), GET /webhooks (the deliveries), and the forwarder.
 *
 * A delivery is checked, recorded in the store (forced to disk) and only
 * then answered 200, so an acknowledged delivery is never lost. The
 * forwarder (a job thread, api_async.c) POSTs each recorded delivery to
 * webhook_forward_url with the body exactly as received, the provider's
 * headers, and X-Evscript-Delivery-Id (the record's id: a receiver
 * de-duplicates on it, since delivery is at least once: a crash between
 * the forward and its record sends it again). A non-2xx answer or a
 * transport error is retried after webhook_retry_base_ms, doubled each
 * time (at most one hour), until webhook_max_attempts.
 */
#include "api_priv.h"

#include <curl/curl.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "generation.h"
#include "log.h"
#include "util.h"

#define SLACK_TOLERANCE_S 300        /* Slack's own window for X-Slack-Request-Timestamp */
#define FORWARD_TIMEOUT_S 10
#define RETRY_MAX_MS (3600LL * 1000)
#define IDLE_POLL_MS 1000

static atomic_ullong n_received, n_bad_signature, n_forwarded, n_forward_failed;

/* ------------------------------------------------------------ signatures */

/* HMAC-SHA256(key, a || b) compared in constant time with hex (64 digits,
 * either case). 0 when equal, -1 otherwise. */
static int hmac_check(const char *key, const char *a, size_t alen, const char *b, size_t blen,
		      const char *hex)
{
	crypto_auth_hmacsha256_state st;
	unsigned char mac[crypto_auth_hmacsha256_BYTES], want[crypto_auth_hmacsha256_BYTES];
	size_t bin_len = 0;
	int ret = -1;

	if (!hex || strlen(hex) != 2 * sizeof(want) ||
	    sodium_hex2bin(want, sizeof(want), hex, strlen(hex), NULL, &bin_len, NULL) != 0 ||
	    bin_len != sizeof(want))
		return -1;
	crypto_auth_hmacsha256_init(&st, (const unsigned char *)key, strlen(key));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)a, alen);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)b, blen);
	crypto_auth_hmacsha256_final(&st, mac);
	ret = sodium_memcmp(mac, want, sizeof(mac)) == 0 ? 0 : -1;
	sodium_memzero(&st, sizeof(st));
	sodium_memzero(mac, sizeof(mac));
	return ret;
}

static const char *strip_prefix(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);

	return s && strncmp(s, prefix, n) == 0 ? s + n : s;
}

/* 0 when the delivery carries a valid signature for sec; -1 with why set. */
static int signature_check(const struct config_webhook_secret *sec, struct http_request *req,
			   const char *body, size_t len, const char **why)
{
	const char *sig, *ts;
	char prefix[48];
	int64_t t;

	switch (sec->scheme) {
	case CONFIG_WEBHOOK_GITHUB:
		sig = http_header(req, "X-Hub-Signature-256");
		*why = "missing or wrong X-Hub-Signature-256";
		if (!sig || strncmp(sig, "sha256=", 7) != 0)
			return -1;
		return hmac_check(sec->secret, "", 0, body, len, sig + 7);
	case CONFIG_WEBHOOK_SLACK:
		sig = http_header(req, "X-Slack-Signature");
		ts = http_header(req, "X-Slack-Request-Timestamp");
		*why = "missing or wrong X-Slack-Signature";
		if (!sig || !ts || strncmp(sig, "v0=", 3) != 0)
			return -1;
		if (!api_parse_int(ts, 0, INT64_MAX / 1000, &t) ||
		    llabs(util_now_ms() / 1000 - t) > SLACK_TOLERANCE_S) {
			*why = "X-Slack-Request-Timestamp is missing or more than 5 minutes away";
			return -1;
		}
		snprintf(prefix, sizeof(prefix), "v0:%s:", ts);
		return hmac_check(sec->secret, prefix, strlen(prefix), body, len, sig + 3);
	case CONFIG_WEBHOOK_HMAC_SHA256:
		sig = http_header(req, sec->header);
		*why = "missing or wrong signature header";
		return hmac_check(sec->secret, "", 0, body, len, strip_prefix(sig, "sha256="));
	case CONFIG_WEBHOOK_SCHEMES:
		break;
	}
	*why = "unknown signature scheme";
	return -1;
}

/* ------------------------------------------------ POST /webhook/{id} */

/* Slack's Events API checks a new request URL with a signed
 * {"type":"url_verification","challenge":C} and wants C back: answered here
 * (as Nango does), neither recorded nor forwarded. 1 when answered. */
static int slack_challenge(struct http_response *resp, const char *body, int *ret)
{
	struct json_object *doc = api_parse_doc(body), *type, *challenge;
	int answered = 0;

	if (json_object_object_get_ex(doc, "type", &type) && json_object_is_type(type, json_type_string) &&
	    strcmp(json_object_get_string(type), "url_verification") == 0 &&
	    json_object_object_get_ex(doc, "challenge", &challenge) &&
	    json_object_is_type(challenge, json_type_string)) {
		*ret = http_respond_json(resp, 200, api_json_member("challenge", json_object_get(challenge)));
		answered = 1;
	}
	json_object_put(doc);
	return answered;
}

/* Headers that describe this hop, not the delivery: never recorded or forwarded. */
static bool hop_header(const char *name)
{
	static const char *const hop[] = {"Host", "Content-Length", "Connection", "Keep-Alive",
					  "Transfer-Encoding", "Expect", "Authorization", "TE",
					  "Upgrade", "Proxy-Authorization", "Proxy-Connection", NULL};

	for (size_t i = 0; hop[i]; i++)
		if (strcasecmp(name, hop[i]) == 0)
			return true;
	return false;
}

static int add_header(void *user, const char *name, const char *value)
{
	if (!hop_header(name))
		json_object_object_add(user, name, json_object_new_string(value));
	return 0;
}

static int webhook_receive(struct api_context *ctx, struct generation *g, struct http_request *req,
			   struct http_response *resp)
{
	const struct config_host *h = generation_config(g);
	const char *integration = http_param(req, "integration");
	const struct config_webhook_secret *sec;
	struct json_object *headers = NULL;
	const char *why = NULL, *body;
	int64_t id = 0;
	size_t len = 0;
	int ret;

	if (!integration || !config_integration_find(h, integration)) {
		ret = http_respond_error(resp, 404, "unknown_provider_config", "integration %s is not configured",
					 integration ? integration : "");
		goto out;
	}
	body = http_body(req, &len);
	sec = config_webhook_secret_find(h, integration);
	if (sec && signature_check(sec, req, body, len, &why) != 0) {
		atomic_fetch_add(&n_bad_signature, 1);
		log_warn("api", "webhook for %s refused: %s", integration, why);
		ret = http_respond_error(resp, 401, "invalid_signature", "webhook signature check failed: %s", why);
		goto out;
	}
	if (sec && sec->scheme == CONFIG_WEBHOOK_SLACK && slack_challenge(resp, body, &ret))
		goto out;
	headers = json_object_new_object();
	if (!headers) {
		ret = http_respond_json(resp, 500, NULL);
		goto out;
	}
	http_header_each(req, add_header, headers);
	ret = store_webhook_insert(ctx->store, integration, api_json_str(headers), body, len,
				   h->webhook_forward_url ? STORE_WEBHOOK_PENDING : STORE_WEBHOOK_STORED, &id);
	if (ret < 0) {
		ret = api_respond_store_error(resp, "recording the webhook", ret);
		goto out;
	}
	atomic_fetch_add(&n_received, 1);
	api_jobs_wake(ctx);
	ret = http_respond_json(resp, 200, api_json_member("id", json_object_new_int64(id)));
out:
	json_object_put(headers);
	return ret;
}

API_GENERATION_ROUTE(api_webhook_receive, webhook_receive)

/* --------------------------------------------------------- GET /webhooks */

static struct json_object *delivery_json(const struct store_webhook *w)
{
	struct json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	json_object_object_add(o, "id", json_object_new_int64(w->id));
	json_object_object_add(o, "integration", json_object_new_string(w->integration));
	json_object_object_add(o, "status", json_object_new_string(store_webhook_status_name(w->status)));
	json_object_object_add(o, "attempts", json_object_new_int(w->attempts));
	json_object_object_add(o, "received_at", api_json_time(w->received_at));
	json_object_object_add(o, "next_attempt_at", api_json_time(w->next_attempt_at));
	json_object_object_add(o, "delivered_at", api_json_time(w->delivered_at));
	json_object_object_add(o, "last_error", w->last_error ? json_object_new_string(w->last_error) : NULL);
	json_object_object_add(o, "headers", api_parse_doc(w->headers));
	return o;
}

int api_webhooks_list(struct http_request *req, struct http_response *resp, void *user)
{
	struct api_context *ctx = user;
	const char *integration = http_query(req, "integration");
	const char *slimit = http_query(req, "limit"), *scursor = http_query(req, "cursor");
	struct store_webhook **items = NULL;
	int64_t limit = 50, cursor = 0, next = 0;
	struct json_object *root, *arr;
	size_t n = 0;
	int ret;

	if ((slimit && !api_parse_int(slimit, 1, 200, &limit)) ||
	    (scursor && !api_parse_int(scursor, 1, INT64_MAX, &cursor)))
		return http_respond_error(resp, 400, "invalid_query_params",
					  "limit must be 1 to 200 and cursor a next_cursor");
	ret = store_webhook_list(ctx->store, integration && *integration ? integration : NULL,
				 (size_t)limit, cursor, &items, &n, &next);
	if (ret < 0)
		return api_respond_store_error(resp, "listing webhooks", ret);
	root = api_json_list("deliveries", &arr);
	for (size_t i = 0; root && i < n; i++)
		json_object_array_add(arr, delivery_json(items[i]));
	if (root) {
		char c[24];

		snprintf(c, sizeof(c), "%lld", (long long)next);
		json_object_object_add(root, "next_cursor", next ? json_object_new_string(c) : NULL);
	}
	store_webhook_list_free(items, n);
	return http_respond_json(resp, 200, root);
}

/* ------------------------------------------------------------ forwarder */

static size_t discard(char *p, size_t size, size_t n, void *user)
{
	(void)p;
	(void)user;
	return size * n;
}

struct fwd_headers {
	struct curl_slist *list;
	bool failed;
};

/* POSTs w to url: 0 on a 2xx answer, else -1 with err written. */
static int forward_one(const char *url, const struct store_webhook *w, char *err, size_t errlen)
{
	struct json_object *hdrs = api_parse_doc(w->headers);
	struct curl_slist *list = NULL, *l;
	CURL *curl = curl_easy_init();
	char line[8192];
	long code = 0;
	CURLcode rc;
	int ret = -1;

	if (!curl) {
		util_set_err(err, errlen, "out of memory");
		goto out;
	}
	if (json_object_is_type(hdrs, json_type_object)) {
		json_object_object_foreach(hdrs, k, v) {
			snprintf(line, sizeof(line), "%s: %s", k, json_object_get_string(v));
			l = curl_slist_append(list, line);
			list = l ? l : list;
		}
	}
	snprintf(line, sizeof(line), "X-Evscript-Delivery-Id: %lld", (long long)w->id);
	l = curl_slist_append(list, line);
	list = l ? l : list;
	snprintf(line, sizeof(line), "X-Evscript-Integration: %s", w->integration);
	l = curl_slist_append(list, line);
	list = l ? l : list;
	l = curl_slist_append(list, "Expect:");
	list = l ? l : list;
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_POST, 1L);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, w->body ? w->body : "");
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)w->body_len);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, (long)FORWARD_TIMEOUT_S);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
	rc = curl_easy_perform(curl);
	if (rc != CURLE_OK) {
		util_set_err(err, errlen, "%s", curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
	if (code < 200 || code > 299) {
		util_set_err(err, errlen, "the forward URL answered %ld", code);
		goto out;
	}
	ret = 0;
out:
	curl_slist_free_all(list);
	curl_easy_cleanup(curl);
	json_object_put(hdrs);
	return ret;
}

/* One due delivery forwarded and its attempt recorded: 1 when there was
 * one, 0 when none is due (or nowhere to forward), negative on error. */
static int forward_due(struct api_context *ctx)
{
	struct generation *g = dispatch_generation(ctx->dispatch);
	const struct config_host *h = generation_config(g);
	struct store_webhook *w = NULL;
	enum store_webhook_status st;
	int64_t delay, next = 0;
	char err[512] = "";
	int ret;

	if (!h->webhook_forward_url) {
		ret = 0;
		goto out;
	}
	ret = store_webhook_due(ctx->store, util_now_ms(), &w);
	if (ret == STORE_ENOTFOUND) {
		ret = 0;
		goto out;
	}
	if (ret < 0)
		goto out;
	if (forward_one(h->webhook_forward_url, w, err, sizeof(err)) == 0) {
		st = STORE_WEBHOOK_DELIVERED;
		atomic_fetch_add(&n_forwarded, 1);
	} else if ((uint32_t)w->attempts + 1 >= h->webhook_max_attempts) {
		st = STORE_WEBHOOK_FAILED;
		atomic_fetch_add(&n_forward_failed, 1);
		log_warn("api", "webhook delivery %lld to %s failed for good: %s", (long long)w->id,
			 h->webhook_forward_url, err);
	} else {
		st = STORE_WEBHOOK_PENDING;
		delay = (int64_t)h->webhook_retry_base_ms << (w->attempts < 30 ? w->attempts : 30);
		next = util_now_ms() + (delay < RETRY_MAX_MS ? delay : RETRY_MAX_MS);
	}
	ret = store_webhook_attempt(ctx->store, w->id, st, st == STORE_WEBHOOK_DELIVERED ? NULL : err, next);
	if (ret == 0)
		ret = 1;
out:
	store_webhook_free(w);
	generation_unref(g);
	return ret;
}

static void *forwarder_main(void *arg)
{
	struct api_context *ctx = arg;
	int ret;

	do {
		ret = forward_due(ctx);
		if (ret < 0)
			log_error("api", "webhook forwarder: %s", status_str(ret));
	} while (!api_jobs_sleep(ctx, ret == 1 ? 0 : IDLE_POLL_MS));
	api_job_end(ctx);
	return NULL;
}

int api_jobs_begin(struct api_context *ctx)
{
	return api_job_start(ctx, forwarder_main, ctx);
}

void api_webhook_counters(uint64_t out[4])
{
	out[0] = atomic_load(&n_received);
	out[1] = atomic_load(&n_bad_signature);
	out[2] = atomic_load(&n_forwarded);
	out[3] = atomic_load(&n_forward_failed);
}
