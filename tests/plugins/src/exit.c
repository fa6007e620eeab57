/* exit: logs a line, then exit(3)s without returning. */
#include <evscript/sdk.h>
#include <stdlib.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	(void)event;
	host->log(ctx, EVS_LOG_INFO, "about to exit(3)");
	exit(3);
}
