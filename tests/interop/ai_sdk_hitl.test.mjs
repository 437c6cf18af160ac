/**
 * Human in the loop (PROTOCOL §8) through the Vercel AI SDK's own chat
 * class: `ai`'s headless `AbstractChat` (what `useChat` wraps) with
 * `DefaultChatTransport` against `POST /v1/ai-sdk/chat`, the demo agent's
 * tools on the other side.
 *
 * - "send the report": the tool part arrives in state `approval-requested`;
 *   `addToolApprovalResponse` with `sendAutomaticallyWhen:
 *   lastAssistantMessageIsCompleteWithApprovalResponses` continues the same
 *   assistant message, which ends with the tool's output and the answer, one
 *   tool part for the call; a denial ends in `output-denied` and the answer,
 *   without any error.
 * - "what time is it": a client tool; `onToolCall` + `addToolOutput` with
 *   `sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithToolCalls`
 *   continues it to "Your browser says it is <output>.".
 *
 * Each on the embedded gateway, on a Redis gateway with a separate worker,
 * and across two Redis gateways (the interrupt raised through A, answered
 * through B). Run by crates/sse-bridge/tests/agent_ui.rs, which passes
 * SSE_BRIDGE_GATEWAY, SSE_BRIDGE_REDIS_GATEWAY and SSE_BRIDGE_REDIS_GATEWAY_B.
 * Each test reports what the client did (`t.diagnostic`).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import {
  AbstractChat,
  DefaultChatTransport,
  isToolUIPart,
  lastAssistantMessageIsCompleteWithApprovalResponses,
  lastAssistantMessageIsCompleteWithToolCalls,
} from 'ai';

const LIMIT_MS = 30_000;

/** The gateway URL in env variable `name` (set by the Rust test). */
function gateway(name) {
  const url = process.env[name];
  if (!url) throw new Error(`${name} is not set (crates/sse-bridge/tests/agent_ui.rs sets it)`);
  return url;
}

/** `ChatState` as `ai`'s own framework bindings keep it: plain arrays, replaced on change. */
class ArrayChatState {
  status = 'ready';
  error = undefined;
  messages = [];
  pushMessage = (message) => {
    this.messages = this.messages.concat(message);
  };
  popMessage = () => {
    this.messages = this.messages.slice(0, -1);
  };
  replaceMessage = (index, message) => {
    this.messages = [...this.messages.slice(0, index), message, ...this.messages.slice(index + 1)];
  };
  snapshot = (value) => structuredClone(value);
}

/** The headless chat: `AbstractChat` with a plain state (what `useChat` is without React). */
class Chat extends AbstractChat {
  constructor(init) {
    super({ ...init, state: new ArrayChatState() });
  }
}

/**
 * A chat whose n-th request goes to `urls[n]` (the last one for every later
 * request): one URL is one gateway, two are the interrupt through A and the
 * answer through B. `log` holds each POST's body and the UI message
 * chunks of its response, as the gateway sent them; other requests
 * (`reconnectToStream`) go to the last gateway, unlogged.
 */
function chatThrough(urls, options = {}) {
  const log = [];
  const transport = new DefaultChatTransport({
    api: `${urls[0]}/v1/ai-sdk/chat`,
    fetch: async (input, init = {}) => {
      const { pathname, search } = new URL(input);
      if ((init.method ?? 'GET') !== 'POST') return fetch(`${urls.at(-1)}${pathname}${search}`, init);
      const base = urls[Math.min(log.length, urls.length - 1)];
      const entry = { gateway: base, body: JSON.parse(init.body), chunks: [] };
      log.push(entry);
      const response = await fetch(`${base}${pathname}`, init);
      const [mine, theirs] = response.body.tee();
      (async () => {
        const text = await new Response(mine).text();
        entry.status = response.status;
        entry.chunks = text
          .split('\n\n')
          .map((frame) => frame.split('\n').find((line) => line.startsWith('data: ')))
          .filter(Boolean)
          .map((line) => line.slice('data: '.length))
          .map((data) => (data === '[DONE]' ? data : JSON.parse(data)));
      })();
      return new Response(theirs, { status: response.status, headers: response.headers });
    },
  });
  const errors = [];
  const chat = new Chat({
    id: `chat-${randomUUID()}`,
    transport,
    onError: (error) => errors.push(error),
    ...options,
  });
  return { chat, log, errors, transport };
}

/** Waits until `condition()` holds (polled), or fails with `what` and the chat. */
async function until(chat, condition, what) {
  const deadline = Date.now() + LIMIT_MS;
  while (!condition()) {
    if (Date.now() > deadline) {
      assert.fail(`timed out waiting for ${what}: status ${chat.status}, ${JSON.stringify(chat.messages)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const idleAfter = (chat, log, requests) => () => chat.status === 'ready' && log.length === requests && log.every((e) => e.status);

const toolParts = (message) => message.parts.filter(isToolUIPart);
const textOf = (message) =>
  message.parts
    .filter((p) => p.type === 'text')
    .map((p) => p.text)
    .join('');
/** The answer: the message's last text part (the continuation's). */
const answerOf = (message) => message.parts.filter((p) => p.type === 'text').at(-1)?.text ?? '';

/** A line per request: where it went, the last message it sent, and the chunk types it got. */
function describe(log) {
  return log.map((entry, n) => {
    const last = entry.body.messages.at(-1);
    const sent = last.role === 'user'
      ? `user "${textOf(last)}"`
      : `assistant ${last.id} with ${JSON.stringify(toolParts(last).map(({ toolCallId, state, approval, output }) => ({ toolCallId, state, approval, output })))}`;
    const chunks = entry.chunks
      .map((c) => (c === '[DONE]' ? c : c.type === 'text-delta' || c.type === 'reasoning-delta' ? c.type : JSON.stringify(c)))
      .filter((c, i, all) => !(c.endsWith('-delta') && all[i - 1] === c));
    return `request ${n + 1} (${entry.gateway}): sent ${sent}; got ${chunks.join(' ')}`;
  });
}

function describeMessage(message) {
  return JSON.stringify(
    message.parts.map((p) =>
      p.type === 'text' || p.type === 'reasoning'
        ? { type: p.type, text: p.text, state: p.state }
        : isToolUIPart(p)
          ? { type: p.type, toolName: p.toolName, toolCallId: p.toolCallId, state: p.state, input: p.input, approval: p.approval, output: p.output, errorText: p.errorText }
          : { type: p.type },
    ),
  );
}

/** Asks "Please send the report" and waits for the approval request; the tool part. */
async function askToSendTheReport(chat, log) {
  await chat.sendMessage({ text: 'Please send the report to finance' });
  await until(chat, idleAfter(chat, log, 1), 'the approval request');
  assert.equal(chat.error, undefined, String(chat.error));
  assert.equal(chat.messages.length, 2, JSON.stringify(chat.messages));
  const [, assistant] = chat.messages;
  assert.equal(assistant.role, 'assistant');
  const tools = toolParts(assistant);
  assert.equal(tools.length, 1, describeMessage(assistant));
  const [tool] = tools;
  assert.equal(tool.toolName, 'send_report', describeMessage(assistant));
  assert.equal(tool.state, 'approval-requested', describeMessage(assistant));
  assert.deepEqual(tool.input, { to: 'finance' });
  assert.equal(typeof tool.approval?.id, 'string');
  return { assistant, tool };
}

const GATEWAYS = [
  ['embedded', ['SSE_BRIDGE_GATEWAY']],
  ['redis + worker', ['SSE_BRIDGE_REDIS_GATEWAY']],
  ['interrupt through gateway A, answer through gateway B', ['SSE_BRIDGE_REDIS_GATEWAY', 'SSE_BRIDGE_REDIS_GATEWAY_B']],
];

for (const [label, envs] of GATEWAYS) {
  const urls = () => envs.map(gateway);

  test(`AI SDK chat: an approved tool call continues to its output and the answer (${label})`, async (t) => {
    const { chat, log, errors, transport } = chatThrough(urls(), {
      sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses,
    });
    const { assistant, tool } = await askToSendTheReport(chat, log);
    t.diagnostic(`after the first response: ${describeMessage(assistant)}`);
    // A paused message is over: nothing to reconnect to (204).
    assert.equal(await transport.reconnectToStream({ chatId: chat.id }), null);

    await chat.addToolApprovalResponse({ id: tool.approval.id, approved: true });
    await until(chat, idleAfter(chat, log, 2), 'the continuation');

    for (const line of describe(log)) t.diagnostic(line);
    const final = chat.messages.at(-1);
    t.diagnostic(`final message: ${describeMessage(final)}`);
    assert.deepEqual(errors, []);
    assert.equal(chat.status, 'ready');
    assert.equal(chat.messages.length, 2, 'the continuation is the same assistant message');
    assert.equal(final.id, assistant.id);
    const tools = toolParts(final);
    assert.equal(tools.length, 1, `one tool part for the call: ${describeMessage(final)}`);
    assert.equal(tools[0].toolCallId, tool.toolCallId);
    assert.equal(tools[0].state, 'output-available', describeMessage(final));
    assert.deepEqual(tools[0].output, { sent: true });
    assert.equal(tools[0].approval?.approved, true);
    assert.equal(answerOf(final), 'Sent the report to finance.');
    // What the continuation sent: the approval in the assistant message.
    const answered = toolParts(log[1].body.messages.at(-1));
    assert.deepEqual(answered.map((p) => [p.state, p.approval]), [['approval-responded', { id: tool.approval.id, approved: true }]]);

    // The chat goes on: a new question on the same thread is a plain run.
    await chat.sendMessage({ text: 'What is 2+3?' });
    await until(chat, idleAfter(chat, log, 3), 'the next answer');
    assert.deepEqual(errors, []);
    assert.equal(chat.messages.length, 4);
    assert.equal(answerOf(chat.messages.at(-1)), '2+3 = 5');
    assert.deepEqual(toolParts(chat.messages[1]).map((p) => p.state), ['output-available'], 'the earlier message is untouched');
  });

  test(`AI SDK chat: a denied tool call ends with the answer, no output and no error (${label})`, async (t) => {
    const { chat, log, errors } = chatThrough(urls(), {
      sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses,
    });
    const { assistant, tool } = await askToSendTheReport(chat, log);
    await chat.addToolApprovalResponse({ id: tool.approval.id, approved: false, reason: 'not today' });
    await until(chat, idleAfter(chat, log, 2), 'the continuation');

    for (const line of describe(log)) t.diagnostic(line);
    const final = chat.messages.at(-1);
    t.diagnostic(`final message: ${describeMessage(final)}`);
    assert.deepEqual(errors, []);
    assert.equal(chat.error, undefined);
    assert.equal(chat.status, 'ready');
    assert.equal(final.id, assistant.id);
    const tools = toolParts(final);
    assert.equal(tools.length, 1, describeMessage(final));
    assert.equal(tools[0].toolCallId, tool.toolCallId);
    assert.equal(tools[0].state, 'output-denied', describeMessage(final));
    assert.equal(tools[0].output, undefined);
    assert.equal(tools[0].approval?.approved, false);
    assert.match(answerOf(final), /^Okay, I did not send the report\./);
    assert.ok(!log.flatMap((e) => e.chunks).some((c) => c.type === 'error'), 'no error chunk');
  });

  test(`AI SDK chat: a client tool run by onToolCall + addToolOutput continues the chat (${label})`, async (t) => {
    const calls = [];
    let chat;
    const made = chatThrough(urls(), {
      sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithToolCalls,
      onToolCall: ({ toolCall }) => {
        calls.push(toolCall);
        if (toolCall.toolName === 'browser_time') {
          // Not awaited: the chat is still streaming this response.
          chat.addToolOutput({ tool: 'browser_time', toolCallId: toolCall.toolCallId, output: '10:42:07' });
        }
      },
    });
    chat = made.chat;
    const { log, errors } = made;
    await chat.sendMessage({ text: 'Hey, what time is it?' });
    await until(chat, idleAfter(chat, log, 2), 'the continuation');

    for (const line of describe(log)) t.diagnostic(line);
    t.diagnostic(`onToolCall got: ${JSON.stringify(calls)}`);
    const final = chat.messages.at(-1);
    t.diagnostic(`final message: ${describeMessage(final)}`);
    assert.deepEqual(errors, []);
    assert.equal(calls.length, 1, JSON.stringify(calls));
    assert.equal(calls[0].toolName, 'browser_time');
    assert.equal(chat.messages.length, 2);
    const tools = toolParts(final);
    assert.equal(tools.length, 1, describeMessage(final));
    assert.equal(tools[0].toolCallId, calls[0].toolCallId);
    assert.equal(tools[0].state, 'output-available');
    assert.equal(tools[0].output, '10:42:07');
    assert.equal(answerOf(final), 'Your browser says it is 10:42:07.');
    // The first response left the call for the client: no output, no approval request.
    const first = log[0].chunks.map((c) => c.type ?? c);
    assert.ok(!first.includes('tool-approval-request') && !first.includes('tool-output-available'), `${first}`);
  });
}
