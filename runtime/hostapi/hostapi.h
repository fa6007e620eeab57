/*
 * hostapi.h - what is behind struct evs_host, on the daemon's side.
 *
 * One struct hostapi_exec per execution lives in the daemon (main process)
 * for as long as the execution runs. Every host function a plugin calls ends
 * up here, whichever way the plugin runs:
 *   - in-process: the vtable from hostapi_inproc_vtable() calls these
 *     functions directly on the worker thread;
 *   - isolated: the executor process's vtable sends each call over its
 *     socket, and the daemon thread that waits for that execution calls the
 *     same functions (runtime/executor).
 * proxy() too: the HTTP request is always made in the daemon (proxy.c),
 * with a proxy_target resolved here from the provider catalogue and the
 * credentials, so credentials never enter an executor process. paginate()'s
 * loop runs where the plugin runs (its page callback is plugin code), each
 * page being one proxy() (paginate.h).
 *
 * The executor never touches the store; these functions do.
 */
#ifndef EVS_HOSTAPI_H
#define EVS_HOSTAPI_H

#include <evscript/sdk.h>
#include <json-c/json.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "proxy.h"
#include "store.h"

struct hostapi_exec;

/* dispatch supplies this so that trigger_action can run another plugin's
 * run_action (it sits above hostapi in the data flow). It runs the action
 * synchronously as a child execution of parent (depth + 1) and returns 0
 * with *output_json (malloc'd, owned by the caller; "null" when none) or an
 * EVS_E* code (EVS_ENOTFOUND, EVS_EDEPTH, EVS_EFAILED ...) with err set. */
typedef int (*hostapi_trigger_fn)(void *user, struct hostapi_exec *parent, const char *action,
				  const char *input_json, char **output_json, char *err,
				  size_t errlen);

/* The same for another connection of the parent's integration
 * (trigger_action_for): EVS_ENOTFOUND when connection_id is not one. */
typedef int (*hostapi_trigger_for_fn)(void *user, struct hostapi_exec *parent,
				      const char *connection_id, const char *action,
				      const char *input_json, char **output_json, char *err,
				      size_t errlen);

/* What one execution is, and what it may reach. Everything is borrowed and
 * must outlive the hostapi_exec. */
/* An action tree: a root execution (an event's script, or an action the
 * API triggered) and every action it triggers, directly or not. Its root's
 * deadline is the whole tree's: a nested action gets what is left of its
 * caller's time, so no descendant runs on after the root ends, and it starts
 * at most max_executions executions, the root included. trigger_action() is
 * synchronous (the caller waits), so the tree lives on its root's run, which
 * outlasts every descendant: its members only borrow it. */
struct hostapi_tree {
	int64_t root_execution_id;
	int64_t deadline_us;             /* util_mono_us(): the root's deadline */
	uint32_t max_executions;         /* action_tree_max_executions */
	atomic_uint executions;          /* started so far, the root included */
};

struct hostapi_exec_info {
	struct store *store;
	const struct config_host *config;
	const struct config_integration *integration;
	const struct config_provider *provider;  /* may be NULL (proxy then fails) */
	int64_t execution_id;
	int64_t event_id;                         /* 0 for actions */
	int event_type;                           /* enum evs_event_type, 0 for actions */
	const char *script;
	const char *connection_id;
	const char *provider_config_key;
	int depth;                                /* 0 for a script; +1 per nested action */
	int64_t deadline_us;                      /* util_mono_us() deadline of the execution */
	/* validate-connection runs before the connection is stored: then this is
	 * the candidate connection as JSON (the get_connection() shape), and the
	 * metadata functions act on the candidate (the caller stores what the
	 * script left there with the connection when validation passes). */
	const char *candidate_json;
	hostapi_trigger_fn trigger;
	void *trigger_user;
	hostapi_trigger_for_fn trigger_for;       /* NULL: trigger_action_for is unsupported;
	                                             called with trigger_user */
	struct hostapi_tree *tree;                /* the tree it is in (borrowed) */
};

/* Caps of one execution's log (from the config: log_lines_max, log_bytes_max). */
#define HOSTAPI_LOG_LINE_MAX 4096   /* bytes of one line; longer lines are cut */
#define HOSTAPI_ERROR_MAX 4096
#define HOSTAPI_LENT_MAX 4096       /* strings lent to one in-process call */

/* Creates the daemon-side state of one execution. *out owned by the caller
 * (hostapi_exec_free). info is copied shallowly (its strings are borrowed). */
int hostapi_exec_new(const struct hostapi_exec_info *info, struct hostapi_exec **out);

/* Hands the buffered log lines not written yet, and the dropped lines not
 * counted in the store yet, to the caller, who writes them (e.g. with the
 * execution's end: store_execution_complete). *lines (NULL when *n is 0)
 * and its messages are malloc'd and owned by the caller: free them with
 * hostapi_logs_free. Lines logged after it are buffered anew. x NULL:
 * nothing. */
void hostapi_exec_take_logs(struct hostapi_exec *x, struct store_log_line_input **lines,
			    size_t *n, int64_t *dropped);

/* Frees what hostapi_exec_take_logs handed out. NULL is fine. */
void hostapi_logs_free(struct store_log_line_input *lines, size_t n);

/* Writes the buffered log lines and the dropped count to the store, then
 * frees. NULL is fine. */
void hostapi_exec_free(struct hostapi_exec *x);

const struct hostapi_exec_info *hostapi_exec_info(const struct hostapi_exec *x);

/* The host functions, daemon side. Return EVS_OK or an EVS_E* code. Strings
 * returned through char ** are malloc'd and owned by the caller. */
void hostapi_log(struct hostapi_exec *x, int level, const char *msg);
void hostapi_set_error(struct hostapi_exec *x, const char *msg);
int hostapi_get_connection(struct hostapi_exec *x, char **json);
int hostapi_get_metadata(struct hostapi_exec *x, char **json);
int hostapi_set_metadata(struct hostapi_exec *x, const char *json);
int hostapi_update_metadata(struct hostapi_exec *x, const char *json);
int hostapi_get_env(struct hostapi_exec *x, const char *name, char **value);
int hostapi_get_webhook_url(struct hostapi_exec *x, char **url);
int hostapi_trigger_action(struct hostapi_exec *x, const char *name, const char *input_json,
			   char **output_json);
/* ABI 1.1 (sdk.h says what each does). */
int hostapi_trigger_action_for(struct hostapi_exec *x, const char *connection_id, const char *name,
			       const char *input_json, char **output_json);
int hostapi_get_integration(struct hostapi_exec *x, char **json);
int hostapi_get_env_all(struct hostapi_exec *x, char **json);
int hostapi_get_token(struct hostapi_exec *x, char **token);
/* An action's structured failure: message (also the execution's error, as
 * set_error) and payload_json (a JSON value; NULL: null), kept for the
 * API's 500 body. EVS_EUNSUPPORTED outside an action. */
#define HOSTAPI_PAYLOAD_MAX (64u << 10)
int hostapi_set_action_error(struct hostapi_exec *x, const char *message, const char *payload_json);
/* The payload set with set_action_error (JSON text), or NULL. Borrowed. */
const char *hostapi_action_error_payload(const struct hostapi_exec *x);

/* token.c: the connection's current access token from its stored
 * credentials: OAUTH2 access_token, API_KEY apiKey (*token malloc'd, a
 * secret: hostapi_secret_free). EVS_ENOTFOUND for other credential types
 * or a connection that is gone. The one place where an expired OAUTH2
 * token is to be refreshed before it is handed out: everything that needs
 * the token (get_token) asks here. */
int hostapi_current_access_token(struct hostapi_exec *x, char **token);

/* Resolves the proxy target for this execution's connection: base URL and
 * auth headers/query interpolated from the provider and the credentials
 * (see proxy.h). *out owned by the caller (proxy_target_free). EVS_ENOTFOUND
 * without a provider or connection; EVS_EINVAL when a template names a value
 * the connection lacks (the error is logged to the execution). */
int hostapi_proxy_target(struct hostapi_exec *x, struct proxy_target **out);

/* The message set with set_error (NULL when none), the candidate's metadata
 * after a validate-connection run (NULL when untouched), and the number of
 * log lines dropped under the caps. Borrowed from x. */
const char *hostapi_error(const struct hostapi_exec *x);
const char *hostapi_candidate_metadata(const struct hostapi_exec *x);
int64_t hostapi_logs_dropped(const struct hostapi_exec *x);

/* Frees a string that may hold a secret (wiped first). NULL is fine. */
void hostapi_secret_free(char *s);
/* Drops the caller's reference to a JSON tree that holds secrets (a
 * connection with its credentials): json-c's cached serialization of it
 * (made with JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, as
 * everywhere here) and every string in it are wiped first. Only for trees
 * nothing else holds a reference to. NULL is fine. */
void hostapi_json_put_secret(struct json_object *o);

/* The in-process vtable: ctx is a struct hostapi_inproc_ctx that the runner
 * sets up around each call. */
struct hostapi_inproc_ctx {
	struct hostapi_exec *exec;
	struct proxy_target *target; /* resolved on the first proxy/paginate call */
	struct proxy_session *proxy; /* lazily created on the first proxy/paginate call */
	/* Strings lent to the plugin, freed when the execution ends. */
	char **lent;
	size_t n_lent, cap_lent;
};
const struct evs_host *hostapi_inproc_vtable(void);
/* Frees what the ctx lent to the plugin, its proxy session and target, and
 * zeroes the lending fields (exec is kept). */
void hostapi_inproc_ctx_clear(struct hostapi_inproc_ctx *c);

#endif
