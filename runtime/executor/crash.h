/*
 * crash.h - what a crashed execution reports: the signal, the faulting
 * address and a backtrace with plugin-relative offsets and build ids.
 *
 * The executor records (in its signal handler, into memory it shares with
 * the zygote: async-signal-safe writes only); the zygote, which has the same
 * plugins mapped at the same addresses (the executor is its fork), turns
 * the addresses into text after reaping it, and sends that with the exit
 * report. The daemon appends it to the execution's error:
 *
 *     crashed: SIGSEGV (Segmentation fault)
 *     fault address 0x0 (address not mapped to object)
 *     #0 crash.so+0x1139 on_event+0x2d
 *     #1 evscript-zygote+0x5a3e2
 *     ...
 *     crash.so build id 6f2b0c3e9d4a17e5b8c21f0d3a9e4b7c6d5e8f10
 */
#ifndef EVS_CRASH_H
#define EVS_CRASH_H

#include <stddef.h>
#include <stdint.h>

#include "loader.h"

#define CRASH_FRAMES_MAX 32
#define CRASH_TEXT_MAX 4096

/* One executor's report. sig is 0 until its handler ran. */
struct crash_report {
	volatile int sig;
	int code;                /* si_code */
	uintptr_t addr;          /* si_addr */
	uintptr_t pc;            /* where it stopped (the ucontext's program counter) */
	int n_frames;
	uintptr_t frames[CRASH_FRAMES_MAX];
};

/* In the zygote, before the sandbox and any executor: n shared reports
 * (MAP_SHARED, zeroed), and backtrace()'s unwinder loaded (it is dlopen()ed
 * on first use, which the sandbox would forbid). NULL on failure. */
struct crash_report *crash_reports_new(size_t n);

/* In an executor, after the sandbox's own pid-1 handlers are installed:
 * catches SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP and SIGSYS on an
 * alternate stack, fills r (only in this process, not in what the plugin
 * forks), then hands the signal to the handler installed before, or dies
 * of it. */
void crash_arm(struct crash_report *r);

/* In the zygote, after the executor that wrote r died: r as text into out
 * (lines as above, without the "crashed:" line), "" when r holds nothing.
 * Frames in a plugin are named NAME.so+OFFSET with the nearest symbol from
 * its dynamic or full symbol table (when it was built with one), followed
 * by its build id; other frames by their object's file name. */
void crash_format(const struct crash_report *r, struct loader_plugin *const *plugins, size_t n, char *out,
		  size_t len);

/* The function symbol of the ELF image (len bytes, untrusted) that contains
 * offset: from .symtab (static functions too), else .dynsym. Returns its
 * name, which is *name_len bytes long and not necessarily NUL-terminated,
 * with *into = offset - the symbol's start; NULL when none (or the image is
 * malformed). Reads nothing outside img[0, len). */
const char *crash_elf_symbol(const unsigned char *img, size_t len, uintptr_t offset, uintptr_t *into,
			     int *name_len);

#endif
