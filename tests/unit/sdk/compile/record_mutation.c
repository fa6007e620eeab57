/* A plugin that tries to write records. With -DEVS_TEST_CALL=<member> it
 * calls host-><member>(...), which must not compile: the host vtable has no
 * record-mutation functions. Without it, the file compiles cleanly (the
 * control that proves the failure is the missing member and nothing else). */
#include <evscript/sdk.h>

EVS_PLUGIN("mutation", "1.0.0");

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	host->log(ctx, EVS_LOG_INFO, "%s", event->name);
#ifdef EVS_TEST_CALL
	return host->EVS_TEST_CALL(ctx, "contacts", "[{\"id\":\"1\"}]");
#else
	return 0;
#endif
}
