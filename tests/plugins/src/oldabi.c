/* oldabi: built against the ABI 1.0 header kept in tests/plugins/sdk-1.0
 * (its struct evs_host and evs_request are the smaller ones); uses the 1.0
 * functions a plugin of that time used and records what it saw. */
#include <evscript/sdk.h>
#include <stdio.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

#if EVS_ABI_MINOR != 0
#error "oldabi must be built against the ABI 1.0 header (tests/plugins/sdk-1.0)"
#endif

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	struct evs_request req = {.size = sizeof(req), .endpoint = "/old"};
	struct evs_response *resp = NULL;
	const char *url = NULL;
	char meta[512];
	int rp, status = 0;

	rp = host->proxy(ctx, &req, &resp);
	if (rp == 0)
		status = resp->status;
	host->free_response(ctx, resp);
	host->get_webhook_url(ctx, &url);
	snprintf(meta, sizeof(meta), "{\"request_size\":%zu,\"host_size_ok\":%s,\"host_minor\":%u,"
		 "\"proxy_status\":%d,\"event\":\"%s\",\"webhook\":\"%s\"}",
		 sizeof(req), host->size >= sizeof(*host) ? "true" : "false", (unsigned)host->abi_minor,
		 status, event->name, url ? url : "");
	return host->set_metadata(ctx, meta) == 0 ? 0 : 1;
}
