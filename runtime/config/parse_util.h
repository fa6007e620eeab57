/*
 * parse_util.h - private to runtime/config: typed readers over ytree nodes.
 * Each returns 0 or a negative CONFIG_E* code with the message written.
 */
#ifndef EVS_CONFIG_PARSE_UTIL_H
#define EVS_CONFIG_PARSE_UTIL_H

#include "config.h"
#include "ytree.h"

struct pctx {
	const char *file;
	char *err;
	size_t errlen;
};

#define PFAIL(c, node, code, ...) yfail((c)->err, (c)->errlen, (c)->file, (node), (code), __VA_ARGS__)

/* Refuses n: "WHAT: expected EXPECTED, found 'its text'" for a scalar,
 * "... found a list" otherwise. Returns CONFIG_EINVALID. */
int p_expected(struct pctx *c, const struct ynode *n, const char *what, const char *expected);

/* A non-null scalar, copied. what names the key for messages. */
int p_string(struct pctx *c, const struct ynode *n, const char *what, char **out);
/* A whole number in [min, max]. */
int p_uint(struct pctx *c, const struct ynode *n, const char *what, uint64_t min, uint64_t max,
	   uint64_t *out);
int p_bool(struct pctx *c, const struct ynode *n, const char *what, bool *out);
/* A string or a list of strings (null: empty). */
int p_strlist_or_string(struct pctx *c, const struct ynode *n, const char *what,
			struct config_strlist *out);
/* A mapping of string -> scalar (null: empty); values may be null (""). */
int p_strmap(struct pctx *c, const struct ynode *n, const char *what, struct config_map *out);
/* A non-null mapping of at most max entries, and a zeroed array for it: one
 * element of size bytes per entry (at least one) into *items, owned by the
 * caller (NULL on failure). what names the mapping in messages, of says what
 * it maps: "names to strings" gives "expected a mapping of names to strings". */
int p_map_items(struct pctx *c, const struct ynode *n, const char *what, const char *of, unsigned max,
		size_t size, void **items);

/* One entry of a mapping for p_each: its key (a scalar), its value, and
 * what ("<prefix>.<key>") to name it by in messages. 0 or a CONFIG_E* code. */
typedef int (*p_entry_fn)(struct pctx *c, const struct ynode *key, const struct ynode *v, const char *what,
			  void *user);

/* Walks the mapping n: entry(c, key, value, what, user) for each entry, in
 * order, until one fails. A null n has no entries (0); any other node than a
 * mapping is refused: "<prefix>: expected a mapping<of>, found a list" (of
 * may be "", or say what it maps: " of names to strings"). */
int p_each(struct pctx *c, const struct ynode *n, const char *prefix, const char *of, p_entry_fn entry,
	   void *user);
/* The same for a mapping that must be there: null is refused too. */
int p_each_required(struct pctx *c, const struct ynode *n, const char *prefix, const char *of,
		    p_entry_fn entry, void *user);

/* One entry of a mapping of names to settings (scripts, oauth_clients,
 * webhook_secrets), as a p_map_read entry reads it: *copy = a copy of the
 * name (owned by the caller), then p_each (p_each_required when required)
 * over its settings m, named "<what>.<name>". 0 or a CONFIG_E* code. */
int p_named_entry(struct pctx *c, const char *what, const struct ynode *name, const struct ynode *m,
		  bool required, const char *of, char **copy, p_entry_fn entry, void *user);

/* A scalar that may be null (then nothing changes), else copied over *out. */
int p_opt_string(struct pctx *c, const struct ynode *n, const char *what, char **out);

/* One key of a mapping read by a table (after nginx's ngx_command_t): its
 * name, and how its value is read into the struct at base + offset: a
 * string that may be null (p_opt_string), a string or a list of them
 * (p_strlist_or_string), a mapping of strings (p_strmap), or by call(c,
 * key, value, what, base + offset). */
enum p_kind { P_OPT_STRING, P_STRLIST, P_STRMAP, P_CALL };
struct p_field {
	const char *name;
	enum p_kind kind;
	size_t offset;
	p_entry_fn call;
};

/* Reads one entry of a mapping by fields (n of them) into base; a key the
 * table does not name is skipped (0). */
int p_field(struct pctx *c, const struct ynode *key, const struct ynode *v, const char *what,
	    const struct p_field *fields, size_t n, void *base);

/* p_each with p_field for every entry: the mapping n (null: empty) by
 * fields into base. */
int p_fields(struct pctx *c, const struct ynode *n, const char *prefix, const char *of,
	     const struct p_field *fields, size_t n_fields, void *base);

/* Reads each entry of a non-null mapping of at most max entries into a
 * zeroed array of one element of size bytes per entry. array is the
 * address of the caller's `T *` (size being sizeof(T)): it gets the array
 * (owned by the caller, even on failure; NULL when it could not be made),
 * *count the entries read so far (what the caller's clear function frees),
 * and entry(c, key, value, &array[i], user) runs for each, until one fails.
 * what and of as for p_map_items. */
typedef int (*p_item_fn)(struct pctx *c, const struct ynode *key, const struct ynode *v, void *item,
			 void *user);
int p_map_read(struct pctx *c, const struct ynode *n, const char *what, const char *of, unsigned max,
	       size_t size, void *array, size_t *count, p_item_fn entry, void *user);

/* nango.c: the integrations mapping into out->integrations, with notes for
 * ignored keys; and one note "FILE:L:C: ignored: <path> (<why>)". */
int nango_parse_integrations(struct pctx *c, const struct ynode *n, struct config_nango *out);
int nango_note_ignored(struct pctx *c, const struct ynode *at, struct config_nango *out,
		       const char *path, const char *why);

/* "isolated" or "in-process". */
int p_execution(struct pctx *c, const struct ynode *n, const char *what, enum config_execution *out);

/* oauth_clients.c: the host file's oauth_clients mapping into h; and, at
 * config_load, each client_secret_env read from envp (NULL-terminated). */
int oauth_clients_parse(struct pctx *c, const struct ynode *v, struct config_host *h);
int oauth_clients_resolve(struct config_host *h, char *const *envp, char *err, size_t errlen);
void oauth_clients_free(struct config_host *h);

/* webhooks.c: the readers of webhook_forward_url and webhook_secrets. */
int config_set_webhook_forward_url(struct pctx *c, const struct ynode *v, struct config_host *h);
int config_set_webhook_secrets(struct pctx *c, const struct ynode *v, struct config_host *h);
void config_webhook_secrets_clear(struct config_host *h);

int strlist_push(struct config_strlist *l, const char *s);
void strlist_clear(struct config_strlist *l);
void map_clear(struct config_map *m);
/* Wipes the string s (which may be NULL) and frees it: the secret key. */
void secret_free(char *s);

#endif
