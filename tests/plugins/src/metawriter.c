/* metawriter: replaces the connection's metadata, then merges a key in. */
#include <evscript/sdk.h>
#include <stdio.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	char json[256];
	int r;

	snprintf(json, sizeof(json), "{\"written_by\":\"metawriter\",\"event_id\":%lld}",
		 (long long)event->event_id);
	r = host->set_metadata(ctx, json);
	if (r != 0) {
		host->set_error(ctx, "set_metadata: %s", evs_strerror(r));
		return 1;
	}
	r = host->update_metadata(ctx, "{\"merged\":true}");
	if (r != 0) {
		host->set_error(ctx, "update_metadata: %s", evs_strerror(r));
		return 1;
	}
	return 0;
}
