#!/bin/sh
# Install the tools of the hardening suites if any is missing: clang with
# its libFuzzer/sanitizer runtimes (fuzz drivers), valgrind (leak check),
# wrk (load test).  Safe to run repeatedly: it does nothing when all are
# present.  scripts/deps.sh does the installing.
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

# shellcheck disable=SC2086
"$(dirname "$0")/../../scripts/deps.sh" $missing
