/* noop: does nothing and succeeds (the cheapest execution, for benchmarks). */
#include <evscript/sdk.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	(void)host;
	(void)ctx;
	(void)event;
	return 0;
}
