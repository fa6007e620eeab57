/*
 * evscript/sdk.h - the only header an evscript plugin includes.
 *
 * An evscript plugin is a shared object that the host daemon (evscriptd) runs
 * when a connection's lifecycle event occurs, or when another script or the
 * HTTP API triggers it as an action. This header is the whole contract
 * between a plugin and the host; its comments are the plugin author's manual.
 *
 * A minimal event script:
 *
 *     #include <evscript/sdk.h>
 *
 *     EVS_PLUGIN("hello", "1.0.0");
 *
 *     int on_event(const struct evs_host *host, struct evs_ctx *ctx,
 *                  const struct evs_event *event)
 *     {
 *         host->log(ctx, EVS_LOG_INFO, "%s for connection %s",
 *                   event->name, event->connection_id);
 *         return 0;
 *     }
 *
 * Build it as a shared object (`cc -shared -fPIC`, or pkg-config
 * evscript-sdk, or CMake's evscript_add_plugin()), sign it with a trusted
 * key (`evscript sign` or `minisign -S`) with the trusted comment
 * "plugin:hello version:1.0.0 abi:1", and copy hello.so and hello.so.minisig
 * into the host's plugin directory (write a new file, then rename() it into
 * place; never overwrite a loaded .so in place).
 *
 * The rules of the game
 * ---------------------
 * - A plugin exports its info (EVS_PLUGIN) and exactly one entry point:
 *   on_event() for an event script, run_action() for an action.
 * - Every host function takes the ctx the entry point was given. A ctx is
 *   valid only during that call; never keep it, never share it between
 *   threads.
 * - Strings the host lends to the plugin (event fields, JSON documents, env
 *   values, action outputs) stay valid until the entry point returns. Do not
 *   free them. Copy what you want to keep.
 * - Strings the plugin passes to the host are copied by the host before the
 *   host function returns.
 * - Host functions that can fail return 0 on success and a negative EVS_E*
 *   code on failure; evs_strerror() names each code.
 * - Scripts cannot save, update or delete records: the host offers no such
 *   function. They call external APIs, read connection data, keep metadata
 *   on the connection, log, and compose actions.
 * - By default each execution runs in its own process with a deadline, an
 *   address-space limit and a CPU-time limit. A crash, abort(), exit() or
 *   endless loop ends that execution only (status crashed or timed_out). In
 *   the opt-in in-process mode none of that protection exists.
 * - That process is a sandbox: everything a script does outside itself goes
 *   through this vtable. It can compute, allocate, read the clock, sleep,
 *   start threads and fork (up to the host's max_processes tasks in all);
 *   it cannot open files, create sockets, exec programs or see any process
 *   but its own (it is pid 1 of its own PID namespace; such calls fail,
 *   mostly with EPERM), and getenv() sees none of the daemon's variables:
 *   use get_env(). Whatever it starts is killed when the execution ends.
 * - C++ works as is: EVS_PLUGIN and the entry points have C linkage (define
 *   on_event/run_action at global scope, after including this header), and
 *   no exception may leave an entry point or a callback.
 *
 * ABI policy
 * ----------
 * EVS_ABI_MAJOR changes only when an existing structure or signature
 * changes; the host refuses plugins built for another major. New host
 * functions are only ever appended to struct evs_host, which raises
 * EVS_ABI_MINOR; a plugin built against a newer header that wants a newer
 * function tests for it with EVS_HOST_HAS() first. Structures passed in
 * either direction start with their size, so both sides can tell which
 * fields the other knows.
 */
#ifndef EVSCRIPT_SDK_H
#define EVSCRIPT_SDK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EVS_ABI_MAJOR 1
#define EVS_ABI_MINOR 1

/* Marks a symbol as exported even when building with -fvisibility=hidden. */
#define EVS_EXPORT __attribute__((visibility("default")))

#if defined(__GNUC__) || defined(__clang__)
#define EVS_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define EVS_PRINTF(fmt, args)
#endif

/* ---------------------------------------------------------------------------
 * Result codes of host functions. 0 is success; everything else is negative.
 */
enum evs_result {
	EVS_OK = 0,
	EVS_EINVAL = -1,       /* an argument is missing or malformed */
	EVS_ENOMEM = -2,       /* out of memory, or a size cap was reached */
	EVS_ENOTFOUND = -3,    /* no such connection, variable, action, ... */
	EVS_ENETWORK = -4,     /* the request did not get an HTTP response */
	EVS_ETIMEDOUT = -5,    /* the request or the execution ran out of time */
	EVS_EDEPTH = -6,       /* actions nested deeper than the host allows */
	EVS_EFAILED = -7,      /* a triggered action failed (its message is logged) */
	EVS_EDENIED = -8,      /* not allowed, e.g. a URL outside the provider's base */
	EVS_EUNSUPPORTED = -9, /* the host does not implement this */
	EVS_EHOST = -10        /* an internal host error */
};

/* A static English description of an EVS_E* code. */
static inline const char *evs_strerror(int code)
{
	switch (code) {
	case EVS_OK: return "success";
	case EVS_EINVAL: return "invalid argument";
	case EVS_ENOMEM: return "out of memory or size limit reached";
	case EVS_ENOTFOUND: return "not found";
	case EVS_ENETWORK: return "network error";
	case EVS_ETIMEDOUT: return "timed out";
	case EVS_EDEPTH: return "actions nested too deeply";
	case EVS_EFAILED: return "action failed";
	case EVS_EDENIED: return "not allowed";
	case EVS_EUNSUPPORTED: return "not supported by this host";
	case EVS_EHOST: return "internal host error";
	default: return "unknown error";
	}
}

/* ---------------------------------------------------------------------------
 * Plugin info: EVS_PLUGIN(name, version) at file scope, exactly once.
 *
 * name must match the file name (name.so) and the signed trusted comment's
 * "plugin:" value; version is a semantic version X.Y.Z and must match the
 * trusted comment's "version:". The host refuses a plugin whose info
 * disagrees with its signature.
 */
struct evs_plugin_info {
	uint32_t size;      /* sizeof(struct evs_plugin_info) */
	uint16_t abi_major; /* EVS_ABI_MAJOR the plugin was built with */
	uint16_t abi_minor; /* EVS_ABI_MINOR the plugin was built with */
	const char *name;
	const char *version;
};

#define EVS_PLUGIN_INFO_SYMBOL "evs_plugin_info"

/* In C++ a namespace-scope const has internal linkage: the info needs C
 * linkage to be exported (the entry points get it from their declarations
 * below, inside extern "C"). */
#ifdef __cplusplus
#define EVS_C_LINKAGE extern "C"
#else
#define EVS_C_LINKAGE
#endif

#define EVS_PLUGIN(name_, version_)                                          \
	EVS_C_LINKAGE EVS_EXPORT const struct evs_plugin_info evs_plugin_info = { \
		sizeof(struct evs_plugin_info), EVS_ABI_MAJOR, EVS_ABI_MINOR, \
		(name_), (version_)}

/* ---------------------------------------------------------------------------
 * Declared subscriptions: a script that says itself which events it runs on,
 * with no nango.yaml entry (after Nango's createOnEvent({ event, ... })).
 *
 *     EVS_PLUGIN("slack-welcome", "1.2.0");
 *     EVS_ON_EVENT("slack", "post-connection-creation");
 *     EVS_ON_EVENT("slack-eu", "post-connection-creation");  // any number of times
 *
 * An action declares the integrations that offer it the same way:
 *
 *     EVS_PLUGIN("create-issue", "1.0.0");
 *     EVS_ACTION_FOR("github");
 *
 * Each declaration is a fixed-size record in the ELF section
 * ".evscript.subscriptions" of the plugin (plain data: no pointer, no
 * code). The host reads that section from the verified bytes, before the
 * plugin is loaded and without running any of it. The integration must be
 * one the host's configuration has and the event one of the three below;
 * otherwise the host refuses the plugin (reason_code "bad_subscription" in
 * GET /plugins). nango.yaml entries still work and add to the declared ones:
 * for one integration and event the host runs nango.yaml's scripts first,
 * in its order, then the declared ones in the order of their plugin names;
 * a script named by both runs once. EVS_ON_EVENT in an action, or
 * EVS_ACTION_FOR in an event script, is refused too. Names are at most
 * EVS_SUBSCRIPTION_NAME_MAX - 1 bytes (a longer literal does not compile).
 * Do not link plugins with --gc-sections: it may drop the section.
 */
#define EVS_SUBSCRIPTION_NAME_MAX 128
#define EVS_SUBSCRIPTIONS_SECTION ".evscript.subscriptions"

enum evs_subscription_kind {
	EVS_SUBSCRIBE_EVENT = 1,   /* on_event() runs on `event` for `integration` */
	EVS_SUBSCRIBE_ACTION = 2   /* run_action() is offered by `integration` */
};

struct evs_subscription {
	uint32_t size;                                /* sizeof(struct evs_subscription) */
	uint32_t kind;                                /* enum evs_subscription_kind */
	char integration[EVS_SUBSCRIPTION_NAME_MAX];  /* the integration id (nango.yaml's key) */
	char event[EVS_SUBSCRIPTION_NAME_MAX];        /* "post-connection-creation", ...; "" for actions */
};

#define EVS_CAT2_(a, b) a##b
#define EVS_CAT_(a, b) EVS_CAT2_(a, b)
#if defined(__has_attribute)
#if __has_attribute(retain)
#define EVS_RETAIN_ __attribute__((retain))
#endif
#endif
#ifndef EVS_RETAIN_
#define EVS_RETAIN_
#endif
#define EVS_SUBSCRIPTION_(kind_, integration_, event_)                                  \
	__attribute__((used, section(EVS_SUBSCRIPTIONS_SECTION), aligned(8))) EVS_RETAIN_ \
	static const struct evs_subscription EVS_CAT_(evs_subscription_, __COUNTER__) = { \
		sizeof(struct evs_subscription), (kind_), integration_, event_}

#define EVS_ON_EVENT(integration_, event_) EVS_SUBSCRIPTION_(EVS_SUBSCRIBE_EVENT, integration_, event_)
#define EVS_ACTION_FOR(integration_) EVS_SUBSCRIPTION_(EVS_SUBSCRIBE_ACTION, integration_, "")

/* ---------------------------------------------------------------------------
 * Events.
 */
enum evs_event_type {
	EVS_EVENT_POST_CONNECTION_CREATION = 1,
	EVS_EVENT_PRE_CONNECTION_DELETION = 2,
	EVS_EVENT_VALIDATE_CONNECTION = 3
};

struct evs_event {
	uint32_t size;                   /* sizeof(struct evs_event) as the host knows it */
	uint32_t type;                   /* enum evs_event_type */
	const char *name;                /* "post-connection-creation", ... */
	const char *connection_id;
	const char *provider_config_key; /* the integration id in nango.yaml */
	int64_t event_id;                /* the occurrence; the same for every script it runs */
	int64_t execution_id;            /* this run of this script */
};

/* The execution a host function acts for. Opaque; owned by the host. */
struct evs_ctx;

enum evs_log_level {
	EVS_LOG_DEBUG = 0,
	EVS_LOG_INFO = 1,
	EVS_LOG_WARN = 2,
	EVS_LOG_ERROR = 3
};

/* ---------------------------------------------------------------------------
 * Requests to the provider's API (host->proxy).
 */
struct evs_header {
	const char *name;
	const char *value;
};

struct evs_request {
	uint32_t size;                  /* sizeof(struct evs_request) */
	const char *method;             /* "GET", "POST", ...; NULL means GET */
	const char *endpoint;           /* "/user" (relative to the provider's base
	                                   URL), or an absolute URL under that base */
	const struct evs_header *params; /* query parameters, URL-encoded by the host */
	size_t n_params;
	const struct evs_header *headers; /* extra request headers */
	size_t n_headers;
	const void *body;               /* may be NULL */
	size_t body_len;
	uint32_t retries;               /* extra attempts on network errors, 5xx and
	                                   429; 0 (the default) means none */
	uint32_t timeout_ms;            /* per attempt; 0 means the host default
	                                   (30 s); never past the execution's deadline */

	/* ABI 1.1 (Nango's baseUrlOverride and retryOn). A host that knows
	 * them reads them only when size covers them, so zero them (or use
	 * sizeof of this header's struct) and they are ignored by older hosts. */
	const char *base_url_override;  /* NULL: the provider's base URL. Otherwise
	                                   "https://host[:port][/path]" replacing it for
	                                   this request. It must keep the provider's
	                                   scheme and be the same host or a host of the
	                                   same parent domain (api.example.com allows
	                                   uploads.example.com; an IP address or a
	                                   one-label host only itself): the connection's
	                                   credentials are sent there. Else EVS_EDENIED. */
	const int *retry_on;            /* HTTP statuses retried besides 5xx and 429
	                                   (e.g. 404 for an eventually consistent API),
	                                   only when retries > 0 */
	size_t n_retry_on;              /* at most 32 */
};

struct evs_response {
	uint32_t size;                 /* sizeof(struct evs_response) */
	int status;                    /* HTTP status of the final attempt */
	const struct evs_header *headers; /* response headers, in order received */
	size_t n_headers;
	const char *body;              /* NUL-terminated for convenience */
	size_t body_len;               /* length without the terminating NUL */
};

/* Pagination (host->paginate). Unset fields come from the provider's
 * `proxy.paginate` entry in the providers catalogue. */
struct evs_paginate_options {
	uint32_t size;               /* sizeof(struct evs_paginate_options) */
	const char *type;            /* "cursor", "link" or "offset" */
	const char *response_path;   /* dotted path of the records array in the body */
	uint32_t limit;              /* page size to ask for (needs the provider's
	                                limit_name_in_request); 0: none added */
	uint32_t max_pages;          /* stop after this many pages; 0: no limit */
};

/* Called once per non-empty page with that page's records as a JSON array
 * (lent for the call). Return 0 to go on, non-zero to stop paginating. */
typedef int (*evs_page_fn)(void *user, const char *records_json, size_t n_records);

/* ---------------------------------------------------------------------------
 * The host vtable. Entries are only ever appended.
 */
struct evs_host {
	uint32_t size;      /* sizeof(struct evs_host) as the host knows it */
	uint16_t abi_major;
	uint16_t abi_minor;

	/* Appends a line to the execution's log (printf-like). A line longer
	 * than 4096 bytes is cut. The host caps the lines and bytes of one
	 * execution (log_lines_max, log_bytes_max); lines past the cap are
	 * dropped and counted. Never fails. */
	void (*log)(struct evs_ctx *ctx, enum evs_log_level level, const char *fmt, ...)
		EVS_PRINTF(3, 4);

	/* Sets the message the execution reports when on_event/run_action
	 * returns non-zero (the last call wins). For validate-connection it is
	 * the message the API client sees. Never fails. */
	void (*set_error)(struct evs_ctx *ctx, const char *fmt, ...) EVS_PRINTF(2, 3);

	/* The connection as JSON, credentials included:
	 * {"connection_id", "provider_config_key", "provider",
	 *  "credentials": {"type": "OAUTH2"|"OAUTH2_CC"|"OAUTH1"|"TBA"|
	 *                  "API_KEY"|"BASIC"|"NONE", ...},
	 *  "connection_config": {...}, "metadata": {...},
	 *  "created_at", "updated_at"}.
	 * An OAUTH2 token that expires within 5 minutes is refreshed first,
	 * and an OAUTH2_CC token fetched (client-credentials grant), so the
	 * credentials are fresh; when that fails the call returns EVS_EFAILED
	 * and the reason is in the execution's log. *json is lent.
	 * Credentials are secrets: never log them. */
	int (*get_connection)(struct evs_ctx *ctx, const char **json);

	/* The connection's metadata as a JSON object; *json is lent. During
	 * validate-connection, the metadata functions act on the candidate
	 * connection, which is stored with them only if validation passes. */
	int (*get_metadata)(struct evs_ctx *ctx, const char **json);

	/* Replaces the connection's metadata with a JSON object. Written to
	 * the store at once. EVS_EINVAL when json is not an object, EVS_ENOMEM
	 * over 1 MiB, EVS_ENOTFOUND when the connection is gone. */
	int (*set_metadata)(struct evs_ctx *ctx, const char *json);

	/* Merges a JSON object into the metadata (top-level keys replace). */
	int (*update_metadata)(struct evs_ctx *ctx, const char *json);

	/* Sends a request to the provider's API with the connection's
	 * credentials injected by the host, following the provider's catalogue
	 * entry (base URL, auth headers and query, retry rules): a bearer
	 * token for the token modes (refreshed first when it expires within 5
	 * minutes), basic auth, the provider's header and query templates (a
	 * template whose ${connectionConfig.X} has no value is left out), an
	 * OAuth 1.0a signature (OAUTH1, TBA) or an AWS SigV4 one, per attempt.
	 * A request header named like one of the provider's headers replaces
	 * it (as in Nango); a query parameter named like one of the
	 * provider's is dropped. Returns 0 when an HTTP response arrived,
	 * whatever its status; *resp is then owned by the plugin and released
	 * with free_response(). On failure *resp is NULL and the code is
	 * EVS_EDENIED (a URL outside the provider's base URL), EVS_EINVAL (a
	 * malformed request, or a template naming a credential the connection
	 * lacks), EVS_EFAILED (the token needed a refresh and it failed: the
	 * reason is in the log), EVS_ENETWORK, EVS_ETIMEDOUT or EVS_ENOMEM (a
	 * response body over 16 MiB). Every attempt is logged (method, URL
	 * without query string or credentials, status, duration). */
	int (*proxy)(struct evs_ctx *ctx, const struct evs_request *req,
		     struct evs_response **resp);

	/* Releases a response from proxy(). NULL is fine. */
	void (*free_response)(struct evs_ctx *ctx, struct evs_response *resp);

	/* Sends req (a GET by default) page after page in the provider's
	 * pagination style and calls on_page for each page's records. opts may
	 * be NULL. Returns 0 when the last page was read, max_pages was
	 * reached or on_page stopped it; EVS_EFAILED when a page came back with
	 * a non-2xx status or a body that is not JSON, or its records are not
	 * an array; EVS_EINVAL when neither opts nor the provider give a usable
	 * pagination style; proxy()'s errors otherwise. */
	int (*paginate)(struct evs_ctx *ctx, const struct evs_request *req,
			const struct evs_paginate_options *opts, evs_page_fn on_page,
			void *user);

	/* The value of an environment variable the host configuration exposes
	 * to scripts (`environment:`); *value is lent. EVS_ENOTFOUND for any
	 * other name: scripts cannot read the daemon's own environment. */
	int (*get_env)(struct evs_ctx *ctx, const char *name, const char **value);

	/* The URL where the provider should send webhooks for this
	 * integration: the host's webhook_base_url, '/', the integration id.
	 * *url is lent. */
	int (*get_webhook_url)(struct evs_ctx *ctx, const char **url);

	/* Runs the action `name` (another plugin's run_action) for the same
	 * connection with input_json (a JSON value, or NULL for null) and
	 * returns its JSON output in *output_json (lent; "null" when the
	 * action produced none). The run is recorded as an execution of its
	 * own linked to this one. EVS_EINVAL when name or input_json is
	 * malformed, EVS_EFAILED when the action failed, crashed or timed out,
	 * EVS_ENOTFOUND when the action is not listed under this integration's
	 * actions or not loaded, EVS_EDEPTH when actions nest more than 8
	 * deep. */
	int (*trigger_action)(struct evs_ctx *ctx, const char *name, const char *input_json,
			      const char **output_json);

	/* ---- ABI 1.1: test with EVS_HOST_HAS(host, get_token) first. ---- */

	/* The connection's current access token (Nango's getToken): the
	 * OAUTH2 access_token, refreshed first when the host can refresh it
	 * and it has expired, or the API_KEY apiKey. *token is lent; it is a
	 * secret: never log it. EVS_ENOTFOUND for BASIC and NONE credentials
	 * (read them with get_connection) or when the connection is gone. */
	int (*get_token)(struct evs_ctx *ctx, const char **token);

	/* The integration of this execution as a JSON object:
	 * {"unique_key","provider","display_name"} (Nango's getIntegration;
	 * display_name from the providers catalogue). *json is lent. */
	int (*get_integration)(struct evs_ctx *ctx, const char **json);

	/* Every environment variable get_env() can read, as one JSON object
	 * {"NAME":"value",...} (Nango's getEnvironmentVariables). *json is lent. */
	int (*get_env_all)(struct evs_ctx *ctx, const char **json);

	/* An action's structured failure (Nango's ActionError): message, and
	 * payload_json (a JSON value, NULL for null) that the API returns as
	 * the "payload" of its 500 action_script_failure body (and of
	 * GET /action/{id}); message is also the execution's error. Takes
	 * effect when run_action then returns non-zero. EVS_EINVAL when
	 * payload_json is not JSON or over 64 KiB, or message is NULL;
	 * EVS_EUNSUPPORTED in an event script. */
	int (*set_action_error)(struct evs_ctx *ctx, const char *message, const char *payload_json);

	/* trigger_action() for another connection of the same integration
	 * (Nango's triggerAction(integration, connectionId, ...)): the same
	 * rules, results and errors, plus EVS_ENOTFOUND when connection_id is
	 * not a connection of this integration. */
	int (*trigger_action_for)(struct evs_ctx *ctx, const char *connection_id, const char *name,
				  const char *input_json, const char **output_json);
};

/* True when `host` provides the entry `member` (a function pointer). */
#define EVS_HOST_HAS(host, member)                                          \
	((host)->size >= offsetof(struct evs_host, member) + sizeof((host)->member) && \
	 (host)->member != NULL)

/* ---------------------------------------------------------------------------
 * Entry points. Define exactly one of them; the declarations below export
 * it even under -fvisibility=hidden.
 */

/* An event script. Return 0 on success; non-zero marks the execution failed
 * (call host->set_error() first to say why). For validate-connection a
 * failure refuses the connection. */
EVS_EXPORT int on_event(const struct evs_host *host, struct evs_ctx *ctx,
			const struct evs_event *event);

/* An action. input_json is the caller's input (lent; "null" when none).
 * On success the action may set *output_json to a NUL-terminated JSON text
 * allocated with malloc(); the host takes ownership and free()s it. Leaving
 * it NULL means a null output. Return 0 on success, non-zero on failure
 * (the host frees any *output_json either way). */
EVS_EXPORT int run_action(const struct evs_host *host, struct evs_ctx *ctx,
			  const char *input_json, char **output_json);

#define EVS_ON_EVENT_SYMBOL "on_event"
#define EVS_RUN_ACTION_SYMBOL "run_action"

#ifdef __cplusplus
}
#endif

#endif /* EVSCRIPT_SDK_H */
