/* pager: reads every page of PAGER_PATH (default /items) with host->paginate
 * in the provider's pagination style (PAGER_LIMIT, when set, is the page
 * size asked for) and merges {"paged": {"rc", "pages", "records", "items"}}
 * into the connection's metadata: items is the array of every page's
 * records array, in order. Fails when paginate does. */
#include <evscript/sdk.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

#define ITEMS_MAX 65536

struct acc {
	char *items; /* "[" page "," page ... */
	size_t len;
	long pages, records;
	int overflow;
};

static int on_page(void *user, const char *records_json, size_t n_records)
{
	struct acc *a = user;
	size_t n = strlen(records_json);

	if (a->len + n + 2 >= ITEMS_MAX) {
		a->overflow = 1;
		return 1;
	}
	a->items[a->len++] = a->pages ? ',' : '[';
	memcpy(a->items + a->len, records_json, n);
	a->len += n;
	a->items[a->len] = '\0';
	a->pages++;
	a->records += (long)n_records;
	return 0;
}

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	const char *path = NULL, *limit = NULL;
	struct evs_request req = {.size = sizeof(req)};
	struct evs_paginate_options opts = {.size = sizeof(opts)};
	struct acc a = {0};
	char *meta = NULL;
	int rc, ret = 1;

	(void)event;
	if (host->get_env(ctx, "PAGER_PATH", &path) != 0 || !path)
		path = "/items";
	if (host->get_env(ctx, "PAGER_LIMIT", &limit) == 0 && limit)
		opts.limit = (uint32_t)strtoul(limit, NULL, 10);
	req.endpoint = path;
	a.items = malloc(ITEMS_MAX);
	meta = malloc(ITEMS_MAX + 128);
	if (!a.items || !meta) {
		host->set_error(ctx, "out of memory");
		goto out;
	}
	strcpy(a.items, "[");
	rc = host->paginate(ctx, &req, &opts, on_page, &a);
	if (a.overflow) {
		host->set_error(ctx, "more than %d bytes of records", ITEMS_MAX);
		goto out;
	}
	if (a.pages == 0)
		a.len = 1;
	a.items[a.len] = ']';
	a.items[a.len + 1] = '\0';
	host->log(ctx, EVS_LOG_INFO, "paginate: %s, %ld pages, %ld records", evs_strerror(rc), a.pages,
		  a.records);
	snprintf(meta, ITEMS_MAX + 128, "{\"paged\":{\"rc\":%d,\"pages\":%ld,\"records\":%ld,\"items\":%s}}",
		 rc, a.pages, a.records, a.items);
	if (host->update_metadata(ctx, meta) != 0) {
		host->set_error(ctx, "could not record the pages");
		goto out;
	}
	if (rc != 0) {
		host->set_error(ctx, "paginate %s: %s", path, evs_strerror(rc));
		goto out;
	}
	ret = 0;
out:
	free(meta);
	free(a.items);
	return ret;
}
