"""A handler's view of its session: the job's request in, events out.

:class:`AsyncSession` is what an ``async def handler(session)`` gets;
:class:`Session` is the same for a plain ``def handler(session)`` running
in a thread (its calls are carried out on the worker's event loop).

Every publish is logged and published as this run's *attempt*, with the
idempotency key ``<attempt>:<n>`` (n counts the run's publishes), so a
retry after a connection failure never logs an event twice. Once the
session stops — the gateway sent ``cancel``, or the log refused an event —
``cancelled`` is true and every further publish raises
:class:`~sse_bridge_worker.errors.SessionStopped`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Dict, Optional

import redis.asyncio

from .errors import SessionCancelled, SessionRefused, SessionStopped
from .publish import TERMINAL_EVENT_TYPES, Published, publish_event_async
from .queue import Job

__all__ = ["AsyncSession", "Session"]


class AsyncSession:
    """One run (attempt) of one job, for an asyncio handler."""

    def __init__(self, job: Job, attempt: str, client: redis.asyncio.Redis, publish_retry: float) -> None:
        self.job = job
        #: This run's attempt id, carried by every event it publishes.
        self.attempt = attempt
        self._redis = client
        self._publish_retry = publish_retry
        self._publishes = 0
        self._last_publish = time.monotonic()
        self._ended = False
        # The log's reason, once it refused an event of this run.
        self._refusal: Optional[str] = None
        self._stopped = asyncio.Event()
        self._stopped_flag = threading.Event()

    @property
    def session_id(self) -> str:
        return self.job.session_id

    @property
    def request(self) -> Dict[str, Any]:
        """The job's request: the client's body (``user_query``, ...)."""
        return self.job.request

    @property
    def cancelled(self) -> bool:
        """True once the gateway cancelled the session or its log refused an event."""
        return self._stopped_flag.is_set()

    @property
    def ended(self) -> bool:
        """True once this run published a terminal event."""
        return self._ended

    async def wait_cancelled(self) -> None:
        """Returns when the session is cancelled. The worker also cancels the
        handler's task then; this is for work the handler spawned."""
        await self._stopped.wait()

    async def publish(self, event_type: str, payload: Any = None) -> Published:
        """Logs and publishes one event (``payload`` ``None`` sends ``{}``)."""
        if self.cancelled:
            raise self._stopped_error()
        key = f"{self.attempt}:{self._publishes}"
        self._publishes += 1
        self._last_publish = time.monotonic()
        try:
            published = await publish_event_async(
                self._redis,
                self.session_id,
                event_type,
                {} if payload is None else payload,
                attempt=self.attempt,
                idempotency_key=key,
                retry_for=self._publish_retry,
            )
        except SessionRefused as refusal:
            # ``busy`` refuses an ack only: this attempt has not started.
            if refusal.reason != "busy":
                self._refusal = refusal.reason
                self.cancel()
            raise
        if event_type in TERMINAL_EVENT_TYPES:
            self._ended = True
        return published

    async def thought(self, text: str) -> Published:
        """The next piece of the agent's reasoning (``AgentThoughtStream``)."""
        return await self.publish("AgentThoughtStream", {"char": text})

    async def tool_start(self, name: str, tool_input: Any) -> Published:
        """The agent calls a tool (``AgentToolCallStart``)."""
        return await self.publish("AgentToolCallStart", {"tool_name": name, "tool_input": tool_input})

    async def tool_end(self, name: str, output: Any) -> Published:
        """The tool returned (``AgentToolCallEnd``)."""
        return await self.publish("AgentToolCallEnd", {"tool_name": name, "output": output})

    async def answer(self, text: str) -> Published:
        """The next piece of the final answer (``FinalAnswerStream``)."""
        return await self.publish("FinalAnswerStream", {"char": text})

    def cancel(self) -> None:
        """Stops the session: the gateway's ``cancel`` arrived, the log
        refused an event, or the worker shuts down without waiting for it."""
        self._stopped_flag.set()
        self._stopped.set()

    def wait_cancelled_in_thread(self, timeout: Optional[float]) -> bool:
        """Blocks the calling thread (not the event loop's) until the session
        is cancelled or ``timeout`` seconds passed; True if cancelled."""
        return self._stopped_flag.wait(timeout)

    def silent_for(self) -> float:
        """Seconds since the last publish (or since the run started)."""
        return time.monotonic() - self._last_publish

    def _stopped_error(self) -> SessionStopped:
        return SessionRefused(self._refusal) if self._refusal is not None else SessionCancelled()


class Session:
    """One run (attempt) of one job, for a handler running in a thread.

    The same methods as :class:`AsyncSession`, blocking. The thread cannot
    be interrupted: on cancel, ``cancelled`` turns true and the next
    publish raises :class:`~sse_bridge_worker.errors.SessionStopped`, so a
    handler should check the flag during long silent steps.
    """

    def __init__(self, session: AsyncSession, loop: asyncio.AbstractEventLoop) -> None:
        self._session = session
        self._loop = loop

    @property
    def job(self) -> Job:
        return self._session.job

    @property
    def attempt(self) -> str:
        return self._session.attempt

    @property
    def session_id(self) -> str:
        return self._session.session_id

    @property
    def request(self) -> Dict[str, Any]:
        return self._session.request

    @property
    def cancelled(self) -> bool:
        return self._session.cancelled

    @property
    def ended(self) -> bool:
        return self._session.ended

    def wait_cancelled(self, timeout: Optional[float] = None) -> bool:
        """Blocks until the session is cancelled or ``timeout`` seconds passed;
        returns whether it was cancelled. Handy as an interruptible sleep."""
        return self._session.wait_cancelled_in_thread(timeout)

    def publish(self, event_type: str, payload: Any = None) -> Published:
        return asyncio.run_coroutine_threadsafe(
            self._session.publish(event_type, payload), self._loop
        ).result()

    def thought(self, text: str) -> Published:
        return self.publish("AgentThoughtStream", {"char": text})

    def tool_start(self, name: str, tool_input: Any) -> Published:
        return self.publish("AgentToolCallStart", {"tool_name": name, "tool_input": tool_input})

    def tool_end(self, name: str, output: Any) -> Published:
        return self.publish("AgentToolCallEnd", {"tool_name": name, "output": output})

    def answer(self, text: str) -> Published:
        return self.publish("FinalAnswerStream", {"char": text})
