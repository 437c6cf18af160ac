"""Pydantic AI (2.x) as an sse-bridge worker: run an ``Agent`` for each
job and stream what it does as the native events (PROTOCOL §2, §8, §9)::

    from sse_bridge_worker import AsyncWorker
    from sse_bridge_worker.adapters.pydantic_ai import pydantic_ai_handler

    worker = AsyncWorker(pydantic_ai_handler(agent), "redis://127.0.0.1:6379")
    asyncio.run(worker.run(handle_signals=True))

The agent runs with ``agent.iter`` on the job's ``user_query``; every
model request and tool round is streamed node by node:

==========================================  ====================================================
Pydantic AI                                 sse-bridge event
==========================================  ====================================================
``ModelRequestNode`` / ``CallToolsNode``    ``AgentStepStart`` / ``AgentStepEnd``
                                            (``model_request`` / ``call_tools``)
``TextPart`` deltas                         ``FinalAnswerStream``
``ThinkingPart`` deltas                     ``AgentThoughtStream``
``ToolCallPart`` args deltas (text)         ``AgentToolCallInputStream`` (the call's id)
``ToolCallPart`` complete                   ``AgentToolCallStart`` (``executor: "client"``
                                            for an external tool)
``FunctionToolResultEvent``                 ``AgentToolCallEnd``: ``output``; ``error`` when
                                            the tool failed or was retried; ``denied: true``
``DeferredToolRequests`` (approvals,        ``interrupt``: one ``tool_call`` interrupt per
external calls)                             call (``tool_call_id`` = the call's id)
the run's ``usage``                         ``Usage`` (once, before the run ends)
an output that is not text                  ``Data {"name": "output", "data": ...}``
==========================================  ====================================================

The deltas (text, thinking, tool-call arguments) are sent with
``session.send``, so those that stream in while an append is in flight go
to Redis in one call; everything else is published (waiting for Redis),
and the run flushes the queue before it returns.

**Human in the loop.** A tool with ``requires_approval=True`` (or one that
raises ``ApprovalRequired``) and an external tool (an ``ExternalToolset``,
or ``CallDeferred``) end the run with an ``interrupt``, one per call, whose
``metadata`` is ``{"tool_name", "tool_input"}`` (plus ``"executor":
"client"`` for an external call). The resumed job turns the answers into
``DeferredToolResults`` — an approval ``True``, a denial
``ToolDenied(reason)``, a client tool's output as the call's result (a
cancelled one as ``ToolFailed``) — and
continues the run from the thread's message history.

**Where the history lives.** In Redis, next to the gateway's thread
record: ``sse_pydantic_ai:{<thread_id>}`` holds the thread's messages
(``ModelMessagesTypeAdapter`` JSON) and the id of the session that saved
them, with a TTL (``history_ttl``, 24 h like the gateway's ``thread_ttl``).
It is written after every run of a thread (before its ``interrupt`` is
published, so a resume always finds it), read by the next run: a resume
continues the interrupted run (and refuses a history saved by another
session), a plain run continues the conversation (the calls of an
interrupt left unanswered closed out by ``repair_messages``). A run without a
``thread_id`` keeps nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, Set

try:
    from pydantic_ai import (
        Agent,
        DeferredToolRequests,
        DeferredToolResults,
        ModelMessagesTypeAdapter,
        ToolDenied,
        ToolFailed,
    )
    from pydantic_ai.messages import (
        FunctionToolCallEvent,
        FunctionToolResultEvent,
        ModelMessage,
        PartDeltaEvent,
        PartEndEvent,
        PartStartEvent,
        TextPart,
        TextPartDelta,
        ThinkingPart,
        ThinkingPartDelta,
        ToolCallPart,
        ToolCallPartDelta,
        repair_messages,
    )
except ImportError as missing:  # pragma: no cover - the extra is not installed
    raise ImportError(
        "the Pydantic AI adapter needs pydantic-ai: pip install 'sse-bridge-worker[pydantic-ai]'"
    ) from missing
from pydantic_core import to_jsonable_python

from ..interrupts import CLIENT_EXECUTOR, Interrupt, ToolCall
from ..resume import Resume
from ..session import AsyncSession

__all__ = ["RedisHistory", "pydantic_ai_handler", "history_key"]

#: How long a thread's history is kept (the gateway's default ``thread_ttl``).
DEFAULT_HISTORY_TTL = 24 * 3600

#: Step names of the two kinds of graph nodes that do something.
MODEL_REQUEST_STEP = "model_request"
CALL_TOOLS_STEP = "call_tools"


def history_key(thread_id: str) -> str:
    """The Redis key of a thread's Pydantic AI history (hash-tagged by the
    thread id, like the gateway's ``sse_thread:{thread_id}`` in cluster mode)."""
    return f"sse_pydantic_ai:{{{thread_id}}}"


@dataclass(frozen=True)
class SavedHistory:
    """A thread's messages and the session whose run saved them."""

    session_id: str
    messages: List[ModelMessage]


class RedisHistory:
    """Keeps each thread's message history in the worker's Redis (the
    connection the session publishes on), as JSON with a TTL."""

    def __init__(self, ttl: int = DEFAULT_HISTORY_TTL) -> None:
        self.ttl = ttl

    async def load(self, session: AsyncSession, thread_id: str) -> Optional[SavedHistory]:
        raw = await session._redis.get(history_key(thread_id))  # the worker's own connection
        if raw is None:
            return None
        saved = json.loads(raw)
        messages = ModelMessagesTypeAdapter.validate_python(saved["messages"])
        return SavedHistory(saved["session_id"], list(messages))

    async def save(self, session: AsyncSession, thread_id: str, messages: Sequence[ModelMessage]) -> None:
        document = {
            "session_id": session.session_id,
            "messages": json.loads(ModelMessagesTypeAdapter.dump_json(list(messages))),
        }
        await session._redis.set(history_key(thread_id), json.dumps(document), ex=self.ttl)


#: What the agent is asked: the job's ``user_query`` by default.
PromptOf = Callable[[AsyncSession], Optional[str]]
#: The interrupt's ``message`` for a call that needs approval.
ApprovalMessage = Callable[[ToolCallPart], Optional[str]]


def _default_prompt(session: AsyncSession) -> Optional[str]:
    query = session.request.get("user_query")
    return query if isinstance(query, str) else None


def _default_approval_message(call: ToolCallPart) -> str:
    return f"Allow {call.tool_name}?"


def _jsonable(value: Any) -> Any:
    try:
        return to_jsonable_python(value)
    except Exception:  # noqa: BLE001 - anything that does not serialize becomes text
        return str(value)


def _tool_input(part: ToolCallPart) -> Any:
    try:
        return part.args_as_dict()
    except Exception:  # noqa: BLE001 - arguments that are not JSON are sent as they are
        return part.args


@dataclass
class _Run:
    """The mapping of one agent run to one session's events."""

    session: AsyncSession
    approval_message: ApprovalMessage
    #: Calls whose ``AgentToolCallStart`` went out in this run.
    started: Dict[str, ToolCall] = field(default_factory=dict)
    #: Calls the resume answered for the client: their ends are the client's.
    client_calls: Set[str] = field(default_factory=set)
    #: Calls an earlier run started (ended here, never started again).
    resumed_calls: Dict[str, ToolCall] = field(default_factory=dict)
    step: Optional[str] = None
    model_name: Optional[str] = None

    async def open_step(self, name: str) -> None:
        if self.step != name:
            await self.close_step()
            await self.session.publish("AgentStepStart", {"name": name})
            self.step = name

    async def close_step(self) -> None:
        if self.step is not None:
            await self.session.publish("AgentStepEnd", {"name": self.step})
            self.step = None

    def tool_kind(self, run: Any, name: str) -> Optional[str]:
        """``function``, ``output``, ``external``, ``unapproved`` (Pydantic
        AI's ``ToolDefinition.kind``), ``None`` when unknown."""
        try:
            tool_def = run.ctx.deps.tool_manager.get_tool_def(name)
        except Exception:  # noqa: BLE001 - an internal API: unknown is a function tool
            return None
        return getattr(tool_def, "kind", None) if tool_def is not None else None

    async def model_event(self, run: Any, event: Any, parts: Dict[int, Any]) -> None:
        """One event of a model response's stream."""
        if isinstance(event, PartStartEvent):
            parts[event.index] = event.part
            part = event.part
            if isinstance(part, TextPart) and part.content:
                await self.session.send("FinalAnswerStream", {"char": part.content})
            elif isinstance(part, ThinkingPart) and part.content:
                await self.session.send("AgentThoughtStream", {"char": part.content})
            elif isinstance(part, ToolCallPart):
                await self.tool_input(run, part, part.args)
        elif isinstance(event, PartDeltaEvent):
            delta = event.delta
            if isinstance(delta, TextPartDelta) and delta.content_delta:
                await self.session.send("FinalAnswerStream", {"char": delta.content_delta})
            elif isinstance(delta, ThinkingPartDelta) and delta.content_delta:
                await self.session.send("AgentThoughtStream", {"char": delta.content_delta})
            elif isinstance(delta, ToolCallPartDelta):
                call = parts.get(event.index)
                if isinstance(call, ToolCallPart):
                    if delta.tool_call_id and delta.tool_call_id != call.tool_call_id:
                        call = replace(call, tool_call_id=delta.tool_call_id)
                        parts[event.index] = call
                    await self.tool_input(run, call, delta.args_delta)
        elif isinstance(event, PartEndEvent) and isinstance(event.part, ToolCallPart):
            await self.tool_start(run, event.part)

    async def tool_input(self, run: Any, part: ToolCallPart, delta: Any) -> None:
        """A piece of a call's arguments, as the model writes them."""
        if not isinstance(delta, str) or not delta or not part.tool_call_id:
            return  # arguments given whole (a dict): the start carries them
        if self.tool_kind(run, part.tool_name) == "output":
            return
        await self.session.send(
            "AgentToolCallInputStream",
            {"tool_call_id": part.tool_call_id, "tool_name": part.tool_name, "delta": delta},
        )

    async def tool_start(self, run: Any, part: ToolCallPart) -> None:
        kind = self.tool_kind(run, part.tool_name)
        if kind == "output" or part.tool_call_id in self.started:
            return
        executor = CLIENT_EXECUTOR if kind == "external" else None
        call = ToolCall(part.tool_name, _tool_input(part), part.tool_call_id, executor=executor)
        await self.session.publish("AgentToolCallStart", call.start_payload())
        self.started[call.id] = call

    async def tools_event(self, run: Any, event: Any) -> None:
        """One event of a tool round."""
        if isinstance(event, FunctionToolCallEvent):
            call_id = event.part.tool_call_id
            if call_id not in self.started and call_id not in self.resumed_calls:
                await self.open_step(CALL_TOOLS_STEP)
                await self.tool_start(run, event.part)
        elif isinstance(event, FunctionToolResultEvent):
            part = event.part
            call_id = part.tool_call_id
            if call_id in self.client_calls:
                return  # the client ran it and has its output
            call = self.started.get(call_id) or self.resumed_calls.get(call_id)
            if call is None:
                call = ToolCall(part.tool_name, None, call_id)
            await self.open_step(CALL_TOOLS_STEP)
            outcome = getattr(part, "outcome", "success")
            if outcome == "denied":
                payload = call.denied_payload(_text(part.content))
            elif outcome == "success":
                payload = call.end_payload(_jsonable(part.content))
            else:  # failed, retried, interrupted
                payload = call.error_payload(_text(part.content) or outcome)
            await self.session.publish("AgentToolCallEnd", payload)

    def interrupts(self, requests: DeferredToolRequests) -> List[Interrupt]:
        """One ``tool_call`` interrupt per deferred call."""
        asked: List[Interrupt] = []
        for part, executor in [(p, None) for p in requests.approvals] + [
            (p, CLIENT_EXECUTOR) for p in requests.calls
        ]:
            known = self.started.get(part.tool_call_id)
            call = ToolCall(
                part.tool_name,
                known.input if known is not None else _tool_input(part),
                part.tool_call_id,
                executor=executor,
            )
            message = self.approval_message(part) if executor is None else None
            interrupt = call.interrupt(message)
            extra = requests.metadata.get(part.tool_call_id)
            if extra:
                metadata = dict(interrupt.metadata or {})
                metadata["deferred_metadata"] = _jsonable(extra)
                interrupt = Interrupt(
                    interrupt.reason,
                    id=interrupt.id,
                    message=interrupt.message,
                    tool_call_id=interrupt.tool_call_id,
                    metadata=metadata,
                )
            asked.append(interrupt)
        return asked

    async def usage(self, run: Any) -> None:
        usage = run.usage
        if not usage.requests and not usage.input_tokens and not usage.output_tokens:
            return
        payload: Dict[str, Any] = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
        reasoning = (usage.details or {}).get("reasoning_tokens")
        if reasoning:
            payload["reasoning_tokens"] = reasoning
        if self.model_name:
            payload["model"] = self.model_name
        await self.session.publish("Usage", payload)


def _text(content: Any) -> str:
    return content if isinstance(content, str) else json.dumps(_jsonable(content))


def _deferred_results(resume: Resume) -> tuple[DeferredToolResults, Set[str], Dict[str, ToolCall]]:
    """The answers as ``DeferredToolResults``, the ids of the client tools'
    calls, and every call the resume is about."""
    results = DeferredToolResults()
    client_calls: Set[str] = set()
    calls: Dict[str, ToolCall] = {}
    for approval in resume.approvals:
        calls[approval.call.id] = approval.call
        results.approvals[approval.call.id] = (
            True if approval.approved else ToolDenied(approval.reason or "The tool call was denied.")
        )
    for result in resume.client_results:
        calls[result.call.id] = result.call
        client_calls.add(result.call.id)
        results.calls[result.call.id] = (
            ToolFailed("The client did not run the tool.") if result.cancelled else result.output
        )
    return results, client_calls, calls


def pydantic_ai_handler(
    agent: Agent[Any, Any],
    *,
    deps: Optional[Callable[[AsyncSession], Any]] = None,
    prompt: PromptOf = _default_prompt,
    approval_message: ApprovalMessage = _default_approval_message,
    history: Optional[RedisHistory] = None,
    **run_options: Any,
) -> Callable[[AsyncSession], Awaitable[None]]:
    """A handler for :class:`~sse_bridge_worker.AsyncWorker` that runs
    ``agent`` for each job.

    ``deps(session)`` makes the run's dependencies; ``prompt(session)`` the
    user prompt (the job's ``user_query``); ``approval_message(call)`` the
    interrupt's message for a call awaiting approval; ``history`` where the
    threads' histories live (:class:`RedisHistory`); other keyword arguments
    go to ``agent.iter`` (``model``, ``model_settings``, ``usage_limits``, ...).
    ``DeferredToolRequests`` is added to the agent's output types unless it
    is among them already.
    """
    store = history if history is not None else RedisHistory()
    output_type = agent.output_type
    types = output_type if isinstance(output_type, (list, tuple)) else [output_type]
    if DeferredToolRequests not in types:
        run_options.setdefault("output_type", [*types, DeferredToolRequests])

    async def handle(session: AsyncSession) -> None:
        mapping = _Run(session, approval_message)
        thread_id = session.thread_id
        saved = await store.load(session, thread_id) if thread_id is not None else None
        resume = session.resume
        deferred: Optional[DeferredToolResults] = None
        user_prompt: Optional[str] = prompt(session)
        if resume is not None:
            if saved is None or saved.session_id != resume.parent_session_id:
                raise RuntimeError(
                    f"thread {thread_id!r} has no Pydantic AI history of the interrupted run "
                    f"{resume.parent_session_id!r} (expired, or saved by another run)"
                )
            deferred, mapping.client_calls, mapping.resumed_calls = _deferred_results(resume)
            user_prompt = None  # the run continues where it stopped
        message_history = saved.messages if saved is not None else None
        if message_history and resume is None:
            # A plain run after an interrupt nobody answered (the gateway
            # abandoned it): its calls are closed out before the new prompt.
            message_history = repair_messages(message_history)

        async with agent.iter(
            user_prompt,
            message_history=message_history,
            deferred_tool_results=deferred,
            deps=deps(session) if deps is not None else None,
            **run_options,
        ) as run:
            async for node in run:
                if Agent.is_model_request_node(node):
                    await mapping.open_step(MODEL_REQUEST_STEP)
                    parts: Dict[int, Any] = {}
                    async with node.stream(run.ctx) as stream:
                        async for event in stream:
                            await mapping.model_event(run, event, parts)
                        mapping.model_name = stream.response.model_name or mapping.model_name
                    await mapping.close_step()
                elif Agent.is_call_tools_node(node):
                    async with node.stream(run.ctx) as stream:
                        async for event in stream:
                            await mapping.tools_event(run, event)
                    await mapping.close_step()
            result = run.result
            assert result is not None
            await mapping.usage(run)
            if thread_id is not None:
                await store.save(session, thread_id, result.all_messages())
            output = result.output
            if isinstance(output, DeferredToolRequests):
                await session.interrupt(mapping.interrupts(output))
            elif not isinstance(output, str):
                await session.publish("Data", {"name": "output", "data": _jsonable(output)})
        # The deltas were sent (queued): the run is over once they are logged.
        await session.flush()

    return handle
