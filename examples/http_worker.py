"""A worker over plain HTTP: no Redis connection, only httpx.

It long-polls the jobs stream (`/v1/stream/jobs`, gateway started with
`--http-workers` and `--worker-api-key NAME=KEY`) and answers each job by
POSTing the session's events to `/v1/stream/sessions/{id}` as an idempotent
producer: Producer-Id = this worker, Producer-Epoch = the attempt,
Producer-Seq = 0, 1, 2, ... A 403 means another attempt owns the session.

    SSE_BRIDGE_URL=http://127.0.0.1:8000 SSE_BRIDGE_WORKER_KEY=KEY python examples/http_worker.py
Set JOBS=1 to stop after one job.
"""

import json
import os
import uuid

import httpx

BASE = os.environ.get("SSE_BRIDGE_URL", "http://127.0.0.1:8000")
KEY = os.environ["SSE_BRIDGE_WORKER_KEY"]
WORKER = os.environ.get("WORKER_ID", "py-" + uuid.uuid4().hex[:8])
http = httpx.Client(base_url=BASE, headers={"authorization": f"Bearer {KEY}"}, timeout=60)


def serve(job, epoch=0):
    url = f"/v1/stream/sessions/{job['session_id']}"
    seq = 0

    def send(*events):
        nonlocal seq
        r = http.post(url, content=json.dumps(list(events)), headers={
            "content-type": "application/json", "producer-id": WORKER,
            "producer-epoch": str(epoch), "producer-seq": str(seq)})
        seq += 1
        r.raise_for_status()

    send({"event_type": "worker_ack", "payload": {}})
    answer = f"You asked: {job['request'].get('user_query', '')}"
    send(*[{"event_type": "FinalAnswerStream", "payload": {"char": c}} for c in answer])
    send({"event_type": "FinalAnswerStreamEnd", "payload": {}})


def main():
    offset = http.get("/v1/stream/jobs", params={"offset": "now"}).headers["stream-next-offset"]
    print("ready", flush=True)
    done, limit = 0, int(os.environ.get("JOBS", "0"))
    while not limit or done < limit:
        r = http.get("/v1/stream/jobs", params={"offset": offset, "live": "long-poll"})
        r.raise_for_status()
        offset = r.headers["stream-next-offset"]
        for job in (r.json() if r.status_code == 200 else []):
            try:
                serve(job)
            except httpx.HTTPStatusError as e:  # 403: another attempt has it
                print("skipped", job["session_id"], e.response.status_code, flush=True)
            done += 1
    print("served", done, flush=True)


if __name__ == "__main__":
    main()
