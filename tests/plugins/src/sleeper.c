/* sleeper: sleeps SLEEPER_MS milliseconds (from the host's environment,
 * default 100), logs and succeeds. For in-flight and reload tests. */
#include <evscript/sdk.h>
#include <stdlib.h>
#include <time.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	const char *v = NULL;
	long ms = 100;
	struct timespec ts;

	if (host->get_env(ctx, "SLEEPER_MS", &v) == 0 && v)
		ms = strtol(v, NULL, 10);
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0)
		;
	host->log(ctx, EVS_LOG_INFO, "slept %ld ms for event %lld", ms, (long long)event->event_id);
	return 0;
}
