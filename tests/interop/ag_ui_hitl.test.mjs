/**
 * Human in the loop (PROTOCOL §8) through `@ag-ui/client` 1.0's `HttpAgent`
 * against `POST /v1/ag-ui`, the demo agent's tools on the other side:
 *
 * - "send the report": `runAgent` ends with RUN_FINISHED whose outcome is
 *   the interrupt (`onRunFinishedEvent`, `agent.pendingInterrupts`); a second
 *   `runAgent({resume: [...]})` on the same thread (the agent's own check
 *   that every pending interrupt is answered included) continues to the
 *   tool's result and the answer, approved or denied.
 * - "what time is it": a frontend tool; its result as a `role: "tool"`
 *   message added to the agent, plus the resume entry, continues the run.
 *
 * Each on the embedded gateway, on a Redis gateway with a separate worker,
 * and across two Redis gateways (the interrupt raised through A, resumed
 * through B). Run by crates/sse-bridge/tests/agent_ui.rs (SSE_BRIDGE_GATEWAY,
 * SSE_BRIDGE_REDIS_GATEWAY, SSE_BRIDGE_REDIS_GATEWAY_B). Each test reports
 * what the client did (`t.diagnostic`).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { HttpAgent, getRunOutcome } from '@ag-ui/client';

/** The gateway URL in env variable `name` (set by the Rust test). */
function gateway(name) {
  const url = process.env[name];
  if (!url) throw new Error(`${name} is not set (crates/sse-bridge/tests/agent_ui.rs sets it)`);
  return url;
}

/** Runs the agent once; its events and what `onRunFinishedEvent` / `onRunFailed` saw. */
async function run(agent, parameters = {}) {
  const events = [];
  const finished = [];
  const failures = [];
  await agent.runAgent(
    { runId: `run-${randomUUID()}`, ...parameters },
    {
      onEvent: ({ event }) => void events.push(event),
      onRunFinishedEvent: ({ event, outcome }) => void finished.push({ event, outcome }),
      onRunFailed: ({ error }) => void failures.push(error),
    },
  );
  return { events, finished, failures };
}

/** A short line per event: its type and the fields that matter here. */
function describe(events) {
  const lines = events.map((e) => {
    const { type, toolCallId, toolCallName, content, outcome, delta, message, code } = e;
    const fields = { toolCallId, toolCallName, content, outcome, message, code };
    for (const key of Object.keys(fields)) if (fields[key] === undefined) delete fields[key];
    return delta !== undefined ? type : `${type}${Object.keys(fields).length ? ` ${JSON.stringify(fields)}` : ''}`;
  });
  return lines.filter((line, i) => !(line.endsWith('_CONTENT') && lines[i - 1] === line)).join(', ');
}

const answerOf = (events) =>
  events
    .filter((e) => e.type === 'TEXT_MESSAGE_CONTENT')
    .map((e) => e.delta)
    .join('');

/** Asks `question` through `urls[0]`; the agent after the interrupted run and that run's interrupt. */
async function interrupted(urls, question, t) {
  const agent = new HttpAgent({
    url: `${urls[0]}/v1/ag-ui`,
    threadId: `thread-${randomUUID()}`,
    initialMessages: [{ id: randomUUID(), role: 'user', content: question }],
  });
  const first = await run(agent);
  t.diagnostic(`run 1 (${agent.url}): ${describe(first.events)}`);
  t.diagnostic(`run 1 onRunFinishedEvent outcome: ${JSON.stringify(first.finished.map((f) => f.outcome))}; pendingInterrupts: ${JSON.stringify(agent.pendingInterrupts)}`);
  assert.deepEqual(first.failures, []);
  const types = first.events.map((e) => e.type);
  assert.equal(types.at(-1), 'RUN_FINISHED', `${types}`);
  assert.ok(!types.includes('RUN_ERROR'), `${types}`);
  const finish = first.events.at(-1);
  const outcome = getRunOutcome(finish);
  assert.equal(outcome?.type, 'interrupt', JSON.stringify(finish));
  assert.equal(outcome.interrupts.length, 1);
  const [interrupt] = outcome.interrupts;
  assert.equal(interrupt.reason, 'tool_call');
  assert.deepEqual(agent.pendingInterrupts, outcome.interrupts, 'the agent keeps the interrupt as pending');
  assert.equal(first.finished.length, 1);

  const starts = first.events.filter((e) => e.type === 'TOOL_CALL_START');
  assert.equal(starts.length, 1, `${types}`);
  assert.equal(interrupt.toolCallId, starts[0].toolCallId);
  assert.ok(!types.includes('TOOL_CALL_RESULT'), `${types}`);
  // The next run goes to the last gateway (the same one, or gateway B).
  agent.url = `${urls.at(-1)}/v1/ag-ui`;
  return { agent, interrupt, call: starts[0] };
}

/** The resumed run: no error, RUN_FINISHED without an interrupt, nothing pending. */
function assertContinued(agent, resumed, t) {
  t.diagnostic(`run 2 (${agent.url}): ${describe(resumed.events)}`);
  t.diagnostic(`run 2 onRunFinishedEvent outcome: ${JSON.stringify(resumed.finished.map((f) => f.outcome))}; pendingInterrupts: ${JSON.stringify(agent.pendingInterrupts)}`);
  assert.deepEqual(resumed.failures, []);
  const types = resumed.events.map((e) => e.type);
  assert.equal(types[0], 'RUN_STARTED', `${types}`);
  assert.equal(types.at(-1), 'RUN_FINISHED', `${types}`);
  assert.ok(!types.includes('RUN_ERROR'), `${types}`);
  assert.notEqual(getRunOutcome(resumed.events.at(-1))?.type, 'interrupt');
  assert.deepEqual(agent.pendingInterrupts, []);
}

const GATEWAYS = [
  ['embedded', ['SSE_BRIDGE_GATEWAY']],
  ['redis + worker', ['SSE_BRIDGE_REDIS_GATEWAY']],
  ['interrupt through gateway A, resume through gateway B', ['SSE_BRIDGE_REDIS_GATEWAY', 'SSE_BRIDGE_REDIS_GATEWAY_B']],
];

for (const [label, envs] of GATEWAYS) {
  const urls = () => envs.map(gateway);

  test(`AG-UI HttpAgent: an interrupt, then runAgent({resume}) approves it to the answer (${label})`, async (t) => {
    const { agent, interrupt, call } = await interrupted(urls(), 'Please send the report to finance', t);
    assert.equal(call.toolCallName, 'send_report');
    assert.equal(interrupt.message, 'Send the report to finance?');

    // The agent refuses a run that leaves its pending interrupt unanswered.
    await assert.rejects(run(agent), /pending interrupt/);

    const resumed = await run(agent, {
      resume: [{ interruptId: interrupt.id, status: 'resolved', payload: { approved: true } }],
    });
    assertContinued(agent, resumed, t);
    const results = resumed.events.filter((e) => e.type === 'TOOL_CALL_RESULT');
    assert.deepEqual(results.map((e) => [e.toolCallId, JSON.parse(e.content)]), [[call.toolCallId, { sent: true }]]);
    assert.equal(answerOf(resumed.events), 'Sent the report to finance.');
    // The thread's messages: the call once, its result once, the answer.
    const calls = agent.messages.flatMap((m) => m.toolCalls ?? []).filter((c) => c.id === call.toolCallId);
    assert.equal(calls.length, 1, JSON.stringify(agent.messages));
    assert.equal(agent.messages.filter((m) => m.role === 'tool' && m.toolCallId === call.toolCallId).length, 1);
    assert.equal(agent.messages.at(-1).content, 'Sent the report to finance.');
    t.diagnostic(`messages: ${JSON.stringify(agent.messages.map(({ role, content, toolCalls, toolCallId }) => ({ role, content, toolCalls: toolCalls?.map((c) => c.function.name), toolCallId })))}`);
  });

  test(`AG-UI HttpAgent: a denial in the resume ends with the answer, the call not run (${label})`, async (t) => {
    const { agent, interrupt, call } = await interrupted(urls(), 'Please send the report to finance', t);
    const resumed = await run(agent, {
      resume: [{ interruptId: interrupt.id, status: 'resolved', payload: { approved: false, reason: 'not today' } }],
    });
    assertContinued(agent, resumed, t);
    const results = resumed.events.filter((e) => e.type === 'TOOL_CALL_RESULT');
    assert.deepEqual(results.map((e) => e.toolCallId), [call.toolCallId]);
    assert.doesNotMatch(results[0].content, /"sent":\s*true/);
    assert.match(answerOf(resumed.events), /^Okay, I did not send the report\./);
  });

  test(`AG-UI HttpAgent: a frontend tool's result (tool message + resume) continues the run (${label})`, async (t) => {
    const { agent, interrupt, call } = await interrupted(urls(), 'Hey, what time is it?', t);
    assert.equal(call.toolCallName, 'browser_time');
    agent.addMessage({ id: randomUUID(), role: 'tool', toolCallId: call.toolCallId, content: '10:42:07' });
    const resumed = await run(agent, {
      resume: [{ interruptId: interrupt.id, status: 'resolved', payload: '10:42:07' }],
    });
    assertContinued(agent, resumed, t);
    assert.equal(answerOf(resumed.events), 'Your browser says it is 10:42:07.');
  });
}
