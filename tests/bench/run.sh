#!/bin/sh
# tests/bench/run.sh [--build-dir DIR] [--no-build] [N]
#
# Runs every benchmark in one go and prints one Markdown table (see
# docs/benchmarks.md): the fork floor from a small process and the direct
# call floor (bench_fork_floor), evscript's isolated and in-process
# executions (bench_evscript), and Node's vm with a fresh context per
# execution (node_vm.js, skipped when node is not installed). N iterations
# per row (default 2000), after a warm-up.
#
# By default it configures and builds the `default` preset (RelWithDebInfo,
# no sanitizers) in build/default, only the targets it needs. --build-dir
# and --no-build run the programs of an existing build as they are (the
# bench_smoke ctest does that on the ASan test build: fine for "it runs",
# meaningless for numbers).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build_dir=$src/build/default
build=1
n=2000

while [ $# -gt 0 ]; do
	case $1 in
	--build-dir) build_dir=$2; shift 2 ;;
	--no-build) build=0; shift ;;
	-h|--help) sed -n '2,16p' "$0"; exit 0 ;;
	-*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
	*) n=$1; shift ;;
	esac
done

if [ "$build" = 1 ]; then
	if [ ! -f "$build_dir/build.ninja" ]; then
		(cd "$src" && cmake --preset default >&2)
	fi
	cmake --build "$build_dir" --target bench_fork_floor bench_evscript evscript-zygote >&2
fi

floor=$build_dir/tests/bench/bench_fork_floor
evs=$build_dir/tests/bench/bench_evscript
zyg=$build_dir/runtime/daemon/evscript-zygote
for p in "$floor" "$evs" "$zyg"; do
	if [ ! -x "$p" ]; then
		echo "run.sh: $p is not built" >&2
		exit 1
	fi
done

out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "run.sh: N=$n per row; $(nproc) CPUs; $(uname -sr)" >&2
"$floor" "$n" >>"$out"
# Diagnostic: the same fork loop in a process that maps the shared libraries
# the zygote (evscript-zygote) maps: json-c. Skipped for a sanitized build
# (its runtime cannot be preloaded into the unsanitized floor program).
libs=$(ldd "$zyg" | awk '/=> \// {print $3}' | grep -v '/libc\.so' | tr '\n' ':')
nlibs=$(printf '%s' "$libs" | tr ':' '\n' | grep -c . || true)
if [ -n "$libs" ] && ! ldd "$zyg" | grep -q libasan; then
	word=libraries
	[ "$nlibs" = 1 ] && word=library
	LD_PRELOAD=$libs "$floor" "$n" "floor, same loop with the zygote's $nlibs shared $word loaded" >>"$out"
fi
"$evs" "$n" >>"$out"
if command -v node >/dev/null 2>&1; then
	node "$here/node_vm.js" "$n" >>"$out"
else
	echo "run.sh: node not found; the Node vm row is left out" >&2
fi
python3 "$here/table.py" <"$out"
