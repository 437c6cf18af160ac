/**
 * One AI SDK run as the session sees it, whichever stream shape it is read
 * from (`fullStream` parts or `toUIMessageStream()` chunks): the native
 * events it publishes, and the tool calls it keeps account of — so that a
 * run that ends waiting on calls ends with one `interrupt` naming them.
 *
 * A call waits when it asked for approval (`tool-approval-request`;
 * `metadata.approval_id`) or when nothing answered it by the end: the SDK
 * hands back unrun the calls of tools without `execute`, the client's
 * tools (`metadata.executor: "client"`; the AI SDK client's `onToolCall`
 * runs them, `addToolOutput` answers the interrupt). Calls the provider
 * ran are never the client's.
 */
import { CLIENT_EXECUTOR, ToolCall } from '../interrupts.js';

/**
 * @typedef {import('../session.js').Session} Session
 * @typedef {{
 *   steps?: boolean,
 *   approvalMessage?: (call: { toolCallId: string, toolName: string, input: unknown }) => string | undefined,
 * }} PipeOptions
 *   `steps`: publish `AgentStepStart`/`AgentStepEnd` per model step (default true);
 *   `approvalMessage`: the interrupt's `message` for a call awaiting approval.
 * @typedef {{ interrupted: boolean, text: string, finishReason: string | undefined }} PipeResult
 */

export class AgentRun {
  /**
   * @param {Session} session
   * @param {PipeOptions} [options]
   */
  constructor(session, { steps = true, approvalMessage = ({ toolName }) => `Run ${toolName}?` } = {}) {
    this.session = session;
    this.steps = steps;
    this.approvalMessage = approvalMessage;
    /** Every call seen, by id — a resumed run's too, whose starts were the interrupted run's. @type {Map<string, ToolCall>} */
    this.calls = new Map((session.resume?.answers ?? []).flatMap((a) => (a.toolCall ? [[a.toolCall.id, a.toolCall]] : [])));
    /** Denial reasons of the approvals this run resumes, by call id. @type {Map<string, string | null>} */
    this.deniedReasons = new Map(
      (session.resume?.approvals ?? []).filter((a) => !a.approved).map((a) => [a.call.id, a.reason]),
    );
    /** Streamed tool inputs: call id → tool name. @type {Map<string, string>} */
    this.inputs = new Map();
    /** @type {{ call: ToolCall, approvalId: string, signature?: string }[]} */
    this.approvals = [];
    /** Calls nothing answered yet: at the end, the client's. @type {Set<string>} */
    this.unanswered = new Set();
    this.step = 0;
    /** @type {string | null} */ this.openStep = null;
    /** @type {string | undefined} */ this.modelId = undefined;
    /** @type {string | undefined} */ this.finishReason = undefined;
    this.text = '';
  }

  async stepStart() {
    this.step += 1;
    this.openStep = `step-${this.step}`;
    if (this.steps) await this.session.stepStart(this.openStep);
  }

  async stepEnd() {
    if (this.steps && this.openStep) await this.session.stepEnd(this.openStep);
    this.openStep = null;
  }

  // Deltas are sent (`session.send`): they batch while an append is in
  // flight. Everything else is published and awaited, so the run learns
  // of a refusal at once and a tool's start is logged before its end.

  /** @param {string | undefined} delta */
  async answer(delta) {
    if (!delta) return;
    this.text += delta;
    await this.session.send('FinalAnswerStream', { char: delta });
  }

  /** @param {string | undefined} delta */
  async thought(delta) {
    if (delta) await this.session.send('AgentThoughtStream', { char: delta });
  }

  /** @param {string} id @param {string} toolName */
  inputStart(id, toolName) {
    this.inputs.set(id, toolName);
  }

  /** @param {string} id @param {string | undefined} delta */
  async inputDelta(id, delta) {
    if (delta) await this.session.send('AgentToolCallInputStream', { tool_call_id: id, tool_name: this.inputs.get(id) ?? 'tool', delta });
  }

  /**
   * @param {{ toolCallId: string, toolName: string, input?: unknown, providerExecuted?: boolean }} part
   */
  async toolCall({ toolCallId, toolName, input, providerExecuted }) {
    const call = new ToolCall(toolName, input ?? null, toolCallId);
    this.calls.set(toolCallId, call);
    await this.session.toolStart(toolName, call.input, { toolCallId });
    if (!providerExecuted) this.unanswered.add(toolCallId);
  }

  /** @param {string} id @param {unknown} output @param {string} [toolName] */
  async toolResult(id, output, toolName) {
    this.unanswered.delete(id);
    await this.session.toolEnd(this.call(id, toolName), output ?? null);
  }

  /** @param {string} id @param {unknown} error @param {string} [toolName] */
  async toolError(id, error, toolName) {
    this.unanswered.delete(id);
    await this.session.toolEnd(this.call(id, toolName), null, { error: errorText(error) });
  }

  /** @param {string} id @param {string} [toolName] */
  async toolDenied(id, toolName) {
    this.unanswered.delete(id);
    await this.session.toolDenied(this.call(id, toolName), this.deniedReasons.get(id) ?? undefined);
  }

  /** @param {string} id @param {string} approvalId @param {string} [signature] */
  approvalRequested(id, approvalId, signature) {
    this.unanswered.delete(id);
    this.approvals.push({ call: this.call(id), approvalId, ...(signature ? { signature } : {}) });
  }

  /**
   * Ends the run: with one `interrupt` if calls wait (see the module's doc),
   * the terminal event after everything the run sent; without, once what it
   * sent is logged (the worker then ends the session).
   * @returns {Promise<PipeResult>}
   */
  async end() {
    const asked = this.approvals.map(({ call, approvalId, signature }) =>
      call.interrupt({
        message: this.approvalMessage({ toolCallId: call.id, toolName: call.name, input: call.input }),
        metadata: { approval_id: approvalId, ...(signature ? { signature } : {}) },
      }),
    );
    for (const id of this.unanswered) {
      const call = this.call(id);
      asked.push(new ToolCall(call.name, call.input, call.id, CLIENT_EXECUTOR).interrupt());
    }
    const result = { text: this.text, finishReason: this.finishReason };
    if (asked.length === 0) {
      await this.session.flush();
      return { interrupted: false, ...result };
    }
    await this.session.interrupt(asked);
    return { interrupted: true, ...result };
  }

  /**
   * The call of that id; one this run never saw is a call of `toolName`
   * when the part names its tool, else of `tool`.
   * @param {string} id
   * @param {string} [toolName]
   */
  call(id, toolName) {
    return this.calls.get(id) ?? new ToolCall(toolName || 'tool', null, id);
  }
}

/** @param {unknown} error */
export function errorText(error) {
  if (error instanceof Error) return error.message;
  if (typeof error === 'string') return error;
  return JSON.stringify(error);
}
