"""The LangGraph adapter (``sse_bridge_worker.adapters.langgraph``) on the
real gateway and Redis, with an offline scripted chat model
(``_langgraph_agents.py``): tool calls (streamed input, output, error),
streamed text and reasoning, steps, custom data, state and usage; a tool
approval interrupted by the graph and resumed (approved, denied,
cancelled); cancel stopping the graph; the approval read by the official
AG-UI and AI SDK clients (node). Plus the adapter's pure helpers."""

from __future__ import annotations

import asyncio
import copy
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
import redis
from _langgraph_agents import ScriptedChatModel, agent_builder, agent_graph, asking_graph, search, usage
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver

from sse_bridge_worker import AsyncWorker
from sse_bridge_worker.adapters.langgraph import interrupt_of, json_patch, langgraph_handler, resume_values
from sse_bridge_worker.publish import log_key


def _kit_conftest() -> Any:
    """The kit's tests/conftest.py (gateways, workers), loaded by its path:
    ``import conftest`` would find this folder's conftest.py if one is added."""
    path = Path(__file__).resolve().parents[1] / "conftest.py"
    spec = importlib.util.spec_from_file_location("_sse_bridge_kit_conftest", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


_kit = _kit_conftest()
PATIENCE, Frame, Gateway = _kit.PATIENCE, _kit.Frame, _kit.Gateway
kit_options, running_gateway, running_worker, unique = (
    _kit.kit_options,
    _kit.running_gateway,
    _kit.running_worker,
    _kit.unique,
)

REDIS_URL = "redis://127.0.0.1:6379"
LANGGRAPH_ID = re.compile("[0-9a-f]{32}")
HERE = Path(__file__).resolve().parent
INTEROP = HERE.parents[3] / "tests" / "interop"
README = HERE.parents[1] / "README.md"


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    with running_gateway() as gateway:
        yield gateway


@pytest.fixture
def thread(redis_client: redis.Redis) -> Iterator[str]:
    thread_id = unique("lg_thread")
    yield thread_id
    redis_client.delete(f"sse_thread:{thread_id}")


def collapsed(frames: List[Frame]) -> List[str]:
    """The event types, a run of the same streamed type as one."""
    types = [f.event_type for f in frames]
    streamed = {"FinalAnswerStream", "AgentThoughtStream", "AgentToolCallInputStream"}
    return [t for i, t in enumerate(types) if not (t in streamed and i > 0 and types[i - 1] == t)]


def payloads(frames: List[Frame], event_type: str) -> List[Any]:
    return [f.data["payload"] for f in frames if f.event_type == event_type]


def text(frames: List[Frame], event_type: str = "FinalAnswerStream") -> str:
    return "".join(p["char"] for p in payloads(frames, event_type))


def apply_patch(state: Any, patch: List[Dict[str, Any]]) -> Any:
    """The RFC 6902 ops the adapter sends (add, remove, replace), applied."""
    state = copy.deepcopy(state)
    for op in patch:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        if not parts:
            state = op["value"]
            continue
        parent = state
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        key: Any = int(parts[-1]) if isinstance(parent, list) else parts[-1]
        if op["op"] == "remove":
            del parent[key]
        elif op["op"] == "add" and isinstance(parent, list):
            parent.insert(key, op["value"])
        else:
            parent[key] = op["value"]
    return state


def final_state(frames: List[Frame]) -> Any:
    state: Any = None
    for frame in frames:
        if frame.event_type == "StateSnapshot":
            state = frame.data["payload"]["state"]
        elif frame.event_type == "StateDelta":
            state = apply_patch(state, frame.data["payload"]["patch"])
    return state


def logged_event_types(client: redis.Redis, session_id: str) -> List[str]:
    return [json.loads(fields["e"])["event_type"] for _, fields in client.xrange(log_key(session_id))]


def worker_for(gateway: Gateway, graph: Any, **options: Any) -> AsyncWorker:
    # The README's lines, on the test gateway's queue.
    return AsyncWorker(langgraph_handler(graph), REDIS_URL, **kit_options(gateway, **options))


def test_tool_calls_text_reasoning_steps_data_state_and_usage(gateway: Gateway, thread: str) -> None:
    model = ScriptedChatModel(
        script=[
            AIMessage(
                "Let me look.",
                additional_kwargs={"reasoning_content": "The user wants the weather."},
                tool_calls=[
                    {"id": "call_search", "name": "search", "args": {"q": "Paris"}},
                    {"id": "call_flaky", "name": "flaky", "args": {"x": 7}},
                ],
                usage_metadata=usage(12, 8),
            ),
            AIMessage("It is sunny in Paris.", usage_metadata=usage(30, 6)),
        ]
    )
    graph = agent_graph(model)
    with running_worker(worker_for(gateway, graph)):
        frames = gateway.start_session({"user_query": "Weather in Paris?", "thread_id": thread}).read_all()

    assert collapsed(frames) == [
        "worker_ack",
        "StateSnapshot",
        "AgentStepStart",  # research (a subgraph: its nodes' parts stream, its steps do not)
        "Data",
        "AgentStepEnd",
        "AgentStepStart",  # agent
        "AgentThoughtStream",
        "FinalAnswerStream",
        "AgentToolCallInputStream",  # search's input, then flaky's
        "Usage",
        "AgentToolCallStart",
        "AgentToolCallStart",
        "AgentStepEnd",
        "StateDelta",
        # approve: nothing to approve, nothing published, no step
        "AgentStepStart",  # tools
        "AgentToolCallEnd",
        "AgentToolCallEnd",
        "AgentStepEnd",
        "StateDelta",
        "AgentStepStart",  # agent
        "FinalAnswerStream",
        "Usage",
        "AgentStepEnd",
        "StateDelta",
        "FinalAnswerStreamEnd",
    ], [(f.event_type, f.data["payload"]) for f in frames]
    steps = [(f.event_type, f.data["payload"]["name"]) for f in frames if f.event_type.startswith("AgentStep")]
    assert [name for kind, name in steps if kind == "AgentStepStart"] == ["research", "agent", "tools", "agent"]
    assert text(frames, "AgentThoughtStream") == "The user wants the weather."
    assert text(frames) == "Let me look.It is sunny in Paris."
    assert payloads(frames, "Data") == [{"name": "progress", "id": "research", "data": {"done": True}}]

    streamed: Dict[str, str] = {}
    for p in payloads(frames, "AgentToolCallInputStream"):
        streamed[p["tool_call_id"]] = streamed.get(p["tool_call_id"], "") + p["delta"]
        assert p["tool_name"] == {"call_search": "search", "call_flaky": "flaky"}[p["tool_call_id"]]
    assert {k: json.loads(v) for k, v in streamed.items()} == {"call_search": {"q": "Paris"}, "call_flaky": {"x": 7}}
    assert payloads(frames, "AgentToolCallStart") == [
        {"tool_call_id": "call_search", "tool_name": "search", "tool_input": {"q": "Paris"}},
        {"tool_call_id": "call_flaky", "tool_name": "flaky", "tool_input": {"x": 7}},
    ]
    search_end, flaky_end = payloads(frames, "AgentToolCallEnd")
    assert search_end == {"tool_call_id": "call_search", "tool_name": "search", "output": "Sunny in Paris"}
    assert flaky_end["tool_call_id"] == "call_flaky" and "output" not in flaky_end
    assert "flaky broke on 7" in flaky_end["error"]
    assert payloads(frames, "Usage") == [
        {"input_tokens": 12, "output_tokens": 8, "model": "scripted-1"},
        {"input_tokens": 30, "output_tokens": 6, "model": "scripted-1"},
    ]
    # The snapshot and its deltas make the graph's state.
    state = final_state(frames)
    assert [(m["type"], m["content"]) for m in state["messages"]] == [
        ("human", "Weather in Paris?"),
        ("ai", "Let me look."),
        ("tool", "Sunny in Paris"),
        ("tool", flaky_end["error"]),
        ("ai", "It is sunny in Paris."),
    ]
    values = asyncio.run(graph.aget_state({"configurable": {"thread_id": thread}})).values
    assert [m.content for m in values["messages"]] == [m["content"] for m in state["messages"]]


def test_parallel_tool_tasks_of_the_prebuilt_agent_are_one_step(gateway: Gateway, thread: str) -> None:
    from langgraph.prebuilt import create_react_agent

    model = ScriptedChatModel(
        script=[
            AIMessage(
                "",
                tool_calls=[
                    {"id": "call_paris", "name": "search", "args": {"q": "Paris"}},
                    {"id": "call_rome", "name": "search", "args": {"q": "Rome"}},
                ],
            ),
            AIMessage("Sunny in both."),
        ]
    )
    with warnings.catch_warnings():  # deprecated for langchain's create_agent, still LangGraph's own
        warnings.simplefilter("ignore")
        graph = create_react_agent(model, [search], checkpointer=InMemorySaver())
    with running_worker(worker_for(gateway, graph)):
        frames = gateway.start_session({"user_query": "Paris and Rome?", "thread_id": thread}).read_all()
    steps = [(f.event_type, f.data["payload"]["name"]) for f in frames if f.event_type.startswith("AgentStep")]
    # Each tool call is a task of its own (`Send`): one `tools` step for both.
    assert steps == [
        ("AgentStepStart", "agent"),
        ("AgentStepEnd", "agent"),
        ("AgentStepStart", "tools"),
        ("AgentStepEnd", "tools"),
        ("AgentStepStart", "agent"),
        ("AgentStepEnd", "agent"),
    ], steps
    ends = {p["tool_call_id"]: p["output"] for p in payloads(frames, "AgentToolCallEnd")}
    assert ends == {"call_paris": "Sunny in Paris", "call_rome": "Sunny in Rome"}
    assert text(frames) == "Sunny in both." and frames[-1].event_type == "FinalAnswerStreamEnd"


def readme_snippet() -> str:
    """The first Python block of the README's LangGraph section."""
    section = README.read_text(encoding="utf-8").split("\n## LangGraph\n", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_lines_run_a_graph(gateway: Gateway, thread: str) -> None:
    snippet = readme_snippet()
    lines = [line for line in snippet.splitlines() if line.strip()]
    assert len(lines) == 7, snippet
    # The README's lines, on this gateway's queue, without blocking the test.
    url = '"redis://127.0.0.1:6379")'
    run_line = "asyncio.run(worker.run(handle_signals=True))"
    assert url in snippet and run_line in snippet
    code = snippet.replace(url, '"redis://127.0.0.1:6379", **options)').replace(run_line, "")
    model = ScriptedChatModel(script=[AIMessage("Hello from the README.")])
    scope: Dict[str, Any] = {"builder": agent_builder(model), "options": kit_options(gateway)}
    exec(compile(code, str(README), "exec"), scope)
    with running_worker(scope["worker"]):
        frames = gateway.start_session({"user_query": "Hi", "thread_id": thread}).read_all()
    assert text(frames) == "Hello from the README."
    assert frames[-1].event_type == "FinalAnswerStreamEnd"


def approval_script(answer: str) -> List[AIMessage]:
    return [
        AIMessage(
            "I will send it.",
            tool_calls=[{"id": "call_report", "name": "send_report", "args": {"to": "finance"}}],
            usage_metadata=usage(20, 10),
        ),
        AIMessage(answer, usage_metadata=usage(40, 5)),
    ]


def ask_for_approval(gateway: Gateway, graph: Any, thread: str) -> Tuple[List[Frame], Dict[str, Any]]:
    frames = gateway.start_session({"user_query": "Send the report to finance", "thread_id": thread}).read_all()
    # The call and the interrupt about it in one step: `approve` published nothing.
    assert collapsed(frames)[-4:] == ["AgentToolCallStart", "AgentStepEnd", "StateDelta", "interrupt"], collapsed(
        frames
    )
    start = payloads(frames, "AgentToolCallStart")[0]
    assert start == {"tool_call_id": "call_report", "tool_name": "send_report", "tool_input": {"to": "finance"}}
    (interrupt,) = frames[-1].data["payload"]["interrupts"]
    # LangGraph's own interrupt id, the graph's message, the model's call id.
    (pending,) = asyncio.run(graph.aget_state({"configurable": {"thread_id": thread}})).interrupts
    assert interrupt == {
        "id": pending.id,
        "reason": "tool_call",
        "message": "Send the report to finance?",
        "tool_call_id": "call_report",
        "metadata": {
            "value": {"tool_call_id": "call_report", "message": "Send the report to finance?"},
            "tool_name": "send_report",
            "tool_input": {"to": "finance"},
        },
    }
    assert LANGGRAPH_ID.fullmatch(interrupt["id"])
    return frames, interrupt


@pytest.mark.parametrize(
    "status, payload, end, answer",
    [
        (
            "resolved",
            {"approved": True},
            {"output": {"sent": True, "to": "finance"}},
            "Sent the report to finance.",
        ),
        (
            "resolved",
            {"approved": False, "reason": "not today"},
            {"denied": True, "error": "not today"},
            "I did not send the report.",
        ),
        # No reason from the person: the graph's ToolMessage says why.
        ("cancelled", None, {"denied": True, "error": "Denied: denied"}, "I did not send the report."),
    ],
    ids=["approved", "denied", "cancelled"],
)
def test_an_interrupt_is_resumed_on_the_checkpointer_thread(
    gateway: Gateway,
    redis_client: redis.Redis,
    thread: str,
    status: str,
    payload: Optional[Dict[str, Any]],
    end: Dict[str, Any],
    answer: str,
) -> None:
    graph = agent_graph(ScriptedChatModel(script=approval_script(answer)))
    with running_worker(worker_for(gateway, graph)):
        asked, interrupt = ask_for_approval(gateway, graph, thread)
        first_sid = gateway.sessions[-1]
        assert "FinalAnswerStreamEnd" not in logged_event_types(redis_client, first_sid)
        assert "AgentToolCallEnd" not in collapsed(asked)

        entry: Dict[str, Any] = {"interrupt_id": interrupt["id"], "status": status}
        if payload is not None:
            entry["payload"] = payload
        resumed = gateway.start_session({"thread_id": thread, "resume": [entry]}).read_all()

    assert "AgentToolCallStart" not in collapsed(resumed), "the resumed run never starts the call again"
    (call_end,) = payloads(resumed, "AgentToolCallEnd")
    assert call_end == {"tool_call_id": "call_report", "tool_name": "send_report", **end}
    assert text(resumed) == answer
    assert resumed[-1].event_type == "FinalAnswerStreamEnd"
    # The graph continued the thread where it stopped: one call, one result.
    messages = asyncio.run(graph.aget_state({"configurable": {"thread_id": thread}})).values["messages"]
    assert [type(m).__name__ for m in messages] == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    assert messages[-1].content == answer
    # The graph got the decision: the tool ran only when approved.
    result = messages[2]
    if "output" in end:
        assert (result.status, json.loads(result.content)) == ("success", end["output"])
    else:
        assert (result.status, result.content) == ("error", f"Denied: {(payload or {}).get('reason', 'denied')}")


def test_a_question_asked_in_a_subgraph_is_answered_by_a_resume(gateway: Gateway, thread: str) -> None:
    graph = asking_graph()
    with running_worker(worker_for(gateway, graph)):
        asked = gateway.start_session({"user_query": "Pay the invoice", "thread_id": thread}).read_all()
        (interrupt,) = asked[-1].data["payload"]["interrupts"]
        (pending,) = asyncio.run(graph.aget_state({"configurable": {"thread_id": thread}})).interrupts
        assert interrupt == {
            "id": pending.id,
            "reason": "input_required",
            "message": "Which account?",
            "metadata": {"value": "Which account?"},
        }
        entry = {"interrupt_id": interrupt["id"], "status": "resolved", "payload": "ACC-7"}
        resumed = gateway.start_session({"thread_id": thread, "resume": [entry]}).read_all()
    assert text(resumed) == "Paying from ACC-7."
    assert resumed[-1].event_type == "FinalAnswerStreamEnd"


def test_cancel_stops_the_graph(redis_client: redis.Redis, thread: str) -> None:
    stopped = threading.Event()
    words = " ".join(f"word{n}" for n in range(200))
    model = ScriptedChatModel(script=[AIMessage(words)], delay=0.05, cancelled=stopped)
    graph = agent_graph(model)
    # A client that leaves cancels the run at once (not after the default grace).
    with running_gateway("--cancel-grace", "0s") as gateway, running_worker(
        worker_for(gateway, graph, heartbeat=None)
    ):
        stream = gateway.start_session({"user_query": "Talk a lot", "thread_id": thread, "on_disconnect": "cancel"})
        sid = stream.session_id
        seen = 0
        for frame in stream.frames():
            seen += frame.event_type == "FinalAnswerStream"
            if seen == 3:
                break
        stream.close()
        assert stopped.wait(5), "the model's stream was never cancelled"
        logged = logged_event_types(redis_client, sid)
    assert "FinalAnswerStreamEnd" not in logged
    assert logged.count("FinalAnswerStream") < 100, logged
    assert len(graph.get_state({"configurable": {"thread_id": thread}}).values["messages"]) == 1, "no answer saved"


def node_clients(kind: str, gateway: Gateway, decision: str) -> Dict[str, Any]:
    node = shutil.which("node")
    assert node, "node (20+) is needed to read the run with the official clients"
    assert (INTEROP / "node_modules" / "ai").is_dir(), f"run `npm ci --prefix {INTEROP}` first"
    done = subprocess.run(
        [node, str(HERE / "_langgraph_clients.mjs"), kind, gateway.url, decision],
        capture_output=True,
        text=True,
        timeout=PATIENCE * 2,
        env={**os.environ, "INTEROP_DIR": str(INTEROP)},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("decision", ["approve", "deny"])
def test_the_ag_ui_client_reads_an_approval(gateway: Gateway, decision: str) -> None:
    graph = agent_graph(ScriptedChatModel(script=approval_script("Done.")))
    with running_worker(worker_for(gateway, graph)):
        seen = node_clients("ag-ui", gateway, decision)
    first, second = seen["runs"]
    assert first["failures"] == [] and second["failures"] == []
    types = [e["type"] for e in first["events"]]
    print("AG-UI run 1:", types)
    print("AG-UI run 2:", [e["type"] for e in second["events"]])
    for needed in ["STATE_SNAPSHOT", "STEP_STARTED", "TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_END", "STATE_DELTA"]:
        assert needed in types, types
    (start,) = [e for e in first["events"] if e["type"] == "TOOL_CALL_START"]
    assert (start["toolCallId"], start["toolCallName"]) == ("call_report", "send_report")
    args = "".join(e["delta"] for e in first["events"] if e["type"] == "TOOL_CALL_ARGS")
    assert json.loads(args) == {"to": "finance"}
    outcome = first["events"][-1]["outcome"]
    assert outcome["type"] == "interrupt"
    assert outcome["interrupts"][0]["toolCallId"] == "call_report"
    assert first["events"][-1]["usage"] == [
        {"model": "scripted-1", "inputTokens": 20, "outputTokens": 10, "totalTokens": 30}
    ]
    second_types = [e["type"] for e in second["events"]]
    assert second_types[-1] == "RUN_FINISHED" and "RUN_ERROR" not in second_types
    (result,) = [e for e in second["events"] if e["type"] == "TOOL_CALL_RESULT"]
    assert result["toolCallId"] == "call_report"
    if decision == "approve":
        assert json.loads(result["content"]) == {"sent": True, "to": "finance"}
    else:
        assert "not today" in result["content"]
    # The client applied the snapshot and deltas: the graph's messages.
    contents = [m["content"] for m in seen["state"]["messages"]]
    assert contents[0] == "Please send the report to finance" and contents[-1] == "Done."
    assert seen["messages"][-1]["content"] == "Done."


@pytest.mark.parametrize("decision", ["approve", "deny"])
def test_the_ai_sdk_client_reads_an_approval(gateway: Gateway, decision: str) -> None:
    graph = agent_graph(ScriptedChatModel(script=approval_script("Done.")))
    with running_worker(worker_for(gateway, graph)):
        seen = node_clients("ai-sdk", gateway, decision)
    assert seen["errors"] == []
    first, second = seen["requests"]
    print("AI SDK request 1:", [c if c == "[DONE]" else c["type"] for c in first])
    print("AI SDK request 2:", [c if c == "[DONE]" else c["type"] for c in second])
    kinds = [c if c == "[DONE]" else c["type"] for c in first]
    for needed in ["tool-input-start", "tool-input-delta", "tool-input-available", "tool-approval-request", "data-state"]:
        assert needed in kinds, kinds
    (tool,) = [p for p in seen["afterFirst"]["parts"] if p.get("toolCallId") == "call_report"]
    assert tool["state"] == "approval-requested" and tool["input"] == {"to": "finance"}
    parts = seen["final"]["parts"]
    (tool,) = [p for p in parts if p.get("toolCallId") == "call_report"]
    if decision == "approve":
        assert tool["state"] == "output-available" and tool["output"] == {"sent": True, "to": "finance"}
    else:
        assert tool["state"] == "output-denied", tool
    assert [p["text"] for p in parts if p["type"] == "text"][-1] == "Done."
    assert seen["final"]["metadata"] == {
        "usage": {"inputTokens": 40, "outputTokens": 5, "totalTokens": 45},
        "model": "scripted-1",
    }


# -- the pure helpers -----------------------------------------------------


def test_json_patch_turns_the_old_state_into_the_new() -> None:
    old = {"messages": [{"a": 1}], "gone": True, "n": 1, "a/b": 0}
    new = {"messages": [{"a": 2}, {"b": 3}], "n": 2, "a/b": [1], "new": None}
    patch = json_patch(old, new)
    assert apply_patch(old, patch) == new
    assert {"op": "add", "path": "/messages/1", "value": {"b": 3}} in patch
    assert {"op": "replace", "path": "/a~1b", "value": [1]} in patch
    assert json_patch(new, new) == []
    assert apply_patch([1, 2, 3], json_patch([1, 2, 3], [1])) == [1]


def test_interrupt_values_become_interrupts() -> None:
    from langgraph.types import Interrupt as GraphInterrupt

    asked = interrupt_of(GraphInterrupt("Which account?", id="a" * 32))
    assert asked.to_dict() == {
        "id": "a" * 32,
        "reason": "input_required",
        "message": "Which account?",
        "metadata": {"value": "Which account?"},
    }
    tool = interrupt_of(
        GraphInterrupt({"tool_call": {"id": "c1", "name": "pay", "args": {"eur": 5}}, "question": "Pay?"}, id="b" * 32)
    )
    assert (tool.reason, tool.tool_call_id, tool.message) == ("tool_call", "c1", "Pay?")
    assert tool.metadata and tool.metadata["tool_name"] == "pay" and tool.metadata["tool_input"] == {"eur": 5}
    custom = interrupt_of(GraphInterrupt({"reason": "confirmation", "expires_at": "2099-01-01T00:00:00Z"}, id="c" * 32))
    assert (custom.reason, custom.expires_at) == ("confirmation", "2099-01-01T00:00:00Z")


def test_resume_values_give_decisions_and_payloads() -> None:
    from sse_bridge_worker import Job, Resume

    job = Job(
        session_id="s2",
        request={
            "thread_id": "t",
            "resume": [
                {"interrupt_id": "i1", "status": "resolved", "payload": {"approved": False, "reason": "no"}},
                {"interrupt_id": "i2", "status": "resolved", "payload": "ACC-7"},
                {"interrupt_id": "i3", "status": "cancelled"},
            ],
        },
        created_at=0,
        entry_id="1-0",
        interrupts=[
            {"id": "i1", "reason": "tool_call", "tool_call_id": "c1", "metadata": {"tool_name": "pay"}},
            {"id": "i2", "reason": "input_required"},
            {"id": "i3", "reason": "tool_call", "tool_call_id": "c3", "metadata": {"tool_name": "pay"}},
        ],
    )
    resume = Resume.of(job)
    assert resume is not None
    assert resume_values(resume) == {
        "i1": {"approved": False, "reason": "no"},
        "i2": "ACC-7",
        "i3": {"approved": False},
    }


def test_reasoning_and_text_content_blocks_are_thoughts_and_answer() -> None:
    from langchain_core.messages import AIMessageChunk

    from sse_bridge_worker import AsyncSession, Job
    from sse_bridge_worker.adapters.langgraph import _Run

    class Recording(AsyncSession):
        def __init__(self) -> None:
            super().__init__(Job("s", {"user_query": "q"}, 0, "1-0"), "0" * 16, None, 1.0)  # type: ignore[arg-type]
            self.events: List[Tuple[str, Any]] = []

        async def publish(self, event_type: str, payload: Any = None) -> Any:
            self.events.append((event_type, payload))

        async def send(self, event_type: str, payload: Any = None) -> None:  # deltas are sent
            self.events.append((event_type, payload))

    session = Recording()
    run = _Run(session, graph=None, state=None)
    chunks = [
        AIMessageChunk(content=[{"type": "thinking", "thinking": "Anthropic thinks. ", "index": 0}], id="m1"),
        AIMessageChunk(content=[{"type": "reasoning", "reasoning": "Standard block. ", "index": 1}], id="m1"),
        AIMessageChunk(content=[{"type": "reasoning", "summary": [{"text": "OpenAI summary."}]}], id="m1"),
        AIMessageChunk(content=[{"type": "text", "text": "Answer", "index": 2}, "!"], id="m1"),
    ]
    for chunk in chunks:
        asyncio.run(run._message(chunk))
    assert session.events == [
        ("AgentThoughtStream", {"char": "Anthropic thinks. "}),
        ("AgentThoughtStream", {"char": "Standard block. "}),
        ("AgentThoughtStream", {"char": "OpenAI summary."}),
        ("FinalAnswerStream", {"char": "Answer"}),
        ("FinalAnswerStream", {"char": "!"}),
    ]
