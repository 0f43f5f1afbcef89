#!/bin/sh
# Prepares the Python virtualenv that the WebSocket and REST tests drive the server with.
#
#   sh scripts/ensure-venv.sh [VENV_DIR] [REQUIREMENTS_FILE]
#
# Idempotent and quick: when VENV_DIR already holds a working Python and was installed from
# the same REQUIREMENTS_FILE (a copy is kept inside the venv), it does nothing. Otherwise it
# creates the venv if needed and installs the pinned requirements from PyPI.
#
# Without python3 it prints a loud warning and exits 0, so the Rust tests still run (the tests
# that need the tools then skip). SKIP_VENV=1 skips this step on purpose. Any other failure
# (no venv module, no network to PyPI) exits 1 with what to do.
set -eu
case $0 in */*) . "${0%/*}/ensure-lib.sh" ;; *) . ./ensure-lib.sh ;; esac

venv=${1:-.venv}
requirements=${2:-scripts/test-requirements.txt}
installed="$venv/.installed-requirements.txt"

skip_if "${SKIP_VENV:-}" \
    "SKIP_VENV is set: not preparing the Python virtualenv $venv." \
    "Tests that need websockets/schemathesis will skip."
skip_without python3 \
    "python3 not found: not preparing the Python virtualenv $venv." \
    "Tests that need websockets/schemathesis will skip." \
    "Install Python 3 (with its venv module) to run them."

if [ -x "$venv/bin/python" ] && [ -f "$installed" ] && cmp -s "$requirements" "$installed"; then
    exit 0
fi

echo "Preparing the Python virtualenv $venv from $requirements ..."
if ! "$venv/bin/python" -c '' >/dev/null 2>&1; then
    # Missing, or left broken (e.g. the python3 it was made from is gone): make it afresh.
    rm -rf "$venv"
    if ! python3 -m venv "$venv"; then
        rm -rf "$venv"
        banner "python3 -m venv failed. On Debian/Ubuntu: apt-get install python3-venv" \
            "(or run with SKIP_VENV=1 to skip the tests that need it)."
        exit 1
    fi
fi
if ! "$venv/bin/python" -m pip install --disable-pip-version-check --quiet \
    --requirement "$requirements"; then
    banner "pip could not install $requirements into $venv (is PyPI reachable?)." \
        "Run 'make test' again to retry, or SKIP_VENV=1 to skip the tests that need it."
    exit 1
fi
cp "$requirements" "$installed"
echo "Python virtualenv $venv is ready."
