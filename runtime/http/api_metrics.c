/*
 * api_metrics.c - GET /metrics: the Prometheus text format (0.0.4).
 *
 * Four sources: the counters of runtime/common/metrics.h (executions by
 * integration, script, event and status; proxy responses; reloads), the
 * dispatcher's (duration histogram, running), the HTTP server's, and the
 * daemon process itself from /proc/self (Prometheus's standard process_*
 * names, so dashboards made for other exporters work).
 */
#include "api_priv.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "generation.h"
#include "metrics.h"
#include "util.h"

#define METRICS_TEXT_MAX (4u << 20)

/* The daemon's state now: generation, plugins, zygote, queue. */
static void put_state(struct dynbuf *t, struct api_context *ctx, struct generation *g)
{
	int64_t pending = 0;
	uint64_t wh[4];

	dynbuf_addf(t, "# HELP evscript_generation The generation in service.\n"
		       "# TYPE evscript_generation gauge\nevscript_generation %lld\n",
		    (long long)generation_number(g));
	dynbuf_addf(t, "# HELP evscript_plugins_loaded Plugins in service.\n"
		       "# TYPE evscript_plugins_loaded gauge\nevscript_plugins_loaded %zu\n",
		    generation_plugin_count(g));
	dynbuf_addf(t, "# HELP evscript_plugins_refused Plugins refused by the current generation.\n"
		       "# TYPE evscript_plugins_refused gauge\nevscript_plugins_refused %zu\n",
		    generation_refusal_count(g));
	dynbuf_addf(t, "# HELP evscript_zygote_restarts_total Times the current generation's zygote died and "
		       "was restarted.\n"
		       "# TYPE evscript_zygote_restarts_total counter\nevscript_zygote_restarts_total %llu\n",
		    (unsigned long long)executor_zygote_restarts(generation_executor(g)));
	dynbuf_addf(t, "# HELP evscript_zygote_up Whether the current generation's zygote is running (0: being "
		       "restarted).\n"
		       "# TYPE evscript_zygote_up gauge\nevscript_zygote_up %d\n",
		    executor_degraded(generation_executor(g)) ? 0 : 1);
	api_webhook_counters(wh);
	dynbuf_addf(t, "# HELP evscript_webhooks_total Incoming webhooks since start, by result.\n"
		       "# TYPE evscript_webhooks_total counter\n"
		       "evscript_webhooks_total{result=\"received\"} %llu\n"
		       "evscript_webhooks_total{result=\"bad_signature\"} %llu\n"
		       "evscript_webhooks_total{result=\"forwarded\"} %llu\n"
		       "evscript_webhooks_total{result=\"forward_failed\"} %llu\n",
		    (unsigned long long)wh[0], (unsigned long long)wh[1], (unsigned long long)wh[2],
		    (unsigned long long)wh[3]);
	if (store_event_count_pending(ctx->store, &pending) == 0)
		dynbuf_addf(t, "# HELP evscript_events_pending Events waiting for a worker (the queue).\n"
			       "# TYPE evscript_events_pending gauge\nevscript_events_pending %lld\n",
			    (long long)pending);
}

/* The duration histogram by event, and the runs in progress. */
static void put_dispatch(struct dynbuf *t, struct api_context *ctx)
{
	struct dispatch_stats ds;

	dispatch_get_stats(ctx->dispatch, &ds);
	dynbuf_add_str(t, "# HELP evscript_execution_duration_seconds Execution durations by event.\n"
			  "# TYPE evscript_execution_duration_seconds histogram\n");
	for (int k = 0; k < DISPATCH_STAT_KINDS; k++) {
		const char *ev = dispatch_stat_kind_name(k);

		for (int b = 0; b < DISPATCH_DURATION_BUCKETS; b++)
			dynbuf_addf(t, "evscript_execution_duration_seconds_bucket{event=\"%s\",le=\"%g\"} %llu\n",
				    ev, dispatch_duration_bounds[b], (unsigned long long)ds.duration_le[k][b]);
		dynbuf_addf(t, "evscript_execution_duration_seconds_bucket{event=\"%s\",le=\"+Inf\"} %llu\n"
			       "evscript_execution_duration_seconds_sum{event=\"%s\"} %.6f\n"
			       "evscript_execution_duration_seconds_count{event=\"%s\"} %llu\n",
			    ev, (unsigned long long)ds.duration_count[k], ev, ds.duration_sum_s[k], ev,
			    (unsigned long long)ds.duration_count[k]);
	}
	dynbuf_addf(t, "# HELP evscript_executions_running Executions running now.\n"
		       "# TYPE evscript_executions_running gauge\nevscript_executions_running %zu\n",
		    ds.running);
}

static void put_http(struct dynbuf *t, struct api_context *ctx)
{
	static const char *const classes[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
	struct http_stats hs;

	memset(&hs, 0, sizeof(hs));
	if (ctx->server)
		http_server_stats(ctx->server, &hs);
	dynbuf_add_str(t, "# HELP evscript_http_requests_total HTTP responses by status class.\n"
			  "# TYPE evscript_http_requests_total counter\n");
	for (int i = 0; i < 5; i++)
		dynbuf_addf(t, "evscript_http_requests_total{status=\"%s\"} %llu\n", classes[i],
			    (unsigned long long)hs.by_class[i]);
	dynbuf_addf(t, "# HELP evscript_http_requests_in_flight HTTP requests being processed.\n"
		       "# TYPE evscript_http_requests_in_flight gauge\nevscript_http_requests_in_flight %u\n",
		    hs.in_flight);
	dynbuf_addf(t, "# HELP evscript_http_connections_open HTTP connections open now.\n"
		       "# TYPE evscript_http_connections_open gauge\nevscript_http_connections_open %u\n",
		    hs.connections);
	dynbuf_addf(t, "# HELP evscript_http_refused_total Requests and connections refused (limits, "
		       "timeouts, shedding, bad requests), which the log sums up per 10 s.\n"
		       "# TYPE evscript_http_refused_total counter\nevscript_http_refused_total %llu\n",
		    (unsigned long long)hs.refused);
}

/* Open file descriptors: the entries of /proc/self/fd (less the one the
 * listing itself holds); -1 when it cannot be read. */
static long open_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *e;
	long n = 0;

	if (!dir)
		return -1;
	while ((e = readdir(dir)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(dir);
	return n > 0 ? n - 1 : 0;
}

/* The boot time from /proc/stat's btime, in seconds since the epoch; 0 when unknown. */
static long long boot_time(void)
{
	char *data = NULL, *p;
	size_t len;
	long long btime = 0;

	if (util_read_file("/proc/stat", 1u << 20, &data, &len) < 0)
		return 0;
	p = strstr(data, "\nbtime ");
	if (p)
		btime = strtoll(p + 7, NULL, 10);
	free(data);
	return btime;
}

/* process_* from /proc/self/stat: CPU, memory, threads, start time; fds. */
static void put_process(struct dynbuf *t)
{
	char *data = NULL, *p;
	size_t len;
	unsigned long long utime, stime, starttime, vsize;
	long long rss, threads;
	double tck = (double)sysconf(_SC_CLK_TCK);
	struct rlimit rl;
	long fds = open_fds();

	if (util_read_file("/proc/self/stat", 1u << 16, &data, &len) == 0 && (p = strrchr(data, ')')) &&
	    /* after "pid (comm)": state is field 3; utime 14, stime 15, threads 20,
	     * starttime 22, vsize 23, rss 24 */
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %lld %*d "
		   "%llu %llu %lld", &utime, &stime, &threads, &starttime, &vsize, &rss) == 6) {
		dynbuf_addf(t, "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
			       "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.2f\n",
			    (double)(utime + stime) / tck);
		dynbuf_addf(t, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
			       "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %lld\n",
			    rss * (long long)sysconf(_SC_PAGESIZE));
		dynbuf_addf(t, "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
			       "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes %llu\n",
			    vsize);
		dynbuf_addf(t, "# HELP process_threads Threads of the daemon process.\n"
			       "# TYPE process_threads gauge\nprocess_threads %lld\n", threads);
		dynbuf_addf(t, "# HELP process_start_time_seconds Start time of the process since unix epoch in "
			       "seconds.\n"
			       "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.2f\n",
			    (double)boot_time() + (double)starttime / tck);
	}
	free(data);
	if (fds >= 0)
		dynbuf_addf(t, "# HELP process_open_fds Number of open file descriptors.\n"
			       "# TYPE process_open_fds gauge\nprocess_open_fds %ld\n", fds);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		dynbuf_addf(t, "# HELP process_max_fds Maximum number of open file descriptors.\n"
			       "# TYPE process_max_fds gauge\nprocess_max_fds %llu\n",
			    (unsigned long long)rl.rlim_cur);
}

static int metrics_doc(struct api_context *ctx, struct generation *g, struct http_request *req,
		       struct http_response *resp)
{
	struct dynbuf t;
	int ret;

	(void)req;
	dynbuf_init(&t, METRICS_TEXT_MAX, 0);
	put_state(&t, ctx, g);
	metrics_render(&t);
	put_dispatch(&t, ctx);
	put_http(&t, ctx);
	put_process(&t);
	/* the adds' error is sticky: one check covers them all */
	ret = dynbuf_add(&t, "", 0);
	if (ret < 0)
		ret = http_respond_error(resp, 500, "server_error", "rendering the metrics failed: %s",
					 status_str(ret));
	else
		ret = http_respond_text(resp, 200, "text/plain; version=0.0.4", dynbuf_str(&t));
	dynbuf_free(&t);
	return ret;
}

API_GENERATION_ROUTE(api_metrics, metrics_doc)
