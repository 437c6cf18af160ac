"""The Pydantic AI adapter on the real gateway and Redis, with Pydantic AI's
own offline models (``FunctionModel`` streams exactly the parts a test
writes; ``TestModel`` calls every tool): a tool call and streamed text,
thinking and tool input; a tool needing approval interrupted, then resumed
approved and denied; an external tool handed to the client; cancel
stopping the run; a resume without its history refused; and the approval
read through the official AG-UI and AI SDK clients (node)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the kit's conftest helpers

from conftest import PATIENCE, Frame, Gateway, kit_options, running_gateway, running_worker, unique  # noqa: E402
from pydantic_ai import Agent, ModelMessage, ToolFailed  # noqa: E402
from pydantic_ai.models.function import AgentInfo, DeltaThinkingPart, DeltaToolCall, FunctionModel  # noqa: E402
from pydantic_ai.models.test import TestModel  # noqa: E402
from pydantic_ai.tools import ToolDefinition  # noqa: E402
from pydantic_ai.toolsets import ExternalToolset  # noqa: E402

from sse_bridge_worker import AsyncWorker  # noqa: E402
from sse_bridge_worker.adapters.pydantic_ai import history_key, pydantic_ai_handler  # noqa: E402
from sse_bridge_worker.publish import log_key  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379"
ROOT = Path(__file__).resolve().parents[4]
INTEROP = ROOT / "tests" / "interop"


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    # A client that left is cancelled at once; `: ping` every 300 ms notices it.
    with running_gateway("--cancel-grace", "0s", "--heartbeat", "300ms") as gateway:
        yield gateway


@pytest.fixture
def thread(redis_client: redis.Redis) -> Iterator[str]:
    thread_id = unique("pyd_thread")
    yield thread_id
    redis_client.delete(f"sse_thread:{thread_id}", history_key(thread_id))


def events(frames: List[Frame]) -> List[tuple]:
    return [(f.event_type, f.data["payload"]) for f in frames]


def logged_event_types(client: redis.Redis, session_id: str) -> List[str]:
    return [json.loads(fields["e"])["event_type"] for _, fields in client.xrange(log_key(session_id))]


def last_parts(messages: List[ModelMessage]) -> List[Any]:
    return list(messages[-1].parts)


# The agents: FunctionModel stream functions that write the parts a test expects.


def research_agent() -> Agent:
    """Thinks, calls `search` (arguments streamed in two pieces) and
    `lookup` (fails), then answers in three pieces."""

    async def model(messages: List[ModelMessage], info: AgentInfo):  # type: ignore[no-untyped-def]
        if not any(p.part_kind == "tool-return" for p in last_parts(messages)):
            yield {0: DeltaThinkingPart(content="I should ")}
            yield {0: DeltaThinkingPart(content="search.")}
            yield {1: DeltaToolCall(name="search", json_args='{"q": ', tool_call_id="call-search")}
            yield {1: DeltaToolCall(json_args='"sse"}')}
            yield {2: DeltaToolCall(name="lookup", json_args='{"page": 7}', tool_call_id="call-lookup")}
            return
        for piece in ["SSE is ", "server-sent ", "events."]:
            yield piece

    agent = Agent(FunctionModel(stream_function=model, model_name="research-model"))

    @agent.tool_plain
    def search(q: str) -> List[str]:
        return [f"{q} result"]

    @agent.tool_plain
    def lookup(page: int) -> str:
        raise ToolFailed(f"page {page} does not exist")

    return agent


def test_a_tool_call_and_streamed_text_thinking_and_input(
    gateway: Gateway, redis_client: redis.Redis
) -> None:
    handler = pydantic_ai_handler(research_agent())
    with running_worker(AsyncWorker(handler, REDIS_URL, **kit_options(gateway))):
        frames = gateway.start_session({"user_query": "what is SSE?"}).read_all()

    assert events(frames) == [
        ("worker_ack", {}),
        ("AgentStepStart", {"name": "model_request"}),
        ("AgentThoughtStream", {"char": "I should "}),
        ("AgentThoughtStream", {"char": "search."}),
        (
            "AgentToolCallInputStream",
            {"tool_call_id": "call-search", "tool_name": "search", "delta": '{"q": '},
        ),
        (
            "AgentToolCallInputStream",
            {"tool_call_id": "call-search", "tool_name": "search", "delta": '"sse"}'},
        ),
        (
            "AgentToolCallStart",
            {"tool_call_id": "call-search", "tool_name": "search", "tool_input": {"q": "sse"}},
        ),
        (
            "AgentToolCallInputStream",
            {"tool_call_id": "call-lookup", "tool_name": "lookup", "delta": '{"page": 7}'},
        ),
        (
            "AgentToolCallStart",
            {"tool_call_id": "call-lookup", "tool_name": "lookup", "tool_input": {"page": 7}},
        ),
        ("AgentStepEnd", {"name": "model_request"}),
        ("AgentStepStart", {"name": "call_tools"}),
        (
            "AgentToolCallEnd",
            {"tool_call_id": "call-search", "tool_name": "search", "output": ["sse result"]},
        ),
        (
            "AgentToolCallEnd",
            {"tool_call_id": "call-lookup", "tool_name": "lookup", "error": "page 7 does not exist"},
        ),
        ("AgentStepEnd", {"name": "call_tools"}),
        ("AgentStepStart", {"name": "model_request"}),
        ("FinalAnswerStream", {"char": "SSE is "}),
        ("FinalAnswerStream", {"char": "server-sent "}),
        ("FinalAnswerStream", {"char": "events."}),
        ("AgentStepEnd", {"name": "model_request"}),
        ("Usage", frames[-2].data["payload"]),
        ("FinalAnswerStreamEnd", {}),
    ]
    usage = frames[-2].data["payload"]
    assert usage["model"] == "research-model"
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0


def test_test_model_calls_every_tool_and_answers(gateway: Gateway) -> None:
    agent = Agent(TestModel(custom_output_text="Done."))

    @agent.tool_plain
    def add(a: int, b: int) -> int:
        return a + b

    with running_worker(AsyncWorker(pydantic_ai_handler(agent), REDIS_URL, **kit_options(gateway))):
        frames = gateway.start_session({"user_query": "add"}).read_all()

    starts = [f.data["payload"] for f in frames if f.event_type == "AgentToolCallStart"]
    ends = [f.data["payload"] for f in frames if f.event_type == "AgentToolCallEnd"]
    assert [(s["tool_name"], s["tool_input"]) for s in starts] == [("add", {"a": 0, "b": 0})]
    assert ends == [{"tool_call_id": starts[0]["tool_call_id"], "tool_name": "add", "output": 0}]
    assert (
        "".join(f.data["payload"]["char"] for f in frames if f.event_type == "FinalAnswerStream") == "Done."
    )
    assert frames[-1].event_type == "FinalAnswerStreamEnd"


def approval_agent(sent: List[Dict[str, Any]], seen: List[List[ModelMessage]]) -> Agent:
    """Asks to call `send_report` (approval needed); then answers with what
    the tool returned, or with the denial the model got."""

    async def model(messages: List[ModelMessage], info: AgentInfo):  # type: ignore[no-untyped-def]
        seen.append(list(messages))
        returns = [p for p in last_parts(messages) if p.part_kind == "tool-return"]
        if not returns:
            yield "Let me send it. "
            yield {
                1: DeltaToolCall(name="send_report", json_args='{"to": "finance"}', tool_call_id="call-send")
            }
            return
        (result,) = returns
        if result.outcome == "denied":
            yield f"Okay, I did not send the report ({result.content})."
        else:
            yield "Sent the report to finance."

    agent = Agent(FunctionModel(stream_function=model))

    @agent.tool_plain(requires_approval=True)
    def send_report(to: str) -> Dict[str, Any]:
        sent.append({"to": to})
        return {"sent": True}

    return agent


@pytest.mark.parametrize(
    "payload, end, answer",
    [
        ({"approved": True}, {"output": {"sent": True}}, "Sent the report to finance."),
        (
            {"approved": False, "reason": "not today"},
            {"denied": True, "error": "not today"},
            "Okay, I did not send the report (not today).",
        ),
    ],
    ids=["approved", "denied"],
)
def test_a_tool_needing_approval_interrupts_and_the_resume_continues(
    gateway: Gateway,
    redis_client: redis.Redis,
    thread: str,
    payload: Dict[str, Any],
    end: Dict[str, Any],
    answer: str,
) -> None:
    sent: List[Dict[str, Any]] = []
    seen: List[List[ModelMessage]] = []
    handler = pydantic_ai_handler(approval_agent(sent, seen))
    with running_worker(AsyncWorker(handler, REDIS_URL, **kit_options(gateway))):
        asked = gateway.start_session({"user_query": "send the report", "thread_id": thread}).read_all()
        first_sid = gateway.sessions[-1]
        (interrupt,) = asked[-1].data["payload"]["interrupts"]
        assert events(asked) == [
            ("worker_ack", {}),
            ("AgentStepStart", {"name": "model_request"}),
            ("FinalAnswerStream", {"char": "Let me send it. "}),
            (
                "AgentToolCallInputStream",
                {"tool_call_id": "call-send", "tool_name": "send_report", "delta": '{"to": "finance"}'},
            ),
            (
                "AgentToolCallStart",
                {"tool_call_id": "call-send", "tool_name": "send_report", "tool_input": {"to": "finance"}},
            ),
            ("AgentStepEnd", {"name": "model_request"}),
            ("Usage", asked[-2].data["payload"]),
            (
                "interrupt",
                {
                    "interrupts": [
                        {
                            "id": interrupt["id"],
                            "reason": "tool_call",
                            "message": "Allow send_report?",
                            "tool_call_id": "call-send",
                            "metadata": {"tool_name": "send_report", "tool_input": {"to": "finance"}},
                        }
                    ]
                },
            ),
        ]
        assert sent == [], "not run before the approval"
        assert "FinalAnswerStreamEnd" not in logged_event_types(redis_client, first_sid)
        saved = json.loads(redis_client.get(history_key(thread)))
        assert saved["session_id"] == first_sid

        resumed = gateway.start_session(
            {
                "thread_id": thread,
                "resume": [{"interrupt_id": interrupt["id"], "status": "resolved", "payload": payload}],
            }
        ).read_all()

    assert events(resumed) == [
        ("worker_ack", {}),
        ("AgentStepStart", {"name": "call_tools"}),
        ("AgentToolCallEnd", {"tool_call_id": "call-send", "tool_name": "send_report", **end}),
        ("AgentStepEnd", {"name": "call_tools"}),
        ("AgentStepStart", {"name": "model_request"}),
        ("FinalAnswerStream", {"char": answer}),
        ("AgentStepEnd", {"name": "model_request"}),
        ("Usage", resumed[-2].data["payload"]),
        ("FinalAnswerStreamEnd", {}),
    ], "the resumed run ends the call the first one started, never starts it again"
    assert sent == ([{"to": "finance"}] if payload["approved"] else [])
    # The resumed model request carried the first run's messages: the prompt, the call, its return.
    history = seen[-1]
    assert history[0].parts[-1].content == "send the report"
    assert saved_session(redis_client, thread) == gateway.sessions[-1]


def saved_session(client: redis.Redis, thread: str) -> str:
    return json.loads(client.get(history_key(thread)))["session_id"]


@pytest.mark.parametrize(
    "entry, answer",
    [
        ({"status": "resolved", "payload": "10:42"}, "Your browser says it is 10:42."),
        ({"status": "cancelled"}, "No time from your browser: The client did not run the tool."),
    ],
    ids=["answered", "cancelled"],
)
def test_an_external_tool_is_the_clients_and_its_output_continues_the_run(
    gateway: Gateway, thread: str, entry: Dict[str, Any], answer: str
) -> None:
    browser = ExternalToolset(
        [
            ToolDefinition(
                name="browser_time",
                description="The time in the user's browser",
                parameters_json_schema={"type": "object", "properties": {"format": {"type": "string"}}},
            )
        ]
    )

    async def model(messages: List[ModelMessage], info: AgentInfo):  # type: ignore[no-untyped-def]
        returns = [p for p in last_parts(messages) if p.part_kind == "tool-return"]
        if not returns:
            yield {
                0: DeltaToolCall(
                    name="browser_time", json_args='{"format": "HH:MM"}', tool_call_id="call-time"
                )
            }
            return
        if returns[0].outcome == "failed":
            yield f"No time from your browser: {returns[0].content}"
        else:
            yield f"Your browser says it is {returns[0].content}."

    agent = Agent(FunctionModel(stream_function=model), toolsets=[browser])
    with running_worker(AsyncWorker(pydantic_ai_handler(agent), REDIS_URL, **kit_options(gateway))):
        asked = gateway.start_session({"user_query": "what time is it", "thread_id": thread}).read_all()
        start = next(f.data["payload"] for f in asked if f.event_type == "AgentToolCallStart")
        assert start == {
            "tool_call_id": "call-time",
            "tool_name": "browser_time",
            "tool_input": {"format": "HH:MM"},
            "executor": "client",
        }
        (interrupt,) = asked[-1].data["payload"]["interrupts"]
        assert interrupt == {
            "id": interrupt["id"],
            "reason": "tool_call",
            "tool_call_id": "call-time",
            "metadata": {
                "tool_name": "browser_time",
                "tool_input": {"format": "HH:MM"},
                "executor": "client",
            },
        }
        resumed = gateway.start_session(
            {"thread_id": thread, "resume": [{"interrupt_id": interrupt["id"], **entry}]}
        ).read_all()

    kinds = [f.event_type for f in resumed]
    assert "AgentToolCallEnd" not in kinds and "AgentToolCallStart" not in kinds, "the client ran it"
    said = "".join(f.data["payload"]["char"] for f in resumed if f.event_type == "FinalAnswerStream")
    assert said == answer
    assert kinds[-1] == "FinalAnswerStreamEnd"


def test_a_plain_run_on_the_thread_continues_the_conversation(gateway: Gateway, thread: str) -> None:
    prompts: List[List[str]] = []

    async def model(messages: List[ModelMessage], info: AgentInfo):  # type: ignore[no-untyped-def]
        prompts.append([p.content for m in messages for p in m.parts if p.part_kind == "user-prompt"])
        yield f"Answer {len(prompts)}."

    agent = Agent(FunctionModel(stream_function=model))
    with running_worker(AsyncWorker(pydantic_ai_handler(agent), REDIS_URL, **kit_options(gateway))):
        gateway.start_session({"user_query": "first", "thread_id": thread}).read_all()
        frames = gateway.start_session({"user_query": "second", "thread_id": thread}).read_all()
        gateway.start_session({"user_query": "alone"}).read_all()
    assert prompts == [["first"], ["first", "second"], ["alone"]]
    assert frames[-1].event_type == "FinalAnswerStreamEnd"


def test_a_plain_run_after_an_unanswered_interrupt_closes_its_calls(gateway: Gateway, thread: str) -> None:
    sent: List[Dict[str, Any]] = []
    seen: List[List[ModelMessage]] = []
    handler = pydantic_ai_handler(approval_agent(sent, seen))
    with running_worker(AsyncWorker(handler, REDIS_URL, **kit_options(gateway))):
        asked = gateway.start_session({"user_query": "send the report", "thread_id": thread}).read_all()
        assert asked[-1].event_type == "interrupt"
        again = gateway.start_session({"user_query": "never mind", "thread_id": thread}).read_all()
    assert again[-1].event_type == "FinalAnswerStreamEnd", again[-1].data
    # The model saw the abandoned call closed out, then the new prompt.
    parts = [p for m in seen[-1] for p in m.parts]
    closed = [p for p in parts if p.part_kind == "tool-return" and p.tool_call_id == "call-send"]
    assert len(closed) == 1 and parts[-1].content == "never mind"
    assert sent == []


def test_a_resume_without_the_interrupted_runs_history_is_an_error(
    gateway: Gateway, redis_client: redis.Redis, thread: str
) -> None:
    sent: List[Dict[str, Any]] = []
    handler = pydantic_ai_handler(approval_agent(sent, []))
    with running_worker(AsyncWorker(handler, REDIS_URL, **kit_options(gateway))):
        asked = gateway.start_session({"user_query": "send the report", "thread_id": thread}).read_all()
        (interrupt,) = asked[-1].data["payload"]["interrupts"]
        redis_client.delete(history_key(thread))  # expired
        resumed = gateway.start_session(
            {
                "thread_id": thread,
                "resume": [
                    {"interrupt_id": interrupt["id"], "status": "resolved", "payload": {"approved": True}}
                ],
            }
        ).read_all()
    assert [f.event_type for f in resumed] == ["worker_ack", "error"]
    assert resumed[-1].data["payload"]["code"] == "worker_error"
    assert "has no Pydantic AI history" in resumed[-1].data["payload"]["error"]
    assert sent == []


def test_cancel_stops_the_run(gateway: Gateway, redis_client: redis.Redis, thread: str) -> None:
    progress: Dict[str, Any] = {"pieces": 0}
    stopped_flag: List[str] = []

    async def model(messages: List[ModelMessage], info: AgentInfo):  # type: ignore[no-untyped-def]
        try:
            for n in range(1000):
                progress["pieces"] = n + 1
                yield f"word{n} "
                await asyncio.sleep(0.1)
        except (asyncio.CancelledError, GeneratorExit) as stop:
            stopped_flag.append(type(stop).__name__)
            raise

    agent = Agent(FunctionModel(stream_function=model))
    with running_worker(AsyncWorker(pydantic_ai_handler(agent), REDIS_URL, **kit_options(gateway))):
        stream = gateway.start_session(
            {"user_query": "talk forever", "thread_id": thread, "on_disconnect": "cancel"}
        )
        frames = stream.frames()
        seen = [next(frames).event_type for _ in range(4)]
        stream.close()
        sid = gateway.sessions[-1]
        end = time.monotonic() + 10
        while not stopped_flag and time.monotonic() < end:
            time.sleep(0.05)
        pieces_at_stop = progress["pieces"]
        time.sleep(0.5)
    assert seen == ["worker_ack", "AgentStepStart", "FinalAnswerStream", "FinalAnswerStream"]
    assert stopped_flag, "the model stream was never stopped"
    assert progress["pieces"] == pieces_at_stop < 100, "the model went on after the cancel"
    logged = logged_event_types(redis_client, sid)
    assert "FinalAnswerStreamEnd" not in logged and "Usage" not in logged
    assert redis_client.get(history_key(thread)) is None, "a cancelled run saves no history"


def readme_snippet() -> str:
    """The README's Pydantic AI worker (the first python block of its section)."""
    readme = (ROOT / "clients" / "python" / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Pydantic AI\n", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_worker_runs(gateway: Gateway, thread: str) -> None:
    code = readme_snippet()
    assert len(code.strip().splitlines()) <= 14, code
    # On TestModel, on this gateway's queue, run by the test instead of asyncio.run.
    code = code.replace('Agent("openai:gpt-5.2"', 'Agent(TestModel(custom_output_text="Sent.")')
    code = code.replace('"redis://127.0.0.1:6379")', '"redis://127.0.0.1:6379", **options)')
    code, run_line = code.rstrip().rsplit("\n", 1)
    assert run_line == "asyncio.run(worker.run(handle_signals=True))"
    namespace: Dict[str, Any] = {"TestModel": TestModel, "options": kit_options(gateway)}
    exec(compile(code, "README.md", "exec"), namespace)
    with running_worker(namespace["worker"]):
        asked = gateway.start_session({"user_query": "send the report", "thread_id": thread}).read_all()
        (interrupt,) = asked[-1].data["payload"]["interrupts"]
        assert interrupt["metadata"] == {"tool_name": "send_report", "tool_input": {"to": "a"}}
        resumed = gateway.start_session(
            {
                "thread_id": thread,
                "resume": [
                    {"interrupt_id": interrupt["id"], "status": "resolved", "payload": {"approved": True}}
                ],
            }
        ).read_all()
    ends = [f.data["payload"] for f in resumed if f.event_type == "AgentToolCallEnd"]
    assert ends == [
        {
            "tool_call_id": interrupt["tool_call_id"],
            "tool_name": "send_report",
            "output": {"sent": True, "to": "a"},
        }
    ]
    assert (
        "".join(f.data["payload"]["char"] for f in resumed if f.event_type == "FinalAnswerStream") == "Sent."
    )
    assert resumed[-1].event_type == "FinalAnswerStreamEnd"


# The official clients (node, tests/interop's packages).


def official_client(gateway: Gateway, client: str, decision: str) -> Dict[str, Any]:
    """Runs ``_pydantic_ai_clients.mjs``: the approval scenario through the
    AG-UI ``HttpAgent`` or the AI SDK chat; what the client received."""
    if not (INTEROP / "node_modules").is_dir():
        pytest.fail(f"the official clients are missing: npm ci --prefix {INTEROP}")
    script = Path(__file__).with_name("_pydantic_ai_clients.mjs")
    done = subprocess.run(
        ["node", str(script), str(INTEROP), gateway.url, client, decision],
        capture_output=True,
        text=True,
        timeout=PATIENCE,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def ag_ui_lines(events: List[Dict[str, Any]]) -> List[str]:
    """An AG-UI event per line: its type and the fields that matter here."""
    lines = []
    for event in events:
        fields = {
            key: event[key]
            for key in (
                "stepName",
                "toolCallId",
                "toolCallName",
                "delta",
                "content",
                "outcome",
                "name",
                "usage",
            )
            if key in event
        }
        lines.append(f"{event['type']} {json.dumps(fields)}" if fields else event["type"])
    return lines


@pytest.mark.parametrize("decision", ["approve", "deny"])
def test_the_approval_through_the_ag_ui_client(gateway: Gateway, decision: str) -> None:
    sent: List[Dict[str, Any]] = []
    handler = pydantic_ai_handler(approval_agent(sent, []))
    with running_worker(AsyncWorker(handler, REDIS_URL, **kit_options(gateway))):
        seen = official_client(gateway, "ag-ui", decision)
    first, resumed = seen["runs"]
    print(
        "\n".join(
            ["AG-UI run 1:", *ag_ui_lines(first["events"]), "AG-UI run 2:", *ag_ui_lines(resumed["events"])]
        )
    )
    assert first["failures"] == [] and resumed["failures"] == []
    assert [line for line in ag_ui_lines(first["events"]) if line.startswith("TOOL_CALL")] == [
        'TOOL_CALL_START {"toolCallId": "call-send", "toolCallName": "send_report"}',
        'TOOL_CALL_ARGS {"toolCallId": "call-send", "delta": "{\\"to\\": \\"finance\\"}"}',
        'TOOL_CALL_END {"toolCallId": "call-send"}',
    ]
    (interrupt,) = first["outcome"]["interrupts"]
    assert first["outcome"]["type"] == "interrupt"
    assert (interrupt["reason"], interrupt["toolCallId"], interrupt["message"]) == (
        "tool_call",
        "call-send",
        "Allow send_report?",
    )
    assert seen["pendingAfterFirst"] == [interrupt] and seen["pendingAfterResume"] == []
    types = [e["type"] for e in resumed["events"]]
    assert types[0] == "RUN_STARTED" and types[-1] == "RUN_FINISHED" and "RUN_ERROR" not in types
    assert resumed["outcome"] is None or resumed["outcome"]["type"] != "interrupt"
    results = [e for e in resumed["events"] if e["type"] == "TOOL_CALL_RESULT"]
    assert [e["toolCallId"] for e in results] == ["call-send"]
    answer = "".join(e["delta"] for e in resumed["events"] if e["type"] == "TEXT_MESSAGE_CONTENT")
    if decision == "approve":
        assert json.loads(results[0]["content"]) == {"sent": True}
        assert answer == "Sent the report to finance." and sent == [{"to": "finance"}]
    else:
        assert "not today" in results[0]["content"]
        assert answer == "Okay, I did not send the report (not today)." and sent == []
    # The thread's messages: the call once, its result once, the answer last.
    calls = [c for m in seen["messages"] for c in m.get("toolCalls", [])]
    assert [c["id"] for c in calls] == ["call-send"]
    assert [m.get("toolCallId") for m in seen["messages"] if m["role"] == "tool"] == ["call-send"]
    assert seen["messages"][-1] == {"role": "assistant", "content": answer}


@pytest.mark.parametrize("decision", ["approve", "deny"])
def test_the_approval_through_the_ai_sdk_chat(gateway: Gateway, decision: str) -> None:
    sent: List[Dict[str, Any]] = []
    handler = pydantic_ai_handler(approval_agent(sent, []))
    with running_worker(AsyncWorker(handler, REDIS_URL, **kit_options(gateway))):
        seen = official_client(gateway, "ai-sdk", decision)
    for n, chunks in enumerate(seen["requests"], 1):
        print(f"AI SDK request {n}:", *(json.dumps(c) for c in chunks), sep="\n")
    assert seen["errors"] == []
    first, second = seen["requests"]
    kinds = [c if c == "[DONE]" else c["type"] for c in first]
    assert kinds[kinds.index("tool-input-start") :] == [
        "tool-input-start",
        "tool-input-delta",
        "tool-input-available",
        "finish-step",
        "message-metadata",
        "tool-approval-request",
        "finish",
        "[DONE]",
    ]
    (tool,) = [p for p in seen["asked"]["parts"] if p["type"] == "dynamic-tool"]
    assert (tool["toolCallId"], tool["state"], tool["input"]) == (
        "call-send",
        "approval-requested",
        {"to": "finance"},
    )
    assert seen["messages"] == 2, "the continuation is the same assistant message"
    final = seen["final"]
    assert final["id"] == seen["asked"]["id"]
    (tool,) = [p for p in final["parts"] if p["type"] == "dynamic-tool"]
    texts = [p["text"] for p in final["parts"] if p["type"] == "text"]
    assert final["metadata"]["usage"]["inputTokens"] > 0
    if decision == "approve":
        assert (tool["state"], tool["output"], tool["approval"]["approved"]) == (
            "output-available",
            {"sent": True},
            True,
        )
        assert texts == ["Let me send it. ", "Sent the report to finance."] and sent == [{"to": "finance"}]
    else:
        assert (tool["state"], tool["approval"]["approved"]) == ("output-denied", False)
        assert texts == ["Let me send it. ", "Okay, I did not send the report (not today)."] and sent == []
    assert not any(c != "[DONE]" and c["type"] == "error" for c in first + second)
