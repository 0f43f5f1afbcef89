#!/usr/bin/env bash
# Chat latency while the REST log query scans a large log (issue: "the scan must not stall
# chat"): the server starts on a generated log of LOG_MB MiB (default 200) of chat records,
# then the load generator runs the same fan-out step three times: without, with queries that
# scan the whole log (a pattern that matches nothing; one after the other), and without again;
# it prints the p99s and the search speed (log size / median query time).
#
#   bash scripts/bench-query.sh            # LOG_MB=200 CLIENTS=1000 RATE=100000 STEP_S=10
set -euo pipefail
cd "$(dirname "$0")/.."
LOG_MB=${LOG_MB:-200}
CLIENTS=${CLIENTS:-1000}
RATE=${RATE:-100000}
STEP_S=${STEP_S:-10}
TOKEN=bench-query-token-0123456789

cargo build --release --quiet --bin chat-server --example loadgen
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT

echo "generating a ${LOG_MB} MiB log ..."
python3 scripts/filler-log.py "$dir/chat.log" "$LOG_MB"

cat > "$dir/cfg.json" <<JSON
{"ip": "127.0.0.1", "telnet_port": 0, "rest_port": 0, "websocket_port": 0,
 "log_file": "$dir/chat.log", "admin_token": "$TOKEN",
 "lines_burst": 1000000, "lines_per_s": 1000000}
JSON
ulimit -n 20000 2>/dev/null || true
pin_server=(); pin_gen=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    pin_server=(taskset -c 1); pin_gen=(taskset -c 0)
fi
"${pin_server[@]}" target/release/chat-server -c "$dir/cfg.json" 2>"$dir/err" &
pid=$!
for _ in $(seq 100); do grep -q "websocket listening" "$dir/err" && break; sleep 0.1; done
port() { grep -o "$1 listening on 127.0.0.1:[0-9]*" "$dir/err" | grep -o '[0-9]*$'; }
"${pin_gen[@]}" target/release/examples/loadgen \
    --telnet "127.0.0.1:$(port telnet)" --ws "127.0.0.1:$(port websocket)" \
    --rest "127.0.0.1:$(port rest)" --token "$TOKEN" --rest-pattern 'no-such-text-zz' \
    --rest-concurrency 1 --rest-interval-ms 1 \
    --telnet-clients $((CLIENTS / 2)) --ws-clients $((CLIENTS / 2)) --server-pid "$pid" \
    --phases "fixed:$RATE,rest:$RATE,fixed:$RATE" --step-s "$STEP_S" >"$dir/out.jsonl" 2>"$dir/gen.err"
python3 - "$dir/out.jsonl" "$LOG_MB" "$CLIENTS" "$RATE" "$(stat -c %s "$dir/chat.log")" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
steps = [r for r in rows if r.get("scenario") in ("fixed", "rest")]
print(f"\nlog {sys.argv[2]} MiB, {sys.argv[3]} mixed clients, {sys.argv[4]} deliveries/s offered\n")
print("| step | queries | statuses | chat p50 | chat p99 | chat max | loss |")
print("|---|---|---|---|---|---|---|")
print_rows = []
for r in steps:
    step = r.get("step", r) if r["scenario"] == "rest" else r
    q = r.get("queries", "-")
    resp = r.get("statuses", "-")
    slowest = r.get("max_query_ms", "-")
    print(f"| {r['scenario']} | {q} (slowest {slowest} ms) | {resp} | {step.get('p50_ms')} ms | {step.get('p99_ms')} ms | {step.get('max_ms')} ms | {step.get('loss')} |")
    med = r.get("median_query_ms")
    if med:
        print_rows.append(f"search: median query {med:.0f} ms over {r.get('answered_200')} answered: {int(sys.argv[5]) / 1e6 / (med / 1000):.0f} MB/s")
for row in print_rows:
    print("\n" + row)
PY
