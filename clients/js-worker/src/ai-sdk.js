/**
 * The Vercel AI SDK adapter: a `streamText` run (or a `ToolLoopAgent`'s
 * `stream`) of a job, streamed into its session.
 *
 * ```js
 * import { streamText, stepCountIs } from 'ai';
 * import { createWorker } from 'sse-bridge-worker';
 * import { streamAgent } from 'sse-bridge-worker/ai-sdk';
 *
 * await createWorker({
 *   handler: (session) =>
 *     streamAgent(session, ({ messages, abortSignal }) =>
 *       streamText({ model, tools, messages, abortSignal, stopWhen: stepCountIs(5) })),
 * }).run({ handleSignals: true });
 * ```
 *
 * The adapter's parts: `modelMessages` (`ai-sdk/messages.js`) makes the
 * job's conversation — a resumed run's included; `pipeFullStream`
 * (`ai-sdk/full-stream.js`) and `pipeUIMessageStream` (`ai-sdk/ui-stream.js`)
 * publish a run's stream, `fullStream` parts or UI message chunks; a run
 * that ends waiting on tool calls — approvals, the client's tools — ends
 * with one `interrupt` (`ai-sdk/run.js`). `streamAgent` joins them for the
 * common case.
 */
import { modelMessages } from './ai-sdk/messages.js';
import { pipeFullStream } from './ai-sdk/full-stream.js';
import { pipeUIMessageStream } from './ai-sdk/ui-stream.js';

export { modelMessages, requestMessages } from './ai-sdk/messages.js';
export { pipeFullStream, pipeUIMessageStream };

/**
 * @typedef {import('./session.js').Session} Session
 * @typedef {import('ai').ModelMessage} ModelMessage
 * @typedef {import('./ai-sdk/run.js').PipeOptions} PipeOptions
 * @typedef {import('./ai-sdk/run.js').PipeResult} PipeResult
 */

/**
 * Runs the agent for the session's job: `run` gets the model messages
 * (`modelMessages`) and the session's abort signal and returns what
 * `streamText` returns (anything with a `fullStream`); its stream is piped
 * into the session (`pipeFullStream`).
 * @param {Session} session
 * @param {(input: { messages: ModelMessage[], abortSignal: AbortSignal, session: Session }) => { fullStream: AsyncIterable<any> } | Promise<{ fullStream: AsyncIterable<any> }>} run
 * @param {PipeOptions} [options]
 * @returns {Promise<PipeResult>}
 */
export async function streamAgent(session, run, options = {}) {
  const messages = await modelMessages(session);
  const result = await run({ messages, abortSignal: session.signal, session });
  return pipeFullStream(session, result.fullStream, options);
}
