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

#include <json-c/json.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

#define ACTION "create-webhook"
#define ACTION_INPUT "{\"events\":[\"push\",\"pull_request\"]}"

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	struct json_object *result = NULL, *id = NULL, *update;
	const char *output = NULL;
	long long value;
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
	result = json_tokener_parse(output);
	if (!json_object_object_get_ex(result, "id", &id) || !json_object_is_type(id, json_type_int)) {
		json_object_put(result);
		host->set_error(ctx, "the %s action returned no id", ACTION);
		return 1;
	}
	value = json_object_get_int64(id);
	json_object_put(result);
	update = json_object_new_object();
	json_object_object_add(update, "webhook_id", json_object_new_int64(value));
	ret = host->update_metadata(ctx, json_object_to_json_string_ext(update, JSON_C_TO_STRING_PLAIN));
	json_object_put(update);
	if (ret != EVS_OK) {
		host->set_error(ctx, "webhook %lld created but its id could not be stored: %s", value,
				evs_strerror(ret));
		return 1;
	}
	host->log(ctx, EVS_LOG_INFO, "%s created webhook %lld; stored as webhook_id", ACTION, value);
	return 0;
}
