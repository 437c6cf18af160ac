"""The two workers a program starts: :class:`AsyncWorker` runs an
``async def handler(session)`` on the event loop, :class:`Worker` runs a
plain ``def handler(session)`` in a thread per job. Both take the same
options and share one engine (``engine.py``), so they behave the same:
ack, heartbeats, cancel, end of session, ``XACK``, reclaiming.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable, Dict, Generic, Optional, TypeVar

from .engine import Engine, WorkerSettings
from .session import AsyncSession, Session

__all__ = ["AsyncHandler", "AsyncWorker", "SyncHandler", "Worker"]

AsyncHandler = Callable[[AsyncSession], Awaitable[None]]
SyncHandler = Callable[[Session], None]
Handler = TypeVar("Handler", AsyncHandler, SyncHandler)


class _WorkerBase(Generic[Handler]):
    """The options both workers take, after the handler.

    * ``redis_url``: the Redis of the gateway (``redis://``, ``rediss://``,
      ``redis://:password@host``); ``redis_options`` are passed on to
      ``redis.asyncio.Redis.from_url``.
    * ``stream``, ``group``: the gateway's ``--redis-stream`` and ``--group``.
    * ``consumer``: this worker's name in the group (default
      ``host-pid-random``).
    * ``concurrency``: jobs run at once at most.
    * ``heartbeat``: send ``worker_heartbeat`` after this many seconds
      without a publish (``None``: never). Keep it below the gateway's
      ``--idle-timeout`` and at most its ``--worker-heartbeat``.
    * ``claim_idle``: take over jobs another worker left pending this long
      (the gateway's ``--redis-claim-idle``); this worker keeps its own
      jobs claimed meanwhile.
    * ``read_block``: longest blocking read of the queue, seconds; a stop
      waits for the read in progress (a job it brings is run).
    * ``shutdown_grace``: after :meth:`stop`, jobs in flight get this long
      to finish; the rest are cancelled and left for redelivery.
    * ``publish_retry``: keep retrying a publish that failed on the
      connection (a Redis restart) for this long.
    """

    def __init__(
        self,
        handler: Handler,
        redis_url: str = "redis://127.0.0.1:6379",
        *,
        stream: str = "sse_jobs",
        group: str = "sse_workers",
        consumer: Optional[str] = None,
        concurrency: int = 64,
        heartbeat: Optional[float] = 5.0,
        claim_idle: float = 60.0,
        read_block: float = 2.0,
        shutdown_grace: float = 30.0,
        publish_retry: float = 10.0,
        redis_options: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._handler: Handler = handler
        self._settings = WorkerSettings(
            redis_url=redis_url,
            stream=stream,
            group=group,
            consumer=consumer,
            concurrency=concurrency,
            heartbeat=heartbeat,
            claim_idle=claim_idle,
            read_block=read_block,
            shutdown_grace=shutdown_grace,
            publish_retry=publish_retry,
        )
        self._engine = Engine(self._run_handler, self._settings, redis_options)

    @property
    def consumer(self) -> str:
        """This worker's consumer name in the group."""
        return self._engine.consumer

    def stop(self) -> None:
        """Stops taking jobs and lets :meth:`run` return once the jobs in
        flight ended. Callable from any thread or a signal handler; a stopped
        worker stays stopped."""
        self._engine.stop()

    async def _run_handler(self, session: AsyncSession) -> None:
        raise NotImplementedError


class AsyncWorker(_WorkerBase[AsyncHandler]):
    """Runs ``await handler(session)`` for every job, on the event loop.

    The handler's task is cancelled when the session is (``session.cancelled``
    turns true at the same moment); it must not swallow
    ``asyncio.CancelledError``.
    """

    async def run(self, *, handle_signals: bool = False) -> None:
        """Takes jobs until :meth:`stop`; with ``handle_signals`` (main
        thread only) SIGINT and SIGTERM stop it too."""
        await self._engine.run(handle_signals=handle_signals)

    async def _run_handler(self, session: AsyncSession) -> None:
        await self._handler(session)


class Worker(_WorkerBase[SyncHandler]):
    """Runs ``handler(session)`` for every job, each in a thread of its own
    (at most ``concurrency`` threads).

    A thread cannot be interrupted: on cancel ``session.cancelled`` turns
    true and the handler's next publish raises
    :class:`~sse_bridge_worker.errors.SessionStopped`; the job is
    acknowledged once the handler returned.
    """

    _threads: Optional[ThreadPoolExecutor] = None

    def run(self, *, handle_signals: bool = True) -> None:
        """Takes jobs until :meth:`stop`, blocking the calling thread; with
        ``handle_signals`` (main thread only) SIGINT and SIGTERM stop it too."""
        with ThreadPoolExecutor(
            self._settings.concurrency, thread_name_prefix="sse-bridge-handler"
        ) as threads:
            self._threads = threads
            asyncio.run(self._engine.run(handle_signals=handle_signals))

    async def _run_handler(self, session: AsyncSession) -> None:
        loop = asyncio.get_running_loop()
        thread = loop.run_in_executor(self._threads, self._handler, Session(session, loop))
        try:
            await asyncio.shield(thread)
        except asyncio.CancelledError:
            # The session stopped: its next publish raises in the thread,
            # which ends the job's run only when the handler returns.
            session.cancel()
            await asyncio.gather(thread, return_exceptions=True)
            raise
