/*
 * oauth_clients.c - the host file's `oauth_clients:` mapping: for each
 * integration id, the OAuth client (client_id, and client_secret or the
 * name of the environment variable holding it) that evscript refreshes
 * that integration's OAUTH2 tokens with.
 *
 *   oauth_clients:
 *       github:
 *           client_id: Iv1.abc
 *           client_secret_env: GITHUB_CLIENT_SECRET
 */
#include "parse_util.h"
#include "util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int client_key(struct pctx *c, const struct ynode *key, const struct ynode *v, const char *what,
		      void *user)
{
	struct config_oauth_client *oc = user;
	const char *k = key->str;

	if (strcmp(k, "client_id") == 0 && !oc->client_id)
		return p_string(c, v, what, &oc->client_id);
	if (strcmp(k, "client_secret") == 0 && !oc->client_secret)
		return p_string(c, v, what, &oc->client_secret);
	if (strcmp(k, "client_secret_env") == 0 && !oc->client_secret_env)
		return p_string(c, v, what, &oc->client_secret_env);
	return PFAIL(c, key, CONFIG_EINVALID,
		     "oauth_clients.%s: unknown key '%s', expected client_id, client_secret or client_secret_env",
		     oc->integration, k);
}

static int client_entry(struct pctx *c, const struct ynode *name, const struct ynode *m, void *item, void *user)
{
	struct config_oauth_client *oc = item;
	int ret;

	(void)user;
	oc->line = name->line;
	oc->column = name->column;
	ret = p_named_entry(c, "oauth_clients", name, m, true, " with client_id and client_secret", &oc->integration,
			    client_key, oc);
	if (ret)
		return ret;
	if (!oc->client_id || !*oc->client_id)
		return PFAIL(c, name, CONFIG_EINVALID, "oauth_clients.%s: client_id is required", name->str);
	if (!oc->client_secret == !oc->client_secret_env)
		return PFAIL(c, name, CONFIG_EINVALID,
			     "oauth_clients.%s: expected exactly one of client_secret and client_secret_env",
			     name->str);
	return 0;
}

int oauth_clients_parse(struct pctx *c, const struct ynode *v, struct config_host *h)
{
	oauth_clients_free(h);
	return p_map_read(c, v, "oauth_clients", "integration ids to OAuth clients", CONFIG_LIST_MAX,
			  sizeof(*h->oauth_clients), &h->oauth_clients, &h->n_oauth_clients, client_entry, NULL);
}

int oauth_clients_resolve(struct config_host *h, char *const *envp, char *err, size_t errlen)
{
	for (size_t i = 0; i < h->n_oauth_clients; i++) {
		struct config_oauth_client *oc = &h->oauth_clients[i];
		size_t n;
		const char *val = NULL;

		if (!oc->client_secret_env)
			continue;
		n = strlen(oc->client_secret_env);
		for (char *const *e = envp; e && *e && !val; e++)
			if (strncmp(*e, oc->client_secret_env, n) == 0 && (*e)[n] == '=')
				val = *e + n + 1;
		if (!val || !*val) {
			util_set_err(err, errlen,
				     "%s:%u:%u: oauth_clients.%s: client_secret_env names %s, which is not set "
				     "in the environment", h->file, oc->line, oc->column, oc->integration,
				     oc->client_secret_env);
			return CONFIG_EINVALID;
		}
		secret_free(oc->client_secret);
		oc->client_secret = strdup(val);
		if (!oc->client_secret) {
			util_set_err(err, errlen, "%s: out of memory", h->file);
			return CONFIG_ENOMEM;
		}
	}
	return 0;
}

static void client_free(void *item)
{
	struct config_oauth_client *oc = item;

	secret_free(oc->client_secret);
	util_free_all(oc->integration, oc->client_id, oc->client_secret_env);
}

void oauth_clients_free(struct config_host *h)
{
	util_array_free(&h->oauth_clients, &h->n_oauth_clients, sizeof(*h->oauth_clients), client_free);
}

const struct config_oauth_client *config_oauth_client_find(const struct config_host *h, const char *id)
{
	return h ? UTIL_FIND_NAME(h->oauth_clients, h->n_oauth_clients, struct config_oauth_client,
				  integration, id)
		 : NULL;
}
