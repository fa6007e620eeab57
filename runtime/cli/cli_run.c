/*
 * cli_run.c - `evscript run PLUGIN.so (--event EVENT | --action [--input JSON])
 *             --connection FILE.json [--providers FILE] [--env NAME=VALUE]...
 *             [--mock DIR | --record DIR]`
 *
 * One script, run once, locally: no daemon, no signature, no sandbox. The
 * host functions are the daemon's own (runtime/hostapi, as in its
 * in-process mode: proxy() with the provider's base URL and credentials
 * from the providers catalogue, metadata, environment, webhook URL), over a
 * throwaway store in a temporary directory that holds the connection read
 * from FILE.json. Then it prints the plugin's log lines, its metadata
 * changes, its error and its result. It is also the way to run a plugin
 * under a debugger (docs/plugins.md, "Debugging a plugin").
 *
 * In order: read the plugin's info (cli_plugin.c); read the connection;
 * write a host config for it into the temporary directory and load it as
 * the daemon would; open the store there and create the connection; set up
 * the execution and its host; dlopen the plugin and call it; report; clean
 * up.
 */
#include "cli_author.h"
#include "cli_run.h"

#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <ftw.h>
#include <signal.h>
#include <getopt.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "status.h"
#include "store.h"
#include "util.h"

#define MAX_ENV 64
#define RUN_DEADLINE_S 300

extern char **environ;

struct run {
	const char *so, *event, *connection_file, *providers, *input, *dir, *plugin_dir;
	const char *env[MAX_ENV];
	size_t n_env;
	bool action;
	enum run_mode mode;
	struct cli_plugin_info info;
	struct json_object *conn;      /* FILE.json */
	const char *connection_id, *integration, *provider;
	char tmp[256];                 /* the temporary directory ($TMPDIR or /tmp), "" when none */
	struct config_host *cfg;
	struct store *store;
	int64_t execution_id, event_id;
	struct run_ctx *top;           /* the script's ctx: actions it triggers share its recordings */
	char err[2048];
};

#define fail(...) cli_error("run", __VA_ARGS__)

static const char usage[] =
	"usage: evscript run PLUGIN.so (--event EVENT | --action [--input JSON]) --connection FILE.json\n"
	"                    [--providers FILE] [--env NAME=VALUE]... [--mock DIR | --record DIR]\n"
	"                    [--plugin-dir DIR]\n"
	"  runs one script once with the daemon's host functions (proxy included) and no daemon,\n"
	"  and prints its logs, metadata changes and result. FILE.json is the connection:\n"
	"  {\"connection_id\", \"provider_config_key\", \"provider\", \"credentials\",\n"
	"  \"connection_config\", \"metadata\"}. --providers: the providers catalogue (default\n"
	"  ./providers.yaml). --record DIR saves the provider's responses, --mock DIR replays them.\n"
	"  --plugin-dir DIR: where trigger_action() finds the actions it runs (in this process too).\n";

/* --env, --mock and --record. */
static int set_option(void *user, int ch, const char *value)
{
	struct run *r = user;

	if (ch != 'E') {
		r->mode = ch == 'm' ? RUN_MOCK : RUN_RECORD;
		r->dir = value;
	} else if (r->n_env == MAX_ENV || !strchr(value, '=')) {
		return cli_usage_error("run", usage, "--env NAME=VALUE, at most %d", MAX_ENV);
	} else {
		r->env[r->n_env++] = value;
	}
	return 0;
}

static int parse(int argc, char **argv, struct run *r)
{
	const struct cli_option opts[] = {
		{"event", 'e', true, &r->event, NULL, NULL}, {"action", 'a', false, NULL, &r->action, NULL},
		{"connection", 'c', true, &r->connection_file, NULL, NULL},
		{"providers", 'p', true, &r->providers, NULL, NULL}, {"input", 'i', true, &r->input, NULL, NULL},
		{"env", 'E', true, NULL, NULL, set_option}, {"mock", 'm', true, NULL, NULL, set_option},
		{"record", 'r', true, NULL, NULL, set_option},
		{"plugin-dir", 'd', true, &r->plugin_dir, NULL, NULL},
	};
	int ret = cli_options(argc, argv, opts, sizeof(opts) / sizeof(opts[0]), r, usage);

	if (ret)
		return ret;
	if (optind + 1 != argc || !r->connection_file || (!r->event) == (!r->action) || (r->input && !r->action))
		return cli_usage_error("run", usage, "give one PLUGIN.so, --connection FILE.json, and "
				       "--event EVENT or --action (--input only with --action)");
	r->so = argv[optind];
	if (!r->providers)
		r->providers = "providers.yaml";
	return 0;
}

/* o.key as a string, or def. */
static const char *str(struct json_object *o, const char *key, const char *def)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
		       ? json_object_get_string(v) : def;
}

/* o.key as JSON text (an object), or def. */
static const char *object_text(struct json_object *o, const char *key, const char *def)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_object))
		return def;
	return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

static int read_connection(struct run *r)
{
	char *text = NULL;
	size_t len;
	int ret = util_read_file(r->connection_file, 1u << 20, &text, &len);

	if (ret)
		return fail("%s: %s", r->connection_file, status_str(ret));
	r->conn = json_tokener_parse(text);
	free(text);
	if (!json_object_is_type(r->conn, json_type_object))
		return fail("%s: not a JSON object", r->connection_file);
	r->connection_id = str(r->conn, "connection_id", "local-run");
	r->integration = str(r->conn, "provider_config_key", "local");
	r->provider = str(r->conn, "provider", NULL);
	if (!r->provider)
		return fail("%s: needs \"provider\": the provider's name in the catalogue (%s)", r->connection_file,
			    r->providers);
	return 0;
}

/* The host config for this one run (JSON is YAML), loaded as the daemon
 * loads its own. */
static int load_config(struct run *r)
{
	struct json_object *cfg = json_object_new_object(), *integ = json_object_new_object();
	struct json_object *in = json_object_new_object(), *env = json_object_new_object(), *list;
	char providers[PATH_MAX], path[PATH_MAX];
	const char *text;
	int ret;

	if (!realpath(r->providers, providers))
		return fail("%s: %s (give the providers catalogue with --providers FILE)", r->providers,
			    strerror(errno));
	for (size_t i = 0; i < r->n_env; i++) {
		const char *eq = strchr(r->env[i], '=');
		char name[256];

		snprintf(name, sizeof(name), "%.*s", (int)(eq - r->env[i]), r->env[i]);
		json_object_object_add(env, name, json_object_new_string(eq + 1));
	}
	json_object_object_add(in, "provider", json_object_new_string(r->provider));
	list = json_object_new_object();
	if (r->action) {
		json_object_object_add(list, r->info.name, json_object_new_object());
		json_object_object_add(in, "actions", list);
	} else {
		struct json_object *names = json_object_new_array();

		json_object_array_add(names, json_object_new_string(r->info.name));
		json_object_object_add(list, r->event, names);
		json_object_object_add(in, "on-events", list);
	}
	json_object_object_add(integ, r->integration, in);
	json_object_object_add(cfg, "secret_key", json_object_new_string("evscript-run-local"));
	json_object_object_add(cfg, "store", json_object_new_string("sqlite:./run.db"));
	json_object_object_add(cfg, "plugin_dir", json_object_new_string("."));
	json_object_object_add(cfg, "trusted_keys_dir", json_object_new_string("."));
	json_object_object_add(cfg, "providers", json_object_new_string(providers));
	json_object_object_add(cfg, "environment", env);
	json_object_object_add(cfg, "integrations", integ);
	text = json_object_to_json_string_ext(cfg, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	snprintf(path, sizeof(path), "%s/evscript.yaml", r->tmp);
	ret = util_write_file_atomic(path, text, strlen(text), 0600);
	json_object_put(cfg);
	if (ret)
		return fail("%s: %s", path, status_str(ret));
	ret = config_load(path, NULL, &r->cfg, r->err, sizeof(r->err));
	return ret ? fail("%s", r->err) : 0;
}

/* The store in the temporary directory, with the connection and the
 * execution's row. */
static int open_store(struct run *r)
{
	struct store_connection_input in = {
		.connection_id = r->connection_id, .provider_config_key = r->integration, .provider = r->provider,
		.credentials = object_text(r->conn, "credentials", "{\"type\":\"NONE\"}"),
		.connection_config = object_text(r->conn, "connection_config", NULL),
		.metadata = object_text(r->conn, "metadata", NULL),
	};
	struct store_execution_input ex = {
		.kind = r->action ? STORE_EXEC_ACTION : STORE_EXEC_EVENT, .script = r->info.name,
		.event = r->action ? NULL : r->event, .connection_id = r->connection_id,
		.provider_config_key = r->integration, .plugin_version = r->info.version,
	};
	struct store_upsert_result up;
	char *url = NULL;
	int ret;

	if (asprintf(&url, "sqlite:%s/run.db?synchronous=normal", r->tmp) < 0)
		return fail("%s", status_str(STATUS_ENOMEM));
	ret = store_open(url, NULL, &r->store, r->err, sizeof(r->err));
	free(url);
	if (ret)
		return fail("store: %s", r->err);
	ret = store_connection_upsert(r->store, &in, NULL, &up);
	if (ret)
		return fail("%s: the connection was refused: %s", r->connection_file, status_str(ret));
	if (!r->action) /* the throwaway store's own event row stands for the occurrence */
		ex.event_id = r->event_id = up.event_id;
	ret = store_execution_create(r->store, &ex, &r->execution_id);
	return ret ? fail("store: %s", status_str(ret)) : 0;
}

static const char *const level_names[] = {"debug", "info", "warn", "error"};

#define ACTION_DEPTH_MAX 8

static void prefix_log(struct hostapi_exec *to, const char *action, struct hostapi_exec *from)
{
	struct store_log_line_input *lines = NULL;
	size_t n = 0;
	int64_t dropped = 0;
	char line[HOSTAPI_LOG_LINE_MAX + 300];

	hostapi_exec_take_logs(from, &lines, &n, &dropped);
	for (size_t i = 0; i < n; i++) {
		snprintf(line, sizeof(line), "[%s] %s", action, lines[i].message);
		hostapi_log(to, lines[i].level, line);
	}
	hostapi_logs_free(lines, n);
}

/* trigger_action(): the action NAME.so from --plugin-dir, run here as a
 * child execution of parent; its log lines go into the parent's, marked
 * [NAME]. */
static int run_trigger(void *user, struct hostapi_exec *parent, const char *action, const char *input_json,
		       char **output_json, char *err, size_t errlen)
{
	struct run *r = user;
	struct hostapi_exec_info info = *hostapi_exec_info(parent);
	struct store_execution_input ex = {.kind = STORE_EXEC_ACTION, .parent_execution_id = info.execution_id,
					   .script = action, .connection_id = r->connection_id,
					   .provider_config_key = r->integration};
	struct run_ctx c = {.mode = r->mode, .dir = r->dir};
	struct cli_plugin_info pi;
	int (*fn)(const struct evs_host *, struct evs_ctx *, const char *, char **);
	struct evs_host host;
	char path[PATH_MAX], abs[PATH_MAX];
	void *lib;
	int rc;

	*output_json = NULL;
	if (!r->plugin_dir) {
		util_set_err(err, errlen, "no action can run: give --plugin-dir DIR with %s.so in it", action);
		return EVS_ENOTFOUND;
	}
	if (info.depth + 1 > ACTION_DEPTH_MAX)
		return EVS_EDEPTH;
	snprintf(path, sizeof(path), "%s/%s.so", r->plugin_dir, action);
	if (cli_plugin_info(path, &pi, err, errlen) != 0)
		return EVS_ENOTFOUND;
	if (!pi.action || strcmp(pi.name, action) != 0) {
		util_set_err(err, errlen, "%s is not the action %s", path, action);
		return EVS_ENOTFOUND;
	}
	lib = realpath(path, abs) ? dlopen(abs, RTLD_NOW | RTLD_LOCAL) : NULL;
	fn = lib ? (int (*)(const struct evs_host *, struct evs_ctx *, const char *, char **))dlsym(lib, "run_action")
		 : NULL;
	ex.plugin_version = pi.version;
	info.script = action;
	info.depth++;
	info.event_id = 0;
	info.event_type = 0;
	if (!fn) {
		util_set_err(err, errlen, "%s could not be loaded: %s", path, lib ? "no run_action" : dlerror());
		return EVS_EHOST;
	}
	if (store_execution_create(r->store, &ex, &info.execution_id) != 0 ||
	    hostapi_exec_new(&info, &c.inproc.exec) != 0) {
		util_set_err(err, errlen, "%s: the execution could not be set up", action);
		return EVS_EHOST;
	}
	/* one count of each request for the whole run: the same request in the
	 * script and in the action gets its own recording */
	c.seen = r->top->seen;
	c.n_seen = r->top->n_seen;
	run_host_init(&host, &c);
	rc = fn(&host, (struct evs_ctx *)&c, input_json, output_json);
	prefix_log(parent, action, c.inproc.exec);
	if (rc != 0)
		util_set_err(err, errlen, "%s", hostapi_error(c.inproc.exec) ? hostapi_error(c.inproc.exec) : "failed");
	r->top->seen = c.seen;
	r->top->n_seen = c.n_seen;
	r->top->replayed += c.replayed;
	r->top->recorded += c.recorded;
	r->top->missing += c.missing;
	c.seen = NULL;
	hostapi_inproc_ctx_clear(&c.inproc);
	run_ctx_clear(&c);
	hostapi_exec_free(c.inproc.exec);
	return rc == 0 ? EVS_OK : EVS_EFAILED;
}

static char *metadata_now(struct run *r)
{
	struct store_connection *c = NULL;
	char *m = NULL;

	if (store_connection_get(r->store, r->integration, r->connection_id, &c) == 0 && c->metadata)
		m = strdup(c->metadata);
	store_connection_free(c);
	return m;
}

/* Calls the entry point with the host; prints what happened. Returns the
 * exit status. */
static int call(struct run *r, void *lib, struct hostapi_exec *hx, struct run_ctx *c)
{
	struct evs_host host;
	struct evs_event ev = {
		.size = sizeof(ev), .name = r->event, .connection_id = r->connection_id,
		.provider_config_key = r->integration, .event_id = r->event_id, .execution_id = r->execution_id,
	};
	char *output = NULL, *before = metadata_now(r), *after;
	int64_t t0 = util_mono_us();
	int rc;

	run_host_init(&host, c);
	ev.type = (uint32_t)(config_event_from_name(r->event ? r->event : "") + 1); /* CONFIG_EVENT_* + 1 */
	if (r->action) {
		int (*fn)(const struct evs_host *, struct evs_ctx *, const char *, char **) =
			(int (*)(const struct evs_host *, struct evs_ctx *, const char *, char **))dlsym(lib, "run_action");
		rc = fn(&host, (struct evs_ctx *)c, r->input ? r->input : "null", &output);
	} else {
		int (*fn)(const struct evs_host *, struct evs_ctx *, const struct evs_event *) =
			(int (*)(const struct evs_host *, struct evs_ctx *, const struct evs_event *))dlsym(lib, "on_event");
		rc = fn(&host, (struct evs_ctx *)c, &ev);
	}
	t0 = util_mono_us() - t0;
	{
		struct store_log_line_input *lines = NULL;
		size_t n = 0;
		int64_t dropped = 0;

		hostapi_exec_take_logs(hx, &lines, &n, &dropped);
		for (size_t i = 0; i < n; i++)
			printf("log %-5s %s\n", level_names[lines[i].level & 3], lines[i].message);
		if (dropped)
			printf("log: %lld lines dropped (log_lines_max, log_bytes_max)\n", (long long)dropped);
		hostapi_logs_free(lines, n);
	}
	after = metadata_now(r);
	if (after && (!before || strcmp(before, after) != 0))
		printf("metadata: %s -> %s\n", before ? before : "null", after);
	if (r->mode != RUN_LIVE)
		printf("%s: %zu responses %s in %s%s\n", r->mode == RUN_MOCK ? "mock" : "record",
		       r->mode == RUN_MOCK ? c->replayed : c->recorded, r->mode == RUN_MOCK ? "replayed" : "recorded",
		       r->dir, c->missing ? " (some requests had no recording)" : "");
	if (r->action && rc == 0)
		printf("output: %s\n", output ? output : "null");
	if (rc == 0)
		printf("result: succeeded (%lld ms)\n", (long long)(t0 / 1000));
	else
		printf("result: failed (returned %d, %lld ms): %s\n", rc, (long long)(t0 / 1000),
		       hostapi_error(hx) ? hostapi_error(hx) : "no error message (set_error was not called)");
	free(output);
	free(before);
	free(after);
	return rc == 0 ? 0 : EXIT_FAILURE;
}

/* Sets up the execution's host, loads the plugin, runs it. */
static int execute(struct run *r)
{
	const struct config_integration *integ = config_integration_find(r->cfg, r->integration);
	struct hostapi_exec_info info = {
		.store = r->store, .config = r->cfg, .integration = integ,
		.provider = config_provider_find(r->cfg->catalogue, integ->provider),
		.execution_id = r->execution_id, .event_id = r->event_id,
		.event_type = r->action ? 0 : config_event_from_name(r->event) + 1, .script = r->info.name,
		.connection_id = r->connection_id, .provider_config_key = r->integration,
		.deadline_us = util_mono_us() + (int64_t)RUN_DEADLINE_S * 1000000, .trigger = run_trigger,
		.trigger_user = r,
	};
	struct run_ctx c = {.mode = r->mode, .dir = r->dir};
	char abs[PATH_MAX];
	void *lib;
	int status;

	r->top = &c;
	if (hostapi_exec_new(&info, &c.inproc.exec) != 0)
		return fail("%s", status_str(STATUS_ENOMEM));
	if (!realpath(r->so, abs) || !(lib = dlopen(abs, RTLD_NOW | RTLD_LOCAL))) {
		hostapi_exec_free(c.inproc.exec);
		return fail("%s: %s", r->so, dlerror() ? dlerror() : strerror(errno));
	}
	status = call(r, lib, c.inproc.exec, &c);
	hostapi_inproc_ctx_clear(&c.inproc);
	run_ctx_clear(&c);
	hostapi_exec_free(c.inproc.exec);
	/* the plugin stays mapped until exit: a debugger keeps its symbols */
	return status;
}

/* A plugin that crashes here takes this process with it (no sandbox, on
 * purpose: run it under gdb to stop at the fault). Without a debugger,
 * say so on stderr with the frames, then die of the signal. */
static char crash_tmp[256]; /* the temporary directory, removed on a crash too */

static void remove_tmp(void)
{
	static const char *const files[] = {"run.db", "run.db-wal", "run.db-shm", "run.db-journal", "evscript.yaml"};
	char path[300];

	for (size_t i = 0; crash_tmp[0] && i < sizeof(files) / sizeof(files[0]); i++) {
		size_t a = strlen(crash_tmp), b = strlen(files[i]);

		memcpy(path, crash_tmp, a);
		path[a] = '/';
		memcpy(path + a + 1, files[i], b + 1);
		unlink(path);
	}
	if (crash_tmp[0])
		rmdir(crash_tmp);
}

static void on_plugin_crash(int sig)
{
	static const char head[] = "evscript run: the plugin crashed: ";
	void *frames[64];
	int n = backtrace(frames, 64);
	const char *name = strsignal(sig);

	remove_tmp();

	(void)!write(2, head, sizeof(head) - 1);
	(void)!write(2, name, strlen(name));
	(void)!write(2, "\n", 1);
	backtrace_symbols_fd(frames, n, 2);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void catch_crashes(const char *tmp)
{
	static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
	void *warm[1];

	snprintf(crash_tmp, sizeof(crash_tmp), "%s", tmp);
	(void)backtrace(warm, 1); /* loads the unwinder before it is needed */
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], on_plugin_crash);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

int cmd_run(int argc, char **argv)
{
	struct run r;
	int status;

	memset(&r, 0, sizeof(r));
	log_setup(2, false, LOG_LEVEL_WARN); /* the store's notes are not the plugin's */
	status = parse(argc, argv, &r);
	if (status)
		return status < 0 ? 0 : status;
	if (cli_plugin_info(r.so, &r.info, r.err, sizeof(r.err)) != 0)
		return fail("%s", r.err);
	if (r.info.action != r.action)
		return fail("%s is %s: run it with %s", r.so, r.info.action ? "an action" : "an event script",
			    r.info.action ? "--action [--input JSON]" : "--event EVENT");
	if (r.event && config_event_from_name(r.event) < 0)
		return fail("unknown event '%s' (post-connection-creation, pre-connection-deletion or "
			    "validate-connection)", r.event);
	if (r.mode == RUN_RECORD && mkdir(r.dir, 0755) != 0 && errno != EEXIST)
		return fail("%s: %s", r.dir, strerror(errno));
	snprintf(r.tmp, sizeof(r.tmp), "%s/evscript-run.XXXXXX",
		 getenv("TMPDIR") && *getenv("TMPDIR") && strlen(getenv("TMPDIR")) < 200 ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(r.tmp))
		return fail("a temporary directory: %s", strerror(errno));
	status = read_connection(&r);
	if (status == 0)
		status = load_config(&r);
	if (status == 0)
		catch_crashes(r.tmp);
	if (status == 0)
		status = open_store(&r);
	if (status == 0)
		status = execute(&r);
	store_close(r.store);
	config_host_free(r.cfg);
	json_object_put(r.conn);
	nftw(r.tmp, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
	return status;
}
