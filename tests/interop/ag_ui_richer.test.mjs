/**
 * The richer events (PROTOCOL §9) through `@ag-ui/client` 1.0's `HttpAgent`
 * against `POST /v1/ag-ui`: the demo agent's "research" tour (steps, a
 * `web_search` call whose input streams, the agent's state as a snapshot
 * then a patch, a source, data parts, a file, the answer, token usage).
 *
 * What the client does with them, as its own subscriber callbacks see it:
 * STATE_SNAPSHOT / STATE_DELTA applied to `agent.state`, TOOL_CALL_ARGS
 * growing the call's partial arguments (`onToolCallArgsEvent`), the call's
 * arguments in `agent.messages`, STEP_STARTED / STEP_FINISHED, and the token
 * usage on RUN_FINISHED. Sources, files and data parts arrive as CUSTOM
 * events (AG-UI has no part for them).
 *
 * On the embedded gateway and on a Redis gateway with a separate worker
 * process. Run by crates/sse-bridge/tests/agent_ui.rs (SSE_BRIDGE_GATEWAY,
 * SSE_BRIDGE_REDIS_GATEWAY). Each test reports what the client did
 * (`t.diagnostic`).
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

const QUERY = 'research durable streams';
const URL_OF_SOURCE = 'https://github.com/durable-streams/durable-streams';

for (const [label, env] of [
  ['embedded', 'SSE_BRIDGE_GATEWAY'],
  ['redis + worker', 'SSE_BRIDGE_REDIS_GATEWAY'],
]) {
  test(`AG-UI HttpAgent: state, streamed tool args, steps and usage of the research tour (${label})`, async (t) => {
    const agent = new HttpAgent({
      url: `${gateway(env)}/v1/ag-ui`,
      threadId: `thread-${randomUUID()}`,
      initialMessages: [{ id: randomUUID(), role: 'user', content: QUERY }],
    });
    const seen = {
      types: [],
      states: [],
      snapshots: [],
      deltas: [],
      args: [],
      argumentsInMessages: [],
      ended: [],
      steps: [],
      customs: [],
      finished: [],
      failures: [],
    };
    await agent.runAgent(
      { runId: `run-${randomUUID()}` },
      {
        onEvent: ({ event }) => void seen.types.push(event.type),
        onStateSnapshotEvent: ({ event }) => void seen.snapshots.push(event.snapshot),
        onStateDeltaEvent: ({ event }) => void seen.deltas.push(event.delta),
        onStateChanged: ({ state }) => void seen.states.push(structuredClone(state)),
        onToolCallArgsEvent: ({ event, toolCallName, toolCallBuffer, partialToolCallArgs }) =>
          void seen.args.push({ toolCallId: event.toolCallId, toolCallName, delta: event.delta, toolCallBuffer, partialToolCallArgs: structuredClone(partialToolCallArgs) }),
        onMessagesChanged: ({ messages }) => {
          const call = messages.flatMap((m) => m.toolCalls ?? []).find((c) => c.function.name === 'web_search');
          if (call && seen.argumentsInMessages.at(-1) !== call.function.arguments) seen.argumentsInMessages.push(call.function.arguments);
        },
        onToolCallEndEvent: ({ event, toolCallName, toolCallArgs }) =>
          void seen.ended.push({ toolCallId: event.toolCallId, toolCallName, toolCallArgs }),
        onStepStartedEvent: ({ event }) => void seen.steps.push(`started ${event.stepName}`),
        onStepFinishedEvent: ({ event }) => void seen.steps.push(`finished ${event.stepName}`),
        onCustomEvent: ({ event }) => void seen.customs.push({ name: event.name, value: event.value }),
        onRunFinishedEvent: ({ event, outcome }) => void seen.finished.push({ usage: event.usage, outcome }),
        onRunFailed: ({ error }) => void seen.failures.push(error),
      },
    );
    const compact = seen.types.filter((type, i) => !(type.endsWith('_CONTENT') && seen.types[i - 1] === type));
    t.diagnostic(`events: ${compact.join(', ')}`);
    t.diagnostic(`onStateSnapshotEvent: ${JSON.stringify(seen.snapshots)}; onStateDeltaEvent: ${JSON.stringify(seen.deltas)}`);
    t.diagnostic(`onStateChanged states: ${JSON.stringify(seen.states)}; agent.state at the end: ${JSON.stringify(agent.state)}`);
    t.diagnostic(`onToolCallArgsEvent: ${JSON.stringify(seen.args.map(({ delta, toolCallBuffer, partialToolCallArgs }) => ({ delta, toolCallBuffer, partialToolCallArgs })))}`);
    t.diagnostic(`the call's arguments in agent.messages (onMessagesChanged): ${JSON.stringify(seen.argumentsInMessages)}`);
    t.diagnostic(`onToolCallEndEvent: ${JSON.stringify(seen.ended)}`);
    t.diagnostic(`steps: ${seen.steps.join(', ')}`);
    t.diagnostic(`onCustomEvent: ${JSON.stringify(seen.customs)}`);
    t.diagnostic(`onRunFinishedEvent: ${JSON.stringify(seen.finished)}`);

    assert.deepEqual(seen.failures, []);
    assert.ok(!seen.types.includes('RUN_ERROR'), `${compact}`);
    assert.equal(seen.types.at(-1), 'RUN_FINISHED');

    // State: the snapshot, then the patch applied by the client.
    assert.deepEqual(seen.snapshots, [{ status: 'searching', sources: 0 }]);
    assert.equal(seen.deltas.length, 1);
    assert.deepEqual(seen.states.at(0), { status: 'searching', sources: 0 });
    assert.deepEqual(agent.state, { status: 'writing', sources: 1 });

    // The tool input streamed: one TOOL_CALL_ARGS per piece, `toolCallBuffer`
    // (the arguments before that piece, as the client passes it) growing,
    // and the call's arguments in agent.messages growing with them; the call
    // ends with the whole input. (`partialToolCallArgs` is `{}` at every
    // piece in @ag-ui/client 1.0.0 under Node's ESM: it imports
    // `untruncate-json`'s CommonJS module object, not its function, so the
    // call throws and the client swallows it; not asserted.)
    assert.deepEqual(seen.args.map((a) => a.delta), ['{"query":', '"sse-bridge ', 'durable streams"}']);
    assert.deepEqual(seen.args.map((a) => a.toolCallBuffer), ['', '{"query":', '{"query":"sse-bridge ']);
    assert.ok(seen.args.every((a) => a.toolCallName === 'web_search'));
    assert.deepEqual(seen.argumentsInMessages, ['', '{"query":', '{"query":"sse-bridge ', '{"query":"sse-bridge durable streams"}']);
    assert.deepEqual(seen.ended.map((e) => [e.toolCallName, e.toolCallArgs]), [['web_search', { query: 'sse-bridge durable streams' }]]);
    const calls = agent.messages.flatMap((m) => m.toolCalls ?? []);
    assert.equal(calls.length, 1, JSON.stringify(agent.messages));
    assert.equal(calls[0].function.name, 'web_search');
    assert.deepEqual(JSON.parse(calls[0].function.arguments), { query: 'sse-bridge durable streams' });
    const result = agent.messages.find((m) => m.role === 'tool' && m.toolCallId === calls[0].id);
    assert.deepEqual(JSON.parse(result.content), { results: [{ url: URL_OF_SOURCE, title: 'Durable Streams' }] });

    // Steps, in order.
    assert.deepEqual(seen.steps, ['started research', 'finished research', 'started answer', 'finished answer']);

    // Sources, files and data parts as CUSTOM events.
    const custom = (name) => seen.customs.filter((c) => c.name === name).map((c) => c.value);
    assert.deepEqual(custom('Source'), [{ id: 'src-1', url: URL_OF_SOURCE, title: 'Durable Streams' }]);
    assert.deepEqual(custom('File').map((v) => v.media_type), ['text/plain']);
    assert.deepEqual(custom('progress'), [{ pct: 50 }, { pct: 100 }]);
    assert.deepEqual(custom('notice'), [{ text: 'writing the answer' }]);

    // Usage on RUN_FINISHED, a plain success.
    assert.equal(seen.finished.length, 1);
    assert.equal(seen.finished[0].outcome, 'success');
    const [usage] = seen.finished[0].usage;
    assert.equal(usage.inputTokens, 42);
    assert.equal(usage.model, 'demo');
    assert.ok(usage.outputTokens > 0, JSON.stringify(usage));

    const answer = agent.messages.filter((m) => m.role === 'assistant' && typeof m.content === 'string' && m.content).at(-1);
    assert.equal(answer.content, 'Durable Streams is an HTTP protocol for resumable, append-only streams.');
  });
}
