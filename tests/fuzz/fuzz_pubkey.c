/* fuzz_pubkey.c - libFuzzer harness for sign_pubkey_parse(); an accepted key
 * must survive a format/parse round trip unchanged. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sign.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sign_pubkey pk, again;
	char *text = NULL;

	if (sign_pubkey_parse((const char *)data, size, &pk) != SIGN_OK)
		return 0;
	if (sign_pubkey_format(&pk, &text) != SIGN_OK)
		abort();
	if (sign_pubkey_parse(text, strlen(text), &again) != SIGN_OK || memcmp(&pk, &again, sizeof(pk)) != 0)
		abort();
	free(text);
	return 0;
}
