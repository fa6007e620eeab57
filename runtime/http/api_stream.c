/*
 * api_stream.c - following executions live, as server-sent events
 * (text/event-stream, http_respond_stream()):
 *
 *   GET /executions/stream        the executions that match the filters of
 *                                 GET /executions: the newest `limit` first
 *                                 (oldest of them first), then every
 *                                 execution that starts or changes status
 *   GET /executions/{id}/logs/stream
 *                                 one execution: its object, its log lines
 *                                 as they are logged, and its end
 *
 * Each stream keeps what it has sent and, once a second or sooner when
 * runtime/common/livelog.h says something changed, asks the store (and the
 * live log bus for lines the store does not have yet) what is new. A
 * stream writes an SSE comment when idle, to find out that its client went
 * away, and ends when the server stops.
 */
#include "api_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dynbuf.h"
#include "livelog.h"
#include "util.h"

#define STREAM_OUT_MAX (4u << 20)     /* events waiting to be sent */
#define STREAM_OUT_BATCH (1u << 20)   /* a look stops adding lines past this; the next goes on */
#define STREAM_WAIT_MS 1000           /* read() blocks at most this long */
#define STREAM_MIN_GAP_US 100000      /* at most ten store reads a second */
#define STREAM_BUS_GAP_US 10000       /* and a hundred looks at the live bus */
#define STREAM_KEEPALIVE_US 10000000  /* an idle stream writes a comment this often */
#define STREAM_LIST_DEFAULT 50
#define STREAM_LIST_MAX 200

struct tracked {
	int64_t id;
	int status;
};

struct stream {
	struct api_context *ctx;
	struct dynbuf out;        /* events produced, not yet sent */
	size_t out_pos;
	bool started, done;
	bool more;                /* the last look stopped at STREAM_OUT_BATCH: look again at once */
	uint64_t version;         /* livelog's counter at the last look */
	int64_t last_look_us, last_store_us, last_write_us;
	/* one execution's logs */
	int64_t execution_id;
	int64_t sent_seq;         /* the last log line sent */
	int last_status;          /* -1: the execution object not sent yet */
	/* the list */
	struct store_execution_filter filter;
	char *filter_strings[4];  /* owned copies of the filter's strings */
	struct tracked *seen;     /* the last list's ids and statuses */
	size_t n_seen;
};

static void stream_free(void *cls)
{
	struct stream *st = cls;

	if (!st)
		return;
	dynbuf_free(&st->out);
	for (size_t i = 0; i < 4; i++)
		free(st->filter_strings[i]);
	free(st->seen);
	free(st);
}

/* Appends "event: NAME\ndata: JSON\n\n" and drops o. */
static void emit(struct stream *st, const char *name, struct json_object *o)
{
	if (!o)
		return;
	dynbuf_addf(&st->out, "event: %s\ndata: %s\n\n", name, api_json_str(o));
	json_object_put(o);
}

static const char *level_name(int level)
{
	static const char *const names[] = {"debug", "info", "warn", "error"};

	return level >= 0 && level <= 3 ? names[level] : "info";
}

static void emit_line(struct stream *st, int64_t seq, int64_t ts, int level, const char *message)
{
	struct json_object *o = json_object_new_object();
	char iso[32];

	if (!o)
		return;
	api_iso_time(ts, false, iso);
	json_object_object_add(o, "seq", json_object_new_int64(seq));
	json_object_object_add(o, "ts", json_object_new_string(iso));
	json_object_object_add(o, "level", json_object_new_string(level_name(level)));
	json_object_object_add(o, "message", json_object_new_string(message));
	emit(st, "log", o);
	st->sent_seq = seq;
}

/* The lines the live bus has past sent_seq, consecutive ones only (a gap
 * is read from the store later); true when it sent any. */
static bool send_live(struct stream *st)
{
	struct livelog_line *lines = NULL;
	size_t n = 0, i = 0;

	if (livelog_lines(st->execution_id, st->sent_seq + 1, &lines, &n) < 0)
		return false;
	for (; i < n && lines[i].seq == st->sent_seq + 1 && !st->more; i++) {
		emit_line(st, lines[i].seq, lines[i].ts_ms, lines[i].level, lines[i].message);
		st->more = dynbuf_len(&st->out) >= STREAM_OUT_BATCH;
	}
	livelog_lines_free(lines, n);
	return i > 0;
}

/* One look at execution st->execution_id: its object the first time, the
 * lines the store has past sent_seq (STREAM_OUT_BATCH at a time), then at
 * its end "end" (with its object), or while it runs the lines the live bus
 * has past them. */
static void look_logs(struct stream *st)
{
	struct store_execution *e = NULL;
	int ret = store_execution_get(st->ctx->store, st->execution_id, &e);

	if (ret < 0) {
		emit(st, "error", api_json_member("message", json_object_new_string(
			ret == STORE_ENOTFOUND ? "the execution is gone" : status_str(ret))));
		st->done = true;
		return;
	}
	if (st->last_status < 0) {
		emit(st, "execution", api_execution_json(st->ctx, e));
		st->last_status = (int)e->status;
	}
	st->more = false;
	for (size_t i = 0; i < e->n_logs && !st->more; i++) {
		if (e->logs[i].seq > st->sent_seq)
			emit_line(st, e->logs[i].seq, e->logs[i].ts, e->logs[i].level, e->logs[i].message);
		st->more = dynbuf_len(&st->out) >= STREAM_OUT_BATCH && i + 1 < e->n_logs;
	}
	if (st->more) {
		/* the rest after this batch is sent */
	} else if (e->status != STORE_EXEC_RUNNING) {
		emit(st, "end", api_execution_json(st->ctx, e));
		st->done = true;
	} else {
		send_live(st);
	}
	store_execution_free(e);
}

static int status_of(const struct stream *st, int64_t id)
{
	for (size_t i = 0; i < st->n_seen; i++)
		if (st->seen[i].id == id)
			return st->seen[i].status;
	return -1;
}

/* One look at the list: every execution of it that is new or whose status
 * changed since the last look, oldest first. */
static void look_list(struct stream *st)
{
	struct store_execution **items = NULL;
	struct tracked *seen;
	int64_t next = 0, oldest = 0;
	size_t n = 0;
	int ret = store_execution_list(st->ctx->store, &st->filter, &items, &n, &next);

	if (ret < 0)
		return; /* the next look tries again */
	/* the last look's window was full: what is older than it was never sent
	 * and is not new (it only fell into this window as newer ones left it) */
	for (size_t i = 0; st->n_seen >= st->filter.limit && i < st->n_seen; i++)
		oldest = !oldest || st->seen[i].id < oldest ? st->seen[i].id : oldest;
	for (size_t k = n; k-- > 0;) {
		int before = status_of(st, items[k]->id);

		/* new to the window (started, or now matching the filters), or changed */
		if ((before < 0 && (!st->started || items[k]->id > oldest)) ||
		    (before >= 0 && before != (int)items[k]->status))
			emit(st, "execution", api_execution_json(st->ctx, items[k]));
	}
	seen = n ? calloc(n, sizeof(*seen)) : NULL;
	if (seen || n == 0) {
		for (size_t i = 0; i < n; i++)
			seen[i] = (struct tracked){items[i]->id, (int)items[i]->status};
		free(st->seen);
		st->seen = seen;
		st->n_seen = n;
	}
	store_execution_list_free(items, n);
}

static void sleep_us(int64_t us)
{
	struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};

	nanosleep(&ts, NULL);
}

/* http_stream_read_fn: sends what is produced; else waits for a change
 * (a second at most) and looks. A log stream sends the lines the live bus
 * has as soon as they come, and reads the store (its status, lines the bus
 * missed) at most every STREAM_MIN_GAP_US; a list stream reads the store
 * at that pace. */
static long stream_read(void *cls, char *buf, size_t max, bool stopping)
{
	struct stream *st = cls;
	size_t left = dynbuf_len(&st->out) - st->out_pos;
	int64_t now = util_mono_us();

	if (left > 0) {
		size_t n = left < max ? left : max;

		memcpy(buf, dynbuf_str(&st->out) + st->out_pos, n);
		st->out_pos += n;
		if (st->out_pos == dynbuf_len(&st->out)) {
			dynbuf_reset(&st->out);
			st->out_pos = 0;
		}
		st->last_write_us = now;
		return (long)n;
	}
	if (st->done || stopping)
		return HTTP_STREAM_END;
	if (st->started && !st->more) {
		int64_t gap = st->execution_id > 0 ? STREAM_BUS_GAP_US : STREAM_MIN_GAP_US;

		if (now - st->last_look_us < gap)
			sleep_us(gap - (now - st->last_look_us));
		st->version = livelog_wait(st->version, STREAM_WAIT_MS);
	} else {
		st->version = livelog_version();
	}
	now = st->last_look_us = util_mono_us();
	if (st->execution_id > 0 && st->started && !st->more && now - st->last_store_us < STREAM_MIN_GAP_US) {
		/* between store reads: what the bus has, at once; else the store when due */
		if (send_live(st))
			goto looked;
		sleep_us(STREAM_MIN_GAP_US - (now - st->last_store_us));
	}
	st->last_store_us = util_mono_us();
	if (st->execution_id > 0)
		look_logs(st);
	else
		look_list(st);
looked:
	st->started = true;
	if (dynbuf_len(&st->out) == 0 && st->last_look_us - st->last_write_us >= STREAM_KEEPALIVE_US)
		dynbuf_add_str(&st->out, ": keep-alive\n\n");
	return 0;
}

static struct stream *stream_new(struct api_context *ctx)
{
	struct stream *st = calloc(1, sizeof(*st));

	if (!st)
		return NULL;
	st->ctx = ctx;
	st->last_status = -1;
	st->last_write_us = util_mono_us();
	dynbuf_init(&st->out, STREAM_OUT_MAX, 0);
	return st;
}

static int respond(struct http_response *resp, struct stream *st)
{
	http_response_header(resp, "Cache-Control", "no-store");
	http_response_header(resp, "X-Accel-Buffering", "no");
	return http_respond_stream(resp, 200, "text/event-stream; charset=utf-8", stream_read, stream_free, st);
}

int api_execution_logs_stream(struct http_request *req, struct http_response *resp, void *user)
{
	struct api_context *ctx = user;
	struct store_execution *e = NULL;
	struct stream *st;
	int64_t id;
	int ret;

	if (!api_parse_int(http_param(req, "id"), 1, INT64_MAX, &id))
		return http_respond_error(resp, 404, "not_found", "execution not found");
	ret = store_execution_get(ctx->store, id, &e);
	if (ret == STORE_ENOTFOUND)
		return http_respond_error(resp, 404, "not_found", "execution %lld not found", (long long)id);
	if (ret < 0)
		return api_respond_store_error(resp, "reading an execution", ret);
	store_execution_free(e);
	st = stream_new(ctx);
	if (!st)
		return http_respond_error(resp, 500, "server_error", "out of memory");
	st->execution_id = id;
	return respond(resp, st);
}

/* Copies query argument name into the stream's slot i; false when out of memory. */
static bool keep_query(struct http_request *req, struct stream *st, size_t i, const char *name,
		       const char **field)
{
	const char *v = http_query(req, name);

	*field = NULL;
	if (!v)
		return true;
	st->filter_strings[i] = strdup(v);
	*field = st->filter_strings[i];
	return *field != NULL;
}

int api_executions_stream(struct http_request *req, struct http_response *resp, void *user)
{
	static const char *const events[] = {STORE_EVENT_POST_CONNECTION_CREATION,
					     STORE_EVENT_PRE_CONNECTION_DELETION,
					     STORE_EVENT_VALIDATE_CONNECTION, "action"};
	struct stream *st = stream_new(user);
	struct store_execution_filter *f;
	const char *status = http_query(req, "status"), *limit = http_query(req, "limit");
	int64_t v = 0;
	bool ok, event_ok = false, limit_ok = !limit || api_parse_int(limit, 1, STREAM_LIST_MAX, &v);

	if (!st)
		return http_respond_error(resp, 500, "server_error", "out of memory");
	f = &st->filter;
	*f = (struct store_execution_filter){.status = -1, .limit = STREAM_LIST_DEFAULT};
	ok = keep_query(req, st, 0, "connection_id", &f->connection_id) &&
	     keep_query(req, st, 1, http_query(req, "provider_config_key") ? "provider_config_key" : "integration",
			&f->provider_config_key) &&
	     keep_query(req, st, 2, "script", &f->script) && keep_query(req, st, 3, "event", &f->event);
	for (size_t i = 0; f->event && i < sizeof(events) / sizeof(events[0]); i++)
		event_ok = event_ok || strcmp(f->event, events[i]) == 0;
	if (status)
		f->status = store_exec_status_from_name(status);
	if (limit && limit_ok)
		f->limit = (size_t)v;
	if (!ok) {
		stream_free(st);
		return http_respond_error(resp, 500, "server_error", "out of memory");
	}
	if ((f->event && !event_ok) || (status && f->status < 0) || !limit_ok) {
		stream_free(st);
		return http_respond_error(resp, 400, "invalid_query_params",
					  "bad event, status or limit (as GET /executions takes them)");
	}
	return respond(resp, st);
}
