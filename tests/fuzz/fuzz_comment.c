/* fuzz_comment.c - libFuzzer harness for sign_comment_parse() (the trusted
 * comment "plugin:NAME version:X.Y.Z abi:N") and sign_version_cmp(). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sign.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sign_comment c;
	char *text;

	if (size > 2 * SIGN_COMMENT_MAX)
		return 0;
	text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (sign_comment_parse(text, &c) == SIGN_OK) {
		/* accepted: a name, an X.Y.Z version that equals itself */
		if (c.plugin[0] == '\0' || strspn(c.plugin, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
						   strlen(c.plugin))
			abort();
		if (sign_version_cmp(c.version, c.version) != 0 || sign_version_cmp(c.version, "x") <= 0)
			abort();
	}
	/* any two strings compare antisymmetrically */
	{
		size_t half = size / 2;
		char *a = strndup(text, half), *b = strdup(text + half);

		if (a && b) {
			int ab = sign_version_cmp(a, b), ba = sign_version_cmp(b, a);

			if ((ab > 0) != (ba < 0) || (ab == 0) != (ba == 0))
				abort();
		}
		free(a);
		free(b);
	}
	free(text);
	return 0;
}
