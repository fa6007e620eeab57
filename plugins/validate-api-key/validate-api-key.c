/*
 * validate-api-key: checks a new connection's credentials before they are
 * stored.
 *
 * On validate-connection it calls the provider's "who am I" endpoint with the
 * candidate credentials (injected by the host as for any request): /whoami,
 * or the path in the VALIDATE_API_KEY_PATH variable when the host
 * configuration exposes one (`environment:`). A 401 or 403 refuses the
 * connection with "the credentials were rejected by <integration> (HTTP
 * 401)", which is what the API client sees; any other failure refuses it too,
 * with the reason. On success the identity the provider reports (login,
 * name, email or username) is stored in the metadata as "validated_as"; the
 * host keeps that metadata with the connection it then creates.
 *
 * nango.yaml:
 *     integrations:
 *         acme:
 *             on-events:
 *                 validate-connection: [validate-api-key]
 */
#include <evscript/sdk.h>

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

#define DEFAULT_PATH "/whoami"
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static const char *const identity_fields[] = {"login", "user", "username", "name", "email"};

/* o.key when it is a string, else NULL (borrowed from o). */
static const char *string_field(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* The provider's error text: the first of message, error, detail that is a
 * string (borrowed from reply). */
static const char *provider_message(struct json_object *reply)
{
	static const char *const fields[] = {"message", "error", "detail"};

	for (size_t i = 0; i < N_OF(fields); i++)
		if (string_field(reply, fields[i]))
			return string_field(reply, fields[i]);
	return "no message";
}

static void remember_identity(const struct evs_host *host, struct evs_ctx *ctx, struct json_object *reply)
{
	struct json_object *update;
	const char *who = NULL;

	for (size_t i = 0; i < N_OF(identity_fields) && !(who && *who); i++)
		who = string_field(reply, identity_fields[i]);
	if (!who || !*who) {
		host->log(ctx, EVS_LOG_INFO, "credentials accepted; the reply names no account");
		return;
	}
	update = json_object_new_object();
	json_object_object_add(update, "validated_as", json_object_new_string(who));
	if (host->update_metadata(ctx, json_object_to_json_string_ext(update, JSON_C_TO_STRING_PLAIN)) != EVS_OK)
		host->log(ctx, EVS_LOG_WARN, "credentials accepted; validated_as not stored");
	else
		host->log(ctx, EVS_LOG_INFO, "credentials accepted for %s", who);
	json_object_put(update);
}

static int validate(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	/* A GET: safe to repeat on 5xx, 429 and network errors. */
	struct evs_request req = {.size = sizeof(req), .method = "GET", .retries = 2};
	struct evs_response *resp = NULL;
	struct json_object *reply;
	const char *path = NULL;
	int ret;

	if (host->get_env(ctx, "VALIDATE_API_KEY_PATH", &path) != EVS_OK || path[0] == '\0')
		path = DEFAULT_PATH;
	req.endpoint = path;
	ret = host->proxy(ctx, &req, &resp);
	if (ret != EVS_OK) {
		host->set_error(ctx, "could not check the credentials with %s: GET %s: %s",
				event->provider_config_key, path, evs_strerror(ret));
		return 1;
	}
	reply = json_tokener_parse(resp->body); /* NULL when the body is not JSON */
	ret = 1;
	if (resp->status == 401 || resp->status == 403) {
		host->set_error(ctx, "the credentials were rejected by %s (HTTP %d)", event->provider_config_key,
				resp->status);
	} else if (resp->status < 200 || resp->status >= 300) {
		host->set_error(ctx, "could not check the credentials with %s: GET %s answered HTTP %d: %s",
				event->provider_config_key, path, resp->status, provider_message(reply));
	} else {
		remember_identity(host, ctx, reply);
		ret = 0;
	}
	json_object_put(reply);
	host->free_response(ctx, resp);
	return ret;
}

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	if (event->type != EVS_EVENT_VALIDATE_CONNECTION) {
		host->log(ctx, EVS_LOG_DEBUG, "nothing to do on %s", event->name);
		return 0;
	}
	return validate(host, ctx, event);
}
