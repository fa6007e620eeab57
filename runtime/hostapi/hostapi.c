/*
 * hostapi.c - the host functions on the daemon's side, and the in-process
 * vtable that calls them directly.
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

#include "log.h"
#include "util.h"

#define LOG_BATCH_LINES 128
#define LOG_BATCH_BYTES (256u << 10)
#define LOG_BATCH_US 1000000

struct hostapi_exec {
	struct hostapi_exec_info info;
	pthread_mutex_t mu;
	char *error;
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

void hostapi_logs_free(struct store_log_line_input *lines, size_t n)
{
	if (!lines)
		return;
	for (size_t i = 0; i < n; i++)
		free((char *)lines[i].message);
	free(lines);
}

void hostapi_exec_free(struct hostapi_exec *x)
{
	if (!x)
		return;
	pthread_mutex_lock(&x->mu);
	flush_logs(x);
	pthread_mutex_unlock(&x->mu);
	free(x->pending);
	free(x->error);
	free(x->candidate_metadata);
	pthread_mutex_destroy(&x->mu);
	free(x);
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
 * store_connection_free); EVS_ENOTFOUND without one. */
static int stored_connection_get(struct hostapi_exec *x, struct store_connection **c)
{
	int r;

	if (!has_stored_connection(x))
		return EVS_ENOTFOUND;
	r = store_connection_get(x->info.store, x->info.provider_config_key, x->info.connection_id, c);
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
	ret = stored_connection_get(x, &c);
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
	ret = stored_connection_get(x, &c);
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

int hostapi_trigger_action(struct hostapi_exec *x, const char *name, const char *input_json,
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
	if (!x->info.trigger)
		return EVS_EUNSUPPORTED;
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

/* ---------------------------------------------------------------------------
 * The proxy target: base URL and auth from the provider and the credentials.
 */
struct lookup_ctx {
	struct json_object *credentials;
	struct json_object *connection_config;
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

static const char *lookup(void *ud, const char *name)
{
	struct lookup_ctx *l = ud;

	if (strncmp(name, "connectionConfig.", 17) == 0)
		return obj_string(l->connection_config, name + 17);
	if (strncmp(name, "credentials.", 12) == 0)
		return obj_string(l->credentials, name + 12);
	if (strcmp(name, "accessToken") == 0)
		return obj_string(l->credentials, "access_token");
	return obj_string(l->credentials, name);
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

/* Interpolates each template of src into dst. A template naming a value the
 * connection lacks is an error, or skipped when skip_undefined. */
static int interpolate_map(struct hostapi_exec *x, const char *what, const struct config_map *src,
			   struct lookup_ctx *l, bool skip_undefined, struct config_map *dst)
{
	for (size_t i = 0; i < src->n; i++) {
		char err[CONFIG_ERR_MAX];
		char *v = NULL;
		int r = config_interpolate(src->items[i].value, lookup, l, &v, err, sizeof(err));

		if (r == CONFIG_EUNDEFINED && skip_undefined)
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

/* OAUTH2: "Authorization: Bearer <access_token>". */
static int auth_bearer(struct hostapi_exec *x, struct lookup_ctx *l, struct proxy_target *t)
{
	const char *tok = obj_string(l->credentials, "access_token");
	size_t n;
	char *h;

	if (!tok) {
		hostapi_log(x, EVS_LOG_ERROR, "proxy: OAUTH2 credentials without access_token");
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

/* The auth evscript adds by credentials.type; other types add none. */
static const struct {
	const char *type;
	int (*add)(struct hostapi_exec *x, struct lookup_ctx *l, struct proxy_target *t);
} auth_styles[] = {
	{"OAUTH2", auth_bearer},
	{"BASIC", auth_basic},
};

/* The credentials' auth, unless the provider's headers set Authorization. */
static int target_auth(struct hostapi_exec *x, const char *type, struct lookup_ctx *l,
		       struct proxy_target *t)
{
	if (has_key_ci(&t->headers, "authorization"))
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
	ret = interpolate_map(x, "header", &p->headers, &l, none, &t->headers);
	if (ret < 0)
		goto out;
	ret = interpolate_map(x, "query parameter", &p->query, &l, none, &t->query);
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

/* ---------------------------------------------------------------------------
 * The in-process vtable.
 */
static struct hostapi_inproc_ctx *inproc(struct evs_ctx *ctx)
{
	return (struct hostapi_inproc_ctx *)ctx;
}

/* Keeps s until the execution ends and returns it (NULL: not kept, freed). */
static const char *lend(struct hostapi_inproc_ctx *c, char *s)
{
	if (!s)
		return NULL;
	if (c->n_lent == c->cap_lent) {
		size_t cap = c->cap_lent ? c->cap_lent * 2 : 8;
		char **l;

		if (cap > HOSTAPI_LENT_MAX || !(l = realloc(c->lent, cap * sizeof(*l)))) {
			hostapi_secret_free(s);
			return NULL;
		}
		c->lent = l;
		c->cap_lent = cap;
	}
	c->lent[c->n_lent++] = s;
	return s;
}

/* The line of ip_set_error (as_error: the execution's error, at most
 * HOSTAPI_ERROR_MAX bytes) or of ip_log (logged at level). */
static void ip_vsay(struct evs_ctx *ctx, bool as_error, int level, const char *fmt, va_list ap)
{
	char line[HOSTAPI_LOG_LINE_MAX > HOSTAPI_ERROR_MAX ? HOSTAPI_LOG_LINE_MAX : HOSTAPI_ERROR_MAX];

	if (!ctx || !fmt)
		return;
	vsnprintf(line, as_error ? HOSTAPI_ERROR_MAX : HOSTAPI_LOG_LINE_MAX, fmt, ap);
	if (as_error)
		hostapi_set_error(inproc(ctx)->exec, line);
	else
		hostapi_log(inproc(ctx)->exec, level, line);
}

static void ip_log(struct evs_ctx *ctx, enum evs_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ip_vsay(ctx, false, (int)level, fmt, ap);
	va_end(ap);
}

static void ip_set_error(struct evs_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ip_vsay(ctx, true, 0, fmt, ap);
	va_end(ap);
}

/* Lends what a char ** host function returned. */
static int lend_result(struct hostapi_inproc_ctx *c, int ret, char *s, const char **out)
{
	if (ret < 0) {
		hostapi_secret_free(s);
		return ret;
	}
	*out = lend(c, s);
	return *out ? EVS_OK : EVS_ENOMEM;
}

/* A host function without arguments whose string is lent to the plugin. */
static int lend_call(struct evs_ctx *ctx, int (*fn)(struct hostapi_exec *, char **),
		     const char **out)
{
	char *s = NULL;
	int ret;

	if (!ctx || !out)
		return EVS_EINVAL;
	*out = NULL;
	ret = fn(inproc(ctx)->exec, &s);
	return lend_result(inproc(ctx), ret, s, out);
}

static int ip_get_connection(struct evs_ctx *ctx, const char **json)
{
	return lend_call(ctx, hostapi_get_connection, json);
}

static int ip_get_metadata(struct evs_ctx *ctx, const char **json)
{
	return lend_call(ctx, hostapi_get_metadata, json);
}

static int ip_set_metadata(struct evs_ctx *ctx, const char *json)
{
	if (!ctx)
		return EVS_EINVAL;
	return hostapi_set_metadata(inproc(ctx)->exec, json);
}

static int ip_update_metadata(struct evs_ctx *ctx, const char *json)
{
	if (!ctx)
		return EVS_EINVAL;
	return hostapi_update_metadata(inproc(ctx)->exec, json);
}

static int ip_get_env(struct evs_ctx *ctx, const char *name, const char **value)
{
	char *s = NULL;
	int ret;

	if (!ctx || !value)
		return EVS_EINVAL;
	*value = NULL;
	ret = hostapi_get_env(inproc(ctx)->exec, name, &s);
	return lend_result(inproc(ctx), ret, s, value);
}

static int ip_get_webhook_url(struct evs_ctx *ctx, const char **url)
{
	return lend_call(ctx, hostapi_get_webhook_url, url);
}

static int ip_trigger_action(struct evs_ctx *ctx, const char *name, const char *input_json,
			     const char **output_json)
{
	char *s = NULL;
	int ret;

	if (!ctx || !output_json)
		return EVS_EINVAL;
	*output_json = NULL;
	ret = hostapi_trigger_action(inproc(ctx)->exec, name, input_json, &s);
	return lend_result(inproc(ctx), ret, s, output_json);
}

static void proxy_log(void *user, int level, const char *msg)
{
	hostapi_log(user, level, msg);
}

static int session(struct hostapi_inproc_ctx *c)
{
	int ret;

	if (c->proxy)
		return EVS_OK;
	if (!c->target) {
		ret = hostapi_proxy_target(c->exec, &c->target);
		if (ret < 0)
			return ret;
	}
	return proxy_session_new(c->target, hostapi_exec_info(c->exec)->deadline_us, proxy_log,
				 c->exec, &c->proxy);
}

static int ip_proxy(struct evs_ctx *ctx, const struct evs_request *req, struct evs_response **resp)
{
	int ret;

	if (!resp)
		return EVS_EINVAL;
	*resp = NULL;
	if (!ctx || !req)
		return EVS_EINVAL;
	ret = session(inproc(ctx));
	if (ret < 0)
		return ret;
	return proxy_request(inproc(ctx)->proxy, req, resp);
}

static void ip_free_response(struct evs_ctx *ctx, struct evs_response *resp)
{
	(void)ctx;
	proxy_response_free(resp);
}

static int ip_paginate(struct evs_ctx *ctx, const struct evs_request *req,
		       const struct evs_paginate_options *opts, evs_page_fn on_page, void *user)
{
	int ret;

	if (!ctx || !req || !on_page)
		return EVS_EINVAL;
	ret = session(inproc(ctx));
	if (ret < 0)
		return ret;
	return proxy_paginate(inproc(ctx)->proxy, req, opts, on_page, user);
}

static const struct evs_host inproc_vtable = {
	.size = sizeof(struct evs_host),
	.abi_major = EVS_ABI_MAJOR,
	.abi_minor = EVS_ABI_MINOR,
	.log = ip_log,
	.set_error = ip_set_error,
	.get_connection = ip_get_connection,
	.get_metadata = ip_get_metadata,
	.set_metadata = ip_set_metadata,
	.update_metadata = ip_update_metadata,
	.proxy = ip_proxy,
	.free_response = ip_free_response,
	.paginate = ip_paginate,
	.get_env = ip_get_env,
	.get_webhook_url = ip_get_webhook_url,
	.trigger_action = ip_trigger_action,
};

const struct evs_host *hostapi_inproc_vtable(void)
{
	return &inproc_vtable;
}

void hostapi_inproc_ctx_clear(struct hostapi_inproc_ctx *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_lent; i++)
		hostapi_secret_free(c->lent[i]);
	free(c->lent);
	c->lent = NULL;
	c->n_lent = c->cap_lent = 0;
	proxy_session_free(c->proxy);
	proxy_target_free(c->target);
	c->proxy = NULL;
	c->target = NULL;
}
