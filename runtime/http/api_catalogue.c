/*
 * api_catalogue.c - GET /integrations, GET /integrations/{uniqueKey},
 * GET /providers and GET /providers/{provider}: the configured integrations
 * (nango.yaml) and the providers catalogue, in the shapes of Nango's public
 * API (ApiPublicIntegration, ApiProvider), each list under "data".
 */
#include "api_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "generation.h"

/* include=webhook / include=credentials (repeated, or separated by commas). */
struct includes {
	bool webhook, credentials;
};

static int add_include(void *user, const char *name, const char *value)
{
	struct includes *inc = user;

	if ((strcmp(name, "include") != 0 && strcmp(name, "include[]") != 0) || !value)
		return 0;
	inc->webhook = inc->webhook || strstr(value, "webhook") != NULL;
	inc->credentials = inc->credentials || strstr(value, "credentials") != NULL;
	return 0;
}

static struct json_object *integration_json(const struct generation *g, const struct config_integration *in,
					    const struct includes *inc)
{
	const struct config_host *h = generation_config(g);
	const struct config_provider *p = h->catalogue ? config_provider_find(h->catalogue, in->provider) : NULL;
	struct json_object *o = json_object_new_object();
	char created[32];

	if (!o)
		return NULL;
	api_iso_time(generation_created_at_ms(g), false, created);
	json_object_object_add(o, "unique_key", json_object_new_string(in->id));
	json_object_object_add(o, "provider", json_object_new_string(in->provider));
	json_object_object_add(o, "display_name",
			       json_object_new_string(p && p->display_name ? p->display_name : in->provider));
	json_object_object_add(o, "logo", json_object_new_string(""));
	json_object_object_add(o, "forward_webhooks", json_object_new_boolean(h->webhook_forward_url != NULL));
	json_object_object_add(o, "created_at", json_object_new_string(created));
	json_object_object_add(o, "updated_at", json_object_new_string(created));
	if (inc && inc->webhook) {
		size_t n = strlen(h->webhook_base_url) + strlen(in->id) + 2;
		char *url = malloc(n);

		if (url) {
			snprintf(url, n, "%s/%s", h->webhook_base_url, in->id);
			json_object_object_add(o, "webhook_url", json_object_new_string(url));
			free(url);
		}
	}
	if (inc && inc->credentials)
		json_object_object_add(o, "credentials", NULL);
	return o;
}

static int integrations_list(struct api_context *ctx, struct generation *g, struct http_request *req,
			     struct http_response *resp)
{
	const struct config_nango *n = &generation_config(g)->nango;
	struct json_object *root, *arr;

	(void)ctx;
	(void)req;
	root = api_json_list("data", &arr);
	for (size_t i = 0; root && i < n->n_integrations; i++)
		json_object_array_add(arr, integration_json(g, &n->integrations[i], NULL));
	return http_respond_json(resp, 200, root);
}

API_GENERATION_ROUTE(api_integrations_list, integrations_list)

static int integration_get(struct api_context *ctx, struct generation *g, struct http_request *req,
			   struct http_response *resp)
{
	const char *key = http_param(req, "unique_key");
	const struct config_integration *in;
	struct includes inc = {false, false};

	(void)ctx;
	in = key ? config_integration_find(generation_config(g), key) : NULL;
	if (!in)
		return http_respond_error(resp, 404, "not_found", "Integration does not exist");
	http_query_each(req, add_include, &inc);
	return http_respond_json(resp, 200, api_json_member("data", integration_json(g, in, &inc)));
}

API_GENERATION_ROUTE(api_integration_get, integration_get)

static struct json_object *map_json(const struct config_map *m)
{
	struct json_object *o = json_object_new_object();

	for (size_t i = 0; o && i < m->n; i++)
		json_object_object_add(o, m->items[i].key, json_object_new_string(m->items[i].value));
	return o;
}

/* An ApiProvider: the catalogue entry as evscript reads it, plus name and logo_url. */
static struct json_object *provider_json(const struct config_provider *p)
{
	struct json_object *o = json_object_new_object(), *proxy;

	if (!o)
		return NULL;
	json_object_object_add(o, "name", json_object_new_string(p->name));
	json_object_object_add(o, "display_name",
			       json_object_new_string(p->display_name ? p->display_name : p->name));
	json_object_object_add(o, "auth_mode",
			       json_object_new_string(p->auth_mode_name ? p->auth_mode_name : "NONE"));
	json_object_object_add(o, "logo_url", json_object_new_string(""));
	json_object_object_add(o, "docs", json_object_new_string(""));
	if (p->alias)
		json_object_object_add(o, "alias", json_object_new_string(p->alias));
	if (p->base_url || p->headers.n || p->query.n) {
		proxy = json_object_new_object();
		if (proxy) {
			if (p->base_url)
				json_object_object_add(proxy, "base_url", json_object_new_string(p->base_url));
			if (p->headers.n)
				json_object_object_add(proxy, "headers", map_json(&p->headers));
			if (p->query.n)
				json_object_object_add(proxy, "query", map_json(&p->query));
			if (p->paginate.type != CONFIG_PAGINATE_NONE) {
				struct json_object *pg = json_object_new_object();

				json_object_object_add(pg, "type", json_object_new_string(
					config_paginate_type_name(p->paginate.type)));
				for (size_t i = 0; pg && i < CONFIG_PAGINATE_N_FIELDS; i++) {
					const char *v = config_paginate_get(&p->paginate, i);

					if (v)
						json_object_object_add(pg, config_paginate_fields[i].name,
								       json_object_new_string(v));
				}
				json_object_object_add(proxy, "paginate", pg);
			}
			json_object_object_add(o, "proxy", proxy);
		}
	}
	return o;
}

static bool matches(const struct config_provider *p, const char *search)
{
	return !search || !*search || strcasestr(p->name, search) ||
	       (p->display_name && strcasestr(p->display_name, search));
}

static int providers_list(struct api_context *ctx, struct generation *g, struct http_request *req,
			  struct http_response *resp)
{
	const struct config_providers *cat = generation_config(g)->catalogue;
	const char *search = http_query(req, "search");
	struct json_object *root, *arr;

	(void)ctx;
	root = api_json_list("data", &arr);
	for (size_t i = 0; root && cat && i < cat->n; i++) {
		if (matches(&cat->items[i], search))
			json_object_array_add(arr, provider_json(&cat->items[i]));
	}
	return http_respond_json(resp, 200, root);
}

API_GENERATION_ROUTE(api_providers_list, providers_list)

static int provider_get(struct api_context *ctx, struct generation *g, struct http_request *req,
			struct http_response *resp)
{
	const struct config_providers *cat = generation_config(g)->catalogue;
	const char *name = http_param(req, "provider");
	const struct config_provider *p = cat && name ? config_provider_find(cat, name) : NULL;

	(void)ctx;
	if (!p)
		return http_respond_error(resp, 404, "not_found", "Unknown provider %s", name ? name : "");
	return http_respond_json(resp, 200, api_json_member("data", provider_json(p)));
}

API_GENERATION_ROUTE(api_provider_get, provider_get)

/* GET /plugins: a loaded plugin's subscriptions and where each came from. */
struct json_object *api_plugin_subscriptions(const struct generation *g, const char *plugin)
{
	struct json_object *arr = json_object_new_array();

	for (size_t i = 0; arr && i < generation_subscription_count(g); i++) {
		const struct generation_subscription *s = generation_subscription_at(g, i);
		struct json_object *o, *src;

		if (strcmp(s->plugin, plugin) != 0 || !(o = json_object_new_object()))
			continue;
		src = json_object_new_array();
		if (src && (s->sources & GENERATION_SUB_NANGO_YAML))
			json_object_array_add(src, json_object_new_string("nango.yaml"));
		if (src && (s->sources & GENERATION_SUB_DECLARED))
			json_object_array_add(src, json_object_new_string("plugin"));
		json_object_object_add(o, "integration", json_object_new_string(s->integration));
		json_object_object_add(o, "event", json_object_new_string(s->event));
		json_object_object_add(o, "sources", src);
		json_object_array_add(arr, o);
	}
	return arr;
}
