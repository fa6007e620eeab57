/*
 * crash_elf.c - the nearest function symbol of an offset in an ELF image,
 * for crash reports (crash.h). The image is a plugin's bytes: signed, but
 * possibly hostile, so every offset, size and index is checked against the
 * image before it is used (tests/fuzz/fuzz_elfsym.c).
 */
#include "crash.h"

#include <elf.h>
#include <link.h>
#include <string.h>

const char *crash_elf_symbol(const unsigned char *img, size_t len, uintptr_t offset, uintptr_t *into,
			      int *name_len)
{
	const ElfW(Ehdr) *eh = (const ElfW(Ehdr) *)img;
	const ElfW(Shdr) *sh;
	const char *best = NULL;

	if ((uintptr_t)img % _Alignof(ElfW(Ehdr)) || len < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh->e_ident[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32) ||
	    eh->e_shentsize != sizeof(*sh) || eh->e_shoff > len || eh->e_shoff % _Alignof(ElfW(Shdr)) ||
	    (size_t)eh->e_shnum * sizeof(*sh) > len - eh->e_shoff)
		return NULL;
	sh = (const ElfW(Shdr) *)(img + eh->e_shoff);
	for (int want = SHT_SYMTAB; !best && want; want = want == SHT_SYMTAB ? SHT_DYNSYM : 0) {
		for (size_t i = 0; i < eh->e_shnum && !best; i++) {
			const ElfW(Shdr) *st = &sh[i], *str;

			if (st->sh_type != (ElfW(Word))want || st->sh_link >= eh->e_shnum || st->sh_offset > len ||
			    st->sh_size > len - st->sh_offset || st->sh_entsize != sizeof(ElfW(Sym)) ||
			    st->sh_offset % _Alignof(ElfW(Sym)))
				continue;
			str = &sh[st->sh_link];
			if (str->sh_offset > len || str->sh_size > len - str->sh_offset)
				continue;
			for (size_t k = 0; k < st->sh_size / sizeof(ElfW(Sym)); k++) {
				const ElfW(Sym) *sym = (const ElfW(Sym) *)(img + st->sh_offset) + k;

				if (ELF64_ST_TYPE(sym->st_info) /* the same bits in ELF32 */ != STT_FUNC || sym->st_value == 0 ||
				    offset < sym->st_value || offset >= sym->st_value + (sym->st_size ? sym->st_size : 1) ||
				    sym->st_name >= str->sh_size)
					continue;
				best = (const char *)img + str->sh_offset + sym->st_name;
				*name_len = (int)strnlen(best, str->sh_size - sym->st_name < 256 ? str->sh_size - sym->st_name : 256);
				*into = offset - sym->st_value;
				break;
			}
		}
	}
	return best;
}

