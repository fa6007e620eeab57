/*
 * loader.h - verified loading of plugins.
 *
 * loader_load() reads NAME.so once (size-capped) into a sealed memfd while
 * hashing it, verifies NAME.so.minisig against the keyring, checks the signed
 * trusted comment (plugin name = NAME, version, abi = EVS_ABI_MAJOR) and the
 * downgrade ledger BEFORE any plugin code can run, checks the bytes are an
 * ELF shared object for this machine, then dlopen()s /proc/self/fd/N with
 * RTLD_NOW | RTLD_LOCAL, resolves the plugin info and the entry point, and
 * cross-checks them with the trusted comment. What runs is exactly the bytes
 * that were verified. The memfd stays open for the library's lifetime.
 *
 * A plugin that is verified and not opened in this process need not cost a
 * file descriptor: loader_verify() also keeps its sealed bytes mapped
 * read-only, loader_memfd_close() closes the memfd once the zygote has it,
 * and loader_memfd() makes a sealed memfd of them again for the moment one is
 * needed (loader_bytes.c).
 */
#ifndef EVS_LOADER_H
#define EVS_LOADER_H

#include <evscript/sdk.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sign.h"
#include "status.h"

#define LOADER_FILE_MAX_DEFAULT (64u << 20) /* 64 MiB */

/* Each refusal has its own reason. The codes loader functions return
 * (defined in status.h, text by status_str()):
 *   LOADER_ENOSIG        no signature (NAME.so.minisig missing)
 *   LOADER_EMALFORMED    malformed signature file
 *   LOADER_EUNKNOWNKEY   signed by a key that is not trusted
 *   LOADER_EREVOKED      signed by a revoked key
 *   LOADER_EBADSIG       bad signature: the file was tampered with
 *   LOADER_EBADGLOBALSIG bad global signature: the trusted comment was tampered with
 *   LOADER_ENAME         the signed plugin name is not the file's name, or the info disagrees
 *   LOADER_EABI          built for another ABI major
 *   LOADER_EDOWNGRADE    lower version than accepted, or same version with other bytes
 *                        (unless accept_rebuilds)
 *   LOADER_ENOTELF       not an ELF shared object for this machine
 *   LOADER_ENOENTRY      neither on_event nor run_action, or no plugin info
 *   LOADER_ETOOBIG       the file is larger than the cap
 *   LOADER_ELEGACY       legacy (non-prehashed) signature refused
 *   LOADER_ECOMMENT      trusted comment lacks plugin:/version:/abi:
 *   LOADER_EIO           the file could not be read
 *   LOADER_EDLOPEN       dlopen failed (detail in the error text)
 *   LOADER_ENOMEM        out of memory
 *   LOADER_EVERSION      the info's version disagrees with the signed version
 *   LOADER_ETOOMANY      loader_scan: more than LOADER_SCAN_MAX entries
 *   LOADER_ESUBSCRIPTION a malformed declared subscription (EVS_ON_EVENT) */

/* Kept for the unit tests that call it: status_str(err), except that a
 * value that is not a code gives "unknown loader error". New code calls
 * status_str(). */
const char *loader_strerror(int err);

/* Durable record of the highest accepted version per plugin name (the store
 * implements it; tests may use memory). get returns 0 and fills version and
 * hash when a record exists, 1 when none, negative on error. */
struct loader_ledger {
	int (*get)(void *user, const char *name, char version[64], uint8_t hash[SIGN_HASH_BYTES]);
	int (*put)(void *user, const char *name, const char *version,
		   const uint8_t hash[SIGN_HASH_BYTES]);
	void *user;
};

enum loader_kind { LOADER_EVENT_SCRIPT = 1, LOADER_ACTION = 2 };

/* One declaration of EVS_ON_EVENT / EVS_ACTION_FOR (sdk.h), as read from
 * the plugin's ".evscript.subscriptions" section. Whether the integration
 * and the event exist is the caller's to check (it has the config). */
#define LOADER_SUBSCRIPTIONS_MAX 1024
struct loader_subscription {
	enum evs_subscription_kind kind;
	char integration[EVS_SUBSCRIPTION_NAME_MAX];
	char event[EVS_SUBSCRIPTION_NAME_MAX];      /* "" for EVS_SUBSCRIBE_ACTION */
};

struct loader_options {
	const struct sign_keyring *keyring;
	const struct loader_ledger *ledger; /* may be NULL: no downgrade check */
	bool allow_downgrade;
	bool accept_rebuilds;               /* same version, other bytes: accepted (development) */
	bool allow_legacy;                  /* accept "Ed" signatures (off by default) */
	size_t max_size;                    /* 0: LOADER_FILE_MAX_DEFAULT */
};

/* A loaded, verified plugin. Read-only after load. info, on_event and
 * run_action point into the library: valid until loader_unload(). kind says
 * which entry point is set (the other is NULL). keyid is the signing key's
 * id as minisign prints it; hash is the BLAKE2b-512 of the loaded bytes. */
struct loader_plugin {
	char name[256];
	char version[64];
	char keyid[17];
	char hash_hex[2 * SIGN_HASH_BYTES + 1]; /* BLAKE2b-512 of the file */
	uint8_t hash[SIGN_HASH_BYTES];
	char trusted_comment[SIGN_COMMENT_MAX + 1];
	enum loader_kind kind;
	const struct evs_plugin_info *info;
	int (*on_event)(const struct evs_host *, struct evs_ctx *, const struct evs_event *);
	int (*run_action)(const struct evs_host *, struct evs_ctx *, const char *, char **);
	int64_t loaded_at_ms;
	size_t size;
	/* Declared subscriptions, in the order of the section (loader_verify;
	 * owned, freed by loader_unload, copied by loader_clone). */
	struct loader_subscription *subscriptions;
	size_t n_subscriptions;
	/* private */
	void *handle;
	int memfd;
	/* The plugin's bytes mapped read-only: in the daemon from
	 * loader_verify() on (see bytes), in the zygote once it closes the
	 * memfd (crash reports read the plugin's symbols here). */
	const void *image;
	size_t image_len;
	struct loader_bytes *bytes; /* the daemon's mapping, or NULL */
};

/* Loads dir/NAME.so (with dir/NAME.so.minisig). On success *out is owned by
 * the caller (loader_unload) and err is "". On failure returns a LOADER_E*
 * code, *out is NULL, and err holds one line for the user,
 * "<status_str(code)>: <detail>", e.g. "bad signature (file tampered):
 * hello.so does not match hello.so.minisig (key 0123456789ABCDEF)". Nothing
 * is logged here (the caller logs) and no plugin code runs before every check
 * on the signed trusted comment and the ELF header has passed. Not
 * thread-safe against concurrent loads (call from one thread, e.g. the
 * zygote). Does NOT record the version in the ledger: the caller commits with
 * loader_accept() once the plugin is taken into service. */
int loader_load(const char *dir, const char *name, const struct loader_options *opts,
		struct loader_plugin **out, char *err, size_t errlen);

/* The first half of loader_load(): every check that needs no plugin code
 * (size, signature, trusted comment, ledger, ELF header), leaving the bytes
 * in a sealed memfd (p->memfd) and mapped read-only (p->image, p->image_len)
 * with name, version, keyid and hash filled, but nothing dlopen()ed. The
 * daemon verifies; the zygote opens. Same contract as loader_load()
 * otherwise. */
int loader_verify(const char *dir, const char *name, const struct loader_options *opts,
		  struct loader_plugin **out, char *err, size_t errlen);

/* The second half: dlopen()s p->memfd through /proc/self/fd/N, resolves the
 * info and the entry point and cross-checks them with the signed name,
 * version and ABI. p must come from loader_verify() or loader_clone() (or
 * carry a sealed memfd of verified bytes with the verified fields, as the
 * zygote rebuilds it from what the daemon sends). A plugin with no memfd
 * (from loader_verify) gets one from loader_memfd() first, kept open while
 * the library is loaded. On failure p stays unopened (free it with
 * loader_unload). p->memfd may change number. */
int loader_open(struct loader_plugin *p, char *err, size_t errlen);

/* A new unopened plugin with src's verified fields and the same verified
 * bytes, for another generation: a new sealed memfd written from src's
 * mapping, and a mapping of it (a dup of src's memfd when src has no
 * mapping). *out owned by the caller (loader_unload). */
int loader_clone(const struct loader_plugin *src, struct loader_plugin **out);

/* Records p's version and hash in opts->ledger when there is no record for
 * p->name yet or p's version is strictly higher than the recorded one; a
 * lower version (taken in with allow_downgrade) or the same version leaves
 * the record alone, so the ledger always holds the highest version accepted
 * and the bytes first accepted for it. No ledger: 0. Returns 0 or the
 * ledger's negative error (LOADER_EIO when get/put fail). */
int loader_accept(const struct loader_options *opts, const struct loader_plugin *p);

/* Parses the ".evscript.subscriptions" section of an ELF file (bytes,
 * size), reading data only. No section, or no section headers: 0 with
 * *out NULL and *n 0. A malformed section or record: LOADER_ESUBSCRIPTION
 * (LOADER_ENOTELF for broken section headers) with detail written. On
 * success *out (malloc'd, *n records) is the caller's. Pure; fuzzable. */
int loader_parse_subscriptions(const void *bytes, size_t size, struct loader_subscription **out,
			       size_t *n, char *detail, size_t dlen);

/* Closes p's memfd once a zygote has it, keeping the bytes mapped: a
 * verified plugin then costs no descriptor. Nothing for a plugin opened in
 * this process (its memfd stays while the library is loaded) or with no
 * mapping. Call while no other thread uses p. NULL is fine. */
void loader_memfd_close(struct loader_plugin *p);

/* A sealed memfd holding p's verified bytes, for the moment a descriptor is
 * needed (handing the plugin to the zygote): a dup of p->memfd when p has
 * one, else a new memfd written from p's mapping and sealed before it is
 * returned. 0 with *fd (the caller's to close), or a status code (*fd -1).
 * Thread-safe for plugins that are not being opened or unloaded. */
int loader_memfd(const struct loader_plugin *p, int *fd);

/* dlclose()s, closes the memfd and lets go of the mapping (the last clone
 * to let go unmaps it). NULL is fine. */
void loader_unload(struct loader_plugin *p);

/* Called by loader_scan() once per "*.so" entry, in strcmp order of the
 * names. name is the file name without ".so" (lent for the call).
 * invalid_reason is NULL when name matches ^[a-zA-Z0-9_-]+$ (util_valid_name)
 * and the caller may loader_load() it; otherwise it is a static English text
 * saying why the entry cannot be a plugin, so that the caller can report the
 * refusal (loader_load() would refuse such a name too). Return 0 to go on;
 * any other value stops the scan and loader_scan() returns it. */
typedef int (*loader_scan_fn)(void *user, const char *name, const char *invalid_reason);

#define LOADER_SCAN_MAX 4096 /* more "*.so" entries than this: LOADER_ETOOMANY */

/* Lists the entries of dir whose name ends in ".so" (hidden ones included,
 * so that a stray ".x.so" is reported rather than silently ignored), sorts
 * them, and calls cb for each. Nothing is opened or loaded. Returns 0,
 * cb's non-zero value, LOADER_EIO when dir cannot be read (errno is kept),
 * LOADER_ETOOMANY or LOADER_ENOMEM; cb is not called at all on those errors. */
int loader_scan(const char *dir, loader_scan_fn cb, void *user);

#endif
