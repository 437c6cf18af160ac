"""A complete sse-bridge worker in Python with nothing but redis-py (PROTOCOL.md §1-2)."""
import json, os, redis

r = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
stream, group = os.environ.get("SSE_STREAM", "sse_jobs"), os.environ.get("SSE_GROUP", "sse_workers")
try:
    r.xgroup_create(stream, group, id="0", mkstream=True)
except redis.ResponseError:
    pass  # the group exists already

def emit(session_id, event_type, payload):
    r.publish(f"sse_session:{session_id}", json.dumps({"event_type": event_type, "payload": payload}))

while True:
    for _stream, entries in r.xreadgroup(group, f"py-{os.getpid()}", {stream: ">"}, count=1, block=5000) or []:
        for entry_id, fields in entries:
            job = json.loads(fields[b"job"])
            sid = job["session_id"]
            emit(sid, "worker_ack", {})
            for ch in "Echo: " + job["request"]["user_query"]:
                emit(sid, "FinalAnswerStream", {"char": ch})
            emit(sid, "FinalAnswerStreamEnd", {})
            r.xack(stream, group, entry_id)
