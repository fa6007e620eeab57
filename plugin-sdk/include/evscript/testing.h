/*
 * evscript/testing.h - a fake host for a plugin's unit tests.
 *
 * A plugin's entry point only ever talks to the host through the vtable it
 * is given, so a test can call it directly with a fake host: no daemon, no
 * provider, no signing. This header and its library (libevscript-testing:
 * CMake `evscript::testing`, pkg-config `evscript-testing`) are that fake
 * host. It serves what the test sets up (a connection, metadata, environment
 * variables, the webhook URL, canned proxy responses and action results) and
 * keeps what the plugin did (log lines, the error, metadata changes, the
 * requests it sent), for the test to check:
 *
 *     #include <evscript/testing.h>
 *
 *     struct evs_test *t = evs_test_new();
 *     evs_test_set_connection(t, "{\"connection_config\":{\"owner\":\"octo\"}}");
 *     evs_test_respond(t, "POST", "/repos/octo/hooks", 201, "{\"id\":7}");
 *     int rc = evs_test_run_event(t, on_event, "post-connection-creation");
 *     assert(rc == 0 && evs_test_logged(t, "created webhook 7"));
 *     assert(strcmp(evs_test_metadata(t), "{\"webhook_id\":7}") == 0);
 *     evs_test_free(t);
 *
 * The host functions behave as the daemon's do where a plugin can tell
 * (codes, ownership, lent strings valid until the next run, metadata
 * validation and merging), with these differences:
 *   - proxy() answers from the canned responses: each (method, endpoint)
 *     has a queue; a request takes the next response and the last one stays.
 *     The endpoint is matched without its query string. A request with no
 *     canned response gets status 404 and the body
 *     {"error":"evs_test: no response for METHOD ENDPOINT"}, and is counted
 *     in evs_test_unmatched(). Retries, timeouts and auth are not simulated.
 *   - paginate() sends the request through proxy() once per page: each
 *     canned response for the endpoint is one page, whose records are the
 *     array at opts->response_path (dotted; default: the body itself when it
 *     is an array, else its "items"); it stops at an empty page, at
 *     max_pages, when on_page returns non-zero, or when the endpoint's queue
 *     is used up. Cursors and links are not followed.
 *   - trigger_action() answers from evs_test_action(); an action with no
 *     canned result is EVS_ENOTFOUND.
 * It keeps at most 100000 log lines and requests; past that they are not
 * recorded. Not thread-safe: one test, one thread.
 */
#ifndef EVSCRIPT_TESTING_H
#define EVSCRIPT_TESTING_H

#include <evscript/sdk.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EVS_TEST_API __attribute__((visibility("default")))

/* One fake host with its state. */
struct evs_test;

typedef int (*evs_on_event_fn)(const struct evs_host *, struct evs_ctx *, const struct evs_event *);
typedef int (*evs_run_action_fn)(const struct evs_host *, struct evs_ctx *, const char *, char **);

/* A new fake host: connection {"connection_id":"test-connection",
 * "provider_config_key":"test-integration","provider":"test",
 * "credentials":{"type":"NONE"},"connection_config":{},"metadata":{}},
 * webhook URL "http://127.0.0.1:3003/webhook/test-integration", no
 * environment, no responses. NULL when out of memory. */
EVS_TEST_API struct evs_test *evs_test_new(void);
/* Frees it and everything it kept. NULL is fine. */
EVS_TEST_API void evs_test_free(struct evs_test *t);

/* ---- What the host serves. Each returns 0, or -1 for invalid JSON. ---- */

/* Merges the members of json (an object) into the connection document
 * (connection_id, provider_config_key, credentials, connection_config, ...);
 * a "metadata" member replaces the metadata. */
EVS_TEST_API int evs_test_set_connection(struct evs_test *t, const char *json);
/* Replaces the metadata (a JSON object). */
EVS_TEST_API int evs_test_set_metadata(struct evs_test *t, const char *json);
/* A variable get_env() returns. */
EVS_TEST_API int evs_test_set_env(struct evs_test *t, const char *name, const char *value);
/* What get_webhook_url() returns (NULL: EVS_ENOTFOUND). */
EVS_TEST_API int evs_test_set_webhook_url(struct evs_test *t, const char *url);
/* Queues a response for method and endpoint (path without query): status
 * and body (any text, copied). */
EVS_TEST_API int evs_test_respond(struct evs_test *t, const char *method, const char *endpoint, int status,
				  const char *body);
/* What trigger_action(name) gives: result (EVS_OK or an EVS_E* code) and,
 * with EVS_OK, output (JSON text; NULL gives "null"). */
EVS_TEST_API int evs_test_action(struct evs_test *t, const char *name, int result, const char *output);

/* ---- Running the plugin. ---- */

/* Calls on_event with this host and an event of that name
 * ("post-connection-creation", "pre-connection-deletion",
 * "validate-connection") for the connection. What was captured before is
 * kept (call evs_test_reset_captures() between runs to start afresh).
 * Returns what on_event returned. */
EVS_TEST_API int evs_test_run_event(struct evs_test *t, evs_on_event_fn on_event, const char *event);
/* Calls run_action with input (NULL: "null"). *output (may be NULL) gets
 * the action's output, owned by the caller (free()). Returns what run_action
 * returned. */
EVS_TEST_API int evs_test_run_action(struct evs_test *t, evs_run_action_fn run_action, const char *input,
				     char **output);
/* The host and a ctx, to call other code with (valid until evs_test_free). */
EVS_TEST_API const struct evs_host *evs_test_host(struct evs_test *t);
EVS_TEST_API struct evs_ctx *evs_test_ctx(struct evs_test *t);

/* ---- What the plugin did. Strings are lent until the next run or free. ---- */

/* Log lines, in order; *level (may be NULL) gets each one's EVS_LOG_*. */
EVS_TEST_API size_t evs_test_log_count(const struct evs_test *t);
EVS_TEST_API const char *evs_test_log(const struct evs_test *t, size_t i, int *level);
/* True when some log line contains text. */
EVS_TEST_API bool evs_test_logged(const struct evs_test *t, const char *text);
/* The last set_error() message, or NULL. */
EVS_TEST_API const char *evs_test_error(const struct evs_test *t);
/* The metadata now (compact JSON), and how many times the plugin changed it. */
EVS_TEST_API const char *evs_test_metadata(const struct evs_test *t);
EVS_TEST_API size_t evs_test_metadata_writes(const struct evs_test *t);
/* The requests proxy() and paginate() got: method, endpoint (as sent,
 * query included) and body ("" when none). */
EVS_TEST_API size_t evs_test_request_count(const struct evs_test *t);
EVS_TEST_API const char *evs_test_request(const struct evs_test *t, size_t i, const char **endpoint,
					  const char **body);
/* Requests that found no canned response. */
EVS_TEST_API size_t evs_test_unmatched(const struct evs_test *t);
/* Forgets the logs, error, requests and write count (not the metadata). */
EVS_TEST_API void evs_test_reset_captures(struct evs_test *t);

#ifdef __cplusplus
}
#endif

#endif /* EVSCRIPT_TESTING_H */
