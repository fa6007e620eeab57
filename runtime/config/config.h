/*
 * config.h - evscript's configuration: the host file, nango.yaml (v2) and
 * Nango's providers.yaml catalogue, parsed with libyaml.
 *
 * Three layers:
 *   - pure parsers (config_parse_host, config_parse_nango,
 *     config_parse_providers): bytes in, structs out, no I/O, no environment;
 *     fuzzed by tests/fuzz/fuzz_config.c;
 *   - the loader (config_load): reads the files, resolves relative paths
 *     against the config file's directory, applies EVSCRIPT_SECRET_KEY from
 *     the environment it is given, loads nango_yaml and the providers
 *     catalogue, and checks that every integration's provider exists;
 *   - helpers the daemon uses at run time: look-ups, per-script overrides,
 *     and config_interpolate() for providers' ${...} templates.
 *
 * Errors: every function that can fail returns 0 or a negative CONFIG_E*
 * code and writes ONE message into the caller's buffer err[errlen]:
 * "FILE:LINE:COLUMN: what was wrong, what was expected" (1-based line and
 * column), or "FILE: ..." when there is no position (a file that cannot be
 * read). CONFIG_ERR_MAX is a good size for that buffer.
 *
 * See docs/config.md for every key, its type and its default.
 */
#ifndef EVS_CONFIG_H
#define EVS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define CONFIG_ERR_MAX 512

#define CONFIG_FILE_MAX (4u << 20)       /* host file and nango.yaml: 4 MiB */
#define CONFIG_PROVIDERS_MAX (32u << 20) /* providers catalogue: 32 MiB */
#define CONFIG_LIST_MAX 4096             /* actions, headers, variables, providers' lists... */
#define CONFIG_SCRIPTS_MAX 256           /* scripts per event of one integration */
#define CONFIG_INTEGRATIONS_MAX 1024     /* integrations in one nango.yaml */
#define CONFIG_INTERPOLATE_MAX 65536     /* bytes of an interpolated template */

#define CONFIG_WARN_UNUSED __attribute__((warn_unused_result))

/* The codes config functions return (defined in status.h, text by
 * status_str()):
 *   CONFIG_ESYNTAX    not well-formed YAML
 *   CONFIG_EINVALID   well-formed, but a value or key is wrong
 *   CONFIG_ENOMEM     out of memory
 *   CONFIG_EIO        a file could not be read
 *   CONFIG_ETOOLARGE  a file or a list exceeds its cap
 *   CONFIG_EUNDEFINED a template names a variable that has no value
 *   CONFIG_ETEMPLATE  a template is malformed or uses an unsupported function */

/* Events, in the order of enum evs_event_type (sdk.h) minus one. */
enum config_event {
	CONFIG_EVENT_POST_CONNECTION_CREATION = 0,
	CONFIG_EVENT_PRE_CONNECTION_DELETION = 1,
	CONFIG_EVENT_VALIDATE_CONNECTION = 2,
	CONFIG_EVENT_COUNT = 3
};

/* "post-connection-creation", ...; NULL for an out-of-range value. */
const char *config_event_name(int event);
/* The event for a name, or -1. */
int config_event_from_name(const char *name);

enum config_execution {
	CONFIG_EXEC_INHERIT = 0,   /* an override that was not set */
	CONFIG_EXEC_ISOLATED = 1,  /* forked executor: crash isolation, deadline, limits */
	CONFIG_EXEC_IN_PROCESS = 2 /* a worker thread in the daemon: fastest, no isolation */
};
const char *config_execution_name(enum config_execution e);

enum config_log_format { CONFIG_LOG_TEXT = 0, CONFIG_LOG_JSON = 1 };

/* SQLITE: store_path is the database file; URL: store is a URL the store
 * reads as it is (postgresql://...). */
enum config_store_kind { CONFIG_STORE_SQLITE = 1, CONFIG_STORE_URL = 2 };

struct config_strlist {
	char **items;
	size_t n;
};

struct config_kv {
	char *key;
	char *value;
};

/* An ordered map of strings (file order). */
struct config_map {
	struct config_kv *items;
	size_t n;
};

/* Appends a copy of s: 0, CONFIG_ENOMEM or CONFIG_ETOOLARGE (CONFIG_LIST_MAX). */
int config_strlist_append(struct config_strlist *l, const char *s);

/* The value for key, or NULL. */
const char *config_map_get(const struct config_map *m, const char *key);

/* One integration of nango.yaml. */
struct config_integration {
	char *id;                                            /* the provider config key */
	char *provider;                                      /* `provider:`, default: id */
	struct config_strlist events[CONFIG_EVENT_COUNT];    /* script names, in file order */
	struct config_strlist actions;                       /* action names, in file order */
	enum config_execution execution;                     /* override, or INHERIT */
	unsigned line, column;                               /* of the integration's key */
	unsigned provider_line, provider_column;             /* of `provider:`'s value, else of the key */
};

/* The integrations part (nango.yaml, or inline in the host file). */
struct config_nango {
	char *file;                          /* the file they came from, for messages */
	struct config_integration *integrations;
	size_t n_integrations;
	/* One note per key evscript accepts but does not run, e.g.
	 * "nango.yaml:4:9: ignored: integrations.github.syncs (evscript runs
	 * event scripts and actions only)". The daemon logs each once. */
	struct config_strlist ignored;
};

/* A per-script override (host file `scripts:`). */
struct config_script {
	char *name;
	uint32_t deadline_s;                 /* 0: inherit */
	enum config_execution execution;     /* or INHERIT */
};

enum config_paginate_type {
	CONFIG_PAGINATE_NONE = 0,
	CONFIG_PAGINATE_CURSOR,
	CONFIG_PAGINATE_LINK,
	CONFIG_PAGINATE_OFFSET
};

struct config_paginate {
	enum config_paginate_type type;
	char *cursor_path_in_response;
	char *cursor_name_in_request;
	char *limit_name_in_request;
	char *response_path;
	char *link_rel_in_response_header;
	char *link_path_in_response_body;
	char *offset_name_in_request;
	char *offset_start_value;            /* as written (Nango: a number) */
	char *offset_calculation_method;     /* "per-page" | "by-response-size" */
};

/* The string fields of struct config_paginate by their providers.yaml
 * names, for code that walks them (the parser, the executor's wire format). */
#define CONFIG_PAGINATE_N_FIELDS 9
struct config_paginate_field {
	const char *name;
	size_t offset;
};
extern const struct config_paginate_field config_paginate_fields[CONFIG_PAGINATE_N_FIELDS];

/* The i-th string field of pg: its address, and its value. */
static inline char **config_paginate_field(struct config_paginate *pg, size_t i)
{
	return (char **)((char *)pg + config_paginate_fields[i].offset);
}

static inline const char *config_paginate_get(const struct config_paginate *pg, size_t i)
{
	return *(char *const *)((const char *)pg + config_paginate_fields[i].offset);
}

/* Frees pg's strings and zeroes it. NULL is fine. */
void config_paginate_clear(struct config_paginate *pg);

/* Copies src into dst (whose old contents are not freed): 0, or
 * STATUS_ENOMEM (dst then holds what was copied: config_paginate_clear). */
int config_paginate_copy(struct config_paginate *dst, const struct config_paginate *src);

/* "cursor", "link", "offset", "none"; and back (CONFIG_EINVALID for others). */
const char *config_paginate_type_name(enum config_paginate_type t);
int config_paginate_type_from_name(const char *s, enum config_paginate_type *out);

/* Header names the provider uses for rate limits. Nango writes `at` and
 * `after` as lists and `remaining` as a string; each accepts both here. */
struct config_retry {
	struct config_strlist at;            /* a reset time (epoch seconds) */
	struct config_strlist after;         /* seconds to wait */
	struct config_strlist remaining;     /* requests left */
	/* error_code: statuses retried besides network errors, 5xx and 429
	 * ("403", or "5xx" for 500-599). in_body: a response whose JSON body
	 * has, at the dotted path, a string matching the regular expression
	 * value (Nango writes it /like this/; POSIX extended here) is retried,
	 * waiting until the time its first group gives (strategy "at": a date
	 * or epoch seconds) or for that many seconds ("after"). */
	struct config_strlist error_code;
	char *in_body_path;
	char *in_body_value;
	char *in_body_strategy;
};

/* Copies src into dst (empty): 0, or CONFIG_ENOMEM (dst then holds what
 * was copied). config_retry_clear frees what r holds and empties it. */
int config_retry_copy(struct config_retry *dst, const struct config_retry *src);
void config_retry_clear(struct config_retry *r);

enum config_auth_mode {
	CONFIG_AUTH_OTHER = 0,               /* a mode evscript does not inject (see auth_mode_name) */
	CONFIG_AUTH_NONE,
	CONFIG_AUTH_OAUTH2,
	CONFIG_AUTH_OAUTH2_CC,
	CONFIG_AUTH_API_KEY,
	CONFIG_AUTH_BASIC,
	CONFIG_AUTH_APP,
	CONFIG_AUTH_OAUTH1,
	CONFIG_AUTH_JWT,
	CONFIG_AUTH_TWO_STEP
};

/* proxy.verification: the request Nango makes to check API_KEY and BASIC
 * credentials when a connection is imported. */
struct config_verification {
	bool present;
	char *method;                        /* as written; NULL: GET */
	struct config_strlist endpoints;     /* tried in order; the first 2xx passes */
	struct config_map headers;           /* sent with each attempt */
	char *base_url_override;             /* a template, or NULL */
	char *data;                          /* the body: `data` as JSON text, or NULL */
};

/* One provider, with its alias resolved (Nango's rule: the alias target's
 * top-level keys, overridden key by key by the entry's own; so an entry with
 * its own `proxy:` replaces the target's whole proxy block). */
struct config_provider {
	char *name;
	char *display_name;
	char *auth_mode_name;                /* as written, e.g. "OAUTH2"; NULL if none */
	enum config_auth_mode auth_mode;
	char *alias;                         /* the entry's alias, NULL if none */
	char *base_url;                      /* proxy.base_url template; NULL if none */
	struct config_map headers;           /* proxy.headers: name -> template */
	struct config_map query;             /* proxy.query: name -> template */
	struct config_retry retry;
	struct config_paginate paginate;
	struct config_verification verification;
	unsigned line, column;
	/* OAuth2 token endpoint (OAUTH2, OAUTH2_CC): token_url template,
	 * extra form fields for the first grant (token_params: used for the
	 * client-credentials grant) and for refresh_token grants
	 * (refresh_params), and how the client authenticates: "basic" (HTTP
	 * basic auth) or NULL (client_id and client_secret in the form). */
	char *token_url;
	char *refresh_url;                   /* where refresh grants go instead, when set */
	struct config_map token_params;
	struct config_map refresh_params;
	char *token_request_auth_method;
	char *authorization_method;          /* "header": the client in basic auth too; else the body */
	char *body_format;                   /* the grant's body: "form" (NULL), "json", "query" */
	char *signature_method;              /* OAUTH1: "HMAC-SHA1", "HMAC-SHA256", "PLAINTEXT" */
};

struct config_providers {
	char *file;
	struct config_provider *items;       /* file order */
	size_t n;
	size_t *by_name;                     /* private: indexes of items sorted by name */
};

/* The provider called name, or NULL. O(log n). */
const struct config_provider *config_provider_find(const struct config_providers *p,
						   const char *name);

/* One entry of the host file's oauth_clients: the OAuth client evscript
 * refreshes an integration's tokens with. client_secret comes from the file
 * or, with client_secret_env, from that environment variable at
 * config_load (wiped on free). */
struct config_oauth_client {
	char *integration;                   /* the integration id (provider config key) */
	char *client_id;
	char *client_secret;                 /* NULL until resolved when _env is set */
	char *client_secret_env;             /* the variable's name, or NULL */
	unsigned line, column;
};

/* How an integration's incoming webhooks are signed (webhook_secrets). */
enum config_webhook_scheme {
	CONFIG_WEBHOOK_GITHUB = 0,       /* X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body> */
	CONFIG_WEBHOOK_SLACK = 1,        /* X-Slack-Signature: v0=<hex HMAC of "v0:<ts>:<body>">,
	                                    X-Slack-Request-Timestamp within 5 minutes */
	CONFIG_WEBHOOK_HMAC_SHA256 = 2,  /* <header>: hex HMAC-SHA256 of the body, "sha256=" optional */
	CONFIG_WEBHOOK_SCHEMES = 3
};
/* "github", "slack", "hmac-sha256"; NULL for others. */
const char *config_webhook_scheme_name(enum config_webhook_scheme s);

struct config_webhook_secret {
	char *integration;
	enum config_webhook_scheme scheme;
	char *secret;                        /* wiped on free */
	char *header;                        /* hmac-sha256 only */
};

/* The host file (evscriptd --config FILE), with its defaults filled in. */
struct config_host {
	char *file;                          /* the config file as given */
	char *dir;                           /* its directory: base of relative paths */

	char *listen;                        /* "host:port" as given, default 127.0.0.1:3003 */
	char *listen_host;                   /* "127.0.0.1", "::1" (no brackets), "localhost" */
	uint16_t listen_port;                /* 0 means any free port */
	char *secret_key;                    /* NULL when unset; wiped on free */
	bool secret_key_from_env;
	char *store;                         /* as given, default "sqlite:./evscript.db" */
	enum config_store_kind store_kind;
	char *store_path;                    /* sqlite: resolved by config_load; else NULL */
	char *plugin_dir;                    /* default ./plugins.d */
	char *trusted_keys_dir;              /* default ./keys */
	struct config_strlist revoked_keys;  /* 16 hex digits, upper case (as minisign prints) */
	bool allow_downgrade;
	bool dev_accept_rebuilds;            /* same version, new bytes accepted; loopback listen only */
	char *providers;                     /* catalogue path, default ./providers.yaml */
	uint32_t deadline_s;                 /* default 300 */
	struct config_map environment;       /* variables scripts may read */
	char *webhook_base_url;              /* default http://<listen>/webhook, no trailing '/' */
	bool webhook_base_url_is_default;    /* so the daemon can rebuild it after binding port 0 */
	char *nango_yaml;                    /* path, or NULL when integrations are inline */

	/* Later parts (isolation, reload, operations). */
	enum config_execution execution;     /* default ISOLATED */
	uint32_t max_concurrency;            /* default 8 */
	uint32_t log_lines_max;              /* per execution, default 1000 */
	uint64_t log_bytes_max;              /* per execution, default 1 MiB */
	uint64_t memory_limit_mb;            /* executor address space, default 512; 0 = none */
	uint32_t cpu_limit_s;                /* executor CPU time, default 0 = deadline only */
	uint32_t drain_deadline_s;           /* old generations and shutdown, default 30 */
	char *host_id;                       /* NULL: the machine's host name */
	uint32_t host_timeout_s;             /* a silent host is dead after it, default 30 */
	char *sandbox_user;                  /* executors' user when root, default "nobody" */
	uint32_t sandbox_uid, sandbox_gid;   /* resolved by config_load */
	unsigned sandbox_user_line, sandbox_user_column; /* where it was set (0: the default) */
	uint32_t max_processes;              /* tasks per isolated execution, default 16 */
	bool core_dumps;                     /* the daemon may dump core, default false */
	bool log_plugin_lines;               /* mirror scripts' log lines to the daemon's log, default false */
	enum config_log_format log_format;   /* default text */
	uint32_t http_max_connections;       /* the API's connections at once, default 1024 */
	uint32_t http_max_connections_per_address; /* from one client address, default 256; 0: no cap */
	uint32_t http_header_timeout_s;      /* a request's headers must arrive within, default 10 */
	uint32_t http_body_timeout_s;        /* its body within, after the headers, default 60 */
	uint32_t action_tree_max_executions; /* one root and the actions it triggers, default 100 */
	struct config_script *scripts;
	size_t n_scripts;
	struct config_oauth_client *oauth_clients;
	size_t n_oauth_clients;
	bool proxy_base_url_override;        /* honour /proxy's Base-Url-Override, default true */
	char *webhook_forward_url;           /* NULL: deliveries are recorded, not forwarded */
	uint32_t webhook_max_attempts;       /* default 8 */
	uint32_t webhook_retry_base_ms;      /* first retry delay, doubled each time; default 1000 */
	struct config_webhook_secret *webhook_secrets;
	size_t n_webhook_secrets;

	struct config_nango nango;           /* inline or loaded from nango_yaml */
	struct config_providers *catalogue;  /* loaded by config_load; NULL after a pure parse */
};

/* ---- The host file's keys ---- */

/* One top-level key of the host file as docs/config.md's key table shows
 * it: the "type" and "default" cells as written there (a '|' unescaped).
 * The strings are static. */
struct config_host_key_doc {
	const char *name;
	const char *type;
	const char *default_value;       /* "" when the table leaves it empty */
};

/* How many top-level keys the host file has: the one table in host.c that
 * drives parsing, defaults and "did you mean"; a unit test holds
 * docs/config.md's key table to it. */
size_t config_host_key_count(void);

/* The i-th key, in docs/config.md's order; all NULL when i is out of range. */
struct config_host_key_doc config_host_key_doc(size_t i);

/* ---- Pure parsers (no I/O). filename is used in messages only. ---- */

/* Parses a host file. Paths stay as written (config_load resolves them);
 * secret_key is the file's. On success *out is owned by the caller
 * (config_host_free). On failure *out is NULL. */
int config_parse_host(const char *bytes, size_t len, const char *filename,
		      struct config_host **out, char *err, size_t errlen) CONFIG_WARN_UNUSED;

/* Parses a nango.yaml into *out (zeroed first; free with config_nango_clear). */
int config_parse_nango(const char *bytes, size_t len, const char *filename,
		       struct config_nango *out, char *err, size_t errlen) CONFIG_WARN_UNUSED;

/* Parses a providers.yaml catalogue and resolves aliases. On success *out
 * is owned by the caller (config_providers_free). */
int config_parse_providers(const char *bytes, size_t len, const char *filename,
			   struct config_providers **out, char *err, size_t errlen) CONFIG_WARN_UNUSED;

/* ---- The loader ---- */

/* Reads the host file at path, resolves relative paths against its
 * directory, takes EVSCRIPT_SECRET_KEY from envp (a NULL-terminated
 * "NAME=value" array such as environ; NULL for none) over the file's
 * secret_key, loads nango_yaml when set, loads the providers catalogue, and
 * checks that every integration's provider is in it. On success *out is
 * owned by the caller (config_host_free); on failure it is NULL. */
int config_load(const char *path, char *const *envp, struct config_host **out,
		char *err, size_t errlen) CONFIG_WARN_UNUSED;

/* Reads and parses a providers catalogue file. */
int config_load_providers(const char *path, struct config_providers **out,
			  char *err, size_t errlen) CONFIG_WARN_UNUSED;

/* Checks that every integration of nango names a provider in catalogue;
 * the error points at the integration's `provider:` (or its key). */
int config_check_providers(const struct config_nango *nango, const struct config_providers *catalogue,
			   char *err, size_t errlen) CONFIG_WARN_UNUSED;

/* Frees (NULL-safe); the secret key is wiped. */
void config_host_free(struct config_host *h);
void config_nango_clear(struct config_nango *n);
void config_providers_free(struct config_providers *p);

/* ---- Look-ups and overrides ---- */

const struct config_integration *config_integration_find(const struct config_host *h, const char *id);

/* The OAuth client configured for integration id, or NULL. */
const struct config_oauth_client *config_oauth_client_find(const struct config_host *h, const char *id);

/* The script's override entry, or NULL. */
const struct config_script *config_script_find(const struct config_host *h, const char *name);

/* The webhook signature settings of an integration, or NULL. */
const struct config_webhook_secret *config_webhook_secret_find(const struct config_host *h,
							       const char *integration);

/* The deadline for a script: its override, else the global deadline_s. */
uint32_t config_script_deadline(const struct config_host *h, const char *script);

/* The execution mode for a script run for integration (either may be NULL):
 * the script's override, else the integration's, else the global one. */
enum config_execution config_script_execution(const struct config_host *h,
					      const struct config_integration *integration,
					      const char *script);

/* ---- Templates ---- */

/* Returns the value of a variable ("apiKey", "connectionConfig.port", ...),
 * or NULL when it has none. The string must stay valid until
 * config_interpolate returns. */
typedef const char *(*config_lookup_fn)(void *ud, const char *name);

/* Expands ${name} in tmpl with lookup. A template may hold alternatives
 * separated by "||" (Nango's base_url fallback): the first whose variables
 * all have values is used. Names are [A-Za-z0-9_.-]+. Functions, as
 * Nango's catalogue uses them: ${base64(TEXT)} (TEXT expanded, then
 * standard base64), ${now} (ISO 8601 UTC), ${now:FORMAT} and
 * ${now+N:minutes|hours|days|seconds:FORMAT} (FORMAT in moment.js tokens:
 * YYYY MM DD HH mm ss X ddd MMM ZZ [literal]). The request-signing
 * functions (sha256Hex, sha256Base64, hmacSha1Hex, awsSigV4, ed25519Sign,
 * fingerprint) and anything else are refused (CONFIG_ETEMPLATE, the
 * message names the function). A variable
 * without value gives CONFIG_EUNDEFINED and a message naming it (from the
 * first alternative). On success *out is a malloc'd string owned by the
 * caller; on failure NULL. The result is capped at CONFIG_INTERPOLATE_MAX.
 * It may hold a credential: wipe it (sodium_memzero) before free(). Messages
 * name the template and the variable, never a value; they carry no
 * FILE:LINE:COL (a template is expanded at run time, away from its file). */
int config_interpolate(const char *tmpl, config_lookup_fn lookup, void *ud, char **out,
		       char *err, size_t errlen) CONFIG_WARN_UNUSED;

#endif
