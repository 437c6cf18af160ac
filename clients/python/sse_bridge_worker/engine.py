"""The worker loop: jobs in, one handler run per job, events out.

Both :class:`~sse_bridge_worker.AsyncWorker` and
:class:`~sse_bridge_worker.Worker` run this one asyncio engine; they differ
only in how the handler is called. It does for each job what the Rust
SDK's ``run_worker`` does, in order:

1. take it from the queue (a new entry, or one a dead worker left pending
   for ``claim_idle``), keeping it claimed while it runs;
2. start a new *attempt* (16 hex digits: every delivery is one);
3. subscribe to the session's control channel, so a ``cancel`` cannot be
   missed (if that fails, the job is left for redelivery);
4. publish ``worker_ack``: if the session refuses it (ended, expired, or
   answered by another attempt) the job is skipped; while another attempt
   is live and serving it (``busy``), it asks again every second until the
   session ends (skip) or that attempt goes silent (take over, or the log
   ends the session with ``worker_lost``); if Redis cannot be reached, the
   job is left for redelivery;
5. run the handler, sending ``worker_heartbeat`` whenever it has been
   silent for ``heartbeat`` seconds, and stop it on ``cancel`` or when the
   log refuses one of its events; once it returned, flush the session's
   send queue (a failure there counts as the handler's);
6. end the session unless the handler did (a terminal event:
   ``FinalAnswerStreamEnd``, ``error``, or an ``interrupt`` that pauses the
   run for outside input): ``FinalAnswerStreamEnd`` after it returned,
   ``error``/``worker_error`` after it raised;
7. ``XACK`` the job, once nothing of the session is queued or in flight.

At most ``concurrency`` jobs run at once. :meth:`Engine.stop` (thread-safe)
stops taking jobs once the read in progress returned (within
``read_block``; a job it brings is still run); the jobs in flight get
``shutdown_grace`` seconds to finish, then are cancelled and left
unacknowledged, so another worker reruns them.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import threading
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Coroutine, Dict, List, Optional

import redis
import redis.asyncio

from .control import ControlChannels
from .errors import SessionRefused, SessionStopped, UnexpectedReply
from .queue import JobQueue, new_consumer_name
from .session import AsyncSession

__all__ = ["Engine", "HandlerRunner", "WorkerSettings", "new_attempt_id"]

log = logging.getLogger(__name__)

#: Runs the user's handler for one session (awaiting it, or a thread).
HandlerRunner = Callable[[AsyncSession], Coroutine[Any, Any, None]]

#: Budget for Redis to confirm a control channel subscription.
SUBSCRIBE_TIMEOUT = 5.0
#: Pause before taking jobs again after the queue failed.
QUEUE_RETRY_PAUSE = 1.0
#: Seconds between two tries of ``worker_ack`` for a job whose session another
#: live attempt serves: bounds how late it takes over once that one went silent.
BUSY_RECHECK = 1.0


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker reaches its queue and runs its jobs (see ``AsyncWorker``)."""

    redis_url: str = "redis://127.0.0.1:6379"
    stream: str = "sse_jobs"
    group: str = "sse_workers"
    consumer: Optional[str] = None
    concurrency: int = 64
    heartbeat: Optional[float] = 5.0
    claim_idle: float = 60.0
    read_block: float = 2.0
    shutdown_grace: float = 30.0
    publish_retry: float = 10.0


def new_attempt_id() -> str:
    """A fresh attempt id: 16 hex digits, unique enough to tell deliveries apart."""
    return secrets.token_hex(8)


class Engine:
    """Takes jobs and runs them with ``run_handler`` until stopped."""

    def __init__(
        self,
        run_handler: HandlerRunner,
        settings: WorkerSettings,
        redis_options: Optional[Dict[str, Any]] = None,
    ) -> None:
        if settings.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._run_handler = run_handler
        self._settings = settings
        self._redis_options = dict(redis_options or {})
        self.consumer = settings.consumer or new_consumer_name()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stopping: Optional[asyncio.Event] = None
        self._stop_requested = threading.Event()

    def stop(self) -> None:
        """Stops taking jobs; :meth:`run` returns once the jobs in flight
        ended (or were given up after ``shutdown_grace``). Thread-safe."""
        self._stop_requested.set()
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stopping.set)

    async def run(self, *, handle_signals: bool) -> None:
        """Runs until :meth:`stop` (or SIGINT/SIGTERM with ``handle_signals``)."""
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        if self._stop_requested.is_set():
            self._stopping.set()
        signals = self._install_signal_handlers() if handle_signals else []
        settings = self._settings
        client = redis.asyncio.Redis.from_url(settings.redis_url, **self._redis_options)
        queue = JobQueue(
            client,
            stream=settings.stream,
            group=settings.group,
            consumer=self.consumer,
            claim_idle=settings.claim_idle,
            read_block=settings.read_block,
        )
        control = ControlChannels(client)
        keepalive = asyncio.create_task(queue.keep_claimed())
        running: Dict[asyncio.Task[None], AsyncSession] = {}
        try:
            await queue.create_group()
            log.info(
                "worker %s takes jobs from %s (group %s)", self.consumer, settings.stream, settings.group
            )
            await self._take_jobs(client, queue, control, running)
            await self._drain(running)
        finally:
            keepalive.cancel()
            await asyncio.gather(keepalive, return_exceptions=True)
            await control.close()
            await client.aclose()
            for signum in signals:
                self._loop.remove_signal_handler(signum)

    def _install_signal_handlers(self) -> List[signal.Signals]:
        if threading.current_thread() is not threading.main_thread():
            return []
        installed = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                asyncio.get_running_loop().add_signal_handler(signum, self.stop)
            except NotImplementedError:  # Windows event loops
                break
            installed.append(signum)
        return installed

    async def _until_stopped(self, work: Awaitable[Any]) -> Any:
        """``work``'s result, or ``None`` (``work`` cancelled) once stopping."""
        assert self._stopping is not None
        task = asyncio.ensure_future(work)
        stopping = asyncio.create_task(self._stopping.wait())
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return None
        return task.result()

    async def _take_jobs(
        self,
        client: redis.asyncio.Redis,
        queue: JobQueue,
        control: ControlChannels,
        running: Dict[asyncio.Task[None], AsyncSession],
    ) -> None:
        assert self._stopping is not None
        slots = asyncio.Semaphore(self._settings.concurrency)
        while not self._stopping.is_set():
            if await self._until_stopped(slots.acquire()) is None:
                break
            try:
                # Not cut short by stop: a blocking read returns within
                # `read_block`, and an entry Redis handed to a read that was
                # given up would wait `claim_idle` for a worker to reclaim it.
                job = await queue.next_job()
            except redis.RedisError as error:
                slots.release()
                log.warning("cannot take jobs: %s; retrying in %ss", error, QUEUE_RETRY_PAUSE)
                await self._until_stopped(asyncio.sleep(QUEUE_RETRY_PAUSE))
                continue
            if job is None:
                slots.release()
                continue
            session = AsyncSession(job, new_attempt_id(), client, self._settings.publish_retry)
            task = asyncio.create_task(self._run_job(session, queue, control))
            running[task] = session

            def finished(task: asyncio.Task[None]) -> None:
                running.pop(task, None)
                slots.release()

            task.add_done_callback(finished)

    async def _drain(self, running: Dict[asyncio.Task[None], AsyncSession]) -> None:
        """Waits for the jobs in flight, then gives up the rest."""
        if not running:
            return
        _, late = await asyncio.wait(set(running), timeout=self._settings.shutdown_grace)
        if not late:
            return
        log.warning("giving up %d job(s) at shutdown; they will be redelivered", len(late))
        for task in late:
            session = running.get(task)
            if session is not None:
                session.cancel()
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    async def _run_job(self, session: AsyncSession, queue: JobQueue, control: ControlChannels) -> None:
        job = session.job
        try:
            await control.watch(job.session_id, session.cancel, SUBSCRIBE_TIMEOUT)
        except (redis.RedisError, asyncio.TimeoutError) as error:
            log.warning(
                "session %s: cannot watch the control channel (%s); leaving the job for redelivery",
                job.session_id,
                error,
            )
            queue.release(job)
            return
        try:
            try:
                await self._acknowledge(session)
            except SessionRefused as refusal:
                log.info(
                    "session %s does not take attempt %s (%s); skipping the job",
                    job.session_id,
                    session.attempt,
                    refusal.reason,
                )
            except (redis.RedisError, UnexpectedReply) as error:
                log.warning(
                    "session %s: cannot publish worker_ack (%s); leaving the job for redelivery",
                    job.session_id,
                    error,
                )
                return
            else:
                await self._run_session(session)
            await session._drained()
            await queue.ack(job)
        except (redis.RedisError, UnexpectedReply) as error:
            log.warning("session %s: cannot acknowledge the job: %s", job.session_id, error)
        finally:
            # A stopped session's last call may still be in flight: nothing
            # of the job's run outlives it.
            await session._drained()
            queue.release(job)
            await control.unwatch(job.session_id)

    @staticmethod
    async def _acknowledge(session: AsyncSession) -> None:
        """Step 4: ``worker_ack``, asked again while another attempt serves the session."""
        waiting = False
        while True:
            try:
                await session.publish("worker_ack", {})
                return
            except SessionRefused as refusal:
                if refusal.reason != "busy":
                    raise
            if not waiting:
                log.info("session %s: another attempt is serving it; waiting", session.session_id)
                waiting = True
            await asyncio.sleep(BUSY_RECHECK)

    async def _run_session(self, session: AsyncSession) -> None:
        """Steps 5 and 6: the handler, its heartbeats, and the session's end."""
        handler = asyncio.create_task(self._run_handler_and_flush(session))
        stopped = asyncio.create_task(session.wait_cancelled())
        heartbeats = asyncio.create_task(self._send_heartbeats(session))
        try:
            await asyncio.wait({handler, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not handler.done():
                handler.cancel()
            stopped.cancel()
            heartbeats.cancel()
            await asyncio.gather(handler, stopped, heartbeats, return_exceptions=True)
        sid = session.session_id
        failure = None if handler.cancelled() else handler.exception()
        if session.cancelled or isinstance(failure, SessionStopped):
            log.info("session %s: stopped (cancelled, or refused by the session's log)", sid)
        elif failure is not None:
            log.warning("session %s: handler failed", sid, exc_info=failure)
            if not session.ended:
                await self._end(
                    session,
                    "error",
                    {"error": f"{type(failure).__name__}: {failure}", "code": "worker_error"},
                )
        else:
            log.info("session %s: done", sid)
            if not session.ended:
                await self._end(session, "FinalAnswerStreamEnd", {})

    async def _run_handler_and_flush(self, session: AsyncSession) -> None:
        """The handler, then its queued events: the run is over once they are logged."""
        await self._run_handler(session)
        await session.flush()

    @staticmethod
    async def _end(session: AsyncSession, event_type: str, payload: Dict[str, Any]) -> None:
        try:
            await session._publish(event_type, payload)
        except (SessionStopped, redis.RedisError, UnexpectedReply) as error:
            log.warning("session %s: cannot publish %s: %s", session.session_id, event_type, error)

    async def _send_heartbeats(self, session: AsyncSession) -> None:
        """``worker_heartbeat`` whenever the handler was silent for an interval."""
        every = self._settings.heartbeat
        if every is None:
            return
        while not session.ended:
            silent = session.silent_for()
            if silent < every:
                await asyncio.sleep(every - silent)
                continue
            try:
                # Through the send queue, after the handler's events; an
                # earlier send's failure is left for the handler to raise.
                await session._publish("worker_heartbeat", {})
            except (SessionStopped, redis.RedisError, UnexpectedReply) as error:
                log.warning("session %s: cannot publish worker_heartbeat: %s", session.session_id, error)
            await asyncio.sleep(every)
