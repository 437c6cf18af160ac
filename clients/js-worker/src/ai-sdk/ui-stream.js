/**
 * A UI message stream into a session: `streamText(...).toUIMessageStream()`,
 * or one composed with `createUIMessageStream` (custom `data-*` parts,
 * several agents merged). Each chunk becomes its native event, the run's
 * waiting calls one `interrupt` at the end (`run.js`).
 *
 * | UI message chunk | native event |
 * |---|---|
 * | `text-delta` / `reasoning-delta` | `FinalAnswerStream` / `AgentThoughtStream` |
 * | `tool-input-start` + `tool-input-delta` | `AgentToolCallInputStream` |
 * | `tool-input-available` (or `tool-input-error`) | `AgentToolCallStart` |
 * | `tool-output-available` (final) / `tool-output-error` / `tool-output-denied` | `AgentToolCallEnd` with `output` / `error` / `denied: true` |
 * | `tool-approval-request` | the call waits for approval |
 * | `start-step` / `finish-step` | `AgentStepStart` / `AgentStepEnd` |
 * | `source-url` / `source-document` / `file` | `Source` / `Data` `source-document` / `File` |
 * | `data-<name>` | `Data {name, data, id?, transient?}` |
 * | `error` / `abort` | thrown: the session ends with `error` |
 *
 * Not carried: `message-metadata` (usage is in `fullStream`'s `finish`;
 * publish it with `session.usage()`), `reset-step` (a published event is
 * never taken back), `custom`, `reasoning-file`, `steering-message`.
 */
import { SessionCancelled } from '../errors.js';
import { AgentRun } from './run.js';

/**
 * @typedef {import('./run.js').PipeOptions} PipeOptions
 * @typedef {import('./run.js').PipeResult} PipeResult
 */

/**
 * Streams a UI message stream into the session (its deltas batched:
 * `session.send`). Resolves when the stream ended and what it sent is
 * logged; `interrupted` when the run ended with an interrupt. The worker
 * ends the session otherwise.
 * @param {import('../session.js').Session} session
 * @param {AsyncIterable<any>} uiMessageStream
 * @param {PipeOptions} [options]
 * @returns {Promise<PipeResult>}
 */
export async function pipeUIMessageStream(session, uiMessageStream, options = {}) {
  const run = new AgentRun(session, options);
  for await (const chunk of uiMessageStream) {
    const type = String(chunk.type);
    switch (type) {
      case 'start-step':
        await run.stepStart();
        break;
      case 'finish-step':
        await run.stepEnd();
        break;
      case 'text-delta':
        await run.answer(chunk.delta);
        break;
      case 'reasoning-delta':
        await run.thought(chunk.delta);
        break;
      case 'tool-input-start':
        run.inputStart(chunk.toolCallId, chunk.toolName);
        break;
      case 'tool-input-delta':
        await run.inputDelta(chunk.toolCallId, chunk.inputTextDelta);
        break;
      case 'tool-input-available':
      case 'tool-input-error':
        // An input error's call ends with the `tool-output-error` that follows.
        await run.toolCall(chunk);
        break;
      case 'tool-output-available':
        if (!chunk.preliminary) await run.toolResult(chunk.toolCallId, chunk.output);
        break;
      case 'tool-output-error':
        await run.toolError(chunk.toolCallId, chunk.errorText);
        break;
      case 'tool-output-denied':
        await run.toolDenied(chunk.toolCallId);
        break;
      case 'tool-approval-request':
        if (chunk.isAutomatic) run.unanswered.delete(chunk.toolCallId);
        else run.approvalRequested(chunk.toolCallId, chunk.approvalId, chunk.signature);
        break;
      case 'source-url':
        await session.source({ id: chunk.sourceId, url: chunk.url, ...(chunk.title ? { title: chunk.title } : {}) });
        break;
      case 'source-document':
        await session.data('source-document', { id: chunk.sourceId, title: chunk.title, mediaType: chunk.mediaType, filename: chunk.filename });
        break;
      case 'file':
        await session.file({ mediaType: chunk.mediaType, url: chunk.url });
        break;
      case 'finish':
        run.finishReason = chunk.finishReason;
        break;
      case 'error':
        throw new Error(chunk.errorText);
      case 'abort':
        throw session.cancelled ? new SessionCancelled('aborted') : new Error(`the AI SDK run was aborted${chunk.reason ? `: ${chunk.reason}` : ''}`);
      default:
        if (type.startsWith('data-') && type.length > 5) {
          await session.data(type.slice(5), chunk.data ?? null, { id: chunk.id, transient: chunk.transient });
        }
        break; // start, text-start/end, reasoning-start/end, message-metadata, ...
    }
  }
  return run.end();
}
