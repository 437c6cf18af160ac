"""Offline LangGraph agents for the adapter's tests: a scripted chat model
(LangChain's ``BaseChatModel``, streaming text, reasoning, tool call chunks
and usage like a provider does) and the graphs the tests run as workers.

The graph of :func:`agent_graph`: ``research`` (a subgraph that writes a
custom ``progress`` part) → ``agent`` (the model) → ``approve`` (a graph
``interrupt()`` before ``send_report`` runs, naming its ``tool_call_id``;
a denial answers the call with an error ``ToolMessage``) → ``tools``
(LangGraph's ``ToolNode``) → ``agent`` ... until the model answers without
tool calls.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator, Dict, List, Optional

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command, interrupt
from pydantic import PrivateAttr


class ScriptedChatModel(BaseChatModel):
    """Answers with the next message of ``script``, streamed word by word
    (its ``additional_kwargs["reasoning_content"]`` first, then its text,
    then each tool call's arguments in three pieces), with usage on the
    last chunk; ``delay`` seconds between chunks."""

    script: List[AIMessage]
    delay: float = 0.0
    _next: int = PrivateAttr(default=0)
    #: Set once a stream was cancelled (the cancel test).
    cancelled: Any = None

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> "ScriptedChatModel":
        return self

    def _take(self) -> AIMessage:
        message = self.script[self._next]
        self._next += 1
        return message

    def _generate(self, messages: List[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._take())])

    async def _astream(
        self, messages: List[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        message = self._take()
        chunks: List[AIMessageChunk] = []
        reasoning = message.additional_kwargs.get("reasoning_content", "")
        for word in _words(reasoning):
            chunks.append(AIMessageChunk(content="", additional_kwargs={"reasoning_content": word}))
        for word in _words(str(message.content)):
            chunks.append(AIMessageChunk(content=word))
        for index, call in enumerate(message.tool_calls):
            args = json.dumps(call["args"])
            pieces = [args[: len(args) // 3], args[len(args) // 3 : 2 * len(args) // 3], args[2 * len(args) // 3 :]]
            for n, piece in enumerate(pieces):
                chunks.append(
                    AIMessageChunk(
                        content="",
                        tool_call_chunks=[
                            {
                                "type": "tool_call_chunk",
                                "index": index,
                                "id": call["id"] if n == 0 else None,
                                "name": call["name"] if n == 0 else None,
                                "args": piece,
                            }
                        ],
                    )
                )
        usage = message.usage_metadata
        chunks.append(
            AIMessageChunk(content="", usage_metadata=usage, response_metadata={"model_name": "scripted-1"})
            if usage
            else AIMessageChunk(content="")
        )
        finished = False
        try:
            for chunk in chunks:
                if self.delay:
                    await asyncio.sleep(self.delay)
                yield ChatGenerationChunk(message=chunk)
            finished = True
        finally:
            # Cancelled, or closed by a cancelled consumer.
            if not finished and self.cancelled is not None:
                self.cancelled.set()


def _words(text: str) -> List[str]:
    """``text`` in pieces that keep their spaces ("It ", "is ", "sunny.")."""
    words = text.split(" ")
    return [w + " " for w in words[:-1]] + [words[-1]] if text else []


def usage(input_tokens: int, output_tokens: int) -> Dict[str, int]:
    return {"input_tokens": input_tokens, "output_tokens": output_tokens, "total_tokens": input_tokens + output_tokens}


@tool
def search(q: str) -> str:
    """Searches the web."""
    return f"Sunny in {q}"


@tool
def flaky(x: int) -> str:
    """Always fails."""
    raise ValueError(f"flaky broke on {x}")


@tool
def send_report(to: str) -> Dict[str, Any]:
    """Sends the report (needs approval)."""
    return {"sent": True, "to": to}


NEEDS_APPROVAL = {"send_report"}


def _research_subgraph() -> Any:
    def lookup(state: MessagesState) -> Dict[str, Any]:
        get_stream_writer()({"name": "progress", "id": "research", "data": {"done": True}})
        return {}

    builder = StateGraph(MessagesState)
    builder.add_node("lookup", lookup)
    builder.add_edge(START, "lookup")
    builder.add_edge("lookup", END)
    return builder.compile()


def agent_graph(model: ScriptedChatModel, checkpointer: Optional[Any] = None) -> Any:
    """The graph the tests run (see the module's doc), compiled."""
    return agent_builder(model).compile(checkpointer=checkpointer or InMemorySaver())


def agent_builder(model: ScriptedChatModel) -> StateGraph:
    """The graph the tests run (see the module's doc), to compile."""

    async def agent(state: MessagesState) -> Dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    def route(state: MessagesState) -> str:
        last = state["messages"][-1]
        return "approve" if isinstance(last, AIMessage) and last.tool_calls else END

    def approve(state: MessagesState) -> Command:
        last = state["messages"][-1]
        refusals = []
        for call in last.tool_calls:
            if call["name"] not in NEEDS_APPROVAL:
                continue
            decision = interrupt(
                {"tool_call_id": call["id"], "message": f"Send the report to {call['args']['to']}?"}
            )
            if not decision.get("approved"):
                reason = decision.get("reason") or "denied"
                refusals.append(ToolMessage(content=f"Denied: {reason}", tool_call_id=call["id"], status="error"))
        if refusals:
            return Command(goto="agent", update={"messages": refusals})
        return Command(goto="tools")

    builder = StateGraph(MessagesState)
    builder.add_node("research", _research_subgraph())
    builder.add_node("agent", agent)
    builder.add_node("approve", approve, destinations=("tools", "agent"))
    builder.add_node("tools", ToolNode([search, flaky, send_report], handle_tool_errors=True))
    builder.add_edge(START, "research")
    builder.add_edge("research", "agent")
    builder.add_conditional_edges("agent", route, ["approve", END])
    builder.add_edge("tools", "agent")
    return builder


def asking_graph() -> Any:
    """A graph whose subgraph asks a question (``interrupt("Which
    account?")``) and answers with what it was told."""

    def ask(state: MessagesState) -> Dict[str, Any]:
        account = interrupt("Which account?")
        return {"messages": [AIMessage(f"Paying from {account}.")]}

    inner = StateGraph(MessagesState)
    inner.add_node("ask", ask)
    inner.add_edge(START, "ask")
    inner.add_edge("ask", END)
    builder = StateGraph(MessagesState)
    builder.add_node("payment", inner.compile())
    builder.add_edge(START, "payment")
    builder.add_edge("payment", END)
    return builder.compile(checkpointer=InMemorySaver())
