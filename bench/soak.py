#!/usr/bin/env python3
"""Soak run (issue 18): sessions at a steady rate through one gateway and two
workers on a Redis of its own, with the Redis killed and restarted mid-run
and a worker SIGKILLed later. Prints how every session ended.

    cargo build -p sse-bridge && python3 bench/soak.py [--rate 20] [--seconds 150]

Needs only the Python standard library and `redis-server` on PATH. The
gateway and workers are `target/debug/sse-bridge` unless `--binary` says
otherwise; nothing here is timed for speed, only outcomes are counted.
"""

import argparse
import asyncio
import collections
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


async def session(port: int, index: int, outcomes: collections.Counter, timeout: float) -> None:
    """One POST, read to its last frame; counts how it ended."""
    body = json.dumps({"user_query": f"What is {index}+1?"}).encode()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    except (OSError, asyncio.TimeoutError):
        outcomes["connect failed"] += 1
        return
    writer.write(
        b"POST /v1/react/sessions HTTP/1.1\r\nhost: soak\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
        + body
    )
    try:
        raw = await asyncio.wait_for(reader.read(-1), timeout)
    except asyncio.TimeoutError:
        outcomes["no end in time"] += 1
        return
    finally:
        writer.close()
    status = raw.split(b" ", 2)[1].decode() if raw.startswith(b"HTTP/1.1 ") else "?"
    if status != "200":
        outcomes[f"HTTP {status}"] += 1
        return
    last = None
    for line in raw.split(b"\n"):
        if line.startswith(b"data: "):
            try:
                last = json.loads(line[6:])
            except ValueError:
                pass
    if last is None:
        outcomes["no frame"] += 1
    elif last.get("event_type") == "FinalAnswerStreamEnd":
        outcomes["completed"] += 1
    elif last.get("event_type") == "error":
        outcomes[f"error/{last['payload'].get('code')}"] += 1
    else:
        outcomes["cut short"] += 1


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=20.0, help="sessions per second")
    parser.add_argument("--seconds", type=float, default=150.0)
    parser.add_argument("--kill-redis-at", type=float, default=50.0)
    parser.add_argument("--kill-worker-at", type=float, default=100.0)
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/debug/sse-bridge"))
    parser.add_argument("--demo-delay", default="20ms")
    args = parser.parse_args()

    redis_port, http_port = free_port(), free_port()
    redis = start_redis(redis_port)
    url = f"redis://127.0.0.1:{redis_port}"
    logs = tempfile.mkdtemp(prefix="soak-")
    common = ["--redis-url", url, "--queue", "redis", "--redis-stream", "soak_jobs"]

    def spawn(name: str, argv: list) -> subprocess.Popen:
        log = open(os.path.join(logs, f"{name}.log"), "w")
        return subprocess.Popen([args.binary, *argv], stdout=log, stderr=subprocess.STDOUT)

    gateway = spawn("gateway", ["serve", "--listen", f"127.0.0.1:{http_port}", *common])
    workers = [
        spawn(f"worker{n}", ["worker", *common, "--demo-delay", args.demo_delay, "--redis-claim-idle", "5s"])
        for n in range(2)
    ]
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", http_port), timeout=0.2).close()
            break
        except OSError:
            await asyncio.sleep(0.1)

    outcomes: collections.Counter = collections.Counter()
    tasks = []
    started = time.monotonic()
    killed_redis = killed_worker = False
    total = int(args.rate * args.seconds)
    for index in range(total):
        at = started + index / args.rate
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        elapsed = time.monotonic() - started
        if not killed_redis and elapsed >= args.kill_redis_at:
            redis.send_signal(signal.SIGKILL)
            redis.wait()
            redis = start_redis(redis_port)
            killed_redis = True
            print(f"{elapsed:6.1f} s: Redis killed and restarted", flush=True)
        if not killed_worker and elapsed >= args.kill_worker_at:
            workers[0].send_signal(signal.SIGKILL)
            killed_worker = True
            print(f"{elapsed:6.1f} s: worker 0 SIGKILLed", flush=True)
        tasks.append(asyncio.create_task(session(http_port, index, outcomes, timeout=120)))
    await asyncio.gather(*tasks)
    for process in [gateway, *workers]:
        if process.poll() is None:
            process.terminate()
    redis.terminate()
    print(f"{total} sessions at {args.rate:g}/s for {args.seconds:g} s (logs in {logs}):")
    for outcome, count in outcomes.most_common():
        print(f"  {count:6d}  {outcome}")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
