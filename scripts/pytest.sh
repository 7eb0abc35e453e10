#!/bin/sh
# Run the Python test suites (integration against the real daemon, interop
# against real TensorFlow/Keras and PyTorch) inside the cached venv.
set -eu
venv=$(scripts/venv.sh "${1:-}")
[ $# -gt 0 ] && shift
export WB_BUILD="${WB_BUILD:-$(pwd)/build}"
export TF_CPP_MIN_LOG_LEVEL=2
export PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/cli tests/integration tests/interop "$@"
