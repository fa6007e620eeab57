#!/bin/sh
# README's test command; .ci/run runs it. Installs what is missing, builds
# with the asan preset (ASan+UBSan), runs every test through ctest, then runs
# each libFuzzer harness briefly (FUZZ_SECONDS, default 10) so that the
# harnesses keep building and a shallow crash is caught.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake --preset asan
cmake --build --preset asan
ctest --preset asan -j2 "$@"
FUZZ_SECONDS=${FUZZ_SECONDS:-10} ./tests/fuzz/run.sh
