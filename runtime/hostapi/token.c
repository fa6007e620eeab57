/*
 * token.c - the connection's current access token, from its stored
 * credentials (host->get_token()).
 *
 * This is the one place that hands a token out: when OAUTH2 tokens are
 * refreshed (an expired access_token exchanged with the refresh_token), the
 * refresh belongs here, before the token is read, so that every caller
 * gets a fresh one.
 */
#include "hostapi.h"

#include <string.h>

int hostapi_current_access_token(struct hostapi_exec *x, char **token)
{
	struct json_object *conn = NULL, *creds, *type, *v = NULL;
	char *json = NULL;
	const char *t;
	int ret;

	*token = NULL;
	ret = hostapi_get_connection(x, &json);
	if (ret < 0)
		return ret;
	conn = json_tokener_parse(json);
	hostapi_secret_free(json);
	if (!json_object_object_get_ex(conn, "credentials", &creds) ||
	    !json_object_object_get_ex(creds, "type", &type)) {
		ret = EVS_ENOTFOUND;
		goto out;
	}
	t = json_object_get_string(type);
	if (strcmp(t, "OAUTH2") == 0)
		json_object_object_get_ex(creds, "access_token", &v);
	else if (strcmp(t, "API_KEY") == 0)
		json_object_object_get_ex(creds, "apiKey", &v);
	if (!v || !json_object_is_type(v, json_type_string)) {
		ret = EVS_ENOTFOUND;
		goto out;
	}
	*token = strdup(json_object_get_string(v));
	ret = *token ? EVS_OK : EVS_ENOMEM;
out:
	hostapi_json_put_secret(conn);
	return ret;
}
