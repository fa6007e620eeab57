/*
 * webhooks.c - the host file's incoming-webhook keys: where deliveries are
 * forwarded (webhook_forward_url), how often and how patiently
 * (webhook_max_attempts, webhook_retry_base_ms, in host_keys[]), and per
 * integration the signature check (webhook_secrets).
 */
#include "parse_util.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const scheme_names[] = {
	[CONFIG_WEBHOOK_GITHUB] = "github",
	[CONFIG_WEBHOOK_SLACK] = "slack",
	[CONFIG_WEBHOOK_HMAC_SHA256] = "hmac-sha256",
};

const char *config_webhook_scheme_name(enum config_webhook_scheme s)
{
	return (unsigned)s < sizeof(scheme_names) / sizeof(scheme_names[0]) ? scheme_names[s] : NULL;
}

int config_set_webhook_forward_url(struct pctx *c, const struct ynode *v, struct config_host *h)
{
	if (v->type != YNODE_SCALAR ||
	    (strncmp(v->str, "http://", 7) != 0 && strncmp(v->str, "https://", 8) != 0))
		return PFAIL(c, v, CONFIG_EINVALID,
			     "webhook_forward_url: expected a URL starting with http:// or https://");
	free(h->webhook_forward_url);
	h->webhook_forward_url = NULL;
	return p_string(c, v, "webhook_forward_url", &h->webhook_forward_url);
}

static int secret_key(struct pctx *c, const struct ynode *key, const struct ynode *v, const char *what,
		      void *user)
{
	struct config_webhook_secret *out = user;
	const char *k = key->str;
	int ret = 0;

	if (strcmp(k, "scheme") == 0) {
		for (int i = 0; i < CONFIG_WEBHOOK_SCHEMES; i++)
			if (v->type == YNODE_SCALAR && strcmp(v->str, scheme_names[i]) == 0)
				out->scheme = i;
		if ((int)out->scheme < 0)
			ret = PFAIL(c, v, CONFIG_EINVALID, "%s: expected github, slack or hmac-sha256", what);
	} else if (strcmp(k, "secret") == 0) {
		secret_free(out->secret);
		out->secret = NULL;
		ret = p_string(c, v, what, &out->secret);
		if (!ret && !out->secret[0])
			ret = PFAIL(c, v, CONFIG_EINVALID, "%s: must not be empty", what);
	} else if (strcmp(k, "header") == 0) {
		free(out->header);
		out->header = NULL;
		ret = p_string(c, v, what, &out->header);
	} else {
		ret = PFAIL(c, key, CONFIG_EINVALID,
			    "webhook_secrets.%s: unknown key '%s', expected scheme, secret or header", out->integration, k);
	}
	return ret;
}

/* One entry of webhook_secrets: {scheme, secret, header}. */
static int parse_secret(struct pctx *c, const struct ynode *name, const struct ynode *s, void *item, void *user)
{
	struct config_webhook_secret *out = item;
	int ret;

	(void)user;
	out->scheme = -1;
	ret = p_named_entry(c, "webhook_secrets", name, s, true, " with scheme, secret and (hmac-sha256) header",
			    &out->integration, secret_key, out);
	if (ret)
		return ret;
	if ((int)out->scheme < 0 || !out->secret)
		return PFAIL(c, s, CONFIG_EINVALID, "webhook_secrets.%s: scheme and secret are required", name->str);
	if (out->scheme == CONFIG_WEBHOOK_HMAC_SHA256 && !out->header)
		return PFAIL(c, s, CONFIG_EINVALID, "webhook_secrets.%s: hmac-sha256 needs a header", name->str);
	return 0;
}

int config_set_webhook_secrets(struct pctx *c, const struct ynode *v, struct config_host *h)
{
	config_webhook_secrets_clear(h);
	return p_map_read(c, v, "webhook_secrets", "integration ids to settings", CONFIG_INTEGRATIONS_MAX,
			  sizeof(*h->webhook_secrets), &h->webhook_secrets, &h->n_webhook_secrets, parse_secret,
			  NULL);
}

static void secret_entry_free(void *item)
{
	struct config_webhook_secret *ws = item;

	secret_free(ws->secret);
	util_free_all(ws->integration, ws->header);
}

void config_webhook_secrets_clear(struct config_host *h)
{
	util_array_free(&h->webhook_secrets, &h->n_webhook_secrets, sizeof(*h->webhook_secrets),
			secret_entry_free);
}

const struct config_webhook_secret *config_webhook_secret_find(const struct config_host *h,
							       const char *integration)
{
	return h ? UTIL_FIND_NAME(h->webhook_secrets, h->n_webhook_secrets, struct config_webhook_secret,
				  integration, integration)
		 : NULL;
}
