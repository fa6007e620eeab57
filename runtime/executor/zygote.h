/*
 * zygote.h - the executor's zygote (zygote.c, whose top comment is the
 * design of isolated executions), run as the small binary evscript-zygote
 * (zygote_main.c) that executor_new() spawns.
 */
#ifndef EVS_EXECUTOR_ZYGOTE_H
#define EVS_EXECUTOR_ZYGOTE_H

/* Serves the daemon on the ctl socket fd (wire.h) until its EOF; returns
 * the process's exit status. Call it first thing in main(). */
int executor_zygote_main(int fd);

/* 1 in an executor process (forked from the zygote), 0 in the zygote. */
int executor_zygote_in_executor(void);

#endif
