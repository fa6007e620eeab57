/* bench_evscript [-v] [--executor-only] [--plugin-dir DIR] [--trusted-dir DIR] [N]: what one
 * execution of a trivial event script (the signed test plugin noop) costs
 * in the real runtime, measured N times after a warm-up.
 *
 * Set-up, as the daemon does it: a temporary directory with a host config
 * (two integrations running noop on post-connection-creation: `bench`
 * isolated, `bench-inproc` in-process), a plugin directory holding the
 * signed noop copied in, a trusted_keys_dir with the development public
 * key, and a SQLite store; generation_build() verifies and loads the plugin
 * and starts the zygote (evscript-zygote, found next to this binary as next
 * to evscriptd: the build links it here); dispatch_new() makes the
 * dispatcher (no worker threads: this thread plays the worker).
 *
 * Rows (one JSON line each: name, n, p50_us, p99_us, per_s, floor):
 *  - executor alone, isolated (the generation's executor, 2 forked ahead;
 *    and one of our own that forks on demand): hostapi_exec_new ->
 *    executor_run -> hostapi_exec_free, no store writes on the path;
 *  - executor alone, in-process: the same with job.in_process;
 *  - claimed to recorded, isolated and in-process, with the store at its
 *    default durability and with ?synchronous=normal: exactly what a
 *    dispatcher worker does for one event, store_event_claim() then
 *    dispatch_run_event() (execution created, run, logs and result written,
 *    event marked done, the daemon's log line formatted and written to
 *    /dev/null).
 * Every execution must succeed (checked through dispatch_get_stats and the
 * executor results) or the program fails. Timing assertions: none;
 * tests/bench/run.sh turns the lines into a table with ratios to the
 * floors that bench_fork_floor measures in the same run. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dispatch.h"
#include "executor.h"
#include "generation.h"
#include "hostapi.h"
#include "log.h"
#include "store.h"
#include "util.h"

#include "bench_util.h"

extern char **environ;

#define WARMUP_MAX 100
#define COPY_MAX (64u << 20) /* a plugin or key file we copy */
#define DEADLINE_US 10000000
#define GAP_US 2000 /* between executions: time for the zygote to refill its pool */

static const char providers_yaml[] =
	"bench:\n"
	"  display_name: Benchmark (never called)\n"
	"  auth_mode: NONE\n"
	"  proxy:\n"
	"    base_url: http://127.0.0.1:9\n";

static const char host_yaml[] =
	"store: sqlite:unused.db\n"
	"plugin_dir: plugins.d\n"
	"trusted_keys_dir: keys\n"
	"providers: providers.yaml\n"
	"execution: isolated\n"
	"max_concurrency: 1\n"
	"integrations:\n"
	"  bench:\n"
	"    provider: bench\n"
	"    on-events:\n"
	"      post-connection-creation: [noop]\n"
	"  bench-inproc:\n"
	"    provider: bench\n"
	"    execution: in-process\n"
	"    on-events:\n"
	"      post-connection-creation: [noop]\n";

struct bench {
	int n;
	int warmup;
	int64_t *t;
	char dir[64];
	char config_path[128];
};

/* Sorts b->t and prints one JSON line. floor: "fork" or "call". */
static void report(struct bench *b, const char *name, const char *floor)
{
	struct bench_summary s = bench_summarise(b->t, b->n);

	printf("{\"name\":\"%s\",\"n\":%d,\"p50_us\":%.3f,\"p99_us\":%.3f,\"per_s\":%.0f,"
	       "\"floor\":\"%s\"}\n",
	       name, b->n, s.p50_us, s.p99_us, s.per_s, floor);
	fflush(stdout);
}

/* Copies src to dst (mode 0644), at most COPY_MAX bytes. */
static int copy_file(const char *src, const char *dst)
{
	char buf[65536];
	int in = -1, out = -1, ret = -1;
	size_t total = 0;
	ssize_t r;

	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		goto out;
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0)
		goto out;
	while ((r = read(in, buf, sizeof(buf))) > 0) {
		total += (size_t)r;
		if (total > COPY_MAX || write(out, buf, (size_t)r) != r)
			goto out;
	}
	ret = r == 0 ? 0 : -1;
out:
	if (ret < 0)
		fprintf(stderr, "bench_evscript: copying %s to %s failed: %s\n", src, dst,
			errno ? strerror(errno) : "too big");
	if (out >= 0)
		close(out);
	if (in >= 0)
		close(in);
	return ret;
}

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");
	int ret = 0;

	if (!f)
		return -1;
	if (fputs(text, f) == EOF)
		ret = -1;
	if (fclose(f) != 0)
		ret = -1;
	return ret;
}

/* The temporary directory: config, providers, plugins.d/noop.so(.minisig),
 * keys/ *.pub from trusted_dir. */
static int setup_dir(struct bench *b, const char *plugin_dir, const char *trusted_dir)
{
	char src[512], dst[512];
	const char *files[] = {"noop.so", "noop.so.minisig"};
	DIR *d;
	struct dirent *e;
	int keys = 0;

	snprintf(b->dir, sizeof(b->dir), "/tmp/evs-bench-XXXXXX");
	if (!mkdtemp(b->dir))
		return -1;
	snprintf(dst, sizeof(dst), "%s/plugins.d", b->dir);
	if (mkdir(dst, 0700) < 0)
		return -1;
	snprintf(dst, sizeof(dst), "%s/keys", b->dir);
	if (mkdir(dst, 0700) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(src, sizeof(src), "%s/%s", plugin_dir, files[i]);
		snprintf(dst, sizeof(dst), "%s/plugins.d/%s", b->dir, files[i]);
		if (copy_file(src, dst) < 0)
			return -1;
	}
	d = opendir(trusted_dir);
	if (!d) {
		fprintf(stderr, "bench_evscript: %s: %s\n", trusted_dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);

		if (len < 5 || strcmp(e->d_name + len - 4, ".pub") != 0)
			continue;
		snprintf(src, sizeof(src), "%s/%s", trusted_dir, e->d_name);
		snprintf(dst, sizeof(dst), "%s/keys/%s", b->dir, e->d_name);
		if (copy_file(src, dst) < 0) {
			closedir(d);
			return -1;
		}
		keys++;
	}
	closedir(d);
	if (keys == 0) {
		fprintf(stderr, "bench_evscript: no *.pub in %s\n", trusted_dir);
		return -1;
	}
	snprintf(dst, sizeof(dst), "%s/providers.yaml", b->dir);
	if (write_file(dst, providers_yaml) < 0)
		return -1;
	snprintf(b->config_path, sizeof(b->config_path), "%s/evscript.yaml", b->dir);
	return write_file(b->config_path, host_yaml);
}

static void remove_dir(struct bench *b)
{
	char cmd[128];

	if (!b->dir[0])
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", b->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_evscript: could not remove %s\n", b->dir);
}

/* hostapi_exec_new -> executor_run -> hostapi_exec_free, b->warmup + b->n
 * times, no store writes (execution_id 0). */
static int run_executor(struct bench *b, struct generation *g, struct executor *ex,
			bool in_process, int64_t gap_us, const char *name, const char *floor)
{
	size_t idx;
	const char *pck = in_process ? "bench-inproc" : "bench";
	struct evs_event ev = {.size = sizeof(ev), .type = EVS_EVENT_POST_CONNECTION_CREATION,
			       .name = STORE_EVENT_POST_CONNECTION_CREATION,
			       .connection_id = "c1", .provider_config_key = pck};
	struct hostapi_exec_info info = {
		.config = generation_config(g),
		.integration = config_integration_find(generation_config(g), pck),
		.event_type = EVS_EVENT_POST_CONNECTION_CREATION,
		.script = "noop",
		.connection_id = "c1",
		.provider_config_key = pck,
	};

	if (!generation_plugin(g, "noop", &idx)) {
		fprintf(stderr, "bench_evscript: noop is not loaded\n");
		return -1;
	}
	for (int i = 0; i < b->warmup + b->n; i++) {
		struct executor_job job = {.plugin = idx, .in_process = in_process, .event = &ev};
		struct executor_result res = {0};
		struct hostapi_exec *hx = NULL;
		int64_t t0;
		int ret;

		if (gap_us > 0) {
			struct timespec ts = {0, (long)gap_us * 1000};

			nanosleep(&ts, NULL);
		}
		t0 = bench_now_ns();
		info.deadline_us = util_mono_us() + DEADLINE_US;
		job.deadline_us = info.deadline_us;
		if (hostapi_exec_new(&info, &hx) < 0)
			return -1;
		ret = executor_run(ex, &job, hx, &res);
		hostapi_exec_free(hx);
		if (i >= b->warmup)
			b->t[i - b->warmup] = bench_now_ns() - t0;
		if (ret < 0 || res.status != STORE_EXEC_SUCCEEDED) {
			fprintf(stderr, "bench_evscript: %s: execution %d: %s\n", name, i,
				res.error ? res.error : "failed");
			executor_result_clear(&res);
			return -1;
		}
		executor_result_clear(&res);
	}
	report(b, name, floor);
	return 0;
}

/* What a dispatcher worker does for one event: claim it, run its scripts
 * (create the execution, run, write logs and result, mark the event done). */
static int run_claimed(struct bench *b, struct store *store, struct generation *g,
		       struct dispatch *d, const char *pck, const char *name, const char *floor)
{
	struct dispatch_stats before, after;
	int total = b->warmup + b->n;

	for (int i = 0; i < total; i++) {
		char cid[32];
		int64_t id;

		snprintf(cid, sizeof(cid), "c%d", i);
		if (store_event_insert(store, STORE_EVENT_POST_CONNECTION_CREATION, cid, pck, false,
				       0, &id) < 0) {
			fprintf(stderr, "bench_evscript: inserting events failed\n");
			return -1;
		}
	}
	dispatch_get_stats(d, &before);
	for (int i = 0; i < total; i++) {
		struct store_event ev;
		int64_t t0 = bench_now_ns();
		int ret = store_event_claim(store, generation_number(g), &ev);

		if (ret < 0) {
			fprintf(stderr, "bench_evscript: claim: %s\n", store_strerror(ret));
			return -1;
		}
		dispatch_run_event(d, &ev);
		if (i >= b->warmup)
			b->t[i - b->warmup] = bench_now_ns() - t0;
	}
	dispatch_get_stats(d, &after);
	if (after.finished[CONFIG_EVENT_POST_CONNECTION_CREATION][STORE_EXEC_SUCCEEDED] - before.finished[CONFIG_EVENT_POST_CONNECTION_CREATION][STORE_EXEC_SUCCEEDED] !=
	    (uint64_t)total) {
		fprintf(stderr, "bench_evscript: %s: %llu of %d executions succeeded\n", name,
			(unsigned long long)(after.finished[CONFIG_EVENT_POST_CONNECTION_CREATION][STORE_EXEC_SUCCEEDED] -
					     before.finished[CONFIG_EVENT_POST_CONNECTION_CREATION][STORE_EXEC_SUCCEEDED]),
			total);
		return -1;
	}
	report(b, name, floor);
	return 0;
}

/* One store durability: a store, a generation and a dispatcher on it.
 * executor_rows: 0 none, 1 with the claimed-to-recorded rows, 2 only them. */
static int run_store(struct bench *b, bool normal, int executor_rows)
{
	char url[160], err[1024];
	struct store *store = NULL;
	struct generation *g = NULL;
	struct dispatch *d = NULL;
	struct executor *ondemand = NULL;
	int ret = -1;

	snprintf(url, sizeof(url), "sqlite:%s/%s.db%s", b->dir, normal ? "normal" : "full",
		 normal ? "?synchronous=normal" : "");
	if (store_open(url, NULL, &store, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_evscript: store_open %s: %s\n", url, err);
		goto out;
	}
	if (generation_build(b->config_path, environ, NULL, store, 1, &g, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_evscript: generation_build: %s\n", err);
		goto out;
	}
	if (generation_refusal_count(g) > 0 || !generation_plugin(g, "noop", NULL)) {
		fprintf(stderr, "bench_evscript: noop refused: %s\n",
			generation_refusal_count(g) ? generation_refusal_at(g, 0)->reason : "not loaded");
		goto out;
	}
	if (dispatch_new(store, g, 1, &d) < 0) {
		fprintf(stderr, "bench_evscript: dispatch_new failed\n");
		goto out;
	}

	if (executor_rows) {
		struct executor_options o = {.memory_limit_mb = generation_config(g)->memory_limit_mb,
					     .cpu_limit_s = generation_config(g)->cpu_limit_s,
					     .prefork = 0,
					     .generation = 2};
		struct executor_load_result *res = calloc(generation_plugin_count(g), sizeof(*res));

		if (!res)
			goto out;
		ret = executor_new(&o, generation_plugins(g), generation_plugin_count(g), NULL, res, &ondemand, err,
				   sizeof(err));
		free(res);
		if (ret < 0) {
			fprintf(stderr, "bench_evscript: executor_new: %s\n", err);
			goto out;
		}
		ret = -1;
		if (run_executor(b, g, generation_executor(g), false, 0,
				 "isolated: executor alone (2 forked ahead), back to back", "fork") < 0 ||
		    run_executor(b, g, generation_executor(g), false, GAP_US,
				 "isolated: executor alone (2 forked ahead), 2 ms apart", "fork") < 0 ||
		    run_executor(b, g, ondemand, false, GAP_US,
				 "isolated: executor alone (fork on demand), 2 ms apart", "fork") < 0 ||
		    run_executor(b, g, generation_executor(g), true, 0, "in-process: executor alone", "call") < 0)
			goto out;
	}
	if (executor_rows == 2) {
		ret = 0;
		goto out;
	}
	if (run_claimed(b, store, g, d, "bench",
			normal ? "isolated: claimed to recorded, synchronous=normal"
			       : "isolated: claimed to recorded, default durability",
			"fork") < 0 ||
	    run_claimed(b, store, g, d, "bench-inproc",
			normal ? "in-process: claimed to recorded, synchronous=normal"
			       : "in-process: claimed to recorded, default durability",
			"call") < 0)
		goto out;
	ret = 0;
out:
	executor_free(ondemand, util_mono_us() + 1000000);
	dispatch_free(d);
	generation_unref(g);
	store_close(store);
	return ret;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_evscript [-v] [--executor-only] [--plugin-dir DIR] [--trusted-dir DIR] [N]\n"
			"  --executor-only: only the \"executor alone\" rows (for profiling)\n"
			"  -v: the daemon log (one line per execution) on stderr\n"
			"  DIR defaults: %s, %s\n",
		EVS_BENCH_PLUGIN_DIR, EVS_BENCH_TRUSTED_DIR);
}

int main(int argc, char **argv)
{
	const char *plugin_dir = EVS_BENCH_PLUGIN_DIR, *trusted_dir = EVS_BENCH_TRUSTED_DIR;
	struct bench b;
	int devnull, ret = 1;
	bool verbose = false, executor_only = false;

	memset(&b, 0, sizeof(b));
	b.n = 2000;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--plugin-dir") == 0 && i + 1 < argc) {
			plugin_dir = argv[++i];
		} else if (strcmp(argv[i], "--trusted-dir") == 0 && i + 1 < argc) {
			trusted_dir = argv[++i];
		} else if (strcmp(argv[i], "-v") == 0) {
			verbose = true;
		} else if (strcmp(argv[i], "--executor-only") == 0) {
			executor_only = true;
		} else if (argv[i][0] != '-' && i == argc - 1) {
			b.n = atoi(argv[i]);
		} else {
			usage();
			return 2;
		}
	}
	if (b.n < 1 || b.n > 1000000) {
		usage();
		return 2;
	}
	b.warmup = b.n / 10 < WARMUP_MAX ? b.n / 10 : WARMUP_MAX;
	if (sodium_init() < 0)
		return 1;
	/* The daemon writes one line per execution: keep its cost (formatting
	 * and one write(2)), not its output, unless -v. This program's own
	 * failures are reported on stderr either way. */
	devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (devnull < 0)
		return 1;
	log_setup(verbose ? 2 : devnull, false, LOG_LEVEL_INFO);
	b.t = calloc((size_t)b.n, sizeof(*b.t));
	if (!b.t)
		goto out;
	if (setup_dir(&b, plugin_dir, trusted_dir) < 0) {
		fprintf(stderr, "bench_evscript: could not set up %s\n", b.dir);
		goto out;
	}
	if (run_store(&b, true, executor_only ? 2 : 1) < 0 ||
	    (!executor_only && run_store(&b, false, 0) < 0))
		goto out;
	ret = 0;
out:
	remove_dir(&b);
	free(b.t);
	close(devnull);
	return ret;
}
