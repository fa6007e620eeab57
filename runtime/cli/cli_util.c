/*
 * cli_util.c - failures, usage errors and long options, said and read the
 * same way by every evscript subcommand (cli_util.h).
 */
#include "cli_util.h"

#include <getopt.h>
#include <stdlib.h>

#define MAX_OPTIONS 16

void cli_vsay(const char *cmd, const char *fmt, va_list ap)
{
	fprintf(stderr, "evscript %s: ", cmd);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

int cli_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cli_vsay(cmd, fmt, ap);
	va_end(ap);
	return EXIT_FAILURE;
}

int cli_usage_error(const char *cmd, const char *usage, const char *fmt, ...)
{
	va_list ap;

	if (fmt) {
		va_start(ap, fmt);
		cli_vsay(cmd, fmt, ap);
		va_end(ap);
	}
	fputs(usage, stderr);
	return CLI_EXIT_USAGE;
}

int cli_options(int argc, char **argv, const struct cli_option *opts, size_t n, void *user, const char *usage)
{
	struct option longopts[MAX_OPTIONS + 2];
	char optstring[2 * MAX_OPTIONS + 2];
	size_t len = 0;
	int ch;

	if (n > MAX_OPTIONS)
		return cli_error(argv[0], "too many options for cli_options()");
	for (size_t i = 0; i < n; i++) {
		longopts[i] = (struct option){opts[i].name, opts[i].arg ? required_argument : no_argument, NULL,
					      opts[i].ch};
		optstring[len++] = (char)opts[i].ch;
		if (opts[i].arg)
			optstring[len++] = ':';
	}
	longopts[n] = (struct option){"help", no_argument, NULL, 'h'};
	longopts[n + 1] = (struct option){NULL, 0, NULL, 0};
	optstring[len++] = 'h';
	optstring[len] = '\0';
	optind = 1;
	while ((ch = getopt_long(argc, argv, optstring, longopts, NULL)) != -1) {
		const struct cli_option *o = NULL;
		int ret = 0;

		for (size_t i = 0; i < n && !o; i++)
			if (opts[i].ch == ch)
				o = &opts[i];
		if (ch == 'h') {
			fputs(usage, stdout);
			return -1;
		}
		if (!o)
			return cli_usage_error(argv[0], usage, NULL);
		if (o->set)
			ret = o->set(user, ch, optarg);
		else if (o->str)
			*o->str = optarg;
		else
			*o->flag = true;
		if (ret)
			return ret;
	}
	return 0;
}
