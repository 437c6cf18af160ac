"""Worker kit for sse-bridge: take AI-agent jobs from the gateway's Redis
Streams queue and stream their events to the gateway's clients.

The kit speaks the wire contract of ``PROTOCOL.md`` with nothing but
redis-py:

* :func:`publish_event` / :func:`publish_event_async` (``publish.py``) —
  one event to a session, logged and published by the gateway's own Redis
  function (``FCALL sse_bridge_v4_append``), for a worker loop of your own;
  :func:`publish_batch` / :func:`publish_batch_async` — several in one call
  (``FCALL sse_bridge_v4_append_batch``);
* :class:`AsyncWorker` / :class:`Worker` (``worker.py``, over
  ``engine.py``, ``queue.py``, ``control.py``) — the whole worker loop
  around a handler: consumer group, one attempt per delivery,
  ``worker_ack``, heartbeats, cancel, end of session, ``XACK``, reclaiming
  the jobs of dead workers, bounded concurrency, graceful stop;
* :class:`AsyncSession` / :class:`Session` (``session.py``) — what a
  handler gets: ``request`` in; ``thought``, ``tool_start``, ``tool_end``,
  ``answer`` and ``publish`` out, and ``send`` / ``flush`` for streaming
  deltas (queued, and batched while an append is in flight);
* human in the loop (PROTOCOL §8): :class:`ToolCall` and :class:`Interrupt`
  (``interrupts.py``) for ``session.interrupt``, ``request_approval`` and
  ``call_client_tool``, which end a run waiting for outside input;
  :class:`Resume` (``resume.py``) for the run that continues it —
  ``session.resume``, with its :class:`Approval` and
  :class:`ClientToolResult` answers;
* the exceptions (``errors.py``) and the function library (``library.py``).

A handler::

    async def handle(session):
        await session.thought("Echoing.")
        await session.answer("Echo: " + session.request["user_query"])

    asyncio.run(AsyncWorker(handle, "redis://127.0.0.1:6379").run(handle_signals=True))
"""

from .errors import (
    REFUSAL_REASONS,
    SessionCancelled,
    SessionRefused,
    SessionStopped,
    SseBridgeError,
    UnexpectedReply,
)
from .interrupts import Interrupt, ToolCall
from .library import FUNCTIONS
from .publish import Published, publish_batch, publish_batch_async, publish_event, publish_event_async
from .queue import Job
from .resume import Answer, Approval, ClientToolResult, Resume
from .session import AsyncSession, Session
from .worker import AsyncHandler, AsyncWorker, SyncHandler, Worker

__all__ = [
    "FUNCTIONS",
    "REFUSAL_REASONS",
    "Answer",
    "Approval",
    "AsyncHandler",
    "AsyncSession",
    "AsyncWorker",
    "ClientToolResult",
    "Interrupt",
    "Job",
    "Published",
    "Resume",
    "Session",
    "SessionCancelled",
    "SessionRefused",
    "SessionStopped",
    "SseBridgeError",
    "SyncHandler",
    "ToolCall",
    "UnexpectedReply",
    "Worker",
    "publish_batch",
    "publish_batch_async",
    "publish_event",
    "publish_event_async",
]
