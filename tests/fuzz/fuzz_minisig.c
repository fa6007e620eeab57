/* fuzz_minisig.c - libFuzzer harness for sign_sig_parse() (the .minisig
 * parser) and, on what it accepts, the trusted comment parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sign.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sign_sig sig;
	struct sign_comment c;
	size_t n;

	if (sign_sig_parse((const char *)data, size, &sig) != SIGN_OK)
		return 0;
	/* what the parser accepts must hold its promises */
	n = strnlen(sig.trusted_comment, sizeof(sig.trusted_comment));
	if (n > SIGN_COMMENT_MAX || size > SIGN_MINISIG_MAX)
		abort();
	for (size_t i = 0; i < n; i++)
		if (sig.trusted_comment[i] == '\n' || sig.trusted_comment[i] == '\r')
			abort();
	if (sign_comment_parse(sig.trusted_comment, &c) == SIGN_OK && c.plugin[0] == '\0')
		abort();
	return 0;
}
