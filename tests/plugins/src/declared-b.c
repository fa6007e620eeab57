/* declared-b: a second declared event script, to check the run order of
 * declared scripts (by plugin name, after nango.yaml's). */
#include <evscript/sdk.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);
EVS_ON_EVENT("declared-int", "post-connection-creation");

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	host->log(ctx, EVS_LOG_INFO, "declared-b ran for %s", event->name);
	return 0;
}
