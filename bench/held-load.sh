#!/usr/bin/env bash
# Paced load over held streams: N streams held open at once on the release
# gateway (Redis backend at 127.0.0.1:6379, one Redis subscriber connection),
# then events published across all of them, a phase per rate. Reports p50/p99
# publish → client latency, gateway CPU per event, gateway RSS per stream, and
# the highest rate whose p99 stays under 100 ms (sse-bridge-bench held-load).
#
#   bash bench/held-load.sh h2 2000 10        # HTTP/2 (h2c): 2,000 streams over 10 connections
#   bash bench/held-load.sh h1 2000           # HTTP/1.1: a connection per stream
#   RATES=20000,40000,80000 bash bench/held-load.sh h2 100000 400
#
# Connections default to streams / 256 rounded up (the gateway's limit of
# streams per HTTP/2 connection); HTTP/1.1 ignores them. HTTP/1.1 needs a
# socket per stream on both sides, so RLIMIT_NOFILE (hard 20000 here) caps it
# below 20,000 streams; the bench refuses more with a clear message.
#
# Env (whole numbers): RATES (events/s per phase, comma-separated; 20000),
# PHASE_SECONDS (per phase; 20), RAMP (streams opened per second; 2000),
# SOURCES (loopback source addresses 127.0.0.2…; 16), GRACE (seconds to wait
# for a phase's last events; 5); OUT (bench/held-load-results.jsonl), LABEL
# (ours); GATEWAY (the gateway binary; target/release/sse-bridge, e.g. an
# earlier build's for a before/after pair), PRELOAD (a shared library the
# gateway runs with, LD_PRELOAD: how bench/allocators.sh swaps allocators).
# Bounded: the gateway has 5 s to come up, the bench a budget computed from
# the ramp and the phases (then `timeout` stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?h1 or h2}; streams=${2:?streams}; connections=${3:-$(( (streams + 255) / 256 ))}
case "$mode" in h1|h2) ;; *) echo "mode is h1 or h2" >&2; exit 1 ;; esac
rates=${RATES:-20000}; seconds=${PHASE_SECONDS:-20}; ramp=${RAMP:-2000}
sources=${SOURCES:-16}; grace=${GRACE:-5}; out=${OUT:-bench/held-load-results.jsonl}
gateway_bin=${GATEWAY:-target/release/sse-bridge}
ulimit -n "$(ulimit -Hn)"  # HTTP/1.1: one socket per stream, on each side
[ -x "$gateway_bin" ] && [ -x target/release/sse-bridge-bench ] \
    || cargo build --release -q -p sse-bridge -p sse-bridge-bench
port=$((18500 + RANDOM % 1000))
jobs="held_load_jobs_$$_$RANDOM"
# Nothing may end a held session but its FinalAnswerStreamEnd: long ack,
# idle, duration and heartbeat timers; a start timeout that a loaded ramp
# does not hit (503); room for every stream (--max-sessions). No auth, so
# no per-principal limit applies.
RUST_LOG=warn env ${PRELOAD:+LD_PRELOAD=$PRELOAD} "$gateway_bin" serve --listen "127.0.0.1:$port" \
    --redis-url redis://127.0.0.1:6379 --redis-stream "$jobs" \
    --ack-timeout 10m --idle-timeout 30m --max-duration 60m --heartbeat 10m \
    --start-timeout 60s --write-timeout 60s \
    --max-sessions $((streams * 2)) > /tmp/held-load-gateway.log 2>&1 &
gateway=$!
trap 'kill "$gateway" 2>/dev/null || true; redis-cli -p 6379 del "$jobs" >/dev/null 2>&1 || true' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$port/healthz" >/dev/null \
    || { echo "the gateway did not come up:" >&2; cat /tmp/held-load-gateway.log >&2; exit 1; }
phases=$(tr ',' '\n' <<< "$rates" | grep -c .)
# Ramp (twice its plan + 60 s), each phase (2 × seconds + 10 s sending, 30 s
# of replies, the grace, 1 s pause), the end (120 s), and a minute to spare.
budget=$(( 2 * streams / ramp + 60 + phases * (2 * seconds + 41 + grace) + 180 ))
echo "held-load: $mode, $streams streams, rates $rates × ${seconds}s (budget ${budget}s)" >&2
timeout "$budget" target/release/sse-bridge-bench --url "http://127.0.0.1:$port" \
    --redis-url redis://127.0.0.1:6379 --stream "$jobs" --gateway-pid "$gateway" \
    --label "${LABEL:-ours}" --out "$out" \
    held-load --protocol "$mode" --streams "$streams" --connections "$connections" \
    --rates "$rates" --seconds "$seconds" --ramp-per-second "$ramp" \
    --source-addresses "$sources" --grace-seconds "$grace"
