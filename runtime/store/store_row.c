/*
 * store_row.c - the row decoders both back ends share (store_row.h).
 */
#include "store_row.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *store_row_dup(const struct store_row *r, int col, int *ret)
{
	const char *t = r->ops->text(r, col);
	char *s;

	if (!t)
		return NULL;
	s = strdup(t);
	if (!s)
		*ret = STORE_ENOMEM;
	return s;
}

int store_row_list_grow(struct store_row_list *l)
{
	size_t alloc = l->alloc ? l->alloc * 2 : 16;
	void **v;

	if (l->n < l->alloc)
		return 0;
	v = realloc(l->v, alloc * sizeof(*v));
	if (!v)
		return STORE_ENOMEM;
	l->v = v;
	l->alloc = alloc;
	return 0;
}

int store_row_connection(struct store *s, const struct store_row *r, bool with_credentials,
			 struct store_connection **out)
{
	struct store_connection *c = calloc(1, sizeof(*c));
	uint8_t *blob = NULL;
	size_t len = 0;
	int ret = 0;

	*out = NULL;
	if (!c)
		return STORE_ENOMEM;
	c->id = r->ops->i64(r, 0);
	c->connection_id = store_row_dup(r, 1, &ret);
	c->provider_config_key = store_row_dup(r, 2, &ret);
	c->provider = store_row_dup(r, 3, &ret);
	c->credentials_encrypted = r->ops->i64(r, 5) != 0;
	c->connection_config = store_row_dup(r, 6, &ret);
	c->metadata = store_row_dup(r, 7, &ret);
	c->created_at = r->ops->i64(r, 8);
	c->updated_at = r->ops->i64(r, 9);
	c->deleting = r->ops->i64(r, 10) != 0;
	c->tags = store_row_dup(r, 11, &ret);
	c->webhook_url_override = store_row_dup(r, 12, &ret);
	if (!ret && with_credentials) {
		ret = r->ops->blob(r, 4, &blob, &len);
		if (!ret)
			ret = store_open_credentials(s, c->provider_config_key, c->connection_id,
						     blob ? blob : (const uint8_t *)"", len,
						     c->credentials_encrypted, &c->credentials);
		store_blob_free(blob, len);
	}
	if (ret)
		store_connection_free(c);
	else
		*out = c;
	return ret;
}

int store_row_async(const struct store_row *r, struct store_async_action **out)
{
	struct store_async_action *a = calloc(1, sizeof(*a));
	const char *status;
	int ret = 0;

	*out = NULL;
	if (!a)
		return STORE_ENOMEM;
	snprintf(a->id, sizeof(a->id), "%s", r->ops->text(r, 0) ? r->ops->text(r, 0) : "");
	a->provider_config_key = store_row_dup(r, 1, &ret);
	a->connection_id = store_row_dup(r, 2, &ret);
	a->action = store_row_dup(r, 3, &ret);
	status = r->ops->text(r, 4);
	a->status = status && strcmp(status, "succeeded") == 0 ? STORE_ASYNC_SUCCEEDED
		    : status && strcmp(status, "failed") == 0  ? STORE_ASYNC_FAILED
							       : STORE_ASYNC_RUNNING;
	a->execution_id = r->ops->i64(r, 5);
	a->output = store_row_dup(r, 6, &ret);
	a->error = store_row_dup(r, 7, &ret);
	a->created_at = r->ops->i64(r, 8);
	a->finished_at = r->ops->i64(r, 9);
	if (ret)
		store_async_action_free(a);
	else
		*out = a;
	return ret;
}

static enum store_webhook_status webhook_status(const char *s)
{
	for (int st = STORE_WEBHOOK_PENDING; s && st <= STORE_WEBHOOK_STORED; st++) {
		if (strcmp(s, store_webhook_status_name(st)) == 0)
			return st;
	}
	return STORE_WEBHOOK_FAILED;
}

int store_row_webhook(const struct store_row *r, struct store_webhook **out)
{
	struct store_webhook *w = calloc(1, sizeof(*w));
	uint8_t *body = NULL;
	int ret = 0;

	*out = NULL;
	if (!w)
		return STORE_ENOMEM;
	w->id = r->ops->i64(r, 0);
	w->integration = store_row_dup(r, 1, &ret);
	w->headers = store_row_dup(r, 2, &ret);
	w->status = webhook_status(r->ops->text(r, 3));
	w->attempts = (int)r->ops->i64(r, 4);
	w->received_at = r->ops->i64(r, 5);
	w->next_attempt_at = r->ops->i64(r, 6);
	w->delivered_at = r->ops->i64(r, 7);
	w->last_error = store_row_dup(r, 8, &ret);
	if (!ret)
		ret = r->ops->blob(r, 9, &body, &w->body_len);
	w->body = (char *)body;
	if (ret)
		store_webhook_free(w);
	else
		*out = w;
	return ret;
}
