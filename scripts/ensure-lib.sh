# Shell functions shared by scripts/ensure-venv.sh and scripts/ensure-browser-deps.sh. POSIX
# sh; sourced from the directory of the script that uses it, not run.

# banner LINE...: prints the lines to stderr in a loud box.
banner() {
    echo "************************************************************************" >&2
    for line in "$@"; do
        echo "*** $line" >&2
    done
    echo "************************************************************************" >&2
}

# skip_if VALUE LINE...: when VALUE (e.g. "${SKIP_VENV:-}") is not empty, prints the banner
# and exits 0: the tests that need what the script prepares then skip.
skip_if() {
    [ -z "$1" ] && return 0
    shift
    banner "$@"
    exit 0
}

# skip_without COMMAND LINE...: when COMMAND is not on PATH, prints the banner and exits 0.
skip_without() {
    command -v "$1" >/dev/null 2>&1 && return 0
    shift
    banner "$@"
    exit 0
}
