#!/bin/sh
# interop.sh EVSCRIPT MINISIGN - minisign interoperability, both directions,
# with the real minisign binary (Debian's 0.11). Run by ctest.
#   1. minisign -G -W + minisign -S -t ... -> evscript verify accepts and prints
#      the trusted comment; a tampered file or comment is refused.
#   2. evscript keygen + evscript sign -> minisign -V and minisign -V -H accept.
#   3. evscript sign with a key made by minisign -G -W -> minisign -V accepts.
#   4. minisign -S -l (legacy) -> evscript verify refuses, and accepts with -l.
#   5. minisign -S with a key made by evscript keygen -> evscript verify accepts.
#   6. evscript verify -d KEYSDIR: key chosen by id, unknown and revoked keys refused.
#   7. a password-protected minisign key is refused by evscript sign.
# minisign may ask for a password without -W: always -W, stdin from /dev/null.
set -u

EVSCRIPT=$1
MINISIGN=${2:-}
if [ -z "$MINISIGN" ] || [ ! -x "$MINISIGN" ]; then
	MINISIGN=$(command -v minisign || true)
fi
if [ -z "$MINISIGN" ]; then
	echo "SKIP: minisign is not installed"
	exit 77
fi

T=$(mktemp -d /tmp/evs-interop.XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
failures=0

ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; failures=$((failures + 1)); }

# expect_ok DESC CMD... : the command must exit 0
expect_ok() {
	desc=$1; shift
	if "$@" >out.txt 2>err.txt </dev/null; then ok "$desc"; else
		bad "$desc (exit $?)"; cat out.txt err.txt; fi
}
# expect_fail DESC PATTERN CMD... : exit 1 and PATTERN on stderr
expect_fail() {
	desc=$1; pat=$2; shift 2
	"$@" >out.txt 2>err.txt </dev/null
	rc=$?
	if [ "$rc" -eq 1 ] && grep -q -- "$pat" err.txt; then ok "$desc"; else
		bad "$desc (exit $rc, wanted 1 and '$pat')"; cat out.txt err.txt; fi
}
expect_out() {
	pat=$1
	if grep -q -- "$pat" out.txt; then ok "  output has '$pat'"; else bad "output lacks '$pat'"; cat out.txt; fi
}

head -c 100000 /dev/urandom >plugin.so
TC="plugin:hello version:1.0.0 abi:1"

# 1. minisign signs, evscript verifies
expect_ok "minisign -G -W" "$MINISIGN" -G -W -p m.pub -s m.key
expect_ok "minisign -S -t" "$MINISIGN" -S -s m.key -m plugin.so -t "$TC"
expect_ok "evscript verify of a minisign signature" "$EVSCRIPT" verify -p m.pub -m plugin.so
expect_out "Signature and comment signature verified"
expect_out "Trusted comment: $TC"
expect_ok "evscript verify -Q" "$EVSCRIPT" verify -Q -p m.pub -m plugin.so
if [ "$(cat out.txt)" = "$TC" ]; then ok "  -Q prints the comment only"; else bad "-Q output: $(cat out.txt)"; fi
cp plugin.so tampered.so
printf 'x' | dd of=tampered.so bs=1 seek=5000 conv=notrunc 2>/dev/null
cp plugin.so.minisig tampered.so.minisig
expect_fail "tampered file refused" "signature verification failed" "$EVSCRIPT" verify -p m.pub -m tampered.so
sed 's/^trusted comment: .*/trusted comment: plugin:hello version:9.0.0 abi:1/' plugin.so.minisig >forged.minisig
expect_fail "tampered trusted comment refused" "comment signature verification failed" \
	"$EVSCRIPT" verify -p m.pub -m plugin.so -x forged.minisig
expect_fail "minisign agrees the forged comment is bad" "verification failed" "$MINISIGN" -V -p m.pub -m plugin.so -x forged.minisig

# 2. evscript keygen + sign, minisign verifies
expect_ok "evscript keygen" "$EVSCRIPT" keygen -p e.pub -s e.key
mode=$(stat -c %a e.key)
if [ "$mode" = 600 ]; then ok "  secret key mode 0600"; else bad "secret key mode $mode"; fi
expect_ok "evscript sign -t" "$EVSCRIPT" sign -q -s e.key -m plugin.so -x e.minisig -t "$TC"
expect_ok "minisign -V of an evscript signature" "$MINISIGN" -V -p e.pub -m plugin.so -x e.minisig
expect_out "Trusted comment: $TC"
expect_ok "minisign -V -H (prehashed only) of an evscript signature" \
	"$MINISIGN" -V -H -p e.pub -m plugin.so -x e.minisig
expect_fail "minisign -V refuses a tampered file signed by evscript" "verification failed" \
	"$MINISIGN" -V -p e.pub -m tampered.so -x e.minisig
expect_ok "minisign -R recreates the public key from an evscript secret key" \
	"$MINISIGN" -R -s e.key -p e2.pub
if cmp -s e.pub e2.pub; then ok "  byte-identical .pub files"; else bad ".pub files differ"; diff e.pub e2.pub; fi
# default signature path; without -t the trusted comment comes from the
# plugin's info, so a file that is not a plugin is not signed at all
rm -f plugin.so.minisig
expect_fail "evscript sign without -t refuses a file with no plugin info" "not signed" \
	"$EVSCRIPT" sign -s e.key -m plugin.so
if [ -e plugin.so.minisig ]; then bad "a signature was written anyway"; else ok "  no signature written"; fi
expect_ok "evscript sign -t, default signature path" "$EVSCRIPT" sign -s e.key -m plugin.so -t "$TC"
expect_ok "minisign -V of FILE.minisig" "$MINISIGN" -V -p e.pub -m plugin.so

# 3. evscript signs with a key made by minisign -G -W
expect_ok "evscript sign with a minisign -W key" "$EVSCRIPT" sign -q -s m.key -m plugin.so -x em.minisig -t "$TC"
expect_ok "minisign -V -H of it" "$MINISIGN" -V -H -p m.pub -m plugin.so -x em.minisig
expect_ok "evscript verify of it" "$EVSCRIPT" verify -p m.pub -m plugin.so -x em.minisig

# 4. legacy signatures
expect_ok "minisign -S -l (legacy)" "$MINISIGN" -S -l -s m.key -m plugin.so -x legacy.minisig -t "$TC"
expect_fail "evscript verify refuses legacy" "legacy" "$EVSCRIPT" verify -p m.pub -m plugin.so -x legacy.minisig
expect_ok "evscript verify -l accepts legacy" "$EVSCRIPT" verify -l -p m.pub -m plugin.so -x legacy.minisig
expect_out "Trusted comment: $TC"
expect_fail "evscript verify -l: tampered file still refused" "signature verification failed" \
	"$EVSCRIPT" verify -l -p m.pub -m tampered.so -x legacy.minisig

# 5. minisign signs with an evscript key
expect_ok "minisign -S with an evscript key" "$MINISIGN" -S -s e.key -m plugin.so -x me.minisig -t "$TC"
expect_ok "evscript verify of it" "$EVSCRIPT" verify -p e.pub -m plugin.so -x me.minisig

# wrong key: key id mismatch, with both ids named
expect_fail "wrong public key refused" "key id" "$EVSCRIPT" verify -p e.pub -m plugin.so -x em.minisig

# 6. a keys directory
mkdir keys
cp m.pub keys/minisign.pub
cp e.pub keys/evscript.pub
expect_ok "verify -d picks the key by id (minisign key)" "$EVSCRIPT" verify -d keys -m plugin.so -x em.minisig
expect_ok "verify -d picks the key by id (evscript key)" "$EVSCRIPT" verify -d keys -m plugin.so -x e.minisig
rm keys/minisign.pub
expect_fail "verify -d: unknown key" "unknown key" "$EVSCRIPT" verify -d keys -m plugin.so -x em.minisig
EID=$(sed -n 's/^untrusted comment: minisign public key //p' e.pub)
expect_fail "verify -d -r: revoked key" "revoked" "$EVSCRIPT" verify -d keys -r "$EID" -m plugin.so -x e.minisig

# The .pub comment is byte-exact with minisign's whatever the key id: make
# keys until one has a zero top nibble (1 in 16; minisign drops the padding).
i=0
while [ $i -lt 200 ]; do
	i=$((i + 1))
	rm -f z.pub z.key z2.pub
	"$EVSCRIPT" keygen -p z.pub -s z.key >/dev/null </dev/null || { bad "keygen in loop"; break; }
	"$MINISIGN" -R -s z.key -p z2.pub >/dev/null </dev/null || { bad "minisign -R in loop"; break; }
	if ! cmp -s z.pub z2.pub; then bad "evscript and minisign -R write different .pub files"; diff z.pub z2.pub; break; fi
	ZID=$(sed -n 's/^untrusted comment: minisign public key //p' z.pub)
	if [ ${#ZID} -lt 16 ]; then ok "short key id $ZID: .pub identical to minisign -R's after $i keys"; break; fi
done

# 7. password-protected minisign keys are refused with a reason
printf 'pw\npw\n' | "$MINISIGN" -G -p enc.pub -s enc.key >/dev/null 2>&1
if [ -s enc.key ]; then
	expect_fail "encrypted secret key refused" "encrypted secret keys are not supported" \
		"$EVSCRIPT" sign -s enc.key -m plugin.so -x enc.minisig
else
	bad "could not make a password-protected minisign key"
fi

if [ "$failures" -ne 0 ]; then
	echo "$failures interop check(s) failed"
	exit 1
fi
echo "all interop checks passed"
