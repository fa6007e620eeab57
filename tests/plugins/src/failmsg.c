/* failmsg: fails with a message. */
#include <evscript/sdk.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	host->log(ctx, EVS_LOG_WARN, "refusing %s", event->connection_id);
	host->set_error(ctx, "the provider said no to %s", event->connection_id);
	return 1;
}
