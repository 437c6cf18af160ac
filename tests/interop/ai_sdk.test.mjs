/**
 * Proves that the Vercel AI SDK's own client code (`ai`: DefaultChatTransport,
 * readUIMessageStream, strict chunk validation) reads the gateway's
 * `POST /v1/ai-sdk/chat` UI message stream into the expected message
 * (reasoning, a dynamic calculator tool call with its output, the answer
 * text), on the embedded gateway and over Redis with a separate worker; that
 * `reconnectToStream` mid-message replays the same message from its start,
 * and answers null (204) once the message is complete or for an unknown chat;
 * and that a chat nobody picks up fails the read with `ack_timeout`.
 *
 * Run by crates/sse-bridge/tests/agent_ui.rs, which starts the gateways and
 * passes their URLs in SSE_BRIDGE_GATEWAY (demo delay 20 ms: a message lasts
 * about 2 s), SSE_BRIDGE_REDIS_GATEWAY and SSE_BRIDGE_NO_WORKER_GATEWAY.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { DefaultChatTransport, readUIMessageStream } from 'ai';

/** The gateway URL in env variable `name` (set by the Rust test). */
function gateway(name) {
  const url = process.env[name];
  if (!url) throw new Error(`${name} is not set (crates/sse-bridge/tests/agent_ui.rs sets it)`);
  return url;
}

const transportOf = (url) => new DefaultChatTransport({ api: `${url}/v1/ai-sdk/chat` });

/** What `useChat` does on submit: the UI message chunk stream of the reply. */
function ask(transport, chatId, question = 'What is 2+3?') {
  return transport.sendMessages({
    chatId,
    messages: [{ id: randomUUID(), role: 'user', parts: [{ type: 'text', text: question }] }],
    trigger: 'submit-message',
    messageId: undefined,
    abortSignal: undefined,
  });
}

/** The message a chunk stream builds, read to its end (errors reject). */
async function finalMessage(stream) {
  let message;
  for await (const snapshot of readUIMessageStream({ stream, terminateOnError: true })) {
    message = snapshot;
  }
  assert.ok(message, 'the stream built no message');
  return message;
}

function assertAnswered(message) {
  const parts = (type) => message.parts.filter((p) => p.type === type);
  const summary = JSON.stringify(message);
  assert.equal(message.role, 'assistant', summary);

  const reasoning = parts('reasoning');
  assert.equal(reasoning.length, 1, summary);
  assert.notEqual(reasoning[0].text.trim(), '', summary);

  const tools = parts('dynamic-tool');
  assert.equal(tools.length, 1, summary);
  const [tool] = tools;
  assert.equal(tool.toolName, 'calculator', summary);
  assert.deepEqual(tool.input, { expression: '2+3' });
  assert.equal(tool.state, 'output-available', summary);
  assert.equal(tool.output, '5', summary);

  assert.deepEqual(parts('text').map((p) => p.text), ['2+3 = 5'], summary);
}

for (const [label, env] of [
  ['embedded', 'SSE_BRIDGE_GATEWAY'],
  ['redis + worker', 'SSE_BRIDGE_REDIS_GATEWAY'],
]) {
  test(`AI SDK transport reads "What is 2+3?" (${label})`, async () => {
    const stream = await ask(transportOf(gateway(env)), `chat-${randomUUID()}`);
    assertAnswered(await finalMessage(stream));
  });
}

test('AI SDK reconnectToStream mid-message replays the same message; null once done', async () => {
  const transport = transportOf(gateway('SSE_BRIDGE_GATEWAY'));
  const chatId = `chat-${randomUUID()}`;

  // The original stream, watched chunk by chunk while it is read to its end.
  const seen = [];
  let midMessage;
  const reachedMid = new Promise((resolve) => (midMessage = resolve));
  const watch = new TransformStream({
    transform(chunk, controller) {
      seen.push(chunk.type);
      if (chunk.type === 'reasoning-delta') midMessage();
      controller.enqueue(chunk);
    },
  });
  const original = finalMessage((await ask(transport, chatId)).pipeThrough(watch));
  // Fail fast instead of waiting forever when the original ends early.
  original.then(midMessage, midMessage);

  await reachedMid;
  const resumed = await transport.reconnectToStream({ chatId });
  assert.ok(!seen.includes('finish'), `the message ended before the reconnect: ${seen}`);
  assert.notEqual(resumed, null, 'reconnectToStream found no live message (204)');

  const [first, again] = await Promise.all([original, finalMessage(resumed)]);
  assertAnswered(first);
  assert.equal(again.id, first.id);
  assert.deepEqual(again, first);

  assert.equal(await transport.reconnectToStream({ chatId }), null, 'a complete message');
  assert.equal(
    await transport.reconnectToStream({ chatId: `chat-${randomUUID()}` }),
    null,
    'an unknown chat',
  );
});

test('AI SDK read of a chat with no worker rejects with ack_timeout', async () => {
  const stream = await ask(transportOf(gateway('SSE_BRIDGE_NO_WORKER_GATEWAY')), `chat-${randomUUID()}`);
  await assert.rejects(finalMessage(stream), /ack_timeout/);
});
