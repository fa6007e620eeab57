/*
 * ytree.c - libyaml events to a small positioned tree (see ytree.h).
 *
 * Checks made here for every document: one document only, mapping keys are
 * strings, no duplicate keys in a mapping, no NUL inside a string, aliases
 * name an anchor defined (and closed) earlier, nesting depth and node count
 * are capped.
 *
 * A host file may hold the secret key, so every scalar is wiped before it
 * is freed: libyaml's event copy here, the tree's copy in ytree_free().
 * (libyaml's scanner keeps short-lived copies of its own that it frees
 * unwiped; config_load wipes the file's bytes.)
 */
#include "ytree.h"

#include "config.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define YTREE_MAX_ANCHORS 4096u

struct builder {
	const char *file;
	char *err;
	size_t errlen;
	struct ytree *t;
	struct ynode *stack[YTREE_MAX_DEPTH];
	struct ynode *pending_key[YTREE_MAX_DEPTH];
	size_t depth;
	struct ynode *anchors[YTREE_MAX_ANCHORS];
	size_t n_anchors;
	int documents;
};

/* The one writer of "FILE:LINE:COL: message" (line 0: "FILE: message"). */
static int vfail(char *err, size_t errlen, const char *file, unsigned line, unsigned column, int code,
		 const char *fmt, va_list ap)
{
	int off;

	if (!err || errlen == 0)
		return code;
	if (!file)
		file = "<config>";
	if (line)
		off = snprintf(err, errlen, "%s:%u:%u: ", file, line, column);
	else
		off = snprintf(err, errlen, "%s: ", file);
	if (off < 0)
		off = 0;
	if ((size_t)off < errlen)
		vsnprintf(err + off, errlen - (size_t)off, fmt, ap);
	return code;
}

int yfail(char *err, size_t errlen, const char *file, const struct ynode *n, int code,
	  const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	code = vfail(err, errlen, file, n ? n->line : 0, n ? n->column : 0, code, fmt, ap);
	va_end(ap);
	return code;
}

static int fail_at(struct builder *b, unsigned line, unsigned column, int code, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int fail_at(struct builder *b, unsigned line, unsigned column, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	code = vfail(b->err, b->errlen, b->file, line, column, code, fmt, ap);
	va_end(ap);
	return code;
}

const char *ynode_kind(const struct ynode *n)
{
	if (!n)
		return "nothing";
	switch (n->type) {
	case YNODE_SCALAR:
		return ynode_is_null(n) ? "null" : "a string";
	case YNODE_SEQ:
		return "a list";
	case YNODE_MAP:
		return "a mapping";
	}
	return "?";
}

bool ynode_is_null(const struct ynode *n)
{
	if (!n)
		return true;
	if (n->type != YNODE_SCALAR || !n->plain)
		return false;
	return n->len == 0 || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0 ||
	       strcmp(n->str, "Null") == 0 || strcmp(n->str, "NULL") == 0;
}

static struct ynode *node_new(struct builder *b, enum ynode_type type, yaml_mark_t mark)
{
	struct ynode *n;

	if (b->t->count >= YTREE_MAX_NODES)
		return NULL;
	n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->type = type;
	n->line = (unsigned)mark.line + 1;
	n->column = (unsigned)mark.column + 1;
	n->next_alloc = b->t->nodes;
	b->t->nodes = n;
	b->t->count++;
	return n;
}

static int push_item(struct ynode *parent, struct ynode *key, struct ynode *item)
{
	if (parent->n == parent->cap) {
		size_t cap = parent->cap ? parent->cap * 2 : 4;
		struct ynode **items = realloc(parent->items, cap * sizeof(*items));

		if (!items)
			return CONFIG_ENOMEM;
		parent->items = items;
		if (parent->type == YNODE_MAP) {
			struct ynode **keys = realloc(parent->keys, cap * sizeof(*keys));

			if (!keys)
				return CONFIG_ENOMEM;
			parent->keys = keys;
		}
		parent->cap = cap;
	}
	if (parent->type == YNODE_MAP)
		parent->keys[parent->n] = key;
	parent->items[parent->n++] = item;
	return 0;
}

/* Attaches a finished node to its parent (or makes it the root). */
static int attach(struct builder *b, struct ynode *n)
{
	struct ynode *parent;

	if (b->depth == 0) {
		b->t->root = n;
		return 0;
	}
	parent = b->stack[b->depth - 1];
	if (parent->type == YNODE_SEQ)
		return push_item(parent, NULL, n);
	if (!b->pending_key[b->depth - 1]) {
		if (n->type != YNODE_SCALAR)
			return fail_at(b, n->line, n->column, CONFIG_EINVALID,
				       "a mapping key must be a string, not %s", ynode_kind(n));
		b->pending_key[b->depth - 1] = n;
		return 0;
	}
	{
		struct ynode *key = b->pending_key[b->depth - 1];

		b->pending_key[b->depth - 1] = NULL;
		return push_item(parent, key, n);
	}
}

static int cmp_keyref(const void *a, const void *b)
{
	const struct ynode *x = *(struct ynode *const *)a, *y = *(struct ynode *const *)b;
	int c = strcmp(x->str, y->str);

	if (c)
		return c;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->column != y->column)
		return x->column < y->column ? -1 : 1;
	return 0;
}

/* Duplicate keys: sort the keys once (n log n) and compare neighbours; the
 * error names the later of the first duplicate pair in file order. */
static int check_duplicates(struct builder *b, struct ynode *map)
{
	struct ynode **sorted;
	const struct ynode *dup = NULL, *first = NULL;
	int ret = 0;

	if (map->n < 2)
		return 0;
	sorted = malloc(map->n * sizeof(*sorted));
	if (!sorted)
		return CONFIG_ENOMEM;
	memcpy(sorted, map->keys, map->n * sizeof(*sorted));
	qsort(sorted, map->n, sizeof(*sorted), cmp_keyref);
	for (size_t i = 1; i < map->n; i++) {
		if (strcmp(sorted[i - 1]->str, sorted[i]->str) != 0)
			continue;
		if (!dup || sorted[i]->line < dup->line ||
		    (sorted[i]->line == dup->line && sorted[i]->column < dup->column)) {
			dup = sorted[i];
			first = sorted[i - 1];
		}
	}
	if (dup)
		ret = fail_at(b, dup->line, dup->column, CONFIG_EINVALID,
			      "duplicate key '%s' (first at line %u), expected each key once",
			      dup->str, first->line);
	free(sorted);
	return ret;
}

static int set_anchor(struct builder *b, struct ynode *n, const yaml_char_t *anchor, yaml_mark_t mark)
{
	if (!anchor)
		return 0;
	if (b->n_anchors == YTREE_MAX_ANCHORS)
		return fail_at(b, (unsigned)mark.line + 1, (unsigned)mark.column + 1, CONFIG_ETOOLARGE,
			       "too many anchors (at most %u)", YTREE_MAX_ANCHORS);
	n->anchor = strdup((const char *)anchor);
	if (!n->anchor)
		return CONFIG_ENOMEM;
	b->anchors[b->n_anchors++] = n;
	return 0;
}

static struct ynode *find_anchor(struct builder *b, const char *name)
{
	for (size_t i = b->n_anchors; i > 0; i--)
		if (strcmp(b->anchors[i - 1]->anchor, name) == 0)
			return b->anchors[i - 1];
	return NULL;
}

/* libyaml reports reader errors (bad UTF-8, control characters) by offset. */
static void offset_to_mark(const char *bytes, size_t len, size_t offset, unsigned *line, unsigned *column)
{
	*line = 1;
	*column = 1;
	for (size_t i = 0; i < offset && i < len; i++) {
		if (bytes[i] == '\n') {
			(*line)++;
			*column = 1;
		} else if (((unsigned char)bytes[i] & 0xC0) != 0x80) {
			(*column)++;
		}
	}
}

static int syntax_error(struct builder *b, yaml_parser_t *p, const char *bytes, size_t len)
{
	unsigned line, column;
	const char *problem = p->problem ? p->problem : "unknown error";

	if (p->error == YAML_MEMORY_ERROR)
		return CONFIG_ENOMEM;
	if (p->error == YAML_READER_ERROR) {
		offset_to_mark(bytes, len, p->problem_offset, &line, &column);
		return fail_at(b, line, column, CONFIG_ESYNTAX,
			       "YAML syntax error: %s, expected UTF-8 text", problem);
	}
	line = (unsigned)p->problem_mark.line + 1;
	column = (unsigned)p->problem_mark.column + 1;
	if (p->context)
		return fail_at(b, line, column, CONFIG_ESYNTAX, "YAML syntax error: %s %s (line %u)",
			       problem, p->context, (unsigned)p->context_mark.line + 1);
	return fail_at(b, line, column, CONFIG_ESYNTAX, "YAML syntax error: %s", problem);
}

static int on_event(struct builder *b, yaml_event_t *ev)
{
	const yaml_char_t *anchor;
	struct ynode *n;
	int ret;

	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (++b->documents > 1)
			return fail_at(b, (unsigned)ev->start_mark.line + 1, (unsigned)ev->start_mark.column + 1,
				       CONFIG_EINVALID, "a second YAML document, expected exactly one");
		return 0;
	case YAML_SCALAR_EVENT:
		n = node_new(b, YNODE_SCALAR, ev->start_mark);
		if (!n)
			goto toomany;
		if (memchr(ev->data.scalar.value, '\0', ev->data.scalar.length))
			return fail_at(b, n->line, n->column, CONFIG_EINVALID,
				       "a string contains a NUL character");
		n->str = malloc(ev->data.scalar.length + 1);
		if (!n->str)
			return CONFIG_ENOMEM;
		memcpy(n->str, ev->data.scalar.value, ev->data.scalar.length);
		n->str[ev->data.scalar.length] = '\0';
		n->len = ev->data.scalar.length;
		n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && ev->data.scalar.plain_implicit;
		ret = set_anchor(b, n, ev->data.scalar.anchor, ev->start_mark);
		if (ret)
			return ret;
		return attach(b, n);
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		n = node_new(b, ev->type == YAML_SEQUENCE_START_EVENT ? YNODE_SEQ : YNODE_MAP, ev->start_mark);
		if (!n)
			goto toomany;
		if (b->depth == YTREE_MAX_DEPTH)
			return fail_at(b, n->line, n->column, CONFIG_ETOOLARGE,
				       "nesting deeper than %u levels", YTREE_MAX_DEPTH);
		anchor = ev->type == YAML_SEQUENCE_START_EVENT ? ev->data.sequence_start.anchor
							       : ev->data.mapping_start.anchor;
		/* Kept aside until the node closes (see the END case). */
		if (anchor && !(n->anchor = strdup((const char *)anchor)))
			return CONFIG_ENOMEM;
		b->pending_key[b->depth] = NULL;
		b->stack[b->depth++] = n;
		return 0;
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		n = b->stack[--b->depth];
		if (n->type == YNODE_MAP) {
			ret = check_duplicates(b, n);
			if (ret)
				return ret;
		}
		/* The anchor is usable only once its node is closed: no cycles. */
		if (n->anchor) {
			char *a = n->anchor;

			n->anchor = NULL;
			ret = set_anchor(b, n, (const yaml_char_t *)a, ev->start_mark);
			free(a);
			if (ret)
				return ret;
		}
		return attach(b, n);
	case YAML_ALIAS_EVENT:
		n = find_anchor(b, (const char *)ev->data.alias.anchor);
		if (!n)
			return fail_at(b, (unsigned)ev->start_mark.line + 1, (unsigned)ev->start_mark.column + 1,
				       CONFIG_EINVALID, "alias *%s names no anchor defined before it",
				       (const char *)ev->data.alias.anchor);
		return attach(b, n);
	default:
		return 0;
	}
toomany:
	if (b->t->count >= YTREE_MAX_NODES)
		return fail_at(b, (unsigned)ev->start_mark.line + 1, (unsigned)ev->start_mark.column + 1,
			       CONFIG_ETOOLARGE, "more than %u YAML nodes", YTREE_MAX_NODES);
	return CONFIG_ENOMEM;
}

int ytree_parse(const char *bytes, size_t len, const char *filename, struct ytree *out,
		char *err, size_t errlen)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	struct builder *b;
	int ret = 0;
	bool done = false;

	memset(out, 0, sizeof(*out));
	if (err && errlen)
		err[0] = '\0';
	b = malloc(sizeof(*b));
	if (!b)
		return CONFIG_ENOMEM;
	*b = (struct builder){.file = filename, .err = err, .errlen = errlen, .t = out};
	if (!yaml_parser_initialize(&parser)) {
		ret = CONFIG_ENOMEM;
		goto out_b;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)bytes, len);
	while (!done) {
		if (!yaml_parser_parse(&parser, &ev)) {
			ret = syntax_error(b, &parser, bytes, len);
			goto out_parser;
		}
		done = ev.type == YAML_STREAM_END_EVENT;
		ret = on_event(b, &ev);
		if (ev.type == YAML_SCALAR_EVENT)
			sodium_memzero(ev.data.scalar.value, ev.data.scalar.length);
		yaml_event_delete(&ev);
		if (ret)
			goto out_parser;
	}
out_parser:
	yaml_parser_delete(&parser);
out_b:
	free(b);
	if (ret) {
		if (ret == CONFIG_ENOMEM)
			yfail(err, errlen, filename, NULL, ret, "out of memory");
		ytree_free(out);
	}
	return ret;
}

void ytree_free(struct ytree *t)
{
	struct ynode *n, *next;

	if (!t)
		return;
	for (n = t->nodes; n; n = next) {
		next = n->next_alloc;
		free(n->anchor);
		if (n->str)
			sodium_memzero(n->str, n->len);
		free(n->str);
		free(n->items);
		free(n->keys);
		free(n);
	}
	memset(t, 0, sizeof(*t));
}
