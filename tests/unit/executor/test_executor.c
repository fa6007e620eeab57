/* The executor: every misbehaving test plugin ends with the right status
 * and its logs while a concurrent execution succeeds; deadlines; log caps;
 * reaping; descriptors; in-process runs; host calls through both vtables;
 * drain; no zygote left behind. */
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "fixture.h"

static struct fx F;

static int setup(void **state)
{
	bool in_process[FX_N] = {0};

	(void)state;
	in_process[fx_index("callall")] = true;
	in_process[fx_index("echo")] = true;
	in_process[fx_index("noop")] = true;
	in_process[fx_index("metawriter")] = true;
	if (fx_open(&F) < 0)
		return -1;
	return fx_executor(&F, 2, in_process, &F.ex);
}

static int teardown(void **state)
{
	(void)state;
	fx_close(&F);
	return 0;
}

static struct store_execution *get_exec(int64_t id)
{
	struct store_execution *e = NULL;

	assert_int_equal(store_execution_get(F.store, id, &e), 0);
	return e;
}

static bool has_log(const struct store_execution *e, const char *needle)
{
	for (size_t i = 0; i < e->n_logs; i++)
		if (strstr(e->logs[i].message, needle))
			return true;
	return false;
}

static void test_success(void **state)
{
	struct fx_run r;
	struct store_execution *e;

	(void)state;
	assert_int_equal(fx_run(&F, "noop", false, 10, &r), 0);
	assert_int_equal(r.res.status, STORE_EXEC_SUCCEEDED);
	assert_null(r.res.error);
	e = get_exec(r.execution_id);
	assert_int_equal(e->status, STORE_EXEC_SUCCEEDED);
	store_execution_free(e);
	executor_result_clear(&r.res);

	assert_int_equal(fx_run(&F, "failmsg", false, 10, &r), 0);
	assert_int_equal(r.res.status, STORE_EXEC_FAILED);
	assert_string_equal(r.res.error, "the provider said no to c1");
	e = get_exec(r.execution_id);
	assert_true(has_log(e, "refusing c1"));
	store_execution_free(e);
	executor_result_clear(&r.res);
}

/* A well-behaved execution running beside the misbehaving ones. */
static void *sleeper_thread(void *arg)
{
	struct fx_run *r = arg;

	fx_run(&F, "sleeper", false, 10, r);
	return NULL;
}

struct expect {
	const char *plugin;
	uint32_t deadline_s;
	const char *log;
};

static void check_misbehaving(const char *plugin, const struct fx_run *r)
{
	const char *err = r->res.error;

	assert_non_null(err);
	if (strcmp(plugin, "crash") == 0) {
		assert_int_equal(r->res.status, STORE_EXEC_CRASHED);
		/* then the crash report: the fault, the plugin's frame, its build id */
		assert_memory_equal(err, "crashed: SIGSEGV (Segmentation fault)\nfault address 0x0 ", 56);
		assert_non_null(strstr(err, "\n#0 crash.so+0x"));
		assert_non_null(strstr(err, "\ncrash.so build id "));
	} else if (strcmp(plugin, "abort") == 0) {
		assert_int_equal(r->res.status, STORE_EXEC_CRASHED);
		assert_memory_equal(err, "crashed: SIGABRT (Aborted)\nno fault address", 43);
		assert_non_null(strstr(err, " abort.so+0x"));
	} else if (strcmp(plugin, "exit") == 0) {
		assert_int_equal(r->res.status, STORE_EXEC_CRASHED);
		assert_string_equal(err, "exited with status 3 before returning");
	} else if (strcmp(plugin, "hang") == 0) {
		assert_int_equal(r->res.status, STORE_EXEC_TIMED_OUT);
		assert_string_equal(err, "timed out after 1 s");
	} else if (strcmp(plugin, "memhog") == 0) {
		/* malloc fails under RLIMIT_AS: the script fails with its
		 * message; under ASan its allocator ends the process instead */
		print_message("memhog: %s: %s\n", store_exec_status_name(r->res.status), err);
		if (r->res.status == STORE_EXEC_FAILED)
			assert_non_null(strstr(err, "out of memory after"));
		else
			assert_int_equal(r->res.status, STORE_EXEC_CRASHED);
	}
}

static void test_misbehaving(void **state)
{
	static const struct expect cases[] = {
		{"crash", 10, "about to crash"}, {"abort", 10, "about to abort"},
		{"exit", 10, "about to exit(3)"}, {"hang", 1, "about to hang"},
		{"memhog", 20, "allocating until it fails"},
	};

	(void)state;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct fx_run bad, good;
		struct store_execution *e;
		pthread_t t;
		int64_t t0 = util_mono_us();

		assert_int_equal(pthread_create(&t, NULL, sleeper_thread, &good), 0);
		assert_int_equal(fx_run(&F, cases[c].plugin, false, cases[c].deadline_s, &bad), 0);
		pthread_join(t, NULL);
		check_misbehaving(cases[c].plugin, &bad);
		if (strcmp(cases[c].plugin, "hang") == 0) {
			int64_t took = util_mono_us() - t0;

			assert_true(took >= 900000 && took < 3000000);
		}
		e = get_exec(bad.execution_id);
		assert_int_equal(e->status, bad.res.status);
		assert_true(has_log(e, cases[c].log));
		store_execution_free(e);

		assert_int_equal(good.ret, 0);
		assert_int_equal(good.res.status, STORE_EXEC_SUCCEEDED);
		e = get_exec(good.execution_id);
		assert_true(has_log(e, "slept 400 ms"));
		store_execution_free(e);
		executor_result_clear(&bad.res);
		executor_result_clear(&good.res);
	}
}

static void test_log_caps(void **state)
{
	struct fx_run r;
	struct store_execution *e;
	size_t bytes = 0;

	(void)state;
	assert_int_equal(fx_run(&F, "logflood", false, 30, &r), 0);
	assert_int_equal(r.res.status, STORE_EXEC_SUCCEEDED);
	e = get_exec(r.execution_id);
	for (size_t i = 0; i < e->n_logs; i++)
		bytes += strlen(e->logs[i].message);
	assert_true(e->n_logs > 0);
	assert_true(e->n_logs <= F.config->log_lines_max);
	assert_true(bytes <= F.config->log_bytes_max);
	/* every line is either kept or counted */
	assert_int_equal((int64_t)e->n_logs + e->logs_dropped, 20000);
	store_execution_free(e);
	executor_result_clear(&r.res);
}

/* The children of pid (from /proc/pid/task/pid/children). */
static size_t children_of(int pid, int *out, size_t cap)
{
	char path[64], buf[4096];
	size_t n = 0;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", pid, pid);
	fp = fopen(path, "r");
	if (!fp)
		return 0;
	while (n < cap && fscanf(fp, "%d", &out[n]) == 1)
		n++;
	(void)buf;
	fclose(fp);
	return n;
}

static char proc_state(int pid);

/* Whether one of the n pids is a zombie (exited, not yet reaped). */
static bool any_zombie(const int *pids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (proc_state(pids[i]) == 'Z')
			return true;
	return false;
}

/* The zygote's children once the executors that sent their result have
 * exited and been reaped (that happens in the background, after
 * executor_run returned): waits until at most max are left and none of
 * them is a zombie, up to 5 s. */
static size_t settled_children(struct executor *ex, int *out, size_t cap, size_t max)
{
	int64_t until = util_mono_us() + 5000000;
	size_t n;

	while (((n = children_of(executor_zygote_pid(ex), out, cap)) > max || any_zombie(out, n)) &&
	       util_mono_us() < until)
		usleep(1000);
	return n;
}

static char proc_state(int pid)
{
	char path[64], buf[512], *p;
	FILE *fp;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fp = fopen(path, "r");
	if (!fp)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : 0;
}

/* Number of processes named comm (/proc/PID/comm), zombies included. */
static int count_named(const char *comm)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	char path[300], buf[64];
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d))) {
		FILE *fp;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", de->d_name);
		fp = fopen(path, "r");
		if (!fp)
			continue;
		if (fgets(buf, sizeof(buf), fp) && strncmp(buf, comm, strlen(comm)) == 0 &&
		    buf[strlen(comm)] == '\n')
			n++;
		fclose(fp);
	}
	closedir(d);
	return n;
}

static void test_reaped(void **state)
{
	struct fx_run r;
	struct store_execution *e;
	int left = 0, kids[64];
	size_t n;
	bool gone = false;

	(void)state;
	assert_int_equal(fx_run(&F, "forker", false, 10, &r), 0);
	assert_int_equal(r.res.status, STORE_EXEC_SUCCEEDED);
	e = get_exec(r.execution_id);
	for (size_t i = 0; i < e->n_logs; i++)
		if (sscanf(e->logs[i].message, "left child %d behind", &left) == 1)
			break;
	store_execution_free(e);
	executor_result_clear(&r.res);
	assert_true(left > 0);
	/* what the executor left behind (named evs-forker-kid: the pid it
	 * logged is the child's in the executor's PID namespace) was killed
	 * and reaped */
	for (int i = 0; i < 200 && !gone; i++) {
		gone = count_named("evs-forker-kid") == 0;
		if (!gone)
			usleep(10000);
	}
	assert_true(gone);
	/* and the zygote's children now are its idle executors only, none a zombie */
	n = settled_children(F.ex, kids, 64, 2);
	assert_true(n <= 2);
	for (size_t i = 0; i < n; i++)
		assert_int_not_equal(proc_state(kids[i]), 'Z');
}

static size_t count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* Waits until the zygote's pool is full again: the daemon holds one exec
 * socket per idle executor, so the descriptor count depends on it. */
static void wait_pool_full(struct executor *ex, size_t n)
{
	int64_t until = util_mono_us() + 5000000;

	while (executor_idle(ex) < n && util_mono_us() < until)
		usleep(1000);
	assert_int_equal(executor_idle(ex), n);
}

static void test_fd_leaks(void **state)
{
	size_t before, after;
	int64_t t0;
	struct fx_run r;

	(void)state;
	/* warm up (the store's statements, lazy allocations) */
	assert_int_equal(fx_run(&F, "noop", false, 10, &r), 0);
	executor_result_clear(&r.res);
	wait_pool_full(F.ex, 2);
	before = count_fds();
	t0 = util_mono_us();
	for (int i = 0; i < 200; i++) {
		assert_int_equal(fx_run(&F, i % 10 == 9 ? "failmsg" : "noop", false, 10, &r), 0);
		assert_int_equal(r.res.status,
				 i % 10 == 9 ? STORE_EXEC_FAILED : STORE_EXEC_SUCCEEDED);
		executor_result_clear(&r.res);
	}
	print_message("200 isolated runs (with store writes): %.0f us each\n",
		      (double)(util_mono_us() - t0) / 200);
	wait_pool_full(F.ex, 2);
	after = count_fds();
	assert_int_equal(before, after);
}

/* callall's report, read back from the connection's metadata in the store. */
static struct json_object *callall_report(void)
{
	struct store_connection *c = NULL;
	struct json_object *o;

	assert_int_equal(store_connection_get(F.store, "demo", "c1", &c), 0);
	o = json_tokener_parse(c->metadata);
	store_connection_free(c);
	assert_non_null(o);
	return o;
}

static int64_t rint_(struct json_object *o, const char *k)
{
	struct json_object *v;

	assert_true(json_object_object_get_ex(o, k, &v));
	return json_object_get_int64(v);
}

static bool rbool(struct json_object *o, const char *k)
{
	struct json_object *v;

	assert_true(json_object_object_get_ex(o, k, &v));
	return json_object_get_boolean(v);
}

static const char *rstr(struct json_object *o, const char *k)
{
	struct json_object *v;

	assert_true(json_object_object_get_ex(o, k, &v));
	return json_object_get_string(v);
}

static void check_callall(bool in_process)
{
	struct fx_run r;
	struct json_object *o, *out;

	assert_int_equal(store_connection_metadata_set(F.store, "demo", "c1", "{}"), 0);
	assert_int_equal(fx_run(&F, "callall", in_process, 10, &r), 0);
	assert_int_equal(r.res.status, STORE_EXEC_SUCCEEDED);
	executor_result_clear(&r.res);
	o = callall_report();
	if (rint_(o, "rc_conn") != 0)
		print_message("callall report: %s\n", json_object_to_json_string(o));
	assert_int_equal(rint_(o, "rc_conn"), 0);
	assert_true(rbool(o, "conn_has_credentials"));
	assert_true(rbool(o, "conn_id_ok"));
	assert_int_equal(rint_(o, "rc_set"), 0);
	assert_int_equal(rint_(o, "rc_upd"), 0);
	assert_int_equal(rint_(o, "rc_meta"), 0);
	assert_true(rbool(o, "meta_has_a_b"));
	/* set then update: both keys are in the store too */
	assert_int_equal(rint_(o, "a"), 1);
	assert_int_equal(rint_(o, "b"), 2);
	assert_int_equal(rint_(o, "rc_env"), 0);
	assert_string_equal(rstr(o, "env"), "hello");
	assert_int_equal(rint_(o, "rc_env_other"), EVS_ENOTFOUND);
	assert_int_equal(rint_(o, "rc_url"), 0);
	assert_string_equal(rstr(o, "webhook"), "https://hooks.example.test/webhook/demo");
	assert_int_equal(rint_(o, "rc_act"), 0);
	assert_true(json_object_object_get_ex(o, "action_out", &out));
	assert_int_equal(rint_(out, "x"), 1);
	assert_int_equal(rint_(o, "rc_missing_action"), EVS_ENOTFOUND);
	/* no provider in this execution: proxy has no target */
	assert_int_equal(rint_(o, "rc_proxy"), EVS_ENOTFOUND);
	assert_int_equal(rint_(o, "rc_paginate"), EVS_ENOTFOUND);
	assert_int_equal(rint_(o, "rc_bad_metadata"), EVS_EINVAL);
	json_object_put(o);
}

static void test_callall_isolated(void **state)
{
	(void)state;
	check_callall(false);
}

static void test_callall_in_process(void **state)
{
	(void)state;
	check_callall(true);
}

static void test_in_process(void **state)
{
	struct fx_run r;
	struct store_connection *c = NULL;

	(void)state;
	assert_int_equal(fx_run(&F, "metawriter", true, 10, &r), 0);
	assert_int_equal(r.res.status, STORE_EXEC_SUCCEEDED);
	executor_result_clear(&r.res);
	assert_int_equal(store_connection_get(F.store, "demo", "c1", &c), 0);
	assert_non_null(strstr(c->metadata, "\"written_by\":\"metawriter\""));
	assert_non_null(strstr(c->metadata, "\"merged\":true"));
	store_connection_free(c);
	/* a plugin not opened in process is refused in that mode */
	assert_true(fx_run(&F, "crash", true, 10, &r) < 0);
	assert_non_null(strstr(r.res.error, "script not loaded"));
	executor_result_clear(&r.res);
}

static void test_action_output(void **state)
{
	struct fx_run r;
	struct fx_trigger t = {.f = &F, .ex = F.ex};

	(void)state;
	assert_int_equal(fx_run_with(&F, F.ex, "echo", false, 10, "{\"k\":[1,2]}", 0, fx_trigger_fn,
				     &t, &r), 0);
	assert_int_equal(r.res.status, STORE_EXEC_SUCCEEDED);
	assert_string_equal(r.res.output_json, "{\"k\":[1,2]}");
	executor_result_clear(&r.res);
}

struct drain_arg {
	struct fx *f;
	struct executor *ex;
	struct fx_run r;
};

static void *hang_thread(void *arg)
{
	struct drain_arg *a = arg;

	fx_run_with(a->f, a->ex, "hang", false, 60, NULL, 0, NULL, NULL, &a->r);
	return NULL;
}

static void test_drain_and_no_zygote_left(void **state)
{
	struct executor *ex = NULL;
	struct drain_arg a = {.f = &F};
	pthread_t t;
	int zpid;
	int64_t t0;

	(void)state;
	assert_int_equal(fx_executor(&F, 0, NULL, &ex), 0);
	zpid = executor_zygote_pid(ex);
	assert_true(zpid > 0);
	assert_int_equal(kill(zpid, 0), 0);
	a.ex = ex;
	assert_int_equal(pthread_create(&t, NULL, hang_thread, &a), 0);
	while (executor_running(ex) == 0)
		usleep(1000);
	usleep(100000);
	t0 = util_mono_us();
	executor_free(ex, util_mono_us() + 200000);
	pthread_join(t, NULL);
	assert_true(util_mono_us() - t0 < 3000000);
	assert_int_equal(a.r.res.status, STORE_EXEC_TIMED_OUT);
	assert_string_equal(a.r.res.error, "killed: generation drained");
	executor_result_clear(&a.r.res);
	/* the zygote is gone and reaped */
	assert_int_equal(kill(zpid, 0), -1);
	assert_int_equal(errno, ESRCH);
}

/* Idle executors that died (killed from outside) before they got a job:
 * the daemon, which may still hold their exec sockets, replaces them (a
 * failed job send) or forks one on demand; executions succeed and the pool
 * refills. */
static void test_idle_died(void **state)
{
	int kids[64];
	size_t n;
	struct fx_run r;

	(void)state;
	wait_pool_full(F.ex, 2);
	/* the pool is full; the last executor of the test before may still be
	 * exiting */
	n = settled_children(F.ex, kids, 64, 2);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(kill(kids[i], SIGKILL), 0);
	/* dead and reaped by the zygote (so their sockets are closed) */
	for (size_t i = 0; i < n; i++) {
		for (int k = 0; k < 500 && !(kill(kids[i], 0) < 0 && errno == ESRCH); k++)
			usleep(1000);
		assert_true(kill(kids[i], 0) < 0 && errno == ESRCH);
	}
	for (int i = 0; i < 5; i++) {
		assert_int_equal(fx_run(&F, "noop", false, 10, &r), 0);
		assert_int_equal(r.res.status, STORE_EXEC_SUCCEEDED);
		executor_result_clear(&r.res);
	}
	wait_pool_full(F.ex, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_success),
		cmocka_unit_test(test_misbehaving),
		cmocka_unit_test(test_log_caps),
		cmocka_unit_test(test_reaped),
		cmocka_unit_test(test_fd_leaks),
		cmocka_unit_test(test_idle_died),
		cmocka_unit_test(test_callall_isolated),
		cmocka_unit_test(test_callall_in_process),
		cmocka_unit_test(test_in_process),
		cmocka_unit_test(test_action_output),
		cmocka_unit_test(test_drain_and_no_zygote_left),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
