/*
 * evscript - the operator's command: make keys, sign and verify plugins.
 *
 * The flags follow minisign's, and the files are minisign's formats: a key
 * made here signs with `minisign -S`, a signature made here verifies with
 * `minisign -V`, and the other way round.
 *
 *   evscript keygen -p PUBFILE -s SECFILE [-f]
 *   evscript sign   -s SECFILE -m FILE [-x SIGFILE] [-t TRUSTED] [-c UNTRUSTED] [-q]
 *                   (without -t, FILE must be a plugin: the comment comes from its info)
 *   evscript verify (-p PUBFILE | -d KEYSDIR [-r KEYID]...) -m FILE [-x SIGFILE] [-q|-Q] [-l]
 *
 * Exit status: 0 success, 1 failure (the reason on stderr), 2 usage error.
 * Subcommands live in the `commands` table at the bottom.
 */
#include "cli_author.h"
#include "cli_remote.h"
#include "sign.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#define LEGACY_FILE_MAX ((size_t)1 << 30) /* minisign's limit for non-prehashed files */
#define MAX_REVOKED 64

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *usage;
	const char *summary;
};

static const struct command *current;

static const struct option help_only[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};

static void usage_cmd(FILE *f, const struct command *c)
{
	fprintf(f, "usage: evscript %s\n", c->usage);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	if (fmt != NULL) {
		va_start(ap, fmt);
		cli_vsay(current->name, fmt, ap);
		va_end(ap);
	}
	usage_cmd(stderr, current);
	return CLI_EXIT_USAGE;
}

#define fail(...) cli_error(current->name, __VA_ARGS__)

/* Streams a file through BLAKE2b-512 (the "ED" prehash): no size limit. */
static int hash_file(const char *path, uint8_t hash[SIGN_HASH_BYTES])
{
	struct sign_hasher h;
	unsigned char buf[65536];
	int fd, ret = 0;
	ssize_t n;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return status_from_errno(errno);
	sign_hash_init(&h);
	for (;;) {
		n = util_read(fd, buf, sizeof(buf));
		if (n < 0) {
			ret = status_from_errno(errno);
			break;
		}
		if (n == 0)
			break;
		sign_hash_update(&h, buf, (size_t)n);
	}
	close(fd);
	sign_hash_final(&h, hash);
	return ret;
}

/* Reads a key or signature file (at most SIGN_MINISIG_MAX bytes, kind names
 * it in the message). On failure says why on stderr and returns non-zero. */
static int read_small(const char *path, const char *kind, char **data, size_t *len)
{
	int rc = util_read_file(path, SIGN_MINISIG_MAX, data, len);

	if (rc == STATUS_ETOOBIG)
		fail("%s: too large for %s", path, kind);
	else if (rc)
		fail("%s: %s", path, status_str(rc));
	return rc;
}

/* The signature's path: sig_path, else FILE.minisig (malloc'd into *owned,
 * which the caller frees). NULL when out of memory (said on stderr). */
static const char *minisig_path(const char *file, const char *sig_path, char **owned)
{
	*owned = NULL;
	if (sig_path != NULL && *sig_path != '\0')
		return sig_path;
	if (asprintf(owned, "%s.minisig", file) < 0) {
		*owned = NULL;
		fail("%s", status_str(SIGN_ENOMEM));
		return NULL;
	}
	return *owned;
}

/* One option of a command, for parse_options. With arg, -ch takes an
 * argument into *arg (the last one given wins); with list, each -ch adds
 * its argument to list (at most max, counted in *n); otherwise -ch sets
 * *flag to set (the last one given wins). meta, for an option with arg,
 * makes it required and names its argument in the message. */
struct cli_opt {
	int ch;
	const char **arg;
	const char *meta;
	const char **list;
	size_t *n;
	size_t max;
	int *flag;
	int set;
};

/* "-p PUBFILE and -s SECFILE are required" when any option with a meta is
 * missing: a usage error; else 0. */
static int check_required(const struct cli_opt *opts, size_t n_opts)
{
	char names[128] = "";
	size_t len = 0, n_required = 0;
	bool missing = false;

	for (size_t i = 0; i < n_opts; i++) {
		if (opts[i].meta == NULL)
			continue;
		missing |= *opts[i].arg == NULL;
		len += (size_t)snprintf(names + len, len < sizeof(names) ? sizeof(names) - len : 0, "%s-%c %s",
					n_required++ ? " and " : "", opts[i].ch, opts[i].meta);
	}
	if (!missing)
		return 0;
	return usage_error("%s %s required", names, n_required > 1 ? "are" : "is");
}

/* Parses the command's options (argv[0] is its name) in order by opts,
 * and -h. Returns true when the command should run; else *status is the
 * exit status: 0 after -h (the usage printed), CLI_EXIT_USAGE for an unknown
 * option, a stray argument, too many of a repeated option or a required
 * one missing (said on stderr). */
static bool parse_options(int argc, char **argv, const struct cli_opt *opts, size_t n_opts,
			  int *status)
{
	char optstring[32] = "+";
	size_t len = 1;
	int ch;

	for (size_t i = 0; i < n_opts && len + 3 < sizeof(optstring); i++) {
		optstring[len++] = (char)opts[i].ch;
		if (opts[i].arg || opts[i].list)
			optstring[len++] = ':';
	}
	optstring[len] = 'h';
	*status = 0;
	while ((ch = getopt_long(argc, argv, optstring, help_only, NULL)) != -1) {
		const struct cli_opt *o = NULL;

		for (size_t i = 0; i < n_opts && o == NULL; i++)
			if (opts[i].ch == ch)
				o = &opts[i];
		if (o == NULL) {
			if (ch == 'h')
				usage_cmd(stdout, current);
			else
				*status = usage_error(NULL);
			return false;
		}
		if (o->arg) {
			*o->arg = optarg;
		} else if (o->list) {
			if (*o->n == o->max) {
				*status = usage_error("at most %zu -%c options", o->max, o->ch);
				return false;
			}
			o->list[(*o->n)++] = optarg;
		} else {
			*o->flag = o->set;
		}
	}
	if (optind != argc)
		*status = usage_error("unexpected argument '%s'", argv[optind]);
	else
		*status = check_required(opts, n_opts);
	return *status == 0;
}

#define N_OPTS(a) (sizeof(a) / sizeof((a)[0]))

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* ---- keygen ----------------------------------------------------------- */

static int cmd_keygen(int argc, char **argv)
{
	const char *pub_path = NULL, *sec_path = NULL;
	struct sign_pubkey pk;
	struct sign_seckey sk;
	char *pub_text = NULL, *sec_text = NULL, hex[17];
	int force = 0, rc, status;
	const struct cli_opt opts[] = {
		{'p', .arg = &pub_path, .meta = "PUBFILE"},
		{'s', .arg = &sec_path, .meta = "SECFILE"},
		{'f', .flag = &force, .set = 1},
	};

	if (!parse_options(argc, argv, opts, N_OPTS(opts), &status))
		return status;
	status = EXIT_FAILURE;
	if (!force) {
		if (exists(sec_path))
			return fail("%s already exists (use -f to overwrite the key pair)", sec_path);
		if (exists(pub_path))
			return fail("%s already exists (use -f to overwrite the key pair)", pub_path);
	}

	rc = sign_keygen(&pk, &sk);
	if (rc) {
		fail("%s", status_str(rc));
		goto out;
	}
	rc = sign_seckey_format(&sk, &sec_text);
	if (rc == 0)
		rc = sign_pubkey_format(&pk, &pub_text);
	if (rc) {
		fail("%s", status_str(rc));
		goto out;
	}
	rc = util_write_file_atomic(sec_path, sec_text, strlen(sec_text), 0600);
	if (rc) {
		fail("%s: %s", sec_path, status_str(rc));
		goto out;
	}
	rc = util_write_file_atomic(pub_path, pub_text, strlen(pub_text), 0644);
	if (rc) {
		fail("%s: %s", pub_path, status_str(rc));
		goto out;
	}
	sign_keyid_hex(hex, pk.keyid);
	printf("The secret key was saved as %s - Keep it secret!\n", sec_path);
	printf("The public key was saved as %s (key id %s)\n", pub_path, hex);
	status = 0;
out:
	if (sec_text != NULL) {
		sodium_memzero(sec_text, strlen(sec_text));
		free(sec_text);
	}
	free(pub_text);
	sodium_memzero(&sk, sizeof(sk));
	return status;
}

/* ---- sign ------------------------------------------------------------- */

/* The trusted comment the daemon wants for the plugin file, from its own
 * info (malloc'd), or NULL when its info cannot be read (said why). */
static char *plugin_comment(const char *file)
{
	struct cli_plugin_info info;
	char err[768], comment[400], *out;

	if (cli_plugin_info(file, &info, err, sizeof(err)) != 0) {
		fail("%s; not signed (give -t TRUSTED_COMMENT to sign a file that is not a plugin)", err);
		return NULL;
	}
	cli_plugin_comment(&info, comment, sizeof(comment));
	out = strdup(comment);
	if (out == NULL)
		fail("%s", status_str(SIGN_ENOMEM));
	return out;
}

static int cmd_sign(int argc, char **argv)
{
	const char *sec_path = NULL, *file = NULL, *sig_path = NULL;
	const char *trusted = NULL, *untrusted = NULL;
	char *sig_default = NULL, *trusted_default = NULL, *data = NULL, *minisig = NULL;
	struct sign_seckey sk;
	uint8_t hash[SIGN_HASH_BYTES];
	size_t len;
	int quiet = 0, rc, status;
	const struct cli_opt opts[] = {
		{'s', .arg = &sec_path, .meta = "SECFILE"},
		{'m', .arg = &file, .meta = "FILE"},
		{'x', .arg = &sig_path},
		{'t', .arg = &trusted},
		{'c', .arg = &untrusted},
		{'q', .flag = &quiet, .set = 1},
	};

	memset(&sk, 0, sizeof(sk));
	if (!parse_options(argc, argv, opts, N_OPTS(opts), &status))
		return status;
	status = EXIT_FAILURE;

	if (read_small(sec_path, "a secret key", &data, &len))
		goto out;
	rc = sign_seckey_parse(data, len, &sk);
	sodium_memzero(data, len);
	if (rc) {
		fail("%s: %s", sec_path, status_str(rc));
		goto out;
	}
	rc = hash_file(file, hash);
	if (rc) {
		fail("%s: %s", file, status_str(rc));
		goto out;
	}
	if (trusted == NULL || *trusted == '\0') {
		trusted = trusted_default = plugin_comment(file);
		if (trusted == NULL)
			goto out;
	}
	rc = sign_sign_hash(&sk, hash, trusted, untrusted && *untrusted ? untrusted : NULL, &minisig);
	if (rc) {
		fail("%s", status_str(rc));
		goto out;
	}
	sig_path = minisig_path(file, sig_path, &sig_default);
	if (sig_path == NULL)
		goto out;
	rc = util_write_file_atomic(sig_path, minisig, strlen(minisig), 0644);
	if (rc) {
		fail("%s: %s", sig_path, status_str(rc));
		goto out;
	}
	if (!quiet)
		printf("Signature written to %s\n", sig_path);
	status = 0;
out:
	sodium_memzero(&sk, sizeof(sk));
	free(data);
	free(minisig);
	free(sig_default);
	free(trusted_default);
	return status;
}

/* ---- verify ----------------------------------------------------------- */

/* What verify reads, step by step. */
struct verify {
	struct sign_pubkey pk;           /* -p */
	struct sign_keyring *kr;         /* -d: the trusted keys, less the revoked */
	const char *sig_path;
	char *sig_default;               /* FILE.minisig when no -x */
	char *sig_text;
	struct sign_sig sig;
	uint8_t hash[SIGN_HASH_BYTES];   /* prehashed signatures: the file's hash */
	char *file_data;                 /* legacy signatures: the whole file */
	size_t file_len;
};

static void verify_clear(struct verify *v)
{
	sign_keyring_free(v->kr);
	util_free_all(v->file_data, v->sig_text, v->sig_default);
}

/* The key to verify with: the public key file, or the keyring in
 * keys_dir without the revoked key ids. 0, or EXIT_FAILURE (said why). */
static int verify_load_key(struct verify *v, const char *pub_path, const char *keys_dir,
			   const char **revoked, size_t n_revoked)
{
	char err[512], *data = NULL;
	size_t len;
	int rc;

	if (pub_path == NULL) {
		rc = sign_keyring_load(keys_dir, revoked, n_revoked, &v->kr, err, sizeof(err));
		return rc ? fail("%s", err[0] ? err : status_str(rc)) : 0;
	}
	if (read_small(pub_path, "a public key", &data, &len))
		return EXIT_FAILURE;
	rc = sign_pubkey_parse(data, len, &v->pk);
	free(data);
	return rc ? fail("%s: %s", pub_path, status_str(rc)) : 0;
}

/* The signature of file (at sig_path, else FILE.minisig); a legacy one
 * only with -l. 0, or EXIT_FAILURE (said why). */
static int verify_load_sig(struct verify *v, const char *file, const char *sig_path, bool legacy)
{
	size_t len;
	int rc;

	v->sig_path = minisig_path(file, sig_path, &v->sig_default);
	if (v->sig_path == NULL || read_small(v->sig_path, "a signature file", &v->sig_text, &len))
		return EXIT_FAILURE;
	rc = sign_sig_parse(v->sig_text, len, &v->sig);
	if (rc)
		return fail("%s: %s", v->sig_path, status_str(rc));
	if (v->sig.legacy && !legacy)
		return fail("%s: %s (use -l to accept it)", v->sig_path, status_str(SIGN_ELEGACY));
	return 0;
}

/* What the signature covers: the file's hash, or for a legacy signature
 * the whole file (at most 1 GiB). 0, or EXIT_FAILURE (said why). */
static int verify_load_file(struct verify *v, const char *file)
{
	int rc;

	if (!v->sig.legacy) {
		rc = hash_file(file, v->hash);
		return rc ? fail("%s: %s", file, status_str(rc)) : 0;
	}
	rc = util_read_file(file, LEGACY_FILE_MAX, &v->file_data, &v->file_len);
	if (rc)
		return fail("%s: %s", file, rc == STATUS_ETOOBIG ? "larger than 1 GiB: legacy signatures cannot cover it"
							 : status_str(rc));
	return 0;
}

/* The signature and the global signature over the trusted comment, with
 * the keyring or the public key. 0, or EXIT_FAILURE (said why). */
static int verify_check(struct verify *v, bool legacy)
{
	const uint8_t *hash = v->sig.legacy ? NULL : v->hash;
	char hex[17], hex2[17];
	int rc;

	if (v->kr != NULL) {
		rc = sign_keyring_verify(v->kr, &v->sig, hash, v->file_data, v->file_len, legacy, hex);
		return rc ? fail("%s: %s (key id %s)", v->sig_path, status_str(rc), hex) : 0;
	}
	rc = sign_verify(&v->pk, &v->sig, hash, v->file_data, v->file_len, legacy);
	if (rc == SIGN_EKEYID) {
		sign_keyid_hex(hex, v->sig.keyid);
		sign_keyid_hex(hex2, v->pk.keyid);
		return fail("%s: signature key id is %s but the public key's is %s", v->sig_path, hex, hex2);
	}
	return rc ? fail("%s: %s", v->sig_path, status_str(rc)) : 0;
}

static int cmd_verify(int argc, char **argv)
{
	const char *pub_path = NULL, *keys_dir = NULL, *file = NULL, *sig_path = NULL;
	const char *revoked[MAX_REVOKED];
	size_t n_revoked = 0;
	struct verify v;
	int quiet = 0, legacy = 0, status;
	const struct cli_opt opts[] = {
		{'p', .arg = &pub_path},
		{'d', .arg = &keys_dir},
		{'r', .list = revoked, .n = &n_revoked, .max = MAX_REVOKED},
		{'m', .arg = &file, .meta = "FILE"},
		{'x', .arg = &sig_path},
		{'q', .flag = &quiet, .set = 1},
		{'Q', .flag = &quiet, .set = 2},
		{'l', .flag = &legacy, .set = 1},
	};

	if (!parse_options(argc, argv, opts, N_OPTS(opts), &status))
		return status;
	if ((pub_path == NULL) == (keys_dir == NULL))
		return usage_error("give exactly one of -p PUBFILE and -d KEYSDIR");
	if (n_revoked > 0 && keys_dir == NULL)
		return usage_error("-r KEYID needs -d KEYSDIR");

	memset(&v, 0, sizeof(v));
	status = verify_load_key(&v, pub_path, keys_dir, revoked, n_revoked);
	if (status == 0)
		status = verify_load_sig(&v, file, sig_path, legacy);
	if (status == 0)
		status = verify_load_file(&v, file);
	if (status == 0)
		status = verify_check(&v, legacy);
	if (status == 0 && quiet == 0)
		printf("Signature and comment signature verified\nTrusted comment: %s\n", v.sig.trusted_comment);
	else if (status == 0 && quiet == 2)
		printf("%s\n", v.sig.trusted_comment);
	verify_clear(&v);
	return status;
}

/* ---- dispatch --------------------------------------------------------- */

static const struct command commands[] = {
	{"keygen", cmd_keygen, "keygen -p PUBFILE -s SECFILE [-f]",
	 "make a key pair (unencrypted minisign secret key, mode 0600)"},
	{"sign", cmd_sign, "sign -s SECFILE -m FILE [-x SIGFILE] [-t TRUSTED_COMMENT] [-c UNTRUSTED_COMMENT] [-q]",
	 "sign FILE into FILE.minisig (prehashed, minisign's \"ED\"; without -t the trusted comment "
	 "comes from the plugin's info)"},
	{"verify", cmd_verify,
	 "verify (-p PUBFILE | -d KEYSDIR [-r REVOKED_KEYID]...) -m FILE [-x SIGFILE] [-q | -Q] [-l]",
	 "verify FILE against FILE.minisig (-l accepts legacy \"Ed\" signatures)"},
	{"deploy", cmd_deploy, "deploy PLUGIN.so [--sign SECFILE] --plugin-dir DIR [--reload URL] [--secret-key KEY]",
	 "sign (optional), copy into the plugin directory atomically, reload and report"},
	{"run", cmd_run, "run PLUGIN.so (--event EVENT | --action [--input JSON]) --connection FILE.json "
	 "[--providers FILE] [--env NAME=VALUE]... [--mock DIR | --record DIR]",
	 "run one script locally with the real host functions (no daemon); record or replay responses"},
	{"new", cmd_new, "new NAME [--event EVENT | --action] [--integration ID] [--dir DIR]",
	 "write a plugin project (source, CMake, unit test, README) for the installed SDK"},
	{"status", cli_remote, CLI_USAGE_STATUS, "a running daemon's health and plugins"},
	{"plugins", cli_remote, CLI_USAGE_PLUGINS, "loaded and refused plugins"},
	{"reload", cli_remote, CLI_USAGE_RELOAD, "reload the daemon (POST /reload)"},
	{"connections", cli_remote, CLI_USAGE_CONNECTIONS, "list connections"},
	{"executions", cli_remote, CLI_USAGE_EXECUTIONS, "list executions; --follow: as they start and end"},
	{"logs", cli_remote, CLI_USAGE_LOGS, "an execution's log lines; --follow: live, until it ends"},
};

static void usage_all(FILE *f)
{
	fprintf(f, "usage: evscript <command> [options]   (evscript <command> --help)\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  evscript %s\n", commands[i].usage);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage_all(stderr);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
		usage_all(stdout);
		return 0;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "evscript: %s\n", status_str(SIGN_EINIT));
		return EXIT_FAILURE;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name) == 0) {
			current = &commands[i];
			return commands[i].run(argc - 1, argv + 1);
		}
	}
	fprintf(stderr, "evscript: unknown command '%s'\n", argv[1]);
	usage_all(stderr);
	return CLI_EXIT_USAGE;
}
