// Follows a live demo-agent session of the gateway at GW_URL to its end
// with @durable-streams/client — once by long-poll, once by SSE — and
// checks each read the same events, in the same order, as the session's
// own follower (GET /v1/react/sessions/{id}/events) and its creator's POST.
// Run by crates/sse-bridge/tests/durable_streams.rs; prints one JSON line.
import { stream } from "@durable-streams/client"

const base = process.env.GW_URL
if (!base) throw new Error("GW_URL is required (the gateway's base URL)")
const LIMIT_MS = 30_000

/** The JSON of each `data:` frame of an SSE body. */
function dataFrames(text) {
  return text
    .split("\n\n")
    .flatMap((part) => part.split("\n").filter((l) => l.startsWith("data: ")))
    .map((line) => JSON.parse(line.slice("data: ".length)))
}

/** Every event of the session's stream, read live until it closes. */
async function follow(id, live) {
  const res = await stream({
    url: `${base}/v1/stream/sessions/${id}`,
    offset: "-1",
    live,
    json: true,
  })
  const items = []
  for await (const item of res.jsonStream()) items.push(item)
  return { items, closed: res.streamClosed, offset: res.offset }
}

async function main() {
  const post = await fetch(`${base}/v1/react/sessions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user_query: "What is 2+3?" }),
  })
  const id = post.headers.get("x-session-id")
  if (!id) throw new Error(`no x-session-id (status ${post.status})`)
  const posted = post.text().then(dataFrames)
  // Both start while the agent is still answering.
  const [longPoll, sse] = await Promise.all([follow(id, "long-poll"), follow(id, "sse")])
  const created = await posted
  const replay = dataFrames(
    await (await fetch(`${base}/v1/react/sessions/${id}/events`)).text(),
  )
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b)
  const report = {
    session: id,
    events: replay.length,
    last: replay.at(-1)?.event_type,
    longPoll: { count: longPoll.items.length, closed: longPoll.closed, same: same(longPoll.items, replay) },
    sse: { count: sse.items.length, closed: sse.closed, same: same(sse.items, replay) },
    creatorSame: same(created, replay),
  }
  console.log(JSON.stringify(report))
  const ok =
    report.events > 3 &&
    report.last === "FinalAnswerStreamEnd" &&
    longPoll.closed && sse.closed &&
    report.longPoll.same && report.sse.same && report.creatorSame
  process.exit(ok ? 0 : 1)
}

const timer = setTimeout(() => {
  console.error(`no end within ${LIMIT_MS} ms`)
  process.exit(2)
}, LIMIT_MS)
main().then(() => clearTimeout(timer), (error) => {
  console.error(error)
  process.exit(3)
})
