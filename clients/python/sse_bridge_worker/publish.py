"""``publish_event``: one event from a worker to its session (PROTOCOL §4);
``publish_batch``: several, in one call.

One ``FCALL sse_bridge_v4_append`` appends the event to the session's log
(``sse_events:<id>``) and publishes it on ``sse_session:<id>`` in one atomic
step, applying the attempt rule on the way: the log refuses events of an
attempt that has not sent ``worker_ack`` or that the session does not
belong to, and every event after the terminal one. A refusal raises
:class:`~sse_bridge_worker.errors.SessionRefused`.

``FCALL sse_bridge_v4_append_batch`` does the same for several events of one
attempt, in order: each is admitted as the single append would, the first
refusal stops the batch (the events before it stand), and the events are
published with one ``PUBLISH`` (one JSON array when the session's gateways
read batches). Redis spends its CPU per call far more than per event, so a
worker that streams many small deltas sends what queued up while its last
call was in flight as one batch (``AsyncSession.send``).

Retries are safe only with an idempotency key (the workers use
``<attempt>:<n>``, like the Rust SDK; a batch's key is its first event's).
The library remembers the key of the session's last keyed call with its
(first) entry, and a call that asks ``again`` under that same key is
answered from the log instead of being appended twice — so a session's
calls must go one after the other, as ``AsyncSession``'s queue sends them.
The Rust SDK asks ``again`` only when it retries; the kit asks on every
try, because redis-py itself resends a command whose reply was lost (its
default retries, redis-py >= 6) before the kit could tell it is retrying. With a key, a publish that failed on the
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
from typing import Any, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

import redis
import redis.asyncio

from .errors import SessionRefused, UnexpectedReply
from .library import is_library_missing, load_library, load_library_async

__all__ = [
    "TERMINAL_EVENT_TYPES",
    "EncodedEvent",
    "Outcome",
    "Published",
    "control_channel",
    "encode_event",
    "folded_key",
    "log_key",
    "meta_key",
    "publish_batch",
    "publish_batch_async",
    "publish_event",
    "publish_event_async",
]

#: The library version's append (``functions.lua``: names carry the version).
APPEND_FUNCTION = "sse_bridge_v4_append"
#: The library version's append of several events of one attempt.
APPEND_BATCH_FUNCTION = "sse_bridge_v4_append_batch"
#: The ``again`` argument of both appends: answer an entry already carrying
#: the idempotency key instead of appending the event(s) again.
DEDUPLICATE = "again"
#: ``FinalAnswerStreamEnd``, ``error`` and ``interrupt`` (PROTOCOL §8: the run
#: pauses for outside input) end a session.
TERMINAL_EVENT_TYPES = frozenset({"FinalAnswerStreamEnd", "error", "interrupt"})
#: What a batch's events were refused for when a retry found the batch
#: logged and answers fewer entries than events (the rest were refused the
#: first time, as the session ended).
RETRIED_BATCH_REFUSAL = "ended"

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
    (0 while nobody streams the session: a client may still resume); an
    event of a batch has the batch's count.
    """

    log_id: Optional[str]
    receivers: int

    @property
    def logged(self) -> bool:
        return self.log_id is not None


#: What became of one event of a batch: published, or refused (not raised).
Outcome = Union[Published, SessionRefused]


class EncodedEvent(NamedTuple):
    """An event as the appends take it: its type and its wire JSON."""

    event_type: str
    json: str


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


def _keys_and(session_id: str, *arguments: str) -> List[str]:
    return [log_key(session_id), meta_key(session_id), folded_key(session_id), *arguments]


class _AppendCall:
    """The arguments of one ``sse_bridge_v4_append`` and the reading of its reply."""

    function = APPEND_FUNCTION

    def __init__(
        self, session_id: str, event: EncodedEvent, attempt: Optional[str], idempotency_key: Optional[str]
    ) -> None:
        self.retryable = bool(idempotency_key)
        self.arguments = _keys_and(
            session_id,
            event.json,
            event.event_type,
            attempt or "",
            idempotency_key or "",
            DEDUPLICATE if idempotency_key else "",
        )

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


class _AppendBatchCall:
    """The arguments of one ``sse_bridge_v4_append_batch`` and the reading
    of its reply ``[ids, refusal, receivers]`` into one outcome per event."""

    function = APPEND_BATCH_FUNCTION

    def __init__(
        self,
        session_id: str,
        events: Sequence[EncodedEvent],
        attempt: Optional[str],
        idempotency_key: Optional[str],
    ) -> None:
        self.retryable = bool(idempotency_key)
        self.count = len(events)
        self.arguments = _keys_and(
            session_id, attempt or "", idempotency_key or "", DEDUPLICATE if idempotency_key else ""
        )
        for event in events:
            self.arguments += (event.json, event.event_type)

    def outcome(self, reply: Any) -> List[Outcome]:
        if not isinstance(reply, (list, tuple)) or len(reply) != 3:
            raise UnexpectedReply(f"unexpected reply to {APPEND_BATCH_FUNCTION}: {reply!r}")
        ids, refusal, receivers = reply
        well_formed = isinstance(ids, (list, tuple)) and isinstance(refusal, (bytes, str))
        if not well_formed or len(ids) > self.count:
            raise UnexpectedReply(f"unexpected reply to {APPEND_BATCH_FUNCTION}: {reply!r}")
        receivers = int(receivers)
        # An id per admitted event: '' for a heartbeat (published, not logged).
        outcomes: List[Outcome] = [Published(_text(entry) or None, receivers) for entry in ids]
        # Past the admitted events, the refusal (or, for a retry answered
        # from the log, the session's end) holds for the rest.
        reason = _text(refusal) or RETRIED_BATCH_REFUSAL
        outcomes += [SessionRefused(reason) for _ in range(self.count - len(ids))]
        return outcomes


class _LoneEventCall(_AppendCall):
    """A batch of one event, as the single append: its outcome as a batch's."""

    def outcome(self, reply: Any) -> List[Outcome]:  # type: ignore[override]
        try:
            return [_AppendCall.outcome(reply)]
        except SessionRefused as refusal:
            return [refusal]


def _batch_call(
    session_id: str, events: Sequence[EncodedEvent], attempt: Optional[str], idempotency_key: Optional[str]
) -> Union[_LoneEventCall, _AppendBatchCall]:
    if len(events) == 1:
        return _LoneEventCall(session_id, events[0], attempt, idempotency_key)
    return _AppendBatchCall(session_id, events, attempt, idempotency_key)


_Call = Union[_AppendCall, _AppendBatchCall]
#: A try's failure asks for the library to be loaded before the next one.
_LOAD_LIBRARY = -1.0


class _Tries:
    """When a call is tried again: once after loading the library Redis
    lacks, and (for a call with an idempotency key) after connection
    failures, pausing 50 ms doubling to 1 s, until ``retry_for`` is spent."""

    def __init__(self, call: _Call, retry_for: float) -> None:
        self._give_up = time.monotonic() + (retry_for if call.retryable else 0.0)
        self._pause = FIRST_RETRY_PAUSE
        self._library_loaded = False

    def after(self, error: redis.RedisError) -> Optional[float]:
        """The pause before the next try (``_LOAD_LIBRARY``: load it first),
        or ``None`` when ``error`` is to be raised."""
        if isinstance(error, redis.ResponseError):
            if self._library_loaded or not is_library_missing(error):
                return None
            self._library_loaded = True
            return _LOAD_LIBRARY
        if not isinstance(error, (redis.ConnectionError, redis.TimeoutError)):
            return None
        pause = self._pause
        if time.monotonic() + pause >= self._give_up:
            return None
        self._pause = min(pause * 2, LONGEST_RETRY_PAUSE)
        return pause


def _run(client: redis.Redis, call: _Call, retry_for: float) -> Any:
    """``call``'s outcome, tried as :class:`_Tries` says."""
    tries = _Tries(call, retry_for)
    while True:
        try:
            return call.outcome(client.fcall(call.function, 3, *call.arguments))
        except redis.RedisError as error:
            pause = tries.after(error)
            if pause is None:
                raise
            if pause == _LOAD_LIBRARY:
                load_library(client)
            else:
                time.sleep(pause)


async def _run_async(client: redis.asyncio.Redis, call: _Call, retry_for: float) -> Any:
    """:func:`_run` for an asyncio client."""
    tries = _Tries(call, retry_for)
    while True:
        try:
            return call.outcome(await client.fcall(call.function, 3, *call.arguments))
        except redis.RedisError as error:
            pause = tries.after(error)
            if pause is None:
                raise
            if pause == _LOAD_LIBRARY:
                await load_library_async(client)
            else:
                await asyncio.sleep(pause)


def _encoded(events: Iterable[Tuple[str, Any]], attempt: Optional[str]) -> List[EncodedEvent]:
    return [EncodedEvent(kind, encode_event(kind, payload, attempt)) for kind, payload in events]


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
    event = EncodedEvent(event_type, encode_event(event_type, payload, attempt))
    return _run(client, _AppendCall(session_id, event, attempt, idempotency_key), retry_for)


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
    event = EncodedEvent(event_type, encode_event(event_type, payload, attempt))
    return await _run_async(client, _AppendCall(session_id, event, attempt, idempotency_key), retry_for)


def publish_batch(
    client: redis.Redis,
    session_id: str,
    events: Iterable[Tuple[str, Any]],
    *,
    attempt: Optional[str] = None,
    idempotency_key: Optional[str] = None,
    retry_for: float = 10.0,
) -> List[Outcome]:
    """Logs and publishes ``(event_type, payload)`` events of one attempt,
    in order, with one ``FCALL sse_bridge_v4_append_batch`` (a lone event
    with the single append, which costs Redis less).

    Returns one outcome per event: its :class:`Published`, or (not raised)
    the :class:`~sse_bridge_worker.errors.SessionRefused` that stopped the
    batch there — the events before it stand, it and every later event
    were not logged. ``idempotency_key`` is the batch's (the worker's
    ``<attempt>:<n>`` of its first event): with it the batch is never
    logged twice (a retry answers the logged entries) and connection
    failures are retried for up to ``retry_for`` seconds, as by
    :func:`publish_event`. Raises redis-py's errors when Redis stays
    unreachable, and ``ResponseError`` (nothing appended) for an event the
    library rejects.
    """
    encoded = _encoded(events, attempt)
    if not encoded:
        return []
    return _run(client, _batch_call(session_id, encoded, attempt, idempotency_key), retry_for)


async def publish_batch_async(
    client: redis.asyncio.Redis,
    session_id: str,
    events: Iterable[Tuple[str, Any]],
    *,
    attempt: Optional[str] = None,
    idempotency_key: Optional[str] = None,
    retry_for: float = 10.0,
) -> List[Outcome]:
    """:func:`publish_batch` for an asyncio client."""
    encoded = _encoded(events, attempt)
    return await _publish_encoded_async(client, session_id, encoded, attempt, idempotency_key, retry_for)


async def _publish_encoded_async(
    client: redis.asyncio.Redis,
    session_id: str,
    events: Sequence[EncodedEvent],
    attempt: Optional[str],
    idempotency_key: Optional[str],
    retry_for: float,
) -> List[Outcome]:
    """:func:`publish_batch_async` for events already encoded with ``attempt``."""
    if not events:
        return []
    return await _run_async(client, _batch_call(session_id, events, attempt, idempotency_key), retry_for)
