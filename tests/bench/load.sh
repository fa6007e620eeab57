#!/bin/sh
# tests/bench/load.sh [--build-dir DIR] [--no-build] [--duration S]
#                     [--connections C] [--runs R] [--keep]
#
# The load benchmark (docs/benchmarks.md, issue 10): a real evscriptd driven
# through its HTTP API by wrk (POST /connections, a new connection per
# request, C connections, default 16, for S seconds, default 10) on three
# paths: no script, an in-process script, an isolated script. Prints one
# Markdown table: events finished per second, each as a ratio to its floor
# measured in the same run (raw SQLite inserts; the fork floor), POST
# latency p50/p99 and CPU time per event. After each run it checks that
# every acknowledged creation ran exactly once, and fails if not.
# R runs (default 1) give medians and each ratio's range.
#
# By default it configures and builds the `default` preset in
# build/default, only the targets it needs; --build-dir and --no-build use
# an existing build as it is (the bench_load_smoke ctest runs the ASan
# build: fine for "it runs, exactly once holds", meaningless for numbers).
# --keep keeps each run's directory (config, store, daemon log, wrk output).
# Needs wrk (Debian package) and python3.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build_dir=$src/build/default
build=1
passthrough=""

while [ $# -gt 0 ]; do
	case $1 in
	--build-dir) build_dir=${2:?--build-dir needs a directory}; shift 2 ;;
	--no-build) build=0; shift ;;
	--duration|--connections|--runs)
		passthrough="$passthrough $1 ${2:?$1 needs a number}"; shift 2 ;;
	--keep) passthrough="$passthrough $1"; shift ;;
	-h|--help) sed -n '2,20p' "$0"; exit 0 ;;
	*) echo "load.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done

if ! command -v wrk >/dev/null 2>&1; then
	echo "load.sh: wrk not found: apt-get install wrk (scripts/install-deps.sh)" >&2
	exit 1
fi

if [ "$build" = 1 ]; then
	if [ ! -f "$build_dir/build.ninja" ]; then
		(cd "$src" && cmake --preset default >&2)
	fi
	cmake --build "$build_dir" --target evscriptd evscript-zygote evs_test_plugins \
		bench_fork_floor bench_sqlite_floor >&2
fi

# shellcheck disable=SC2086 # the options are words without spaces
exec python3 "$here/load.py" --build-dir "$build_dir" --source "$src" $passthrough
