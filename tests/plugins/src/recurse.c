/* recurse: an action that triggers itself with {"depth": N+1} (its input
 * is {"depth": N}, or null for 0) and returns {"depth": N, "inner": <the
 * inner output>}. Nothing stops it but the host's nesting limit; then it
 * fails, saying at which depth and what trigger_action returned. */
#include <evscript/sdk.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

int run_action(const struct evs_host *host, struct evs_ctx *ctx, const char *input_json,
	       char **output_json)
{
	const char *p = strstr(input_json, "\"depth\":");
	const char *inner = NULL;
	long depth = p ? strtol(p + 8, NULL, 10) : 0;
	char next[64];
	size_t n;
	int rc;

	host->log(ctx, EVS_LOG_INFO, "recurse at depth %ld", depth);
	snprintf(next, sizeof(next), "{\"depth\":%ld}", depth + 1);
	rc = host->trigger_action(ctx, "recurse", next, &inner);
	if (rc != 0) {
		host->set_error(ctx, "depth %ld: trigger_action: %s", depth, evs_strerror(rc));
		return 1;
	}
	n = strlen(inner) + 64;
	*output_json = malloc(n);
	if (!*output_json)
		return 1;
	snprintf(*output_json, n, "{\"depth\":%ld,\"inner\":%s}", depth, inner);
	return 0;
}
