"""The OpenAI Agents SDK adapter (``sse_bridge_worker.adapters.openai_agents``)
on the real gateway and Redis, with a scripted ``Model`` (no provider is
called): streamed reasoning, tool input and text, a tool call, a tool that
needs approval interrupted and resumed from the saved run state (approved
and denied), cancel stopping the SDK's run, and the approval scenario read
by the official AG-UI and AI SDK clients (node, tests/interop)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import redis
from conftest import PATIENCE, Frame, Gateway, kit_options, running_gateway, running_worker, unique

agents = pytest.importorskip("agents")
from _openai_agents_model import MODEL_NAME, Call, Pause, Reasoning, StubModel, Text, Turn  # noqa: E402
from agents import Agent, function_tool, set_tracing_disabled  # noqa: E402

from sse_bridge_worker import AsyncWorker  # noqa: E402
from sse_bridge_worker.adapters.openai_agents import STATE_KEY_PREFIX, openai_agents_handler  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379"
INTEROP = Path(__file__).resolve().parents[4] / "tests" / "interop"
CLIENTS_SCRIPT = Path(__file__).with_name("_openai_agents_clients.mjs")
README = Path(__file__).resolve().parents[2] / "README.md"
README_RUN_LINE = (
    'asyncio.run(AsyncWorker(openai_agents_handler(agent), "redis://127.0.0.1:6379").run(handle_signals=True))'
)

set_tracing_disabled(True)


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    # A client that leaves cancels its session at once.
    with running_gateway("--cancel-grace", "0s") as gateway:
        yield gateway


@pytest.fixture
def thread(redis_client: redis.Redis) -> Iterator[str]:
    thread_id = unique("pykit_oai_thread")
    yield thread_id
    redis_client.delete(f"sse_thread:{thread_id}", STATE_KEY_PREFIX + thread_id)


def events(frames: List[Frame]) -> List[tuple]:
    return [(f.event_type, f.data["payload"]) for f in frames]


class Tools:
    """The agent's tools, recording their calls."""

    def __init__(self) -> None:
        self.calls: List[tuple] = []

        @function_tool
        def lookup(q: str) -> str:
            """Looks ``q`` up."""
            self.calls.append(("lookup", q))
            return "42"

        @function_tool(needs_approval=True)
        def send_report(to: str) -> Dict[str, Any]:
            """Sends the report to ``to``."""
            self.calls.append(("send_report", to))
            return {"sent": True}

        self.lookup, self.send_report = lookup, send_report


def worker(gateway: Gateway, model: StubModel, tools: Tools, **options: Any) -> AsyncWorker:
    agent = Agent(name="assistant", model=model, tools=[tools.lookup, tools.send_report])
    return AsyncWorker(openai_agents_handler(agent), REDIS_URL, **kit_options(gateway, **options))


def test_streamed_reasoning_tool_input_a_tool_call_and_text(gateway: Gateway) -> None:
    model = StubModel([
        Turn([Reasoning(["I should ", "look it up."]), Call("lookup", ['{"q": ', '"answer"}'], "call_l1")],
             input_tokens=12, output_tokens=7, reasoning_tokens=3),
        Turn([Text(["The answer ", "is ", "42."])], input_tokens=30, output_tokens=4),
    ])
    tools = Tools()
    with running_worker(worker(gateway, model, tools)):
        frames = gateway.start_session({"user_query": "What is the answer?"}).read_all()

    call = {"tool_call_id": "call_l1", "tool_name": "lookup"}
    assert events(frames) == [
        ("worker_ack", {}),
        ("AgentStepStart", {"name": "assistant"}),
        ("AgentThoughtStream", {"char": "I should "}),
        ("AgentThoughtStream", {"char": "look it up."}),
        ("AgentToolCallInputStream", {**call, "delta": '{"q": '}),
        ("AgentToolCallInputStream", {**call, "delta": '"answer"}'}),
        ("AgentToolCallStart", {**call, "tool_input": {"q": "answer"}}),
        ("AgentToolCallEnd", {**call, "output": "42"}),
        ("AgentStepEnd", {"name": "assistant"}),
        ("AgentStepStart", {"name": "assistant"}),
        ("FinalAnswerStream", {"char": "The answer "}),
        ("FinalAnswerStream", {"char": "is "}),
        ("FinalAnswerStream", {"char": "42."}),
        ("AgentStepEnd", {"name": "assistant"}),
        ("Usage", {"input_tokens": 42, "output_tokens": 11, "reasoning_tokens": 3, "model": MODEL_NAME}),
        ("FinalAnswerStreamEnd", {}),
    ]
    assert tools.calls == [("lookup", "answer")]
    # The tool's output went back to the model.
    assert {"call_id": "call_l1", "output": "42", "type": "function_call_output"} in model.inputs[1]


def approval_model(answer: List[str]) -> StubModel:
    return StubModel([
        Turn([Call("send_report", ['{"to":', ' "finance"}'], "call_r1")]),
        Turn([Text(answer)]),
    ])


@pytest.mark.parametrize("decision", ["approve", "deny"])
def test_a_tool_that_needs_approval_interrupts_and_the_resume_continues_the_run(
    gateway: Gateway, redis_client: redis.Redis, thread: str, decision: str
) -> None:
    answer = ["Sent the report."] if decision == "approve" else ["Okay, ", "I did not send it."]
    model = approval_model(answer)
    tools = Tools()
    call = {"tool_call_id": "call_r1", "tool_name": "send_report"}
    with running_worker(worker(gateway, model, tools)):
        asked = gateway.start_session({"user_query": "Send the report", "thread_id": thread}).read_all()
        assert [f.event_type for f in asked] == [
            "worker_ack",
            "AgentStepStart",
            "AgentToolCallInputStream",
            "AgentToolCallInputStream",
            "AgentToolCallStart",
            "AgentStepEnd",
            "Usage",
            "interrupt",
        ]
        assert asked[4].data["payload"] == {**call, "tool_input": {"to": "finance"}}
        (interrupt,) = asked[-1].data["payload"]["interrupts"]
        assert interrupt == {
            "id": interrupt["id"],
            "reason": "tool_call",
            "message": 'Allow send_report({"to": "finance"})?',
            "tool_call_id": "call_r1",
            "metadata": {"tool_name": "send_report", "tool_input": {"to": "finance"}},
        }
        assert tools.calls == [], "nothing ran before the approval"
        saved = json.loads(redis_client.get(STATE_KEY_PREFIX + thread))
        assert saved["interrupts"] == {interrupt["id"]: "call_r1"}
        assert redis_client.ttl(STATE_KEY_PREFIX + thread) > 3600

        payload = {"approved": True} if decision == "approve" else {"approved": False, "reason": "not today"}
        entry = {"interrupt_id": interrupt["id"], "status": "resolved", "payload": payload}
        resumed = gateway.start_session({"thread_id": thread, "resume": [entry]}).read_all()

    end = {**call, "output": {"sent": True}} if decision == "approve" else {**call, "denied": True, "error": "not today"}
    assert events(resumed) == [
        ("worker_ack", {}),
        ("AgentToolCallEnd", end),
        ("AgentStepStart", {"name": "assistant"}),
        *[("FinalAnswerStream", {"char": piece}) for piece in answer],
        ("AgentStepEnd", {"name": "assistant"}),
        ("Usage", {"input_tokens": 10, "output_tokens": 5, "model": MODEL_NAME}),
        ("FinalAnswerStreamEnd", {}),
    ]
    if decision == "approve":
        assert tools.calls == [("send_report", "finance")]
        # The tool's output (as the SDK gives it to the model) went back to the model.
        assert {"call_id": "call_r1", "output": str({"sent": True}), "type": "function_call_output"} in model.inputs[1]
    else:
        assert tools.calls == []
        # The person's reason is what the model reads as the call's output.
        assert {"call_id": "call_r1", "output": "not today", "type": "function_call_output"} in model.inputs[1]
    assert not model.turns, "the run went on from the saved state: two model calls in all"
    assert redis_client.get(STATE_KEY_PREFIX + thread) is None, "the finished run's state is deleted"


def test_two_approvals_in_one_turn_are_decided_each_by_its_call_id(
    gateway: Gateway, redis_client: redis.Redis, thread: str
) -> None:
    model = StubModel([
        Turn([Call("send_report", ['{"to": "finance"}'], "call_a"), Call("send_report", ['{"to": "press"}'], "call_b")]),
        Turn([Text(["One sent, one not."])]),
    ])
    tools = Tools()
    with running_worker(worker(gateway, model, tools)):
        asked = gateway.start_session({"user_query": "Send both", "thread_id": thread}).read_all()
        interrupts = asked[-1].data["payload"]["interrupts"]
        assert sorted(i["tool_call_id"] for i in interrupts) == ["call_a", "call_b"]
        decisions = {"call_a": {"approved": True}, "call_b": {"approved": False, "reason": "not the press"}}
        entries = [
            {"interrupt_id": i["id"], "status": "resolved", "payload": decisions[i["tool_call_id"]]}
            for i in reversed(interrupts)
        ]
        resumed = gateway.start_session({"thread_id": thread, "resume": entries}).read_all()
    ends = {f.data["payload"]["tool_call_id"]: f.data["payload"] for f in resumed if f.event_type == "AgentToolCallEnd"}
    assert ends == {
        "call_a": {"tool_call_id": "call_a", "tool_name": "send_report", "output": {"sent": True}},
        "call_b": {"tool_call_id": "call_b", "tool_name": "send_report", "denied": True, "error": "not the press"},
    }
    assert "AgentToolCallStart" not in [f.event_type for f in resumed], "the calls are not started again"
    assert tools.calls == [("send_report", "finance")]
    assert resumed[-1].event_type == "FinalAnswerStreamEnd"


def test_a_resume_that_answers_other_interrupts_than_the_saved_state_is_refused(
    gateway: Gateway, redis_client: redis.Redis, thread: str
) -> None:
    tools = Tools()
    with running_worker(worker(gateway, approval_model(["never"]), tools)):
        asked = gateway.start_session({"user_query": "Send the report", "thread_id": thread}).read_all()
        (interrupt,) = asked[-1].data["payload"]["interrupts"]
        # The state saved for another interrupt of this thread (e.g. a stale one).
        key = STATE_KEY_PREFIX + thread
        saved = json.loads(redis_client.get(key))
        saved["interrupts"] = {"int-someother": "call_r1"}
        redis_client.set(key, json.dumps(saved))
        entry = {"interrupt_id": interrupt["id"], "status": "resolved", "payload": {"approved": True}}
        resumed = gateway.start_session({"thread_id": thread, "resume": [entry]}).read_all()
    assert resumed[-1].event_type == "error" and resumed[-1].data["payload"]["code"] == "worker_error"
    assert "waits for interrupts" in resumed[-1].data["payload"]["error"]
    assert tools.calls == []


def readme_snippet() -> str:
    """The README's OpenAI Agents snippet (the section's first Python block)."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## OpenAI Agents SDK adapter") :]
    start = section.index("```python\n") + len("```python\n")
    return section[start : section.index("```", start)]


def test_the_readme_snippet_runs_and_asks_for_approval(gateway: Gateway, thread: str) -> None:
    snippet = readme_snippet()
    lines = [line for line in snippet.splitlines() if line.strip()]
    assert len(lines) == 10 and lines[-1] == README_RUN_LINE, lines
    # The snippet without its last line defines the agent; then its last line,
    # on this gateway's queue and with the scripted model instead of OpenAI's.
    namespace: Dict[str, Any] = {}
    exec(compile(snippet.replace(README_RUN_LINE, ""), str(README), "exec"), namespace)
    agent = namespace["agent"]
    agent.model = approval_model(["Sent."])
    handler = namespace["openai_agents_handler"](agent)
    with running_worker(namespace["AsyncWorker"](handler, REDIS_URL, **kit_options(gateway))):
        asked = gateway.start_session({"user_query": "Send the report", "thread_id": thread}).read_all()
        (interrupt,) = asked[-1].data["payload"]["interrupts"]
        entry = {"interrupt_id": interrupt["id"], "status": "resolved", "payload": {"approved": True}}
        resumed = gateway.start_session({"thread_id": thread, "resume": [entry]}).read_all()
    assert interrupt["tool_call_id"] == "call_r1"
    assert [f.event_type for f in resumed][1] == "AgentToolCallEnd"
    assert resumed[1].data["payload"]["output"] == {"sent": True}
    assert "".join(f.data["payload"]["char"] for f in resumed if f.event_type == "FinalAnswerStream") == "Sent."


def test_an_approval_without_a_thread_is_a_worker_error(gateway: Gateway) -> None:
    tools = Tools()
    with running_worker(worker(gateway, approval_model(["never"]), tools)):
        frames = gateway.start_session({"user_query": "Send the report"}).read_all()
    assert frames[-1].event_type == "error"
    assert frames[-1].data["payload"]["code"] == "worker_error"
    assert "no thread_id" in frames[-1].data["payload"]["error"]
    assert tools.calls == []


def test_cancel_stops_the_sdk_run(gateway: Gateway, redis_client: redis.Redis) -> None:
    model = StubModel([
        Turn([Text(["Thinking..."]), Pause(PATIENCE), Call("lookup", ['{"q": "x"}'], "call_c1")]),
        Turn([Text(["too late"])]),
    ])
    tools = Tools()
    with running_worker(worker(gateway, model, tools, heartbeat=None)):
        stream = gateway.start_session({"user_query": "Think hard", "on_disconnect": "cancel"})
        frames = stream.frames()
        assert [next(frames).event_type for _ in range(3)] == ["worker_ack", "AgentStepStart", "FinalAnswerStream"]
        stream.close()
        deadline = time.monotonic() + 10
        while model.cancelled == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert model.cancelled == 1, "the model's stream was not torn down: the SDK run goes on"
    assert tools.calls == []
    assert len(model.turns) == 1, "no further model call"


def run_client(client: str, gateway: Gateway, decision: str) -> Dict[str, Any]:
    node = shutil.which("node")
    if node is None or not (INTEROP / "node_modules" / "@ag-ui" / "client").exists():
        pytest.skip("node and tests/interop/node_modules (npm ci --prefix tests/interop) are needed")
    env = dict(os.environ, GATEWAY=gateway.url, CLIENT=client, DECISION=decision)
    done = subprocess.run(
        [node, "--input-type=module", "-"],
        input=CLIENTS_SCRIPT.read_text(encoding="utf-8"),
        cwd=INTEROP,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def summary(event: Dict[str, Any]) -> str:
    """An AG-UI event or a UI message chunk, as one short line."""
    kind = event["type"]
    keep = {k: v for k, v in event.items() if k not in ("type", "timestamp", "threadId", "runId", "messageId",
                                                        "id", "delta", "rawEvent")}
    if "delta" in event:
        keep["delta"] = event["delta"]
    return f"{kind} {json.dumps(keep, sort_keys=True)}" if keep else kind


@pytest.mark.parametrize("decision", ["approve", "deny"])
def test_the_ag_ui_client_reads_the_approval_and_its_resume(gateway: Gateway, decision: str) -> None:
    answer = ["Sent ", "the report."] if decision == "approve" else ["I did ", "not send it."]
    tools = Tools()
    with running_worker(worker(gateway, approval_model(answer), tools)):
        result = run_client("ag-ui", gateway, decision)
    print(json.dumps({"decision": decision, "runs": [[summary(e) for e in run["events"]] for run in result["runs"]]},
                     indent=1))
    first, second = result["runs"]
    assert first["failures"] == [] and second["failures"] == []
    types = [e["type"] for e in first["events"]]
    assert types == [
        "RUN_STARTED",
        "CUSTOM",  # worker_ack
        "STEP_STARTED",
        "TOOL_CALL_START",
        "TOOL_CALL_ARGS",
        "TOOL_CALL_ARGS",
        "TOOL_CALL_END",
        "STEP_FINISHED",
        "RUN_FINISHED",
    ], types
    start = first["events"][3]
    assert (start["toolCallId"], start["toolCallName"]) == ("call_r1", "send_report")
    assert result["outcome"]["type"] == "interrupt"
    (interrupt,) = result["outcome"]["interrupts"]
    assert interrupt["toolCallId"] == "call_r1" and interrupt["reason"] == "tool_call"
    assert result["pending"] == result["outcome"]["interrupts"]
    finished = first["events"][-1]
    assert finished["usage"] and finished["usage"][0]["inputTokens"] == 10, finished

    events2 = second["events"]
    assert [e["type"] for e in events2][0] == "RUN_STARTED"
    assert events2[-1]["type"] == "RUN_FINISHED" and "RUN_ERROR" not in [e["type"] for e in events2]
    results = [e for e in events2 if e["type"] == "TOOL_CALL_RESULT"]
    assert [r["toolCallId"] for r in results] == ["call_r1"]
    text = "".join(e["delta"] for e in events2 if e["type"] == "TEXT_MESSAGE_CONTENT")
    assert text == "".join(answer)
    assert result["pendingAfter"] == []
    if decision == "approve":
        assert json.loads(results[0]["content"]) == {"sent": True}
        assert tools.calls == [("send_report", "finance")]
    else:
        assert "not today" in results[0]["content"]
        assert tools.calls == []


@pytest.mark.parametrize("decision", ["approve", "deny"])
def test_the_ai_sdk_chat_reads_the_approval_and_its_continuation(gateway: Gateway, decision: str) -> None:
    answer = ["Sent ", "the report."] if decision == "approve" else ["I did ", "not send it."]
    tools = Tools()
    with running_worker(worker(gateway, approval_model(answer), tools)):
        result = run_client("ai-sdk", gateway, decision)
    chunks = [[c if c == "[DONE]" else summary(c) for c in request["chunks"]] for request in result["requests"]]
    print(json.dumps({"decision": decision, "chunks": chunks}, indent=1))
    assert result["errors"] == []
    first_types = [c if c == "[DONE]" else c["type"] for c in result["requests"][0]["chunks"]]
    assert first_types == [
        "start",
        "data-worker_ack",
        "start-step",
        "tool-input-start",
        "tool-input-delta",
        "tool-input-delta",
        "tool-input-available",
        "finish-step",
        "message-metadata",
        "tool-approval-request",
        "finish",
        "[DONE]",
    ], first_types
    (asked,) = [p for p in result["asked"]["parts"] if p["type"].startswith("tool-") or p["type"] == "dynamic-tool"]
    assert asked["state"] == "approval-requested" and asked["toolCallId"] == "call_r1"
    assert asked["input"] == {"to": "finance"}

    final = result["final"]
    assert result["messageCount"] == 2, "the continuation is the same assistant message"
    (tool,) = [p for p in final["parts"] if p["type"].startswith("tool-") or p["type"] == "dynamic-tool"]
    text = "".join(p["text"] for p in final["parts"] if p["type"] == "text")
    assert text.endswith("".join(answer))
    if decision == "approve":
        assert tool["state"] == "output-available" and tool["output"] == {"sent": True}
        assert tools.calls == [("send_report", "finance")]
    else:
        assert tool["state"] == "output-denied"
        assert tools.calls == []
    assert final["metadata"]["usage"]["inputTokens"] == 10
