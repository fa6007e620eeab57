/*
 * loader_subs.c - a plugin's declared subscriptions (EVS_ON_EVENT,
 * EVS_ACTION_FOR in sdk.h), read as data from the ELF section
 * ".evscript.subscriptions" of the verified bytes: the section headers are
 * walked with every offset and size checked against the file, and nothing
 * of the plugin is mapped executable or run. loader_verify() calls it as its
 * last step, in the daemon.
 */
#include "loader.h"
#include "loader_priv.h"
#include "util.h"

#include <elf.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* [off, off + len) lies within a file of size bytes. */
static bool within(uint64_t off, uint64_t len, size_t size)
{
	return off <= size && len <= size - off;
}

/* The section called name: its offset and size in the file, 1 when there
 * is none, a negative LOADER_E* code with detail when the headers are bad. */
static int find_section(const unsigned char *elf, size_t size, const char *name, uint64_t *off,
			uint64_t *len, char *detail, size_t dlen)
{
	ElfW(Ehdr) eh;
	ElfW(Shdr) sh, strtab;
	size_t nlen = strlen(name);

	if (size < sizeof(eh)) {
		snprintf(detail, dlen, "shorter than an ELF header");
		return LOADER_ENOTELF;
	}
	memcpy(&eh, elf, sizeof(eh));
	if (eh.e_shoff == 0 || eh.e_shnum == 0)
		return 1; /* no section headers (e.g. sstrip): nothing declared */
	if (eh.e_shentsize != sizeof(sh) || eh.e_shstrndx >= eh.e_shnum ||
	    !within(eh.e_shoff, (uint64_t)eh.e_shnum * sizeof(sh), size)) {
		snprintf(detail, dlen, "malformed section header table");
		return LOADER_ENOTELF;
	}
	memcpy(&strtab, elf + eh.e_shoff + (size_t)eh.e_shstrndx * sizeof(sh), sizeof(sh));
	if (!within(strtab.sh_offset, strtab.sh_size, size)) {
		snprintf(detail, dlen, "section names outside the file");
		return LOADER_ENOTELF;
	}
	for (size_t i = 0; i < eh.e_shnum; i++) {
		memcpy(&sh, elf + eh.e_shoff + i * sizeof(sh), sizeof(sh));
		if (sh.sh_name >= strtab.sh_size || strtab.sh_size - sh.sh_name < nlen + 1 ||
		    memcmp(elf + strtab.sh_offset + sh.sh_name, name, nlen + 1) != 0)
			continue;
		if (sh.sh_type != SHT_PROGBITS || !within(sh.sh_offset, sh.sh_size, size)) {
			snprintf(detail, dlen, "section %s is not data within the file", name);
			return LOADER_ESUBSCRIPTION;
		}
		*off = sh.sh_offset;
		*len = sh.sh_size;
		return 0;
	}
	return 1;
}

/* A name field: NUL-terminated within the record, and [A-Za-z0-9_-]+
 * (or empty when empty_ok). */
static bool valid_field(const char *f, bool empty_ok)
{
	size_t n = strnlen(f, EVS_SUBSCRIPTION_NAME_MAX);

	if (n == EVS_SUBSCRIPTION_NAME_MAX)
		return false;
	return n == 0 ? empty_ok : util_valid_name(f);
}

static int parse_record(const struct evs_subscription *r, struct loader_subscription *out,
			char *detail, size_t dlen)
{
	if (r->kind != EVS_SUBSCRIBE_EVENT && r->kind != EVS_SUBSCRIBE_ACTION) {
		snprintf(detail, dlen, "unknown subscription kind %u", r->kind);
		return LOADER_ESUBSCRIPTION;
	}
	if (!valid_field(r->integration, false)) {
		snprintf(detail, dlen, "an integration id must be letters, digits, '_' and '-' only");
		return LOADER_ESUBSCRIPTION;
	}
	if (!valid_field(r->event, r->kind == EVS_SUBSCRIBE_ACTION) ||
	    (r->kind == EVS_SUBSCRIBE_ACTION && r->event[0])) {
		snprintf(detail, dlen, "malformed event name for integration %.64s", r->integration);
		return LOADER_ESUBSCRIPTION;
	}
	out->kind = (enum evs_subscription_kind)r->kind;
	memcpy(out->integration, r->integration, sizeof(out->integration));
	memcpy(out->event, r->event, sizeof(out->event));
	return 0;
}

int loader_parse_subscriptions(const void *bytes, size_t size, struct loader_subscription **out,
			       size_t *n, char *detail, size_t dlen)
{
	const unsigned char *elf = bytes;
	struct loader_subscription *v = NULL;
	struct evs_subscription rec;
	uint64_t off = 0, len = 0;
	size_t count;
	int ret;

	*out = NULL;
	*n = 0;
	ret = find_section(elf, size, EVS_SUBSCRIPTIONS_SECTION, &off, &len, detail, dlen);
	if (ret != 0)
		return ret > 0 ? 0 : ret;
	if (len % sizeof(rec) != 0 || len / sizeof(rec) > LOADER_SUBSCRIPTIONS_MAX) {
		snprintf(detail, dlen, "section %s holds %llu bytes: not a whole number of records (%zu "
			 "bytes each) or more than %d of them", EVS_SUBSCRIPTIONS_SECTION,
			 (unsigned long long)len, sizeof(rec), LOADER_SUBSCRIPTIONS_MAX);
		return LOADER_ESUBSCRIPTION;
	}
	count = (size_t)(len / sizeof(rec));
	if (count == 0)
		return 0;
	v = calloc(count, sizeof(*v));
	if (!v) {
		snprintf(detail, dlen, "out of memory");
		return LOADER_ENOMEM;
	}
	for (size_t i = 0; i < count; i++) {
		memcpy(&rec, elf + off + i * sizeof(rec), sizeof(rec));
		if (rec.size != sizeof(rec)) {
			snprintf(detail, dlen, "record %zu has size %u, this host knows %zu", i, rec.size,
				 sizeof(rec));
			ret = LOADER_ESUBSCRIPTION;
			break;
		}
		ret = parse_record(&rec, &v[i], detail, dlen);
		if (ret < 0)
			break;
	}
	if (ret < 0) {
		free(v);
		return ret;
	}
	*out = v;
	*n = count;
	return 0;
}

int loader_read_subscriptions(struct loader_plugin *p, int fd, size_t size, char *err, size_t errlen)
{
	char detail[300] = "";
	void *map;
	int ret;

	map = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
	if (map == MAP_FAILED)
		return loader_refuse(err, errlen, LOADER_EIO, "%s.so: cannot map the verified bytes", p->name);
	ret = loader_parse_subscriptions(map, size, &p->subscriptions, &p->n_subscriptions, detail,
					 sizeof(detail));
	munmap(map, size);
	if (ret < 0)
		return loader_refuse(err, errlen, ret, "%s.so: %s", p->name, detail);
	return 0;
}
