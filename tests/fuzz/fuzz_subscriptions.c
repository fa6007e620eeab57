/* fuzz_subscriptions.c - libFuzzer harness for loader_parse_subscriptions()
 * (runtime/loader/loader_subs.c): the input is taken as the bytes of a
 * plugin file. Checks that an accepted section gives well-formed records
 * (NUL-terminated names, a known kind) and a refusal a reason. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "loader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct loader_subscription *subs = NULL;
	char detail[300] = "";
	size_t n = 0;
	int ret;

	ret = loader_parse_subscriptions(data, size, &subs, &n, detail, sizeof(detail));
	if (ret < 0) {
		if (subs || n || !detail[0])
			abort();
		return 0;
	}
	if ((n == 0) != (subs == NULL))
		abort();
	for (size_t i = 0; i < n; i++) {
		if (subs[i].kind != EVS_SUBSCRIBE_EVENT && subs[i].kind != EVS_SUBSCRIBE_ACTION)
			abort();
		if (!memchr(subs[i].integration, 0, sizeof(subs[i].integration)) || !subs[i].integration[0] ||
		    !memchr(subs[i].event, 0, sizeof(subs[i].event)))
			abort();
	}
	free(subs);
	return 0;
}
