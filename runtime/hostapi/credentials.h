/*
 * credentials.h - a connection's credentials, fresh: OAuth2 token refresh
 * and the OAuth2 client-credentials grant, before anything uses a token.
 *
 * hostapi_connection_fresh() is the one door: the proxy (scripts' proxy()
 * and the HTTP API's /proxy), get_connection() and GET /connections/{id}
 * read a connection through it.
 *
 *   OAUTH2     refreshed when its expires_at is within
 *              CRED_REFRESH_MARGIN_S of now (or past), or when force is
 *              set: a refresh_token grant at the provider's token_url
 *              (interpolated with the connection's config) with the
 *              provider's refresh_params (else its token_params), the
 *              client from the credentials' config_override (when it has
 *              both id and secret) or the host file's oauth_clients entry
 *              for the integration, sent in the fields or, when the
 *              provider's token_request_auth_method is "basic" (or its
 *              authorization_method "header"), with HTTP basic auth; the
 *              fields as a form, JSON or query (body_format).
 *   OAUTH2_CC  a client_credentials grant with the connection's own
 *              client_id and client_secret and the provider's token_params
 *              when it has no token, when the token expires within the
 *              margin, or when force is set; the token is kept until then.
 *   others     returned as stored.
 *
 * Single flight. The refresh runs under store_connection_lock() for the
 * connection, and the connection is read again once the lock is held, so
 * concurrent callers wait for one refresh and then use its token; when
 * that refresh failed, they fail with its message, without a request of
 * their own (unless force). The store
 * back end decides how far the lock reaches (this process; with a back end
 * shared by several hosts, all of them: store.h).
 *
 * Stored form. New tokens replace the old ones in the sealed credentials
 * (store_connection_credentials_set): access_token (token for OAUTH2_CC),
 * refresh_token when the provider sent a new one, expires_at (ISO 8601 UTC,
 * absent when the provider gave no expires_in) and raw (the token response).
 * A failed refresh keeps the tokens and records
 *   "refresh_error": {"message": "...", "at": "<ISO time>"}
 * in the credentials, which GET /connections/{id} shows as an error of type
 * "auth"; the next successful refresh removes it.
 */
#ifndef EVS_CREDENTIALS_H
#define EVS_CREDENTIALS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "store.h"

#define CRED_REFRESH_MARGIN_S 300     /* refresh tokens expiring within 5 minutes */
#define CRED_TOKEN_TIMEOUT_MS 30000   /* one token request */
#define CRED_ERR_MAX 512

/* Reads connection (pck, cid) with fresh credentials, refreshing them
 * first when they need it (above) or when force is set. cfg gives the
 * oauth_clients; provider (may be NULL: then nothing is refreshed) the
 * token endpoint. On success *out is owned by the caller
 * (store_connection_free) and its credentials are the ones to use. On
 * failure *out is NULL, err holds one sentence for the user (never a
 * secret), and the code is a STORE_E* (reading or writing the connection),
 * CRED_ENOCLIENT (no client to refresh with), CRED_EEXPIRED (expired, with
 * no refresh_token) or CRED_EREFRESH (the token endpoint refused or failed;
 * recorded in the connection as above). Safe from any thread; it blocks
 * for the token request (at most CRED_TOKEN_TIMEOUT_MS) and while another
 * thread refreshes the same connection. */
int hostapi_connection_fresh(struct store *s, const struct config_host *cfg,
			     const struct config_provider *provider, const char *pck, const char *cid,
			     bool force, struct store_connection **out, char *err, size_t errlen);

/* Whether the proxy can sign OAUTH1 requests with signature_method (a
 * provider's; NULL means Nango's default, HMAC-SHA1): HMAC-SHA256 and
 * PLAINTEXT. HMAC-SHA1 is in none of evscript's dependencies. */
bool credentials_oauth1_supported(const char *signature_method);

/* An ISO 8601 time ("2025-01-31T12:34:56Z", fractions and +hh:mm offsets
 * accepted) as milliseconds since the epoch, or -1. */
int64_t credentials_parse_time(const char *s);

#endif
