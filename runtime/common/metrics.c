/*
 * metrics.c - the process-wide counters of metrics.h.
 *
 * Executions are few label sets in practice (integrations x scripts x 4
 * events x 5 statuses), kept in an array searched linearly under one lock:
 * counting costs a few string compares per execution, nothing next to the
 * fork and the store writes around it.
 */
#include "metrics.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PROXY_STATUS_SLOTS 600 /* 0: no response; 100..599 */

struct exec_series {
	char *integration, *script, *event, *status;
	uint64_t count;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct exec_series *series;
static size_t n_series, cap_series;
static uint64_t series_dropped;
static uint64_t proxy_by_status[PROXY_STATUS_SLOTS];
static uint64_t proxy_other;       /* a status outside 100..599 */
static uint64_t reloads, reload_failures, reload_refusals;

static bool same(const struct exec_series *s, const char *integration, const char *script,
		 const char *event, const char *status)
{
	return strcmp(s->integration, integration) == 0 && strcmp(s->script, script) == 0 &&
	       strcmp(s->event, event) == 0 && strcmp(s->status, status) == 0;
}

/* Adds a series with count 0; NULL when it cannot. Called with lock. */
static struct exec_series *add_series(const char *integration, const char *script, const char *event,
				      const char *status)
{
	struct exec_series *s;

	if (n_series == METRICS_SERIES_MAX)
		return NULL;
	if (n_series == cap_series) {
		size_t cap = cap_series ? cap_series * 2 : 32;
		struct exec_series *grown = realloc(series, cap * sizeof(*grown));

		if (!grown)
			return NULL;
		series = grown;
		cap_series = cap;
	}
	s = &series[n_series];
	s->integration = strdup(integration);
	s->script = strdup(script);
	s->event = strdup(event);
	s->status = strdup(status);
	s->count = 0;
	if (!s->integration || !s->script || !s->event || !s->status) {
		free(s->integration);
		free(s->script);
		free(s->event);
		free(s->status);
		return NULL;
	}
	n_series++;
	return s;
}

void metrics_execution(const char *integration, const char *script, const char *event,
		       const char *status)
{
	struct exec_series *s = NULL;

	integration = integration ? integration : "";
	script = script ? script : "";
	event = event ? event : "";
	status = status ? status : "";
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < n_series && !s; i++)
		if (same(&series[i], integration, script, event, status))
			s = &series[i];
	if (!s)
		s = add_series(integration, script, event, status);
	if (s)
		s->count++;
	else
		series_dropped++;
	pthread_mutex_unlock(&lock);
}

void metrics_proxy(long http_status)
{
	pthread_mutex_lock(&lock);
	if (http_status == 0 || (http_status >= 100 && http_status < PROXY_STATUS_SLOTS))
		proxy_by_status[http_status]++;
	else
		proxy_other++;
	pthread_mutex_unlock(&lock);
}

void metrics_reload(bool ok, unsigned long refused)
{
	pthread_mutex_lock(&lock);
	reloads++;
	if (!ok)
		reload_failures++;
	reload_refusals += refused;
	pthread_mutex_unlock(&lock);
}

int metrics_label_value(struct dynbuf *out, const char *value)
{
	int ret = 0;

	for (const char *p = value; *p && ret == 0; p++) {
		if (*p == '\\')
			ret = dynbuf_add_str(out, "\\\\");
		else if (*p == '"')
			ret = dynbuf_add_str(out, "\\\"");
		else if (*p == '\n')
			ret = dynbuf_add_str(out, "\\n");
		else
			ret = dynbuf_add(out, p, 1);
	}
	return ret;
}

/* evscript_executions_total. Called with lock. */
static void render_executions(struct dynbuf *out)
{
	dynbuf_add_str(out, "# HELP evscript_executions_total Finished executions by integration, script, "
			    "event (or action) and status, since start.\n"
			    "# TYPE evscript_executions_total counter\n");
	for (size_t i = 0; i < n_series; i++) {
		const struct exec_series *s = &series[i];

		dynbuf_add_str(out, "evscript_executions_total{integration=\"");
		metrics_label_value(out, s->integration);
		dynbuf_add_str(out, "\",script=\"");
		metrics_label_value(out, s->script);
		dynbuf_add_str(out, "\",event=\"");
		metrics_label_value(out, s->event);
		dynbuf_add_str(out, "\",status=\"");
		metrics_label_value(out, s->status);
		dynbuf_addf(out, "\"} %llu\n", (unsigned long long)s->count);
	}
}

/* evscript_proxy_requests_total. Called with lock. */
static void render_proxy(struct dynbuf *out)
{
	dynbuf_add_str(out, "# HELP evscript_proxy_requests_total Requests scripts made through proxy(), by the "
			    "provider's HTTP status (\"error\": no response).\n"
			    "# TYPE evscript_proxy_requests_total counter\n");
	for (int st = 0; st < PROXY_STATUS_SLOTS; st++) {
		if (proxy_by_status[st] == 0)
			continue;
		if (st == 0)
			dynbuf_add_str(out, "evscript_proxy_requests_total{status=\"error\"}");
		else
			dynbuf_addf(out, "evscript_proxy_requests_total{status=\"%d\"}", st);
		dynbuf_addf(out, " %llu\n", (unsigned long long)proxy_by_status[st]);
	}
	if (proxy_other)
		dynbuf_addf(out, "evscript_proxy_requests_total{status=\"other\"} %llu\n",
			    (unsigned long long)proxy_other);
}

int metrics_render(struct dynbuf *out)
{
	int ret;

	pthread_mutex_lock(&lock);
	render_executions(out);
	render_proxy(out);
	/* the last add returns the first error of them all (sticky) */
	ret = dynbuf_addf(out, "# HELP evscript_reloads_total Reloads (SIGHUP or POST /reload) since start.\n"
			 "# TYPE evscript_reloads_total counter\nevscript_reloads_total %llu\n"
			 "# HELP evscript_reload_failures_total Reloads that kept the running generation "
			 "(a config error).\n"
			 "# TYPE evscript_reload_failures_total counter\nevscript_reload_failures_total %llu\n"
			 "# HELP evscript_reload_refusals_total Plugins refused by reloads since start.\n"
			 "# TYPE evscript_reload_refusals_total counter\nevscript_reload_refusals_total %llu\n"
			 "# HELP evscript_metrics_series_dropped_total Executions not counted: too many label "
			 "sets.\n"
			 "# TYPE evscript_metrics_series_dropped_total counter\n"
			 "evscript_metrics_series_dropped_total %llu\n",
		    (unsigned long long)reloads, (unsigned long long)reload_failures,
		    (unsigned long long)reload_refusals, (unsigned long long)series_dropped);
	pthread_mutex_unlock(&lock);
	return ret;
}
