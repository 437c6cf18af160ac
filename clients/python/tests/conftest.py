"""Test support: the real gateway binary (``SSE_BRIDGE_BIN``), the real Redis
at 127.0.0.1:6379, an SSE reader on ``http.client``, and workers of the kit
running in background threads.

Every gateway gets a stream and group of its own, and the sessions it
created are deleted from Redis afterwards, so the tests run alongside the
Rust suite on the same Redis.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Union

import pytest
import redis

from sse_bridge_worker import AsyncWorker, Worker

REDIS_URL = "redis://127.0.0.1:6379"
#: Longest wait for anything in these tests (a session, a worker's stop).
PATIENCE = 30.0


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Frame:
    """One SSE frame: its ``id:`` (followers only) and its ``data:`` JSON."""

    data: Dict[str, Any]
    id: Optional[str] = None

    @property
    def event_type(self) -> str:
        return self.data["event_type"]


class EventStream:
    """An open ``text/event-stream`` response, read frame by frame."""

    def __init__(self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse) -> None:
        self.connection = connection
        self.response = response
        self.status = response.status
        self.session_id = response.getheader("x-session-id")

    def frames(self) -> Iterator[Frame]:
        """The frames with data, in order, until the response ends."""
        data: List[str] = []
        frame_id: Optional[str] = None
        while True:
            line = self.response.readline()
            if not line:
                return
            text = line.decode("utf-8").rstrip("\r\n")
            if text.startswith("data: "):
                data.append(text[len("data: ") :])
            elif text.startswith("id: "):
                frame_id = text[len("id: ") :]
            elif text == "" and data:
                yield Frame(json.loads("\n".join(data)), frame_id)
                data, frame_id = [], None

    def read_all(self) -> List[Frame]:
        frames = list(self.frames())
        self.close()
        return frames

    def close(self) -> None:
        self.response.close()
        self.connection.close()


@dataclass
class Gateway:
    """A running ``sse-bridge serve`` on Redis, with its own job stream."""

    process: subprocess.Popen
    url: str
    port: int
    stream: str
    group: str
    log_path: str
    sessions: List[str] = field(default_factory=list)

    def request(
        self,
        method: str,
        path: str,
        body: Optional[Dict[str, Any]] = None,
        headers: Optional[Dict[str, str]] = None,
    ) -> EventStream:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=PATIENCE)
        all_headers = dict(headers or {})
        payload = None
        if body is not None:
            payload = json.dumps(body)
            all_headers["content-type"] = "application/json"
        connection.request(method, path, body=payload, headers=all_headers)
        stream = EventStream(connection, connection.getresponse())
        if stream.session_id:
            self.sessions.append(stream.session_id)
        return stream

    def start_session(self, body: Dict[str, Any]) -> EventStream:
        """``POST /v1/react/sessions``: the response head (the job is dispatched)."""
        stream = self.request("POST", "/v1/react/sessions", body)
        assert stream.status == 200, stream.response.read()
        return stream

    def follow(self, session_id: str, last_event_id: Optional[str] = None) -> EventStream:
        """``GET /v1/react/sessions/{id}/events``, resuming after ``last_event_id``."""
        headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
        return self.request("GET", f"/v1/react/sessions/{session_id}/events", headers=headers)

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as log:
            return log.read()


@contextmanager
def running_gateway(*extra_args: str) -> Iterator[Gateway]:
    """Starts the gateway on a free port, on a stream and group of its own;
    stops it and deletes its stream and sessions afterwards."""
    binary = os.environ.get("SSE_BRIDGE_BIN")
    if not binary or not os.path.exists(binary):
        pytest.fail("SSE_BRIDGE_BIN must name the sse-bridge binary (cargo build -p sse-bridge)")
    port = free_port()
    stream, group = unique("pykit_jobs"), unique("pykit_workers")
    args = [
        binary,
        "serve",
        "--listen",
        f"127.0.0.1:{port}",
        "--redis-url",
        REDIS_URL,
        "--redis-stream",
        stream,
        "--group",
        group,
        *extra_args,
    ]
    log_fd, log_path = tempfile.mkstemp(prefix="sse-bridge-gateway-", suffix=".txt")
    try:
        process = subprocess.Popen(args, stdout=log_fd, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    finally:
        os.close(log_fd)  # the gateway writes to its own copy
    gateway = Gateway(process, f"http://127.0.0.1:{port}", port, stream, group, log_path)
    try:
        _wait_healthy(gateway)
        yield gateway
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        client = redis.Redis.from_url(REDIS_URL)
        keys = [stream] + [
            f"{kind}:{sid}" for sid in gateway.sessions for kind in ("sse_events", "sse_session_meta")
        ]
        client.delete(*keys)
        client.close()
        os.unlink(log_path)


def _wait_healthy(gateway: Gateway) -> None:
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        if gateway.process.poll() is not None:
            pytest.fail(f"the gateway exited with {gateway.process.returncode}:\n{gateway.log()}")
        try:
            with urllib.request.urlopen(f"{gateway.url}/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"the gateway was not healthy within {PATIENCE}s:\n{gateway.log()}")


@contextmanager
def running_worker(worker: Union[AsyncWorker, Worker]) -> Iterator[None]:
    """Runs ``worker`` in a thread; stops it and waits for it afterwards."""
    failures: List[BaseException] = []

    def run() -> None:
        try:
            if isinstance(worker, AsyncWorker):
                asyncio.run(worker.run())
            else:
                worker.run(handle_signals=False)
        except BaseException as failure:  # reported by the test's thread
            failures.append(failure)

    thread = threading.Thread(target=run, name="kit-worker", daemon=True)
    thread.start()
    try:
        yield
    finally:
        worker.stop()
        thread.join(PATIENCE)
        assert not thread.is_alive(), "the worker did not stop"
    if failures:
        raise failures[0]


def kit_options(gateway: Gateway, **overrides: Any) -> Dict[str, Any]:
    """Worker options for ``gateway``'s queue, quick to stop."""
    options: Dict[str, Any] = dict(
        stream=gateway.stream, group=gateway.group, read_block=0.2, heartbeat=0.5, shutdown_grace=5.0
    )
    options.update(overrides)
    return options


@pytest.fixture
def by_hand(redis_client: redis.Redis) -> Iterator[Callable[..., str]]:
    """Makes sessions without a gateway: ``by_hand(batches=True)`` writes a
    new session's metadata as a gateway does at creation (``batches 1``:
    its gateways read a JSON array as a batch of events) and returns its
    id. Their keys are deleted afterwards."""
    made: List[str] = []

    def create(batches: bool = True) -> str:
        sid = str(uuid.uuid4())
        fields: Dict[str, Any] = {
            "created_at": 1,
            "principal": "anonymous",
            "ttl_ms": 60000,
            "tail_max": 64 * 1024 * 1024,
            "folded_max": 64 * 1024 * 1024,
            "channel": f"sse_session:{sid}",
            "publish": "PUBLISH",
            "max_len": 100,
            "live_ms": 30000,
        }
        if batches:
            fields["batches"] = 1
        redis_client.hset(f"sse_session_meta:{sid}", mapping=fields)
        made.append(sid)
        return sid

    yield create
    for sid in made:
        redis_client.delete(*(f"{kind}:{sid}" for kind in ("sse_events", "sse_session_meta", "sse_folded")))


@pytest.fixture(scope="module")
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    client.close()
