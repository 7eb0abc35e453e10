#!/bin/sh
# Install the tools of the hardening suites if any is missing: clang with
# its libFuzzer/sanitizer runtimes (fuzz drivers), valgrind (leak check),
# wrk (load test).  Safe to run repeatedly: it does nothing when all are
# present.  Like scripts/deps.sh it uses apt-get as root or through sudo.
set -eu

missing=""
command -v clang >/dev/null 2>&1 || missing="$missing clang"
command -v valgrind >/dev/null 2>&1 || missing="$missing valgrind"
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
# libFuzzer ships in libclang-rt-<major>-dev, apart from clang itself.
if command -v clang >/dev/null 2>&1; then
	probe=$(mktemp -d)
	printf 'int LLVMFuzzerTestOneInput(const char *d, long n)\n{ return 0; }\n' \
	    >"$probe/p.c"
	if ! clang -fsanitize=fuzzer,address,undefined -o "$probe/p" \
	    "$probe/p.c" >/dev/null 2>&1; then
		major=$(clang -dumpversion | cut -d. -f1)
		missing="$missing libclang-rt-$major-dev"
	fi
	rm -rf "$probe"
else
	missing="$missing libclang-rt-dev"
fi
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
