/* logflood: writes megabytes of log lines (LOGFLOOD_LINES of 1 KiB,
 * default 8192 = 8 MiB) and succeeds. */
#include <evscript/sdk.h>
#include <stdlib.h>
#include <string.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	char line[1024];
	const char *v = NULL;
	long n = 8192;

	(void)event;
	if (host->get_env(ctx, "LOGFLOOD_LINES", &v) == 0 && v)
		n = strtol(v, NULL, 10);
	memset(line, 'x', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	for (long i = 0; i < n; i++)
		host->log(ctx, EVS_LOG_DEBUG, "%ld %s", i, line);
	return 0;
}
