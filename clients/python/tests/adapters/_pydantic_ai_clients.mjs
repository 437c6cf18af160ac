/**
 * The Pydantic AI adapter's tool approval read by the official clients
 * (run by test_pydantic_ai.py): `node _pydantic_ai_clients.mjs <interop dir>
 * <gateway url> <ag-ui|ai-sdk> <approve|deny>` prints one JSON object —
 * what the client received in each request and where it ended up. The
 * packages come from tests/interop/node_modules (`npm ci --prefix
 * tests/interop`).
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [interop, gateway, client, decision] = process.argv.slice(2);
const load = (path) => import(pathToFileURL(join(interop, 'node_modules', path)).href);
const approved = decision === 'approve';
const LIMIT_MS = 20_000;

async function agUi() {
  const { HttpAgent, getRunOutcome } = await load('@ag-ui/client/dist/index.mjs');
  const agent = new HttpAgent({
    url: `${gateway}/v1/ag-ui`,
    threadId: `thread-${randomUUID()}`,
    initialMessages: [{ id: randomUUID(), role: 'user', content: 'Please send the report to finance' }],
  });
  const runs = [];
  const run = async (parameters = {}) => {
    const events = [];
    const failures = [];
    await agent.runAgent(
      { runId: `run-${randomUUID()}`, ...parameters },
      { onEvent: ({ event }) => void events.push(event), onRunFailed: ({ error }) => void failures.push(String(error)) },
    );
    runs.push({ events, failures, outcome: getRunOutcome(events.at(-1)) ?? null });
    return runs.at(-1);
  };
  const first = await run();
  const interrupt = first.outcome?.interrupts?.[0];
  const pendingAfterFirst = agent.pendingInterrupts;
  const payload = approved ? { approved: true } : { approved: false, reason: 'not today' };
  await run({ resume: [{ interruptId: interrupt.id, status: 'resolved', payload }] });
  return {
    runs: runs.map(({ events, failures, outcome }) => ({ events, failures, outcome })),
    pendingAfterFirst,
    pendingAfterResume: agent.pendingInterrupts,
    messages: agent.messages.map(({ role, content, toolCalls, toolCallId }) => ({
      role,
      content,
      toolCalls: toolCalls?.map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments })),
      toolCallId,
    })),
  };
}

async function aiSdk() {
  const { AbstractChat, DefaultChatTransport, lastAssistantMessageIsCompleteWithApprovalResponses } = await load(
    'ai/dist/index.js',
  );
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
  const log = [];
  const transport = new DefaultChatTransport({
    api: `${gateway}/v1/ai-sdk/chat`,
    fetch: async (input, init = {}) => {
      const response = await fetch(input, init);
      if ((init.method ?? 'GET') !== 'POST') return response;
      const entry = { chunks: [] };
      log.push(entry);
      const [mine, theirs] = response.body.tee();
      (async () => {
        const text = await new Response(mine).text();
        entry.chunks = text
          .split('\n\n')
          .map((frame) => frame.split('\n').find((line) => line.startsWith('data: ')))
          .filter(Boolean)
          .map((line) => line.slice('data: '.length))
          .map((data) => (data === '[DONE]' ? data : JSON.parse(data)));
        entry.done = true;
      })();
      return new Response(theirs, { status: response.status, headers: response.headers });
    },
  });
  const errors = [];
  const chat = new Chat({
    id: `chat-${randomUUID()}`,
    transport,
    onError: (error) => errors.push(String(error)),
    sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses,
  });
  const until = async (condition, what) => {
    const deadline = Date.now() + LIMIT_MS;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(chat.messages)}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  };
  const idleAfter = (n) => () => chat.status === 'ready' && log.length === n && log.every((e) => e.done);
  await chat.sendMessage({ text: 'Please send the report to finance' });
  await until(idleAfter(1), 'the approval request');
  const asked = structuredClone(chat.messages.at(-1));
  const tool = asked.parts.find((p) => p.type === 'dynamic-tool' || p.type.startsWith('tool-'));
  await chat.addToolApprovalResponse({ id: tool.approval.id, approved, reason: approved ? undefined : 'not today' });
  await until(idleAfter(2), 'the continuation');
  return { requests: log.map((e) => e.chunks), asked, final: chat.messages.at(-1), messages: chat.messages.length, errors };
}

const result = client === 'ag-ui' ? await agUi() : await aiSdk();
process.stdout.write(JSON.stringify(result));
