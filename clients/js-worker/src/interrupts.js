/**
 * What a run publishes for a human in the loop (PROTOCOL §8): tool calls
 * named by an id, and the `interrupt` that ends a run waiting for outside
 * input. The same shapes as the Python kit's `interrupts.py`, so a run
 * interrupted by one kit can be resumed by the other.
 *
 * An interrupt about a tool call carries the call in its `metadata`
 * (`tool_name`, `tool_input`, and `executor` for a client tool), so the
 * resumed run knows the call from its job alone: a stateless worker keeps
 * nothing between the two runs.
 */
import { randomUUID } from 'node:crypto';

/** The `reason` of an interrupt about a tool call (approval or client tool). */
export const TOOL_CALL_REASON = 'tool_call';
/** `AgentToolCallStart`'s `executor` for a tool the client runs. */
export const CLIENT_EXECUTOR = 'client';
/** Most interrupts one `interrupt` event may carry (the gateway's limit). */
export const MAX_INTERRUPTS = 64;

/** A fresh tool call id: `call-` and 32 hex digits. */
export const newToolCallId = () => `call-${randomUUID().replaceAll('-', '')}`;
/** A fresh interrupt id: `int-` and 32 hex digits. */
export const newInterruptId = () => `int-${randomUUID().replaceAll('-', '')}`;

/**
 * One interrupt of an `interrupt` event (PROTOCOL §8).
 * @typedef {{
 *   id?: string,
 *   reason: string,
 *   message?: string,
 *   tool_call_id?: string,
 *   response_schema?: Record<string, unknown>,
 *   expires_at?: string,
 *   metadata?: Record<string, unknown>,
 *   [field: string]: unknown,
 * }} Interrupt
 */

/** One call of tool `name` with `input`; `executor` is `"client"` for a tool the client runs. */
export class ToolCall {
  /**
   * @param {string} name
   * @param {unknown} [input]
   * @param {string} [id]
   * @param {string} [executor]
   */
  constructor(name, input = null, id = newToolCallId(), executor = undefined) {
    if (typeof name !== 'string' || name === '') throw new TypeError('a tool call needs a tool name');
    /** @readonly */ this.name = name;
    /** @readonly */ this.input = input === undefined ? null : input;
    /** @readonly */ this.id = id;
    /** @readonly @type {string | undefined} */ this.executor = executor;
  }

  /** `AgentToolCallStart`'s payload. */
  startPayload() {
    /** @type {Record<string, unknown>} */
    const payload = { tool_call_id: this.id, tool_name: this.name, tool_input: this.input };
    if (this.executor) payload.executor = this.executor;
    return payload;
  }

  /** @param {unknown} output `AgentToolCallEnd`'s payload: the call returned `output`. */
  endPayload(output) {
    return { tool_call_id: this.id, tool_name: this.name, output: output === undefined ? null : output };
  }

  /** @param {string} error `AgentToolCallEnd`'s payload: the call failed. */
  errorPayload(error) {
    return { tool_call_id: this.id, tool_name: this.name, error };
  }

  /** @param {string} [reason] `AgentToolCallEnd`'s payload: the call was not approved. */
  deniedPayload(reason) {
    return { tool_call_id: this.id, tool_name: this.name, denied: true, error: reason || 'denied' };
  }

  /**
   * An interrupt about this call (reason `tool_call`, a fresh id), carrying
   * the call in its `metadata` (plus `extra` metadata).
   * @param {{ message?: string, expiresAt?: string | Date, responseSchema?: Record<string, unknown>, id?: string, metadata?: Record<string, unknown> }} [options]
   * @returns {Interrupt}
   */
  interrupt(options = {}) {
    /** @type {Record<string, unknown>} */
    const metadata = { tool_name: this.name, tool_input: this.input, ...options.metadata };
    if (this.executor) metadata.executor = this.executor;
    return /** @type {Interrupt} */ (withoutUndefined({
      id: options.id ?? newInterruptId(),
      reason: TOOL_CALL_REASON,
      message: options.message,
      tool_call_id: this.id,
      response_schema: options.responseSchema,
      expires_at: rfc3339(options.expiresAt),
      metadata,
    }));
  }

  /**
   * The call an interrupt made by `interrupt()` is about; `null` for an
   * interrupt about no tool call.
   * @param {Interrupt} interrupt
   */
  static fromInterrupt(interrupt) {
    const metadata = isObject(interrupt.metadata) ? interrupt.metadata : {};
    if (typeof interrupt.tool_call_id !== 'string' || typeof metadata.tool_name !== 'string') return null;
    const executor = typeof metadata.executor === 'string' ? metadata.executor : undefined;
    return new ToolCall(metadata.tool_name, metadata.tool_input, interrupt.tool_call_id, executor);
  }
}

/**
 * `{"interrupts": [...]}`, checked as the gateway checks it (1 to 64
 * interrupts, each with a non-empty string `id` and `reason`, the ids
 * distinct); an interrupt without `id` gets a fresh one.
 * @param {Iterable<Interrupt>} interrupts
 */
export function interruptPayload(interrupts) {
  /** @type {Interrupt[]} */
  const objects = [];
  for (const item of interrupts) {
    if (!isObject(item)) throw new TypeError(`an interrupt is an object, not ${JSON.stringify(item)}`);
    const fields = withoutUndefined({ id: newInterruptId(), ...item, expires_at: rfc3339(item.expires_at) });
    for (const name of ['id', 'reason']) {
      if (typeof fields[name] !== 'string' || fields[name] === '') {
        throw new TypeError(`an interrupt's ${name} must be a non-empty string: ${JSON.stringify(fields)}`);
      }
    }
    if (objects.some((seen) => seen.id === fields.id)) throw new TypeError(`two interrupts have the id ${fields.id}`);
    objects.push(/** @type {Interrupt} */ (fields));
  }
  if (objects.length < 1 || objects.length > MAX_INTERRUPTS) {
    throw new RangeError(`an interrupt event carries 1 to ${MAX_INTERRUPTS} interrupts, not ${objects.length}`);
  }
  return { interrupts: objects };
}

/** @param {unknown} value @returns {value is Record<string, any>} */
export function isObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** @param {Record<string, unknown>} fields */
function withoutUndefined(fields) {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined));
}

/** @param {unknown} when @returns {string | undefined} */
function rfc3339(when) {
  if (when instanceof Date) return when.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return /** @type {string | undefined} */ (when ?? undefined);
}
