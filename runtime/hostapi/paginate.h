/*
 * paginate.h - host->paginate()'s paging logic (Nango's cursor, link and
 * offset styles) over any request transport.
 *
 * Pure bookkeeping over JSON (json-c only: no libcurl, no credentials), so
 * that it runs where the plugin runs: the page callback is plugin code.
 *   - in-process: proxy_paginate() runs it over proxy_request();
 *   - isolated: the executor runs it over its RPC proxy (each page is one
 *     proxy call served by the daemon), with the provider's paginate
 *     settings fetched from the daemon (paginate_settings_to_json/from_json).
 */
#ifndef EVS_PAGINATE_H
#define EVS_PAGINATE_H

#include <evscript/sdk.h>
#include <json-c/json.h>
#include <stdarg.h>

#include "config.h"

/* Where the pages come from. request: EVS_OK with *resp whenever an HTTP
 * response arrived (any status; freed with free_response), or an EVS_E*
 * code. log (may be NULL) receives paginate's error lines (level: an enum
 * evs_log_level) as a printf format and its arguments, for the transport
 * to format once, as it formats its own lines. */
struct paginate_transport {
	int (*request)(void *user, const struct evs_request *req, struct evs_response **resp);
	void (*free_response)(void *user, struct evs_response *resp);
	void (*log)(void *user, int level, const char *fmt, va_list ap);
	void *user;
};

/* Paginates req in the style of settings (the provider's; opts, which may
 * be NULL, override it) through t, calling on_page with each non-empty
 * page's records (a JSON array, lent for the call). Stops on an empty or
 * missing records array, at the last page (no next cursor or link; an
 * offset page shorter than the limit), after max_pages, or when on_page
 * returns non-zero; all of those are EVS_OK. A non-2xx page or a body that
 * is not JSON is EVS_EFAILED (logged); a page whose records are not an
 * array is EVS_EFAILED; t->request's errors pass through. */
int paginate_run(const struct config_paginate *settings, const struct paginate_transport *t,
		 const struct evs_request *req, const struct evs_paginate_options *opts,
		 evs_page_fn on_page, void *user);

/* The settings as JSON: {"type": "none"|"cursor"|"link"|"offset", "<field>":
 * "...", ...} (no secrets in them). to_json: a new object owned by the
 * caller, NULL on allocation failure. from_json fills *out (zeroed first;
 * free its strings with config_paginate_clear, also on failure):
 * EVS_EINVAL for a malformed document, EVS_ENOMEM. copy: the same, from src. */
struct json_object *paginate_settings_to_json(const struct config_paginate *p);
int paginate_settings_from_json(struct json_object *o, struct config_paginate *out);
int paginate_settings_copy(const struct config_paginate *src, struct config_paginate *out);

#endif
