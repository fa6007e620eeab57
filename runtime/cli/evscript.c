/*
 * evscript - the operator's command: make keys, sign and verify plugins.
 *
 * The flags follow minisign's, and the files are minisign's formats: a key
 * made here signs with `minisign -S`, a signature made here verifies with
 * `minisign -V`, and the other way round.
 *
 *   evscript keygen -p PUBFILE -s SECFILE [-f]
 *   evscript sign   -s SECFILE -m FILE [-x SIGFILE] [-t TRUSTED] [-c UNTRUSTED] [-q]
 *   evscript verify (-p PUBFILE | -d KEYSDIR [-r KEYID]...) -m FILE [-x SIGFILE] [-q|-Q] [-l]
 *
 * Exit status: 0 success, 1 failure (the reason on stderr), 2 usage error.
 * Subcommands live in the `commands` table at the bottom.
 */
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

#define EXIT_USAGE 2
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
		fprintf(stderr, "evscript %s: ", current->name);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	usage_cmd(stderr, current);
	return EXIT_USAGE;
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "evscript %s: ", current->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_FAILURE;
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

/* Streams a file through BLAKE2b-512 (the "ED" prehash): no size limit. */
static int hash_file(const char *path, uint8_t hash[SIGN_HASH_BYTES])
{
	struct sign_hasher h;
	unsigned char buf[65536];
	int fd, ret = 0;
	ssize_t n;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	sign_hash_init(&h);
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
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

	if (rc == -EFBIG)
		fail("%s: too large for %s", path, kind);
	else if (rc)
		fail("%s: %s", path, strerror(-rc));
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
		fail("%s", sign_strerror(SIGN_ENOMEM));
		return NULL;
	}
	return *owned;
}

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
	bool force = false;
	int opt, rc, status = EXIT_FAILURE;

	while ((opt = getopt_long(argc, argv, "+p:s:fh", help_only, NULL)) != -1) {
		switch (opt) {
		case 'p': pub_path = optarg; break;
		case 's': sec_path = optarg; break;
		case 'f': force = true; break;
		case 'h': usage_cmd(stdout, current); return 0;
		default: return usage_error(NULL);
		}
	}
	if (optind != argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (pub_path == NULL || sec_path == NULL)
		return usage_error("-p PUBFILE and -s SECFILE are required");
	if (!force) {
		if (exists(sec_path))
			return fail("%s already exists (use -f to overwrite the key pair)", sec_path);
		if (exists(pub_path))
			return fail("%s already exists (use -f to overwrite the key pair)", pub_path);
	}

	rc = sign_keygen(&pk, &sk);
	if (rc) {
		fail("%s", sign_strerror(rc));
		goto out;
	}
	rc = sign_seckey_format(&sk, &sec_text);
	if (rc == 0)
		rc = sign_pubkey_format(&pk, &pub_text);
	if (rc) {
		fail("%s", sign_strerror(rc));
		goto out;
	}
	rc = util_write_file_atomic(sec_path, sec_text, strlen(sec_text), 0600);
	if (rc) {
		fail("%s: %s", sec_path, strerror(-rc));
		goto out;
	}
	rc = util_write_file_atomic(pub_path, pub_text, strlen(pub_text), 0644);
	if (rc) {
		fail("%s: %s", pub_path, strerror(-rc));
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

static int cmd_sign(int argc, char **argv)
{
	const char *sec_path = NULL, *file = NULL, *sig_path = NULL;
	const char *trusted = NULL, *untrusted = NULL;
	char *sig_default = NULL, *trusted_default = NULL, *data = NULL, *minisig = NULL;
	struct sign_seckey sk;
	uint8_t hash[SIGN_HASH_BYTES];
	size_t len;
	bool quiet = false;
	int opt, rc, status = EXIT_FAILURE;

	memset(&sk, 0, sizeof(sk));
	while ((opt = getopt_long(argc, argv, "+s:m:x:t:c:qh", help_only, NULL)) != -1) {
		switch (opt) {
		case 's': sec_path = optarg; break;
		case 'm': file = optarg; break;
		case 'x': sig_path = optarg; break;
		case 't': trusted = optarg; break;
		case 'c': untrusted = optarg; break;
		case 'q': quiet = true; break;
		case 'h': usage_cmd(stdout, current); return 0;
		default: return usage_error(NULL);
		}
	}
	if (optind != argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (sec_path == NULL || file == NULL)
		return usage_error("-s SECFILE and -m FILE are required");

	if (read_small(sec_path, "a secret key", &data, &len))
		goto out;
	rc = sign_seckey_parse(data, len, &sk);
	sodium_memzero(data, len);
	if (rc) {
		fail("%s: %s", sec_path, sign_strerror(rc));
		goto out;
	}
	rc = hash_file(file, hash);
	if (rc) {
		fail("%s: %s", file, strerror(-rc));
		goto out;
	}
	if (trusted == NULL || *trusted == '\0') {
		if (asprintf(&trusted_default, "timestamp:%lld\tfile:%s\thashed", (long long)time(NULL),
			     base_name(file)) < 0) {
			trusted_default = NULL;
			fail("%s", sign_strerror(SIGN_ENOMEM));
			goto out;
		}
		trusted = trusted_default;
	}
	rc = sign_sign_hash(&sk, hash, trusted, untrusted && *untrusted ? untrusted : NULL, &minisig);
	if (rc) {
		fail("%s", sign_strerror(rc));
		goto out;
	}
	sig_path = minisig_path(file, sig_path, &sig_default);
	if (sig_path == NULL)
		goto out;
	rc = util_write_file_atomic(sig_path, minisig, strlen(minisig), 0644);
	if (rc) {
		fail("%s: %s", sig_path, strerror(-rc));
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

static int cmd_verify(int argc, char **argv)
{
	const char *pub_path = NULL, *keys_dir = NULL, *file = NULL, *sig_path = NULL;
	const char *revoked[MAX_REVOKED];
	size_t n_revoked = 0, len, file_len = 0;
	char *sig_default = NULL, *data = NULL, *file_data = NULL;
	char err[512], hex[17], hex2[17];
	struct sign_keyring *kr = NULL;
	struct sign_pubkey pk;
	struct sign_sig sig;
	uint8_t hash[SIGN_HASH_BYTES];
	int quiet = 0, opt, rc, status = EXIT_FAILURE;
	bool legacy = false;

	while ((opt = getopt_long(argc, argv, "+p:d:r:m:x:qQlh", help_only, NULL)) != -1) {
		switch (opt) {
		case 'p': pub_path = optarg; break;
		case 'd': keys_dir = optarg; break;
		case 'r':
			if (n_revoked == MAX_REVOKED)
				return usage_error("at most %d -r options", MAX_REVOKED);
			revoked[n_revoked++] = optarg;
			break;
		case 'm': file = optarg; break;
		case 'x': sig_path = optarg; break;
		case 'q': quiet = 1; break;
		case 'Q': quiet = 2; break;
		case 'l': legacy = true; break;
		case 'h': usage_cmd(stdout, current); return 0;
		default: return usage_error(NULL);
		}
	}
	if (optind != argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (file == NULL)
		return usage_error("-m FILE is required");
	if ((pub_path == NULL) == (keys_dir == NULL))
		return usage_error("give exactly one of -p PUBFILE and -d KEYSDIR");
	if (n_revoked > 0 && keys_dir == NULL)
		return usage_error("-r KEYID needs -d KEYSDIR");

	if (pub_path != NULL) {
		if (read_small(pub_path, "a public key", &data, &len))
			goto out;
		rc = sign_pubkey_parse(data, len, &pk);
		free(data);
		data = NULL;
		if (rc) {
			fail("%s: %s", pub_path, sign_strerror(rc));
			goto out;
		}
	} else {
		rc = sign_keyring_load(keys_dir, revoked, n_revoked, &kr, err, sizeof(err));
		if (rc) {
			fail("%s", err[0] ? err : sign_strerror(rc));
			goto out;
		}
	}

	sig_path = minisig_path(file, sig_path, &sig_default);
	if (sig_path == NULL || read_small(sig_path, "a signature file", &data, &len))
		goto out;
	rc = sign_sig_parse(data, len, &sig);
	if (rc) {
		fail("%s: %s", sig_path, sign_strerror(rc));
		goto out;
	}
	if (sig.legacy && !legacy) {
		fail("%s: %s (use -l to accept it)", sig_path, sign_strerror(SIGN_ELEGACY));
		goto out;
	}
	if (sig.legacy) {
		rc = util_read_file(file, LEGACY_FILE_MAX, &file_data, &file_len);
		if (rc) {
			fail("%s: %s", file, rc == -EFBIG ? "larger than 1 GiB: legacy signatures cannot cover it"
							  : strerror(-rc));
			goto out;
		}
	} else {
		rc = hash_file(file, hash);
		if (rc) {
			fail("%s: %s", file, strerror(-rc));
			goto out;
		}
	}

	if (kr != NULL) {
		rc = sign_keyring_verify(kr, &sig, sig.legacy ? NULL : hash, file_data, file_len, legacy, hex);
		if (rc) {
			fail("%s: %s (key id %s)", sig_path, sign_strerror(rc), hex);
			goto out;
		}
	} else {
		rc = sign_verify(&pk, &sig, sig.legacy ? NULL : hash, file_data, file_len, legacy);
		if (rc == SIGN_EKEYID) {
			sign_keyid_hex(hex, sig.keyid);
			sign_keyid_hex(hex2, pk.keyid);
			fail("%s: signature key id is %s but the public key's is %s", sig_path, hex, hex2);
			goto out;
		}
		if (rc) {
			fail("%s: %s", sig_path, sign_strerror(rc));
			goto out;
		}
	}
	if (quiet == 0)
		printf("Signature and comment signature verified\nTrusted comment: %s\n", sig.trusted_comment);
	else if (quiet == 2)
		printf("%s\n", sig.trusted_comment);
	status = 0;
out:
	sign_keyring_free(kr);
	free(file_data);
	free(data);
	free(sig_default);
	return status;
}

/* ---- dispatch --------------------------------------------------------- */

static const struct command commands[] = {
	{"keygen", cmd_keygen, "keygen -p PUBFILE -s SECFILE [-f]",
	 "make a key pair (unencrypted minisign secret key, mode 0600)"},
	{"sign", cmd_sign, "sign -s SECFILE -m FILE [-x SIGFILE] [-t TRUSTED_COMMENT] [-c UNTRUSTED_COMMENT] [-q]",
	 "sign FILE into FILE.minisig (prehashed, minisign's \"ED\")"},
	{"verify", cmd_verify,
	 "verify (-p PUBFILE | -d KEYSDIR [-r REVOKED_KEYID]...) -m FILE [-x SIGFILE] [-q | -Q] [-l]",
	 "verify FILE against FILE.minisig (-l accepts legacy \"Ed\" signatures)"},
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
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
		usage_all(stdout);
		return 0;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "evscript: %s\n", sign_strerror(SIGN_EINIT));
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
	return EXIT_USAGE;
}
