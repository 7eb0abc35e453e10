#!/bin/sh
# Install the Debian packages weightbridge needs to build and test, if any
# are missing.  Safe to run repeatedly: it does nothing when all are present.
# With arguments, install exactly those packages instead (the test and
# benchmark setup scripts use this, so there is one way to install).
set -eu

missing=""
if [ $# -gt 0 ]; then
	pkgs="$*"
else
	pkgs="build-essential pkg-config libarchive-dev libhdf5-dev hdf5-tools
libjansson-dev libmicrohttpd-dev libsystemd-dev libssl-dev libisal-dev zlib1g-dev
python3-venv curl"
fi
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
# systemd-analyze is optional for the build but used by the tests.
[ $# -gt 0 ] || command -v systemd-analyze >/dev/null 2>&1 ||
	missing="$missing systemd"
[ -z "$missing" ] && exit 0

echo "deps: installing:$missing" >&2
if [ "$(id -u)" -eq 0 ]; then
	sudo=""
elif command -v sudo >/dev/null 2>&1; then
	sudo="sudo"
else
	echo "deps: need root (or sudo) to install:$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
