/**
 * sse-bridge-worker: workers for sse-bridge in Node.js.
 *
 * - `createWorker({ handler, redisUrl, stream, group })` — the job loop of
 *   the Rust SDK and the Python kit (consumer group, attempts, `worker_ack`,
 *   heartbeats, cancel, reclaim, graceful stop);
 * - `Session` — what the handler gets: the job's request in, events out
 *   (`answer`, `thought`, `toolStart`/`toolEnd`, `requestApproval`, ...);
 * - `publishEvent` / `publishBatch` — one event, or several in one call, to
 *   a session, for workers of your own;
 * - `sse-bridge-worker/ai-sdk` — a Vercel AI SDK `streamText` run as a session.
 */
export { createWorker, newAttemptId, Worker } from './worker.js';
export { Session } from './session.js';
export { JobQueue, newConsumerName, parseJob } from './queue.js';
export {
  APPEND_BATCH_FUNCTION,
  APPEND_FUNCTION,
  TERMINAL_EVENT_TYPES,
  appendOutcome,
  batchOutcomes,
  controlChannel,
  encodeEvent,
  foldedKey,
  logKey,
  metaKey,
  publishBatch,
  publishEvent,
} from './publish.js';
export { FUNCTIONS, isLibraryMissing, loadLibrary } from './library.js';
export {
  CLIENT_EXECUTOR,
  MAX_INTERRUPTS,
  TOOL_CALL_REASON,
  ToolCall,
  interruptPayload,
  newInterruptId,
  newToolCallId,
} from './interrupts.js';
export { CANCELLED, RESOLVED, Resume } from './resume.js';
export { REFUSAL_REASONS, SessionCancelled, SessionRefused, SessionStopped, SseBridgeError, UnexpectedReply } from './errors.js';
