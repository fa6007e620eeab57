/* declared-action: an action that declares the integration offering it
 * (no `actions:` entry in nango.yaml); its output is its input. */
#include <evscript/sdk.h>
#include <stdlib.h>
#include <string.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);
EVS_ACTION_FOR("declared-int");

int run_action(const struct evs_host *host, struct evs_ctx *ctx, const char *input_json,
	       char **output_json)
{
	(void)host;
	(void)ctx;
	*output_json = strdup(input_json);
	return *output_json ? 0 : 1;
}
