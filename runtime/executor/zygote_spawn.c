/*
 * zygote_spawn.c - how the daemon starts the zygote (executor_new(), and
 * restart_zygote() in executor.c): where the evscript-zygote binary is
 * found, and what it inherits. Why it is a process of its own is told at
 * the top of zygote.c.
 */
#include "zygote.h"
#include "executor.h"
#include "wire.h"
#include "status.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

/* The zygote binary: path, else evscript-zygote next to this program,
 * else in ../libexec/evscript/ from it (the installed layout). */
static int find_zygote(const char *path, char *out, size_t cap, char *err, size_t errlen)
{
	char self[PATH_MAX], *slash;
	ssize_t n;
	int k;

	if (path) {
		if (access(path, X_OK) != 0) {
			util_set_err(err, errlen, "cannot start the zygote: %s: %s", path, strerror(errno));
			return STATUS_ENOTFOUND;
		}
		snprintf(out, cap, "%s", path);
		return 0;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0) {
		util_set_err(err, errlen, "cannot start the zygote: readlink /proc/self/exe: %s",
			     strerror(errno));
		return STATUS_ENOTFOUND;
	}
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	k = snprintf(out, cap, "%s/" EXECUTOR_ZYGOTE_NAME, self);
	if (k > 0 && (size_t)k < cap && access(out, X_OK) == 0)
		return 0;
	k = snprintf(out, cap, "%s/../libexec/evscript/" EXECUTOR_ZYGOTE_NAME, self);
	if (k > 0 && (size_t)k < cap && access(out, X_OK) == 0)
		return 0;
	util_set_err(err, errlen, "cannot start the zygote: no executable " EXECUTOR_ZYGOTE_NAME
		     " in %s/ nor in %s/../libexec/evscript/ (it is installed with evscriptd)", self, self);
	return STATUS_ENOTFOUND;
}

/* The zygote's environment: the daemon's holds secrets (the API key, the
 * store's encryption key), so the zygote, and every plugin forked from it,
 * gets only these, when set: how to find libraries, and the sanitizers'
 * and the executors' debugging switches. */
static const char *const zygote_env_names[] = {
	"LD_LIBRARY_PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
	"EVSCRIPT_EXECUTOR_STDERR",
};
#define ZYGOTE_ENV_MAX (sizeof(zygote_env_names) / sizeof(zygote_env_names[0]))

static void zygote_env(char *envp[ZYGOTE_ENV_MAX + 1])
{
	size_t n = 0;

	for (char **e = environ; *e && n < ZYGOTE_ENV_MAX; e++) {
		for (size_t i = 0; i < ZYGOTE_ENV_MAX; i++) {
			size_t len = strlen(zygote_env_names[i]);

			if (strncmp(*e, zygote_env_names[i], len) == 0 && (*e)[len] == '=') {
				envp[n++] = *e;
				break;
			}
		}
	}
	envp[n] = NULL;
}

int executor_zygote_spawn(const char *path, int zfd, pid_t *out, char *err, size_t errlen)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	char fdarg[16], exe[PATH_MAX];
	char *argv[] = {EXECUTOR_ZYGOTE_NAME, fdarg, NULL};
	char *envp[ZYGOTE_ENV_MAX + 1];
	pid_t pid;
	int r;

	*out = 0;
	r = find_zygote(path, exe, sizeof(exe), err, errlen);
	if (r < 0)
		return r;
	zygote_env(envp);
	snprintf(fdarg, sizeof(fdarg), "%d", WIRE_ZYGOTE_FD);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	posix_spawn_file_actions_adddup2(&fa, zfd, WIRE_ZYGOTE_FD);
	posix_spawn_file_actions_addclosefrom_np(&fa, WIRE_ZYGOTE_FD + 1);
	sigemptyset(&none);
	sigfillset(&all);
	sigdelset(&all, SIGKILL);
	sigdelset(&all, SIGSTOP);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
					      POSIX_SPAWN_SETPGROUP);
	r = posix_spawn(&pid, exe, &fa, &at, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (r != 0) {
		r = status_from_errno(r);
		util_set_err(err, errlen, "cannot start the zygote (%s): %s", exe, status_str(r));
		return r;
	}
	*out = pid;
	return 0;
}
