"""The frameworks the adapters are tested with are the pinned ones
(``clients/python/constraints-adapters.txt``), so an adapter test never runs
against a version nobody chose."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

CONSTRAINTS = Path(__file__).resolve().parents[2] / "constraints-adapters.txt"


def test_the_installed_frameworks_are_the_pinned_versions() -> None:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, pinned = line.split("==")
            pins[name] = pinned
    assert {"langgraph", "pydantic-ai-slim", "openai-agents"} <= pins.keys()
    for name, pinned in pins.items():
        assert version(name) == pinned, f"{name} {version(name)} installed, {pinned} pinned"
