/*
 * zygote_main.c - evscript-zygote: the executor's zygote as a small binary
 * of its own (libc, libdl, json-c; see zygote.c). evscriptd starts one per
 * generation with posix_spawn as `evscript-zygote 3`, its end of the ctl
 * socket on fd 3. Not meant to be run by hand.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "zygote.h"

int main(int argc, char **argv)
{
	struct stat st;
	char *end = NULL;
	long fd = argc == 2 ? strtol(argv[1], &end, 10) : -1;

	if (argc != 2 || !end || *end != '\0' || fd < 0 || fd > 65535 ||
	    fstat((int)fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
		fprintf(stderr, "evscript-zygote: internal to evscriptd, which starts it with a "
				"socket (usage: evscript-zygote FD)\n");
		return 2;
	}
	return executor_zygote_main((int)fd);
}

/* LeakSanitizer (sanitizer builds) asks this before its check at exit. An
 * executor that a plugin ends with exit() runs under a seccomp filter that
 * refuses what the check needs (ptrace), and its heap is the zygote's
 * copy: the zygote itself is checked when it exits. */
__attribute__((visibility("default"))) int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void)
{
	return executor_zygote_in_executor();
}
