/*
 * cli_author.h - the plugin author's subcommands of `evscript` and what they
 * share: reading a plugin's own info, signing a plugin with it, and talking
 * to a running daemon.
 *
 * Each subcommand is one file (cli_deploy.c, cli_run.c, cli_new.c) with one
 * entry point, int cmd_NAME(int argc, char **argv), argv[0] being the
 * subcommand's name; it returns the exit status: 0 success, 1 failure (the
 * reason on stderr, prefixed "evscript NAME: "), 2 usage error.
 */
#ifndef EVS_CLI_AUTHOR_H
#define EVS_CLI_AUTHOR_H

#include <stdbool.h>
#include <stddef.h>

#include "cli_util.h"

#define CLI_PLUGIN_FILE_MAX (64u << 20) /* the loader's default cap */

/* What a plugin file says about itself (struct evs_plugin_info and which
 * entry point it exports). */
struct cli_plugin_info {
	char name[256];
	char version[64];
	unsigned abi_major, abi_minor;
	bool action;            /* run_action; else on_event */
};

/* Reads path's plugin info by dlopen()ing it in a child process (its ELF
 * constructors run there, never in this one; a crash there is reported,
 * not suffered). Checks what the daemon will: the info exists with a valid
 * name and an X.Y.Z version, the ABI major is this SDK's, and exactly one
 * entry point is exported. Returns 0, or a status code with one line in err
 * ("hello.so: exports no evs_plugin_info (EVS_PLUGIN missing?)"). */
int cli_plugin_info(const char *path, struct cli_plugin_info *info, char *err, size_t errlen);

/* The trusted comment the daemon expects for info:
 * "plugin:NAME version:X.Y.Z abi:MAJOR", into buf. */
void cli_plugin_comment(const struct cli_plugin_info *info, char *buf, size_t len);

/* Signs file with the secret key at sec_path and trusted comment trusted,
 * writing sig_path atomically (mode 0644). 0, or a status code with err. */
int cli_sign_file(const char *sec_path, const char *file, const char *trusted, const char *sig_path,
		  char *err, size_t errlen);

/* One request to a running daemon's API (libcurl): method and url, the
 * bearer secret (may be NULL), an optional JSON body. On a response, 0 with
 * *status and *body (malloc'd JSON text, at most 16 MiB; owned by the
 * caller); else a status code with err. */
int cli_http(const char *method, const char *url, const char *secret, const char *body, long *status,
	     char **out, char *err, size_t errlen);

/* The daemon's secret for the API: secret_opt, else EVSCRIPT_SECRET_KEY,
 * else NULL. */
const char *cli_secret(const char *secret_opt);

/* The subcommands. */
int cmd_deploy(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_new(int argc, char **argv);

#endif
