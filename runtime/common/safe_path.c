/*
 * safe_path.c - StrictModes for the trust anchors (see safe_path.h).
 */
#include "safe_path.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "status.h"
#include "util.h"

/* One component: NULL when it passes, else why not. */
static const char *unsafe(const struct stat *st, bool ancestor, char *why, size_t whylen)
{
	uid_t me = geteuid();

	if (st->st_uid != 0 && st->st_uid != me) {
		util_set_err(why, whylen, "is owned by uid %u, neither root nor the daemon's user (uid %u)",
			     (unsigned)st->st_uid, (unsigned)me);
		return why;
	}
	if ((st->st_mode & (S_IWGRP | S_IWOTH)) == 0)
		return NULL;
	if (ancestor && S_ISDIR(st->st_mode) && (st->st_mode & S_ISVTX) && st->st_uid == 0)
		return NULL;   /* /tmp: others cannot rename or remove our entry */
	util_set_err(why, whylen, "is writable by %s (mode %04o)",
		     (st->st_mode & S_IWOTH) ? "others" : "its group", (unsigned)(st->st_mode & 07777));
	return why;
}

int safe_path_check(const char *path, char *err, size_t errlen)
{
	char real[PATH_MAX], why[160];
	struct stat st;
	bool ancestor = false;
	int ret;

	if (realpath(path, real) == NULL) {
		ret = status_from_errno(errno);
		util_set_err(err, errlen, "%s", status_str(ret));
		return ret;
	}
	for (;;) {
		if (stat(real, &st) != 0) {
			ret = status_from_errno(errno);
			util_set_err(err, errlen, "%s: %s", real, status_str(ret));
			return ret;
		}
		if (unsafe(&st, ancestor, why, sizeof(why))) {
			if (ancestor)
				util_set_err(err, errlen, "refused: its directory %s %s", real, why);
			else
				util_set_err(err, errlen, "refused: it %s", why);
			return STATUS_EDENIED;
		}
		if (strcmp(real, "/") == 0)
			return 0;
		{
			char *slash = strrchr(real, '/');

			if (slash == real)
				slash[1] = '\0';
			else
				*slash = '\0';
		}
		ancestor = true;
	}
}
