/*
 * test_catalogue_templates.c - every proxy template of Nango's full
 * providers.yaml (base_url, headers, query), expanded with sample
 * credentials and connection config. Counts what expands, and holds every
 * failure to the documented refusals (docs/config.md, "Templates"):
 *   - the request-signing functions (sha256Hex, sha256Base64, hmacSha1Hex,
 *     awsSigV4, ed25519Sign, fingerprint): CONFIG_ETEMPLATE "not supported";
 *   - the request-bound variables (method, host, path, endpoint, params,
 *     random, bodyCanonicalParams) and the connect-flow ones (step1.*,
 *     step2.*, assertionOption.*), which a connection does not hold:
 *     CONFIG_EUNDEFINED.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static const char *const request_bound[] = {"method", "host", "path", "endpoint", "params", "random",
					    "bodyCanonicalParams", NULL};
static const char *const flow_prefixes[] = {"step1.", "step2.", "assertionOption.", NULL};

static bool refused_variable(const char *name)
{
	for (size_t i = 0; request_bound[i]; i++)
		if (strcmp(name, request_bound[i]) == 0)
			return true;
	for (size_t i = 0; flow_prefixes[i]; i++)
		if (strncmp(name, flow_prefixes[i], strlen(flow_prefixes[i])) == 0)
			return true;
	return false;
}

/* Sample values: "sample" for every variable a connection can hold. */
static const char *lookup(void *ud, const char *name)
{
	(void)ud;
	return refused_variable(name) ? NULL : "sample-value";
}

struct tally {
	size_t templates, expanded, refused_fn, refused_var;
};

static void one(const char *provider, const char *what, const char *tmpl, struct tally *t)
{
	char err[CONFIG_ERR_MAX] = "";
	char *out = NULL;
	int ret;

	if (!tmpl)
		return;
	t->templates++;
	ret = config_interpolate(tmpl, lookup, NULL, &out, err, sizeof(err));
	if (ret == 0) {
		t->expanded++;
		/* nothing of the template language is left in what it gave */
		if (strstr(out, "${"))
			fail_msg("%s %s: '%s' left '%s'", provider, what, tmpl, out);
		free(out);
		return;
	}
	if (ret == CONFIG_ETEMPLATE && strstr(err, "is not supported (it signs or hashes each request)")) {
		t->refused_fn++;
		return;
	}
	if (ret == CONFIG_EUNDEFINED) {
		const char *q = strstr(err, "variable '");
		char name[128] = "";

		if (q)
			sscanf(q + 10, "%127[^']", name);
		if (refused_variable(name)) {
			t->refused_var++;
			return;
		}
	}
	fail_msg("%s %s: '%s': %s (%s)", provider, what, tmpl, err, status_str(ret));
}

static void test_every_template(void **state)
{
	const char *path = getenv("NANGO_PROVIDERS_YAML");
	struct config_providers *p = NULL;
	struct tally t = {0};
	char err[CONFIG_ERR_MAX];

	(void)state;
	assert_non_null(path);
	if (config_load_providers(path, &p, err, sizeof(err)))
		fail_msg("%s", err);
	for (size_t i = 0; i < p->n; i++) {
		const struct config_provider *pr = &p->items[i];

		one(pr->name, "base_url", pr->base_url, &t);
		for (size_t j = 0; j < pr->headers.n; j++)
			one(pr->name, pr->headers.items[j].key, pr->headers.items[j].value, &t);
		for (size_t j = 0; j < pr->query.n; j++)
			one(pr->name, pr->query.items[j].key, pr->query.items[j].value, &t);
		one(pr->name, "token_url", pr->token_url, &t);
		one(pr->name, "refresh_url", pr->refresh_url, &t);
	}
	print_message("%zu providers, %zu templates: %zu expanded, %zu refused (signing function), "
		      "%zu refused (request-bound or connect-flow variable)\n",
		      p->n, t.templates, t.expanded, t.refused_fn, t.refused_var);
	assert_int_equal(t.templates, t.expanded + t.refused_fn + t.refused_var);
	/* Nango's catalogue has about 1,000 providers; all but a handful expand. */
	assert_true(p->n > 500);
	assert_true(t.refused_fn + t.refused_var < 40);
	config_providers_free(p);
}

/* The functions one by one, with fixed inputs. */
static void test_functions(void **state)
{
	const char *vars[][2] = {{"credentials.username", "user"}, {"credentials.password", "pass"}};
	char err[CONFIG_ERR_MAX];
	char *out = NULL;

	(void)state;
	(void)vars;
	assert_int_equal(config_interpolate("Basic ${base64(${credentials.username}:${credentials.password})}",
					    lookup, NULL, &out, err, sizeof(err)), 0);
	assert_string_equal(out, "Basic c2FtcGxlLXZhbHVlOnNhbXBsZS12YWx1ZQ=="); /* sample-value:sample-value */
	free(out);
	assert_int_equal(config_interpolate("${now:YYYY}", lookup, NULL, &out, err, sizeof(err)), 0);
	assert_int_equal(strlen(out), 4);
	assert_true(atoi(out) >= 2025);
	free(out);
	assert_int_equal(config_interpolate("${now}", lookup, NULL, &out, err, sizeof(err)), 0);
	assert_int_equal(strlen(out), strlen("2026-01-01T00:00:00Z"));
	assert_int_equal(out[10], 'T');
	free(out);
	assert_int_equal(config_interpolate("${now+1:minutes:X}", lookup, NULL, &out, err, sizeof(err)), 0);
	assert_true(atoll(out) > 1700000000LL);
	free(out);
	assert_int_equal(config_interpolate("${sha256Hex(x)}", lookup, NULL, &out, err, sizeof(err)),
			 CONFIG_ETEMPLATE);
	assert_non_null(strstr(err, "sha256Hex() is not supported"));
	assert_int_equal(config_interpolate("${nosuch(x)}", lookup, NULL, &out, err, sizeof(err)), CONFIG_ETEMPLATE);
	assert_int_equal(config_interpolate("${now:QQQ}", lookup, NULL, &out, err, sizeof(err)), CONFIG_ETEMPLATE);
	assert_int_equal(config_interpolate("${base64(${method})}", lookup, NULL, &out, err, sizeof(err)),
			 CONFIG_EUNDEFINED);
	{
		/* nesting is capped (8), so a template cannot run the stack down */
		char deep[2048] = "";

		for (int i = 0; i < 9; i++)
			strcat(deep, "${base64(");
		strcat(deep, "x");
		for (int i = 0; i < 9; i++)
			strcat(deep, ")}");
		assert_int_equal(config_interpolate(deep, lookup, NULL, &out, err, sizeof(err)), CONFIG_ETEMPLATE);
		assert_non_null(strstr(err, "nested more than 8 deep"));
		deep[0] = '\0';
		for (int i = 0; i < 8; i++)
			strcat(deep, "${base64(");
		strcat(deep, "x");
		for (int i = 0; i < 8; i++)
			strcat(deep, ")}");
		assert_int_equal(config_interpolate(deep, lookup, NULL, &out, err, sizeof(err)), 0);
		free(out);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_functions),
		cmocka_unit_test(test_every_template),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
