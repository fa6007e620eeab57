#!/bin/sh
# README's test command; .ci/run runs it. Installs what is missing, runs each
# libFuzzer harness briefly (FUZZ_SECONDS, default 10: the harnesses keep
# building and a shallow crash is caught), builds the default preset (the
# optimized build README's first command runs: -O2 finds warnings -O0 does
# not), then builds with the asan preset (ASan+UBSan) and runs every test
# through ctest.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
FUZZ_SECONDS=${FUZZ_SECONDS:-10} ./tests/fuzz/run.sh
cmake --preset default
cmake --build --preset default
cmake --preset asan
cmake --build --preset asan
ctest --preset asan -j2 "$@"
