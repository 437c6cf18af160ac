/**
 * The tool-approval scenario of the LangGraph adapter's tests, read by the
 * official clients: `node _langgraph_clients.mjs <ag-ui|ai-sdk> <gateway
 * url> <approve|deny>` asks "Please send the report to finance", answers
 * the approval, and prints one JSON object: what the client received for
 * each request and what it holds at the end. The Python test asserts on it.
 *
 * The clients come from the repository's tests/interop/node_modules
 * (`npm ci --prefix tests/interop`), found through INTEROP_DIR.
 */
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';

const require = createRequire(`${process.env.INTEROP_DIR}/package.json`);
const [kind, url, decision] = process.argv.slice(2);
const approved = decision === 'approve';
const LIMIT_MS = 30_000;

async function agUi() {
  const { HttpAgent, getRunOutcome } = require('@ag-ui/client');
  const agent = new HttpAgent({
    url: `${url}/v1/ag-ui`,
    threadId: `thread-${randomUUID()}`,
    initialMessages: [{ id: randomUUID(), role: 'user', content: 'Please send the report to finance' }],
  });
  const runs = [];
  const run = async (parameters = {}) => {
    const events = [];
    const failures = [];
    await agent.runAgent(
      { runId: `run-${randomUUID()}`, ...parameters },
      {
        onEvent: ({ event }) => void events.push(event),
        onRunFailed: ({ error }) => void failures.push(String(error)),
      },
    );
    runs.push({ events, failures });
    return events;
  };
  const first = await run();
  const outcome = getRunOutcome(first.at(-1));
  const interrupt = outcome?.interrupts?.[0];
  if (!interrupt) return { runs, error: 'no interrupt' };
  const payload = approved ? { approved: true } : { approved: false, reason: 'not today' };
  await run({ resume: [{ interruptId: interrupt.id, status: 'resolved', payload }] });
  return {
    runs,
    state: agent.state,
    messages: agent.messages.map(({ role, content, toolCalls, toolCallId }) => ({
      role,
      content,
      toolCalls: toolCalls?.map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments })),
      toolCallId,
    })),
  };
}

class ArrayChatState {
  status = 'ready';
  error = undefined;
  messages = [];
  pushMessage = (message) => void (this.messages = this.messages.concat(message));
  popMessage = () => void (this.messages = this.messages.slice(0, -1));
  replaceMessage = (index, message) =>
    void (this.messages = [...this.messages.slice(0, index), message, ...this.messages.slice(index + 1)]);
  snapshot = (value) => structuredClone(value);
}

async function aiSdk() {
  const { AbstractChat, DefaultChatTransport, isToolUIPart, lastAssistantMessageIsCompleteWithApprovalResponses } =
    require('ai');
  class Chat extends AbstractChat {
    constructor(init) {
      super({ ...init, state: new ArrayChatState() });
    }
  }
  const requests = [];
  const transport = new DefaultChatTransport({
    api: `${url}/v1/ai-sdk/chat`,
    fetch: async (input, init = {}) => {
      const response = await fetch(input, init);
      if ((init.method ?? 'GET') !== 'POST') return response;
      const entry = { chunks: [], done: false };
      requests.push(entry);
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
  const idleAfter = async (n) => {
    const deadline = Date.now() + LIMIT_MS;
    while (!(chat.status === 'ready' && requests.length === n && requests.every((r) => r.done))) {
      if (Date.now() > deadline) throw new Error(`timed out: ${chat.status} ${JSON.stringify(chat.messages)}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  };
  await chat.sendMessage({ text: 'Please send the report to finance' });
  await idleAfter(1);
  const tool = chat.messages.at(-1)?.parts.find(isToolUIPart);
  const afterFirst = structuredClone(chat.messages.at(-1));
  if (tool?.state === 'approval-requested') {
    await chat.addToolApprovalResponse({ id: tool.approval.id, approved, reason: approved ? undefined : 'not today' });
    await idleAfter(2);
  }
  const final = chat.messages.at(-1);
  return {
    requests: requests.map((r) => r.chunks),
    errors,
    afterFirst,
    final: {
      role: final.role,
      metadata: final.metadata,
      parts: final.parts.map((p) =>
        isToolUIPart(p)
          ? { type: p.type, toolCallId: p.toolCallId, state: p.state, input: p.input, output: p.output, approval: p.approval, errorText: p.errorText }
          : p,
      ),
    },
  };
}

const result = kind === 'ag-ui' ? await agUi() : await aiSdk();
process.stdout.write(JSON.stringify(result));
