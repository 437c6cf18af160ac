/**
 * The job queue: a Redis Stream read by a consumer group (PROTOCOL §1–2),
 * the same scheme as the gateway's Rust queue and the Python kit, so
 * workers of every kind can share one group:
 *
 * - the gateway dispatches with `XADD <stream> * job <json>`; workers read
 *   with `XREADGROUP GROUP <group> <consumer> COUNT 1 BLOCK ...`;
 * - a job taken stays in the group's pending list until its session ended
 *   and `ack` sent `XACK`; meanwhile `keepClaimed` re-claims it for its
 *   owner every `claimIdleMs / 3`, so only jobs of a *dead* worker look idle;
 * - `nextJob` sweeps the pending list with `XAUTOCLAIM` every
 *   `claimIdleMs / 2` and takes over entries idle for `claimIdleMs`;
 * - an entry that is not a valid job is logged, acknowledged and skipped.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

import { isObject } from './interrupts.js';

/** The stream entry field holding the job's JSON. */
const JOB_FIELD = 'job';
/** Shortest blocking read: `BLOCK 0` would mean "forever". */
const MIN_BLOCK_MS = 10;

/**
 * Refreshes an entry's idle time only while `consumer` still owns it, so a
 * worker presumed dead never steals its job back (the Rust queue's script).
 */
const KEEPALIVE_SCRIPT = `
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #pending == 0 then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
`;

/**
 * One job taken from the queue (PROTOCOL §2). `request` is the client's
 * body (plus `user_query` for the agent-UI endpoints); a resume (§8) also
 * carries the interrupted run's session id and request and the interrupts
 * it answers.
 * @typedef {{
 *   sessionId: string,
 *   request: Record<string, any>,
 *   createdAt: number,
 *   entryId: string,
 *   parentSessionId?: string,
 *   parentRequest?: Record<string, any>,
 *   interrupts?: import('./interrupts.js').Interrupt[],
 * }} Job
 */

/** `host-pid-random`: unique per worker, readable in `XINFO CONSUMERS`. */
export const newConsumerName = () => `${hostname() || 'host'}-${process.pid}-${randomBytes(4).toString('hex')}`;

/**
 * The entry's job; throws saying what is wrong otherwise.
 * @param {string} entryId
 * @param {unknown[]} fields the entry's `[name, value, ...]`
 * @returns {Job}
 */
export function parseJob(entryId, fields) {
  let raw;
  for (let i = 0; i + 1 < (fields?.length ?? 0); i += 2) {
    if (String(fields[i]) === JOB_FIELD) raw = String(fields[i + 1]);
  }
  if (raw === undefined) throw new TypeError(`no field \`${JOB_FIELD}\``);
  const job = JSON.parse(raw);
  if (!isObject(job)) throw new TypeError('the job is not a JSON object');
  const { session_id: sessionId, request, created_at: createdAt = 0 } = job;
  if (typeof sessionId !== 'string' || !sessionId) throw new TypeError('no session_id');
  if (!isObject(request)) throw new TypeError('request is not an object');
  if (!Number.isInteger(createdAt)) throw new TypeError('created_at is not an integer');
  const { parent_session_id: parentSessionId, parent_request: parentRequest, interrupts } = job;
  if (parentSessionId != null && typeof parentSessionId !== 'string') throw new TypeError('parent_session_id is not a string');
  if (parentRequest != null && !isObject(parentRequest)) throw new TypeError('parent_request is not an object');
  if (interrupts != null && !(Array.isArray(interrupts) && interrupts.every(isObject))) {
    throw new TypeError('interrupts is not an array of objects');
  }
  return {
    sessionId,
    request,
    createdAt,
    entryId,
    ...(parentSessionId != null ? { parentSessionId } : {}),
    ...(parentRequest != null ? { parentRequest } : {}),
    ...(interrupts != null ? { interrupts } : {}),
  };
}

/** One worker's side of the Redis Streams job queue. */
export class JobQueue {
  /**
   * @param {import('ioredis').Redis} redis commands
   * @param {import('ioredis').Redis} reader a connection of its own for the blocking reads
   * @param {{ stream: string, group: string, consumer: string, claimIdleMs: number, readBlockMs: number, log: import('./worker.js').Logger }} options
   */
  constructor(redis, reader, { stream, group, consumer, claimIdleMs, readBlockMs, log }) {
    this.redis = redis;
    this.reader = reader;
    this.stream = stream;
    this.group = group;
    this.consumer = consumer;
    this.claimIdleMs = claimIdleMs;
    this.readBlockMs = readBlockMs;
    this.log = log;
    this.sweepCursor = '0-0';
    this.nextSweep = Date.now();
    /** Entries taken and not yet acknowledged or released. @type {Set<string>} */
    this.claimed = new Set();
  }

  /** Creates the group (and the stream) if missing, from the stream's start. */
  async createGroup() {
    try {
      await this.redis.xgroup('CREATE', this.stream, this.group, '0', 'MKSTREAM');
    } catch (error) {
      if (!String(error).includes('BUSYGROUP')) throw error;
    }
  }

  /** A reclaimed job if a sweep is due and finds one, else one blocking read; `null` when nothing (valid) came. */
  async nextJob() {
    const entry = (await this.sweepStep()) ?? (await this.readNew());
    if (!entry) return null;
    const [entryId, fields] = entry;
    let job;
    try {
      job = parseJob(entryId, fields);
    } catch (error) {
      this.log.warn(`skipping malformed job entry ${entryId} of ${this.stream}: ${error}`);
      await this.redis.xack(this.stream, this.group, entryId);
      return null;
    }
    this.claimed.add(entryId);
    return job;
  }

  /** @param {Job} job done: never delivered again */
  async ack(job) {
    this.claimed.delete(job.entryId);
    await this.redis.xack(this.stream, this.group, job.entryId);
  }

  /** @param {Job} job no longer kept claimed, unacknowledged: reclaimed after `claimIdleMs` */
  release(job) {
    this.claimed.delete(job.entryId);
  }

  /** Refreshes the idle time of every job taken (called every `claimIdleMs / 3`). */
  async keepClaimed() {
    for (const entryId of [...this.claimed]) {
      try {
        const stillOurs = await this.redis.eval(KEEPALIVE_SCRIPT, 1, this.stream, this.group, this.consumer, entryId);
        if (!stillOurs) {
          this.log.warn(`job ${entryId} was taken over by another worker`);
          this.claimed.delete(entryId);
        }
      } catch (error) {
        this.log.debug(`job keepalive of ${entryId} failed: ${error}`); // again next period
      }
    }
  }

  /** @returns {Promise<[string, unknown[]] | null>} one `XAUTOCLAIM` step if a sweep is due */
  async sweepStep() {
    if (Date.now() < this.nextSweep) return null;
    const reply = /** @type {[string, Array<[string, unknown[]] | null>]} */ (
      await this.onGroup(() =>
        this.redis.call('XAUTOCLAIM', this.stream, this.group, this.consumer, String(this.claimIdleMs), this.sweepCursor, 'COUNT', '1'),
      )
    );
    const [cursor, claimed] = reply;
    if (String(cursor) === '0-0') this.nextSweep = Date.now() + this.claimIdleMs / 2;
    this.sweepCursor = String(cursor);
    for (const entry of claimed ?? []) {
      if (Array.isArray(entry) && entry[0] != null && Array.isArray(entry[1])) {
        this.log.info(`reclaimed job ${entry[0]} abandoned by another worker`);
        return [String(entry[0]), entry[1]];
      }
    }
    return null;
  }

  /** @returns {Promise<[string, unknown[]] | null>} one blocking read of a new entry, waking in time for the next sweep */
  async readNew() {
    const untilSweep = Math.max(this.nextSweep - Date.now(), 0);
    const block = Math.max(Math.min(this.readBlockMs, untilSweep), MIN_BLOCK_MS);
    const reply = /** @type {Array<[string, Array<[string, unknown[]]>]> | null} */ (
      await this.onGroup(() =>
        this.reader.call('XREADGROUP', 'GROUP', this.group, this.consumer, 'COUNT', '1', 'BLOCK', String(Math.round(block)), 'STREAMS', this.stream, '>'),
      )
    );
    for (const [, entries] of reply ?? []) {
      for (const [entryId, fields] of entries) return [String(entryId), fields];
    }
    return null;
  }

  /**
   * Runs a group command; recreates the group once if it vanished.
   * @template T
   * @param {() => Promise<T>} command
   */
  async onGroup(command) {
    try {
      return await command();
    } catch (error) {
      if (!String(error).includes('NOGROUP')) throw error;
      this.log.warn(`consumer group ${this.group} missing, recreating it`);
      await this.createGroup();
      return await command();
    }
  }
}
