// Follows a live demo-agent session of the gateway at GW_URL with
// @durable-streams/client through cut-proxy.mjs, which cuts the client's
// connections mid-response: by long-poll and by SSE, each reader resumes
// from the offset the client last reported (`res.offset`) and must read
// every event of the session exactly once, in order (compared with
// GET /v1/react/sessions/{id}/events read directly). A batch the client
// hands over without a new offset (its SSE bug, below) is dropped, not
// counted as read. Run by
// crates/sse-bridge/tests/durable_streams_cuts.rs; prints one JSON line.
import { stream } from "@durable-streams/client"
import { startCutProxy } from "./cut-proxy.mjs"

const base = process.env.GW_URL
if (!base) throw new Error("GW_URL is required (the gateway's base URL)")
const LIMIT_MS = 60_000

/** The JSON of each `data:` frame of an SSE body. */
function dataFrames(text) {
  return text
    .split("\n\n")
    .flatMap((part) => part.split("\n").filter((l) => l.startsWith("data: ")))
    .map((line) => JSON.parse(line.slice("data: ".length)))
}

/**
 * Every event of the session's stream through `proxy`, read live until
 * it closes; when a read fails (a cut the client did not absorb), a new
 * `stream()` resumes from the last offset the client reported.
 */
async function follow(proxy, id, live) {
  const items = []
  let offset = "-1"
  let restarts = 0
  let unconfirmed = 0
  let closed = false
  let quiet = 0
  let attempts = 0
  const log = []
  for (;;) {
    let res
    try {
      res = await stream({
        url: `${proxy}/v1/stream/sessions/${id}`,
        offset,
        live,
        json: true,
        backoffOptions: { initialDelay: 10, maxDelay: 100, multiplier: 1.5 },
        sseResilience: { logWarnings: false },
      })
      // Batches carry the offset after them: a cut mid-batch re-reads it
      // whole. A batch of an abandoned attempt is ignored (re-read).
      const attempt = ++attempts
      await new Promise((resolve, reject) => {
        const unsubscribe = res.subscribeJson(async (batch) => {
          if (attempt !== attempts) return
          // @durable-streams/client (0.2.6 and 0.2.7, its `controlDone`
          // path): when an SSE response ends cleanly after `event: data`
          // but before its `event: control`, the data is handed over with
          // the *previous* offset, then re-read from it after the
          // reconnect. A cut is an error, not a clean end, and this gateway
          // always follows data with control, so it is not expected here;
          // data never leaves an offset where it was, so such a batch would
          // be dropped (and counted).
          if (batch.items.length > 0 && batch.offset === offset) {
            unconfirmed++
            return
          }
          log.push(`${offset} -> ${batch.offset}: ${batch.items.length} at ${items.length}`)
          items.push(...batch.items)
          offset = batch.offset
          closed = batch.streamClosed
          if (closed) resolve()
        })
        // `closed` settles once the client has fetched its last response,
        // maybe before the subscriber got it: let the subscriber drain.
        const settle = (then) => () => setTimeout(then, 300)
        res.closed.then(settle(resolve), (e) => settle(() => reject(e))())
        void unsubscribe
      })
      // Only a batch handed over says the stream closed: the response's own
      // `streamClosed` and `offset` move on with a page's headers, before
      // its body is read (and a cut body may end the response quietly).
      if (closed) return { items, restarts, quiet, unconfirmed, offset, log }
      log.push(`ended before the close, from ${offset}`)
      quiet++
      restarts++
      attempts++
    } catch (error) {
      log.push(`restart from ${offset}: ${error}`)
      restarts++
      attempts++
    }
    if (restarts > 200) throw new Error(`${live}: 200 restarts`)
  }
}

async function main() {
  const upstream = new URL(base).host
  // Connection k forwards 300·(k+1) bytes (±50%) at most, then is cut.
  const proxy = await startCutProxy(upstream, (k) => Math.floor(300 * (k + 1) * (0.5 + Math.random())))
  const post = await fetch(`${base}/v1/react/sessions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user_query: "What is 2+3?" }),
  })
  const id = post.headers.get("x-session-id")
  if (!id) throw new Error(`no x-session-id (status ${post.status})`)
  const posted = post.text().then(dataFrames)
  const [longPoll, sse] = await Promise.all([
    follow(proxy.url, id, "long-poll"),
    follow(proxy.url, id, "sse"),
  ])
  await posted
  proxy.close()
  const replay = dataFrames(
    await (await fetch(`${base}/v1/react/sessions/${id}/events`)).text(),
  )
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b)
  const report = {
    session: id,
    events: replay.length,
    last: replay.at(-1)?.event_type,
    connections: proxy.stats.connections,
    cuts: proxy.stats.cuts,
    longPoll: {
      count: longPoll.items.length,
      restarts: longPoll.restarts,
      quiet: longPoll.quiet,
      unconfirmed: longPoll.unconfirmed,
      same: same(longPoll.items, replay),
    },
    sse: {
      count: sse.items.length,
      restarts: sse.restarts,
      quiet: sse.quiet,
      unconfirmed: sse.unconfirmed,
      same: same(sse.items, replay),
    },
  }
  console.log(JSON.stringify(report))
  const ok =
    report.events > 3 &&
    report.last === "FinalAnswerStreamEnd" &&
    report.cuts >= 4 &&
    report.longPoll.same && report.sse.same
  if (!ok || process.env.DS_DEBUG) {
    for (const [name, read] of [["long-poll", longPoll], ["sse", sse]]) {
      const at = replay.findIndex((e, i) => JSON.stringify(e) !== JSON.stringify(read.items[i]))
      console.error(`${name}: first difference at ${at}\n${read.log.join("\n")}`)
    }
  }
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
