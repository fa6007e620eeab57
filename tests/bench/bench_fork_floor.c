/* bench_fork_floor [N [LABEL]]: the floor of an isolated execution, measured from a
 * SMALL process (this program links nothing but libc, so fork() copies a
 * few hundred KB of page tables, as from a small zygote): fork(), call a
 * trivial function in the child, write its result to a pipe, _exit(); the
 * parent reads the reply and waitpid()s. Also the in-process floor: a direct
 * call through a function pointer. Each timed with two clock_gettime()
 * calls, the same way bench_evscript times its rows, so the clock's own
 * cost (~20-40 ns) is in every number alike.
 *
 * With LABEL, only the fork loop runs, reported under that label (run.sh
 * runs it again with the zygote's libraries preloaded, as a diagnostic).
 *
 * Prints one JSON line per floor: {"name","kind","n","p50_us","p99_us","per_s"}.
 * No timing assertions: tests/bench/run.sh makes the table. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#define WARMUP_MAX 100

/* Sorts t and prints the row (as bench_evscript does). */
static void report(const char *name, const char *kind, int64_t *t, int n)
{
	struct bench_summary s = bench_summarise(t, n);

	printf("{\"name\":\"%s\",\"kind\":\"%s\",\"n\":%d,\"p50_us\":%.3f,\"p99_us\":%.3f,"
	       "\"per_s\":%.0f}\n", name, kind, n, s.p50_us, s.p99_us, s.per_s);
	fflush(stdout);
}

static __attribute__((noinline)) int trivial(int x)
{
	return x + 1;
}

/* One fork + call + pipe reply + waitpid. Returns its duration, or -1. */
static int64_t fork_once(int (*fn)(int), int i)
{
	int p[2], st;
	int reply = 0;
	int64_t t0, t;
	pid_t pid;

	if (pipe(p) < 0)
		return -1;
	t0 = bench_now_ns();
	pid = fork();
	if (pid < 0) {
		t = -1;
		goto out;
	}
	if (pid == 0) {
		int r = fn(i);

		_exit(write(p[1], &r, sizeof(r)) == sizeof(r) ? 0 : 1);
	}
	if (read(p[0], &reply, sizeof(reply)) != sizeof(reply) || reply != i + 1) {
		t = -1;
		waitpid(pid, &st, 0);
		goto out;
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	t = bench_now_ns() - t0;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		t = -1;
out:
	close(p[0]);
	close(p[1]);
	return t;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 2000;
	const char *label = argc > 2 ? argv[2] : NULL;
	int warmup = n / 10 < WARMUP_MAX ? n / 10 : WARMUP_MAX;
	int (*volatile fn)(int) = trivial;
	volatile unsigned sink = 0;
	int64_t *t;

	if (n < 1 || n > 10000000) {
		fprintf(stderr, "usage: bench_fork_floor [N (1..10000000)]\n");
		return 2;
	}
	t = calloc((size_t)n, sizeof(*t));
	if (!t)
		return 1;

	for (int i = 0; i < warmup + n; i++) {
		int64_t d = fork_once(fn, i);

		if (d < 0) {
			perror("bench_fork_floor: fork round trip failed");
			free(t);
			return 1;
		}
		if (i >= warmup)
			t[i - warmup] = d;
	}
	if (label) {
		/* run.sh: the same loop in this process with the zygote's
		 * shared libraries preloaded (LD_PRELOAD): what they add */
		report(label, "fork-libs", t, n);
		free(t);
		return 0;
	}
	report("floor: fork+call+pipe+waitpid (small process)", "fork-floor", t, n);

	for (int i = 0; i < warmup + n; i++) {
		int64_t t0 = bench_now_ns();

		sink = sink + (unsigned)fn(i);
		if (i >= warmup)
			t[i - warmup] = bench_now_ns() - t0;
	}
	report("floor: direct call through a function pointer", "call-floor", t, n);
	free(t);
	return 0;
}
