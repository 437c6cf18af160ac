/** Unit tests: no Redis, no gateway. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import {
  FUNCTIONS,
  Resume,
  SessionRefused,
  ToolCall,
  UnexpectedReply,
  appendOutcome,
  batchOutcomes,
  encodeEvent,
  interruptPayload,
  parseJob,
} from '../src/index.js';

test('functions.lua is a byte-identical copy of the gateway\'s library', () => {
  const gateways = readFileSync(new URL('../../../crates/sse-bridge-redis/src/functions.lua', import.meta.url), 'utf8');
  assert.ok(FUNCTIONS === gateways, 'clients/js-worker/functions.lua differs from crates/sse-bridge-redis/src/functions.lua: copy it again');
  assert.match(FUNCTIONS, /redis\.register_function\('sse_bridge_v4_append', append\)/);
  assert.match(FUNCTIONS, /redis\.register_function\('sse_bridge_v4_append_batch', append_batch\)/);
});

test('encodeEvent: compact JSON, event_type first, the attempt when given', () => {
  assert.equal(encodeEvent('FinalAnswerStream', { char: 'a\nb' }, 'abc'), '{"event_type":"FinalAnswerStream","payload":{"char":"a\\nb"},"attempt":"abc"}');
  assert.equal(encodeEvent('worker_ack', undefined), '{"event_type":"worker_ack","payload":{}}');
  assert.throws(() => encodeEvent('', {}), TypeError);
});

test('appendOutcome reads the three replies and refuses anything else', () => {
  assert.deepEqual(appendOutcome([1, '1-0', 2]), { logId: '1-0', receivers: 2 });
  assert.deepEqual(appendOutcome([2, '', 0]), { logId: null, receivers: 0 });
  assert.throws(() => appendOutcome([0, 'foreign']), (e) => e instanceof SessionRefused && e.reason === 'foreign');
  assert.throws(() => appendOutcome('OK'), UnexpectedReply);
});

test('batchOutcomes reads the reply: one outcome per event, the refused ones as SessionRefused', () => {
  assert.deepEqual(batchOutcomes([['1-0', '', '1-1'], '', 2], 3), [
    { logId: '1-0', receivers: 2 },
    { logId: null, receivers: 2 },
    { logId: '1-1', receivers: 2 },
  ]);
  const [first, second, third] = batchOutcomes([['1-0'], 'foreign', 1], 3);
  assert.deepEqual(first, { logId: '1-0', receivers: 1 });
  assert.ok(second instanceof SessionRefused && second.reason === 'foreign');
  assert.equal(third, second);
  // A retried batch found logged answers fewer ids: the rest were refused as the session ended.
  const retried = batchOutcomes([['1-0'], '', 0], 2);
  assert.ok(retried[1] instanceof SessionRefused && retried[1].reason === 'ended');
  assert.throws(() => batchOutcomes([['1-0', '1-1'], 'ended', 0], 2), /unexpected reply/);
  assert.throws(() => batchOutcomes([['1-0', '1-1', '1-2'], '', 0], 2), /unexpected reply/);
  assert.throws(() => batchOutcomes([1, '1-0', 1], 1), /unexpected reply/);
});

test('interruptPayload checks what the gateway checks and fills in ids', () => {
  const { interrupts } = interruptPayload([{ reason: 'input_required', message: 'Which account?', expires_at: new Date('2026-12-05T10:00:00.123Z') }]);
  assert.match(interrupts[0].id, /^int-[0-9a-f]{32}$/);
  assert.equal(interrupts[0].expires_at, '2026-12-05T10:00:00Z');
  assert.throws(() => interruptPayload([]), RangeError);
  assert.throws(() => interruptPayload([{ id: 'a', reason: '' }]), TypeError);
  assert.throws(() => interruptPayload([{ id: 'a', reason: 'x' }, { id: 'a', reason: 'y' }]), TypeError);
});

test('a tool call\'s interrupt carries the call, and the resume gives it back with the decision', () => {
  const call = new ToolCall('send_report', { to: 'finance' });
  const interrupt = call.interrupt({ message: 'Send?' });
  assert.deepEqual(interrupt.metadata, { tool_name: 'send_report', tool_input: { to: 'finance' } });
  const job = {
    sessionId: 's2',
    entryId: '1-0',
    createdAt: 0,
    request: { thread_id: 't', resume: [{ interrupt_id: interrupt.id, status: 'resolved', payload: { approved: false, reason: 'no' } }] },
    parentRequest: { user_query: 'send it' },
    interrupts: [interrupt],
  };
  const resume = Resume.of(job);
  const approval = resume.approval('send_report');
  assert.deepEqual([approval.call.id, approval.call.input, approval.approved, approval.reason], [call.id, { to: 'finance' }, false, 'no']);
  assert.equal(resume.approval('other'), null);
  assert.equal(Resume.of({ ...job, request: { user_query: 'hi' } }), null);
  assert.throws(() => Resume.of({ ...job, request: { thread_id: 't', resume: [{ interrupt_id: interrupt.id, status: 'resolved', payload: 'yes' }] } }).approvals, TypeError);
});

test('parseJob reads the gateway\'s job and says what is wrong with a bad one', () => {
  const job = parseJob('1-0', ['job', JSON.stringify({ session_id: 's', request: { user_query: 'q' }, created_at: 5, parent_session_id: 'p' })]);
  assert.deepEqual(job, { sessionId: 's', request: { user_query: 'q' }, createdAt: 5, entryId: '1-0', parentSessionId: 'p' });
  assert.throws(() => parseJob('1-0', ['other', '{}']), /no field/);
  assert.throws(() => parseJob('1-0', ['job', '{"session_id":"s","request":[]}']), /request/);
});
