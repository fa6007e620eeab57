/*
 * zygote.h - the executor's zygote (zygote.c, whose top comment is the
 * design of isolated executions), run as the small binary evscript-zygote
 * (zygote_main.c) that the daemon starts with executor_zygote_spawn()
 * (zygote_spawn.c).
 */
#ifndef EVS_EXECUTOR_ZYGOTE_H
#define EVS_EXECUTOR_ZYGOTE_H

#include <stddef.h>
#include <sys/types.h>

/* In the daemon: starts the zygote binary (path, else looked up as
 * executor.h says) with zfd, its end of the ctl socket, as fd
 * WIRE_ZYGOTE_FD, in a process group of its own, with default signal
 * handling and only the environment it needs. 0 with *pid (the caller
 * reaps it), or a negative code with err set (*pid 0). */
int executor_zygote_spawn(const char *path, int zfd, pid_t *pid, char *err, size_t errlen);

/* In the zygote: serves the daemon on the ctl socket fd (wire.h) until
 * its EOF; returns the process's exit status. Call it first thing in
 * main(). */
int executor_zygote_main(int fd);

/* 1 in an executor process (forked from the zygote), 0 in the zygote. */
int executor_zygote_in_executor(void);

#endif
