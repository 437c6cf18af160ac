/**
 * The OpenAI Agents adapter's tool-approval scenario read by the official
 * clients: `@ag-ui/client`'s `HttpAgent` (`CLIENT=ag-ui`) or `ai`'s headless
 * chat with `DefaultChatTransport` (`CLIENT=ai-sdk`), against the gateway at
 * `GATEWAY`. Ask, get the approval request, approve (`DECISION=approve`) or
 * deny it, read the continuation. Prints one JSON object: what each request
 * received (AG-UI events / UI message chunks) and what the client ended with.
 *
 * Run by test_openai_agents.py with its working directory in tests/interop
 * (fed on stdin as a module, so `@ag-ui/client` and `ai` resolve from
 * tests/interop/node_modules).
 */
import { randomUUID } from 'node:crypto';
import { HttpAgent, getRunOutcome } from '@ag-ui/client';
import { AbstractChat, DefaultChatTransport, isToolUIPart, lastAssistantMessageIsCompleteWithApprovalResponses } from 'ai';

const gateway = process.env.GATEWAY;
const approved = process.env.DECISION === 'approve';
const question = 'Please send the report to finance';
const LIMIT_MS = 30_000;

async function agUi() {
  const agent = new HttpAgent({
    url: `${gateway}/v1/ag-ui`,
    threadId: `thread-${randomUUID()}`,
    initialMessages: [{ id: randomUUID(), role: 'user', content: question }],
  });
  const runs = [];
  const run = async (parameters = {}) => {
    const events = [];
    const failures = [];
    await agent.runAgent({ runId: `run-${randomUUID()}`, ...parameters }, {
      onEvent: ({ event }) => void events.push(event),
      onRunFailed: ({ error }) => void failures.push(String(error)),
    });
    runs.push({ events, failures });
    return events;
  };
  const first = await run();
  const outcome = getRunOutcome(first.at(-1));
  const [interrupt] = outcome?.interrupts ?? [];
  const pending = structuredClone(agent.pendingInterrupts);
  const payload = approved ? { approved: true } : { approved: false, reason: 'not today' };
  if (interrupt) await run({ resume: [{ interruptId: interrupt.id, status: 'resolved', payload }] });
  return {
    runs,
    outcome,
    pending,
    pendingAfter: agent.pendingInterrupts,
    messages: agent.messages.map(({ role, content, toolCalls, toolCallId }) => ({ role, content, toolCalls, toolCallId })),
  };
}

class ArrayChatState {
  status = 'ready';
  error = undefined;
  messages = [];
  pushMessage = (message) => { this.messages = this.messages.concat(message); };
  popMessage = () => { this.messages = this.messages.slice(0, -1); };
  replaceMessage = (index, message) => {
    this.messages = [...this.messages.slice(0, index), message, ...this.messages.slice(index + 1)];
  };
  snapshot = (value) => structuredClone(value);
}

class Chat extends AbstractChat {
  constructor(init) { super({ ...init, state: new ArrayChatState() }); }
}

async function aiSdk() {
  const requests = [];
  const transport = new DefaultChatTransport({
    api: `${gateway}/v1/ai-sdk/chat`,
    fetch: async (input, init = {}) => {
      if ((init.method ?? 'GET') !== 'POST') return fetch(input, init);
      const entry = { chunks: [] };
      requests.push(entry);
      const response = await fetch(input, init);
      const [mine, theirs] = response.body.tee();
      (async () => {
        const text = await new Response(mine).text();
        entry.chunks = text.split('\n\n')
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
  const until = async (requestCount) => {
    const deadline = Date.now() + LIMIT_MS;
    while (!(chat.status === 'ready' && requests.length === requestCount && requests.every((r) => r.done))) {
      if (Date.now() > deadline) throw new Error(`timed out: ${chat.status} ${JSON.stringify(chat.messages)}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  };
  await chat.sendMessage({ text: question });
  await until(1);
  const asked = structuredClone(chat.messages.at(-1));
  const tool = asked.parts.filter(isToolUIPart)[0];
  if (tool?.approval?.id) {
    await chat.addToolApprovalResponse({ id: tool.approval.id, approved, ...(approved ? {} : { reason: 'not today' }) });
    await until(2);
  }
  return { requests, errors, asked, final: chat.messages.at(-1), messageCount: chat.messages.length };
}

const result = process.env.CLIENT === 'ag-ui' ? await agUi() : await aiSdk();
process.stdout.write(JSON.stringify(result));
