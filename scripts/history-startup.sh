#!/bin/sh
# Start-up time on a large chat log (SPEC §12: listening within 100 ms on a 1 GiB log),
# against an empty log in the same run. Needs about LOG_MIB MiB free in the temp directory.
#
#   sh scripts/history-startup.sh [LOG_MIB] [RUNS]     (defaults: 1024 MiB, 5 runs)
set -eu
cd "$(dirname "$0")/.."
cargo build --release --locked --bin chat-server --example history_startup
exec ./target/release/examples/history_startup "${1:-1024}" "${2:-5}"
