/*
 * loader_bytes.c - a verified plugin's bytes kept without a descriptor.
 *
 * loader_verify() copies NAME.so into a sealed memfd and checks those bytes.
 * Keeping that memfd open for as long as a generation uses the plugin would
 * cost the daemon one descriptor per plugin (a thousand plugins, a thousand
 * descriptors, two thousand during a reload). So the sealed memfd is also
 * mapped read-only (MAP_PRIVATE, never written: the mapping shares the
 * memfd's pages, it is not a copy), handed to the generation's zygote, and
 * then closed (loader_memfd_close): the mapping keeps the file alive, the
 * zygote maps the same pages, and the daemon holds no descriptor for it.
 *
 * A descriptor is made again only where one is needed, for the time it is
 * needed: loader_memfd() writes the mapped bytes into a new memfd and seals
 * it before anyone else can see it, for a zygote restarted after a crash
 * (sent, then closed; that zygote's copy is its own) and for loader_clone()
 * (the next generation's own memfd and mapping, so that once the old
 * generation is gone the bytes are held once again).
 *
 * Why this is the verified bytes, with no window between check and use: the
 * first memfd was written by loader_verify() alone (hashing what it wrote)
 * and sealed (F_SEAL_WRITE | F_SEAL_SEAL ...) before the signature was
 * checked and before it was mapped or handed to anyone, so no one can change
 * its pages; the mapping is read-only; and every memfd made from it is
 * sealed before it leaves this file. In libc alone, for the zygote binary.
 */
#include "loader.h"
#include "loader_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util.h"

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U /* Linux 6.3: executable memfd under vm.memfd_noexec=1 */
#endif

#define SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)

/* The daemon's mapping of a plugin's sealed bytes. */
struct loader_bytes {
	void *addr;
	size_t len;
};

int loader_new_memfd(const char *name)
{
	char mname[64];
	int fd;

	snprintf(mname, sizeof(mname), "evs:%.58s", name);
	fd = memfd_create(mname, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
	if (fd < 0 && errno == EINVAL) /* kernel older than 6.3: no MFD_EXEC */
		fd = memfd_create(mname, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	return fd;
}

int loader_bytes_keep(struct loader_plugin *p, int memfd, size_t len)
{
	struct loader_bytes *b;

	if (len == 0 || p->bytes)
		return LOADER_EIO;
	b = malloc(sizeof(*b));
	if (!b)
		return LOADER_ENOMEM;
	b->addr = mmap(NULL, len, PROT_READ, MAP_PRIVATE, memfd, 0);
	if (b->addr == MAP_FAILED) {
		int e = errno;

		free(b);
		errno = e;
		return LOADER_EIO;
	}
	b->len = len;
	p->bytes = b;
	p->image = b->addr;
	p->image_len = len;
	return LOADER_OK;
}

void loader_bytes_release(struct loader_plugin *p)
{
	struct loader_bytes *b = p->bytes;

	if (b) {
		munmap(b->addr, b->len);
		free(b);
	}
	loader_bytes_forget(p);
}

void loader_bytes_forget(struct loader_plugin *p)
{
	p->bytes = NULL;
	p->image = NULL;
	p->image_len = 0;
}

void loader_memfd_close(struct loader_plugin *p)
{
	if (p && p->memfd >= 0 && p->bytes && !p->handle) {
		close(p->memfd);
		p->memfd = -1;
	}
}

int loader_memfd(const struct loader_plugin *p, int *out)
{
	int fd, ret;

	*out = -1;
	if (p->memfd >= 0) {
		fd = fcntl(p->memfd, F_DUPFD_CLOEXEC, 3);
		if (fd < 0)
			return status_from_errno(errno);
		*out = fd;
		return 0;
	}
	if (!p->bytes)
		return LOADER_EIO;
	fd = loader_new_memfd(p->name);
	if (fd < 0)
		return status_from_errno(errno);
	ret = util_write_all(fd, p->bytes->addr, p->bytes->len);
	if (ret == 0 && fcntl(fd, F_ADD_SEALS, SEALS) < 0)
		ret = status_from_errno(errno);
	if (ret < 0) {
		close(fd);
		return ret;
	}
	*out = fd;
	return 0;
}
