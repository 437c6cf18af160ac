/**
 * `streamText(...).fullStream` into a session: each part as its native
 * event (the table in the package README), the run's waiting calls as one
 * `interrupt` at the end (`run.js`).
 */
import { SessionCancelled } from '../errors.js';
import { AgentRun, errorText } from './run.js';

/**
 * @typedef {import('./run.js').PipeOptions} PipeOptions
 * @typedef {import('./run.js').PipeResult} PipeResult
 */

/**
 * Streams an AI SDK `fullStream` into the session (its deltas batched:
 * `session.send`). Resolves when the stream ended and what it sent is
 * logged; `interrupted` when the run ended with an interrupt. The worker
 * ends the session otherwise.
 * @param {import('../session.js').Session} session
 * @param {AsyncIterable<any>} fullStream
 * @param {PipeOptions} [options]
 * @returns {Promise<PipeResult>}
 */
export async function pipeFullStream(session, fullStream, options = {}) {
  const run = new AgentRun(session, options);
  for await (const part of fullStream) {
    switch (part.type) {
      case 'start-step':
        await run.stepStart();
        break;
      case 'finish-step':
        run.modelId = part.response?.modelId ?? run.modelId;
        await run.stepEnd();
        break;
      case 'text-delta':
        await run.answer(part.text);
        break;
      case 'reasoning-delta':
        await run.thought(part.text);
        break;
      case 'tool-input-start':
        run.inputStart(part.id, part.toolName);
        break;
      case 'tool-input-delta':
        await run.inputDelta(part.id, part.delta);
        break;
      case 'tool-call':
        await run.toolCall(part);
        break;
      case 'tool-result':
        if (!part.preliminary) await run.toolResult(part.toolCallId, part.output, part.toolName);
        break;
      case 'tool-error':
        await run.toolError(part.toolCallId, part.error, part.toolName);
        break;
      case 'tool-output-denied':
        await run.toolDenied(part.toolCallId, part.toolName);
        break;
      case 'tool-approval-request':
        if (part.isAutomatic) run.unanswered.delete(part.toolCall.toolCallId);
        else run.approvalRequested(part.toolCall.toolCallId, part.approvalId, part.signature);
        break;
      case 'source':
        if (part.sourceType === 'url') {
          await session.source({ id: part.id, url: part.url, ...(part.title ? { title: part.title } : {}) });
        } else {
          await session.data('source-document', { id: part.id, title: part.title, mediaType: part.mediaType, filename: part.filename });
        }
        break;
      case 'file':
        await session.file({ mediaType: part.file.mediaType, url: `data:${part.file.mediaType};base64,${part.file.base64}` });
        break;
      case 'finish': {
        run.finishReason = part.finishReason;
        const usage = part.totalUsage ?? {};
        if (usage.inputTokens !== undefined || usage.outputTokens !== undefined) {
          await session.usage({
            inputTokens: usage.inputTokens ?? 0,
            outputTokens: usage.outputTokens ?? 0,
            ...(usage.outputTokenDetails?.reasoningTokens !== undefined ? { reasoningTokens: usage.outputTokenDetails.reasoningTokens } : {}),
            ...(run.modelId ? { model: run.modelId } : {}),
          });
        }
        break;
      }
      case 'error':
        throw part.error instanceof Error ? part.error : new Error(errorText(part.error));
      case 'abort':
        throw session.cancelled ? new SessionCancelled('aborted') : new Error(`the AI SDK run was aborted${part.reason ? `: ${part.reason}` : ''}`);
      default:
        break; // start, text-start/end, reasoning-start/end, tool-input-end, raw, ...
    }
  }
  return run.end();
}
