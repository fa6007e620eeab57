/*
 * ytree.h - private to runtime/config: a YAML document as a small tree built
 * from libyaml's events, with each node's 1-based line and column.
 *
 * All nodes of one document live in one arena (struct ytree) and are freed
 * together. An alias points at the node its anchor named (the node is shared,
 * not copied), so "billion laughs" documents cost no memory; the walkers in
 * the config parsers only descend into the parts they read, and every list
 * or map they keep is capped.
 */
#ifndef EVS_CONFIG_YTREE_H
#define EVS_CONFIG_YTREE_H

#include <stdbool.h>
#include <stddef.h>

#define YTREE_MAX_NODES 2000000u
#define YTREE_MAX_DEPTH 64u

enum ynode_type { YNODE_SCALAR = 1, YNODE_SEQ, YNODE_MAP };

struct ynode {
	enum ynode_type type;
	unsigned line, column;           /* 1-based */
	struct ynode *next_alloc;        /* arena chain */
	char *anchor;                    /* NULL when none */
	/* scalar */
	char *str;                       /* NUL-terminated (a NUL inside is refused) */
	size_t len;
	bool plain;                      /* unquoted, no tag: may be null or bool */
	/* seq: items; map: keys[i] -> items[i] */
	struct ynode **items;
	struct ynode **keys;
	size_t n, cap;
};

struct ytree {
	struct ynode *root;              /* NULL for an empty document */
	struct ynode *nodes;             /* arena chain */
	size_t count;
};

/* Parses bytes (not necessarily NUL-terminated) into *out (fresh tree owned
 * by the caller, free with ytree_free). Only one document is accepted. On
 * failure returns a negative CONFIG_E* code, writes "FILE:LINE:COL: ..." into
 * err and leaves *out empty. */
int ytree_parse(const char *bytes, size_t len, const char *filename, struct ytree *out,
		char *err, size_t errlen);

/* Frees every node of the tree, wiping each scalar first (a host file may
 * hold the secret key), and zeroes it. NULL-safe. */
void ytree_free(struct ytree *t);

/* Predicates over scalars. */
bool ynode_is_null(const struct ynode *n);

/* printf into err with the "FILE:LINE:COL: " prefix of node n (or without
 * a position when n is NULL). Returns code, for `return yfail(...)`. */
int yfail(char *err, size_t errlen, const char *file, const struct ynode *n, int code,
	  const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* The description of a node's type for messages: "a list", "a mapping", "a string". */
const char *ynode_kind(const struct ynode *n);

#endif
