/*
 * test_store_async - connection tags and webhook URL override, asynchronous
 * actions' results and webhook deliveries (store.h, schema step 1 -> 2):
 * what each call writes, its refusals, and what survives a reopen.
 */
#include "store_fixture.h"

static void add_conn(struct store *s, const char *pck, const char *cid)
{
	struct store_connection_input in = {
		.connection_id = cid, .provider_config_key = pck, .provider = "local-test",
		.credentials = "{\"type\":\"API_KEY\",\"apiKey\":\"k\"}",
	};
	struct store_upsert_result r;

	assert_int_equal(store_connection_upsert(s, &in, NULL, &r), 0);
}

static void test_connection_patch_and_tags_filter(void **state)
{
	struct fx *f = *state;
	struct store_connection *c = NULL;
	int64_t del_event;

	add_conn(f->s, "gh", "a");
	add_conn(f->s, "gh", "b");
	assert_int_equal(store_connection_get(f->s, "gh", "a", &c), 0);
	assert_string_equal(c->tags, "{}");
	assert_null(c->webhook_url_override);
	store_connection_free(c);

	assert_int_equal(store_connection_patch(f->s, "gh", "a", "{\"team\":\"core\",\"env\":\"prod\"}", true,
						"https://x.test/h"), 0);
	assert_int_equal(store_connection_patch(f->s, "gh", "b", "{\"team\":\"core\"}", false, NULL), 0);
	assert_int_equal(store_connection_get(f->s, "gh", "a", &c), 0);
	assert_string_equal(c->webhook_url_override, "https://x.test/h");
	store_connection_free(c);
	/* tags only: the override stays; set_override with NULL clears it */
	assert_int_equal(store_connection_patch(f->s, "gh", "a", NULL, false, NULL), 0);
	assert_int_equal(store_connection_get(f->s, "gh", "a", &c), 0);
	assert_string_equal(c->webhook_url_override, "https://x.test/h");
	assert_non_null(strstr(c->tags, "\"env\":\"prod\""));
	store_connection_free(c);
	assert_int_equal(store_connection_patch(f->s, "gh", "a", NULL, true, NULL), 0);
	assert_int_equal(store_connection_get(f->s, "gh", "a", &c), 0);
	assert_null(c->webhook_url_override);
	store_connection_free(c);

	assert_int_equal(fx_count_tagged(f->s, NULL), 2);
	assert_int_equal(fx_count_tagged(f->s, "{}"), 2);
	assert_int_equal(fx_count_tagged(f->s, "{\"team\":\"core\"}"), 2);
	assert_int_equal(fx_count_tagged(f->s, "{\"team\":\"core\",\"env\":\"prod\"}"), 1);
	assert_int_equal(fx_count_tagged(f->s, "{\"team\":\"ops\"}"), 0);
	assert_int_equal(fx_count_tagged(f->s, "{\"nokey\":\"core\"}"), 0);

	assert_int_equal(store_connection_patch(f->s, "gh", "zz", "{}", false, NULL), STORE_ENOTFOUND);
	assert_int_equal(store_connection_patch(f->s, "gh", "a", "[1]", false, NULL), STORE_EINVAL);
	assert_int_equal(store_connection_patch(f->s, "gh", "a", "{", false, NULL), STORE_EINVAL);
	assert_int_equal(store_connection_mark_deleting(f->s, "gh", "b", false, 1, &del_event), 0);
	assert_int_equal(store_connection_patch(f->s, "gh", "b", "{}", false, NULL), STORE_EDELETING);
	{
		struct store_connection_filter bad = {.tags = "[]"};
		struct store_connection **items = NULL;
		size_t n = 0;

		assert_int_equal(store_connection_list(f->s, &bad, &items, &n), STORE_EINVAL);
	}
}

static void test_async_actions(void **state)
{
	struct fx *f = *state;
	struct store_async_action *a = NULL;
	static const char id1[] = "11111111-1111-4111-8111-111111111111";
	static const char id2[] = "22222222-2222-4222-8222-222222222222";
	static const char id3[] = "33333333-3333-4333-8333-333333333333";
	struct store_recovery rec;

	assert_int_equal(store_async_action_create(f->s, id1, "gh", "a", "echo"), 0);
	assert_int_equal(store_async_action_create(f->s, id1, "gh", "a", "echo"), STORE_ECONFLICT);
	assert_int_equal(store_async_action_get(f->s, id1, &a), 0);
	assert_int_equal(a->status, STORE_ASYNC_RUNNING);
	assert_string_equal(a->action, "echo");
	assert_string_equal(a->connection_id, "a");
	assert_null(a->output);
	assert_true(a->created_at > 0);
	store_async_action_free(a);

	assert_int_equal(store_async_action_finish(f->s, id1, 7, true, "{\"x\":1}", NULL), 0);
	assert_int_equal(store_async_action_finish(f->s, id1, 7, true, "{}", NULL), STORE_ESTATE);
	assert_int_equal(store_async_action_get(f->s, id1, &a), 0);
	assert_int_equal(a->status, STORE_ASYNC_SUCCEEDED);
	assert_int_equal(a->execution_id, 7);
	assert_string_equal(a->output, "{\"x\":1}");
	assert_true(a->finished_at >= a->created_at);
	store_async_action_free(a);

	assert_int_equal(store_async_action_create(f->s, id2, "gh", "a", "echo"), 0);
	assert_int_equal(store_async_action_finish(f->s, id2, 0, false, NULL, "not an object"), STORE_EINVAL);
	assert_int_equal(store_async_action_finish(f->s, id2, 8, false, NULL,
						   "{\"message\":\"m\",\"payload\":{\"p\":1}}"), 0);
	assert_int_equal(store_async_action_get(f->s, id2, &a), 0);
	assert_int_equal(a->status, STORE_ASYNC_FAILED);
	assert_string_equal(a->error, "{\"message\":\"m\",\"payload\":{\"p\":1}}");
	store_async_action_free(a);

	/* one left running by a daemon that stopped: failed after recovery, and
	 * everything is still there after a reopen */
	assert_int_equal(store_async_action_create(f->s, id3, "gh", "a", "echo"), 0);
	store_close(f->s);
	f->s = fx_open(f, NULL);
	assert_int_equal(store_recover(f->s, &rec), 0);
	assert_int_equal(store_async_action_get(f->s, id3, &a), 0);
	assert_int_equal(a->status, STORE_ASYNC_FAILED);
	assert_non_null(strstr(a->error, "interrupted: the daemon stopped while it ran"));
	store_async_action_free(a);
	assert_int_equal(store_async_action_get(f->s, id1, &a), 0);
	assert_string_equal(a->output, "{\"x\":1}");
	store_async_action_free(a);

	assert_int_equal(store_async_action_get(f->s, "44444444-4444-4444-8444-444444444444", &a),
			 STORE_ENOTFOUND);
	assert_null(a);
	assert_int_equal(store_async_action_finish(f->s, "nope", 0, true, NULL, NULL), STORE_ENOTFOUND);
	assert_int_equal(store_async_action_create(f->s, "", "gh", "a", "echo"), STORE_EINVAL);
}

static void test_webhook_deliveries(void **state)
{
	struct fx *f = *state;
	struct store_webhook *w = NULL, **items = NULL;
	static const char body[] = "{\"a\":1}\0tail";
	int64_t id1, id2, id3, next;
	size_t n;

	assert_int_equal(store_webhook_insert(f->s, "gh", "{\"X-GitHub-Event\":\"push\"}", body,
					      sizeof(body) - 1, STORE_WEBHOOK_PENDING, &id1), 0);
	assert_int_equal(store_webhook_insert(f->s, "slack", "{}", NULL, 0, STORE_WEBHOOK_STORED, &id2), 0);
	assert_int_equal(store_webhook_insert(f->s, "gh", "{}", "x", 1, STORE_WEBHOOK_PENDING, &id3), 0);
	assert_true(id1 < id2 && id2 < id3);

	/* the oldest due one, with its body byte for byte (NUL included) */
	assert_int_equal(store_webhook_due(f->s, INT64_MAX, &w), 0);
	assert_int_equal(w->id, id1);
	assert_int_equal(w->body_len, sizeof(body) - 1);
	assert_memory_equal(w->body, body, sizeof(body) - 1);
	assert_string_equal(w->headers, "{\"X-GitHub-Event\":\"push\"}");
	store_webhook_free(w);

	/* a failed attempt puts it off; a delivered one ends it */
	assert_int_equal(store_webhook_attempt(f->s, id1, STORE_WEBHOOK_PENDING, "answered 500", INT64_MAX - 1), 0);
	assert_int_equal(store_webhook_due(f->s, INT64_MAX - 2, &w), 0);
	assert_int_equal(w->id, id3);
	store_webhook_free(w);
	assert_int_equal(store_webhook_attempt(f->s, id3, STORE_WEBHOOK_DELIVERED, NULL, 0), 0);
	assert_int_equal(store_webhook_due(f->s, INT64_MAX - 2, &w), STORE_ENOTFOUND);
	assert_null(w);
	assert_int_equal(store_webhook_attempt(f->s, id1, STORE_WEBHOOK_FAILED, "gave up", 0), 0);
	assert_int_equal(store_webhook_due(f->s, INT64_MAX, &w), STORE_ENOTFOUND);

	/* listed newest first, without bodies, by page; survives a reopen */
	store_close(f->s);
	f->s = fx_open(f, NULL);
	assert_int_equal(store_webhook_list(f->s, NULL, 2, 0, &items, &n, &next), 0);
	assert_int_equal(n, 2);
	assert_int_equal(items[0]->id, id3);
	assert_int_equal(items[0]->status, STORE_WEBHOOK_DELIVERED);
	assert_int_equal(items[0]->attempts, 1);
	assert_true(items[0]->delivered_at > 0);
	assert_null(items[0]->body);
	assert_int_equal(items[1]->status, STORE_WEBHOOK_STORED);
	assert_int_equal(next, id2);
	store_webhook_list_free(items, n);
	assert_int_equal(store_webhook_list(f->s, NULL, 2, next, &items, &n, &next), 0);
	assert_int_equal(n, 1);
	assert_int_equal(items[0]->id, id1);
	assert_int_equal(items[0]->status, STORE_WEBHOOK_FAILED);
	assert_int_equal(items[0]->attempts, 2);
	assert_string_equal(items[0]->last_error, "gave up");
	assert_int_equal(next, 0);
	store_webhook_list_free(items, n);
	assert_int_equal(store_webhook_list(f->s, "slack", 0, 0, &items, &n, &next), 0);
	assert_int_equal(n, 1);
	assert_string_equal(items[0]->integration, "slack");
	assert_string_equal(store_webhook_status_name(items[0]->status), "stored");
	store_webhook_list_free(items, n);

	assert_int_equal(store_webhook_insert(f->s, "gh", "[]", "", 0, STORE_WEBHOOK_PENDING, &id1), STORE_EINVAL);
	assert_int_equal(store_webhook_insert(f->s, "gh", "{}", "", 0, STORE_WEBHOOK_DELIVERED, &id1), STORE_EINVAL);
	assert_int_equal(store_webhook_insert(f->s, "gh", "{}", "", STORE_WEBHOOK_BODY_MAX + 1,
					      STORE_WEBHOOK_PENDING, &id1), STORE_ETOOBIG);
	assert_int_equal(store_webhook_attempt(f->s, 999, STORE_WEBHOOK_FAILED, NULL, 0), STORE_ENOTFOUND);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_connection_patch_and_tags_filter, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_async_actions, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_webhook_deliveries, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
