#!/bin/sh
# tests/fuzz/run.sh [harness...] - build the fuzz preset (clang, libFuzzer,
# ASan+UBSan) and fuzz each harness for FUZZ_SECONDS seconds (default 20).
# With no arguments, every harness (every fuzz_* executable the preset builds).
#
# New inputs go to a scratch corpus (the seeds in tests/fuzz/corpus/ are only
# read). On a crash the script stops with a non-zero status and prints where
# the crashing input is: fix the bug, then copy the input into
# tests/fuzz/regressions/<name>/ so every ctest run replays it.
#
# Environment: FUZZ_SECONDS (default 20), FUZZ_BUILD_DIR (default
# build/fuzz, the preset's), FUZZ_JOBS (parallel fuzzing jobs per harness,
# default 1), FUZZ_WORK (scratch dir, default a fresh temporary one).
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECONDS_PER=${FUZZ_SECONDS:-20}
BUILD=${FUZZ_BUILD_DIR:-$ROOT/build/fuzz}
JOBS=${FUZZ_JOBS:-1}
WORK=${FUZZ_WORK:-$(mktemp -d /tmp/evs-fuzz.XXXXXX)}

cd "$ROOT"
if [ "$BUILD" = "$ROOT/build/fuzz" ]; then
	cmake --preset fuzz >/dev/null
else
	cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang \
		-DEVSCRIPT_FUZZ=ON >/dev/null
fi

if [ $# -gt 0 ]; then
	names="$*"
else
	# every harness the tree defines: fuzz_<name>.c next to this script
	names=$(cd "$ROOT/tests/fuzz" && ls fuzz_*.c | sed -e 's/^fuzz_//' -e 's/\.c$//' | grep -v '^main$')
fi

targets=""
for n in $names; do targets="$targets fuzz_$n"; done
# shellcheck disable=SC2086
cmake --build "$BUILD" --target $targets

status=0
for n in $names; do
	exe=$(find "$BUILD" -type f -name "fuzz_$n" -perm -u+x | head -n 1)
	if [ -z "$exe" ]; then
		echo "run.sh: fuzz_$n was not built" >&2
		exit 2
	fi
	mkdir -p "$WORK/corpus/$n" "$WORK/artifacts/$n"
	seeds="$ROOT/tests/fuzz/corpus/$n"
	regs="$ROOT/tests/fuzz/regressions/$n"
	[ -d "$regs" ] || regs=""
	echo "== fuzz_$n for ${SECONDS_PER}s (scratch corpus $WORK/corpus/$n)"
	par=""
	[ "$JOBS" -gt 1 ] && par="-jobs=$JOBS -workers=$JOBS"
	# shellcheck disable=SC2086
	if ! (cd "$WORK" && "$exe" -max_total_time="$SECONDS_PER" $par \
		-artifact_prefix="$WORK/artifacts/$n/" -print_final_stats=1 \
		"$WORK/corpus/$n" "$seeds" $regs) >"$WORK/fuzz_$n.log" 2>&1; then
		status=1
		tail -n 60 "$WORK/fuzz_$n.log"
		echo "== fuzz_$n FOUND A CRASH; inputs in $WORK/artifacts/$n/:" >&2
		ls -l "$WORK/artifacts/$n/" >&2
		echo "   fix it, then: cp $WORK/artifacts/$n/<crash-file> $ROOT/tests/fuzz/regressions/$n/" >&2
		continue
	fi
	grep -E "stat::number_of_executed_units|stat::new_units_added" "$WORK/fuzz_$n.log" || true
	echo "== fuzz_$n: no crash"
done
if [ -z "${FUZZ_WORK:-}" ] && [ "$status" -eq 0 ]; then
	rm -rf "$WORK"
fi
exit "$status"
