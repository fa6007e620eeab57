/*
 * cli_plugin.c - a plugin's own info, read the way the daemon reads it, and
 * signing with it.
 *
 * The info is a struct in the plugin's data with relocated string pointers,
 * so it is read by loading the plugin: in a child process, so that its
 * constructors cannot touch this one and a crash is a message, not ours.
 * The child sends one fixed-size record back over a pipe.
 */
#include "cli_author.h"

#include <dlfcn.h>
#include <errno.h>
#include <evscript/sdk.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "sign.h"
#include "status.h"
#include "util.h"

/* The child's answer: the info, or the reason it has none. */
struct probe {
	struct cli_plugin_info info;
	int found;                 /* 1: info is filled */
	char why[512];
};

static bool valid_version(const char *v)
{
	struct sign_comment c;
	char text[128];

	/* the trusted comment's own parser is the rule for versions */
	snprintf(text, sizeof(text), "plugin:x version:%s abi:1", v);
	return sign_comment_parse(text, &c) == 0;
}

/* In the child: load, look, describe. */
static void probe_in_child(const char *path, struct probe *pr)
{
	const struct evs_plugin_info *pi;
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	bool ev, ac;

	if (!h) {
		snprintf(pr->why, sizeof(pr->why), "cannot be loaded: %s", dlerror());
		return;
	}
	pi = dlsym(h, EVS_PLUGIN_INFO_SYMBOL);
	ev = dlsym(h, EVS_ON_EVENT_SYMBOL) != NULL;
	ac = dlsym(h, EVS_RUN_ACTION_SYMBOL) != NULL;
	if (!pi) {
		snprintf(pr->why, sizeof(pr->why), "exports no %s (EVS_PLUGIN missing, or not exported: "
			 "C++ needs the header's extern \"C\")", EVS_PLUGIN_INFO_SYMBOL);
		return;
	}
	if (pi->size < sizeof(*pi) || !pi->name || !pi->version) {
		snprintf(pr->why, sizeof(pr->why), "its %s is incomplete", EVS_PLUGIN_INFO_SYMBOL);
		return;
	}
	if (ev == ac) {
		snprintf(pr->why, sizeof(pr->why), "exports %s: a plugin exports exactly one of on_event "
			 "and run_action", ev ? "both on_event and run_action" : "neither on_event nor run_action");
		return;
	}
	snprintf(pr->info.name, sizeof(pr->info.name), "%s", pi->name);
	snprintf(pr->info.version, sizeof(pr->info.version), "%s", pi->version);
	pr->info.abi_major = pi->abi_major;
	pr->info.abi_minor = pi->abi_minor;
	pr->info.action = ac;
	pr->found = 1;
}

/* Forks, probes in the child, reads its record. */
static int probe(const char *path, struct probe *pr, char *err, size_t errlen)
{
	int fds[2], status = 0, ret = 0;
	size_t got = 0;
	pid_t pid;

	memset(pr, 0, sizeof(*pr));
	if (pipe2(fds, O_CLOEXEC) != 0) {
		util_set_err(err, errlen, "pipe: %s", strerror(errno));
		return status_from_errno(errno);
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		util_set_err(err, errlen, "fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return status_from_errno(errno);
	}
	if (pid == 0) {
		close(fds[0]);
		probe_in_child(path, pr);
		(void)!write(fds[1], pr, sizeof(*pr));
		_exit(0);
	}
	close(fds[1]);
	while (got < sizeof(*pr)) {
		ssize_t n = util_read(fds[0], (char *)pr + got, sizeof(*pr) - got);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (got != sizeof(*pr)) {
		if (WIFSIGNALED(status))
			util_set_err(err, errlen, "%s: loading it crashed (signal %d, %s) before its info could be read",
				     path, WTERMSIG(status), strsignal(WTERMSIG(status)));
		else
			util_set_err(err, errlen, "%s: loading it ended the process (exit %d) before its info "
				     "could be read", path, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		ret = STATUS_EFAILED;
	}
	return ret;
}

int cli_plugin_info(const char *path, struct cli_plugin_info *info, char *err, size_t errlen)
{
	char abs[PATH_MAX];
	struct probe pr;
	int ret;

	memset(info, 0, sizeof(*info));
	if (!realpath(path, abs)) { /* dlopen needs a '/' not to search the library path */
		util_set_err(err, errlen, "%s: %s", path, strerror(errno));
		return status_from_errno(errno);
	}
	ret = probe(abs, &pr, err, errlen);
	if (ret)
		return ret;
	pr.why[sizeof(pr.why) - 1] = '\0';
	pr.info.name[sizeof(pr.info.name) - 1] = '\0';
	pr.info.version[sizeof(pr.info.version) - 1] = '\0';
	if (!pr.found) {
		util_set_err(err, errlen, "%s: %s", path, pr.why);
		return STATUS_EINVAL;
	}
	if (!util_valid_name(pr.info.name)) {
		util_set_err(err, errlen, "%s: plugin name '%s' is not ^[a-zA-Z0-9_-]+$", path, pr.info.name);
		return STATUS_EINVAL;
	}
	if (!valid_version(pr.info.version)) {
		util_set_err(err, errlen, "%s: plugin version '%s' is not X.Y.Z", path, pr.info.version);
		return STATUS_EINVAL;
	}
	if (pr.info.abi_major != EVS_ABI_MAJOR) {
		util_set_err(err, errlen, "%s: built for plugin ABI %u, this SDK is ABI %d: rebuild it against "
			     "this SDK", path, pr.info.abi_major, EVS_ABI_MAJOR);
		return STATUS_EINVAL;
	}
	*info = pr.info;
	return 0;
}

void cli_plugin_comment(const struct cli_plugin_info *info, char *buf, size_t len)
{
	snprintf(buf, len, "plugin:%s version:%s abi:%u", info->name, info->version, info->abi_major);
}

int cli_sign_file(const char *sec_path, const char *file, const char *trusted, const char *sig_path,
		  char *err, size_t errlen)
{
	struct sign_seckey sk;
	uint8_t hash[SIGN_HASH_BYTES];
	char *key = NULL, *data = NULL, *minisig = NULL;
	size_t key_len = 0, len = 0;
	int ret;

	memset(&sk, 0, sizeof(sk));
	ret = util_read_file_secret(sec_path, SIGN_MINISIG_MAX, &key, &key_len);
	if (ret) {
		util_set_err(err, errlen, "%s: %s", sec_path, status_str(ret));
		goto out;
	}
	ret = sign_seckey_parse(key, key_len, &sk);
	if (ret) {
		util_set_err(err, errlen, "%s: %s", sec_path, status_str(ret));
		goto out;
	}
	ret = util_read_file(file, CLI_PLUGIN_FILE_MAX, &data, &len);
	if (ret) {
		util_set_err(err, errlen, "%s: %s", file, status_str(ret));
		goto out;
	}
	sign_hash_buf(data, len, hash);
	ret = sign_sign_hash(&sk, hash, trusted, NULL, &minisig);
	if (ret) {
		util_set_err(err, errlen, "%s", status_str(ret));
		goto out;
	}
	ret = util_write_file_atomic(sig_path, minisig, strlen(minisig), 0644);
	if (ret)
		util_set_err(err, errlen, "%s: %s", sig_path, status_str(ret));
out:
	free(minisig);
	free(data);
	if (key) {
		sodium_memzero(key, key_len);
		free(key);
	}
	sodium_memzero(&sk, sizeof(sk));
	return ret;
}
