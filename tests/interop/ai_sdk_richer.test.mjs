/**
 * The richer events (PROTOCOL §9) through the Vercel AI SDK's own chat
 * class: `ai`'s headless `AbstractChat` (what `useChat` wraps) with
 * `DefaultChatTransport` against `POST /v1/ai-sdk/chat`, asking the demo
 * agent's "research" tour.
 *
 * What the chat makes of it: the `web_search` tool part going
 * `input-streaming` → `input-available` → `output-available` (every state
 * the chat's message updates showed), `step-start` parts, a `source-url`
 * part, a `file` part, `data-progress` replaced by its id (one part, the last
 * data), the transient `data-notice` seen by `onData` and kept out of the
 * message, the `data-state` part replaced (the final state), and the token
 * usage as `message.metadata`.
 *
 * On the embedded gateway and on a Redis gateway with a separate worker
 * process. Run by crates/sse-bridge/tests/agent_ui.rs (SSE_BRIDGE_GATEWAY,
 * SSE_BRIDGE_REDIS_GATEWAY). Each test reports what the client did
 * (`t.diagnostic`).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { AbstractChat, DefaultChatTransport, isToolUIPart } from 'ai';

const LIMIT_MS = 30_000;
const URL_OF_SOURCE = 'https://github.com/durable-streams/durable-streams';

/** The gateway URL in env variable `name` (set by the Rust test). */
function gateway(name) {
  const url = process.env[name];
  if (!url) throw new Error(`${name} is not set (crates/sse-bridge/tests/agent_ui.rs sets it)`);
  return url;
}

/**
 * `ChatState` as `ai`'s own framework bindings keep it (plain arrays,
 * replaced on change), calling `onChange(message)` with every assistant
 * message it is given, so a test sees each intermediate state.
 */
class ArrayChatState {
  status = 'ready';
  error = undefined;
  messages = [];
  constructor(onChange) {
    this.onChange = onChange;
  }
  pushMessage = (message) => {
    this.messages = this.messages.concat(message);
    this.onChange(message);
  };
  popMessage = () => {
    this.messages = this.messages.slice(0, -1);
  };
  replaceMessage = (index, message) => {
    this.messages = [...this.messages.slice(0, index), message, ...this.messages.slice(index + 1)];
    this.onChange(message);
  };
  snapshot = (value) => structuredClone(value);
}

class Chat extends AbstractChat {
  constructor({ onChange, ...init }) {
    super({ ...init, state: new ArrayChatState(onChange) });
  }
}

/** The message's parts in short: type, and what tells them apart. */
function describeMessage(message) {
  return JSON.stringify(
    message.parts.map((p) =>
      isToolUIPart(p)
        ? { type: p.type, toolName: p.toolName, state: p.state, input: p.input, output: p.output }
        : p.type === 'text'
          ? { type: p.type, text: p.text }
          : p.type.startsWith('data-')
            ? { type: p.type, id: p.id, data: p.data }
            : p.type === 'source-url'
              ? { type: p.type, sourceId: p.sourceId, url: p.url, title: p.title }
              : p.type === 'file'
                ? { type: p.type, mediaType: p.mediaType, url: p.url }
                : { type: p.type },
    ),
  );
}

for (const [label, env] of [
  ['embedded', 'SSE_BRIDGE_GATEWAY'],
  ['redis + worker', 'SSE_BRIDGE_REDIS_GATEWAY'],
]) {
  test(`AI SDK chat: streamed tool input, sources, files, data parts and usage of the research tour (${label})`, async (t) => {
    const toolStates = [];
    const stateData = [];
    const onData = [];
    const errors = [];
    const chat = new Chat({
      id: `chat-${randomUUID()}`,
      transport: new DefaultChatTransport({ api: `${gateway(env)}/v1/ai-sdk/chat` }),
      onError: (error) => errors.push(error),
      onData: (part) => onData.push(structuredClone(part)),
      onChange: (message) => {
        if (message.role !== 'assistant') return;
        for (const part of message.parts.filter(isToolUIPart)) {
          const seen = `${part.state} ${JSON.stringify(part.input ?? null)}`;
          if (toolStates.at(-1) !== seen) toolStates.push(seen);
        }
        const state = message.parts.filter((p) => p.type === 'data-state');
        const data = state.length ? JSON.stringify({ parts: state.length, data: state[0].data }) : null;
        if (data && stateData.at(-1) !== data) stateData.push(data);
      },
    });
    await chat.sendMessage({ text: 'research durable streams' });
    const deadline = Date.now() + LIMIT_MS;
    while (chat.status !== 'ready' && chat.status !== 'error') {
      if (Date.now() > deadline) assert.fail(`timed out: status ${chat.status}, ${JSON.stringify(chat.messages)}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }

    const message = chat.messages.at(-1);
    t.diagnostic(`tool part states seen: ${toolStates.join(' → ')}`);
    t.diagnostic(`data-state as the message held it: ${stateData.join(' → ')}`);
    t.diagnostic(`onData: ${JSON.stringify(onData.map(({ type, id, data, transient }) => ({ type, id, data, transient })))}`);
    t.diagnostic(`final message parts: ${describeMessage(message)}`);
    t.diagnostic(`message.metadata: ${JSON.stringify(message.metadata)}`);

    assert.deepEqual(errors, []);
    assert.equal(chat.error, undefined, String(chat.error));
    assert.equal(chat.status, 'ready');
    assert.equal(chat.messages.length, 2);
    assert.equal(message.role, 'assistant');

    // The tool part: input streaming (partial input growing), then available, then its output.
    const states = toolStates.map((s) => s.split(' ')[0]);
    const order = ['input-streaming', 'input-available', 'output-available'];
    assert.deepEqual([...new Set(states)], order, toolStates.join(' → '));
    assert.ok(states.filter((s) => s === 'input-streaming').length >= 2, `the input grew while streaming: ${toolStates.join(' → ')}`);
    assert.ok(toolStates.includes('input-streaming {"query":"sse-bridge "}'), toolStates.join(' → '));
    const tools = message.parts.filter(isToolUIPart);
    assert.equal(tools.length, 1, describeMessage(message));
    assert.equal(tools[0].toolName, 'web_search');
    assert.equal(tools[0].state, 'output-available');
    assert.deepEqual(tools[0].input, { query: 'sse-bridge durable streams' });
    assert.deepEqual(tools[0].output, { results: [{ url: URL_OF_SOURCE, title: 'Durable Streams' }] });

    // Steps.
    assert.ok(message.parts.filter((p) => p.type === 'step-start').length >= 2, describeMessage(message));

    // A source and a file.
    const sources = message.parts.filter((p) => p.type === 'source-url');
    assert.deepEqual(sources.map(({ sourceId, url, title }) => ({ sourceId, url, title })), [
      { sourceId: 'src-1', url: URL_OF_SOURCE, title: 'Durable Streams' },
    ]);
    const files = message.parts.filter((p) => p.type === 'file');
    assert.deepEqual(files.map(({ mediaType, url }) => ({ mediaType, url })), [
      { mediaType: 'text/plain', url: 'data:text/plain;base64,c3NlLWJyaWRnZQ==' },
    ]);

    // Data parts: progress replaced by id, the notice transient, the state one part replaced.
    const progress = message.parts.filter((p) => p.type === 'data-progress');
    assert.deepEqual(progress.map(({ id, data }) => ({ id, data })), [{ id: 'progress', data: { pct: 100 } }]);
    assert.deepEqual(
      onData.filter((p) => p.type === 'data-progress').map((p) => p.data),
      [{ pct: 50 }, { pct: 100 }],
    );
    assert.ok(!message.parts.some((p) => p.type === 'data-notice'), describeMessage(message));
    assert.deepEqual(
      onData.filter((p) => p.type === 'data-notice').map(({ data, transient }) => ({ data, transient })),
      [{ data: { text: 'writing the answer' }, transient: true }],
    );
    const state = message.parts.filter((p) => p.type === 'data-state');
    assert.equal(state.length, 1, describeMessage(message));
    assert.deepEqual(state[0].data, { status: 'writing', sources: 1 });
    assert.deepEqual(stateData.map((s) => JSON.parse(s)), [
      { parts: 1, data: { status: 'searching', sources: 0 } },
      { parts: 1, data: { status: 'writing', sources: 1 } },
    ]);

    // Usage as message metadata; the answer.
    assert.equal(message.metadata?.usage?.inputTokens, 42, JSON.stringify(message.metadata));
    assert.ok(message.metadata.usage.outputTokens > 0);
    assert.equal(message.metadata.model, 'demo');
    const text = message.parts.filter((p) => p.type === 'text').map((p) => p.text).join('');
    assert.equal(text, 'Durable Streams is an HTTP protocol for resumable, append-only streams.');
  });
}
