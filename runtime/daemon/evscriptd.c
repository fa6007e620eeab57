/*
 * evscriptd.c - the daemon: config, store, first generation, dispatcher,
 * HTTP API; SIGHUP reloads, SIGTERM/SIGINT shut down gracefully.
 *
 *   evscriptd --config FILE            run
 *   evscriptd --config FILE --check-config
 *                                      validate the config, the keys and every
 *                                      plugin's signature (no plugin code runs)
 * Each generation's zygote is the separate small binary evscript-zygote,
 * found next to evscriptd or in ../libexec/evscript/ (runtime/executor).
 *
 * Threads. Signals are blocked in every thread (the mask is set before any
 * thread starts) and the main thread takes them with sigwaitinfo(). Reloads
 * run on their own thread (SIGHUP) or on the HTTP request's thread
 * (POST /reload), one at a time: a reload requested while one runs is
 * remembered, and exactly one more runs after it (a burst coalesces). No
 * lock that an API handler needs is held while a generation is built.
 *
 * Retirement. A generation replaced by a reload is handed to the reaper
 * thread with its drain deadline (drain_deadline_s of the config now in
 * service). The reaper drops its reference as soon as it is the last one
 * (every execution on it has ended: its zygote then exits), and at the
 * deadline it kills what still runs there (recorded timed_out, "killed:
 * generation drained"). Nothing else ever waits for an old generation:
 * workers, API threads and the reloader only drop references that are not
 * the last.
 *
 * Shutdown. A reload that runs ends first and none starts after it. The
 * API stops accepting connections; running executions may
 * finish until drain_deadline_s; those still running then are marked
 * interrupted in the store and killed; the workers are joined, every zygote
 * is stopped and reaped, and the store is closed.
 */
#include <errno.h>
#include <getopt.h>
#include <stdatomic.h>
#include <time.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "api.h"
#include "config.h"
#include "dispatch.h"
#include "executor.h"
#include "fdlimit.h"
#include "generation.h"
#include "http.h"
#include "loader.h"
#include "log.h"
#include "metrics.h"
#include "safe_path.h"
#include "sign.h"
#include "store.h"
#include "util.h"

#ifndef EVSCRIPT_VERSION
#define EVSCRIPT_VERSION "0.0.0"
#endif

extern char **environ;

/* A generation replaced by a reload, until its last execution ends. */
struct retired {
	struct generation *g;   /* the reaper's reference */
	int64_t deadline_us;    /* util_mono_us: kill what still runs then */
	bool killed;
	struct retired *next;
};

/* Retired generations at once (each has a zygote); past it the oldest is
 * drained at once. */
#define RETIRED_MAX 32
#define REAPER_POLL_US 100000

struct daemon {
	const char *config_path;
	struct store *store;
	struct dispatch *dispatch;
	struct http_server *server;
	struct api_context api;
	bool api_ready;        /* api is initialised */

	pthread_mutex_t reload_lock;
	pthread_cond_t reload_cv;
	bool reload_running;   /* a reload is building a generation */
	bool reload_pending;   /* SIGHUP arrived: one more reload to run */
	bool stopping;
	pthread_t reloader;
	bool reloader_started;

	pthread_mutex_t reap_lock;
	pthread_cond_t reap_cv;  /* CLOCK_MONOTONIC */
	struct retired *retired; /* newest first */
	size_t n_retired;
	bool reaper_stop;
	pthread_t reaper;
	bool reaper_started;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: evscriptd --config FILE [--check-config]\n"
		   "       evscriptd --version | --help\n"
		   "\n"
		   "  -c, --config FILE    the host configuration (see docs/config.md)\n"
		   "      --check-config   predict a reload: the configuration, the trusted keys,\n"
		   "                       every plugin verified and opened as the reload would,\n"
		   "                       every listed script deployed; exit 0 only when all is\n"
		   "                       good\n"
		   "  -V, --version        print the version\n"
		   "  -h, --help           this text\n"
		   "\n"
		   "Signals: SIGHUP reloads the configuration and plugins; SIGTERM and SIGINT\n"
		   "stop gracefully. EVSCRIPT_SECRET_KEY overrides secret_key; EVSCRIPT_ENCRYPTION_KEY\n"
		   "(32 bytes, base64) encrypts stored credentials.\n");
}

/* ---------------------------------------------------------------- check */

/* --check-config predicts the reload: the same generation build (config,
 * keys, each plugin verified against the store's ledger and opened in a
 * throwaway zygote), with nothing recorded, then every script name the
 * config lists held against what loaded. */

static void print_note(void *user, const char *note)
{
	(void)user;
	printf("%s\n", note);
}

/* The store whose ledger the reload reads, or NULL when its file does not
 * exist yet (nothing accepted yet: the reload checks no version either).
 * Opened without the encryption key: only the ledger is read. A shared
 * store (a URL: PostgreSQL) is not opened: opening one makes this process
 * a host of it, with a heartbeat and a sweep of its own; the check then
 * says that it did not read the ledger. */
static int check_store(const struct config_host *cfg, struct store **out)
{
	char err[API_ERROR_MAX], shown[512], *url = NULL;
	int ret;

	*out = NULL;
	if (!cfg->store_path) {
		store_url_redact(cfg->store, shown, sizeof(shown));
		printf("store %s: not opened by --check-config: versions are not checked against its "
		       "downgrade ledger\n", shown);
		return 0;
	}
	if (access(cfg->store_path, F_OK) != 0)
		return 0;
	if (asprintf(&url, "sqlite:%s", cfg->store_path) < 0)
		return STATUS_ENOMEM;
	ret = store_open(url, NULL, out, err, sizeof(err));
	free(url);
	if (ret < 0)
		fprintf(stderr, "store %s: %s\n", cfg->store, err);
	return ret;
}

static void print_generation(const struct generation *g)
{
	for (size_t i = 0; i < generation_plugin_count(g); i++) {
		const struct loader_plugin *p = generation_plugin_at(g, i, NULL);

		printf("plugin %s %s: signature ok (key %s), opened (%s)\n", p->name, p->version, p->keyid,
		       p->kind == LOADER_ACTION ? "run_action" : "on_event");
	}
	for (size_t i = 0; i < generation_refusal_count(g); i++) {
		const struct generation_refusal *r = generation_refusal_at(g, i);

		printf("plugin %s: refused (%s): %s\n", r->name, api_loader_reason_code(r->code, r->name),
		       r->reason);
	}
}

static int check_config(const char *path)
{
	struct config_host *cfg = NULL;
	struct store *store = NULL;
	struct generation *g = NULL;
	char err[CONFIG_ERR_MAX];
	size_t missing;
	int ret, status = 1;

	ret = config_load(path, environ, &cfg, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "%s\n", err);
		goto out;
	}
	for (size_t i = 0; i < cfg->nango.ignored.n; i++)
		printf("%s\n", cfg->nango.ignored.items[i]);
	if (!cfg->secret_key || !cfg->secret_key[0]) {
		fprintf(stderr, "%s: secret_key is not set (set it in the file or in EVSCRIPT_SECRET_KEY)\n",
			cfg->file);
		goto out;
	}
	if (safe_path_check(cfg->plugin_dir, err, sizeof(err)) == STATUS_EDENIED) {
		fprintf(stderr, "%s: plugin_dir %s: %s\n", cfg->file, cfg->plugin_dir, err);
		goto out;
	}
	if (check_store(cfg, &store) < 0)
		goto out;
	ret = generation_check(path, environ, store, &g, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "%s\n", err);
		goto out;
	}
	print_generation(g);
	missing = generation_missing_scripts(g, print_note, NULL);
	printf("%s: %s: %zu integrations, %zu plugins loaded, %zu refused, %zu listed scripts missing\n",
	       cfg->file, generation_refusal_count(g) || missing ? "refused" : "ok",
	       cfg->nango.n_integrations, generation_plugin_count(g), generation_refusal_count(g), missing);
	status = generation_refusal_count(g) || missing ? 1 : 0;
out:
	generation_unref(g);
	store_close(store);
	config_host_free(cfg);
	return status;
}

/* -------------------------------------------------------------- retiring */

/* Hands g (the caller's reference) to the reaper, to be drained within
 * drain_s seconds. */
static void retire(struct daemon *d, struct generation *g, uint32_t drain_s)
{
	struct retired *r = calloc(1, sizeof(*r));

	if (!r) {
		/* no memory to track it: the caller's reference goes; the last
		 * execution on it frees it */
		generation_unref(g);
		return;
	}
	r->g = g;
	r->deadline_us = util_mono_us() + (int64_t)drain_s * 1000000;
	pthread_mutex_lock(&d->reap_lock);
	if (d->n_retired >= RETIRED_MAX) {
		struct retired *oldest = d->retired;

		while (oldest->next)
			oldest = oldest->next;
		oldest->deadline_us = 0;
	}
	r->next = d->retired;
	d->retired = r;
	d->n_retired++;
	pthread_cond_broadcast(&d->reap_cv);
	pthread_mutex_unlock(&d->reap_lock);
}

/* One pass over the retired generations: kills the runs of those past their
 * deadline, unlinks those nobody else uses (into *done). Called with
 * reap_lock; returns when the next deadline is. */
static int64_t reap_pass(struct daemon *d, struct retired **done)
{
	int64_t now = util_mono_us(), next = now + REAPER_POLL_US;

	for (struct retired **pp = &d->retired; *pp;) {
		struct retired *r = *pp;

		if (generation_unshared(r->g)) {
			/* only ours is left: nothing runs on it, nothing can start */
			*pp = r->next;
			d->n_retired--;
			r->next = *done;
			*done = r;
			continue;
		}
		if (!r->killed && now >= r->deadline_us) {
			log_warn("reload", "generation %lld: drain deadline passed with %zu executions "
				 "running: killing them", (long long)generation_number(r->g),
				 executor_running(generation_executor(r->g)));
			executor_kill_all(generation_executor(r->g));
			r->killed = true;
		}
		if (!r->killed && r->deadline_us < next)
			next = r->deadline_us;
		pp = &r->next;
	}
	return next;
}

static void free_retired(struct retired *list)
{
	while (list) {
		struct retired *next = list->next;
		int64_t number = generation_number(list->g);

		generation_unref(list->g); /* the last: its zygote exits */
		log_info("reload", "generation %lld retired", (long long)number);
		free(list);
		list = next;
	}
}

static void *reaper_main(void *arg)
{
	struct daemon *d = arg;

	pthread_mutex_lock(&d->reap_lock);
	while (!d->reaper_stop) {
		struct retired *done = NULL;
		int64_t next = reap_pass(d, &done), us;

		if (done) {
			pthread_mutex_unlock(&d->reap_lock);
			free_retired(done);
			pthread_mutex_lock(&d->reap_lock);
			continue;
		}
		us = next - util_mono_us();
		if (us < 1000)
			us = 1000;
		util_cond_wait_us(&d->reap_cv, &d->reap_lock, us);
	}
	pthread_mutex_unlock(&d->reap_lock);
	return NULL;
}

/* --------------------------------------------------------------- reload */

/* Builds the next generation and puts it in service; on failure the
 * current one stays. Called with reload_running set (one at a time). */
static int do_reload(struct daemon *d, struct api_reload_report *rep)
{
	struct generation *cur = dispatch_generation(d->dispatch), *g = NULL;
	char err[API_ERROR_MAX];
	int64_t number, t0 = util_mono_us();
	size_t n_plugins, n_refused;
	uint32_t drain_s;
	int ret;

	ret = generation_build(d->config_path, environ, cur, d->store, generation_number(cur) + 1, &g, err,
			       sizeof(err));
	if (ret == 0 && (!generation_config(g)->secret_key || !generation_config(g)->secret_key[0])) {
		util_set_err(err, sizeof(err), "%s: secret_key is not set (set it in the file or in "
			     "EVSCRIPT_SECRET_KEY)", generation_config(g)->file);
		ret = STATUS_EINVAL;
	}
	if (ret == 0 && http_server_set_secret(d->server, generation_config(g)->secret_key) != 0) {
		util_set_err(err, sizeof(err), "the new secret key was refused");
		ret = STATUS_EINVAL;
	}
	if (ret < 0) {
		log_error("reload", "reload failed, generation %lld stays in service: %s",
			  (long long)generation_number(cur), err);
		api_set_last_reload_error(&d->api, err);
		metrics_reload(false, 0);
		if (rep) {
			rep->generation = generation_number(cur);
			util_set_err(rep->error, sizeof(rep->error), "%s", err);
		}
		generation_unref(g);
		generation_unref(cur);
		return API_RELOAD_FAILED;
	}
	number = generation_number(g);
	n_plugins = generation_plugin_count(g);
	n_refused = generation_refusal_count(g);
	drain_s = generation_config(g)->drain_deadline_s;
	if (rep) /* before the swap: a SIGHUP reload may retire g right after it */
		rep->built = generation_ref(g);
	dispatch_swap_generation(d->dispatch, g);
	api_set_last_reload_error(&d->api, NULL);
	metrics_reload(true, n_refused);
	retire(d, cur, drain_s); /* never waits here for its executions */
	log_info("reload", "generation %lld in service: %zu plugins, %zu refused (%lld ms)",
		 (long long)number, n_plugins, n_refused, (long long)((util_mono_us() - t0) / 1000));
	if (rep) {
		rep->generation = number;
		rep->error[0] = '\0';
	}
	return API_RELOAD_OK;
}

/* Runs do_reload() with reload_lock NOT held, reload_running set (the
 * caller set it under reload_lock, which it holds on entry and on return). */
static int reload_locked(struct daemon *d, struct api_reload_report *rep)
{
	int ret;

	pthread_mutex_unlock(&d->reload_lock);
	ret = do_reload(d, rep);
	pthread_mutex_lock(&d->reload_lock);
	d->reload_running = false;
	pthread_cond_broadcast(&d->reload_cv); /* the reloader and shutdown wait for it */
	return ret;
}

/* POST /reload: now, on the request's thread, unless one runs. */
static int reload_now(void *user, struct api_reload_report *rep)
{
	struct daemon *d = user;
	int ret = API_RELOAD_BUSY;

	pthread_mutex_lock(&d->reload_lock);
	if (!d->reload_running && !d->stopping) {
		d->reload_running = true;
		ret = reload_locked(d, rep);
	}
	pthread_mutex_unlock(&d->reload_lock);
	return ret;
}

/* SIGHUP: remembered, run by the reloader thread. */
static void reload_request(struct daemon *d)
{
	util_flag_raise(&d->reload_lock, &d->reload_cv, &d->reload_pending);
}

static void *reloader_main(void *arg)
{
	struct daemon *d = arg;

	pthread_mutex_lock(&d->reload_lock);
	for (;;) {
		while (!d->stopping && (!d->reload_pending || d->reload_running))
			pthread_cond_wait(&d->reload_cv, &d->reload_lock);
		if (d->stopping)
			break;
		d->reload_pending = false;
		d->reload_running = true;
		log_info("reload", "reloading (SIGHUP)");
		reload_locked(d, NULL);
	}
	pthread_mutex_unlock(&d->reload_lock);
	return NULL;
}

/* ------------------------------------------------------------------ run */

/* Shutdown, with the API no longer accepting: lets running executions
 * finish until drain_deadline_s, then marks those still running interrupted
 * and kills them. Returns how many still run after that (in-process ones,
 * which cannot be killed); 0 means the workers are joined. */
static size_t shutdown_drain(struct daemon *d)
{
	struct generation *g;
	uint32_t drain;
	size_t left;
	int64_t count = 0;
	int ret;

	if (!d->dispatch)
		goto stop_reaper;
	g = dispatch_generation(d->dispatch);
	drain = generation_config(g)->drain_deadline_s;
	left = dispatch_stop(d->dispatch, util_mono_us() + (int64_t)drain * 1000000);
	if (left > 0) {
		ret = store_interrupt_running(d->store, "interrupted: the daemon stopped while it ran",
					      &count);
		if (ret < 0)
			log_error("daemon", "marking running executions interrupted failed: %s",
				  status_str(ret));
		log_warn("daemon", "drain deadline (%u s) passed: %lld executions marked interrupted, "
			 "killing them", drain, (long long)count);
		executor_kill_all(generation_executor(g));
		pthread_mutex_lock(&d->reap_lock);
		for (struct retired *r = d->retired; r; r = r->next)
			executor_kill_all(generation_executor(r->g));
		pthread_mutex_unlock(&d->reap_lock);
		/* killed executions end at once */
		left = dispatch_stop(d->dispatch, util_mono_us() + 10 * 1000000LL);
	}
	generation_unref(g);
	if (left > 0)
		return left;
stop_reaper:
	if (d->reaper_started) {
		util_flag_raise(&d->reap_lock, &d->reap_cv, &d->reaper_stop);
		pthread_join(d->reaper, NULL);
		d->reaper_started = false;
	}
	return 0;
}

/* The daemon's locks and a log on stderr, before anything starts. */
static void daemon_init(struct daemon *d, const char *config_path)
{
	memset(d, 0, sizeof(*d));
	d->config_path = config_path;
	pthread_mutex_init(&d->reload_lock, NULL);
	pthread_cond_init(&d->reload_cv, NULL);
	pthread_mutex_init(&d->reap_lock, NULL);
	util_cond_init_monotonic(&d->reap_cv);
	log_setup(2, false, LOG_LEVEL_INFO);
}

/* Blocks the signals the main thread takes (into *sigs) and ignores
 * SIGPIPE. Before any thread starts (store, executor, dispatcher, server):
 * every thread inherits this mask. */
static void signals_block(sigset_t *sigs)
{
	sigemptyset(sigs);
	sigaddset(sigs, SIGHUP);
	sigaddset(sigs, SIGTERM);
	sigaddset(sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* Step 1: the host configuration (*cfg, the caller frees it), its log
 * format and core-dump choice, and a secret key. */
static int start_config(const char *config_path, struct config_host **cfg)
{
	char err[API_ERROR_MAX];

	/* Before any secret is read: no core dump, no ptrace by processes of
	 * the same user, /proc/<pid>/mem and environ readable by root only. */
	prctl(PR_SET_DUMPABLE, 0);
	if (sodium_init() < 0) {
		fprintf(stderr, "evscriptd: libsodium failed to initialize\n");
		return -1;
	}
	if (config_load(config_path, environ, cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "evscriptd: %s\n", err);
		return -1;
	}
	log_setup(2, (*cfg)->log_format == CONFIG_LOG_JSON, LOG_LEVEL_INFO);
	if ((*cfg)->core_dumps) {
		prctl(PR_SET_DUMPABLE, 1);
		log_warn("daemon", "core_dumps: true: a core dump of the daemon holds the secret key, "
			 "the store's key and credentials");
	}
	if (!(*cfg)->secret_key || !(*cfg)->secret_key[0]) {
		log_error("daemon", "%s: secret_key is not set: set it in the file or in EVSCRIPT_SECRET_KEY "
			  "(every API call but /healthz needs it); refusing to start", (*cfg)->file);
		return -1;
	}
	return 0;
}

/* Step 2: the store, with EVSCRIPT_ENCRYPTION_KEY if set, and what a
 * previous run left unfinished recovered. */
static int start_store(struct daemon *d, const struct config_host *cfg)
{
	const char *b64 = getenv("EVSCRIPT_ENCRYPTION_KEY");
	uint8_t key[STORE_KEY_BYTES];
	struct store_recovery rec;
	char err[API_ERROR_MAX], shown[512];
	char *url = NULL;
	bool have_key = false;
	int ret;

	if (b64 && *b64) {
		if (store_key_from_base64(b64, key) != 0) {
			log_error("daemon", "EVSCRIPT_ENCRYPTION_KEY must be 32 bytes in standard base64");
			return -1;
		}
		have_key = true;
	} else {
		log_warn("daemon", "EVSCRIPT_ENCRYPTION_KEY is not set: credentials are stored unencrypted");
	}
	/* a sqlite: path is resolved against the config's directory; a URL
	 * goes to the store as it is */
	if (cfg->store_path ? asprintf(&url, "sqlite:%s", cfg->store_path) < 0
			    : !(url = strdup(cfg->store))) {
		if (have_key)
			sodium_memzero(key, sizeof(key));
		return -1;
	}
	store_url_redact(cfg->store, shown, sizeof(shown));
	ret = store_open_host(url, have_key ? key : NULL,
			      &(struct store_host){.host_id = cfg->host_id,
						   .timeout_s = cfg->host_timeout_s},
			      &d->store, err, sizeof(err));
	if (have_key)
		sodium_memzero(key, sizeof(key));
	util_wipe(url, strlen(url)); /* it may hold the database's password */
	free(url);
	if (ret < 0) {
		log_error("daemon", "store %s: %s", shown, err);
		return -1;
	}
	ret = store_recover(d->store, &rec);
	if (ret < 0) {
		log_error("daemon", "store recovery failed: %s", status_str(ret));
		return -1;
	}
	log_info("daemon", "store %s (host %s): recovered %lld interrupted executions, %lld "
		 "requeued events, %lld interrupted events", shown, store_host_id(d->store),
		 (long long)rec.executions_interrupted,
		 (long long)rec.events_requeued, (long long)rec.events_interrupted);
	return 0;
}

/* store_wakeup_fn: another host recorded events; the workers look. */
static void wake_dispatch(void *user)
{
	dispatch_notify(user);
}

/* Step 3: generation 1 (*gen, the caller's reference) and the dispatcher
 * with its workers on it. */
static int start_generation(struct daemon *d, struct generation **gen)
{
	char err[API_ERROR_MAX];
	int ret;

	ret = generation_build(d->config_path, environ, NULL, d->store, 1, gen, err, sizeof(err));
	if (ret < 0) {
		log_error("daemon", "%s", err);
		return -1;
	}
	for (size_t i = 0; i < generation_config((*gen))->nango.ignored.n; i++)
		log_info("config", "%s", generation_config((*gen))->nango.ignored.items[i]);
	ret = dispatch_new(d->store, *gen, generation_config((*gen))->max_concurrency, &d->dispatch);
	if (ret < 0) {
		log_error("daemon", "the dispatcher could not be created: %s", status_str(ret));
		return -1;
	}
	ret = dispatch_start(d->dispatch);
	if (ret < 0) {
		log_error("daemon", "the dispatcher could not start: %s", status_str(ret));
		return -1;
	}
	store_set_wakeup(d->store, wake_dispatch, d->dispatch);
	return 0;
}

/* Step 4: the API on gen's listen address. */
static int start_http(struct daemon *d, const struct generation *gen)
{
	struct http_config hc;
	char err[API_ERROR_MAX];
	int ret;

	if (api_context_init(&d->api) != 0)
		return -1;
	d->api_ready = true;
	d->api.store = d->store;
	d->api.dispatch = d->dispatch;
	d->api.reload = reload_now;
	d->api.reload_user = d;
	d->api.started_at_ms = util_now_ms();
	memset(&hc, 0, sizeof(hc));
	hc.listen = generation_config(gen)->listen;
	hc.secret_key = generation_config(gen)->secret_key;
	hc.routes = api_routes(&hc.n_routes);
	hc.user = &d->api;
	hc.max_connections = generation_config(gen)->http_max_connections;
	hc.max_per_address = generation_config(gen)->http_max_connections_per_address;
	hc.header_timeout_s = generation_config(gen)->http_header_timeout_s;
	hc.body_timeout_s = generation_config(gen)->http_body_timeout_s;
	ret = http_server_new(&hc, &d->server, err, sizeof(err));
	if (ret == 0)
		ret = http_server_start(d->server, err, sizeof(err));
	if (ret < 0) {
		log_error("daemon", "HTTP server on %s: %s", generation_config(gen)->listen, err);
		return -1;
	}
	d->api.server = d->server;
	ret = api_jobs_begin(&d->api);
	if (ret < 0) {
		log_error("daemon", "the webhook forwarder could not start: %s", status_str(ret));
		return -1;
	}
	return 0;
}

/* Step 5: the reaper and the reloader. */
static int start_threads(struct daemon *d)
{
	if (pthread_create(&d->reaper, NULL, reaper_main, d) != 0) {
		log_error("daemon", "the reaper thread could not start");
		return -1;
	}
	d->reaper_started = true;
	if (pthread_create(&d->reloader, NULL, reloader_main, d) != 0) {
		log_error("daemon", "the reload thread could not start");
		return -1;
	}
	d->reloader_started = true;
	return 0;
}

/* The start-up line on stdout (tests and supervisors wait for it). */
static void announce(const struct daemon *d, const struct generation *gen)
{
	const char *host = generation_config(gen)->listen_host;
	bool v6 = strchr(host, ':') != NULL;

	printf("evscriptd listening on http://%s%s%s:%u (generation %lld, %zu plugins)\n",
	       v6 ? "[" : "", host, v6 ? "]" : "", (unsigned)http_server_port(d->server),
	       (long long)generation_number(gen), generation_plugin_count(gen));
	fflush(stdout);
}

/* Takes the signals until SIGTERM or SIGINT (or sigwaitinfo fails);
 * SIGHUP asks for a reload. */
static void serve(struct daemon *d, const sigset_t *sigs)
{
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(sigs, &si);

		if (sig < 0) {
			if (errno == EINTR)
				continue;
			log_error("daemon", "sigwaitinfo: %s", strerror(errno));
			return;
		}
		if (sig == SIGHUP) {
			reload_request(d);
			continue;
		}
		log_info("daemon", "%s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
		return;
	}
}

/* Shutdown: no reload starts from now on; one that runs (the reloader's,
 * or POST /reload's on a request thread) ends before the drain, so that no
 * generation is swapped in or retired behind it. Then the API stops
 * accepting and the executions drain (shutdown_drain, whose result this
 * returns). */
static size_t daemon_stop(struct daemon *d)
{
	pthread_mutex_lock(&d->reload_lock);
	d->stopping = true;
	pthread_cond_broadcast(&d->reload_cv);
	while (d->reload_running)
		pthread_cond_wait(&d->reload_cv, &d->reload_lock);
	pthread_mutex_unlock(&d->reload_lock);
	if (d->reloader_started)
		pthread_join(d->reloader, NULL);
	if (d->server)
		http_server_quiesce(d->server);
	return shutdown_drain(d);
}

/* Frees what the start-up steps made, once nothing runs: gen is the first
 * generation's reference if start-up did not hand it over, cfg step 1's. */
static void daemon_free(struct daemon *d, struct generation *gen, struct config_host *cfg)
{
	http_server_free(d->server);
	if (d->api_ready)
		api_jobs_stop(&d->api);
	if (d->store)
		store_set_wakeup(d->store, NULL, NULL); /* before its dispatcher goes */
	dispatch_free(d->dispatch);
	free_retired(d->retired);
	generation_unref(gen);
	if (d->api_ready)
		api_context_destroy(&d->api);
	store_close(d->store);
	config_host_free(cfg);
	pthread_cond_destroy(&d->reap_cv);
	pthread_mutex_destroy(&d->reap_lock);
	pthread_cond_destroy(&d->reload_cv);
	pthread_mutex_destroy(&d->reload_lock);
}

/* The daemon: starts in five steps, serves until a signal stops it, shuts
 * down. 0 after a clean stop; 1 when start-up failed. */
/* Step 1b: descriptors for the plugins found and the API (fdlimit.h). */
static int start_fdlimit(const struct config_host *cfg)
{
	struct fdlimit_need need = {
		.plugins = fdlimit_count_plugins(cfg->plugin_dir),
		.concurrency = cfg->max_concurrency,
		.connections = cfg->http_max_connections,
	};
	char err[API_ERROR_MAX];

	if (fdlimit_setup(&need, err, sizeof(err)) < 0) {
		log_error("daemon", "%s", err);
		return -1;
	}
	return 0;
}

static int run(const char *config_path)
{
	struct daemon d;
	struct config_host *cfg = NULL;
	struct generation *gen = NULL;
	sigset_t sigs;
	int status = 1;

	daemon_init(&d, config_path);
	signals_block(&sigs);
	if (start_config(config_path, &cfg) < 0 || start_fdlimit(cfg) < 0 || start_store(&d, cfg) < 0 ||
	    start_generation(&d, &gen) < 0 || start_http(&d, gen) < 0 || start_threads(&d) < 0)
		goto out;
	announce(&d, gen);
	generation_unref(gen); /* the dispatcher holds its own reference */
	gen = NULL;
	serve(&d, &sigs);
	status = 0;
out:
	if (daemon_stop(&d) > 0) {
		/* in-process executions cannot be killed: their threads still use
		 * the store and the generations; leave them to the process exit */
		log_error("daemon", "stopped with in-process executions still running "
			  "(marked interrupted); the store is left to the process exit");
	} else {
		daemon_free(&d, gen, cfg);
		if (status == 0)
			log_info("daemon", "stopped");
	}
	return status;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check-config", no_argument, NULL, 'k'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *config = NULL;
	bool check = false;
	int c;

	while ((c = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config = optarg; break;
		case 'k': check = true; break;
		case 'V': printf("evscriptd %s (plugin ABI %d)\n", EVSCRIPT_VERSION, EVS_ABI_MAJOR); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || !config) {
		usage(stderr);
		return 2;
	}
	if (check) {
		if (sodium_init() < 0)
			return 1;
		log_setup(2, false, LOG_LEVEL_ERROR); /* check_config says it all on stdout */
		return check_config(config);
	}
	return run(config);
}
