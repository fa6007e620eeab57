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

#include "evs_example_json.h"

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

#define DEFAULT_PATH "/whoami"
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Fields of a "who am I" reply that name the account, in order of preference
 * (GitHub: login; Slack auth.test: user; many APIs: name, email, username). */
static const char *const identity_fields[] = {"login", "user", "username", "name", "email"};

/* The provider's error text from a reply body, if it has one. */
static const char *provider_message(const struct evs_response *resp, char *buf, size_t n)
{
	static const char *const fields[] = {"message", "error", "detail"};
	size_t i;

	for (i = 0; i < N_OF(fields); i++)
		if (json_string(json_field(resp->body, fields[i]), buf, n) == 0)
			return buf;
	return "no message";
}

static void remember_identity(const struct evs_host *host, struct evs_ctx *ctx,
			      const struct evs_response *resp)
{
	char who[256];
	size_t i;

	for (i = 0; i < N_OF(identity_fields); i++)
		if (json_string(json_field(resp->body, identity_fields[i]), who, sizeof(who)) == 0 &&
		    who[0] != '\0')
			break;
	if (i == N_OF(identity_fields))
		host->log(ctx, EVS_LOG_INFO, "credentials accepted; the reply names no account");
	else if (metadata_put_string(host, ctx, "validated_as", who) != EVS_OK)
		host->log(ctx, EVS_LOG_WARN, "credentials accepted; validated_as not stored");
	else
		host->log(ctx, EVS_LOG_INFO, "credentials accepted for %s", who);
}

static int validate(const struct evs_host *host, struct evs_ctx *ctx,
		    const struct evs_event *event)
{
	struct evs_response *resp = NULL;
	const char *path = NULL;
	char msg[256];
	int ret;

	if (host->get_env(ctx, "VALIDATE_API_KEY_PATH", &path) != EVS_OK || path[0] == '\0')
		path = DEFAULT_PATH;
	/* A GET: safe to repeat on 5xx, 429 and network errors. */
	ret = json_request(host, ctx, "GET", path, NULL, 2, &resp);
	if (ret != EVS_OK) {
		host->set_error(ctx, "could not check the credentials with %s: GET %s: %s",
				event->provider_config_key, path, evs_strerror(ret));
		return 1;
	}
	ret = 1;
	if (resp->status == 401 || resp->status == 403) {
		host->set_error(ctx, "the credentials were rejected by %s (HTTP %d)",
				event->provider_config_key, resp->status);
	} else if (resp->status < 200 || resp->status >= 300) {
		host->set_error(ctx, "could not check the credentials with %s: GET %s answered HTTP %d: %s",
				event->provider_config_key, path, resp->status,
				provider_message(resp, msg, sizeof(msg)));
	} else {
		remember_identity(host, ctx, resp);
		ret = 0;
	}
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
