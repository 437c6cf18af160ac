/**
 * The worker loop against the real gateway binary and Redis: a session
 * streamed end to end, sends left unawaited flushed before the end, the
 * handler's failure, cancel, an interrupt and its resume, reclaim of a dead
 * worker's job, graceful stop.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Redis } from 'ioredis';

import { SessionStopped } from '../src/index.js';
import { REDIS_URL, readFrames, runWorker, startGateway, unique, until } from './support.js';

/** @type {import('./support.js').Gateway} */
let gateway;
/** @type {Redis} */
let redis;

before(async () => {
  gateway = await startGateway();
  redis = new Redis(REDIS_URL);
});
after(async () => {
  await gateway?.stop();
  await redis?.quit();
});

const types = (events) => events.map((e) => e.event_type);

test('a session streams the handler\'s events and ends with FinalAnswerStreamEnd; the job is acked', async () => {
  const worker = runWorker(gateway, async (session) => {
    await session.thought('Let me look that up.');
    const call = await session.toolStart('search', { q: session.request.user_query });
    await session.toolEnd(call, '42');
    await session.answer('The answer ');
    await session.answer('is 42.');
  });
  try {
    const { events } = await gateway.session({ user_query: 'what is it?' });
    assert.deepEqual(types(events), [
      'worker_ack',
      'AgentThoughtStream',
      'AgentToolCallStart',
      'AgentToolCallEnd',
      'FinalAnswerStream',
      'FinalAnswerStream',
      'FinalAnswerStreamEnd',
    ]);
    assert.deepEqual(events[2].payload.tool_input, { q: 'what is it?' });
    assert.equal(events[2].payload.tool_call_id, events[3].payload.tool_call_id);
    assert.equal(events[3].payload.output, '42');
    assert.equal(events.filter((e) => e.event_type === 'FinalAnswerStream').map((e) => e.payload.char).join(''), 'The answer is 42.');
    assert.ok(events.every((e) => !('attempt' in e) && !('log_id' in e)), 'the envelope fields are the gateway\'s');
    await until(async () => (await redis.xpending(gateway.stream, gateway.group))[0] === 0, 'the XACK');
  } finally {
    await worker.stop();
  }
});

test('sends the handler never awaited are all logged, in order, before the worker ends the session', async () => {
  const pieces = Array.from({ length: 300 }, (_, i) => `${i} `);
  const worker = runWorker(gateway, async (session) => {
    await session.publish('AgentStepStart', { name: 'answer' });
    for (const char of pieces) session.send('FinalAnswerStream', { char });
    session.send('AgentStepEnd', { name: 'answer' });
  });
  try {
    const { sessionId, events } = await gateway.session({ user_query: 'stream it' });
    assert.deepEqual(
      types(events).filter((t, i, all) => t !== all[i - 1]),
      ['worker_ack', 'AgentStepStart', 'FinalAnswerStream', 'AgentStepEnd', 'FinalAnswerStreamEnd'],
    );
    assert.equal(events.filter((e) => e.event_type === 'FinalAnswerStream').map((e) => e.payload.char).join(''), pieces.join(''));
    assert.equal(await redis.xlen(`sse_events:${sessionId}`), pieces.length + 4, 'each event logged once');
    await until(async () => (await redis.xpending(gateway.stream, gateway.group))[0] === 0, 'the XACK');
  } finally {
    await worker.stop();
  }
});

test('a handler that throws ends the session with error/worker_error', async () => {
  const worker = runWorker(gateway, async (session) => {
    await session.answer('half');
    throw new RangeError('the tool broke');
  });
  try {
    const { events } = await gateway.session({ user_query: 'fail' });
    assert.deepEqual(types(events), ['worker_ack', 'FinalAnswerStream', 'error']);
    assert.deepEqual(events[2].payload, { error: 'RangeError: the tool broke', code: 'worker_error' });
  } finally {
    await worker.stop();
  }
});

test('DELETE cancels: the session signal aborts, publishes throw SessionStopped, and the job is acked', async () => {
  let stoppedBy;
  let signalled = false;
  const worker = runWorker(gateway, async (session) => {
    await session.answer('working');
    session.signal.addEventListener('abort', () => (signalled = true));
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      try {
        await session.thought('.');
      } catch (error) {
        stoppedBy = error;
        return;
      }
    }
  });
  try {
    const response = await gateway.post('/v1/react/sessions', { user_query: 'long', on_disconnect: 'continue' });
    const sid = response.headers.get('x-session-id');
    const reader = response.body.getReader();
    await reader.read();
    const deleted = await fetch(`${gateway.url}/v1/react/sessions/${sid}`, { method: 'DELETE' });
    assert.ok(deleted.status < 300, `DELETE: ${deleted.status}`);
    await until(() => stoppedBy !== undefined, 'the handler to stop');
    assert.ok(stoppedBy instanceof SessionStopped, String(stoppedBy));
    assert.ok(signalled, 'session.signal aborted');
    await reader.cancel();
    await until(async () => (await redis.xpending(gateway.stream, gateway.group))[0] === 0, 'the XACK');
  } finally {
    await worker.stop();
  }
});

test('a silent handler sends worker_heartbeat (published live, never logged)', async () => {
  const listener = new Redis(REDIS_URL);
  const heartbeats = [];
  listener.on('pmessage', (_pattern, channel, message) => {
    if (JSON.parse(message).event_type === 'worker_heartbeat') heartbeats.push(channel);
  });
  await listener.psubscribe('sse_session:*');
  const worker = runWorker(
    gateway,
    async (session) => {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await session.answer('done');
    },
    { heartbeatMs: 200 },
  );
  try {
    const { sessionId, events } = await gateway.session({ user_query: 'slow' });
    assert.deepEqual(types(events), ['worker_ack', 'FinalAnswerStream', 'FinalAnswerStreamEnd']);
    const mine = heartbeats.filter((channel) => channel === `sse_session:${sessionId}`).length;
    assert.ok(mine >= 3, `heartbeats during a 1 s silence at 200 ms: ${mine}`);
    const logged = await redis.xrange(`sse_events:${sessionId}`, '-', '+');
    assert.ok(logged.every(([, fields]) => !fields[1].includes('worker_heartbeat')), 'heartbeats are not logged');
  } finally {
    await worker.stop();
    await listener.quit();
  }
});

test('requestApproval ends the run with an interrupt; the resumed run reads the decision and ends the same call', async () => {
  const worker = runWorker(gateway, async (session) => {
    const approval = session.resume?.approval('send_report');
    if (!approval) {
      await session.requestApproval('send_report', { to: 'finance' }, { message: 'Send the report to finance?' });
      return;
    }
    if (approval.approved) {
      await session.toolEnd(approval.call, { sent: true });
      await session.answer('Sent the report to finance.');
    } else {
      await session.toolDenied(approval.call, approval.reason);
      await session.answer('Okay, I did not send the report.');
    }
  });
  try {
    for (const approved of [true, false]) {
      const thread = unique('jskit-thread');
      const first = await gateway.session({ user_query: 'send the report', thread_id: thread });
      assert.deepEqual(types(first.events), ['worker_ack', 'AgentToolCallStart', 'interrupt']);
      const [asked] = first.events[2].payload.interrupts;
      assert.equal(asked.reason, 'tool_call');
      assert.equal(asked.tool_call_id, first.events[1].payload.tool_call_id);
      assert.equal(asked.message, 'Send the report to finance?');
      const second = await gateway.session({
        thread_id: thread,
        resume: [{ interrupt_id: asked.id, status: 'resolved', payload: approved ? { approved } : { approved, reason: 'not today' } }],
      });
      assert.deepEqual(types(second.events), ['worker_ack', 'AgentToolCallEnd', 'FinalAnswerStream', 'FinalAnswerStreamEnd']);
      const end = second.events[1].payload;
      assert.equal(end.tool_call_id, asked.tool_call_id, 'the resumed run ends the call the first one started');
      if (approved) assert.deepEqual(end.output, { sent: true });
      else assert.deepEqual([end.denied, end.error], [true, 'not today']);
    }
  } finally {
    await worker.stop();
  }
});

test('a job a dead worker left pending is reclaimed and run by another', async () => {
  // A consumer takes the job and dies without acking it.
  const response = gateway.post('/v1/react/sessions', { user_query: 'orphan' });
  const taken = await redis.xreadgroup('GROUP', gateway.group, 'dead-consumer', 'COUNT', 1, 'BLOCK', 10_000, 'STREAMS', gateway.stream, '>');
  assert.equal(taken?.[0][1].length, 1, 'the dead consumer took the job');
  const worker = runWorker(gateway, async (session) => session.answer(`rescued ${session.request.user_query}`), { claimIdleMs: 300 });
  try {
    const events = (await readFrames(await response)).map((f) => f.data);
    assert.deepEqual(types(events), ['worker_ack', 'FinalAnswerStream', 'FinalAnswerStreamEnd']);
    assert.equal(events[1].payload.char, 'rescued orphan');
  } finally {
    await worker.stop();
  }
});

test('stop() lets the job in flight finish, then run() resolves', async () => {
  let release;
  let started = false;
  const gate = new Promise((resolve) => (release = resolve));
  const worker = runWorker(gateway, async (session) => {
    await session.answer('started');
    started = true;
    await gate;
    await session.answer(' and finished');
  });
  const response = gateway.post('/v1/react/sessions', { user_query: 'graceful' });
  await until(() => started, 'the job to start');
  const stopped = worker.stop();
  setTimeout(release, 300);
  await stopped;
  const events = (await readFrames(await response)).map((f) => f.data);
  assert.deepEqual(types(events), ['worker_ack', 'FinalAnswerStream', 'FinalAnswerStream', 'FinalAnswerStreamEnd']);
});
