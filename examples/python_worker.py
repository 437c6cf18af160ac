"""A complete sse-bridge worker in Python with nothing but redis-py (PROTOCOL.md §1-2, §4)."""
import json, os, uuid, redis

r = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
stream, group = os.environ.get("SSE_STREAM", "sse_jobs"), os.environ.get("SSE_GROUP", "sse_workers")
try:
    r.xgroup_create(stream, group, id="0", mkstream=True)
except redis.ResponseError:
    pass  # the group exists already

def emit(sid, attempt, event_type, payload):
    """Logs and publishes one event in one call; False: the session takes no more (stop)."""
    event = json.dumps({"event_type": event_type, "payload": payload, "attempt": attempt})
    keys = [f"sse_events:{sid}", f"sse_session_meta:{sid}", f"sse_folded:{sid}"]
    return r.fcall("sse_bridge_v4_append", 3, *keys, event, event_type, attempt)[0] != 0

while True:
    for _stream, entries in r.xreadgroup(group, f"py-{os.getpid()}", {stream: ">"}, count=1, block=5000) or []:
        for entry_id, fields in entries:
            job = json.loads(fields[b"job"])
            sid, attempt = job["session_id"], uuid.uuid4().hex[:16]  # one attempt per delivery
            if emit(sid, attempt, "worker_ack", {}):
                if all(emit(sid, attempt, "FinalAnswerStream", {"char": ch}) for ch in "Echo: " + job["request"]["user_query"]):
                    emit(sid, attempt, "FinalAnswerStreamEnd", {})
            r.xack(stream, group, entry_id)
