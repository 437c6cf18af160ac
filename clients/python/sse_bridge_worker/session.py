"""A handler's view of its session: the job's request in, events out.

:class:`AsyncSession` is what an ``async def handler(session)`` gets;
:class:`Session` is the same for a plain ``def handler(session)`` running
in a thread (its calls are carried out on the worker's event loop).

Tool calls carry an id (``tool_start`` returns the
:class:`~sse_bridge_worker.interrupts.ToolCall`; ``tool_end`` takes it, or
the tool's name for the oldest call of that tool still open in this run).
A run that needs outside input ends with ``interrupt`` (or the helpers
``request_approval`` and ``call_client_tool``); the run that resumes it
reads the answers from ``resume`` (PROTOCOL §8).

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
from datetime import datetime
from functools import cached_property
from typing import Any, Coroutine, Dict, Iterable, List, Mapping, Optional, TypeVar, Union

import redis.asyncio

from .errors import SessionCancelled, SessionRefused, SessionStopped
from .interrupts import CLIENT_EXECUTOR, Interrupt, ToolCall, interrupt_payload, new_tool_call_id
from .publish import TERMINAL_EVENT_TYPES, Published, publish_event_async
from .queue import Job
from .resume import Resume

__all__ = ["AsyncSession", "Session"]

T = TypeVar("T")
#: What ``interrupt`` takes: :class:`Interrupt` objects or plain dicts.
Interrupts = Iterable[Union[Interrupt, Mapping[str, Any]]]


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
        # Calls started by this run and not ended yet, oldest first.
        self._open_calls: List[ToolCall] = []

    @property
    def session_id(self) -> str:
        return self.job.session_id

    @property
    def request(self) -> Dict[str, Any]:
        """The job's request: the client's body (``user_query``, ...)."""
        return self.job.request

    @property
    def thread_id(self) -> Optional[str]:
        """The thread this run belongs to (``request["thread_id"]``), if any."""
        thread_id = self.request.get("thread_id")
        return thread_id if isinstance(thread_id, str) else None

    @cached_property
    def resume(self) -> Optional[Resume]:
        """The answers, when this run resumes an interrupted one; ``None``
        otherwise. ``ValueError`` if the job's ``request.resume`` is malformed."""
        return Resume.of(self.job)

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

    async def tool_start(
        self, name: str, tool_input: Any = None, *, tool_call_id: Optional[str] = None
    ) -> ToolCall:
        """The agent calls a tool (``AgentToolCallStart``, with a fresh
        ``tool_call_id`` unless given); returns the call for :meth:`tool_end`."""
        call = ToolCall(name, tool_input, tool_call_id or new_tool_call_id())
        await self._start(call)
        return call

    async def tool_end(
        self, call: Union[ToolCall, str], output: Any = None, *, error: Optional[str] = None
    ) -> Published:
        """The tool returned ``output``, or failed with ``error``
        (``AgentToolCallEnd`` with the call's id). ``call`` is a
        :class:`ToolCall` (also one started by the interrupted run, from
        :attr:`resume`) or a tool's name: the oldest call of it still open."""
        call = self._close(call)
        if error is None:
            return await self.publish("AgentToolCallEnd", call.end_payload(output))
        if output is not None:
            raise ValueError("a tool call ends with an output or an error, not both")
        return await self.publish("AgentToolCallEnd", call.error_payload(error))

    async def tool_denied(self, call: Union[ToolCall, str], reason: Optional[str] = None) -> Published:
        """The call was not approved: ``AgentToolCallEnd`` with ``denied:
        true`` and ``error`` = ``reason`` (or ``"denied"``)."""
        return await self.publish("AgentToolCallEnd", self._close(call).denied_payload(reason))

    async def interrupt(self, interrupts: Interrupts) -> Published:
        """Ends the run waiting for outside input: the terminal ``interrupt``
        event (PROTOCOL §8). Return from the handler after it; the client's
        answers start a new run of the thread (:attr:`resume`)."""
        return await self.publish("interrupt", interrupt_payload(interrupts))

    async def request_approval(
        self,
        name: str,
        tool_input: Any = None,
        *,
        message: str,
        tool_call_id: Optional[str] = None,
        expires_at: Optional[Union[str, datetime]] = None,
    ) -> ToolCall:
        """Asks a person whether the call may run, and ends the run: the
        call starts (``AgentToolCallStart``), then an interrupt about it with
        ``message``. The resumed run finds the decision in
        ``resume.approval(name)`` and ends that call (:meth:`tool_end` or
        :meth:`tool_denied`) — it never starts it again."""
        call = await self.tool_start(name, tool_input, tool_call_id=tool_call_id)
        await self.interrupt([call.interrupt(message, expires_at=expires_at)])
        return call

    async def call_client_tool(
        self,
        name: str,
        tool_input: Any = None,
        *,
        message: Optional[str] = None,
        tool_call_id: Optional[str] = None,
        expires_at: Optional[Union[str, datetime]] = None,
    ) -> ToolCall:
        """Hands the call to the client, and ends the run:
        ``AgentToolCallStart`` with ``"executor": "client"``, then an
        interrupt about it. The resumed run finds the tool's output in
        ``resume.client_result(name)``."""
        call = ToolCall(name, tool_input, tool_call_id or new_tool_call_id(), executor=CLIENT_EXECUTOR)
        await self._start(call)
        await self.interrupt([call.interrupt(message, expires_at=expires_at)])
        return call

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

    async def _start(self, call: ToolCall) -> None:
        await self.publish("AgentToolCallStart", call.start_payload())
        self._open_calls.append(call)

    def _close(self, call: Union[ToolCall, str]) -> ToolCall:
        """The call to end: ``call`` itself, or the oldest open call of the
        tool named ``call``; it is no longer open."""
        if isinstance(call, ToolCall):
            self._open_calls = [c for c in self._open_calls if c.id != call.id]
            return call
        for index, open_call in enumerate(self._open_calls):
            if open_call.name == call:
                return self._open_calls.pop(index)
        raise ValueError(
            f"no call of tool {call!r} is open in this run: pass the ToolCall "
            "(tool_start's, or resume.approval(...).call for a call the interrupted run started)"
        )


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
    def thread_id(self) -> Optional[str]:
        return self._session.thread_id

    @property
    def resume(self) -> Optional[Resume]:
        return self._session.resume

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
        return self._run(self._session.publish(event_type, payload))

    def thought(self, text: str) -> Published:
        return self._run(self._session.thought(text))

    def tool_start(
        self, name: str, tool_input: Any = None, *, tool_call_id: Optional[str] = None
    ) -> ToolCall:
        return self._run(self._session.tool_start(name, tool_input, tool_call_id=tool_call_id))

    def tool_end(
        self, call: Union[ToolCall, str], output: Any = None, *, error: Optional[str] = None
    ) -> Published:
        return self._run(self._session.tool_end(call, output, error=error))

    def tool_denied(self, call: Union[ToolCall, str], reason: Optional[str] = None) -> Published:
        return self._run(self._session.tool_denied(call, reason))

    def interrupt(self, interrupts: Interrupts) -> Published:
        return self._run(self._session.interrupt(interrupts))

    def request_approval(
        self,
        name: str,
        tool_input: Any = None,
        *,
        message: str,
        tool_call_id: Optional[str] = None,
        expires_at: Optional[Union[str, datetime]] = None,
    ) -> ToolCall:
        return self._run(
            self._session.request_approval(
                name, tool_input, message=message, tool_call_id=tool_call_id, expires_at=expires_at
            )
        )

    def call_client_tool(
        self,
        name: str,
        tool_input: Any = None,
        *,
        message: Optional[str] = None,
        tool_call_id: Optional[str] = None,
        expires_at: Optional[Union[str, datetime]] = None,
    ) -> ToolCall:
        return self._run(
            self._session.call_client_tool(
                name, tool_input, message=message, tool_call_id=tool_call_id, expires_at=expires_at
            )
        )

    def answer(self, text: str) -> Published:
        return self._run(self._session.answer(text))

    def _run(self, step: Coroutine[Any, Any, T]) -> T:
        """Carries ``step`` out on the worker's event loop, blocking this thread."""
        return asyncio.run_coroutine_threadsafe(step, self._loop).result()
