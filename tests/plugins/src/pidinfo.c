/* pidinfo: merges {"pid": getpid(), "ppid": getppid()} into the
 * connection's metadata, so tests can tell in which process it ran. */
#include <evscript/sdk.h>
#include <stdio.h>
#include <unistd.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	char json[96];
	int rc;

	(void)event;
	snprintf(json, sizeof(json), "{\"pid\":%ld,\"ppid\":%ld}", (long)getpid(), (long)getppid());
	rc = host->update_metadata(ctx, json);
	if (rc != 0) {
		host->set_error(ctx, "update_metadata: %s", evs_strerror(rc));
		return 1;
	}
	return 0;
}
