"""OpenAI Agents SDK adapter: an ``agents.Agent`` as the worker of a job.

::

    from agents import Agent
    from sse_bridge_worker import AsyncWorker
    from sse_bridge_worker.adapters.openai_agents import openai_agents_handler

    agent = Agent(name="assistant", instructions="...", tools=[...])
    asyncio.run(AsyncWorker(openai_agents_handler(agent), redis_url).run(handle_signals=True))

For each job the handler runs ``Runner.run_streamed(agent, user_query)``
and maps the run's stream events to the native events (PROTOCOL §2, §8,
§9):

* raw ``response.output_text.delta`` (and ``refusal.delta``) →
  ``FinalAnswerStream``; ``response.reasoning_summary_text.delta`` /
  ``reasoning_text.delta`` → ``AgentThoughtStream``;
* ``response.function_call_arguments.delta`` →
  ``AgentToolCallInputStream`` (``tool_call_id`` = the model's
  ``call_id``); the ``tool_called`` item → ``AgentToolCallStart`` (same
  id, the parsed arguments); ``tool_output`` → ``AgentToolCallEnd`` (same
  id). Handoffs are tool calls too (``handoff_requested`` /
  ``handoff_occured``);
* every model call (``response.created``) is a step:
  ``AgentStepStart {"name": <the agent running>}``, ended by the next one
  or the run's end (``AgentStepEnd``); an agent update (a handoff) names
  the following steps;
* the ``usage`` of each ``response.completed``, summed over this run →
  one ``Usage`` before the run ends;
* a tool that needs approval (``needs_approval``) ends the run with
  ``result.interruptions``: each ``ToolApprovalItem`` becomes an
  ``interrupt`` (reason ``tool_call``, the call's id) after the call's
  ``AgentToolCallStart``. The run state (``result.to_state()``) is kept in
  Redis under ``sse_oai_run_state:{thread_id}`` (TTL one day, like the
  gateway's thread record) — so the request needs a ``thread_id`` (AG-UI
  and AI SDK requests always have one). The resumed job loads it,
  ``state.approve(item)`` / ``state.reject(item, rejection_message=reason)``
  per answer, and runs on from there; the approved call's output, or its
  denial (``denied: true``), ends the call the interrupted run started.
  The state is deleted when a resumed run finishes.
* cancel (the client left) cancels the handler's task, which cancels the
  SDK's run (``result.cancel()``): no more model calls or tools.

Text, reasoning and argument deltas are sent with ``session.send`` (those
that stream in while an append is in flight go to Redis in one call); the
other events are published (waiting for Redis), and the run flushes the
queue before it returns.

``state_store=`` replaces the Redis store (anything with async ``save``,
``load``, ``delete``; see :class:`RedisRunStateStore`).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable, Dict, List, Optional, Protocol, Set, Tuple

from agents import Agent, Runner, RunState
from agents.items import ToolApprovalItem
from agents.stream_events import AgentUpdatedStreamEvent, RawResponsesStreamEvent, RunItemStreamEvent

from ..interrupts import Interrupt, ToolCall
from ..session import AsyncSession

__all__ = ["RedisRunStateStore", "RunStateStore", "openai_agents_handler", "STATE_KEY_PREFIX"]

log = logging.getLogger(__name__)

#: Where the default store keeps an interrupted run's state: ``<prefix><thread_id>``.
STATE_KEY_PREFIX = "sse_oai_run_state:"
#: How long an interrupted run's state is kept (the gateway's default thread TTL).
STATE_TTL = 24 * 3600

_TEXT_DELTAS = {"response.output_text.delta", "response.refusal.delta"}
_REASONING_DELTAS = {"response.reasoning_summary_text.delta", "response.reasoning_text.delta"}


class RunStateStore(Protocol):
    """Keeps an interrupted run's record (a JSON-able dict) per thread."""

    async def save(self, thread_id: str, record: Dict[str, Any]) -> None: ...

    async def load(self, thread_id: str) -> Optional[Dict[str, Any]]: ...

    async def delete(self, thread_id: str) -> None: ...


class RedisRunStateStore:
    """The default store: ``SET sse_oai_run_state:{thread_id} <json> EX ttl``.

    ``client`` is a ``redis.asyncio.Redis``; ``None`` uses the worker's own
    connection (the handler's session's)."""

    def __init__(self, client: Any = None, *, prefix: str = STATE_KEY_PREFIX, ttl: int = STATE_TTL) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl = ttl

    def bound(self, client: Any) -> "RedisRunStateStore":
        return self if self.client is not None else RedisRunStateStore(client, prefix=self.prefix, ttl=self.ttl)

    async def save(self, thread_id: str, record: Dict[str, Any]) -> None:
        await self.client.set(self.prefix + thread_id, json.dumps(record), ex=self.ttl)

    async def load(self, thread_id: str) -> Optional[Dict[str, Any]]:
        raw = await self.client.get(self.prefix + thread_id)
        return None if raw is None else json.loads(raw)

    async def delete(self, thread_id: str) -> None:
        await self.client.delete(self.prefix + thread_id)


def openai_agents_handler(
    agent: Agent[Any],
    *,
    input: Optional[Callable[[AsyncSession], Any]] = None,
    state_store: Optional[RunStateStore] = None,
    approval_message: Optional[Callable[[ToolApprovalItem], str]] = None,
    **run_options: Any,
) -> Callable[[AsyncSession], Awaitable[None]]:
    """A handler for :class:`~sse_bridge_worker.AsyncWorker` that runs
    ``agent`` for each job (see the module's docs for the mapping).

    ``input(session)`` gives the run's input (default: the request's
    ``user_query``); ``approval_message(item)`` the interrupt's message for
    a tool approval; ``run_options`` go to ``Runner.run_streamed``
    (``context``, ``max_turns``, ``run_config``, ``hooks``, ``session``, ...).
    """
    store = state_store if state_store is not None else RedisRunStateStore()

    async def handle(session: AsyncSession) -> None:
        bound = store.bound(_redis_of(session)) if isinstance(store, RedisRunStateStore) else store
        run = _Run(session, bound, approval_message or _default_message)
        if session.resume is not None:
            await run.resume(agent, run_options)
        else:
            query = input(session) if input is not None else session.request.get("user_query", "")
            await run.stream(Runner.run_streamed(agent, query, **run_options))
        # The deltas were sent (queued): the run is over once they are logged.
        await session.flush()

    return handle


def _redis_of(session: AsyncSession) -> Any:
    client = getattr(session, "_redis", None)
    if client is None:
        raise TypeError(
            "openai_agents_handler runs under AsyncWorker (an asyncio session); "
            "or pass state_store= a store of your own"
        )
    return client


def _default_message(item: ToolApprovalItem) -> str:
    arguments = getattr(item.raw_item, "arguments", None)
    return f"Allow {item.tool_name}({arguments or ''})?"


def _jsonable(value: Any) -> Any:
    """``value`` if it is JSON, a pydantic model's JSON dump, else its text."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        pass
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json")
        except Exception:  # noqa: BLE001 — fall back to the text
            pass
    return str(value)


def _field(raw: Any, name: str) -> Any:
    return raw.get(name) if isinstance(raw, dict) else getattr(raw, name, None)


def _arguments(raw: Any) -> Any:
    """A function call's arguments, parsed when they are JSON."""
    arguments = _field(raw, "arguments")
    if not isinstance(arguments, str):
        return arguments
    try:
        return json.loads(arguments) if arguments else {}
    except ValueError:
        return arguments


class _Run:
    """One run's mapping of stream events to native events."""

    def __init__(
        self, session: AsyncSession, store: RunStateStore, approval_message: Callable[[ToolApprovalItem], str]
    ) -> None:
        self.session = session
        self.store = store
        self.approval_message = approval_message
        self.agent_name = "agent"
        self.step: Optional[str] = None
        # Function calls being streamed: output item id → (call_id, name).
        self.items: Dict[str, Tuple[str, str]] = {}
        # Calls this run (or the interrupted one) started: call_id → name.
        self.started: Dict[str, str] = {}
        # Calls the resumed run rejected: call_id → the person's reason.
        self.denied: Dict[str, Optional[str]] = {}
        # Output items whose text / reasoning arrived as deltas.
        self.streamed_text: Set[str] = set()
        self.streamed_reasoning: Set[str] = set()
        self.usage: Dict[str, int] = {}
        self.model: Optional[str] = None
        self.resumed = False

    # -- resume -----------------------------------------------------------

    async def resume(self, agent: Agent[Any], run_options: Dict[str, Any]) -> None:
        session = self.session
        resume = session.resume
        assert resume is not None
        thread_id = resume.thread_id
        record = await self.store.load(thread_id)
        if record is None:
            raise RuntimeError(
                f"no saved run state for thread {thread_id!r} (expired, or kept by another store)"
            )
        answered = {answer.interrupt_id for answer in resume.answers}
        if not set(record.get("interrupts", {})) <= answered:
            raise RuntimeError(
                f"the saved run state of thread {thread_id!r} waits for interrupts "
                f"{sorted(record.get('interrupts', {}))}, the resume answers {sorted(answered)}"
            )
        options = dict(run_options)
        context = options.pop("context", None)
        state = await RunState.from_string(
            agent, record["state"], **({"context_override": context} if context is not None else {})
        )
        for item in state.get_interruptions():
            call_id = _field(item.raw_item, "call_id") or _field(item.raw_item, "id")
            approval = resume.approval(tool_call_id=call_id)
            if approval is None:
                raise RuntimeError(f"the resume does not decide the pending call {call_id!r} ({item.tool_name})")
            self.started[call_id] = approval.call.name
            if approval.approved:
                state.approve(item)
            else:
                self.denied[call_id] = approval.reason
                state.reject(item, rejection_message=approval.reason)
        for call_id, name in record.get("started", {}).items():
            self.started.setdefault(call_id, name)
        self.resumed = True
        await self.stream(Runner.run_streamed(agent, state, **options))

    # -- the run ----------------------------------------------------------

    async def stream(self, result: Any) -> None:
        try:
            async for event in result.stream_events():
                await self.on_event(event)
        finally:
            if not result.is_complete:
                # Cancelled (the client left) or failed here: stop the SDK's run task too.
                result.cancel()
        await self.end_step()
        if self.usage:
            usage: Dict[str, Any] = dict(self.usage)
            if self.model:
                usage["model"] = self.model
            await self.session.publish("Usage", usage)
        if result.interruptions:
            await self.interrupt(result)
        elif self.resumed:
            await self.store.delete(self.session.thread_id or "")

    async def interrupt(self, result: Any) -> None:
        session = self.session
        thread_id = session.thread_id
        if thread_id is None:
            names = ", ".join(str(item.tool_name) for item in result.interruptions)
            raise RuntimeError(
                f"the agent asks for approval ({names}) but the request has no thread_id to resume on"
            )
        asked: List[Interrupt] = []
        for item in result.interruptions:
            call_id = _field(item.raw_item, "call_id") or _field(item.raw_item, "id")
            call = ToolCall(str(item.tool_name), _jsonable(_arguments(item.raw_item)), call_id)
            if call_id not in self.started:
                await session.publish("AgentToolCallStart", call.start_payload())
                self.started[call_id] = call.name
            asked.append(call.interrupt(self.approval_message(item)))
        record = {
            "state": result.to_state().to_string(),
            "interrupts": {i.id: i.tool_call_id for i in asked},
            "started": self.started,
            "session_id": session.session_id,
        }
        # Saved before the interrupt is published: a resume can only follow it.
        await self.store.save(thread_id, record)
        await session.interrupt(asked)

    async def end_step(self) -> None:
        if self.step is not None:
            await self.session.publish("AgentStepEnd", {"name": self.step})
            self.step = None

    async def on_event(self, event: Any) -> None:
        if isinstance(event, AgentUpdatedStreamEvent):
            self.agent_name = event.new_agent.name
        elif isinstance(event, RawResponsesStreamEvent):
            await self.on_raw(event.data)
        elif isinstance(event, RunItemStreamEvent):
            await self.on_item(event.name, event.item)

    async def on_raw(self, data: Any) -> None:
        kind = getattr(data, "type", None)
        session = self.session
        if kind == "response.created":
            await self.end_step()
            self.step = self.agent_name
            await session.publish("AgentStepStart", {"name": self.step})
        elif kind in _TEXT_DELTAS:
            if data.delta:
                self.streamed_text.add(data.item_id)
                await session.send("FinalAnswerStream", {"char": data.delta})
        elif kind in _REASONING_DELTAS:
            if data.delta:
                self.streamed_reasoning.add(data.item_id)
                await session.send("AgentThoughtStream", {"char": data.delta})
        elif kind == "response.output_item.added":
            item = data.item
            if getattr(item, "type", None) == "function_call":
                self.items[item.id or item.call_id] = (item.call_id, item.name)
                if item.arguments:
                    await self.tool_input(item.id or item.call_id, item.arguments)
        elif kind == "response.function_call_arguments.delta":
            if data.delta:
                await self.tool_input(data.item_id, data.delta)
        elif kind == "response.completed":
            usage = getattr(data.response, "usage", None)
            if usage is not None:
                self.add_usage("input_tokens", usage.input_tokens)
                self.add_usage("output_tokens", usage.output_tokens)
                details = getattr(usage, "output_tokens_details", None)
                reasoning = getattr(details, "reasoning_tokens", None)
                if reasoning:
                    self.add_usage("reasoning_tokens", reasoning)
            self.model = getattr(data.response, "model", None) or self.model

    def add_usage(self, name: str, tokens: Optional[int]) -> None:
        if tokens is not None:
            self.usage[name] = self.usage.get(name, 0) + tokens

    async def tool_input(self, item_id: str, delta: str) -> None:
        known = self.items.get(item_id)
        if known is None:
            return
        call_id, name = known
        await self.session.send(
            "AgentToolCallInputStream", {"tool_call_id": call_id, "tool_name": name, "delta": delta}
        )

    async def on_item(self, name: str, item: Any) -> None:
        session = self.session
        raw = item.raw_item
        if name in ("tool_called", "handoff_requested"):
            call_id = _field(raw, "call_id") or _field(raw, "id")
            if not call_id or call_id in self.started:
                return
            tool_name = _field(raw, "name") or _field(raw, "type") or "tool"
            call = ToolCall(str(tool_name), _jsonable(_arguments(raw)), call_id)
            await session.publish("AgentToolCallStart", call.start_payload())
            self.started[call_id] = call.name
            if _field(raw, "type") not in ("function_call", "custom_tool_call"):
                # A hosted tool (web search, file search, ...): its item is its result.
                del self.started[call_id]
                await session.publish("AgentToolCallEnd", call.end_payload(_jsonable(raw)))
        elif name in ("tool_output", "handoff_occured"):
            call_id = _field(raw, "call_id")
            if not call_id:
                return
            call = ToolCall(self.started.pop(call_id, "tool"), None, call_id)
            if call_id in self.denied:
                await session.publish("AgentToolCallEnd", call.denied_payload(self.denied.pop(call_id)))
            else:
                output = getattr(item, "output", None)
                if output is None:
                    output = _field(raw, "output")
                await session.publish("AgentToolCallEnd", call.end_payload(_jsonable(output)))
        elif name == "message_output_created":
            item_id = _field(raw, "id")
            if item_id not in self.streamed_text:
                # A model that did not stream its text: the whole message at once.
                for part in _field(raw, "content") or []:
                    text = _field(part, "text") or _field(part, "refusal")
                    if text:
                        await session.send("FinalAnswerStream", {"char": text})
        elif name == "reasoning_item_created":
            item_id = _field(raw, "id")
            if item_id not in self.streamed_reasoning:
                for part in _field(raw, "summary") or []:
                    text = _field(part, "text")
                    if text:
                        await session.send("AgentThoughtStream", {"char": text})
        else:
            log.debug("session %s: %s not mapped", session.session_id, name)
