/*
 * github.c - the GitHub example plugins' shared helpers (github.h).
 */
#include "github.h"

#include <stdio.h>
#include <string.h>

const char *github_string_field(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

int github_valid_name(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > 100 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return 0;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") == n;
}

/* The hook's id from GitHub's answer, or -1 after set_error(). */
static long long hook_id(const struct evs_host *host, struct evs_ctx *ctx, const char *owner, const char *repo,
			 const struct evs_response *resp)
{
	struct json_object *reply = json_tokener_parse(resp->body), *id; /* NULL when the body is not JSON */
	const char *msg = github_string_field(reply, "message");
	long long value = -1;

	if (resp->status < 200 || resp->status >= 300)
		host->set_error(ctx, "GitHub refused to create the webhook on %s/%s (HTTP %d): %s", owner, repo,
				resp->status, msg ? msg : "no message");
	else if (!json_object_object_get_ex(reply, "id", &id) || !json_object_is_type(id, json_type_int))
		host->set_error(ctx, "GitHub's reply has no webhook id");
	else
		value = json_object_get_int64(id);
	json_object_put(reply);
	return value;
}

long long github_create_hook(const struct evs_host *host, struct evs_ctx *ctx, const char *owner,
			     const char *repo, const char *url, struct json_object *events)
{
	struct json_object *body = json_object_new_object(), *config = json_object_new_object();
	struct evs_header content_type = {"Content-Type", "application/json"};
	struct evs_request req = {.size = sizeof(req), .method = "POST", .headers = &content_type,
				  .n_headers = 1, .retries = 0};
	struct evs_response *resp = NULL;
	char path[320];
	long long id = -1;
	int ret;

	json_object_object_add(config, "url", json_object_new_string(url));
	json_object_object_add(config, "content_type", json_object_new_string("json"));
	json_object_object_add(body, "name", json_object_new_string("web"));
	json_object_object_add(body, "active", json_object_new_boolean(1));
	json_object_object_add(body, "events", events);
	json_object_object_add(body, "config", config);
	snprintf(path, sizeof(path), "/repos/%s/%s/hooks", owner, repo);
	req.endpoint = path;
	req.body = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN);
	req.body_len = strlen(req.body);
	ret = host->proxy(ctx, &req, &resp);
	if (ret != EVS_OK) {
		host->set_error(ctx, "POST %s: %s", path, evs_strerror(ret));
	} else {
		id = hook_id(host, ctx, owner, repo, resp);
		host->free_response(ctx, resp);
	}
	json_object_put(body);
	return id;
}
