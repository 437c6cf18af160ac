/**
 * `publishEvent`: one event from a worker to its session (PROTOCOL §4).
 *
 * One `FCALL sse_bridge_v3_append` appends the event to the session's log
 * (`sse_events:<id>`) and publishes it on the session's channel in one
 * atomic step, applying the attempt rule on the way: the log refuses events
 * of an attempt that has not sent `worker_ack` or that the session does not
 * belong to, and every event after the terminal one. A refusal throws
 * `SessionRefused`.
 *
 * Retries are safe only with an idempotency key (sessions use
 * `<attempt>:<n>`, like the Rust SDK and the Python kit). The key is stored
 * with the entry, and every try asks the library to answer an entry that
 * already carries it instead of appending a duplicate (ioredis itself
 * resends a command whose reply was lost when it reconnects). With a key, a
 * publish that failed on the connection is retried with backoff for up to
 * `retryForMs`; without one the first connection error is thrown.
 */
import { SessionRefused, UnexpectedReply } from './errors.js';
import { isLibraryMissing, loadLibrary } from './library.js';

/** The library version's append (`functions.lua`: names carry the version). */
export const APPEND_FUNCTION = 'sse_bridge_v3_append';
/** ARGV[5]: answer an entry already carrying the idempotency key. */
const DEDUPLICATE = 'again';
/** `FinalAnswerStreamEnd`, `error` and `interrupt` end a session. */
export const TERMINAL_EVENT_TYPES = Object.freeze(new Set(['FinalAnswerStreamEnd', 'error', 'interrupt']));

const FIRST_RETRY_PAUSE_MS = 50;
const LONGEST_RETRY_PAUSE_MS = 1000;

/** @param {string} sessionId the Redis Stream holding the session's events */
export const logKey = (sessionId) => `sse_events:${sessionId}`;
/** @param {string} sessionId the hash the gateway keeps the session's metadata in */
export const metaKey = (sessionId) => `sse_session_meta:${sessionId}`;
/** @param {string} sessionId the Redis Stream holding the folded head of a long log */
export const foldedKey = (sessionId) => `sse_folded:${sessionId}`;
/** @param {string} sessionId the Pub/Sub channel the gateway sends `cancel` on */
export const controlChannel = (sessionId) => `sse_control:${sessionId}`;

/**
 * Where a published event went: `logId` is its entry id in the session log
 * (`null` for a `worker_heartbeat`, published live and never logged);
 * `receivers` counts the gateways that got it live.
 * @typedef {{ logId: string | null, receivers: number }} Published
 */

/**
 * The event's wire JSON: compact, with the reserved `attempt` field when given.
 * @param {string} eventType
 * @param {unknown} payload
 * @param {string} [attempt]
 */
export function encodeEvent(eventType, payload, attempt) {
  if (typeof eventType !== 'string' || eventType === '') {
    throw new TypeError('eventType must be a non-empty string');
  }
  /** @type {Record<string, unknown>} */
  const event = { event_type: eventType, payload: payload === undefined ? {} : payload };
  if (attempt) event.attempt = attempt;
  const json = JSON.stringify(event);
  // The library checks the event's own event_type against the argument.
  if (!json.startsWith('{"event_type":')) throw new TypeError('the event does not encode as a JSON object');
  return json;
}

/**
 * Reads `sse_bridge_v3_append`'s reply.
 * @param {unknown} reply
 * @returns {Published}
 */
export function appendOutcome(reply) {
  if (Array.isArray(reply) && reply.length > 0) {
    const [status] = reply;
    if (status === 1 && reply.length >= 3) return { logId: String(reply[1]), receivers: Number(reply[2]) };
    if (status === 2 && reply.length >= 3) return { logId: null, receivers: Number(reply[2]) };
    if (status === 0 && reply.length >= 2) throw new SessionRefused(String(reply[1]));
  }
  throw new UnexpectedReply(`unexpected reply to ${APPEND_FUNCTION}: ${JSON.stringify(reply)}`);
}

/** @param {unknown} error a Redis error reply (not a connection failure) */
const isReplyError = (error) => error instanceof Error && error.name === 'ReplyError';

/**
 * Logs and publishes `{"event_type", "payload"}` to the session.
 *
 * @param {import('ioredis').Redis} redis
 * @param {string} sessionId
 * @param {string} eventType
 * @param {unknown} payload
 * @param {{ attempt?: string, idempotencyKey?: string, retryForMs?: number }} [options]
 *   `attempt`: the job delivery this worker runs; with `idempotencyKey` the
 *   event is never logged twice, and connection failures are retried for up
 *   to `retryForMs` (default 10 s).
 * @returns {Promise<Published>}
 * @throws {SessionRefused} when the session takes no more events from this sender
 */
export async function publishEvent(redis, sessionId, eventType, payload, options = {}) {
  const { attempt = '', idempotencyKey = '', retryForMs = 10_000 } = options;
  const args = [
    logKey(sessionId),
    metaKey(sessionId),
    foldedKey(sessionId),
    encodeEvent(eventType, payload, attempt),
    eventType,
    attempt,
    idempotencyKey,
    idempotencyKey ? DEDUPLICATE : '',
  ];
  const giveUpAt = Date.now() + (idempotencyKey ? retryForMs : 0);
  let pause = FIRST_RETRY_PAUSE_MS;
  let libraryLoaded = false;
  for (;;) {
    try {
      return appendOutcome(await redis.call('FCALL', APPEND_FUNCTION, 3, ...args));
    } catch (error) {
      if (isReplyError(error)) {
        if (libraryLoaded || !isLibraryMissing(error)) throw error;
        await loadLibrary(redis);
        libraryLoaded = true;
        continue;
      }
      if (!(error instanceof Error) || error instanceof SessionRefused || error instanceof UnexpectedReply) throw error;
      if (Date.now() + pause >= giveUpAt) throw error;
      await new Promise((resolve) => setTimeout(resolve, pause));
      pause = Math.min(pause * 2, LONGEST_RETRY_PAUSE_MS);
    }
  }
}
