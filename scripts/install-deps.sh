#!/bin/sh
# Installs the Debian packages that building and testing evscript need, when
# they are missing. Safe to run again; does nothing when all are present.
set -eu

packages="build-essential cmake ninja-build pkg-config
libyaml-dev libcurl4-openssl-dev libjson-c-dev libsodium-dev libsqlite3-dev
libmicrohttpd-dev libcmocka-dev minisign
clang libclang-rt-14-dev llvm
python3 nodejs npm curl sqlite3 procps file binutils wrk
postgresql libpq-dev"

missing=""
for p in $packages; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
# Node.js may come from elsewhere than Debian (as on the CI image): a working
# node and npm on PATH are enough.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
	missing=$(echo "$missing" | tr ' ' '\n' | grep -vx -e nodejs -e npm | tr '\n' ' ')
fi

if [ -n "$(echo "$missing" | tr -d ' ')" ]; then
	echo "install-deps: installing:$missing"
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
