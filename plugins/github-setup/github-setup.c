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

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

/* ---------------------------------------------------------------------------
 * Minimal JSON reading. The host hands plugins compact, valid json-c output;
 * these helpers find a field of an object and read an integer. They are not
 * a general parser: a malformed document simply yields "not found".
 */
#define JSON_MAX_DEPTH 64

static const char *json_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* The position after the JSON string whose opening quote is at p, or NULL. */
static const char *json_skip_string(const char *p)
{
	for (p++; *p; p++) {
		if (*p == '\\') {
			if (!*++p)
				return NULL;
		} else if (*p == '"') {
			return p + 1;
		}
	}
	return NULL;
}

/* The position after the JSON value at p, or NULL when it is malformed. */
static const char *json_skip_value(const char *p)
{
	int depth = 0;

	p = json_ws(p);
	do {
		if (*p == '"') {
			p = json_skip_string(p);
			if (!p)
				return NULL;
		} else if (*p == '{' || *p == '[') {
			if (++depth > JSON_MAX_DEPTH)
				return NULL;
			p++;
		} else if (*p == '}' || *p == ']') {
			if (--depth < 0)
				return NULL;
			p++;
		} else if (*p == '\0') {
			return NULL;
		} else if (depth == 0) { /* a number, true, false or null */
			while (*p && !strchr(",}] \t\r\n", *p))
				p++;
			return p;
		} else {
			p++;
		}
	} while (depth > 0);
	return p;
}

/* The value of `key` in the JSON object at obj (its own members only, not
 * nested ones), or NULL when obj is not an object or has no such key. */
static const char *json_field(const char *obj, const char *key)
{
	size_t klen = strlen(key);
	const char *p, *k, *end;

	if (!obj)
		return NULL;
	p = json_ws(obj);
	if (*p++ != '{')
		return NULL;
	for (;;) {
		p = json_ws(p);
		if (*p != '"')
			return NULL; /* also the end of an empty object */
		k = p + 1;
		end = json_skip_string(p);
		if (!end)
			return NULL;
		p = json_ws(end);
		if (*p++ != ':')
			return NULL;
		p = json_ws(p);
		if ((size_t)(end - 1 - k) == klen && memcmp(k, key, klen) == 0)
			return p;
		p = json_skip_value(p);
		if (!p)
			return NULL;
		p = json_ws(p);
		if (*p++ != ',')
			return NULL;
	}
}

/* Reads the JSON integer at v into *out. Returns 0, or -1 when v is not an
 * integer. */
static int json_int(const char *v, long long *out)
{
	char *end;

	if (!v || !(*v == '-' || (*v >= '0' && *v <= '9')))
		return -1;
	errno = 0;
	*out = strtoll(v, &end, 10);
	if (errno || !strchr(",}] \t\r\n", *end))
		return -1;
	return 0;
}

/* ---------------------------------------------------------------------------
 * The script.
 */
#define ACTION "create-webhook"
#define ACTION_INPUT "{\"events\":[\"push\",\"pull_request\"]}"

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	const char *output = NULL;
	char update[64];
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
	snprintf(update, sizeof(update), "{\"webhook_id\":%lld}", id);
	ret = host->update_metadata(ctx, update);
	if (ret != EVS_OK) {
		host->set_error(ctx, "webhook %lld created but its id could not be stored: %s", id,
				evs_strerror(ret));
		return 1;
	}
	host->log(ctx, EVS_LOG_INFO, "%s created webhook %lld; stored as webhook_id", ACTION, id);
	return 0;
}
