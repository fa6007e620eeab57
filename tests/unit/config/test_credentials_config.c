/*
 * test_credentials_config.c - the config that credentials use: the host
 * file's oauth_clients (parsing, errors at their line and column,
 * client_secret_env resolved at load), and the providers' token endpoint,
 * signature, retry and verification keys (aliases included).
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

#include "config.h"

static char err[CONFIG_ERR_MAX];

static void parse_err(const char *yaml, const char *want)
{
	struct config_host *h = (void *)1;

	assert_int_equal(config_parse_host(yaml, strlen(yaml), "evscript.yaml", &h, err, sizeof(err)),
			 CONFIG_EINVALID);
	assert_null(h);
	if (strcmp(err, want) != 0)
		fail_msg("expected '%s', got '%s'", want, err);
}

static void test_oauth_clients_parse(void **state)
{
	static const char yaml[] = "oauth_clients:\n"
				   "    github:\n"
				   "        client_id: Iv1.abc\n"
				   "        client_secret: s3cret\n"
				   "    slack:\n"
				   "        client_id: 123.456\n"
				   "        client_secret_env: SLACK_SECRET\n";
	struct config_host *h = NULL;
	const struct config_oauth_client *oc;

	(void)state;
	assert_int_equal(config_parse_host(yaml, strlen(yaml), "evscript.yaml", &h, err, sizeof(err)), 0);
	assert_int_equal(h->n_oauth_clients, 2);
	oc = config_oauth_client_find(h, "github");
	assert_non_null(oc);
	assert_string_equal(oc->client_id, "Iv1.abc");
	assert_string_equal(oc->client_secret, "s3cret");
	oc = config_oauth_client_find(h, "slack");
	assert_null(oc->client_secret); /* until config_load reads the environment */
	assert_string_equal(oc->client_secret_env, "SLACK_SECRET");
	assert_null(config_oauth_client_find(h, "hubspot"));
	assert_true(h->proxy_base_url_override); /* the default */
	config_host_free(h);

	parse_err("oauth_clients:\n  github:\n    client_secret: x\n",
		  "evscript.yaml:2:3: oauth_clients.github: client_id is required");
	parse_err("oauth_clients:\n  github:\n    client_id: a\n",
		  "evscript.yaml:2:3: oauth_clients.github: expected exactly one of client_secret and client_secret_env");
	parse_err("oauth_clients:\n  github:\n    client_id: a\n    client_secret: b\n    client_secret_env: C\n",
		  "evscript.yaml:2:3: oauth_clients.github: expected exactly one of client_secret and client_secret_env");
	parse_err("oauth_clients:\n  github:\n    client_id: a\n    secret: b\n",
		  "evscript.yaml:4:5: oauth_clients.github: unknown key 'secret', expected client_id, client_secret or "
		  "client_secret_env");
	parse_err("oauth_clients:\n  github: [a]\n",
		  "evscript.yaml:2:11: oauth_clients.github: expected a mapping with client_id and client_secret, "
		  "found a list");
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_oauth_clients_env(void **state)
{
	char dir[] = "/tmp/evs-oauth-XXXXXX", path[512];
	char *const env_ok[] = {"SLACK_SECRETX=no", "SLACK_SECRET=from-env", NULL};
	char *const env_none[] = {"HOME=/root", NULL};
	struct config_host *h = NULL;

	(void)state;
	assert_non_null(mkdtemp(dir));
	write_file(dir, "providers.yaml", "bare: {}\n");
	write_file(dir, "evscript.yaml", "secret_key: k\nproviders: ./providers.yaml\n"
					 "oauth_clients:\n  slack:\n    client_id: a\n    client_secret_env: SLACK_SECRET\n");
	snprintf(path, sizeof(path), "%s/evscript.yaml", dir);
	assert_int_equal(config_load(path, env_ok, &h, err, sizeof(err)), 0);
	assert_string_equal(config_oauth_client_find(h, "slack")->client_secret, "from-env");
	config_host_free(h);
	assert_int_equal(config_load(path, env_none, &h, err, sizeof(err)), CONFIG_EINVALID);
	assert_null(h);
	assert_non_null(strstr(err, ":4:3: oauth_clients.slack: client_secret_env names SLACK_SECRET, which is not set"));
	snprintf(path, sizeof(path), "%s/evscript.yaml", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/providers.yaml", dir);
	unlink(path);
	rmdir(dir);
}

static void test_provider_keys(void **state)
{
	static const char yaml[] =
		"base:\n"
		"  auth_mode: OAUTH2\n"
		"  token_url: https://${connectionConfig.host}/token\n"
		"  token_request_auth_method: basic\n"
		"  refresh_url: https://x/refresh\n"
		"  token_params:\n    grant_type: client_credentials\n    nested: {a: 1}\n"
		"  refresh_params:\n    grant_type: refresh_token\n"
		"  proxy:\n"
		"    base_url: https://api.example.com\n"
		"    retry:\n      error_code: ['403', 5xx]\n"
		"      in_body: {path: error.message, value: '/Retry after (.+)/', strategy: at}\n"
		"    verification:\n      method: POST\n      endpoints: [/me, /v2/me]\n"
		"      data: {probe: true, n: 1, s: '1', list: [a, null]}\n"
		"child:\n  alias: base\n  display_name: Child\n"
		"app:\n  auth_mode: OAUTH2\n  token_url: {OAUTH2: https://x/token, APP: https://x/app}\n"
		"oauth1:\n  auth_mode: OAUTH1\n  signature_method: PLAINTEXT\n";
	struct config_providers *p = NULL;
	const struct config_provider *c;

	(void)state;
	if (config_parse_providers(yaml, strlen(yaml), "providers.yaml", &p, err, sizeof(err)))
		fail_msg("%s", err);
	c = config_provider_find(p, "child"); /* everything inherited */
	assert_string_equal(c->token_url, "https://${connectionConfig.host}/token");
	assert_string_equal(c->token_request_auth_method, "basic");
	assert_string_equal(c->refresh_url, "https://x/refresh");
	assert_int_equal(c->token_params.n, 1); /* the nested one is not a form field */
	assert_string_equal(config_map_get(&c->token_params, "grant_type"), "client_credentials");
	assert_string_equal(config_map_get(&c->refresh_params, "grant_type"), "refresh_token");
	assert_int_equal(c->retry.error_code.n, 2);
	assert_string_equal(c->retry.error_code.items[1], "5xx");
	assert_string_equal(c->retry.in_body_path, "error.message");
	assert_string_equal(c->retry.in_body_strategy, "at");
	assert_true(c->verification.present);
	assert_string_equal(c->verification.method, "POST");
	assert_int_equal(c->verification.endpoints.n, 2);
	assert_string_equal(c->verification.data, "{\"probe\":true,\"n\":1,\"s\":\"1\",\"list\":[\"a\",null]}");
	assert_string_equal(config_provider_find(p, "app")->token_url, "https://x/token");
	assert_string_equal(config_provider_find(p, "oauth1")->signature_method, "PLAINTEXT");
	config_providers_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_oauth_clients_parse),
		cmocka_unit_test(test_oauth_clients_env),
		cmocka_unit_test(test_provider_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
