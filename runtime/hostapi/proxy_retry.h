/*
 * proxy_retry.h - private to runtime/hostapi: the provider's
 * proxy.retry.error_code and proxy.retry.in_body rules (config.h, struct
 * config_retry), as proxy.c applies them to a response.
 */
#ifndef EVS_PROXY_RETRY_H
#define EVS_PROXY_RETRY_H

#include <evscript/sdk.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"

/* Whether status is one of error_code's ("429", "5xx"...). */
bool proxy_retry_status_listed(const struct config_retry *rt, int status);

/* When r's JSON body matches in_body: the wait it asks for, in
 * milliseconds (0 when its time is past or unreadable); -1 when in_body is
 * not set or does not match. */
int64_t proxy_retry_in_body(const struct config_retry *rt, const struct evs_response *r);

#endif
