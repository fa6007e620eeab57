/*
 * sign.c - minisign's key and signature formats, and the crypto behind them.
 *
 * Everything here is a pure function over bytes except sign_keygen() (it
 * draws random bytes). The parsers never read past `len`, never need a NUL
 * terminator and zero their output on failure; tests/fuzz/ drives them.
 *
 * Binary layouts (minisign 0.11, src/minisign.h):
 *   public key  sig_alg[2]="Ed" keynum[8] pk[32]                          42 bytes
 *   secret key  sig_alg[2]="Ed" kdf_alg[2] chk_alg[2]="B2" kdf_salt[32]
 *               opslimit_le[8] memlimit_le[8] keynum[8] sk[64] chk[32]   158 bytes
 *               kdf_alg "Sc" is a scrypt-encrypted key (refused), 0x0000
 *               an unencrypted one (minisign -G -W). chk = BLAKE2b-256 of
 *               sig_alg || keynum || sk. minisign -W leaves chk all zero and
 *               does not check it for unencrypted keys; we write it, and
 *               check it when it is not all zero.
 *   signature   sig_alg[2] keynum[8] sig[64]                              74 bytes
 *   global sig  sig[64]                                                    64 bytes
 */
#include "sign.h"

#include <inttypes.h>
#include <limits.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

_Static_assert(sizeof(crypto_generichash_state) <= sizeof(((struct sign_hasher *)0)->state),
	       "struct sign_hasher is too small for crypto_generichash_state");
_Static_assert(alignof(crypto_generichash_state) <= 64,
	       "struct sign_hasher is under-aligned for crypto_generichash_state");
_Static_assert(SIGN_HASH_BYTES == crypto_generichash_BYTES_MAX, "prehash is BLAKE2b-512");
_Static_assert(SIGN_SIG_BYTES == crypto_sign_BYTES, "Ed25519 signature size");
_Static_assert(SIGN_PK_BYTES == crypto_sign_PUBLICKEYBYTES, "Ed25519 public key size");
_Static_assert(SIGN_SK_BYTES == crypto_sign_SECRETKEYBYTES, "Ed25519 secret key size");

#define UNTRUSTED_PREFIX "untrusted comment: "
#define TRUSTED_PREFIX "trusted comment: "
#define PUBKEY_BLOB_BYTES (2 + SIGN_KEYID_BYTES + SIGN_PK_BYTES)                  /* 42 */
#define SIG_BLOB_BYTES (2 + SIGN_KEYID_BYTES + SIGN_SIG_BYTES)                    /* 74 */
#define SECKEY_CHK_BYTES 32
#define SECKEY_BLOB_BYTES (2 + 2 + 2 + 32 + 8 + 8 + SIGN_KEYID_BYTES + SIGN_SK_BYTES + SECKEY_CHK_BYTES) /* 158 */
#define KEY_FILE_MAX SIGN_MINISIG_MAX /* a key file is never larger than a signature file */

/* Offsets in the secret key blob. */
#define SK_OFF_KDF 2
#define SK_OFF_CHKALG 4
#define SK_OFF_KEYNUM 54
#define SK_OFF_SK (SK_OFF_KEYNUM + SIGN_KEYID_BYTES)
#define SK_OFF_CHK (SK_OFF_SK + SIGN_SK_BYTES)
_Static_assert(SK_OFF_CHK + SECKEY_CHK_BYTES == SECKEY_BLOB_BYTES, "secret key layout");

static const char alg_key[2] = {'E', 'd'};    /* keys, and legacy signatures */
static const char alg_hashed[2] = {'E', 'D'}; /* prehashed signatures */
static const char chk_b2[2] = {'B', '2'};
static const char kdf_scrypt[2] = {'S', 'c'};

const char *sign_strerror(int err)
{
	return status_str(err);
}

static bool crypto_ready(void)
{
	return sodium_init() >= 0; /* idempotent and thread-safe */
}

static uint64_t le64_load(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

void sign_keyid_hex(char out[17], const uint8_t keyid[SIGN_KEYID_BYTES])
{
	snprintf(out, 17, "%016" PRIX64, le64_load(keyid));
}

/* ---- line splitting --------------------------------------------------- */

struct line {
	const char *p;
	size_t n; /* without the '\n' and one trailing '\r' */
};

/*
 * Splits data into exactly `want` lines. Every line but the last must end in
 * '\n'; the last may lack it (minisign's fgets() accepts that too). A '\r'
 * before the '\n' is dropped like minisign's trim(). Nothing may follow the
 * last line, and NUL bytes are refused anywhere.
 */
static int split_lines(const char *data, size_t len, size_t cap, struct line *out, size_t want)
{
	size_t pos = 0;

	if (data == NULL || len == 0 || len > cap || memchr(data, '\0', len) != NULL)
		return SIGN_EMALFORMED;
	for (size_t i = 0; i < want; i++) {
		const char *start = data + pos;
		const char *nl;
		size_t n;

		if (pos >= len)
			return SIGN_EMALFORMED; /* missing line */
		nl = memchr(start, '\n', len - pos);
		if (nl == NULL) {
			if (i + 1 != want)
				return SIGN_EMALFORMED;
			n = len - pos;
			pos = len;
		} else {
			n = (size_t)(nl - start);
			pos += n + 1;
		}
		if (n > 0 && start[n - 1] == '\r')
			n--;
		out[i].p = start;
		out[i].n = n;
	}
	return pos == len ? SIGN_OK : SIGN_EMALFORMED;
}

static bool has_prefix(const struct line *l, const char *prefix)
{
	size_t n = strlen(prefix);

	return l->n >= n && memcmp(l->p, prefix, n) == 0;
}

/* Decodes one line of standard base64 that must give exactly `want` bytes. */
static int b64_exact(const struct line *l, uint8_t *out, size_t want)
{
	size_t got = 0;

	if (l->n == 0 || l->n != sodium_base64_encoded_len(want, sodium_base64_VARIANT_ORIGINAL) - 1)
		return SIGN_EMALFORMED;
	if (sodium_base642bin(out, want, l->p, l->n, NULL, &got, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    got != want)
		return SIGN_EMALFORMED;
	return SIGN_OK;
}

/*
 * The frame that public keys, secret keys and signatures share: exactly
 * `want` lines within `cap` bytes, the first an untrusted comment, the
 * second standard base64 of exactly blob_len bytes, decoded into blob.
 * SIGN_OK, or SIGN_EMALFORMED (blob may then hold part of the decoding).
 */
static int frame_parse(const char *data, size_t len, size_t cap, struct line *l, size_t want, uint8_t *blob,
		       size_t blob_len)
{
	int ret = split_lines(data, len, cap, l, want);

	if (ret)
		return ret;
	if (!has_prefix(&l[0], UNTRUSTED_PREFIX) || b64_exact(&l[1], blob, blob_len))
		return SIGN_EMALFORMED;
	return SIGN_OK;
}

/* Printable text for a trusted comment: no control characters but TAB. */
static bool comment_text_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	return true;
}

/* ---- parsers ---------------------------------------------------------- */

int sign_pubkey_parse(const char *data, size_t len, struct sign_pubkey *out)
{
	struct line l[2];
	uint8_t blob[PUBKEY_BLOB_BYTES];
	int ret;

	memset(out, 0, sizeof(*out));
	ret = frame_parse(data, len, KEY_FILE_MAX, l, 2, blob, sizeof(blob));
	if (ret == SIGN_OK && memcmp(blob, alg_key, 2) != 0)
		ret = SIGN_EMALFORMED;
	if (ret == SIGN_OK) {
		memcpy(out->keyid, blob + 2, SIGN_KEYID_BYTES);
		memcpy(out->pk, blob + 2 + SIGN_KEYID_BYTES, SIGN_PK_BYTES);
	}
	return ret;
}

static void seckey_checksum(uint8_t chk[SECKEY_CHK_BYTES], const uint8_t keyid[SIGN_KEYID_BYTES],
			    const uint8_t sk[SIGN_SK_BYTES])
{
	crypto_generichash_state hs;

	crypto_generichash_init(&hs, NULL, 0, SECKEY_CHK_BYTES);
	crypto_generichash_update(&hs, (const unsigned char *)alg_key, 2);
	crypto_generichash_update(&hs, keyid, SIGN_KEYID_BYTES);
	crypto_generichash_update(&hs, sk, SIGN_SK_BYTES);
	crypto_generichash_final(&hs, chk, SECKEY_CHK_BYTES);
	sodium_memzero(&hs, sizeof(hs));
}

int sign_seckey_parse(const char *data, size_t len, struct sign_seckey *out)
{
	static const uint8_t zero_chk[SECKEY_CHK_BYTES];
	struct line l[2];
	uint8_t blob[SECKEY_BLOB_BYTES];
	uint8_t chk[SECKEY_CHK_BYTES];
	uint8_t seed[crypto_sign_SEEDBYTES];
	uint8_t pk[SIGN_PK_BYTES], sk2[SIGN_SK_BYTES];
	int ret;

	memset(out, 0, sizeof(*out));
	if (!crypto_ready())
		return SIGN_EINIT;
	ret = frame_parse(data, len, KEY_FILE_MAX, l, 2, blob, sizeof(blob));
	if (ret)
		goto out;
	ret = SIGN_EMALFORMED;
	if (memcmp(blob, alg_key, 2) != 0 || memcmp(blob + SK_OFF_CHKALG, chk_b2, 2) != 0)
		goto out;
	if (memcmp(blob + SK_OFF_KDF, kdf_scrypt, 2) == 0) {
		ret = SIGN_EENCRYPTED;
		goto out;
	}
	if (blob[SK_OFF_KDF] != 0 || blob[SK_OFF_KDF + 1] != 0)
		goto out;
	ret = SIGN_ECHECKSUM;
	if (sodium_memcmp(blob + SK_OFF_CHK, zero_chk, SECKEY_CHK_BYTES) != 0) {
		seckey_checksum(chk, blob + SK_OFF_KEYNUM, blob + SK_OFF_SK);
		if (sodium_memcmp(chk, blob + SK_OFF_CHK, SECKEY_CHK_BYTES) != 0)
			goto out;
	}
	/* Whether or not there is a checksum, the key's halves must agree:
	 * the public half is what verifiers will use. */
	crypto_sign_ed25519_sk_to_seed(seed, blob + SK_OFF_SK);
	if (crypto_sign_seed_keypair(pk, sk2, seed) != 0 ||
	    sodium_memcmp(sk2, blob + SK_OFF_SK, SIGN_SK_BYTES) != 0)
		goto out;
	memcpy(out->keyid, blob + SK_OFF_KEYNUM, SIGN_KEYID_BYTES);
	memcpy(out->sk, blob + SK_OFF_SK, SIGN_SK_BYTES);
	ret = SIGN_OK;
out:
	sodium_memzero(blob, sizeof(blob));
	sodium_memzero(chk, sizeof(chk));
	sodium_memzero(seed, sizeof(seed));
	sodium_memzero(sk2, sizeof(sk2));
	return ret;
}

int sign_sig_parse(const char *data, size_t len, struct sign_sig *out)
{
	struct line l[4];
	uint8_t blob[SIG_BLOB_BYTES];
	size_t tlen;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = frame_parse(data, len, SIGN_MINISIG_MAX, l, 4, blob, sizeof(blob));
	if (ret)
		goto fail;
	ret = SIGN_EMALFORMED;
	if (!has_prefix(&l[2], TRUSTED_PREFIX))
		goto fail;
	if (memcmp(blob, alg_hashed, 2) == 0)
		out->legacy = false;
	else if (memcmp(blob, alg_key, 2) == 0)
		out->legacy = true;
	else
		goto fail;
	tlen = l[2].n - strlen(TRUSTED_PREFIX);
	if (tlen > SIGN_COMMENT_MAX || !comment_text_ok(l[2].p + strlen(TRUSTED_PREFIX), tlen))
		goto fail;
	if (b64_exact(&l[3], out->global_sig, SIGN_SIG_BYTES))
		goto fail;
	memcpy(out->keyid, blob + 2, SIGN_KEYID_BYTES);
	memcpy(out->sig, blob + 2 + SIGN_KEYID_BYTES, SIGN_SIG_BYTES);
	memcpy(out->trusted_comment, l[2].p + strlen(TRUSTED_PREFIX), tlen);
	out->trusted_comment[tlen] = '\0';
	return SIGN_OK;
fail:
	memset(out, 0, sizeof(*out));
	return ret;
}

/* ---- writers ---------------------------------------------------------- */

/* "<prefix><comment>\n<base64(blob)>\n" into a malloc'd string. */
static int format_two_lines(const char *prefix, const char *comment, const uint8_t *blob, size_t blob_len,
			    char **out)
{
	size_t b64_len = sodium_base64_encoded_len(blob_len, sodium_base64_VARIANT_ORIGINAL);
	size_t head = strlen(prefix) + strlen(comment) + 1;
	char *s = malloc(head + b64_len + 1);

	*out = NULL;
	if (s == NULL)
		return SIGN_ENOMEM;
	snprintf(s, head + 1, "%s%s\n", prefix, comment);
	sodium_bin2base64(s + head, b64_len, blob, blob_len, sodium_base64_VARIANT_ORIGINAL);
	strcpy(s + head + b64_len - 1, "\n");
	*out = s;
	return SIGN_OK;
}

int sign_pubkey_format(const struct sign_pubkey *pk, char **out)
{
	uint8_t blob[PUBKEY_BLOB_BYTES];
	char comment[64];

	memcpy(blob, alg_key, 2);
	memcpy(blob + 2, pk->keyid, SIGN_KEYID_BYTES);
	memcpy(blob + 2 + SIGN_KEYID_BYTES, pk->pk, SIGN_PK_BYTES);
	/* Debian's minisign 0.11 writes "%" PRIX64 here, without zero padding
	 * (a key id below 0x1000000000000000 has fewer than 16 digits); byte-
	 * exact with it. The comment is not authenticated and never parsed. */
	snprintf(comment, sizeof(comment), "minisign public key %" PRIX64, le64_load(pk->keyid));
	return format_two_lines(UNTRUSTED_PREFIX, comment, blob, sizeof(blob), out);
}

int sign_seckey_format(const struct sign_seckey *sk, char **out)
{
	uint8_t blob[SECKEY_BLOB_BYTES];
	int ret;

	*out = NULL;
	if (!crypto_ready())
		return SIGN_EINIT;
	memset(blob, 0, sizeof(blob)); /* kdf_alg 0x0000, zero salt and limits */
	memcpy(blob, alg_key, 2);
	memcpy(blob + SK_OFF_CHKALG, chk_b2, 2);
	memcpy(blob + SK_OFF_KEYNUM, sk->keyid, SIGN_KEYID_BYTES);
	memcpy(blob + SK_OFF_SK, sk->sk, SIGN_SK_BYTES);
	seckey_checksum(blob + SK_OFF_CHK, sk->keyid, sk->sk);
	ret = format_two_lines(UNTRUSTED_PREFIX, "minisign unencrypted secret key", blob, sizeof(blob), out);
	sodium_memzero(blob, sizeof(blob));
	return ret;
}

int sign_keygen(struct sign_pubkey *pk, struct sign_seckey *sk)
{
	memset(pk, 0, sizeof(*pk));
	memset(sk, 0, sizeof(*sk));
	if (!crypto_ready())
		return SIGN_EINIT;
	randombytes_buf(sk->keyid, SIGN_KEYID_BYTES);
	if (crypto_sign_keypair(pk->pk, sk->sk) != 0) {
		sodium_memzero(sk, sizeof(*sk));
		memset(pk, 0, sizeof(*pk));
		return SIGN_EINIT;
	}
	memcpy(pk->keyid, sk->keyid, SIGN_KEYID_BYTES);
	return SIGN_OK;
}

int sign_seckey_pubkey(const struct sign_seckey *sk, struct sign_pubkey *pk)
{
	memcpy(pk->keyid, sk->keyid, SIGN_KEYID_BYTES);
	return crypto_sign_ed25519_sk_to_pk(pk->pk, sk->sk) == 0 ? SIGN_OK : SIGN_EMALFORMED;
}

/* ---- hashing ---------------------------------------------------------- */

void sign_hash_init(struct sign_hasher *h)
{
	(void)crypto_ready();
	crypto_generichash_init((crypto_generichash_state *)(void *)h->state, NULL, 0, SIGN_HASH_BYTES);
}

void sign_hash_update(struct sign_hasher *h, const void *data, size_t len)
{
	crypto_generichash_update((crypto_generichash_state *)(void *)h->state, data, len);
}

void sign_hash_final(struct sign_hasher *h, uint8_t out[SIGN_HASH_BYTES])
{
	crypto_generichash_final((crypto_generichash_state *)(void *)h->state, out, SIGN_HASH_BYTES);
	sodium_memzero(h->state, sizeof(h->state));
}

void sign_hash_buf(const void *data, size_t len, uint8_t out[SIGN_HASH_BYTES])
{
	struct sign_hasher h;

	sign_hash_init(&h);
	sign_hash_update(&h, data, len);
	sign_hash_final(&h, out);
}

/* ---- signing and verifying -------------------------------------------- */

int sign_sign_hash(const struct sign_seckey *sk, const uint8_t hash[SIGN_HASH_BYTES],
		   const char *trusted_comment, const char *untrusted_comment, char **minisig_out)
{
	uint8_t blob[SIG_BLOB_BYTES];
	uint8_t global[SIGN_SIG_BYTES];
	uint8_t msg[SIGN_SIG_BYTES + SIGN_COMMENT_MAX];
	char sig_b64[sodium_base64_ENCODED_LEN(SIG_BLOB_BYTES, sodium_base64_VARIANT_ORIGINAL)];
	char global_b64[sodium_base64_ENCODED_LEN(SIGN_SIG_BYTES, sodium_base64_VARIANT_ORIGINAL)];
	size_t tlen, ulen, total;
	char *s;
	int ret;

	*minisig_out = NULL;
	if (!crypto_ready())
		return SIGN_EINIT;
	if (untrusted_comment == NULL)
		untrusted_comment = "signature from evscript secret key";
	tlen = trusted_comment ? strlen(trusted_comment) : 0;
	ulen = strlen(untrusted_comment);
	if (trusted_comment == NULL || tlen > SIGN_COMMENT_MAX || !comment_text_ok(trusted_comment, tlen))
		return SIGN_ECOMMENT;
	if (ulen > SIGN_COMMENT_MAX || !comment_text_ok(untrusted_comment, ulen))
		return SIGN_ECOMMENT;

	memcpy(blob, alg_hashed, 2);
	memcpy(blob + 2, sk->keyid, SIGN_KEYID_BYTES);
	crypto_sign_detached(blob + 2 + SIGN_KEYID_BYTES, NULL, hash, SIGN_HASH_BYTES, sk->sk);
	memcpy(msg, blob + 2 + SIGN_KEYID_BYTES, SIGN_SIG_BYTES);
	memcpy(msg + SIGN_SIG_BYTES, trusted_comment, tlen);
	crypto_sign_detached(global, NULL, msg, SIGN_SIG_BYTES + tlen, sk->sk);
	sodium_bin2base64(sig_b64, sizeof(sig_b64), blob, sizeof(blob), sodium_base64_VARIANT_ORIGINAL);
	sodium_bin2base64(global_b64, sizeof(global_b64), global, sizeof(global), sodium_base64_VARIANT_ORIGINAL);

	total = strlen(UNTRUSTED_PREFIX) + ulen + 1 + strlen(sig_b64) + 1 + strlen(TRUSTED_PREFIX) + tlen + 1 +
		strlen(global_b64) + 1 + 1;
	s = malloc(total);
	if (s == NULL) {
		ret = SIGN_ENOMEM;
		goto out;
	}
	snprintf(s, total, "%s%s\n%s\n%s%s\n%s\n", UNTRUSTED_PREFIX, untrusted_comment, sig_b64, TRUSTED_PREFIX,
		 trusted_comment, global_b64);
	*minisig_out = s;
	ret = SIGN_OK;
out:
	return ret;
}

int sign_verify(const struct sign_pubkey *pk, const struct sign_sig *sig, const uint8_t hash[SIGN_HASH_BYTES],
		const void *file, size_t file_len, bool allow_legacy)
{
	uint8_t msg[SIGN_SIG_BYTES + SIGN_COMMENT_MAX];
	size_t tlen;

	if (!crypto_ready())
		return SIGN_EINIT;
	/* minisign refuses a legacy signature before anything else (-H). */
	if (sig->legacy && !allow_legacy)
		return SIGN_ELEGACY;
	/* 1. The key id only says which key to use; it proves nothing. */
	if (memcmp(sig->keyid, pk->keyid, SIGN_KEYID_BYTES) != 0)
		return SIGN_EKEYID;
	/* 2. The signature over the file's hash (or, legacy, the file). */
	if (sig->legacy) {
		if (file == NULL && file_len != 0)
			return SIGN_EBADSIG;
		if (crypto_sign_verify_detached(sig->sig, file_len ? file : (const void *)"", file_len, pk->pk) != 0)
			return SIGN_EBADSIG;
	} else {
		if (hash == NULL || crypto_sign_verify_detached(sig->sig, hash, SIGN_HASH_BYTES, pk->pk) != 0)
			return SIGN_EBADSIG;
	}
	/* 3. The global signature over the signature and the trusted comment. */
	tlen = strnlen(sig->trusted_comment, sizeof(sig->trusted_comment));
	if (tlen > SIGN_COMMENT_MAX)
		return SIGN_EBADGLOBALSIG;
	memcpy(msg, sig->sig, SIGN_SIG_BYTES);
	memcpy(msg + SIGN_SIG_BYTES, sig->trusted_comment, tlen);
	if (crypto_sign_verify_detached(sig->global_sig, msg, SIGN_SIG_BYTES + tlen, pk->pk) != 0)
		return SIGN_EBADGLOBALSIG;
	return SIGN_OK;
}

/* ---- trusted comment -------------------------------------------------- */

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

static bool all_digits(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* X.Y.Z with one or more digits in each part. */
static bool version_ok(const char *s, size_t n)
{
	size_t start = 0, parts = 0;

	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			if (!all_digits(s + start, i - start))
				return false;
			parts++;
			start = i + 1;
		}
	}
	return parts == 3;
}

static bool name_ok(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}

static bool key_is(const char *k, size_t kn, const char *want)
{
	return kn == strlen(want) && memcmp(k, want, kn) == 0;
}

int sign_comment_parse(const char *text, struct sign_comment *out)
{
	bool have_plugin = false, have_version = false, have_abi = false;
	size_t len, pos = 0;

	memset(out, 0, sizeof(*out));
	if (text == NULL)
		goto fail;
	len = strnlen(text, SIGN_COMMENT_MAX + 1);
	if (len > SIGN_COMMENT_MAX)
		goto fail;
	while (pos < len) {
		const char *tok, *colon, *val;
		size_t tn, kn, vn;

		while (pos < len && is_space(text[pos]))
			pos++;
		if (pos == len)
			break;
		tok = text + pos;
		while (pos < len && !is_space(text[pos]))
			pos++;
		tn = (size_t)(text + pos - tok);
		colon = memchr(tok, ':', tn);
		if (colon == NULL || colon == tok)
			goto fail; /* a token without a key:value shape */
		kn = (size_t)(colon - tok);
		val = colon + 1;
		vn = tn - kn - 1;
		if (key_is(tok, kn, "plugin")) {
			if (have_plugin || !name_ok(val, vn) || vn >= sizeof(out->plugin))
				goto fail;
			memcpy(out->plugin, val, vn);
			have_plugin = true;
		} else if (key_is(tok, kn, "version")) {
			if (have_version || !version_ok(val, vn) || vn >= sizeof(out->version))
				goto fail;
			memcpy(out->version, val, vn);
			have_version = true;
		} else if (key_is(tok, kn, "abi")) {
			unsigned long v = 0;

			if (have_abi || !all_digits(val, vn))
				goto fail;
			for (size_t i = 0; i < vn; i++) {
				v = v * 10 + (unsigned long)(val[i] - '0');
				if (v > UINT_MAX)
					goto fail;
			}
			out->abi = (unsigned)v;
			have_abi = true;
		}
		/* other keys (timestamp:, file:, ...) are allowed and ignored */
	}
	if (have_plugin && have_version && have_abi)
		return SIGN_OK;
fail:
	memset(out, 0, sizeof(*out));
	return SIGN_ECOMMENT;
}

/* Compares two digit strings numerically, whatever their length. */
static int digits_cmp(const char *a, size_t an, const char *b, size_t bn)
{
	int c;

	while (an > 1 && *a == '0')
		a++, an--;
	while (bn > 1 && *b == '0')
		b++, bn--;
	if (an != bn)
		return an < bn ? -1 : 1;
	c = memcmp(a, b, an);
	return (c > 0) - (c < 0);
}

int sign_version_cmp(const char *a, const char *b)
{
	size_t an = strlen(a), bn = strlen(b);
	bool av = version_ok(a, an), bv = version_ok(b, bn);

	if (!av || !bv) {
		int c;

		if (av != bv)
			return av ? 1 : -1; /* an invalid version sorts first */
		c = strcmp(a, b);
		return (c > 0) - (c < 0);
	}
	for (int part = 0; part < 3; part++) {
		size_t al = strcspn(a, "."), bl = strcspn(b, ".");
		int c = digits_cmp(a, al, b, bl);

		if (c != 0)
			return c;
		a += al + (a[al] == '.');
		b += bl + (b[bl] == '.');
	}
	return 0;
}
