#!/usr/bin/env bash
# Durable Streams, side by side in one run: the release gateway (embedded
# store, and Redis at $REDIS_URL) and the reference Node server
# (`@durable-streams/server`, tests/durable-streams/reference-server.mjs),
# each loaded by tests/durable-streams/bench.mjs (appends/s, append→reader
# latency, long-poll and SSE fan-out to $READERS readers), the gateway over
# HTTP/1.1 and HTTP/2 (h2c; the reference server speaks HTTP/1.1 only). Appends one JSON
# line per scenario and server to bench/durable-streams-results.jsonl, with
# the load average before each server's run (the machine may be shared).
#
#   bash bench/durable-streams.sh          # needs node, npm ci in tests/durable-streams
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
bin=$target/release/sse-bridge
[ -x "$bin" ] || cargo build --release -p sse-bridge
[ -d tests/durable-streams/node_modules/@durable-streams/server ] || npm ci --prefix tests/durable-streams --no-audit --no-fund
out=bench/durable-streams-results.jsonl
redis_url=${REDIS_URL:-redis://127.0.0.1:6379}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ulimit -n 65536 2>/dev/null || true

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_up() { for _ in $(seq 100); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "not up: $1" >&2; return 1; }

measure() { # label url [protocol: http1.1 (default) or h2]
    local load; load=$(cut -d' ' -f1-3 /proc/loadavg)
    echo "== $1 ${3:-http1.1} (load average $load)" >&2
    (cd tests/durable-streams && DS_URL=$2 LABEL=$1 PROTOCOL=${3:-http1.1} RUN="dsbench-$$-${3:-http1.1}" node bench.mjs) \
        | while read -r line; do echo "{\"date\":\"$(date -u +%FT%TZ)\",\"load_before\":\"$load\",${line#\{}"; done \
        | tee -a "$out"
}

port=$(free_port)
"$bin" serve --listen "127.0.0.1:$port" >/tmp/ds-bench-gateway.log 2>&1 & pids+=($!)
wait_up "http://127.0.0.1:$port/healthz"
measure "sse-bridge (embedded)" "http://127.0.0.1:$port"
measure "sse-bridge (embedded)" "http://127.0.0.1:$port" h2
kill "${pids[-1]}"

if [ -z "${SKIP_REDIS:-}" ]; then
    port=$(free_port)
    jobs="sse_jobs_dsbench_$$"
    "$bin" serve --listen "127.0.0.1:$port" --redis-url "$redis_url" --redis-stream "$jobs" \
        --group "sse_workers_dsbench_$$" >/tmp/ds-bench-gateway-redis.log 2>&1 & pids+=($!)
    wait_up "http://127.0.0.1:$port/healthz"
    measure "sse-bridge (Redis)" "http://127.0.0.1:$port"
    measure "sse-bridge (Redis)" "http://127.0.0.1:$port" h2
    kill "${pids[-1]}"
    # The bench's streams and the gateway's jobs stream, from the shared Redis.
    redis-cli -u "$redis_url" --scan --pattern "*dsbench-$$*" | xargs -r redis-cli -u "$redis_url" del >/dev/null
    redis-cli -u "$redis_url" --scan --pattern "*_dsbench_$$*" | xargs -r redis-cli -u "$redis_url" del >/dev/null
fi

port=$(free_port)
rm -f /tmp/ds-bench-reference.log
(cd tests/durable-streams && exec node reference-server.mjs "$port") >/tmp/ds-bench-reference.log 2>&1 & pids+=($!)
for _ in $(seq 100); do grep -q listening /tmp/ds-bench-reference.log && break; sleep 0.1; done
measure "@durable-streams/server 0.3.7" "http://127.0.0.1:$port"
