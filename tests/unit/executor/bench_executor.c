/* bench_executor [N]: the cost of one execution of a trivial script
 * (noop), isolated and in-process, against its floor measured in the same
 * run: fork() + call + pipe reply + waitpid() from this process, and a
 * direct call through a function pointer. Prints a Markdown table (p50,
 * p99, executions per second). No store writes: this is the executor's own
 * overhead. Build without sanitizers for meaningful numbers. */
#include <sys/wait.h>
#include <time.h>

#include "fixture.h"

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static void row(const char *what, int64_t *t, int n, double floor_p50)
{
	int64_t total = 0;

	for (int i = 0; i < n; i++)
		total += t[i];
	qsort(t, (size_t)n, sizeof(*t), cmp64);
	printf("| %-34s | %8.1f | %8.1f | %9.0f | %5.2fx |\n", what, t[n / 2] / 1000.0,
	       t[n * 99 / 100] / 1000.0, n / (total / 1e9), floor_p50 > 0 ? t[n / 2] / floor_p50 : 1.0);
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static __attribute__((noinline)) int trivial(int x)
{
	return x + 1;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 2000;
	int64_t *t = calloc((size_t)n, sizeof(int64_t));
	struct fx f;
	bool in_process[FX_N] = {0};
	struct executor *ex;
	double fork_p50, call_p50;
	int (*volatile fn)(int) = trivial;
	size_t noop = fx_index("noop");
	struct evs_event ev = {.size = sizeof(ev), .type = 1, .name = "post-connection-creation",
			       .connection_id = "c1", .provider_config_key = "demo"};
	struct hostapi_exec_info info;
	struct hostapi_exec *host;

	if (!t || fx_open(&f) < 0)
		return 1;
	in_process[noop] = true;
	for (uint32_t prefork = 0; prefork <= 2; prefork += 2) {
		if (fx_executor(&f, prefork, in_process, &ex) < 0)
			return 1;
		if (prefork == 0)
			f.ex = ex;
		else
			break;
	}
	memset(&info, 0, sizeof(info));
	info.config = f.config;
	info.connection_id = "c1";
	info.provider_config_key = "demo";
	info.script = "noop";
	hostapi_exec_new(&info, &host);

	/* floor 1: fork + call + pipe reply + waitpid */
	for (int i = 0; i < n; i++) {
		int p[2], st;
		char c;
		int64_t t0 = now_ns();

		if (pipe(p) < 0)
			return 1;
		pid_t pid = fork();
		if (pid == 0) {
			c = (char)fn(1);
			if (write(p[1], &c, 1) != 1)
				_exit(1);
			_exit(0);
		}
		if (read(p[0], &c, 1) != 1)
			return 1;
		waitpid(pid, &st, 0);
		t[i] = now_ns() - t0;
		close(p[0]);
		close(p[1]);
	}
	printf("| %-34s | p50 (us) | p99 (us) | per second | ratio |\n", "what");
	printf("|%s|----------|----------|-----------|-------|\n", "------------------------------------");
	{
		int64_t *c = malloc((size_t)n * sizeof(int64_t));

		memcpy(c, t, (size_t)n * sizeof(int64_t));
		qsort(c, (size_t)n, sizeof(*c), cmp64);
		fork_p50 = (double)c[n / 2];
		free(c);
	}
	row("floor: fork+call+pipe+waitpid", t, n, fork_p50);

	for (int mode = 0; mode < 2; mode++) {
		struct executor *e = mode == 0 ? f.ex : ex;

		for (int i = 0; i < n; i++) {
			struct executor_job job = {.plugin = noop, .event = &ev,
						   .deadline_us = util_mono_us() + 10000000};
			struct executor_result r;
			int64_t t0 = now_ns();

			if (executor_run(e, &job, host, &r) < 0 || r.status != STORE_EXEC_SUCCEEDED)
				return 1;
			t[i] = now_ns() - t0;
			executor_result_clear(&r);
		}
		row(mode == 0 ? "isolated, fork on demand" : "isolated, prefork 2", t, n, fork_p50);
	}

	/* floor 2: a direct call through a function pointer */
	for (int i = 0; i < n; i++) {
		int64_t t0 = now_ns();

		fn(i);
		t[i] = now_ns() - t0;
	}
	{
		int64_t *c = malloc((size_t)n * sizeof(int64_t));

		memcpy(c, t, (size_t)n * sizeof(int64_t));
		qsort(c, (size_t)n, sizeof(*c), cmp64);
		call_p50 = (double)c[n / 2] > 0 ? (double)c[n / 2] : 1;
		free(c);
	}
	row("floor: direct call", t, n, call_p50);
	for (int i = 0; i < n; i++) {
		struct executor_job job = {.plugin = noop, .in_process = true, .event = &ev,
					   .deadline_us = util_mono_us() + 10000000};
		struct executor_result r;
		int64_t t0 = now_ns();

		if (executor_run(ex, &job, host, &r) < 0)
			return 1;
		t[i] = now_ns() - t0;
		executor_result_clear(&r);
	}
	row("in-process", t, n, call_p50);
	hostapi_exec_free(host);
	executor_free(ex, util_mono_us() + 1000000);
	fx_close(&f);
	free(t);
	return 0;
}
