/* badsub-event: declares an event the host does not know: refused. */
#include <evscript/sdk.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);
EVS_ON_EVENT("declared-int", "post-connection-update");

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	(void)host;
	(void)ctx;
	(void)event;
	return 0;
}
