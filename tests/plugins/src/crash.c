/* crash: logs a line, then dereferences NULL (SIGSEGV). */
#include <evscript/sdk.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	host->log(ctx, EVS_LOG_INFO, "about to crash on %s", event->name);
	*(volatile int *)0 = 1;
	return 0;
}
