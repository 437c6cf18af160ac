/**
 * The AI SDK adapter: `streamText` with `MockLanguageModelV3` (from
 * `ai/test`) run by a worker of the kit, through the real gateway and
 * Redis, read back by the `ai` client's own chat (`AbstractChat`, what
 * `useChat` wraps) over `DefaultChatTransport` — a text answer, and a tool
 * with `needsApproval`: the interrupt, `addToolApprovalResponse`, the
 * resumed run continuing the agent (approved: the tool's output and the
 * answer; denied: `output-denied` and the answer), and a tool without
 * `execute` run by the client (`onToolCall`, `addToolOutput`, the resumed
 * agent answering from its output). `toUIMessageStream()` gives the same
 * events as `fullStream`. Plus the mapping of every
 * kind of part, on a session whose Redis calls are recorded.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';

import {
  AbstractChat,
  DefaultChatTransport,
  createUIMessageStream,
  isToolUIPart,
  lastAssistantMessageIsCompleteWithApprovalResponses,
  lastAssistantMessageIsCompleteWithToolCalls,
  stepCountIs,
  streamText,
} from 'ai';

import { Session } from '../src/index.js';
import { modelMessages, pipeFullStream, pipeUIMessageStream, streamAgent } from '../src/ai-sdk.js';
import { model, prompts, sent, tools } from '../examples/agent.js';
import { runWorker, startGateway, until } from './support.js';

/** The user's worker: the README's adapter, with the test's model. */
const handler = (session) =>
  streamAgent(
    session,
    ({ messages, abortSignal }) => streamText({ model, tools, messages, abortSignal, stopWhen: stepCountIs(5) }),
    { approvalMessage: ({ input }) => `Send the report to ${input.to}?` },
  );

/** @type {import('./support.js').Gateway} */
let gateway;
let worker;
before(async () => {
  gateway = await startGateway();
  worker = runWorker(gateway, handler);
});
after(async () => {
  await worker?.stop();
  await gateway?.stop();
});

/** `ChatState` as `ai`'s framework bindings keep it. */
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
class Chat extends AbstractChat {
  constructor(init) {
    super({ ...init, state: new ArrayChatState() });
  }
}

/** A chat on the gateway's AI SDK endpoint; `log` keeps each response's chunks. */
function chat(options = {}) {
  const log = [];
  const transport = new DefaultChatTransport({
    api: `${gateway.url}/v1/ai-sdk/chat`,
    fetch: async (input, init = {}) => {
      const response = await fetch(input, init);
      const sid = response.headers.get('x-session-id');
      if (sid) gateway.sessions.add(sid);
      const entry = { chunks: [] };
      log.push(entry);
      const [mine, theirs] = response.body.tee();
      entry.done = new Response(mine).text().then((text) => {
        entry.chunks = text
          .split('\n\n')
          .map((frame) => frame.split('\n').find((line) => line.startsWith('data: ')))
          .filter(Boolean)
          .map((line) => line.slice(6))
          .map((data) => (data === '[DONE]' ? data : JSON.parse(data)));
      });
      return new Response(theirs, { status: response.status, headers: response.headers });
    },
  });
  const errors = [];
  const id = `chat-${randomUUID()}`;
  gateway.threads.add(id);
  const c = new Chat({ id, transport, onError: (error) => errors.push(error), ...options });
  return { chat: c, log, errors };
}

const idle = (c, log, requests) => async () => {
  if (c.status !== 'ready' || log.length !== requests) return false;
  await Promise.all(log.map((e) => e.done));
  return true;
};
const toolParts = (message) => message.parts.filter(isToolUIPart);
const textOf = (message) => message.parts.filter((p) => p.type === 'text').map((p) => p.text).join('');
/** The chunk types, runs of deltas folded into one. */
const chunkTypes = (entry) =>
  entry.chunks
    .map((c) => (c === '[DONE]' ? c : c.type))
    .filter((t, i, all) => !(t.endsWith('-delta') && all[i - 1] === t));

test('a text answer reaches the ai chat', async (t) => {
  const { chat: c, log, errors } = chat();
  await c.sendMessage({ text: 'What is 2+3?' });
  await until(idle(c, log, 1), 'the answer');
  t.diagnostic(`chunks: ${chunkTypes(log[0]).join(' ')}`);
  assert.deepEqual(errors, []);
  const answer = c.messages.at(-1);
  assert.equal(answer.role, 'assistant');
  assert.equal(textOf(answer), 'Echo: What is 2+3?');
  assert.deepEqual(answer.metadata?.usage?.inputTokens, 10, JSON.stringify(answer.metadata));
});

for (const approved of [true, false]) {
  test(`needsApproval: the interrupt, addToolApprovalResponse, the resumed agent (${approved ? 'approved' : 'denied'})`, async (t) => {
    const before = sent.length;
    const { chat: c, log, errors } = chat({ sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses });
    await c.sendMessage({ text: 'Please send the report to finance' });
    await until(idle(c, log, 1), 'the approval request');
    t.diagnostic(`first response: ${chunkTypes(log[0]).join(' ')}`);
    const [, assistant] = c.messages;
    const [asked] = toolParts(assistant);
    assert.equal(toolParts(assistant).length, 1, JSON.stringify(assistant.parts));
    assert.equal(asked.state, 'approval-requested', JSON.stringify(asked));
    assert.equal(asked.toolCallId, 'call-send-1', 'the model\'s tool call id reaches the client');
    assert.deepEqual(asked.input, { to: 'finance' });
    assert.equal(sent.length, before, 'nothing sent before the approval');
    const approval = log[0].chunks.find((ch) => ch.type === 'tool-approval-request');
    assert.deepEqual(approval, { type: 'tool-approval-request', approvalId: asked.approval.id, toolCallId: 'call-send-1' });

    await c.addToolApprovalResponse(approved ? { id: asked.approval.id, approved } : { id: asked.approval.id, approved, reason: 'not today' });
    await until(idle(c, log, 2), 'the continuation');
    t.diagnostic(`second response: ${chunkTypes(log[1]).join(' ')}`);
    for (const [n, entry] of log.entries()) t.diagnostic(`response ${n + 1} frames: ${JSON.stringify(entry.chunks)}`);
    assert.deepEqual(errors, []);
    assert.equal(c.messages.length, 2, 'the continuation is the same assistant message');
    const final = c.messages.at(-1);
    assert.equal(final.id, assistant.id);
    const parts = toolParts(final);
    assert.equal(parts.length, 1, `one tool part for the call: ${JSON.stringify(final.parts)}`);
    assert.equal(parts[0].toolCallId, 'call-send-1');
    if (approved) {
      assert.equal(parts[0].state, 'output-available', JSON.stringify(parts[0]));
      assert.deepEqual(parts[0].output, { sent: true, to: 'finance' });
      assert.deepEqual(sent.slice(before), ['finance'], 'the tool ran once, after the approval');
      assert.match(textOf(final), /Sent the report to finance\.$/);
    } else {
      assert.equal(parts[0].state, 'output-denied', JSON.stringify(parts[0]));
      assert.equal(sent.length, before, 'a denied tool never runs');
      assert.match(textOf(final), /Okay, I did not send the report \(not today\)\.$/);
    }
    // The resumed model call saw the decision as the AI SDK records it.
    const resumedPrompt = prompts.at(-1);
    assert.equal(resumedPrompt.at(-1).role, 'tool');
    const interrupted = resumedPrompt.at(-2).content;
    assert.equal(interrupted.find((p) => p.type === 'tool-call')?.toolCallId, 'call-send-1');
    assert.deepEqual(
      interrupted.filter((p) => p.type === 'reasoning').map((p) => p.text),
      ['The user wants the report sent.'],
      'the interrupted run\'s reasoning is in the conversation the agent continues',
    );
  });
}

test('a tool without execute is the client\'s: onToolCall, addToolOutput, the resumed agent answers from it', async (t) => {
  const calls = [];
  let c;
  const made = chat({
    sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithToolCalls,
    onToolCall: ({ toolCall }) => {
      calls.push(toolCall);
      // Not awaited: the chat is still streaming this response.
      c.addToolOutput({ tool: 'browser_time', toolCallId: toolCall.toolCallId, output: '10:42:07' });
    },
  });
  c = made.chat;
  const { log, errors } = made;
  await c.sendMessage({ text: 'What time is it?' });
  await until(idle(c, log, 2), 'the answer from the browser\'s time');
  for (const [n, entry] of log.entries()) t.diagnostic(`response ${n + 1}: ${chunkTypes(entry).join(' ')}`);
  assert.deepEqual(errors, []);
  assert.deepEqual(calls.map((call) => [call.toolName, call.toolCallId]), [['browser_time', 'call-time-1']]);
  assert.ok(!log[0].chunks.some((ch) => ch.type === 'tool-approval-request'), 'a client tool asks no approval');
  assert.deepEqual(log[0].chunks.at(-2), { type: 'finish', finishReason: 'tool-calls' });
  assert.equal(c.messages.length, 2, 'the continuation is the same assistant message');
  const final = c.messages.at(-1);
  const parts = toolParts(final);
  assert.equal(parts.length, 1, JSON.stringify(final.parts));
  assert.equal(parts[0].state, 'output-available');
  assert.equal(parts[0].output, '10:42:07');
  assert.match(textOf(final), /Your browser says it is 10:42:07\.$/);
  const resumedPrompt = prompts.at(-1);
  const [result] = resumedPrompt.at(-1).content;
  assert.deepEqual([result.type, result.toolCallId, result.output.value], ['tool-result', 'call-time-1', '10:42:07']);
});

test('calls nothing answered are the client\'s: one interrupt with the approvals; the resume\'s outputs become tool results', async () => {
  const { session, events } = recordingSession();
  const approve = { type: 'tool-call', toolCallId: 'c1', toolName: 'pay', input: { amount: 5 } };
  const parts = [
    approve,
    { type: 'tool-call', toolCallId: 'c2', toolName: 'browser_time', input: {} },
    { type: 'tool-call', toolCallId: 'c3', toolName: 'web_search', input: {}, providerExecuted: true },
    { type: 'tool-approval-request', approvalId: 'ap-1', toolCall: approve },
  ];
  assert.equal((await pipeFullStream(session, parts, { steps: false })).interrupted, true);
  const { interrupts } = events.at(-1).payload;
  assert.deepEqual(interrupts.map((i) => [i.tool_call_id, i.metadata.executor]), [['c1', undefined], ['c2', 'client']]);
  assert.deepEqual(interrupts[1].metadata, { tool_name: 'browser_time', tool_input: {}, executor: 'client' });

  const resumed = recordingSession({
    request: {
      thread_id: 't',
      resume: [
        { interrupt_id: interrupts[0].id, status: 'resolved', payload: { approved: true } },
        { interrupt_id: interrupts[1].id, status: 'cancelled' },
      ],
    },
    parentRequest: { user_query: 'pay, then tell me the time' },
    interrupts,
  }).session;
  const [, assistant, tool] = await modelMessages(resumed);
  assert.deepEqual(assistant.content.map((p) => [p.type, p.toolCallId]), [
    ['tool-call', 'c2'],
    ['tool-call', 'c1'],
    ['tool-approval-request', 'c1'],
  ]);
  assert.deepEqual(tool.content, [
    { type: 'tool-result', toolCallId: 'c2', toolName: 'browser_time', output: { type: 'error-text', value: 'the client cancelled the tool call' } },
    { type: 'tool-approval-response', approvalId: 'ap-1', approved: true },
  ]);
});

test('toUIMessageStream() publishes what fullStream does: the same events, the same interrupt', async () => {
  for (const question of ['Please send the report to finance', 'What time is it?', 'Hello']) {
    const published = [];
    for (const shape of ['fullStream', 'ui']) {
      const { session, events } = recordingSession({ request: { user_query: question } });
      const result = streamText({ model, tools, messages: await modelMessages(session), stopWhen: stepCountIs(5) });
      const outcome = shape === 'ui'
        ? await pipeUIMessageStream(session, result.toUIMessageStream())
        : await pipeFullStream(session, result.fullStream);
      published.push({
        outcome,
        // Usage comes only with fullStream's `finish`; interrupt and approval ids are fresh per run.
        events: events
          .filter((e) => e.event_type !== 'Usage')
          .map((e) => (e.event_type === 'interrupt' ? { ...e, payload: { interrupts: e.payload.interrupts.map(withoutFreshIds) } } : e)),
      });
    }
    const [full, ui] = published;
    assert.deepEqual(ui.events, full.events, question);
    assert.deepEqual(ui.outcome, full.outcome, question);
  }
});

/** An interrupt without the ids each run makes afresh (`id`, `metadata.approval_id`). */
function withoutFreshIds({ id, metadata, ...rest }) {
  const { approval_id: approvalId, ...kept } = metadata ?? {};
  assert.equal(typeof id, 'string');
  return { ...rest, metadata: kept, approvalAsked: approvalId !== undefined };
}

test('a composed UI message stream: custom data parts become Data events', async () => {
  const { session, events } = recordingSession();
  const stream = createUIMessageStream({
    execute: ({ writer }) => {
      writer.write({ type: 'data-weather', id: 'w1', data: { city: 'Oslo', t: -3 } });
      writer.write({ type: 'data-progress', data: 0.5, transient: true });
      writer.write({ type: 'source-url', sourceId: 's1', url: 'https://example.com' });
      writer.write({ type: 'text-start', id: 't' });
      writer.write({ type: 'text-delta', id: 't', delta: 'Cold.' });
      writer.write({ type: 'text-end', id: 't' });
    },
  });
  assert.deepEqual(await pipeUIMessageStream(session, stream), { interrupted: false, text: 'Cold.', finishReason: undefined });
  assert.deepEqual(events.map((e) => [e.event_type, e.payload]), [
    ['Data', { name: 'weather', data: { city: 'Oslo', t: -3 }, id: 'w1' }],
    ['Data', { name: 'progress', data: 0.5, transient: true }],
    ['Source', { id: 's1', url: 'https://example.com' }],
    ['FinalAnswerStream', { char: 'Cold.' }],
  ]);
  const failing = recordingSession().session;
  await assert.rejects(
    pipeUIMessageStream(failing, createUIMessageStream({ execute: () => { throw new Error('upstream down'); } })),
    /upstream down|An error occurred/,
  );
});

/** A session whose Redis calls are recorded (every append accepted). */
function recordingSession(job = {}) {
  const events = [];
  const redis = {
    call: async (...args) => {
      // FCALL sse_bridge_v4_append_batch 3 k1 k2 k3 <attempt> <key> <again> <event> <event_type> ...
      assert.equal(args[1], 'sse_bridge_v4_append_batch');
      const ids = [];
      for (let i = 9; i < args.length; i += 2) {
        events.push(JSON.parse(args[i]));
        ids.push(`${events.length}-0`);
      }
      return [ids, '', 1];
    },
  };
  const session = new Session({ sessionId: 's', entryId: '1-0', createdAt: 0, request: { user_query: 'q' }, ...job }, 'a1', /** @type {any} */ (redis));
  return { session, events };
}

test('every fullStream part maps to its native event', async () => {
  const { session, events } = recordingSession();
  const parts = [
    { type: 'start' },
    { type: 'start-step', request: {}, warnings: [] },
    { type: 'reasoning-delta', id: 'r', text: 'hmm' },
    { type: 'tool-input-start', id: 'c1', toolName: 'search' },
    { type: 'tool-input-delta', id: 'c1', delta: '{"q":"x"}' },
    { type: 'tool-call', toolCallId: 'c1', toolName: 'search', input: { q: 'x' } },
    { type: 'tool-result', toolCallId: 'c1', toolName: 'search', input: { q: 'x' }, output: [1], preliminary: true },
    { type: 'tool-result', toolCallId: 'c1', toolName: 'search', input: { q: 'x' }, output: [1, 2] },
    { type: 'tool-call', toolCallId: 'c2', toolName: 'fetch', input: {} },
    { type: 'tool-error', toolCallId: 'c2', toolName: 'fetch', input: {}, error: new Error('timeout') },
    { type: 'source', sourceType: 'url', id: 'src1', url: 'https://example.com', title: 'Example' },
    { type: 'file', file: { mediaType: 'text/plain', base64: 'aGk=' } },
    { type: 'finish-step', response: { modelId: 'm1' }, usage: {}, finishReason: 'stop' },
    { type: 'start-step', request: {}, warnings: [] },
    { type: 'text-delta', id: 't', text: 'Done.' },
    { type: 'finish-step', response: { modelId: 'm1' }, usage: {}, finishReason: 'stop' },
    { type: 'finish', finishReason: 'stop', totalUsage: { inputTokens: 7, outputTokens: 3, outputTokenDetails: { reasoningTokens: 1 } } },
  ];
  const result = await pipeFullStream(session, parts);
  assert.deepEqual(result, { interrupted: false, text: 'Done.', finishReason: 'stop' });
  assert.deepEqual(
    events.map((e) => [e.event_type, e.payload]),
    [
      ['AgentStepStart', { name: 'step-1' }],
      ['AgentThoughtStream', { char: 'hmm' }],
      ['AgentToolCallInputStream', { tool_call_id: 'c1', tool_name: 'search', delta: '{"q":"x"}' }],
      ['AgentToolCallStart', { tool_call_id: 'c1', tool_name: 'search', tool_input: { q: 'x' } }],
      ['AgentToolCallEnd', { tool_call_id: 'c1', tool_name: 'search', output: [1, 2] }],
      ['AgentToolCallStart', { tool_call_id: 'c2', tool_name: 'fetch', tool_input: {} }],
      ['AgentToolCallEnd', { tool_call_id: 'c2', tool_name: 'fetch', error: 'timeout' }],
      ['Source', { id: 'src1', url: 'https://example.com', title: 'Example' }],
      ['File', { media_type: 'text/plain', url: 'data:text/plain;base64,aGk=' }],
      ['AgentStepEnd', { name: 'step-1' }],
      ['AgentStepStart', { name: 'step-2' }],
      ['FinalAnswerStream', { char: 'Done.' }],
      ['AgentStepEnd', { name: 'step-2' }],
      ['Usage', { input_tokens: 7, output_tokens: 3, reasoning_tokens: 1, model: 'm1' }],
    ],
  );
  assert.ok(events.every((e) => e.attempt === 'a1'));
});

test('tool-approval-request parts end the run with one interrupt naming the calls; an error part throws', async () => {
  const { session, events } = recordingSession();
  const toolCall = { type: 'tool-call', toolCallId: 'c9', toolName: 'pay', input: { amount: 5 } };
  const result = await pipeFullStream(session, [toolCall, { type: 'tool-approval-request', approvalId: 'ap-1', toolCall }], { steps: false });
  assert.equal(result.interrupted, true);
  const [start, interrupt] = events;
  assert.equal(start.event_type, 'AgentToolCallStart');
  assert.equal(interrupt.event_type, 'interrupt');
  const [entry] = interrupt.payload.interrupts;
  assert.equal(entry.reason, 'tool_call');
  assert.equal(entry.tool_call_id, 'c9');
  assert.equal(entry.message, 'Run pay?');
  assert.deepEqual(entry.metadata, { tool_name: 'pay', tool_input: { amount: 5 }, approval_id: 'ap-1' });
  assert.ok(session.ended);

  const failing = recordingSession().session;
  await assert.rejects(pipeFullStream(failing, [{ type: 'error', error: new Error('rate limited') }]), /rate limited/);
});

test('a resumed run\'s model messages: the parent request, the call and the decision as tool-approval-response', async () => {
  const interrupt = { id: 'int-1', reason: 'tool_call', tool_call_id: 'c9', metadata: { tool_name: 'pay', tool_input: { amount: 5 }, approval_id: 'ap-1' } };
  const { session } = recordingSession({
    request: { thread_id: 't', resume: [{ interrupt_id: 'int-1', status: 'resolved', payload: { approved: false, reason: 'too much' } }] },
    parentRequest: { user_query: 'pay it', messages: [{ id: 'u1', role: 'user', parts: [{ type: 'text', text: 'pay it' }] }] },
    interrupts: [interrupt],
  });
  assert.deepEqual(await modelMessages(session), [
    { role: 'user', content: [{ type: 'text', text: 'pay it' }] },
    {
      role: 'assistant',
      content: [
        { type: 'tool-call', toolCallId: 'c9', toolName: 'pay', input: { amount: 5 } },
        { type: 'tool-approval-request', approvalId: 'ap-1', toolCallId: 'c9' },
      ],
    },
    { role: 'tool', content: [{ type: 'tool-approval-response', approvalId: 'ap-1', approved: false, reason: 'too much' }] },
  ]);
});
