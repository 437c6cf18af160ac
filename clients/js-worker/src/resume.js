/**
 * What a resumed run reads (PROTOCOL §8): the answers to the interrupts its
 * thread's previous run ended with.
 *
 * A resume is a new job of the same thread whose `request.resume` holds one
 * entry per interrupt — `{interrupt_id, status: "resolved" | "cancelled",
 * payload}` — and which also carries the interrupts it answers as the worker
 * sent them (`job.interrupts`), the interrupted run's session id and its
 * request. `Resume.of` pairs each entry with its interrupt and reads the two
 * kinds of tool call interrupts the session's helpers make: approvals
 * (`{approved, reason?}`, or the interrupt cancelled = denied) and client
 * tool results (the entry's payload). The call keeps the id the previous
 * run started it with: the resumed run ends that call, never starts it again.
 */
import { CLIENT_EXECUTOR, TOOL_CALL_REASON, ToolCall, isObject } from './interrupts.js';

export const RESOLVED = 'resolved';
export const CANCELLED = 'cancelled';

/**
 * One resume entry with the interrupt it answers (`null` when the job did not carry it).
 * @typedef {{
 *   interruptId: string,
 *   status: 'resolved' | 'cancelled',
 *   payload: unknown,
 *   interrupt: import('./interrupts.js').Interrupt | null,
 *   toolCall: ToolCall | null,
 * }} Answer
 */

/**
 * What was decided about a tool call that asked for approval.
 * @typedef {{ call: ToolCall, approved: boolean, reason: string | null, answer: Answer }} Approval
 */

/**
 * What the client answered for a tool it runs (`output` is `null` when cancelled).
 * @typedef {{ call: ToolCall, output: unknown, cancelled: boolean, answer: Answer }} ClientToolResult
 */

/**
 * @param {ToolCall} call
 * @param {string | undefined} toolName
 * @param {string | undefined} toolCallId
 */
const matches = (call, toolName, toolCallId) =>
  (toolName === undefined || call.name === toolName) && (toolCallId === undefined || call.id === toolCallId);

/** A resumed run's answers, and the run it continues. */
export class Resume {
  /**
   * @param {string} threadId
   * @param {string | null} parentSessionId
   * @param {Record<string, any> | null} parentRequest
   * @param {Answer[]} answers
   */
  constructor(threadId, parentSessionId, parentRequest, answers) {
    /** @readonly */ this.threadId = threadId;
    /** @readonly The interrupted run's session id. */ this.parentSessionId = parentSessionId;
    /** @readonly The interrupted run's request (its `user_query`, `messages`, ...). */ this.parentRequest = parentRequest;
    /** @readonly One per resume entry, in the client's order. */ this.answers = answers;
  }

  /**
   * The job's resume; `null` for a run that resumes nothing. Throws when
   * `request.resume` is malformed (the gateway checks it, so only a job
   * made by hand can be).
   * @param {import('./queue.js').Job} job
   */
  static of(job) {
    const entries = job.request.resume;
    if (entries === undefined || entries === null) return null;
    const threadId = job.request.thread_id;
    if (typeof threadId !== 'string') throw new TypeError('a resume\'s request needs a string thread_id');
    if (!Array.isArray(entries)) throw new TypeError('request.resume must be an array');
    const asked = new Map();
    for (const fields of job.interrupts ?? []) {
      if (isObject(fields) && typeof fields.id === 'string' && typeof fields.reason === 'string') asked.set(fields.id, fields);
    }
    const answers = entries.map((entry, index) => {
      const interruptId = isObject(entry) ? entry.interrupt_id : undefined;
      const status = isObject(entry) ? entry.status : undefined;
      if (typeof interruptId !== 'string' || (status !== RESOLVED && status !== CANCELLED)) {
        throw new TypeError(
          `request.resume[${index}] must be {"interrupt_id": string, "status": "resolved" | "cancelled", "payload"?: any}, not ${JSON.stringify(entry)}`,
        );
      }
      const interrupt = asked.get(interruptId) ?? null;
      const toolCall = interrupt && interrupt.reason === TOOL_CALL_REASON ? ToolCall.fromInterrupt(interrupt) : null;
      return { interruptId, status, payload: entry.payload ?? null, interrupt, toolCall };
    });
    return new Resume(threadId, job.parentSessionId ?? null, job.parentRequest ?? null, answers);
  }

  /** @param {string} interruptId the answer to that interrupt, if any */
  answer(interruptId) {
    return this.answers.find((a) => a.interruptId === interruptId) ?? null;
  }

  /**
   * The decisions about tool calls that asked for approval (throws if one is
   * answered with something else than a decision).
   * @returns {Approval[]}
   */
  get approvals() {
    return this.answers
      .filter((answer) => answer.toolCall && answer.toolCall.executor !== CLIENT_EXECUTOR)
      .map((answer) => approvalOf(/** @type {ToolCall} */ (answer.toolCall), answer));
  }

  /**
   * The first decision about a call of `toolName` (any tool when omitted),
   * or about call `toolCallId`; `null` if there is none.
   * @param {string} [toolName]
   * @param {{ toolCallId?: string }} [options]
   */
  approval(toolName, { toolCallId } = {}) {
    return this.approvals.find((a) => matches(a.call, toolName, toolCallId)) ?? null;
  }

  /** @returns {ClientToolResult[]} what the client answered for the tools it was asked to run */
  get clientResults() {
    return this.answers
      .filter((answer) => answer.toolCall && answer.toolCall.executor === CLIENT_EXECUTOR)
      .map((answer) => ({
        call: /** @type {ToolCall} */ (answer.toolCall),
        output: answer.status === RESOLVED ? answer.payload : null,
        cancelled: answer.status === CANCELLED,
        answer,
      }));
  }

  /**
   * @param {string} [toolName]
   * @param {{ toolCallId?: string }} [options]
   */
  clientResult(toolName, { toolCallId } = {}) {
    return this.clientResults.find((r) => matches(r.call, toolName, toolCallId)) ?? null;
  }
}

/**
 * @param {ToolCall} call
 * @param {Answer} answer
 * @returns {Approval}
 */
function approvalOf(call, answer) {
  const payload = isObject(answer.payload) ? answer.payload : {};
  const reason = typeof payload.reason === 'string' && payload.reason ? payload.reason : null;
  if (answer.status === CANCELLED) return { call, approved: false, reason, answer };
  if (typeof payload.approved !== 'boolean') {
    throw new TypeError(
      `interrupt ${answer.interruptId} asked to approve ${call.name}: it is answered with {"approved": true | false, "reason"?: string} or cancelled, not ${JSON.stringify(answer.payload)}`,
    );
  }
  return { call, approved: payload.approved, reason: payload.approved ? null : reason, answer };
}
