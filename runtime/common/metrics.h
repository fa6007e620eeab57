/*
 * metrics.h - the daemon's process-wide counters for GET /metrics, fed by
 * the parts that see what is counted (dispatch: executions; hostapi: proxy
 * responses; the daemon: reloads) and rendered by the API.
 *
 * The registry is one per process, created on first use and never freed
 * (a counter outlives every generation, as Prometheus expects of a
 * counter). Every function is thread-safe and never fails the caller: a
 * series that cannot be added (out of memory, or METRICS_SERIES_MAX series
 * already) is counted in evscript_metrics_series_dropped_total instead.
 */
#ifndef EVS_COMMON_METRICS_H
#define EVS_COMMON_METRICS_H

#include <stdbool.h>

#include "dynbuf.h"

#define METRICS_SERIES_MAX 4096 /* label sets of evscript_executions_total */

/* One finished execution: integration (provider config key), script (the
 * plugin name, or the action's), event (an event name, or "action") and
 * status (a final status name). Copies what it keeps. */
void metrics_execution(const char *integration, const char *script, const char *event,
		       const char *status);

/* One proxied request's outcome: the provider's HTTP status, or 0 when no
 * response arrived (network error, timeout, refused URL). */
void metrics_proxy(long http_status);

/* One reload that switched (ok) or kept the running generation (!ok), and
 * how many plugins it refused. */
void metrics_reload(bool ok, unsigned long refused);

/* Appends the registry's families in the Prometheus text format (0.0.4):
 * evscript_executions_total{integration,script,event,status},
 * evscript_proxy_requests_total{status}, evscript_reloads_total,
 * evscript_reload_failures_total, evscript_reload_refusals_total and
 * evscript_metrics_series_dropped_total. Returns 0 or the dynbuf's error. */
int metrics_render(struct dynbuf *out);

/* Appends `value` escaped as a Prometheus label value (\\, \", \n). */
int metrics_label_value(struct dynbuf *out, const char *value);

#endif
