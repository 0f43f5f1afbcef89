#!/bin/sh
# Installs the browser test's npm packages (tests/browser/package-lock.json) with `npm ci`.
#
#   sh scripts/ensure-browser-deps.sh [DIR]
#
# Idempotent and quick: does nothing when DIR has no package.json, or when its node_modules
# was installed after the last change to package-lock.json. Without npm it prints a loud
# warning and exits 0 (the browser test then skips); SKIP_BROWSER_DEPS=1 skips on purpose.
# The browser itself (Debian's chromium) is not installed here: see .ci/run and the README.
set -eu
case $0 in */*) . "${0%/*}/ensure-lib.sh" ;; *) . ./ensure-lib.sh ;; esac

dir=${1:-tests/browser}
stamp="$dir/node_modules/.package-lock.json" # written by npm ci

[ -f "$dir/package.json" ] || exit 0

skip_if "${SKIP_BROWSER_DEPS:-}" \
    "SKIP_BROWSER_DEPS is set: not installing the npm packages in $dir." \
    "The browser test will skip."
skip_without npm \
    "npm not found: not installing the npm packages in $dir." \
    "The browser test will skip. Install Node.js and npm to run it."

if [ -f "$stamp" ] && { [ ! -f "$dir/package-lock.json" ] || [ "$stamp" -nt "$dir/package-lock.json" ]; }; then
    exit 0
fi

# npm ci installs exactly the lock file; without one, npm install makes it.
install=ci
[ -f "$dir/package-lock.json" ] || install=install
echo "Installing the npm packages in $dir (npm $install) ..."
if ! (cd "$dir" && npm "$install" --no-audit --no-fund --loglevel=error); then
    banner "npm $install failed in $dir (is the npm registry reachable?)." \
        "Run 'make test' again to retry, or SKIP_BROWSER_DEPS=1 to skip the browser test."
    exit 1
fi
