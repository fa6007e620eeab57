/*
 * keyring.c - trusted public keys from a directory of minisign *.pub files,
 * and the key ids an operator has revoked.
 *
 * A signature's key id only picks the key: the signature must still verify
 * with that key (sign_verify()). A revoked id is refused before any lookup,
 * whether or not its .pub file is still in the directory.
 */
#include "safe_path.h"
#include "sign.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define KEYRING_MAX_KEYS 1024
#define KEYRING_MAX_REVOKED 4096

struct sign_keyring {
	struct sign_pubkey *keys;
	size_t n_keys;
	uint8_t (*revoked)[SIGN_KEYID_BYTES];
	size_t n_revoked;
};

/* A key id as minisign prints it ("%016llX" of the little-endian value, or
 * without the zero padding as in Debian's minisign .pub comments: 1 to 16
 * hex digits) back to its 8 bytes. */
static bool parse_keyid_hex(const char *s, uint8_t out[SIGN_KEYID_BYTES])
{
	uint64_t v = 0;
	size_t n;

	if (s == NULL)
		return false;
	n = strlen(s);
	if (n == 0 || n > 2 * SIGN_KEYID_BYTES)
		return false;
	for (size_t i = 0; i < n; i++) {
		int d = util_hexval(s[i]);

		if (d < 0)
			return false;
		v = v << 4 | (uint64_t)d;
	}
	for (size_t i = 0; i < SIGN_KEYID_BYTES; i++, v >>= 8)
		out[i] = (uint8_t)v;
	return true;
}

static bool ends_with_pub(const char *name)
{
	size_t n = strlen(name);

	return n > 4 && strcmp(name + n - 4, ".pub") == 0;
}

static const struct sign_pubkey *find_key(const struct sign_keyring *kr, const uint8_t keyid[SIGN_KEYID_BYTES])
{
	for (size_t i = 0; i < kr->n_keys; i++)
		if (memcmp(kr->keys[i].keyid, keyid, SIGN_KEYID_BYTES) == 0)
			return &kr->keys[i];
	return NULL;
}

static int add_key_file(struct sign_keyring *kr, const char *dir, const char *name, char *err, size_t errlen)
{
	struct sign_pubkey pk;
	const struct sign_pubkey *same;
	char *path, *data = NULL, hex[17], detail[320];
	size_t len;
	int ret, rc;

	path = util_path_join(dir, name);
	if (path == NULL)
		return SIGN_ENOMEM;
	rc = safe_path_check(path, detail, sizeof(detail));
	if (rc == STATUS_EDENIED) {
		/* anyone who may write a trusted key may run code in the daemon */
		util_set_err(err, errlen, "%s: %s", path, detail);
		ret = rc;
		goto out;
	}
	rc = util_read_file(path, SIGN_MINISIG_MAX, &data, &len);
	if (rc) {
		util_set_err(err, errlen, "%s: %s", path, rc == STATUS_ETOOBIG ? "file too large for a public key" : status_str(rc));
		ret = rc == STATUS_ETOOBIG ? SIGN_EMALFORMED : SIGN_EIO;
		goto out;
	}
	ret = sign_pubkey_parse(data, len, &pk);
	if (ret) {
		util_set_err(err, errlen, "%s: not a minisign public key", path);
		goto out;
	}
	same = find_key(kr, pk.keyid);
	if (same != NULL) {
		if (sodium_memcmp(same->pk, pk.pk, SIGN_PK_BYTES) == 0)
			goto out; /* the same key twice: harmless */
		sign_keyid_hex(hex, pk.keyid);
		util_set_err(err, errlen, "%s: key id %s is already used by a different key", path, hex);
		ret = SIGN_EMALFORMED;
		goto out;
	}
	if (kr->n_keys >= KEYRING_MAX_KEYS) {
		util_set_err(err, errlen, "%s: more than %d trusted keys", dir, KEYRING_MAX_KEYS);
		ret = SIGN_ENOMEM;
		goto out;
	}
	kr->keys[kr->n_keys++] = pk;
out:
	free(data);
	free(path);
	return ret;
}

int sign_keyring_load(const char *dir, const char *const *revoked, size_t n_revoked, struct sign_keyring **out,
		      char *err, size_t errlen)
{
	struct sign_keyring *kr;
	DIR *d = NULL;
	struct dirent *de;
	char detail[320];
	int ret;

	*out = NULL;
	util_set_err(err, errlen, "%s", "");
	if (n_revoked > KEYRING_MAX_REVOKED) {
		util_set_err(err, errlen, "more than %d revoked key ids", KEYRING_MAX_REVOKED);
		return SIGN_ENOMEM;
	}
	kr = calloc(1, sizeof(*kr));
	if (kr == NULL)
		return SIGN_ENOMEM;
	kr->keys = calloc(KEYRING_MAX_KEYS, sizeof(*kr->keys));
	kr->revoked = calloc(n_revoked ? n_revoked : 1, sizeof(*kr->revoked));
	if (kr->keys == NULL || kr->revoked == NULL) {
		ret = SIGN_ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < n_revoked; i++) {
		if (!parse_keyid_hex(revoked[i], kr->revoked[i])) {
			util_set_err(err, errlen, "revoked key id '%s' is not 1 to 16 hex digits", revoked[i] ? revoked[i] : "(null)");
			ret = SIGN_EMALFORMED;
			goto fail;
		}
	}
	kr->n_revoked = n_revoked;

	/* what cannot be examined is reported by opendir() below */
	ret = safe_path_check(dir, detail, sizeof(detail));
	if (ret == STATUS_EDENIED) {
		util_set_err(err, errlen, "%s", detail);
		goto fail;
	}
	d = opendir(dir);
	if (d == NULL) {
		util_set_err(err, errlen, "%s: %s", dir, strerror(errno));
		ret = SIGN_EIO;
		goto fail;
	}
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (de == NULL) {
			if (errno != 0) {
				util_set_err(err, errlen, "%s: %s", dir, strerror(errno));
				ret = SIGN_EIO;
				goto fail;
			}
			break;
		}
		if (de->d_name[0] == '.' || !ends_with_pub(de->d_name))
			continue;
		ret = add_key_file(kr, dir, de->d_name, err, errlen);
		if (ret)
			goto fail;
	}
	closedir(d);
	*out = kr;
	return SIGN_OK;
fail:
	if (d != NULL)
		closedir(d);
	sign_keyring_free(kr);
	return ret;
}

void sign_keyring_free(struct sign_keyring *kr)
{
	if (kr == NULL)
		return;
	free(kr->keys);
	free(kr->revoked);
	free(kr);
}

size_t sign_keyring_count(const struct sign_keyring *kr)
{
	return kr ? kr->n_keys : 0;
}

bool sign_keyring_is_revoked(const struct sign_keyring *kr, const uint8_t keyid[SIGN_KEYID_BYTES])
{
	for (size_t i = 0; i < kr->n_revoked; i++)
		if (memcmp(kr->revoked[i], keyid, SIGN_KEYID_BYTES) == 0)
			return true;
	return false;
}

int sign_keyring_verify(const struct sign_keyring *kr, const struct sign_sig *sig,
			const uint8_t hash[SIGN_HASH_BYTES], const void *file, size_t file_len, bool allow_legacy,
			char keyid_hex[17])
{
	const struct sign_pubkey *pk;

	if (keyid_hex != NULL)
		sign_keyid_hex(keyid_hex, sig->keyid);
	if (sig->legacy && !allow_legacy)
		return SIGN_ELEGACY;
	if (sign_keyring_is_revoked(kr, sig->keyid))
		return SIGN_EREVOKED;
	pk = find_key(kr, sig->keyid);
	if (pk == NULL)
		return SIGN_EUNKNOWNKEY;
	return sign_verify(pk, sig, hash, file, file_len, allow_legacy);
}
