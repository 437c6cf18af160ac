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

Every event is logged and published as this run's *attempt*, with the
idempotency key ``<attempt>:<n>`` (n counts the run's events), so a retry
after a connection failure never logs an event twice. Once the session
stops — the gateway sent ``cancel``, or the log refused an event — ``cancelled``
is true and every further ``publish`` or ``send`` raises
:class:`~sse_bridge_worker.errors.SessionStopped`.

Events go out through one queue per session, in order. ``send`` queues an
event and returns at once; ``publish`` queues one and waits for its
outcome. A single drain task appends what is queued: a lone event at once
(``sse_bridge_v4_append``), and whatever queued up while that call was in
flight as one ``sse_bridge_v4_append_batch`` (up to
:data:`BATCH_MAX_EVENTS` events / :data:`BATCH_MAX_BYTES` bytes a call), so
a model streaming many small deltas costs Redis a few calls, not one per
delta, and a sparse stream waits for nothing. ``flush`` waits until
everything queued is logged. A refusal of any queued event stops the
session as a refused ``publish`` does; a failure (Redis unreachable for
``publish_retry`` seconds) fails the events queued with it and is raised
by the next ``send``, ``publish`` or ``flush``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from datetime import datetime
from functools import cached_property
from typing import Any, Callable, Coroutine, Deque, Dict, Iterable, List, Mapping, Optional, TypeVar, Union

import redis.asyncio

from .errors import SessionCancelled, SessionRefused, SessionStopped
from .interrupts import CLIENT_EXECUTOR, Interrupt, ToolCall, interrupt_payload, new_tool_call_id
from .publish import (
    TERMINAL_EVENT_TYPES,
    EncodedEvent,
    Outcome,
    Published,
    _publish_encoded_async,
    encode_event,
)
from .queue import Job
from .resume import Resume

__all__ = ["AsyncSession", "Session"]

T = TypeVar("T")
#: What ``interrupt`` takes: :class:`Interrupt` objects or plain dicts.
Interrupts = Iterable[Union[Interrupt, Mapping[str, Any]]]

#: Events one append carries at most.
BATCH_MAX_EVENTS = 256
#: Bytes of event JSON one append carries at most (a larger event goes alone).
BATCH_MAX_BYTES = 256 * 1024
#: ``send`` waits while more than this many bytes are queued (not yet in flight).
QUEUE_MAX_BYTES = 1024 * 1024


class _Queued:
    """An event in a session's queue; ``done`` gets its outcome (a
    ``Published``, or the exception to raise: never set as the future's
    exception, so an event nobody waits for leaves nothing unretrieved)."""

    __slots__ = ("event", "key", "size", "done", "reports")

    def __init__(self, event: EncodedEvent, key: str, reports: bool) -> None:
        self.event = event
        self.key = key
        self.size = len(event.json) if event.json.isascii() else len(event.json.encode("utf-8"))
        self.done: "asyncio.Future[Union[Published, BaseException]]" = (
            asyncio.get_running_loop().create_future()
        )
        # Its outcome is raised to the handler (its publish): a failure then
        # needs no other report.
        self.reports = reports

    def settle(self, outcome: Union[Outcome, BaseException]) -> None:
        if not self.done.done():
            self.done.set_result(outcome)


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
        # The send queue: events not yet taken by the drain task, their
        # bytes, the last event queued, and the drain task while it runs.
        self._queue: Deque[_Queued] = deque()
        self._queued_bytes = 0
        self._room = asyncio.Event()
        self._room.set()
        self._tail: Optional[_Queued] = None
        self._drainer: Optional["asyncio.Task[None]"] = None
        # A failure of queued events that nobody was told of yet.
        self._failure: Optional[BaseException] = None

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
        """Logs and publishes one event (``payload`` ``None`` sends ``{}``)
        after the events queued before it, and returns where it went.

        Raises :class:`~sse_bridge_worker.errors.SessionStopped` once the
        session stopped (this event or an earlier one refused), redis-py's
        errors when Redis stays unreachable (also for an earlier ``send``
        whose failure was not raised yet)."""
        self._raise_stopped_or_failed()
        return await self._publish(event_type, payload, reports=True)

    async def send(self, event_type: str, payload: Any = None) -> None:
        """Queues one event (``payload`` ``None`` sends ``{}``) and returns
        without waiting for Redis: the session's drain task appends it with
        whatever else queued up meanwhile, in one call. Waits only while
        more than :data:`QUEUE_MAX_BYTES` are queued.

        For streaming deltas (answer, reasoning, tool input). Raises
        :class:`~sse_bridge_worker.errors.SessionStopped` once the session
        stopped — a queued event was refused, or the gateway cancelled —
        and the failure of an earlier queued event (Redis unreachable) if it
        was not raised yet. :meth:`flush` (or any ``publish``, which comes
        after the events sent before it) waits for the queued events."""
        self._raise_stopped_or_failed()
        self._enqueue(event_type, payload, reports=False)
        while self._queued_bytes > QUEUE_MAX_BYTES:
            await self._room.wait()

    async def flush(self) -> None:
        """Waits until every event queued so far is logged; raises what
        :meth:`send` would raise next (the session stopped, or the first
        failure not raised yet). The worker flushes after the handler
        returned, before it ends the session."""
        tail = self._tail
        if tail is not None:
            await asyncio.shield(tail.done)
        self._raise_stopped_or_failed()

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
        """Seconds since the last event was queued (or since the run started)."""
        return time.monotonic() - self._last_publish

    def _stopped_error(self) -> SessionStopped:
        return SessionRefused(self._refusal) if self._refusal is not None else SessionCancelled()

    def _raise_stopped_or_failed(self) -> None:
        if self.cancelled:
            raise self._stopped_error()
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    async def _publish(self, event_type: str, payload: Any, *, reports: bool = False) -> Published:
        """:meth:`publish` that does not raise an earlier send's failure:
        the worker's heartbeats and session ends (``reports=False``) leave
        that to the handler."""
        if self.cancelled:
            raise self._stopped_error()
        item = self._enqueue(event_type, payload, reports=reports)
        outcome = await asyncio.shield(item.done)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def _drained(self) -> None:
        """Returns once the drain task ended (nothing queued or in flight)."""
        drainer = self._drainer
        if drainer is not None:
            await asyncio.gather(asyncio.shield(drainer), return_exceptions=True)

    def _enqueue(self, event_type: str, payload: Any, *, reports: bool) -> _Queued:
        wire = encode_event(event_type, {} if payload is None else payload, self.attempt)
        event = EncodedEvent(event_type, wire)
        item = _Queued(event, f"{self.attempt}:{self._publishes}", reports)
        self._publishes += 1
        self._last_publish = time.monotonic()
        self._queue.append(item)
        self._tail = item
        self._queued_bytes += item.size
        if self._queued_bytes > QUEUE_MAX_BYTES:
            self._room.clear()
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain())
        return item

    async def _drain(self) -> None:
        """Appends what is queued, one call at a time, until nothing is."""
        try:
            while self._queue:
                if self.cancelled:
                    self._drop(self._stopped_error)
                    break
                batch = self._take()
                try:
                    outcomes = await _publish_encoded_async(
                        self._redis,
                        self.session_id,
                        [item.event for item in batch],
                        self.attempt,
                        batch[0].key,
                        self._publish_retry,
                    )
                except Exception as failure:  # noqa: BLE001 - handed to whoever waits or sends next
                    self._fail(batch, failure)
                except BaseException:
                    # The drain itself was cancelled (the loop is closing):
                    # the session takes no more events.
                    self.cancel()
                    for item in batch:
                        item.settle(self._stopped_error())
                    raise
                else:
                    self._settle(batch, outcomes)
        finally:
            self._drop(self._stopped_error)
            self._drainer = None

    def _take(self) -> List[_Queued]:
        """The next call's events: the oldest queued, and those after it
        while the call stays within its bounds."""
        batch = [self._queue.popleft()]
        size = batch[0].size
        while (
            self._queue
            and len(batch) < BATCH_MAX_EVENTS
            and size + self._queue[0].size <= BATCH_MAX_BYTES
        ):
            item = self._queue.popleft()
            batch.append(item)
            size += item.size
        self._queued_bytes -= size
        if self._queued_bytes <= QUEUE_MAX_BYTES:
            self._room.set()
        return batch

    def _settle(self, batch: List[_Queued], outcomes: List[Outcome]) -> None:
        refusal: Optional[SessionRefused] = None
        for item, outcome in zip(batch, outcomes):
            if isinstance(outcome, Published):
                if item.event.event_type in TERMINAL_EVENT_TYPES:
                    self._ended = True
            elif refusal is None:
                refusal = outcome
            item.settle(outcome)
        if refusal is None:
            return
        reason = refusal.reason
        # ``busy`` refuses an ack only: this attempt has not started.
        if reason != "busy":
            self._refusal = reason
            self.cancel()
        # Nothing is appended after a refused event: the log has no gaps.
        self._drop(lambda: SessionRefused(reason))

    def _fail(self, batch: List[_Queued], failure: BaseException) -> None:
        """The call failed (the events may or may not be logged): they and
        every event queued after them fail with it, so the log has no gaps."""
        failed = batch + list(self._queue)
        self._drop(lambda: failure)
        for item in batch:
            item.settle(failure)
        if not any(item.reports for item in failed):
            self._failure = failure

    def _drop(self, error: Callable[[], BaseException]) -> None:
        """Fails every event still queued with ``error()``."""
        while self._queue:
            self._queue.popleft().settle(error())
        self._queued_bytes = 0
        self._room.set()

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

    def send(self, event_type: str, payload: Any = None) -> None:
        """Queues the event (:meth:`AsyncSession.send`): returns once it is
        queued, not logged."""
        self._run(self._session.send(event_type, payload))

    def flush(self) -> None:
        """Blocks until every event queued so far is logged (:meth:`AsyncSession.flush`)."""
        self._run(self._session.flush())

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
