#!/bin/sh
# The weightbridge benchmark: the CLI against the Python way (bench/peer.py),
# then the daemon (bench/daemon_bench.py).  See docs/performance.md.
#
#   bench/run.sh                 every input, 5 measured runs each
#   BENCH_QUICK=1 bench/run.sh   the small inputs only, 3 runs
#
# Environment:
#   BENCH_BUILD   build directory holding weightbridge(d) (default build;
#                 `make BUILD=dir bench` passes its own)
#   BENCH_DATA    data directory, generated once and reused (build/bench-data)
#   BENCH_RUNS    measured runs per tool and input (5; 3 in quick mode)
#   BENCH_INPUTS  comma-separated inputs instead of the default list
#   BENCH_DAEMON  0 skips the daemon benchmark
#   BENCH_PYTHON  a Python with numpy and h5py (default: the project venv
#                 from scripts/venv.sh; torch in it adds the real ResNet-50)
set -eu

cd "$(dirname "$0")/.."

build=${BENCH_BUILD:-build}
data=${BENCH_DATA:-build/bench-data}
quick=${BENCH_QUICK:-0}
[ "$quick" = 0 ] && runs=${BENCH_RUNS:-5} || runs=${BENCH_RUNS:-3}

# GNU time measures peak RSS; scripts/deps.sh installs it when missing.
if [ ! -x /usr/bin/time ] || ! /usr/bin/time -v true >/dev/null 2>&1; then
	echo "bench: installing GNU time" >&2
	scripts/deps.sh time
fi

if [ ! -x "$build/weightbridge" ]; then
	echo "bench: $build/weightbridge is missing; run 'make BUILD=$build' (or 'make bench')" >&2
	exit 1
fi

if [ -n "${BENCH_PYTHON:-}" ]; then
	py=$BENCH_PYTHON
else
	py="$(scripts/venv.sh)/bin/python"
fi

if [ "$quick" = 0 ]; then
	sets=resnet50,torch,large,small,tiny
	quickflag=
else
	sets=resnet50,small,tiny
	quickflag=--quick
fi
"$py" bench/gen.py --data "$data" --sets "$sets"

stamp=$(date +%Y%m%d-%H%M%S)
"$py" bench/bench.py --build "$build" --data "$data" --runs "$runs" \
    --inputs "${BENCH_INPUTS:-}" --results "$data/results-$stamp.json" $quickflag

if [ "${BENCH_DAEMON:-1}" != 0 ]; then
	if [ -x "$build/weightbridged" ]; then
		echo
		"$py" bench/daemon_bench.py --build "$build" --data "$data" \
		    --results "$data/daemon-$stamp.json" $quickflag
	else
		echo "bench: $build/weightbridged is not built; daemon benchmark skipped" >&2
	fi
fi
