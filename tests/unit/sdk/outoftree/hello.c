/* An out-of-tree event script, built with evscript_add_plugin(). */
#include <evscript/sdk.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	host->log(ctx, EVS_LOG_INFO, "%s for connection %s", event->name, event->connection_id);
	return 0;
}
