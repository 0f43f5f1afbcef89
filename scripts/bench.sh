#!/usr/bin/env bash
# Fan-out benchmarks: chat-server against a minimal mio fan-out server (this machine's ceiling)
# and an idiomatic tokio chat server (current_thread, and multi-thread with 2 workers), plus
# any server named by $PEER_BIN. Writes BENCHMARKS.md at the repository root.
#
#   scripts/bench.sh           full run: about 25 minutes on a 2-core machine
#   scripts/bench.sh --quick   smaller sizes, one repetition: about 4 minutes
#
# The time budget (BENCH_BUDGET_S, default 1500 s, or 240 s with --quick) starts after the
# release build (seconds when cached; a cold build of the examples takes a few minutes). Work
# that no longer fits is dropped (the report says what and why), so the run always ends.
# BENCH_RUNS (default all: "mixed idle-ws channels overload join search") picks runs, e.g.
# BENCH_RUNS=search to try one section.
#
# Each target runs, per repetition (targets in a rotated order, 3 repetitions):
#   mixed       one channel, clients grown 1k -> 5k -> 10k (telnet and WebSocket half and half
#               for chat-server; telnet only for the baselines); at each size a knee search
#               and fixed offered loads; at 5k also REST queries, churn and 1% stalled readers.
#               Joining N clients to one channel announces every join to every member (N^2/2
#               messages), so repetitions 2 and 3 stop at 5k: the 10k figures have n=1.
#   channels    10,000 telnet clients in 1,000 channels of 10, grown 1k -> 5k -> 10k with
#               idle RSS sampled at each size (the idle RSS per telnet connection), then at
#               10k a knee search and a fixed load
#   idle-ws     (chat-server only, first repetition) 10,000 WebSocket clients, idle RSS at
#               1k / 5k / 10k
#   overload    (first repetition) 1,000 clients in one channel: a knee search, then twice the
#               knee for 10 s and the knee for 10 s: disconnects, loss, delivered/s and how long
#               p99 takes to come back under 100 ms with nothing shed (the generator sheds, and
#               counts, what could not arrive in time instead of queuing it)
#   join        (chat-server only, first repetition) 20,000 telnet clients (fewer when the
#               open-file limit is lower) join one channel: seconds until all joined, server CPU
#   search      (chat-server only, first repetition) a generated 200 MiB log; 1,000 mixed
#               clients at a fixed load, first without, then with one log search after the
#               other (a pattern that matches nothing, so each reads the whole log): search
#               MB/s and chat p99 with and without
# Server and load generator are pinned to different CPUs with taskset when there are two.
#
# PEER_BIN: another server speaking the same telnet text protocol, started as "$PEER_BIN"
# with PEER_PORT set to the port it must listen on (127.0.0.1). Skipped when unset.
set -u

MODE=full
for arg in "$@"; do
    case "$arg" in
        --quick) MODE=quick ;;
        -h | --help)
            sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "bench.sh: unknown argument $arg (use --quick or --help)" >&2
            exit 2
            ;;
    esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
COMMAND="scripts/bench.sh $*"
STAMP=$(date -u +%Y%m%d-%H%M%S)
OUT=$ROOT/target/bench/$STAMP
mkdir -p "$OUT/tmp"
RESULTS=$OUT/results.jsonl
LOG=$OUT/bench.log
META=$OUT/meta.txt
: >"$RESULTS"
: >"$META"

say() { echo "[bench $(date +%H:%M:%S)] $*" | tee -a "$LOG" >&2; }
meta() { printf '%s=%s\n' "$1" "$2" >>"$META"; }

T_BUILD0=$(date +%s)
say "building (cargo build --release --bin chat-server --examples)"
if ! cargo build --release --locked --bin chat-server --examples >>"$LOG" 2>&1; then
    say "build failed; see $LOG"
    tail -20 "$LOG" >&2
    exit 1
fi
BIN=$ROOT/target/release/chat-server
EX=$ROOT/target/release/examples
T0=$(date +%s)
meta build_s $((T0 - T_BUILD0))

if [ "$MODE" = quick ]; then
    BUDGET=${BENCH_BUDGET_S:-240}
    REPS=${BENCH_REPS:-1}
    SIZES=1000,2000
    EXTRA_AT=1000
    FIXED=100000,250000
    EXTRA_LOAD=100000
    CH_CLIENTS=2000
    CH_CHANNELS=200
    CH_SIZES=1000
    CH_FIXED=250000
    STEP_S=0.8
    KNEE_STEPS=4
    KNEE_START=400000
    STALLED_S=1
    OVERLOAD_SIZE=500
    OVERLOAD_S=3
    JOIN_CLIENTS=2000
    SEARCH_LOG_MB=20
    SEARCH_CLIENTS=200
    SEARCH_LOAD=20000
    SEARCH_STEP_S=3
else
    BUDGET=${BENCH_BUDGET_S:-1500}
    REPS=${BENCH_REPS:-3}
    SIZES=1000,5000,10000
    EXTRA_AT=5000
    FIXED=250000,1000000
    EXTRA_LOAD=250000
    CH_CLIENTS=10000
    CH_CHANNELS=1000
    CH_SIZES=1000,5000
    CH_FIXED=1000000
    STEP_S=1
    KNEE_STEPS=9
    KNEE_START=250000
    STALLED_S=3
    OVERLOAD_SIZE=1000
    OVERLOAD_S=10
    JOIN_CLIENTS=20000
    SEARCH_LOG_MB=200
    SEARCH_CLIENTS=1000
    SEARCH_LOAD=100000
    SEARCH_STEP_S=10
fi
BENCH_RUNS=${BENCH_RUNS:-mixed idle-ws channels overload join search}
DEADLINE=$((T0 + BUDGET))
MAX_CLIENTS=${SIZES##*,}
[ "$CH_CLIENTS" -gt "$MAX_CLIENTS" ] && MAX_CLIENTS=$CH_CLIENTS

# File descriptors: the server and the generator each hold one per client.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FDS=$(ulimit -n)
if [ "$FDS" != unlimited ] && [ "$FDS" -lt $((MAX_CLIENTS + 200)) ]; then
    say "open-file limit $FDS is below $((MAX_CLIENTS + 200)); raise it (ulimit -n) for the full sizes"
fi
if [ "$FDS" != unlimited ] && [ "$FDS" -lt $((JOIN_CLIENTS + 200)) ]; then
    say "open-file limit $FDS: the join run uses $((FDS - 200)) clients instead of $JOIN_CLIENTS"
    JOIN_CLIENTS=$((FDS - 200))
fi

# Pinning: server on CPU 1, generator on CPU 0.
PIN_S=()
PIN_G=()
NPROC=$(nproc 2>/dev/null || echo 1)
if command -v taskset >/dev/null 2>&1 && [ "$NPROC" -ge 2 ]; then
    PIN_S=(taskset -c 1)
    PIN_G=(taskset -c 0)
    meta pinning "server on CPU 1, generator on CPU 0 (taskset)"
else
    meta pinning "none (taskset missing or one CPU)"
fi

TOKEN=bench-admin-token-0123456789
CFG=$OUT/tmp/chat-server.json
cat >"$CFG" <<EOF
{"ip":"127.0.0.1","telnet_port":0,"rest_port":0,"websocket_port":0,
 "log_file":"$OUT/tmp/chat.log","admin_token":"$TOKEN",
 "lines_burst":1000000,"lines_per_s":1000000,"max_line_bytes":512}
EOF

# The search run: the same, on a generated log (made when the run starts).
SEARCH_LOG=$OUT/tmp/search.log
SEARCH_CFG=$OUT/tmp/chat-server-search.json
sed "s|$OUT/tmp/chat.log|$SEARCH_LOG|" "$CFG" >"$SEARCH_CFG"
CFG_USE=$CFG

TARGETS=(chat-server mio tokio-ct tokio-mt2)
if [ -n "${PEER_BIN:-}" ]; then
    if [ -x "$PEER_BIN" ]; then TARGETS+=(peer); else say "PEER_BIN=$PEER_BIN is not executable: skipped"; fi
fi

meta mode "$MODE"
meta command "$COMMAND"
meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta nproc "$NPROC"
meta model "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
meta kernel "$(uname -sr)"
meta memory "$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
meta load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
meta commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
meta binary_bytes "$(stat -c %s "$BIN")"
meta budget_s "$BUDGET"
meta reps "$REPS"
meta targets "${TARGETS[*]}"
meta sizes "$SIZES"
meta fixed_loads "$FIXED"
meta step_s "$STEP_S"
meta extra_at "$EXTRA_AT"
meta extra_load "$EXTRA_LOAD"
meta channels_run "$CH_CLIENTS clients in $CH_CHANNELS channels"
meta channels_fixed "$CH_FIXED"
meta peer_bin "${PEER_BIN:-unset}"
meta overload "$OVERLOAD_SIZE clients, twice the knee for $OVERLOAD_S s, then the knee for $OVERLOAD_S s"
meta overload_s "$OVERLOAD_S"
meta join_clients "$JOIN_CLIENTS"
meta search_log_mib "$SEARCH_LOG_MB"
meta search_clients "$SEARCH_CLIENTS"
meta search_load "$SEARCH_LOAD"
meta runs "$BENCH_RUNS"
meta fd_limit "$FDS"

SPID=
TPORT=
WPORT=
RPORT=

now() { date +%s; }
left() { echo $((DEADLINE - $(now))); }

# start_server TARGET: starts it pinned, sets SPID and the ports; returns 1 on failure.
start_server() {
    local target=$1 err=$OUT/tmp/server.err
    : >"$err"
    TPORT=
    WPORT=
    RPORT=
    case $target in
        chat-server)
            rm -f "$OUT/tmp/chat.log"
            "${PIN_S[@]}" "$BIN" -c "$CFG_USE" 2>"$err" &
            ;;
        mio) "${PIN_S[@]}" "$EX/baseline_mio" 2>"$err" & ;;
        tokio-ct) "${PIN_S[@]}" "$EX/baseline_tokio" --flavor current_thread 2>"$err" & ;;
        tokio-mt2) "${PIN_S[@]}" "$EX/baseline_tokio" --flavor multi --workers 2 2>"$err" & ;;
        peer)
            TPORT=$((20000 + RANDOM % 10000))
            PEER_PORT=$TPORT "${PIN_S[@]}" "$PEER_BIN" >"$err" 2>&1 &
            ;;
    esac
    SPID=$!
    local i
    for i in $(seq 100); do
        if [ "$target" = peer ]; then
            (exec 3<>"/dev/tcp/127.0.0.1/$TPORT") 2>/dev/null && break
        else
            TPORT=$(sed -n 's/.*telnet listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$err" | head -1)
            if [ "$target" = chat-server ]; then
                WPORT=$(sed -n 's/.*websocket listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$err" | head -1)
                RPORT=$(sed -n 's/.*rest listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$err" | head -1)
                [ -n "$TPORT" ] && [ -n "$WPORT" ] && [ -n "$RPORT" ] && break
            elif [ -n "$TPORT" ]; then
                break
            fi
        fi
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.05
    done
    if [ -z "$TPORT" ] || ! kill -0 "$SPID" 2>/dev/null; then
        say "$target did not start: $(tail -3 "$err" | tr '\n' ' ')"
        stop_server
        return 1
    fi
    return 0
}

stop_server() {
    [ -n "$SPID" ] || return 0
    kill -TERM "$SPID" 2>/dev/null
    local i
    for i in $(seq 60); do
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$SPID" 2>/dev/null
    wait "$SPID" 2>/dev/null
    SPID=
}
trap 'stop_server; exit 130' INT TERM

# Seconds each (target, run) took in an earlier repetition: the estimate for the next one.
declare -A COST
declare -A COST_SMALL

# run_gen TARGET RUN REP MAX_S ARGS...: the load generator against the running server.
run_gen() {
    local target=$1 run=$2 rep=$3 max_s=$4
    shift 4
    local addrs=(--telnet "127.0.0.1:$TPORT")
    if [ "$target" = chat-server ]; then
        addrs+=(--ws "127.0.0.1:$WPORT" --rest "127.0.0.1:$RPORT" --token "$TOKEN")
    fi
    timeout $((max_s + 10)) "${PIN_G[@]}" "$EX/loadgen" "${addrs[@]}" --server-pid "$SPID" \
        --target "$target" --tag "run=$run" --tag "rep=$rep" --knee-hints "$RESULTS.hints" \
        --max-seconds "$max_s" --step-s "${STEP_OVERRIDE:-$STEP_S}" --knee-steps "$KNEE_STEPS" \
        --knee-start "$KNEE_START" "$@" >>"$RESULTS" 2>>"$LOG"
    local rc=$?
    [ $rc -ne 0 ] && say "  loadgen exited with $rc for $target/$run (see $LOG)"
    return 0
}

# make_search_log: a log of SEARCH_LOG_MB MiB of chat records (none matches the search).
make_search_log() {
    [ -s "$SEARCH_LOG" ] && return 0
    python3 scripts/filler-log.py "$SEARCH_LOG" "$SEARCH_LOG_MB"
}

# attempt TARGET RUN REP: one run on a fresh server, if the budget allows it.
attempt() {
    local target=$1 run=$2 rep=$3 args=() small=0
    case " $BENCH_RUNS " in *" $run "*) ;; *) return ;; esac
    local est=${COST[$target/$run]:-0} remaining
    remaining=$(left)
    case $run in
        mixed)
            local extras="stalled:$EXTRA_LOAD"
            [ "$target" = chat-server ] && extras="rest:$EXTRA_LOAD,churn:$EXTRA_LOAD,$extras"
            [ "$target" != chat-server ] && extras="churn:$EXTRA_LOAD,$extras"
            local total=${SIZES##*,} sizes=$SIZES
            # After the first repetition, or when there is not enough time for the largest
            # size (its join storm dominates), drop it.
            if [ "$rep" -gt 1 ] || { [ "$est" -gt 0 ] && [ "$remaining" -lt "$est" ]; }; then
                total=$(echo "$SIZES" | awk -F, '{print $(NF-1)}')
                sizes=${SIZES%,*}
                small=1
                est=${COST_SMALL[$target]:-$((est / 3))}
            fi
            if [ "$target" = chat-server ]; then
                args=(--telnet-clients $((total / 2)) --ws-clients $((total - total / 2)))
            else
                args=(--telnet-clients "$total")
            fi
            args+=(--sizes "$sizes" --phases "knee,fixed:${FIXED//,/,fixed:}"
                --extra-at "$EXTRA_AT" --extra-phases "$extras" --stalled-s "$STALLED_S")
            ;;
        channels)
            # Load only at the full size: the smaller sizes give clean idle RSS figures.
            args=(--telnet-clients "$CH_CLIENTS" --channels "$CH_CHANNELS" --senders "$CH_CHANNELS"
                --sizes "$CH_SIZES" --phases-at "$CH_CLIENTS" --phases "knee,fixed:$CH_FIXED")
            ;;
        idle-ws)
            args=(--ws-clients "$CH_CLIENTS" --channels "$CH_CHANNELS" --sizes "$CH_SIZES")
            ;;
        overload)
            if [ "$target" = chat-server ]; then
                args=(--telnet-clients $((OVERLOAD_SIZE / 2)) --ws-clients $((OVERLOAD_SIZE - OVERLOAD_SIZE / 2)))
            else
                args=(--telnet-clients "$OVERLOAD_SIZE")
            fi
            args+=(--phases "knee,overload" --overload-s "$OVERLOAD_S" --recover-s "$OVERLOAD_S")
            ;;
        join)
            args=(--telnet-clients "$JOIN_CLIENTS" --setup-timeout 600)
            ;;
        search)
            if ! command -v python3 >/dev/null 2>&1; then
                say "skip search: python3 is needed to generate the log"
                return
            fi
            make_search_log || return
            meta search_log_bytes "$(stat -c %s "$SEARCH_LOG")"
            local STEP_OVERRIDE=$SEARCH_STEP_S
            args=(--telnet-clients $((SEARCH_CLIENTS / 2)) --ws-clients $((SEARCH_CLIENTS - SEARCH_CLIENTS / 2))
                --phases "fixed:$SEARCH_LOAD,rest:$SEARCH_LOAD"
                --rest-pattern no-such-text-zz --rest-concurrency 1 --rest-interval-ms 1)
            ;;
    esac
    if [ "$remaining" -lt 15 ] || { [ "$est" -gt 0 ] && [ "$remaining" -lt "$est" ]; }; then
        say "skip $target/$run rep $rep: ${remaining}s left, needs about ${est}s"
        printf '{"scenario":"skipped","target":"%s","run":"%s","rep":"%s","left_s":%s,"estimate_s":%s}\n' \
            "$target" "$run" "$rep" "$remaining" "$est" >>"$RESULTS"
        return
    fi
    CFG_USE=$CFG
    [ "$run" = search ] && CFG_USE=$SEARCH_CFG
    start_server "$target" || return
    if [ "$target" = chat-server ] && [ "$rep" = 1 ] && [ "$run" = mixed ]; then
        # No clients yet: the idle process (SPEC: <= 4 MiB RSS).
        sleep 0.3
        meta idle_rss_kib "$(awk '/VmRSS/ {print $2}' "/proc/$SPID/status")"
    fi
    local t=$(now) cap=$((remaining - 5))
    [ $cap -gt 400 ] && cap=400
    say "$target/$run rep $rep$([ $small = 1 ] && echo ' (without the largest size)') (${remaining}s left)"
    run_gen "$target" "$run" "$rep" "$cap" "${args[@]}"
    stop_server
    cp "$RESULTS" "$RESULTS.hints"
    local took=$(($(now) - t))
    if [ $small = 1 ]; then
        COST_SMALL[$target]=$took
    else
        COST[$target/$run]=$took
        # The run without its largest size costs about a third (the 10k join storm dominates).
        [ "$run" = mixed ] && [ -z "${COST_SMALL[$target]:-}" ] && COST_SMALL[$target]=$((took / 3))
    fi
}

say "mode $MODE: ${REPS} repetition(s), budget ${BUDGET}s, targets ${TARGETS[*]}; results in $OUT"
: >"$RESULTS.hints"
n=${#TARGETS[@]}
for rep in $(seq "$REPS"); do
    # Rotate the target order each repetition.
    order=()
    for i in $(seq 0 $((n - 1))); do order+=("${TARGETS[$(((i + rep - 1) % n))]}"); done
    for target in "${order[@]}"; do attempt "$target" mixed "$rep"; done
    [ "$rep" = 1 ] && attempt chat-server idle-ws "$rep"
    for target in "${order[@]}"; do attempt "$target" channels "$rep"; done
    if [ "$rep" = 1 ]; then
        for target in "${order[@]}"; do attempt "$target" overload "$rep"; done
        attempt chat-server join "$rep"
        attempt chat-server search "$rep"
    fi
done
meta load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
meta elapsed_s $(($(now) - T0))
rm -rf "$OUT/tmp" "$RESULTS.hints"

if "$EX/bench_report" --results "$RESULTS" --meta "$META" --out "$ROOT/BENCHMARKS.md" 2>>"$LOG"; then
    say "wrote BENCHMARKS.md ($(($(now) - T0))s after the build; raw results: $RESULTS)"
else
    say "bench_report failed; see $LOG"
    exit 1
fi
