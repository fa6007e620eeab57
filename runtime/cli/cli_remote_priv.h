/*
 * cli_remote_priv.h - shared by cli_remote.c (options, HTTP with libcurl,
 * server-sent events) and cli_remote_cmds.c (the commands); not an interface
 * (cli_remote.h is evscript.c's).
 */
#ifndef EVS_CLI_REMOTE_PRIV_H
#define EVS_CLI_REMOTE_PRIV_H

#include <curl/curl.h>
#include <json-c/json.h>
#include <stdbool.h>

#include "cli_remote.h"
#include "cli_util.h"

/* The options a command accepts, as bits. */
enum {
	OPT_FOLLOW = 1 << 0,
	OPT_FILTERS = 1 << 1,      /* --integration, --connection, --script, --event, --status, --limit */
	OPT_INTEGRATION = 1 << 2,  /* --integration alone */
};

struct opts {
	const char *cmd;
	const char *url, *secret, *integration, *connection, *script, *event, *status, *limit;
	size_t url_len;            /* url without its trailing slashes */
	bool follow, json;
	const char *arg;           /* the one positional argument (logs: the execution id) */
};

struct remote {
	const struct opts *o;
	CURL *curl;
	struct curl_slist *headers;
	char *auth;                /* "Authorization: Bearer ..."; wiped */
};

/* "evscript CMD: <message>" on stderr (o's command); returns EXIT_FAILURE. */
#define cli_fail(o, ...) cli_error((o)->cmd, __VA_ARGS__)

/* Parses a command's argv (argv[0] its name) into o: the options in
 * `allowed` (OPT_*) besides --url, --secret-key, --json and --help, and with
 * want_arg one positional argument. Returns -1 to go on, else the exit
 * status (0 after --help, CLI_EXIT_USAGE with the usage on stderr). */
int cli_parse(int argc, char **argv, unsigned allowed, bool want_arg, struct opts *o);

/* Sets r up for o's daemon; 0, or EXIT_FAILURE after saying why.
 * cli_remote_close() wipes the secret and frees; it accepts a closed r. */
int cli_remote_open(struct remote *r, const struct opts *o);
void cli_remote_close(struct remote *r);

/* Sends METHOD to the daemon's path (query string included); *status the
 * HTTP status, *doc the JSON body (a new reference; NULL when not JSON).
 * 0, or 1 after saying why on stderr (no answer, 401). */
int cli_call(struct remote *r, const char *method, const char *path, long *status, struct json_object **doc);

/* GET path expecting 200 and JSON: 0 with *doc, or 1 after saying why. */
int cli_get_json(struct remote *r, const char *path, struct json_object **doc);

/* Says what an API error body says; returns EXIT_FAILURE. */
int cli_api_fail(struct remote *r, const char *what, long status, struct json_object *doc);

/* Follows the server-sent events of path: on_event(name, data, user) for
 * each, until the stream ends (0), on_event returns non-zero (that value),
 * or the request fails (1, said on stderr). */
typedef int (*cli_event_fn)(const char *name, struct json_object *data, void *user);
int cli_stream(struct remote *r, const char *path, cli_event_fn on_event, void *user);

/* A member's string value; NULL when absent or null (cli_str_or: dflt). */
const char *cli_str(struct json_object *o, const char *key);
const char *cli_str_or(struct json_object *o, const char *key, const char *dflt);

/* o as compact JSON on its own line. */
void cli_print_json(struct json_object *o);

#endif
