#!/bin/sh
# Runs every cargo-fuzz target in fuzz/ for FUZZ_RUNS executions each: what `make fuzz` runs.
#
#   FUZZ_RUNS       executions per target (default 1000000)
#   FUZZ_TARGETS    space-separated targets (default: all five)
#   FUZZ_SANITIZER  cargo fuzz -s value (default none: builds on stable, no nightly needed;
#                   address needs FUZZ_TOOLCHAIN=nightly)
#   FUZZ_TOOLCHAIN  rustup toolchain for cargo (default stable when rustup is installed)
#   FUZZ_ARGS       extra libFuzzer flags, e.g. "-max_total_time=60"
#
# Each target starts from its committed seeds (fuzz/corpus/<target>/) plus a working corpus
# that grows in fuzz/work/<target>/ (ignored by git). The libFuzzer output goes to
# fuzz/work/<target>.log; a summary line per target is printed. A crash (panic, timeout of
# 10 s per input, or out-of-memory) is saved by libFuzzer under fuzz/artifacts/<target>/;
# every target still runs, and the script exits 1 at the end if any target crashed (or
# failed to build).
#
# Reproduce a crash:  cargo fuzz run <target> -s none fuzz/artifacts/<target>/crash-...
# Minimise it:        cargo fuzz tmin <target> -s none fuzz/artifacts/<target>/crash-...
set -eu

cd "$(dirname "$0")/.."
root=$(pwd)

FUZZ_RUNS=${FUZZ_RUNS:-1000000}
FUZZ_TARGETS=${FUZZ_TARGETS:-"telnet_framer http_framing websocket_input command_parser resp_decoder"}
FUZZ_SANITIZER=${FUZZ_SANITIZER:-none}
FUZZ_ARGS=${FUZZ_ARGS:-}
if [ -z "${FUZZ_TOOLCHAIN+x}" ] && command -v rustup >/dev/null 2>&1; then
    FUZZ_TOOLCHAIN=stable
fi
toolchain=${FUZZ_TOOLCHAIN:+"+$FUZZ_TOOLCHAIN"}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

echo "fuzz: building targets (sanitizer: $FUZZ_SANITIZER)"
# shellcheck disable=SC2086 # $toolchain is empty or one word
cargo $toolchain fuzz build -s "$FUZZ_SANITIZER"

failed=""
for target in $FUZZ_TARGETS; do
    work="$root/fuzz/work/$target"
    log="$root/fuzz/work/$target.log"
    mkdir -p "$work" "$root/fuzz/artifacts/$target"
    echo "fuzz: $target: $FUZZ_RUNS runs (log: fuzz/work/$target.log)"
    start=$(date +%s)
    # shellcheck disable=SC2086 # $toolchain and $FUZZ_ARGS are word lists on purpose
    if cargo $toolchain fuzz run "$target" -s "$FUZZ_SANITIZER" \
        "$work" "$root/fuzz/corpus/$target" -- \
        -runs="$FUZZ_RUNS" -timeout=10 -print_final_stats=1 $FUZZ_ARGS >"$log" 2>&1; then
        status=ok
    elif grep -q "^INFO: Seed:" "$log"; then
        status=CRASHED
        failed="$failed $target"
    else
        status="BUILD FAILED"
        failed="$failed $target"
    fi
    end=$(date +%s)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    echo "fuzz: $target: $status: ${runs:-?} runs in $((end - start)) s (${rate:-?} exec/s)"
    if [ "$status" != ok ]; then
        grep -E "panicked at|^SUMMARY|Test unit written to|ERROR: libFuzzer|^error" "$log" | head -n 20 || true
        tail -n 30 "$log"
    fi
done

if [ -n "$failed" ]; then
    echo "fuzz: FAILED:$failed (artifacts under fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: all targets passed"
