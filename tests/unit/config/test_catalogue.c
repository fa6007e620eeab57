/*
 * test_catalogue.c - Nango's full providers.yaml (package @nangohq/providers,
 * fetched by the config_fetch_nango_providers fixture) loads, fast, and a
 * few known providers resolve as Nango resolves them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"

static char err[CONFIG_ERR_MAX];

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static const char *lookup(void *ud, const char *name)
{
	const char *const *kv = ud;

	for (; kv[0]; kv += 2)
		if (strcmp(kv[0], name) == 0)
			return kv[1];
	return NULL;
}

static void test_full_catalogue(void **state)
{
	const char *path = getenv("NANGO_PROVIDERS_YAML");
	struct config_providers *p = NULL;
	const struct config_provider *gh, *app, *gcal, *google, *gitlab_token, *slack, *hubspot;
	const char *vars[] = {"connectionConfig.hostname", "gitlab.example.com", "apiKey", "glpat-1", NULL};
	double t0, best = 1e9;
	char *out = NULL;
	int ret;

	(void)state;
	assert_non_null(path);
	for (int round = 0; round < 3; round++) {
		t0 = now_ms();
		ret = config_load_providers(path, &p, err, sizeof(err));
		if (ret)
			fail_msg("%s", err);
		if (now_ms() - t0 < best)
			best = now_ms() - t0;
		if (round < 2)
			config_providers_free(p);
	}
	printf("# loaded %zu providers from %s in %.1f ms (best of 3)\n", p->n, path, best);
	assert_true(p->n > 500);

	gh = config_provider_find(p, "github");
	assert_non_null(gh);
	assert_string_equal(gh->base_url, "https://api.github.com");
	assert_int_equal(gh->auth_mode, CONFIG_AUTH_OAUTH2);
	assert_int_equal(gh->paginate.type, CONFIG_PAGINATE_LINK);
	assert_string_equal(gh->paginate.link_rel_in_response_header, "next");
	assert_string_equal(gh->retry.at.items[0], "x-ratelimit-reset");

	/* github-app: alias of github, its own auth_mode, github's proxy. */
	app = config_provider_find(p, "github-app");
	assert_non_null(app);
	assert_string_equal(app->alias, "github");
	assert_int_equal(app->auth_mode, CONFIG_AUTH_APP);
	assert_string_equal(app->base_url, "https://api.github.com");

	/* google-calendar: alias of google, inherits auth_mode, own proxy. */
	google = config_provider_find(p, "google");
	gcal = config_provider_find(p, "google-calendar");
	assert_non_null(gcal);
	assert_string_equal(gcal->alias, "google");
	assert_int_equal(gcal->auth_mode, google->auth_mode);
	assert_int_equal(gcal->paginate.type, CONFIG_PAGINATE_CURSOR);

	/* An API key header template through an alias, interpolated. */
	gitlab_token = config_provider_find(p, "gitlab-group-token");
	assert_non_null(gitlab_token);
	assert_int_equal(gitlab_token->auth_mode, CONFIG_AUTH_API_KEY);
	assert_int_equal(config_interpolate(gitlab_token->base_url, lookup, vars, &out, err, sizeof(err)), 0);
	assert_string_equal(out, "https://gitlab.example.com");
	free(out);
	assert_int_equal(config_interpolate(config_map_get(&gitlab_token->headers, "private-token"), lookup, vars,
					    &out, err, sizeof(err)), 0);
	assert_string_equal(out, "glpat-1");
	free(out);

	slack = config_provider_find(p, "slack");
	assert_non_null(slack);
	assert_string_equal(slack->retry.after.items[0], "retry-after");
	hubspot = config_provider_find(p, "hubspot");
	assert_non_null(hubspot);
	assert_string_equal(hubspot->retry.remaining.items[0], "x-hubspot-ratelimit-remaining");

	/* Every alias resolved to a provider of the catalogue. */
	for (size_t i = 0; i < p->n; i++)
		if (p->items[i].alias)
			assert_non_null(config_provider_find(p, p->items[i].alias));
	config_providers_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_catalogue),
	};

	return cmocka_run_group_tests_name("config_catalogue", tests, NULL, NULL);
}
