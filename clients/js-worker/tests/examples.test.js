/**
 * The examples as their users run them — `node examples/worker.js` and
 * `node examples/ai-sdk-worker.js` in processes of their own, stopped with
 * SIGTERM — against the real gateway; and the READMEs show them verbatim.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';

import { REDIS_URL, startGateway, unique } from './support.js';

const read = (path) => readFileSync(new URL(path, import.meta.url), 'utf8');

/** @type {import('./support.js').Gateway} */
let gateway;
before(async () => {
  gateway = await startGateway();
});
after(async () => {
  await gateway?.stop();
});

/** Runs `node examples/<name>` on the gateway's queue; `stop()` sends SIGTERM and resolves to its exit code and output. */
function runExample(name) {
  const child = spawn(process.execPath, [new URL(`../examples/${name}`, import.meta.url).pathname], {
    env: { ...process.env, REDIS_URL, SSE_STREAM: gateway.stream, SSE_GROUP: gateway.group },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return {
    async stop() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const result = await exited;
      clearTimeout(timer);
      return { ...result, output };
    },
  };
}

const types = (events) => events.map((e) => e.event_type);

test('examples/worker.js answers a session and stops on SIGTERM', async () => {
  const example = runExample('worker.js');
  try {
    const { events } = await gateway.session({ user_query: 'what is it?' });
    assert.deepEqual(types(events), ['worker_ack', 'AgentThoughtStream', 'AgentToolCallStart', 'AgentToolCallEnd', 'FinalAnswerStream', 'FinalAnswerStreamEnd']);
  } finally {
    const { code, output } = await example.stop();
    assert.equal(code, 0, output);
  }
});

test('examples/ai-sdk-worker.js: an approval asked, answered on the thread, the agent continues', async () => {
  const example = runExample('ai-sdk-worker.js');
  try {
    const thread = unique('jskit-example');
    const first = await gateway.session({ user_query: 'Please send the report', thread_id: thread });
    assert.equal(first.events.at(-1).event_type, 'interrupt', JSON.stringify(first.events));
    const [asked] = first.events.at(-1).payload.interrupts;
    assert.equal(asked.tool_call_id, 'call-send-1');
    const second = await gateway.session({ thread_id: thread, resume: [{ interrupt_id: asked.id, status: 'resolved', payload: { approved: true } }] });
    const end = second.events.find((e) => e.event_type === 'AgentToolCallEnd');
    assert.deepEqual(end?.payload, { tool_call_id: 'call-send-1', tool_name: 'send_report', output: { sent: true, to: 'finance' } });
    const answer = second.events.filter((e) => e.event_type === 'FinalAnswerStream').map((e) => e.payload.char).join('');
    assert.equal(answer, 'Sent the report to finance.');
    assert.equal(second.events.at(-1).event_type, 'FinalAnswerStreamEnd');
  } finally {
    const { code, output } = await example.stop();
    assert.equal(code, 0, output);
  }
});

test('the READMEs show the examples verbatim', () => {
  const kit = read('../README.md');
  const root = read('../../../README.md');
  for (const name of ['worker.js', 'ai-sdk-worker.js']) {
    const code = read(`../examples/${name}`);
    assert.ok(kit.includes(code), `clients/js-worker/README.md does not show examples/${name} as it is`);
  }
  assert.ok(root.includes(read('../examples/ai-sdk-worker.js')), 'README.md does not show clients/js-worker/examples/ai-sdk-worker.js as it is');
});
