/**
 * startSession / followSession / cancelSession against a small `node:http`
 * server that imitates the gateway's session endpoints: the POST stream
 * (data-only frames), the follow stream (`retry:`, `id:` frames, resume after
 * `Last-Event-ID`, `204` after the terminal event, `?format=`), `DELETE`, and
 * `{"detail"}` refusals. The imitation can cut a stream after some events,
 * so every resume path of the client is exercised.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, beforeEach, test } from 'node:test';
import { SessionError, applyJsonPatch, cancelSession, followSession, getThread, startSession } from '../sse-bridge.js';

const SESSION_ID = '6f1c2a3b-0000-4000-8000-000000000001';

const nativeLog = [
  { event_type: 'worker_ack', payload: {} },
  ...[...'Hmm.'].map((char) => ({ event_type: 'AgentThoughtStream', payload: { char } })),
  { event_type: 'AgentToolCallStart', payload: { tool_name: 'calculator', tool_input: { expression: '2+3' } } },
  { event_type: 'AgentToolCallEnd', payload: { tool_name: 'calculator', output: '5' } },
  { event_type: 'custom_progress', payload: { step: 1 } },
  ...[...'2+3 = 5'].map((char) => ({ event_type: 'FinalAnswerStream', payload: { char } })),
  { event_type: 'FinalAnswerStreamEnd', payload: {} },
];
const logIds = nativeLog.map((_, index) => `1764460800000-${index}`);

/** A run that pauses on an approval (PROTOCOL §8). */
const interruptedLog = [
  { event_type: 'worker_ack', payload: {} },
  { event_type: 'AgentToolCallStart', payload: { tool_call_id: 'call-1', tool_name: 'send_report', tool_input: { to: 'finance' } } },
  { event_type: 'AgentToolCallStart', payload: { tool_call_id: 'call-2', tool_name: 'browser_time', tool_input: {}, executor: 'client' } },
  { event_type: 'AgentToolCallEnd', payload: { tool_call_id: 'call-0', tool_name: 'lookup', error: 'no such file', denied: null } },
  {
    event_type: 'interrupt',
    payload: { interrupts: [{ id: 'int-1', reason: 'tool_call', tool_call_id: 'call-1', message: 'Send the report to finance?' }] },
  },
];
const threadView = {
  thread_id: 'thread-1',
  runs: [{ session_id: SESSION_ID, status: 'interrupted', created_at: 1764460800000 }],
  interrupts: interruptedLog.at(-1).payload.interrupts,
};

/** The same session in the other formats (what the gateway's encoders would send). */
const otherFormats = {
  'ag-ui': [
    { type: 'RUN_STARTED', threadId: SESSION_ID, runId: SESSION_ID },
    { type: 'CUSTOM', name: 'worker_ack', value: {} },
    { type: 'TEXT_MESSAGE_START', messageId: 'm', role: 'assistant' },
    ...[...'2+3 = 5'].map((delta) => ({ type: 'TEXT_MESSAGE_CONTENT', messageId: 'm', delta })),
    { type: 'TEXT_MESSAGE_END', messageId: 'm' },
    { type: 'RUN_FINISHED', threadId: SESSION_ID, runId: SESSION_ID },
  ].map((event) => JSON.stringify(event)),
  'ai-sdk': [
    { type: 'start', messageId: 'msg' },
    { type: 'data-worker_ack', data: {}, transient: true },
    { type: 'error', errorText: 'no worker took the job (ack_timeout)' },
  ]
    .map((event) => JSON.stringify(event))
    .concat('[DONE]'),
};

/**
 * The imitated gateway. `plan` says what the next requests get: `cuts`, the
 * number of events each stream sends before it is cut (in request order),
 * and how: `cutMode` `destroy` (a network failure), `end` (the body ends
 * cleanly) or `hold` (the connection stays open, silent); `log` the native
 * events; `refusePost` / `followStatus` a status and detail instead.
 */
const gateway = {
  server: null,
  url: '',
  requests: [],
  plan: null,
};

const freshPlan = () => ({ cuts: [], cutMode: 'destroy', log: nativeLog, refusePost: null, followStatus: null });

function frame(data, id) {
  return `${id === undefined ? '' : `id: ${id}\n`}data: ${data}\n\n`;
}

/** Answers with an event stream of `frames` (after `prelude`), cut as planned. */
function stream(res, frames, prelude = '') {
  const cutAfter = gateway.plan.cuts.shift();
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    'x-session-id': SESSION_ID,
  });
  res.write(prelude);
  let sent = 0;
  for (const text of frames) {
    if (cutAfter !== undefined && sent === cutAfter) {
      // The half frame that follows is never dispatched by a correct parser.
      res.write(text.slice(0, Math.floor(text.length / 2)));
      if (gateway.plan.cutMode === 'end') res.end();
      else if (gateway.plan.cutMode === 'destroy') setTimeout(() => res.socket.destroy(), 20);
      return;
    }
    res.write(text);
    sent += 1;
  }
  res.end();
}

function handle(req, res) {
  let body = '';
  req.on('data', (chunk) => (body += chunk));
  req.on('end', () => {
    const url = new URL(req.url, 'http://gateway');
    gateway.requests.push({ method: req.method, path: url.pathname, search: url.search, headers: req.headers, body });
    const refuse = (status, detail) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ detail }));
    };
    if (req.method === 'POST' && url.pathname === '/v1/react/sessions') {
      if (gateway.plan.refusePost) return refuse(...gateway.plan.refusePost);
      return stream(res, gateway.plan.log.map((event) => frame(JSON.stringify(event))));
    }
    if (req.method === 'GET' && url.pathname === `/v1/react/sessions/${SESSION_ID}/events`) {
      if (gateway.plan.followStatus) return refuse(...gateway.plan.followStatus);
      const format = url.searchParams.get('format') ?? 'native';
      if (format !== 'native') {
        // Like the gateway: no ids and no retry hint in the agent-UI formats.
        return stream(res, otherFormats[format].map((data) => frame(data)));
      }
      const after = req.headers['last-event-id'];
      const start = after ? logIds.indexOf(after) + 1 : 0;
      if (start === gateway.plan.log.length) return res.writeHead(204).end();
      const frames = gateway.plan.log.slice(start).map((event, i) => frame(JSON.stringify(event), logIds[start + i]));
      // A short retry hint keeps the tests quick.
      return stream(res, frames, 'retry: 10\n\n');
    }
    if (req.method === 'GET' && url.pathname === '/v1/threads/thread-1') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(threadView));
    }
    if (req.method === 'DELETE' && url.pathname === `/v1/react/sessions/${SESSION_ID}`) {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ session_id: SESSION_ID, status: 'cancelled' }));
    }
    refuse(404, 'unknown or expired session');
  });
}

before(async () => {
  gateway.server = http.createServer(handle);
  await new Promise((resolve) => gateway.server.listen(0, '127.0.0.1', resolve));
  gateway.url = `http://127.0.0.1:${gateway.server.address().port}`;
});

after(() => {
  gateway.server.closeAllConnections();
  gateway.server.close();
});

beforeEach(() => {
  gateway.requests = [];
  gateway.plan = freshPlan();
});

/** Handlers that record every callback as `[name, argument]`. */
function recorder() {
  const calls = [];
  const handlers = {};
  for (const name of ['onAck', 'onThought', 'onToolStart', 'onToolEnd', 'onAnswer', 'onEnd', 'onError', 'onEvent', 'onFrame', 'onStatus']) {
    handlers[name] = (argument) => calls.push([name, argument]);
  }
  const of = (name) => calls.filter(([n]) => n === name).map(([, argument]) => argument);
  return { calls, handlers, of };
}

/** What a session's typed callbacks amount to. */
function summary(of) {
  return {
    thought: of('onThought').join(''),
    answer: of('onAnswer').join(''),
    tools: [...of('onToolStart'), ...of('onToolEnd')],
    events: of('onEvent').length,
    ends: of('onEnd').length,
  };
}

const completeSession = {
  thought: 'Hmm.',
  answer: '2+3 = 5',
  tools: [
    { tool_name: 'calculator', tool_input: { expression: '2+3' } },
    { tool_name: 'calculator', output: '5' },
  ],
  events: nativeLog.length,
  ends: 1,
};

test('startSession streams a whole session to the typed callbacks', async () => {
  const { calls, handlers, of } = recorder();
  const session = await startSession(gateway.url, { user_query: 'What is 2+3?' }, handlers, {
    headers: { authorization: 'Bearer secret' },
  });
  assert.equal(session.sessionId, SESSION_ID);
  assert.deepEqual(await session.done, { status: 'done' });

  assert.deepEqual(summary(of), completeSession);
  assert.deepEqual(of('onStatus'), ['connecting', 'acknowledged', 'streaming', 'done']);
  assert.deepEqual(of('onEvent')[0], nativeLog[0]);
  assert.deepEqual(of('onEvent').at(7), { event_type: 'custom_progress', payload: { step: 1 } });
  assert.equal(of('onFrame')[0], 'data: {"event_type":"worker_ack","payload":{}}');
  assert.equal(calls.at(-1)[0], 'onEnd');

  const [post] = gateway.requests;
  assert.equal(post.method, 'POST');
  assert.equal(post.headers['content-type'], 'application/json');
  assert.equal(post.headers.authorization, 'Bearer secret');
  assert.deepEqual(JSON.parse(post.body), { user_query: 'What is 2+3?' });
  assert.equal(gateway.requests.length, 1);
});

test('a refused POST rejects with the detail and the status', async () => {
  gateway.plan.refusePost = [422, 'user_query must be a non-empty string'];
  await assert.rejects(startSession(gateway.url, { user_query: '' }), (error) => {
    assert.ok(error instanceof SessionError);
    assert.equal(error.message, 'user_query must be a non-empty string');
    assert.equal(error.detail, 'user_query must be a non-empty string');
    assert.equal(error.status, 422);
    return true;
  });
});

for (const how of ['cut', 'ended']) {
  test(`a POST stream ${how} mid-way continues through the follow endpoint, each event once`, async () => {
    gateway.plan.cuts = [6];
    gateway.plan.cutMode = how === 'ended' ? 'end' : 'destroy';
    const { handlers, of } = recorder();
    const session = await startSession(gateway.url, { user_query: 'What is 2+3?' }, handlers, {
      headers: { authorization: 'Bearer secret' },
    });
    assert.deepEqual(await session.done, { status: 'done' });
    assert.deepEqual(summary(of), completeSession);
    assert.deepEqual(of('onEvent'), nativeLog);
    assert.ok(of('onStatus').includes('reconnecting'), `${of('onStatus')}`);

    const follow = gateway.requests[1];
    assert.equal(follow.method, 'GET');
    assert.equal(follow.path, `/v1/react/sessions/${SESSION_ID}/events`);
    assert.equal(follow.headers['last-event-id'], undefined, 'a POST stream has no ids: the follow starts from the start');
    assert.equal(follow.headers.authorization, 'Bearer secret');
  });
}

test('a POST stream cut, then its follow cut during the replayed part, still delivers each event once', async () => {
  gateway.plan.cuts = [12, 3, 2];
  const { handlers, of } = recorder();
  const session = await startSession(gateway.url, { user_query: 'What is 2+3?' }, handlers);
  assert.deepEqual(await session.done, { status: 'done' });
  assert.deepEqual(of('onEvent'), nativeLog);
  assert.deepEqual(
    gateway.requests.map((r) => r.headers['last-event-id']),
    [undefined, undefined, logIds[2], logIds[4]],
  );
});

test('followSession resumes after a cut with Last-Event-ID', async () => {
  gateway.plan.cuts = [5, 4];
  const { handlers, of } = recorder();
  const { done } = followSession(gateway.url, SESSION_ID, handlers);
  assert.deepEqual(await done, { status: 'done' });
  assert.deepEqual(summary(of), completeSession);
  assert.deepEqual(
    gateway.requests.map((r) => r.headers['last-event-id']),
    [undefined, logIds[4], logIds[8]],
  );
  assert.deepEqual(of('onFrame').slice(0, 2), ['retry: 10', `id: ${logIds[0]}\ndata: ${JSON.stringify(nativeLog[0])}`]);
  assert.deepEqual(of('onStatus'), ['connecting', 'acknowledged', 'streaming', 'reconnecting', 'streaming', 'reconnecting', 'streaming', 'done']);
});

test('followSession from a lastEventId gets the rest only', async () => {
  const { handlers, of } = recorder();
  const { done } = followSession(gateway.url, SESSION_ID, handlers, { lastEventId: logIds[10] });
  assert.deepEqual(await done, { status: 'done' });
  assert.deepEqual(of('onEvent'), nativeLog.slice(11));
  assert.equal(gateway.requests[0].headers['last-event-id'], logIds[10]);
});

test('followSession from the terminal event: 204, the session is over', async () => {
  const { handlers, of } = recorder();
  const { done } = followSession(gateway.url, SESSION_ID, handlers, { lastEventId: logIds.at(-1) });
  assert.deepEqual(await done, { status: 'over' });
  assert.deepEqual(of('onEvent'), []);
  assert.deepEqual(of('onStatus'), ['connecting', 'done']);
});

test('followSession of an unknown session rejects with 404 and its detail', async () => {
  gateway.plan.followStatus = [404, 'unknown or expired session'];
  const { done } = followSession(gateway.url, SESSION_ID, {});
  await assert.rejects(done, { name: 'SessionError', status: 404, message: 'unknown or expired session' });
  assert.equal(gateway.requests.length, 1, 'a 404 is not retried');
});

test('followSession gives up after maxRetries reconnections without progress', async () => {
  gateway.plan.cuts = [0, 0, 0, 0, 0];
  const { done } = followSession(gateway.url, SESSION_ID, {}, { maxRetries: 2 });
  await assert.rejects(done, { name: 'SessionError', status: 0 });
  assert.equal(gateway.requests.length, 3);
});

test('an AG-UI follow cut mid-way resumes from the start and skips what it delivered', async () => {
  gateway.plan.cuts = [4];
  const { handlers, of } = recorder();
  const { done } = followSession(gateway.url, SESSION_ID, handlers, { format: 'ag-ui' });
  assert.deepEqual(await done, { status: 'done' });
  assert.deepEqual(of('onEvent'), otherFormats['ag-ui'].map((data) => JSON.parse(data)));
  assert.equal(of('onEnd').length, 1);
  assert.deepEqual(of('onAck'), [{}]);
  assert.deepEqual(
    gateway.requests.map((r) => [r.search, r.headers['last-event-id']]),
    [['?format=ag-ui', undefined], ['?format=ag-ui', undefined]],
  );
});

test('an AI SDK follow ends at [DONE] and reports its error with the code', async () => {
  const { handlers, of } = recorder();
  const { done } = followSession(gateway.url, SESSION_ID, handlers, { format: 'ai-sdk' });
  assert.deepEqual(await done, { status: 'error', error: 'no worker took the job', code: 'ack_timeout' });
  assert.deepEqual(of('onError'), [{ error: 'no worker took the job', code: 'ack_timeout' }]);
  assert.equal(of('onEvent').at(-1), '[DONE]');
  assert.equal(gateway.requests[0].search, '?format=ai-sdk');
});

test('an unknown format is refused before any request', () => {
  assert.throws(() => followSession(gateway.url, SESSION_ID, {}, { format: 'xml' }), TypeError);
});

test('cancel sends DELETE; the stream then ends with error/cancelled', async () => {
  gateway.plan.log = [
    ...nativeLog.slice(0, 3),
    { event_type: 'error', payload: { error: 'the session was cancelled', code: 'cancelled' } },
  ];
  const { handlers, of } = recorder();
  const session = await startSession(gateway.url, { user_query: 'What is 2+3?' }, handlers, {
    headers: { authorization: 'Bearer secret' },
  });
  assert.deepEqual(await session.cancel(), { session_id: SESSION_ID, status: 'cancelled' });
  assert.deepEqual(await session.done, { status: 'error', error: 'the session was cancelled', code: 'cancelled' });
  assert.deepEqual(of('onError'), [{ error: 'the session was cancelled', code: 'cancelled' }]);
  assert.equal(of('onStatus').at(-1), 'error');

  const deletion = gateway.requests.find((r) => r.method === 'DELETE');
  assert.equal(deletion.path, `/v1/react/sessions/${SESSION_ID}`);
  assert.equal(deletion.headers.authorization, 'Bearer secret');
});

test('cancelSession of an unknown session rejects with 404', async () => {
  await assert.rejects(cancelSession(gateway.url, 'nope'), { name: 'SessionError', status: 404 });
});

test('abort() closes the stream: done resolves as aborted, no reconnection', async () => {
  gateway.plan.cuts = [3];
  gateway.plan.cutMode = 'hold';
  let onAck;
  const acknowledged = new Promise((resolve) => (onAck = resolve));
  const { handlers, of } = recorder();
  const session = await startSession(gateway.url, { user_query: 'What is 2+3?' }, { ...handlers, onAck });
  await acknowledged;
  session.abort();
  assert.deepEqual(await session.done, { status: 'aborted' });
  assert.equal(of('onStatus').at(-1), 'aborted');
  assert.equal(gateway.requests.length, 1);
});

test('a signal aborted while waiting to reconnect stops the session', async () => {
  gateway.plan.cuts = [3];
  gateway.plan.cutMode = 'end';
  const controller = new AbortController();
  const { handlers, of } = recorder();
  const session = await startSession(
    gateway.url,
    { user_query: 'What is 2+3?' },
    {
      ...handlers,
      onStatus: (status) => {
        handlers.onStatus(status);
        if (status === 'reconnecting') controller.abort();
      },
    },
    { signal: controller.signal },
  );
  assert.deepEqual(await session.done, { status: 'aborted' });
  assert.deepEqual(of('onStatus'), ['connecting', 'acknowledged', 'streaming', 'reconnecting', 'aborted']);
  assert.equal(gateway.requests.length, 1);
});

test('an aborted signal stops a follow before it connects', async () => {
  const controller = new AbortController();
  controller.abort();
  const { done } = followSession(gateway.url, SESSION_ID, {}, { signal: controller.signal });
  assert.deepEqual(await done, { status: 'aborted' });
});

test('an exception in a handler rejects done; it is not taken for a dropped connection', async () => {
  const bug = new TypeError('a bug in the page');
  const session = await startSession(gateway.url, { user_query: 'What is 2+3?' }, {
    onThought: () => {
      throw bug;
    },
  });
  await assert.rejects(session.done, bug);
  assert.equal(gateway.requests.length, 1, 'no reconnection');
});

test('an interrupt ends the session as interrupted, even across a cut POST stream', async () => {
  gateway.plan.log = interruptedLog;
  gateway.plan.cuts = [2];
  const { of, handlers } = recorder();
  let paused;
  handlers.onInterrupt = (interrupts) => (paused = interrupts);
  const session = await startSession(gateway.url, { thread_id: 'thread-1', user_query: 'Please send the report' }, handlers);
  const { interrupts } = interruptedLog.at(-1).payload;
  assert.deepEqual(await session.done, { status: 'interrupted', interrupts });
  assert.deepEqual(paused, interrupts);
  assert.equal(of('onStatus').at(-1), 'interrupted');
  assert.equal(of('onEnd').length, 0);
  assert.equal(of('onEvent').length, interruptedLog.length, 'each event once');
  // Tool calls carry their id, who runs them, and how they ended.
  assert.deepEqual(of('onToolStart'), [
    { tool_name: 'send_report', tool_input: { to: 'finance' }, tool_call_id: 'call-1' },
    { tool_name: 'browser_time', tool_input: {}, tool_call_id: 'call-2', executor: 'client' },
  ]);
  assert.deepEqual(of('onToolEnd'), [{ tool_name: 'lookup', output: undefined, tool_call_id: 'call-0', error: 'no such file' }]);
  assert.deepEqual(JSON.parse(gateway.requests[0].body), { thread_id: 'thread-1', user_query: 'Please send the report' });
});

/** The demo agent's "research" tour (PROTOCOL §9), shortened. */
const richerLog = [
  { event_type: 'worker_ack', payload: {} },
  { event_type: 'AgentStepStart', payload: { name: 'research' } },
  { event_type: 'StateSnapshot', payload: { state: { status: 'searching', sources: 0 } } },
  { event_type: 'AgentToolCallInputStream', payload: { tool_call_id: 'call-1', tool_name: 'web_search', delta: '{"query":' } },
  { event_type: 'AgentToolCallInputStream', payload: { tool_call_id: 'call-1', tool_name: 'web_search', delta: '"x"}' } },
  { event_type: 'AgentToolCallStart', payload: { tool_call_id: 'call-1', tool_name: 'web_search', tool_input: { query: 'x' } } },
  { event_type: 'AgentToolCallEnd', payload: { tool_call_id: 'call-1', tool_name: 'web_search', output: { results: [] } } },
  { event_type: 'Source', payload: { id: 'src-1', url: 'https://example.com/', title: 'Example' } },
  {
    event_type: 'StateDelta',
    payload: { patch: [{ op: 'replace', path: '/status', value: 'writing' }, { op: 'replace', path: '/sources', value: 1 }] },
  },
  { event_type: 'AgentStepEnd', payload: { name: 'research' } },
  { event_type: 'Data', payload: { name: 'progress', id: 'progress', data: { pct: 100 } } },
  { event_type: 'Data', payload: { name: 'notice', data: { text: 'hi' }, transient: true } },
  { event_type: 'File', payload: { media_type: 'text/plain', url: 'data:text/plain;base64,eA==' } },
  { event_type: 'FinalAnswerStream', payload: { char: 'A' } },
  { event_type: 'Usage', payload: { input_tokens: 42, output_tokens: 1, model: 'demo' } },
  { event_type: 'FinalAnswerStreamEnd', payload: {} },
];

test('the richer events reach their callbacks; the state has its patches applied, across a cut', async () => {
  gateway.plan.log = richerLog;
  gateway.plan.cuts = [5];
  const { of, handlers, calls } = recorder();
  for (const name of ['onStepStart', 'onStepEnd', 'onToolInput', 'onState', 'onSource', 'onFile', 'onData', 'onUsage']) {
    handlers[name] = (argument) => calls.push([name, structuredClone(argument)]);
  }
  const session = await startSession(gateway.url, { user_query: 'research' }, handlers);
  assert.deepEqual(await session.done, { status: 'done' });
  assert.equal(of('onEvent').length, richerLog.length, 'each event once');
  assert.deepEqual(of('onStepStart'), [{ name: 'research' }]);
  assert.deepEqual(of('onStepEnd'), [{ name: 'research' }]);
  assert.deepEqual(of('onToolInput').map((i) => i.delta).join(''), '{"query":"x"}');
  assert.deepEqual(of('onToolInput')[0], { tool_call_id: 'call-1', tool_name: 'web_search', delta: '{"query":' });
  assert.deepEqual(of('onState'), [{ status: 'searching', sources: 0 }, { status: 'writing', sources: 1 }]);
  assert.deepEqual(of('onSource'), [{ id: 'src-1', url: 'https://example.com/', title: 'Example' }]);
  assert.deepEqual(of('onFile'), [{ media_type: 'text/plain', url: 'data:text/plain;base64,eA==' }]);
  assert.deepEqual(of('onData'), [
    { name: 'progress', data: { pct: 100 }, id: 'progress' },
    { name: 'notice', data: { text: 'hi' }, transient: true },
  ]);
  assert.deepEqual(of('onUsage'), [{ input_tokens: 42, output_tokens: 1, model: 'demo' }]);
  // The order the page gets them in: the input streams before the call starts.
  const order = calls.map(([name]) => name).filter((name) => ['onToolInput', 'onToolStart', 'onToolEnd'].includes(name));
  assert.deepEqual(order, ['onToolInput', 'onToolInput', 'onToolStart', 'onToolEnd']);
});

test('applyJsonPatch applies RFC 6902 operations to a copy, and throws on a patch that does not apply', () => {
  const before = { a: { b: 1 }, list: [1, 2], gone: true };
  const after = applyJsonPatch(before, [
    { op: 'add', path: '/list/-', value: 3 },
    { op: 'add', path: '/list/0', value: 0 },
    { op: 'remove', path: '/gone' },
    { op: 'replace', path: '/a/b', value: 2 },
    { op: 'copy', from: '/a', path: '/c' },
    { op: 'move', from: '/c/b', path: '/d~1e' },
    { op: 'test', path: '/d~1e', value: 2 },
  ]);
  assert.deepEqual(after, { a: { b: 2 }, list: [0, 1, 2, 3], c: {}, 'd/e': 2 });
  assert.deepEqual(before, { a: { b: 1 }, list: [1, 2], gone: true }, 'the input is untouched');
  assert.deepEqual(applyJsonPatch({ x: 1 }, [{ op: 'replace', path: '', value: [1] }]), [1]);
  assert.throws(() => applyJsonPatch({}, [{ op: 'replace', path: '/missing', value: 1 }]));
  assert.throws(() => applyJsonPatch({ a: 1 }, [{ op: 'test', path: '/a', value: 2 }]));
  assert.throws(() => applyJsonPatch(null, [{ op: 'add', path: '/a', value: 1 }]));
});

test('getThread answers the thread view, null for an unknown thread', async () => {
  assert.deepEqual(await getThread(gateway.url, 'thread-1', { headers: { authorization: 'Bearer t' } }), threadView);
  assert.equal(gateway.requests[0].headers.authorization, 'Bearer t');
  assert.equal(await getThread(gateway.url, 'thread-2'), null);
});
