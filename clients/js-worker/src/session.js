/**
 * A handler's view of its session: the job's request in, events out.
 *
 * Tool calls carry an id (`toolStart` returns the `ToolCall`; `toolEnd`
 * takes it, or the tool's name for the oldest call of that tool still open
 * in this run). A run that needs outside input ends with `interrupt` (or
 * the helpers `requestApproval` and `callClientTool`); the run that resumes
 * it reads the answers from `resume` (PROTOCOL §8).
 *
 * Events leave through one send queue per session, batched
 * opportunistically: while one append is in flight, the events sent
 * meanwhile queue up and go to the log together in one
 * `sse_bridge_v4_append_batch` call (at most 256 events / 256 KiB per
 * call). A lone event goes at once; a burst of deltas costs Redis one
 * function call per batch rather than per event. `send` queues an event and
 * returns once it is queued (it waits only while more than 1 MiB is
 * queued); `publish` queues one and resolves with its outcome; `flush`
 * waits until everything queued is logged. Order is kept across all three.
 *
 * Every event is logged and published as this run's *attempt*, with the
 * idempotency key `<attempt>:<n>` (a batch's key is its first event's), so
 * a retry after a connection failure never logs an event twice. Once the
 * session stops — the gateway sent `cancel`, the log refused an event, or a
 * batch failed past its retries — `cancelled` is true, `signal` is aborted
 * (hand it to `fetch`, `streamText`, ...), what is still queued is dropped
 * and every further `send`, `publish` and `flush` throws (`SessionStopped`,
 * or the failure).
 */
import { SessionCancelled, SessionRefused } from './errors.js';
import { CLIENT_EXECUTOR, ToolCall, interruptPayload } from './interrupts.js';
import { TERMINAL_EVENT_TYPES, appendEncoded, encodeEvent } from './publish.js';
import { Resume } from './resume.js';

/**
 * @typedef {import('./publish.js').Published} Published
 * @typedef {import('./publish.js').BatchOutcome} BatchOutcome
 * @typedef {import('./interrupts.js').Interrupt} Interrupt
 * @typedef {{ message?: string, toolCallId?: string, expiresAt?: string | Date }} AskOptions
 */

/** Bytes of events queued at most: a `send` waits while the queue holds more. */
export const QUEUED_BYTES_MAX = 1 << 20;
/** One append carries at most this many events… */
export const BATCH_EVENTS_MAX = 256;
/** …and this many bytes of them (the log publishes a batch as one message). */
export const BATCH_BYTES_MAX = 256 << 10;

/**
 * An event in the session's queue: its JSON, its idempotency key, and who
 * waits on it — `admit` for a `send` waiting for room, `settle` for a
 * `publish` waiting for its outcome.
 * @typedef {{ resolve: (value: any) => void, reject: (error: unknown) => void }} Waiter
 * @typedef {{
 *   eventType: string,
 *   json: string,
 *   bytes: number,
 *   key: string,
 *   admit: Waiter | null,
 *   settle: Waiter | null,
 * }} Pending
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
    /** @type {unknown} a batch that failed past its retries (`undefined`: none) */ this._failure = undefined;
    /** @type {Pending[]} queued events (the batch in flight included), oldest first */ this._queue = [];
    /** @type {Pending[]} events waiting for room in the queue, oldest first */ this._backlog = [];
    /** JSON bytes of the queued events. */ this._queuedBytes = 0;
    /** @type {Promise<void> | null} the drain loop, while it runs */ this._drainer = null;
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

  /** Aborted once the session stops (cancel, a refusal, a failed append, or shutdown). */
  get signal() {
    return this._abort.signal;
  }

  /** True once the session stopped: the gateway cancelled it, its log refused an event, or an append failed past its retries. */
  get cancelled() {
    return this._abort.signal.aborted;
  }

  /** True once this run published a terminal event. */
  get ended() {
    return this._ended;
  }

  /**
   * Logs and publishes one event, after everything queued before it, and
   * resolves with its outcome.
   * @param {string} eventType
   * @param {unknown} [payload] `{}` when omitted
   * @returns {Promise<Published>}
   * @throws {SessionStopped} when the session stopped, or the log refused this event
   */
  async publish(eventType, payload = {}) {
    return new Promise((resolve, reject) => {
      this._enqueue(eventType, payload, { resolve, reject });
    });
  }

  /**
   * Queues one event to be logged and published with the events queued
   * around it (see the module's doc), and resolves once it is queued:
   * at once, unless more than `QUEUED_BYTES_MAX` bytes are queued
   * (backpressure). Its outcome is not awaited: a refusal or failure stops
   * the session, and the next `send`, `publish` or `flush` throws it. Suits
   * the many small pieces of a stream (`FinalAnswerStream` deltas); end the
   * run with `publish` (or return from the handler).
   *
   * The returned promise may be left unawaited: its rejection is never
   * reported as unhandled.
   * @param {string} eventType
   * @param {unknown} [payload] `{}` when omitted
   * @returns {Promise<void>}
   * @throws {SessionStopped} when the session already stopped
   */
  send(eventType, payload = {}) {
    /** @type {Promise<void>} */
    let queued;
    try {
      queued = this._enqueue(eventType, payload, null);
    } catch (error) {
      queued = Promise.reject(error);
    }
    queued.catch(() => {});
    return queued;
  }

  /**
   * Resolves once everything queued so far is logged (and published).
   * @returns {Promise<void>}
   * @throws {SessionStopped} the refusal (or the failure) that stopped the
   *   session, or its cancel: what was queued may not all be logged
   */
  async flush() {
    await this._idle();
    if (this.cancelled) throw this._stoppedError();
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
   * event, an append failed, or the worker shuts down without waiting for
   * the handler. What is still queued is dropped.
   * @param {string} [reason]
   */
  cancel(reason = 'cancelled') {
    if (this.cancelled) return;
    this._cancelReason = reason;
    this._abort.abort(new SessionCancelled(reason));
  }

  /** Milliseconds since the last event was queued (or since the run started). */
  silentFor() {
    return Date.now() - this._lastPublish;
  }

  _stoppedError() {
    if (this._refusal !== null) return new SessionRefused(this._refusal);
    if (this._failure !== undefined) return this._failure;
    return new SessionCancelled(this._cancelReason ?? undefined);
  }

  /**
   * Queues the event (or backlogs it while the queue is full), with its
   * idempotency key; starts the drain loop if it is not running. Throws
   * when the session stopped or the event does not encode. Resolves once
   * the event is queued.
   * @param {string} eventType
   * @param {unknown} payload
   * @param {Waiter | null} settle the outcome's waiter (`publish`)
   * @returns {Promise<void>}
   */
  _enqueue(eventType, payload, settle) {
    if (this.cancelled) throw this._stoppedError();
    const json = encodeEvent(eventType, payload ?? {}, this.attempt);
    /** @type {Pending} */
    const pending = { eventType, json, bytes: Buffer.byteLength(json), key: `${this.attempt}:${this._publishes}`, admit: null, settle };
    this._publishes += 1;
    this._lastPublish = Date.now();
    if (this._backlog.length === 0 && this._hasRoom(pending.bytes)) {
      this._admit(pending);
      return Promise.resolve();
    }
    /** @type {Promise<void>} */
    const admitted = new Promise((resolve, reject) => {
      pending.admit = { resolve, reject };
    });
    admitted.catch(() => {}); // a publish waits on its outcome instead
    this._backlog.push(pending);
    return admitted;
  }

  /** @param {number} bytes an event of that size fits in the queue (a larger one fits an empty queue) */
  _hasRoom(bytes) {
    return this._queuedBytes === 0 || this._queuedBytes + bytes <= QUEUED_BYTES_MAX;
  }

  /** @param {Pending} pending */
  _admit(pending) {
    this._queue.push(pending);
    this._queuedBytes += pending.bytes;
    pending.admit?.resolve(undefined);
    // Started on the next microtask: the events sent in the same tick go together.
    this._drainer ??= Promise.resolve().then(() => this._drain());
  }

  /** Sends the queue, one batch per call, until it is empty (or the session stopped). */
  async _drain() {
    try {
      while (this._queue.length > 0) {
        if (this.cancelled) {
          this._drop(this._stoppedError());
          break;
        }
        const batch = this._takeBatch();
        /** @type {BatchOutcome[] | null} */
        let outcomes = null;
        let failure;
        try {
          outcomes = await appendEncoded(this._redis, this.sessionId, batch, {
            attempt: this.attempt,
            idempotencyKey: batch[0].key,
            retryForMs: this._publishRetryMs,
          });
        } catch (error) {
          // Past its retries, or an error reply: going on would leave a gap.
          failure = error;
          if (!this.cancelled) {
            this._failure = failure;
            this.cancel('publish_failed');
          }
        }
        this._queue.splice(0, batch.length);
        for (const [i, pending] of batch.entries()) {
          this._queuedBytes -= pending.bytes;
          if (outcomes) this._settle(pending, outcomes[i]);
          else pending.settle?.reject(failure);
        }
        while (this._backlog.length > 0 && this._hasRoom(this._backlog[0].bytes)) {
          this._admit(/** @type {Pending} */ (this._backlog.shift()));
        }
      }
    } finally {
      this._drainer = null;
    }
  }

  /** The next batch: the queue's oldest events, up to `BATCH_EVENTS_MAX` / `BATCH_BYTES_MAX`. */
  _takeBatch() {
    let bytes = 0;
    let count = 0;
    for (const pending of this._queue) {
      if (count > 0 && (count === BATCH_EVENTS_MAX || bytes + pending.bytes > BATCH_BYTES_MAX)) break;
      bytes += pending.bytes;
      count += 1;
    }
    return this._queue.slice(0, count);
  }

  /**
   * The event's outcome to whoever waits on it. A refusal stops the session
   * (the signal aborts), except `busy`, which refuses an ack only (this
   * attempt has not started).
   * @param {Pending} pending
   * @param {BatchOutcome} outcome
   */
  _settle(pending, outcome) {
    if (outcome instanceof SessionRefused) {
      if (outcome.reason !== 'busy' && this._refusal === null) {
        this._refusal = outcome.reason;
        this.cancel(outcome.reason);
      }
      pending.settle?.reject(outcome);
      return;
    }
    if (TERMINAL_EVENT_TYPES.has(pending.eventType)) this._ended = true;
    pending.settle?.resolve(outcome);
  }

  /** @param {unknown} error why the session dropped what it still had queued */
  _drop(error) {
    for (const pending of [...this._queue, ...this._backlog]) {
      pending.admit?.reject(error);
      pending.settle?.reject(error);
    }
    this._queue = [];
    this._backlog = [];
    this._queuedBytes = 0;
  }

  /** Resolves once the drain loop stopped (the queue is empty); never rejects. */
  async _idle() {
    while (this._drainer) await this._drainer;
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
