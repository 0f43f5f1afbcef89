#!/usr/bin/env bash
# Syscalls per delivery near the fan-out knee, for one server at one fixed load.
#
#   scripts/knee-syscalls.sh TARGET CLIENTS LOAD [WS_CLIENTS]
#
# TARGET: chat-server, mio (examples/baseline_mio) or tokio-ct (examples/baseline_tokio,
# current_thread); CLIENTS telnet clients in one channel (plus WS_CLIENTS WebSocket clients,
# chat-server only), one sender; LOAD offered deliveries/s for one 8 s step. The server runs
# pinned to CPU 1 and the load generator to CPU 0, as in scripts/bench.sh. While the step runs,
# `perf stat` counts the server's system calls for 3 s (root or perf_event_paranoid <= 1), and
# the script prints them per second, per loop pass (epoll_wait) and per delivery.
#
# CHAT_SERVER_BIN overrides the chat-server binary (to compare two builds). Uses the release
# builds in target/release (cargo build --release --bin chat-server --examples).
set -u
[ $# -ge 3 ] || { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
TARGET=$1 CLIENTS=$2 LOAD=$3 WS=${4:-0}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
EX=$ROOT/target/release/examples
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cat >"$TMP/cfg.json" <<EOF
{"ip":"127.0.0.1","telnet_port":0,"rest_port":0,"websocket_port":0,
 "log_file":"$TMP/chat.log","lines_burst":1000000,"lines_per_s":1000000,"max_line_bytes":512}
EOF
case $TARGET in
    chat-server) taskset -c 1 "${CHAT_SERVER_BIN:-$ROOT/target/release/chat-server}" -c "$TMP/cfg.json" 2>"$TMP/err" & ;;
    mio) taskset -c 1 "$EX/baseline_mio" 2>"$TMP/err" & ;;
    tokio-ct) taskset -c 1 "$EX/baseline_tokio" --flavor current_thread 2>"$TMP/err" & ;;
    *) echo "unknown target $TARGET" >&2; exit 2 ;;
esac
SPID=$!
TP= WP=
for _ in $(seq 100); do
    TP=$(sed -n 's/.*telnet listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/err" | head -1)
    WP=$(sed -n 's/.*websocket listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/err" | head -1)
    [ -n "$TP" ] && { [ "$TARGET" != chat-server ] || [ -n "$WP" ]; } && break
    sleep 0.05
done
[ -n "$TP" ] || { echo "$TARGET did not start" >&2; kill "$SPID"; exit 1; }
ADDR=(--telnet "127.0.0.1:$TP")
[ "$WS" -gt 0 ] && ADDR+=(--ws "127.0.0.1:$WP")
EVENTS=syscalls:sys_enter_writev,syscalls:sys_enter_write,syscalls:sys_enter_epoll_wait
EVENTS=$EVENTS,syscalls:sys_enter_recvfrom,syscalls:sys_enter_read,task-clock
# The step starts after the set-up (a few seconds at most); count 3 s in its middle.
(sleep "${PERF_DELAY:-4}" && perf stat -x, -e "$EVENTS" -p "$SPID" -- sleep 3 2>"$TMP/perf") &
PERF=$!
taskset -c 0 "$EX/loadgen" "${ADDR[@]}" --server-pid "$SPID" --telnet-clients "$CLIENTS" \
    --ws-clients "$WS" --phases "fixed:$LOAD" --step-s 8 2>"$TMP/gen" >/dev/null
wait "$PERF"
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
grep -E '\] fixed:' "$TMP/gen" | sed 's/ gaps .* srv-cpu/ srv-cpu/'
awk -F, -v load="$LOAD" -v clients="$((CLIENTS + WS))" '
    { n[$3] = $1 }
    END {
        s = 3; passes = n["syscalls:sys_enter_epoll_wait"] / s; wv = n["syscalls:sys_enter_writev"] / s
        printf "per second: writev %.0f, write %.0f, epoll_wait %.0f, recvfrom+read %.0f, CPU %.2f\n",
            wv, n["syscalls:sys_enter_write"] / s, passes,
            (n["syscalls:sys_enter_recvfrom"] + n["syscalls:sys_enter_read"]) / s,
            n["task-clock"] / 1000 / s
        if (passes > 0 && wv > 0)
            printf "per loop pass: writev %.0f, messages %.1f; deliveries per writev %.1f\n",
                wv / passes, load / clients / passes, load / wv
    }' "$TMP/perf"
