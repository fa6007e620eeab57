/*
 * store_schema.h - the schema's migration steps, written once for both back
 * ends. Step i brings the schema from version i to i+1 (STORE_SCHEMA_STEP1
 * is 0 -> 1). Append only; never edit a step that has shipped: a database
 * at any earlier version must still migrate to the same schema.
 *
 * The texts are SQL with the few type names the two dialects spell
 * differently left as macros, which the back end that runs them defines
 * before it uses the steps (macros expand where they are used, so the
 * order of the #include does not matter):
 *
 *   SCHEMA_ROWID      the connections' id, assigned by the database
 *   SCHEMA_SERIAL     an id assigned by the database, never reused
 *   SCHEMA_I64        a 64-bit integer (milliseconds, ids, counts)
 *   SCHEMA_BLOB       bytes
 *   SCHEMA_FLAG(col)  a boolean column, false by default
 *   SCHEMA_NOROWID    what ends a table keyed by its primary key alone
 *
 * SQLite's spelling (store_sqlite.c) is the one the steps had when they
 * were written for it; store_pg.c appends what only PostgreSQL has (the
 * indexes and table several hosts need, the notify trigger) to the steps
 * that introduced it.
 */
#ifndef EVS_STORE_SCHEMA_H
#define EVS_STORE_SCHEMA_H

/* 0 -> 1: the initial schema. Statuses are stored as words so that an
 * operator reading the database sees what the API shows. */
#define STORE_SCHEMA_STEP1                                                             \
	"CREATE TABLE connections ("                                                   \
	"  id " SCHEMA_ROWID ","                                                       \
	"  connection_id TEXT NOT NULL,"                                               \
	"  provider_config_key TEXT NOT NULL,"                                         \
	"  provider TEXT NOT NULL,"                                                    \
	"  credentials " SCHEMA_BLOB " NOT NULL,"                                      \
	"  credentials_encrypted " SCHEMA_FLAG("credentials_encrypted") ","            \
	"  connection_config TEXT NOT NULL DEFAULT '{}',"                              \
	"  metadata TEXT NOT NULL DEFAULT '{}',"                                       \
	"  created_at " SCHEMA_I64 " NOT NULL,"                                        \
	"  updated_at " SCHEMA_I64 " NOT NULL,"                                        \
	"  deleting " SCHEMA_FLAG("deleting") ","                                      \
	"  UNIQUE (provider_config_key, connection_id));"                              \
	"CREATE INDEX connections_by_id ON connections (connection_id);"               \
	"CREATE TABLE events ("                                                        \
	"  id " SCHEMA_SERIAL ","                                                      \
	"  type TEXT NOT NULL CHECK (type IN ('post-connection-creation',"             \
	"    'pre-connection-deletion', 'validate-connection')),"                      \
	"  connection_id TEXT NOT NULL,"                                               \
	"  provider_config_key TEXT NOT NULL,"                                         \
	"  script TEXT,"                                                               \
	"  retry_of " SCHEMA_I64 ","                                                   \
	"  status TEXT NOT NULL CHECK (status IN ('pending', 'claimed', 'done', 'interrupted'))," \
	"  generation " SCHEMA_I64 ","                                                 \
	"  created_at " SCHEMA_I64 " NOT NULL,"                                        \
	"  claimed_at " SCHEMA_I64 ","                                                 \
	"  finished_at " SCHEMA_I64 ");"                                               \
	"CREATE INDEX events_pending ON events (id) WHERE status = 'pending';"         \
	"CREATE INDEX events_claimed ON events (id) WHERE status = 'claimed';"         \
	"CREATE TABLE executions ("                                                    \
	"  id " SCHEMA_SERIAL ","                                                      \
	"  event_id " SCHEMA_I64 " REFERENCES events (id),"                            \
	"  parent_execution_id " SCHEMA_I64 " REFERENCES executions (id),"             \
	"  kind TEXT NOT NULL CHECK (kind IN ('event', 'action')),"                    \
	"  script TEXT NOT NULL,"                                                      \
	"  event TEXT,"                                                                \
	"  connection_id TEXT NOT NULL,"                                               \
	"  provider_config_key TEXT NOT NULL,"                                         \
	"  status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'crashed'," \
	"    'timed_out', 'interrupted')),"                                            \
	"  started_at " SCHEMA_I64 " NOT NULL,"                                        \
	"  ended_at " SCHEMA_I64 ","                                                   \
	"  duration_ms " SCHEMA_I64 ","                                                \
	"  error TEXT,"                                                                \
	"  plugin_version TEXT,"                                                       \
	"  logs_dropped " SCHEMA_I64 " NOT NULL DEFAULT 0);"                           \
	"CREATE INDEX executions_event ON executions (event_id);"                      \
	"CREATE INDEX executions_parent ON executions (parent_execution_id);"          \
	"CREATE INDEX executions_running ON executions (id) WHERE status = 'running';" \
	"CREATE INDEX executions_connection ON executions (connection_id, id);"        \
	"CREATE INDEX executions_integration ON executions (provider_config_key, id);" \
	"CREATE INDEX executions_script ON executions (script, id);"                   \
	"CREATE TABLE execution_logs ("                                                \
	"  execution_id " SCHEMA_I64 " NOT NULL REFERENCES executions (id) ON DELETE CASCADE," \
	"  seq " SCHEMA_I64 " NOT NULL,"                                               \
	"  ts " SCHEMA_I64 " NOT NULL,"                                                \
	"  level INTEGER NOT NULL,"                                                    \
	"  message TEXT NOT NULL,"                                                     \
	"  PRIMARY KEY (execution_id, seq))" SCHEMA_NOROWID ";"                        \
	"CREATE TABLE plugin_versions ("                                               \
	"  name TEXT PRIMARY KEY,"                                                     \
	"  version TEXT NOT NULL,"                                                     \
	"  hash " SCHEMA_BLOB " NOT NULL,"                                             \
	"  accepted_at " SCHEMA_I64 " NOT NULL);"                                      \
	"CREATE TABLE idempotency_keys ("                                              \
	"  key TEXT PRIMARY KEY,"                                                      \
	"  method_path TEXT NOT NULL,"                                                 \
	"  request_hash TEXT NOT NULL,"                                                \
	"  status INTEGER NOT NULL,"                                                   \
	"  body TEXT NOT NULL,"                                                        \
	"  created_at " SCHEMA_I64 " NOT NULL);"                                       \
	"CREATE INDEX idempotency_by_age ON idempotency_keys (created_at);"            \
	"CREATE TABLE store_meta ("                                                    \
	"  name TEXT PRIMARY KEY,"                                                     \
	"  value " SCHEMA_BLOB " NOT NULL);"

/* 1 -> 2: host ids. Executions record the host that ran them, events the
 * host that claimed them (several hosts on one PostgreSQL database; on
 * SQLite there is one host, so only executions are written with theirs). */
#define STORE_SCHEMA_STEP2                                                             \
	"ALTER TABLE executions ADD COLUMN host_id TEXT;"                              \
	"ALTER TABLE events ADD COLUMN host_id TEXT;"

/* 2 -> 3: connection tags and webhook URL override (PATCH
 * /connections/{id}), asynchronous actions' results, incoming webhook
 * deliveries. */
#define STORE_SCHEMA_STEP3                                                             \
	"ALTER TABLE connections ADD COLUMN tags TEXT NOT NULL DEFAULT '{}';"          \
	"ALTER TABLE connections ADD COLUMN webhook_url_override TEXT;"                \
	"CREATE TABLE async_actions ("                                                 \
	"  id TEXT PRIMARY KEY,"                                                       \
	"  provider_config_key TEXT NOT NULL,"                                         \
	"  connection_id TEXT NOT NULL,"                                               \
	"  action TEXT NOT NULL,"                                                      \
	"  status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed'))," \
	"  execution_id " SCHEMA_I64 ","                                               \
	"  output TEXT,"                                                               \
	"  error TEXT,"                                                                \
	"  created_at " SCHEMA_I64 " NOT NULL,"                                        \
	"  finished_at " SCHEMA_I64 ");"                                               \
	"CREATE INDEX async_actions_by_age ON async_actions (created_at);"             \
	"CREATE TABLE webhook_deliveries ("                                            \
	"  id " SCHEMA_SERIAL ","                                                      \
	"  integration TEXT NOT NULL,"                                                 \
	"  headers TEXT NOT NULL,"                                                     \
	"  body " SCHEMA_BLOB " NOT NULL,"                                             \
	"  status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'stored'))," \
	"  attempts INTEGER NOT NULL DEFAULT 0,"                                       \
	"  received_at " SCHEMA_I64 " NOT NULL,"                                       \
	"  next_attempt_at " SCHEMA_I64 ","                                            \
	"  delivered_at " SCHEMA_I64 ","                                               \
	"  last_error TEXT);"                                                          \
	"CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)"  \
	"  WHERE status = 'pending';"

/* 3 -> 4: the host that runs an asynchronous action, so that a host
 * settles its own running actions and a dead host's, never a live one's
 * (on SQLite there is one host). */
#define STORE_SCHEMA_STEP4 "ALTER TABLE async_actions ADD COLUMN host_id TEXT;"

#endif
