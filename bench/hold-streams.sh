#!/usr/bin/env bash
# Gateway RSS per held stream, over HTTP/2 (C connections × N/C streams) or
# HTTP/1.1 (N connections), with h2load (Debian: nghttp2-client) as the
# client. The streams are sessions waiting for their worker_ack, which
# never comes within the run.
#
#   bash bench/hold-streams.sh h2 10000 100     # HTTP/2, h2c with prior knowledge
#   bash bench/hold-streams.sh h1 10000 10000   # HTTP/1.1
#   BACKEND=embedded bash bench/hold-streams.sh h2 10000 100
#   RAMP=20 bash bench/hold-streams.sh h2 100000 1000   # open 20 connections/s
#   BINARY=/tmp/other/sse-bridge bash bench/hold-streams.sh h2 10000 100  # A/B
#
# BACKEND=redis (default) keeps session metadata in Redis (127.0.0.1:6379)
# like a production gateway; `embedded` keeps it, and the waiting jobs, in
# the gateway's own memory. Bounded: at most WAIT_SECONDS (240) of waiting.
# Opening tens of thousands of sessions at once overloads the session
# bookkeeping (the surplus gets 503 after --start-timeout): ramp up.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?h1 or h2}; streams=${2:?streams}; connections=${3:?connections}
command -v h2load >/dev/null || { echo "h2load missing: apt-get install nghttp2-client" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"  # one socket per HTTP/1.1 stream, on each side
binary=${BINARY:-target/release/sse-bridge}
[ -x "$binary" ] || cargo build --release -q -p sse-bridge
port=$((18500 + RANDOM % 1000))
case "${BACKEND:-redis}" in
    redis) backend=(--redis-url redis://127.0.0.1:6379 --redis-stream "hold_jobs_$RANDOM") ;;
    embedded) backend=(--embedded-queue-capacity $((streams * 2)) --demo-delay 10m) ;;
    *) echo "BACKEND is redis or embedded" >&2; exit 1 ;;
esac
RUST_LOG=warn "$binary" serve --listen "127.0.0.1:$port" \
    --ack-timeout 10m --idle-timeout 30m --max-duration 60m --heartbeat 10m \
    --max-sessions $((streams * 2)) "${backend[@]}" > /tmp/hold-streams-gateway.log 2>&1 &
gateway=$!
body=$(mktemp)
trap 'kill "$gateway" ${load:-} 2>/dev/null || true; rm -f "$body"' EXIT
printf '{"user_query":"hold"}' > "$body"
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
# One session first, so what is allocated once per process is in the baseline.
curl -s -o /dev/null -X POST -H 'content-type: application/json' -d @"$body" --max-time 1 \
    "http://127.0.0.1:$port/v1/react/sessions" || true
sleep 1
before=$(awk '/VmRSS/{print $2}' "/proc/$gateway/status")
per_connection=1; h1=()
if [ "$mode" = h2 ]; then per_connection=$((streams / connections)); else h1=(--h1); fi
ramp=(); [ -n "${RAMP:-}" ] && ramp=(-r "$RAMP")
h2load "${h1[@]}" "${ramp[@]}" -c "$connections" -m "$per_connection" -n "$streams" -d "$body" \
    -H 'content-type: application/json' -T 600 -N 600 "http://127.0.0.1:$port/v1/react/sessions" \
    > /tmp/hold-streams-h2load.log 2>&1 &
load=$!
active=0
for _ in $(seq "${WAIT_SECONDS:-240}"); do
    active=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^sse_bridge_sessions_active /{print int($2)}')
    [ "${active:-0}" -ge "$streams" ] && break
    sleep 1
done
# Past the gateway's next allocator trim (every 10 s), which returns what
# the ramp's requests freed.
sleep 12
after=$(awk '/VmRSS/{print $2}' "/proc/$gateway/status")
echo "mode=$mode backend=${BACKEND:-redis} streams=$streams connections=$connections held=$active" \
    "rss_before=${before}KiB rss_after=${after}KiB per_stream=$(( (after - before) * 1024 / streams ))B"
