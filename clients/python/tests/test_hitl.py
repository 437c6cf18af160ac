"""Human in the loop (PROTOCOL §8) on the real gateway and Redis: an
``interrupt`` ends the run (no ``FinalAnswerStreamEnd`` in its log), a
resume on the thread gives the handler the typed answers, a tool approval
(approved, denied, cancelled) and a client tool publish their events under
one tool call id, and tool calls get ids by default. Plus the checks made
before anything is published, and the reading of a resumed job, without
Redis."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Iterator, List, Optional

import pytest
import redis
from conftest import Frame, Gateway, kit_options, running_gateway, running_worker, unique

from sse_bridge_worker import (
    AsyncSession,
    AsyncWorker,
    Interrupt,
    Job,
    Resume,
    Session,
    ToolCall,
    Worker,
)
from sse_bridge_worker.interrupts import interrupt_payload
from sse_bridge_worker.publish import log_key

REDIS_URL = "redis://127.0.0.1:6379"
KINDS = ["async", "sync"]
CALL_ID = re.compile("call-[0-9a-f]{32}")
INTERRUPT_ID = re.compile("int-[0-9a-f]{32}")


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    with running_gateway() as gateway:
        yield gateway


@pytest.fixture
def thread(redis_client: redis.Redis) -> Iterator[str]:
    """A fresh thread id; its record is deleted afterwards."""
    thread_id = unique("pykit_thread")
    yield thread_id
    redis_client.delete(f"sse_thread:{thread_id}")


def events(frames: List[Frame]) -> List[tuple]:
    return [(f.event_type, f.data["payload"]) for f in frames]


def logged_event_types(client: redis.Redis, session_id: str) -> List[str]:
    """The event types in the session's log (``sse_events:<id>``), in order."""
    return [json.loads(fields["e"])["event_type"] for _, fields in client.xrange(log_key(session_id))]


def resume_thread(gateway: Gateway, thread: str, entries: List[Dict[str, Any]]) -> List[Frame]:
    return gateway.start_session({"thread_id": thread, "resume": entries}).read_all()


@pytest.mark.parametrize("kind", KINDS)
def test_an_interrupt_ends_the_run_without_an_answer_end(
    gateway: Gateway, redis_client: redis.Redis, thread: str, kind: str
) -> None:
    ended: List[bool] = []
    expires = datetime.now(timezone.utc) + timedelta(hours=1)
    asked = [
        Interrupt("input_required", message="Which account?", response_schema={"type": "string"}),
        {"reason": "confirmation", "message": "Really?", "expires_at": "2099-01-01T00:00:00Z"},
        Interrupt("confirmation", id="mine", expires_at=expires, metadata={"step": 3}),
    ]

    async def agent(session: AsyncSession) -> None:
        await session.thought("I need to ask.")
        await session.interrupt(asked)
        ended.append(session.ended)

    def threaded_agent(session: Session) -> None:
        session.thought("I need to ask.")
        session.interrupt(asked)
        ended.append(session.ended)

    worker = (
        AsyncWorker(agent, REDIS_URL, **kit_options(gateway))
        if kind == "async"
        else Worker(threaded_agent, REDIS_URL, **kit_options(gateway))
    )
    with running_worker(worker):
        frames = gateway.start_session({"user_query": "transfer money", "thread_id": thread}).read_all()
    sid = gateway.sessions[-1]

    assert [f.event_type for f in frames] == ["worker_ack", "AgentThoughtStream", "interrupt"]
    interrupts = frames[-1].data["payload"]["interrupts"]
    assert INTERRUPT_ID.fullmatch(interrupts[0]["id"]) and INTERRUPT_ID.fullmatch(interrupts[1]["id"])
    assert interrupts[0]["id"] != interrupts[1]["id"]
    assert interrupts == [
        {
            "id": interrupts[0]["id"],
            "reason": "input_required",
            "message": "Which account?",
            "response_schema": {"type": "string"},
        },
        {
            "id": interrupts[1]["id"],
            "reason": "confirmation",
            "message": "Really?",
            "expires_at": "2099-01-01T00:00:00Z",
        },
        {
            "id": "mine",
            "reason": "confirmation",
            "expires_at": expires.isoformat().replace("+00:00", "Z"),
            "metadata": {"step": 3},
        },
    ]
    assert ended == [True]
    assert redis_client.xpending(gateway.stream, gateway.group)["pending"] == 0, "the job was acknowledged"
    assert logged_event_types(redis_client, sid) == ["worker_ack", "AgentThoughtStream", "interrupt"]
    assert "FinalAnswerStreamEnd" not in logged_event_types(redis_client, sid)
    # The gateway made them the thread's open interrupts: a resume must answer all three.
    assert redis_client.exists(f"sse_thread:{thread}")


async def approving_agent(session: AsyncSession, seen: List[Resume]) -> None:
    """Asks before it sends the report; resumed, ends the call as decided."""
    resume = session.resume
    if resume is None:
        await session.thought("Sending a report leaves the company.")
        await session.request_approval(
            "send_report", {"to": "finance"}, message="Send the report to finance?"
        )
        return
    seen.append(resume)
    approval = resume.approval("send_report")
    assert approval is not None, resume
    if approval.approved:
        await session.tool_end(approval.call, {"sent": True})
        await session.answer("Sent the report to finance.")
    else:
        await session.tool_denied(approval.call, approval.reason)
        await session.answer("I did not send the report.")


@pytest.mark.parametrize(
    "status, payload, end",
    [
        ("resolved", {"approved": True}, {"output": {"sent": True}}),
        ("resolved", {"approved": False, "reason": "not today"}, {"denied": True, "error": "not today"}),
        ("cancelled", None, {"denied": True, "error": "denied"}),
    ],
    ids=["approved", "denied", "cancelled"],
)
def test_a_tool_approval_ends_the_call_it_started_as_decided(
    gateway: Gateway,
    redis_client: redis.Redis,
    thread: str,
    status: str,
    payload: Optional[Dict[str, Any]],
    end: Dict[str, Any],
) -> None:
    seen: List[Resume] = []

    async def agent(session: AsyncSession) -> None:
        await approving_agent(session, seen)

    with running_worker(AsyncWorker(agent, REDIS_URL, **kit_options(gateway))):
        asked = gateway.start_session({"user_query": "send the report", "thread_id": thread}).read_all()
        first_sid = gateway.sessions[-1]
        assert [f.event_type for f in asked] == [
            "worker_ack",
            "AgentThoughtStream",
            "AgentToolCallStart",
            "interrupt",
        ]
        start = asked[2].data["payload"]
        call_id = start["tool_call_id"]
        assert CALL_ID.fullmatch(call_id)
        assert start == {"tool_call_id": call_id, "tool_name": "send_report", "tool_input": {"to": "finance"}}
        (interrupt,) = asked[3].data["payload"]["interrupts"]
        assert INTERRUPT_ID.fullmatch(interrupt["id"])
        assert interrupt == {
            "id": interrupt["id"],
            "reason": "tool_call",
            "message": "Send the report to finance?",
            "tool_call_id": call_id,
            "metadata": {"tool_name": "send_report", "tool_input": {"to": "finance"}},
        }
        assert "FinalAnswerStreamEnd" not in logged_event_types(redis_client, first_sid)

        entry: Dict[str, Any] = {"interrupt_id": interrupt["id"], "status": status}
        if payload is not None:
            entry["payload"] = payload
        resumed = resume_thread(gateway, thread, [entry])

    assert [f.event_type for f in resumed] == [
        "worker_ack",
        "AgentToolCallEnd",
        "FinalAnswerStream",
        "FinalAnswerStreamEnd",
    ], "the resumed run ends the call it started, never starts it again"
    assert resumed[1].data["payload"] == {"tool_call_id": call_id, "tool_name": "send_report", **end}

    (resume,) = seen
    assert resume.thread_id == thread
    assert resume.parent_session_id == first_sid
    assert resume.parent_request is not None and resume.parent_request["user_query"] == "send the report"
    (answer,) = resume.answers
    assert (answer.interrupt_id, answer.status, answer.payload) == (interrupt["id"], status, payload)
    assert answer.interrupt is not None and answer.interrupt.to_dict() == interrupt
    approval = resume.approval(tool_call_id=call_id)
    assert approval is not None and approval.approved == (end.get("output") is not None)
    assert approval.call == ToolCall("send_report", {"to": "finance"}, call_id)
    assert resume.client_results == ()


def test_a_client_tool_is_handed_over_and_its_output_read_back(
    gateway: Gateway, redis_client: redis.Redis, thread: str
) -> None:
    seen: List[Resume] = []

    def agent(session: Session) -> None:
        resume = session.resume
        if resume is None:
            session.call_client_tool("browser_time", {"format": "HH:MM"}, message="What time is it for you?")
            return
        seen.append(resume)
        result = resume.client_result("browser_time")
        assert result is not None and not result.cancelled
        session.answer(f"Your browser says it is {result.output}.")

    with running_worker(Worker(agent, REDIS_URL, **kit_options(gateway))):
        asked = gateway.start_session({"user_query": "what time is it", "thread_id": thread}).read_all()
        assert [f.event_type for f in asked] == ["worker_ack", "AgentToolCallStart", "interrupt"]
        start = asked[1].data["payload"]
        call_id = start["tool_call_id"]
        assert CALL_ID.fullmatch(call_id)
        assert start == {
            "tool_call_id": call_id,
            "tool_name": "browser_time",
            "tool_input": {"format": "HH:MM"},
            "executor": "client",
        }
        (interrupt,) = asked[2].data["payload"]["interrupts"]
        assert interrupt == {
            "id": interrupt["id"],
            "reason": "tool_call",
            "message": "What time is it for you?",
            "tool_call_id": call_id,
            "metadata": {
                "tool_name": "browser_time",
                "tool_input": {"format": "HH:MM"},
                "executor": "client",
            },
        }
        resumed = resume_thread(
            gateway, thread, [{"interrupt_id": interrupt["id"], "status": "resolved", "payload": "10:00"}]
        )

    assert events(resumed) == [
        ("worker_ack", {}),
        ("FinalAnswerStream", {"char": "Your browser says it is 10:00."}),
        ("FinalAnswerStreamEnd", {}),
    ]
    (resume,) = seen
    (result,) = resume.client_results
    assert (result.call.id, result.call.executor, result.output) == (call_id, "client", "10:00")
    assert resume.approvals == ()


def test_tool_calls_get_ids_and_pair_by_name_oldest_first(gateway: Gateway) -> None:
    failures: List[BaseException] = []

    async def agent(session: AsyncSession) -> None:
        first = await session.tool_start("search", {"q": "a"})
        second = await session.tool_start("search", {"q": "b"})
        mine = await session.tool_start("fetch", "https://example.com", tool_call_id="my-call")
        await session.tool_end("search", ["a1"])  # the oldest open search: `first`
        await session.tool_end(second, error="search timed out")
        await session.tool_end(mine, None)
        try:
            await session.tool_end("search", "nothing open")
        except ValueError as error:
            failures.append(error)
        assert first.id != second.id

    with running_worker(AsyncWorker(agent, REDIS_URL, **kit_options(gateway))):
        frames = gateway.start_session({"user_query": "search twice"}).read_all()

    starts = [f.data["payload"] for f in frames if f.event_type == "AgentToolCallStart"]
    ends = [f.data["payload"] for f in frames if f.event_type == "AgentToolCallEnd"]
    first_id, second_id = starts[0]["tool_call_id"], starts[1]["tool_call_id"]
    assert CALL_ID.fullmatch(first_id) and CALL_ID.fullmatch(second_id) and first_id != second_id
    assert starts[2] == {"tool_call_id": "my-call", "tool_name": "fetch", "tool_input": "https://example.com"}
    assert ends == [
        {"tool_call_id": first_id, "tool_name": "search", "output": ["a1"]},
        {"tool_call_id": second_id, "tool_name": "search", "error": "search timed out"},
        {"tool_call_id": "my-call", "tool_name": "fetch", "output": None},
    ]
    assert frames[-1].event_type == "FinalAnswerStreamEnd"
    assert len(failures) == 1 and "no call of tool 'search' is open" in str(failures[0])


def test_a_resume_answering_several_interrupts_is_read_in_the_clients_order(
    gateway: Gateway, thread: str
) -> None:
    seen: List[Resume] = []

    async def agent(session: AsyncSession) -> None:
        if session.resume is None:
            report = ToolCall("send_report", {"to": "finance"})
            clock = ToolCall("browser_time", {}, executor="client")
            await session.tool_start(report.name, report.input, tool_call_id=report.id)
            await session.publish("AgentToolCallStart", clock.start_payload())
            await session.interrupt(
                [
                    Interrupt("input_required", id="account", message="Which account?"),
                    report.interrupt("Send it?"),
                    clock.interrupt(),
                ]
            )
            return
        seen.append(session.resume)
        assert session.thread_id == thread

    with running_worker(AsyncWorker(agent, REDIS_URL, **kit_options(gateway))):
        asked = gateway.start_session({"user_query": "do three things", "thread_id": thread}).read_all()
        interrupts = asked[-1].data["payload"]["interrupts"]
        entries = [
            {"interrupt_id": interrupts[2]["id"], "status": "cancelled"},
            {"interrupt_id": "account", "status": "resolved", "payload": "savings"},
            {"interrupt_id": interrupts[1]["id"], "status": "resolved", "payload": {"approved": True}},
        ]
        resumed = resume_thread(gateway, thread, entries)

    assert [f.event_type for f in resumed] == ["worker_ack", "FinalAnswerStreamEnd"]
    (resume,) = seen
    assert [(a.interrupt_id, a.status, a.payload) for a in resume.answers] == [
        (interrupts[2]["id"], "cancelled", None),
        ("account", "resolved", "savings"),
        (interrupts[1]["id"], "resolved", {"approved": True}),
    ]
    account = resume.answer("account")
    assert account is not None and account.resolved and account.tool_call is None
    assert account.interrupt == Interrupt("input_required", id="account", message="Which account?")
    (approval,) = resume.approvals
    assert (approval.call.name, approval.approved, approval.reason) == ("send_report", True, None)
    (clock,) = resume.client_results
    assert (clock.call.name, clock.cancelled, clock.output) == ("browser_time", True, None)
    assert resume.approval("browser_time") is None and resume.client_result("send_report") is None


# Without Redis: the checks before publishing, and the reading of a job.


def resumed_job(entries: Any, interrupts: Optional[List[Dict[str, Any]]]) -> Job:
    return Job(
        session_id="s2",
        request={"thread_id": "t", "resume": entries},
        created_at=0,
        entry_id="0-1",
        parent_session_id="s1",
        parent_request={"user_query": "q"},
        interrupts=interrupts,
    )


def test_a_plain_job_resumes_nothing_and_a_malformed_resume_is_an_error() -> None:
    plain = Job(session_id="s", request={"user_query": "q"}, created_at=0, entry_id="0-1")
    assert Resume.of(plain) is None
    with pytest.raises(ValueError, match=r"request.resume\[0\] must be"):
        Resume.of(resumed_job([{"interrupt_id": "i", "status": "maybe"}], None))
    with pytest.raises(ValueError, match="must be an array"):
        Resume.of(resumed_job({"interrupt_id": "i"}, None))


def test_an_approval_answered_with_no_decision_is_an_error_not_an_approval() -> None:
    call = ToolCall("send_report", {"to": "finance"})
    job = resumed_job(
        [{"interrupt_id": "i", "status": "resolved", "payload": "yes"}],
        [call.interrupt("Send?").to_dict() | {"id": "i"}],
    )
    resume = Resume.of(job)
    assert resume is not None
    with pytest.raises(ValueError, match="is answered with"):
        resume.approval()
    # An answer to an interrupt the job does not carry is kept, about nothing.
    resume = Resume.of(resumed_job([{"interrupt_id": "gone", "status": "resolved"}], []))
    assert resume is not None and resume.answers[0].interrupt is None and resume.approvals == ()


@pytest.mark.parametrize(
    "interrupts, problem",
    [
        ([], "1 to 64 interrupts"),
        ([{"message": "no reason"}], "reason must be a non-empty string"),
        ([{"id": "", "reason": "x"}], "id must be a non-empty string"),
        ([Interrupt("x", id="same"), {"id": "same", "reason": "y"}], "two interrupts have the id 'same'"),
        ([Interrupt("x", expires_at=datetime(2030, 1, 1))], "aware datetime"),
        ([Interrupt("x") for _ in range(65)], "1 to 64 interrupts"),
    ],
)
def test_an_interrupt_the_gateway_would_refuse_is_an_error_before_publishing(
    interrupts: List[Any], problem: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        interrupt_payload(interrupts)


def test_a_failing_interrupt_call_publishes_nothing(gateway: Gateway, redis_client: redis.Redis) -> None:
    async def agent(session: AsyncSession) -> None:
        await session.interrupt([])

    with running_worker(AsyncWorker(agent, REDIS_URL, **kit_options(gateway))):
        frames = gateway.start_session({"user_query": "ask nothing"}).read_all()
    assert [f.event_type for f in frames] == ["worker_ack", "error"]
    assert frames[-1].data["payload"]["error"].startswith("ValueError: an interrupt event carries 1 to 64")
