"""The control channels of the jobs in flight, on one Pub/Sub connection.

The gateway publishes ``{"event_type": "cancel", ...}`` on
``sse_control:<session id>`` when a session's client is gone, the session
was deleted or it ended on a timeout (PROTOCOL §2, §4). A worker subscribes
to that channel *before* it sends ``worker_ack``, so a cancel cannot slip
through between the two; :meth:`ControlChannels.watch` returns only once
Redis confirmed the subscription.

All sessions of a worker share one connection: one reader task routes each
message to the session it names. After a dropped connection redis-py
re-subscribes every channel as it reconnects; a cancel published while the
link was down is lost, and the session's log then stops the handler at its
next publish instead (the gateway ends the session in the log too).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Callable, Dict, Optional

import redis
import redis.asyncio

from .publish import control_channel

__all__ = ["ControlChannels"]

log = logging.getLogger(__name__)

RECONNECT_PAUSE = 1.0


class _Watch:
    def __init__(self, on_cancel: Callable[[], None]) -> None:
        self.on_cancel = on_cancel
        self.subscribed = asyncio.Event()


def _is_cancel(data: object) -> bool:
    try:
        message = json.loads(data)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return isinstance(message, dict) and message.get("event_type") == "cancel"


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class ControlChannels:
    """Watches the control channels of the sessions a worker runs."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self._pubsub = client.pubsub()
        self._watches: Dict[str, _Watch] = {}
        self._reader: Optional[asyncio.Task[None]] = None

    async def watch(self, session_id: str, on_cancel: Callable[[], None], timeout: float) -> None:
        """Calls ``on_cancel`` when the session's ``cancel`` arrives; returns
        once the subscription is confirmed (``asyncio.TimeoutError`` if not
        within ``timeout`` seconds, redis-py's errors if Redis is unreachable)."""
        channel = control_channel(session_id)
        watch = _Watch(on_cancel)
        self._watches[channel] = watch
        try:
            await self._pubsub.subscribe(channel)
            if self._reader is None:
                self._reader = asyncio.create_task(self._route_messages())
            await asyncio.wait_for(watch.subscribed.wait(), timeout)
        except BaseException:
            await self.unwatch(session_id)
            raise

    async def unwatch(self, session_id: str) -> None:
        """Stops watching the session's channel."""
        channel = control_channel(session_id)
        if self._watches.pop(channel, None) is None:
            return
        try:
            await self._pubsub.unsubscribe(channel)
        except redis.RedisError as error:
            log.debug("cannot unsubscribe from %s: %s", channel, error)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _route_messages(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except redis.RedisError as error:
                log.warning("control channel connection failed (%s); reconnecting", error)
                await asyncio.sleep(RECONNECT_PAUSE)
                continue
            if message is None:
                continue
            watch = self._watches.get(_text(message.get("channel")))
            if watch is None:
                continue
            if message["type"] == "subscribe":
                watch.subscribed.set()
            elif message["type"] == "message" and _is_cancel(message["data"]):
                watch.on_cancel()
