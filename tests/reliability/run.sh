#!/bin/sh
# The hardening suites of `make reliability` (docs/reliability.md), after the
# Makefile has built the plain, ASan and TSan binaries under $BUILD:
#
#  1. the fault-injection shim (tests/fault/wbfault.c) into $BUILD/fault/;
#  2. the CLI and daemon integration suites (tests/cli, tests/integration)
#     against the ASan+UBSan binaries ($BUILD/address): every sanitizer
#     report is written to a log file and any one fails the run;
#  3. tests/reliability: hostile archives and specs, the fault torture, a
#     full disk, the kill -9 loop, the load test, valgrind and the TSan
#     daemon.  Measured figures go to $BUILD/reliability/figures.json.
#
# Usage: tests/reliability/run.sh [VENV_BASE_DIR]   (BUILD defaults to build)
set -eu

build=${BUILD:-build}
case $build in /*) ;; *) build=$(pwd)/$build ;; esac
venv=$(scripts/venv.sh "${1:-}")
py="$venv/bin/python"

tests/reliability/deps.sh
for b in "$build/weightbridged" "$build/address/weightbridged" "$build/thread/weightbridged"; do
	[ -x "$b" ] || { echo "reliability: $b is not built (make reliability)" >&2; exit 1; }
done

mkdir -p "$build/fault" "$build/reliability"
${CC:-cc} -std=c11 -D_GNU_SOURCE -shared -fPIC -O2 -g -Wall -Wextra \
    -Wno-unused-parameter -o "$build/fault/libwbfault.so" tests/fault/wbfault.c -ldl

export TF_CPP_MIN_LOG_LEVEL=2 PYTHONDONTWRITEBYTECODE=1

# Sanitizer reports go to files (one per process) so none hides in a
# daemon's log; their exit statuses differ from the programs' own.
san="$build/reliability/sanitizer-logs"
rm -rf "$san"
mkdir -p "$san"
echo "reliability: CLI and daemon integration suites against the ASan+UBSan build"
ASAN_OPTIONS="detect_leaks=1:exitcode=86:log_path=$san/asan" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=87:log_path=$san/ubsan" \
WB_BUILD="$build/address" \
    "$py" -m pytest -q -p no:cacheprovider tests/cli tests/integration
if [ -n "$(ls -A "$san")" ]; then
	echo "reliability: sanitizer reports:" >&2
	head -n 60 "$san"/* >&2
	exit 1
fi
echo "reliability: no sanitizer report"

rm -f "$build/reliability/figures.json"
WB_BUILD="$build" WB_ASAN_BUILD="$build/address" WB_TSAN_BUILD="$build/thread" \
WB_FAULT_SHIM="$build/fault/libwbfault.so" \
WB_FIGURES="$build/reliability/figures.json" \
    "$py" -m pytest -q -p no:cacheprovider -rxX tests/reliability
echo "reliability: figures in $build/reliability/figures.json"
