/*
 * cli_remote.c - evscript's commands for a running daemon, over its HTTP API
 * with libcurl (cli_remote.h):
 *
 *   evscript status       health, generation, plugins, queue, running executions
 *   evscript plugins      loaded plugins and refusals (GET /plugins)
 *   evscript reload       POST /reload, and what it loaded or refused
 *   evscript connections  GET /connections
 *   evscript executions   GET /executions; --follow: GET /executions/stream
 *   evscript logs ID      GET /executions/ID; --follow: GET /executions/ID/logs/stream
 *
 * Every command takes --url URL (else EVSCRIPT_URL, else
 * http://127.0.0.1:3003), --secret-key KEY (else EVSCRIPT_SECRET_KEY) and
 * --json (print the API's JSON as it is, one document or event per line).
 * A follow prints as the daemon sends and ends when the daemon ends the
 * stream (logs: when the execution ends; its exit status then says whether
 * it succeeded).
 */
#include "cli_remote_priv.h"

#include <curl/curl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynbuf.h"
#include "util.h"

#define RESPONSE_MAX (64u << 20)  /* a response body we read whole */
#define EVENT_MAX (8u << 20)      /* one server-sent event */

static const char *usage_of(const char *cmd)
{
	static const char *const usages[][2] = {
		{"status", CLI_USAGE_STATUS}, {"plugins", CLI_USAGE_PLUGINS}, {"reload", CLI_USAGE_RELOAD},
		{"connections", CLI_USAGE_CONNECTIONS}, {"executions", CLI_USAGE_EXECUTIONS}, {"logs", CLI_USAGE_LOGS},
	};

	for (size_t i = 0; i < sizeof(usages) / sizeof(usages[0]); i++)
		if (strcmp(usages[i][0], cmd) == 0)
			return usages[i][1];
	return cmd;
}

static int usage_error(const struct opts *o, const char *msg)
{
	if (msg)
		fprintf(stderr, "evscript %s: %s\n", o->cmd, msg);
	fprintf(stderr, "usage: evscript %s\n", usage_of(o->cmd));
	return CLI_EXIT_USAGE;
}

/* Parses argv into o. Returns -1 to go on, else the exit status. */
int cli_parse(int argc, char **argv, unsigned allowed, bool want_arg, struct opts *o)
{
	static const struct option longopts[] = {
		{"url", required_argument, NULL, 'u'}, {"secret-key", required_argument, NULL, 'k'},
		{"json", no_argument, NULL, 'j'}, {"follow", no_argument, NULL, 'f'},
		{"integration", required_argument, NULL, 'i'}, {"connection", required_argument, NULL, 'c'},
		{"script", required_argument, NULL, 's'}, {"event", required_argument, NULL, 'e'},
		{"status", required_argument, NULL, 't'}, {"limit", required_argument, NULL, 'n'},
		{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	int ch;

	memset(o, 0, sizeof(*o));
	o->cmd = argv[0];
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "u:k:jfi:c:s:e:t:n:h", longopts, NULL)) != -1) {
		unsigned need = ch == 'f' ? OPT_FOLLOW
			      : ch == 'i' ? OPT_FILTERS | OPT_INTEGRATION
			      : ch == 'c' || ch == 's' || ch == 'e' || ch == 't' || ch == 'n' ? OPT_FILTERS : 0;
		const char **slot = ch == 'u' ? &o->url : ch == 'k' ? &o->secret : ch == 'i' ? &o->integration
				  : ch == 'c' ? &o->connection : ch == 's' ? &o->script : ch == 'e' ? &o->event
				  : ch == 't' ? &o->status : ch == 'n' ? &o->limit : NULL;

		if (ch == 'h') {
			printf("usage: evscript %s\n", usage_of(o->cmd));
			return 0;
		}
		if (ch == '?' || ch == ':' || (need && !(allowed & need)))
			return usage_error(o, "unknown option, or an option this command does not take");
		if (ch == 'j')
			o->json = true;
		else if (ch == 'f')
			o->follow = true;
		else if (slot)
			*slot = optarg;
	}
	if (want_arg && optind < argc)
		o->arg = argv[optind++];
	if (want_arg && !o->arg)
		return usage_error(o, "which execution? (its id)");
	if (optind < argc)
		return usage_error(o, "unexpected argument");
	if (!o->url)
		o->url = getenv("EVSCRIPT_URL") && *getenv("EVSCRIPT_URL") ? getenv("EVSCRIPT_URL")
									: CLI_REMOTE_DEFAULT_URL;
	/* "http://host:3003/" names the same daemon: paths are appended with their "/" */
	o->url_len = strlen(o->url);
	while (o->url_len > 0 && o->url[o->url_len - 1] == '/')
		o->url_len--;
	if (!o->secret)
		o->secret = getenv("EVSCRIPT_SECRET_KEY");
	if (!o->secret || !*o->secret)
		return usage_error(o, "the daemon's secret key is needed: --secret-key KEY or EVSCRIPT_SECRET_KEY");
	return -1;
}

void cli_remote_close(struct remote *r)
{
	curl_slist_free_all(r->headers);
	if (r->auth) {
		util_wipe(r->auth, strlen(r->auth));
		free(r->auth);
	}
	if (r->curl)
		curl_easy_cleanup(r->curl);
	memset(r, 0, sizeof(*r));
}

int cli_remote_open(struct remote *r, const struct opts *o)
{
	struct dynbuf b;

	memset(r, 0, sizeof(*r));
	r->o = o;
	r->curl = curl_easy_init();
	dynbuf_init(&b, 64 * 1024, DYNBUF_WIPE);
	if (!r->curl || dynbuf_addf(&b, "Authorization: Bearer %s", o->secret) < 0 ||
	    dynbuf_take(&b, &r->auth, NULL) < 0 || !(r->headers = curl_slist_append(NULL, r->auth))) {
		dynbuf_free(&b);
		cli_remote_close(r);
		return cli_fail(o, "out of memory");
	}
	dynbuf_free(&b);
	return 0;
}

static size_t collect(char *data, size_t size, size_t n, void *user)
{
	return dynbuf_add(user, data, size * n) == 0 ? size * n : 0;
}

/* Sets r's handle up for a request to the daemon's path (url gets the whole URL), its body
 * given to write(data). 0, or 1 after saying why. */
static int setup(struct remote *r, const char *path, struct dynbuf *url, curl_write_callback write, void *data)
{
	if (dynbuf_addf(url, "%.*s%s", (int)r->o->url_len, r->o->url, path) < 0)
		return cli_fail(r->o, "the URL is too long");
	curl_easy_reset(r->curl);
	curl_easy_setopt(r->curl, CURLOPT_URL, dynbuf_str(url));
	curl_easy_setopt(r->curl, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(r->curl, CURLOPT_WRITEFUNCTION, write);
	curl_easy_setopt(r->curl, CURLOPT_WRITEDATA, data);
	curl_easy_setopt(r->curl, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(r->curl, CURLOPT_NOSIGNAL, 1L);
	return 0;
}

/* Sends METHOD url+path; *doc gets the JSON body (NULL when not JSON) and
 * *status the HTTP status. Returns 0, or 1 after saying why on stderr. */
int cli_call(struct remote *r, const char *method, const char *path, long *status, struct json_object **doc)
{
	struct dynbuf body, url;
	CURLcode cc;
	int ret;

	*doc = NULL;
	dynbuf_init(&body, RESPONSE_MAX, 0);
	dynbuf_init(&url, 8192, 0);
	ret = setup(r, path, &url, collect, &body);
	if (ret)
		goto out;
	curl_easy_setopt(r->curl, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "POST") == 0)
		curl_easy_setopt(r->curl, CURLOPT_POSTFIELDS, "");
	cc = curl_easy_perform(r->curl);
	if (cc == CURLE_WRITE_ERROR) {
		ret = cli_fail(r->o, "%s %s: the answer is larger than %u MiB", method, path, RESPONSE_MAX >> 20);
		goto out;
	}
	if (cc != CURLE_OK) {
		ret = cli_fail(r->o, "%s %s: %s (is evscriptd running there? --url or EVSCRIPT_URL)", method,
			   dynbuf_str(&url), curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, status);
	*doc = json_tokener_parse(dynbuf_str(&body));
	if (*status == 401)
		ret = cli_fail(r->o, "%s %s: 401 unauthorized: check --secret-key or EVSCRIPT_SECRET_KEY", method, path);
out:
	if (ret) {
		json_object_put(*doc);
		*doc = NULL;
	}
	dynbuf_free(&body);
	dynbuf_free(&url);
	return ret;
}

const char *cli_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
		return NULL;
	return json_object_get_string(v);
}

const char *cli_str_or(struct json_object *o, const char *key, const char *dflt)
{
	const char *s = cli_str(o, key);

	return s ? s : dflt;
}

/* Says what an error body says: "404 not_found: execution 7 not found". */
int cli_api_fail(struct remote *r, const char *what, long status, struct json_object *doc)
{
	struct json_object *e = NULL;

	if (doc)
		json_object_object_get_ex(doc, "error", &e);
	return cli_fail(r->o, "%s: %ld %s: %s", what, status, e ? cli_str_or(e, "code", "?") : "error",
		    e ? cli_str_or(e, "message", "") : "(no JSON error body)");
}

void cli_print_json(struct json_object *doc)
{
	printf("%s\n", json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* GET path, expecting 200 JSON: *doc, or 1 after saying why. */
int cli_get_json(struct remote *r, const char *path, struct json_object **doc)
{
	long status = 0;
	int ret = cli_call(r, "GET", path, &status, doc);

	if (ret == 0 && (status != 200 || !*doc)) {
		ret = cli_api_fail(r, path, status, *doc);
		json_object_put(*doc);
		*doc = NULL;
	}
	return ret;
}


/* ---- server-sent events ---- */

struct sse {
	struct remote *r;
	struct dynbuf buf;         /* what arrived and is not a whole event yet */
	cli_event_fn on_event;
	void *user;
	int stopped;               /* on_event's non-zero verdict */
};

/* One event block ("event: x\ndata: {...}"): on_event with its parsed data. */
static int sse_block(struct sse *s, char *block)
{
	const char *name = "message";
	struct json_object *data = NULL;
	char *save = NULL;
	int ret = 0;

	for (char *line = strtok_r(block, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "event: ", 7) == 0)
			name = line + 7;
		else if (strncmp(line, "data: ", 6) == 0)
			data = json_tokener_parse(line + 6);
	}
	if (data)
		ret = s->on_event(name, data, s->user);
	json_object_put(data);
	return ret;
}

static size_t sse_write(char *data, size_t size, size_t n, void *user)
{
	struct sse *s = user;
	char *all, *p, *end;

	if (dynbuf_add(&s->buf, data, size * n) < 0 || dynbuf_take(&s->buf, &all, NULL) < 0)
		return 0;
	for (p = all; (end = strstr(p, "\n\n")) != NULL; p = end + 2) {
		*end = '\0';
		if (*p != ':' && (s->stopped = sse_block(s, p)) != 0)
			break;
	}
	if (!s->stopped)
		dynbuf_add_str(&s->buf, p);
	free(all);
	return s->stopped ? 0 : size * n;
}

int cli_stream(struct remote *r, const char *path, cli_event_fn on_event, void *user)
{
	struct sse s = {.r = r, .on_event = on_event, .user = user};
	struct dynbuf url;
	long status = 0;
	CURLcode cc;
	int ret = 0;

	dynbuf_init(&s.buf, EVENT_MAX, 0);
	dynbuf_init(&url, 8192, 0);
	ret = setup(r, path, &url, sse_write, &s);
	if (ret)
		goto out;
	curl_easy_setopt(r->curl, CURLOPT_FAILONERROR, 1L);
	cc = curl_easy_perform(r->curl);
	curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &status);
	if (s.stopped)
		ret = s.stopped;
	else if (cc == CURLE_HTTP_RETURNED_ERROR && status == 401)
		ret = cli_fail(r->o, "GET %s: 401 unauthorized: check --secret-key or EVSCRIPT_SECRET_KEY", path);
	else if (cc == CURLE_HTTP_RETURNED_ERROR)
		ret = cli_fail(r->o, "GET %s: %ld (see `evscript %s --help`)", path, status, r->o->cmd);
	else if (cc != CURLE_OK)
		ret = cli_fail(r->o, "GET %s: %s", dynbuf_str(&url), curl_easy_strerror(cc));
out:
	dynbuf_free(&s.buf);
	dynbuf_free(&url);
	return ret;
}
