/*
 * loader.c - verified loading of plugins.
 *
 * The order of loader_load() is the point of this file:
 *   1. open NAME.so, refuse anything but a regular file under the size cap;
 *   2. read NAME.so.minisig and parse it;
 *   3. copy NAME.so once into a memfd while hashing it, then seal the memfd:
 *      from here on the bytes cannot change, and they are the ones hashed;
 *   4. verify the signature with the keyring (minisign's order), and only
 *      then trust the comment: plugin name, ABI major, downgrade ledger;
 *   5. check the sealed bytes start with an ELF header of a shared object
 *      for this machine, and read the declared subscriptions from their
 *      ".evscript.subscriptions" section as data (loader_subs.c);
 *   6. dlopen("/proc/self/fd/N") - the first moment plugin code (ELF
 *      constructors) can run - and check that the object we got is mapped
 *      from our memfd;
 *   7. resolve the info and the entry point, cross-check them with the
 *      signed comment.
 * The sealed bytes are also kept mapped, so that the memfd can be closed once
 * the zygote has it, and made again from them (sealed) when another zygote
 * or loader_open() needs one (loader_bytes.c). The memfd stays open while the
 * library is loaded:
 * as long as it is, no new memfd can take its number, so the path string
 * stays unique.
 *
 * Steps 6-7 (loader_open) and loader_unload live in loader_open.c, which
 * needs no libsodium, so that the small zygote binary can link them alone.
 */
#include "loader.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <link.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "loader_priv.h"
#include "util.h"

#define COPY_CHUNK (64u << 10)

/* This build's ELF identity: a plugin must match it to be loaded. */
#if defined(__x86_64__)
#define LOADER_EM EM_X86_64
#elif defined(__aarch64__)
#define LOADER_EM EM_AARCH64
#elif defined(__i386__)
#define LOADER_EM EM_386
#elif defined(__arm__)
#define LOADER_EM EM_ARM
#elif defined(__riscv)
#define LOADER_EM EM_RISCV
#elif defined(__powerpc64__) || defined(__powerpc__)
#define LOADER_EM (sizeof(void *) == 8 ? EM_PPC64 : EM_PPC)
#elif defined(__s390x__)
#define LOADER_EM EM_S390
#elif defined(__loongarch__)
#define LOADER_EM EM_LOONGARCH
#else
#error "loader: unknown machine, add its EM_* value"
#endif

#if __SIZEOF_POINTER__ == 8
#define LOADER_ELFCLASS ELFCLASS64
#else
#define LOADER_ELFCLASS ELFCLASS32
#endif

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define LOADER_ELFDATA ELFDATA2LSB
#else
#define LOADER_ELFDATA ELFDATA2MSB
#endif

static int map_sign_error(int serr)
{
	switch (serr) {
	case SIGN_EMALFORMED: return LOADER_EMALFORMED;
	case SIGN_ELEGACY: return LOADER_ELEGACY;
	case SIGN_EUNKNOWNKEY: return LOADER_EUNKNOWNKEY;
	case SIGN_EREVOKED: return LOADER_EREVOKED;
	case SIGN_EBADSIG: return LOADER_EBADSIG;
	case SIGN_EBADGLOBALSIG: return LOADER_EBADGLOBALSIG;
	case SIGN_EKEYID: return LOADER_EUNKNOWNKEY;
	case SIGN_ECOMMENT: return LOADER_ECOMMENT;
	case SIGN_ENOMEM: return LOADER_ENOMEM;
	default: return LOADER_EIO;
	}
}

/* Copies src (from its start) into the memfd, hashing the same bytes, at most
 * cap bytes. Returns 0, LOADER_ETOOBIG, LOADER_EIO (errno-style detail in
 * *sys_err). */
static int copy_hash(int src, int dst, size_t cap, uint8_t hash[SIGN_HASH_BYTES], size_t *total,
		     int *sys_err)
{
	struct sign_hasher h;
	unsigned char *buf;
	int ret = 0;

	*total = 0;
	*sys_err = 0;
	buf = malloc(COPY_CHUNK);
	if (!buf)
		return LOADER_ENOMEM;
	sign_hash_init(&h);
	for (;;) {
		ssize_t n = util_read(src, buf, COPY_CHUNK);
		if (n < 0) {
			*sys_err = errno;
			ret = LOADER_EIO;
			goto out;
		}
		if (n == 0)
			break;
		if ((size_t)n > cap - *total) {
			ret = LOADER_ETOOBIG;
			goto out;
		}
		*total += (size_t)n;
		sign_hash_update(&h, buf, (size_t)n);
		ret = util_write_all(dst, buf, (size_t)n);
		if (ret < 0) {
			*sys_err = status_errno(ret);
			ret = LOADER_EIO;
			goto out;
		}
	}
	sign_hash_final(&h, hash);
out:
	sodium_memzero(&h, sizeof(h));
	free(buf);
	return ret;
}

/* The sealed bytes are an ELF shared object for this machine. */
static int check_elf(int fd, size_t size, char *detail, size_t dlen)
{
	unsigned char id[EI_NIDENT];
	uint16_t type, machine;
	/* e_type and e_machine follow e_ident in both classes */
	unsigned char hdr[EI_NIDENT + 4];
	ssize_t n;

	if (size < sizeof(ElfW(Ehdr))) {
		snprintf(detail, dlen, "%zu bytes, shorter than an ELF header", size);
		return -1;
	}
	n = pread(fd, hdr, sizeof(hdr), 0);
	if (n != (ssize_t)sizeof(hdr)) {
		snprintf(detail, dlen, "cannot read the ELF header");
		return -1;
	}
	memcpy(id, hdr, EI_NIDENT);
	if (memcmp(id, ELFMAG, SELFMAG) != 0) {
		snprintf(detail, dlen, "no ELF magic");
		return -1;
	}
	if (id[EI_CLASS] != LOADER_ELFCLASS || id[EI_DATA] != LOADER_ELFDATA) {
		snprintf(detail, dlen, "ELF class %u data %u, this host needs class %u data %u",
			 id[EI_CLASS], id[EI_DATA], LOADER_ELFCLASS, LOADER_ELFDATA);
		return -1;
	}
	/* same byte order as ours, checked above */
	memcpy(&type, hdr + EI_NIDENT, sizeof(type));
	memcpy(&machine, hdr + EI_NIDENT + 2, sizeof(machine));
	if (type != ET_DYN) {
		snprintf(detail, dlen, "ELF type %u is not a shared object (ET_DYN)", type);
		return -1;
	}
	if (machine != LOADER_EM) {
		snprintf(detail, dlen, "ELF machine %u, this host is %u", machine, (unsigned)LOADER_EM);
		return -1;
	}
	return 0;
}

/* dir/NAME + suffix, malloc'd; NULL when out of memory. */
static char *name_path(const char *dir, const char *name, const char *suffix)
{
	char *rel, *path;

	if (asprintf(&rel, "%s%s", name, suffix) < 0)
		return NULL;
	path = util_path_join(dir, rel);
	free(rel);
	return path;
}

/* The refusal for sign_keyring_verify()'s error serr, naming the key. */
static int refuse_signature(int serr, const char *name, const struct sign_sig *sig, char *err,
			    size_t errlen)
{
	char kid[17];

	sign_keyid_hex(kid, sig->keyid);
	switch (serr) {
	case SIGN_EBADSIG:
		return loader_refuse(err, errlen, LOADER_EBADSIG,
				     "%s.so does not match %s.so.minisig (key %s)", name, name, kid);
	case SIGN_EBADGLOBALSIG:
		return loader_refuse(err, errlen, LOADER_EBADGLOBALSIG,
				     "the trusted comment of %s.so.minisig is not the one key %s signed",
				     name, kid);
	case SIGN_EUNKNOWNKEY:
		return loader_refuse(err, errlen, LOADER_EUNKNOWNKEY,
				     "%s.so.minisig is signed by key %s, which is not a trusted key", name,
				     kid);
	case SIGN_EREVOKED:
		return loader_refuse(err, errlen, LOADER_EREVOKED,
				     "%s.so.minisig is signed by key %s, which is revoked", name, kid);
	case SIGN_ELEGACY:
		return loader_refuse(err, errlen, LOADER_ELEGACY,
				     "%s.so.minisig is a legacy \"Ed\" signature (key %s); re-sign it "
				     "prehashed (minisign 0.10+ or evscript sign)", name, kid);
	default:
		return loader_refuse(err, errlen, map_sign_error(serr), "%s.so.minisig (key %s): %s",
				     name, kid, status_str(serr));
	}
}

/* The downgrade ledger: version must not be lower than the accepted one,
 * and the same version must have the same bytes (p->hash). */
static int check_ledger(const struct loader_options *opts, const struct loader_plugin *p,
			const char *version, char *err, size_t errlen)
{
	char prev_version[64] = "";
	uint8_t prev_hash[SIGN_HASH_BYTES];
	int r, cmp;

	if (!opts->ledger || !opts->ledger->get || opts->allow_downgrade)
		return LOADER_OK;
	r = opts->ledger->get(opts->ledger->user, p->name, prev_version, prev_hash);
	prev_version[sizeof(prev_version) - 1] = '\0';
	if (r < 0)
		return loader_refuse(err, errlen, LOADER_EIO,
				     "reading the accepted version of %s failed: %s", p->name,
				     status_str(r));
	if (r != 0)
		return LOADER_OK; /* no record yet */
	cmp = sign_version_cmp(version, prev_version);
	if (cmp < 0)
		return loader_refuse(err, errlen, LOADER_EDOWNGRADE, "%s %s is older than the accepted %s",
				     p->name, version, prev_version);
	if (cmp == 0 && !opts->accept_rebuilds && sodium_memcmp(prev_hash, p->hash, SIGN_HASH_BYTES) != 0)
		return loader_refuse(err, errlen, LOADER_EDOWNGRADE,
				     "%s %s differs from the bytes accepted before as the same version: "
				     "bump the version for every new build (or set dev_accept_rebuilds: "
				     "true while developing)", p->name, version);
	return LOADER_OK;
}

/* Without openat2 (kernels before 5.6, valgrind): opens dir/file and checks
 * where what was opened really is (/proc/self/fd), so that no race can move
 * it: -1 with EXDEV when that is outside dir. */
static int open_then_check(int dfd, const char *dir, const char *file)
{
	char real_dir[PATH_MAX], proc[64], got[PATH_MAX];
	int fd = openat(dfd, file, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	size_t n;
	ssize_t len;

	if (fd < 0)
		return -1;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	len = readlink(proc, got, sizeof(got) - 1);
	if (realpath(dir, real_dir) == NULL || len < 0) {
		close(fd);
		errno = EXDEV;
		return -1;
	}
	got[len] = '\0';
	n = strlen(real_dir);
	if (strncmp(got, real_dir, n) != 0 || (got[n] != '/' && n > 1)) {
		close(fd);
		errno = EXDEV;
		return -1;
	}
	return fd;
}

/* Opens dir/file for reading, following a symbolic link only when it stays
 * inside dir (openat2's RESOLVE_BENEATH: a link out of the plugin directory
 * fails with EXDEV). O_NONBLOCK: a FIFO named x.so must not hang the loader. */
static int open_beneath(const char *dir, const char *file)
{
	struct open_how how = {
		.flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int fd, e;

	if (dfd < 0)
		return -1;
	fd = (int)syscall(SYS_openat2, dfd, file, &how, sizeof(how));
	if (fd < 0 && errno == ENOSYS)
		fd = open_then_check(dfd, dir, file);
	e = errno;
	close(dfd);
	errno = e;
	return fd;
}

/* The reason an open_beneath() failed, for the refusal. */
static const char *open_error(int e)
{
	return e == EXDEV || e == ELOOP ? "a symbolic link that leads out of the plugin directory" : strerror(e);
}

/* 5c. p takes the sealed memfd (*memfd -1) and a mapping of its bytes, so
 * that the memfd can be closed once the zygote has it (loader_memfd_close,
 * loader_bytes.c). 0, or a LOADER_E* code with err set. */
static int keep_sealed(struct loader_plugin *p, int *memfd, size_t total, char *err, size_t errlen)
{
	int ret = loader_bytes_keep(p, *memfd, total);

	if (ret < 0)
		return loader_refuse(err, errlen, ret, "%s.so: mapping its sealed bytes: %s", p->name,
			     ret == LOADER_ENOMEM ? "out of memory" : strerror(errno));
	p->memfd = *memfd;
	*memfd = -1;
	return 0;
}

int loader_verify(const char *dir, const char *name, const struct loader_options *opts,
		struct loader_plugin **out, char *err, size_t errlen)
{
	struct loader_plugin *p = NULL;
	char *so_path = NULL, *sig_path = NULL, *sig_text = NULL;
	char detail[256], rel[sizeof(p->name) + sizeof(".so.minisig")];
	struct sign_sig *sig = NULL;
	struct sign_comment comment;
	struct stat st;
	size_t max_size, sig_len = 0, total = 0;
	void *legacy_map = MAP_FAILED;
	int so_fd = -1, sig_fd = -1, memfd = -1, sys_err = 0, ret;

	if (out)
		*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (!dir || !name || !opts || !out) {
		ret = loader_refuse(err, errlen, LOADER_EIO, "loader_load: missing argument");
		goto out;
	}
	if (!util_valid_name(name) || strlen(name) >= sizeof(p->name)) {
		ret = loader_refuse(err, errlen, LOADER_ENAME,
			     "'%.64s' is not a valid plugin name (^[a-zA-Z0-9_-]+$, < 256 chars)", name);
		goto out;
	}
	if (!opts->keyring) {
		ret = loader_refuse(err, errlen, LOADER_EUNKNOWNKEY, "%s.so: no trusted keys configured", name);
		goto out;
	}
	max_size = opts->max_size ? opts->max_size : LOADER_FILE_MAX_DEFAULT;

	p = calloc(1, sizeof(*p));
	if (!p) {
		ret = loader_refuse(err, errlen, LOADER_ENOMEM, "%s.so", name);
		goto out;
	}
	p->memfd = -1;
	snprintf(p->name, sizeof(p->name), "%s", name);
	so_path = name_path(dir, name, ".so");
	sig_path = name_path(dir, name, ".so.minisig");
	if (!so_path || !sig_path) {
		ret = loader_refuse(err, errlen, LOADER_ENOMEM, "%s.so", name);
		goto out;
	}

	/* 1. the file: a regular file under the cap (O_NONBLOCK: a FIFO named
	 * x.so must not hang the loader) */
	snprintf(rel, sizeof(rel), "%s.so", name);
	so_fd = open_beneath(dir, rel);
	if (so_fd < 0) {
		ret = loader_refuse(err, errlen, LOADER_EIO, "%s: %s", so_path, open_error(errno));
		goto out;
	}
	if (fstat(so_fd, &st) < 0) {
		ret = loader_refuse(err, errlen, LOADER_EIO, "%s: %s", so_path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = loader_refuse(err, errlen, LOADER_EIO, "%s: not a regular file", so_path);
		goto out;
	}
	if ((uintmax_t)st.st_size > (uintmax_t)max_size) {
		ret = loader_refuse(err, errlen, LOADER_ETOOBIG, "%s.so is %jd bytes, the limit is %zu",
			     name, (intmax_t)st.st_size, max_size);
		goto out;
	}

	/* 2. the signature file */
	snprintf(rel, sizeof(rel), "%s.so.minisig", name);
	sig_fd = open_beneath(dir, rel);
	if (sig_fd < 0) {
		if (errno == ENOENT)
			ret = loader_refuse(err, errlen, LOADER_ENOSIG, "%s.so has no %s.so.minisig next to it",
				     name, name);
		else
			ret = loader_refuse(err, errlen, LOADER_EIO, "%s: %s", sig_path, open_error(errno));
		goto out;
	}
	if (fstat(sig_fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		ret = loader_refuse(err, errlen, LOADER_EMALFORMED, "%s.so.minisig is not a regular file", name);
		goto out;
	}
	ret = util_read_fd(sig_fd, SIGN_MINISIG_MAX, &sig_text, &sig_len);
	if (ret == STATUS_ETOOBIG) {
		ret = loader_refuse(err, errlen, LOADER_EMALFORMED, "%s.so.minisig is larger than %d bytes",
			     name, SIGN_MINISIG_MAX);
		goto out;
	} else if (ret < 0) {
		ret = loader_refuse(err, errlen, LOADER_EIO, "%s: %s", sig_path, status_str(ret));
		goto out;
	}
	sig = calloc(1, sizeof(*sig));
	if (!sig) {
		ret = loader_refuse(err, errlen, LOADER_ENOMEM, "%s.so.minisig", name);
		goto out;
	}
	ret = sign_sig_parse(sig_text, sig_len, sig);
	if (ret < 0) {
		ret = loader_refuse(err, errlen, map_sign_error(ret) == LOADER_ENOMEM ? LOADER_ENOMEM
									       : LOADER_EMALFORMED,
			     "%s.so.minisig: %s", name, status_str(ret));
		goto out;
	}

	/* 3. the bytes, once, into a sealed memfd, hashed on the way */
	memfd = loader_new_memfd(name);
	if (memfd < 0) {
		int e = errno;
		ret = loader_refuse(err, errlen, LOADER_EIO, "memfd_create: %s%s", strerror(e),
			     e == EACCES ? " (vm.memfd_noexec=2 forbids executable memfds)" : "");
		goto out;
	}
	ret = copy_hash(so_fd, memfd, max_size, p->hash, &total, &sys_err);
	if (ret == LOADER_ETOOBIG) {
		ret = loader_refuse(err, errlen, ret, "%s.so grew past the limit of %zu bytes while read",
			     name, max_size);
		goto out;
	} else if (ret < 0) {
		ret = loader_refuse(err, errlen, ret, "%s: %s", so_path,
			     sys_err ? strerror(sys_err) : "out of memory");
		goto out;
	}
	if (fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
		ret = loader_refuse(err, errlen, LOADER_EIO, "sealing the memfd: %s", strerror(errno));
		goto out;
	}
	p->size = total;
	util_hex(p->hash_hex, p->hash, SIGN_HASH_BYTES);

	/* 4. the signature, then the trusted comment */
	if (sig->legacy && opts->allow_legacy && total > 0) {
		legacy_map = mmap(NULL, total, PROT_READ, MAP_PRIVATE, memfd, 0);
		if (legacy_map == MAP_FAILED) {
			ret = loader_refuse(err, errlen, LOADER_EIO, "mmap: %s", strerror(errno));
			goto out;
		}
	}
	ret = sign_keyring_verify(opts->keyring, sig, p->hash,
				  legacy_map == MAP_FAILED ? NULL : legacy_map, total,
				  opts->allow_legacy, p->keyid);
	if (ret < 0) {
		ret = refuse_signature(ret, name, sig, err, errlen);
		goto out;
	}
	snprintf(p->trusted_comment, sizeof(p->trusted_comment), "%s", sig->trusted_comment);
	ret = sign_comment_parse(sig->trusted_comment, &comment);
	if (ret < 0) {
		ret = loader_refuse(err, errlen, LOADER_ECOMMENT,
			     "%s.so.minisig: \"%.200s\" (needs plugin:NAME version:X.Y.Z abi:N): %s",
			     name, sig->trusted_comment, status_str(ret));
		goto out;
	}
	if (strcmp(comment.plugin, name) != 0) {
		ret = loader_refuse(err, errlen, LOADER_ENAME,
			     "%s.so is signed as plugin '%s'; a signed file cannot take another "
			     "plugin's name", name, comment.plugin);
		goto out;
	}
	if (comment.abi != EVS_ABI_MAJOR) {
		ret = loader_refuse(err, errlen, LOADER_EABI,
			     "%s.so is signed for ABI %u, this host runs ABI %d", name, comment.abi,
			     EVS_ABI_MAJOR);
		goto out;
	}
	snprintf(p->version, sizeof(p->version), "%s", comment.version);
	ret = check_ledger(opts, p, comment.version, err, errlen);
	if (ret < 0)
		goto out;

	/* 5. the ELF header, before any of its code can run */
	if (check_elf(memfd, total, detail, sizeof(detail)) < 0) {
		ret = loader_refuse(err, errlen, LOADER_ENOTELF, "%s.so: %s", name, detail);
		goto out;
	}

	/* 5b. the declared subscriptions, read as data from those bytes */
	ret = loader_read_subscriptions(p, memfd, total, err, errlen);
	if (ret < 0)
		goto out;

	ret = keep_sealed(p, &memfd, total, err, errlen);
	if (ret < 0)
		goto out;
	*out = p;
	p = NULL;
	ret = LOADER_OK;

out:
	if (legacy_map != MAP_FAILED)
		munmap(legacy_map, total);
	if (memfd >= 0)
		close(memfd);
	free(sig);
	free(sig_text);
	if (sig_fd >= 0)
		close(sig_fd);
	if (so_fd >= 0)
		close(so_fd);
	free(sig_path);
	free(so_path);
	free(p);
	return ret;
}

int loader_load(const char *dir, const char *name, const struct loader_options *opts,
		struct loader_plugin **out, char *err, size_t errlen)
{
	struct loader_plugin *p = NULL;
	int ret;

	if (out)
		*out = NULL;
	ret = loader_verify(dir, name, opts, &p, err, errlen);
	if (ret < 0)
		return ret;
	ret = loader_open(p, err, errlen);
	if (ret < 0) {
		loader_unload(p);
		return ret;
	}
	*out = p;
	return LOADER_OK;
}

int loader_clone(const struct loader_plugin *src, struct loader_plugin **out)
{
	size_t subs_size = src->n_subscriptions * sizeof(*src->subscriptions);
	struct loader_plugin *p = malloc(sizeof(*p));
	struct loader_subscription *subs = subs_size ? malloc(subs_size) : NULL;

	*out = NULL;
	if (!p || (subs_size && !subs)) {
		free(p);
		free(subs);
		return LOADER_ENOMEM;
	}
	if (subs_size)
		memcpy(subs, src->subscriptions, subs_size);
	/* src's identity and subscriptions; nothing of its loading (handle,
	 * entry points, mapping): the new generation's zygote loads p anew */
	*p = *src;
	p->handle = NULL;
	p->info = NULL;
	p->on_event = NULL;
	p->run_action = NULL;
	loader_bytes_forget(p);
	p->subscriptions = subs;
	/* a memfd of its own, which the new generation's zygote and the
	 * daemon's mapping share; src's is freed when src's generation goes */
	if (loader_memfd(src, &p->memfd) < 0 ||
	    (src->bytes && loader_bytes_keep(p, p->memfd, src->image_len) < 0)) {
		if (p->memfd >= 0)
			close(p->memfd);
		free(subs);
		free(p);
		return LOADER_EIO;
	}
	*out = p;
	return LOADER_OK;
}

int loader_accept(const struct loader_options *opts, const struct loader_plugin *p)
{
	char prev_version[64] = "";
	uint8_t prev_hash[SIGN_HASH_BYTES];
	int r;

	if (!opts || !p)
		return LOADER_EIO;
	if (!opts->ledger)
		return 0;
	if (!opts->ledger->get || !opts->ledger->put)
		return LOADER_EIO;
	r = opts->ledger->get(opts->ledger->user, p->name, prev_version, prev_hash);
	if (r < 0)
		return LOADER_EIO;
	prev_version[sizeof(prev_version) - 1] = '\0';
	if (r == 0 && sign_version_cmp(p->version, prev_version) <= 0)
		return 0;
	r = opts->ledger->put(opts->ledger->user, p->name, p->version, p->hash);
	return r < 0 ? LOADER_EIO : 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int loader_scan(const char *dir, loader_scan_fn cb, void *user)
{
	char **names = NULL;
	size_t n = 0, i;
	struct dirent *de;
	DIR *d;
	int ret = 0;

	if (!dir || !cb)
		return LOADER_EIO;
	d = opendir(dir);
	if (!d)
		return LOADER_EIO;
	names = calloc(LOADER_SCAN_MAX, sizeof(*names));
	if (!names) {
		ret = LOADER_ENOMEM;
		goto out;
	}
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (len < 3 || strcmp(de->d_name + len - 3, ".so") != 0)
			continue;
		if (n == LOADER_SCAN_MAX) {
			ret = LOADER_ETOOMANY;
			goto out;
		}
		names[n] = strndup(de->d_name, len - 3);
		if (!names[n]) {
			ret = LOADER_ENOMEM;
			goto out;
		}
		n++;
		errno = 0;
	}
	if (errno != 0) {
		ret = LOADER_EIO;
		goto out;
	}
	qsort(names, n, sizeof(*names), cmp_names);
	for (i = 0; i < n; i++) {
		const char *reason = NULL;

		if (names[i][0] == '\0')
			reason = "the file is named just \".so\"";
		else if (!util_valid_name(names[i]))
			reason = "the name does not match ^[a-zA-Z0-9_-]+$";
		else if (strlen(names[i]) >= sizeof(((struct loader_plugin *)0)->name))
			reason = "the name is longer than 255 characters";
		ret = cb(user, names[i], reason);
		if (ret != 0)
			goto out;
	}

out:
	if (names) {
		for (i = 0; i < n; i++)
			free(names[i]);
		free(names);
	}
	closedir(d);
	return ret;
}
