/* declared: an event script that declares its own subscriptions (no
 * nango.yaml entry needed) and logs each run. */
#include <evscript/sdk.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);
EVS_ON_EVENT("declared-int", "post-connection-creation");
EVS_ON_EVENT("declared-int", "pre-connection-deletion");
EVS_ON_EVENT("both-int", "post-connection-creation");

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	host->log(ctx, EVS_LOG_INFO, "declared ran for %s on %s", event->name, event->provider_config_key);
	return 0;
}
