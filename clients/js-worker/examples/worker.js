import { createWorker } from 'sse-bridge-worker';

const worker = createWorker({
  redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  stream: process.env.SSE_STREAM, group: process.env.SSE_GROUP, // default: sse_jobs, sse_workers
  handler: async (session) => { // session.request: the client's body
    await session.thought('Let me look that up.');
    const call = await session.toolStart('search', { q: session.request.user_query });
    await session.toolEnd(call, '42');
    await session.answer('The answer is 42.'); // returning ends the session; throwing sends error
  },
});
await worker.run({ handleSignals: true });
