/*
 * test_sign.c - unit tests for runtime/sign: parsers (every error path),
 * writers, signing and verification verdicts, the trusted comment parser,
 * version comparison and the keyring. The known-answer vectors at the top
 * were made by the real minisign 0.11 binary (see interop.sh for the live
 * interop tests).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "sign.h"

/* ---- vectors made by `minisign -G -W`, `minisign -S -t ...`, `minisign -S -l` */

static const char mini_pub[] = "untrusted comment: minisign public key CAE5AD0308D05CF9\n"
			       "RWT5XNAIA63lyn02RuMc2qesUUAkvboBDO2Sv1XwAZ95ZlMeHGhETZrd\n";

static const char mini_sec_w[] =
	"untrusted comment: minisign encrypted secret key\n"
	"RWQAAEIyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+VzQCAOt5crLU4Uf1RZAwwrnRVKsVov4AVP/"
	"S/pfflgyO/nRw3W61H02RuMc2qesUUAkvboBDO2Sv1XwAZ95ZlMeHGhETZrdAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";

/* `minisign -G` with a password: scrypt-encrypted. */
static const char mini_sec_encrypted[] =
	"untrusted comment: minisign encrypted secret key\n"
	"RWRTY0IyN0uuZpUEfBRj7bVlybtrbY+QIr0V3llMEAeDN9h1r98AAAACAAAAAAAAAEAAAAAAaeGZorP5HjOktHOBWI8CCyzmHngzAvhe7v+"
	"Bd5uedzxFELaoeiDNNz50zGh7C+BJReVdf2ghZBJacofgKCTxWZhZc2FmN5VdWE4NUXwGPEqFEoBygsgMMHrJzC0ZToQXYaXrJrvH260=\n";

/* Signatures of the 3-byte file "hi\n". */
static const char mini_file[] = "hi\n";

static const char mini_sig[] =
	"untrusted comment: signature from minisign secret key\n"
	"RUT5XNAIA63lymyorMi/Q6xVQGARG2wYxrtmxROI3XYRvgUL3Rw803nAPrGz72YIe9KzOFYexTPmCkRQLjptyr3ksxTxAIiQXAQ=\n"
	"trusted comment: plugin:hello version:1.0.0 abi:1\n"
	"d6mrro77kAZWr6f+Ppdp4lMyWcXeD4EnvxHBqmJh+DjVJYf58cdF0y0BNN5tZK362WbrjbsjNNTSBNmUbJjpAA==\n";

static const char mini_sig_legacy[] =
	"untrusted comment: signature from minisign secret key\n"
	"RWT5XNAIA63lytgjps+XW3WbKH30keHN2ESoNG0kZnJmbqcDGHJxjZsf+HzjQb50uO4fd6pygmgXs5kDDA62VtARWFu/SFUaKA4=\n"
	"trusted comment: timestamp:1795757152\tfile:f\n"
	"UeGWsLgmvSP8VJHCTAoQFEVoeBQW9i0RRoPfHBwR2+BjJ9WpE0LY1R3i8ffpyp8MMZhliXNCVpamd2ePlk6eBg==\n";

static const char *const sig_lines[4] = {
	"untrusted comment: signature from minisign secret key",
	"RUT5XNAIA63lymyorMi/Q6xVQGARG2wYxrtmxROI3XYRvgUL3Rw803nAPrGz72YIe9KzOFYexTPmCkRQLjptyr3ksxTxAIiQXAQ=",
	"trusted comment: plugin:hello version:1.0.0 abi:1",
	"d6mrro77kAZWr6f+Ppdp4lMyWcXeD4EnvxHBqmJh+DjVJYf58cdF0y0BNN5tZK362WbrjbsjNNTSBNmUbJjpAA==",
};

/* Builds a 4-line file from sig_lines with line `i` replaced (when repl is
 * not NULL) and lines joined by `eol`. */
static char *sig_with(int i, const char *repl, const char *eol)
{
	size_t total = 1;
	char *s;

	for (int k = 0; k < 4; k++)
		total += strlen(k == i && repl ? repl : sig_lines[k]) + strlen(eol);
	s = malloc(total);
	assert_non_null(s);
	s[0] = '\0';
	for (int k = 0; k < 4; k++) {
		strcat(s, k == i && repl ? repl : sig_lines[k]);
		strcat(s, eol);
	}
	return s;
}

static void hash_of(const void *data, size_t len, uint8_t out[SIGN_HASH_BYTES])
{
	sign_hash_buf(data, len, out);
}

/* ---- known answers ---------------------------------------------------- */

static void test_blake2b_known_answer(void **state)
{
	static const char want[] = "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1"
				   "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923";
	struct sign_hasher h;
	uint8_t a[SIGN_HASH_BYTES], b[SIGN_HASH_BYTES];
	char hex[2 * SIGN_HASH_BYTES + 1];

	(void)state;
	sign_hash_init(&h);
	sign_hash_update(&h, "a", 1);
	sign_hash_update(&h, "", 0);
	sign_hash_update(&h, "bc", 2);
	sign_hash_final(&h, a);
	sodium_bin2hex(hex, sizeof(hex), a, sizeof(a));
	assert_string_equal(hex, want);
	sign_hash_buf("abc", 3, b);
	assert_memory_equal(a, b, sizeof(a));
}

static void test_keyid_hex(void **state)
{
	const uint8_t id[8] = {0xf9, 0x5c, 0xd0, 0x08, 0x03, 0xad, 0xe5, 0xca};
	struct sign_pubkey pk;
	char hex[17], *text = NULL;

	(void)state;
	sign_keyid_hex(hex, id);
	assert_string_equal(hex, "CAE5AD0308D05CF9");

	/* A key id with a zero top nibble: padded in messages, unpadded in the
	 * .pub comment as Debian's minisign 0.11 writes it (seen: a key made by
	 * minisign -G whose comment read "minisign public key 8B6F0A49885EABE"). */
	memset(&pk, 0, sizeof(pk));
	memcpy(pk.keyid, (const uint8_t[8]){0xbe, 0xea, 0x85, 0x98, 0xa4, 0xf0, 0xb6, 0x08}, 8);
	sign_keyid_hex(hex, pk.keyid);
	assert_string_equal(hex, "08B6F0A49885EABE");
	assert_int_equal(sign_pubkey_format(&pk, &text), SIGN_OK);
	assert_memory_equal(text, "untrusted comment: minisign public key 8B6F0A49885EABE\n", 55);
	free(text);
}

static void test_minisign_vectors_verify(void **state)
{
	struct sign_pubkey pk;
	struct sign_sig sig;
	uint8_t hash[SIGN_HASH_BYTES];
	char hex[17];

	(void)state;
	assert_int_equal(sign_pubkey_parse(mini_pub, strlen(mini_pub), &pk), SIGN_OK);
	sign_keyid_hex(hex, pk.keyid);
	assert_string_equal(hex, "CAE5AD0308D05CF9");

	assert_int_equal(sign_sig_parse(mini_sig, strlen(mini_sig), &sig), SIGN_OK);
	assert_false(sig.legacy);
	assert_string_equal(sig.trusted_comment, "plugin:hello version:1.0.0 abi:1");
	assert_memory_equal(sig.keyid, pk.keyid, SIGN_KEYID_BYTES);
	hash_of(mini_file, 3, hash);
	assert_int_equal(sign_verify(&pk, &sig, hash, NULL, 0, false), SIGN_OK);

	/* legacy "Ed": refused by default, verified over the bytes with allow_legacy */
	assert_int_equal(sign_sig_parse(mini_sig_legacy, strlen(mini_sig_legacy), &sig), SIGN_OK);
	assert_true(sig.legacy);
	assert_string_equal(sig.trusted_comment, "timestamp:1795757152\tfile:f");
	assert_int_equal(sign_verify(&pk, &sig, NULL, mini_file, 3, false), SIGN_ELEGACY);
	assert_int_equal(sign_verify(&pk, &sig, NULL, mini_file, 3, true), SIGN_OK);
	assert_int_equal(sign_verify(&pk, &sig, NULL, "hj\n", 3, true), SIGN_EBADSIG);
	/* a legacy signature needs the file's bytes, not only its hash */
	assert_int_equal(sign_verify(&pk, &sig, hash, NULL, 3, true), SIGN_EBADSIG);
}

static void test_minisign_seckey_w(void **state)
{
	struct sign_seckey sk;
	struct sign_pubkey pk, derived;
	struct sign_sig sig;
	uint8_t hash[SIGN_HASH_BYTES];
	char *minisig = NULL;

	(void)state;
	/* minisign -G -W leaves the checksum all zero: accepted */
	assert_int_equal(sign_seckey_parse(mini_sec_w, strlen(mini_sec_w), &sk), SIGN_OK);
	assert_int_equal(sign_pubkey_parse(mini_pub, strlen(mini_pub), &pk), SIGN_OK);
	assert_int_equal(sign_seckey_pubkey(&sk, &derived), SIGN_OK);
	assert_memory_equal(&derived, &pk, sizeof(pk));

	/* and it signs something minisign's public key verifies */
	hash_of("payload", 7, hash);
	assert_int_equal(sign_sign_hash(&sk, hash, "plugin:p version:2.0.0 abi:1", NULL, &minisig), SIGN_OK);
	assert_int_equal(sign_sig_parse(minisig, strlen(minisig), &sig), SIGN_OK);
	assert_int_equal(sign_verify(&pk, &sig, hash, NULL, 0, false), SIGN_OK);
	free(minisig);
	sodium_memzero(&sk, sizeof(sk));
}

static void test_encrypted_seckey_refused(void **state)
{
	struct sign_seckey sk;

	(void)state;
	assert_int_equal(sign_seckey_parse(mini_sec_encrypted, strlen(mini_sec_encrypted), &sk), SIGN_EENCRYPTED);
	for (size_t i = 0; i < sizeof(sk.sk); i++)
		assert_int_equal(sk.sk[i], 0);
}

/* ---- round trips ------------------------------------------------------ */

static void test_keygen_round_trip(void **state)
{
	struct sign_pubkey pk, pk2, derived;
	struct sign_seckey sk, sk2;
	char *pub_text = NULL, *sec_text = NULL;
	char hex[17], want_comment[64];

	(void)state;
	assert_int_equal(sign_keygen(&pk, &sk), SIGN_OK);
	assert_memory_equal(pk.keyid, sk.keyid, SIGN_KEYID_BYTES);
	assert_int_equal(sign_pubkey_format(&pk, &pub_text), SIGN_OK);
	assert_int_equal(sign_seckey_format(&sk, &sec_text), SIGN_OK);

	/* the comment carries the key id without zero padding, like minisign's */
	sign_keyid_hex(hex, pk.keyid);
	snprintf(want_comment, sizeof(want_comment), "untrusted comment: minisign public key %s\n",
		 hex + strspn(hex, "0") - (hex[strspn(hex, "0")] == '\0'));
	assert_memory_equal(pub_text, want_comment, strlen(want_comment));
	assert_int_equal(strlen(pub_text), strlen(want_comment) + 56 + 1);

	assert_int_equal(sign_pubkey_parse(pub_text, strlen(pub_text), &pk2), SIGN_OK);
	assert_memory_equal(&pk, &pk2, sizeof(pk));
	assert_int_equal(sign_seckey_parse(sec_text, strlen(sec_text), &sk2), SIGN_OK);
	assert_memory_equal(&sk, &sk2, sizeof(sk));
	assert_int_equal(sign_seckey_pubkey(&sk2, &derived), SIGN_OK);
	assert_memory_equal(&derived, &pk, sizeof(pk));

	/* two key pairs differ */
	assert_int_equal(sign_keygen(&pk2, &sk2), SIGN_OK);
	assert_memory_not_equal(pk.pk, pk2.pk, SIGN_PK_BYTES);
	assert_memory_not_equal(pk.keyid, pk2.keyid, SIGN_KEYID_BYTES);

	sodium_memzero(sec_text, strlen(sec_text));
	free(sec_text);
	free(pub_text);
}

/* Decodes a secret key file's blob, lets `edit` change it, re-encodes. */
static char *seckey_edited(const struct sign_seckey *sk, void (*edit)(uint8_t *blob))
{
	char *text = NULL, *nl, *out;
	uint8_t blob[158];
	size_t bl = 0, b64len = sodium_base64_ENCODED_LEN(158, sodium_base64_VARIANT_ORIGINAL);

	assert_int_equal(sign_seckey_format(sk, &text), SIGN_OK);
	nl = strchr(text, '\n');
	assert_non_null(nl);
	assert_int_equal(sodium_base642bin(blob, sizeof(blob), nl + 1, strlen(nl + 1) - 1, NULL, &bl, NULL,
					   sodium_base64_VARIANT_ORIGINAL),
			 0);
	assert_int_equal(bl, 158);
	edit(blob);
	out = malloc((size_t)(nl + 1 - text) + b64len + 1);
	assert_non_null(out);
	memcpy(out, text, (size_t)(nl + 1 - text));
	sodium_bin2base64(out + (nl + 1 - text), b64len, blob, sizeof(blob), sodium_base64_VARIANT_ORIGINAL);
	strcat(out, "\n");
	free(text);
	return out;
}

static void edit_flip_chk(uint8_t *b) { b[157] ^= 1; }
static void edit_zero_chk(uint8_t *b) { memset(b + 126, 0, 32); }
static void edit_scrypt(uint8_t *b) { b[2] = 'S'; b[3] = 'c'; }
static void edit_bad_kdf(uint8_t *b) { b[2] = 'X'; b[3] = 'x'; }
static void edit_bad_chkalg(uint8_t *b) { b[4] = 'S'; b[5] = '2'; }
static void edit_bad_alg(uint8_t *b) { b[1] = 'D'; }
/* the public half of the 64-byte key (bytes 32..63 of sk, at 62+32) */
static void edit_pk_half(uint8_t *b) { b[62 + 40] ^= 0x40; memset(b + 126, 0, 32); }

static void test_seckey_errors(void **state)
{
	struct {
		void (*edit)(uint8_t *);
		int want;
	} cases[] = {
		{edit_flip_chk, SIGN_ECHECKSUM}, {edit_zero_chk, SIGN_OK},           {edit_scrypt, SIGN_EENCRYPTED},
		{edit_bad_kdf, SIGN_EMALFORMED}, {edit_bad_chkalg, SIGN_EMALFORMED}, {edit_bad_alg, SIGN_EMALFORMED},
		{edit_pk_half, SIGN_ECHECKSUM},
	};
	struct sign_pubkey pk;
	struct sign_seckey sk, got;

	(void)state;
	assert_int_equal(sign_keygen(&pk, &sk), SIGN_OK);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *text = seckey_edited(&sk, cases[i].edit);

		assert_int_equal(sign_seckey_parse(text, strlen(text), &got), cases[i].want);
		if (cases[i].want == SIGN_OK)
			assert_memory_equal(&got, &sk, sizeof(sk));
		sodium_memzero(text, strlen(text));
		free(text);
	}
	/* wrong length and truncation */
	assert_int_equal(sign_seckey_parse(mini_sec_w, strlen(mini_sec_w) - 6, &got), SIGN_EMALFORMED);
	assert_int_equal(sign_seckey_parse(mini_sec_w, 30, &got), SIGN_EMALFORMED);
	assert_int_equal(sign_seckey_parse(mini_pub, strlen(mini_pub), &got), SIGN_EMALFORMED);
	sodium_memzero(&sk, sizeof(sk));
}

static void test_sign_verify_round_trip(void **state)
{
	struct sign_pubkey pk;
	struct sign_seckey sk;
	struct sign_sig sig;
	uint8_t hash[SIGN_HASH_BYTES], other[SIGN_HASH_BYTES];
	char *minisig = NULL;
	const char *tc = "timestamp:1\tfile:x.so\tplugin:x version:1.2.3 abi:1";

	(void)state;
	assert_int_equal(sign_keygen(&pk, &sk), SIGN_OK);
	hash_of("the plugin", 10, hash);
	assert_int_equal(sign_sign_hash(&sk, hash, tc, "my untrusted note", &minisig), SIGN_OK);
	assert_memory_equal(minisig, "untrusted comment: my untrusted note\n", 37);
	assert_int_equal(sign_sig_parse(minisig, strlen(minisig), &sig), SIGN_OK);
	assert_false(sig.legacy);
	assert_string_equal(sig.trusted_comment, tc);
	assert_int_equal(sign_verify(&pk, &sig, hash, NULL, 0, false), SIGN_OK);

	/* tampered file */
	hash_of("the plugiN", 10, other);
	assert_int_equal(sign_verify(&pk, &sig, other, NULL, 0, false), SIGN_EBADSIG);
	/* tampered trusted comment: the file signature still holds, the global one not */
	sig.trusted_comment[strlen(sig.trusted_comment) - 1] = '2';
	assert_int_equal(sign_verify(&pk, &sig, hash, NULL, 0, false), SIGN_EBADGLOBALSIG);
	sig.trusted_comment[strlen(sig.trusted_comment) - 1] = '1';
	assert_int_equal(sign_verify(&pk, &sig, hash, NULL, 0, false), SIGN_OK);
	/* tampered global signature */
	sig.global_sig[0] ^= 1;
	assert_int_equal(sign_verify(&pk, &sig, hash, NULL, 0, false), SIGN_EBADGLOBALSIG);
	sig.global_sig[0] ^= 1;
	/* a key id that does not match the key given */
	sig.keyid[0] ^= 1;
	assert_int_equal(sign_verify(&pk, &sig, hash, NULL, 0, false), SIGN_EKEYID);
	sig.keyid[0] ^= 1;
	/* no hash given */
	assert_int_equal(sign_verify(&pk, &sig, NULL, NULL, 0, false), SIGN_EBADSIG);
	free(minisig);

	/* comments the signer refuses */
	assert_int_equal(sign_sign_hash(&sk, hash, "a\nb", NULL, &minisig), SIGN_ECOMMENT);
	assert_null(minisig);
	assert_int_equal(sign_sign_hash(&sk, hash, "a\rb", NULL, &minisig), SIGN_ECOMMENT);
	assert_int_equal(sign_sign_hash(&sk, hash, NULL, NULL, &minisig), SIGN_ECOMMENT);
	assert_int_equal(sign_sign_hash(&sk, hash, "ok", "two\nlines", &minisig), SIGN_ECOMMENT);
	{
		char long_tc[SIGN_COMMENT_MAX + 2];

		memset(long_tc, 'a', sizeof(long_tc) - 1);
		long_tc[sizeof(long_tc) - 1] = '\0';
		assert_int_equal(sign_sign_hash(&sk, hash, long_tc, NULL, &minisig), SIGN_ECOMMENT);
		long_tc[SIGN_COMMENT_MAX] = '\0'; /* exactly the maximum is fine */
		assert_int_equal(sign_sign_hash(&sk, hash, long_tc, NULL, &minisig), SIGN_OK);
		assert_int_equal(sign_sig_parse(minisig, strlen(minisig), &sig), SIGN_OK);
		assert_int_equal(strlen(sig.trusted_comment), SIGN_COMMENT_MAX);
		assert_int_equal(sign_verify(&pk, &sig, hash, NULL, 0, false), SIGN_OK);
		free(minisig);
	}
	/* empty trusted comment is valid for minisign */
	assert_int_equal(sign_sign_hash(&sk, hash, "", NULL, &minisig), SIGN_OK);
	assert_int_equal(sign_sig_parse(minisig, strlen(minisig), &sig), SIGN_OK);
	assert_string_equal(sig.trusted_comment, "");
	assert_int_equal(sign_verify(&pk, &sig, hash, NULL, 0, false), SIGN_OK);
	free(minisig);
	sodium_memzero(&sk, sizeof(sk));
}

/* ---- parser error paths ----------------------------------------------- */

static void test_pubkey_parse_errors(void **state)
{
	struct sign_pubkey pk;
	char buf[SIGN_MINISIG_MAX + 64];
	const char *b64 = "RWT5XNAIA63lyn02RuMc2qesUUAkvboBDO2Sv1XwAZ95ZlMeHGhETZrd";
	struct {
		const char *text;
		int want;
	} cases[] = {
		{"untrusted comment: x\nRWT5XNAIA63lyn02RuMc2qesUUAkvboBDO2Sv1XwAZ95ZlMeHGhETZrd\n", SIGN_OK},
		{"untrusted comment: x\r\nRWT5XNAIA63lyn02RuMc2qesUUAkvboBDO2Sv1XwAZ95ZlMeHGhETZrd\r\n", SIGN_OK},
		{"untrusted comment: x\nRWT5XNAIA63lyn02RuMc2qesUUAkvboBDO2Sv1XwAZ95ZlMeHGhETZrd", SIGN_OK},
		{"", SIGN_EMALFORMED},
		{"untrusted comment: x\n", SIGN_EMALFORMED},
		{"untrusted comment: x", SIGN_EMALFORMED},
		{"RWT5XNAIA63lyn02RuMc2qesUUAkvboBDO2Sv1XwAZ95ZlMeHGhETZrd\n", SIGN_EMALFORMED},
		{"comment: x\nRWT5XNAIA63lyn02RuMc2qesUUAkvboBDO2Sv1XwAZ95ZlMeHGhETZrd\n", SIGN_EMALFORMED},
		/* bad base64 character */
		{"untrusted comment: x\nRWT5XNAIA63lyn02RuMc2qesUUAkvboBDO2Sv1XwAZ95ZlMeHGhETZr!\n", SIGN_EMALFORMED},
		/* one character short / long, and whitespace inside */
		{"untrusted comment: x\nRWT5XNAIA63lyn02RuMc2qesUUAkvboBDO2Sv1XwAZ95ZlMeHGhETZr\n", SIGN_EMALFORMED},
		{"untrusted comment: x\nRWT5XNAIA63lyn02RuMc2qesUUAkvboBDO2Sv1XwAZ95ZlMeHGhETZrdA\n", SIGN_EMALFORMED},
		{"untrusted comment: x\nRWT5XNAIA63lyn02RuMc2qesUUAkvboBDO2S v1XwAZ95ZlMeHGhETZrd\n", SIGN_EMALFORMED},
		/* 45 bytes (60 chars, decodes fine but too long) and 39 bytes */
		{"untrusted comment: x\nRWT5XNAIA63lyn02RuMc2qesUUAkvboBDO2Sv1XwAZ95ZlMeHGhETZrdAAAA\n", SIGN_EMALFORMED},
		{"untrusted comment: x\nRWT5XNAIA63lyn02RuMc2qesUUAkvboBDO2Sv1XwAZ95ZlMeHGhE\n", SIGN_EMALFORMED},
		/* "ED" instead of "Ed" (RUT = 'E','D',...) */
		{"untrusted comment: x\nRUT5XNAIA63lyn02RuMc2qesUUAkvboBDO2Sv1XwAZ95ZlMeHGhETZrd\n", SIGN_EMALFORMED},
		/* a third line */
		{"untrusted comment: x\nRWT5XNAIA63lyn02RuMc2qesUUAkvboBDO2Sv1XwAZ95ZlMeHGhETZrd\nmore\n", SIGN_EMALFORMED},
		{"untrusted comment: x\nRWT5XNAIA63lyn02RuMc2qesUUAkvboBDO2Sv1XwAZ95ZlMeHGhETZrd\n\n", SIGN_EMALFORMED},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = sign_pubkey_parse(cases[i].text, strlen(cases[i].text), &pk);

		if (got != cases[i].want)
			fail_msg("case %zu: got %d want %d", i, got, cases[i].want);
	}
	/* NUL byte inside */
	snprintf(buf, sizeof(buf), "untrusted comment: x\n%s\n", b64);
	buf[5] = '\0';
	assert_int_equal(sign_pubkey_parse(buf, strlen(b64) + 22, &pk), SIGN_EMALFORMED);
	/* oversize: a valid key after a huge comment */
	memset(buf, 'a', sizeof(buf));
	memcpy(buf, "untrusted comment: ", 19);
	buf[SIGN_MINISIG_MAX - 30] = '\n';
	memcpy(buf + SIGN_MINISIG_MAX - 29, b64, strlen(b64));
	buf[SIGN_MINISIG_MAX - 29 + strlen(b64)] = '\n';
	assert_int_equal(sign_pubkey_parse(buf, SIGN_MINISIG_MAX - 28 + strlen(b64), &pk), SIGN_EMALFORMED);
	/* NULL data */
	assert_int_equal(sign_pubkey_parse(NULL, 0, &pk), SIGN_EMALFORMED);
}

static void test_sig_parse_errors(void **state)
{
	struct sign_sig sig;
	char long_tc[40 + SIGN_COMMENT_MAX];
	char *s;
	struct {
		int line;
		const char *repl;
		const char *eol;
		int want;
	} cases[] = {
		{-1, NULL, "\n", SIGN_OK},
		{-1, NULL, "\r\n", SIGN_OK}, /* CR before LF dropped, as minisign does */
		{0, "untrusted comment:", "\n", SIGN_EMALFORMED},
		{0, "Untrusted comment: x", "\n", SIGN_EMALFORMED},
		{0, "untrusted comment: ", "\n", SIGN_OK},
		{2, "trusted comment plugin:hello", "\n", SIGN_EMALFORMED},
		{2, "untrusted comment: plugin:hello", "\n", SIGN_EMALFORMED},
		{2, "trusted comment: a\tb", "\n", SIGN_OK},
		{2, "trusted comment: a\x01" "b", "\n", SIGN_EMALFORMED},
		{2, "trusted comment: a\rb", "\n", SIGN_EMALFORMED},
		{2, "trusted comment: a\x7f", "\n", SIGN_EMALFORMED},
		/* bad base64 */
		{1, "RUT5XNAIA63lymyorMi/Q6xVQGARG2wYxrtmxROI3XYRvgUL3Rw803nAPrGz72YIe9KzOFYexTPmCkRQLjptyr3ksxTxAIiQX*Q=",
		 "\n", SIGN_EMALFORMED},
		{3, "d6mrro77kAZWr6f+Ppdp4lMyWcXeD4EnvxHBqmJh+DjVJYf58cdF0y0BNN5tZK362WbrjbsjNNTSBNmUbJjp-A==", "\n",
		 SIGN_EMALFORMED},
		/* missing padding */
		{3, "d6mrro77kAZWr6f+Ppdp4lMyWcXeD4EnvxHBqmJh+DjVJYf58cdF0y0BNN5tZK362WbrjbsjNNTSBNmUbJjpAA", "\n",
		 SIGN_EMALFORMED},
		/* wrong lengths: 73 and 75 bytes, 63 and 65 bytes */
		{1, "RUT5XNAIA63lymyorMi/Q6xVQGARG2wYxrtmxROI3XYRvgUL3Rw803nAPrGz72YIe9KzOFYexTPmCkRQLjptyr3ksxTxAIiQXA==",
		 "\n", SIGN_EMALFORMED},
		{1, "RUT5XNAIA63lymyorMi/Q6xVQGARG2wYxrtmxROI3XYRvgUL3Rw803nAPrGz72YIe9KzOFYexTPmCkRQLjptyr3ksxTxAIiQXAQA",
		 "\n", SIGN_EMALFORMED},
		{3, "d6mrro77kAZWr6f+Ppdp4lMyWcXeD4EnvxHBqmJh+DjVJYf58cdF0y0BNN5tZK362WbrjbsjNNTSBNmUbJjp", "\n",
		 SIGN_EMALFORMED},
		{3, "d6mrro77kAZWr6f+Ppdp4lMyWcXeD4EnvxHBqmJh+DjVJYf58cdF0y0BNN5tZK362WbrjbsjNNTSBNmUbJjpAAA=", "\n",
		 SIGN_EMALFORMED},
		/* unknown algorithm "EX" (RVh...) and the public key's blob in the signature slot */
		{1, "RVj5XNAIA63lymyorMi/Q6xVQGARG2wYxrtmxROI3XYRvgUL3Rw803nAPrGz72YIe9KzOFYexTPmCkRQLjptyr3ksxTxAIiQXAQ=",
		 "\n", SIGN_EMALFORMED},
		{1, "RWT5XNAIA63lyn02RuMc2qesUUAkvboBDO2Sv1XwAZ95ZlMeHGhETZrd", "\n", SIGN_EMALFORMED},
		/* empty lines */
		{1, "", "\n", SIGN_EMALFORMED},
		{3, "", "\n", SIGN_EMALFORMED},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got;

		s = sig_with(cases[i].line, cases[i].repl, cases[i].eol);
		got = sign_sig_parse(s, strlen(s), &sig);
		if (got != cases[i].want)
			fail_msg("case %zu: got %d want %d", i, got, cases[i].want);
		if (got != SIGN_OK) {
			/* output zeroed on failure */
			assert_int_equal(sig.trusted_comment[0], 0);
			assert_int_equal(sig.keyid[0] | sig.sig[0] | sig.global_sig[0], 0);
		}
		free(s);
	}

	/* the legacy algorithm parses and is flagged */
	assert_int_equal(sign_sig_parse(mini_sig_legacy, strlen(mini_sig_legacy), &sig), SIGN_OK);
	assert_true(sig.legacy);

	/* truncated at every length: never OK except without the final newline */
	for (size_t n = 0; n < strlen(mini_sig); n++) {
		int want = n == strlen(mini_sig) - 1 ? SIGN_OK : SIGN_EMALFORMED;

		assert_int_equal(sign_sig_parse(mini_sig, n, &sig), want);
	}
	/* extra line and trailing garbage */
	s = malloc(strlen(mini_sig) + 8);
	assert_non_null(s);
	strcpy(s, mini_sig);
	strcat(s, "extra\n");
	assert_int_equal(sign_sig_parse(s, strlen(s), &sig), SIGN_EMALFORMED);
	/* NUL inside the comment */
	strcpy(s, mini_sig);
	s[strlen(sig_lines[0]) + 1 + strlen(sig_lines[1]) + 1 + 20] = '\0';
	assert_int_equal(sign_sig_parse(s, strlen(mini_sig), &sig), SIGN_EMALFORMED);
	free(s);

	/* trusted comment: exactly SIGN_COMMENT_MAX is fine, one more is not */
	strcpy(long_tc, "trusted comment: ");
	memset(long_tc + 17, 'c', SIGN_COMMENT_MAX);
	long_tc[17 + SIGN_COMMENT_MAX] = '\0';
	s = sig_with(2, long_tc, "\n");
	assert_int_equal(sign_sig_parse(s, strlen(s), &sig), SIGN_OK);
	assert_int_equal(strlen(sig.trusted_comment), SIGN_COMMENT_MAX);
	free(s);
	long_tc[17 + SIGN_COMMENT_MAX] = 'c';
	long_tc[18 + SIGN_COMMENT_MAX] = '\0';
	s = sig_with(2, long_tc, "\n");
	assert_int_equal(sign_sig_parse(s, strlen(s), &sig), SIGN_EMALFORMED);
	free(s);

	/* a file over SIGN_MINISIG_MAX, even if made of valid lines */
	{
		size_t n = SIGN_MINISIG_MAX + 10;
		char *uc = malloc(n);

		assert_non_null(uc);
		memset(uc, 'u', n - 1);
		memcpy(uc, "untrusted comment: ", 19);
		uc[SIGN_MINISIG_MAX - 300] = '\0';
		s = sig_with(0, uc, "\n");
		assert_true(strlen(s) <= SIGN_MINISIG_MAX);
		assert_int_equal(sign_sig_parse(s, strlen(s), &sig), SIGN_OK);
		free(s);
		uc[SIGN_MINISIG_MAX - 300] = 'u';
		uc[SIGN_MINISIG_MAX] = '\0';
		s = sig_with(0, uc, "\n");
		assert_true(strlen(s) > SIGN_MINISIG_MAX);
		assert_int_equal(sign_sig_parse(s, strlen(s), &sig), SIGN_EMALFORMED);
		free(s);
		free(uc);
	}
}

/* ---- trusted comment and versions ------------------------------------- */

static void test_comment_parse(void **state)
{
	struct sign_comment c;
	char name256[300];
	struct {
		const char *text;
		int want;
	} bad[] = {
		{"", SIGN_ECOMMENT},
		{"plugin:hello version:1.0.0", SIGN_ECOMMENT},
		{"plugin:hello abi:1", SIGN_ECOMMENT},
		{"version:1.0.0 abi:1", SIGN_ECOMMENT},
		{"plugin:hello version:1.0.0 abi:1 hashed", SIGN_ECOMMENT},  /* token without ':' */
		{"plugin:hello version:1.0.0 abi:1 :x", SIGN_ECOMMENT},      /* empty key */
		{"plugin:hello plugin:hello version:1.0.0 abi:1", SIGN_ECOMMENT},
		{"plugin:hello version:1.0.0 version:1.0.0 abi:1", SIGN_ECOMMENT},
		{"plugin:hello version:1.0.0 abi:1 abi:1", SIGN_ECOMMENT},
		{"plugin: version:1.0.0 abi:1", SIGN_ECOMMENT},
		{"plugin:hel/lo version:1.0.0 abi:1", SIGN_ECOMMENT},
		{"plugin:hel.lo version:1.0.0 abi:1", SIGN_ECOMMENT},
		{"plugin:hello:x version:1.0.0 abi:1", SIGN_ECOMMENT},
		{"plugin:hello version:1.0 abi:1", SIGN_ECOMMENT},
		{"plugin:hello version:1.0.0.0 abi:1", SIGN_ECOMMENT},
		{"plugin:hello version:1..0 abi:1", SIGN_ECOMMENT},
		{"plugin:hello version:1.0.0- abi:1", SIGN_ECOMMENT},
		{"plugin:hello version:v1.0.0 abi:1", SIGN_ECOMMENT},
		{"plugin:hello version:1.0.0-rc1 abi:1", SIGN_ECOMMENT},
		{"plugin:hello version:1.0.0 abi:", SIGN_ECOMMENT},
		{"plugin:hello version:1.0.0 abi:-1", SIGN_ECOMMENT},
		{"plugin:hello version:1.0.0 abi:0x1", SIGN_ECOMMENT},
		{"plugin:hello version:1.0.0 abi:99999999999", SIGN_ECOMMENT},
		{"Plugin:hello version:1.0.0 abi:1", SIGN_ECOMMENT}, /* keys are case-sensitive */
	};

	(void)state;
	assert_int_equal(sign_comment_parse("plugin:hello version:1.0.0 abi:1", &c), SIGN_OK);
	assert_string_equal(c.plugin, "hello");
	assert_string_equal(c.version, "1.0.0");
	assert_int_equal(c.abi, 1);

	/* order free, extra pairs ignored, tabs and runs of spaces separate */
	assert_int_equal(sign_comment_parse("  timestamp:1795757152\tabi:4294967295  file:x.so version:10.20.300 "
					    "plugin:My_plugin-2 note:a:b\t",
					    &c),
			 SIGN_OK);
	assert_string_equal(c.plugin, "My_plugin-2");
	assert_string_equal(c.version, "10.20.300");
	assert_int_equal(c.abi, 4294967295u);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int got = sign_comment_parse(bad[i].text, &c);

		if (got != bad[i].want)
			fail_msg("case %zu (%s): got %d", i, bad[i].text, got);
		assert_string_equal(c.plugin, ""); /* zeroed on failure */
	}
	/* minisign's default comment has no plugin */
	assert_int_equal(sign_comment_parse("timestamp:1795757152\tfile:f\thashed", &c), SIGN_ECOMMENT);
	assert_int_equal(sign_comment_parse(NULL, &c), SIGN_ECOMMENT);

	/* plugin names up to 255 characters */
	strcpy(name256, "plugin:");
	memset(name256 + 7, 'n', 255);
	strcpy(name256 + 7 + 255, " version:1.0.0 abi:1");
	assert_int_equal(sign_comment_parse(name256, &c), SIGN_OK);
	assert_int_equal(strlen(c.plugin), 255);
	memset(name256 + 7, 'n', 256);
	strcpy(name256 + 7 + 256, " version:1.0.0 abi:1");
	assert_int_equal(sign_comment_parse(name256, &c), SIGN_ECOMMENT);
}

static void test_version_cmp(void **state)
{
	(void)state;
	assert_int_equal(sign_version_cmp("1.0.0", "1.0.0"), 0);
	assert_true(sign_version_cmp("1.0.0", "1.0.1") < 0);
	assert_true(sign_version_cmp("1.0.1", "1.0.0") > 0);
	assert_true(sign_version_cmp("1.9.0", "1.10.0") < 0);
	assert_true(sign_version_cmp("2.0.0", "1.99.99") > 0);
	assert_true(sign_version_cmp("0.0.9", "0.1.0") < 0);
	assert_int_equal(sign_version_cmp("01.002.0003", "1.2.3"), 0);
	assert_true(sign_version_cmp("99999999999999999999999.0.0", "99999999999999999999998.0.0") > 0);
	assert_true(sign_version_cmp("1.0.0", "18446744073709551616.0.0") < 0);
	/* an invalid version sorts before every valid one */
	assert_true(sign_version_cmp("1.0", "0.0.0") < 0);
	assert_true(sign_version_cmp("0.0.0", "x") > 0);
	assert_int_equal(sign_version_cmp("x", "x"), 0);
}

/* ---- keyring ---------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_tree(const char *dir)
{
	nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void write_text(const char *dir, const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void write_pub(const char *dir, const char *name, const struct sign_pubkey *pk)
{
	char *text = NULL;

	assert_int_equal(sign_pubkey_format(pk, &text), SIGN_OK);
	write_text(dir, name, text);
	free(text);
}

static void test_keyring(void **state)
{
	char dir[] = "/tmp/test_sign_keyring.XXXXXX";
	char err[256], hex_a[17], hex_b[17], hex_c[17], hex[17];
	struct sign_pubkey pk_a, pk_b, pk_c, pk_x;
	struct sign_seckey sk_a, sk_b, sk_c;
	struct sign_keyring *kr = NULL;
	struct sign_sig sig;
	uint8_t hash[SIGN_HASH_BYTES];
	char *minisig = NULL;
	const char *revoked[1];

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(sign_keygen(&pk_a, &sk_a), SIGN_OK);
	assert_int_equal(sign_keygen(&pk_b, &sk_b), SIGN_OK);
	assert_int_equal(sign_keygen(&pk_c, &sk_c), SIGN_OK);
	sign_keyid_hex(hex_a, pk_a.keyid);
	sign_keyid_hex(hex_b, pk_b.keyid);
	sign_keyid_hex(hex_c, pk_c.keyid);
	write_pub(dir, "a.pub", &pk_a);
	write_pub(dir, "b.pub", &pk_b);
	write_pub(dir, "a-copy.pub", &pk_a);           /* the same key twice is harmless */
	write_text(dir, "notes.txt", "not a key\n");   /* not *.pub: ignored */
	write_text(dir, ".hidden.pub", "not a key\n"); /* dot file: ignored */

	assert_int_equal(sign_keyring_load(dir, NULL, 0, &kr, err, sizeof(err)), SIGN_OK);
	assert_int_equal(sign_keyring_count(kr), 2);

	hash_of("bytes", 5, hash);
	/* signed by a: found by key id and verified */
	assert_int_equal(sign_sign_hash(&sk_a, hash, "plugin:a version:1.0.0 abi:1", NULL, &minisig), SIGN_OK);
	assert_int_equal(sign_sig_parse(minisig, strlen(minisig), &sig), SIGN_OK);
	free(minisig);
	assert_int_equal(sign_keyring_verify(kr, &sig, hash, NULL, 0, false, hex), SIGN_OK);
	assert_string_equal(hex, hex_a);
	/* tampered file and comment through the keyring */
	hash[0] ^= 1;
	assert_int_equal(sign_keyring_verify(kr, &sig, hash, NULL, 0, false, NULL), SIGN_EBADSIG);
	hash[0] ^= 1;
	sig.trusted_comment[7] = 'b';
	assert_int_equal(sign_keyring_verify(kr, &sig, hash, NULL, 0, false, NULL), SIGN_EBADGLOBALSIG);
	sig.trusted_comment[7] = 'a';
	/* the key id only selects: c's signature relabelled with b's id fails */
	assert_int_equal(sign_sign_hash(&sk_c, hash, "plugin:a version:1.0.0 abi:1", NULL, &minisig), SIGN_OK);
	assert_int_equal(sign_sig_parse(minisig, strlen(minisig), &sig), SIGN_OK);
	free(minisig);
	assert_int_equal(sign_keyring_verify(kr, &sig, hash, NULL, 0, false, hex), SIGN_EUNKNOWNKEY);
	assert_string_equal(hex, hex_c);
	memcpy(sig.keyid, pk_b.keyid, SIGN_KEYID_BYTES);
	assert_int_equal(sign_keyring_verify(kr, &sig, hash, NULL, 0, false, hex), SIGN_EBADSIG);
	assert_string_equal(hex, hex_b);
	sign_keyring_free(kr);
	kr = NULL;

	/* revoked key b (lower-case hex works too), and a revoked id with no file */
	assert_int_equal(sign_sign_hash(&sk_b, hash, "plugin:b version:1.0.0 abi:1", NULL, &minisig), SIGN_OK);
	assert_int_equal(sign_sig_parse(minisig, strlen(minisig), &sig), SIGN_OK);
	free(minisig);
	for (char *p = hex_b; *p; p++)
		if (*p >= 'A' && *p <= 'F')
			*p = (char)(*p - 'A' + 'a');
	revoked[0] = hex_b;
	assert_int_equal(sign_keyring_load(dir, revoked, 1, &kr, err, sizeof(err)), SIGN_OK);
	assert_true(sign_keyring_is_revoked(kr, pk_b.keyid));
	assert_false(sign_keyring_is_revoked(kr, pk_a.keyid));
	assert_int_equal(sign_keyring_verify(kr, &sig, hash, NULL, 0, false, NULL), SIGN_EREVOKED);
	sign_keyring_free(kr);
	kr = NULL;
	revoked[0] = hex_c;
	assert_int_equal(sign_keyring_load(dir, revoked, 1, &kr, err, sizeof(err)), SIGN_OK);
	assert_int_equal(sign_keyring_verify(kr, &sig, hash, NULL, 0, false, NULL), SIGN_OK);
	sign_keyring_free(kr);
	kr = NULL;

	/* legacy refused through the keyring before anything else */
	sig.legacy = true;
	assert_int_equal(sign_keyring_load(dir, NULL, 0, &kr, err, sizeof(err)), SIGN_OK);
	assert_int_equal(sign_keyring_verify(kr, &sig, hash, NULL, 0, false, NULL), SIGN_ELEGACY);
	sign_keyring_free(kr);
	kr = NULL;

	/* a revoked id without its zero padding (as in a minisign .pub comment) */
	{
		struct sign_keyring *kr2 = NULL;
		uint8_t small[8] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x00};

		revoked[0] = "7060504030201";
		assert_int_equal(sign_keyring_load(dir, revoked, 1, &kr2, err, sizeof(err)), SIGN_OK);
		assert_true(sign_keyring_is_revoked(kr2, small));
		small[7] = 0x01;
		assert_false(sign_keyring_is_revoked(kr2, small));
		sign_keyring_free(kr2);
	}

	/* bad revoked ids */
	revoked[0] = "12345x";
	assert_int_equal(sign_keyring_load(dir, revoked, 1, &kr, err, sizeof(err)), SIGN_EMALFORMED);
	assert_null(kr);
	assert_non_null(strstr(err, "12345x"));
	revoked[0] = "0123456789ABCDEG";
	assert_int_equal(sign_keyring_load(dir, revoked, 1, &kr, err, sizeof(err)), SIGN_EMALFORMED);
	revoked[0] = "0123456789ABCDEF0";
	assert_int_equal(sign_keyring_load(dir, revoked, 1, &kr, err, sizeof(err)), SIGN_EMALFORMED);
	revoked[0] = "";
	assert_int_equal(sign_keyring_load(dir, revoked, 1, &kr, err, sizeof(err)), SIGN_EMALFORMED);

	/* a different key under an existing key id */
	pk_x = pk_b;
	pk_x.pk[0] ^= 1;
	write_pub(dir, "x.pub", &pk_x);
	assert_int_equal(sign_keyring_load(dir, NULL, 0, &kr, err, sizeof(err)), SIGN_EMALFORMED);
	assert_null(kr);
	assert_non_null(strstr(err, "already used"));
	write_pub(dir, "x.pub", &pk_c);

	/* a malformed .pub names the file */
	write_text(dir, "broken.pub", "untrusted comment: x\nnot base64\n");
	assert_int_equal(sign_keyring_load(dir, NULL, 0, &kr, err, sizeof(err)), SIGN_EMALFORMED);
	assert_null(kr);
	assert_non_null(strstr(err, "broken.pub"));

	/* a missing directory */
	rm_tree(dir);
	assert_int_equal(sign_keyring_load(dir, NULL, 0, &kr, err, sizeof(err)), SIGN_EIO);
	assert_null(kr);
	assert_non_null(strstr(err, dir));

	/* an empty directory loads with no keys: every signature is unknown */
	assert_non_null(mkdtemp(strcpy(dir, "/tmp/test_sign_keyring.XXXXXX")));
	assert_int_equal(sign_keyring_load(dir, NULL, 0, &kr, NULL, 0), SIGN_OK);
	assert_int_equal(sign_keyring_count(kr), 0);
	sig.legacy = false;
	assert_int_equal(sign_keyring_verify(kr, &sig, hash, NULL, 0, false, NULL), SIGN_EUNKNOWNKEY);
	sign_keyring_free(kr);
	sign_keyring_free(NULL);
	rm_tree(dir);
	sodium_memzero(&sk_a, sizeof(sk_a));
	sodium_memzero(&sk_b, sizeof(sk_b));
	sodium_memzero(&sk_c, sizeof(sk_c));
}

static void test_strerror(void **state)
{
	(void)state;
	for (int e = SIGN_EINIT; e < 0; e++) {
		assert_non_null(sign_strerror(e));
		assert_string_not_equal(sign_strerror(e), "unknown error");
	}
	assert_string_equal(sign_strerror(-100), "unknown error");
	assert_non_null(strstr(sign_strerror(SIGN_EBADSIG), "signature"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blake2b_known_answer),
		cmocka_unit_test(test_keyid_hex),
		cmocka_unit_test(test_minisign_vectors_verify),
		cmocka_unit_test(test_minisign_seckey_w),
		cmocka_unit_test(test_encrypted_seckey_refused),
		cmocka_unit_test(test_keygen_round_trip),
		cmocka_unit_test(test_seckey_errors),
		cmocka_unit_test(test_sign_verify_round_trip),
		cmocka_unit_test(test_pubkey_parse_errors),
		cmocka_unit_test(test_sig_parse_errors),
		cmocka_unit_test(test_comment_parse),
		cmocka_unit_test(test_version_cmp),
		cmocka_unit_test(test_keyring),
		cmocka_unit_test(test_strerror),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
