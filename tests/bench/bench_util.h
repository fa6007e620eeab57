/* Shared by the bench programs: the clock they time with and the summary of
 * a run of timings that their JSON lines print. libc only: bench_fork_floor
 * and bench_sqlite_floor link nothing else. */
#ifndef EVS_BENCH_UTIL_H
#define EVS_BENCH_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* CLOCK_MONOTONIC in ns; every row is timed with two calls of it, so the
 * clock's own cost is in every number alike. */
static inline int64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int bench_cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

struct bench_summary {
	double p50_us;
	double p99_us;
	double per_s; /* n over the sum of the n durations */
};

/* Sorts t, n (>= 1) durations in ns, and summarises them. */
static inline struct bench_summary bench_summarise(int64_t *t, int n)
{
	struct bench_summary s;
	int64_t total = 0;

	for (int i = 0; i < n; i++)
		total += t[i];
	qsort(t, (size_t)n, sizeof(*t), bench_cmp64);
	s.p50_us = t[n / 2] / 1000.0;
	s.p99_us = t[(int64_t)n * 99 / 100] / 1000.0;
	s.per_s = total > 0 ? n / (total / 1e9) : 0.0;
	return s;
}

#endif
