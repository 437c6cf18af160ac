#!/usr/bin/env bash
# A local Redis Cluster for humans and benchmarks (tests use
# sse_bridge_testkit::cluster::RedisCluster instead, which picks free ports
# and cleans up by itself).
#
#   scripts/redis-cluster.sh start <first-port> <masters> [replicas-per-master]
#   scripts/redis-cluster.sh stop  <first-port> <count>
#
# `start` runs masters * (1 + replicas) daemonized redis-server nodes on
# 127.0.0.1, ports first-port .. first-port + count - 1 (cluster bus: port +
# 10000, so pick e.g. 7000: bus ports in the ephemeral range, from 32768 on
# Linux, can be taken by outgoing connections), with configs, logs and pid
# files in /tmp/sse-bridge-redis-cluster-<first-port>; joins them with
# `redis-cli --cluster create`, waits until every node reports
# cluster_state:ok and knows every replica, and prints the seed list for
# `sse-bridge --redis-url`.
# `stop` SIGTERMs the nodes it started (by their pid files) and removes the
# directory. Needs redis-server and redis-cli 7 or later, and ss.
set -Eeuo pipefail

usage() {
    echo "usage: $0 start <first-port> <masters> [replicas-per-master]" >&2
    echo "       $0 stop <first-port> <count>" >&2
    exit 2
}

is_number() {
    [[ $1 =~ ^[0-9]+$ ]]
}

cluster_dir() {
    echo "/tmp/sse-bridge-redis-cluster-$1"
}

# wait_for <seconds> <description> <command...>: retries the command every
# 100 ms until it succeeds, fails after the limit.
wait_for() {
    local limit=$1 what=$2
    shift 2
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            echo "timed out after ${limit}s waiting for $what" >&2
            return 1
        fi
        sleep 0.1
    done
}

answers_ping() {
    [[ $(redis-cli -p "$1" ping 2>/dev/null) == PONG ]]
}

# port_in_use <port>: some TCP socket, listening or connected, has it (a
# socket in TIME-WAIT does not stop redis-server binding the port).
port_in_use() {
    [[ -n $(ss -Htan exclude time-wait "sport = :$1") ]]
}

# cluster_ready <port> <replicas>: the node reports cluster_state:ok and
# knows <replicas> replicas.
cluster_ready() {
    [[ $(redis-cli -p "$1" cluster info) == *cluster_state:ok* ]] || return 1
    local known_replicas
    known_replicas=$(redis-cli -p "$1" cluster nodes | awk '$3 ~ /(^|,)slave(,|$)/' | wc -l)
    ((known_replicas == $2))
}

start() {
    local first_port=$1 masters=$2 replicas=${3:-0}
    is_number "$first_port" && is_number "$masters" && is_number "$replicas" || usage
    ((masters >= 3)) || { echo "Redis Cluster needs at least 3 masters" >&2; exit 2; }
    local count=$((masters * (1 + replicas)))
    local last_port=$((first_port + count - 1))
    ((first_port >= 1024 && last_port + 10000 <= 65535)) || {
        echo "ports $first_port..$last_port and their bus ports (+10000) must lie in 1024..65535" >&2
        exit 2
    }
    local dir
    dir=$(cluster_dir "$first_port")
    [[ ! -e $dir ]] || { echo "$dir exists: stop that cluster first" >&2; exit 1; }
    for ((port = first_port; port <= last_port; port++)); do
        for taken in "$port" $((port + 10000)); do
            ! port_in_use "$taken" || { echo "port $taken is in use" >&2; exit 1; }
        done
    done
    local ephemeral_start
    read -r ephemeral_start _ </proc/sys/net/ipv4/ip_local_port_range
    ((last_port + 10000 < ephemeral_start)) ||
        echo "warning: bus ports up to $((last_port + 10000)) reach the ephemeral range" \
            "(from $ephemeral_start): outgoing connections may take them; prefer e.g. 7000" >&2
    mkdir -p "$dir"
    trap 'echo "start failed; clean up with: $0 stop $first_port $count" >&2' ERR

    local addresses=() seeds=()
    for ((port = first_port; port <= last_port; port++)); do
        redis-server --port "$port" --bind 127.0.0.1 --protected-mode no \
            --cluster-enabled yes --cluster-config-file "$dir/nodes-$port.conf" \
            --cluster-node-timeout 2000 --save "" --appendonly no --dir "$dir" \
            --daemonize yes --pidfile "$dir/$port.pid" --logfile "$dir/$port.log"
        addresses+=("127.0.0.1:$port")
        seeds+=("redis://127.0.0.1:$port")
    done
    for ((port = first_port; port <= last_port; port++)); do
        wait_for 10 "node $port to answer PING (log: $dir/$port.log)" answers_ping "$port"
    done

    redis-cli --cluster create "${addresses[@]}" --cluster-replicas "$replicas" --cluster-yes \
        </dev/null >"$dir/create.log" 2>&1 || {
        cat "$dir/create.log" >&2
        exit 1
    }
    for ((port = first_port; port <= last_port; port++)); do
        wait_for 30 "node $port to report cluster_state:ok and every replica" \
            cluster_ready "$port" $((masters * replicas))
    done

    echo "Redis Cluster: $masters masters, $replicas replicas each, ports $first_port..$last_port, files in $dir" >&2
    local IFS=,
    echo "${seeds[*]}"
}

stop() {
    local first_port=$1 count=$2
    is_number "$first_port" && is_number "$count" || usage
    local dir
    dir=$(cluster_dir "$first_port")
    local pids=()
    for ((port = first_port; port < first_port + count; port++)); do
        if [[ -s $dir/$port.pid ]]; then
            pids+=("$(cat "$dir/$port.pid")")
        else
            echo "no pid file for port $port in $dir; skipped" >&2
        fi
    done
    if ((${#pids[@]} > 0)); then
        kill "${pids[@]}" 2>/dev/null || true
        local pid
        for pid in "${pids[@]}"; do
            wait_for 10 "redis-server $pid to exit" bash -c "! kill -0 $pid"
        done
    fi
    rm -rf "$dir"
}

case ${1:-} in
start)
    (($# == 3 || $# == 4)) || usage
    start "$2" "$3" "${4:-0}"
    ;;
stop)
    (($# == 3)) || usage
    stop "$2" "$3"
    ;;
*)
    usage
    ;;
esac
