/* fdpad: a tiny event script for the 2,000-plugin test
 * (tests/integration/test_faults_scale.py). Built once as "fdpad_0000"; the
 * test copies it under other names of the same length, replacing the name
 * in EVS_PLUGIN's info, and signs each copy. */
#include <evscript/sdk.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	host->log(ctx, EVS_LOG_INFO, "%s ran for %s", EVS_PLUGIN_NAME, event->connection_id);
	return 0;
}
