/**
 * The model messages of a job, for `streamText({ messages })`.
 *
 * A fresh run gets the client's conversation: AI SDK UI messages (through
 * `convertToModelMessages`), AG-UI's `{role, content}` messages, or
 * `user_query`. A resumed run (PROTOCOL §8) sent by an AI SDK chat carries
 * the whole conversation, its last assistant message holding the answered
 * calls: those messages are used as they are, as the AI SDK's own route
 * handlers read them. Any other resume (native, AG-UI) gets the
 * *interrupted* run's messages (`parent_request`) continued with what was
 * answered: per approval, the call and its `tool-approval-request` in an
 * assistant message and the decision as a `tool-approval-response` in a
 * tool message; per client tool, the call and the client's output as its
 * `tool-result` (a cancelled call as an `error-text` result). Either way
 * `streamText` runs the approved tools (or records the denials) and
 * continues the agent, as in the AI SDK's own `addToolApprovalResponse`
 * and `addToolOutput` flows.
 */
import { convertToModelMessages } from 'ai';

import { CLIENT_EXECUTOR, isObject } from '../interrupts.js';

/**
 * @typedef {import('../session.js').Session} Session
 * @typedef {import('ai').ModelMessage} ModelMessage
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
 * The model messages of the session's job (see the module's doc).
 * @param {Session} session
 * @returns {Promise<ModelMessage[]>}
 */
export async function modelMessages(session) {
  const resume = session.resume;
  if (!resume) return requestMessages(session.request);
  if (chatHoldsTheAnswers(session.request, resume)) return requestMessages(session.request);
  const messages = await requestMessages(resume.parentRequest ?? session.request);
  /** @type {any[]} */
  const calls = [];
  /** @type {any[]} */
  const responses = [];
  for (const result of resume.clientResults) {
    const { call } = result;
    calls.push({ type: 'tool-call', toolCallId: call.id, toolName: call.name, input: call.input ?? {} });
    responses.push({
      type: 'tool-result',
      toolCallId: call.id,
      toolName: call.name,
      output: result.cancelled
        ? { type: 'error-text', value: 'the client cancelled the tool call' }
        : { type: 'json', value: result.output ?? null },
    });
  }
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
 * Whether the request is an AI SDK chat's continuation: UI messages ending
 * with the assistant message that holds every call the resume answers, in
 * an answered state. Those messages are the whole conversation — the
 * interrupted run's text and reasoning too — as the AI SDK's own route
 * handlers read them.
 * @param {Record<string, any>} request
 * @param {import('../resume.js').Resume} resume
 */
function chatHoldsTheAnswers(request, resume) {
  const messages = request.messages;
  if (!Array.isArray(messages) || !messages.every((m) => isObject(m) && Array.isArray(m.parts))) return false;
  const last = messages.at(-1);
  if (last?.role !== 'assistant') return false;
  const answered = new Set(
    last.parts
      .filter((part) => isObject(part) && typeof part.toolCallId === 'string' && ANSWERED_TOOL_STATES.has(part.state))
      .map((part) => part.toolCallId),
  );
  const calls = resume.answers.map((answer) => answer.toolCall?.id);
  return calls.length > 0 && calls.every((id) => id !== undefined && answered.has(id));
}

/** The states of an AI SDK tool part the client has answered. */
const ANSWERED_TOOL_STATES = new Set(['approval-responded', 'output-available', 'output-error', 'output-denied']);
