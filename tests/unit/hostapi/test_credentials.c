/*
 * test_credentials.c - hostapi_connection_fresh() against a real temporary
 * SQLite store, for the cases that need no token endpoint: fresh tokens
 * are returned as they are, and each refusal (no refresh_token, no OAuth
 * client, no token_url, an endpoint that cannot be reached) fails with its
 * code and, where Nango would, is recorded in the connection. The refresh
 * itself, against a fake token endpoint, is tests/integration/test_credentials.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "config.h"
#include "credentials.h"
#include "store.h"
#include "util.h"

static struct {
	char dir[64];
	struct store *store;
	struct config_host *config;
	struct config_providers *providers;
} T;

static const char host_yaml[] = "oauth_clients:\n  with-client:\n    client_id: id\n    client_secret: s\n";
static const char providers_yaml[] =
	"nowhere:\n  auth_mode: OAUTH2\n  token_url: http://127.0.0.1:1/token\n"
	"no-token-url:\n  auth_mode: OAUTH2\n";

static void add(const char *pck, const char *cid, const char *creds)
{
	struct store_connection_input in = {.connection_id = cid, .provider_config_key = pck,
					    .provider = "nowhere", .credentials = creds};
	struct store_upsert_result r;

	assert_int_equal(store_connection_upsert(T.store, &in, NULL, &r), 0);
}

static int setup(void **state)
{
	char err[512], url[128];

	(void)state;
	snprintf(T.dir, sizeof(T.dir), "/tmp/evs-cred-XXXXXX");
	if (!mkdtemp(T.dir))
		return -1;
	snprintf(url, sizeof(url), "sqlite:%s/t.db", T.dir);
	if (store_open(url, NULL, &T.store, err, sizeof(err)) < 0 ||
	    config_parse_host(host_yaml, strlen(host_yaml), "evscript.yaml", &T.config, err, sizeof(err)) < 0 ||
	    config_parse_providers(providers_yaml, strlen(providers_yaml), "providers.yaml", &T.providers, err,
				   sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	store_close(T.store);
	config_host_free(T.config);
	config_providers_free(T.providers);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", T.dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* hostapi_connection_fresh for (pck, cid) with provider name. */
static int fresh(const char *pck, const char *cid, const char *provider, bool force, char *err, size_t errlen,
		 struct store_connection **c)
{
	return hostapi_connection_fresh(T.store, T.config, config_provider_find(T.providers, provider), pck, cid,
					force, c, err, errlen);
}

/* The stored credentials' refresh_error.message, or NULL (static buffer). */
static const char *recorded_error(const char *pck, const char *cid)
{
	static char msg[512];
	struct store_connection *c = NULL;
	struct json_object *o, *e, *m;

	assert_int_equal(store_connection_get(T.store, pck, cid, &c), 0);
	o = json_tokener_parse(c->credentials);
	store_connection_free(c);
	if (!o || !json_object_object_get_ex(o, "refresh_error", &e) || !json_object_object_get_ex(e, "message", &m)) {
		json_object_put(o);
		return NULL;
	}
	snprintf(msg, sizeof(msg), "%s", json_object_get_string(m));
	json_object_put(o);
	return msg;
}

static void test_parse_time(void **state)
{
	(void)state;
	assert_int_equal(credentials_parse_time("1970-01-01T00:00:00Z"), 0);
	assert_int_equal(credentials_parse_time("1970-01-01T00:00:01.5Z"), 1500);
	assert_int_equal(credentials_parse_time("1970-01-01T01:00:00+01:00"), 0);
	assert_int_equal(credentials_parse_time("2001-09-09T01:46:40.000Z"), 1000000000000LL);
	assert_int_equal(credentials_parse_time("1970-01-01 00:00:02"), 2000);
	assert_int_equal(credentials_parse_time("yesterday"), -1);
	assert_int_equal(credentials_parse_time("2020-01-01T00:00:00 junk"), -1);
	assert_int_equal(credentials_parse_time(NULL), -1);
}

static void test_fresh_needs_nothing(void **state)
{
	struct store_connection *c = NULL;
	char err[CRED_ERR_MAX], exp[64], creds[256];

	(void)state;
	util_iso_time(util_now_ms() + 3600 * 1000, false, exp);
	snprintf(creds, sizeof(creds), "{\"type\":\"OAUTH2\",\"access_token\":\"a\",\"refresh_token\":\"r\","
				       "\"expires_at\":\"%s\"}", exp);
	add("with-client", "valid", creds);
	add("with-client", "key", "{\"type\":\"API_KEY\",\"apiKey\":\"k\"}");
	/* valid for an hour: no request (the token URL is a closed port) */
	assert_int_equal(fresh("with-client", "valid", "nowhere", false, err, sizeof(err), &c), 0);
	assert_non_null(strstr(c->credentials, "\"access_token\":\"a\""));
	store_connection_free(c);
	assert_int_equal(fresh("with-client", "key", "nowhere", true, err, sizeof(err), &c), 0);
	store_connection_free(c);
	assert_int_equal(fresh("with-client", "gone", "nowhere", false, err, sizeof(err), &c), STORE_ENOTFOUND);
	assert_null(c);
}

static void test_refusals(void **state)
{
	static const char expired[] = "{\"type\":\"OAUTH2\",\"access_token\":\"a\",\"refresh_token\":\"r\","
				      "\"expires_at\":\"2020-01-01T00:00:00Z\"}";
	struct store_connection *c = NULL;
	char err[CRED_ERR_MAX];

	(void)state;
	add("with-client", "no-rt", "{\"type\":\"OAUTH2\",\"access_token\":\"a\",\"expires_at\":\"2020-01-01T00:00:00Z\"}");
	assert_int_equal(fresh("with-client", "no-rt", "nowhere", false, err, sizeof(err), &c), CRED_EEXPIRED);
	assert_null(c);
	assert_string_equal(err, "the access token needs a refresh and the connection has no refresh_token");
	assert_string_equal(recorded_error("with-client", "no-rt"), err);

	add("without-client", "x", expired);
	assert_int_equal(fresh("without-client", "x", "nowhere", false, err, sizeof(err), &c), CRED_ENOCLIENT);
	assert_non_null(strstr(err, "no OAuth client for it (host file: oauth_clients.without-client)"));
	assert_null(recorded_error("without-client", "x")); /* a configuration problem, not the connection's */

	add("with-client", "no-url", expired);
	assert_int_equal(fresh("with-client", "no-url", "no-token-url", false, err, sizeof(err), &c), CRED_EREFRESH);
	assert_string_equal(err, "provider no-token-url has no token_url: its token cannot be refreshed");

	add("with-client", "unreachable", expired);
	assert_int_equal(fresh("with-client", "unreachable", "nowhere", false, err, sizeof(err), &c), CRED_EREFRESH);
	assert_non_null(strstr(err, "the token endpoint could not be reached"));
	assert_string_equal(recorded_error("with-client", "unreachable"), err);
	/* the old tokens are kept */
	assert_int_equal(store_connection_get(T.store, "with-client", "unreachable", &c), 0);
	assert_non_null(strstr(c->credentials, "\"access_token\":\"a\""));
	store_connection_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_time),
		cmocka_unit_test(test_fresh_needs_nothing),
		cmocka_unit_test(test_refusals),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
