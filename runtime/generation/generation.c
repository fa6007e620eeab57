/*
 * generation.c - building, sharing and retiring generations.
 *
 * Building is all-or-nothing for the config and plugin-by-plugin for the
 * plugins: a config error fails the build, while a plugin that is refused
 * is listed with its reason and, when the running generation has a version
 * of it, that version stays in service (the same verified bytes, copied
 * from the running generation's read-only mapping: loader_clone()).
 */
#include "generation_priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fdlimit.h"
#include "log.h"
#include "safe_path.h"
#include "util.h"

struct build {
	struct generation *g;
	struct generation *prev;
	struct loader_options lopts;
	size_t cap_plugins, cap_refused;
	int failed; /* an allocation failed during the scan */
};

static struct loader_plugin *find_plugin(struct loader_plugin **plugins, size_t n,
					 const char *name, size_t *index)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(plugins[i]->name, name) == 0) {
			if (index)
				*index = i;
			return plugins[i];
		}
	}
	return NULL;
}

struct loader_plugin *generation_plugin(const struct generation *g, const char *name,
					size_t *index)
{
	if (!g || !name)
		return NULL;
	return find_plugin(g->plugins, g->n_plugins, name, index);
}

static int push_plugin(struct build *b, struct loader_plugin *p, int64_t first_gen)
{
	struct generation *g = b->g;

	if (g->n_plugins == b->cap_plugins) {
		size_t cap = b->cap_plugins ? 2 * b->cap_plugins : 16;
		void *np = realloc(g->plugins, cap * sizeof(*g->plugins));
		void *ng;

		if (!np)
			return STATUS_ENOMEM;
		g->plugins = np;
		ng = realloc(g->plugin_generation, cap * sizeof(*g->plugin_generation));
		if (!ng)
			return STATUS_ENOMEM;
		g->plugin_generation = ng;
		b->cap_plugins = cap;
	}
	g->plugins[g->n_plugins] = p;
	g->plugin_generation[g->n_plugins] = first_gen;
	g->n_plugins++;
	return 0;
}

static struct generation_refusal *push_refusal(struct build *b, const char *name, int code,
					       const char *reason)
{
	struct generation *g = b->g;
	struct generation_refusal *r;

	if (g->n_refused == b->cap_refused) {
		size_t cap = b->cap_refused ? 2 * b->cap_refused : 8;
		void *nr = realloc(g->refused, cap * sizeof(*g->refused));

		if (!nr)
			return NULL;
		g->refused = nr;
		b->cap_refused = cap;
	}
	r = &g->refused[g->n_refused++];
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	snprintf(r->file, sizeof(r->file), "%s.so", name);
	r->code = code;
	util_set_err(r->reason, sizeof(r->reason), "%s", reason);
	return r;
}

/* A plugin the new generation cannot take: keep the running version if
 * there is one. */
static int refuse(struct build *b, const char *name, int code, const char *reason)
{
	struct generation_refusal *r = push_refusal(b, name, code, reason);
	struct loader_plugin *old, *copy;
	size_t idx;

	if (!r)
		return STATUS_ENOMEM;
	old = b->prev ? generation_plugin(b->prev, name, &idx) : NULL;
	if (old && loader_clone(old, &copy) == LOADER_OK) {
		if (push_plugin(b, copy, b->prev->plugin_generation[idx]) < 0) {
			loader_unload(copy);
			return STATUS_ENOMEM;
		}
		r->kept_previous = true;
		log_warn("generation", "generation %lld: refused plugin %s: %s; keeping version %s "
			 "from generation %lld", (long long)b->g->number, name, reason, old->version,
			 (long long)b->prev->plugin_generation[idx]);
	} else {
		log_warn("generation", "generation %lld: refused plugin %s: %s",
			 (long long)b->g->number, name, reason);
	}
	return 0;
}

static int on_scan(void *user, const char *name, const char *invalid_reason)
{
	struct build *b = user;
	struct loader_plugin *p = NULL, *old;
	char err[600];
	size_t idx;
	int ret;

	if (invalid_reason) {
		char reason[600];

		util_set_err(reason, sizeof(reason), "%s: %s", status_str(LOADER_ENAME), invalid_reason);
		return refuse(b, name, LOADER_ENAME, reason) < 0 ? (b->failed = 1) : 0;
	}
	ret = loader_verify(b->g->config->plugin_dir, name, &b->lopts, &p, err, sizeof(err));
	if (ret == 0)
		ret = generation_check_subscriptions(b->g->config, p, err, sizeof(err));
	if (ret < 0) {
		loader_unload(p);
		return refuse(b, name, ret, err) < 0 ? (b->failed = 1) : 0;
	}
	/* the same bytes as the running generation's: it keeps its birth generation */
	old = b->prev ? generation_plugin(b->prev, name, &idx) : NULL;
	if (push_plugin(b, p, old && memcmp(old->hash, p->hash, SIGN_HASH_BYTES) == 0
				  ? b->prev->plugin_generation[idx]
				  : b->g->number) < 0) {
		loader_unload(p);
		b->failed = 1;
		return 1;
	}
	return 0;
}

/* Does any use of this plugin in the config ask for in-process execution? */
static bool wants_in_process(const struct config_host *c, const char *name)
{
	if (config_script_execution(c, NULL, name) == CONFIG_EXEC_IN_PROCESS)
		return true;
	for (size_t i = 0; i < c->nango.n_integrations; i++) {
		const struct config_integration *in = &c->nango.integrations[i];

		if (config_script_execution(c, in, name) == CONFIG_EXEC_IN_PROCESS)
			return true;
	}
	return false;
}

/* Drops plugins[i] from the generation (it failed to open), keeping the
 * previous generation's version when there is one. */
static int drop_unopened(struct build *b, size_t i, const char *reason, int code)
{
	struct generation *g = b->g;
	char name[256];

	snprintf(name, sizeof(name), "%s", g->plugins[i]->name);
	loader_unload(g->plugins[i]);
	memmove(&g->plugins[i], &g->plugins[i + 1], (g->n_plugins - i - 1) * sizeof(*g->plugins));
	memmove(&g->plugin_generation[i], &g->plugin_generation[i + 1],
		(g->n_plugins - i - 1) * sizeof(*g->plugin_generation));
	g->n_plugins--;
	return refuse(b, name, code, reason);
}

static int cmp_plugins(const void *a, const void *b)
{
	const struct loader_plugin *const *pa = a, *const *pb = b;

	return strcmp((*pa)->name, (*pb)->name);
}

/* Executors kept forked ahead: one per execution that may run at once,
 * and two more for the moment between an executor's result and its exit
 * (the zygote refills the pool when one exits), so that a steady load
 * never waits for a fork; at most 32 (executor.h: the "spawn" path forks
 * on demand past the pool). */
static uint32_t prefork_for(uint32_t max_concurrency)
{
	return max_concurrency > 30 ? 32 : max_concurrency + 2;
}

/* Starts the executor over g's plugins. A plugin that the zygote (or this
 * process, for in-process use) cannot open is refused and replaced by the
 * previous generation's version, and the executor is started again: the
 * previous versions opened before, so this converges in two rounds. */
static int start_executor(struct build *b, char *err, size_t errlen)
{
	struct generation *g = b->g;
	struct executor_options eo = {
		.memory_limit_mb = g->config->memory_limit_mb,
		.cpu_limit_s = g->config->cpu_limit_s,
		.prefork = prefork_for(g->config->max_concurrency),
		.generation = g->number,
		.uid = g->config->sandbox_uid,
		.gid = g->config->sandbox_gid,
		.max_processes = g->config->max_processes,
	};

	for (int round = 0; round < 3; round++) {
		struct executor_load_result *res = NULL;
		bool *inproc = NULL;
		size_t n = g->n_plugins;
		int ret, dropped = 0;

		if (n) /* g->plugins is NULL when every plugin was refused */
			qsort(g->plugins, n, sizeof(*g->plugins), cmp_plugins);
		res = calloc(n ? n : 1, sizeof(*res));
		inproc = calloc(n ? n : 1, sizeof(*inproc));
		if (!res || !inproc) {
			free(res);
			free(inproc);
			util_set_err(err, errlen, "out of memory");
			return STATUS_ENOMEM;
		}
		for (size_t i = 0; i < n; i++)
			inproc[i] = wants_in_process(g->config, g->plugins[i]->name);
		ret = executor_new(&eo, g->plugins, n, inproc, res, &g->executor, err, errlen);
		free(inproc);
		if (ret < 0) {
			free(res);
			return ret;
		}
		for (size_t i = n; i-- > 0;) {
			if (res[i].code == 0)
				continue;
			if (drop_unopened(b, i, res[i].err, res[i].code) < 0) {
				free(res);
				util_set_err(err, errlen, "out of memory");
				return STATUS_ENOMEM;
			}
			dropped++;
		}
		free(res);
		if (!dropped) {
			/* the zygote has them all: the daemon keeps their bytes
			 * mapped and no descriptor (loader_memfd_close) */
			for (size_t i = 0; i < n; i++)
				loader_memfd_close(g->plugins[i]);
			return 0;
		}
		executor_free(g->executor, 0);
		g->executor = NULL;
	}
	util_set_err(err, errlen, "plugins kept failing to open");
	return STATUS_EIO;
}

static void warn_missing(void *user, const char *note)
{
	log_warn("generation", "generation %lld: %s", (long long)*(const int64_t *)user, note);
}

/* generation_build(), and with record false generation_check(): the same
 * steps, with the ledger read but never written. */
static int build(const char *config_path, char *const *envp, struct generation *prev,
		 struct store *store, int64_t number, bool record, struct generation **out, char *err,
		 size_t errlen)
{
	struct loader_ledger ledger = {store_ledger_get, store_ledger_put, store};
	struct build b;
	struct generation *g;
	int ret;

	*out = NULL;
	memset(&b, 0, sizeof(b));
	g = calloc(1, sizeof(*g));
	if (!g) {
		util_set_err(err, errlen, "out of memory");
		return STATUS_ENOMEM;
	}
	atomic_init(&g->refs, 1);
	g->number = number;
	g->created_at_ms = util_now_ms();
	b.g = g;
	b.prev = prev;

	ret = config_load(config_path, envp, &g->config, err, errlen);
	if (ret < 0)
		goto fail;
	ret = sign_keyring_load(g->config->trusted_keys_dir,
				(const char *const *)g->config->revoked_keys.items,
				g->config->revoked_keys.n, &g->keyring, err, errlen);
	if (ret < 0) {
		char detail[400];

		snprintf(detail, sizeof(detail), "%s", err);
		util_set_err(err, errlen, "%s: trusted_keys_dir %s: %s", g->config->file,
			     g->config->trusted_keys_dir, detail);
		goto fail;
	}
	b.lopts.keyring = g->keyring;
	b.lopts.ledger = store ? &ledger : NULL;
	b.lopts.allow_downgrade = g->config->allow_downgrade;
	b.lopts.accept_rebuilds = g->config->dev_accept_rebuilds;

	{
		char detail[320];

		/* anyone who may write in plugin_dir may swap what runs; what
		 * cannot be examined is reported by loader_scan() below */
		ret = safe_path_check(g->config->plugin_dir, detail, sizeof(detail));
		if (ret == STATUS_EDENIED) {
			util_set_err(err, errlen, "%s: plugin_dir %s: %s", g->config->file, g->config->plugin_dir,
				     detail);
			goto fail;
		}
	}
	{
		/* more plugins than descriptors: say so, rather than refuse
		 * them one by one with "Too many open files" */
		struct fdlimit_need need = {
			.plugins = fdlimit_count_plugins(g->config->plugin_dir),
			.concurrency = g->config->max_concurrency,
			.connections = g->config->http_max_connections,
		};
		char detail[512];

		ret = fdlimit_check(&need, detail, sizeof(detail));
		if (ret < 0) {
			util_set_err(err, errlen, "%s: plugin_dir %s: %s", g->config->file, g->config->plugin_dir,
				     detail);
			goto fail;
		}
	}
	ret = loader_scan(g->config->plugin_dir, on_scan, &b);
	if (ret == LOADER_EIO) {
		util_set_err(err, errlen, "%s: plugin_dir %s: %s", g->config->file, g->config->plugin_dir,
			     strerror(errno));
		goto fail;
	}
	if (ret != 0 || b.failed) {
		util_set_err(err, errlen, "scanning %s: %s", g->config->plugin_dir,
			     b.failed ? "out of memory" : status_str(ret));
		ret = STATUS_EIO;
		goto fail;
	}
	/* plugins of the running generation whose files were removed are not
	 * carried over: removing the files and reloading unloads them */

	ret = start_executor(&b, err, errlen);
	if (ret < 0)
		goto fail;
	ret = generation_merge_subscriptions(g);
	if (ret < 0) {
		util_set_err(err, errlen, "merging the declared subscriptions: %s", status_str(ret));
		goto fail;
	}

	if (record)
		generation_missing_scripts(g, warn_missing, &g->number);
	for (size_t i = 0; record && i < g->n_plugins; i++) {
		if (g->plugin_generation[i] != number)
			continue;
		if (loader_accept(&b.lopts, g->plugins[i]) < 0)
			log_error("generation", "recording the accepted version of %s failed",
				  g->plugins[i]->name);
	}
	*out = g;
	return 0;
fail:
	generation_unref(g);
	return ret < 0 ? ret : STATUS_EINVAL;
}

int generation_build(const char *config_path, char *const *envp, struct generation *prev,
		     struct store *store, int64_t number, struct generation **out, char *err,
		     size_t errlen)
{
	return build(config_path, envp, prev, store, number, true, out, err, errlen);
}

int generation_check(const char *config_path, char *const *envp, struct store *store,
		     struct generation **out, char *err, size_t errlen)
{
	return build(config_path, envp, NULL, store, 0, false, out, err, errlen);
}

struct generation *generation_ref(struct generation *g)
{
	if (g)
		atomic_fetch_add(&g->refs, 1);
	return g;
}

void generation_unref(struct generation *g)
{
	if (!g || atomic_fetch_sub(&g->refs, 1) != 1)
		return;
	if (g->executor) {
		uint32_t drain = g->config ? g->config->drain_deadline_s : 0;

		executor_free(g->executor, util_mono_us() + (int64_t)drain * 1000000);
	}
	for (size_t i = 0; i < g->n_plugins; i++)
		loader_unload(g->plugins[i]);
	sign_keyring_free(g->keyring);
	config_host_free(g->config);
	util_free_all(g->plugins, g->plugin_generation, g->refused, g->subs, g);
}

int64_t generation_number(const struct generation *g)
{
	return g->number;
}

int64_t generation_created_at_ms(const struct generation *g)
{
	return g->created_at_ms;
}

const struct config_host *generation_config(const struct generation *g)
{
	return g->config;
}

struct executor *generation_executor(const struct generation *g)
{
	return g->executor;
}

size_t generation_plugin_count(const struct generation *g)
{
	return g->n_plugins;
}

const struct loader_plugin *generation_plugin_at(const struct generation *g, size_t i,
						 int64_t *since)
{
	if (since)
		*since = g->plugin_generation ? g->plugin_generation[i] : g->number;
	return g->plugins[i];
}

struct loader_plugin *const *generation_plugins(const struct generation *g)
{
	return g->plugins;
}

size_t generation_refusal_count(const struct generation *g)
{
	return g->n_refused;
}

const struct generation_refusal *generation_refusal_at(const struct generation *g, size_t i)
{
	return &g->refused[i];
}

bool generation_unshared(const struct generation *g)
{
	return atomic_load(&((struct generation *)g)->refs) == 1;
}
