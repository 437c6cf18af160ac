#!/usr/bin/env bash
# One side-by-side benchmark run: sse-bridge vs the Python reference of the
# seed design (../shared/reference), same Redis, same machine, same load
# generator; plus the machine's ceiling (raw Redis PUBLISH rate). sse-bridge
# also runs throughput and latency in resumable mode (the bench's worker
# sends every event through FCALL sse_bridge_append: XADD to the session log
# + PUBLISH in one call) beside the Pub/Sub-only ones; the reference has no
# log, so it runs Pub/Sub only.
#
#   bash bench/compare.sh                # full run (~5 min)
#   QUICK=1 bash bench/compare.sh        # small sizes, a smoke run (~2 min)
#   ONLY_OURS=1 bash bench/compare.sh    # sse-bridge only, no reference
#   ONLY_OURS=1 GATEWAY=../base/target/release/sse-bridge BENCH=../base/target/release/sse-bridge-bench \
#     MODES="pubsub resumable" OUT=bench/results-before.jsonl bash bench/compare.sh
#                                        # another build (a "before"), same machine, same run
#
# Writes bench/results.jsonl (one JSON line per scenario, gateway and mode),
# bench/summary.md (tables, ratios) and bench/chart.png.
set -euo pipefail
cd "$(dirname "$0")/.."

REDIS_URL=redis://127.0.0.1:6379
OURS_PORT=18000
REF_PORT=18080
REFERENCE_DIR=${REFERENCE_DIR:-../shared/reference}
OUT=${OUT:-bench/results.jsonl}
# The worker modes sse-bridge runs in (the bench's --mode).
MODES=${MODES:-pubsub resumable batched}
if [ "${QUICK:-0}" = 1 ]; then
    SESSIONS=300 EVENTS=100 CONC=50 LAT_SESSIONS=100 HOLD_OURS=1000 HOLD_REF=500 SETUP=200
else
    SESSIONS=3000 EVENTS=100 CONC=100 LAT_SESSIONS=400 HOLD_OURS=10000 HOLD_REF=2000 SETUP=1000
fi

# No bench run may take longer than this (seconds).
RUN_TIMEOUT=${RUN_TIMEOUT:-300}

log() { printf '\n== %s\n' "$*" >&2; }

# --- prerequisites -----------------------------------------------------------
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-benchmark >/dev/null || missing+=(redis-tools)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    log "starting redis-server on 6379"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no --logfile /tmp/sse-bridge-bench-redis.log
    sleep 0.5
fi
redis-cli -h 127.0.0.1 -p 6379 config set maxclients 20000 >/dev/null || true
ulimit -n "$(ulimit -Hn)"

if [ -z "${GATEWAY:-}" ]; then
    log "building (release)"
    cargo build --release -q -p sse-bridge -p sse-bridge-bench
fi
BENCH=${BENCH:-target/release/sse-bridge-bench}
GATEWAY=${GATEWAY:-target/release/sse-bridge}

VENV=target/reference-venv
if [ "${ONLY_OURS:-0}" != 1 ] && ! "$VENV/bin/python" -c 'import fastapi, uvicorn, redis' >/dev/null 2>&1; then
    log "creating $VENV for the reference"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REFERENCE_DIR/requirements.txt"
fi

rm -f "$OUT"
wait_up() {
    for _ in $(seq 100); do
        curl -s -o /dev/null -X POST "$1/v1/react/sessions" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "gateway at $1 did not come up" >&2; return 1
}
events_per_s() { # label mode → throughput events/s from the results file
    python3 -c "import json; rs=[json.loads(l) for l in open('$OUT')]; print([r['events_per_s'] for r in rs if (r['label'], r.get('mode', 'pubsub'), r['scenario']) == ('$1', '$2', 'throughput')][-1])"
}
bench() { # the load generator, bounded in time
    timeout "$RUN_TIMEOUT" "$BENCH" "$@"
}

# --- the machine's ceiling ----------------------------------------------------
log "ceiling: raw Redis PUBLISH rate (redis-benchmark, 50 clients, no pipelining)"
PAYLOAD='{"event_type":"FinalAnswerStream","payload":{"char":"x","seq":42,"t":123456789}}'
CEILING=$(timeout "$RUN_TIMEOUT" redis-benchmark -h 127.0.0.1 -p 6379 -n 300000 -c 50 -q PUBLISH bench_ceiling "$PAYLOAD" \
    | tr '\r' '\n' | grep -Eo '[0-9.]+ requests per second' | tail -1 | cut -d' ' -f1)
echo "ceiling: $CEILING PUBLISH/s"

# --- the gateways -------------------------------------------------------------
start_gateway() { # label → GW_PID, GW_URL
    case $1 in
    ours)
        GW_URL="http://127.0.0.1:$OURS_PORT"
        # --log-ttl: the session logs of a run expire soon after it, rather
        # than filling a shared Redis for the default hour.
        RUST_LOG=warn "$GATEWAY" serve --listen 127.0.0.1:$OURS_PORT --redis-url "$REDIS_URL" --queue redis \
            --idle-timeout 60s --log-ttl 10m >> /tmp/sse-bridge-bench-ours.log 2>&1 &
        ;;
    reference)
        GW_URL="http://127.0.0.1:$REF_PORT"
        (cd "$REFERENCE_DIR" && REDIS_URL="$REDIS_URL/0" SSE_IDLE_TIMEOUT_S=60 exec "$OLDPWD/$VENV/bin/uvicorn" app:app \
            --port $REF_PORT --log-level warning) >> /tmp/sse-bridge-bench-ref.log 2>&1 &
        ;;
    esac
    GW_PID=$!
    wait_up "$GW_URL"
}
stop_gateway() {
    kill "$GW_PID" 2>/dev/null || true
    wait "$GW_PID" 2>/dev/null || true
}
trap 'stop_gateway' EXIT

# --- one gateway through every scenario ----------------------------------------
throughput_and_latency() { # label mode: full speed, then paced at half of it
    local label=$1 mode=$2
    local args=(--url "$GW_URL" --redis-url "$REDIS_URL" --label "$label" --out "$OUT" --mode "$mode")
    log "$label, $mode: throughput ($SESSIONS sessions × $EVENTS events, $CONC at a time)"
    bench "${args[@]}" --gateway-pid "$GW_PID" throughput --sessions "$SESSIONS" --events "$EVENTS" --concurrency "$CONC"
    local max rate paced_like=$mode
    # Paced events go one per call in batched mode too (a batch needs a
    # burst): its half load is the resumable mode's, not half of its burst max.
    if [ "$mode" = batched ] && max=$(events_per_s "$label" resumable 2>/dev/null); then
        paced_like=resumable
    else
        max=$(events_per_s "$label" "$mode")
    fi
    rate=$(python3 -c "print(round($max * 0.5))")
    local paced=(latency --rate "$rate" --sessions "$LAT_SESSIONS" --events "$EVENTS" --concurrency "$CONC")
    log "$label, $mode: latency paced at $rate events/s (half of the $paced_like max $max), sessions in step"
    bench "${args[@]}" "${paced[@]}"
    log "$label, $mode: latency paced at $rate events/s, each session at its own phase"
    bench "${args[@]}" "${paced[@]}" --spread
}

run_scenarios() { # label hold_streams mode… (throughput and latency in each)
    local label=$1 hold=$2 mode
    shift 2
    log "starting $label"
    start_gateway "$label"
    for mode in "$@"; do
        throughput_and_latency "$label" "$mode"
    done
    local common=(--url "$GW_URL" --redis-url "$REDIS_URL" --label "$label" --out "$OUT")
    log "$label: setup (POST → worker_ack)"
    bench "${common[@]}" setup --sessions "$SETUP" --concurrency 10
    # Memory per stream on a fresh process: allocator pools grown by the
    # scenarios above would otherwise hide the streams' real cost.
    stop_gateway
    start_gateway "$label"
    log "$label: hold $hold streams (fresh process)"
    bench "${common[@]}" --gateway-pid "$GW_PID" hold --streams "$hold"
    stop_gateway
}

# shellcheck disable=SC2086 # MODES is a list
run_scenarios ours "$HOLD_OURS" $MODES
[ "${ONLY_OURS:-0}" = 1 ] || run_scenarios reference "$HOLD_REF" pubsub

summary=${OUT%.jsonl}-summary.md chart=${OUT%.jsonl}-chart.png
if [ "$OUT" = bench/results.jsonl ]; then summary=bench/summary.md chart=bench/chart.png; fi
"$BENCH" summary --input "$OUT" --ceiling "$CEILING" | tee "$summary"
"$BENCH" chart --input "$OUT" --ceiling "$CEILING" --output "$chart"
log "wrote $OUT, $summary, $chart"
