/*
 * test_loader - the verified loader against real signed fixtures
 * (tests/fixtures: one plugin directory per case, made by the build).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loader.h"
#include "sign.h"
#include "util.h"

#ifndef EVS_FIXTURE_DIR
#error "EVS_FIXTURE_DIR must point at the build's tests/fixtures"
#endif

#define CASES EVS_FIXTURE_DIR "/cases"

/* ---- a minimal host whose log records lines ----------------------------- */

struct evs_ctx {
	char lines[16][512];
	int n;
};

static void test_log(struct evs_ctx *ctx, enum evs_log_level level, const char *fmt, ...)
{
	va_list ap;

	(void)level;
	if (ctx->n >= 16)
		return;
	va_start(ap, fmt);
	vsnprintf(ctx->lines[ctx->n++], sizeof(ctx->lines[0]), fmt, ap);
	va_end(ap);
}

static const struct evs_host test_host = {
	.size = sizeof(struct evs_host),
	.abi_major = EVS_ABI_MAJOR,
	.abi_minor = EVS_ABI_MINOR,
	.log = test_log,
};

static const struct evs_event test_event = {
	.size = sizeof(struct evs_event),
	.type = EVS_EVENT_POST_CONNECTION_CREATION,
	.name = "post-connection-creation",
	.connection_id = "conn-1",
	.provider_config_key = "github",
	.event_id = 7,
	.execution_id = 9,
};

/* ---- an in-memory ledger ------------------------------------------------- */

struct mem_ledger {
	struct {
		char name[256];
		char version[64];
		uint8_t hash[SIGN_HASH_BYTES];
	} e[8];
	int n;
	int puts;
};

static int mem_get(void *user, const char *name, char version[64], uint8_t hash[SIGN_HASH_BYTES])
{
	struct mem_ledger *l = user;

	for (int i = 0; i < l->n; i++) {
		if (strcmp(l->e[i].name, name) == 0) {
			memcpy(version, l->e[i].version, 64);
			memcpy(hash, l->e[i].hash, SIGN_HASH_BYTES);
			return 0;
		}
	}
	return 1;
}

static int mem_put(void *user, const char *name, const char *version,
		   const uint8_t hash[SIGN_HASH_BYTES])
{
	struct mem_ledger *l = user;
	int i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->e[i].name, name) == 0)
			break;
	if (i == l->n) {
		if (l->n == 8)
			return -1;
		l->n++;
	}
	snprintf(l->e[i].name, sizeof(l->e[i].name), "%s", name);
	snprintf(l->e[i].version, sizeof(l->e[i].version), "%s", version);
	memcpy(l->e[i].hash, hash, SIGN_HASH_BYTES);
	l->puts++;
	return 0;
}

/* ---- fixtures ------------------------------------------------------------ */

struct state {
	struct sign_keyring *keyring;
	char trusted_id[17];
	char revoked_id[17];
	char tmp[64];
};

static void key_id_of(const char *path, char out[17])
{
	struct sign_pubkey pk;
	char *data;
	size_t len;

	assert_int_equal(util_read_file(path, 4096, &data, &len), 0);
	assert_int_equal(sign_pubkey_parse(data, len, &pk), 0);
	sign_keyid_hex(out, pk.keyid);
	free(data);
}

static int setup(void **vstate)
{
	struct state *s = calloc(1, sizeof(*s));
	const char *revoked[1];
	char err[256];

	assert_non_null(s);
	key_id_of(EVS_FIXTURE_DIR "/keys/trusted/trusted.pub", s->trusted_id);
	key_id_of(EVS_FIXTURE_DIR "/keys/trusted/revoked.pub", s->revoked_id);
	revoked[0] = s->revoked_id;
	assert_int_equal(sign_keyring_load(EVS_FIXTURE_DIR "/keys/trusted", revoked, 1,
					   &s->keyring, err, sizeof(err)), 0);
	snprintf(s->tmp, sizeof(s->tmp), "/tmp/evs_loader_XXXXXX");
	assert_non_null(mkdtemp(s->tmp));
	*vstate = s;
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int teardown(void **vstate)
{
	struct state *s = *vstate;

	nftw(s->tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	sign_keyring_free(s->keyring);
	free(s);
	return 0;
}

static struct loader_options opts_of(struct state *s)
{
	struct loader_options o = {.keyring = s->keyring};
	return o;
}

static void copy_file(const char *from, const char *to)
{
	char *data;
	size_t len;

	assert_int_equal(util_read_file(from, 64u << 20, &data, &len), 0);
	assert_int_equal(util_write_file_atomic(to, data, len, 0644), 0);
	free(data);
}

/* Copies cases/<c>/<name>.so and its signature into dir. */
static void copy_case(const char *c, const char *name, const char *dir)
{
	char from[512], to[512];

	snprintf(from, sizeof(from), CASES "/%s/%s.so", c, name);
	snprintf(to, sizeof(to), "%s/%s.so", dir, name);
	copy_file(from, to);
	strcat(from, ".minisig");
	strcat(to, ".minisig");
	copy_file(from, to);
}

static int load_case(const char *c, const char *name, const struct loader_options *o,
		     struct loader_plugin **p, char *err, size_t errlen)
{
	char dir[512];

	snprintf(dir, sizeof(dir), CASES "/%s", c);
	return loader_load(dir, name, o, p, err, errlen);
}

static int run_event(const struct loader_plugin *p, struct evs_ctx *ctx)
{
	memset(ctx, 0, sizeof(*ctx));
	assert_int_equal(p->kind, LOADER_EVENT_SCRIPT);
	assert_non_null(p->on_event);
	assert_null(p->run_action);
	return p->on_event(&test_host, ctx, &test_event);
}

/* ---- plugins that load --------------------------------------------------- */

static void test_good_event(void **vstate)
{
	struct state *s = *vstate;
	struct loader_options o = opts_of(s);
	struct loader_plugin *p = NULL;
	struct sign_hasher h;
	uint8_t hash[SIGN_HASH_BYTES];
	struct evs_ctx ctx;
	char err[512], *data;
	size_t len;

	assert_int_equal(load_case("good", "fx_event", &o, &p, err, sizeof(err)), LOADER_OK);
	assert_non_null(p);
	assert_string_equal(err, "");
	assert_string_equal(p->name, "fx_event");
	assert_string_equal(p->version, "1.0.0");
	assert_string_equal(p->keyid, s->trusted_id);
	assert_string_equal(p->trusted_comment, "plugin:fx_event version:1.0.0 abi:1");
	assert_string_equal(p->info->name, "fx_event");
	assert_int_equal(p->info->abi_major, EVS_ABI_MAJOR);

	/* the recorded hash is the BLAKE2b-512 of the file on disk */
	assert_int_equal(util_read_file(CASES "/good/fx_event.so", 64u << 20, &data, &len), 0);
	sign_hash_init(&h);
	sign_hash_update(&h, data, len);
	sign_hash_final(&h, hash);
	assert_memory_equal(p->hash, hash, SIGN_HASH_BYTES);
	assert_int_equal(p->size, len);
	free(data);

	assert_int_equal(run_event(p, &ctx), 0);
	assert_int_equal(ctx.n, 1);
	assert_string_equal(ctx.lines[0], "fx_event 1.0.0 post-connection-creation for conn-1");
	assert_true(p->memfd >= 0);
	loader_unload(p);
	loader_unload(NULL);
}

static void test_good_action(void **vstate)
{
	struct state *s = *vstate;
	struct loader_options o = opts_of(s);
	struct loader_plugin *p = NULL;
	struct evs_ctx ctx = {0};
	char err[512], *output = NULL;

	assert_int_equal(load_case("good_action", "fx_action", &o, &p, err, sizeof(err)), LOADER_OK);
	assert_int_equal(p->kind, LOADER_ACTION);
	assert_null(p->on_event);
	assert_non_null(p->run_action);
	assert_int_equal(p->run_action(&test_host, &ctx, "{\"a\":1}", &output), 0);
	assert_non_null(output);
	assert_string_equal(output, "{\"plugin\":\"fx_action\",\"input\":{\"a\":1}}");
	assert_int_equal(ctx.n, 1);
	assert_string_equal(ctx.lines[0], "fx_action ran");
	free(output);
	loader_unload(p);
}

/* ---- one refusal per fixture --------------------------------------------- */

struct refusal {
	const char *dir;
	const char *name;
	int code;
	const char *detail; /* must appear in the reason */
};

static const struct refusal refusals[] = {
	{"nosig", "fx_event", LOADER_ENOSIG, "fx_event.so has no fx_event.so.minisig"},
	{"malformed", "fx_event", LOADER_EMALFORMED, "fx_event.so.minisig"},
	{"unknown_key", "fx_event", LOADER_EUNKNOWNKEY, "which is not a trusted key"},
	{"revoked_key", "fx_event", LOADER_EREVOKED, "which is revoked"},
	{"tampered_file", "fx_event", LOADER_EBADSIG, "fx_event.so does not match fx_event.so.minisig (key "},
	{"tampered_comment", "fx_event", LOADER_EBADGLOBALSIG, "trusted comment of fx_event.so.minisig"},
	{"renamed", "fx_other", LOADER_ENAME, "fx_other.so is signed as plugin 'fx_event'"},
	{"info_name", "fx_infoname", LOADER_ENAME, "names itself 'fx_event'"},
	{"info_version", "fx_event", LOADER_EVERSION, "version 1.0.0 in EVS_PLUGIN, its signature says 2.0.0"},
	{"bad_comment", "fx_event", LOADER_ECOMMENT, "plugin:fx_event abi:1"},
	{"abi_comment", "fx_event", LOADER_EABI, "signed for ABI 2, this host runs ABI 1"},
	{"abi_info", "fx_abi2", LOADER_EABI, "built for ABI 2 (signed as ABI 1)"},
	{"ctor_abi", "fx_ctor", LOADER_EABI, "signed for ABI 2"},
	{"not_elf", "fx_text", LOADER_ENOTELF, "fx_text.so: 24 bytes, shorter than an ELF header"},
	{"machine", "fx_event", LOADER_ENOTELF, "ELF machine"},
	{"relocatable", "fx_rel", LOADER_ENOTELF, "ELF type 1 is not a shared object"},
	{"no_entry", "fx_noentry", LOADER_ENOENTRY, "exports neither on_event nor run_action"},
	{"no_info", "fx_noinfo", LOADER_ENOENTRY, "exports no evs_plugin_info"},
	{"both_entries", "fx_both", LOADER_ENOENTRY, "exports both on_event and run_action"},
	{"subs_short", "fx_subs", LOADER_ESUBSCRIPTION, "fx_subs.so: section .evscript.subscriptions holds 10 bytes"},
	{"subs_kind", "fx_subs", LOADER_ESUBSCRIPTION, "fx_subs.so: unknown subscription kind 7"},
	{"subs_name", "fx_subs", LOADER_ESUBSCRIPTION, "an integration id must be letters, digits"},
	{"good", "missing", LOADER_EIO, "missing.so: No such file or directory"},
	{"good", "../good/fx_event", LOADER_ENAME, "is not a valid plugin name"},
};

static void expect_refusal(struct state *s, const struct refusal *r, const struct loader_options *o)
{
	struct loader_plugin *p = (struct loader_plugin *)0x1;
	char err[512], prefix[128];
	int rc;

	(void)s;
	rc = load_case(r->dir, r->name, o, &p, err, sizeof(err));
	if (rc != r->code || !strstr(err, r->detail))
		print_error("case %s/%s: got %d (%s), want %d with \"%s\"\n", r->dir, r->name, rc,
			    err, r->code, r->detail);
	assert_int_equal(rc, r->code);
	assert_null(p);
	snprintf(prefix, sizeof(prefix), "%s: ", loader_strerror(r->code));
	assert_int_equal(strncmp(err, prefix, strlen(prefix)), 0);
	assert_non_null(strstr(err, r->detail));
}

static void test_refusals(void **vstate)
{
	struct state *s = *vstate;
	struct loader_options o = opts_of(s);

	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++)
		expect_refusal(s, &refusals[i], &o);
}

/* How many of p's declared subscriptions are (kind, integration, event). */
static int count_sub(const struct loader_plugin *p, enum evs_subscription_kind kind, const char *integration,
		     const char *event)
{
	int n = 0;

	for (size_t i = 0; i < p->n_subscriptions; i++)
		n += p->subscriptions[i].kind == kind && strcmp(p->subscriptions[i].integration, integration) == 0 &&
		     strcmp(p->subscriptions[i].event, event) == 0;
	return n;
}

/* Declared subscriptions: read by loader_verify as data, copied by
 * loader_clone; and the parser's checks of the section headers. */
static void test_subscriptions(void **vstate)
{
	struct state *s = *vstate;
	struct loader_options o = opts_of(s);
	struct loader_plugin *p = NULL, *copy = NULL;
	struct loader_subscription *subs = NULL;
	char err[512], detail[300], *data;
	size_t len, n = 9;
	ElfW(Ehdr) eh;

	assert_int_equal(loader_verify(CASES "/subs", "fx_subs", &o, &p, err, sizeof(err)), LOADER_OK);
	assert_null(p->handle); /* nothing was dlopen()ed to read them */
	assert_int_equal(p->n_subscriptions, 3);
	/* in the order of the section, which is the compiler's (at -O2, GCC
	 * lays the records out in reverse): found by content */
	assert_int_equal(count_sub(p, EVS_SUBSCRIBE_EVENT, "github", "post-connection-creation"), 1);
	assert_int_equal(count_sub(p, EVS_SUBSCRIBE_EVENT, "slack", "pre-connection-deletion"), 1);
	assert_int_equal(count_sub(p, EVS_SUBSCRIBE_ACTION, "github", ""), 1);
	assert_int_equal(loader_clone(p, &copy), LOADER_OK);
	assert_int_equal(copy->n_subscriptions, 3);
	assert_true(copy->subscriptions != p->subscriptions);
	assert_memory_equal(copy->subscriptions, p->subscriptions, 3 * sizeof(*p->subscriptions));
	loader_unload(copy);
	loader_unload(p);

	/* a plugin that declares nothing */
	assert_int_equal(loader_verify(CASES "/good", "fx_event", &o, &p, err, sizeof(err)), LOADER_OK);
	assert_int_equal(p->n_subscriptions, 0);
	assert_null(p->subscriptions);
	loader_unload(p);

	/* the parser alone, over the file's bytes and broken copies of them */
	assert_int_equal(util_read_file(CASES "/subs/fx_subs.so", 64u << 20, &data, &len), 0);
	assert_int_equal(loader_parse_subscriptions(data, len, &subs, &n, detail, sizeof(detail)), 0);
	assert_int_equal(n, 3);
	free(subs);
	assert_int_equal(loader_parse_subscriptions(data, 20, &subs, &n, detail, sizeof(detail)), LOADER_ENOTELF);
	assert_null(subs);
	memcpy(&eh, data, sizeof(eh));
	eh.e_shoff = len - 8; /* the section headers past the end */
	memcpy(data, &eh, sizeof(eh));
	assert_int_equal(loader_parse_subscriptions(data, len, &subs, &n, detail, sizeof(detail)), LOADER_ENOTELF);
	assert_non_null(strstr(detail, "malformed section header table"));
	eh.e_shoff = 0; /* no section headers at all (sstrip): nothing declared */
	memcpy(data, &eh, sizeof(eh));
	assert_int_equal(loader_parse_subscriptions(data, len, &subs, &n, detail, sizeof(detail)), 0);
	assert_int_equal(n, 0);
	free(data);
}

static void test_unknown_key_names_the_key(void **vstate)
{
	struct state *s = *vstate;
	struct loader_options o = opts_of(s);
	struct loader_plugin *p;
	char err[512], want[64];

	key_id_of(EVS_FIXTURE_DIR "/keys/untrusted.pub", want);
	assert_int_equal(load_case("unknown_key", "fx_event", &o, &p, err, sizeof(err)),
			 LOADER_EUNKNOWNKEY);
	assert_non_null(strstr(err, want));
	assert_int_equal(load_case("revoked_key", "fx_event", &o, &p, err, sizeof(err)),
			 LOADER_EREVOKED);
	assert_non_null(strstr(err, s->revoked_id));
}

static void test_too_big(void **vstate)
{
	struct state *s = *vstate;
	struct loader_options o = opts_of(s);
	struct loader_plugin *p = NULL;
	char err[512];

	o.max_size = 1024;
	assert_int_equal(load_case("good", "fx_event", &o, &p, err, sizeof(err)), LOADER_ETOOBIG);
	assert_null(p);
	assert_non_null(strstr(err, "file too large: fx_event.so is "));
	assert_non_null(strstr(err, "the limit is 1024"));
}

static void test_constructor_never_runs(void **vstate)
{
	struct state *s = *vstate;
	struct loader_options o = opts_of(s);
	struct loader_plugin *p = NULL;
	char err[512], marker[128];
	struct stat st;

	snprintf(marker, sizeof(marker), "%s/ctor-marker", s->tmp);
	assert_int_equal(setenv("EVS_FIXTURE_CTOR_MARKER", marker, 1), 0);
	assert_int_equal(load_case("ctor_abi", "fx_ctor", &o, &p, err, sizeof(err)), LOADER_EABI);
	assert_int_equal(stat(marker, &st), -1);
	assert_int_equal(errno, ENOENT);

	/* control: the same plugin signed for the right ABI runs its
	 * constructor on load, so the marker would have shown it */
	assert_int_equal(load_case("ctor_ok", "fx_ctor", &o, &p, err, sizeof(err)), LOADER_OK);
	assert_int_equal(stat(marker, &st), 0);
	loader_unload(p);
	unsetenv("EVS_FIXTURE_CTOR_MARKER");
}

static void test_minisign_interop(void **vstate)
{
	struct state *s = *vstate;
	struct loader_options o = opts_of(s);
	struct loader_plugin *p = NULL;
	struct evs_ctx ctx;
	char err[512];
	struct stat st;

	if (stat(CASES "/minisign", &st) != 0)
		skip(); /* minisign was not found at configure time */
	assert_int_equal(load_case("minisign", "fx_event", &o, &p, err, sizeof(err)), LOADER_OK);
	assert_int_equal(run_event(p, &ctx), 0);
	loader_unload(p);

	/* legacy "Ed": refused by default, accepted when allowed */
	assert_int_equal(load_case("legacy", "fx_event", &o, &p, err, sizeof(err)), LOADER_ELEGACY);
	assert_null(p);
	assert_non_null(strstr(err, "legacy signature refused: "));
	o.allow_legacy = true;
	assert_int_equal(load_case("legacy", "fx_event", &o, &p, err, sizeof(err)), LOADER_OK);
	assert_int_equal(run_event(p, &ctx), 0);
	assert_string_equal(ctx.lines[0], "fx_event 1.0.0 post-connection-creation for conn-1");
	loader_unload(p);
}

/* ---- downgrade ledger ---------------------------------------------------- */

static void test_downgrade(void **vstate)
{
	struct state *s = *vstate;
	struct mem_ledger mem = {0};
	struct loader_ledger ledger = {.get = mem_get, .put = mem_put, .user = &mem};
	struct loader_options o = opts_of(s);
	struct loader_plugin *p = NULL, *q = NULL;
	struct evs_ctx ctx;
	char err[512];

	o.ledger = &ledger;
	assert_int_equal(load_case("v110", "fx_event", &o, &p, err, sizeof(err)), LOADER_OK);
	assert_int_equal(mem.n, 0); /* loading alone records nothing */
	assert_int_equal(loader_accept(&o, p), 0);
	assert_int_equal(mem.n, 1);
	assert_string_equal(mem.e[0].version, "1.1.0");
	assert_memory_equal(mem.e[0].hash, p->hash, SIGN_HASH_BYTES);
	loader_unload(p);

	/* the same 1.1.0 again is fine; 1.0.0 is a downgrade */
	assert_int_equal(load_case("v110", "fx_event", &o, &p, err, sizeof(err)), LOADER_OK);
	loader_unload(p);
	assert_int_equal(load_case("good", "fx_event", &o, &p, err, sizeof(err)), LOADER_EDOWNGRADE);
	assert_null(p);
	assert_string_equal(err, "downgrade refused: fx_event 1.0.0 is older than the accepted 1.1.0");

	/* the operator allows it: it loads, and the ledger keeps the highest */
	o.allow_downgrade = true;
	assert_int_equal(load_case("good", "fx_event", &o, &p, err, sizeof(err)), LOADER_OK);
	assert_int_equal(run_event(p, &ctx), 0);
	assert_string_equal(ctx.lines[0], "fx_event 1.0.0 post-connection-creation for conn-1");
	assert_int_equal(loader_accept(&o, p), 0);
	assert_string_equal(mem.e[0].version, "1.1.0");
	loader_unload(p);
	o.allow_downgrade = false;

	/* same version, other bytes */
	assert_int_equal(load_case("swap_a", "fx_swap", &o, &p, err, sizeof(err)), LOADER_OK);
	assert_int_equal(loader_accept(&o, p), 0);
	assert_int_equal(mem.n, 2);
	assert_int_equal(load_case("swap_b", "fx_swap", &o, &q, err, sizeof(err)), LOADER_EDOWNGRADE);
	assert_null(q);
	assert_non_null(strstr(err, "fx_swap 1.0.0 differs from the bytes accepted before"));
	assert_non_null(strstr(err, "bump the version"));
	/* dev_accept_rebuilds: the rebuild loads; a lower version still does not */
	o.accept_rebuilds = true;
	assert_int_equal(load_case("swap_b", "fx_swap", &o, &q, err, sizeof(err)), LOADER_OK);
	assert_int_equal(run_event(q, &ctx), 22);
	loader_unload(q);
	assert_int_equal(load_case("good", "fx_event", &o, &q, err, sizeof(err)), LOADER_EDOWNGRADE);
	o.accept_rebuilds = false;
	loader_unload(p);
	assert_int_equal(load_case("swap_a", "fx_swap", &o, &p, err, sizeof(err)), LOADER_OK);
	loader_unload(p);
	o.allow_downgrade = true;
	assert_int_equal(load_case("swap_b", "fx_swap", &o, &q, err, sizeof(err)), LOADER_OK);
	assert_int_equal(run_event(q, &ctx), 22);
	loader_unload(q);

	/* no ledger: accept is a no-op */
	o.ledger = NULL;
	assert_int_equal(load_case("good", "fx_event", &o, &p, err, sizeof(err)), LOADER_OK);
	assert_int_equal(loader_accept(&o, p), 0);
	loader_unload(p);
}

/* ---- what runs is what was verified --------------------------------------- */

static void test_overwrite_after_load(void **vstate)
{
	struct state *s = *vstate;
	struct loader_options o = opts_of(s);
	struct loader_plugin *a = NULL, *b = NULL, *again = NULL;
	struct evs_ctx ctx;
	char dir[128], path[192], err[512], *bytes;
	size_t len;
	int fd;

	snprintf(dir, sizeof(dir), "%s/overwrite", s->tmp);
	assert_int_equal(mkdir(dir, 0755), 0);
	copy_case("swap_a", "fx_swap", dir);
	assert_int_equal(loader_load(dir, "fx_swap", &o, &a, err, sizeof(err)), LOADER_OK);
	assert_int_equal(run_event(a, &ctx), 11);

	/* the dangerous deployment: truncate and rewrite the file in place */
	assert_int_equal(util_read_file(CASES "/swap_b/fx_swap.so", 64u << 20, &bytes, &len), 0);
	snprintf(path, sizeof(path), "%s/fx_swap.so", dir);
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, bytes, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
	free(bytes);

	/* the loaded code is the verified copy, untouched */
	assert_int_equal(run_event(a, &ctx), 11);
	assert_string_equal(ctx.lines[0], "swap-A 1.0.0 post-connection-creation for conn-1");

	/* the disk really changed: A's signature no longer matches it */
	assert_int_equal(loader_load(dir, "fx_swap", &o, &again, err, sizeof(err)), LOADER_EBADSIG);
	assert_null(again);

	/* with B's signature, B loads beside A, and each runs its own code */
	snprintf(path, sizeof(path), "%s/fx_swap.so.minisig", dir);
	copy_file(CASES "/swap_b/fx_swap.so.minisig", path);
	assert_int_equal(loader_load(dir, "fx_swap", &o, &b, err, sizeof(err)), LOADER_OK);
	assert_int_equal(run_event(b, &ctx), 22);
	assert_string_equal(ctx.lines[0], "swap-B 1.0.0 post-connection-creation for conn-1");
	assert_int_equal(run_event(a, &ctx), 11);
	loader_unload(b);
	loader_unload(a);
}

static void test_fd_reuse(void **vstate)
{
	struct state *s = *vstate;
	struct loader_options o = opts_of(s);
	struct loader_plugin *a = NULL, *b = NULL;
	struct evs_ctx ctx;
	char err[512];
	int fd_a;

	assert_int_equal(load_case("fd_a", "fx_fda", &o, &a, err, sizeof(err)), LOADER_OK);
	assert_int_equal(run_event(a, &ctx), 31);
	fd_a = a->memfd;
	loader_unload(a);

	assert_int_equal(load_case("fd_b", "fx_fdb", &o, &b, err, sizeof(err)), LOADER_OK);
	assert_int_equal(b->memfd, fd_a); /* the same /proc/self/fd/N path string */
	assert_int_equal(run_event(b, &ctx), 32);
	assert_string_equal(ctx.lines[0], "fd-B 1.0.0 post-connection-creation for conn-1");
	loader_unload(b);
}

/* A library that stays mapped after dlclose (-z nodelete) keeps its
 * /proc/self/fd/N name in the link map after its memfd is closed: a naive
 * dlopen of the next memfd with that number returns the old library. */
static void test_fd_reuse_stale_object(void **vstate)
{
	struct state *s = *vstate;
	struct loader_options o = opts_of(s);
	struct loader_plugin *a = NULL, *b = NULL;
	struct evs_ctx ctx;
	char err[512], path[64];
	void *stale;
	int fd_a;

	assert_int_equal(load_case("sticky", "fx_sticky", &o, &a, err, sizeof(err)), LOADER_OK);
	assert_int_equal(run_event(a, &ctx), 33);
	fd_a = a->memfd;
	loader_unload(a);

	/* the trap is set: the old object still answers to the path string */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd_a);
	stale = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
	assert_non_null(stale);
	dlclose(stale);

	assert_int_equal(load_case("fd_b", "fx_fdb", &o, &b, err, sizeof(err)), LOADER_OK);
	assert_int_not_equal(b->memfd, fd_a);
	assert_int_equal(run_event(b, &ctx), 32);
	assert_string_equal(ctx.lines[0], "fd-B 1.0.0 post-connection-creation for conn-1");
	loader_unload(b);
}

static void test_fifo_does_not_hang(void **vstate)
{
	struct state *s = *vstate;
	struct loader_options o = opts_of(s);
	struct loader_plugin *p = NULL;
	char dir[128], path[192], err[512];

	snprintf(dir, sizeof(dir), "%s/fifo", s->tmp);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/pipe.so", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(loader_load(dir, "pipe", &o, &p, err, sizeof(err)), LOADER_EIO);
	assert_non_null(strstr(err, "not a regular file"));
}

/* ---- scan ---------------------------------------------------------------- */

struct seen {
	char names[8][64];
	bool invalid[8];
	int n;
	int stop_at;
};

static int on_scan(void *user, const char *name, const char *invalid_reason)
{
	struct seen *seen = user;

	if (seen->n == 8)
		return -100;
	snprintf(seen->names[seen->n], sizeof(seen->names[0]), "%s", name);
	seen->invalid[seen->n] = invalid_reason != NULL;
	if (invalid_reason)
		assert_true(strlen(invalid_reason) > 0);
	seen->n++;
	return seen->n == seen->stop_at ? 42 : 0;
}

static void touch(const char *dir, const char *name)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	close(fd);
}

static void test_scan(void **vstate)
{
	struct state *s = *vstate;
	struct seen seen = {0};
	char dir[128];

	snprintf(dir, sizeof(dir), "%s/scan", s->tmp);
	assert_int_equal(mkdir(dir, 0755), 0);
	touch(dir, "c.so");
	touch(dir, "a.so");
	touch(dir, "bad name.so");
	touch(dir, "b.so");
	touch(dir, ".so");
	touch(dir, "a.so.minisig");
	touch(dir, "README.txt");
	touch(dir, "x.sox");

	assert_int_equal(loader_scan(dir, on_scan, &seen), 0);
	assert_int_equal(seen.n, 5);
	assert_string_equal(seen.names[0], "");
	assert_true(seen.invalid[0]);
	assert_string_equal(seen.names[1], "a");
	assert_false(seen.invalid[1]);
	assert_string_equal(seen.names[2], "b");
	assert_false(seen.invalid[2]);
	assert_string_equal(seen.names[3], "bad name");
	assert_true(seen.invalid[3]);
	assert_string_equal(seen.names[4], "c");
	assert_false(seen.invalid[4]);

	/* the callback stops the scan */
	memset(&seen, 0, sizeof(seen));
	seen.stop_at = 2;
	assert_int_equal(loader_scan(dir, on_scan, &seen), 42);
	assert_int_equal(seen.n, 2);

	/* the fixture directory of the good plugin */
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(loader_scan(CASES "/good", on_scan, &seen), 0);
	assert_int_equal(seen.n, 1);
	assert_string_equal(seen.names[0], "fx_event");

	assert_int_equal(loader_scan("/nonexistent/evs", on_scan, &seen), LOADER_EIO);
}

static void test_strerror(void **vstate)
{
	(void)vstate;
	for (int a = LOADER_ETOOMANY; a <= LOADER_OK; a++) {
		assert_string_not_equal(loader_strerror(a), "unknown loader error");
		for (int b = LOADER_ETOOMANY; b < a; b++)
			assert_string_not_equal(loader_strerror(a), loader_strerror(b));
	}
	assert_string_equal(loader_strerror(-1000), "unknown loader error");
}

static size_t open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	size_t n = 0;

	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* A verified plugin need cost no descriptor: its sealed bytes stay mapped
 * when its memfd is closed, a clone (the next generation) gets a memfd and a
 * mapping of its own, and loader_memfd() makes a sealed memfd of the very
 * same bytes only when one is asked for. */
static void test_bytes_without_descriptor(void **vstate)
{
	struct state *s = *vstate;
	struct loader_options o = opts_of(s);
	struct loader_plugin *p[64] = {NULL}, *copy = NULL;
	struct evs_ctx ctx;
	char err[512], *data;
	size_t len, before;
	int fd, seals;
	struct stat st;
	void *m;

	assert_int_equal(util_read_file(CASES "/good/fx_event.so", 64u << 20, &data, &len), 0);
	before = open_fds();
	for (size_t i = 0; i < 64; i++) {
		assert_int_equal(loader_verify(CASES "/good", "fx_event", &o, &p[i], err, sizeof(err)), LOADER_OK);
		assert_true(p[i]->memfd >= 0);
		assert_int_equal(p[i]->image_len, len);
		assert_memory_equal(p[i]->image, data, len);
	}
	assert_int_equal(open_fds(), before + 64);
	for (size_t i = 0; i < 64; i++) {
		loader_memfd_close(p[i]);
		assert_int_equal(p[i]->memfd, -1);
		assert_memory_equal(p[i]->image, data, len);
	}
	assert_int_equal(open_fds(), before); /* 64 plugins, no descriptor */

	/* a clone has its own memfd and mapping, and outlives its source */
	assert_int_equal(loader_clone(p[0], &copy), LOADER_OK);
	assert_true(copy->memfd >= 0);
	assert_ptr_not_equal(copy->image, p[0]->image);
	loader_unload(p[0]);
	p[0] = NULL;
	assert_memory_equal(copy->image, data, len);
	loader_memfd_close(copy);
	assert_int_equal(open_fds(), before);

	/* a memfd on demand: sealed, the same bytes, the caller's to close */
	assert_int_equal(loader_memfd(copy, &fd), 0);
	assert_true(fd >= 0);
	seals = fcntl(fd, F_GET_SEALS);
	assert_int_equal(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL),
			 F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal((size_t)st.st_size, len);
	m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
	assert_true(m != MAP_FAILED);
	assert_memory_equal(m, data, len);
	munmap(m, len);
	assert_int_equal(write(fd, "x", 1), -1); /* sealed */
	close(fd);
	assert_int_equal(open_fds(), before);

	/* opened in this process, it holds one memfd while loaded, and runs */
	assert_int_equal(loader_open(copy, err, sizeof(err)), LOADER_OK);
	assert_true(copy->memfd >= 0);
	assert_int_equal(open_fds(), before + 1);
	assert_int_equal(run_event(copy, &ctx), 0);
	assert_string_equal(ctx.lines[0], "fx_event 1.0.0 post-connection-creation for conn-1");
	loader_unload(copy);
	for (size_t i = 1; i < 64; i++)
		loader_unload(p[i]);
	assert_int_equal(open_fds(), before);
	free(data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_event),
		cmocka_unit_test(test_good_action),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_subscriptions),
		cmocka_unit_test(test_bytes_without_descriptor),
		cmocka_unit_test(test_unknown_key_names_the_key),
		cmocka_unit_test(test_too_big),
		cmocka_unit_test(test_constructor_never_runs),
		cmocka_unit_test(test_minisign_interop),
		cmocka_unit_test(test_downgrade),
		cmocka_unit_test(test_overwrite_after_load),
		cmocka_unit_test(test_fd_reuse),
		cmocka_unit_test(test_fd_reuse_stale_object),
		cmocka_unit_test(test_fifo_does_not_hang),
		cmocka_unit_test(test_scan),
		cmocka_unit_test(test_strerror),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
