"""``python -m sse_bridge_worker``: runs a worker from the command line,
either the echo demo agent (``--demo``) or a handler of yours
(``--handler package.module:function``; ``async def`` runs on an
``AsyncWorker``, a plain function on a threaded ``Worker``). SIGINT and
SIGTERM stop it gracefully."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import logging
from typing import Any, Callable, List, Optional

from .demo import echo_agent
from .worker import AsyncWorker, Worker


def _load_handler(spec: str) -> Callable[..., Any]:
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise SystemExit(f"--handler wants module:function, got {spec!r}")
    handler: Callable[..., Any] = getattr(importlib.import_module(module_name), function_name)
    if not callable(handler):
        raise SystemExit(f"{spec} is not callable")
    return handler


def _arguments(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sse_bridge_worker", description=__doc__)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--demo", action="store_true", help="run the echo demo agent")
    what.add_argument("--handler", metavar="MODULE:FUNCTION", help="run this handler")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379")
    parser.add_argument("--stream", default="sse_jobs", help="the gateway's --redis-stream")
    parser.add_argument("--group", default="sse_workers", help="the gateway's --group")
    parser.add_argument("--concurrency", type=int, default=64, help="jobs run at once")
    parser.add_argument(
        "--heartbeat", type=float, default=5.0, help="seconds of silence before worker_heartbeat"
    )
    parser.add_argument(
        "--claim-idle",
        type=float,
        default=60.0,
        help="seconds before another worker's pending job is taken over",
    )
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = _arguments(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    options: Any = dict(
        stream=args.stream,
        group=args.group,
        concurrency=args.concurrency,
        heartbeat=args.heartbeat,
        claim_idle=args.claim_idle,
    )
    handler: Callable[..., Any] = echo_agent if args.demo else _load_handler(args.handler)
    if inspect.iscoroutinefunction(handler):
        asyncio.run(AsyncWorker(handler, args.redis_url, **options).run(handle_signals=True))
    else:
        Worker(handler, args.redis_url, **options).run(handle_signals=True)


if __name__ == "__main__":
    main()
