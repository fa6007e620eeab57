/* check-key: a validate-connection script for the tests. Refuses a
 * connection whose API key starts with "bad" (with FAIL_MESSAGE from the
 * configured environment as its message), accepts any other. */
#include <evscript/sdk.h>
#include <string.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	const char *conn = NULL, *msg = NULL;

	if (host->get_connection(ctx, &conn) != 0 || !conn) {
		host->set_error(ctx, "no connection for %s", event->connection_id);
		return 1;
	}
	if (!strstr(conn, "\"apiKey\":\"bad"))
		return 0;
	if (host->get_env(ctx, "FAIL_MESSAGE", &msg) != 0 || !msg)
		msg = "the API key was rejected";
	host->set_error(ctx, "%s", msg);
	return 1;
}
