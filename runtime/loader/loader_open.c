/*
 * loader_open.c - the second half of loading a plugin: loader_open() (dlopen
 * of a verified, sealed memfd, checks of its info against the signed fields)
 * and loader_unload(), with status_str().
 *
 * Apart from loader.c so that a small binary (the executor's zygote,
 * evscript-zygote) can open plugins without linking libsodium or the
 * signature code: this file needs libc, libdl and util.c only.
 */
#include "loader.h"
#include "loader_priv.h"

#include <dlfcn.h>
#include <sys/mman.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <link.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "util.h"

#define PROC_FD_PATH_MAX 64
#define STALE_RETRIES 8

const char *loader_strerror(int err)
{
	return status_known(err) ? status_str(err) : "unknown loader error";
}

/* Sets err to "<strerror(code)>: <detail>" and returns code. */
int loader_refuse(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!err || errlen == 0)
		return code;
	n = snprintf(err, errlen, "%s: ", status_str(code));
	if (n < 0 || (size_t)n >= errlen)
		return code;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return code;
}

/* True when addr lies in a mapping of the file (dev, ino): the object dlopen
 * gave us really comes from our memfd, not from an older object that had the
 * same /proc/self/fd/N path string. */
static bool mapped_from(const void *addr, dev_t dev, ino_t ino)
{
	uintptr_t a = (uintptr_t)addr;
	char *line = NULL;
	size_t cap = 0;
	bool found = false;
	FILE *f;

	f = fopen("/proc/self/maps", "re");
	if (!f)
		return false;
	while (getline(&line, &cap, f) > 0) {
		unsigned long start, end, off, ino_l;
		unsigned maj, min;
		char perms[8];

		if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu", &start, &end, perms, &off, &maj,
			   &min, &ino_l) != 7)
			continue;
		if (a < start || a >= end)
			continue;
		found = makedev(maj, min) == dev && (ino_t)ino_l == ino;
		break;
	}
	free(line);
	fclose(f);
	return found;
}

/* Makes sure no loaded object already answers to the path string of *fd: if
 * one does (an old library whose memfd was closed while it stayed loaded,
 * e.g. marked nodelete), moves the memfd to another number. */
static int unique_fd_path(int *fd, char path[PROC_FD_PATH_MAX])
{
	int parked[STALE_RETRIES];
	int n_parked = 0, ret = -1, i;

	for (;;) {
		void *old;

		snprintf(path, PROC_FD_PATH_MAX, "/proc/self/fd/%d", *fd);
		old = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
		if (!old) {
			ret = 0;
			break;
		}
		dlclose(old);
		if (n_parked == STALE_RETRIES)
			break;
		/* keep the stale number occupied so the dup lands elsewhere */
		int nfd = fcntl(*fd, F_DUPFD_CLOEXEC, 0);
		if (nfd < 0)
			break;
		parked[n_parked++] = *fd;
		*fd = nfd;
	}
	for (i = 0; i < n_parked; i++)
		close(parked[i]);
	return ret;
}

int loader_open(struct loader_plugin *p, char *err, size_t errlen)
{
	char fd_path[PROC_FD_PATH_MAX];
	const char *name;
	void *handle = NULL, *sym_event, *sym_action;
	const struct evs_plugin_info *info;
	struct link_map *lm = NULL;
	struct stat st;
	int memfd, ret;

	if (err && errlen)
		err[0] = '\0';
	if (!p || (p->memfd < 0 && !p->bytes) || p->handle)
		return loader_refuse(err, errlen, LOADER_EDLOPEN, "loader_open: not a verified, unopened plugin");
	name = p->name;
	/* verified bytes kept mapped: a sealed memfd of them, for as long as
	 * the library stays loaded */
	if (p->memfd < 0) {
		ret = loader_memfd(p, &p->memfd);
		if (ret < 0)
			return loader_refuse(err, errlen, LOADER_EIO, "%s.so: a memfd for its bytes: %s", name,
				     status_str(ret));
	}
	memfd = p->memfd;

	/* 6. dlopen the sealed bytes */
	if (unique_fd_path(&memfd, fd_path) < 0) {
		ret = loader_refuse(err, errlen, LOADER_EDLOPEN,
			     "%s.so: every /proc/self/fd path tried is taken by a loaded object",
			     name);
		goto out;
	}
	if (fstat(memfd, &st) < 0) {
		ret = loader_refuse(err, errlen, LOADER_EIO, "fstat memfd: %s", strerror(errno));
		goto out;
	}
	handle = dlopen(fd_path, RTLD_NOW | RTLD_LOCAL);
	if (!handle) {
		const char *e = dlerror();
		ret = loader_refuse(err, errlen, LOADER_EDLOPEN, "%s.so: %s", name, e ? e : "unknown error");
		goto out;
	}
	if (dlinfo(handle, RTLD_DI_LINKMAP, &lm) != 0 || !lm || !lm->l_name ||
	    strcmp(lm->l_name, fd_path) != 0) {
		ret = loader_refuse(err, errlen, LOADER_EDLOPEN, "%s.so: dlopen(%s) returned another object",
			     name, fd_path);
		goto out;
	}

	/* 7. info and entry point */
	dlerror();
	info = dlsym(handle, EVS_PLUGIN_INFO_SYMBOL);
	sym_event = dlsym(handle, EVS_ON_EVENT_SYMBOL);
	sym_action = dlsym(handle, EVS_RUN_ACTION_SYMBOL);
	if (info && !mapped_from(info, st.st_dev, st.st_ino)) {
		ret = loader_refuse(err, errlen, LOADER_EDLOPEN,
			     "%s.so: the object loaded from %s is not the verified memfd", name,
			     fd_path);
		goto out;
	}
	if (!info) {
		ret = loader_refuse(err, errlen, LOADER_ENOENTRY,
			     "%s.so exports no %s (use EVS_PLUGIN(name, version))", name,
			     EVS_PLUGIN_INFO_SYMBOL);
		goto out;
	}
	if (!sym_event && !sym_action) {
		ret = loader_refuse(err, errlen, LOADER_ENOENTRY, "%s.so exports neither %s nor %s", name,
			     EVS_ON_EVENT_SYMBOL, EVS_RUN_ACTION_SYMBOL);
		goto out;
	}
	if (sym_event && sym_action) {
		ret = loader_refuse(err, errlen, LOADER_ENOENTRY,
			     "%s.so exports both %s and %s; a plugin is an event script or an "
			     "action, not both", name, EVS_ON_EVENT_SYMBOL, EVS_RUN_ACTION_SYMBOL);
		goto out;
	}
	if (info->size < offsetof(struct evs_plugin_info, version) + sizeof(info->version)) {
		ret = loader_refuse(err, errlen, LOADER_EABI, "%s.so: plugin info is %" PRIu32
			     " bytes, too small", name, info->size);
		goto out;
	}
	if (info->abi_major != EVS_ABI_MAJOR) {
		ret = loader_refuse(err, errlen, LOADER_EABI,
			     "%s.so was built for ABI %u (signed as ABI %u), this host runs ABI %d",
			     name, info->abi_major, (unsigned)EVS_ABI_MAJOR, EVS_ABI_MAJOR);
		goto out;
	}
	if (!info->name || strcmp(info->name, name) != 0) {
		ret = loader_refuse(err, errlen, LOADER_ENAME, "%s.so names itself '%.64s' in EVS_PLUGIN",
			     name, info->name ? info->name : "(null)");
		goto out;
	}
	if (!info->version || strcmp(info->version, p->version) != 0) {
		ret = loader_refuse(err, errlen, LOADER_EVERSION,
			     "%s.so says version %.64s in EVS_PLUGIN, its signature says %s", name,
			     info->version ? info->version : "(null)", p->version);
		goto out;
	}

	p->info = info;
	if (sym_event) {
		p->kind = LOADER_EVENT_SCRIPT;
		*(void **)&p->on_event = sym_event;
	} else {
		p->kind = LOADER_ACTION;
		*(void **)&p->run_action = sym_action;
	}
	p->loaded_at_ms = util_now_ms();
	p->handle = handle;
	handle = NULL;
	ret = LOADER_OK;

out:
	/* unique_fd_path() may have moved the memfd to another number */
	p->memfd = memfd;
	if (handle)
		dlclose(handle);
	return ret;
}

void loader_unload(struct loader_plugin *p)
{
	if (!p)
		return;
	/* dlclose before close: while the fd is open its number, and so the
	 * path string the library was loaded under, cannot be reused */
	if (p->handle)
		dlclose(p->handle);
	if (p->memfd >= 0)
		close(p->memfd);
	if (p->bytes)
		loader_bytes_release(p);
	else if (p->image)
		munmap((void *)p->image, p->image_len);
	free(p->subscriptions);
	free(p);
}
