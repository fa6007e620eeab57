/* sdk11-action: {"fail":true} fails with set_action_error (a message and a
 * JSON payload); any other input returns {"connection": <its connection>}. */
#include <evscript/sdk.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

int run_action(const struct evs_host *host, struct evs_ctx *ctx, const char *input_json,
	       char **output_json)
{
	const char *conn = NULL;
	char *out;

	if (strstr(input_json, "\"fail\":true")) {
		if (host->set_action_error(ctx, "the record is locked",
					   "{\"code\":\"E_LOCKED\",\"retry_after\":30}") != 0)
			host->set_error(ctx, "set_action_error failed");
		if (host->set_action_error(ctx, "bad payload", "{not json") != EVS_EINVAL)
			host->set_error(ctx, "set_action_error took a bad payload");
		return 1;
	}
	if (host->get_connection(ctx, &conn) != 0)
		return 1;
	out = malloc(strlen(conn) + 32);
	if (!out)
		return 1;
	sprintf(out, "{\"connection\":%s}", conn);
	*output_json = out;
	return 0;
}
