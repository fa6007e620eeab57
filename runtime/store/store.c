/*
 * store.c - the public face of the store: argument checks, out-parameter
 * zeroing, dispatch to the back end chosen by the URL scheme, and what every
 * back end shares (sealing credentials, JSON checks and merge, version order).
 */
#include "store.h"
#include "store_backend.h"
#include "util.h"

#include <ctype.h>
#include <json-c/json.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct store_ops *const backends[] = {
	&store_sqlite_ops,
	&store_pg_ops,
};

#define URL_FORMS "sqlite:PATH or postgresql://USER@HOST[:PORT]/DB"


const char *store_strerror(int err)
{
	return status_str(err);
}

const char *store_event_status_name(enum store_event_status st)
{
	switch (st) {
	case STORE_EVENT_PENDING: return "pending";
	case STORE_EVENT_CLAIMED: return "claimed";
	case STORE_EVENT_DONE: return "done";
	case STORE_EVENT_INTERRUPTED: return "interrupted";
	}
	return "unknown";
}

const char *store_exec_kind_name(enum store_exec_kind k)
{
	return k == STORE_EXEC_ACTION ? "action" : "event";
}

static const char *const exec_status_names[] = {
	[STORE_EXEC_RUNNING] = "running",     [STORE_EXEC_SUCCEEDED] = "succeeded",
	[STORE_EXEC_FAILED] = "failed",       [STORE_EXEC_CRASHED] = "crashed",
	[STORE_EXEC_TIMED_OUT] = "timed_out", [STORE_EXEC_INTERRUPTED] = "interrupted",
};

const char *store_exec_status_name(enum store_exec_status st)
{
	if ((unsigned)st < sizeof(exec_status_names) / sizeof(exec_status_names[0]))
		return exec_status_names[st];
	return "unknown";
}

int store_exec_status_from_name(const char *name)
{
	if (!name)
		return -1;
	for (size_t i = 0; i < sizeof(exec_status_names) / sizeof(exec_status_names[0]); i++)
		if (strcmp(name, exec_status_names[i]) == 0)
			return (int)i;
	return -1;
}

/* ---------------------------------------------------------------------------
 * Shared helpers.
 */

void store_blob_free(void *p, size_t len)
{
	if (!p)
		return;
	sodium_memzero(p, len);
	free(p);
}

void store_secret_free(char *p)
{
	if (p)
		store_blob_free(p, strlen(p));
}

int store_truncate_copy(const char *s, size_t max, char **out)
{
	size_t n;

	*out = NULL;
	if (!s)
		return 0;
	n = strlen(s);
	if (n > max) {
		n = max;
		/* Back off continuation bytes so a multi-byte character is not cut. */
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	*out = strndup(s, n);
	return *out ? 0 : STORE_ENOMEM;
}

/* Parses a whole JSON text (nothing but whitespace after it). */
static int json_parse_all(const char *text, struct json_object **out)
{
	struct json_tokener *tok;
	struct json_object *o;
	size_t len = strlen(text), end;
	int ret = 0;

	*out = NULL;
	if (len > STORE_JSON_MAX)
		return STORE_ETOOBIG;
	tok = json_tokener_new();
	if (!tok)
		return STORE_ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, text, (int)len);
	if (json_tokener_get_error(tok) != json_tokener_success) {
		ret = STORE_EINVAL;
		goto out;
	}
	for (end = json_tokener_get_parse_end(tok); end < len; end++) {
		if (!isspace((unsigned char)text[end])) {
			ret = STORE_EINVAL;
			goto out;
		}
	}
	*out = o;
	o = NULL;
out:
	json_object_put(o);
	json_tokener_free(tok);
	return ret;
}

/* 0 when text is valid JSON (an object when want_object). STORE_EINVAL,
 * STORE_ETOOBIG. */
static int json_check(const char *text, bool want_object)
{
	struct json_object *o;
	int ret = json_parse_all(text, &o);

	if (ret)
		return ret;
	if (want_object && !json_object_is_type(o, json_type_object))
		ret = STORE_EINVAL;
	/* "null" parses to NULL with success: not an object, but valid JSON. */
	if (!o && want_object)
		ret = STORE_EINVAL;
	json_object_put(o);
	return ret;
}

int store_json_check(const char *text, bool want_object)
{
	if (!text)
		return STORE_EINVAL;
	if (strlen(text) > STORE_JSON_MAX)
		return STORE_ETOOBIG;
	return json_check(text, want_object);
}

int store_json_merge(const char *doc, const char *patch, char **out)
{
	struct json_object *d = NULL, *p = NULL;
	const char *text;
	int ret;

	*out = NULL;
	ret = json_parse_all(doc, &d);
	if (ret)
		goto out;
	ret = json_parse_all(patch, &p);
	if (ret)
		goto out;
	if (!json_object_is_type(d, json_type_object) || !json_object_is_type(p, json_type_object)) {
		ret = STORE_EINVAL;
		goto out;
	}
	json_object_object_foreach(p, key, val)
	{
		/* The patch keeps its reference; the document takes another. */
		if (json_object_object_add(d, key, json_object_get(val)) != 0) {
			json_object_put(val);
			ret = STORE_ENOMEM;
			goto out;
		}
	}
	text = json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN |
							 JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!text) {
		ret = STORE_ENOMEM;
		goto out;
	}
	if (strlen(text) > STORE_JSON_MAX) {
		ret = STORE_ETOOBIG;
		goto out;
	}
	*out = strdup(text);
	if (!*out)
		ret = STORE_ENOMEM;
out:
	json_object_put(p);
	json_object_put(d);
	return ret;
}

static bool parse_semver(const char *v, unsigned long long part[3])
{
	for (int i = 0; i < 3; i++) {
		char *end;

		if (!isdigit((unsigned char)*v))
			return false;
		part[i] = strtoull(v, &end, 10);
		v = end;
		if (i < 2) {
			if (*v != '.')
				return false;
			v++;
		}
	}
	return *v == '\0';
}

int store_version_cmp(const char *a, const char *b)
{
	unsigned long long pa[3], pb[3];
	bool oka = parse_semver(a, pa), okb = parse_semver(b, pb);

	if (oka != okb)
		return oka ? 1 : -1;
	if (!oka)
		return strcmp(a, b);
	for (int i = 0; i < 3; i++)
		if (pa[i] != pb[i])
			return pa[i] < pb[i] ? -1 : 1;
	return 0;
}

/* "pck\0cid": the associated data that binds a ciphertext to its row. */
static int make_ad(const char *pck, const char *cid, unsigned char **ad, size_t *adlen)
{
	size_t a = strlen(pck), b = strlen(cid);

	*adlen = a + 1 + b;
	*ad = malloc(*adlen);
	if (!*ad)
		return STORE_ENOMEM;
	memcpy(*ad, pck, a);
	(*ad)[a] = '\0';
	memcpy(*ad + a + 1, cid, b);
	return 0;
}

#define NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_BYTES crypto_aead_xchacha20poly1305_ietf_ABYTES

static int seal(const struct store *s, const unsigned char *ad, size_t adlen,
		const void *msg, size_t msglen, uint8_t **blob, size_t *len)
{
	size_t n = 1 + NONCE_BYTES + msglen + TAG_BYTES;
	unsigned long long clen;
	uint8_t *b = malloc(n);

	*blob = NULL;
	*len = 0;
	if (!b)
		return STORE_ENOMEM;
	b[0] = STORE_SEAL_VERSION;
	randombytes_buf(b + 1, NONCE_BYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt(b + 1 + NONCE_BYTES, &clen, msg, msglen, ad,
						   adlen, NULL, b + 1, s->key);
	*blob = b;
	*len = 1 + NONCE_BYTES + (size_t)clen;
	return 0;
}

/* The plaintext is NUL-terminated for the caller's convenience. */
static int unseal(const struct store *s, const unsigned char *ad, size_t adlen,
		  const uint8_t *blob, size_t len, char **out, size_t *outlen)
{
	unsigned long long mlen;
	char *m;

	*out = NULL;
	if (outlen)
		*outlen = 0;
	if (!s->has_key)
		return STORE_ENOKEY;
	if (len < 1 + NONCE_BYTES + TAG_BYTES || blob[0] != STORE_SEAL_VERSION)
		return STORE_EDECRYPT;
	m = malloc(len - 1 - NONCE_BYTES - TAG_BYTES + 1);
	if (!m)
		return STORE_ENOMEM;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt((unsigned char *)m, &mlen, NULL,
						       blob + 1 + NONCE_BYTES,
						       len - 1 - NONCE_BYTES, ad, adlen,
						       blob + 1, s->key) != 0) {
		free(m);
		return STORE_EDECRYPT;
	}
	m[mlen] = '\0';
	*out = m;
	if (outlen)
		*outlen = (size_t)mlen;
	return 0;
}

int store_seal_credentials(const struct store *s, const char *pck, const char *cid,
			   const char *json, uint8_t **blob, size_t *len, bool *encrypted)
{
	unsigned char *ad = NULL;
	size_t adlen;
	int ret;

	*blob = NULL;
	*len = 0;
	*encrypted = false;
	if (!s->has_key) {
		*blob = (uint8_t *)strdup(json);
		if (!*blob)
			return STORE_ENOMEM;
		*len = strlen(json);
		return 0;
	}
	ret = make_ad(pck, cid, &ad, &adlen);
	if (ret)
		return ret;
	ret = seal(s, ad, adlen, json, strlen(json), blob, len);
	if (!ret)
		*encrypted = true;
	free(ad);
	return ret;
}

int store_open_credentials(const struct store *s, const char *pck, const char *cid,
			   const uint8_t *blob, size_t len, bool encrypted, char **json)
{
	unsigned char *ad = NULL;
	size_t adlen;
	int ret;

	*json = NULL;
	if (!encrypted) {
		*json = strndup((const char *)blob, len);
		return *json ? 0 : STORE_ENOMEM;
	}
	if (!s->has_key)
		return STORE_ENOKEY;
	ret = make_ad(pck, cid, &ad, &adlen);
	if (ret)
		return ret;
	ret = unseal(s, ad, adlen, blob, len, json, NULL);
	free(ad);
	return ret;
}

/* Idempotency-Key replies carry what the request's reply carried, a new
 * connection's credentials among it: with a key they are sealed like the
 * credentials, bound to their Idempotency-Key (the associated data), and kept
 * as text ("sealed:v1:" and the blob in base64) so that every back end stores
 * them as it stores a plain reply. A plain reply is JSON: it never starts
 * with the prefix. */
static const char idem_ad_prefix[] = "evscript idempotency reply";
static const char idem_sealed_prefix[] = "sealed:v1:";

static int idem_ad(const char *key, unsigned char **ad, size_t *adlen)
{
	size_t a = sizeof(idem_ad_prefix), b = strlen(key);

	*ad = malloc(a + b);
	if (!*ad)
		return STORE_ENOMEM;
	memcpy(*ad, idem_ad_prefix, a); /* with its NUL: the key cannot run into it */
	memcpy(*ad + a, key, b);
	*adlen = a + b;
	return 0;
}

/* *out: body sealed and in text (malloc'd), or NULL without a key. */
static int idem_seal(const struct store *s, const char *key, const char *body, char **out)
{
	unsigned char *ad = NULL;
	uint8_t *blob = NULL;
	size_t adlen, len, b64len;
	int ret;

	*out = NULL;
	if (!s->has_key || !body)
		return 0;
	ret = idem_ad(key, &ad, &adlen);
	if (ret)
		return ret;
	ret = seal(s, ad, adlen, body, strlen(body), &blob, &len);
	if (ret)
		goto out;
	b64len = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	*out = malloc(sizeof(idem_sealed_prefix) - 1 + b64len);
	if (!*out) {
		ret = STORE_ENOMEM;
		goto out;
	}
	memcpy(*out, idem_sealed_prefix, sizeof(idem_sealed_prefix) - 1);
	sodium_bin2base64(*out + sizeof(idem_sealed_prefix) - 1, b64len, blob, len,
			  sodium_base64_VARIANT_ORIGINAL);
out:
	free(blob);
	free(ad);
	return ret;
}

/* Replaces r->body by its plain text when it is sealed. */
static int idem_open(const struct store *s, struct store_idempotency *r)
{
	const char *b64;
	unsigned char *ad = NULL;
	uint8_t *blob = NULL;
	size_t adlen, len, b64len;
	char *plain = NULL;
	int ret;

	if (!r->body || strncmp(r->body, idem_sealed_prefix, sizeof(idem_sealed_prefix) - 1) != 0)
		return 0;
	if (!s->has_key)
		return STORE_ENOKEY;
	b64 = r->body + sizeof(idem_sealed_prefix) - 1;
	b64len = strlen(b64);
	blob = malloc(b64len / 4 * 3 + 3);
	if (!blob)
		return STORE_ENOMEM;
	if (sodium_base642bin(blob, b64len / 4 * 3 + 3, b64, b64len, NULL, &len, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0) {
		ret = STORE_EDECRYPT;
		goto out;
	}
	ret = idem_ad(r->key, &ad, &adlen);
	if (ret)
		goto out;
	ret = unseal(s, ad, adlen, blob, len, &plain, NULL);
	if (ret)
		goto out;
	free(r->body);
	r->body = plain;
out:
	free(ad);
	free(blob);
	return ret;
}

static const char key_check_ad[] = "evscript key check";
static const char key_check_text[] = "evscript store key check v1";

int store_key_check_make(const struct store *s, uint8_t **blob, size_t *len)
{
	return seal(s, (const unsigned char *)key_check_ad, sizeof(key_check_ad) - 1,
		    key_check_text, sizeof(key_check_text) - 1, blob, len);
}

int store_key_check_verify(const struct store *s, const uint8_t *blob, size_t len)
{
	char *m = NULL;
	size_t mlen;
	int ret = unseal(s, (const unsigned char *)key_check_ad, sizeof(key_check_ad) - 1, blob,
			 len, &m, &mlen);

	if (ret == STORE_EDECRYPT)
		ret = STORE_EKEY;
	if (!ret && (mlen != sizeof(key_check_text) - 1 || memcmp(m, key_check_text, mlen) != 0))
		ret = STORE_EKEY;
	free(m);
	return ret;
}

/* ---------------------------------------------------------------------------
 * Opening.
 */

int store_key_from_base64(const char *b64, uint8_t key[STORE_KEY_BYTES])
{
	size_t binlen = 0;
	const char *end = NULL;
	uint8_t tmp[STORE_KEY_BYTES + 1];
	int ret = STORE_EINVAL;

	sodium_memzero(key, STORE_KEY_BYTES);
	if (!b64)
		return STORE_EINVAL;
	while (isspace((unsigned char)*b64))
		b64++;
	/* Decode into one byte more than a key so that a longer input fails. */
	if (sodium_base642bin(tmp, sizeof(tmp), b64, strlen(b64), " \t\r\n", &binlen, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0)
		goto out;
	if (end && *end != '\0')
		goto out;
	if (binlen != STORE_KEY_BYTES)
		goto out;
	memcpy(key, tmp, STORE_KEY_BYTES);
	ret = 0;
out:
	sodium_memzero(tmp, sizeof(tmp));
	return ret;
}

/* The host id: the one given, or the machine's host name. */
static int host_setup(struct store *s, const struct store_host *host, char *err, size_t errlen)
{
	const char *id = host && host->host_id && *host->host_id ? host->host_id : NULL;

	s->host_timeout_s = host && host->timeout_s ? host->timeout_s
						    : STORE_HOST_TIMEOUT_DEFAULT_S;
	if (id) {
		if (strlen(id) > STORE_ID_MAX) {
			util_set_err(err, errlen, "host_id is longer than %d bytes", STORE_ID_MAX);
			return STORE_ETOOBIG;
		}
		snprintf(s->host_id, sizeof(s->host_id), "%s", id);
		return 0;
	}
	if (gethostname(s->host_id, sizeof(s->host_id) - 1) != 0 || !s->host_id[0])
		snprintf(s->host_id, sizeof(s->host_id), "localhost");
	s->host_id[sizeof(s->host_id) - 1] = '\0';
	return 0;
}

/* Whether the URL's scheme (url up to colon) is name (NULL: no). */
static bool scheme_is(const char *url, const char *colon, const char *name)
{
	return name && strlen(name) == (size_t)(colon - url) && strncmp(url, name, colon - url) == 0;
}

int store_open_host(const char *url, const uint8_t *enc_key, const struct store_host *host,
		    struct store **out, char *err, size_t errlen)
{
	const struct store_ops *ops = NULL;
	const char *colon;
	struct store *s = NULL;
	char shown[512];
	int ret;

	*out = NULL;
	if (errlen)
		err[0] = '\0';
	store_url_redact(url ? url : "(null)", shown, sizeof(shown));
	if (!url || !(colon = strchr(url, ':'))) {
		util_set_err(err, errlen, "store URL '%s': expected " URL_FORMS, shown);
		return STORE_EURL;
	}
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (scheme_is(url, colon, backends[i]->scheme) ||
		    scheme_is(url, colon, backends[i]->alias))
			ops = backends[i];
	if (!ops) {
		util_set_err(err, errlen, "store URL '%s': unsupported scheme (expected " URL_FORMS ")",
			     shown);
		return STORE_EURL;
	}
	if (sodium_init() < 0) {
		util_set_err(err, errlen, "libsodium failed to initialise");
		return STORE_EIO;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		util_set_err(err, errlen, "out of memory");
		return STORE_ENOMEM;
	}
	s->ops = ops;
	pthread_mutex_init(&s->wake_mu, NULL);
	ret = host_setup(s, host, err, errlen);
	if (ret)
		goto fail;
	if (enc_key) {
		memcpy(s->key, enc_key, STORE_KEY_BYTES);
		s->has_key = true;
	}
	ret = ops->open(s, ops->full_url ? url : colon + 1, err, errlen);
	if (ret)
		goto fail;
	*out = s;
	return 0;
fail:
	sodium_memzero(s->key, sizeof(s->key));
	pthread_mutex_destroy(&s->wake_mu);
	free(s);
	return ret;
}

int store_open(const char *url, const uint8_t *enc_key, struct store **out, char *err,
	       size_t errlen)
{
	return store_open_host(url, enc_key, NULL, out, err, errlen);
}

const char *store_host_id(const struct store *s)
{
	return s->host_id;
}

/* Appends the n bytes at p to out (room for outlen), cutting at the end. */
static void put(char *out, size_t outlen, size_t *at, const char *p, size_t n)
{
	for (size_t i = 0; i < n && *at + 1 < outlen; i++)
		out[(*at)++] = p[i];
	out[*at] = '\0';
}

void store_url_redact(const char *url, char *out, size_t outlen)
{
	const char *p = url, *auth = strstr(url, "://"), *at = NULL, *end;
	size_t o = 0;

	if (!outlen)
		return;
	out[0] = '\0';
	if (auth) {
		auth += 3;
		end = auth + strcspn(auth, "/?#");
		/* the last '@' of the authority ends the user info */
		for (const char *q = auth; q < end; q++)
			if (*q == '@')
				at = q;
	}
	if (at) {
		const char *colon = memchr(auth, ':', (size_t)(at - auth));

		if (colon) {
			put(out, outlen, &o, url, (size_t)(colon - url) + 1);
			put(out, outlen, &o, "***", 3);
			p = at;
		}
	}
	/* password=... anywhere after: in a query or a key=value list */
	while (*p) {
		const char *q = strstr(p, "password=");

		if (!q) {
			put(out, outlen, &o, p, strlen(p));
			break;
		}
		q += strlen("password=");
		put(out, outlen, &o, p, (size_t)(q - p));
		put(out, outlen, &o, "***", 3);
		p = q + strcspn(q, "& \t");
	}
}

void store_set_wakeup(struct store *s, store_wakeup_fn fn, void *user)
{
	pthread_mutex_lock(&s->wake_mu);
	s->wake = fn;
	s->wake_user = user;
	pthread_mutex_unlock(&s->wake_mu);
}

void store_wakeup(struct store *s)
{
	pthread_mutex_lock(&s->wake_mu);
	if (s->wake)
		s->wake(s->wake_user);
	pthread_mutex_unlock(&s->wake_mu);
}

void store_close(struct store *s)
{
	if (!s)
		return;
	s->ops->close(s);
	sodium_memzero(s->key, sizeof(s->key));
	pthread_mutex_destroy(&s->wake_mu);
	free(s);
}

/* ---------------------------------------------------------------------------
 * Argument checks shared by the wrappers.
 */

static int check_id(const char *s)
{
	if (!s || !*s)
		return STORE_EINVAL;
	if (strlen(s) > STORE_ID_MAX)
		return STORE_ETOOBIG;
	return 0;
}

static int check_opt_id(const char *s)
{
	return s ? check_id(s) : 0;
}

static bool valid_event_type(const char *t)
{
	return t && (strcmp(t, STORE_EVENT_POST_CONNECTION_CREATION) == 0 ||
		     strcmp(t, STORE_EVENT_PRE_CONNECTION_DELETION) == 0 ||
		     strcmp(t, STORE_EVENT_VALIDATE_CONNECTION) == 0);
}

static int check_idem(const struct store_idempotency_input *in)
{
	int ret;

	if ((ret = check_id(in->key)) || (ret = check_id(in->method_path)))
		return ret;
	if (!in->request_hash || strlen(in->request_hash) > STORE_ID_MAX)
		return in->request_hash ? STORE_ETOOBIG : STORE_EINVAL;
	if (!in->respond && in->body && strlen(in->body) > STORE_JSON_MAX)
		return STORE_ETOOBIG;
	if (!in->respond && (in->status < 100 || in->status > 599))
		return STORE_EINVAL;
	return 0;
}

/* ---------------------------------------------------------------------------
 * Connections.
 */

void store_connection_free(struct store_connection *c)
{
	if (!c)
		return;
	store_secret_free(c->credentials);
	/* connection_config can hold secrets too (subdomains with tokens,
	 * account keys some providers template into their URLs) */
	store_secret_free(c->connection_config);
	util_free_all(c->connection_id, c->provider_config_key, c->provider, c->metadata, c->tags,
		      c->webhook_url_override, c);
}

void store_connection_list_free(struct store_connection **items, size_t n)
{
	for (size_t i = 0; items && i < n; i++)
		store_connection_free(items[i]);
	free(items);
}

/* An upsert's reply made in the transaction, sealed before it is written. */
struct idem_sealing {
	const struct store *s;
	const struct store_idempotency_input *in;
};

static int respond_sealed(void *user, const struct store_upsert_result *r, int *status, char **body)
{
	struct idem_sealing *z = user;
	char *plain = NULL, *sealed = NULL;
	int ret = z->in->respond(z->in->user, r, status, &plain);

	*body = NULL;
	if (ret != 0 || plain == NULL) {
		*body = plain;
		return ret;
	}
	ret = idem_seal(z->s, z->in->key, plain, &sealed);
	store_secret_free(plain);
	*body = sealed;
	return ret;
}

/* Seals in's credentials (outside any lock of the back end: it does not
 * touch the database) and has the back end write the connection. */
static int upsert_sealed(struct store *s, const struct store_connection_input *in,
			 const struct store_idempotency_input *idem, struct store_upsert_result *r)
{
	struct store_sealed cred;
	struct store_upsert_call u = {.in = in, .cred = &cred, .idem = idem, .r = r,
				      .now = util_now_ms()};
	uint8_t *blob;
	int ret = store_seal_credentials(s, in->provider_config_key, in->connection_id,
					 in->credentials, &blob, &cred.len, &cred.encrypted);

	if (ret)
		return ret;
	cred.blob = blob;
	ret = s->ops->connection_upsert(s, &u);
	store_blob_free(blob, cred.len);
	return ret;
}

int store_connection_upsert(struct store *s, const struct store_connection_input *in,
			    const struct store_idempotency_input *idem,
			    struct store_upsert_result *r)
{
	struct store_idempotency_input sealed_idem;
	struct idem_sealing z;
	char *sealed_body = NULL;
	int ret;

	memset(r, 0, sizeof(*r));
	if (!s || !in)
		return STORE_EINVAL;
	if ((ret = check_id(in->connection_id)) || (ret = check_id(in->provider_config_key)) ||
	    (ret = check_id(in->provider)))
		return ret;
	if (!in->credentials)
		return STORE_EINVAL;
	if ((ret = json_check(in->credentials, true)))
		return ret;
	if (in->connection_config && (ret = json_check(in->connection_config, true)))
		return ret;
	if (in->metadata && (ret = json_check(in->metadata, true)))
		return ret;
	if (idem && (ret = check_idem(idem)))
		return ret;
	if (idem && s->has_key) {
		sealed_idem = *idem;
		if (idem->respond) {
			z = (struct idem_sealing){s, idem};
			sealed_idem.respond = respond_sealed;
			sealed_idem.user = &z;
		} else if ((ret = idem_seal(s, idem->key, idem->body, &sealed_body)) != 0) {
			return ret;
		} else {
			sealed_idem.body = sealed_body;
		}
		idem = &sealed_idem;
	}
	ret = upsert_sealed(s, in, idem, r);
	free(sealed_body);
	if (ret)
		memset(r, 0, sizeof(*r));
	return ret;
}

int store_connection_get(struct store *s, const char *pck, const char *cid,
			 struct store_connection **out)
{
	int ret;

	*out = NULL;
	if (!s)
		return STORE_EINVAL;
	if ((ret = check_id(pck)) || (ret = check_id(cid)))
		return ret;
	return s->ops->connection_get(s, pck, cid, out);
}

int store_connection_list(struct store *s, const struct store_connection_filter *f,
			  struct store_connection ***items, size_t *n)
{
	struct store_connection_filter all = {0};
	int ret;

	*items = NULL;
	*n = 0;
	if (!s)
		return STORE_EINVAL;
	if (f)
		all = *f;
	if ((ret = check_opt_id(all.connection_id)))
		return ret;
	if (all.tags && (ret = json_check(all.tags, true)))
		return ret;
	/* a back end without tags (no connection_patch) has no tagged connection */
	if (all.tags && strcmp(all.tags, "{}") != 0 && !s->ops->connection_patch)
		return 0;
	if (all.limit == 0 || all.limit > STORE_CONNECTION_LIST_MAX)
		all.limit = STORE_CONNECTION_LIST_MAX;
	return s->ops->connection_list(s, &all, items, n);
}

int store_connection_mark_deleting(struct store *s, const char *pck, const char *cid,
				   bool claim, int64_t generation, int64_t *event_id)
{
	int ret;

	*event_id = 0;
	if (!s)
		return STORE_EINVAL;
	if ((ret = check_id(pck)) || (ret = check_id(cid)))
		return ret;
	ret = s->ops->connection_mark_deleting(s, pck, cid, claim, generation, event_id);
	if (ret)
		*event_id = 0;
	return ret;
}

int store_connection_delete(struct store *s, const char *pck, const char *cid)
{
	int ret;

	if (!s)
		return STORE_EINVAL;
	if ((ret = check_id(pck)) || (ret = check_id(cid)))
		return ret;
	return s->ops->connection_delete(s, pck, cid);
}

static int metadata(struct store *s, const char *pck, const char *const *cids, size_t n,
		    const char *json, bool merge, bool refuse_deleting, size_t *failed)
{
	size_t unused;
	int ret;

	if (!failed)
		failed = &unused;
	*failed = 0;
	if (!s || !json || !cids || n == 0)
		return STORE_EINVAL;
	if ((ret = check_id(pck)))
		return ret;
	for (size_t i = 0; i < n; i++) {
		if ((ret = check_id(cids[i]))) {
			*failed = i;
			return ret;
		}
	}
	if ((ret = json_check(json, true)))
		return ret;
	return s->ops->connection_metadata(s, pck, cids, n, json, merge, refuse_deleting, failed);
}

int store_connection_metadata_set(struct store *s, const char *pck, const char *cid,
				  const char *metadata_json)
{
	return metadata(s, pck, &cid, 1, metadata_json, false, false, NULL);
}

int store_connection_metadata_update(struct store *s, const char *pck, const char *cid,
				     const char *patch_json)
{
	return metadata(s, pck, &cid, 1, patch_json, true, false, NULL);
}

int store_connection_metadata_write(struct store *s, const char *pck, const char *const *cids,
				    size_t n, const char *json, bool merge, size_t *failed)
{
	return metadata(s, pck, cids, n, json, merge, true, failed);
}

int store_connection_credentials_set(struct store *s, const char *pck, const char *cid,
				     const char *credentials_json)
{
	struct store_sealed cred;
	uint8_t *blob;
	int ret;

	if (!s || !credentials_json)
		return STORE_EINVAL;
	if ((ret = check_id(pck)) || (ret = check_id(cid)))
		return ret;
	if ((ret = json_check(credentials_json, true)))
		return ret;
	if (!s->ops->connection_credentials)
		return STORE_EURL; /* a back end that cannot store refreshed tokens */
	ret = store_seal_credentials(s, pck, cid, credentials_json, &blob, &cred.len,
				     &cred.encrypted);
	if (ret)
		return ret;
	cred.blob = blob;
	ret = s->ops->connection_credentials(s, pck, cid, &cred);
	store_blob_free(blob, cred.len);
	return ret;
}

/* The in-process half of store_connection_lock: a fixed table of mutexes,
 * one picked by an FNV-1a hash of "pck\0cid". Shared by every store of the
 * process, which is what a lock on a connection's key means. */
#define CONN_LOCKS 256
static pthread_mutex_t conn_locks[CONN_LOCKS] = {[0 ... CONN_LOCKS - 1] = PTHREAD_MUTEX_INITIALIZER};

uint32_t store_connection_hash(const char *pck, const char *cid)
{
	uint32_t h = 2166136261u;

	for (const char *p = pck; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	h = (h ^ 0u) * 16777619u;
	for (const char *p = cid; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return h;
}

static pthread_mutex_t *conn_lock_of(const char *pck, const char *cid)
{
	return &conn_locks[store_connection_hash(pck, cid) % CONN_LOCKS];
}

int store_connection_lock(struct store *s, const char *pck, const char *cid)
{
	pthread_mutex_t *m;
	int ret;

	if (!s || !pck || !cid)
		return STORE_EINVAL;
	m = conn_lock_of(pck, cid);
	pthread_mutex_lock(m);
	if (s->ops->connection_lock) {
		ret = s->ops->connection_lock(s, pck, cid);
		if (ret) {
			pthread_mutex_unlock(m);
			return ret;
		}
	}
	return 0;
}

void store_connection_unlock(struct store *s, const char *pck, const char *cid)
{
	if (!s || !pck || !cid)
		return;
	if (s->ops->connection_unlock)
		s->ops->connection_unlock(s, pck, cid);
	pthread_mutex_unlock(conn_lock_of(pck, cid));
}

/* ---------------------------------------------------------------------------
 * Idempotency.
 */

void store_idempotency_free(struct store_idempotency *r)
{
	if (!r)
		return;
	store_secret_free(r->body); /* a reply may carry credentials */
	util_free_all(r->key, r->method_path, r->request_hash, r);
}

int store_idempotency_get(struct store *s, const char *key, struct store_idempotency **out)
{
	int ret;

	*out = NULL;
	if (!s)
		return STORE_EINVAL;
	if ((ret = check_id(key)))
		return ret;
	ret = s->ops->idempotency_get(s, key, out);
	if (ret == 0 && (ret = idem_open(s, *out)) != 0) {
		store_idempotency_free(*out);
		*out = NULL;
	}
	return ret;
}

int store_idempotency_put(struct store *s, const struct store_idempotency_input *in)
{
	int ret;

	struct store_idempotency_input sealed;
	char *body = NULL;

	if (!s || !in || in->respond)
		return STORE_EINVAL;
	if ((ret = check_idem(in)))
		return ret;
	if ((ret = idem_seal(s, in->key, in->body, &body)))
		return ret;
	sealed = *in;
	if (body)
		sealed.body = body;
	ret = s->ops->idempotency_put(s, &sealed);
	free(body);
	return ret;
}

/* ---------------------------------------------------------------------------
 * Events.
 */

int store_event_insert(struct store *s, const char *type, const char *cid, const char *pck,
		       bool claim, int64_t generation, int64_t *event_id)
{
	int ret;

	*event_id = 0;
	if (!s || !valid_event_type(type))
		return STORE_EINVAL;
	if ((ret = check_id(cid)) || (ret = check_id(pck)))
		return ret;
	ret = s->ops->event_insert(s, type, cid, pck, claim, generation, event_id);
	if (ret)
		*event_id = 0;
	return ret;
}

int store_event_claim(struct store *s, int64_t generation, struct store_event *ev)
{
	int ret;

	memset(ev, 0, sizeof(*ev));
	if (!s)
		return STORE_EINVAL;
	ret = s->ops->event_claim(s, generation, ev);
	if (ret)
		memset(ev, 0, sizeof(*ev));
	return ret;
}

static int execution_end_check(int64_t id, const struct store_execution_end *end);

static void claim_batch_clear(struct store_claim_batch *b)
{
	if (b->out && b->max)
		memset(b->out, 0, b->max * sizeof(*b->out));
	b->n = 0;
	b->more = false;
	memset(&b->last, 0, sizeof(b->last));
}

int store_event_claim_batch(struct store *s, struct store_claim_batch *b)
{
	int ret;

	claim_batch_clear(b);
	if (!s || !b->plan || (b->n_ends && !b->ends) || !b->out || b->max == 0)
		return STORE_EINVAL;
	for (size_t i = 0; i < b->n_ends; i++)
		if ((ret = execution_end_check(b->ends[i].execution_id, b->ends[i].end)))
			return ret;
	ret = s->ops->event_claim_batch(s, b);
	if (ret)
		claim_batch_clear(b);
	return ret;
}

int store_event_claim_next(struct store *s, int64_t complete_id,
			   const struct store_execution_end *complete, int64_t generation,
			   store_claim_fn plan, void *user, struct store_event *ev,
			   int64_t *execution_id)
{
	struct store_completion end = {complete_id, complete};
	struct store_claimed one;
	struct store_claim_batch b = {
		.ends = &end, .n_ends = complete_id > 0, .generation = generation, .plan = plan,
		.user = user, .out = &one, .max = 1,
	};
	int ret;

	*execution_id = 0;
	if (complete_id < 0) {
		memset(ev, 0, sizeof(*ev));
		return STORE_EINVAL;
	}
	ret = store_event_claim_batch(s, &b);
	*ev = b.last;
	if (ret == 0 && b.n == 1)
		*execution_id = one.execution_id;
	return ret;
}

int store_event_claim_start(struct store *s, int64_t generation, store_claim_fn plan, void *user,
			    struct store_event *ev, int64_t *execution_id)
{
	return store_event_claim_next(s, 0, NULL, generation, plan, user, ev, execution_id);
}

int store_event_finish(struct store *s, int64_t event_id)
{
	if (!s || event_id <= 0)
		return STORE_EINVAL;
	return s->ops->event_finish(s, event_id);
}

int store_event_get(struct store *s, int64_t event_id, struct store_event *ev)
{
	int ret;

	memset(ev, 0, sizeof(*ev));
	if (!s || event_id <= 0)
		return STORE_EINVAL;
	ret = s->ops->event_get(s, event_id, ev);
	if (ret)
		memset(ev, 0, sizeof(*ev));
	return ret;
}

int store_event_count_pending(struct store *s, int64_t *count)
{
	int ret;

	*count = 0;
	if (!s)
		return STORE_EINVAL;
	ret = s->ops->event_count_pending(s, count);
	if (ret)
		*count = 0;
	return ret;
}

/* ---------------------------------------------------------------------------
 * Executions.
 */

void store_execution_free(struct store_execution *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->n_logs; i++)
		free(e->logs[i].message);
	util_free_all(e->script, e->event, e->connection_id, e->provider_config_key, e->error,
		      e->plugin_version, e->host_id, e->logs, e);
}

void store_execution_list_free(struct store_execution **items, size_t n)
{
	for (size_t i = 0; items && i < n; i++)
		store_execution_free(items[i]);
	free(items);
}

int store_idem_response(const struct store_idempotency_input *idem,
			const struct store_upsert_result *r, int *status, const char **body,
			char **made)
{
	*made = NULL;
	*status = idem->status;
	*body = idem->body;
	if (!idem->respond)
		return 0;
	*status = 0;
	if (idem->respond(idem->user, r, status, made) != 0 || *status < 100 || *status > 599)
		return STORE_ECALLBACK;
	*body = *made;
	return *made && strlen(*made) > STORE_JSON_MAX ? STORE_ETOOBIG : 0;
}

int store_plan_claim(store_claim_fn plan, void *user, const struct store_event *ev,
		     struct store_execution_input *in)
{
	int p = plan(user, ev, in), ret;

	if (p == STORE_CLAIM_START) {
		ret = store_execution_input_check(in);
		if (!ret && in->event_id != ev->id)
			ret = STORE_EINVAL;
		return ret ? ret : p;
	}
	return p == STORE_CLAIM_ONLY || p == STORE_CLAIM_DONE ? p : STORE_ECALLBACK;
}

int store_events_accepted(int ret, bool deleting)
{
	if (ret == STORE_ENOTFOUND)
		return 0;
	return ret == 0 && deleting ? STORE_EDELETING : ret;
}

int store_execution_input_check(const struct store_execution_input *in)
{
	int ret;

	if (in->kind != STORE_EXEC_EVENT && in->kind != STORE_EXEC_ACTION)
		return STORE_EINVAL;
	if ((ret = check_id(in->script)) || (ret = check_id(in->connection_id)) ||
	    (ret = check_id(in->provider_config_key)) || (ret = check_opt_id(in->plugin_version)))
		return ret;
	if (in->kind == STORE_EXEC_EVENT && (!valid_event_type(in->event) || in->event_id <= 0))
		return STORE_EINVAL;
	if (in->kind == STORE_EXEC_ACTION && in->event)
		return STORE_EINVAL;
	if (in->event_id < 0 || in->parent_execution_id < 0)
		return STORE_EINVAL;
	return 0;
}

int store_execution_create(struct store *s, const struct store_execution_input *in,
			   int64_t *execution_id)
{
	int ret;

	*execution_id = 0;
	if (!s || !in)
		return STORE_EINVAL;
	ret = store_execution_input_check(in);
	if (ret)
		return ret;
	ret = s->ops->execution_create(s, in, execution_id);
	if (ret)
		*execution_id = 0;
	return ret;
}

int store_execution_finish(struct store *s, int64_t id, enum store_exec_status status,
			   const char *error, int64_t duration_ms)
{
	if (!s || id <= 0)
		return STORE_EINVAL;
	if (status == STORE_EXEC_RUNNING || (unsigned)status > STORE_EXEC_INTERRUPTED)
		return STORE_EINVAL;
	return s->ops->execution_finish(s, id, status, error, duration_ms);
}

int store_execution_append_logs(struct store *s, int64_t id,
				const struct store_log_line_input *lines, size_t n,
				int64_t dropped)
{
	if (!s || id <= 0 || (n && !lines) || dropped < 0)
		return STORE_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!lines[i].message)
			return STORE_EINVAL;
	if (n == 0 && dropped == 0)
		return 0;
	return s->ops->execution_append_logs(s, id, lines, n, dropped);
}

static int execution_end_check(int64_t id, const struct store_execution_end *end)
{
	if (id <= 0 || !end || end->event_id < 0)
		return STORE_EINVAL;
	if (end->status == STORE_EXEC_RUNNING || (unsigned)end->status > STORE_EXEC_INTERRUPTED)
		return STORE_EINVAL;
	if ((end->n_lines && !end->lines) || end->dropped < 0)
		return STORE_EINVAL;
	for (size_t i = 0; i < end->n_lines; i++)
		if (!end->lines[i].message)
			return STORE_EINVAL;
	return 0;
}

int store_execution_complete(struct store *s, int64_t id, const struct store_execution_end *end)
{
	int ret;

	if (!s)
		return STORE_EINVAL;
	if ((ret = execution_end_check(id, end)))
		return ret;
	return s->ops->execution_complete(s, id, end);
}

int store_execution_get(struct store *s, int64_t id, struct store_execution **out)
{
	*out = NULL;
	if (!s || id <= 0)
		return STORE_EINVAL;
	return s->ops->execution_get(s, id, out);
}

int store_execution_list(struct store *s, const struct store_execution_filter *f,
			 struct store_execution ***items, size_t *n, int64_t *next_cursor)
{
	struct store_execution_filter g;
	int ret;

	*items = NULL;
	*n = 0;
	*next_cursor = 0;
	if (!s || !f)
		return STORE_EINVAL;
	g = *f;
	if ((ret = check_opt_id(g.connection_id)) || (ret = check_opt_id(g.provider_config_key)) ||
	    (ret = check_opt_id(g.script)) || (ret = check_opt_id(g.event)))
		return ret;
	if (g.status != -1 && (g.status < 0 || g.status > STORE_EXEC_INTERRUPTED))
		return STORE_EINVAL;
	if (g.cursor < 0)
		return STORE_EINVAL;
	if (g.limit == 0)
		g.limit = 50;
	if (g.limit > STORE_LIST_MAX)
		g.limit = STORE_LIST_MAX;
	ret = s->ops->execution_list(s, &g, items, n, next_cursor);
	if (ret) {
		*items = NULL;
		*n = 0;
		*next_cursor = 0;
	}
	return ret;
}

int store_execution_retry(struct store *s, int64_t id, int64_t *event_id)
{
	int ret;

	*event_id = 0;
	if (!s || id <= 0)
		return STORE_EINVAL;
	ret = s->ops->execution_retry(s, id, event_id);
	if (ret)
		*event_id = 0;
	return ret;
}

/* ---------------------------------------------------------------------------
 * Recovery and the ledger.
 */

int store_recover(struct store *s, struct store_recovery *r)
{
	int ret;

	memset(r, 0, sizeof(*r));
	if (!s)
		return STORE_EINVAL;
	ret = s->ops->recover(s, r);
	if (!ret && s->ops->async_recover)
		ret = s->ops->async_recover(s, util_now_ms());
	if (ret)
		memset(r, 0, sizeof(*r));
	return ret;
}

int store_interrupt_running(struct store *s, const char *error, int64_t *count)
{
	int64_t c = 0;
	int ret;

	if (count)
		*count = 0;
	if (!s)
		return STORE_EINVAL;
	ret = s->ops->interrupt_running(s, error ? error : STORE_INTERRUPTED_ERROR, &c);
	if (!ret && count)
		*count = c;
	return ret;
}

int store_ledger_get(void *user, const char *name, char version[64],
		     uint8_t hash[STORE_HASH_BYTES])
{
	struct store *s = user;
	int ret;

	memset(version, 0, 64);
	memset(hash, 0, STORE_HASH_BYTES);
	if (!s)
		return STORE_EINVAL;
	if ((ret = check_id(name)))
		return ret;
	ret = s->ops->ledger_get(s, name, version, hash);
	if (ret != 0) {
		memset(version, 0, 64);
		memset(hash, 0, STORE_HASH_BYTES);
	}
	return ret;
}

int store_ledger_put(void *user, const char *name, const char *version,
		     const uint8_t hash[STORE_HASH_BYTES])
{
	struct store *s = user;
	int ret;

	if (!s || !version || !hash || !*version || strlen(version) >= 64)
		return STORE_EINVAL;
	if ((ret = check_id(name)))
		return ret;
	return s->ops->ledger_put(s, name, version, hash);
}
