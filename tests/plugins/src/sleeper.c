/* sleeper: sleeps SLEEPER_MS milliseconds (from the host's environment,
 * default 100), logs and succeeds. For in-flight and reload tests. Built
 * with EVS_SLEEPER_ACTION it is slowecho, an action that sleeps the same
 * way and then returns its input. */
#include <evscript/sdk.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

static long sleep_ms(const struct evs_host *host, struct evs_ctx *ctx)
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
	return ms;
}

#ifdef EVS_SLEEPER_ACTION
int run_action(const struct evs_host *host, struct evs_ctx *ctx, const char *input_json,
	       char **output_json)
{
	host->log(ctx, EVS_LOG_INFO, "slept %ld ms", sleep_ms(host, ctx));
	*output_json = strdup(input_json);
	return *output_json ? 0 : 1;
}
#else
int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	long ms = sleep_ms(host, ctx);

	host->log(ctx, EVS_LOG_INFO, "slept %ld ms for event %lld", ms, (long long)event->event_id);
	return 0;
}
#endif
