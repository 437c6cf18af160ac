"""What a resumed run reads (PROTOCOL §8): the answers to the interrupts
its thread's previous run ended with.

A resume is a new job of the same thread whose ``request["resume"]``
holds one entry per interrupt — ``{"interrupt_id", "status": "resolved" |
"cancelled", "payload"}`` — and which also carries the interrupts it
answers as the worker sent them, the interrupted run's session id and its
request. :meth:`Resume.of` pairs each entry with its interrupt
(:class:`Answer`) and reads the two kinds of tool call interrupts the
session's helpers make:

* :class:`Approval` — a person decided whether a tool call may run:
  approved (``{"approved": true}``), or denied (``{"approved": false,
  "reason"?}``, or the interrupt was cancelled);
* :class:`ClientToolResult` — the client ran a tool: its output (the
  entry's payload), unless it cancelled the call.

Either way the call (:class:`~sse_bridge_worker.interrupts.ToolCall`, with
the id the previous run started it with) comes from the interrupt's
``metadata``: the resumed run ends that call, it never starts it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from .interrupts import CLIENT_EXECUTOR, TOOL_CALL_REASON, Interrupt, ToolCall
from .queue import Job

__all__ = ["RESOLVED", "CANCELLED", "Answer", "Approval", "ClientToolResult", "Resume"]

#: The entry answers its interrupt (with its payload).
RESOLVED = "resolved"
#: The entry gives its interrupt up (the client declined, or it expired).
CANCELLED = "cancelled"


@dataclass(frozen=True)
class Answer:
    """One resume entry, with the interrupt it answers (``None`` when the
    job did not carry that interrupt)."""

    interrupt_id: str
    status: str
    payload: Any
    interrupt: Optional[Interrupt]

    @property
    def resolved(self) -> bool:
        return self.status == RESOLVED

    @property
    def cancelled(self) -> bool:
        return self.status == CANCELLED

    @property
    def tool_call(self) -> Optional[ToolCall]:
        """The tool call a ``tool_call`` interrupt is about, else ``None``."""
        if self.interrupt is None or self.interrupt.reason != TOOL_CALL_REASON:
            return None
        return ToolCall.from_interrupt(self.interrupt)


@dataclass(frozen=True)
class Approval:
    """What was decided about a tool call that asked for approval."""

    call: ToolCall
    approved: bool
    #: The person's reason for a denial, if they gave one.
    reason: Optional[str]
    answer: Answer

    @classmethod
    def of(cls, call: ToolCall, answer: Answer) -> "Approval":
        payload = answer.payload if isinstance(answer.payload, dict) else {}
        reason = payload.get("reason")
        reason = reason if isinstance(reason, str) and reason else None
        if answer.cancelled:
            return cls(call, approved=False, reason=reason, answer=answer)
        approved = payload.get("approved")
        if not isinstance(approved, bool):
            raise ValueError(
                f"interrupt {answer.interrupt_id!r} asked to approve {call.name!r}: it is answered with "
                f'{{"approved": true | false, "reason"?: string}} or cancelled, not {answer.payload!r}'
            )
        return cls(call, approved=approved, reason=None if approved else reason, answer=answer)


@dataclass(frozen=True)
class ClientToolResult:
    """What the client answered for a tool it runs."""

    call: ToolCall
    #: The tool's output (the entry's payload); ``None`` when cancelled.
    output: Any
    #: The client did not run the tool.
    cancelled: bool
    answer: Answer


def _match(call: ToolCall, tool_name: Optional[str], tool_call_id: Optional[str]) -> bool:
    return (tool_name is None or call.name == tool_name) and (tool_call_id is None or call.id == tool_call_id)


@dataclass(frozen=True)
class Resume:
    """A resumed run's answers, and the run it continues."""

    thread_id: str
    #: The interrupted run's session id.
    parent_session_id: Optional[str]
    #: The interrupted run's request (its ``user_query``, ...).
    parent_request: Optional[Dict[str, Any]]
    #: One per resume entry, in the client's order.
    answers: Tuple[Answer, ...]

    @classmethod
    def of(cls, job: Job) -> Optional["Resume"]:
        """The job's resume; ``None`` for a run that resumes nothing.
        ``ValueError`` when ``request.resume`` is malformed (the gateway
        checks it, so only a job made by hand can be)."""
        entries = job.request.get("resume")
        if entries is None:
            return None
        thread_id = job.request.get("thread_id")
        if not isinstance(thread_id, str):
            raise ValueError("a resume's request needs a string thread_id")
        if not isinstance(entries, list):
            raise ValueError("request.resume must be an array")
        asked = {
            str(fields.get("id")): Interrupt.from_dict(fields)
            for fields in job.interrupts or []
            if isinstance(fields.get("id"), str) and isinstance(fields.get("reason"), str)
        }
        answers: List[Answer] = []
        for index, entry in enumerate(entries):
            interrupt_id = entry.get("interrupt_id") if isinstance(entry, dict) else None
            status = entry.get("status") if isinstance(entry, dict) else None
            if not isinstance(interrupt_id, str) or status not in (RESOLVED, CANCELLED):
                raise ValueError(
                    f'request.resume[{index}] must be {{"interrupt_id": string, '
                    f'"status": "resolved" | "cancelled", "payload"?: any}}, not {entry!r}'
                )
            answers.append(Answer(interrupt_id, status, entry.get("payload"), asked.get(interrupt_id)))
        return cls(thread_id, job.parent_session_id, job.parent_request, tuple(answers))

    def answer(self, interrupt_id: str) -> Optional[Answer]:
        """The answer to interrupt ``interrupt_id``, if this resume has one."""
        return next((a for a in self.answers if a.interrupt_id == interrupt_id), None)

    @property
    def approvals(self) -> Tuple[Approval, ...]:
        """The decisions about tool calls that asked for approval
        (``ValueError`` if one is answered with something else than a decision)."""
        return tuple(
            Approval.of(call, answer)
            for answer, call in self._tool_calls()
            if call.executor != CLIENT_EXECUTOR
        )

    def approval(
        self, tool_name: Optional[str] = None, *, tool_call_id: Optional[str] = None
    ) -> Optional[Approval]:
        """The first decision about a call of ``tool_name`` (any tool when
        ``None``), or about call ``tool_call_id``; ``None`` if there is none."""
        return next((a for a in self.approvals if _match(a.call, tool_name, tool_call_id)), None)

    @property
    def client_results(self) -> Tuple[ClientToolResult, ...]:
        """What the client answered for the tools it was asked to run."""
        return tuple(
            ClientToolResult(
                call,
                output=answer.payload if answer.resolved else None,
                cancelled=answer.cancelled,
                answer=answer,
            )
            for answer, call in self._tool_calls()
            if call.executor == CLIENT_EXECUTOR
        )

    def client_result(
        self, tool_name: Optional[str] = None, *, tool_call_id: Optional[str] = None
    ) -> Optional[ClientToolResult]:
        """The first client tool result of ``tool_name`` (any tool when
        ``None``), or of call ``tool_call_id``; ``None`` if there is none."""
        return next((r for r in self.client_results if _match(r.call, tool_name, tool_call_id)), None)

    def _tool_calls(self) -> List[Tuple[Answer, ToolCall]]:
        """The answers about tool calls, each with its call."""
        calls = []
        for answer in self.answers:
            call = answer.tool_call
            if call is not None:
                calls.append((answer, call))
        return calls
