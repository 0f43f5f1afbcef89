#!/usr/bin/env bash
# Cluster benchmark: NODES chat-server processes sharing one chat through their own
# redis-server, against one single-process server (the baseline) at the same offered load, in
# the same run. Writes BENCHMARKS-cluster.md at the repository root (`make bench-cluster`).
#
#   scripts/bench-cluster.sh [--nodes N] [--load D] [--step-s S] [--steps K] [--rounds R]
#                            [--out FILE]
#
# Reported: delivered/s and p99 in total and per node, cross-node order violations and loss
# (both must be 0), Redis CPU and appends/s, server CPU, and the p99 overhead of the cluster
# against the single process at the same offered load (target: at most +5 ms). Exits 0 when
# both ran and order and loss are clean (the p99 verdict is in the report), 1 otherwise.
#
# Settings (environment; the options above override them):
#   NODES=3               nodes in the cluster
#   LOAD=30000            offered deliveries/s (each message goes to every member of its
#                         channel; senders are spread over the channels and the nodes)
#   ROUNDS=3 STEPS=3 STEP_S=3
#                         each round starts a fresh cluster (redis-server and nodes) and a
#                         fresh single process and runs STEPS fixed steps of STEP_S seconds
#                         (each followed by a drain) on each, in alternating order (cluster
#                         first in odd rounds); figures are medians over all steps
#   TELNET_CLIENTS=150 WS_CLIENTS=150 CHANNELS=3 SENDERS=30
#                         members (round-robin over the nodes within each channel)
#   NODE_CPUS="0 0 1"     one taskset CPU list per node (cycled when shorter than NODES)
#   REDIS_CPU=1 GEN_CPU=1 taskset CPU lists of redis-server and the load generator
#   BASE_CPU              CPU list of the single-process baseline (default: the first node's)
#   REDIS_SERVER          the redis-server binary (default: the one on PATH)
#   REDIS_PASSWORD        set to require a password (requirepass; the nodes send it)
#   LEASE_MS=15000        the nodes' lease
#   BENCH_TIMEOUT_S=170   hard limit for the whole run after the build; work that no longer
#                         fits is skipped (the report says so)
# Default CPU lists: with at least NODES + 2 CPUs (and none of the lists set) one CPU each
# (nodes 0..N-1, Redis N, generator N+1); with fewer, nothing is pinned: on a small machine
# pinning five processes to two CPUs makes the CPU each lands on (and what else runs there)
# matter more than the cluster does. An empty list leaves that process unpinned.
#
# Every process is started by this script, on loopback ports it picked, in a temporary
# directory; all are stopped by PID when it ends (also on Ctrl-C).
set -u

usage() { sed -n '2,38p' "$0" | sed 's/^# \{0,1\}//'; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
COMMAND="scripts/bench-cluster.sh $*"
OUT_MD=$ROOT/BENCHMARKS-cluster.md
while [ $# -gt 0 ]; do
    case "$1" in
        --nodes) NODES=$2; shift 2 ;;
        --load) LOAD=$2; shift 2 ;;
        --step-s) STEP_S=$2; shift 2 ;;
        --steps) STEPS=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --out) OUT_MD=$2; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench-cluster.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
NODES=${NODES:-3}
LOAD=${LOAD:-30000}
STEP_S=${STEP_S:-3}
STEPS=${STEPS:-3}
ROUNDS=${ROUNDS:-3}
TELNET_CLIENTS=${TELNET_CLIENTS:-150}
WS_CLIENTS=${WS_CLIENTS:-150}
CHANNELS=${CHANNELS:-3}
SENDERS=${SENDERS:-30}
LEASE_MS=${LEASE_MS:-15000}
TIMEOUT_S=${BENCH_TIMEOUT_S:-170}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_PASSWORD=${REDIS_PASSWORD:-}
for v in NODES LOAD STEPS ROUNDS TELNET_CLIENTS WS_CLIENTS CHANNELS SENDERS LEASE_MS TIMEOUT_S; do
    case ${!v} in
        '' | *[!0-9]*) echo "bench-cluster.sh: $v must be a whole number, got '${!v}'" >&2; exit 2 ;;
    esac
done
if [ "$NODES" -lt 1 ] || [ "$NODES" -gt 64 ]; then
    echo "bench-cluster.sh: NODES must be 1 to 64" >&2
    exit 2
fi
if ! command -v "$REDIS_SERVER" >/dev/null 2>&1; then
    echo "bench-cluster.sh: $REDIS_SERVER not found: install redis-server (Debian package redis-server) or set REDIS_SERVER" >&2
    exit 2
fi

STAMP=$(date -u +%Y%m%d-%H%M%S)
OUT=$ROOT/target/bench-cluster/$STAMP
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-cluster.XXXXXX")
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
LOG=$OUT/bench.log
META=$OUT/meta.txt
: >"$RESULTS"
: >"$META"
say() { echo "[bench-cluster $(date +%H:%M:%S)] $*" | tee -a "$LOG" >&2; }
meta() { printf '%s=%s\n' "$1" "$2" >>"$META"; }

# --- processes, stopped by PID -------------------------------------------------------------
PIDS=()
stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 60); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
}
stop_all() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[$i]}"; done
    PIDS=()
}
cleanup() {
    stop_all
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- build -----------------------------------------------------------------------------------
say "building (cargo build --release --bin chat-server --example loadgen --example bench_report)"
if ! cargo build --release --locked --bin chat-server --example loadgen --example bench_report >>"$LOG" 2>&1; then
    say "build failed; see $LOG"
    tail -20 "$LOG" >&2
    exit 1
fi
BIN=$ROOT/target/release/chat-server
EX=$ROOT/target/release/examples
T0=$(date +%s)
DEADLINE=$((T0 + TIMEOUT_S))
left() { echo $((DEADLINE - $(date +%s))); }

# --- CPU sets --------------------------------------------------------------------------------
NPROC=$(nproc 2>/dev/null || echo 1)
if [ "$NPROC" -ge $((NODES + 2)) ] && [ -z "${NODE_CPUS+x}${REDIS_CPU+x}${GEN_CPU+x}" ]; then
    # One CPU each: nodes 0..N-1, Redis N, generator N+1.
    NODE_CPUS=$(seq -s ' ' 0 $((NODES - 1)))
    REDIS_CPU=$NODES
    GEN_CPU=$((NODES + 1))
fi
NODE_CPUS=${NODE_CPUS:-}
REDIS_CPU=${REDIS_CPU:-}
GEN_CPU=${GEN_CPU:-}
read -r -a NODE_CPU_LIST <<<"$NODE_CPUS"
BASE_CPU=${BASE_CPU-${NODE_CPU_LIST[0]:-}}
node_cpu() {
    [ ${#NODE_CPU_LIST[@]} -gt 0 ] && echo "${NODE_CPU_LIST[$(($1 % ${#NODE_CPU_LIST[@]}))]}"
    return 0
}
if [ -n "$NODE_CPUS$REDIS_CPU$GEN_CPU$BASE_CPU" ] && ! command -v taskset >/dev/null 2>&1; then
    echo "bench-cluster.sh: CPU lists given but taskset is missing (util-linux)" >&2
    exit 2
fi
# pinned CPULIST: sets PINNED to the command prefix that pins to CPULIST (empty for an empty
# list). Used as `"${PINNED[@]}" cmd &`, so that $! is the PID of cmd itself.
pinned() {
    PINNED=()
    if [ -n "$1" ]; then PINNED=(taskset -c "$1"); fi
}
cpu_desc() { if [ -n "$1" ]; then echo "CPU $1"; else echo "any CPU"; fi; }
nc=""
for ((k = 0; k < NODES; k++)); do nc+="$(cpu_desc "$(node_cpu $k)"), "; done
PIN_DESC="nodes: ${nc%, }; Redis: $(cpu_desc "$REDIS_CPU"); generator: $(cpu_desc "$GEN_CPU"); single-process baseline: $(cpu_desc "$BASE_CPU")"

# --- ports -----------------------------------------------------------------------------------
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() {
    local p i
    for i in $(seq 50); do
        p=$((20000 + RANDOM % 30000))
        port_busy "$p" || { echo "$p"; return 0; }
    done
    return 1
}

# --- redis-server ----------------------------------------------------------------------------
REDIS_PORT=
REDIS_PID=
rcli() {
    if [ -n "$REDIS_PASSWORD" ]; then
        REDISCLI_AUTH=$REDIS_PASSWORD redis-cli -p "$REDIS_PORT" "$@"
    else
        redis-cli -p "$REDIS_PORT" "$@"
    fi
}
start_redis() {
    local try i args
    STARTS=$((STARTS + 1))
    local dir=$TMP/redis$STARTS
    mkdir -p "$dir"
    for try in 1 2 3 4 5; do
        REDIS_PORT=$(pick_port) || return 1
        args=(--port "$REDIS_PORT" --bind 127.0.0.1 --protected-mode yes --dir "$dir"
            --appendonly yes --appendfsync everysec --maxmemory-policy noeviction --save ''
            --daemonize no --logfile "$dir/redis.log")
        [ -n "$REDIS_PASSWORD" ] && args+=(--requirepass "$REDIS_PASSWORD")
        pinned "$REDIS_CPU"
        "${PINNED[@]}" "$REDIS_SERVER" "${args[@]}" &
        REDIS_PID=$!
        PIDS+=("$REDIS_PID")
        for i in $(seq 100); do
            kill -0 "$REDIS_PID" 2>/dev/null || break
            if [ "$(rcli ping 2>/dev/null)" = PONG ]; then return 0; fi
            sleep 0.05
        done
        say "redis-server on port $REDIS_PORT did not start (try $try): $(tail -2 "$dir/redis.log" 2>/dev/null | tr '\n' ' ')"
        stop_pid "$REDIS_PID"
    done
    return 1
}

# --- chat-server nodes -----------------------------------------------------------------------
TOKEN=bench-admin-token-0123456789
STARTS=0
declare -a NPID TPORT WPORT RPORT
# start_node K CPUS CLUSTER(0|1): starts node K; sets NPID/TPORT/WPORT/RPORT[K].
start_node() {
    local k=$1 cpus=$2 cluster=$3 extra="" i
    STARTS=$((STARTS + 1))
    local cfg=$TMP/start$STARTS.json err=$TMP/start$STARTS.err
    if [ "$cluster" = 1 ]; then
        extra=",\"cluster\":{\"redis\":\"127.0.0.1:$REDIS_PORT\",\"node_id\":\"n$((k + 1))\",\"lease_ms\":$LEASE_MS"
        [ -n "$REDIS_PASSWORD" ] && extra+=",\"redis_password\":\"$REDIS_PASSWORD\""
        extra+="}"
    fi
    cat >"$cfg" <<EOF
{"ip":"127.0.0.1","telnet_port":0,"rest_port":0,"websocket_port":0,
 "log_file":"$TMP/start$STARTS.log","admin_token":"$TOKEN",
 "lines_burst":1000000,"lines_per_s":1000000,"max_line_bytes":512$extra}
EOF
    : >"$err"
    pinned "$cpus"
    "${PINNED[@]}" "$BIN" -c "$cfg" 2>"$err" &
    NPID[k]=$!
    PIDS+=("${NPID[k]}")
    for i in $(seq 200); do
        TPORT[k]=$(sed -n 's/.*telnet listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$err" | head -1)
        WPORT[k]=$(sed -n 's/.*websocket listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$err" | head -1)
        RPORT[k]=$(sed -n 's/.*rest listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$err" | head -1)
        [ -n "${TPORT[k]}" ] && [ -n "${WPORT[k]}" ] && [ -n "${RPORT[k]}" ] && return 0
        kill -0 "${NPID[k]}" 2>/dev/null || break
        sleep 0.05
    done
    FAIL_WHY="node $k did not start: $(tail -3 "$err" | tr '\n' ' ' | cut -c1-300)"
    return 1
}

# healthy K: GET /healthz on node K answers 200 (a cluster node: its Redis link is up).
healthy() {
    local code
    code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:${RPORT[$1]}/healthz" 2>/dev/null)
    [ "$code" = 200 ]
}

# run_load TARGET N ROUND: the load generator against nodes 0..N-1.
run_load() {
    local target=$1 n=$2 round=$3 k tl="" wl="" pl="" phases="" i max_s
    for ((k = 0; k < n; k++)); do
        tl+="127.0.0.1:${TPORT[k]},"
        wl+="127.0.0.1:${WPORT[k]},"
        pl+="${NPID[k]},"
    done
    for ((i = 0; i < STEPS; i++)); do phases+="fixed:$LOAD,"; done
    # Setup (30 s at most), then each step, its drain and a backlog wait at most.
    max_s=$((35 + STEPS * (3 * STEP_S + 12)))
    [ "$max_s" -le $(($(left) - 5)) ] || max_s=$(($(left) - 5))
    [ "$max_s" -gt 10 ] || { FAIL_WHY="no time left"; return 1; }
    local args=(--telnet "${tl%,}" --ws "${wl%,}" --server-pid "${pl%,}"
        --telnet-clients "$TELNET_CLIENTS" --ws-clients "$WS_CLIENTS" --channels "$CHANNELS"
        --senders "$SENDERS" --phases "${phases%,}" --step-s "$STEP_S" --order-check
        --target "$target" --tag "run=$target" --tag "round=$round" --setup-timeout 30 --max-seconds "$max_s")
    [ "$target" = cluster ] && args+=(--redis "127.0.0.1:$REDIS_PORT")
    [ "$target" = cluster ] && [ -n "$REDIS_PASSWORD" ] && args+=(--redis-password "$REDIS_PASSWORD")
    pinned "$GEN_CPU"
    timeout $((max_s + 10)) "${PINNED[@]}" "$EX/loadgen" "${args[@]}" >>"$RESULTS" 2>>"$LOG"
    local rc=$?
    [ $rc -eq 0 ] && return 0
    FAIL_WHY="the load generator exited with $rc (see ${LOG#"$ROOT"/})"
    if grep -q "^\[$target\] .*barrier .*TIMED OUT" "$LOG"; then
        FAIL_WHY="the barrier message sent on the first node did not reach every member within 30 s"
        [ "$n" -gt 1 ] && FAIL_WHY+=": the nodes do not share one chat"
    fi
    return 1
}

# --- meta --------------------------------------------------------------------------------------
meta command "$COMMAND"
meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
meta nproc "$NPROC"
meta model "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
meta kernel "$(uname -sr)"
meta memory "$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
meta load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
meta busy_start "$(ps -eo pcpu=,comm= --sort=-pcpu 2>/dev/null | head -5 | awk '{printf "%s%s (%s%%)", (NR>1?", ":""), $2, $1}')"
meta nodes "$NODES"
meta pinning "$PIN_DESC"
meta load "$LOAD"
meta step_s "$STEP_S"
meta steps "$STEPS"
meta rounds "$ROUNDS"
meta clients "$TELNET_CLIENTS telnet + $WS_CLIENTS WebSocket in $CHANNELS channel(s), $SENDERS senders"
meta lease_ms "$LEASE_MS"
meta redis_version "$("$REDIS_SERVER" --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')"
meta redis_conf "appendonly yes, appendfsync everysec, maxmemory-policy noeviction, save '', bind 127.0.0.1$([ -n "$REDIS_PASSWORD" ] && echo ', requirepass')"

# --- rounds ----------------------------------------------------------------------------------
# Each round runs the cluster (a fresh redis-server and fresh nodes) and the single process,
# one after the other, in alternating order (ABBA...), so that both meet the same background.
CLUSTER_STATUS=ok
BASE_STATUS=ok
CLUSTER_RAN=0
BASE_RAN=0

# cluster_round R: one round of the cluster; sets CLUSTER_STATUS on failure.
cluster_round() {
    local r=$1 k i up
    FAIL_WHY=
    say "round $r, cluster: redis-server and $NODES node(s) ($(left)s left)"
    if ! start_redis; then
        CLUSTER_STATUS="redis-server did not start"
    else
        for ((k = 0; k < NODES; k++)); do
            if ! start_node "$k" "$(node_cpu $k)" 1; then
                CLUSTER_STATUS=$FAIL_WHY
                break
            fi
        done
    fi
    if [ "$CLUSTER_STATUS" = ok ]; then
        # Every node's Redis link must be up (/healthz 200) before the clients come.
        for i in $(seq 200); do
            up=0
            for ((k = 0; k < NODES; k++)); do healthy "$k" && up=$((up + 1)); done
            [ "$up" = "$NODES" ] && break
            sleep 0.1
        done
        [ "$up" = "$NODES" ] || CLUSTER_STATUS="only $up of $NODES nodes answered /healthz with 200 within 20 s"
    fi
    if [ "$CLUSTER_STATUS" = ok ]; then
        run_load cluster "$NODES" "$r" || CLUSTER_STATUS=$FAIL_WHY
        meta redis_info_memory "$(rcli info memory 2>/dev/null | sed -n 's/^used_memory_human:\(.*\)\r$/\1/p')"
        meta redis_stream_len "$(rcli xlen '{chat}:log' 2>/dev/null)"
    fi
    if [ "$CLUSTER_STATUS" != ok ]; then
        say "cluster run failed: $CLUSTER_STATUS"
        keep_logs "$r-cluster"
    fi
    stop_all
}

# keep_logs NAME: copies the nodes' stderr and Redis's log of this start next to the results.
keep_logs() {
    local dir=$OUT/logs-$1 f
    mkdir -p "$dir"
    for f in "$TMP"/start*.err "$TMP"/redis*/redis.log; do
        [ -f "$f" ] && cp "$f" "$dir/$(basename "$(dirname "$f")")-$(basename "$f")"
    done
    say "  the nodes' and Redis's logs are in ${dir#"$ROOT"/}"
}

# single_round R: one round of the single-process baseline; sets BASE_STATUS on failure.
single_round() {
    local r=$1
    FAIL_WHY=
    say "round $r, single process ($(left)s left)"
    if ! start_node 0 "$BASE_CPU" 0; then
        BASE_STATUS=$FAIL_WHY
    else
        run_load single 1 "$r" || BASE_STATUS=$FAIL_WHY
    fi
    if [ "$BASE_STATUS" != ok ]; then
        say "baseline run failed: $BASE_STATUS"
        keep_logs "$r-single"
    fi
    stop_all
}

say "$ROUNDS round(s) of $STEPS x ${STEP_S}s at $LOAD deliveries/s; $PIN_DESC"
NEED=$((STEPS * (STEP_S + 2) + 10))
for ((r = 1; r <= ROUNDS; r++)); do
    if [ $((r % 2)) = 1 ]; then order="cluster single"; else order="single cluster"; fi
    for what in $order; do
        if [ "$(left)" -lt "$NEED" ]; then
            say "round $r, $what: skipped, $(left)s left (needs about ${NEED}s)"
            meta "skipped_r${r}_$what" "$(left)s left"
            continue
        fi
        case $what in
            cluster) [ "$CLUSTER_STATUS" = ok ] && cluster_round "$r" && CLUSTER_RAN=1 ;;
            single) [ "$BASE_STATUS" = ok ] && single_round "$r" && BASE_RAN=1 ;;
        esac
    done
done
[ "$CLUSTER_STATUS" = ok ] && [ "$CLUSTER_RAN" = 0 ] && CLUSTER_STATUS="not run: no time left"
[ "$BASE_STATUS" = ok ] && [ "$BASE_RAN" = 0 ] && BASE_STATUS="not run: no time left"
meta cluster_status "$CLUSTER_STATUS"
meta baseline_status "$BASE_STATUS"
meta load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
meta elapsed_s $(($(date +%s) - T0))

if "$EX/bench_report" --cluster --results "$RESULTS" --meta "$META" --out "$OUT_MD" 2>>"$LOG"; then
    say "wrote $(basename "$OUT_MD") ($(($(date +%s) - T0))s after the build; raw results: $RESULTS)"
    sed -n '/^## Result/,/^## /p' "$OUT_MD" | sed '$d'
else
    say "bench_report failed; see $LOG"
    exit 1
fi
[ "$CLUSTER_STATUS" = ok ] && [ "$BASE_STATUS" = ok ] && grep -q '^<!-- checks: pass -->' "$OUT_MD"
