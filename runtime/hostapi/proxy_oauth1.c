/*
 * proxy_oauth1.c - OAuth 1.0a signatures (RFC 5849 section 3).
 *
 * The signature base string is METHOD & enc(base URL) & enc(parameters),
 * the parameters being the request's query parameters and the oauth_*
 * ones, each name and value percent-encoded (RFC 3986 unreserved kept:
 * curl_easy_escape), sorted by name then value, joined with '=' and '&'.
 * The key is enc(consumer secret) & enc(token secret); HMAC-SHA256 is
 * libsodium's (any key length), the result base64 (libsodium); PLAINTEXT
 * sends the key itself.
 */
#include "proxy_oauth1.h"

#include <evscript/sdk.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <sodium.h>

#include "dynbuf.h"

#define OAUTH1_PARAMS_MAX 256
#define OAUTH1_TEXT_MAX (64u << 10)

struct param {
	char *name, *value; /* percent-encoded */
};

int proxy_oauth1_supported(const char *m)
{
	return m && (strcmp(m, "HMAC-SHA256") == 0 || strcmp(m, "PLAINTEXT") == 0);
}

static char *enc(const char *s)
{
	char *e = curl_easy_escape(NULL, s ? s : "", 0);
	char *copy = e ? strdup(e) : NULL;

	curl_free(e);
	return copy;
}

static int cmp_param(const void *a, const void *b)
{
	const struct param *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->value, y->value);
}

static int add_param(struct param *ps, size_t *n, const char *name, const char *value, bool encoded)
{
	if (*n == OAUTH1_PARAMS_MAX)
		return EVS_EINVAL;
	if (encoded) {
		/* from the URL: decode, then encode the RFC 5849 way */
		char *dn = curl_easy_unescape(NULL, name, 0, NULL), *dv = curl_easy_unescape(NULL, value, 0, NULL);

		ps[*n].name = dn ? enc(dn) : NULL;
		ps[*n].value = dv ? enc(dv) : NULL;
		curl_free(dn);
		curl_free(dv);
	} else {
		ps[*n].name = enc(name);
		ps[*n].value = enc(value);
	}
	(*n)++;
	return ps[*n - 1].name && ps[*n - 1].value ? 0 : EVS_ENOMEM;
}

/* The query parameters of url into ps; *base: the URL without query and
 * fragment (scheme and host lower case, as curl normalizes them). */
static int split_url(const char *url, char **base, struct param *ps, size_t *n)
{
	CURLU *u = curl_url();
	char *q = NULL, *b = NULL;
	int ret = EVS_EINVAL;

	*base = NULL;
	if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
		goto out;
	if (curl_url_get(u, CURLUPART_QUERY, &q, 0) != CURLUE_OK)
		q = NULL;
	if (curl_url_set(u, CURLUPART_QUERY, NULL, 0) != CURLUE_OK ||
	    curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_URL, &b, 0) != CURLUE_OK)
		goto out;
	*base = strdup(b);
	ret = *base ? 0 : EVS_ENOMEM;
	for (char *p = q, *save = NULL, *tok; q && !ret && (tok = strtok_r(p, "&", &save)); p = NULL) {
		char *eq = strchr(tok, '=');

		if (eq)
			*eq = '\0';
		ret = add_param(ps, n, tok, eq ? eq + 1 : "", true);
	}
out:
	curl_free(q);
	curl_free(b);
	curl_url_cleanup(u);
	return ret;
}

/* The signature of base with key, base64 (HMAC-SHA256) or the key itself. */
static char *sign(const char *method, const char *key, const char *base)
{
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_state st;
	char *out;
	size_t len;

	if (strcmp(method, "PLAINTEXT") == 0)
		return strdup(key);
	crypto_auth_hmacsha256_init(&st, (const unsigned char *)key, strlen(key));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)base, strlen(base));
	crypto_auth_hmacsha256_final(&st, mac);
	len = sodium_base64_encoded_len(sizeof(mac), sodium_base64_VARIANT_ORIGINAL);
	out = malloc(len);
	if (out)
		sodium_bin2base64(out, len, mac, sizeof(mac), sodium_base64_VARIANT_ORIGINAL);
	sodium_memzero(mac, sizeof(mac));
	return out;
}

int proxy_oauth1_header(const struct oauth1_keys *k, const char *method, const char *url, char **out)
{
	struct param ps[OAUTH1_PARAMS_MAX];
	size_t n = 0;
	char nonce_hex[33], ts[24], *base_url = NULL, *sig = NULL, *e;
	unsigned char nonce[16];
	struct dynbuf params, text, key, hdr;
	int ret;

	*out = NULL;
	if (!proxy_oauth1_supported(k->signature_method) || !k->consumer_key || !k->token)
		return EVS_EINVAL;
	randombytes_buf(nonce, sizeof(nonce));
	sodium_bin2hex(nonce_hex, sizeof(nonce_hex), nonce, sizeof(nonce));
	snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
	dynbuf_init(&params, OAUTH1_TEXT_MAX, DYNBUF_WIPE);
	dynbuf_init(&text, OAUTH1_TEXT_MAX, DYNBUF_WIPE);
	dynbuf_init(&key, OAUTH1_TEXT_MAX, DYNBUF_WIPE);
	dynbuf_init(&hdr, OAUTH1_TEXT_MAX, DYNBUF_WIPE);
	ret = split_url(url, &base_url, ps, &n);
	if (!ret)
		ret = add_param(ps, &n, "oauth_consumer_key", k->consumer_key, false) ||
		      add_param(ps, &n, "oauth_nonce", nonce_hex, false) ||
		      add_param(ps, &n, "oauth_signature_method", k->signature_method, false) ||
		      add_param(ps, &n, "oauth_timestamp", ts, false) ||
		      add_param(ps, &n, "oauth_token", k->token, false) ||
		      add_param(ps, &n, "oauth_version", "1.0", false) ? EVS_ENOMEM : 0;
	if (ret)
		goto out;
	qsort(ps, n, sizeof(ps[0]), cmp_param);
	for (size_t i = 0; i < n; i++) {
		dynbuf_add_str(&params, i ? "&" : "");
		dynbuf_add_str(&params, ps[i].name);
		dynbuf_add_str(&params, "=");
		dynbuf_add_str(&params, ps[i].value);
	}
	/* METHOD & enc(base URL) & enc(params) */
	dynbuf_add_str(&text, method);
	dynbuf_add_str(&text, "&");
	e = enc(base_url);
	dynbuf_add_str(&text, e ? e : "");
	free(e);
	dynbuf_add_str(&text, "&");
	e = enc(dynbuf_str(&params));
	dynbuf_add_str(&text, e ? e : "");
	free(e);
	/* the key: enc(consumer secret) & enc(token secret) */
	e = enc(k->consumer_secret);
	dynbuf_add_str(&key, e ? e : "");
	free(e);
	dynbuf_add_str(&key, "&");
	e = enc(k->token_secret);
	dynbuf_add_str(&key, e ? e : "");
	if (e)
		sodium_memzero(e, strlen(e));
	free(e);
	sig = sign(k->signature_method, dynbuf_str(&key), dynbuf_str(&text));
	ret = EVS_ENOMEM;
	if (!sig)
		goto out;
	dynbuf_add_str(&hdr, "OAuth ");
	if (k->realm) {
		dynbuf_add_str(&hdr, "realm=\"");
		dynbuf_add_str(&hdr, k->realm);
		dynbuf_add_str(&hdr, "\",");
	}
	for (size_t i = 0; i < n; i++) {
		if (strncmp(ps[i].name, "oauth_", 6) != 0)
			continue;
		dynbuf_add_str(&hdr, ps[i].name);
		dynbuf_add_str(&hdr, "=\"");
		dynbuf_add_str(&hdr, ps[i].value);
		dynbuf_add_str(&hdr, "\",");
	}
	dynbuf_add_str(&hdr, "oauth_signature=\"");
	e = enc(sig);
	dynbuf_add_str(&hdr, e ? e : "");
	free(e);
	dynbuf_add_str(&hdr, "\"");
	ret = dynbuf_take(&hdr, out, NULL) ? EVS_ENOMEM : 0;
out:
	for (size_t i = 0; i < n; i++) {
		free(ps[i].name);
		free(ps[i].value);
	}
	if (sig) {
		sodium_memzero(sig, strlen(sig));
		free(sig);
	}
	free(base_url);
	dynbuf_free(&params);
	dynbuf_free(&text);
	dynbuf_free(&key);
	dynbuf_free(&hdr);
	return ret;
}
