/*
 * cli_http.c - the author's commands talking to a running daemon: one
 * request with libcurl, the bearer secret from the command line or the
 * environment.
 */
#include "cli_author.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynbuf.h"
#include "status.h"
#include "util.h"

#define RESPONSE_MAX (16u << 20)

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *user)
{
	return dynbuf_add(user, ptr, size * nmemb) == 0 ? size * nmemb : 0;
}

const char *cli_secret(const char *secret_opt)
{
	const char *env = getenv("EVSCRIPT_SECRET_KEY");

	if (secret_opt && *secret_opt)
		return secret_opt;
	return env && *env ? env : NULL;
}

int cli_http(const char *method, const char *url, const char *secret, const char *body, long *status,
	     char **out, char *err, size_t errlen)
{
	struct curl_slist *headers = NULL;
	struct dynbuf auth, resp;
	CURLcode rc;
	CURL *c;
	int ret = 0;

	*out = NULL;
	*status = 0;
	dynbuf_init(&auth, 4096, DYNBUF_WIPE);
	dynbuf_init(&resp, RESPONSE_MAX, 0);
	c = curl_easy_init();
	if (!c) {
		util_set_err(err, errlen, "libcurl could not start");
		return STATUS_ENOMEM;
	}
	headers = curl_slist_append(headers, "Content-Type: application/json");
	if (secret && dynbuf_addf(&auth, "Authorization: Bearer %s", secret) == 0)
		headers = curl_slist_append(headers, dynbuf_str(&auth));
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (body)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	else if (strcmp(method, "POST") == 0)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		util_set_err(err, errlen, "%s %s: %s", method, url, curl_easy_strerror(rc));
		ret = STATUS_ENETWORK;
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	if (dynbuf_take(&resp, out, NULL) != 0) {
		util_set_err(err, errlen, "%s %s: the response is larger than 16 MiB", method, url);
		ret = STATUS_ETOOBIG;
	}
out:
	curl_slist_free_all(headers);
	curl_easy_cleanup(c);
	dynbuf_free(&auth);
	dynbuf_free(&resp);
	return ret;
}
