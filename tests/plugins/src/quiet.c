/* quiet: sleeps 1.5 s without a host call, then logs and succeeds. Until
 * it wakes it has said nothing to the daemon: for the run that is lost
 * with its zygote before it began (executor.c: again_after_loss). */
#include <evscript/sdk.h>
#include <time.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	struct timespec ts = {1, 500000000L};

	while (nanosleep(&ts, &ts) != 0)
		;
	host->log(ctx, EVS_LOG_INFO, "woke for event %lld", (long long)event->event_id);
	return 0;
}
