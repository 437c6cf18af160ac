#!/usr/bin/env bash
# What one logged event costs Redis, in isolation: a scratch redis-server
# (its own port, nothing else on it) loads the session log's function
# libraries, sessions are created the way the gateway creates them, and
# redis-benchmark drives each command from one client; `INFO commandstats`
# then gives Redis's own time per call (usec_per_call, wall time inside the
# command: on a busy machine it includes preemption, so compare within a
# run). Compared in one run: PUBLISH alone (the Pub/Sub-only path), XADD
# alone, version 3's append (the fixture of the last release) and this
# version's append, one event per call and ten per call.
#
#   bash bench/append-cost.sh            # prints a table, appends JSON lines
#   N=200000 bash bench/append-cost.sh   # calls per command (default 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
port=${PORT:-6391}
n=${N:-100000}
libs=(crates/sse-bridge-redis/tests/fixtures/functions_v3.lua crates/sse-bridge-redis/src/functions.lua)
out=bench/append-cost-results.jsonl
cli() { redis-cli -p "$port" "$@"; }

redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --logfile /tmp/append-cost-redis.log
trap 'cli shutdown nosave >/dev/null 2>&1 || true' EXIT
for _ in $(seq 50); do cli ping >/dev/null 2>&1 && break; sleep 0.1; done
for lib in "${libs[@]}"; do cli function load replace "$(cat "$lib")" >/dev/null; done

piece='{"event_type":"FinalAnswerStream","payload":{"char":"a"},"attempt":"a1"}'
session() { # version id: a session as the gateway creates it, acked by attempt a1
    cli del "sse_events:$2" "sse_session_meta:$2" "sse_folded:$2" >/dev/null
    cli hset "sse_session_meta:$2" created_at 1 principal anonymous format native on_disconnect cancel \
        ttl_ms 3600000 tail_max 2097152 folded_max 2097152 channel "sse_session:$2" publish PUBLISH \
        max_len 1073741824 live_ms 15000 batches 1 >/dev/null
    cli fcall "$1_append" 3 "sse_events:$2" "sse_session_meta:$2" "sse_folded:$2" \
        '{"event_type":"worker_ack","payload":{},"attempt":"a1"}' worker_ack a1 >/dev/null
}
usec_per_call() { # command name in commandstats
    cli info commandstats | tr -d '\r' | sed -n "s/^cmdstat_$1:.*usec_per_call=\([0-9.]*\).*/\1/p"
}
measure() { # label events-per-call command...
    local label=$1 per=$2; shift 2
    cli config resetstat >/dev/null
    redis-benchmark -p "$port" -c 1 -n "$n" -q "$@" >/dev/null
    local name; name=$(echo "$1" | tr '[:upper:]' '[:lower:]')
    local us; us=$(usec_per_call "$name")
    local per_event; per_event=$(python3 -c "print(round($us / $per, 2))")
    printf '%-46s %8s µs/call %8s µs/event\n' "$label" "$us" "$per_event"
    printf '{"date":"%s","label":"%s","events_per_call":%s,"usec_per_call":%s,"usec_per_event":%s,"load_before":"%s"}\n' \
        "$(date -u +%FT%TZ)" "$label" "$per" "$us" "$per_event" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$out"
}

measure "PUBLISH" 1 PUBLISH sse_session:bench "$piece"
measure "XADD" 1 XADD sse_events:bare '*' e "$piece"
for lib in "${libs[@]}"; do
    version=$(sed -n '1s/.*name=\(sse_bridge_v[0-9]*\).*/\1/p' "$lib")
    session "$version" "$version-one"
    measure "$version append, 1 event per call" 1 FCALL "${version}_append" 3 \
        "sse_events:$version-one" "sse_session_meta:$version-one" "sse_folded:$version-one" \
        "$piece" FinalAnswerStream a1
    if cli function list | grep -q "${version}_append_batch"; then
        session "$version" "$version-ten"
        args=()
        for _ in $(seq 10); do args+=("$piece" FinalAnswerStream); done
        measure "$version append_batch, 10 events per call" 10 FCALL "${version}_append_batch" 3 \
            "sse_events:$version-ten" "sse_session_meta:$version-ten" "sse_folded:$version-ten" a1 "" "" "${args[@]}"
    fi
done
