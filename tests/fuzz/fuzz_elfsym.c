/* fuzz_elfsym.c - libFuzzer harness for crash_elf_symbol(): the zygote
 * reads a plugin's symbol tables (signed, possibly hostile bytes) to name
 * the frames of a crash report. The first 8 bytes of the input are the
 * offset to look up; the rest is the image (copied to aligned memory, as
 * the zygote maps it). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crash.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t offset;
	uintptr_t into = 0;
	unsigned char *img;
	const char *name;
	int len = -1;

	if (size < sizeof(offset) || size > (8u << 20))
		return 0;
	memcpy(&offset, data, sizeof(offset));
	img = aligned_alloc(64, ((size - sizeof(offset)) / 64 + 1) * 64);
	if (!img)
		return 0;
	memcpy(img, data + sizeof(offset), size - sizeof(offset));
	name = crash_elf_symbol(img, size - sizeof(offset), (uintptr_t)offset, &into, &len);
	if (name) {
		/* inside the image, and within the length it says */
		if (name < (const char *)img || name + len > (const char *)img + (size - sizeof(offset)) || len < 0 ||
		    into > offset)
			abort();
	}
	free(img);
	return 0;
}
