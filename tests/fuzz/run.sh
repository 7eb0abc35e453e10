#!/bin/bash
# Run fuzz drivers for a bounded time each: tests/fuzz/run.sh DRIVER...
#
# Each driver first replays every input of tests/fuzz/corpus/<driver>/
# (seeds and the regression inputs of past crashes), then mutates for
# FUZZ_SECS seconds.  New coverage goes to $FUZZ_BUILD/corpus/<driver>/,
# never into the checked-in corpus; a crash leaves its input in
# $FUZZ_BUILD/artifacts/ and fails the run.  FUZZ_JOBS drivers run at once.
# The last line is "fuzz: N passed, N failed".
set -u

build=${FUZZ_BUILD:-build/fuzz}
secs=${FUZZ_SECS:-60}
jobs=${FUZZ_JOBS:-2}
mkdir -p "$build/artifacts" "$build/logs"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$(pwd)/tests/fuzz/ubsan.supp"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"

run_one() {
	d=$1
	bin="$build/fuzz_$d"
	work="$build/corpus/$d"
	log="$build/logs/$d.log"
	mkdir -p "$work"
	dict=""
	[ -f "tests/fuzz/dict/$d.dict" ] && dict="-dict=tests/fuzz/dict/$d.dict"
	# A hard wall-clock bound on top of libFuzzer's own.
	timeout -k 10 $((secs + 120)) "$bin" -max_total_time="$secs" \
	    -timeout=20 -rss_limit_mb=2560 -max_len=65536 -print_final_stats=1 \
	    -artifact_prefix="$build/artifacts/$d-" $dict \
	    "$work" "tests/fuzz/corpus/$d" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
	if [ "$rc" -eq 0 ]; then
		echo "fuzz_$d: ok, ${execs:-?} runs in ${secs}s, $cov"
	else
		echo "fuzz_$d: FAILED (exit $rc); log $log; input in" \
		    "$build/artifacts/" >&2
		grep -m1 -A30 'ERROR: \|==ERROR\|runtime error\|deadly signal' \
		    "$log" >&2
		return 1
	fi
}

pass=0
fail=0
running=0
for d in "$@"; do
	# At most $jobs at once.
	if [ "$running" -ge "$jobs" ]; then
		if wait -n; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
		running=$((running - 1))
	fi
	run_one "$d" &
	running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
	if wait -n; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
	running=$((running - 1))
done
echo "fuzz: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
