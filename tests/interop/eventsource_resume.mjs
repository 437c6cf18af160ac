/**
 * Proves that a real EventSource (npm `eventsource`, the WHATWG algorithm)
 * follows a gateway session through a proxy that keeps cutting its
 * connections: it reconnects after the server's `retry:` hint, sends
 * `Last-Event-ID` every time, and stops for good on the 204 that answers a
 * resume from the terminal event.
 *
 * Usage: node eventsource_resume.mjs --gateway http://127.0.0.1:PORT
 *
 * Prints ONE JSON line (the Rust test, crates/sse-bridge/tests/eventsource.rs,
 * judges it) and exits 0; non-zero only on an internal error.
 */
import net from 'node:net';
import { parseArgs } from 'node:util';
import { EventSource } from 'eventsource';

/** A proxied connection is cut once this many response bytes went through... */
const CUT_AFTER_BYTES = 3000;
/** ...for the first MAX_CUTS connections only, so the session always ends. */
const MAX_CUTS = 6;
const DEADLINE_MS = 30_000;

const { values } = parseArgs({ options: { gateway: { type: 'string' } } });
if (!values.gateway) throw new Error('usage: --gateway http://127.0.0.1:PORT');
const gateway = new URL(values.gateway);

/** What the EventSource received, in order. */
const events = [];
/** The last `lastEventId` the EventSource dispatched: what it must resume from. */
let lastSeenId = null;

/**
 * A TCP proxy to the gateway that forwards the first CUT_AFTER_BYTES response
 * bytes of a connection (often ending mid-frame), then destroys both sockets.
 * Byte-based, not time-based: an idle keep-alive connection is never "cut".
 */
function startProxy() {
  const stats = { connections: 0, cuts: 0, requests: [] };
  const server = net.createServer((client) => {
    stats.connections += 1;
    const upstream = net.connect(Number(gateway.port), gateway.hostname);
    let forwarded = 0;
    let cut = false;
    client.on('data', (chunk) => {
      // Request heads are small and come whole: note each GET's resume cursor.
      const head = chunk.toString('latin1');
      const line = head.match(/^(GET|POST) (\S+) HTTP/);
      if (line) {
        const header = head.match(/^last-event-id: *(.*?)\r$/im);
        stats.requests.push({
          method: line[1],
          path: line[2],
          last_event_id: header ? header[1] : null,
          last_seen_id: lastSeenId,
        });
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (cut) return;
      const cutting = stats.cuts < MAX_CUTS && forwarded + chunk.length >= CUT_AFTER_BYTES;
      if (!cutting) {
        forwarded += chunk.length;
        client.write(chunk);
        return;
      }
      cut = true;
      stats.cuts += 1;
      client.write(chunk.subarray(0, CUT_AFTER_BYTES - forwarded), () => {
        client.destroy();
        upstream.destroy();
      });
    });
    upstream.on('end', () => client.end());
    client.on('end', () => upstream.end());
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    upstream.on('close', () => cut || client.destroy());
    client.on('close', () => upstream.destroy());
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({ server, stats }));
  });
}

/** Starts a session, reads its id and first frame, then leaves (aborts). */
async function startSessionAndLeave() {
  const abort = new AbortController();
  const response = await fetch(new URL('/v1/react/sessions', gateway), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user_query: 'What is 12*12?' }),
    signal: abort.signal,
  });
  if (response.status !== 200) throw new Error(`POST answered ${response.status}`);
  const id = response.headers.get('x-session-id');
  if (!id) throw new Error('no x-session-id header');
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  while (!text.includes('\n\n')) {
    const { done, value } = await reader.read();
    if (done) throw new Error('POST stream ended before its first frame');
    text += decoder.decode(value, { stream: true });
  }
  abort.abort();
  await reader.cancel().catch(() => {});
  const firstFrame = text.slice(0, text.indexOf('\n\n'));
  return { id, firstFrame };
}

/** Follows the session with an EventSource until it closes by itself (or the deadline). */
function follow(url) {
  return new Promise((resolve) => {
    const started = Date.now();
    const errors = [];
    let opens = 0;
    const es = new EventSource(url);
    es.onopen = () => {
      opens += 1;
    };
    es.onmessage = (event) => {
      lastSeenId = event.lastEventId;
      const data = JSON.parse(event.data);
      const record = { id: event.lastEventId, event_type: data.event_type };
      if (typeof data.payload?.char === 'string') record.char = data.payload.char;
      events.push(record);
    };
    es.onerror = (event) => {
      errors.push({ code: event.code ?? null, message: event.message ?? null });
    };
    // The library's reconnect timer does not keep Node alive: this does.
    const poll = setInterval(() => {
      const closed = es.readyState === EventSource.CLOSED;
      const late = Date.now() - started > DEADLINE_MS;
      if (!closed && !late) return;
      clearInterval(poll);
      es.close();
      resolve({ opens, errors, closed_by_itself: closed, elapsed_ms: Date.now() - started });
    }, 20);
  });
}

const { server, stats } = await startProxy();
const proxy = `http://127.0.0.1:${server.address().port}`;
const session = await startSessionAndLeave();
const followed = await follow(`${proxy}/v1/react/sessions/${session.id}/events`);
server.close();

const answer = events
  .filter((e) => e.event_type === 'FinalAnswerStream')
  .map((e) => e.char ?? '')
  .join('');
const report = { session: session.id, post_first_frame: session.firstFrame, ...followed, answer, proxy: stats, events };
// Exit once the line is flushed: stdout to a pipe is asynchronous in Node.
process.stdout.write(`${JSON.stringify(report)}\n`, () => process.exit(0));
