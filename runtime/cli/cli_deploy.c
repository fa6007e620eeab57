/*
 * cli_deploy.c - `evscript deploy PLUGIN.so [--sign KEY] --plugin-dir DIR
 *                [--reload URL] [--secret-key KEY]`
 *
 * What docs/plugins.md used to ask of an author by hand, in order:
 *   1. read the plugin's own info (name, version, ABI, entry point);
 *   2. with --sign, sign it with the trusted comment that info gives;
 *      without, check that its .minisig's trusted comment agrees with it;
 *   3. copy NAME.so.minisig, then NAME.so, into DIR, each written to a
 *      temporary file there and rename()d into place (never overwriting a
 *      loaded .so in place);
 *   4. with --reload, POST URL/reload, then read GET URL/plugins and say
 *      whether this plugin's version is in service or why it was refused.
 * Exit 0 only when every step asked for succeeded.
 */
#include "cli_author.h"

#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sign.h"
#include "status.h"
#include "util.h"

struct deploy {
	const char *so, *sign_key, *dir, *url, *secret;
	struct cli_plugin_info info;
	char comment[400];
	char err[1024];
};

#define fail(...) cli_error("deploy", __VA_ARGS__)

static const char usage[] =
	"usage: evscript deploy PLUGIN.so [--sign SECFILE] --plugin-dir DIR [--reload URL] [--secret-key KEY]\n"
	"  signs (with --sign) with the trusted comment from the plugin's info, copies\n"
	"  NAME.so.minisig and NAME.so into DIR atomically, and with --reload asks the\n"
	"  daemon at URL (e.g. http://127.0.0.1:3003) to reload and reports the outcome.\n"
	"  The API secret: --secret-key or EVSCRIPT_SECRET_KEY.\n";

/* Step 2 without --sign: the signature that is there must be for this
 * name and version. */
static int check_signature(struct deploy *d, const char *sig_path)
{
	struct sign_sig sig;
	struct sign_comment c;
	char *text = NULL;
	size_t len;
	int ret;

	ret = util_read_file(sig_path, SIGN_MINISIG_MAX, &text, &len);
	if (ret)
		return fail("%s: %s (sign it with --sign SECFILE)", sig_path, status_str(ret));
	ret = sign_sig_parse(text, len, &sig);
	free(text);
	if (ret)
		return fail("%s: %s", sig_path, status_str(ret));
	if (sign_comment_parse(sig.trusted_comment, &c) != 0 || strcmp(c.plugin, d->info.name) != 0 ||
	    strcmp(c.version, d->info.version) != 0 || c.abi != d->info.abi_major)
		return fail("%s: its trusted comment is '%s' but the plugin is '%s': re-sign it (--sign SECFILE)",
			    sig_path, sig.trusted_comment, d->comment);
	return 0;
}

/* Step 3: one file into DIR/name, atomically. */
static int copy_in(const char *src, const char *dir, const char *name)
{
	char *data = NULL, *dst = NULL;
	size_t len;
	int ret;

	ret = util_read_file(src, CLI_PLUGIN_FILE_MAX, &data, &len);
	if (ret)
		return fail("%s: %s", src, status_str(ret));
	if (asprintf(&dst, "%s/%s", dir, name) < 0) {
		free(data);
		return fail("%s", status_str(STATUS_ENOMEM));
	}
	ret = util_write_file_atomic(dst, data, len, 0644);
	if (ret)
		fail("%s: %s", dst, status_str(ret));
	free(data);
	free(dst);
	return ret ? EXIT_FAILURE : 0;
}

/* The next element of plugins' list from *i on whose "name" is name (*i
 * then past it), or NULL. */
static struct json_object *next_named(struct json_object *plugins, const char *list, const char *name, size_t *i)
{
	struct json_object *arr, *e, *n;

	if (!json_object_object_get_ex(plugins, list, &arr))
		return NULL;
	while (*i < json_object_array_length(arr)) {
		e = json_object_array_get_idx(arr, (*i)++);
		if (json_object_object_get_ex(e, "name", &n) && strcmp(json_object_get_string(n), name) == 0)
			return e;
	}
	return NULL;
}

/* o's member key as a string (NULL when absent). */
static const char *member(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	json_object_object_get_ex(o, key, &v);
	return json_object_get_string(v);
}

/* The plugin's entry in GET /plugins: printed; 0 when its version is in
 * service. */
static int report(struct deploy *d, struct json_object *plugins)
{
	struct json_object *warnings, *v, *e;
	int status = EXIT_FAILURE;
	size_t i = 0;

	e = next_named(plugins, "refused", d->info.name, &i);
	if (e) {
		printf("%s %s: refused (%s): %s\n", d->info.name, d->info.version, member(e, "reason_code"),
		       member(e, "reason"));
		return EXIT_FAILURE;
	}
	for (i = 0; (e = next_named(plugins, "loaded", d->info.name, &i)) != NULL;) {
		if (strcmp(member(e, "version"), d->info.version) == 0) {
			printf("%s %s: in service (since generation %lld)\n", d->info.name, d->info.version,
			       (long long)json_object_get_int64(json_object_object_get(e, "generation")));
			status = 0;
		} else {
			printf("%s: version %s is in service, not %s\n", d->info.name, member(e, "version"),
			       d->info.version);
		}
	}
	if (status != 0 && !json_object_object_get_ex(plugins, "loaded", &v))
		printf("%s: GET /plugins gave no plugin list\n", d->info.name);
	if (json_object_object_get_ex(plugins, "warnings", &warnings))
		for (size_t i = 0; i < json_object_array_length(warnings); i++)
			printf("warning: %s\n", json_object_get_string(json_object_array_get_idx(warnings, i)));
	return status;
}

/* Step 4. */
static int reload(struct deploy *d)
{
	const char *secret = cli_secret(d->secret);
	struct json_object *doc = NULL;
	char *url = NULL, *body = NULL;
	long http = 0;
	int status = EXIT_FAILURE;

	if (asprintf(&url, "%s/reload", d->url) < 0)
		return fail("%s", status_str(STATUS_ENOMEM));
	if (cli_http("POST", url, secret, NULL, &http, &body, d->err, sizeof(d->err)) != 0) {
		fail("%s", d->err);
		goto out;
	}
	if (http == 401 || http == 409 || http >= 500 || (http == 422 && strstr(body, "config_error\":\""))) {
		fail("POST %s: HTTP %ld: %s", url, http, body);
		goto out;
	}
	free(body);
	body = NULL;
	free(url);
	if (asprintf(&url, "%s/plugins", d->url) < 0) {
		url = NULL;
		goto out;
	}
	if (cli_http("GET", url, secret, NULL, &http, &body, d->err, sizeof(d->err)) != 0 || http != 200) {
		fail("GET %s: %s", url, http ? body : d->err);
		goto out;
	}
	doc = json_tokener_parse(body);
	status = doc ? report(d, doc) : fail("GET %s: not JSON: %s", url, body);
out:
	json_object_put(doc);
	free(body);
	free(url);
	return status;
}

static int parse(int argc, char **argv, struct deploy *d)
{
	const struct cli_option opts[] = {
		{"sign", 's', true, &d->sign_key, NULL, NULL},
		{"plugin-dir", 'd', true, &d->dir, NULL, NULL},
		{"reload", 'r', true, &d->url, NULL, NULL},
		{"secret-key", 'k', true, &d->secret, NULL, NULL},
	};
	int ret = cli_options(argc, argv, opts, sizeof(opts) / sizeof(opts[0]), d, usage);

	if (ret)
		return ret;
	if (optind + 1 != argc || !d->dir)
		return cli_usage_error("deploy", usage, "%s",
				       optind + 1 != argc ? "give exactly one PLUGIN.so" : "--plugin-dir DIR is required");
	d->so = argv[optind];
	return 0;
}

int cmd_deploy(int argc, char **argv)
{
	struct deploy d;
	char *sig_path = NULL, name[300];
	int status;

	memset(&d, 0, sizeof(d));
	status = parse(argc, argv, &d);
	if (status)
		return status < 0 ? 0 : status;
	if (cli_plugin_info(d.so, &d.info, d.err, sizeof(d.err)) != 0)
		return fail("%s", d.err);
	cli_plugin_comment(&d.info, d.comment, sizeof(d.comment));
	if (asprintf(&sig_path, "%s.minisig", d.so) < 0)
		return fail("%s", status_str(STATUS_ENOMEM));
	if (d.sign_key) {
		status = cli_sign_file(d.sign_key, d.so, d.comment, sig_path, d.err, sizeof(d.err)) ? fail("%s", d.err) : 0;
		if (status == 0)
			printf("signed %s: %s\n", sig_path, d.comment);
	} else {
		status = check_signature(&d, sig_path);
	}
	snprintf(name, sizeof(name), "%s.so.minisig", d.info.name);
	if (status == 0)
		status = copy_in(sig_path, d.dir, name);
	snprintf(name, sizeof(name), "%s.so", d.info.name);
	if (status == 0)
		status = copy_in(d.so, d.dir, name);
	if (status == 0)
		printf("deployed %s %s (%s) into %s\n", d.info.name, d.info.version,
		       d.info.action ? "action" : "event script", d.dir);
	if (status == 0 && d.url)
		status = reload(&d);
	free(sig_path);
	return status;
}
