#include <evscript/sdk.h>

EVS_PLUGIN("hello", "1.0.0");

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
    host->log(ctx, EVS_LOG_INFO, "%s for connection %s", event->name, event->connection_id);
    return 0; /* non-zero: the execution failed */
}
