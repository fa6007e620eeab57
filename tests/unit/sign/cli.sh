#!/bin/sh
# cli.sh EVSCRIPT - the evscript command's own contract: help, usage errors
# (exit 2), failures (exit 1 with a reason), keygen refusing to overwrite.
set -u
EVSCRIPT=$1
T=$(mktemp -d /tmp/evs-cli.XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
failures=0
ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; failures=$((failures + 1)); }

# expect RC PATTERN(stdout+stderr, may be empty) DESC CMD...
expect() {
	want=$1; pat=$2; desc=$3; shift 3
	"$@" >out.txt 2>err.txt </dev/null
	rc=$?
	if [ "$rc" -ne "$want" ]; then
		bad "$desc: exit $rc, wanted $want"; cat out.txt err.txt; return
	fi
	if [ -n "$pat" ] && ! cat out.txt err.txt | grep -q -- "$pat"; then
		bad "$desc: output lacks '$pat'"; cat out.txt err.txt; return
	fi
	ok "$desc"
}

expect 0 "usage: evscript" "--help" "$EVSCRIPT" --help
expect 2 "usage: evscript" "no command" "$EVSCRIPT"
expect 2 "unknown command 'frobnicate'" "unknown command" "$EVSCRIPT" frobnicate
for c in keygen sign verify deploy; do
	expect 0 "usage: evscript $c" "$c --help" "$EVSCRIPT" "$c" --help
	expect 2 "usage: evscript $c" "$c unknown flag" "$EVSCRIPT" "$c" -Z
done
expect 2 "required" "keygen without -s" "$EVSCRIPT" keygen -p a.pub
expect 2 "required" "sign without -m" "$EVSCRIPT" sign -s a.key
expect 2 "exactly one" "verify without a key" "$EVSCRIPT" verify -m x
expect 2 "exactly one" "verify with -p and -d" "$EVSCRIPT" verify -p a -d b -m x
expect 2 "unexpected argument" "stray argument" "$EVSCRIPT" keygen -p a.pub -s a.key extra

expect 0 "" "keygen" "$EVSCRIPT" keygen -p a.pub -s a.key
cp a.key a.key.orig
expect 1 "already exists" "keygen refuses to overwrite" "$EVSCRIPT" keygen -p a.pub -s a.key
if cmp -s a.key a.key.orig; then ok "  key unchanged"; else bad "key was overwritten"; fi
rm a.key
expect 1 "a.pub already exists" "keygen refuses when only the public key exists" "$EVSCRIPT" keygen -p a.pub -s a.key
expect 0 "" "keygen -f overwrites" "$EVSCRIPT" keygen -f -p a.pub -s a.key
if [ "$(stat -c %a a.key)" = 600 ]; then ok "  secret key is 0600"; else bad "secret key mode $(stat -c %a a.key)"; fi
if cmp -s a.key a.key.orig; then bad "key not replaced"; else ok "  key replaced"; fi

echo hello >f
expect 0 "" "sign" "$EVSCRIPT" sign -q -s a.key -m f -t "plugin:f version:1.0.0 abi:1"
expect 0 "Trusted comment: plugin:f version:1.0.0 abi:1" "verify" "$EVSCRIPT" verify -p a.pub -m f
expect 0 "" "verify -q prints nothing" "$EVSCRIPT" verify -q -p a.pub -m f
if [ -s out.txt ]; then bad "-q printed: $(cat out.txt)"; fi
expect 1 "No such file" "sign: missing secret key" "$EVSCRIPT" sign -s nokey -m f
expect 1 "No such file" "sign: missing file" "$EVSCRIPT" sign -s a.key -m nofile
expect 1 "malformed minisign file" "sign with a public key as secret key" "$EVSCRIPT" sign -s a.pub -m f
expect 1 "No such file" "verify: missing signature" "$EVSCRIPT" verify -p a.pub -m f -x nosig
expect 1 "malformed minisign file" "verify: garbage signature" "$EVSCRIPT" verify -p a.pub -m f -x a.pub
head -c 5000 /dev/zero | tr '\0' A >big
expect 1 "big: too large for a signature file" "verify: oversized signature file" "$EVSCRIPT" verify -p a.pub -m f -x big
expect 1 "big: too large for a public key" "verify: oversized public key" "$EVSCRIPT" verify -p big -m f
expect 1 "big: too large for a secret key" "sign: oversized secret key" "$EVSCRIPT" sign -s big -m f
expect 1 "malformed trusted comment" "sign: comment with a control character" \
	"$EVSCRIPT" sign -s a.key -m f -t "$(printf 'a\001b')"
echo hellO >f
expect 1 "signature verification failed" "verify: tampered" "$EVSCRIPT" verify -p a.pub -m f
expect 1 "No such file" "verify -d: missing directory" "$EVSCRIPT" verify -d nodir -m f
expect 2 "needs -d" "verify -r without -d" "$EVSCRIPT" verify -p a.pub -r 0000000000000000 -m f

if [ "$failures" -ne 0 ]; then echo "$failures check(s) failed"; exit 1; fi
echo "all cli checks passed"
