/*
 * crash.c - crash reports (crash.h): recorded by the executor's signal
 * handler, written out by the zygote.
 *
 * Recording does only what a signal handler may: stores into shared memory
 * and backtrace(), whose unwinder the zygote loaded beforehand. Naming the
 * addresses happens in the zygote, which maps the same objects at the same
 * addresses: dladdr() and the link map find the object, the plugin's ELF
 * note gives its build id, and its symbol tables (read from the sealed
 * memfd it was loaded from, so the very bytes that ran) the nearest symbol.
 */
#include "crash.h"

#include <dlfcn.h>
#include <elf.h>
#include <execinfo.h>
#include <link.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#define ALT_STACK_BYTES (64u << 10)

static const int crash_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS};
static struct sigaction previous[sizeof(crash_signals) / sizeof(crash_signals[0])];
static struct crash_report *report;
static pid_t armed_pid;

struct crash_report *crash_reports_new(size_t n)
{
	void *frames[2];
	void *p = mmap(NULL, n * sizeof(struct crash_report), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		       -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	(void)backtrace(frames, 2); /* loads the unwinder now, while files may be opened */
	return p;
}

static uintptr_t context_pc(const void *uc)
{
#if defined(__x86_64__)
	return (uintptr_t)((const ucontext_t *)uc)->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
	return (uintptr_t)((const ucontext_t *)uc)->uc_mcontext.pc;
#else
	(void)uc;
	return 0;
#endif
}

static void on_crash(int sig, siginfo_t *si, void *uc)
{
	size_t i;

	if (report && getpid() == armed_pid && report->sig == 0) {
		void *frames[CRASH_FRAMES_MAX];
		int n = backtrace(frames, CRASH_FRAMES_MAX);

		report->code = si ? si->si_code : 0;
		report->addr = si ? (uintptr_t)si->si_addr : 0;
		report->pc = uc ? context_pc(uc) : 0;
		for (int k = 0; k < n; k++)
			report->frames[k] = (uintptr_t)frames[k];
		report->n_frames = n;
		report->sig = sig;
	}
	for (i = 0; i < sizeof(crash_signals) / sizeof(crash_signals[0]) && crash_signals[i] != sig; i++)
		;
	if (i < sizeof(crash_signals) / sizeof(crash_signals[0])) {
		const struct sigaction *old = &previous[i];

		if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction) {
			old->sa_sigaction(sig, si, uc);
			return;
		}
		if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN && old->sa_handler) {
			old->sa_handler(sig);
			return;
		}
	}
	/* die of it: once this handler returns, the signal (re-raised, or the
	 * faulting instruction run again) meets the default action */
	signal(sig, SIG_DFL);
	if (si && si->si_code <= 0)
		raise(sig);
}

void crash_arm(struct crash_report *r)
{
	stack_t ss = {.ss_size = ALT_STACK_BYTES};
	struct sigaction sa;

	report = r;
	armed_pid = getpid();
	ss.ss_sp = malloc(ss.ss_size);
	if (ss.ss_sp && sigaltstack(&ss, NULL) != 0)
		free(ss.ss_sp);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_crash;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigfillset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(crash_signals) / sizeof(crash_signals[0]); i++)
		sigaction(crash_signals[i], &sa, &previous[i]);
}

/* ---- naming addresses (in the zygote) ---------------------------------- */

/* The build id of the object loaded at base, as hex into out ("" when it
 * has none). */
struct build_id_search {
	uintptr_t base;
	char *out;
	size_t len;
};

static int find_build_id(struct dl_phdr_info *info, size_t size, void *user)
{
	struct build_id_search *s = user;

	(void)size;
	if (info->dlpi_addr != s->base)
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		const char *p, *end;

		if (ph->p_type != PT_NOTE)
			continue;
		p = (const char *)(info->dlpi_addr + ph->p_vaddr);
		end = p + ph->p_memsz;
		while (p + sizeof(ElfW(Nhdr)) <= end) {
			const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
			const unsigned char *desc = (const unsigned char *)p + sizeof(*nh) + ((nh->n_namesz + 3) & ~3u);

			if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && memcmp(nh + 1, "GNU", 4) == 0) {
				for (size_t k = 0; k < nh->n_descsz && 2 * k + 2 < s->len; k++)
					snprintf(s->out + 2 * k, 3, "%02x", desc[k]);
				return 1;
			}
			p = (const char *)desc + ((nh->n_descsz + 3) & ~3u);
		}
	}
	return 1;
}

/* The plugin whose link map is at base, or NULL. */
static const struct loader_plugin *plugin_at(uintptr_t base, struct loader_plugin *const *plugins, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct link_map *lm = NULL;

		if (plugins[i] && plugins[i]->handle && dlinfo(plugins[i]->handle, RTLD_DI_LINKMAP, &lm) == 0 && lm &&
		    (uintptr_t)lm->l_addr == base)
			return plugins[i];
	}
	return NULL;
}

/* One frame's line; the plugin it is in (for its build id) in *in. */
static size_t format_frame(char *out, size_t len, int k, uintptr_t pc, struct loader_plugin *const *plugins,
			   size_t n, const struct loader_plugin **in)
{
	Dl_info dl;
	const char *obj, *sym = NULL;
	uintptr_t base, into = 0;
	int sym_len = 0;

	*in = NULL;
	if (!dladdr((void *)pc, &dl) || !dl.dli_fbase)
		return (size_t)snprintf(out, len, "#%d 0x%lx\n", k, (unsigned long)pc);
	base = (uintptr_t)dl.dli_fbase;
	*in = plugin_at(base, plugins, n);
	obj = dl.dli_fname && strrchr(dl.dli_fname, '/') ? strrchr(dl.dli_fname, '/') + 1 : dl.dli_fname;
	if (*in) {
		/* the zygote mapped each plugin's bytes when it closed its memfd */
		if ((*in)->image)
			sym = crash_elf_symbol((*in)->image, (*in)->image_len, pc - base, &into, &sym_len);
		if (sym)
			return (size_t)snprintf(out, len, "#%d %s.so+0x%lx %.*s+0x%lx\n", k, (*in)->name,
						(unsigned long)(pc - base), sym_len, sym, (unsigned long)into);
		return (size_t)snprintf(out, len, "#%d %s.so+0x%lx\n", k, (*in)->name, (unsigned long)(pc - base));
	}
	if (dl.dli_sname && dl.dli_saddr)
		return (size_t)snprintf(out, len, "#%d %s+0x%lx %s+0x%lx\n", k, obj ? obj : "?",
					(unsigned long)(pc - base), dl.dli_sname,
					(unsigned long)(pc - (uintptr_t)dl.dli_saddr));
	return (size_t)snprintf(out, len, "#%d %s+0x%lx\n", k, obj ? obj : "?", (unsigned long)(pc - base));
}

static const char *code_text(int sig, int code)
{
	if (sig == SIGSEGV)
		return code == SEGV_MAPERR ? "address not mapped to object"
		       : code == SEGV_ACCERR ? "invalid permissions for mapped object" : NULL;
	if (sig == SIGBUS)
		return code == BUS_ADRALN ? "invalid address alignment" : code == BUS_ADRERR ? "nonexistent physical address" : NULL;
	if (sig == SIGFPE)
		return code == FPE_INTDIV ? "integer divide by zero" : code == FPE_INTOVF ? "integer overflow" : NULL;
	if (sig == SIGILL)
		return code == ILL_ILLOPC ? "illegal opcode" : NULL;
	return NULL;
}

void crash_format(const struct crash_report *r, struct loader_plugin *const *plugins, size_t n, char *out,
		  size_t len)
{
	const struct loader_plugin *seen[CRASH_FRAMES_MAX + 1], *in;
	size_t w, n_seen = 0, used = 0;
	int first = -1, k = 0;

	if (!len)
		return;
	out[0] = '\0';
	if (!r || r->sig == 0)
		return;
	if (r->code <= 0) /* si_addr means nothing then */
		w = (size_t)snprintf(out, len, "no fault address: the signal was sent (abort, raise or kill)\n");
	else
		w = (size_t)snprintf(out, len, "fault address 0x%lx (%s)\n", (unsigned long)r->addr,
				     code_text(r->sig, r->code) ? code_text(r->sig, r->code) : "no detail");
	used = w < len ? w : len - 1;
	/* frame 0 is where it stopped (the ucontext's pc); before it in the
	 * backtrace are the handler and the signal trampoline */
	for (int i = 0; i < r->n_frames && i < CRASH_FRAMES_MAX && first < 0; i++)
		if (r->frames[i] == r->pc)
			first = i;
	if (first < 0)
		first = r->n_frames > 2 ? 2 : 0;
	for (int i = first; i < r->n_frames && i < CRASH_FRAMES_MAX && used + 1 < len; i++, k++) {
		/* frame 0 exactly; the others are return addresses, so the call
		 * is the byte before */
		uintptr_t pc = k == 0 ? (r->frames[i] == r->pc || !r->pc ? r->frames[i] : r->pc) : r->frames[i] - 1;

		w = format_frame(out + used, len - used, k, pc, plugins, n, &in);
		used += w < len - used ? w : len - used - 1;
		if (in) {
			size_t s;

			for (s = 0; s < n_seen && seen[s] != in; s++)
				;
			if (s == n_seen && n_seen < CRASH_FRAMES_MAX)
				seen[n_seen++] = in;
		}
	}
	for (size_t s = 0; s < n_seen && used + 1 < len; s++) {
		char id[2 * 64 + 1] = "";
		struct link_map *lm = NULL;
		struct build_id_search q = {0, id, sizeof(id)};

		if (dlinfo(seen[s]->handle, RTLD_DI_LINKMAP, &lm) == 0 && lm)
			q.base = (uintptr_t)lm->l_addr;
		dl_iterate_phdr(find_build_id, &q);
		w = (size_t)snprintf(out + used, len - used, "%s.so build id %s\n", seen[s]->name,
				     id[0] ? id : "none (link with --build-id)");
		used += w < len - used ? w : len - used - 1;
	}
	if (used > 0 && out[used - 1] == '\n')
		out[used - 1] = '\0';
}
