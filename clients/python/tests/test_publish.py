"""``publish_event`` (and ``publish_batch``) against the real gateway and
Redis: the attempt rule's answers, idempotent retries after a lost reply,
and the function library (the shipped copy is the gateway's, and it is
loaded where it is missing)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator, List, Tuple

import pytest
import redis
import redis.asyncio
from conftest import REDIS_URL, Gateway, free_port, running_gateway
from redis.backoff import NoBackoff
from redis.retry import Retry

from sse_bridge_worker import (
    FUNCTIONS,
    Published,
    SessionRefused,
    publish_batch,
    publish_event,
    publish_event_async,
)
from sse_bridge_worker.publish import log_key, meta_key

REPOSITORY = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    # No worker serves this gateway's queue: the tests publish by hand.
    with running_gateway("--ack-timeout", "30s") as gateway:
        yield gateway


def test_the_shipped_function_library_is_the_gateways() -> None:
    repository_copy = REPOSITORY / "crates/sse-bridge-redis/src/functions.lua"
    package_copy = Path(__file__).resolve().parents[1] / "sse_bridge_worker/functions.lua"
    assert package_copy.read_bytes() == repository_copy.read_bytes(), (
        "clients/python/sse_bridge_worker/functions.lua differs from the gateway's: "
        "cp crates/sse-bridge-redis/src/functions.lua clients/python/sse_bridge_worker/"
    )
    assert repository_copy.read_text(encoding="utf-8") == FUNCTIONS


def test_a_publish_to_an_unknown_session_is_refused() -> None:
    client = redis.Redis.from_url(REDIS_URL)
    with pytest.raises(SessionRefused) as refused:
        publish_event(client, str(uuid.uuid4()), "worker_ack", {}, attempt="a")
    assert refused.value.reason == "unknown"
    client.close()

    async def publish_async() -> None:
        client = redis.asyncio.Redis.from_url(REDIS_URL)
        try:
            await publish_event_async(client, str(uuid.uuid4()), "FinalAnswerStream", {"char": "x"})
        finally:
            await client.aclose()

    with pytest.raises(SessionRefused) as refused:
        asyncio.run(publish_async())
    assert refused.value.reason == "unknown"


def test_events_follow_the_attempt_rule_and_reach_the_client(gateway: Gateway) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    stream = gateway.start_session({"user_query": "by hand"})
    sid = stream.session_id

    def refusal(event_type: str, attempt: str) -> str:
        with pytest.raises(SessionRefused) as refused:
            publish_event(client, sid, event_type, {}, attempt=attempt)
        return refused.value.reason

    assert refusal("FinalAnswerStream", "first") == "not_acked"
    acked = publish_event(client, sid, "worker_ack", {}, attempt="first", idempotency_key="first:0")
    assert acked.logged and acked.receivers == 1
    assert refusal("FinalAnswerStream", "second") == "foreign"
    assert refusal("worker_ack", "second") == "busy", "the first attempt is live"
    heartbeat = publish_event(client, sid, "worker_heartbeat", {}, attempt="first", idempotency_key="first:1")
    assert heartbeat.log_id is None and not heartbeat.logged
    piece = publish_event(
        client, sid, "FinalAnswerStream", {"char": "é\n"}, attempt="first", idempotency_key="first:2"
    )
    again = publish_event(
        client, sid, "FinalAnswerStream", {"char": "é\n"}, attempt="first", idempotency_key="first:2"
    )
    assert again.log_id == piece.log_id, "the same key logs once"
    publish_event(client, sid, "FinalAnswerStreamEnd", {}, attempt="first", idempotency_key="first:3")
    assert refusal("FinalAnswerStream", "first") == "ended"

    frames = stream.read_all()
    assert [(f.event_type, f.data["payload"]) for f in frames] == [
        ("worker_ack", {}),
        ("FinalAnswerStream", {"char": "é\n"}),
        ("FinalAnswerStreamEnd", {}),
    ]
    assert client.xlen(log_key(sid)) == 3
    client.close()


class ReplyDroppingProxy:
    """A TCP proxy to Redis that, once, lets an ``sse_bridge_v4_append`` (or
    ``sse_bridge_v4_append_batch``) reach Redis but closes the connection
    instead of passing on its reply: the publish ran, and the client cannot
    know."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dropped_replies = 0
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._sockets: List[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", 6379))
            self._sockets += [downstream, upstream]
            append_sent = threading.Event()
            threading.Thread(
                target=self._pump, args=(downstream, upstream, append_sent, True), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(upstream, downstream, append_sent, False), daemon=True
            ).start()

    def _pump(
        self, source: socket.socket, sink: socket.socket, append_sent: threading.Event, to_redis: bool
    ) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if to_redis and b"sse_bridge_v4_append" in data:
                    append_sent.set()
                if not to_redis and append_sent.is_set() and self.dropped_replies == 0:
                    self.dropped_replies += 1
                    break
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@pytest.mark.parametrize("retries", ["redis-py's", "the kit's"])
def test_a_publish_whose_reply_was_lost_is_logged_once(gateway: Gateway, retries: str) -> None:
    stream = gateway.start_session({"user_query": "lossy"})
    sid = stream.session_id
    direct = redis.Redis.from_url(REDIS_URL)
    publish_event(direct, sid, "worker_ack", {}, attempt="a", idempotency_key="a:0")
    proxy = ReplyDroppingProxy()
    options = {} if retries == "redis-py's" else {"retry": Retry(NoBackoff(), 0)}
    lossy = redis.Redis(host="127.0.0.1", port=proxy.port, **options)
    try:
        published = publish_event(
            lossy, sid, "FinalAnswerStream", {"char": "x"}, attempt="a", idempotency_key="a:1"
        )
    finally:
        lossy.close()
        proxy.close()
    assert proxy.dropped_replies == 1
    entries: List[Tuple[bytes, dict]] = direct.xrange(log_key(sid))
    pieces = [entry_id.decode() for entry_id, fields in entries if b'"FinalAnswerStream"' in fields[b"e"]]
    assert pieces == [published.log_id], entries
    publish_event(direct, sid, "FinalAnswerStreamEnd", {}, attempt="a", idempotency_key="a:2")
    assert [f.event_type for f in stream.read_all()] == [
        "worker_ack",
        "FinalAnswerStream",
        "FinalAnswerStreamEnd",
    ]
    direct.close()


@pytest.mark.parametrize("retries", ["redis-py's", "the kit's"])
def test_a_batch_whose_reply_was_lost_is_logged_once(
    redis_client: redis.Redis, by_hand: Callable[..., str], retries: str
) -> None:
    sid = by_hand(batches=True)
    live = redis_client.pubsub()
    live.subscribe(f"sse_session:{sid}")
    direct = redis.Redis.from_url(REDIS_URL)
    publish_event(direct, sid, "worker_ack", {}, attempt="a", idempotency_key="a:0")
    proxy = ReplyDroppingProxy()
    options = {} if retries == "redis-py's" else {"retry": Retry(NoBackoff(), 0)}
    lossy = redis.Redis(host="127.0.0.1", port=proxy.port, **options)
    events = [
        ("AgentThoughtStream", {"char": "hm"}),
        ("worker_heartbeat", {}),
        ("FinalAnswerStream", {"char": "x"}),
        ("FinalAnswerStream", {"char": "y"}),
    ]
    try:
        outcomes = publish_batch(lossy, sid, events, attempt="a", idempotency_key="a:1")
    finally:
        lossy.close()
        proxy.close()
        direct.close()
    assert proxy.dropped_replies == 1
    assert all(isinstance(outcome, Published) for outcome in outcomes), outcomes
    entries = redis_client.xrange(log_key(sid))
    assert [json.loads(fields["e"])["event_type"] for _, fields in entries] == [
        "worker_ack",
        "AgentThoughtStream",
        "FinalAnswerStream",
        "FinalAnswerStream",
    ]
    ids = [entry_id for entry_id, _ in entries]
    assert [outcome.log_id for outcome in outcomes] == [ids[1], None, ids[2], ids[3]]
    # Published once too: the ack, then the batch as one message.
    published = []
    while (message := live.get_message(timeout=0.5)) is not None:
        if message["type"] == "message":
            published.append(json.loads(message["data"]))
    live.close()
    assert [m["event_type"] if isinstance(m, dict) else [e["event_type"] for e in m] for m in published] == [
        "worker_ack",
        [event_type for event_type, _ in events],
    ]


@pytest.fixture
def bare_redis() -> Iterator[redis.Redis]:
    """A private Redis that no gateway ever reached: no function library."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    yield client
    client.close()
    process.terminate()
    process.wait(timeout=10)


def test_the_library_is_loaded_where_it_is_missing(bare_redis: redis.Redis) -> None:
    assert bare_redis.function_list() == []
    sid = str(uuid.uuid4())
    # What the gateway records when it creates a session.
    bare_redis.hset(
        meta_key(sid), mapping={"created_at": 1, "principal": "anonymous", "max_len": 100, "ttl_ms": 60000}
    )
    published = publish_event(bare_redis, sid, "worker_ack", {}, attempt="a")
    assert published.logged
    (library,) = bare_redis.function_list()  # [b"library_name", b"sse_bridge_v4", ...]
    assert library[library.index(b"library_name") + 1] == b"sse_bridge_v4"
    assert bare_redis.xlen(log_key(sid)) == 1
