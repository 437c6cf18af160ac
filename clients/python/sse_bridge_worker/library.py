"""The Redis function library ``sse_bridge_v4`` that every publish goes through.

``functions.lua`` beside this module is a copy of the gateway's
``crates/sse-bridge-redis/src/functions.lua`` (the kit's tests hold the two
byte-identical). The gateway and the Rust workers load it whenever they
connect; the kit loads it only when Redis says it is missing (a fresh or
restarted Redis that no gateway has reached yet), so it never replaces a
library a newer gateway loaded.
"""

from __future__ import annotations

from importlib import resources

import redis
import redis.asyncio

__all__ = ["FUNCTIONS", "is_library_missing", "load_library", "load_library_async"]

#: The library's source, as shipped with the package.
FUNCTIONS: str = resources.files(__package__).joinpath("functions.lua").read_text(encoding="utf-8")


def is_library_missing(error: redis.ResponseError) -> bool:
    """True when ``error`` is Redis saying an ``FCALL`` names no loaded function."""
    return "function not found" in str(error).lower()


def load_library(client: redis.Redis) -> None:
    """Loads (or replaces) the library with the shipped copy."""
    client.function_load(FUNCTIONS, replace=True)


async def load_library_async(client: redis.asyncio.Redis) -> None:
    """:func:`load_library` for an asyncio client."""
    await client.function_load(FUNCTIONS, replace=True)
