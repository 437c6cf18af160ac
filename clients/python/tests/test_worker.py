"""The kit's workers (asyncio and threads) on the real gateway and Redis:
a session from ``POST`` to ``FinalAnswerStreamEnd`` and its resume, cancel
on client disconnect, heartbeats through a silent step, a failing handler,
a crashed worker's job reclaimed, a live worker's job kept, a job delivered
again while another attempt serves its session (waits, then skipped),
graceful stop (no job lost to it), and the command line's demo agent."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Dict, Iterator, List

import pytest
import redis
from conftest import PATIENCE, REDIS_URL, Gateway, kit_options, running_gateway, running_worker

from sse_bridge_worker import AsyncSession, AsyncWorker, Session, SessionCancelled, Worker, publish_event

KINDS = ["async", "sync"]


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    # A silent worker is given up after 2 s, a client that left is cancelled
    # at once, and `: ping` every 300 ms notices a gone client quickly.
    with running_gateway("--idle-timeout", "2s", "--cancel-grace", "0s", "--heartbeat", "300ms") as gateway:
        yield gateway


def wait_until_acknowledged(client: redis.Redis, gateway: Gateway) -> None:
    """Waits until the group has no pending job (every session's job XACKed)."""
    deadline = time.monotonic() + PATIENCE
    while client.xpending(gateway.stream, gateway.group)["pending"]:
        assert time.monotonic() < deadline, "a job was never acknowledged"
        time.sleep(0.05)


def kinds(frames: List[Any]) -> List[str]:
    return [frame.event_type for frame in frames]


@pytest.mark.parametrize("kind", KINDS)
def test_a_session_streams_in_order_and_can_be_resumed(
    gateway: Gateway, redis_client: redis.Redis, kind: str
) -> None:
    seen: Dict[str, Any] = {}

    async def agent(session: AsyncSession) -> None:
        seen.update(request=session.request, attempt=session.attempt)
        await session.thought("Let me compute.")
        await session.tool_start("calculator", {"expression": "2+3"})
        await session.tool_end("calculator", "5")
        await session.answer("2+3 ")
        await session.answer("= 5")

    def threaded_agent(session: Session) -> None:
        seen.update(request=session.request, attempt=session.attempt)
        session.thought("Let me compute.")
        session.tool_start("calculator", {"expression": "2+3"})
        session.tool_end("calculator", "5")
        session.answer("2+3 ")
        session.answer("= 5")

    worker = (
        AsyncWorker(agent, REDIS_URL, **kit_options(gateway))
        if kind == "async"
        else Worker(threaded_agent, REDIS_URL, **kit_options(gateway))
    )
    with running_worker(worker):
        frames = gateway.start_session({"user_query": "What is 2+3?", "model_alias": "m"}).read_all()
        wait_until_acknowledged(redis_client, gateway)

    call_id = frames[2].data["payload"].get("tool_call_id", "")
    assert re.fullmatch("call-[0-9a-f]{32}", call_id), frames[2]
    assert [(f.event_type, f.data["payload"]) for f in frames] == [
        ("worker_ack", {}),
        ("AgentThoughtStream", {"char": "Let me compute."}),
        (
            "AgentToolCallStart",
            {"tool_call_id": call_id, "tool_name": "calculator", "tool_input": {"expression": "2+3"}},
        ),
        ("AgentToolCallEnd", {"tool_call_id": call_id, "tool_name": "calculator", "output": "5"}),
        ("FinalAnswerStream", {"char": "2+3 "}),
        ("FinalAnswerStream", {"char": "= 5"}),
        ("FinalAnswerStreamEnd", {}),
    ]
    assert seen["request"] == {"user_query": "What is 2+3?", "model_alias": "m"}
    assert re.fullmatch("[0-9a-f]{16}", seen["attempt"])

    sid = gateway.sessions[-1]
    replay = gateway.follow(sid).read_all()
    assert [f.data for f in replay] == [f.data for f in frames]
    assert all(f.id for f in replay)
    resumed = gateway.follow(sid, last_event_id=replay[2].id).read_all()
    assert [(f.id, f.data) for f in resumed] == [(f.id, f.data) for f in replay[3:]]


@pytest.mark.parametrize("kind", KINDS)
def test_a_client_that_leaves_cancels_the_handler(
    gateway: Gateway, redis_client: redis.Redis, kind: str
) -> None:
    observed: Dict[str, Any] = {}
    stopped = threading.Event()

    async def agent(session: AsyncSession) -> None:
        await session.thought("Thinking for a long time...")
        try:
            await asyncio.sleep(PATIENCE)  # silent: only the control channel can stop it
        except asyncio.CancelledError:
            observed["cancelled"] = session.cancelled
            stopped.set()
            raise

    def threaded_agent(session: Session) -> None:
        session.thought("Thinking for a long time...")
        observed["cancelled"] = session.wait_cancelled(PATIENCE)
        try:
            session.answer("too late")
        except SessionCancelled as error:
            observed["publish_raised"] = error
        stopped.set()

    # No heartbeats: a refused heartbeat would stop the handler too.
    options = kit_options(gateway, heartbeat=None)
    worker = (
        AsyncWorker(agent, REDIS_URL, **options)
        if kind == "async"
        else Worker(threaded_agent, REDIS_URL, **options)
    )
    with running_worker(worker):
        stream = gateway.start_session({"user_query": "Think hard", "on_disconnect": "cancel"})
        frames = stream.frames()
        assert next(frames).event_type == "worker_ack"
        assert next(frames).event_type == "AgentThoughtStream"
        stream.close()
        assert stopped.wait(10), "the handler never saw the cancel"
        wait_until_acknowledged(redis_client, gateway)
    assert observed["cancelled"] is True
    if kind == "sync":
        assert isinstance(observed["publish_raised"], SessionCancelled)


@pytest.mark.parametrize("kind", KINDS)
def test_a_silent_step_longer_than_the_idle_timeout_gets_heartbeats(gateway: Gateway, kind: str) -> None:
    async def agent(session: AsyncSession) -> None:
        await session.answer("slow ")
        await asyncio.sleep(4)  # twice the gateway's idle timeout, not a word
        await session.answer("but done")

    def threaded_agent(session: Session) -> None:
        session.answer("slow ")
        time.sleep(4)
        session.answer("but done")

    worker = (
        AsyncWorker(agent, REDIS_URL, **kit_options(gateway))
        if kind == "async"
        else Worker(threaded_agent, REDIS_URL, **kit_options(gateway))
    )
    with running_worker(worker):
        frames = gateway.start_session({"user_query": "take your time"}).read_all()
    assert kinds(frames) == [
        "worker_ack",
        "FinalAnswerStream",
        "FinalAnswerStream",
        "FinalAnswerStreamEnd",
    ], frames


@pytest.mark.parametrize("kind", KINDS)
def test_a_failing_handler_ends_the_session_with_worker_error(
    gateway: Gateway, redis_client: redis.Redis, kind: str
) -> None:
    async def agent(session: AsyncSession) -> None:
        await session.tool_start("database", {"sql": "select 1"})
        raise ConnectionRefusedError("the database is down")

    def threaded_agent(session: Session) -> None:
        session.tool_start("database", {"sql": "select 1"})
        raise ConnectionRefusedError("the database is down")

    worker = (
        AsyncWorker(agent, REDIS_URL, **kit_options(gateway))
        if kind == "async"
        else Worker(threaded_agent, REDIS_URL, **kit_options(gateway))
    )
    with running_worker(worker):
        frames = gateway.start_session({"user_query": "query it"}).read_all()
        wait_until_acknowledged(redis_client, gateway)
    assert kinds(frames) == ["worker_ack", "AgentToolCallStart", "error"]
    assert frames[-1].data["payload"] == {
        "error": "ConnectionRefusedError: the database is down",
        "code": "worker_error",
    }


def test_a_crashed_workers_job_is_reclaimed(gateway: Gateway, redis_client: redis.Redis) -> None:
    stream = gateway.start_session({"user_query": "anyone there?"})
    # A worker takes the job and dies before acknowledging it.
    taken = redis_client.xreadgroup(
        gateway.group, "crashed-worker", {gateway.stream: ">"}, count=1, block=5000
    )
    assert taken and taken[0][1], "the job was not in the stream"

    async def agent(session: AsyncSession) -> None:
        await session.answer("I took over")

    with running_worker(AsyncWorker(agent, REDIS_URL, **kit_options(gateway, claim_idle=1.0))):
        frames = stream.read_all()
        wait_until_acknowledged(redis_client, gateway)
    assert kinds(frames) == ["worker_ack", "FinalAnswerStream", "FinalAnswerStreamEnd"]


def test_a_running_job_stays_with_its_live_worker(gateway: Gateway, redis_client: redis.Redis) -> None:
    attempts: List[str] = []

    async def agent(session: AsyncSession) -> None:
        attempts.append(session.attempt)
        await asyncio.sleep(4.5)  # more than twice claim_idle
        await session.answer("done")

    options = kit_options(gateway, claim_idle=2.0)
    first, second = AsyncWorker(agent, REDIS_URL, **options), AsyncWorker(agent, REDIS_URL, **options)
    with running_worker(first), running_worker(second):
        frames = gateway.start_session({"user_query": "slow job"}).read_all()
        wait_until_acknowledged(redis_client, gateway)
    assert kinds(frames) == ["worker_ack", "FinalAnswerStream", "FinalAnswerStreamEnd"]
    assert len(attempts) == 1, f"the job was run {len(attempts)} times"


def test_a_job_whose_session_another_attempt_serves_waits_and_is_skipped(
    gateway: Gateway, redis_client: redis.Redis
) -> None:
    runs: List[str] = []

    async def agent(session: AsyncSession) -> None:
        runs.append(session.attempt)
        await session.answer("a second answer")

    stream = gateway.start_session({"user_query": "served elsewhere"})
    # Another worker (not this kit's) took the job and serves the session.
    taken = redis_client.xreadgroup(gateway.group, "elsewhere", {gateway.stream: ">"}, count=1, block=5000)
    assert taken and taken[0][1], "the job was not in the stream"
    sid = stream.session_id

    def serve(event_type: str, payload: Dict[str, Any]) -> None:
        publish_event(redis_client, sid, event_type, payload, attempt="elsewhere")

    serve("worker_ack", {})
    with running_worker(AsyncWorker(agent, REDIS_URL, **kit_options(gateway, claim_idle=1.0))):
        # The kit reclaims the job after claim_idle, finds the session busy, and waits.
        for _ in range(8):
            serve("worker_heartbeat", {})
            time.sleep(0.4)
        assert redis_client.xpending(gateway.stream, gateway.group)["pending"] == 1, "skipped while busy"
        serve("FinalAnswerStream", {"char": "served"})
        serve("FinalAnswerStreamEnd", {})
        frames = stream.read_all()
        wait_until_acknowledged(redis_client, gateway)
    assert kinds(frames) == ["worker_ack", "FinalAnswerStream", "FinalAnswerStreamEnd"]
    assert frames[1].data["payload"] == {"char": "served"}
    assert runs == [], "the job was run a second time"


def test_stop_lets_the_running_job_finish(gateway: Gateway, redis_client: redis.Redis) -> None:
    async def agent(session: AsyncSession) -> None:
        await asyncio.sleep(1)
        await session.answer("finished after stop")

    worker = AsyncWorker(agent, REDIS_URL, **kit_options(gateway))
    with running_worker(worker):
        stream = gateway.start_session({"user_query": "stop soon"})
        frames = stream.frames()
        assert next(frames).event_type == "worker_ack"
        worker.stop()
        rest = list(frames)
        stream.close()
    assert kinds(rest) == ["FinalAnswerStream", "FinalAnswerStreamEnd"]
    wait_until_acknowledged(redis_client, gateway)


def test_a_job_that_arrives_while_the_worker_stops_is_still_run(
    gateway: Gateway, redis_client: redis.Redis
) -> None:
    async def agent(session: AsyncSession) -> None:
        await session.answer("caught it")

    worker = AsyncWorker(agent, REDIS_URL, **kit_options(gateway, read_block=2.0))
    with running_worker(worker):
        time.sleep(0.5)  # the worker waits in a blocking read of the queue
        worker.stop()
        frames = gateway.start_session({"user_query": "just in time"}).read_all()
    assert kinds(frames) == ["worker_ack", "FinalAnswerStream", "FinalAnswerStreamEnd"]
    wait_until_acknowledged(redis_client, gateway)


def test_the_command_line_demo_agent_answers_and_stops_on_sigterm(gateway: Gateway) -> None:
    command = [
        sys.executable,
        "-m",
        "sse_bridge_worker",
        "--demo",
        "--redis-url",
        REDIS_URL,
        "--stream",
        gateway.stream,
        "--group",
        gateway.group,
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    try:
        frames = gateway.start_session({"user_query": "hi"}).read_all()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=PATIENCE)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert frames[0].event_type == "worker_ack" and frames[-1].event_type == "FinalAnswerStreamEnd"
    answer = "".join(f.data["payload"]["char"] for f in frames if f.event_type == "FinalAnswerStream")
    assert answer == "Echo: hi"
    assert process.returncode == 0, output.decode()
