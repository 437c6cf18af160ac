#!/usr/bin/env bash
# Scale-out on Redis Cluster (docs/SCALING.md): one sse-bridge gateway and the
# bench's worker against
#   single    — a plain Redis (no cluster), the reference,
#   cluster1  — a 1-master Redis Cluster,
#   cluster3  — a 3-master Redis Cluster,
# each through the same scenarios: throughput and latency (paced at half of
# the throughput just measured, sessions in step and spread) in Pub/Sub and
# resumable mode with the CPU split (gateway / every Redis node / load
# generator); the CPU split again at one fixed rate for every configuration
# (spread; labelled `<config>@fixed`), the basis of the per-10k-events/s
# costs; the Redis memory that completed sessions leave (INFO used_memory
# before/after); gateway RSS per held stream on a fresh process; one shard's
# ceiling (redis-benchmark of FCALL sse_bridge_append on one node, with that
# node's CPU). On cluster3 also: classic PUBLISH against SPUBLISH
# (redis-benchmark on one node), with every node's CPU — the broadcast that
# sharded Pub/Sub avoids. On single also: the memory runs again with
# stream-node-max-bytes 1024 and 512 (labelled `single@stream-node-max-bytes=N`).
#
#   bash bench/cluster.sh                 # ~4 min
#   QUICK=1 bash bench/cluster.sh         # small sizes, a smoke run (~2 min)
#   CONFIGS="cluster3" bash bench/cluster.sh   # a subset of single cluster1 cluster3
#
# Every bench run is bounded by RUN_TIMEOUT (default 300 s); every process
# the script starts (Redis nodes, gateway) is stopped when it exits, however
# it exits. Writes bench/cluster-results.jsonl (one JSON line per scenario,
# `label` = the configuration) and bench/cluster-summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."

# Ports: the single Redis, the 1-master cluster, the 3-master cluster's first
# node (7201-7203; cluster bus ports +10000, below the ephemeral range).
SINGLE_PORT=${SINGLE_PORT:-7200}
ONE_PORT=${ONE_PORT:-7210}
THREE_PORT=${THREE_PORT:-7201}
GW_PORT=${GW_PORT:-18100}
STREAM=sse_bench_jobs
CONFIGS=${CONFIGS:-single cluster1 cluster3}
OUT=bench/cluster-results.jsonl
SUMMARY=bench/cluster-summary.md
if [ "${QUICK:-0}" = 1 ]; then
    SESSIONS=300 EVENTS=100 CONC=50 LAT_SESSIONS=100 FIXED_SESSIONS=100 HOLD=500 MEM_SESSIONS=300 CONTRAST_N=50000
else
    SESSIONS=3000 EVENTS=100 CONC=100 LAT_SESSIONS=400 FIXED_SESSIONS=800 HOLD=5000 MEM_SESSIONS=2000 CONTRAST_N=300000
fi
CEILING_N=$((CONTRAST_N * 2 / 3))
# The fixed rates (events/s) at which every configuration's CPU is compared.
FIXED_PUBSUB=${FIXED_PUBSUB:-20000}
FIXED_RESUMABLE=${FIXED_RESUMABLE:-10000}
# No bench run may take longer than this (seconds).
RUN_TIMEOUT=${RUN_TIMEOUT:-300}

log() { printf '\n== %s\n' "$*" >&2; }

for tool in redis-server redis-cli redis-benchmark python3 curl; do
    command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install redis-server redis-tools)" >&2; exit 1; }
done
ulimit -n "$(ulimit -Hn)"

log "building (release)"
cargo build --release -q -p sse-bridge -p sse-bridge-bench
BENCH=target/release/sse-bridge-bench
GATEWAY=target/release/sse-bridge

# --- Redis: single node and clusters, always cleaned up -----------------------
STARTED_DIRS=()   # directories of redis-server processes this script started
GW_PID=
cleanup() {
    stop_gateway
    local dir pidfile
    for dir in "${STARTED_DIRS[@]}"; do
        for pidfile in "$dir"/*.pid; do
            [ -s "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
        done
    done
    sleep 0.5
    for dir in "${STARTED_DIRS[@]}"; do rm -rf "$dir"; done
}
trap cleanup EXIT

port_free() { [ -z "$(ss -Htan exclude time-wait "sport = :$1")" ]; }

wait_for() { # seconds description command...: retry every 100 ms
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { echo "timed out waiting for $what" >&2; return 1; }
        sleep 0.1
    done
}
pings() { [ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ]; }
cluster_ok() { redis-cli -p "$1" cluster info 2>/dev/null | grep -q cluster_state:ok; }

# start_node dir port [extra redis-server args...]: one daemonized node, the
# same settings as scripts/redis-cluster.sh uses (no persistence).
start_node() {
    local dir=$1 port=$2
    shift 2
    port_free "$port" && port_free $((port + 10000)) || { echo "port $port or $((port + 10000)) is in use" >&2; exit 1; }
    redis-server --port "$port" --bind 127.0.0.1 --protected-mode no --save "" --appendonly no \
        --dir "$dir" --daemonize yes --pidfile "$dir/$port.pid" --logfile "$dir/$port.log" "$@"
    wait_for 10 "redis on $port" pings "$port"
}

# start_backend config → URL, CLUSTER_FLAG, NODE_PORTS
start_backend() {
    local dir
    case $1 in
    single)
        dir=/tmp/sse-bridge-bench-redis-$SINGLE_PORT
        rm -rf "$dir" && mkdir -p "$dir" && STARTED_DIRS+=("$dir")
        start_node "$dir" "$SINGLE_PORT"
        URL=redis://127.0.0.1:$SINGLE_PORT CLUSTER_FLAG=() NODE_PORTS=("$SINGLE_PORT")
        ;;
    cluster1)
        # scripts/redis-cluster.sh and `redis-cli --cluster create` want three
        # masters; one node that owns every slot is a cluster too.
        dir=/tmp/sse-bridge-bench-cluster-$ONE_PORT
        rm -rf "$dir" && mkdir -p "$dir" && STARTED_DIRS+=("$dir")
        start_node "$dir" "$ONE_PORT" --cluster-enabled yes --cluster-config-file "$dir/nodes-$ONE_PORT.conf" \
            --cluster-node-timeout 2000 --cluster-announce-ip 127.0.0.1
        redis-cli -p "$ONE_PORT" cluster addslotsrange 0 16383 >/dev/null
        wait_for 30 "the 1-master cluster" cluster_ok "$ONE_PORT"
        URL=redis://127.0.0.1:$ONE_PORT CLUSTER_FLAG=(--redis-cluster) NODE_PORTS=("$ONE_PORT")
        ;;
    cluster3)
        NODE_PORTS=("$THREE_PORT" $((THREE_PORT + 1)) $((THREE_PORT + 2)))
        if [ -x scripts/redis-cluster.sh ]; then
            STARTED_DIRS+=("/tmp/sse-bridge-redis-cluster-$THREE_PORT")
            URL=$(scripts/redis-cluster.sh start "$THREE_PORT" 3)
        else
            dir=/tmp/sse-bridge-bench-cluster-$THREE_PORT
            rm -rf "$dir" && mkdir -p "$dir" && STARTED_DIRS+=("$dir")
            local port addrs=()
            for port in "${NODE_PORTS[@]}"; do
                start_node "$dir" "$port" --cluster-enabled yes --cluster-config-file "$dir/nodes-$port.conf" \
                    --cluster-node-timeout 2000
                addrs+=("127.0.0.1:$port")
            done
            redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes </dev/null >"$dir/create.log"
            for port in "${NODE_PORTS[@]}"; do wait_for 30 "node $port" cluster_ok "$port"; done
            URL=$(printf 'redis://127.0.0.1:%s,' "${NODE_PORTS[@]}") URL=${URL%,}
        fi
        CLUSTER_FLAG=(--redis-cluster)
        ;;
    esac
}

stop_backend() { # kills the nodes of the last directory started
    local dir=${STARTED_DIRS[-1]} pidfile pid
    for pidfile in "$dir"/*.pid; do
        [ -s "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null || true
        wait_for 10 "redis $pid to exit" bash -c "! kill -0 $pid"
    done
    rm -rf "$dir"
    unset 'STARTED_DIRS[-1]'
}

# --- the gateway ---------------------------------------------------------------
GW_URL=http://127.0.0.1:$GW_PORT
start_gateway() {
    port_free "$GW_PORT" || { echo "port $GW_PORT is in use" >&2; exit 1; }
    RUST_LOG=warn "$GATEWAY" serve --listen 127.0.0.1:$GW_PORT --redis-url "$URL" "${CLUSTER_FLAG[@]}" \
        --queue redis --redis-stream "$STREAM" --idle-timeout 60s --log-ttl 10m \
        >>/tmp/sse-bridge-bench-cluster-gateway.log 2>&1 &
    GW_PID=$!
    for _ in $(seq 100); do
        curl -s -o /dev/null "$GW_URL/healthz" && return 0
        sleep 0.1
    done
    echo "gateway did not come up (/tmp/sse-bridge-bench-cluster-gateway.log)" >&2
    return 1
}
stop_gateway() {
    [ -n "$GW_PID" ] || return 0
    kill "$GW_PID" 2>/dev/null || true
    wait "$GW_PID" 2>/dev/null || true
    GW_PID=
}

bench() { timeout "$RUN_TIMEOUT" "$BENCH" "$@"; }
events_per_s() { # label mode → the last throughput events/s
    python3 -c "import json; rs=[json.loads(l) for l in open('$OUT')]; print([r['events_per_s'] for r in rs if (r['label'], r['mode'], r['scenario']) == ('$1', '$2', 'throughput')][-1])"
}

# --- classic PUBLISH vs SPUBLISH on a 3-node cluster ---------------------------
node_cpu() { # port → CPU seconds of that node so far
    local pid
    pid=$(redis-cli -p "$1" info server | tr -d '\r' | sed -n 's/^process_id://p')
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$pid/stat"
}
publish_contrast() { # label: redis-benchmark on the first node, CPU of every node
    local label=$1 first=${NODE_PORTS[0]} channel='' i cmd
    # A channel the first node owns (SPUBLISH elsewhere answers MOVED).
    for i in $(seq 0 200); do
        if ! redis-cli -p "$first" spublish "bench_contrast_$i" x 2>&1 | grep -q MOVED; then
            channel=bench_contrast_$i
            break
        fi
    done
    [ -n "$channel" ] || { echo "no channel on $first" >&2; return 1; }
    local payload='{"event_type":"FinalAnswerStream","payload":{"char":"x","seq":42,"t":123456789}}'
    for cmd in PUBLISH SPUBLISH; do
        local before=() after=() port
        for port in "${NODE_PORTS[@]}"; do before+=("$(node_cpu "$port")"); done
        local rate
        rate=$(timeout "$RUN_TIMEOUT" redis-benchmark -p "$first" -n "$CONTRAST_N" -c 50 -q "$cmd" "$channel" "$payload" \
            | tr '\r' '\n' | grep -Eo '[0-9.]+ requests per second' | tail -1 | cut -d' ' -f1)
        for port in "${NODE_PORTS[@]}"; do after+=("$(node_cpu "$port")"); done
        python3 - "$label" "$cmd" "$CONTRAST_N" "$rate" "${NODE_PORTS[*]}" "${before[*]}" "${after[*]}" >>"$OUT" <<'EOF'
import json, sys
label, cmd, n, rate, ports, before, after = sys.argv[1:]
nodes = [{"node": f"127.0.0.1:{p}", "cpu_s": round(float(a) - float(b), 3)}
         for p, b, a in zip(ports.split(), before.split(), after.split())]
print(json.dumps({"scenario": "publish-contrast", "label": label, "mode": cmd.lower(), "messages": int(n),
                  "per_s": float(rate), "nodes": nodes}))
EOF
        echo "$cmd on node $first: $rate/s; node CPU s: $(tail -1 "$OUT" | python3 -c 'import json,sys; print(" ".join(f"{n["node"]}={n["cpu_s"]}" for n in json.load(sys.stdin)["nodes"]))')"
    done
}

# --- one shard's ceiling: FCALL sse_bridge_append, unpipelined clients ---------
fcall_ceiling() { # label: on the last node (the gateway has loaded the library)
    local label=$1 port=${NODE_PORTS[-1]} tag='' i
    for i in $(seq 0 500); do # a session name that node owns
        if ! redis-cli -p "$port" exists "sse_events:{ceiling$i}" 2>&1 | grep -q MOVED; then
            tag=ceiling$i
            break
        fi
    done
    [ -n "$tag" ] || { echo "no key slot of node $port found" >&2; return 1; }
    local log="sse_events:{$tag}" meta="sse_session_meta:{$tag}"
    # A session as the gateway records it, acked by attempt "a".
    redis-cli -p "$port" hset "$meta" created_at 1 max_len 10000 ttl_ms 600000 >/dev/null
    redis-cli -p "$port" fcall sse_bridge_append 2 "$log" "$meta" \
        '{"event_type":"worker_ack","payload":{},"attempt":"a"}' worker_ack a >/dev/null
    local event='{"event_type":"FinalAnswerStream","payload":{"char":"x","seq":42,"t":123456789},"attempt":"a"}'
    local before after rate
    before=$(node_cpu "$port")
    rate=$(timeout "$RUN_TIMEOUT" redis-benchmark -p "$port" -n "$CEILING_N" -c 50 -q \
        fcall sse_bridge_append 2 "$log" "$meta" "$event" FinalAnswerStream a \
        | tr '\r' '\n' | grep -Eo '[0-9.]+ requests per second' | tail -1 | cut -d' ' -f1)
    after=$(node_cpu "$port")
    redis-cli -p "$port" del "$log" "$meta" >/dev/null
    python3 - "$label" "$port" "$CEILING_N" "$rate" "$before" "$after" >>"$OUT" <<'EOF'
import json, sys
label, port, n, rate, before, after = sys.argv[1:]
cpu, n, rate = float(after) - float(before), int(n), float(rate)
print(json.dumps({"scenario": "fcall-ceiling", "label": label, "mode": "resumable", "calls": n, "per_s": rate,
                  "node": f"127.0.0.1:{port}", "cpu_s": round(cpu, 3), "cpu_us_per_call": round(cpu * 1e6 / n, 2),
                  "node_busy": round(cpu / (n / rate), 3)}))
EOF
    tail -1 "$OUT"
}

# --- one configuration through every scenario --------------------------------
run_config() {
    local label=$1 mode
    log "$label: starting Redis"
    start_backend "$label"
    echo "redis: $URL ${CLUSTER_FLAG[*]}"
    local common=(--url "$GW_URL" --redis-url "$URL" "${CLUSTER_FLAG[@]}" --stream "$STREAM" --out "$OUT")
    local args=("${common[@]}" --label "$label")
    if [ "$label" = cluster3 ]; then
        log "$label: classic PUBLISH vs SPUBLISH, $CONTRAST_N messages, 50 clients, no subscribers"
        publish_contrast "$label"
    fi
    start_gateway
    log "$label: one shard's ceiling, FCALL sse_bridge_append × $CEILING_N (redis-benchmark, 50 clients)"
    fcall_ceiling "$label"
    for mode in pubsub resumable; do
        log "$label, $mode: throughput ($SESSIONS sessions × $EVENTS events, $CONC at a time)"
        bench "${args[@]}" --mode "$mode" --gateway-pid "$GW_PID" throughput \
            --sessions "$SESSIONS" --events "$EVENTS" --concurrency "$CONC"
        local max rate
        max=$(events_per_s "$label" "$mode")
        rate=$(python3 -c "print(round($max * 0.5))")
        local paced=(latency --rate "$rate" --sessions "$LAT_SESSIONS" --events "$EVENTS" --concurrency "$CONC")
        log "$label, $mode: latency at $rate events/s (half of $max), in step"
        bench "${args[@]}" --mode "$mode" --gateway-pid "$GW_PID" "${paced[@]}"
        log "$label, $mode: latency at $rate events/s, spread"
        bench "${args[@]}" --mode "$mode" --gateway-pid "$GW_PID" "${paced[@]}" --spread
        local fixed=$FIXED_PUBSUB
        [ "$mode" = pubsub ] || fixed=$FIXED_RESUMABLE
        log "$label, $mode: CPU at the fixed rate of $fixed events/s, spread"
        bench "${common[@]}" --label "$label@fixed" --mode "$mode" --gateway-pid "$GW_PID" latency --rate "$fixed" \
            --sessions "$FIXED_SESSIONS" --events "$EVENTS" --concurrency "$CONC" --spread
    done
    # Memory that completed sessions leave in Redis: metadata only (Pub/Sub),
    # and with their logs at two lengths (per session and per event apart).
    for run in "pubsub $EVENTS" "resumable 10" "resumable $EVENTS"; do
        set -- $run
        log "$label, $1: Redis memory of $MEM_SESSIONS completed sessions × $2 events"
        bench "${args[@]}" --mode "$1" memory --sessions "$MEM_SESSIONS" --events "$2" --concurrency "$CONC"
    done
    if [ "$label" = single ]; then
        # Redis 7 preallocates a new stream node at stream-node-max-bytes
        # (4096): what smaller nodes save on short logs and cost on long ones.
        local bytes
        for bytes in 1024 512; do
            redis-cli -p "$SINGLE_PORT" config set stream-node-max-bytes "$bytes" >/dev/null
            for run in "pubsub $EVENTS" "resumable 10" "resumable $EVENTS"; do
                set -- $run
                log "$label, stream-node-max-bytes $bytes, $1: Redis memory of $MEM_SESSIONS sessions × $2 events"
                bench "${common[@]}" --label "single@stream-node-max-bytes=$bytes" --mode "$1" memory \
                    --sessions "$MEM_SESSIONS" --events "$2" --concurrency "$CONC"
            done
        done
        redis-cli -p "$SINGLE_PORT" config set stream-node-max-bytes 4096 >/dev/null
    fi
    # RSS per stream on a fresh process (allocator pools grown by the
    # scenarios above would hide the streams' cost).
    stop_gateway
    start_gateway
    log "$label: hold $HOLD streams (fresh gateway)"
    bench "${args[@]}" --gateway-pid "$GW_PID" hold --streams "$HOLD"
    stop_gateway
    stop_backend
}

rm -f "$OUT"
log "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for config in $CONFIGS; do
    run_config "$config"
done

# --- summary --------------------------------------------------------------------
python3 - "$OUT" >"$SUMMARY" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
labels = [l for l in ("single", "cluster1", "cluster3") if any(r["label"] == l for r in rows)]
titles = {"single": "single Redis", "cluster1": "cluster, 1 shard", "cluster3": "cluster, 3 shards"}
def pieces(r):  # K: the events of a session besides worker_ack and the end
    return r["events"] // max(r["sessions"], 1) - 2
def get(label, mode, scenario):
    found = [r for r in rows if r["label"] == label and r.get("mode") == mode and r["scenario"] == scenario]
    return found[-1] if found else None
def fmt(v, d=0):
    return "—" if v is None else f"{v:,.{d}f}".replace(",", " ")
out = ["| mode | metric | " + " | ".join(titles[l] for l in labels) + " |",
       "|---|---|" + "---:|" * len(labels)]
def row(mode, metric, f):
    out.append(f"| {mode} | {metric} | " + " | ".join(f(l) for l in labels) + " |")
for mode in ("pubsub", "resumable"):
    t = lambda l: get(l, mode, "throughput")
    row(mode, "throughput, events/s", lambda l: fmt(t(l) and t(l)["events_per_s"]))
    for scen, name in (("latency", "in step"), ("latency-spread", "spread")):
        def lat(l, scen=scen):
            r = get(l, mode, scen)
            if not r: return "—"
            la = r["latency"]
            return f"{la['p50_us']/1000:.2f} / {la['p99_us']/1000:.2f} at {fmt(r['target_rate'])}/s"
        row(mode, f"latency p50 / p99 ms, {name}", lat)
    def cpu(l):
        r = t(l)
        if not r: return "—"
        c, ev = r["cpu"], r["events"]
        per = lambda s: "?" if s is None else f"{s * 1e6 / ev:.1f}"
        return f"{per(c['gateway_s'])} / {per(c['redis_s'])} / {per(c['bench_s'])}"
    row(mode, "CPU µs per event: gateway / Redis (all nodes) / load generator", cpu)
    def cpu_s(l):
        r = t(l)
        if not r: return "—"
        c = r["cpu"]
        s = lambda v: "?" if v is None else f"{v:.2f}"
        return f"{s(c['gateway_s'])} / {s(c['redis_s'])} / {s(c['bench_s'])} in {r['elapsed_s']:.1f} s"
    row(mode, "CPU s: gateway / Redis / load generator", cpu_s)
    def nodes(l):
        r = t(l)
        ns = r and r["cpu"].get("redis_nodes")
        if not ns or len(ns) < 2: return "—"
        return " / ".join("?" if n["cpu_s"] is None else f"{n['cpu_s']:.2f}" for n in ns)
    row(mode, "Redis CPU s per node", nodes)
    def fixed(l):
        r = get(l + "@fixed", mode, "latency-spread")
        if not r: return "—"
        c, ev = r["cpu"], r["events"]
        per = lambda s: "?" if s is None else f"{s * 1e6 / ev:.1f}"
        la = r["latency"]
        return (f"{per(c['gateway_s'])} / {per(c['redis_s'])} / {per(c['bench_s'])}; "
                f"p50 / p99 {la['p50_us']/1000:.2f} / {la['p99_us']/1000:.2f} ms")
    rate = next((r["target_rate"] for r in rows if r["label"].endswith("@fixed") and r["mode"] == mode), None)
    row(mode, f"at a fixed {fmt(rate)} events/s (spread): CPU µs per event gateway / Redis / load generator; latency", fixed)
memory = [r for r in rows if r["scenario"] == "memory"]
for mode, k in sorted({(r["mode"], pieces(r)) for r in memory}):
    def mem(l, mode=mode, k=k):
        rs = [r for r in memory if r["label"] == l and r["mode"] == mode and pieces(r) == k]
        if not rs: return "—"
        return fmt(rs[-1]["redis_memory"]["bytes_per_session"])
    row(mode, f"Redis bytes per completed session of {k} pieces (used_memory, net of the job stream)", mem)
def hold(l):
    r = get(l, "pubsub", "hold")
    if not r: return "—"
    return f"{r['rss_per_stream_kib']:.1f} KiB × {fmt(r['held_streams'])}, {r['redis_subscriber_connections']} sub conn"
row("hold", "gateway RSS per held stream, subscriber connections", hold)
print("\n".join(out))
sweep = sorted({r["label"] for r in memory if r["label"].startswith("single@stream-node-max-bytes=")},
               key=lambda l: -int(l.split("=")[1]))
if sweep:
    kinds = sorted({(r["mode"], pieces(r)) for r in memory})
    print("\nRedis bytes per completed session on the single Redis by stream-node-max-bytes:\n")
    print("| stream-node-max-bytes | " + " | ".join(f"{m}, {k} pieces" for m, k in kinds) + " |")
    print("|---:|" + "---:|" * len(kinds))
    for l, name in [("single", "4096 (default)")] + [(l, l.split("=")[1]) for l in sweep]:
        cells = []
        for m, k in kinds:
            rs = [r for r in memory if r["label"] == l and r["mode"] == m and pieces(r) == k]
            cells.append(fmt(rs[-1]["redis_memory"]["bytes_per_session"]) if rs else "—")
        print(f"| {name} | " + " | ".join(cells) + " |")
ceilings = [r for r in rows if r["scenario"] == "fcall-ceiling"]
if ceilings:
    print("\nOne shard's ceiling: FCALL sse_bridge_append (redis-benchmark, 50 clients, one call each in flight):\n")
    print("| configuration | node | calls/s | node CPU µs per call | node busy |")
    print("|---|---|---:|---:|---:|")
    for r in ceilings:
        print(f"| {titles.get(r['label'], r['label'])} | {r['node']} | {fmt(r['per_s'])} | {r['cpu_us_per_call']:.1f} | {100 * r['node_busy']:.0f} % |")
contrast = [r for r in rows if r["scenario"] == "publish-contrast"]
if contrast:
    print("\nClassic PUBLISH vs SPUBLISH on the 3-master cluster (redis-benchmark on the first node, 50 clients, no subscribers):\n")
    print("| command | messages/s | CPU s per node (first node = the one published to) | CPU µs per message, all nodes |")
    print("|---|---:|---|---:|")
    for r in contrast:
        total = sum(n["cpu_s"] for n in r["nodes"])
        print(f"| {r['mode'].upper()} | {fmt(r['per_s'])} | " + " / ".join(f"{n['cpu_s']:.2f}" for n in r["nodes"])
              + f" | {total * 1e6 / r['messages']:.2f} |")
EOF
cat "$SUMMARY"
log "wrote $OUT and $SUMMARY"
