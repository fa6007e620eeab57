/* memhog: allocates and touches 1 MiB blocks until allocation fails, then
 * fails with a message (or dies, if the allocator kills the process). */
#include <evscript/sdk.h>
#include <stdlib.h>
#include <string.h>

EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);

#define BLOCK (1u << 20)
#define LIMIT (64u * 1024) /* 64 GiB: stop even if nothing stops us */

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	void **blocks = calloc(LIMIT, sizeof(void *));
	size_t n = 0;

	(void)event;
	host->log(ctx, EVS_LOG_INFO, "allocating until it fails");
	if (!blocks)
		return 2;
	while (n < LIMIT) {
		void *b = malloc(BLOCK);

		if (!b)
			break;
		memset(b, 0xA5, BLOCK);
		blocks[n++] = b;
	}
	host->set_error(ctx, "out of memory after %zu MiB", n);
	return 1;
}
