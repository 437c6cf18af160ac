/**
 * The stand-in agent of the examples and tests: `MockLanguageModelV3` (from
 * `ai/test`), a tool that needs approval and a tool the client runs. Asked
 * to send the report, the model calls `send_report` (its input streamed);
 * asked the time, it calls `browser_time` (no `execute`: the browser
 * answers); given a tool's result it answers from it; otherwise it echoes
 * the question. No model provider is called. Put your own model
 * (`openai('gpt-5')`, ...) and tools here.
 */
import { jsonSchema, tool } from 'ai';
import { MockLanguageModelV3, convertArrayToReadableStream } from 'ai/test';

const usage = (input, output) => ({
  inputTokens: { total: input, noCache: input, cacheRead: 0, cacheWrite: 0 },
  outputTokens: { total: output, text: output, reasoning: 0 },
});
const finish = (unified, tokens = usage(10, 5)) => ({ type: 'finish', finishReason: { unified, raw: undefined }, usage: tokens });
const textChunks = (text) => [
  { type: 'text-start', id: 't1' },
  ...text.match(/.{1,8}/g).map((delta) => ({ type: 'text-delta', id: 't1', delta })),
  { type: 'text-end', id: 't1' },
];

/**
 * The test agent's model (see the module's doc); `prompts` records what
 * each call was given.
 */
function reportModel(prompts) {
  return new MockLanguageModelV3({
    modelId: 'mock-report',
    doStream: async ({ prompt }) => {
      prompts.push(prompt);
      const last = prompt.at(-1);
      let chunks;
      if (last.role === 'tool') {
        const result = last.content.find((p) => p.type === 'tool-result');
        if (result.toolName === 'browser_time') {
          chunks = textChunks(`Your browser says it is ${result.output.value}.`);
        } else if (result.output.type === 'execution-denied') {
          chunks = textChunks(`Okay, I did not send the report (${result.output.reason ?? 'no reason'}).`);
        } else {
          chunks = textChunks('Sent the report to finance.');
        }
        chunks.push(finish('stop'));
      } else {
        const question = last.content.filter((p) => p.type === 'text').map((p) => p.text).join('');
        if (/send the report/i.test(question)) {
          chunks = [
            { type: 'reasoning-start', id: 'r1' },
            { type: 'reasoning-delta', id: 'r1', delta: 'The user wants the report sent.' },
            { type: 'reasoning-end', id: 'r1' },
            { type: 'tool-input-start', id: 'call-send-1', toolName: 'send_report' },
            { type: 'tool-input-delta', id: 'call-send-1', delta: '{"to":' },
            { type: 'tool-input-delta', id: 'call-send-1', delta: '"finance"}' },
            { type: 'tool-input-end', id: 'call-send-1' },
            { type: 'tool-call', toolCallId: 'call-send-1', toolName: 'send_report', input: '{"to":"finance"}' },
            finish('tool-calls'),
          ];
        } else if (/what time is it/i.test(question)) {
          chunks = [
            { type: 'tool-call', toolCallId: 'call-time-1', toolName: 'browser_time', input: '{}' },
            finish('tool-calls'),
          ];
        } else {
          chunks = [...textChunks(`Echo: ${question}`), finish('stop')];
        }
      }
      return { stream: convertArrayToReadableStream([{ type: 'stream-start', warnings: [] }, ...chunks]) };
    },
  });
}

/** What the tool did: one entry per run of `send_report`. */
export const sent = [];
export const tools = {
  send_report: tool({
    description: 'Sends the report',
    inputSchema: jsonSchema({ type: 'object', properties: { to: { type: 'string' } }, required: ['to'] }),
    needsApproval: true,
    execute: async ({ to }) => {
      sent.push(to);
      return { sent: true, to };
    },
  }),
  browser_time: tool({
    description: 'The time on the user\'s device (the client runs it)',
    inputSchema: jsonSchema({ type: 'object', properties: {} }),
  }),
};

/** What each model call was given. */
export const prompts = [];
export const model = reportModel(prompts);
