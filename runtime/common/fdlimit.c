/*
 * fdlimit.c - RLIMIT_NOFILE raised to the hard limit and checked (fdlimit.h).
 */
#include "fdlimit.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/resource.h>

#include "log.h"
#include "status.h"
#include "util.h"

size_t fdlimit_count_plugins(const char *dir)
{
	struct dirent *de;
	size_t n = 0;
	DIR *d = opendir(dir);

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (len > 3 && strcmp(de->d_name + len - 3, ".so") == 0)
			n++;
	}
	closedir(d);
	return n;
}

/* The descriptors need asks for: for the plugins and executors alone
 * (*core) and with the API's connections (*all). */
static void needed(const struct fdlimit_need *need, rlim_t *core, rlim_t *all)
{
	*core = (rlim_t)need->plugins + 2 * (rlim_t)need->concurrency + FDLIMIT_RESERVE;
	*all = *core + need->connections;
}

static int too_few(const struct fdlimit_need *need, const struct rlimit *rl, char *err, size_t errlen)
{
	rlim_t core, all;

	needed(need, &core, &all);
	util_set_err(err, errlen, "too few file descriptors: RLIMIT_NOFILE is %llu (hard limit %llu), and %zu "
		     "plugins (a descriptor each while a generation is built and its zygote opens them) "
		     "with max_concurrency %u need at least %llu, %llu with http_max_connections %u; "
		     "raise the limit (LimitNOFILE= in the systemd unit, or ulimit -n as root)",
		     (unsigned long long)rl->rlim_cur, (unsigned long long)rl->rlim_max, need->plugins,
		     need->concurrency, (unsigned long long)core, (unsigned long long)all, need->connections);
	return STATUS_ETOOBIG;
}

int fdlimit_check(const struct fdlimit_need *need, char *err, size_t errlen)
{
	struct rlimit rl;
	rlim_t core, all;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		util_set_err(err, errlen, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
		return status_from_errno(errno);
	}
	needed(need, &core, &all);
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < core)
		return too_few(need, &rl, err, errlen);
	return 0;
}

int fdlimit_setup(const struct fdlimit_need *need, char *err, size_t errlen)
{
	struct rlimit rl;
	rlim_t was, core, all;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		util_set_err(err, errlen, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
		return status_from_errno(errno);
	}
	was = rl.rlim_cur;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
			log_warn("daemon", "RLIMIT_NOFILE: cannot raise the soft limit %llu to the hard limit %llu: %s",
				 (unsigned long long)was, (unsigned long long)rl.rlim_max, strerror(errno));
			rl.rlim_cur = was;
		} else {
			log_info("daemon", "RLIMIT_NOFILE raised from %llu to the hard limit %llu",
				 (unsigned long long)was, (unsigned long long)rl.rlim_cur);
		}
	}
	needed(need, &core, &all);
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < core)
		return too_few(need, &rl, err, errlen);
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < all)
		log_warn("daemon", "RLIMIT_NOFILE is %llu: with %zu plugins the API can hold about %llu of its "
			 "http_max_connections %u connections; raise LimitNOFILE= for more",
			 (unsigned long long)rl.rlim_cur, need->plugins, (unsigned long long)(rl.rlim_cur - core),
			 need->connections);
	return 0;
}
