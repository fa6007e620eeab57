/*
 * api_async.c - asynchronous actions: POST /action/trigger with
 * "X-Async: true" (api_actions.c hands over once the request is valid) and
 * GET /action/{id}; and the API's background jobs.
 *
 * An asynchronous action is recorded in the store (running) before the 202,
 * runs on a job thread of its own through the same dispatch_action() as a
 * synchronous one, and its result (the output, or the failure as the
 * synchronous route reports it) is written to the same record. Records are
 * kept STORE_ASYNC_TTL_MS (24 h) and survive a restart; one that was running
 * when the daemon stopped reads as failed (store_recover()).
 *
 * Jobs: every thread the API starts (these and the webhook forwarder)
 * counts in ctx's job set; api_jobs_stop() refuses new ones and waits for
 * those running, so nothing of the API outlives the dispatcher.
 */
#include "api_priv.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

struct api_jobs {
	pthread_mutex_t lock;
	pthread_cond_t idle;
	size_t running;
	bool stopping;
};

struct api_jobs *api_jobs_new(void)
{
	struct api_jobs *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	if (util_lock_init(&j->lock, &j->idle) != 0) {
		free(j);
		return NULL;
	}
	return j;
}

void api_jobs_free(struct api_jobs *j)
{
	if (!j)
		return;
	pthread_cond_destroy(&j->idle);
	pthread_mutex_destroy(&j->lock);
	free(j);
}

/* Starts fn(arg) on a detached thread counted in ctx's jobs: 0, or
 * STATUS_ESTATE once stopping, or the thread's creation error (fn is not
 * called; arg stays the caller's). */
int api_job_start(struct api_context *ctx, void *(*fn)(void *), void *arg)
{
	struct api_jobs *j = api_jobs_of(ctx);
	pthread_attr_t attr;
	pthread_t t;
	int ret;

	pthread_mutex_lock(&j->lock);
	if (j->stopping || j->running >= API_JOBS_MAX) {
		ret = j->stopping ? STATUS_ESTATE : STATUS_EBUSY;
		pthread_mutex_unlock(&j->lock);
		return ret;
	}
	j->running++;
	pthread_mutex_unlock(&j->lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	ret = pthread_create(&t, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	if (ret != 0) {
		api_job_end(ctx);
		return status_from_errno(ret);
	}
	return 0;
}

void api_job_end(struct api_context *ctx)
{
	struct api_jobs *j = api_jobs_of(ctx);

	pthread_mutex_lock(&j->lock);
	if (--j->running == 0)
		pthread_cond_broadcast(&j->idle);
	pthread_mutex_unlock(&j->lock);
}

bool api_jobs_stopping(struct api_context *ctx)
{
	struct api_jobs *j = api_jobs_of(ctx);
	bool s;

	pthread_mutex_lock(&j->lock);
	s = j->stopping;
	pthread_mutex_unlock(&j->lock);
	return s;
}

void api_jobs_stop(struct api_context *ctx)
{
	struct api_jobs *j = ctx ? api_jobs_of(ctx) : NULL;

	if (!j)
		return;
	pthread_mutex_lock(&j->lock);
	j->stopping = true;
	pthread_cond_broadcast(&j->idle);
	while (j->running > 0)
		pthread_cond_wait(&j->idle, &j->lock);
	pthread_mutex_unlock(&j->lock);
}

void api_jobs_wake(struct api_context *ctx)
{
	struct api_jobs *j = api_jobs_of(ctx);

	pthread_mutex_lock(&j->lock);
	pthread_cond_broadcast(&j->idle);
	pthread_mutex_unlock(&j->lock);
}

/* Waits up to ms for stopping; true when stopping (the caller ends). */
bool api_jobs_sleep(struct api_context *ctx, int64_t ms)
{
	struct api_jobs *j = api_jobs_of(ctx);
	struct timespec ts;
	bool s;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&j->lock);
	if (!j->stopping)
		pthread_cond_timedwait(&j->idle, &j->lock, &ts);
	s = j->stopping;
	pthread_mutex_unlock(&j->lock);
	return s;
}

/* ------------------------------------------------- one asynchronous run */

struct async_run {
	struct api_context *ctx;
	char id[37];
	char *pck, *cid, *name, *input;
};

static void async_run_free(struct async_run *r)
{
	if (r)
		util_free_all(r->pck, r->cid, r->name, r->input, r);
}

/* {"message","payload"} of a failed run, as the synchronous route's 500. */
static char *failure_json(const char *name, int ret, const struct dispatch_outcome *o)
{
	struct json_object *e = json_object_new_object(), *payload = NULL;
	char msg[512];
	char *text = NULL;

	if (!e)
		return NULL;
	if (ret == EVS_ENOTFOUND) {
		snprintf(msg, sizeof(msg), "Action not found");
	} else if (ret < 0) {
		snprintf(msg, sizeof(msg), "the action could not run: %s", status_str(ret));
	} else {
		if (o->error && o->error[0])
			snprintf(msg, sizeof(msg), "%s", o->error);
		else
			snprintf(msg, sizeof(msg), "action %s %s", name, store_exec_status_name(o->status));
		payload = api_action_failure_payload(o);
	}
	json_object_object_add(e, "message", json_object_new_string(msg));
	json_object_object_add(e, "payload", payload);
	text = strdup(api_json_str(e));
	json_object_put(e);
	return text;
}

static void *async_main(void *arg)
{
	struct async_run *r = arg;
	struct dispatch_outcome o;
	char *failure = NULL;
	bool ok;
	int ret;

	memset(&o, 0, sizeof(o));
	ret = dispatch_action(r->ctx->dispatch, r->pck, r->cid, r->name, r->input, 0, 0, &o);
	/* it ran, and only its execution's end waits for the store: its
	 * outcome is known, and is this record's */
	if (ret == STATUS_EIO && o.execution_id)
		ret = 0;
	ok = ret == 0 && o.status == STORE_EXEC_SUCCEEDED;
	if (!ok)
		failure = failure_json(r->name, ret, &o);
	ret = store_async_action_finish(r->ctx->store, r->id, o.execution_id, ok,
					ok ? o.output_json : NULL,
					ok ? NULL : failure ? failure : "{\"message\":\"out of memory\"}");
	if (ret < 0)
		log_error("api", "async action %s: recording its result failed: %s", r->id, status_str(ret));
	free(failure);
	dispatch_outcome_clear(&o);
	api_job_end(r->ctx);
	async_run_free(r);
	return NULL;
}

int api_action_async_start(struct api_context *ctx, struct http_response *resp, const char *pck,
			   const char *cid, const char *name, const char *input)
{
	struct async_run *r = calloc(1, sizeof(*r));
	struct json_object *body;
	char url[64];
	int ret;

	if (!r || !(r->pck = strdup(pck)) || !(r->cid = strdup(cid)) || !(r->name = strdup(name)) ||
	    !(r->input = strdup(input))) {
		async_run_free(r);
		return http_respond_json(resp, 500, NULL);
	}
	r->ctx = ctx;
	api_uuid_v4(r->id);
	ret = store_async_action_create(ctx->store, r->id, pck, cid, name);
	if (ret < 0) {
		async_run_free(r);
		return api_respond_store_error(resp, "recording the async action", ret);
	}
	snprintf(url, sizeof(url), "/action/%s", r->id);
	body = json_object_new_object();
	if (body) {
		json_object_object_add(body, "id", json_object_new_string(r->id));
		json_object_object_add(body, "statusUrl", json_object_new_string(url));
	}
	ret = api_job_start(ctx, async_main, r);
	if (ret < 0) {
		store_async_action_finish(ctx->store, r->id, 0, false, NULL,
					  "{\"message\":\"the action could not be started\",\"payload\":null}");
		async_run_free(r);
		json_object_put(body);
		if (ret == STATUS_EBUSY)
			return http_respond_error(resp, 503, "busy", "%d asynchronous actions are running already, "
						  "try again later", API_JOBS_MAX);
		return http_respond_error(resp, 503, "shutting_down", "the daemon is stopping");
	}
	return http_respond_json(resp, 202, body);
}

/* --------------------------------------------------- GET /action/{id} */

static bool valid_uuid(const char *s)
{
	static const char pattern[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";

	if (strlen(s) != sizeof(pattern) - 1)
		return false;
	for (size_t i = 0; pattern[i]; i++) {
		if (pattern[i] == '-' ? s[i] != '-' : util_hexval(s[i]) < 0)
			return false;
	}
	return true;
}

int api_action_result(struct http_request *req, struct http_response *resp, void *user)
{
	struct api_context *ctx = user;
	const char *id = http_param(req, "id");
	struct store_async_action *a = NULL;
	struct json_object *err = NULL, *payload = NULL, *msg = NULL;
	int ret;

	if (!id || !valid_uuid(id))
		return http_respond_error(resp, 400, "invalid_uri_params", "the action id must be a UUID");
	ret = store_async_action_get(ctx->store, id, &a);
	if (ret == STORE_ENOTFOUND || (ret == 0 && a->status == STORE_ASYNC_RUNNING)) {
		/* Nango answers 404 while the action is still running, too */
		ret = http_respond_error(resp, 404, "not_found", "No action '%s' found", id);
		goto out;
	}
	if (ret < 0) {
		ret = api_respond_store_error(resp, "reading the async action", ret);
		goto out;
	}
	if (a->status == STORE_ASYNC_SUCCEEDED) {
		ret = api_respond_raw_json(resp, 200, a->output ? a->output : "null");
		goto out;
	}
	err = api_parse_doc(a->error);
	json_object_object_get_ex(err, "message", &msg);
	if (json_object_object_get_ex(err, "payload", &payload))
		json_object_get(payload);
	ret = api_respond_problem(resp, 500, "action_script_failure",
				  msg ? json_object_get_string(msg) : "the action failed", NULL, payload);
out:
	json_object_put(err);
	store_async_action_free(a);
	return ret;
}
