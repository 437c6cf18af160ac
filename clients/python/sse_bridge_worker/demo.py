"""The echo agent of ``python -m sse_bridge_worker --demo``: it thinks
aloud, "calls" a tool that measures the question, and streams the question
back as its answer, one character at a time (sent: the characters that
queue up while an append is in flight go to Redis in one call)."""

from __future__ import annotations

import asyncio

from .session import AsyncSession

__all__ = ["echo_agent"]

#: Pause after each character streamed, seconds.
CHARACTER_DELAY = 0.01


async def echo_agent(session: AsyncSession) -> None:
    query = str(session.request.get("user_query", ""))
    for char in "I will repeat the question.":
        await session.send("AgentThoughtStream", {"char": char})
        await asyncio.sleep(CHARACTER_DELAY)
    await session.tool_start("length", {"text": query})
    await session.tool_end("length", len(query))
    for char in f"Echo: {query}":
        await session.send("FinalAnswerStream", {"char": char})
        await asyncio.sleep(CHARACTER_DELAY)
