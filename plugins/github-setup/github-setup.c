/*
 * github-setup: an event script that composes an action.
 *
 * On post-connection-creation it runs the create-webhook action for the same
 * connection with host->trigger_action() (the host records that run as an
 * execution of its own, linked to this one) and stores the id the action
 * returns in the metadata as "webhook_id".
 *
 * nango.yaml:
 *     integrations:
 *         github:
 *             on-events:
 *                 post-connection-creation: [github-setup]
 *             actions:
 *                 create-webhook:
 *                     endpoint: POST /webhooks
 */
#include <evscript/sdk.h>

#include "evs_example_json.h"

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

#define ACTION "create-webhook"
#define ACTION_INPUT "{\"events\":[\"push\",\"pull_request\"]}"

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	const char *output = NULL;
	long long id;
	int ret;

	if (event->type != EVS_EVENT_POST_CONNECTION_CREATION) {
		host->log(ctx, EVS_LOG_DEBUG, "nothing to do on %s", event->name);
		return 0;
	}
	ret = host->trigger_action(ctx, ACTION, ACTION_INPUT, &output);
	if (ret != EVS_OK) {
		/* The action's own execution holds its error and logs. */
		host->set_error(ctx, "the %s action failed: %s", ACTION, evs_strerror(ret));
		return 1;
	}
	if (json_int(json_field(output, "id"), &id) != 0) {
		host->set_error(ctx, "the %s action returned no id", ACTION);
		return 1;
	}
	ret = metadata_put_int(host, ctx, "webhook_id", id);
	if (ret != EVS_OK) {
		host->set_error(ctx, "webhook %lld created but its id could not be stored: %s", id,
				evs_strerror(ret));
		return 1;
	}
	host->log(ctx, EVS_LOG_INFO, "%s created webhook %lld; stored as webhook_id", ACTION, id);
	return 0;
}
