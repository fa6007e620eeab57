/* Shared by test_executor.c and bench_executor.c: a temp store, a config,
 * the signed test plugins verified with the dev key, and helpers. */
#ifndef EVS_TEST_EXECUTOR_FIXTURE_H
#define EVS_TEST_EXECUTOR_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "executor.h"
#include "hostapi.h"
#include "loader.h"
#include "sign.h"
#include "store.h"
#include "util.h"

static const char *const fx_names[] = {"crash", "abort", "exit", "hang", "memhog", "logflood",
				       "sleeper", "echo", "noop", "metawriter", "failmsg",
				       "forker", "callall"};
#define FX_N (sizeof(fx_names) / sizeof(fx_names[0]))

static const char fx_host_yaml[] =
	"environment:\n"
	"  GREETING: hello\n"
	"  SLEEPER_MS: '400'\n"
	"  LOGFLOOD_LINES: '20000'\n"
	"webhook_base_url: https://hooks.example.test/webhook\n"
	"log_lines_max: 500\n"
	"log_bytes_max: 262144\n"
	"memory_limit_mb: 64\n"
	"integrations:\n"
	"  demo:\n"
	"    on-events:\n"
	"      post-connection-creation: [noop]\n"
	"    actions:\n"
	"      echo: {}\n";

struct fx {
	char dir[64];
	struct store *store;
	struct config_host *config;
	struct sign_keyring *keyring;
	struct loader_plugin *plugins[FX_N];
	struct executor *ex;
	int64_t event_id;
};

static size_t fx_index(const char *name)
{
	for (size_t i = 0; i < FX_N; i++)
		if (strcmp(fx_names[i], name) == 0)
			return i;
	fprintf(stderr, "no test plugin %s\n", name);
	abort();
}

static int fx_open(struct fx *f)
{
	char err[512], url[128];
	struct loader_options lo = {0};
	struct store_connection_input in = {
		.connection_id = "c1",
		.provider_config_key = "demo",
		.provider = "demo",
		.credentials = "{\"type\":\"API_KEY\",\"apiKey\":\"sekret\"}",
		.connection_config = "{\"sub\":\"x\"}",
	};
	struct store_upsert_result ur;

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/evs-exec-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(url, sizeof(url), "sqlite:%s/t.db", f->dir);
	if (store_open(url, NULL, &f->store, err, sizeof(err)) < 0) {
		fprintf(stderr, "store_open: %s\n", err);
		return -1;
	}
	if (config_parse_host(fx_host_yaml, strlen(fx_host_yaml), "evscript.yaml", &f->config, err,
			      sizeof(err)) < 0) {
		fprintf(stderr, "config: %s\n", err);
		return -1;
	}
	if (sign_keyring_load(EVS_TEST_TRUSTED_DIR, NULL, 0, &f->keyring, err, sizeof(err)) < 0) {
		fprintf(stderr, "keyring: %s\n", err);
		return -1;
	}
	lo.keyring = f->keyring;
	for (size_t i = 0; i < FX_N; i++) {
		if (loader_verify(EVS_TEST_PLUGIN_DIR, fx_names[i], &lo, &f->plugins[i], err,
				  sizeof(err)) != LOADER_OK) {
			fprintf(stderr, "verify %s: %s\n", fx_names[i], err);
			return -1;
		}
	}
	if (store_connection_upsert(f->store, &in, NULL, &ur) < 0)
		return -1;
	f->event_id = ur.event_id;
	return 0;
}

static int fx_executor(struct fx *f, uint32_t prefork, const bool *in_process, struct executor **out)
{
	struct executor_options o = {.zygote_path = EVS_TEST_ZYGOTE,
				     .memory_limit_mb = f->config->memory_limit_mb,
				     .prefork = prefork,
				     .generation = 1};
	struct executor_load_result res[FX_N];
	char err[512];
	int r = executor_new(&o, f->plugins, FX_N, in_process, res, out, err, sizeof(err));

	if (r < 0) {
		fprintf(stderr, "executor_new: %s\n", err);
		return r;
	}
	for (size_t i = 0; i < FX_N; i++) {
		if (res[i].code != LOADER_OK) {
			fprintf(stderr, "open %s: %s\n", fx_names[i], res[i].err);
			return -1;
		}
	}
	return 0;
}

static void fx_close(struct fx *f)
{
	char cmd[128];

	executor_free(f->ex, util_mono_us() + 5000000);
	for (size_t i = 0; i < FX_N; i++)
		loader_unload(f->plugins[i]);
	sign_keyring_free(f->keyring);
	config_host_free(f->config);
	store_close(f->store);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", f->dir);
}

/* What a run left. */
struct fx_run {
	struct executor_result res;
	int64_t execution_id;
	int ret;
};

struct fx_trigger {
	struct fx *f;
	struct executor *ex;
	bool in_process;
};

static int fx_run_with(struct fx *f, struct executor *ex, const char *name, bool in_process,
		       uint32_t deadline_s, const char *input, int depth, hostapi_trigger_fn trigger,
		       void *trigger_user, struct fx_run *out);

/* trigger_action for the tests: actions from fx_names only ("echo"). */
static int fx_trigger_fn(void *user, struct hostapi_exec *parent, const char *action,
			 const char *input_json, char **output_json, char *err, size_t errlen)
{
	struct fx_trigger *t = user;
	struct fx_run r;
	int ret;

	*output_json = NULL;
	if (strcmp(action, "echo") != 0) {
		snprintf(err, errlen, "no action %s", action);
		return EVS_ENOTFOUND;
	}
	ret = fx_run_with(t->f, t->ex, action, t->in_process, 10, input_json,
			  hostapi_exec_info(parent)->depth + 1, fx_trigger_fn, t, &r);
	if (ret < 0 || r.res.status != STORE_EXEC_SUCCEEDED) {
		snprintf(err, errlen, "%s", r.res.error ? r.res.error : "failed");
		executor_result_clear(&r.res);
		return EVS_EFAILED;
	}
	*output_json = r.res.output_json;
	r.res.output_json = NULL;
	executor_result_clear(&r.res);
	return 0;
}

/* Records an execution, runs it, writes its logs and end to the store. */
static int fx_run_with(struct fx *f, struct executor *ex, const char *name, bool in_process,
		       uint32_t deadline_s, const char *input, int depth, hostapi_trigger_fn trigger,
		       void *trigger_user, struct fx_run *out)
{
	size_t i = fx_index(name);
	bool action = strcmp(name, "echo") == 0;
	struct store_execution_input ein = {
		.kind = action ? STORE_EXEC_ACTION : STORE_EXEC_EVENT,
		.event_id = action ? 0 : f->event_id,
		.script = name,
		.event = action ? NULL : "post-connection-creation",
		.connection_id = "c1",
		.provider_config_key = "demo",
		.plugin_version = "1.0.0",
	};
	struct hostapi_exec *host = NULL;
	struct evs_event ev = {.size = sizeof(ev), .type = EVS_EVENT_POST_CONNECTION_CREATION,
			       .name = "post-connection-creation", .connection_id = "c1",
			       .provider_config_key = "demo", .event_id = f->event_id};
	int64_t start = util_mono_us();
	struct hostapi_exec_info info = {
		.store = f->store,
		.config = f->config,
		.integration = config_integration_find(f->config, "demo"),
		.event_id = action ? 0 : f->event_id,
		.event_type = action ? 0 : EVS_EVENT_POST_CONNECTION_CREATION,
		.script = name,
		.connection_id = "c1",
		.provider_config_key = "demo",
		.depth = depth,
		.deadline_us = start + (int64_t)deadline_s * 1000000,
		.trigger = trigger,
		.trigger_user = trigger_user,
	};
	struct executor_job job = {.plugin = i, .in_process = in_process,
				   .event = action ? NULL : &ev, .input_json = input,
				   .deadline_us = info.deadline_us};

	memset(out, 0, sizeof(*out));
	if (store_execution_create(f->store, &ein, &out->execution_id) < 0)
		return -1;
	ev.execution_id = out->execution_id;
	info.execution_id = out->execution_id;
	if (hostapi_exec_new(&info, &host) < 0)
		return -1;
	out->ret = executor_run(ex, &job, host, &out->res);
	hostapi_exec_free(host);
	store_execution_finish(f->store, out->execution_id,
			       out->ret < 0 ? STORE_EXEC_CRASHED : out->res.status, out->res.error,
			       (util_mono_us() - start) / 1000);
	return out->ret;
}

static inline int fx_run(struct fx *f, const char *name, bool in_process, uint32_t deadline_s,
		  struct fx_run *out)
{
	struct fx_trigger t = {.f = f, .ex = f->ex, .in_process = in_process};

	return fx_run_with(f, f->ex, name, in_process, deadline_s, NULL, 0, fx_trigger_fn, &t, out);
}

#endif
