/*
 * hostapi.c - the host functions on the daemon's side (the in-process
 * vtable that calls them directly is hostapi_inproc.c).
 *
 * One struct hostapi_exec per execution. Its log is buffered and written to
 * the store in batches (store_execution_append_logs) while it runs, with
 * the lines past the config's caps dropped and counted; the last batch is
 * handed to the caller (hostapi_exec_take_logs), which writes it with the
 * execution's end in one call, or written by hostapi_exec_free. The rest
 * goes to the store at once
 * (metadata) or is read from it (connection). For validate-connection the
 * connection is a candidate that is not stored yet: the metadata functions
 * then act on a copy kept here (hostapi_candidate_metadata()).
 */
#include "hostapi.h"
#include "credentials.h"
#include "proxy_oauth1.h"
#include "paginate.h"

#include <ctype.h>
#include <json-c/json.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "livelog.h"
#include "log.h"
#include "util.h"

#define LOG_BATCH_LINES 128
#define LOG_BATCH_BYTES (256u << 10)
#define LOG_BATCH_US 1000000

struct hostapi_exec {
	struct hostapi_exec_info info;
	pthread_mutex_t mu;
	char *error;
	char *action_error_payload;        /* set_action_error's payload (JSON text) */
	char *candidate_metadata;          /* validate-connection: the metadata as scripts left it */
	/* the log: accepted so far (lines, bytes), dropped, and the batch not yet written */
	uint64_t log_lines, log_bytes;
	int64_t dropped, dropped_unwritten;
	struct store_log_line_input *pending;
	size_t n_pending;
	size_t pending_bytes;
	int64_t last_flush_us;
};

/* ---------------------------------------------------------------------------
 * Helpers.
 */
static int map_store_error(int r)
{
	switch (r) {
	case STORE_OK: return EVS_OK;
	case STORE_ENOTFOUND: return EVS_ENOTFOUND;
	case STORE_EINVAL: return EVS_EINVAL;
	case STORE_ENOMEM: return EVS_ENOMEM;
	case STORE_ETOOBIG: return EVS_ENOMEM;
	case STORE_EDELETING: return EVS_EDENIED;
	default: return EVS_EHOST;
	}
}

/* Cuts s to at most max-1 bytes without splitting a UTF-8 sequence. */
static char *dup_capped(const char *s, size_t max)
{
	size_t n = strlen(s);
	char *d;

	if (n >= max) {
		n = max - 1;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	d = malloc(n + 1);
	if (!d)
		return NULL;
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

static void iso_time(int64_t ms, char out[32])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (ms <= 0 || !gmtime_r(&t, &tm)) {
		out[0] = '\0';
		return;
	}
	size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

/* Parses s as a JSON object; NULL when it is not one. */
static struct json_object *parse_object(const char *s)
{
	struct json_object *o;

	if (!s)
		return NULL;
	o = json_tokener_parse(s);
	if (o && !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static char *json_dup(struct json_object *o)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							  JSON_C_TO_STRING_NOSLASHESCAPE);
	return s ? strdup(s) : NULL;
}

void hostapi_secret_free(char *s)
{
	if (s) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

static void wipe_strings(struct json_object *o)
{
	switch (json_object_get_type(o)) {
	case json_type_string:
		sodium_memzero((char *)json_object_get_string(o),
			       (size_t)json_object_get_string_len(o));
		break;
	case json_type_object: {
		json_object_object_foreach(o, k, v) {
			(void)k;
			wipe_strings(v);
		}
		break;
	}
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(o); i++)
			wipe_strings(json_object_array_get_idx(o, i));
		break;
	default:
		break;
	}
}

void hostapi_json_put_secret(struct json_object *o)
{
	const char *s;

	if (!o)
		return;
	/* The serialization json-c keeps with o: written again with the
	 * flags every serializer here uses (the same length, so in the same
	 * buffer) and wiped; only then the strings (zeroed strings would
	 * serialize longer and move the buffer). */
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (s)
		sodium_memzero((char *)s, strlen(s));
	wipe_strings(o);
	json_object_put(o);
}

/* ---------------------------------------------------------------------------
 * Life cycle.
 */
int hostapi_exec_new(const struct hostapi_exec_info *info, struct hostapi_exec **out)
{
	struct hostapi_exec *x;

	*out = NULL;
	if (!info)
		return EVS_EINVAL;
	x = calloc(1, sizeof(*x));
	if (!x)
		return EVS_ENOMEM;
	x->info = *info;
	pthread_mutex_init(&x->mu, NULL);
	x->last_flush_us = util_mono_us();
	*out = x;
	return EVS_OK;
}

static void clear_pending(struct hostapi_exec *x)
{
	for (size_t i = 0; i < x->n_pending; i++)
		free((char *)x->pending[i].message);
	x->n_pending = 0;
	x->pending_bytes = 0;
}

/* Writes the batch (and the dropped count not yet written). Called with mu. */
static void flush_logs(struct hostapi_exec *x)
{
	int r;

	if (x->n_pending == 0 && x->dropped_unwritten == 0)
		return;
	x->last_flush_us = util_mono_us();
	if (!x->info.store || x->info.execution_id <= 0) {
		clear_pending(x);
		x->dropped_unwritten = 0;
		return;
	}
	r = store_execution_append_logs(x->info.store, x->info.execution_id, x->pending,
					x->n_pending, x->dropped_unwritten);
	if (r < 0 && x->n_pending < LOG_BATCH_LINES) {
		/* the store failed: the lines stay for the next batch, or the
		 * execution's end (which is retried until the store takes it) */
		return;
	}
	if (r < 0) {
		/* a full batch the store refused: counted as dropped */
		log_warn("hostapi", "execution %lld: %zu log lines not written: %s",
			 (long long)x->info.execution_id, x->n_pending, status_str(r));
		x->dropped += (int64_t)x->n_pending;
		clear_pending(x);
		x->dropped_unwritten += (int64_t)LOG_BATCH_LINES;
		return;
	}
	clear_pending(x);
	x->dropped_unwritten = 0;
}

void hostapi_exec_take_logs(struct hostapi_exec *x, struct store_log_line_input **lines,
			    size_t *n, int64_t *dropped)
{
	*lines = NULL;
	*n = 0;
	*dropped = 0;
	if (!x)
		return;
	pthread_mutex_lock(&x->mu);
	if (x->n_pending > 0) {
		*lines = x->pending;
		*n = x->n_pending;
		x->pending = NULL; /* hostapi_log allocates another if need be */
		x->n_pending = 0;
		x->pending_bytes = 0;
	}
	*dropped = x->dropped_unwritten;
	x->dropped_unwritten = 0;
	pthread_mutex_unlock(&x->mu);
}

static void log_line_free(void *item)
{
	free((char *)((struct store_log_line_input *)item)->message);
}

void hostapi_logs_free(struct store_log_line_input *lines, size_t n)
{
	util_array_free(&lines, &n, sizeof(*lines), log_line_free);
}

void hostapi_exec_free(struct hostapi_exec *x)
{
	if (!x)
		return;
	pthread_mutex_lock(&x->mu);
	flush_logs(x);
	pthread_mutex_unlock(&x->mu);
	pthread_mutex_destroy(&x->mu);
	util_free_all(x->pending, x->error, x->action_error_payload, x->candidate_metadata, x);
}

const struct hostapi_exec_info *hostapi_exec_info(const struct hostapi_exec *x)
{
	return &x->info;
}

const char *hostapi_error(const struct hostapi_exec *x)
{
	return x ? x->error : NULL;
}

const char *hostapi_candidate_metadata(const struct hostapi_exec *x)
{
	return x ? x->candidate_metadata : NULL;
}

int64_t hostapi_logs_dropped(const struct hostapi_exec *x)
{
	return x ? x->dropped : 0;
}

/* ---------------------------------------------------------------------------
 * log and set_error.
 */
/* A line just accepted (line x->log_lines of the execution): published for
 * live readers (livelog.h) and, with log_plugin_lines, written to the
 * daemon's own log too. Called with mu. */
static void hostapi_log_live(const struct hostapi_exec *x, int level, const char *line)
{
	static const enum log_level levels[] = {LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN,
						LOG_LEVEL_ERROR};

	if (x->info.execution_id > 0)
		livelog_publish(x->info.execution_id, (int64_t)x->log_lines, util_now_ms(), level, line);
	if (x->info.config && x->info.config->log_plugin_lines)
		log_write(levels[level - EVS_LOG_DEBUG], "plugin", "%s (execution %lld): %s",
			  x->info.script ? x->info.script : "?", (long long)x->info.execution_id, line);
}

void hostapi_log(struct hostapi_exec *x, int level, const char *msg)
{
	const struct config_host *cfg;
	uint64_t lines_max, bytes_max;
	char *line;
	size_t len;

	if (!x || !msg)
		return;
	if (level < EVS_LOG_DEBUG || level > EVS_LOG_ERROR)
		level = EVS_LOG_INFO;
	cfg = x->info.config;
	lines_max = cfg ? cfg->log_lines_max : 1000;
	bytes_max = cfg ? cfg->log_bytes_max : (1u << 20);

	pthread_mutex_lock(&x->mu);
	len = strlen(msg);
	if (len >= HOSTAPI_LOG_LINE_MAX)
		len = HOSTAPI_LOG_LINE_MAX - 1;
	if ((lines_max && x->log_lines >= lines_max) ||
	    (bytes_max && x->log_bytes + len > bytes_max)) {
		x->dropped++;
		x->dropped_unwritten++;
		goto out;
	}
	if (!x->pending) {
		x->pending = calloc(LOG_BATCH_LINES, sizeof(*x->pending));
		if (!x->pending)
			goto drop;
	}
	line = dup_capped(msg, HOSTAPI_LOG_LINE_MAX);
	if (!line)
		goto drop;
	x->pending[x->n_pending].ts = util_now_ms();
	x->pending[x->n_pending].level = level;
	x->pending[x->n_pending].message = line;
	x->n_pending++;
	x->pending_bytes += strlen(line);
	x->log_lines++;
	x->log_bytes += strlen(line);
	hostapi_log_live(x, level, line);
	if (x->n_pending == LOG_BATCH_LINES || x->pending_bytes >= LOG_BATCH_BYTES ||
	    util_mono_us() - x->last_flush_us >= LOG_BATCH_US)
		flush_logs(x);
	goto out;
drop:
	x->dropped++;
	x->dropped_unwritten++;
out:
	pthread_mutex_unlock(&x->mu);
}

void hostapi_set_error(struct hostapi_exec *x, const char *msg)
{
	char *e;

	if (!x || !msg)
		return;
	e = dup_capped(msg, HOSTAPI_ERROR_MAX);
	if (!e)
		return;
	pthread_mutex_lock(&x->mu);
	free(x->error);
	x->error = e;
	pthread_mutex_unlock(&x->mu);
}

int hostapi_set_action_error(struct hostapi_exec *x, const char *message, const char *payload_json)
{
	struct json_object *o = NULL;
	enum json_tokener_error jerr = json_tokener_success;
	char *p;

	if (!x || !message)
		return EVS_EINVAL;
	if (x->info.event_type != 0)
		return EVS_EUNSUPPORTED;
	if (!payload_json)
		payload_json = "null";
	if (strlen(payload_json) > HOSTAPI_PAYLOAD_MAX)
		return EVS_EINVAL;
	o = json_tokener_parse_verbose(payload_json, &jerr);
	json_object_put(o);
	if (jerr != json_tokener_success)
		return EVS_EINVAL;
	p = strdup(payload_json);
	if (!p)
		return EVS_ENOMEM;
	hostapi_set_error(x, message);
	pthread_mutex_lock(&x->mu);
	free(x->action_error_payload);
	x->action_error_payload = p;
	pthread_mutex_unlock(&x->mu);
	return EVS_OK;
}

const char *hostapi_action_error_payload(const struct hostapi_exec *x)
{
	return x ? x->action_error_payload : NULL;
}

/* ---------------------------------------------------------------------------
 * The connection and its metadata.
 */

/* The candidate's metadata (a JSON text, malloc'd): what scripts left, else
 * the candidate's own, else "{}". Called with mu. */
static char *candidate_metadata_locked(struct hostapi_exec *x)
{
	struct json_object *c, *m;
	char *s = NULL;

	if (x->candidate_metadata)
		return strdup(x->candidate_metadata);
	c = parse_object(x->info.candidate_json);
	if (c && json_object_object_get_ex(c, "metadata", &m) &&
	    json_object_is_type(m, json_type_object))
		s = json_dup(m);
	else
		s = strdup("{}");
	hostapi_json_put_secret(c); /* the candidate holds credentials */
	return s;
}

/* Whether the execution names a stored connection (not a candidate). */
static bool has_stored_connection(const struct hostapi_exec *x)
{
	return x->info.store && x->info.connection_id && x->info.provider_config_key;
}

/* The stored connection, credentials decrypted (the caller frees *c with
 * store_connection_free); EVS_ENOTFOUND without one. With fresh, its
 * tokens are refreshed first when they need it (credentials.h); a failed
 * refresh is logged to the execution and is EVS_EFAILED. */
static int stored_connection_get(struct hostapi_exec *x, bool fresh, struct store_connection **c)
{
	char err[CRED_ERR_MAX];
	int r;

	if (!has_stored_connection(x))
		return EVS_ENOTFOUND;
	if (!fresh) {
		r = store_connection_get(x->info.store, x->info.provider_config_key, x->info.connection_id, c);
		return r < 0 ? map_store_error(r) : EVS_OK;
	}
	r = hostapi_connection_fresh(x->info.store, x->info.config, x->info.provider,
				     x->info.provider_config_key, x->info.connection_id, false, c, err,
				     sizeof(err));
	if (r == CRED_EREFRESH || r == CRED_ENOCLIENT || r == CRED_EEXPIRED) {
		char line[CRED_ERR_MAX + 64];

		snprintf(line, sizeof(line), "credentials: %s", err);
		hostapi_log(x, EVS_LOG_ERROR, line);
		return EVS_EFAILED;
	}
	return r < 0 ? map_store_error(r) : EVS_OK;
}

/* Replaces the stored connection's metadata with json, or (merge) sets
 * json's top-level keys in it. */
static int stored_metadata_write(struct hostapi_exec *x, const char *json, bool merge)
{
	int r;

	if (!has_stored_connection(x))
		return EVS_ENOTFOUND;
	if (merge)
		r = store_connection_metadata_update(x->info.store, x->info.provider_config_key,
						     x->info.connection_id, json);
	else
		r = store_connection_metadata_set(x->info.store, x->info.provider_config_key,
						  x->info.connection_id, json);
	return map_store_error(r);
}

int hostapi_get_connection(struct hostapi_exec *x, char **json)
{
	struct store_connection *c = NULL;
	struct json_object *o = NULL, *v;
	char ts[32];
	int ret;

	*json = NULL;
	if (!x)
		return EVS_EINVAL;
	if (x->info.candidate_json) {
		char *meta;

		o = parse_object(x->info.candidate_json);
		if (!o)
			return EVS_EHOST;
		pthread_mutex_lock(&x->mu);
		meta = x->candidate_metadata ? strdup(x->candidate_metadata) : NULL;
		pthread_mutex_unlock(&x->mu);
		if (meta) {
			v = json_tokener_parse(meta);
			free(meta);
			if (v)
				json_object_object_add(o, "metadata", v);
		}
		goto serialize;
	}
	ret = stored_connection_get(x, true, &c);
	if (ret < 0)
		return ret;
	o = json_object_new_object();
	if (!o) {
		ret = EVS_ENOMEM;
		goto out;
	}
	json_object_object_add(o, "connection_id", json_object_new_string(c->connection_id));
	json_object_object_add(o, "provider_config_key",
			       json_object_new_string(c->provider_config_key));
	json_object_object_add(o, "provider", json_object_new_string(c->provider ? c->provider : ""));
	v = c->credentials ? json_tokener_parse(c->credentials) : NULL;
	json_object_object_add(o, "credentials", v ? v : json_object_new_object());
	v = c->connection_config ? json_tokener_parse(c->connection_config) : NULL;
	json_object_object_add(o, "connection_config", v ? v : json_object_new_object());
	v = c->metadata ? json_tokener_parse(c->metadata) : NULL;
	json_object_object_add(o, "metadata", v ? v : json_object_new_object());
	iso_time(c->created_at, ts);
	json_object_object_add(o, "created_at", json_object_new_string(ts));
	iso_time(c->updated_at, ts);
	json_object_object_add(o, "updated_at", json_object_new_string(ts));
serialize:
	*json = json_dup(o);
	ret = *json ? EVS_OK : EVS_ENOMEM;
out:
	hostapi_json_put_secret(o); /* credentials */
	store_connection_free(c);
	return ret;
}

int hostapi_get_metadata(struct hostapi_exec *x, char **json)
{
	struct store_connection *c = NULL;
	int ret;

	*json = NULL;
	if (!x)
		return EVS_EINVAL;
	if (x->info.candidate_json) {
		pthread_mutex_lock(&x->mu);
		*json = candidate_metadata_locked(x);
		pthread_mutex_unlock(&x->mu);
		return *json ? EVS_OK : EVS_ENOMEM;
	}
	ret = stored_connection_get(x, false, &c); /* metadata: no token needed */
	if (ret < 0)
		return ret;
	*json = strdup(c->metadata ? c->metadata : "{}");
	store_connection_free(c);
	return *json ? EVS_OK : EVS_ENOMEM;
}

int hostapi_set_metadata(struct hostapi_exec *x, const char *json)
{
	struct json_object *o;
	char *copy;

	if (!x || !json)
		return EVS_EINVAL;
	o = parse_object(json);
	if (!o)
		return EVS_EINVAL;
	if (strlen(json) > STORE_JSON_MAX) {
		json_object_put(o);
		return EVS_ENOMEM;
	}
	if (!x->info.candidate_json) {
		json_object_put(o);
		return stored_metadata_write(x, json, false);
	}
	copy = json_dup(o);
	json_object_put(o);
	if (!copy)
		return EVS_ENOMEM;
	pthread_mutex_lock(&x->mu);
	free(x->candidate_metadata);
	x->candidate_metadata = copy;
	pthread_mutex_unlock(&x->mu);
	return EVS_OK;
}

int hostapi_update_metadata(struct hostapi_exec *x, const char *json)
{
	struct json_object *patch, *cur = NULL;
	char *now = NULL, *merged;
	int ret;

	if (!x || !json)
		return EVS_EINVAL;
	patch = parse_object(json);
	if (!patch)
		return EVS_EINVAL;
	if (!x->info.candidate_json) {
		json_object_put(patch);
		return stored_metadata_write(x, json, true);
	}
	pthread_mutex_lock(&x->mu);
	now = candidate_metadata_locked(x);
	cur = parse_object(now);
	if (!cur) {
		ret = EVS_ENOMEM;
		goto out;
	}
	json_object_object_foreach(patch, key, val)
		json_object_object_add(cur, key, json_object_get(val));
	merged = json_dup(cur);
	if (!merged) {
		ret = EVS_ENOMEM;
		goto out;
	}
	if (strlen(merged) > STORE_JSON_MAX) {
		free(merged);
		ret = EVS_ENOMEM;
		goto out;
	}
	free(x->candidate_metadata);
	x->candidate_metadata = merged;
	ret = EVS_OK;
out:
	pthread_mutex_unlock(&x->mu);
	free(now);
	json_object_put(cur);
	json_object_put(patch);
	return ret;
}

/* ---------------------------------------------------------------------------
 * Environment, webhook URL, actions.
 */
int hostapi_get_env(struct hostapi_exec *x, const char *name, char **value)
{
	const char *v;

	*value = NULL;
	if (!x || !name)
		return EVS_EINVAL;
	if (!x->info.config)
		return EVS_ENOTFOUND;
	v = config_map_get(&x->info.config->environment, name);
	if (!v)
		return EVS_ENOTFOUND;
	*value = strdup(v);
	return *value ? EVS_OK : EVS_ENOMEM;
}

int hostapi_get_webhook_url(struct hostapi_exec *x, char **url)
{
	const char *base;
	size_t n;

	*url = NULL;
	if (!x || !x->info.config || !x->info.provider_config_key)
		return EVS_ENOTFOUND;
	base = x->info.config->webhook_base_url;
	if (!base)
		return EVS_ENOTFOUND;
	n = strlen(base) + strlen(x->info.provider_config_key) + 2;
	*url = malloc(n);
	if (!*url)
		return EVS_ENOMEM;
	snprintf(*url, n, "%s/%s", base, x->info.provider_config_key);
	return EVS_OK;
}

/* trigger_action (cid NULL: the execution's connection) and trigger_action_for. */
static int trigger(struct hostapi_exec *x, const char *cid, const char *name, const char *input_json,
		   char **output_json)
{
	char err[512] = "";
	struct json_object *in;
	int ret;

	*output_json = NULL;
	if (!x || !name || !util_valid_name(name))
		return EVS_EINVAL;
	if (!input_json)
		input_json = "null";
	in = json_tokener_parse(input_json);
	if (!in && strcmp(input_json, "null") != 0)
		return EVS_EINVAL;
	json_object_put(in);
	if (cid ? !x->info.trigger_for : !x->info.trigger)
		return EVS_EUNSUPPORTED;
	if (cid)
		ret = x->info.trigger_for(x->info.trigger_user, x, cid, name, input_json, output_json,
					  err, sizeof(err));
	else
		ret = x->info.trigger(x->info.trigger_user, x, name, input_json, output_json, err,
				      sizeof(err));
	if (ret < 0) {
		char line[700];

		free(*output_json);
		*output_json = NULL;
		snprintf(line, sizeof(line), "action %s: %s", name,
			 err[0] ? err : status_str(ret));
		hostapi_log(x, EVS_LOG_ERROR, line);
		return ret;
	}
	if (!*output_json) {
		*output_json = strdup("null");
		if (!*output_json)
			return EVS_ENOMEM;
	}
	return EVS_OK;
}

int hostapi_trigger_action(struct hostapi_exec *x, const char *name, const char *input_json,
			   char **output_json)
{
	return trigger(x, NULL, name, input_json, output_json);
}

int hostapi_trigger_action_for(struct hostapi_exec *x, const char *connection_id, const char *name,
			       const char *input_json, char **output_json)
{
	struct store_connection *c = NULL;
	int ret;

	*output_json = NULL;
	if (!x || !connection_id || !*connection_id || strlen(connection_id) > STORE_ID_MAX)
		return EVS_EINVAL;
	ret = store_connection_get(x->info.store, x->info.provider_config_key, connection_id, &c);
	if (ret == 0 && c->deleting)
		ret = STORE_EDELETING;
	store_connection_free(c);
	if (ret < 0) {
		hostapi_log(x, EVS_LOG_ERROR, ret == STORE_ENOTFOUND
			    ? "trigger_action_for: no such connection in this integration"
			    : "trigger_action_for: the connection cannot be read or is being deleted");
		return map_store_error(ret);
	}
	return trigger(x, connection_id, name, input_json, output_json);
}

/* ---------------------------------------------------------------------------
 * The proxy target: base URL and auth from the provider and the credentials.
 */
struct lookup_ctx {
	struct json_object *credentials;
	struct json_object *connection_config;
	char missing[256];               /* the last variable that had no value */
};

static const char *obj_string(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !v ||
	    json_object_is_type(v, json_type_null) || json_object_is_type(v, json_type_object) ||
	    json_object_is_type(v, json_type_array))
		return NULL;
	return json_object_get_string(v);
}

static const char *lookup_value(struct lookup_ctx *l, const char *name)
{
	if (strncmp(name, "connectionConfig.", 17) == 0)
		return obj_string(l->connection_config, name + 17);
	if (strncmp(name, "credentials.", 12) == 0)
		return obj_string(l->credentials, name + 12);
	if (strcmp(name, "accessToken") == 0)
		return obj_string(l->credentials, "access_token");
	return obj_string(l->credentials, name);
}

static const char *lookup(void *ud, const char *name)
{
	struct lookup_ctx *l = ud;
	const char *v = lookup_value(l, name);

	if (!v)
		snprintf(l->missing, sizeof(l->missing), "%s", name);
	return v;
}

/* An error line about the proxy target, as hostapi_log writes it. */
static void proxy_error(struct hostapi_exec *x, const char *fmt, ...) EVS_PRINTF(2, 3);
static void proxy_error(struct hostapi_exec *x, const char *fmt, ...)
{
	char line[CONFIG_ERR_MAX + 128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	hostapi_log(x, EVS_LOG_ERROR, line);
}

static int map_add(struct config_map *m, const char *key, char *value /* taken */)
{
	struct config_kv *items;
	char *k;

	if (m->n >= CONFIG_LIST_MAX) {
		hostapi_secret_free(value);
		return EVS_ENOMEM;
	}
	k = strdup(key);
	items = realloc(m->items, (m->n + 1) * sizeof(*items));
	if (!k || !items) {
		free(k);
		if (items)
			m->items = items;
		hostapi_secret_free(value);
		return EVS_ENOMEM;
	}
	m->items = items;
	m->items[m->n].key = k;
	m->items[m->n].value = value;
	m->n++;
	return EVS_OK;
}

static int strlist_copy(struct config_strlist *dst, const struct config_strlist *src)
{
	dst->items = NULL;
	dst->n = 0;
	if (!src->n)
		return EVS_OK;
	dst->items = calloc(src->n, sizeof(char *));
	if (!dst->items)
		return EVS_ENOMEM;
	for (size_t i = 0; i < src->n; i++) {
		dst->items[i] = strdup(src->items[i]);
		if (!dst->items[i])
			return EVS_ENOMEM;
		dst->n++;
	}
	return EVS_OK;
}

static int str_copy(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return EVS_OK;
	*dst = strdup(src);
	return *dst ? EVS_OK : EVS_ENOMEM;
}

static bool has_key_ci(const struct config_map *m, const char *key)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcasecmp(m->items[i].key, key) == 0)
			return true;
	return false;
}

/* A header template that is exactly ${awsSigV4(KEY, SECRET, REGION,
 * SERVICE)} (Nango's aws-iam, aws-inspector2...): its four arguments are
 * expanded and handed to libcurl, which signs each request itself
 * (CURLOPT_AWS_SIGV4); the header is not sent as a template. Returns 1
 * when tmpl is such a call (EVS_OK done, or an EVS_E* code as a negative
 * value through *ret), 0 when it is not. */
static int aws_sigv4_header(struct hostapi_exec *x, const char *tmpl, struct lookup_ctx *l,
			    struct proxy_target *t, int *ret)
{
	static const char head[] = "${awsSigV4(";
	char *args[4] = {NULL}, *inner, *p;
	size_t len;
	int n = 0, depth = 0;

	while (*tmpl == ' ')
		tmpl++;
	len = strlen(tmpl);
	while (len && tmpl[len - 1] == ' ')
		len--;
	if (strncmp(tmpl, head, sizeof(head) - 1) != 0 || len < sizeof(head) + 1 ||
	    strncmp(tmpl + len - 2, ")}", 2) != 0)
		return 0;
	*ret = EVS_ENOMEM;
	inner = strndup(tmpl + sizeof(head) - 1, len - (sizeof(head) - 1) - 2);
	if (!inner)
		return 1;
	*ret = EVS_EINVAL;
	/* split at the commas outside ${...}; each piece is a template */
	for (p = inner;; p++) {
		char *start = p, err[CONFIG_ERR_MAX];
		char sep;

		while (*p && (depth > 0 || *p != ',')) {
			depth += *p == '{' ? 1 : *p == '}' ? -1 : 0;
			p++;
		}
		sep = *p;
		*p = '\0';
		if (n == 4) {
			n++; /* too many */
			break;
		}
		while (*start == ' ')
			start++;
		if (config_interpolate(start, lookup, l, &args[n], err, sizeof(err)) < 0) {
			proxy_error(x, "proxy: awsSigV4 argument %d of provider %s: %s", n + 1, x->info.provider->name,
				    err);
			goto out;
		}
		for (size_t k = strlen(args[n]); k > 0 && args[n][k - 1] == ' '; k--)
			args[n][k - 1] = '\0';
		n++;
		if (!sep)
			break;
	}
	if (n != 4 || !*args[2] || !*args[3] || strchr(args[2], ':') || strchr(args[3], ':')) {
		proxy_error(x, "proxy: provider %s: expected ${awsSigV4(key, secret, region, service)}",
			    x->info.provider->name);
		goto out;
	}
	*ret = EVS_ENOMEM;
	free(t->aws_sigv4);
	hostapi_secret_free(t->aws_key);
	hostapi_secret_free(t->aws_secret);
	t->aws_key = args[0];
	t->aws_secret = args[1];
	args[0] = args[1] = NULL;
	if (asprintf(&t->aws_sigv4, "aws:amz:%s:%s", args[2], args[3]) < 0) {
		t->aws_sigv4 = NULL;
		goto out;
	}
	*ret = EVS_OK;
out:
	for (int i = 0; i < 4; i++)
		hostapi_secret_free(args[i]);
	free(inner);
	return 1;
}

/* Interpolates each template of src into dst. A template naming a value the
 * connection lacks is an error, or skipped when skip_undefined or when the
 * value is a connectionConfig one (Nango leaves such a header or parameter
 * out: an optional setting of the connection). */
static int interpolate_map(struct hostapi_exec *x, const char *what, const struct config_map *src,
			   struct lookup_ctx *l, bool skip_undefined, struct config_map *dst,
			   struct proxy_target *sigv4 /* headers: where an awsSigV4 call goes; else NULL */)
{
	for (size_t i = 0; i < src->n; i++) {
		char err[CONFIG_ERR_MAX];
		char *v = NULL;
		int r;

		if (sigv4 && aws_sigv4_header(x, src->items[i].value, l, sigv4, &r)) {
			if (r < 0)
				return r;
			continue;
		}
		r = config_interpolate(src->items[i].value, lookup, l, &v, err, sizeof(err));

		if (r == CONFIG_EUNDEFINED &&
		    (skip_undefined || strncmp(l->missing, "connectionConfig.", 17) == 0))
			continue;
		if (r < 0) {
			proxy_error(x, "proxy: %s %s of provider %s: %s", what, src->items[i].key,
				  x->info.provider->name, err);
			return EVS_EINVAL;
		}
		r = map_add(dst, src->items[i].key, v);
		if (r < 0)
			return r;
	}
	return EVS_OK;
}

/* The connection's credentials and connection_config objects, borrowed
 * from *conn (the caller frees it with hostapi_json_put_secret, also on
 * failure). */
static int connection_parse(struct hostapi_exec *x, struct json_object **conn, struct lookup_ctx *l)
{
	struct json_object *v;
	char *cjson = NULL;
	int ret;

	*conn = NULL;
	ret = hostapi_get_connection(x, &cjson);
	if (ret < 0)
		return ret;
	*conn = json_tokener_parse(cjson);
	hostapi_secret_free(cjson);
	if (!*conn)
		return EVS_EHOST;
	if (json_object_object_get_ex(*conn, "credentials", &v) &&
	    json_object_is_type(v, json_type_object))
		l->credentials = v;
	if (json_object_object_get_ex(*conn, "connection_config", &v) &&
	    json_object_is_type(v, json_type_object))
		l->connection_config = v;
	return EVS_OK;
}

/* The provider's base_url, interpolated, without trailing slashes. */
static int target_base_url(struct hostapi_exec *x, const struct config_provider *p,
			   struct lookup_ctx *l, struct proxy_target *t)
{
	char err[CONFIG_ERR_MAX];
	size_t n;

	if (config_interpolate(p->base_url, lookup, l, &t->base_url, err, sizeof(err)) < 0) {
		proxy_error(x, "proxy: base_url of provider %s: %s", p->name, err);
		return EVS_EINVAL;
	}
	n = strlen(t->base_url);
	while (n > 0 && t->base_url[n - 1] == '/')
		t->base_url[--n] = '\0';
	return EVS_OK;
}

/* The token modes (OAUTH2, OAUTH2_CC, APP, JWT, TWO_STEP...):
 * "Authorization: Bearer <access_token, else token>". */
static int auth_bearer(struct hostapi_exec *x, struct lookup_ctx *l, struct proxy_target *t)
{
	const char *tok = obj_string(l->credentials, "access_token");
	size_t n;
	char *h;

	if (!tok)
		tok = obj_string(l->credentials, "token");
	if (!tok) {
		hostapi_log(x, EVS_LOG_ERROR, "proxy: credentials without access_token or token");
		return EVS_EINVAL;
	}
	n = strlen(tok) + sizeof("Bearer ");
	h = malloc(n);
	if (!h)
		return EVS_ENOMEM;
	snprintf(h, n, "Bearer %s", tok);
	return map_add(&t->headers, "Authorization", h);
}

/* BASIC: the username and password, which curl sends. */
static int auth_basic(struct hostapi_exec *x, struct lookup_ctx *l, struct proxy_target *t)
{
	const char *u = obj_string(l->credentials, "username");
	const char *pw = obj_string(l->credentials, "password");
	int ret;

	if (!u) {
		hostapi_log(x, EVS_LOG_ERROR, "proxy: BASIC credentials without username");
		return EVS_EINVAL;
	}
	ret = str_copy(&t->basic_user, u);
	if (ret == 0)
		ret = str_copy(&t->basic_password, pw ? pw : "");
	return ret;
}

/* The OAuth 1.0a client: the credentials' config_override, else the host
 * file's oauth_clients entry for the integration. */
static int oauth1_client(struct hostapi_exec *x, struct lookup_ctx *l, struct proxy_target *t)
{
	const struct config_oauth_client *oc = config_oauth_client_find(x->info.config, x->info.provider_config_key);
	struct json_object *ov = NULL;
	const char *id = NULL, *secret = NULL;

	if (l->credentials && json_object_object_get_ex(l->credentials, "config_override", &ov)) {
		id = obj_string(ov, "client_id");
		secret = obj_string(ov, "client_secret");
	}
	if (!id && oc)
		id = oc->client_id;
	if (!secret && oc)
		secret = oc->client_secret;
	if (!id || !secret) {
		proxy_error(x, "proxy: OAuth 1.0a signing needs the integration's client (oauth_clients.%s or "
			    "credentials.config_override)", x->info.provider_config_key ? x->info.provider_config_key : "?");
		return EVS_EINVAL;
	}
	if (str_copy(&t->oauth1.consumer_key, id) || str_copy(&t->oauth1.consumer_secret, secret))
		return EVS_ENOMEM;
	return EVS_OK;
}

/* OAUTH1: signed with the provider's signature_method (HMAC-SHA256 or
 * PLAINTEXT; an import with another was refused) and the oauth_token. */
static int auth_oauth1(struct hostapi_exec *x, struct lookup_ctx *l, struct proxy_target *t)
{
	const char *m = x->info.provider->signature_method ? x->info.provider->signature_method : "HMAC-SHA1";
	int ret;

	if (!proxy_oauth1_supported(m)) {
		proxy_error(x, "proxy: OAuth 1.0a signature method %s is not supported (HMAC-SHA256, PLAINTEXT)", m);
		return EVS_EINVAL;
	}
	ret = oauth1_client(x, l, t);
	if (ret == 0 && (str_copy(&t->oauth1.token, obj_string(l->credentials, "oauth_token")) ||
			 str_copy(&t->oauth1.token_secret, obj_string(l->credentials, "oauth_token_secret")) ||
			 str_copy(&t->oauth1.signature_method, m)))
		ret = EVS_ENOMEM;
	return ret;
}

/* TBA (NetSuite token-based auth): OAuth 1.0a, HMAC-SHA256, realm the
 * account id. */
static int auth_tba(struct hostapi_exec *x, struct lookup_ctx *l, struct proxy_target *t)
{
	const char *account = obj_string(l->connection_config, "accountId");
	int ret = oauth1_client(x, l, t);

	if (ret == 0 && (str_copy(&t->oauth1.token, obj_string(l->credentials, "token_id")) ||
			 str_copy(&t->oauth1.token_secret, obj_string(l->credentials, "token_secret")) ||
			 str_copy(&t->oauth1.signature_method, "HMAC-SHA256") || str_copy(&t->oauth1.realm, account)))
		ret = EVS_ENOMEM;
	/* the realm is the account id as NetSuite writes it: "1234567_SB1"
	 * for the "1234567-sb1" of its URLs */
	for (char *c = t->oauth1.realm; ret == 0 && c && *c; c++)
		*c = *c == '-' ? '_' : (char)toupper((unsigned char)*c);
	return ret;
}

/* The auth evscript adds by credentials.type; other types add none. */
static const struct {
	const char *type;
	int (*add)(struct hostapi_exec *x, struct lookup_ctx *l, struct proxy_target *t);
} auth_styles[] = {
	{"OAUTH2", auth_bearer},
	{"OAUTH2_CC", auth_bearer},
	{"APP", auth_bearer},
	{"JWT", auth_bearer},
	{"TWO_STEP", auth_bearer},
	{"MCP_OAUTH2", auth_bearer},
	{"MCP_OAUTH2_GENERIC", auth_bearer},
	{"BASIC", auth_basic},
	{"OAUTH1", auth_oauth1},
	{"TBA", auth_tba},
};

/* The credentials' auth, unless the provider's headers set Authorization. */
static int target_auth(struct hostapi_exec *x, const char *type, struct lookup_ctx *l,
		       struct proxy_target *t)
{
	if (has_key_ci(&t->headers, "authorization") || t->aws_sigv4)
		return EVS_OK;
	for (size_t i = 0; i < sizeof(auth_styles) / sizeof(auth_styles[0]); i++)
		if (strcmp(type, auth_styles[i].type) == 0)
			return auth_styles[i].add(x, l, t);
	return EVS_OK;
}

/* The provider's retry header names and pagination style. */
static int target_provider_settings(const struct config_provider *p, struct proxy_target *t)
{
	int ret = strlist_copy(&t->retry.at, &p->retry.at);

	if (ret == 0)
		ret = strlist_copy(&t->retry.after, &p->retry.after);
	if (ret == 0)
		ret = strlist_copy(&t->retry.remaining, &p->retry.remaining);
	if (ret == 0)
		ret = strlist_copy(&t->retry.error_code, &p->retry.error_code);
	if (ret == 0)
		ret = str_copy(&t->retry.in_body_path, p->retry.in_body_path);
	if (ret == 0)
		ret = str_copy(&t->retry.in_body_value, p->retry.in_body_value);
	if (ret == 0)
		ret = str_copy(&t->retry.in_body_strategy, p->retry.in_body_strategy);
	if (ret == 0)
		ret = paginate_settings_copy(&p->paginate, &t->paginate);
	return ret;
}

int hostapi_proxy_target(struct hostapi_exec *x, struct proxy_target **out)
{
	const struct config_provider *p;
	struct lookup_ctx l = {0};
	struct json_object *conn = NULL;
	struct proxy_target *t = NULL;
	const char *type;
	bool none;
	int ret;

	*out = NULL;
	if (!x)
		return EVS_EINVAL;
	p = x->info.provider;
	if (!p)
		return EVS_ENOTFOUND;
	if (!p->base_url) {
		proxy_error(x, "proxy: provider %s has no proxy.base_url", p->name);
		return EVS_ENOTFOUND;
	}
	ret = connection_parse(x, &conn, &l);
	if (ret < 0)
		goto out;
	type = obj_string(l.credentials, "type");
	if (!type)
		type = "NONE";
	none = strcmp(type, "NONE") == 0;

	ret = EVS_ENOMEM;
	t = calloc(1, sizeof(*t));
	if (!t)
		goto out;
	ret = target_base_url(x, p, &l, t);
	if (ret < 0)
		goto out;
	ret = interpolate_map(x, "header", &p->headers, &l, none, &t->headers, t);
	if (ret < 0)
		goto out;
	ret = interpolate_map(x, "query parameter", &p->query, &l, none, &t->query, NULL);
	if (ret < 0)
		goto out;
	ret = target_auth(x, type, &l, t);
	if (ret < 0)
		goto out;
	ret = target_provider_settings(p, t);
	if (ret < 0)
		goto out;
	*out = t; /* ownership moves to the caller */
	t = NULL;
	ret = EVS_OK;
out:
	proxy_target_free(t);
	hostapi_json_put_secret(conn);
	return ret;
}
