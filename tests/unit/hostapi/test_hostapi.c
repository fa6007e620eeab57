/* hostapi: logs under caps, errors, the connection JSON, metadata in the
 * store and on a validate-connection candidate, env, webhook URL,
 * trigger_action, proxy targets for each credential type, and the
 * in-process vtable. */
#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hostapi.h"
#include "util.h"

static const char host_yaml[] =
	"environment:\n"
	"  GREETING: hello\n"
	"webhook_base_url: https://hooks.example.test/wh\n"
	"log_lines_max: 5\n"
	"log_bytes_max: 10000\n";

static const char providers_yaml[] =
	"oauth:\n"
	"  auth_mode: OAUTH2\n"
	"  proxy:\n"
	"    base_url: https://${connectionConfig.sub}.oauth.test/\n"
	"    retry: {after: [retry-after]}\n"
	"    paginate: {type: cursor, cursor_path_in_response: next, cursor_name_in_request: c}\n"
	"keyed:\n"
	"  auth_mode: API_KEY\n"
	"  proxy:\n"
	"    base_url: https://api.keyed.test\n"
	"    headers: {x-api-key: '${apiKey}', accept: application/json}\n"
	"    query: {key: '${apiKey}'}\n"
	"basic:\n"
	"  auth_mode: BASIC\n"
	"  proxy:\n"
	"    base_url: https://basic.test\n"
	"open:\n"
	"  auth_mode: NONE\n"
	"  proxy:\n"
	"    base_url: https://open.test\n"
	"    headers: {x-api-key: '${apiKey}', accept: application/json}\n";

struct t {
	char dir[64];
	struct store *store;
	struct config_host *config;
	struct config_providers *providers;
	int64_t exec_id;
};

static struct t T;

static void add_connection(const char *id, const char *pck, const char *creds, const char *cfg)
{
	struct store_connection_input in = {.connection_id = id, .provider_config_key = pck,
					    .provider = pck, .credentials = creds,
					    .connection_config = cfg};
	struct store_upsert_result r;

	assert_int_equal(store_connection_upsert(T.store, &in, NULL, &r), 0);
}

static int setup(void **state)
{
	char err[512], url[128];

	(void)state;
	snprintf(T.dir, sizeof(T.dir), "/tmp/evs-hostapi-XXXXXX");
	if (!mkdtemp(T.dir))
		return -1;
	snprintf(url, sizeof(url), "sqlite:%s/t.db", T.dir);
	if (store_open(url, NULL, &T.store, err, sizeof(err)) < 0)
		return -1;
	if (config_parse_host(host_yaml, strlen(host_yaml), "evscript.yaml", &T.config, err,
			      sizeof(err)) < 0)
		return -1;
	if (config_parse_providers(providers_yaml, strlen(providers_yaml), "providers.yaml",
				   &T.providers, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	add_connection("c-oauth", "oauth", "{\"type\":\"OAUTH2\",\"access_token\":\"tok\"}",
		       "{\"sub\":\"eu\"}");
	add_connection("c-key", "keyed", "{\"type\":\"API_KEY\",\"apiKey\":\"k1\"}", NULL);
	add_connection("c-basic", "basic", "{\"type\":\"BASIC\",\"username\":\"u\",\"password\":\"p\"}",
		       NULL);
	add_connection("c-open", "open", "{\"type\":\"NONE\"}", NULL);
	add_connection("c-oauth-nosub", "oauth", "{\"type\":\"OAUTH2\",\"access_token\":\"tok\"}", NULL);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	config_providers_free(T.providers);
	config_host_free(T.config);
	store_close(T.store);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", T.dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* A hostapi_exec for connection id of integration pck, with a recorded execution. */
static struct hostapi_exec *mk(const char *id, const char *pck, const char *candidate,
			       hostapi_trigger_fn trigger)
{
	struct store_execution_input ein = {.kind = STORE_EXEC_ACTION, .script = "s",
					    .connection_id = id, .provider_config_key = pck};
	struct hostapi_exec_info info = {
		.store = T.store, .config = T.config,
		.provider = config_provider_find(T.providers, pck),
		.script = "s", .connection_id = id, .provider_config_key = pck,
		.deadline_us = util_mono_us() + 10000000, .candidate_json = candidate,
		.trigger = trigger,
	};
	struct hostapi_exec *x = NULL;

	assert_int_equal(store_execution_create(T.store, &ein, &T.exec_id), 0);
	info.execution_id = T.exec_id;
	assert_int_equal(hostapi_exec_new(&info, &x), 0);
	return x;
}

static void test_logs_capped(void **state)
{
	struct hostapi_exec *x = mk("c-key", "keyed", NULL, NULL);
	struct store_execution *e = NULL;
	char *big = malloc(HOSTAPI_LOG_LINE_MAX * 2);

	(void)state;
	memset(big, 'y', HOSTAPI_LOG_LINE_MAX * 2 - 1);
	big[HOSTAPI_LOG_LINE_MAX * 2 - 1] = '\0';
	hostapi_log(x, EVS_LOG_INFO, big);
	for (int i = 0; i < 9; i++) {
		char line[32];

		snprintf(line, sizeof(line), "line %d", i);
		hostapi_log(x, EVS_LOG_WARN, line);
	}
	assert_int_equal(hostapi_logs_dropped(x), 5);
	hostapi_exec_free(x);
	free(big);
	assert_int_equal(store_execution_get(T.store, T.exec_id, &e), 0);
	assert_int_equal(e->n_logs, 5);
	assert_int_equal(strlen(e->logs[0].message), HOSTAPI_LOG_LINE_MAX - 1);
	assert_string_equal(e->logs[4].message, "line 3");
	assert_int_equal(e->logs[4].level, EVS_LOG_WARN);
	assert_int_equal(e->logs_dropped, 5);
	store_execution_free(e);
}

static void test_error_and_env(void **state)
{
	struct hostapi_exec *x = mk("c-key", "keyed", NULL, NULL);
	char *v = NULL, big[HOSTAPI_ERROR_MAX + 100];

	(void)state;
	assert_null(hostapi_error(x));
	memset(big, 'e', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	hostapi_set_error(x, "first");
	hostapi_set_error(x, big);
	assert_int_equal(strlen(hostapi_error(x)), HOSTAPI_ERROR_MAX - 1);
	assert_int_equal(hostapi_get_env(x, "GREETING", &v), 0);
	assert_string_equal(v, "hello");
	free(v);
	assert_int_equal(hostapi_get_env(x, "HOME", &v), EVS_ENOTFOUND);
	assert_null(v);
	assert_int_equal(hostapi_get_webhook_url(x, &v), 0);
	assert_string_equal(v, "https://hooks.example.test/wh/keyed");
	free(v);
	assert_int_equal(hostapi_trigger_action(x, "a", NULL, &v), EVS_EUNSUPPORTED);
	hostapi_exec_free(x);
}

static void test_connection_and_metadata(void **state)
{
	struct hostapi_exec *x = mk("c-key", "keyed", NULL, NULL);
	struct json_object *o, *v;
	struct store_connection *c = NULL;
	char *s = NULL;

	(void)state;
	assert_int_equal(hostapi_get_connection(x, &s), 0);
	o = json_tokener_parse(s);
	free(s);
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "credentials", &v));
	assert_string_equal(json_object_get_string(json_object_object_get(v, "apiKey")), "k1");
	assert_string_equal(json_object_get_string(json_object_object_get(o, "connection_id")), "c-key");
	assert_string_equal(json_object_get_string(json_object_object_get(o, "provider")), "keyed");
	assert_true(json_object_is_type(json_object_object_get(o, "connection_config"), json_type_object));
	s = (char *)json_object_get_string(json_object_object_get(o, "created_at"));
	assert_int_equal(strlen(s), 24); /* 2026-11-27T05:22:07.123Z */
	assert_int_equal(s[10], 'T');
	assert_int_equal(s[23], 'Z');
	json_object_put(o);

	assert_int_equal(hostapi_set_metadata(x, "[1]"), EVS_EINVAL);
	assert_int_equal(hostapi_set_metadata(x, "{\"a\":1}"), 0);
	assert_int_equal(hostapi_update_metadata(x, "{\"b\":2}"), 0);
	assert_int_equal(hostapi_get_metadata(x, &s), 0);
	assert_non_null(strstr(s, "\"a\":1"));
	assert_non_null(strstr(s, "\"b\":2"));
	free(s);
	assert_int_equal(store_connection_get(T.store, "keyed", "c-key", &c), 0);
	assert_non_null(strstr(c->metadata, "\"b\":2"));
	store_connection_free(c);
	hostapi_exec_free(x);

	x = mk("nobody", "keyed", NULL, NULL);
	assert_int_equal(hostapi_get_connection(x, &s), EVS_ENOTFOUND);
	assert_int_equal(hostapi_set_metadata(x, "{}"), EVS_ENOTFOUND);
	hostapi_exec_free(x);
}

static void test_candidate(void **state)
{
	const char *cand = "{\"connection_id\":\"new\",\"provider_config_key\":\"keyed\","
			   "\"credentials\":{\"type\":\"API_KEY\",\"apiKey\":\"k2\"},"
			   "\"metadata\":{\"m\":0}}";
	struct hostapi_exec *x = mk("new", "keyed", cand, NULL);
	struct store_connection *c = NULL;
	char *s = NULL;

	(void)state;
	assert_null(hostapi_candidate_metadata(x));
	assert_int_equal(hostapi_get_metadata(x, &s), 0);
	assert_string_equal(s, "{\"m\":0}");
	free(s);
	assert_int_equal(hostapi_update_metadata(x, "{\"n\":1}"), 0);
	assert_non_null(strstr(hostapi_candidate_metadata(x), "\"m\":0"));
	assert_non_null(strstr(hostapi_candidate_metadata(x), "\"n\":1"));
	assert_int_equal(hostapi_get_connection(x, &s), 0);
	assert_non_null(strstr(s, "\"n\":1"));
	assert_non_null(strstr(s, "k2"));
	free(s);
	assert_int_equal(hostapi_set_metadata(x, "{\"z\":true}"), 0);
	assert_string_equal(hostapi_candidate_metadata(x), "{\"z\":true}");
	/* nothing was stored */
	assert_int_equal(store_connection_get(T.store, "keyed", "new", &c), STORE_ENOTFOUND);
	hostapi_exec_free(x);
}

static int trig(void *user, struct hostapi_exec *parent, const char *action, const char *input,
		char **out, char *err, size_t errlen)
{
	(void)user;
	(void)parent;
	if (strcmp(action, "ok") == 0) {
		*out = strdup(input);
		return 0;
	}
	snprintf(err, errlen, "it broke");
	return EVS_EFAILED;
}

static void test_trigger(void **state)
{
	struct hostapi_exec *x = mk("c-key", "keyed", NULL, trig);
	struct store_execution *e = NULL;
	char *s = NULL;

	(void)state;
	assert_int_equal(hostapi_trigger_action(x, "ok", "[1]", &s), 0);
	assert_string_equal(s, "[1]");
	free(s);
	assert_int_equal(hostapi_trigger_action(x, "bad", NULL, &s), EVS_EFAILED);
	assert_null(s);
	assert_int_equal(hostapi_trigger_action(x, "bad name!", NULL, &s), EVS_EINVAL);
	assert_int_equal(hostapi_trigger_action(x, "ok", "{not json", &s), EVS_EINVAL);
	hostapi_exec_free(x);
	assert_int_equal(store_execution_get(T.store, T.exec_id, &e), 0);
	assert_int_equal(e->n_logs, 1);
	assert_string_equal(e->logs[0].message, "action bad: it broke");
	store_execution_free(e);
}

/* ---- ABI 1.1 ---- */

static char trig_for_cid[64];

static int trig_for(void *user, struct hostapi_exec *parent, const char *cid, const char *action,
		    const char *input, char **out, char *err, size_t errlen)
{
	(void)user;
	(void)parent;
	(void)action;
	(void)err;
	(void)errlen;
	snprintf(trig_for_cid, sizeof(trig_for_cid), "%s", cid);
	*out = strdup(input);
	return *out ? 0 : EVS_ENOMEM;
}

static void test_abi_1_1(void **state)
{
	struct config_integration in = {.id = (char *)"keyed", .provider = (char *)"keyed"};
	struct hostapi_exec_info info;
	struct hostapi_exec *x;
	char *s = NULL;
	static const struct {
		const char *cid, *pck, *token;
		int ret;
	} tokens[] = {
		{"c-oauth", "oauth", "tok", 0},
		{"c-key", "keyed", "k1", 0},
		{"c-basic", "basic", NULL, EVS_ENOTFOUND},
		{"c-open", "open", NULL, EVS_ENOTFOUND},
		{"c-gone", "keyed", NULL, EVS_ENOTFOUND},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++) {
		x = mk(tokens[i].cid, tokens[i].pck, NULL, NULL);
		assert_int_equal(hostapi_get_token(x, &s), tokens[i].ret);
		if (tokens[i].token)
			assert_string_equal(s, tokens[i].token);
		else
			assert_null(s);
		hostapi_secret_free(s);
		s = NULL;
		hostapi_exec_free(x);
	}
	/* validate-connection: the candidate's credentials */
	x = mk("c-new", "keyed", "{\"credentials\":{\"type\":\"API_KEY\",\"apiKey\":\"cand\"},"
	       "\"metadata\":{}}", NULL);
	assert_int_equal(hostapi_get_token(x, &s), 0);
	assert_string_equal(s, "cand");
	hostapi_secret_free(s);
	hostapi_exec_free(x);

	x = mk("c-key", "keyed", NULL, NULL);
	assert_int_equal(hostapi_get_env_all(x, &s), 0);
	assert_string_equal(s, "{\"GREETING\":\"hello\"}");
	free(s);
	assert_int_equal(hostapi_get_integration(x, &s), EVS_ENOTFOUND); /* no integration in info */
	/* an action may fail with a payload; only a JSON one */
	assert_int_equal(hostapi_set_action_error(x, "locked", "{\"code\":1}"), 0);
	assert_string_equal(hostapi_action_error_payload(x), "{\"code\":1}");
	assert_string_equal(hostapi_error(x), "locked");
	assert_int_equal(hostapi_set_action_error(x, "m", "{bad"), EVS_EINVAL);
	assert_int_equal(hostapi_set_action_error(x, NULL, "1"), EVS_EINVAL);
	assert_string_equal(hostapi_action_error_payload(x), "{\"code\":1}");
	assert_int_equal(hostapi_trigger_action_for(x, "c-key", "a", "1", &s), EVS_EUNSUPPORTED);
	hostapi_exec_free(x);

	info = *hostapi_exec_info(x = mk("c-key", "keyed", NULL, NULL));
	hostapi_exec_free(x);
	info.integration = &in;
	info.event_type = EVS_EVENT_POST_CONNECTION_CREATION;
	info.trigger_for = trig_for;
	assert_int_equal(hostapi_exec_new(&info, &x), 0);
	assert_int_equal(hostapi_get_integration(x, &s), 0);
	assert_non_null(strstr(s, "\"unique_key\":\"keyed\",\"provider\":\"keyed\",\"display_name\":"));
	free(s);
	assert_int_equal(hostapi_set_action_error(x, "m", NULL), EVS_EUNSUPPORTED);
	assert_null(hostapi_action_error_payload(x));
	/* another connection of the same integration; an unknown one is refused first */
	assert_int_equal(hostapi_trigger_action_for(x, "c-key", "a", "[2]", &s), 0);
	assert_string_equal(s, "[2]");
	assert_string_equal(trig_for_cid, "c-key");
	free(s);
	assert_int_equal(hostapi_trigger_action_for(x, "c-oauth", "a", "1", &s), EVS_ENOTFOUND);
	assert_null(s);
	assert_int_equal(hostapi_trigger_action_for(x, "", "a", "1", &s), EVS_EINVAL);
	hostapi_exec_free(x);
}

#define target_free_ proxy_target_free

static void test_proxy_targets(void **state)
{
	struct proxy_target *t = NULL;
	struct hostapi_exec *x;

	(void)state;
	/* OAUTH2: bearer token, base URL from connectionConfig, no trailing '/' */
	x = mk("c-oauth", "oauth", NULL, NULL);
	assert_int_equal(hostapi_proxy_target(x, &t), 0);
	assert_string_equal(t->base_url, "https://eu.oauth.test");
	assert_string_equal(config_map_get(&t->headers, "Authorization"), "Bearer tok");
	assert_null(t->basic_user);
	assert_int_equal(t->paginate.type, CONFIG_PAGINATE_CURSOR);
	assert_string_equal(t->paginate.cursor_name_in_request, "c");
	assert_int_equal(t->retry.after.n, 1);
	target_free_(t);
	hostapi_exec_free(x);
	/* a template naming a value the connection lacks */
	x = mk("c-oauth-nosub", "oauth", NULL, NULL);
	assert_int_equal(hostapi_proxy_target(x, &t), EVS_EINVAL);
	assert_null(t);
	hostapi_exec_free(x);
	/* API_KEY: the provider's header and query templates */
	x = mk("c-key", "keyed", NULL, NULL);
	assert_int_equal(hostapi_proxy_target(x, &t), 0);
	assert_string_equal(config_map_get(&t->headers, "x-api-key"), "k1");
	assert_string_equal(config_map_get(&t->headers, "accept"), "application/json");
	assert_string_equal(config_map_get(&t->query, "key"), "k1");
	assert_null(config_map_get(&t->headers, "Authorization"));
	target_free_(t);
	hostapi_exec_free(x);
	/* BASIC */
	x = mk("c-basic", "basic", NULL, NULL);
	assert_int_equal(hostapi_proxy_target(x, &t), 0);
	assert_string_equal(t->basic_user, "u");
	assert_string_equal(t->basic_password, "p");
	assert_int_equal(t->headers.n, 0);
	target_free_(t);
	hostapi_exec_free(x);
	/* NONE: no credentials, static headers kept */
	x = mk("c-open", "open", NULL, NULL);
	assert_int_equal(hostapi_proxy_target(x, &t), 0);
	assert_null(config_map_get(&t->headers, "x-api-key"));
	assert_string_equal(config_map_get(&t->headers, "accept"), "application/json");
	assert_null(t->basic_user);
	target_free_(t);
	hostapi_exec_free(x);
	/* no provider */
	x = mk("c-key", "nope", NULL, NULL);
	assert_int_equal(hostapi_proxy_target(x, &t), EVS_ENOTFOUND);
	hostapi_exec_free(x);
}

static void test_inproc_vtable(void **state)
{
	struct hostapi_exec *x = mk("c-key", "keyed", NULL, trig);
	struct hostapi_inproc_ctx c = {.exec = x};
	struct evs_ctx *ctx = (struct evs_ctx *)&c;
	const struct evs_host *h = hostapi_inproc_vtable();
	const char *s = NULL;
	struct store_execution *e = NULL;

	(void)state;
	assert_int_equal(h->size, sizeof(struct evs_host));
	assert_int_equal(h->abi_major, EVS_ABI_MAJOR);
	assert_int_equal(h->get_env(ctx, "GREETING", &s), 0);
	assert_string_equal(s, "hello");
	assert_int_equal(h->get_env(ctx, "PATH", &s), EVS_ENOTFOUND);
	assert_null(s);
	assert_int_equal(h->get_webhook_url(ctx, &s), 0);
	assert_string_equal(s, "https://hooks.example.test/wh/keyed");
	assert_int_equal(h->trigger_action(ctx, "ok", "{\"q\":1}", &s), 0);
	assert_string_equal(s, "{\"q\":1}");
	assert_int_equal(h->update_metadata(ctx, "{\"via\":\"vtable\"}"), 0);
	assert_int_equal(h->get_metadata(ctx, &s), 0);
	assert_non_null(strstr(s, "\"via\":\"vtable\""));
	assert_int_equal(h->get_connection(ctx, &s), 0);
	assert_non_null(strstr(s, "\"apiKey\":\"k1\""));
	h->log(ctx, EVS_LOG_ERROR, "n=%d", 42);
	h->set_error(ctx, "bad %s", "thing");
	assert_string_equal(hostapi_error(x), "bad thing");
	assert_int_equal(c.n_lent, 5);
	hostapi_inproc_ctx_clear(&c);
	assert_int_equal(c.n_lent, 0);
	hostapi_exec_free(x);
	assert_int_equal(store_execution_get(T.store, T.exec_id, &e), 0);
	assert_int_equal(e->n_logs, 1);
	assert_string_equal(e->logs[0].message, "n=42");
	store_execution_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_logs_capped),
		cmocka_unit_test(test_error_and_env),
		cmocka_unit_test(test_connection_and_metadata),
		cmocka_unit_test(test_candidate),
		cmocka_unit_test(test_trigger),
		cmocka_unit_test(test_proxy_targets),
		cmocka_unit_test(test_inproc_vtable),
		cmocka_unit_test(test_abi_1_1),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
