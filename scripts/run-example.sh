#!/bin/sh
# Installs what is missing, builds everything with the default preset (the
# example plugins are signed with a development key made on first use), and
# runs evscriptd with the example configuration on the embedded SQLite store.
# README's first command.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake --preset default
cmake --build --preset default
cat <<'MSG'

evscriptd is starting with examples/evscript.yaml (store: build/default/evscript.db).
In another terminal, create a connection for the `demo` integration (its
post-connection-creation script `hello` logs the event), then look at the
execution:

  curl -s -X POST http://127.0.0.1:3003/connections \
       -H 'Authorization: Bearer dev-secret-change-me' -H 'Content-Type: application/json' \
       -d '{"provider_config_key":"demo","connection_id":"c1",
            "credentials":{"type":"API_KEY","apiKey":"k1"},"connection_config":{"port":"1"}}'
  curl -s -H 'Authorization: Bearer dev-secret-change-me' http://127.0.0.1:3003/executions
  curl -s -H 'Authorization: Bearer dev-secret-change-me' http://127.0.0.1:3003/plugins

Stop with Ctrl-C; reload config and plugins with: kill -HUP <pid>
MSG
exec ./build/default/runtime/daemon/evscriptd --config examples/evscript.yaml
