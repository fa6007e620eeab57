/* demo-welcome: an event script that declares its own event, so that no
 * nango.yaml entry names it (Nango's createOnEvent): deploying it is copying
 * its signed files into plugin_dir and reloading. It greets every new
 * connection of the `demo` integration with the GREETING variable. */
#include <evscript/sdk.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);
EVS_ON_EVENT("demo", "post-connection-creation");

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	const char *greeting = NULL;

	if (host->get_env(ctx, "GREETING", &greeting) != EVS_OK)
		greeting = "hello";
	host->log(ctx, EVS_LOG_INFO, "%s, connection %s of %s", greeting, event->connection_id,
		  event->provider_config_key);
	return 0;
}
