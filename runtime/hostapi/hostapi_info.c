/*
 * hostapi_info.c - host functions of ABI 1.1 that describe the execution's
 * surroundings: its integration, every environment variable, its token
 * (token.c says where the token comes from).
 */
#include "hostapi.h"

#include <string.h>

static int json_out(struct json_object *o, char **json)
{
	const char *s;

	if (!o)
		return EVS_ENOMEM;
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	*json = s ? strdup(s) : NULL;
	json_object_put(o);
	return *json ? EVS_OK : EVS_ENOMEM;
}

/* A document about the execution made from its info: EVS_ENOTFOUND when
 * the info lacks what it is made of, else 0 with *o (NULL: out of memory). */
typedef int (*info_doc_fn)(const struct hostapi_exec_info *i, struct json_object **o);

/* *json = the document doc makes (a copy, owned by the caller), or NULL. */
static int info_json(struct hostapi_exec *x, info_doc_fn doc, char **json)
{
	const struct hostapi_exec_info *i = x ? hostapi_exec_info(x) : NULL;
	struct json_object *o = NULL;
	int ret;

	*json = NULL;
	if (!i)
		return EVS_ENOTFOUND;
	ret = doc(i, &o);
	return ret ? ret : json_out(o, json);
}

static int integration_doc(const struct hostapi_exec_info *i, struct json_object **o)
{
	if (!i->integration)
		return EVS_ENOTFOUND;
	*o = json_object_new_object();
	if (*o) {
		json_object_object_add(*o, "unique_key", json_object_new_string(i->integration->id));
		json_object_object_add(*o, "provider", json_object_new_string(i->integration->provider));
		json_object_object_add(*o, "display_name", json_object_new_string(
			i->provider && i->provider->display_name ? i->provider->display_name
								 : i->integration->provider));
	}
	return 0;
}

int hostapi_get_integration(struct hostapi_exec *x, char **json)
{
	return info_json(x, integration_doc, json);
}

static int env_doc(const struct hostapi_exec_info *i, struct json_object **o)
{
	if (!i->config)
		return EVS_ENOTFOUND;
	*o = json_object_new_object();
	for (size_t k = 0; *o && k < i->config->environment.n; k++)
		json_object_object_add(*o, i->config->environment.items[k].key,
				       json_object_new_string(i->config->environment.items[k].value));
	return 0;
}

int hostapi_get_env_all(struct hostapi_exec *x, char **json)
{
	return info_json(x, env_doc, json);
}

int hostapi_get_token(struct hostapi_exec *x, char **token)
{
	*token = NULL;
	if (!x)
		return EVS_EINVAL;
	return hostapi_current_access_token(x, token);
}
