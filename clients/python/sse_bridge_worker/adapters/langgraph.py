"""LangGraph adapter: a compiled LangGraph graph is the worker of a job.

::

    graph = builder.compile(checkpointer=checkpointer)   # shared by all workers
    worker = AsyncWorker(langgraph_handler(graph), "redis://127.0.0.1:6379")
    asyncio.run(worker.run(handle_signals=True))

For each job the handler streams the graph on the checkpointer thread named
by the session's ``thread_id`` (the session id when the request has none)
with ``stream_mode`` ``messages``, ``updates``, ``custom``, ``tasks`` and
``values``, subgraphs included, and publishes (PROTOCOL §2, §8, §9):

* model tokens → ``FinalAnswerStream``; reasoning (``reasoning`` /
  ``thinking`` content blocks, ``additional_kwargs["reasoning_content"]``)
  → ``AgentThoughtStream``;
* tool call chunks → ``AgentToolCallInputStream`` (the model's call id),
  then ``AgentToolCallStart`` once the model's message is complete (its
  parsed ``tool_calls``); a ``ToolMessage`` → ``AgentToolCallEnd`` with
  the same id (``error`` when its status is ``"error"``; ``denied: true``
  for a call a person denied on resume);
* the top graph's nodes → ``AgentStepStart`` (at the node's first event:
  a node that publishes nothing is no step) / ``AgentStepEnd``;
* custom writes (``get_stream_writer()``) → ``Data`` (``{"name", "data",
  "id"?, "transient"?}`` as is; anything else as ``{"name": "custom",
  "data": ...}``; ``{"event_type": "Source" | "File" | ..., "payload"}``
  is published as that event);
* the top graph's state → ``StateSnapshot`` first, then ``StateDelta``
  (RFC 6902 ops computed here) after each step (``state="snapshot"``:
  a snapshot each time; ``state=None``: neither);
* a model message's ``usage_metadata`` → ``Usage``;
* a graph ``interrupt()`` → the terminal ``interrupt`` event, one
  interrupt per LangGraph interrupt with LangGraph's id (see
  :func:`interrupt_of` for the value's fields), and the run ends.

Model tokens, reasoning and tool call chunks are sent with ``session.send``
(those that stream in while an append is in flight go to Redis in one
call); the other events are published (waiting for Redis), and the run
flushes the queue before it returns.

A resumed job (``session.resume``) continues the thread with
``Command(resume={interrupt_id: value})`` (see :func:`resume_values`).
Cancel stops the run: the kit cancels the handler's task, which stops the
graph's stream (the thread keeps its last checkpoint).
"""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from typing import Any, Awaitable, Callable, Dict, Iterator, List, Mapping, Optional, Set, Tuple, Union

try:
    from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
    from langgraph.types import Command
    from langgraph.types import Interrupt as GraphInterrupt
except ImportError as missing:  # pragma: no cover - depends on the install
    raise ImportError(
        "the LangGraph adapter needs langgraph: pip install 'sse-bridge-worker[langgraph]'"
    ) from missing

from ..interrupts import CLIENT_EXECUTOR, TOOL_CALL_REASON, Interrupt, ToolCall
from ..resume import Approval, Resume
from ..session import AsyncSession

__all__ = ["default_input", "interrupt_of", "json_patch", "jsonable", "langgraph_handler", "resume_values"]

#: What the handler streams: the modes it maps.
STREAM_MODES = ["messages", "updates", "custom", "tasks", "values"]
#: Custom writes published as the event they name.
PASSED_EVENTS = {"Source", "File", "Data", "Usage", "StateSnapshot", "StateDelta"}

GraphInput = Callable[[AsyncSession], Any]
ResumeValues = Callable[[Resume], Any]
Config = Union[Mapping[str, Any], Callable[[AsyncSession], Mapping[str, Any]], None]


def default_input(session: AsyncSession) -> Dict[str, Any]:
    """The graph's input for a new run: the request's ``user_query`` as a
    user message (``MessagesState``)."""
    return {"messages": [{"role": "user", "content": session.request.get("user_query", "")}]}


def resume_values(resume: Resume) -> Dict[str, Any]:
    """``Command(resume=...)`` for a resumed run: ``{interrupt_id: value}``.

    An answer to an interrupt about a tool call (one with a
    ``tool_call_id``, not a client tool) is the decision ``{"approved":
    bool, "reason"?: str}`` (a cancelled one is a denial); any other answer
    is its payload (``None`` when cancelled)."""
    values: Dict[str, Any] = {}
    for answer in resume.answers:
        call = answer.tool_call
        if call is not None and call.executor != CLIENT_EXECUTOR:
            approval = Approval.of(call, answer)
            decision: Dict[str, Any] = {"approved": approval.approved}
            if approval.reason is not None:
                decision["reason"] = approval.reason
            values[answer.interrupt_id] = decision
        else:
            values[answer.interrupt_id] = answer.payload if answer.resolved else None
    return values


def langgraph_handler(
    graph: Any,
    *,
    input: GraphInput = default_input,
    resume: ResumeValues = resume_values,
    config: Config = None,
    state: Optional[str] = "delta",
) -> Callable[[AsyncSession], Awaitable[None]]:
    """An :class:`~sse_bridge_worker.AsyncWorker` handler that runs the
    compiled ``graph`` for each job.

    ``input(session)`` makes a new run's input (:func:`default_input`);
    ``resume(session.resume)`` a resumed run's ``Command(resume=...)``
    value (:func:`resume_values`); ``config`` (or ``config(session)``) is
    merged into the run's ``RunnableConfig`` (``recursion_limit``,
    ``configurable`` keys, ...; the thread id is the session's). ``state``:
    ``"delta"`` (a snapshot, then deltas), ``"snapshot"`` (a snapshot after
    every step) or ``None``.

    The graph needs a checkpointer to be interrupted and resumed; every
    worker that may take the resumed job must see the same one (a Redis or
    Postgres checkpointer; ``InMemorySaver`` only within one process).
    """
    if state not in ("delta", "snapshot", None):
        raise ValueError(f'state is "delta", "snapshot" or None, not {state!r}')

    async def handle(session: AsyncSession) -> None:
        extra = config(session) if callable(config) else dict(config or {})
        await _Run(session, graph, state).run(input, resume, extra)

    return handle


class _Run:
    """One run of the graph for one session: the stream's parts, mapped."""

    def __init__(self, session: AsyncSession, graph: Any, state: Optional[str]) -> None:
        self.session = session
        self.graph = graph
        self.state_mode = state
        self.state: Any = _NOTHING
        # Tool calls by id: started (AgentToolCallStart sent, here or by the
        # interrupted run) and ended.
        self.calls: Dict[str, ToolCall] = {}
        self.started: Set[str] = set()
        self.ended: Set[str] = set()
        # (message id, chunk index) -> tool call id of a streaming call.
        self.chunk_calls: Dict[Tuple[Any, Any], str] = {}
        # Messages whose text/usage was already published (or that the
        # thread held before this run).
        self.seen_messages: Set[str] = set()
        self.usage_sent: Set[str] = set()
        self.chunk_usage: Dict[str, Dict[str, Any]] = {}
        self.interrupts: Dict[str, GraphInterrupt] = {}
        # Calls a person denied (resumed run): id -> reason.
        self.denied: Dict[str, Optional[str]] = {}
        # Top-level nodes running (tasks by name: parallel tasks of one
        # node, e.g. ``Send``s, are one step), those without an event yet,
        # and those whose AgentStepStart was sent.
        self.running_tasks: Dict[str, int] = {}
        self.pending_steps: List[str] = []
        self.open_steps: List[str] = []

    async def run(self, make_input: GraphInput, make_resume: ResumeValues, extra: Mapping[str, Any]) -> None:
        session = self.session
        thread_id = session.thread_id or session.session_id
        config: Dict[str, Any] = dict(extra)
        config["configurable"] = {**dict(extra.get("configurable") or {}), "thread_id": thread_id}
        await self._remember_thread(config)
        if session.resume is not None:
            self._remember_decisions(session.resume)
            graph_input: Any = Command(resume=make_resume(session.resume))
        else:
            graph_input = make_input(session)
        async for part in self.graph.astream(
            graph_input, config, stream_mode=STREAM_MODES, subgraphs=True, version="v2"
        ):
            await self._part(part["type"], tuple(part.get("ns") or ()), part["data"])
        for call_id, reason in self.denied.items():
            if call_id not in self.ended:
                self.ended.add(call_id)
                await session.tool_denied(self.calls[call_id], reason)
        if not self.interrupts and self.graph.checkpointer is not None:
            snapshot = await self.graph.aget_state(config)
            for interrupt in snapshot.interrupts:
                self.interrupts.setdefault(interrupt.id, interrupt)
        if self.interrupts:
            await session.interrupt([await self._interrupt(i) for i in self.interrupts.values()])
        # The deltas were sent (queued): the run is over once they are logged.
        await session.flush()

    async def _remember_thread(self, config: Mapping[str, Any]) -> None:
        """What the thread held before this run: its messages are not this
        run's, its tool calls without a ``ToolMessage`` were started by the
        interrupted run (the resumed run ends them)."""
        if self.graph.checkpointer is None:
            return
        snapshot = await self.graph.aget_state(config)
        for message in _messages(snapshot.values):
            if message.id:
                self.seen_messages.add(message.id)
                self.usage_sent.add(message.id)
            if isinstance(message, AIMessage):
                for call in message.tool_calls:
                    if call.get("id"):
                        self.calls[call["id"]] = ToolCall(call["name"], call.get("args"), call["id"])
                        self.started.add(call["id"])
            elif isinstance(message, ToolMessage):
                self.ended.add(message.tool_call_id)

    def _remember_decisions(self, resume: Resume) -> None:
        for answer in resume.answers:
            call = answer.tool_call
            if call is None or call.executor == CLIENT_EXECUTOR:
                continue
            self.calls.setdefault(call.id, call)
            self.started.add(call.id)
            approval = Approval.of(call, answer)
            if not approval.approved:
                self.denied[call.id] = approval.reason

    async def _part(self, kind: str, ns: Tuple[str, ...], data: Any) -> None:
        if kind == "messages":
            message, _metadata = data
            await self._message(message)
        elif kind == "updates":
            await self._updates(data)
        elif kind == "custom":
            await self._custom(data)
        elif kind == "tasks" and not ns:
            await self._task(data)
        elif kind == "values" and not ns:
            await self._state(data)

    # -- messages ---------------------------------------------------------

    async def _message(self, message: BaseMessage) -> None:
        if isinstance(message, AIMessageChunk):
            await self._text(message)
            await self._tool_call_chunks(message)
            if message.usage_metadata and message.id:
                usage = self.chunk_usage.setdefault(message.id, {})
                _add_usage(usage, message.usage_metadata)
                model = _model_of(message)
                if model:
                    usage["model"] = model
            if getattr(message, "chunk_position", None) == "last" and message.id in self.chunk_usage:
                await self._usage(message.id, self.chunk_usage.pop(message.id), message)
        elif isinstance(message, AIMessage):
            if message.id and message.id in self.seen_messages:
                return
            if message.id:
                self.seen_messages.add(message.id)
            await self._text(message)
            await self._complete(message)
        elif isinstance(message, ToolMessage):
            await self._tool_result(message)

    async def _text(self, message: AIMessage) -> None:
        content = message.content
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        reasoning = message.additional_kwargs.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            await self._step()
            await self.session.send("AgentThoughtStream", {"char": reasoning})
        for block in blocks or []:
            if isinstance(block, str):
                block = {"type": "text", "text": block}
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "text" and isinstance(block.get("text"), str) and block["text"]:
                await self._step()
                await self.session.send("FinalAnswerStream", {"char": block["text"]})
            elif kind in ("reasoning", "thinking"):
                text = block.get(kind)
                if not isinstance(text, str):
                    text = "".join(s.get("text", "") for s in block.get("summary") or [] if isinstance(s, dict))
                if text:
                    await self._step()
                    await self.session.send("AgentThoughtStream", {"char": text})

    async def _tool_call_chunks(self, message: AIMessageChunk) -> None:
        for chunk in message.tool_call_chunks:
            index = chunk.get("index")
            key = (message.id, index if index is not None else chunk.get("id"))
            call_id = self.chunk_calls.get(key)
            if call_id is None:
                if not chunk.get("id") or not chunk.get("name"):
                    continue
                call_id = chunk["id"]
                self.chunk_calls[key] = call_id
                self.calls.setdefault(call_id, ToolCall(chunk["name"], None, call_id))
            args = chunk.get("args")
            if args and call_id not in self.started:
                await self._step()
                await self.session.send(
                    "AgentToolCallInputStream",
                    {"tool_call_id": call_id, "tool_name": self.calls[call_id].name, "delta": args},
                )

    async def _complete(self, message: AIMessage) -> None:
        """A model's message is complete: its tool calls start, its usage counts."""
        for call in message.tool_calls:
            call_id = call.get("id")
            if not call_id or call_id in self.started:
                continue
            tool_call = ToolCall(call["name"], call.get("args"), call_id)
            self.calls[call_id] = tool_call
            self.started.add(call_id)
            await self._step()
            await self.session.tool_start(tool_call.name, tool_call.input, tool_call_id=call_id)
        if message.usage_metadata and message.id:
            await self._usage(message.id, dict(message.usage_metadata), message)

    async def _usage(self, message_id: str, usage: Mapping[str, Any], message: BaseMessage) -> None:
        if message_id in self.usage_sent:
            return
        self.usage_sent.add(message_id)
        payload: Dict[str, Any] = {
            "input_tokens": int(usage.get("input_tokens") or 0),
            "output_tokens": int(usage.get("output_tokens") or 0),
        }
        reasoning = (usage.get("output_token_details") or {}).get("reasoning")
        if reasoning:
            payload["reasoning_tokens"] = int(reasoning)
        model = usage.get("model") or _model_of(message)
        if model:
            payload["model"] = model
        await self._step()
        await self.session.publish("Usage", payload)

    async def _tool_result(self, message: ToolMessage) -> None:
        call_id = message.tool_call_id
        if not call_id or call_id in self.ended:
            return
        self.ended.add(call_id)
        await self._step()
        call = self.calls.get(call_id) or ToolCall(message.name or "tool", None, call_id)
        if call_id in self.denied:
            await self.session.tool_denied(call, self.denied[call_id] or _text_of(message.content) or None)
        elif message.status == "error":
            await self.session.tool_end(call, error=_text_of(message.content) or "error")
        else:
            await self.session.tool_end(call, _output_of(message.content))

    # -- updates, custom, tasks, values -----------------------------------

    async def _updates(self, data: Mapping[str, Any]) -> None:
        for node, update in data.items():
            if node == "__interrupt__":
                for interrupt in update or ():
                    if isinstance(interrupt, GraphInterrupt):
                        self.interrupts.setdefault(interrupt.id, interrupt)
                continue
            for message in _messages(update):
                if isinstance(message, AIMessage):
                    if message.id:
                        self.seen_messages.add(message.id)
                    await self._complete(message)
                elif isinstance(message, ToolMessage):
                    await self._tool_result(message)

    async def _custom(self, data: Any) -> None:
        await self._step()
        if isinstance(data, Mapping):
            if data.get("event_type") in PASSED_EVENTS and "payload" in data:
                await self.session.publish(data["event_type"], jsonable(data["payload"]))
                return
            if isinstance(data.get("name"), str) and "data" in data:
                payload = {"name": data["name"], "data": jsonable(data["data"])}
                payload.update((k, data[k]) for k in ("id", "transient") if data.get(k) is not None)
                await self.session.publish("Data", payload)
                return
        await self.session.publish("Data", {"name": "custom", "data": jsonable(data)})

    async def _task(self, data: Mapping[str, Any]) -> None:
        """A top-level node starts or ends. Its step starts with its first
        event: a node that publishes nothing (a router, a node that only
        interrupts) is no step, so a tool call and the interrupt about it
        stay in one step (the AI SDK's ``sendAutomaticallyWhen`` helpers
        look at the last step only)."""
        name = data.get("name")
        if not isinstance(name, str) or name.startswith("__"):
            return
        if "triggers" in data and "result" not in data and "error" not in data:
            self.running_tasks[name] = self.running_tasks.get(name, 0) + 1
            if name not in self.open_steps and name not in self.pending_steps:
                self.pending_steps.append(name)
            return
        left = self.running_tasks.get(name, 0) - 1
        if left > 0:
            self.running_tasks[name] = left
            return
        self.running_tasks.pop(name, None)
        if name in self.open_steps:
            self.open_steps.remove(name)
            await self.session.publish("AgentStepEnd", {"name": name})
        elif name in self.pending_steps:
            self.pending_steps.remove(name)

    async def _step(self) -> None:
        """Opens the steps of the nodes running (before an event of theirs)."""
        while self.pending_steps:
            name = self.pending_steps.pop(0)
            self.open_steps.append(name)
            await self.session.publish("AgentStepStart", {"name": name})

    async def _state(self, values: Any) -> None:
        if self.state_mode is None:
            return
        new = jsonable(values)
        if self.state_mode == "snapshot" or self.state is _NOTHING:
            await self.session.publish("StateSnapshot", {"state": new})
        else:
            patch = json_patch(self.state, new)
            if patch:
                await self.session.publish("StateDelta", {"patch": patch})
        self.state = new

    # -- interrupts -------------------------------------------------------

    async def _interrupt(self, interrupt: GraphInterrupt) -> Interrupt:
        mapped = interrupt_of(interrupt, self.calls)
        call_id = mapped.tool_call_id
        if call_id is not None and call_id not in self.started and mapped.metadata:
            # The value names a call nobody started: start it, so every
            # format has the call to ask about.
            name = mapped.metadata.get("tool_name")
            if isinstance(name, str):
                self.started.add(call_id)
                self.calls[call_id] = ToolCall(name, mapped.metadata.get("tool_input"), call_id)
                await self.session.tool_start(name, mapped.metadata.get("tool_input"), tool_call_id=call_id)
        return mapped


def interrupt_of(interrupt: GraphInterrupt, calls: Mapping[str, ToolCall] = {}) -> Interrupt:
    """The interrupt event's item for a LangGraph interrupt: its ``id``;
    from a dict value, ``reason`` (default ``"tool_call"`` when it names a
    ``tool_call_id`` — or a ``tool_call: {"id", "name", "args"}`` — else
    ``"input_required"``), ``message`` (or ``question``, ``description``),
    ``expires_at``, ``response_schema`` (or the interrupt's own); a string
    value is the message. ``metadata`` holds the value (``value``) and, for
    a tool call, ``tool_name`` / ``tool_input`` (the call as the model made
    it, else the value's ``tool_name``/``name``, ``tool_input``/``args``)."""
    value = interrupt.value
    fields: Mapping[str, Any] = value if isinstance(value, Mapping) else {}
    tool_call = fields.get("tool_call") if isinstance(fields.get("tool_call"), Mapping) else {}
    call_id = fields.get("tool_call_id") or tool_call.get("id")
    call_id = call_id if isinstance(call_id, str) and call_id else None
    reason = fields.get("reason")
    if not isinstance(reason, str) or not reason:
        reason = TOOL_CALL_REASON if call_id else "input_required"
    message = next(
        (fields[k] for k in ("message", "question", "description") if isinstance(fields.get(k), str)), None
    )
    if message is None and isinstance(value, str):
        message = value
    schema = interrupt.response_schema if isinstance(interrupt.response_schema, dict) else None
    if schema is None and isinstance(fields.get("response_schema"), dict):
        schema = fields["response_schema"]
    expires = fields.get("expires_at") if isinstance(fields.get("expires_at"), str) else None
    metadata: Dict[str, Any] = {"value": jsonable(value)}
    if call_id is not None:
        known = calls.get(call_id)
        name = known.name if known else (fields.get("tool_name") or fields.get("name") or tool_call.get("name"))
        tool_input = known.input if known else fields.get("tool_input", fields.get("args", tool_call.get("args")))
        if isinstance(name, str):
            metadata.update(tool_name=name, tool_input=jsonable(tool_input))
    return Interrupt(
        reason,
        id=interrupt.id,
        message=message,
        tool_call_id=call_id,
        response_schema=schema,
        expires_at=expires,
        metadata=metadata,
    )


# -- helpers ----------------------------------------------------------------

_NOTHING = object()


def _messages(value: Any) -> Iterator[BaseMessage]:
    """The messages in a node's update or a state (dicts, lists, ``Command``s)."""
    if isinstance(value, BaseMessage):
        yield value
    elif isinstance(value, Command):
        yield from _messages(value.update)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _messages(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _messages(item)


def _output_of(content: Any) -> Any:
    """A tool's output: ``ToolNode`` turns a tool's dict or list into JSON
    text, which is sent parsed; any other content as it is."""
    if isinstance(content, str) and content[:1] in ("{", "["):
        try:
            return json.loads(content)
        except ValueError:
            pass
    return jsonable(content)


def _model_of(message: BaseMessage) -> Optional[str]:
    metadata = message.response_metadata or {}
    model = metadata.get("model_name") or metadata.get("model")
    return model if isinstance(model, str) and model else None


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            b if isinstance(b, str) else str(b.get("text", "")) for b in content if isinstance(b, (str, dict))
        )
    return json.dumps(jsonable(content))


def _add_usage(total: Dict[str, Any], more: Mapping[str, Any]) -> None:
    for key in ("input_tokens", "output_tokens"):
        total[key] = int(total.get(key) or 0) + int(more.get(key) or 0)
    reasoning = (more.get("output_token_details") or {}).get("reasoning")
    if reasoning:
        details = total.setdefault("output_token_details", {})
        details["reasoning"] = int(details.get("reasoning") or 0) + int(reasoning)


def jsonable(value: Any) -> Any:
    """``value`` as JSON: messages as ``{"type", "id", "content", ...}``,
    pydantic models and dataclasses as their fields, anything else unknown
    as its ``str``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, BaseMessage):
        fields: Dict[str, Any] = {"type": value.type, "id": value.id, "content": jsonable(value.content)}
        if value.name:
            fields["name"] = value.name
        if isinstance(value, AIMessage) and value.tool_calls:
            fields["tool_calls"] = [
                {"id": c.get("id"), "name": c["name"], "args": jsonable(c.get("args"))} for c in value.tool_calls
            ]
        if isinstance(value, ToolMessage):
            fields.update(tool_call_id=value.tool_call_id, status=value.status)
        return fields
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if hasattr(value, "model_dump"):
        try:
            return jsonable(value.model_dump(mode="json"))
        except Exception:  # noqa: BLE001 - fall back to str below
            pass
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(asdict(value))
    return str(value)


def _pointer(path: List[str]) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in path)


def json_patch(old: Any, new: Any, path: Optional[List[str]] = None) -> List[Dict[str, Any]]:
    """RFC 6902 operations turning JSON ``old`` into ``new``: objects key by
    key, a list that grew by appending as ``add``s, anything else replaced."""
    path = path or []
    if old == new and type(old) is type(new):
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        ops: List[Dict[str, Any]] = []
        for key in old:
            if key not in new:
                ops.append({"op": "remove", "path": _pointer(path + [key])})
        for key, value in new.items():
            if key not in old:
                ops.append({"op": "add", "path": _pointer(path + [key]), "value": value})
            else:
                ops.extend(json_patch(old[key], value, path + [key]))
        return ops
    if isinstance(old, list) and isinstance(new, list) and len(new) >= len(old):
        ops = []
        for index, value in enumerate(old):
            ops.extend(json_patch(value, new[index], path + [str(index)]))
        for index in range(len(old), len(new)):
            ops.append({"op": "add", "path": _pointer(path + [str(index)]), "value": new[index]})
        return ops
    return [{"op": "replace", "path": _pointer(path), "value": new}]
