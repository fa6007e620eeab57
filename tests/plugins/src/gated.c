/* gated: logs "waiting at the gate", then asks the provider for GET /gate
 * until it answers 200 (every 50 ms, within the deadline), logs "through the
 * gate" and succeeds. A test holds a running execution with its first line
 * logged for as long as it wants, with no sleep to guess: for following
 * logs live. */
#include <evscript/sdk.h>
#include <time.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	struct evs_request req = {.size = sizeof(req), .method = "GET", .endpoint = "/gate"};
	struct timespec pause = {0, 50 * 1000000L};
	int status = 0;

	host->log(ctx, EVS_LOG_INFO, "waiting at the gate for %s", event->connection_id);
	while (status != 200) {
		struct evs_response *resp = NULL;
		int ret = host->proxy(ctx, &req, &resp);

		if (ret != EVS_OK) {
			host->set_error(ctx, "the gate cannot be reached");
			return 1;
		}
		status = resp->status;
		host->free_response(ctx, resp);
		if (status != 200)
			nanosleep(&pause, NULL);
	}
	host->log(ctx, EVS_LOG_WARN, "through the gate");
	return 0;
}
