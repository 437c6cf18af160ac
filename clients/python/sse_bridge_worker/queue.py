"""The job queue: a Redis Stream read by a consumer group (PROTOCOL §1-2).

The same scheme as the gateway's Rust queue (``sse-bridge-redis``'s
``queue.rs``), so Python and Rust workers can share one group:

* The gateway dispatches with ``XADD <stream> * job <json>``; workers read
  with ``XREADGROUP GROUP <group> <consumer> COUNT 1 BLOCK ...``.
* A job taken stays in the group's pending list until its session ended and
  :meth:`JobQueue.ack` sent ``XACK``. Meanwhile :meth:`JobQueue.keep_claimed`
  re-claims it for its owner every ``claim_idle / 3``, so only jobs of a
  *dead* worker ever look idle.
* :meth:`JobQueue.next_job` sweeps the pending list with ``XAUTOCLAIM``
  every ``claim_idle / 2`` and takes over entries idle for ``claim_idle``.
* An entry that is not a valid job is logged, acknowledged and skipped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, List, Optional, Set, Tuple, TypeVar

import redis
import redis.asyncio

__all__ = ["Job", "JobQueue", "new_consumer_name"]

log = logging.getLogger(__name__)

#: The stream entry field holding the job's JSON.
JOB_FIELD = "job"
#: Shortest blocking read: ``BLOCK 0`` would mean "forever".
MIN_BLOCK = 0.01

#: Refreshes an entry's idle time only while ``consumer`` still owns it, so a
#: worker that was presumed dead never steals its job back (the Rust
#: queue's script, word for word).
KEEPALIVE_SCRIPT = """
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #pending == 0 then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
"""

T = TypeVar("T")
Entry = Tuple[str, Dict[Any, Any]]


@dataclass(frozen=True)
class Job:
    """One job taken from the queue (PROTOCOL §2).

    ``request`` is the client's POST body (plus ``user_query`` for the
    agent-UI endpoints); ``created_at`` is Unix milliseconds; ``entry_id``
    is the stream entry the job came in.

    A resume (PROTOCOL §8: ``request["resume"]`` answers the interrupts its
    thread's last run ended with) also carries that run's session id and
    request, and the interrupts answered, as that run's worker sent them
    (``None`` otherwise). ``AsyncSession.resume`` reads them.
    """

    session_id: str
    request: Dict[str, Any]
    created_at: int
    entry_id: str
    parent_session_id: Optional[str] = None
    parent_request: Optional[Dict[str, Any]] = None
    interrupts: Optional[List[Dict[str, Any]]] = None


def new_consumer_name() -> str:
    """``host-pid-random``: unique per worker, readable in ``XINFO CONSUMERS``."""
    return f"{socket.gethostname() or 'host'}-{os.getpid()}-{secrets.token_hex(4)}"


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _parse_job(entry_id: str, fields: Optional[Dict[Any, Any]]) -> Job:
    """The entry's job; ``ValueError`` saying what is wrong otherwise."""
    raw = None
    for name, value in (fields or {}).items():
        if _text(name) == JOB_FIELD:
            raw = value
    if raw is None:
        raise ValueError(f"no field `{JOB_FIELD}`")
    job = json.loads(raw)
    if not isinstance(job, dict):
        raise ValueError("the job is not a JSON object")
    session_id, request, created_at = job.get("session_id"), job.get("request"), job.get("created_at", 0)
    if not isinstance(session_id, str) or not session_id:
        raise ValueError("no session_id")
    if not isinstance(request, dict):
        raise ValueError("request is not an object")
    if not isinstance(created_at, int):
        raise ValueError("created_at is not an integer")
    parent_session_id, parent_request = job.get("parent_session_id"), job.get("parent_request")
    interrupts = job.get("interrupts")
    if parent_session_id is not None and not isinstance(parent_session_id, str):
        raise ValueError("parent_session_id is not a string")
    if parent_request is not None and not isinstance(parent_request, dict):
        raise ValueError("parent_request is not an object")
    if interrupts is not None and not (
        isinstance(interrupts, list) and all(isinstance(i, dict) for i in interrupts)
    ):
        raise ValueError("interrupts is not an array of objects")
    return Job(
        session_id=session_id,
        request=request,
        created_at=created_at,
        entry_id=entry_id,
        parent_session_id=parent_session_id,
        parent_request=parent_request,
        interrupts=interrupts,
    )


def _first_read_entry(reply: Any) -> Optional[Entry]:
    """The entry of an ``XREADGROUP ... COUNT 1`` reply (RESP2: ``[[stream, [(id, fields)]]]``)."""
    for _stream, entries in reply or []:
        for entry_id, fields in entries:
            return _text(entry_id), fields
    return None


class JobQueue:
    """One worker's side of the Redis Streams job queue."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        stream: str,
        group: str,
        consumer: str,
        claim_idle: float,
        read_block: float,
    ) -> None:
        self._redis = client
        self.stream, self.group, self.consumer = stream, group, consumer
        self._claim_idle, self._read_block = claim_idle, read_block
        self._keepalive = client.register_script(KEEPALIVE_SCRIPT)
        self._sweep_cursor = "0-0"
        self._next_sweep = time.monotonic()
        # Entries taken and not yet acknowledged or released.
        self._claimed: Set[str] = set()

    async def create_group(self) -> None:
        """Creates the group (and the stream) if missing, reading from the
        stream's start so jobs dispatched before the first worker are not skipped."""
        try:
            await self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def next_job(self) -> Optional[Job]:
        """A reclaimed job if a sweep is due and finds one, else one blocking
        read; ``None`` when nothing (valid) arrived."""
        entry = await self._sweep_step()
        if entry is None:
            entry = await self._read_new()
        if entry is None:
            return None
        entry_id, fields = entry
        try:
            job = _parse_job(entry_id, fields)
        except ValueError as error:
            log.warning("skipping malformed job entry %s of %s: %s", entry_id, self.stream, error)
            await self._redis.xack(self.stream, self.group, entry_id)
            return None
        self._claimed.add(entry_id)
        return job

    async def ack(self, job: Job) -> None:
        """The job is done: it is never delivered again."""
        self._claimed.discard(job.entry_id)
        await self._redis.xack(self.stream, self.group, job.entry_id)

    def release(self, job: Job) -> None:
        """Stops keeping the job claimed, unacknowledged: after ``claim_idle``
        any worker of the group (this one too) may reclaim and run it again."""
        self._claimed.discard(job.entry_id)

    async def keep_claimed(self) -> None:
        """Refreshes the idle time of every job taken, until cancelled."""
        period = max(self._claim_idle / 3, MIN_BLOCK)
        while True:
            await asyncio.sleep(period)
            for entry_id in list(self._claimed):
                try:
                    still_ours = await self._keepalive(
                        keys=[self.stream], args=[self.group, self.consumer, entry_id]
                    )
                except redis.RedisError as error:
                    # Try again next period: the job is still ours.
                    log.debug("job keepalive of %s failed: %s", entry_id, error)
                    continue
                if not still_ours:
                    log.warning("job %s was taken over by another worker", entry_id)
                    self._claimed.discard(entry_id)

    async def _sweep_step(self) -> Optional[Entry]:
        """One ``XAUTOCLAIM`` step if a sweep is due."""
        if time.monotonic() < self._next_sweep:
            return None
        reply = await self._on_group(
            lambda: self._redis.xautoclaim(
                self.stream,
                self.group,
                self.consumer,
                min_idle_time=int(self._claim_idle * 1000),
                start_id=self._sweep_cursor,
                count=1,
            )
        )
        next_cursor, claimed = _text(reply[0]), reply[1]
        if next_cursor == "0-0":
            self._next_sweep = time.monotonic() + self._claim_idle / 2
        self._sweep_cursor = next_cursor
        for entry_id, fields in claimed:
            if entry_id is not None:
                log.info("reclaimed job %s abandoned by another worker", _text(entry_id))
                return _text(entry_id), fields
        return None

    async def _read_new(self) -> Optional[Entry]:
        """One blocking read of a new entry, waking in time for the next sweep."""
        until_sweep = max(self._next_sweep - time.monotonic(), 0.0)
        block = max(min(self._read_block, until_sweep), MIN_BLOCK)
        reply = await self._on_group(
            lambda: self._redis.xreadgroup(
                self.group, self.consumer, {self.stream: ">"}, count=1, block=int(block * 1000)
            )
        )
        return _first_read_entry(reply)

    async def _on_group(self, command: Callable[[], Awaitable[T]]) -> T:
        """Runs a group command; recreates the group once if it vanished
        (stream deleted, or a Redis without persistence restarted)."""
        try:
            return await command()
        except redis.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            log.warning("consumer group %s missing, recreating it", self.group)
            await self.create_group()
            return await command()
