/**
 * The playground page (`GET /`) in a real browser (Debian's Chromium driven
 * by playwright-core): it completes a session for "What is 2+3?" (reasoning,
 * the calculator step with its input and output, the answer, the timings),
 * shows the raw frames in every format, follows a shared `/?session=<id>`
 * link, stops a session (`error`/`cancelled` on the status line), shows an
 * error event with its code (`ack_timeout` on a gateway no worker serves),
 * and resumes a connection cut mid-stream — through a TCP proxy inside this
 * test — with the answer complete and nothing repeated. Human in the loop
 * (the demo agent's "send the report" approval and its `browser_time`
 * client tool): the approval card, Approve and Deny (with a reason) resuming
 * the conversation's thread, the client tool answered by the page itself,
 * and a reload while the approval waits (`GET /v1/threads/{id}`, the card
 * again). The richer events (PROTOCOL §9, the "research" chip): step
 * markers, the tool input streaming into its step, the agent's state,
 * sources as links and the token usage under the answer. In every case: no
 * console error, no uncaught exception, no request leaving the page's
 * origin. Saves screenshots to `target/playground*.png`.
 *
 * Run by crates/sse-bridge/tests/playground.rs, which starts the gateways and
 * passes SSE_BRIDGE_URL (embedded, `--demo-delay 20ms`) and
 * SSE_BRIDGE_NO_WORKER_URL (Redis, no worker, `--ack-timeout 1s`).
 * SSE_BRIDGE_CHROMIUM overrides the browser (default /usr/bin/chromium).
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.SSE_BRIDGE_CHROMIUM ?? '/usr/bin/chromium';
const SCREENSHOT = fileURLToPath(new URL('../../target/playground.png', import.meta.url));
/** Long enough for a whole demo session (~2 s at 20 ms a piece) on a busy machine. */
const SESSION_LIMIT_MS = 30_000;
const ANSWER = '2+3 = 5';

/** The gateway URL in env variable `name` (set by the Rust test). */
function gateway(name) {
  const url = process.env[name];
  if (!url) throw new Error(`${name} is not set (crates/sse-bridge/tests/playground.rs sets it)`);
  return new URL(url).origin;
}

let browser;

before(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});

after(async () => {
  await browser?.close();
});

/**
 * Opens `path` on `origin` in a fresh context and watches it: console
 * errors, uncaught exceptions and requests to any other origin are
 * `problems`, which every test expects empty at its end.
 */
async function openPage(origin, path = '/') {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`));
  page.on('request', (request) => {
    if (new URL(request.url()).origin !== origin) problems.push(`request to ${request.url()}`);
  });
  await page.goto(`${origin}${path}`);
  return { page, problems, close: () => context.close() };
}

const byTestId = (page, id) => page.locator(`[data-testid="${id}"]`);

/** Waits for the status line to reach `state`; its text. */
async function statusReaches(page, state) {
  const status = page.locator(`[data-testid="status"][data-state="${state}"]`);
  await status.waitFor({ timeout: SESSION_LIMIT_MS });
  return (await status.textContent()).trim();
}

async function ask(page, query) {
  await byTestId(page, 'query-input').fill(query);
  await byTestId(page, 'start-button').click();
}

/** The session id of the page's share link. */
async function sharedSessionId(page) {
  const link = byTestId(page, 'session-link');
  await link.waitFor({ timeout: SESSION_LIMIT_MS });
  return new URL(await link.getAttribute('href')).searchParams.get('session');
}

/** The session's whole log as the gateway replays it (native events). */
async function sessionLog(origin, sessionId) {
  const response = await fetch(`${origin}/v1/react/sessions/${sessionId}/events`, {
    signal: AbortSignal.timeout(SESSION_LIMIT_MS),
  });
  assert.equal(response.status, 200);
  const body = await response.text();
  return body
    .split('\n\n')
    .map((frame) => frame.split('\n').find((line) => line.startsWith('data: ')))
    .filter(Boolean)
    .map((line) => JSON.parse(line.slice('data: '.length)));
}

const thoughtsOf = (events) =>
  events
    .filter((e) => e.event_type === 'AgentThoughtStream')
    .map((e) => e.payload.char)
    .join('');

/** What the page shows of a session. */
async function shown(page) {
  const steps = await byTestId(page, 'tool-step').evaluateAll((nodes) =>
    nodes.map((node) => ({
      name: node.querySelector('[data-testid="tool-name"]').textContent,
      state: node.dataset.state,
      input: node.querySelector('[data-testid="tool-input"]').textContent,
      output: node.querySelector('[data-testid="tool-output"]').textContent,
    })),
  );
  return {
    reasoning: (await byTestId(page, 'reasoning').allTextContents()).join(''),
    steps,
    answer: await byTestId(page, 'answer').textContent(),
    events: Number(await byTestId(page, 'timing-events').textContent()),
  };
}

/** Asserts the page shows exactly the session in `log`: the whole reasoning once, one calculator step, the answer. */
function assertShowsWholeSession(view, log) {
  assert.equal(view.reasoning, thoughtsOf(log));
  assert.match(view.reasoning, /calculator/);
  assert.deepEqual(view.steps, [
    { name: 'calculator', state: 'done', input: JSON.stringify({ expression: '2+3' }, null, 2), output: '5' },
  ]);
  assert.equal(view.answer, ANSWER);
  assert.equal(view.events, log.length);
}

test('the page completes "What is 2+3?" and shows every part of it', { timeout: 90_000 }, async () => {
  const origin = gateway('SSE_BRIDGE_URL');
  const { page, problems, close } = await openPage(origin);
  assert.equal(await page.title(), 'sse-bridge playground');
  await ask(page, 'What is 2+3?');

  // Live: the reasoning grows piece by piece before the answer exists.
  await byTestId(page, 'reasoning').waitFor({ timeout: SESSION_LIMIT_MS });
  assert.match(await statusReaches(page, 'streaming'), /Streaming/);
  assert.equal(await byTestId(page, 'answer').textContent(), '');

  assert.equal(await statusReaches(page, 'done'), 'Done');
  const sessionId = await sharedSessionId(page);
  assert.equal(new URL(page.url()).searchParams.get('session'), sessionId, 'the address bar holds the shareable link');
  const log = await sessionLog(origin, sessionId);
  assertShowsWholeSession(await shown(page), log);
  for (const timing of ['timing-ack', 'timing-first-answer', 'timing-total']) {
    assert.match(await byTestId(page, timing).textContent(), /^\d+(\.\d+)? m?s$/, timing);
  }
  assert.equal(Number(await byTestId(page, 'frame-count').textContent()), log.length);

  mkdirSync(new URL('../../target/', import.meta.url), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });

  // The frames switch re-follows the session in each format.
  await page.locator('label[for="format-ag-ui"]').click();
  await page.waitForFunction(() => document.getElementById('raw-frames').textContent.includes('RUN_FINISHED'));
  const agUi = await byTestId(page, 'raw-frames').textContent();
  assert.match(agUi, /^data: \{"type":"RUN_STARTED"/);
  assert.match(agUi, /"toolCallName":"calculator"/);
  assert.match(await byTestId(page, 'frames-source').textContent(), /\?format=ag-ui$/);

  await page.locator('label[for="format-ai-sdk"]').click();
  await page.waitForFunction(() => document.getElementById('raw-frames').textContent.includes('[DONE]'));
  assert.match(await byTestId(page, 'raw-frames').textContent(), /"type":"tool-output-available"/);

  await page.locator('label[for="format-native"]').click();
  await page.waitForFunction(() => document.getElementById('raw-frames').textContent.includes('FinalAnswerStreamEnd'));
  assert.match(await byTestId(page, 'raw-frames').textContent(), /^retry: \d+\n\nid: \d+-\d+\ndata: \{"event_type":"worker_ack"/);

  // Following ended the session's stream, not the page's view of it.
  assert.equal(await byTestId(page, 'answer').textContent(), ANSWER);
  await close();
  assert.deepEqual(problems, []);
});

test('the "research" chip shows steps, a streaming tool input, the state, sources and usage', { timeout: 90_000 }, async () => {
  const origin = gateway('SSE_BRIDGE_URL');
  const { page, problems, close } = await openPage(origin);
  // Every state and input text the tool step goes through, as the page renders them.
  // Each piece of input the page appends is a mutation record of its own, so
  // the input as it stood after each piece is seen even when several pieces
  // arrive in one read (a busy machine) and one observer callback gets them all.
  await page.evaluate(() => {
    window.toolSteps = [];
    const push = (seen) => window.toolSteps.at(-1) !== seen && window.toolSteps.push(seen);
    new MutationObserver((records) => {
      for (const record of records) {
        const input = record.target;
        if (record.type !== 'childList' || input.dataset?.testid !== 'tool-input' || record.removedNodes.length > 0) continue;
        for (const added of record.addedNodes) {
          const upTo = [...input.childNodes].slice(0, [...input.childNodes].indexOf(added) + 1);
          push(`streaming ${upTo.map((node) => node.textContent).join('')}`);
        }
      }
      for (const step of document.querySelectorAll('[data-testid="tool-step"]')) {
        push(`${step.dataset.state} ${step.querySelector('[data-testid="tool-input"]').textContent}`);
      }
    }).observe(document.getElementById('transcript'), { subtree: true, childList: true, characterData: true, attributes: true });
  });
  await page.locator('.chip[data-query="Research durable streams"]').click();
  assert.equal(await byTestId(page, 'query-input').inputValue(), 'Research durable streams');
  assert.equal(await statusReaches(page, 'done'), 'Done');

  const steps = await byTestId(page, 'step').evaluateAll((nodes) => nodes.map((n) => `${n.dataset.step} ${n.dataset.state} "${n.textContent}"`));
  assert.deepEqual(steps, ['research done "research"', 'answer done "answer"']);

  const toolSteps = await page.evaluate(() => window.toolSteps);
  // (`running` lasts from the call's start to its end, which the demo sends
  // back to back: the page may render both in one frame.)
  const states = [...new Set(toolSteps.map((s) => s.split(' ')[0]))].filter((state) => state !== 'running');
  assert.deepEqual(states, ['streaming', 'done'], toolSteps.join(' | '));
  // A part of the input on screen before the whole of it (each piece is a
  // frame of its own, 20 ms apart).
  const whole = '{"query":"sse-bridge durable streams"}';
  const partial = toolSteps.filter((s) => s.startsWith('streaming ')).map((s) => s.slice('streaming '.length));
  assert.ok(partial.some((input) => input.length > 0 && input.length < whole.length && whole.startsWith(input)), `the input grew while streaming: ${toolSteps.join(' | ')}`);
  const view = await shown(page);
  assert.deepEqual(view.steps.map(({ name, state, input }) => ({ name, state, input: JSON.parse(input) })), [
    { name: 'web_search', state: 'done', input: { query: 'sse-bridge durable streams' } },
  ]);
  assert.match(view.steps[0].output, /durable-streams/);

  assert.equal(await byTestId(page, 'agent-state').textContent(), 'state {"status":"writing","sources":1}');
  const sources = await byTestId(page, 'source').evaluateAll((nodes) => nodes.map((n) => ({ text: n.textContent, href: n.getAttribute('href') })));
  assert.deepEqual(sources, [{ text: 'Durable Streams', href: 'https://github.com/durable-streams/durable-streams' }]);
  const answer = 'Durable Streams is an HTTP protocol for resumable, append-only streams.';
  assert.equal(view.answer, answer);
  assert.equal(await byTestId(page, 'usage').textContent(), `Tokens: 42 in · ${[...answer].length} out (demo)`);
  assert.ok(await byTestId(page, 'usage').isVisible());
  // File and Data have no view of their own: shown as other events.
  const others = (await byTestId(page, 'other-event').allTextContents()).map((text) => text.split(' ')[0]);
  assert.deepEqual(others.filter((name) => name !== 'worker_heartbeat'), ['Data', 'Data', 'Data', 'File']);
  const log = await sessionLog(origin, await sharedSessionId(page));
  assert.equal(view.events, log.length);

  mkdirSync(new URL('../../target/', import.meta.url), { recursive: true });
  await page.screenshot({ path: SCREENSHOT.replace(/\.png$/, '-research.png'), fullPage: true });
  await close();
  assert.deepEqual(problems, []);
});

test('a shared /?session=<id> link follows a live session to its end', { timeout: 60_000 }, async () => {
  const origin = gateway('SSE_BRIDGE_URL');
  // Someone else started it; their stream keeps it alive meanwhile.
  const started = await fetch(`${origin}/v1/react/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user_query: 'What is 2+3?' }),
  });
  assert.equal(started.status, 200);
  const sessionId = started.headers.get('x-session-id');
  const creatorDone = started.text();

  const { page, problems, close } = await openPage(origin, `/?session=${sessionId}`);
  assert.equal(await statusReaches(page, 'done'), 'Done');
  await creatorDone;
  assertShowsWholeSession(await shown(page), await sessionLog(origin, sessionId));
  assert.equal(await sharedSessionId(page), sessionId);
  await close();
  assert.deepEqual(problems, []);
});

test('Stop cancels the session: the status line ends with error code cancelled', { timeout: 60_000 }, async () => {
  const origin = gateway('SSE_BRIDGE_URL');
  const { page, problems, close } = await openPage(origin);
  await ask(page, 'What is 2+3?');
  await statusReaches(page, 'streaming');
  await byTestId(page, 'stop-button').click();

  const text = await statusReaches(page, 'error');
  assert.equal(await byTestId(page, 'status').getAttribute('data-code'), 'cancelled');
  assert.match(text, /cancelled/);
  assert.notEqual(await byTestId(page, 'answer').textContent(), ANSWER, 'stopped before the answer was complete');
  assert.ok(await byTestId(page, 'stop-button').isDisabled());

  const log = await sessionLog(origin, await sharedSessionId(page));
  assert.deepEqual(log.at(-1), { event_type: 'error', payload: { error: 'the session was cancelled', code: 'cancelled' } });
  await close();
  assert.deepEqual(problems, []);
});

test('an error event is shown with its code (ack_timeout: no worker)', { timeout: 60_000 }, async () => {
  const origin = gateway('SSE_BRIDGE_NO_WORKER_URL');
  const { page, problems, close } = await openPage(origin);
  await ask(page, 'What is 2+3?');
  const text = await statusReaches(page, 'error');
  assert.equal(await byTestId(page, 'status').getAttribute('data-code'), 'ack_timeout');
  assert.match(text, /ack_timeout/);
  assert.equal(await byTestId(page, 'timing-ack').textContent(), '–');
  await close();
  assert.deepEqual(problems, []);
});

/** Response bytes of the first event stream let through before its connection is cut. */
const CUT_AFTER_BYTES = 2500;

/**
 * A TCP proxy to `target` that cuts (destroys both sockets of) the first
 * connection whose response is an event stream, once CUT_AFTER_BYTES of it
 * went through; everything else, reconnections included, passes untouched.
 * `requests` lists the request lines it saw, with whether the cut had
 * happened.
 */
async function startCuttingProxy(target) {
  const { hostname, port } = new URL(target);
  const stats = { cuts: 0, requests: [] };
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), hostname);
    let streamBytes = null; // counting once this connection answers with an event stream
    client.on('data', (chunk) => {
      const line = /^(GET|POST|DELETE) (\S+) HTTP/.exec(chunk.toString('latin1'));
      if (line) stats.requests.push({ method: line[1], path: line[2], afterCut: stats.cuts > 0 });
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (streamBytes === null && /content-type: text\/event-stream/i.test(chunk.toString('latin1'))) streamBytes = 0;
      if (streamBytes !== null && stats.cuts === 0) {
        streamBytes += chunk.length;
        if (streamBytes >= CUT_AFTER_BYTES) {
          stats.cuts += 1;
          client.destroy();
          upstream.destroy();
          return;
        }
      }
      client.write(chunk);
    });
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    stats,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

test('a connection cut mid-stream is resumed and the answer is complete, nothing repeated', { timeout: 90_000 }, async () => {
  const gatewayOrigin = gateway('SSE_BRIDGE_URL');
  const proxy = await startCuttingProxy(gatewayOrigin);
  const { page, problems, close } = await openPage(proxy.origin);
  await ask(page, 'What is 2+3?');
  assert.equal(await statusReaches(page, 'done'), 'Done');
  assert.equal(proxy.stats.cuts, 1, 'the proxy cut the stream once');

  const sessionId = await sharedSessionId(page);
  const resumes = proxy.stats.requests.filter((r) => r.afterCut && r.method === 'GET' && r.path.startsWith(`/v1/react/sessions/${sessionId}/events`));
  assert.ok(resumes.length >= 1, `the page resumed through the follow endpoint: ${JSON.stringify(proxy.stats.requests)}`);
  assertShowsWholeSession(await shown(page), await sessionLog(gatewayOrigin, sessionId));
  await close();
  await proxy.close();
  // Chrome itself logs the broken body of the cut response (no script can
  // prevent that); nothing else may appear.
  const cutReport = 'console error: Failed to load resource: net::ERR_INCOMPLETE_CHUNKED_ENCODING';
  assert.deepEqual(problems.filter((problem) => problem !== cutReport), []);
});

/*
 * Human in the loop (PROTOCOL §8): a run that ends with an interrupt shows
 * an approval card (or runs the client tool here), and the answer continues
 * the conversation's thread with a resume, in the same transcript.
 */

/** Records the bodies of the page's `POST /v1/react/sessions` and its thread lookups. */
function watchRequests(page) {
  const seen = { starts: [], threadLookups: [] };
  page.on('request', (request) => {
    const { pathname } = new URL(request.url());
    if (request.method() === 'POST' && pathname === '/v1/react/sessions') seen.starts.push(JSON.parse(request.postData()));
    if (request.method() === 'GET' && pathname.startsWith('/v1/threads/')) seen.threadLookups.push(decodeURIComponent(pathname.slice('/v1/threads/'.length)));
  });
  return seen;
}

/** The approval card, once shown: its tool name and message. */
async function approvalCard(page) {
  const card = byTestId(page, 'approval');
  await card.waitFor({ timeout: SESSION_LIMIT_MS });
  return {
    card,
    tool: await card.locator('[data-testid="approval-tool"]').textContent(),
    message: await card.locator('[data-testid="approval-message"]').textContent(),
  };
}

/** The conversation's thread as the gateway keeps it. */
async function threadOf(origin, threadId) {
  const response = await fetch(`${origin}/v1/threads/${encodeURIComponent(threadId)}`, { signal: AbortSignal.timeout(SESSION_LIMIT_MS) });
  assert.equal(response.status, 200);
  return response.json();
}

const REPORT = 'Please send the report to finance';

/** Asks for the report and waits for the card; the page's thread id. */
async function askForTheReport(page) {
  await ask(page, REPORT);
  const { tool, message } = await approvalCard(page);
  assert.equal(tool, 'send_report');
  assert.equal(message, 'Send the report to finance?');
  assert.match(await statusReaches(page, 'interrupted'), /waiting for you/);
  const steps = (await shown(page)).steps;
  assert.deepEqual(steps.map(({ name, state }) => [name, state]), [['send_report', 'waiting']]);
  const threadId = await byTestId(page, 'thread-id').textContent();
  assert.match(threadId, /^pg-/);
  assert.equal(new URL(page.url()).searchParams.get('thread'), threadId, 'the address holds the conversation');
  return threadId;
}

test('an approval card: Approve continues the conversation to the answer', { timeout: 90_000 }, async () => {
  const origin = gateway('SSE_BRIDGE_URL');
  const { page, problems, close } = await openPage(origin);
  const requests = watchRequests(page);
  const threadId = await askForTheReport(page);
  const [interrupt] = (await threadOf(origin, threadId)).interrupts;

  await byTestId(page, 'approve-button').click();
  assert.equal(await statusReaches(page, 'done'), 'Done');
  assert.equal(await byTestId(page, 'answer').textContent(), 'Sent the report to finance.');
  const { steps } = await shown(page);
  assert.deepEqual(steps, [
    { name: 'send_report', state: 'done', input: JSON.stringify({ to: 'finance' }, null, 2), output: JSON.stringify({ sent: true }, null, 2) },
  ]);
  assert.equal(await byTestId(page, 'approval').count(), 0, 'the card is gone');
  assert.deepEqual(requests.starts, [
    { user_query: REPORT, thread_id: threadId },
    { thread_id: threadId, resume: [{ interrupt_id: interrupt.id, status: 'resolved', payload: { approved: true } }] },
  ]);
  const thread = await threadOf(origin, threadId);
  assert.deepEqual(thread.runs.map((r) => r.status), ['interrupted', 'completed']);
  assert.deepEqual(thread.interrupts, []);
  await page.screenshot({ path: SCREENSHOT.replace(/\.png$/, '-approved.png'), fullPage: true });
  await close();
  assert.deepEqual(problems, []);
});

test('an approval card: Deny with a reason ends with the answer, the report not sent', { timeout: 90_000 }, async () => {
  const origin = gateway('SSE_BRIDGE_URL');
  const { page, problems, close } = await openPage(origin);
  const requests = watchRequests(page);
  const threadId = await askForTheReport(page);
  await page.screenshot({ path: SCREENSHOT.replace(/\.png$/, '-approval.png'), fullPage: true });

  await byTestId(page, 'approval-reason').fill('not today');
  await byTestId(page, 'deny-button').click();
  assert.equal(await statusReaches(page, 'done'), 'Done');
  assert.match(await byTestId(page, 'answer').textContent(), /^Okay, I did not send the report\./);
  const { steps } = await shown(page);
  assert.deepEqual(steps.map(({ name, state }) => [name, state]), [['send_report', 'denied']]);
  assert.deepEqual(requests.starts.at(-1).resume.map((e) => [e.status, e.payload]), [['resolved', { approved: false, reason: 'not today' }]]);
  assert.deepEqual((await threadOf(origin, threadId)).runs.map((r) => r.status), ['interrupted', 'completed']);
  await close();
  assert.deepEqual(problems, []);
});

test('a client tool (browser_time) runs in the page and the conversation continues by itself', { timeout: 90_000 }, async () => {
  const origin = gateway('SSE_BRIDGE_URL');
  const { page, problems, close } = await openPage(origin);
  const requests = watchRequests(page);
  await ask(page, 'what time is it?');
  assert.equal(await statusReaches(page, 'done'), 'Done');

  assert.equal(requests.starts.length, 2, JSON.stringify(requests.starts));
  const [entry] = requests.starts[1].resume;
  assert.equal(entry.status, 'resolved');
  assert.match(entry.payload, /\d{1,2}:\d{2}:\d{2}/, 'the browser\'s local time');
  assert.equal(await byTestId(page, 'answer').textContent(), `Your browser says it is ${entry.payload}.`);
  assert.deepEqual((await shown(page)).steps.map(({ name }) => name), ['browser_time']);
  assert.equal(await byTestId(page, 'approval').count(), 0, 'no card for a client tool');
  const threadId = requests.starts[0].thread_id;
  assert.equal(requests.starts[1].thread_id, threadId);
  assert.deepEqual((await threadOf(origin, threadId)).runs.map((r) => r.status), ['interrupted', 'completed']);
  await close();
  assert.deepEqual(problems, []);
});

test('a reload while the approval waits asks the thread and shows the card again', { timeout: 90_000 }, async () => {
  const origin = gateway('SSE_BRIDGE_URL');
  const { page, problems, close } = await openPage(origin);
  const threadId = await askForTheReport(page);

  const requests = watchRequests(page);
  await page.reload();
  const { tool, message } = await approvalCard(page);
  assert.deepEqual([tool, message], ['send_report', 'Send the report to finance?']);
  assert.deepEqual(requests.threadLookups, [threadId], 'the reloaded page asked GET /v1/threads/{id}');
  assert.equal(await byTestId(page, 'thread-id').textContent(), threadId);
  assert.deepEqual((await shown(page)).steps.map(({ name, state }) => [name, state]), [['send_report', 'waiting']]);

  await byTestId(page, 'approve-button').click();
  assert.equal(await statusReaches(page, 'done'), 'Done');
  assert.equal(await byTestId(page, 'answer').textContent(), 'Sent the report to finance.');
  assert.equal(requests.starts.length, 1);
  assert.equal(requests.starts[0].thread_id, threadId);

  // A new conversation forgets the thread: the next question starts another.
  await byTestId(page, 'new-conversation').click();
  assert.equal(await byTestId(page, 'thread-id').textContent(), 'new');
  assert.equal(new URL(page.url()).searchParams.get('thread'), null);

  // A shared link to the paused run shows its card, not answerable there.
  const [paused] = (await threadOf(origin, threadId)).runs;
  await page.goto(`${origin}/?session=${paused.session_id}`);
  await approvalCard(page);
  assert.ok(await byTestId(page, 'approve-button').isDisabled());
  assert.ok(await byTestId(page, 'deny-button').isDisabled());
  assert.equal(await byTestId(page, 'thread-id').textContent(), 'new');
  await close();
  assert.deepEqual(problems, []);
});
