/*
 * github.h - what the GitHub example plugins (github-webhooks, an event
 * script, and create-webhook, an action) share: reading JSON members,
 * checking repository names, and creating a repository webhook through
 * host->proxy(). Compiled into each of them (github.c); nothing here is
 * exported from a plugin.
 */
#ifndef EVS_EXAMPLE_GITHUB_H
#define EVS_EXAMPLE_GITHUB_H

#include <evscript/sdk.h>

#include <json-c/json.h>

/* o.key when it is a string, else NULL (borrowed from o). */
const char *github_string_field(struct json_object *o, const char *key);

/* GitHub owner and repository names: letters, digits, '.', '-', '_'. */
int github_valid_name(const char *s);

/* POST /repos/owner/repo/hooks {"name":"web","active":true,"events":events,
 * "config":{"url":url,"content_type":"json"}}, not retried (a creation must
 * not run twice); takes events. Returns the new hook's id, or -1 after
 * set_error() (the request failed, GitHub refused, or its reply has no id). */
long long github_create_hook(const struct evs_host *host, struct evs_ctx *ctx, const char *owner,
			     const char *repo, const char *url, struct json_object *events);

#endif
