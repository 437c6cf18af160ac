/**
 * `publishEvent`: one event from a worker to its session (PROTOCOL §4);
 * `publishBatch`: several events of one session in one call.
 *
 * One `FCALL sse_bridge_v4_append` appends the event to the session's log
 * (`sse_events:<id>`) and publishes it on the session's channel in one
 * atomic step, applying the attempt rule on the way: the log refuses events
 * of an attempt that has not sent `worker_ack` or that the session does not
 * belong to, and every event after the terminal one. A refusal throws
 * `SessionRefused`. `FCALL sse_bridge_v4_append_batch` does the same for
 * several events in order, as one function call and one live message (when
 * the session's gateways read batches): each event is admitted as the single
 * append would, and the first refusal refuses the events after it (those
 * before it stand). Redis spends most of an append's time on the call
 * itself, so a batch costs little more than one event.
 *
 * Retries are safe only with an idempotency key (sessions use
 * `<attempt>:<n>`, like the Rust SDK and the Python kit; a batch's key is
 * its first event's). The key is stored with the (batch's first) entry, and
 * every try asks the library to answer an entry that already carries it
 * instead of appending a duplicate (ioredis itself resends a command whose
 * reply was lost when it reconnects). With a key, a publish that failed on
 * the connection is retried with backoff for up to `retryForMs`; without
 * one the first connection error is thrown.
 */
import { SessionRefused, UnexpectedReply } from './errors.js';
import { isLibraryMissing, loadLibrary } from './library.js';

/** The library version's append (`functions.lua`: names carry the version). */
export const APPEND_FUNCTION = 'sse_bridge_v4_append';
/** The library version's append of several events of one session. */
export const APPEND_BATCH_FUNCTION = 'sse_bridge_v4_append_batch';
/** The `again` argument: answer an entry already carrying the idempotency key. */
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
 * `receivers` counts the gateways that got it live (for a batch: that got
 * the batch's message).
 * @typedef {{ logId: string | null, receivers: number }} Published
 */

/**
 * One event of a batch, as `publishBatch` takes it.
 * @typedef {{ eventType: string, payload?: unknown }} BatchEvent
 */

/**
 * One event of a batch, encoded (`encodeEvent`, with the batch's attempt).
 * @typedef {{ eventType: string, json: string }} EncodedEvent
 */

/**
 * What became of one event of a batch: where it went, or the refusal that
 * stopped the batch at it or before it (returned, not thrown).
 * @typedef {Published | SessionRefused} BatchOutcome
 */

/**
 * How a publish is made: `attempt` is the job delivery this worker runs;
 * with `idempotencyKey` the event (the batch) is never logged twice, and
 * connection failures are retried for up to `retryForMs` (default 10 s).
 * @typedef {{ attempt?: string, idempotencyKey?: string, retryForMs?: number }} PublishOptions
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
 * Reads `sse_bridge_v4_append`'s reply.
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

/**
 * Reads `sse_bridge_v4_append_batch`'s reply `[ids, refusal, receivers]`
 * into one outcome per event of the batch. A retried batch found logged may
 * answer fewer ids than events: the events it did not log were refused
 * because the session ended.
 * @param {unknown} reply
 * @param {number} count the events of the batch
 * @returns {BatchOutcome[]}
 */
export function batchOutcomes(reply, count) {
  if (Array.isArray(reply) && reply.length === 3 && Array.isArray(reply[0]) && reply[0].length <= count) {
    const [ids, refusal, receivers] = reply;
    const refused = typeof refusal === 'string' && refusal !== '';
    if (typeof refusal === 'string' && typeof receivers === 'number' && !(refused && ids.length === count)) {
      /** @type {BatchOutcome[]} */
      const outcomes = ids.map((id) => ({ logId: id === '' ? null : String(id), receivers }));
      if (outcomes.length < count) {
        const refusedWith = new SessionRefused(refused ? refusal : 'ended');
        while (outcomes.length < count) outcomes.push(refusedWith);
      }
      return outcomes;
    }
  }
  throw new UnexpectedReply(`unexpected reply to ${APPEND_BATCH_FUNCTION}: ${JSON.stringify(reply)}`);
}

/** @param {unknown} error a Redis error reply (not a connection failure) */
const isReplyError = (error) => error instanceof Error && error.name === 'ReplyError';

/** @param {string} sessionId the keys every append of the session names */
const sessionKeys = (sessionId) => [logKey(sessionId), metaKey(sessionId), foldedKey(sessionId)];

/**
 * `FCALL name 3 <the session's keys> ...args`, its reply read by `read`:
 * loads the library once if Redis has none, and retries connection failures
 * with backoff for up to `retryForMs` when the call is idempotent (`keyed`).
 * A refusal, an unexpected reply or a Redis error is thrown at once.
 * @template T
 * @param {import('ioredis').Redis} redis
 * @param {string} name
 * @param {string} sessionId
 * @param {string[]} args
 * @param {{ keyed: boolean, retryForMs: number }} retry
 * @param {(reply: unknown) => T} read
 * @returns {Promise<T>}
 */
async function callAppend(redis, name, sessionId, args, { keyed, retryForMs }, read) {
  const keysAndArgs = [...sessionKeys(sessionId), ...args];
  const giveUpAt = Date.now() + (keyed ? retryForMs : 0);
  let pause = FIRST_RETRY_PAUSE_MS;
  let libraryLoaded = false;
  for (;;) {
    try {
      return read(await redis.call('FCALL', name, 3, ...keysAndArgs));
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

/**
 * Logs and publishes `{"event_type", "payload"}` to the session.
 *
 * @param {import('ioredis').Redis} redis
 * @param {string} sessionId
 * @param {string} eventType
 * @param {unknown} payload
 * @param {PublishOptions} [options]
 * @returns {Promise<Published>}
 * @throws {SessionRefused} when the session takes no more events from this sender
 */
export async function publishEvent(redis, sessionId, eventType, payload, options = {}) {
  const { attempt = '', idempotencyKey = '', retryForMs = 10_000 } = options;
  const args = [encodeEvent(eventType, payload, attempt), eventType, attempt, idempotencyKey, idempotencyKey ? DEDUPLICATE : ''];
  return callAppend(redis, APPEND_FUNCTION, sessionId, args, { keyed: idempotencyKey !== '', retryForMs }, appendOutcome);
}

/**
 * Logs and publishes several events of one session, in order, in one call
 * (a `worker_heartbeat` among them is published, not logged). Resolves
 * with one outcome per event: its `Published`, or the `SessionRefused`
 * that stopped the batch at it (the events before it stand, the ones
 * after it are refused with it). Keep a batch modest (a `Session` sends at
 * most 256 events / 256 KiB per call): it is one Redis function call, and
 * one live message up to 512 KiB.
 *
 * @param {import('ioredis').Redis} redis
 * @param {string} sessionId
 * @param {Iterable<BatchEvent>} events
 * @param {PublishOptions} [options] `idempotencyKey` names the batch (the
 *   key of its first event: a retry answers a batch already logged)
 * @returns {Promise<BatchOutcome[]>}
 * @throws an error reply (nothing appended) when an event is not what the
 *   library accepts; a connection failure once the retries are over
 */
export async function publishBatch(redis, sessionId, events, options = {}) {
  const attempt = options.attempt ?? '';
  const encoded = [...events].map(({ eventType, payload }) => ({ eventType, json: encodeEvent(eventType, payload, attempt) }));
  return appendEncoded(redis, sessionId, encoded, options);
}

/**
 * `publishBatch` for events already encoded with `options.attempt`.
 * @param {import('ioredis').Redis} redis
 * @param {string} sessionId
 * @param {EncodedEvent[]} events
 * @param {PublishOptions} [options]
 * @returns {Promise<BatchOutcome[]>}
 */
export async function appendEncoded(redis, sessionId, events, options = {}) {
  const { attempt = '', idempotencyKey = '', retryForMs = 10_000 } = options;
  if (events.length === 0) return [];
  const args = [attempt, idempotencyKey, idempotencyKey ? DEDUPLICATE : ''];
  for (const { eventType, json } of events) args.push(json, eventType);
  return callAppend(redis, APPEND_BATCH_FUNCTION, sessionId, args, { keyed: idempotencyKey !== '', retryForMs }, (reply) =>
    batchOutcomes(reply, events.length),
  );
}
