/*
 * sign.h - minisign-compatible keys and signatures (libsodium underneath).
 *
 * Formats, byte-exact with minisign 0.11, whose source is the reference
 * (src/minisign.h for the binary layouts, restated in sign.c; src/minisign.c
 * verify() for the order of the checks). tests/unit/sign/test_sign.c holds
 * vectors made by the real binary; tests/unit/sign/interop.sh checks both
 * directions with it:
 *   public key  2 lines: "untrusted comment: ...", base64("Ed" | keyid[8] | pk[32])
 *   secret key  2 lines: "untrusted comment: ...", base64 of minisign's secret
 *               key blob; only unencrypted keys (minisign -G -W) are read.
 *   signature   4 lines: "untrusted comment: ...", base64(alg[2] | keyid[8] | sig[64]),
 *               "trusted comment: <text>", base64(global_sig[64])
 *   alg "ED": sig = Ed25519(sk, BLAKE2b-512(file)); "Ed" (legacy): Ed25519(sk, file).
 *   global_sig = Ed25519(sk, sig[64] | trusted comment text).
 *
 * The parsers are pure functions over bytes (no I/O), fuzzed in tests/fuzz/.
 * Verdict functions return 0 or a negative SIGN_E* code and are marked
 * warn_unused_result; status_str() gives the reason a user reads.
 */
#ifndef EVS_SIGN_H
#define EVS_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define SIGN_KEYID_BYTES 8
#define SIGN_PK_BYTES 32
#define SIGN_SK_BYTES 64
#define SIGN_SIG_BYTES 64
#define SIGN_HASH_BYTES 64 /* BLAKE2b-512 */
#define SIGN_COMMENT_MAX 1024
#define SIGN_MINISIG_MAX 4096 /* a .minisig file larger than this is malformed */

#define SIGN_WARN_UNUSED __attribute__((warn_unused_result))

/* The codes sign functions return (defined in status.h, text by
 * status_str()):
 *   SIGN_EMALFORMED    not a well-formed minisign file
 *   SIGN_ELEGACY       legacy "Ed" signature and legacy is not allowed
 *   SIGN_EUNKNOWNKEY   no trusted key with the signature's key id
 *   SIGN_EREVOKED      the key id is revoked
 *   SIGN_EBADSIG       the signature does not match the file
 *   SIGN_EBADGLOBALSIG the global signature does not match the trusted comment
 *   SIGN_EKEYID        the key id does not match the key given
 *   SIGN_EENCRYPTED    an encrypted secret key (not supported)
 *   SIGN_ECHECKSUM     secret key checksum mismatch
 *   SIGN_ECOMMENT      trusted comment is malformed or lacks a required key
 *   SIGN_ENOMEM        out of memory
 *   SIGN_EIO           reading a key directory or file failed
 *   SIGN_EINIT         libsodium could not be initialized */

/* Kept for the unit tests that call it: status_str(err). New code calls
 * status_str(). */
const char *sign_strerror(int err);

/* "%016llX" of the key id read little-endian, as minisign prints it in
 * messages (its .pub comment drops the zero padding). out: 17 bytes. */
void sign_keyid_hex(char out[17], const uint8_t keyid[SIGN_KEYID_BYTES]);

struct sign_pubkey {
	uint8_t keyid[SIGN_KEYID_BYTES];
	uint8_t pk[SIGN_PK_BYTES];
};

struct sign_seckey {
	uint8_t keyid[SIGN_KEYID_BYTES];
	uint8_t sk[SIGN_SK_BYTES]; /* libsodium's 64-byte Ed25519 secret key */
};

struct sign_sig {
	bool legacy;                   /* "Ed" (pure Ed25519 over the file) */
	uint8_t keyid[SIGN_KEYID_BYTES];
	uint8_t sig[SIGN_SIG_BYTES];
	char trusted_comment[SIGN_COMMENT_MAX + 1];
	uint8_t global_sig[SIGN_SIG_BYTES];
};

/* Pure parsers. Each takes the file's bytes (not necessarily NUL-terminated). */
int sign_pubkey_parse(const char *data, size_t len, struct sign_pubkey *out) SIGN_WARN_UNUSED;
int sign_seckey_parse(const char *data, size_t len, struct sign_seckey *out) SIGN_WARN_UNUSED;
int sign_sig_parse(const char *data, size_t len, struct sign_sig *out) SIGN_WARN_UNUSED;

/* Writers: malloc'd, NUL-terminated file contents owned by the caller.
 * sign_seckey_format() writes minisign's unencrypted layout (kdf_alg 0x0000,
 * chk_alg "B2") with the BLAKE2b-256 checksum filled in; the caller wipes
 * the result with sodium_memzero() before free(). */
int sign_pubkey_format(const struct sign_pubkey *pk, char **out) SIGN_WARN_UNUSED;
int sign_seckey_format(const struct sign_seckey *sk, char **out) SIGN_WARN_UNUSED;

/* A new random key pair (random key id). sk is a secret: wipe it with
 * sodium_memzero() when done. */
int sign_keygen(struct sign_pubkey *pk, struct sign_seckey *sk) SIGN_WARN_UNUSED;

/* The public key (and key id) that belongs to sk. */
int sign_seckey_pubkey(const struct sign_seckey *sk, struct sign_pubkey *pk) SIGN_WARN_UNUSED;

/* Incremental BLAKE2b-512 of a file's bytes (the "ED" prehash). */
struct sign_hasher {
	_Alignas(64) unsigned char state[384]; /* crypto_generichash_state */
};
void sign_hash_init(struct sign_hasher *h);
void sign_hash_update(struct sign_hasher *h, const void *data, size_t len);
void sign_hash_final(struct sign_hasher *h, uint8_t out[SIGN_HASH_BYTES]);
/* One-shot BLAKE2b-512 of a buffer. */
void sign_hash_buf(const void *data, size_t len, uint8_t out[SIGN_HASH_BYTES]);

/* Signs a prehashed file ("ED") and writes the 4-line .minisig text.
 * trusted_comment: printable, no CR/LF. untrusted_comment may be NULL. */
int sign_sign_hash(const struct sign_seckey *sk, const uint8_t hash[SIGN_HASH_BYTES],
		   const char *trusted_comment, const char *untrusted_comment,
		   char **minisig_out) SIGN_WARN_UNUSED;

/* Verifies sig with pk in minisign's order: key id, the signature over the
 * file's hash (or, legacy, over the file itself: pass file/file_len, which
 * may be NULL otherwise), then the global signature. Only after 0 is the
 * trusted comment trustworthy. allow_legacy: accept "Ed" signatures. */
int sign_verify(const struct sign_pubkey *pk, const struct sign_sig *sig,
		const uint8_t hash[SIGN_HASH_BYTES], const void *file, size_t file_len,
		bool allow_legacy) SIGN_WARN_UNUSED;

/* Trusted comment "key:value key:value ..." (whitespace-separated). */
struct sign_comment {
	char plugin[256];
	char version[64]; /* X.Y.Z, digits only */
	unsigned abi;
};

/* Parses a trusted comment and requires plugin:, version: (X.Y.Z) and abi:
 * (decimal). Other pairs are allowed and ignored; a token without ':' or a
 * repeated required key is SIGN_ECOMMENT. Pure. */
int sign_comment_parse(const char *text, struct sign_comment *out) SIGN_WARN_UNUSED;

/* Compares semantic versions X.Y.Z: <0, 0, >0. */
int sign_version_cmp(const char *a, const char *b);

/* A set of trusted public keys (a directory of *.pub files) and revoked key
 * ids. */
struct sign_keyring;

/* Loads every *.pub file in dir (dot files skipped; at most 1024 keys).
 * revoked: key ids in hex (any case, 1 to 16 digits), as minisign prints
 * them (sign_keyid_hex(), or the unpadded form of minisign's .pub comment). A
 * malformed .pub file, two different keys with one key id, or a bad revoked
 * id is an error naming the culprit in err (may be NULL). On success *out is
 * owned by the caller (sign_keyring_free()); on failure it is NULL. */
int sign_keyring_load(const char *dir, const char *const *revoked, size_t n_revoked,
		      struct sign_keyring **out, char *err, size_t errlen) SIGN_WARN_UNUSED;
void sign_keyring_free(struct sign_keyring *kr);
size_t sign_keyring_count(const struct sign_keyring *kr);

/* True when keyid is in kr's revoked list. */
bool sign_keyring_is_revoked(const struct sign_keyring *kr, const uint8_t keyid[SIGN_KEYID_BYTES]);

/* Finds the key for sig's key id and verifies: SIGN_ELEGACY (checked first,
 * like minisign -H), SIGN_EREVOKED, SIGN_EUNKNOWNKEY, or sign_verify()'s
 * verdict. keyid_hex (17 bytes, may be
 * NULL) receives the key id that was checked. */
int sign_keyring_verify(const struct sign_keyring *kr, const struct sign_sig *sig,
			const uint8_t hash[SIGN_HASH_BYTES], const void *file, size_t file_len,
			bool allow_legacy, char keyid_hex[17]) SIGN_WARN_UNUSED;

#endif
