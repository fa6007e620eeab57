/*
 * test_sdk_abi - pins the plugin ABI (plugin-sdk/include/evscript/sdk.h).
 *
 * Every size and offset below is what plugins built today were compiled
 * with. If one of these checks fails, the ABI moved: an existing structure
 * changed, which breaks every plugin in the field. Append to struct evs_host
 * instead (and raise EVS_ABI_MINOR), or raise EVS_ABI_MAJOR together with
 * EVSCRIPT_ABI_MAJOR in CMakeLists.txt and update the pins on purpose.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <evscript/sdk.h>
#include <string.h>

#ifndef EVSCRIPT_ABI_MAJOR_CMAKE
#error "EVSCRIPT_ABI_MAJOR_CMAKE must be passed by the build"
#endif

#define PIN_SIZE(type, n) assert_int_equal(sizeof(struct type), (n))
#define PIN(type, member, off) assert_int_equal(offsetof(struct type, member), (off))

static void test_abi_version(void **state)
{
	(void)state;
	assert_int_equal(EVS_ABI_MAJOR, EVSCRIPT_ABI_MAJOR_CMAKE);
	assert_int_equal(EVS_ABI_MAJOR, 1);
	assert_true(EVS_ABI_MINOR >= 1);
	assert_string_equal(EVS_SUBSCRIPTIONS_SECTION, ".evscript.subscriptions");
	assert_int_equal(EVS_SUBSCRIBE_EVENT, 1);
	assert_int_equal(EVS_SUBSCRIBE_ACTION, 2);
	assert_string_equal(EVS_PLUGIN_INFO_SYMBOL, "evs_plugin_info");
	assert_string_equal(EVS_ON_EVENT_SYMBOL, "on_event");
	assert_string_equal(EVS_RUN_ACTION_SYMBOL, "run_action");
}

static void test_enum_values(void **state)
{
	(void)state;
	assert_int_equal(EVS_OK, 0);
	assert_int_equal(EVS_EINVAL, -1);
	assert_int_equal(EVS_ENOMEM, -2);
	assert_int_equal(EVS_ENOTFOUND, -3);
	assert_int_equal(EVS_ENETWORK, -4);
	assert_int_equal(EVS_ETIMEDOUT, -5);
	assert_int_equal(EVS_EDEPTH, -6);
	assert_int_equal(EVS_EFAILED, -7);
	assert_int_equal(EVS_EDENIED, -8);
	assert_int_equal(EVS_EUNSUPPORTED, -9);
	assert_int_equal(EVS_EHOST, -10);
	assert_int_equal(EVS_EVENT_POST_CONNECTION_CREATION, 1);
	assert_int_equal(EVS_EVENT_PRE_CONNECTION_DELETION, 2);
	assert_int_equal(EVS_EVENT_VALIDATE_CONNECTION, 3);
	assert_int_equal(EVS_LOG_DEBUG, 0);
	assert_int_equal(EVS_LOG_INFO, 1);
	assert_int_equal(EVS_LOG_WARN, 2);
	assert_int_equal(EVS_LOG_ERROR, 3);
	for (int a = EVS_EHOST; a <= EVS_OK; a++) {
		assert_string_not_equal(evs_strerror(a), "unknown error");
		for (int b = EVS_EHOST; b < a; b++)
			assert_string_not_equal(evs_strerror(a), evs_strerror(b));
	}
}

static void test_layout_lp64(void **state)
{
	(void)state;
#if !defined(__LP64__)
	skip(); /* the pins are for LP64 (x86_64, aarch64, ...) */
#else
	PIN_SIZE(evs_plugin_info, 24);
	PIN(evs_plugin_info, size, 0);
	PIN(evs_plugin_info, abi_major, 4);
	PIN(evs_plugin_info, abi_minor, 6);
	PIN(evs_plugin_info, name, 8);
	PIN(evs_plugin_info, version, 16);

	PIN_SIZE(evs_event, 48);
	PIN(evs_event, size, 0);
	PIN(evs_event, type, 4);
	PIN(evs_event, name, 8);
	PIN(evs_event, connection_id, 16);
	PIN(evs_event, provider_config_key, 24);
	PIN(evs_event, event_id, 32);
	PIN(evs_event, execution_id, 40);

	PIN_SIZE(evs_header, 16);
	PIN(evs_header, name, 0);
	PIN(evs_header, value, 8);

	PIN_SIZE(evs_request, 104);
	PIN(evs_request, size, 0);
	PIN(evs_request, method, 8);
	PIN(evs_request, endpoint, 16);
	PIN(evs_request, params, 24);
	PIN(evs_request, n_params, 32);
	PIN(evs_request, headers, 40);
	PIN(evs_request, n_headers, 48);
	PIN(evs_request, body, 56);
	PIN(evs_request, body_len, 64);
	PIN(evs_request, retries, 72);
	PIN(evs_request, timeout_ms, 76);
	PIN(evs_request, base_url_override, 80); /* ABI 1.1 */
	PIN(evs_request, retry_on, 88);
	PIN(evs_request, n_retry_on, 96);

	PIN_SIZE(evs_subscription, 264);
	PIN(evs_subscription, size, 0);
	PIN(evs_subscription, kind, 4);
	PIN(evs_subscription, integration, 8);
	PIN(evs_subscription, event, 136);

	PIN_SIZE(evs_response, 40);
	PIN(evs_response, size, 0);
	PIN(evs_response, status, 4);
	PIN(evs_response, headers, 8);
	PIN(evs_response, n_headers, 16);
	PIN(evs_response, body, 24);
	PIN(evs_response, body_len, 32);

	PIN_SIZE(evs_paginate_options, 32);
	PIN(evs_paginate_options, size, 0);
	PIN(evs_paginate_options, type, 8);
	PIN(evs_paginate_options, response_path, 16);
	PIN(evs_paginate_options, limit, 24);
	PIN(evs_paginate_options, max_pages, 28);

	/* the vtable only ever grows at the end: a new entry changes the size
	 * (update it here) but never an offset below */
	PIN_SIZE(evs_host, 144);
	PIN(evs_host, size, 0);
	PIN(evs_host, abi_major, 4);
	PIN(evs_host, abi_minor, 6);
	PIN(evs_host, log, 8);
	PIN(evs_host, set_error, 16);
	PIN(evs_host, get_connection, 24);
	PIN(evs_host, get_metadata, 32);
	PIN(evs_host, set_metadata, 40);
	PIN(evs_host, update_metadata, 48);
	PIN(evs_host, proxy, 56);
	PIN(evs_host, free_response, 64);
	PIN(evs_host, paginate, 72);
	PIN(evs_host, get_env, 80);
	PIN(evs_host, get_webhook_url, 88);
	PIN(evs_host, trigger_action, 96);
	PIN(evs_host, get_token, 104); /* ABI 1.1 */
	PIN(evs_host, get_integration, 112);
	PIN(evs_host, get_env_all, 120);
	PIN(evs_host, set_action_error, 128);
	PIN(evs_host, trigger_action_for, 136);
#endif
}

static int fake_get_env(struct evs_ctx *ctx, const char *name, const char **value)
{
	(void)ctx;
	(void)name;
	*value = "v";
	return 0;
}

/* An older host (smaller vtable) lacks the newer entries. */
static void test_host_has(void **state)
{
	struct evs_host host;

	(void)state;
	memset(&host, 0, sizeof(host));
	host.get_env = fake_get_env;
	host.size = offsetof(struct evs_host, get_env);
	assert_false(EVS_HOST_HAS(&host, get_env));
	host.size = offsetof(struct evs_host, get_env) + sizeof(host.get_env);
	assert_true(EVS_HOST_HAS(&host, get_env));
	assert_false(EVS_HOST_HAS(&host, get_webhook_url));
	host.size = sizeof(host);
	assert_false(EVS_HOST_HAS(&host, trigger_action)); /* NULL entry */
	/* a 1.0 host's vtable ends after trigger_action */
	host.get_token = NULL;
	host.trigger_action_for = NULL;
	host.size = offsetof(struct evs_host, get_token);
	assert_false(EVS_HOST_HAS(&host, get_token));
	assert_false(EVS_HOST_HAS(&host, trigger_action_for));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_abi_version),
		cmocka_unit_test(test_enum_values),
		cmocka_unit_test(test_layout_lp64),
		cmocka_unit_test(test_host_has),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
