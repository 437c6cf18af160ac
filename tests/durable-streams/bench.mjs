// Durable Streams load, the same for any server speaking the protocol at
// `${DS_URL}/v1/stream/…` over HTTP/1.1 (keep-alive, node:http), or over
// HTTP/2 with PROTOCOL=h2 (cleartext, prior knowledge, node:http2: H2_CONNECTIONS
// connections, requests spread over them round-robin, at most 256 streams each):
// run by bench/durable-streams.sh against the gateway and the reference Node
// server, one after the other, in one run. Prints one JSON line per
// scenario:
//
// * appends   — W writers POST small JSON messages back to back for D s:
//               appends/s, and the p50/p99 of an append's round trip.
// * latency   — one writer paced at R appends/s, one long-poll reader and
//               one SSE reader: p50/p99/max of append start → reader has it.
// * fanout-long-poll, fanout-sse — N readers (1,000) on one stream, one
//               append every 100 ms: p50/p99/max append start → each reader
//               has it, and whether every reader got every message.
//
// Latency is one monotonic clock (writer and readers live in this process).
import http from "node:http"
import http2 from "node:http2"
import { performance } from "node:perf_hooks"

const base = process.env.DS_URL
if (!base) throw new Error("DS_URL is required")
const label = process.env.LABEL ?? base
const WRITERS = Number(process.env.WRITERS ?? 32)
const SECONDS = Number(process.env.SECONDS ?? 10)
const RATE = Number(process.env.RATE ?? 200)
const READERS = Number(process.env.READERS ?? 1000)
const FANOUT_MESSAGES = Number(process.env.FANOUT_MESSAGES ?? 50)

const PROTOCOL = process.env.PROTOCOL ?? "http1.1"
if (!["http1.1", "h2"].includes(PROTOCOL)) throw new Error(`PROTOCOL is http1.1 or h2, not ${PROTOCOL}`)
const H2_CONNECTIONS = Number(process.env.H2_CONNECTIONS ?? 8)

const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity })
const run = process.env.RUN ?? `bench-${process.pid}-${Date.now()}`

const h2Sessions = PROTOCOL === "h2" ? Array.from({ length: H2_CONNECTIONS }, () => http2.connect(base)) : []
let h2Next = 0

/**
 * An HTTP/2 request on the next connection; calls `onResponse(status,
 * headers)` once and `onData(chunk)` per body chunk.
 */
function h2Stream(method, url, headers, body) {
  const { pathname, search } = new URL(url)
  const session = h2Sessions[h2Next++ % h2Sessions.length]
  const stream = session.request({ ":method": method, ":path": pathname + search, ...headers }, { endStream: body === undefined })
  if (body !== undefined) stream.end(body)
  return stream
}

/** One request; resolves with status, headers and the body (a string). */
function request(method, url, { headers = {}, body } = {}) {
  if (PROTOCOL === "h2") {
    return new Promise((resolve, reject) => {
      const stream = h2Stream(method, url, headers, body)
      let head = {}
      const chunks = []
      stream.on("response", (h) => (head = h))
      stream.on("data", (c) => chunks.push(c))
      stream.on("end", () => resolve({ status: head[":status"], headers: head, body: Buffer.concat(chunks).toString() }))
      stream.on("error", reject)
    })
  }
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent }, (res) => {
      const chunks = []
      res.on("data", (c) => chunks.push(c))
      res.on("end", () =>
        resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }),
      )
      res.on("error", reject)
    })
    req.on("error", reject)
    if (body !== undefined) req.end(body)
    else req.end()
  })
}

const json = { "content-type": "application/json" }

async function create(path) {
  const url = `${base}/v1/stream/${run}/${path}`
  const res = await request("PUT", url, { headers: json, body: "[]" })
  if (res.status !== 201) throw new Error(`PUT ${url}: ${res.status}`)
  return url
}

async function append(url, message) {
  const res = await request("POST", url, { headers: json, body: JSON.stringify(message) })
  if (res.status !== 200 && res.status !== 204) throw new Error(`POST ${url}: ${res.status}`)
}

function percentiles(values) {
  const sorted = [...values].sort((a, b) => a - b)
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? null
  const round = (v) => (v === null ? null : Math.round(v * 100) / 100)
  return { n: sorted.length, p50_ms: round(at(0.5)), p99_ms: round(at(0.99)), max_ms: round(sorted.at(-1) ?? null) }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** A long-poll reader from the tail: calls `got(message)` per message. */
function longPollReader(url, offset, got, stop) {
  return (async () => {
    while (!stop.done) {
      const res = await request("GET", `${url}?offset=${offset}&live=long-poll`)
      if (res.status === 200) {
        const now = performance.now()
        for (const m of JSON.parse(res.body)) got(m, now)
      } else if (res.status !== 204) throw new Error(`long-poll: ${res.status}`)
      offset = res.headers["stream-next-offset"] ?? offset
      if (res.headers["stream-closed"] === "true") return
    }
  })()
}

/** An SSE reader from `offset`; resolves once the response is open. */
function sseReader(url, offset, got, stop) {
  let buffer = ""
  const onData = (chunk) => {
    buffer += chunk
    let end
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      if (!frame.includes("event: data") && !frame.includes("event:data")) continue
      const data = frame
        .split("\n")
        .filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).replace(/^ /, ""))
        .join("\n")
      const now = performance.now()
      for (const m of JSON.parse(data)) got(m, now)
    }
  }
  const target = `${url}?offset=${offset}&live=sse`
  return new Promise((opened, failed) => {
    if (PROTOCOL === "h2") {
      const stream = h2Stream("GET", target, {})
      stream.on("response", (h) => (h[":status"] === 200 ? opened() : failed(new Error(`SSE: ${h[":status"]}`))))
      stream.setEncoding("utf8")
      stream.on("data", onData)
      stream.on("error", (e) => (stop.done ? opened() : failed(e)))
      stop.requests.push({ destroy: () => stream.close() })
      return
    }
    const req = http.get(target, { agent }, (res) => {
      if (res.statusCode !== 200) return failed(new Error(`SSE: ${res.statusCode}`))
      opened()
      res.setEncoding("utf8")
      res.on("data", onData)
      res.on("error", () => {})
    })
    req.on("error", (e) => (stop.done ? opened() : failed(e)))
    stop.requests.push(req)
  })
}

async function tail(url) {
  const res = await request("HEAD", url)
  return res.headers["stream-next-offset"]
}

async function appends() {
  const url = await create("appends")
  const rtts = []
  let count = 0
  const end = performance.now() + SECONDS * 1000
  await Promise.all(
    Array.from({ length: WRITERS }, async (_, w) => {
      while (performance.now() < end) {
        const start = performance.now()
        await append(url, { w, n: count })
        rtts.push(performance.now() - start)
        count++
      }
    }),
  )
  return { scenario: "appends", writers: WRITERS, seconds: SECONDS, appends_per_s: Math.round(count / SECONDS), rtt: percentiles(rtts) }
}

async function latency() {
  const url = await create("latency")
  const offset = await tail(url)
  const stop = { done: false, requests: [] }
  const lp = []
  const sse = []
  const sent = new Map()
  longPollReader(url, offset, (m, now) => lp.push(now - m.t), stop).catch(() => {})
  await sseReader(url, offset, (m, now) => sse.push(now - m.t), stop)
  await sleep(300)
  const total = RATE * SECONDS
  const start = performance.now()
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / RATE
    const wait = due - performance.now()
    if (wait > 0) await sleep(wait)
    const t = performance.now()
    sent.set(i, t)
    append(url, { i, t }).catch(() => {})
  }
  await sleep(2000)
  stop.done = true
  for (const r of stop.requests) r.destroy()
  return {
    scenario: "latency",
    rate: RATE,
    sent: total,
    long_poll: percentiles(lp),
    sse: percentiles(sse),
  }
}

async function fanout(mode) {
  const url = await create(`fanout-${mode}`)
  const offset = await tail(url)
  const stop = { done: false, requests: [] }
  const latencies = []
  const counts = new Array(READERS).fill(0)
  const opened = []
  for (let r = 0; r < READERS; r++) {
    const got = (m, now) => {
      latencies.push(now - m.t)
      counts[r]++
    }
    if (mode === "sse") opened.push(sseReader(url, offset, got, stop))
    else longPollReader(url, offset, got, stop).catch(() => {})
  }
  await Promise.all(opened)
  await sleep(mode === "sse" ? 500 : 2000)
  for (let i = 0; i < FANOUT_MESSAGES; i++) {
    await append(url, { i, t: performance.now() })
    await sleep(100)
  }
  await sleep(3000)
  stop.done = true
  for (const r of stop.requests) r.destroy()
  const complete = counts.filter((c) => c === FANOUT_MESSAGES).length
  return {
    scenario: `fanout-${mode}`,
    readers: READERS,
    messages: FANOUT_MESSAGES,
    readers_with_every_message: complete,
    delivery: percentiles(latencies),
  }
}

const only = (process.env.ONLY ?? "appends,latency,fanout-long-poll,fanout-sse").split(",")
for (const [name, scenario] of [
  ["appends", appends],
  ["latency", latency],
  ["fanout-long-poll", () => fanout("long-poll")],
  ["fanout-sse", () => fanout("sse")],
]) {
  if (!only.includes(name)) continue
  const result = await scenario()
  console.log(JSON.stringify({ server: label, protocol: PROTOCOL, ...result }))
}
agent.destroy()
for (const session of h2Sessions) session.close()
process.exit(0)
