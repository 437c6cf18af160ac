"""The Python `durable-streams` client (PyPI, pinned in .ci/run) against the
gateway at GW_URL: a plain stream created, appended to and read back with
`DurableStream` and `stream()`, then a live demo-agent session followed at
`/v1/stream/sessions/{id}` to its end, once by long-poll and once by SSE,
each reading the same events in the same order as the session's own
follower (GET /v1/react/sessions/{id}/events).

durable-streams 0.1.0 predates `Stream-Closed`: a live read never ends on
its own, so a follower stops at the session's terminal event (as an agent
UI would) and a closed plain stream is read with `live=False`.

Run by crates/sse-bridge/tests/durable_streams.rs; prints one JSON line and
exits 0 when every check holds.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import uuid

import httpx
from durable_streams import DurableStream, stream

BASE = os.environ["GW_URL"]
LIMIT_S = 30.0


def data_frames(text: str) -> list:
    """The JSON of each `data:` line of an SSE body."""
    return [
        json.loads(line[len("data: ") :])
        for line in text.splitlines()
        if line.startswith("data: ")
    ]


TERMINAL = {"FinalAnswerStreamEnd", "error", "interrupt"}


def plain_stream() -> dict:
    """Create, append (JSON messages), read back, close, read again."""
    url = f"{BASE}/v1/stream/py-client/{uuid.uuid4().hex}"
    with DurableStream.create(url, content_type="application/json", body=[{"n": 0}]) as ds:
        ds.append({"n": 1})
        ds.append({"n": 2})
    with stream(url, offset="-1", live=False) as res:
        items = list(res.iter_json())
    close = httpx.post(url, headers={"stream-closed": "true"}, timeout=LIMIT_S)
    with stream(url, offset="-1", live=False) as res:
        after_close = list(res.iter_json())
        closed = res.headers.get("stream-closed") == "true"
    return {
        "ok": items == [{"n": 0}, {"n": 1}, {"n": 2}] and after_close == items and closed,
        "items": len(items),
        "close_status": close.status_code,
        "closed": closed,
    }


def follow(session: str, live: str, into: dict) -> None:
    """Every event of the session's stream, read live to its terminal one."""
    url = f"{BASE}/v1/stream/sessions/{session}"
    items = []
    with stream(url, offset="-1", live=live, timeout=LIMIT_S) as res:
        for item in res.iter_json():
            items.append(item)
            if item.get("event_type") in TERMINAL:
                break
        into["offset"] = res.offset
    into["items"] = items


def session_streams() -> dict:
    with httpx.Client(timeout=LIMIT_S) as http:
        with http.stream(
            "POST", f"{BASE}/v1/react/sessions", json={"user_query": "What is 2+3?"}
        ) as post:
            session = post.headers["x-session-id"]
            # Both readers start while the agent is still answering.
            reads = {"long-poll": {}, "sse": {}}
            threads = [
                threading.Thread(target=follow, args=(session, live, into), daemon=True)
                for live, into in reads.items()
            ]
            for thread in threads:
                thread.start()
            created = data_frames(post.read().decode())
            for thread in threads:
                thread.join(LIMIT_S)
        replay = data_frames(http.get(f"{BASE}/v1/react/sessions/{session}/events").text)
    report = {"session": session, "events": len(replay), "last": replay[-1]["event_type"]}
    ok = len(replay) > 3 and report["last"] == "FinalAnswerStreamEnd" and created == replay
    for live, read in reads.items():
        same = read.get("items") == replay
        report[live] = {"count": len(read.get("items", [])), "same": same}
        ok = ok and same
    report["ok"] = ok
    return report


def main() -> int:
    report = {"plain": plain_stream(), "session": session_streams()}
    print(json.dumps(report))
    return 0 if report["plain"]["ok"] and report["session"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
