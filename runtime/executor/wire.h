/*
 * wire.h - the messages between the daemon, the zygote and the executors
 * (internal to runtime/executor: executor.c is the daemon side, zygote.c
 * the zygote and the executor processes; the design they follow is at the
 * top of zygote.c).
 *
 * Both sockets are SOCK_STREAM. A message is a 4-byte length in host byte
 * order followed by that many bytes (at most WIRE_MSG_MAX): JSON text, or,
 * where said, raw bytes (an HTTP body). File descriptors ride with a
 * message as SCM_RIGHTS on its first bytes. Messages:
 *   daemon -> zygote   {"op":"config","prefork":N,"memory_limit_mb":N,"cpu_limit_s":N,
 *                       "uid":N,"gid":N,"max_processes":N}   (sandbox.h)
 *                      {"op":"load","i":N,"name":S,"version":S,"hash":HEX} + memfd
 *                      {"op":"ready"}
 *                      {"op":"run","id":N,"pid":P,"deadline_us":N}
 *                        (the daemon gave idle executor P the job of run N;
 *                        sent only once the run lasts: zygote.c)
 *                      {"op":"spawn","id":N,"deadline_us":N} + executor's end of
 *                        a new exec socket holding the job (no idle executor left)
 *                      {"op":"kill","id":N,"pid":P}       (drain: kill run N or executor P)
 *   zygote -> daemon   {"op":"sandbox","layers":N,"text":S}  (the reply to config)
 *                      {"op":"loaded","i":N,"code":N,"kind":N,"err":S}
 *                      {"op":"idle","pid":P} + the daemon's end of P's exec socket
 *                      {"op":"exit","id":N,"pid":P,"status":WSTATUS,"reason":R}
 *                        R: enum wire_reason; id 0 when the executor ended
 *                        before its "run" arrived or while idle
 *   daemon -> executor {"op":"job","plugin":N,"deadline_us":N,"event":{...}|"input":S}
 *   executor -> daemon {"op":"log","l":LEVEL,"m":S}        (no reply)
 *                      {"op":"set_error","m":S}            (no reply)
 *                      {"op":"call","fn":F,...}  -> {"rc":N,"v":S|OBJECT|null}
 *                        F: get_connection, get_metadata, set_metadata (j),
 *                           update_metadata (j), get_env (name), get_webhook_url,
 *                           trigger_action (name, input), paginate_settings
 *                           (v: the provider's paginate settings, paginate.h),
 *                           and for ABI 1.1: get_token, get_integration,
 *                           get_env_all, set_action_error (m, payload; no v),
 *                           trigger_action_for (cid, name, input)
 *                      {"op":"call","fn":"proxy","method":S|null,"endpoint":S,
 *                       "params":[[k,v],..],"headers":[[k,v],..],"retries":N,
 *                       "timeout_ms":N,"body_len":N[,"base_url_override":S]
 *                       [,"retry_on":[N,..]]} + (body_len > 0) a raw
 *                       message of the body
 *                        -> {"rc":N,"status":N,"headers":[[k,v],..],"body_len":N}
 *                           + (rc == 0) a raw message of the body
 *                      {"op":"result","rc":N,"output":S|null}
 * The ctl socket's EOF is the daemon's "stop": executor_zygote_main()
 * returns once the zygote's executors are gone.
 */
#ifndef EVS_EXECUTOR_WIRE_H
#define EVS_EXECUTOR_WIRE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define WIRE_MSG_MAX (17u << 20) /* a 16 MiB proxy body (PROXY_BODY_MAX) fits */
#define WIRE_FDS_MAX 4
#define WIRE_ZYGOTE_FD 3         /* the zygote's end of the ctl socket */
#define WIRE_PAIRS_MAX 1024      /* params or headers of one proxy message */
#define WIRE_RETRY_ON_MAX 32     /* statuses in a proxy message's retry_on (PROXY_RETRY_ON_MAX) */

/* How an executor ended, as the zygote reports it. */
enum wire_reason { REASON_EXITED = 0, REASON_DEADLINE = 1, REASON_KILLED = 2,
		   REASON_NOSTART = 3, REASON_LOST = 4 /* daemon side only */,
		   REASON_SANDBOX = 5 /* its sandbox could not be entered */ };

/* Sends one message (len bytes of buf) with nfds descriptors. 0 or a
 * status code (status.h): status_from_errno() of a failed send, of EMSGSIZE
 * past the caps. */
int wire_send_msg(int fd, const char *buf, size_t len, const int *fds, int nfds);
/* Receives one message: *buf (malloc'd, NUL-terminated, owned by the
 * caller), *len (may be NULL) and up to *nfds descriptors (extra ones are
 * closed; nfds may be NULL). STATUS_ECLOSED on a clean EOF, STATUS_EPROTO
 * on a cut message, STATUS_ETOOBIG past the cap, STATUS_ENOMEM, or
 * status_from_errno() of a failed read. */
int wire_recv_msg(int fd, char **buf, size_t *len, int *fds, int *nfds);
/* The same with a JSON object as the message; recv: *o owned by the caller,
 * STATUS_EPROTO when the message is not a JSON object. */
int wire_send_json(int fd, struct json_object *o, const int *fds, int nfds);
int wire_recv_json(int fd, struct json_object **o, int *fds, int *nfds);

/* A new message {"op": op} (NULL when out of memory; owned by the caller)
 * and members added to it. The adders take NULL, and wire_send_json() then
 * fails with STATUS_ENOMEM; a NULL string v is JSON null. */
struct json_object *wire_msg(const char *op);
void wire_msg_int(struct json_object *m, const char *k, int64_t v);
void wire_msg_str(struct json_object *m, const char *k, const char *v);

/* Members of a message: a string (NULL when absent or not a string, lent
 * from o), an integer (0 when absent), whether "op" is op. */
const char *wire_jstr(struct json_object *o, const char *k);
int64_t wire_jint(struct json_object *o, const char *k);
bool wire_op_is(struct json_object *o, const char *op);

#endif
