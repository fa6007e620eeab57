/*
 * cli_remote.h - the evscript subcommands that talk to a running evscriptd
 * over its HTTP API (cli_remote.c): status, plugins, reload, connections,
 * executions [--follow], logs EXECUTION [--follow].
 *
 * cli_remote() takes the command's argv (argv[0] is its name) and returns the exit
 * status: 0 success, 1 failure (the reason on stderr), 2 usage error. The
 * daemon is found with --url or EVSCRIPT_URL (default
 * http://127.0.0.1:3003), its secret with --secret-key or
 * EVSCRIPT_SECRET_KEY.
 */
#ifndef EVS_CLI_REMOTE_H
#define EVS_CLI_REMOTE_H

#define CLI_REMOTE_DEFAULT_URL "http://127.0.0.1:3003"

/* The usage lines, for evscript's command table and the commands' --help. */
#define CLI_COMMON_OPTS "[--url URL] [--secret-key KEY] [--json]"
#define CLI_USAGE_STATUS "status " CLI_COMMON_OPTS
#define CLI_USAGE_PLUGINS "plugins " CLI_COMMON_OPTS
#define CLI_USAGE_RELOAD "reload " CLI_COMMON_OPTS
#define CLI_USAGE_CONNECTIONS "connections [--integration ID] " CLI_COMMON_OPTS
#define CLI_USAGE_EXECUTIONS                                                                    \
	"executions [--follow] [--integration ID] [--connection ID] [--script NAME] [--event EVENT] " \
	"[--status STATUS] [--limit N] " CLI_COMMON_OPTS
#define CLI_USAGE_LOGS "logs EXECUTION_ID [--follow] " CLI_COMMON_OPTS

/* Runs the command argv[0] names (status, plugins, reload, connections,
 * executions or logs). */
int cli_remote(int argc, char **argv);

#endif
