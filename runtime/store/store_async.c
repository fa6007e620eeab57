/*
 * store_async.c - the public functions for connection tags, asynchronous
 * actions' results and webhook deliveries: argument checks, then the back
 * end's operation (store_backend.h). A back end without these operations
 * (the table entries are NULL) answers STORE_EINVAL.
 */
#include "store.h"
#include "store_backend.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

static int check_id(const char *s, size_t max)
{
	if (!s || !*s)
		return STORE_EINVAL;
	return strlen(s) > max ? STORE_ETOOBIG : 0;
}

int store_connection_patch(struct store *s, const char *pck, const char *cid,
			   const char *tags_json, bool set_override, const char *override)
{
	int ret;

	if (!s || !s->ops->connection_patch)
		return STORE_EINVAL;
	if ((ret = check_id(pck, STORE_ID_MAX)) || (ret = check_id(cid, STORE_ID_MAX)))
		return ret;
	if (tags_json && (ret = store_json_check(tags_json, true)))
		return ret;
	if (override && strlen(override) > STORE_ERROR_MAX)
		return STORE_ETOOBIG;
	return s->ops->connection_patch(s, pck, cid, tags_json, set_override, override);
}

void store_async_action_free(struct store_async_action *a)
{
	if (!a)
		return;
	util_free_all(a->provider_config_key, a->connection_id, a->action, a->output, a->error, a);
}

int store_async_action_create(struct store *s, const char *id, const char *pck, const char *cid,
			      const char *action)
{
	int ret;

	if (!s || !s->ops->async_create)
		return STORE_EINVAL;
	if ((ret = check_id(id, STORE_ASYNC_ID_MAX)) || (ret = check_id(pck, STORE_ID_MAX)) ||
	    (ret = check_id(cid, STORE_ID_MAX)) || (ret = check_id(action, STORE_ID_MAX)))
		return ret;
	return s->ops->async_create(s, id, pck, cid, action, util_now_ms());
}

int store_async_action_finish(struct store *s, const char *id, int64_t execution_id, bool ok,
			      const char *output_json, const char *error_json)
{
	int ret;

	if (!s || !s->ops->async_finish)
		return STORE_EINVAL;
	if ((ret = check_id(id, STORE_ASYNC_ID_MAX)))
		return ret;
	if (ok && output_json && (ret = store_json_check(output_json, false)))
		return ret;
	if (!ok && (ret = store_json_check(error_json, true)))
		return ret;
	return s->ops->async_finish(s, id, execution_id, ok, ok ? (output_json ? output_json : "null") : NULL,
				    ok ? NULL : error_json, util_now_ms());
}

int store_async_action_get(struct store *s, const char *id, struct store_async_action **out)
{
	int ret;

	*out = NULL;
	if (!s || !s->ops->async_get)
		return STORE_EINVAL;
	if ((ret = check_id(id, STORE_ASYNC_ID_MAX)))
		return ret;
	return s->ops->async_get(s, id, util_now_ms() - STORE_ASYNC_TTL_MS, out);
}

const char *store_webhook_status_name(enum store_webhook_status st)
{
	switch (st) {
	case STORE_WEBHOOK_PENDING: return "pending";
	case STORE_WEBHOOK_DELIVERED: return "delivered";
	case STORE_WEBHOOK_FAILED: return "failed";
	case STORE_WEBHOOK_STORED: return "stored";
	}
	return "unknown";
}

void store_webhook_free(struct store_webhook *w)
{
	if (!w)
		return;
	util_free_all(w->integration, w->headers, w->body, w->last_error, w);
}

void store_webhook_list_free(struct store_webhook **items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		store_webhook_free(items[i]);
	free(items);
}

int store_webhook_insert(struct store *s, const char *integration, const char *headers_json,
			 const char *body, size_t body_len, enum store_webhook_status status,
			 int64_t *id)
{
	int ret;

	*id = 0;
	if (!s || !s->ops->webhook_insert || (!body && body_len) ||
	    (status != STORE_WEBHOOK_PENDING && status != STORE_WEBHOOK_STORED))
		return STORE_EINVAL;
	if ((ret = check_id(integration, STORE_ID_MAX)) || (ret = store_json_check(headers_json, true)))
		return ret;
	if (body_len > STORE_WEBHOOK_BODY_MAX)
		return STORE_ETOOBIG;
	ret = s->ops->webhook_insert(s, integration, headers_json, body ? body : "", body_len, status,
				     util_now_ms(), id);
	if (ret)
		*id = 0;
	return ret;
}

int store_webhook_due(struct store *s, int64_t now, struct store_webhook **out)
{
	*out = NULL;
	if (!s || !s->ops->webhook_due)
		return STORE_EINVAL;
	return s->ops->webhook_due(s, now, out);
}

int store_webhook_attempt(struct store *s, int64_t id, enum store_webhook_status status,
			  const char *error, int64_t next_attempt_at)
{
	if (!s || !s->ops->webhook_attempt || id <= 0 || status == STORE_WEBHOOK_STORED)
		return STORE_EINVAL;
	return s->ops->webhook_attempt(s, id, status, error, next_attempt_at, util_now_ms());
}

int store_webhook_list(struct store *s, const char *integration, size_t limit, int64_t cursor,
		       struct store_webhook ***items, size_t *n, int64_t *next_cursor)
{
	int ret;

	*items = NULL;
	*n = 0;
	*next_cursor = 0;
	if (!s || !s->ops->webhook_list || cursor < 0)
		return STORE_EINVAL;
	if (integration && (ret = check_id(integration, STORE_ID_MAX)))
		return ret;
	if (limit == 0)
		limit = 50;
	if (limit > STORE_LIST_MAX)
		limit = STORE_LIST_MAX;
	return s->ops->webhook_list(s, integration, limit, cursor, items, n, next_cursor);
}
