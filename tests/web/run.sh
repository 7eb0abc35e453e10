#!/bin/sh
# The browser test (make webtest): set up what it needs, then run it with
# node's test runner.  $1 is the base directory of the test venv, as for
# scripts/pytest.sh; WB_DAEMON names the daemon binary under test and
# WB_SCREENSHOTS the folder the screenshots go to.
set -eu
cd "$(dirname "$0")/../.."
tests/web/setup.sh
venv=$(scripts/venv.sh "${1:-}")
export WB_PYTHON="$venv/bin/python"
export WB_DAEMON="${WB_DAEMON:-$(pwd)/build/weightbridged}"
export WB_SCREENSHOTS="${WB_SCREENSHOTS:-$(pwd)/build/web-screenshots}"
exec node --test tests/web/*.test.mjs
