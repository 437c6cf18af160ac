"""The exceptions of the kit.

A handler needs only one of them: :class:`SessionStopped`, raised by a
publish once the session takes no more events from this worker. Its two
kinds say why — the session's log refused the event
(:class:`SessionRefused`, with the log's reason) or the gateway asked this
worker to stop (:class:`SessionCancelled`). Either way the right reaction
is to stop working on the job; the kit does the rest.
"""

from __future__ import annotations

__all__ = [
    "REFUSAL_REASONS",
    "SessionCancelled",
    "SessionRefused",
    "SessionStopped",
    "SseBridgeError",
    "UnexpectedReply",
]

#: What ``sse_bridge_v4_append`` answers ``[0, reason]`` with (PROTOCOL §4):
#: the session ended, is unknown (or expired), has no ``worker_ack`` yet,
#: belongs to another attempt, is served by another attempt that is still
#: live (``busy``: refuses a ``worker_ack`` only; the kit asks again until
#: the session ends or that attempt goes silent), or was lost by another
#: attempt mid-answer.
REFUSAL_REASONS = ("ended", "unknown", "not_acked", "foreign", "busy", "lost")


class SseBridgeError(Exception):
    """Base class of every exception the kit raises."""


class SessionStopped(SseBridgeError):
    """The session takes no more events from this worker: stop working on it."""


class SessionRefused(SessionStopped):
    """The session's log refused an event; ``reason`` is one of :data:`REFUSAL_REASONS`."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the session refused the event: {reason}")
        self.reason = reason


class SessionCancelled(SessionStopped):
    """The gateway cancelled the session (client gone, ``DELETE``, timeout)."""

    def __init__(self) -> None:
        super().__init__("the session was cancelled")


class UnexpectedReply(SseBridgeError):
    """Redis answered a kit command with something the protocol does not allow."""
