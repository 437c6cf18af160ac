"""Batches on the real Redis (and gateway): ``publish_batch`` logs and
publishes several events with one ``FCALL sse_bridge_v4_append_batch``
(one JSON array message when the session's gateways read batches, one
message per event otherwise), stops at the first refusal; a session's
``send`` queue puts the events that queued up while an append was in flight
into one call, keeps the order with ``publish``, surfaces a refusal from
``flush`` / the next ``send`` and stops the session, pushes back past its
byte bound, and reports a failure once; the workers flush a handler's sends
before they end the session."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest
import redis
import redis.asyncio
from conftest import PATIENCE, REDIS_URL, Gateway, free_port, kit_options, running_gateway, running_worker
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from sse_bridge_worker import (
    AsyncSession,
    AsyncWorker,
    Job,
    Published,
    Session,
    SessionRefused,
    Worker,
    publish_batch,
    publish_batch_async,
    publish_event,
)
from sse_bridge_worker.publish import APPEND_BATCH_FUNCTION, APPEND_FUNCTION, log_key, meta_key
from sse_bridge_worker.session import BATCH_MAX_EVENTS

ATTEMPT = "a1b2c3d4e5f60718"


#: Makes a session by hand (conftest's ``by_hand``).
ByHand = Callable[..., str]


def logged(client: redis.Redis, sid: str) -> List[Tuple[str, Dict[str, Any]]]:
    """The session's log: (entry id, event) in order."""
    return [(entry_id, json.loads(fields["e"])) for entry_id, fields in client.xrange(log_key(sid))]


def reason_of(outcome: Any) -> str:
    assert isinstance(outcome, SessionRefused), outcome
    return outcome.reason


def messages(pubsub: Any, count: int) -> List[Any]:
    """The next ``count`` messages on the subscribed channel, parsed."""
    got: List[Any] = []
    while len(got) < count:
        message = pubsub.get_message(timeout=PATIENCE)
        assert message is not None, f"only {len(got)} of {count} messages arrived"
        if message["type"] == "message":
            got.append(json.loads(message["data"]))
    return got


@pytest.mark.parametrize("batches", [True, False], ids=["batches", "no-batches"])
def test_a_batch_is_logged_in_order_and_published(
    redis_client: redis.Redis, by_hand: ByHand, batches: bool
) -> None:
    sid = by_hand(batches)
    client = redis.Redis.from_url(REDIS_URL)
    pubsub = redis_client.pubsub()
    pubsub.subscribe(f"sse_session:{sid}")
    try:
        publish_event(client, sid, "worker_ack", {}, attempt=ATTEMPT, idempotency_key=f"{ATTEMPT}:0")
        events = [
            ("AgentThoughtStream", {"char": "hm"}),
            ("worker_heartbeat", {}),
            ("FinalAnswerStream", {"char": "é\n"}),
            ("FinalAnswerStream", {"char": "!"}),
        ]
        outcomes = publish_batch(client, sid, events, attempt=ATTEMPT, idempotency_key=f"{ATTEMPT}:1")
        assert all(isinstance(outcome, Published) and outcome.receivers == 1 for outcome in outcomes)
        assert [outcome.logged for outcome in outcomes] == [True, False, True, True]

        log = logged(redis_client, sid)
        assert [(event["event_type"], event["payload"]) for _, event in log] == [
            ("worker_ack", {}),
            events[0],
            events[2],
            events[3],
        ]
        assert all(event["attempt"] == ATTEMPT for _, event in log)
        ids = [entry_id for entry_id, _ in log]
        assert [outcome.log_id for outcome in outcomes] == [ids[1], None, ids[2], ids[3]]

        (ack,) = messages(pubsub, 1)
        assert ack["event_type"] == "worker_ack" and ack["log_id"] == ids[0]
        if batches:
            (published,) = messages(pubsub, 1)
            assert isinstance(published, list), "one message: the batch as a JSON array"
        else:
            published = messages(pubsub, len(events))
        assert [(m["event_type"], m["payload"], m.get("log_id")) for m in published] == [
            (event_type, payload, outcome.log_id) for (event_type, payload), outcome in zip(events, outcomes)
        ]
    finally:
        pubsub.close()
        client.close()


def test_a_batch_stops_at_its_first_refusal(redis_client: redis.Redis, by_hand: ByHand) -> None:
    sid = by_hand()
    client = redis.Redis.from_url(REDIS_URL)
    try:
        pieces = [("FinalAnswerStream", {"char": "x"})] * 2
        unknown = publish_batch(client, str(uuid.uuid4()), pieces, attempt=ATTEMPT)
        assert [reason_of(outcome) for outcome in unknown] == ["unknown", "unknown"]
        not_acked = publish_batch(client, sid, pieces, attempt=ATTEMPT)
        assert [reason_of(outcome) for outcome in not_acked] == ["not_acked", "not_acked"]

        outcomes = publish_batch(
            client,
            sid,
            [
                ("worker_ack", {}),
                ("FinalAnswerStream", {"char": "x"}),
                ("FinalAnswerStreamEnd", {}),
                ("FinalAnswerStream", {"char": "late"}),
                ("FinalAnswerStream", {"char": "later"}),
            ],
            attempt=ATTEMPT,
            idempotency_key=f"{ATTEMPT}:0",
        )
        assert [type(outcome) for outcome in outcomes] == [Published] * 3 + [SessionRefused] * 2
        assert [reason_of(outcome) for outcome in outcomes[3:]] == ["ended", "ended"]
        assert [event["event_type"] for _, event in logged(redis_client, sid)] == [
            "worker_ack",
            "FinalAnswerStream",
            "FinalAnswerStreamEnd",
        ]
        assert publish_batch(client, sid, [], attempt=ATTEMPT) == []
    finally:
        client.close()


def test_a_foreign_attempts_batch_is_refused(redis_client: redis.Redis, by_hand: ByHand) -> None:
    sid = by_hand()

    async def scenario() -> List[Any]:
        client = redis.asyncio.Redis.from_url(REDIS_URL)
        try:
            await publish_batch_async(client, sid, [("worker_ack", {})], attempt=ATTEMPT)
            return await publish_batch_async(
                client, sid, [("FinalAnswerStream", {"char": "x"})] * 3, attempt="someone-else"
            )
        finally:
            await client.aclose()

    assert [reason_of(outcome) for outcome in asyncio.run(scenario())] == ["foreign"] * 3
    assert len(logged(redis_client, sid)) == 1


# -- the session's send queue ---------------------------------------------


class CountingRedis(redis.asyncio.Redis):
    """A real client that records every append it sends (the function and
    its number of events; its idempotency key and ``again``), and can hold
    its next append until the test lets it through (an append in flight)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.appends: List[Tuple[str, int]] = []
        self.keys: List[Tuple[str, str]] = []
        self.hold: Optional[asyncio.Event] = None

    async def fcall(self, function: str, numkeys: int, *keys_and_args: Any) -> Any:  # type: ignore[override]
        args = keys_and_args[numkeys:]
        if function == APPEND_FUNCTION:  # event, event_type, attempt, key, again
            self.appends.append((function, 1))
            self.keys.append((args[3], args[4]))
        else:  # attempt, key, again, then event and event_type pairs
            self.appends.append((function, (len(args) - 3) // 2))
            self.keys.append((args[1], args[2]))
        hold, self.hold = self.hold, None
        if hold is not None:
            await hold.wait()
        return await super().fcall(function, numkeys, *keys_and_args)


def session_of(sid: str, client: redis.asyncio.Redis, publish_retry: float = 10.0) -> AsyncSession:
    return AsyncSession(Job(sid, {}, 0, "0-1"), ATTEMPT, client, publish_retry)


async def in_flight(client: CountingRedis, appends: int) -> None:
    """Waits until the client sent its ``appends``-th append (held)."""
    for _ in range(int(PATIENCE / 0.01)):
        if len(client.appends) >= appends:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the append #{appends} was never sent")


def test_sends_made_while_an_append_is_in_flight_go_in_one_call(
    redis_client: redis.Redis, by_hand: ByHand
) -> None:
    sid = by_hand()
    count = BATCH_MAX_EVENTS + 40

    async def scenario() -> Published:
        client = CountingRedis.from_url(REDIS_URL)
        try:
            session = session_of(sid, client)
            await session.publish("worker_ack")
            # A lone event goes at once, with the single append.
            hold = client.hold = asyncio.Event()
            await session.send("FinalAnswerStream", {"char": "0"})
            await in_flight(client, 2)
            for n in range(1, count):
                await session.send("FinalAnswerStream", {"char": str(n)})
            step_end = asyncio.ensure_future(session.publish("AgentStepEnd", {"name": "model"}))
            await asyncio.sleep(0.05)
            assert len(client.appends) == 2, "nothing goes while an append is in flight"
            assert not step_end.done()
            hold.set()
            published = await step_end
            await session.flush()
            assert client.appends == [
                (APPEND_FUNCTION, 1),
                (APPEND_FUNCTION, 1),
                (APPEND_BATCH_FUNCTION, BATCH_MAX_EVENTS),
                (APPEND_BATCH_FUNCTION, count - BATCH_MAX_EVENTS),
            ]
            # Each event has its `<attempt>:<n>`; a call goes under its
            # first event's, asking `again` (redis-py may resend it).
            first_events = [0, 1, 2, 2 + BATCH_MAX_EVENTS]
            assert client.keys == [(f"{ATTEMPT}:{n}", "again") for n in first_events]
            assert not session.cancelled
            return published
        finally:
            await client.aclose()

    published = asyncio.run(scenario())
    log = logged(redis_client, sid)
    assert [event["event_type"] for _, event in log] == (
        ["worker_ack"] + ["FinalAnswerStream"] * count + ["AgentStepEnd"]
    )
    assert [event["payload"]["char"] for _, event in log[1:-1]] == [str(n) for n in range(count)]
    assert published.log_id == log[-1][0], "publish answers its own event, after the sends before it"


def test_a_refusal_in_a_batch_stops_the_session(redis_client: redis.Redis, by_hand: ByHand) -> None:
    sid = by_hand()

    async def scenario() -> None:
        client = CountingRedis.from_url(REDIS_URL)
        try:
            session = session_of(sid, client)
            await session.publish("worker_ack")
            hold = client.hold = asyncio.Event()
            await session.send("FinalAnswerStream", {"char": "a"})
            await in_flight(client, 2)
            await session.send("FinalAnswerStream", {"char": "b"})
            end = asyncio.ensure_future(session.publish("FinalAnswerStreamEnd"))
            await asyncio.sleep(0)  # queued
            await session.send("FinalAnswerStream", {"char": "after the end"})
            await session.send("FinalAnswerStream", {"char": "and more"})
            hold.set()
            assert (await end).logged
            with pytest.raises(SessionRefused) as refused:
                await session.flush()
            assert refused.value.reason == "ended"
            assert session.cancelled and session.ended
            await asyncio.wait_for(session.wait_cancelled(), PATIENCE)
            with pytest.raises(SessionRefused):
                await session.send("FinalAnswerStream", {"char": "no"})
            with pytest.raises(SessionRefused):
                await session.publish("FinalAnswerStream", {"char": "no"})
            assert client.appends[2:] == [(APPEND_BATCH_FUNCTION, 4)]
        finally:
            await client.aclose()

    asyncio.run(scenario())
    assert [(event["event_type"], event["payload"]) for _, event in logged(redis_client, sid)] == [
        ("worker_ack", {}),
        ("FinalAnswerStream", {"char": "a"}),
        ("FinalAnswerStream", {"char": "b"}),
        ("FinalAnswerStreamEnd", {}),
    ]


def test_a_foreign_refusal_surfaces_from_the_next_send(
    redis_client: redis.Redis, by_hand: ByHand
) -> None:
    sid = by_hand()

    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(REDIS_URL)
        try:
            session = session_of(sid, client)
            await session.publish("worker_ack")
            await client.hset(meta_key(sid), "attempt", "another-attempt")  # another delivery took over
            await session.send("FinalAnswerStream", {"char": "a"})
            await session.send("FinalAnswerStream", {"char": "b"})
            await asyncio.wait_for(session.wait_cancelled(), PATIENCE)
            with pytest.raises(SessionRefused) as refused:
                await session.send("FinalAnswerStream", {"char": "c"})
            assert refused.value.reason == "foreign"
            with pytest.raises(SessionRefused):
                await session.flush()
        finally:
            await client.aclose()

    asyncio.run(scenario())
    assert [event["event_type"] for _, event in logged(redis_client, sid)] == ["worker_ack"]


def test_send_waits_while_the_queue_is_over_its_bound(redis_client: redis.Redis, by_hand: ByHand) -> None:
    sid = by_hand()
    piece = "x" * (300 * 1024)

    async def scenario() -> None:
        client = CountingRedis.from_url(REDIS_URL)
        try:
            session = session_of(sid, client)
            await session.publish("worker_ack")
            hold = client.hold = asyncio.Event()
            await session.send("FinalAnswerStream", {"char": "first"})
            await in_flight(client, 2)
            for _ in range(3):  # 900 KiB queued: under the bound
                await asyncio.wait_for(session.send("FinalAnswerStream", {"char": piece}), 1)
            over = asyncio.ensure_future(session.send("FinalAnswerStream", {"char": piece}))
            await asyncio.sleep(0.1)
            assert not over.done(), "a send past 1 MiB queued waits for the queue to drain"
            hold.set()
            await asyncio.wait_for(over, PATIENCE)
            await session.flush()
            # 256 KiB a call at most: each large piece goes alone.
            assert [events for _, events in client.appends] == [1, 1, 1, 1, 1, 1]
        finally:
            await client.aclose()

    asyncio.run(scenario())
    assert len(logged(redis_client, sid)) == 6


def test_a_failure_is_raised_once_by_the_next_send_or_flush() -> None:
    async def scenario() -> None:
        # Nothing listens there: every call fails on the connection.
        client = redis.asyncio.Redis(port=free_port(), retry=Retry(NoBackoff(), 0))
        try:
            session = session_of(str(uuid.uuid4()), client, publish_retry=0.2)
            await session.send("FinalAnswerStream", {"char": "lost"})
            with pytest.raises(redis.ConnectionError):
                await session.flush()
            await session.flush()  # raised once: nothing failed since

            await session.send("FinalAnswerStream", {"char": "lost too"})
            await session._drained()
            with pytest.raises(redis.ConnectionError):
                await session.send("FinalAnswerStream", {"char": "not queued"})
            await session.flush()

            with pytest.raises(redis.ConnectionError):
                await session.publish("FinalAnswerStream", {"char": "its own failure"})
            await session.flush()  # a publish's failure is raised to it alone
            assert not session.cancelled
        finally:
            await client.aclose()

    asyncio.run(scenario())


# -- the workers ------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    with running_gateway() as gateway:
        yield gateway


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_a_handlers_sends_are_logged_before_the_session_ends(
    gateway: Gateway, redis_client: redis.Redis, kind: str
) -> None:
    pieces = [f"{n} " for n in range(500)]
    returned = threading.Event()

    async def agent(session: AsyncSession) -> None:
        await session.publish("AgentStepStart", {"name": "model"})
        for piece in pieces:
            await session.send("FinalAnswerStream", {"char": piece})
        returned.set()  # without waiting: the worker flushes

    def threaded_agent(session: Session) -> None:
        session.publish("AgentStepStart", {"name": "model"})
        for piece in pieces:
            session.send("FinalAnswerStream", {"char": piece})
        returned.set()

    worker = (
        AsyncWorker(agent, REDIS_URL, **kit_options(gateway))
        if kind == "async"
        else Worker(threaded_agent, REDIS_URL, **kit_options(gateway))
    )
    with running_worker(worker):
        frames = gateway.start_session({"user_query": "many deltas"}).read_all()
    assert returned.is_set()
    assert [f.event_type for f in frames] == (
        ["worker_ack", "AgentStepStart"] + ["FinalAnswerStream"] * len(pieces) + ["FinalAnswerStreamEnd"]
    )
    assert "".join(f.data["payload"]["char"] for f in frames[2:-1]) == "".join(pieces)
    sid = gateway.sessions[-1]
    assert len(logged(redis_client, sid)) == len(frames)
