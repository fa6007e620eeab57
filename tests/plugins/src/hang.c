/* hang: logs a line, then loops forever (burning CPU). */
#include <evscript/sdk.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	volatile unsigned long n = 0;

	(void)event;
	host->log(ctx, EVS_LOG_INFO, "about to hang");
	for (;;)
		n++;
	return 0;
}
