#!/bin/sh
# Install what the browser test needs, if it is missing: Debian's chromium
# package, and the npm packages pinned in package-lock.json (playwright-core
# only, which drives that Chromium and never downloads a browser of its own).
# Safe to run repeatedly: it does nothing when all is in place.
set -eu
cd "$(dirname "$0")"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "webtest: node and npm (Node 20 or newer) are needed" >&2
	exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
	echo "webtest: node $(node --version) is too old; Node 20 or newer is needed" >&2
	exit 1
fi

if [ ! -x /usr/bin/chromium ]; then
	echo "webtest: installing chromium" >&2
	../../scripts/deps.sh chromium
fi

# npm ci again only when the lock file changed since the last install.
want=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.package-lock.sha256
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
	echo "$want" > "$stamp"
fi
