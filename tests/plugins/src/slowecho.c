/* slowecho: an action that sleeps SLEEPER_MS milliseconds (from the host's
 * environment, default 100), then returns its input. For tests that need
 * an action in flight. */
#include <evscript/sdk.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

int run_action(const struct evs_host *host, struct evs_ctx *ctx, const char *input_json,
	       char **output_json)
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
	host->log(ctx, EVS_LOG_INFO, "slept %ld ms", ms);
	*output_json = strdup(input_json);
	return *output_json ? 0 : 1;
}
