/*
 * store_row.c - the row decoders both back ends share (store_row.h).
 */
#include "store_row.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

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

/* A text column copied into a fixed-size field ("" for NULL). */
static void copy_col(const struct store_row *r, int col, char *dst, size_t size)
{
	const char *t = r->ops->text(r, col);

	snprintf(dst, size, "%s", t ? t : "");
}

static enum store_event_status event_status(const char *s)
{
	static const struct {
		const char *name;
		enum store_event_status st;
	} names[] = {{"claimed", STORE_EVENT_CLAIMED},
		     {"done", STORE_EVENT_DONE},
		     {"interrupted", STORE_EVENT_INTERRUPTED}};

	for (size_t i = 0; s && i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i].name) == 0)
			return names[i].st;
	return STORE_EVENT_PENDING;
}

void store_row_event(const struct store_row *r, struct store_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->id = r->ops->i64(r, 0);
	copy_col(r, 1, ev->type, sizeof(ev->type));
	copy_col(r, 2, ev->connection_id, sizeof(ev->connection_id));
	copy_col(r, 3, ev->provider_config_key, sizeof(ev->provider_config_key));
	copy_col(r, 4, ev->script, sizeof(ev->script));
	ev->retry_of = r->ops->i64(r, 5);
	ev->status = event_status(r->ops->text(r, 6));
	ev->generation = r->ops->i64(r, 7);
	ev->created_at = r->ops->i64(r, 8);
	ev->claimed_at = r->ops->i64(r, 9);
	ev->finished_at = r->ops->i64(r, 10);
}

int store_row_execution(const struct store_row *r, struct store_execution **out)
{
	struct store_execution *e = calloc(1, sizeof(*e));
	const char *t;
	int ret = 0;

	*out = NULL;
	if (!e)
		return STORE_ENOMEM;
	e->id = r->ops->i64(r, 0);
	e->event_id = r->ops->i64(r, 1);
	e->parent_execution_id = r->ops->i64(r, 2);
	t = r->ops->text(r, 3);
	e->kind = t && strcmp(t, "action") == 0 ? STORE_EXEC_ACTION : STORE_EXEC_EVENT;
	e->script = store_row_dup(r, 4, &ret);
	e->event = store_row_dup(r, 5, &ret);
	e->connection_id = store_row_dup(r, 6, &ret);
	e->provider_config_key = store_row_dup(r, 7, &ret);
	e->status = (enum store_exec_status)store_exec_status_from_name(r->ops->text(r, 8));
	if ((int)e->status < 0)
		ret = STORE_EIO;
	e->started_at = r->ops->i64(r, 9);
	e->ended_at = r->ops->i64(r, 10);
	e->duration_ms = r->ops->text(r, 11) ? r->ops->i64(r, 11) : -1;
	e->error = store_row_dup(r, 12, &ret);
	e->plugin_version = store_row_dup(r, 13, &ret);
	e->logs_dropped = r->ops->i64(r, 14);
	e->host_id = store_row_dup(r, 15, &ret);
	return store_row_execution_out(ret, e, out);
}

int store_row_execution_out(int ret, struct store_execution *e, struct store_execution **out)
{
	if (ret)
		store_execution_free(e);
	else
		*out = e;
	return ret;
}

int store_row_log_line(const struct store_row *r, struct store_log_line *l)
{
	int ret = 0;

	l->seq = r->ops->i64(r, 0);
	l->ts = r->ops->i64(r, 1);
	l->level = (int)r->ops->i64(r, 2);
	l->message = store_row_dup(r, 3, &ret);
	return ret;
}

int store_row_idempotency(const struct store_row *r, struct store_idempotency **out)
{
	struct store_idempotency *rec = calloc(1, sizeof(*rec));
	int ret = 0;

	*out = NULL;
	if (!rec)
		return STORE_ENOMEM;
	rec->key = store_row_dup(r, 0, &ret);
	rec->method_path = store_row_dup(r, 1, &ret);
	rec->request_hash = store_row_dup(r, 2, &ret);
	rec->status = (int)r->ops->i64(r, 3);
	rec->body = store_row_dup(r, 4, &ret);
	rec->created_at = r->ops->i64(r, 5);
	if (ret)
		store_idempotency_free(rec);
	else
		*out = rec;
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
	copy_col(r, 0, a->id, sizeof(a->id));
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

int store_row_retry(const struct store_row *r, struct store_retry *out)
{
	const char *kind = r->ops->text(r, 0), *status = r->ops->text(r, 1);
	int ret = 0;

	memset(out, 0, sizeof(*out));
	if (kind && strcmp(kind, "action") == 0)
		return STORE_EINVAL;
	if (status && strcmp(status, "running") == 0)
		return STORE_ESTATE;
	out->event = store_row_dup(r, 2, &ret);
	out->script = store_row_dup(r, 3, &ret);
	out->cid = store_row_dup(r, 4, &ret);
	out->pck = store_row_dup(r, 5, &ret);
	if (!ret && (!out->event || strcmp(out->event, "validate-connection") == 0))
		ret = STORE_EINVAL;
	if (ret)
		store_retry_free(out);
	return ret;
}

void store_retry_free(struct store_retry *r)
{
	util_free_all(r->event, r->script, r->cid, r->pck);
	memset(r, 0, sizeof(*r));
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
