"""Adapters: an agent written with a framework becomes an sse-bridge worker
in a few lines, its stream mapped to the native events (PROTOCOL §2, §8,
§9) so every client format shows it as its own parts.

Each adapter is a submodule with an optional extra of the package, imported
only when used:

* ``sse_bridge_worker.adapters.langgraph`` — ``pip install sse-bridge-worker[langgraph]``
* ``sse_bridge_worker.adapters.pydantic_ai`` — ``pip install sse-bridge-worker[pydantic-ai]``
* ``sse_bridge_worker.adapters.openai_agents`` — ``pip install sse-bridge-worker[openai-agents]``
"""
