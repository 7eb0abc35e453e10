#!/bin/sh
# Create (once) the Python venv used by the integration and interop tests and
# print its path.  The venv lives outside the checkout, keyed by the hash of
# tests/requirements.txt, so a clean clone reuses it and a change to the
# requirements builds a fresh one.
set -eu

base=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/weightbridge}
req=tests/requirements.txt
key=$(sha256sum "$req" | cut -c1-16)
venv="$base/venv-$key"

if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
	echo "venv: creating $venv (first run downloads TensorFlow; a few minutes)" >&2
	rm -rf "$venv"
	mkdir -p "$base"
	python3 -m venv "$venv"
	"$venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
	touch "$venv/.complete"
fi
echo "$venv"
