/*
 * cli_util.h - what every evscript subcommand does the same way: say that
 * it failed ("evscript CMD: <message>" on stderr, exit 1), say that it was
 * called wrong (the message, then its usage, exit 2), and read its long
 * options from a table.
 */
#ifndef EVS_CLI_UTIL_H
#define EVS_CLI_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#define CLI_EXIT_USAGE 2

/* "evscript CMD: <message>\n" on stderr. */
void cli_vsay(const char *cmd, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* The same; returns EXIT_FAILURE. */
int cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* With fmt, "evscript CMD: <message>\n"; then usage (the command's usage
 * text, printed as it is) on stderr. Returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *usage, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* One long option of a subcommand, --name (or -ch), with an argument when
 * arg. Its argument goes to *str, or it sets *flag; or set(user, ch,
 * optarg) takes it and returns 0, or the exit status after saying why. */
struct cli_option {
	const char *name;
	int ch;
	bool arg;
	const char **str;
	bool *flag;
	int (*set)(void *user, int ch, const char *value);
};

/* Reads argv's options (argv[0] the subcommand's name) by opts (n of them)
 * and --help, with getopt_long. Returns 0 to go on, optind then being the
 * first positional argument; -1 after --help (usage printed on stdout: exit
 * 0); or the exit status (CLI_EXIT_USAGE with the usage on stderr, or what a
 * set returned). */
int cli_options(int argc, char **argv, const struct cli_option *opts, size_t n, void *user, const char *usage);

#endif
