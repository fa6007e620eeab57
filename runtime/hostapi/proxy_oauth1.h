/*
 * proxy_oauth1.h - private to runtime/hostapi: OAuth 1.0a request signing
 * (RFC 5849) for OAUTH1 and NetSuite's TBA connections, as proxy.c sends
 * each attempt.
 */
#ifndef EVS_PROXY_OAUTH1_H
#define EVS_PROXY_OAUTH1_H

#include <stddef.h>

/* What signs: the client (consumer) and the connection's token. Strings
 * borrowed. signature_method is "HMAC-SHA256" or "PLAINTEXT" (HMAC-SHA1 is
 * in none of evscript's dependencies). realm may be NULL. */
struct oauth1_keys {
	const char *consumer_key, *consumer_secret;
	const char *token, *token_secret;
	const char *signature_method;
	const char *realm;
};

/* Whether signature_method is one proxy_oauth1_header can make. */
int proxy_oauth1_supported(const char *signature_method);

/* The Authorization header value ("OAuth realm=..., oauth_consumer_key=...,
 * oauth_signature=...") for method and url (its query parameters are
 * signed; a body is not), with a fresh nonce and timestamp. *out is
 * malloc'd, owned by the caller (it holds a signature: wipe it). 0, or
 * EVS_EINVAL (unsupported method, unparseable URL), EVS_ENOMEM. */
int proxy_oauth1_header(const struct oauth1_keys *k, const char *method, const char *url, char **out);

#endif
