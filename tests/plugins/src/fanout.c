/* fanout: an action tree on demand. Its input is {"depth": D, "max": M,
 * "fan": F, "sleep_ms": S} (all optional: 0, 8, 3, 0). It sleeps S ms,
 * then, while D < M, triggers itself F times in turn with depth D + 1,
 * and returns {"depth": D, "ok": <children that succeeded>, "refused":
 * <children trigger_action refused or failed>}. It succeeds even when
 * children fail, so that the tree's shape (how many ran, how they ended)
 * is what a test looks at. */
#include <evscript/sdk.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

static long field(const char *json, const char *name, long dflt)
{
	char key[32];
	const char *p;

	snprintf(key, sizeof(key), "\"%s\":", name);
	p = json ? strstr(json, key) : NULL;
	return p ? strtol(p + strlen(key), NULL, 10) : dflt;
}

int run_action(const struct evs_host *host, struct evs_ctx *ctx, const char *input_json,
	       char **output_json)
{
	long depth = field(input_json, "depth", 0), max = field(input_json, "max", 8);
	long fan = field(input_json, "fan", 3), sleep_ms = field(input_json, "sleep_ms", 0);
	long ok = 0, refused = 0;
	struct timespec ts = {sleep_ms / 1000, (sleep_ms % 1000) * 1000000L};
	char next[128];

	while (sleep_ms > 0 && nanosleep(&ts, &ts) != 0)
		;
	snprintf(next, sizeof(next), "{\"depth\":%ld,\"max\":%ld,\"fan\":%ld,\"sleep_ms\":%ld}", depth + 1, max,
		 fan, sleep_ms);
	for (long i = 0; depth < max && i < fan; i++) {
		const char *out = NULL;
		int rc = host->trigger_action(ctx, "fanout", next, &out);

		if (rc == 0)
			ok++;
		else
			refused++;
		host->log(ctx, EVS_LOG_INFO, "depth %ld child %ld: %s", depth, i, rc ? evs_strerror(rc) : "ok");
	}
	*output_json = malloc(96);
	if (!*output_json)
		return 1;
	snprintf(*output_json, 96, "{\"depth\":%ld,\"ok\":%ld,\"refused\":%ld}", depth, ok, refused);
	return 0;
}
