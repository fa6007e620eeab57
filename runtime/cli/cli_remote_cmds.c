/*
 * cli_remote_cmds.c - the commands of cli_remote.h: what each asks the
 * daemon and how it prints the answer (plain columns, or --json).
 */
#include "cli_remote_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynbuf.h"

static int64_t num(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static size_t len_of(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_array)
		       ? json_object_array_length(v) : 0;
}

static struct json_object *item(struct json_object *o, const char *key, size_t i)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_array_get_idx(v, i) : NULL;
}

/* One command's work, on r opened for o: its exit status. */
typedef int (*command_fn)(struct remote *r, const struct opts *o);

/* ---- plugins, reload, status ---- */

static void print_plugins(struct json_object *doc)
{
	size_t n = len_of(doc, "loaded"), m = len_of(doc, "refused");

	if (json_object_object_get_ex(doc, "loaded", NULL))
		printf("generation %lld: %zu loaded, %zu refused\n", (long long)num(doc, "generation"), n, m);
	else /* a failed reload's payload lists the refusals only */
		printf("generation %lld: %zu refused\n", (long long)num(doc, "generation"), m);
	for (size_t i = 0; i < n; i++) {
		struct json_object *p = item(doc, "loaded", i);

		printf("  loaded   %-24s %-10s %-6s key %s, since generation %lld\n", cli_str_or(p, "name", "?"),
		       cli_str_or(p, "version", "?"), cli_str_or(p, "kind", "?"), cli_str_or(p, "key_id", "?"),
		       (long long)num(p, "generation"));
	}
	for (size_t i = 0; i < m; i++) {
		struct json_object *p = item(doc, "refused", i);
		struct json_object *kept = NULL;

		json_object_object_get_ex(p, "kept_previous", &kept);
		printf("  refused  %-24s %s: %s%s\n", cli_str_or(p, "file", "?"), cli_str_or(p, "reason_code", "?"),
		       cli_str_or(p, "reason", ""), json_object_get_boolean(kept) ? " (the previous version runs)" : "");
	}
	/* scripts the config lists that no plugin provides (when the daemon says) */
	for (size_t i = 0; i < len_of(doc, "warnings"); i++)
		printf("  warning  %s\n", json_object_get_string(item(doc, "warnings", i)));
	if (cli_str(doc, "last_reload_error"))
		printf("last reload failed: %s\n", cli_str(doc, "last_reload_error"));
}

static int show_plugins(struct remote *r, const struct opts *o)
{
	struct json_object *doc = NULL;
	int ret;

	ret = cli_get_json(r, "/plugins", &doc);
	if (ret == 0) {
		if (o->json)
			cli_print_json(doc);
		else
			print_plugins(doc);
		/* a refusal is the operator's business: say so in the exit status */
		ret = len_of(doc, "refused") > 0 ? EXIT_FAILURE : 0;
	}
	json_object_put(doc);
	return ret;
}

static int do_reload(struct remote *r, const struct opts *o)
{
	struct json_object *doc = NULL, *e = NULL, *payload = NULL;
	long status = 0;
	int ret;

	ret = cli_call(r, "POST", "/reload", &status, &doc);
	if (ret == 0 && o->json && doc)
		cli_print_json(doc);
	if (ret == 0 && status == 200) {
		if (!o->json)
			print_plugins(doc);
	} else if (ret == 0 && status == 422 && json_object_object_get_ex(doc, "error", &e)) {
		json_object_object_get_ex(e, "payload", &payload);
		if (!o->json && payload && !cli_str(payload, "config_error"))
			print_plugins(payload);
		ret = cli_fail(o, "%s", cli_str_or(e, "message", "failed"));
	} else if (ret == 0) {
		ret = cli_api_fail(r, "reload", status, doc);
	}
	json_object_put(doc);
	return ret;
}

static int show_status(struct remote *r, const struct opts *o)
{
	struct json_object *health = NULL, *plugins = NULL, *running = NULL;
	long status = 0;
	int ret;

	ret = cli_call(r, "GET", "/healthz", &status, &health);
	if (ret == 0)
		ret = cli_get_json(r, "/plugins", &plugins);
	if (ret == 0)
		ret = cli_get_json(r, "/executions?status=running&limit=200", &running);
	if (ret == 0 && o->json) {
		struct json_object *all = json_object_new_object();

		json_object_object_add(all, "health", json_object_get(health));
		json_object_object_add(all, "plugins", json_object_get(plugins));
		json_object_object_add(all, "running", json_object_get(running));
		cli_print_json(all);
		json_object_put(all);
	} else if (ret == 0) {
		printf("evscriptd at %s: %s%s%s\n", o->url, cli_str_or(health, "status", "?"),
		       cli_str(health, "reason") ? ": " : "", cli_str_or(health, "reason", ""));
		printf("executions running: %zu%s\n", len_of(running, "executions"),
		       len_of(running, "executions") == 200 ? " or more" : "");
		print_plugins(plugins);
	}
	if (ret == 0 && status != 200)
		ret = EXIT_FAILURE; /* unhealthy */
	json_object_put(health);
	json_object_put(plugins);
	json_object_put(running);
	return ret;
}

/* ---- connections ---- */

/* Appends "&name=<escaped value>" (or "?..." first) to q; false when out of memory. */
static bool add_query(struct remote *r, struct dynbuf *q, const char *name, const char *value)
{
	char *v;
	int ret;

	if (!value)
		return true;
	v = curl_easy_escape(r->curl, value, 0);
	if (!v)
		return false;
	ret = dynbuf_addf(q, "%c%s=%s", strchr(dynbuf_str(q), '?') ? '&' : '?', name, v);
	curl_free(v);
	return ret == 0;
}

static int list_connections(struct remote *r, const struct opts *o)
{
	struct json_object *doc = NULL;
	struct dynbuf path;
	int ret;

	dynbuf_init(&path, 8192, 0);
	dynbuf_add_str(&path, "/connections");
	if (!add_query(r, &path, "integrationId", o->integration))
		ret = cli_fail(o, "the query is too long");
	else
		ret = cli_get_json(r, dynbuf_str(&path), &doc);
	if (ret == 0 && o->json) {
		cli_print_json(doc);
	} else if (ret == 0) {
		size_t n = len_of(doc, "connections");

		for (size_t i = 0; i < n; i++) {
			struct json_object *c = item(doc, "connections", i);

			printf("%-24s %-20s %-16s created %s\n", cli_str_or(c, "connection_id", "?"),
			       cli_str_or(c, "provider_config_key", "?"), cli_str_or(c, "provider", "?"),
			       cli_str_or(c, "created", "?"));
		}
		if (n == 0)
			printf("no connections\n");
	}
	json_object_put(doc);
	dynbuf_free(&path);
	return ret;
}

/* ---- executions and logs ---- */

/* One line: id, status, event, integration/connection, script@version, start, duration, error. */
static void print_execution(struct json_object *e)
{
	struct json_object *d = NULL;
	char dur[32] = "-";

	if (json_object_object_get_ex(e, "duration_ms", &d) && !json_object_is_type(d, json_type_null))
		snprintf(dur, sizeof(dur), "%lldms", (long long)json_object_get_int64(d));
	printf("%-6lld %-11s %-24s %s/%s %s@%s %s %s%s%s\n", (long long)num(e, "id"), cli_str_or(e, "status", "?"),
	       cli_str_or(e, "event", "?"), cli_str_or(e, "provider_config_key", "?"),
	       cli_str_or(e, "connection_id", "?"), cli_str_or(e, "script", "?"), cli_str_or(e, "script_version", "?"),
	       cli_str_or(e, "started_at", "?"), dur, cli_str(e, "error") ? "  error: " : "",
	       cli_str_or(e, "error", ""));
}

static int on_execution(const char *name, struct json_object *data, void *user)
{
	const struct opts *o = user;

	if (o->json)
		cli_print_json(data);
	else if (strcmp(name, "execution") == 0)
		print_execution(data);
	fflush(stdout);
	return 0;
}

/* GET /executions's query from the filters. */
static bool filters(struct remote *r, const struct opts *o, struct dynbuf *q)
{
	return add_query(r, q, "integration", o->integration) && add_query(r, q, "connection_id", o->connection) &&
	       add_query(r, q, "script", o->script) && add_query(r, q, "event", o->event) &&
	       add_query(r, q, "status", o->status) && add_query(r, q, "limit", o->limit);
}

static int list_executions(struct remote *r, const struct opts *o)
{
	struct json_object *doc = NULL;
	struct dynbuf path;
	int ret;

	dynbuf_init(&path, 8192, 0);
	dynbuf_add_str(&path, o->follow ? "/executions/stream" : "/executions");
	if (!filters(r, o, &path))
		ret = cli_fail(o, "the query is too long");
	else if (o->follow && (ret = cli_stream(r, dynbuf_str(&path), on_execution, (void *)o)) == 0)
		ret = cli_fail(o, "the daemon ended the stream (is it stopping?)");
	else
		ret = cli_get_json(r, dynbuf_str(&path), &doc);
	if (ret == 0 && !o->follow && o->json) {
		cli_print_json(doc);
	} else if (ret == 0 && !o->follow) {
		/* newest first, as the API lists them */
		for (size_t i = 0; i < len_of(doc, "executions"); i++)
			print_execution(item(doc, "executions", i));
	}
	json_object_put(doc);
	dynbuf_free(&path);
	return ret;
}

static void print_line(struct json_object *l)
{
	printf("%s %-5s %s\n", cli_str_or(l, "ts", "?"), cli_str_or(l, "level", "?"), cli_str_or(l, "message", ""));
}

/* The exit status a finished execution gives: 0 when it succeeded. */
static int verdict(struct json_object *e)
{
	const char *st = cli_str_or(e, "status", "");

	return strcmp(st, "succeeded") == 0 ? 0 : EXIT_FAILURE;
}

/* What a logs --follow has seen. */
struct follow {
	const struct opts *o;
	bool ended;      /* the execution's end arrived */
};

static int on_log(const char *name, struct json_object *data, void *user)
{
	struct follow *f = user;
	const struct opts *o = f->o;
	int ret = 0;

	if (o->json)
		cli_print_json(data);
	else if (strcmp(name, "log") == 0)
		print_line(data);
	else if (strcmp(name, "end") == 0)
		fprintf(stderr, "-- execution %lld %s%s%s\n", (long long)num(data, "id"), cli_str_or(data, "status", "?"),
			cli_str(data, "error") ? ": " : "", cli_str_or(data, "error", ""));
	else if (strcmp(name, "error") == 0)
		ret = cli_fail(o, "%s", cli_str_or(data, "message", "the stream failed"));
	if (strcmp(name, "end") == 0) {
		f->ended = true;
		if (verdict(data) != 0)
			ret = EXIT_FAILURE;
	}
	fflush(stdout);
	return ret;
}

static int show_logs(struct remote *r, const struct opts *o)
{
	struct json_object *doc = NULL;
	struct follow f = {.o = o};
	char path[96];
	int64_t id;
	char *end;
	int ret;

	id = strtoll(o->arg, &end, 10);
	if (*o->arg < '1' || *o->arg > '9' || *end || id <= 0)
		return cli_fail(o, "'%s' is not an execution id (a positive integer)", o->arg);
	if (o->follow) {
		snprintf(path, sizeof(path), "/executions/%lld/logs/stream", (long long)id);
		ret = cli_stream(r, path, on_log, &f);
		if (ret == 0 && !f.ended)
			ret = cli_fail(o, "the daemon ended the stream before the execution ended (is it stopping?)");
	} else {
		snprintf(path, sizeof(path), "/executions/%lld", (long long)id);
		ret = cli_get_json(r, path, &doc);
	}
	if (ret == 0 && !o->follow && o->json) {
		cli_print_json(doc);
	} else if (ret == 0 && !o->follow) {
		for (size_t i = 0; i < len_of(doc, "logs"); i++)
			print_line(item(doc, "logs", i));
		print_execution(doc);
	}
	json_object_put(doc);
	return ret;
}

/* The commands: the options each takes (OPT_*), whether it takes one
 * positional argument, and its work. */
static const struct command {
	const char *name;
	unsigned allowed;
	bool want_arg;
	command_fn fn;
} commands[] = {
	{"status", 0, false, show_status},
	{"plugins", 0, false, show_plugins},
	{"reload", 0, false, do_reload},
	{"connections", OPT_INTEGRATION, false, list_connections},
	{"executions", OPT_FOLLOW | OPT_FILTERS, false, list_executions},
	{"logs", OPT_FOLLOW, true, show_logs},
};

/* Parses argv by argv[0]'s entry (cli_parse), opens r, runs its work and
 * closes r: the exit status. */
int cli_remote(int argc, char **argv)
{
	const struct command *cmd = NULL;
	struct opts o;
	struct remote r;
	int ret;

	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]) && !cmd; i++)
		if (strcmp(commands[i].name, argv[0]) == 0)
			cmd = &commands[i];
	if (!cmd)
		return cli_error(argv[0], "not a command for a running daemon");
	ret = cli_parse(argc, argv, cmd->allowed, cmd->want_arg, &o);
	if (ret >= 0)
		return ret;
	if (cli_remote_open(&r, &o) != 0)
		return EXIT_FAILURE;
	ret = cmd->fn(&r, &o);
	cli_remote_close(&r);
	return ret;
}
