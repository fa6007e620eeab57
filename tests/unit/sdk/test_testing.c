/*
 * test_testing.c - <evscript/testing.h>, the fake host, exercised the way an
 * author uses it: on the real github-webhooks example (its source is
 * compiled into this test) and on small fragments for what that example
 * does not touch (paginate, trigger_action, env, unmatched requests).
 */
#include <evscript/testing.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* the example's entry point (plugins/github-webhooks/github-webhooks.c) */
int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event);

static const char REPO[] = "{\"connection_config\":{\"owner\":\"octo\",\"repo\":\"hello\"}}";

static void creates_then_deletes_a_webhook(void **state)
{
	struct evs_test *t = evs_test_new();
	const char *endpoint, *body;

	(void)state;
	assert_non_null(t);
	assert_int_equal(evs_test_set_connection(t, REPO), 0);
	assert_int_equal(evs_test_respond(t, "POST", "/repos/octo/hello/hooks", 201, "{\"id\":77}"), 0);
	assert_int_equal(evs_test_run_event(t, on_event, "post-connection-creation"), 0);
	assert_null(evs_test_error(t));
	assert_true(evs_test_logged(t, "created webhook 77 on octo/hello for "
				       "http://127.0.0.1:3003/webhook/test-integration"));
	assert_string_equal(evs_test_metadata(t), "{\"github_webhook_id\":77}");
	assert_int_equal(evs_test_request_count(t), 1);
	assert_string_equal(evs_test_request(t, 0, &endpoint, &body), "POST");
	assert_string_equal(endpoint, "/repos/octo/hello/hooks");
	/* json-c escapes '/' by default: still the same JSON string */
	assert_non_null(strstr(body, "\"url\":\"http:\\/\\/127.0.0.1:3003\\/webhook\\/test-integration\""));

	/* deletion: the stored id is used; an already-gone hook is fine */
	evs_test_reset_captures(t);
	assert_int_equal(evs_test_respond(t, "DELETE", "/repos/octo/hello/hooks/77", 404, "{}"), 0);
	assert_int_equal(evs_test_run_event(t, on_event, "pre-connection-deletion"), 0);
	assert_true(evs_test_logged(t, "webhook 77 on octo/hello was already gone"));
	evs_test_free(t);
}

static void failures_are_captured(void **state)
{
	struct evs_test *t = evs_test_new();

	(void)state;
	/* no connection_config: the example refuses with its own message */
	assert_int_equal(evs_test_run_event(t, on_event, "post-connection-creation"), 1);
	assert_string_equal(evs_test_error(t), "connection_config needs \"owner\" and \"repo\" (strings)");
	assert_int_equal(evs_test_request_count(t), 0);

	/* GitHub says no */
	evs_test_reset_captures(t);
	evs_test_set_connection(t, REPO);
	evs_test_respond(t, "POST", "/repos/octo/hello/hooks", 422, "{\"message\":\"Validation Failed\"}");
	assert_int_equal(evs_test_run_event(t, on_event, "post-connection-creation"), 1);
	assert_string_equal(evs_test_error(t), "GitHub refused to create the webhook on octo/hello (HTTP 422): "
					       "Validation Failed");
	assert_int_equal(evs_test_metadata_writes(t), 0);

	/* nothing canned: a 404 the test can count */
	evs_test_reset_captures(t);
	evs_test_set_metadata(t, "{\"github_webhook_id\":5}");
	assert_int_equal(evs_test_run_event(t, on_event, "pre-connection-deletion"), 0);
	assert_int_equal(evs_test_unmatched(t), 1);
	evs_test_free(t);
}

static int collect(void *user, const char *records, size_t n)
{
	char *all = user;

	strcat(all, records);
	return n == 0;
}

static void paginate_env_actions(void **state)
{
	struct evs_test *t = evs_test_new();
	const struct evs_host *h = evs_test_host(t);
	struct evs_request req = {.size = sizeof(req), .endpoint = "/items?limit=2"};
	struct evs_paginate_options opts = {.size = sizeof(opts), .response_path = "data.items"};
	const char *value = NULL, *out = NULL;
	char all[256] = "";

	(void)state;
	evs_test_respond(t, "GET", "/items", 200, "{\"data\":{\"items\":[1,2]}}");
	evs_test_respond(t, "GET", "/items", 200, "{\"data\":{\"items\":[3]}}");
	assert_int_equal(h->paginate(evs_test_ctx(t), &req, &opts, collect, all), EVS_OK);
	assert_string_equal(all, "[1,2][3]");
	assert_int_equal(evs_test_request_count(t), 2);
	evs_test_respond(t, "GET", "/broken", 500, "oops");
	req.endpoint = "/broken";
	assert_int_equal(h->paginate(evs_test_ctx(t), &req, NULL, collect, all), EVS_EFAILED);

	assert_int_equal(h->get_env(evs_test_ctx(t), "TOKEN", &value), EVS_ENOTFOUND);
	evs_test_set_env(t, "TOKEN", "abc");
	assert_int_equal(h->get_env(evs_test_ctx(t), "TOKEN", &value), EVS_OK);
	assert_string_equal(value, "abc");

	assert_int_equal(h->trigger_action(evs_test_ctx(t), "create-webhook", "{}", &out), EVS_ENOTFOUND);
	evs_test_action(t, "create-webhook", EVS_OK, "{\"id\":1}");
	evs_test_action(t, "broken", EVS_EFAILED, NULL);
	assert_int_equal(h->trigger_action(evs_test_ctx(t), "create-webhook", "{}", &out), EVS_OK);
	assert_string_equal(out, "{\"id\":1}");
	assert_int_equal(h->trigger_action(evs_test_ctx(t), "broken", "{}", &out), EVS_EFAILED);

	assert_int_equal(h->set_metadata(evs_test_ctx(t), "[1]"), EVS_EINVAL);
	assert_int_equal(h->update_metadata(evs_test_ctx(t), "{\"a\":1}"), EVS_OK);
	assert_int_equal(h->update_metadata(evs_test_ctx(t), "{\"b\":2}"), EVS_OK);
	assert_string_equal(evs_test_metadata(t), "{\"a\":1,\"b\":2}");
	evs_test_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(creates_then_deletes_a_webhook),
		cmocka_unit_test(failures_are_captured),
		cmocka_unit_test(paginate_env_actions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
