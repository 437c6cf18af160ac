"""``publish_event``: one event from a worker to its session (PROTOCOL §4).

One ``FCALL sse_bridge_v3_append`` appends the event to the session's log
(``sse_events:<id>``) and publishes it on ``sse_session:<id>`` in one atomic
step, applying the attempt rule on the way: the log refuses events of an
attempt that has not sent ``worker_ack`` or that the session does not
belong to, and every event after the terminal one. A refusal raises
:class:`~sse_bridge_worker.errors.SessionRefused`.

Retries are safe only with an idempotency key (the workers use
``<attempt>:<n>``, like the Rust SDK). The key is stored with the entry, and
the call asks the library to answer an entry of the last few that already
carries it instead of appending a duplicate. The Rust SDK asks that only
when it retries; the kit asks on every try, because redis-py itself resends
a command whose reply was lost (its default retries, redis-py >= 6) before
the kit could tell it is retrying. With a key, a publish that failed on the
connection (Redis restarting, a timeout after the command may have run) is
also retried by the kit with backoff for up to ``retry_for`` seconds.
Without a key the first connection error is raised, since the event may or
may not have been logged.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any, List, Optional, Union

import redis
import redis.asyncio

from .errors import SessionRefused, UnexpectedReply
from .library import is_library_missing, load_library, load_library_async

__all__ = [
    "TERMINAL_EVENT_TYPES",
    "Published",
    "control_channel",
    "encode_event",
    "folded_key",
    "log_key",
    "meta_key",
    "publish_event",
    "publish_event_async",
]

#: The library version's append (``functions.lua``: names carry the version).
APPEND_FUNCTION = "sse_bridge_v3_append"
#: ARGV[5] of ``sse_bridge_v3_append``: answer an entry already carrying the
#: idempotency key instead of appending the event again.
DEDUPLICATE = "again"
#: ``FinalAnswerStreamEnd``, ``error`` and ``interrupt`` (PROTOCOL §8: the run
#: pauses for outside input) end a session.
TERMINAL_EVENT_TYPES = frozenset({"FinalAnswerStreamEnd", "error", "interrupt"})

FIRST_RETRY_PAUSE = 0.05
LONGEST_RETRY_PAUSE = 1.0


def log_key(session_id: str) -> str:
    """The Redis Stream holding the session's events."""
    return f"sse_events:{session_id}"


def meta_key(session_id: str) -> str:
    """The Redis hash the gateway keeps the session's metadata in."""
    return f"sse_session_meta:{session_id}"


def folded_key(session_id: str) -> str:
    """The Redis Stream holding the folded head of a long session's log."""
    return f"sse_folded:{session_id}"


def control_channel(session_id: str) -> str:
    """The Pub/Sub channel the gateway sends ``cancel`` on."""
    return f"sse_control:{session_id}"


@dataclass(frozen=True)
class Published:
    """Where a published event went.

    ``log_id`` is the event's entry id in the session log (followers resume
    after it), or ``None`` for a ``worker_heartbeat``, which is published
    live and never logged. ``receivers`` counts the gateways that got it live
    (0 while nobody streams the session: a client may still resume).
    """

    log_id: Optional[str]
    receivers: int

    @property
    def logged(self) -> bool:
        return self.log_id is not None


def encode_event(event_type: str, payload: Any, attempt: Optional[str] = None) -> str:
    """The event's wire JSON: compact (the library appends ``log_id`` to it
    textually), with the reserved ``attempt`` field when given."""
    if not isinstance(event_type, str) or not event_type:
        raise ValueError("event_type must be a non-empty string")
    event = {"event_type": event_type, "payload": payload}
    if attempt is not None:
        event["attempt"] = attempt
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _text(value: Union[bytes, str]) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


class _AppendCall:
    """The arguments of one ``sse_bridge_v3_append`` and the reading of its reply."""

    def __init__(
        self,
        session_id: str,
        event_type: str,
        payload: Any,
        attempt: Optional[str],
        idempotency_key: Optional[str],
    ) -> None:
        event = encode_event(event_type, payload, attempt)
        self.arguments: List[str] = [
            log_key(session_id),
            meta_key(session_id),
            folded_key(session_id),
            event,
            event_type,
            attempt or "",
            idempotency_key or "",
            DEDUPLICATE if idempotency_key else "",
        ]

    @staticmethod
    def outcome(reply: Any) -> Published:
        if not isinstance(reply, (list, tuple)) or not reply:
            raise UnexpectedReply(f"unexpected reply to {APPEND_FUNCTION}: {reply!r}")
        status = reply[0]
        if status == 1 and len(reply) >= 3:
            return Published(log_id=_text(reply[1]), receivers=int(reply[2]))
        if status == 2 and len(reply) >= 3:
            return Published(log_id=None, receivers=int(reply[2]))
        if status == 0 and len(reply) >= 2:
            raise SessionRefused(_text(reply[1]))
        raise UnexpectedReply(f"unexpected reply to {APPEND_FUNCTION}: {reply!r}")


class _Backoff:
    """Pauses between retries: 50 ms doubling to 1 s, none after the deadline."""

    def __init__(self, retry_for: float) -> None:
        self._give_up = time.monotonic() + retry_for
        self._pause = FIRST_RETRY_PAUSE

    def next_pause(self) -> Optional[float]:
        pause = self._pause
        if time.monotonic() + pause >= self._give_up:
            return None
        self._pause = min(pause * 2, LONGEST_RETRY_PAUSE)
        return pause


def publish_event(
    client: redis.Redis,
    session_id: str,
    event_type: str,
    payload: Any,
    *,
    attempt: Optional[str] = None,
    idempotency_key: Optional[str] = None,
    retry_for: float = 10.0,
) -> Published:
    """Logs and publishes ``{"event_type": ..., "payload": ...}`` to the session.

    ``attempt`` is the job delivery this worker runs (every event of a
    delivery carries the same one; ``None`` for a worker that never runs a
    job twice). With ``idempotency_key`` the event is never logged twice,
    and connection failures are retried for up to ``retry_for`` seconds.

    Raises :class:`~sse_bridge_worker.errors.SessionRefused` when the
    session takes no more events from this sender (stop working on it), and
    redis-py's errors when Redis stays unreachable.
    """
    call = _AppendCall(session_id, event_type, payload, attempt, idempotency_key)
    backoff = _Backoff(retry_for if idempotency_key else 0.0)
    library_loaded = False
    while True:
        try:
            return call.outcome(client.fcall(APPEND_FUNCTION, 3, *call.arguments))
        except redis.ResponseError as error:
            if library_loaded or not is_library_missing(error):
                raise
            load_library(client)
            library_loaded = True
        except (redis.ConnectionError, redis.TimeoutError):
            pause = backoff.next_pause()
            if pause is None:
                raise
            time.sleep(pause)


async def publish_event_async(
    client: redis.asyncio.Redis,
    session_id: str,
    event_type: str,
    payload: Any,
    *,
    attempt: Optional[str] = None,
    idempotency_key: Optional[str] = None,
    retry_for: float = 10.0,
) -> Published:
    """:func:`publish_event` for an asyncio client."""
    call = _AppendCall(session_id, event_type, payload, attempt, idempotency_key)
    backoff = _Backoff(retry_for if idempotency_key else 0.0)
    library_loaded = False
    while True:
        try:
            return call.outcome(await client.fcall(APPEND_FUNCTION, 3, *call.arguments))
        except redis.ResponseError as error:
            if library_loaded or not is_library_missing(error):
                raise
            await load_library_async(client)
            library_loaded = True
        except (redis.ConnectionError, redis.TimeoutError):
            pause = backoff.next_pause()
            if pause is None:
                raise
            await asyncio.sleep(pause)
