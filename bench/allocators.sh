#!/usr/bin/env bash
# The gateway under three allocators, interleaved: the same release binary
# run with glibc's malloc (and its periodic `malloc_trim`), jemalloc and
# mimalloc swapped in with LD_PRELOAD (Debian's libjemalloc2 and
# libmimalloc2.0), ROUNDS times in a rotating order so that a busy minute
# of the box does not land on one allocator. Each run is a held-load run
# (bench/held-load.sh): RSS per held stream, p99 and gateway CPU per event
# at each rate. Prints a table of the medians; every run's JSON line goes to OUT.
#
#   bash bench/allocators.sh                    # 10,000 streams, 2 rounds
#   STREAMS=20000 ROUNDS=3 RATES=20000,60000 bash bench/allocators.sh
#
# Env: STREAMS (10000), CONNECTIONS (STREAMS / 256), ROUNDS (2), RATES
# (20000,50000), PHASE_SECONDS (10), OUT (bench/allocators.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
streams=${STREAMS:-10000}; rounds=${ROUNDS:-2}
out=${OUT:-bench/allocators.jsonl}
lib=/usr/lib/x86_64-linux-gnu
declare -A preload=([glibc]="" [jemalloc]="$lib/libjemalloc.so.2" [mimalloc]="$lib/libmimalloc.so.2")
for name in jemalloc mimalloc; do
    [ -e "${preload[$name]}" ] || { echo "missing ${preload[$name]} (apt-get install libjemalloc2 libmimalloc2.0)" >&2; exit 1; }
done
order=(glibc jemalloc mimalloc)
started=$(date +%s)
for round in $(seq "$rounds"); do
    for name in "${order[@]}"; do
        echo "allocators: round $round, $name" >&2
        PRELOAD="${preload[$name]}" LABEL="alloc-$name" OUT="$out" \
            RATES="${RATES:-20000,50000}" PHASE_SECONDS="${PHASE_SECONDS:-10}" \
            bash bench/held-load.sh h2 "$streams" ${CONNECTIONS:-} >/dev/null
    done
    order=("${order[@]:1}" "${order[0]}")  # rotate: each allocator runs first once
done
python3 - "$out" "$started" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
runs = [r for r in runs if r["started_at"] >= int(sys.argv[2]) and r["label"].startswith("alloc-")]
rates = sorted({p["rate"] for r in runs for p in r["phases"]})
print("| allocator | runs | KiB per held stream | " + " | ".join(
    f"{int(rate):,}/s: p99 ms, gateway µs/event" for rate in rates) + " |")
print("|---|---:|---:|" + "---:|" * len(rates))
for name in ("glibc", "jemalloc", "mimalloc"):
    mine = [r for r in runs if r["label"] == f"alloc-{name}"]
    if not mine:
        continue
    med = statistics.median
    cells = []
    for rate in rates:
        phases = [p for r in mine for p in r["phases"] if p["rate"] == rate]
        cells.append(f'{med(p["latency"]["p99_us"] for p in phases) / 1000:.1f}, '
                     f'{med(p["gateway_cpu_us_per_event"] for p in phases):.1f}')
    print(f'| {name} | {len(mine)} | {med(r["rss_per_stream_kib"] for r in mine):.2f} | '
          + " | ".join(cells) + " |")
PY
