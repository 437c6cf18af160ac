import { stepCountIs, streamText } from 'ai';
import { createWorker } from 'sse-bridge-worker';
import { streamAgent } from 'sse-bridge-worker/ai-sdk';
import { model, tools } from './agent.js'; // your model, and tools (one with needsApproval)

const worker = createWorker({
  redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  stream: process.env.SSE_STREAM, group: process.env.SSE_GROUP, // default: sse_jobs, sse_workers
  handler: (session) =>
    streamAgent(session, ({ messages, abortSignal }) =>
      streamText({ model, tools, messages, abortSignal, stopWhen: stepCountIs(5) })),
});
await worker.run({ handleSignals: true }); // SIGTERM: finish the jobs in flight, then exit
