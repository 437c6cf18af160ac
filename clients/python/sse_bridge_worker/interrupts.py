"""What a run publishes for a human in the loop (PROTOCOL §8): tool calls
named by an id, and the ``interrupt`` that ends a run waiting for outside
input.

* :class:`ToolCall` — one call of a tool, with the id that pairs its
  ``AgentToolCallStart`` and ``AgentToolCallEnd`` in every format (fresh:
  ``call-<uuid4 hex>``), and the payloads of those events.
* :class:`Interrupt` — one thing the run waits for (fresh id:
  ``int-<uuid4 hex>``).
* :func:`interrupt_payload` — the ``interrupt`` event's payload, checked as
  the gateway checks it, so a mistake is an exception in the handler rather
  than a session the gateway cannot honour.

An interrupt about a tool call carries the call in its ``metadata``
(``tool_name``, ``tool_input``, and ``executor`` for a client tool), so the
resumed run (``resume.py``) knows the call from its job alone: a stateless
worker keeps nothing between the two runs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, Mapping, Optional, Union

__all__ = [
    "CLIENT_EXECUTOR",
    "MAX_INTERRUPTS",
    "TOOL_CALL_REASON",
    "Interrupt",
    "ToolCall",
    "interrupt_payload",
    "new_interrupt_id",
    "new_tool_call_id",
]

#: The ``reason`` of an interrupt about a tool call (approval or client tool).
TOOL_CALL_REASON = "tool_call"
#: ``AgentToolCallStart``'s ``executor`` for a tool the client runs.
CLIENT_EXECUTOR = "client"
#: Most interrupts one ``interrupt`` event may carry (the gateway's limit).
MAX_INTERRUPTS = 64


def new_tool_call_id() -> str:
    """A fresh tool call id: ``call-`` and a UUID v4's 32 hex digits."""
    return f"call-{uuid.uuid4().hex}"


def new_interrupt_id() -> str:
    """A fresh interrupt id: ``int-`` and a UUID v4's 32 hex digits."""
    return f"int-{uuid.uuid4().hex}"


@dataclass(frozen=True)
class ToolCall:
    """One call of tool ``name`` with ``input``; ``executor`` is ``"client"``
    for a tool the client runs (``None``: the worker runs it)."""

    name: str
    input: Any = None
    id: str = field(default_factory=new_tool_call_id)
    executor: Optional[str] = None

    def start_payload(self) -> Dict[str, Any]:
        """``AgentToolCallStart``'s payload."""
        payload: Dict[str, Any] = {"tool_call_id": self.id, "tool_name": self.name, "tool_input": self.input}
        if self.executor is not None:
            payload["executor"] = self.executor
        return payload

    def end_payload(self, output: Any) -> Dict[str, Any]:
        """``AgentToolCallEnd``'s payload: the call returned ``output``."""
        return {"tool_call_id": self.id, "tool_name": self.name, "output": output}

    def error_payload(self, error: str) -> Dict[str, Any]:
        """``AgentToolCallEnd``'s payload: the call failed with ``error``."""
        return {"tool_call_id": self.id, "tool_name": self.name, "error": error}

    def denied_payload(self, reason: Optional[str]) -> Dict[str, Any]:
        """``AgentToolCallEnd``'s payload: the call was not approved
        (``denied: true``, an extension the gateway maps to the AI SDK's
        ``tool-output-denied``)."""
        return {"tool_call_id": self.id, "tool_name": self.name, "denied": True, "error": reason or "denied"}

    def interrupt(
        self,
        message: Optional[str] = None,
        *,
        expires_at: Optional[Union[str, datetime]] = None,
        response_schema: Optional[Dict[str, Any]] = None,
    ) -> "Interrupt":
        """An interrupt about this call (reason ``tool_call``, a fresh id),
        carrying the call in its ``metadata``."""
        metadata: Dict[str, Any] = {"tool_name": self.name, "tool_input": self.input}
        if self.executor is not None:
            metadata["executor"] = self.executor
        return Interrupt(
            TOOL_CALL_REASON,
            message=message,
            tool_call_id=self.id,
            response_schema=response_schema,
            expires_at=expires_at,
            metadata=metadata,
        )

    @classmethod
    def from_interrupt(cls, interrupt: "Interrupt") -> Optional["ToolCall"]:
        """The call an interrupt made by :meth:`interrupt` is about; ``None``
        for an interrupt about no tool call."""
        metadata = interrupt.metadata or {}
        name = metadata.get("tool_name")
        if interrupt.tool_call_id is None or not isinstance(name, str):
            return None
        executor = metadata.get("executor")
        return cls(
            name=name,
            input=metadata.get("tool_input"),
            id=interrupt.tool_call_id,
            executor=executor if isinstance(executor, str) else None,
        )


@dataclass(frozen=True)
class Interrupt:
    """One interrupt of an ``interrupt`` event (PROTOCOL §8).

    ``reason`` is an open string (``tool_call``, ``input_required``,
    ``confirmation``, ...); ``id`` is unique within the thread (fresh by
    default). ``expires_at`` is an RFC 3339 string or an aware
    ``datetime``; after it the client may only cancel the interrupt.
    """

    reason: str
    id: str = field(default_factory=new_interrupt_id)
    message: Optional[str] = None
    tool_call_id: Optional[str] = None
    response_schema: Optional[Dict[str, Any]] = None
    expires_at: Optional[Union[str, datetime]] = None
    metadata: Optional[Dict[str, Any]] = None

    def to_dict(self) -> Dict[str, Any]:
        """The interrupt's JSON object, without the fields left ``None``."""
        fields: Dict[str, Any] = {"id": self.id, "reason": self.reason}
        optional = {
            "message": self.message,
            "tool_call_id": self.tool_call_id,
            "response_schema": self.response_schema,
            "expires_at": _rfc3339(self.expires_at),
            "metadata": self.metadata,
        }
        fields.update((name, value) for name, value in optional.items() if value is not None)
        return fields

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any]) -> "Interrupt":
        """An interrupt as a worker sent it (fields of other types than
        PROTOCOL §8's, and unknown ones, are left out); ``ValueError``
        without a string ``id`` and ``reason``."""
        interrupt_id, reason = fields.get("id"), fields.get("reason")
        if not isinstance(interrupt_id, str) or not isinstance(reason, str):
            raise ValueError(f"an interrupt needs a string id and reason: {dict(fields)!r}")

        def typed(name: str, kind: type) -> Any:
            value = fields.get(name)
            return value if isinstance(value, kind) else None

        return cls(
            reason=reason,
            id=interrupt_id,
            message=typed("message", str),
            tool_call_id=typed("tool_call_id", str),
            response_schema=typed("response_schema", dict),
            expires_at=typed("expires_at", str),
            metadata=typed("metadata", dict),
        )


def _rfc3339(when: Optional[Union[str, datetime]]) -> Optional[str]:
    if not isinstance(when, datetime):
        return when
    if when.tzinfo is None:
        raise ValueError("expires_at must be an aware datetime (e.g. datetime.now(timezone.utc))")
    return when.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def interrupt_payload(interrupts: Iterable[Union[Interrupt, Mapping[str, Any]]]) -> Dict[str, Any]:
    """``{"interrupts": [...]}`` for :class:`Interrupt` objects or plain
    dicts (a dict without ``id`` gets a fresh one; its other fields are
    sent as given). ``ValueError`` unless there are 1 to
    :data:`MAX_INTERRUPTS`, each with a non-empty string ``id`` and
    ``reason``, the ids distinct."""
    objects: List[Dict[str, Any]] = []
    for item in interrupts:
        if isinstance(item, Interrupt):
            fields = item.to_dict()
        elif isinstance(item, Mapping):
            fields = {"id": new_interrupt_id(), **item}
        else:
            raise TypeError(f"an interrupt is an Interrupt or a dict, not {type(item).__name__}")
        for name in ("id", "reason"):
            if not isinstance(fields.get(name), str) or not fields[name]:
                raise ValueError(f"an interrupt's {name} must be a non-empty string: {fields!r}")
        if any(seen["id"] == fields["id"] for seen in objects):
            raise ValueError(f"two interrupts have the id {fields['id']!r}")
        objects.append(fields)
    if not 1 <= len(objects) <= MAX_INTERRUPTS:
        raise ValueError(f"an interrupt event carries 1 to {MAX_INTERRUPTS} interrupts, not {len(objects)}")
    return {"interrupts": objects}
