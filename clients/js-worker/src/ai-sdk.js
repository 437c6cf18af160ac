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
 * `modelMessages(session)` makes the model messages of the job: the
 * client's `messages` (AI SDK UI messages, converted with
 * `convertToModelMessages`; AG-UI's `{role, content}`), or `user_query`.
 * For a resumed run (PROTOCOL §8) they are the *interrupted* run's messages
 * (`parent_request`) plus, for each approval answered, the call and its
 * `tool-approval-request` in an assistant message and the decision as a
 * `tool-approval-response` part in a tool message — so `streamText` runs
 * the approved tool (or records the denial) and continues the agent, as it
 * does for the AI SDK's own `addToolApprovalResponse` flow.
 *
 * `pipeFullStream(session, result.fullStream)` maps every part to the
 * native event: text → `FinalAnswerStream`, reasoning →
 * `AgentThoughtStream`, streamed tool input → `AgentToolCallInputStream`,
 * tool calls → `AgentToolCallStart` (the SDK's `toolCallId` kept), results,
 * errors and denials → `AgentToolCallEnd`, steps → `AgentStepStart` /
 * `AgentStepEnd`, sources → `Source`, files → `File` (a `data:` URL),
 * usage → `Usage`; `tool-approval-request` parts end the run with one
 * `interrupt` whose entries name the calls (`tool_call_id`) and carry them
 * (`metadata`: `tool_name`, `tool_input`, `approval_id`). An `error` part
 * throws (the worker ends the session with `error`/`worker_error`).
 */
import { convertToModelMessages } from 'ai';

import { SessionCancelled } from './errors.js';
import { CLIENT_EXECUTOR, ToolCall, isObject } from './interrupts.js';

/**
 * @typedef {import('./session.js').Session} Session
 * @typedef {import('ai').ModelMessage} ModelMessage
 * @typedef {{
 *   steps?: boolean,
 *   approvalMessage?: (call: { toolCallId: string, toolName: string, input: unknown }) => string | undefined,
 * }} PipeOptions
 *   `steps`: publish `AgentStepStart`/`AgentStepEnd` per model step (default true);
 *   `approvalMessage`: the interrupt's `message` for a call awaiting approval.
 * @typedef {{ interrupted: boolean, text: string, finishReason: string | undefined }} PipeResult
 */

/**
 * The conversation of a request, as model messages.
 * @param {Record<string, any>} request
 * @returns {Promise<ModelMessage[]>}
 */
export async function requestMessages(request) {
  const messages = request.messages;
  if (Array.isArray(messages) && messages.length > 0) {
    if (messages.every((m) => isObject(m) && Array.isArray(m.parts))) {
      return convertToModelMessages(messages, { ignoreIncompleteToolCalls: true });
    }
    // AG-UI's messages: {role, content: string}.
    const plain = messages
      .filter((m) => isObject(m) && ['system', 'user', 'assistant'].includes(m.role) && typeof m.content === 'string')
      .map((m) => /** @type {ModelMessage} */ ({ role: m.role, content: m.content }));
    if (plain.length > 0) return plain;
  }
  if (typeof request.user_query === 'string') return [{ role: 'user', content: request.user_query }];
  return [];
}

/**
 * The model messages of the session's job: the request's conversation, or
 * for a resumed run the interrupted run's conversation continued with the
 * approvals answered (see the module's doc).
 * @param {Session} session
 * @returns {Promise<ModelMessage[]>}
 */
export async function modelMessages(session) {
  const resume = session.resume;
  if (!resume) return requestMessages(session.request);
  const messages = await requestMessages(resume.parentRequest ?? session.request);
  /** @type {any[]} */
  const calls = [];
  /** @type {any[]} */
  const responses = [];
  for (const answer of resume.answers) {
    const call = answer.toolCall;
    if (!call || call.executor === CLIENT_EXECUTOR) continue;
    const approval = resume.approval(undefined, { toolCallId: call.id });
    if (!approval) continue;
    const metadata = isObject(answer.interrupt?.metadata) ? answer.interrupt.metadata : {};
    const approvalId = typeof metadata.approval_id === 'string' ? metadata.approval_id : answer.interruptId;
    calls.push(
      { type: 'tool-call', toolCallId: call.id, toolName: call.name, input: call.input ?? {} },
      {
        type: 'tool-approval-request',
        approvalId,
        toolCallId: call.id,
        ...(typeof metadata.signature === 'string' ? { signature: metadata.signature } : {}),
      },
    );
    responses.push({
      type: 'tool-approval-response',
      approvalId,
      approved: approval.approved,
      ...(approval.reason ? { reason: approval.reason } : {}),
    });
  }
  if (calls.length > 0) {
    messages.push({ role: 'assistant', content: calls }, { role: 'tool', content: responses });
  }
  return messages;
}

/**
 * Streams an AI SDK `fullStream` into the session (see the module's doc).
 * Resolves when the stream ended; `interrupted` when the run ended with an
 * interrupt (approvals asked). The worker ends the session otherwise.
 * @param {Session} session
 * @param {AsyncIterable<any>} fullStream
 * @param {PipeOptions} [options]
 * @returns {Promise<PipeResult>}
 */
export async function pipeFullStream(session, fullStream, options = {}) {
  const { steps = true, approvalMessage = ({ toolName }) => `Run ${toolName}?` } = options;
  /** Denial reasons of the approvals this run resumes, by tool call id. */
  const deniedReasons = new Map();
  for (const approval of session.resume?.approvals ?? []) {
    if (!approval.approved) deniedReasons.set(approval.call.id, approval.reason);
  }
  /** @type {Map<string, string>} streamed tool inputs: id → tool name */
  const inputs = new Map();
  /** @type {any[]} */
  const approvals = [];
  let step = 0;
  /** @type {string | null} */
  let openStep = null;
  /** @type {string | undefined} */
  let modelId;
  /** @type {string | undefined} */
  let finishReason;
  let text = '';
  /** @param {any} part */
  const callOf = (part) => new ToolCall(part.toolName, part.input ?? null, part.toolCallId);

  for await (const part of fullStream) {
    switch (part.type) {
      case 'start-step':
        step += 1;
        openStep = `step-${step}`;
        if (steps) await session.stepStart(openStep);
        break;
      case 'finish-step':
        modelId = part.response?.modelId ?? modelId;
        if (steps && openStep) await session.stepEnd(openStep);
        openStep = null;
        break;
      case 'text-delta':
        if (part.text) {
          text += part.text;
          await session.answer(part.text);
        }
        break;
      case 'reasoning-delta':
        if (part.text) await session.thought(part.text);
        break;
      case 'tool-input-start':
        inputs.set(part.id, part.toolName);
        break;
      case 'tool-input-delta':
        if (part.delta) await session.toolInput(part.id, inputs.get(part.id) ?? 'tool', part.delta);
        break;
      case 'tool-call':
        await session.toolStart(part.toolName, part.input ?? null, { toolCallId: part.toolCallId });
        break;
      case 'tool-result':
        if (!part.preliminary) await session.toolEnd(callOf(part), part.output ?? null);
        break;
      case 'tool-error':
        await session.toolEnd(callOf(part), null, { error: errorText(part.error) });
        break;
      case 'tool-output-denied':
        await session.toolDenied(callOf(part), deniedReasons.get(part.toolCallId));
        break;
      case 'tool-approval-request':
        if (!part.isAutomatic) approvals.push(part);
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
        finishReason = part.finishReason;
        const usage = part.totalUsage ?? {};
        if (usage.inputTokens !== undefined || usage.outputTokens !== undefined) {
          await session.usage({
            inputTokens: usage.inputTokens ?? 0,
            outputTokens: usage.outputTokens ?? 0,
            ...(usage.outputTokenDetails?.reasoningTokens !== undefined ? { reasoningTokens: usage.outputTokenDetails.reasoningTokens } : {}),
            ...(modelId ? { model: modelId } : {}),
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
  if (approvals.length > 0) {
    await session.interrupt(
      approvals.map((part) => {
        const { toolCallId, toolName, input } = part.toolCall;
        return new ToolCall(toolName, input ?? null, toolCallId).interrupt({
          message: approvalMessage({ toolCallId, toolName, input }),
          metadata: { approval_id: part.approvalId, ...(part.signature ? { signature: part.signature } : {}) },
        });
      }),
    );
    return { interrupted: true, text, finishReason };
  }
  return { interrupted: false, text, finishReason };
}

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

/** @param {unknown} error */
function errorText(error) {
  if (error instanceof Error) return error.message;
  if (typeof error === 'string') return error;
  return JSON.stringify(error);
}
