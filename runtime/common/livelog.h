/*
 * livelog.h - what streaming readers (GET /executions/stream,
 * GET /executions/{id}/logs/stream) need to follow executions live: the
 * log lines scripts write, as they write them, and a change counter.
 *
 * The store stays the record: hostapi writes log lines to it in batches
 * (at most one write a second while a script logs, and the rest with the
 * execution's end), so a reader of the store alone would see a running
 * script's lines late. Each line is also published here as soon as it is
 * logged, with its store sequence number (1, 2, ... per execution), so a
 * reader sends what the store has, then what is published after it, and
 * never a line twice.
 *
 * The bus is one per process: a ring of the last LIVELOG_RING_LINES lines
 * (older ones are only in the store; a reader that falls behind reads them
 * there) and a counter bumped by every publish and every
 * livelog_changed(), with a condition variable to wait on. Thread-safe;
 * publishing never blocks on a reader and never fails the caller.
 */
#ifndef EVS_COMMON_LIVELOG_H
#define EVS_COMMON_LIVELOG_H

#include <stddef.h>
#include <stdint.h>

#define LIVELOG_RING_LINES 4096
#define LIVELOG_LINE_MAX 4096 /* longer messages are cut here (the store's cap is larger) */

struct livelog_line {
	int64_t execution_id;
	int64_t seq;        /* the line's store sequence number */
	int64_t ts_ms;
	int level;          /* EVS_LOG_* */
	char *message;      /* owned by whoever holds the line */
};

/* Publishes one line of execution_id (copied; cut at LIVELOG_LINE_MAX). */
void livelog_publish(int64_t execution_id, int64_t seq, int64_t ts_ms, int level, const char *message);

/* Says that an execution was created or finished (wakes the waiters). */
void livelog_changed(void);

/* The change counter now. */
uint64_t livelog_version(void);

/* Waits until the counter passes `seen` or timeout_ms passes; returns the
 * counter then. */
uint64_t livelog_wait(uint64_t seen, int timeout_ms);

/* The published lines of execution_id with seq >= from_seq still in the
 * ring, in order, as a new array of copies (*out NULL when none);
 * livelog_lines_free() frees it. Returns 0 or STATUS_ENOMEM. */
int livelog_lines(int64_t execution_id, int64_t from_seq, struct livelog_line **out, size_t *n);
void livelog_lines_free(struct livelog_line *lines, size_t n);

#endif
