#!/bin/sh
# Installs what is missing, builds with the asan preset (ASan+UBSan) and runs
# every test through ctest. README's test command; .ci/run runs it.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake --preset asan
cmake --build --preset asan
ctest --preset asan -j2 "$@"
