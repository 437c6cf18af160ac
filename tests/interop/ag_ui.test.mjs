/**
 * Proves that the official AG-UI client (`@ag-ui/client` HttpAgent, with its
 * event verifier) runs an agent through `POST /v1/ag-ui`, on the embedded
 * gateway and on a gateway whose worker is a separate process over Redis:
 * reasoning, one calculator tool call with its result, the answer text and
 * RUN_FINISHED, with the assistant's answer in the agent's messages; that
 * `GET /v1/ag-ui/runs/{runId}/events` replays exactly the live events; and
 * that a run nobody picks up ends with RUN_ERROR `ack_timeout`.
 *
 * Run by crates/sse-bridge/tests/agent_ui.rs, which starts the gateways and
 * passes their URLs in SSE_BRIDGE_GATEWAY, SSE_BRIDGE_REDIS_GATEWAY and
 * SSE_BRIDGE_NO_WORKER_GATEWAY.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { HttpAgent } from '@ag-ui/client';

/** The gateway URL in env variable `name` (set by the Rust test). */
function gateway(name) {
  const url = process.env[name];
  if (!url) throw new Error(`${name} is not set (crates/sse-bridge/tests/agent_ui.rs sets it)`);
  return url;
}

/** Runs "What is 2+3?" with a HttpAgent; every event its subscriber got. */
async function runAgent(url) {
  const threadId = `thread-${randomUUID()}`;
  const runId = `run-${randomUUID()}`;
  const agent = new HttpAgent({
    url: `${url}/v1/ag-ui`,
    threadId,
    initialMessages: [{ id: randomUUID(), role: 'user', content: 'What is 2+3?' }],
  });
  const events = [];
  // runAgent resolves on RUN_ERROR and on a cut stream too: callers judge `events`.
  await agent.runAgent({ runId }, { onEvent: ({ event }) => void events.push(event) });
  return { threadId, runId, events, messages: agent.messages };
}

/** What two event lists must agree on: type, ids and content. */
function essence(event) {
  const { type, messageId, toolCallId, toolCallName, delta, content, name } = event;
  return { type, messageId, toolCallId, toolCallName, delta, content, name };
}

/** The run's events as the replay endpoint sends them. */
async function replay(url, runId) {
  const response = await fetch(`${url}/v1/ag-ui/runs/${encodeURIComponent(runId)}/events`, {
    signal: AbortSignal.timeout(10_000),
  });
  assert.equal(response.status, 200, `replay of ${runId}`);
  const body = await response.text();
  return body
    .split('\n\n')
    .map((frame) => frame.split('\n').find((line) => line.startsWith('data: ')))
    .filter(Boolean)
    .map((line) => JSON.parse(line.slice('data: '.length)));
}

const text = (events, type) =>
  events.filter((e) => e.type === type).map((e) => e.delta).join('');

for (const [label, env] of [
  ['embedded', 'SSE_BRIDGE_GATEWAY'],
  ['redis + worker', 'SSE_BRIDGE_REDIS_GATEWAY'],
]) {
  test(`AG-UI HttpAgent runs "What is 2+3?" (${label}) and the replay matches`, async () => {
    const url = gateway(env);
    const { threadId, runId, events, messages } = await runAgent(url);
    const types = events.map((e) => e.type);

    assert.deepEqual(events[0], { type: 'RUN_STARTED', threadId, runId });
    assert.equal(types.at(-1), 'RUN_FINISHED', `${types}`);
    assert.ok(!types.includes('RUN_ERROR'), `${types}`);

    assert.ok(types.includes('REASONING_MESSAGE_START'), `${types}`);
    assert.notEqual(text(events, 'REASONING_MESSAGE_CONTENT').trim(), '');

    const calls = events.filter((e) => e.type === 'TOOL_CALL_START');
    assert.equal(calls.length, 1, `${types}`);
    const [{ toolCallId, toolCallName }] = calls;
    assert.equal(toolCallName, 'calculator');
    const args = events
      .filter((e) => e.type === 'TOOL_CALL_ARGS' && e.toolCallId === toolCallId)
      .map((e) => e.delta)
      .join('');
    assert.deepEqual(JSON.parse(args), { expression: '2+3' });
    const results = events.filter((e) => e.type === 'TOOL_CALL_RESULT');
    assert.deepEqual(
      results.map((e) => [e.toolCallId, e.content]),
      [[toolCallId, '5']],
    );

    assert.equal(text(events, 'TEXT_MESSAGE_CONTENT'), '2+3 = 5');
    const answers = messages.filter((m) => m.role === 'assistant' && m.content === '2+3 = 5');
    assert.equal(answers.length, 1, JSON.stringify(messages));

    const replayed = await replay(url, runId);
    assert.deepEqual(replayed.map(essence), events.map(essence));
  });
}

test('AG-UI run with no worker ends with RUN_ERROR ack_timeout', async () => {
  const { events } = await runAgent(gateway('SSE_BRIDGE_NO_WORKER_GATEWAY'));
  const types = events.map((e) => e.type);
  assert.equal(types[0], 'RUN_STARTED', `${types}`);
  assert.equal(types.at(-1), 'RUN_ERROR', `${types}`);
  assert.equal(events.at(-1).code, 'ack_timeout');
  assert.ok(!types.includes('RUN_FINISHED'), `${types}`);
});
