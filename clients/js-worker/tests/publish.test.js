/**
 * Publishing against the real Redis at 127.0.0.1:6379, without a gateway:
 * sessions are made by hand the way the gateway makes them. `publishBatch`
 * (one `FCALL sse_bridge_v4_append_batch`: the log, the live message, the
 * first refusal, a retried batch answered rather than appended twice), and
 * a `Session`'s send queue: the events sent while an append is in flight go
 * in one call, in order; a refusal mid-batch stops the session; a batch
 * whose reply was lost is retried and logged once, one that failed past its
 * retries stops the session; `send` waits for room past 1 MiB; the AI SDK
 * adapter's deltas batch. Calls are counted by
 * wrapping the ioredis client's `call`.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Redis } from 'ioredis';

import {
  APPEND_BATCH_FUNCTION,
  Session,
  SessionRefused,
  SessionStopped,
  publishBatch,
  publishEvent,
} from '../src/index.js';
import { appendEncoded } from '../src/publish.js';
import { pipeFullStream } from '../src/ai-sdk.js';
import { REDIS_URL, createSession, until } from './support.js';

/** @type {Redis} */
let redis;
/** @type {(() => Promise<unknown>)[]} */
const cleanups = [];
before(() => {
  redis = new Redis(REDIS_URL);
});
after(async () => {
  for (const cleanup of cleanups) await cleanup();
  await redis?.quit();
});

/** @param {{ batches?: boolean }} [options] a session made by hand, deleted after the tests */
async function session(options) {
  const made = await createSession(redis, options);
  cleanups.push(made.remove);
  return made;
}

/** The log's entries: `{ id, type, char }` each. */
async function logged(logKey) {
  return (await redis.xrange(logKey, '-', '+')).map(([id, fields]) => {
    const event = JSON.parse(fields[fields.indexOf('e') + 1]);
    return { id, type: event.event_type, char: event.payload.char };
  });
}

/**
 * The real client with its FCALLs recorded (`calls`: the function and its
 * events' types); `hold()` keeps the next FCALL waiting until the returned
 * release is called; `loseNextReply()` makes the next FCALL run and then
 * fail as a dropped connection would.
 */
function recorded() {
  /** @type {{ name: string, types: string[], args: unknown[] }[]} */
  const calls = [];
  /** @type {Promise<void> | null} */
  let held = null;
  let loseReply = false;
  let down = false;
  const client = {
    calls,
    hold() {
      /** @type {() => void} */
      let release = () => {};
      held = new Promise((resolve) => (release = resolve));
      return release;
    },
    loseNextReply() {
      loseReply = true;
    },
    /** Every FCALL from now on fails as an unreachable Redis would. */
    goDown() {
      down = true;
    },
    /** @param {...any} args */
    async call(...args) {
      if (args[0] !== 'FCALL') return redis.call(...args);
      const types = args[1] === APPEND_BATCH_FUNCTION ? args.slice(10).filter((_, i) => i % 2 === 0) : [args[7]];
      calls.push({ name: args[1], types, args });
      if (down) throw new Error('connect ECONNREFUSED 127.0.0.1:6379');
      if (held) {
        const wait = held;
        held = null;
        await wait;
      }
      const reply = await redis.call(...args);
      if (loseReply) {
        loseReply = false;
        throw new Error('Connection is closed.');
      }
      return reply;
    },
  };
  return client;
}

/** A worker's session on `client`, attempt `a1`. */
function workerSession(sessionId, client, publishRetryMs = 5000) {
  const job = { sessionId, entryId: '1-0', createdAt: 0, request: { user_query: 'q' } };
  return new Session(job, 'a1', /** @type {any} */ (client), { publishRetryMs });
}

const piece = (char) => ({ eventType: 'FinalAnswerStream', payload: { char } });

for (const batches of [true, false]) {
  test(`publishBatch logs the events in order, one id each, and publishes them (${batches ? 'one JSON array: the gateways read batches' : 'one message per event'})`, async () => {
    const { sessionId, channel, logKey, metaKey } = await session({ batches });
    const listener = new Redis(REDIS_URL);
    /** @type {string[]} */
    const messages = [];
    listener.on('message', (from, message) => from === channel && messages.push(message));
    await listener.subscribe(channel);
    try {
      const events = [
        { eventType: 'worker_ack' },
        piece('Hello'),
        { eventType: 'worker_heartbeat', payload: {} },
        piece(', '),
        piece('world'),
      ];
      const outcomes = await publishBatch(redis, sessionId, events, { attempt: 'a1', idempotencyKey: 'a1:0' });
      assert.equal(outcomes.length, 5);
      assert.ok(outcomes.every((o) => !(o instanceof SessionRefused) && o.receivers === 1), JSON.stringify(outcomes));
      const ids = outcomes.map((o) => /** @type {import('../src/publish.js').Published} */ (o).logId);
      assert.equal(ids[2], null, 'a heartbeat is published, not logged');

      const log = await logged(logKey);
      assert.deepEqual(log.map((e) => e.type), ['worker_ack', 'FinalAnswerStream', 'FinalAnswerStream', 'FinalAnswerStream']);
      assert.deepEqual(log.map((e) => e.id), ids.filter((id) => id !== null), 'one log id per logged event, in order');
      assert.equal(await redis.hget(metaKey, 'last_key'), `a1:0\n${ids[0]}`, 'the batch\'s key is remembered with its first entry');

      await until(() => messages.length >= (batches ? 1 : 5), 'the live messages');
      await new Promise((resolve) => setTimeout(resolve, 50));
      const live = batches ? JSON.parse(messages[0]) : messages.map((m) => JSON.parse(m));
      assert.equal(messages.length, batches ? 1 : 5);
      assert.ok(Array.isArray(live) && live.every((e) => !Array.isArray(e)));
      assert.deepEqual(live.map((e) => e.event_type), events.map((e) => e.eventType));
      assert.deepEqual(live.map((e) => e.log_id ?? null), ids, 'each message carries its entry id');
      assert.equal(live.map((e) => e.payload.char ?? '').join(''), 'Hello, world');
    } finally {
      await listener.quit();
    }
  });
}

test('publishBatch: the first refusal stops the batch, the events before it stand; a bad event appends nothing', async () => {
  const { sessionId, logKey } = await session();
  const [notAcked] = await publishBatch(redis, sessionId, [piece('early')], { attempt: 'a1' });
  assert.ok(notAcked instanceof SessionRefused && notAcked.reason === 'not_acked');

  const outcomes = await publishBatch(
    redis,
    sessionId,
    [{ eventType: 'worker_ack' }, piece('done'), { eventType: 'FinalAnswerStreamEnd' }, piece('late'), piece('later')],
    { attempt: 'a1', idempotencyKey: 'a1:1' },
  );
  assert.deepEqual(
    outcomes.map((o) => (o instanceof SessionRefused ? o.reason : 'logged')),
    ['logged', 'logged', 'logged', 'ended', 'ended'],
  );
  assert.deepEqual((await logged(logKey)).map((e) => e.type), ['worker_ack', 'FinalAnswerStream', 'FinalAnswerStreamEnd']);

  const unknown = await publishBatch(redis, `${sessionId}_none`, [{ eventType: 'worker_ack' }, piece('x')], { attempt: 'a1' });
  assert.ok(unknown.every((o) => o instanceof SessionRefused && o.reason === 'unknown'));

  const other = await session();
  const good = '{"event_type":"worker_ack","payload":{},"attempt":"a1"}';
  const bad = '{"event_type":"FinalAnswerStream","payload":{"char":"x"},"attempt":"a1"}';
  await assert.rejects(
    appendEncoded(redis, other.sessionId, [{ eventType: 'worker_ack', json: good }, { eventType: 'AgentThoughtStream', json: bad }], { attempt: 'a1' }),
    /event 2: the event_type argument/,
  );
  assert.equal(await redis.xlen(other.logKey), 0, 'an error reply appends nothing');
});

test('publishBatch retried with the same key answers the logged batch instead of appending it twice', async () => {
  const { sessionId, logKey } = await session();
  const batch = [{ eventType: 'worker_ack' }, piece('a'), piece('b')];
  const first = await publishBatch(redis, sessionId, batch, { attempt: 'a1', idempotencyKey: 'a1:0' });
  const again = await publishBatch(redis, sessionId, batch, { attempt: 'a1', idempotencyKey: 'a1:0' });
  assert.deepEqual(again.map((o) => /** @type {any} */ (o).logId), first.map((o) => /** @type {any} */ (o).logId));
  assert.equal(await redis.xlen(logKey), 3);

  // A batch the session refused part of: the retry answers the logged part, the rest as ended.
  const ending = [piece('c'), { eventType: 'FinalAnswerStreamEnd' }, piece('d')];
  const ended = await publishBatch(redis, sessionId, ending, { attempt: 'a1', idempotencyKey: 'a1:3' });
  const retried = await publishBatch(redis, sessionId, ending, { attempt: 'a1', idempotencyKey: 'a1:3' });
  assert.deepEqual(retried.slice(0, 2), ended.slice(0, 2).map((o) => ({ .../** @type {any} */ (o), receivers: 0 })));
  assert.ok(retried[2] instanceof SessionRefused && retried[2].reason === 'ended');
  assert.deepEqual((await logged(logKey)).map((e) => e.char ?? e.type), ['worker_ack', 'a', 'b', 'c', 'FinalAnswerStreamEnd']);

  // The single publish keeps its own key and its retry too.
  const single = await session();
  await publishEvent(redis, single.sessionId, 'worker_ack', {}, { attempt: 'a1', idempotencyKey: 'a1:0' });
  await publishEvent(redis, single.sessionId, 'worker_ack', {}, { attempt: 'a1', idempotencyKey: 'a1:0' });
  assert.equal(await redis.xlen(single.logKey), 1);
});

test('a session\'s sends made while an append is in flight go in one call, in order, each with its key; a lone event goes at once', async () => {
  const { sessionId, logKey, metaKey } = await session({ batches: true });
  const client = recorded();
  const s = workerSession(sessionId, client);
  const release = client.hold();
  const acked = s.publish('worker_ack');
  await new Promise((resolve) => setImmediate(resolve)); // the ack's call is made (and held)
  for (let i = 0; i < 50; i += 1) await s.send('FinalAnswerStream', { char: `${i} ` });
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(client.calls.length, 1, 'the sends wait while the ack is in flight');
  release();
  assert.ok((await acked).logId);
  await s.flush();
  assert.deepEqual(client.calls.map((c) => c.types.length), [1, 50], 'the ack alone, then the 50 sends in one call');
  assert.ok(client.calls.every((c) => c.name === APPEND_BATCH_FUNCTION));

  const lone = await s.publish('FinalAnswerStream', { char: 'end' });
  assert.deepEqual(client.calls.map((c) => c.types.length), [1, 50, 1]);

  const log = await logged(logKey);
  assert.equal(log.length, 52);
  assert.equal(log.slice(1).map((e) => e.char).join(''), `${Array.from({ length: 50 }, (_, i) => `${i} `).join('')}end`);
  assert.equal(log.at(-1)?.id, lone.logId);
  assert.equal(
    await redis.hget(metaKey, 'last_key'),
    `a1:51\n${lone.logId}`,
    'the keys stay <attempt>:<n> per event (the ack a1:0, the sends a1:1 to a1:50)',
  );
  assert.equal(s.ended, false);
});

test('a session\'s calls hold at most 256 events', async () => {
  const { sessionId, logKey } = await session({ batches: true });
  const client = recorded();
  const s = workerSession(sessionId, client);
  const release = client.hold();
  s.send('worker_ack');
  await new Promise((resolve) => setImmediate(resolve));
  for (let i = 0; i < 600; i += 1) s.send('FinalAnswerStream', { char: '.' });
  release();
  await s.flush();
  assert.deepEqual(client.calls.map((c) => c.types.length), [1, 256, 256, 88]);
  assert.equal(await redis.xlen(logKey), 601);
});

test('send waits while more than 1 MiB is queued, and keeps its place', async () => {
  const { sessionId, logKey } = await session();
  const client = recorded();
  const s = workerSession(sessionId, client);
  const big = 'x'.repeat(300 * 1024);
  const release = client.hold();
  const acked = s.publish('worker_ack');
  for (let i = 0; i < 3; i += 1) await s.send('FinalAnswerStream', { char: big });
  let queued = false;
  const fourth = s.send('FinalAnswerStream', { char: big }).then(() => (queued = true));
  const after = s.publish('FinalAnswerStream', { char: 'after' });
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(queued, false, 'the fourth 300 KiB send waits for room');
  release();
  await acked;
  await fourth;
  await after;
  await s.flush();
  // Each 300 KiB event is a call of its own (256 KiB per call); order is kept.
  assert.deepEqual(client.calls.map((c) => c.types.length), [1, 1, 1, 1, 1, 1]);
  const log = await logged(logKey);
  assert.deepEqual(log.map((e) => (e.char === big ? 'big' : e.char ?? e.type)), ['worker_ack', 'big', 'big', 'big', 'big', 'after']);
});

test('a refusal mid-batch surfaces from flush and the next send, and stops the session', async () => {
  const { sessionId, logKey } = await session({ batches: true });
  const client = recorded();
  const s = workerSession(sessionId, client);
  const release = client.hold();
  const acked = s.publish('worker_ack');
  await new Promise((resolve) => setImmediate(resolve));
  await s.send('FinalAnswerStream', { char: 'done' });
  const end = s.publish('FinalAnswerStreamEnd');
  const late = s.publish('FinalAnswerStream', { char: 'late' });
  await s.send('FinalAnswerStream', { char: 'later' });
  late.catch(() => {});
  release();
  await acked;
  assert.ok((await end).logId, 'the events before the refusal stand');
  await assert.rejects(late, (e) => e instanceof SessionRefused && e.reason === 'ended');
  await assert.rejects(s.flush(), (e) => e instanceof SessionRefused && e.reason === 'ended');
  assert.deepEqual(client.calls.map((c) => c.types), [['worker_ack'], ['FinalAnswerStream', 'FinalAnswerStreamEnd', 'FinalAnswerStream', 'FinalAnswerStream']]);
  assert.ok(s.ended);
  assert.ok(s.cancelled && s.signal.aborted, 'the session stopped');
  await assert.rejects(s.send('FinalAnswerStream', { char: 'more' }), (e) => e instanceof SessionRefused && e.reason === 'ended');
  await assert.rejects(s.publish('FinalAnswerStream', { char: 'more' }), SessionStopped);
  assert.equal(client.calls.length, 2, 'nothing more was sent');
  assert.deepEqual((await logged(logKey)).map((e) => e.type), ['worker_ack', 'FinalAnswerStream', 'FinalAnswerStreamEnd']);
});

test('sends nobody awaits never become unhandled rejections, and their refusal still surfaces', async () => {
  /** @type {unknown[]} */
  const unhandled = [];
  const onUnhandled = (/** @type {unknown} */ reason) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  try {
    const { sessionId, logKey } = await session();
    const s = workerSession(sessionId, recorded());
    await s.publish('worker_ack');
    // Another attempt takes the session over: this one's next batch is refused.
    await redis.hset(`sse_session_meta:${sessionId}`, 'attempt', 'b2');
    for (let i = 0; i < 5; i += 1) s.send('FinalAnswerStream', { char: `${i}` });
    await until(() => s.cancelled, 'the refusal');
    for (let i = 0; i < 5; i += 1) s.send('FinalAnswerStream', { char: 'after' });
    s.send('');
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(unhandled, []);
    await assert.rejects(s.flush(), (e) => e instanceof SessionRefused && e.reason === 'foreign');
    assert.equal(await redis.xlen(logKey), 1);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});

test('a batch whose reply was lost is retried (again) and logged once', async () => {
  const { sessionId, logKey } = await session({ batches: true });
  const client = recorded();
  const s = workerSession(sessionId, client);
  await s.publish('worker_ack');
  client.loseNextReply();
  s.send('FinalAnswerStream', { char: 'a' });
  s.send('FinalAnswerStream', { char: 'b' });
  const last = s.publish('FinalAnswerStream', { char: 'c' });
  const { logId } = await last;
  await s.flush();
  assert.equal(client.calls.length, 3, 'the ack, the batch, its retry');
  assert.deepEqual(client.calls[2].args, client.calls[1].args, 'the retry is the same call');
  assert.deepEqual(client.calls[1].args.slice(6, 9), ['a1', 'a1:1', 'again']);
  const log = await logged(logKey);
  assert.deepEqual(log.map((e) => e.char ?? e.type), ['worker_ack', 'a', 'b', 'c']);
  assert.equal(log.at(-1)?.id, logId, 'the retried publish resolves with its entry');
  assert.equal(s.cancelled, false);
});

test('a batch that failed past its retries stops the session; flush and the next send throw the failure', async () => {
  const { sessionId, logKey } = await session();
  const client = recorded();
  const s = workerSession(sessionId, client, 300);
  await s.publish('worker_ack');
  client.goDown();
  s.send('FinalAnswerStream', { char: 'a' });
  const lost = s.publish('FinalAnswerStream', { char: 'b' });
  await assert.rejects(lost, /ECONNREFUSED/);
  await assert.rejects(s.flush(), /ECONNREFUSED/);
  assert.ok(s.cancelled && s.signal.aborted);
  await assert.rejects(s.send('FinalAnswerStream', { char: 'c' }), /ECONNREFUSED/);
  const tries = client.calls.slice(1);
  assert.ok(tries.length >= 3, `retried with backoff: ${tries.length} tries`);
  assert.ok(tries.every((c) => c.args[8] === 'again' && c.args[7] === 'a1:1'), 'every try names the batch, again');
  assert.equal(await redis.xlen(logKey), 1);
});

test('the AI SDK adapter streams deltas with send: they batch, and the run resolves once they are logged', async () => {
  const { sessionId, logKey } = await session({ batches: true });
  const client = recorded();
  const s = workerSession(sessionId, client);
  await s.publish('worker_ack');
  const words = Array.from({ length: 100 }, (_, i) => `w${i} `);
  async function* fullStream() {
    yield { type: 'start-step', request: {}, warnings: [] };
    yield { type: 'reasoning-delta', id: 'r', text: 'thinking' };
    yield { type: 'tool-input-start', id: 'c1', toolName: 'search' };
    yield { type: 'tool-input-delta', id: 'c1', delta: '{"q":' };
    yield { type: 'tool-input-delta', id: 'c1', delta: '"x"}' };
    yield { type: 'tool-call', toolCallId: 'c1', toolName: 'search', input: { q: 'x' } };
    yield { type: 'tool-result', toolCallId: 'c1', toolName: 'search', input: { q: 'x' }, output: 1 };
    for (const text of words) yield { type: 'text-delta', id: 't', text };
    yield { type: 'finish-step', response: { modelId: 'm' }, usage: {}, finishReason: 'stop' };
  }
  const result = await pipeFullStream(s, fullStream());
  assert.equal(result.text, words.join(''));
  const log = await logged(logKey);
  assert.deepEqual(
    log.map((e) => e.type).filter((t, i, all) => t !== all[i - 1]),
    ['worker_ack', 'AgentStepStart', 'AgentThoughtStream', 'AgentToolCallInputStream', 'AgentToolCallStart', 'AgentToolCallEnd', 'FinalAnswerStream', 'AgentStepEnd'],
  );
  assert.equal(log.filter((e) => e.type === 'FinalAnswerStream').map((e) => e.char).join(''), words.join(''));
  const events = client.calls.reduce((n, c) => n + c.types.length, 0);
  assert.equal(events, log.length);
  assert.ok(client.calls.length < events / 4, `${client.calls.length} calls for ${events} events`);
});
