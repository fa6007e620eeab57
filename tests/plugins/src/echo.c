/* echo: an action whose output is its input. */
#include <evscript/sdk.h>
#include <stdlib.h>
#include <string.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

int run_action(const struct evs_host *host, struct evs_ctx *ctx, const char *input_json,
	       char **output_json)
{
	host->log(ctx, EVS_LOG_INFO, "echo %zu bytes", strlen(input_json));
	*output_json = strdup(input_json);
	return *output_json ? 0 : 1;
}
