/**
 * A handler's view of its session: the job's request in, events out.
 *
 * Tool calls carry an id (`toolStart` returns the `ToolCall`; `toolEnd`
 * takes it, or the tool's name for the oldest call of that tool still open
 * in this run). A run that needs outside input ends with `interrupt` (or
 * the helpers `requestApproval` and `callClientTool`); the run that resumes
 * it reads the answers from `resume` (PROTOCOL §8).
 *
 * Every publish is logged and published as this run's *attempt*, with the
 * idempotency key `<attempt>:<n>`, so a retry after a connection failure
 * never logs an event twice. Once the session stops — the gateway sent
 * `cancel`, or the log refused an event — `cancelled` is true, `signal` is
 * aborted (hand it to `fetch`, `streamText`, ...) and every further publish
 * throws `SessionStopped`.
 */
import { SessionCancelled, SessionRefused } from './errors.js';
import { CLIENT_EXECUTOR, ToolCall, interruptPayload } from './interrupts.js';
import { TERMINAL_EVENT_TYPES, publishEvent } from './publish.js';
import { Resume } from './resume.js';

/**
 * @typedef {import('./publish.js').Published} Published
 * @typedef {import('./interrupts.js').Interrupt} Interrupt
 * @typedef {{ message?: string, toolCallId?: string, expiresAt?: string | Date }} AskOptions
 */

export class Session {
  /**
   * @param {import('./queue.js').Job} job
   * @param {string} attempt
   * @param {import('ioredis').Redis} redis
   * @param {{ publishRetryMs?: number }} [options]
   */
  constructor(job, attempt, redis, { publishRetryMs = 10_000 } = {}) {
    /** @readonly */ this.job = job;
    /** @readonly This run's attempt id, carried by every event it publishes. */ this.attempt = attempt;
    this._redis = redis;
    this._publishRetryMs = publishRetryMs;
    this._publishes = 0;
    this._lastPublish = Date.now();
    this._ended = false;
    /** @type {string | null} */ this._refusal = null;
    /** @type {string | null} */ this._cancelReason = null;
    this._abort = new AbortController();
    /** @type {ToolCall[]} calls started by this run and not ended yet, oldest first */
    this._openCalls = [];
    /** @type {Resume | null | undefined} */ this._resume = undefined;
    /** Set by the worker when it gave the job up at shutdown (left for redelivery). */
    this._givenUp = false;
  }

  get sessionId() {
    return this.job.sessionId;
  }

  /** The job's request: the client's body (`user_query`, `messages`, ...). */
  get request() {
    return this.job.request;
  }

  /** The thread this run belongs to (`request.thread_id`), if any. */
  get threadId() {
    return typeof this.request.thread_id === 'string' ? this.request.thread_id : null;
  }

  /** The answers when this run resumes an interrupted one; `null` otherwise. */
  get resume() {
    if (this._resume === undefined) this._resume = Resume.of(this.job);
    return this._resume;
  }

  /** Aborted once the session stops (cancel, a refusal, or shutdown). */
  get signal() {
    return this._abort.signal;
  }

  /** True once the gateway cancelled the session or its log refused an event. */
  get cancelled() {
    return this._abort.signal.aborted;
  }

  /** True once this run published a terminal event. */
  get ended() {
    return this._ended;
  }

  /**
   * Logs and publishes one event.
   * @param {string} eventType
   * @param {unknown} [payload] `{}` when omitted
   * @returns {Promise<Published>}
   */
  async publish(eventType, payload = {}) {
    if (this.cancelled) throw this._stoppedError();
    const idempotencyKey = `${this.attempt}:${this._publishes}`;
    this._publishes += 1;
    this._lastPublish = Date.now();
    let published;
    try {
      published = await publishEvent(this._redis, this.sessionId, eventType, payload ?? {}, {
        attempt: this.attempt,
        idempotencyKey,
        retryForMs: this._publishRetryMs,
      });
    } catch (error) {
      // `busy` refuses an ack only: this attempt has not started.
      if (error instanceof SessionRefused && error.reason !== 'busy') {
        this._refusal = error.reason;
        this.cancel(error.reason);
      }
      throw error;
    }
    if (TERMINAL_EVENT_TYPES.has(eventType)) this._ended = true;
    return published;
  }

  /** @param {string} text the next piece of the agent's reasoning (`AgentThoughtStream`) */
  thought(text) {
    return this.publish('AgentThoughtStream', { char: text });
  }

  /** @param {string} text the next piece of the final answer (`FinalAnswerStream`) */
  answer(text) {
    return this.publish('FinalAnswerStream', { char: text });
  }

  /**
   * The agent calls a tool (`AgentToolCallStart`, with a fresh `tool_call_id`
   * unless given); returns the call for `toolEnd`.
   * @param {string} name
   * @param {unknown} [input]
   * @param {{ toolCallId?: string }} [options]
   */
  async toolStart(name, input = null, { toolCallId } = {}) {
    const call = new ToolCall(name, input, toolCallId);
    await this._start(call);
    return call;
  }

  /**
   * A piece of a tool call's input as it streams (`AgentToolCallInputStream`,
   * PROTOCOL §9); its `toolStart` with the same id closes it.
   * @param {string} toolCallId
   * @param {string} toolName
   * @param {string} delta the input's JSON text, piece by piece
   */
  toolInput(toolCallId, toolName, delta) {
    return this.publish('AgentToolCallInputStream', { tool_call_id: toolCallId, tool_name: toolName, delta });
  }

  /**
   * The tool returned `output`, or failed with `error` (`AgentToolCallEnd`).
   * `call` is a `ToolCall` (also one the interrupted run started, from
   * `resume`) or a tool's name: the oldest call of it still open.
   * @param {ToolCall | string} call
   * @param {unknown} [output]
   * @param {{ error?: string }} [options]
   */
  toolEnd(call, output = null, { error } = {}) {
    const closed = this._close(call);
    if (error === undefined) return this.publish('AgentToolCallEnd', closed.endPayload(output));
    if (output !== null && output !== undefined) throw new TypeError('a tool call ends with an output or an error, not both');
    return this.publish('AgentToolCallEnd', closed.errorPayload(error));
  }

  /**
   * The call was not approved: `AgentToolCallEnd` with `denied: true`.
   * @param {ToolCall | string} call
   * @param {string | null} [reason]
   */
  toolDenied(call, reason) {
    return this.publish('AgentToolCallEnd', this._close(call).deniedPayload(reason ?? undefined));
  }

  /**
   * Ends the run waiting for outside input: the terminal `interrupt` event.
   * Return from the handler after it; the answers start a new run (`resume`).
   * @param {Iterable<Interrupt>} interrupts
   */
  interrupt(interrupts) {
    return this.publish('interrupt', interruptPayload(interrupts));
  }

  /**
   * Asks a person whether the call may run, and ends the run: the call
   * starts (`AgentToolCallStart`), then an interrupt about it. The resumed
   * run finds the decision in `resume.approval(name)` and ends that call.
   * @param {string} name
   * @param {unknown} input
   * @param {AskOptions & { message: string }} options
   */
  async requestApproval(name, input, { message, toolCallId, expiresAt }) {
    const call = await this.toolStart(name, input, { toolCallId });
    await this.interrupt([call.interrupt({ message, expiresAt })]);
    return call;
  }

  /**
   * Hands the call to the client, and ends the run: `AgentToolCallStart`
   * with `"executor": "client"`, then an interrupt about it. The resumed run
   * finds the output in `resume.clientResult(name)`.
   * @param {string} name
   * @param {unknown} [input]
   * @param {AskOptions} [options]
   */
  async callClientTool(name, input = null, { message, toolCallId, expiresAt } = {}) {
    const call = new ToolCall(name, input, toolCallId, CLIENT_EXECUTOR);
    await this._start(call);
    await this.interrupt([call.interrupt({ message, expiresAt })]);
    return call;
  }

  /** @param {string} name a step of the agent begins (`AgentStepStart`) */
  stepStart(name) {
    return this.publish('AgentStepStart', { name });
  }

  /** @param {string} name the step ends (`AgentStepEnd`) */
  stepEnd(name) {
    return this.publish('AgentStepEnd', { name });
  }

  /** @param {{ id: string, url: string, title?: string }} source a source the answer cites (`Source`) */
  source({ id, url, title }) {
    return this.publish('Source', title === undefined ? { id, url } : { id, url, title });
  }

  /** @param {{ mediaType: string, url: string }} file a file the agent made (`File`; a `data:` URL for inline bytes) */
  file({ mediaType, url }) {
    return this.publish('File', { media_type: mediaType, url });
  }

  /**
   * A named piece of data (`Data`; the AI SDK's `data-<name>` part, replaced by `id`).
   * @param {string} name
   * @param {unknown} data
   * @param {{ id?: string, transient?: boolean }} [options]
   */
  data(name, data, { id, transient } = {}) {
    return this.publish('Data', { name, data, ...(id !== undefined ? { id } : {}), ...(transient ? { transient } : {}) });
  }

  /** @param {unknown} state the agent's whole state (`StateSnapshot`) */
  state(state) {
    return this.publish('StateSnapshot', { state });
  }

  /** @param {unknown[]} patch RFC 6902 operations on the state (`StateDelta`) */
  stateDelta(patch) {
    return this.publish('StateDelta', { patch });
  }

  /**
   * Token usage (`Usage`).
   * @param {{ inputTokens?: number, outputTokens?: number, reasoningTokens?: number, model?: string }} usage
   */
  usage({ inputTokens, outputTokens, reasoningTokens, model }) {
    /** @type {Record<string, unknown>} */
    const payload = { input_tokens: inputTokens ?? 0, output_tokens: outputTokens ?? 0 };
    if (reasoningTokens !== undefined) payload.reasoning_tokens = reasoningTokens;
    if (model !== undefined) payload.model = model;
    return this.publish('Usage', payload);
  }

  /**
   * Stops the session: the gateway's `cancel` arrived, the log refused an
   * event, or the worker shuts down without waiting for the handler.
   * @param {string} [reason]
   */
  cancel(reason = 'cancelled') {
    if (this.cancelled) return;
    this._cancelReason = reason;
    this._abort.abort(new SessionCancelled(reason));
  }

  /** Milliseconds since the last publish (or since the run started). */
  silentFor() {
    return Date.now() - this._lastPublish;
  }

  _stoppedError() {
    return this._refusal !== null ? new SessionRefused(this._refusal) : new SessionCancelled(this._cancelReason ?? undefined);
  }

  /** @param {ToolCall} call */
  async _start(call) {
    await this.publish('AgentToolCallStart', call.startPayload());
    this._openCalls.push(call);
  }

  /**
   * The call to end: `call` itself, or the oldest open call of the tool named `call`.
   * @param {ToolCall | string} call
   */
  _close(call) {
    if (call instanceof ToolCall) {
      this._openCalls = this._openCalls.filter((open) => open.id !== call.id);
      return call;
    }
    const index = this._openCalls.findIndex((open) => open.name === call);
    if (index < 0) {
      throw new TypeError(
        `no call of tool ${call} is open in this run: pass the ToolCall (toolStart's, or resume.approval(...).call for a call the interrupted run started)`,
      );
    }
    return this._openCalls.splice(index, 1)[0];
  }
}
