/**
 * The worker loop: jobs in, one handler run per job, events out. For each
 * job it does what the Rust SDK's `run_worker` and the Python kit do:
 *
 * 1. take it from the queue (a new entry, or one a dead worker left pending
 *    for `claimIdleMs`), keeping it claimed while it runs;
 * 2. start a new *attempt* (16 hex digits: every delivery is one);
 * 3. subscribe to the session's control channel, so a `cancel` cannot be
 *    missed (if that fails, the job is left for redelivery);
 * 4. publish `worker_ack`: if the session refuses it (ended, expired, or
 *    answered by another attempt) the job is skipped; while another attempt
 *    is live and serving it (`busy`), ask again every second; if Redis
 *    cannot be reached, the job is left for redelivery;
 * 5. run the handler, sending `worker_heartbeat` whenever it has been
 *    silent for `heartbeatMs`, and stop waiting for it on `cancel` or when
 *    the log refuses one of its events (`session.signal` aborts); then wait
 *    until everything it sent (`send` queues) is logged;
 * 6. end the session unless the handler did (a terminal event):
 *    `FinalAnswerStreamEnd` after it returned, `error`/`worker_error` after
 *    it threw;
 * 7. `XACK` the job.
 *
 * At most `concurrency` jobs run at once. `stop()` stops taking jobs once
 * the read in progress returned (within `readBlockMs`; a job it brings is
 * still run); the jobs in flight get `shutdownGraceMs` to finish, then are
 * cancelled and left unacknowledged, so another worker reruns them.
 */
import { randomBytes } from 'node:crypto';

import { Redis } from 'ioredis';

import { ControlChannels } from './control.js';
import { SessionRefused, SessionStopped } from './errors.js';
import { JobQueue, newConsumerName } from './queue.js';
import { Session } from './session.js';

/** Budget for Redis to confirm a control channel subscription. */
const SUBSCRIBE_TIMEOUT_MS = 5000;
/** Pause before taking jobs again after the queue failed. */
const QUEUE_RETRY_PAUSE_MS = 1000;
/** Between two tries of `worker_ack` for a job another live attempt serves. */
const BUSY_RECHECK_MS = 1000;

/**
 * @typedef {{ debug(message: string): void, info(message: string): void, warn(message: string): void, error(message: string): void }} Logger
 * @typedef {(session: Session) => Promise<void> | void} Handler
 * @typedef {{
 *   handler: Handler,
 *   redisUrl?: string,
 *   stream?: string,
 *   group?: string,
 *   consumer?: string,
 *   concurrency?: number,
 *   heartbeatMs?: number | null,
 *   claimIdleMs?: number,
 *   readBlockMs?: number,
 *   shutdownGraceMs?: number,
 *   publishRetryMs?: number,
 *   redisOptions?: import('ioredis').RedisOptions,
 *   logger?: Logger,
 * }} WorkerOptions
 */

/** A fresh attempt id: 16 hex digits. */
export const newAttemptId = () => randomBytes(8).toString('hex');

/** Logs warnings and errors to the console, the rest nowhere. */
const quietLogger = {
  debug() {},
  info() {},
  /** @param {string} message */ warn: (message) => console.warn(`sse-bridge-worker: ${message}`),
  /** @param {string} message */ error: (message) => console.error(`sse-bridge-worker: ${message}`),
};

/** @param {number} ms @param {AbortSignal} [signal] resolves after `ms`, or early when `signal` aborts */
function sleep(ms, signal) {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(undefined);
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve(undefined);
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Takes jobs and runs `handler` for each until stopped. */
export class Worker {
  /** @param {WorkerOptions} options */
  constructor(options) {
    if (typeof options?.handler !== 'function') throw new TypeError('createWorker needs a handler: async (session) => { ... }');
    const concurrency = options.concurrency ?? 64;
    if (!(concurrency >= 1)) throw new RangeError('concurrency must be at least 1');
    this.handler = options.handler;
    this.options = {
      redisUrl: options.redisUrl ?? 'redis://127.0.0.1:6379',
      stream: options.stream ?? 'sse_jobs',
      group: options.group ?? 'sse_workers',
      concurrency,
      heartbeatMs: options.heartbeatMs === undefined ? 5000 : options.heartbeatMs,
      claimIdleMs: options.claimIdleMs ?? 60_000,
      readBlockMs: options.readBlockMs ?? 2000,
      shutdownGraceMs: options.shutdownGraceMs ?? 30_000,
      publishRetryMs: options.publishRetryMs ?? 10_000,
      redisOptions: options.redisOptions ?? {},
    };
    /** This worker's consumer name in the group. */
    this.consumer = options.consumer ?? newConsumerName();
    this.log = options.logger ?? quietLogger;
    this._stopping = new AbortController();
    /** @type {Map<Promise<void>, Session>} */
    this._running = new Map();
  }

  /** Stops taking jobs; `run()` resolves once the jobs in flight ended (or were given up). */
  stop() {
    this._stopping.abort();
  }

  /**
   * Runs until `stop()` (or SIGINT/SIGTERM with `handleSignals`).
   * @param {{ handleSignals?: boolean }} [options]
   */
  async run({ handleSignals = false } = {}) {
    const { redisUrl, redisOptions } = this.options;
    const stop = () => this.stop();
    if (handleSignals) {
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    }
    const redis = new Redis(redisUrl, redisOptions);
    const reader = redis.duplicate();
    const subscriber = redis.duplicate();
    // ioredis reports connection trouble as events; it reconnects by itself.
    for (const connection of [redis, reader, subscriber]) {
      connection.on('error', (error) => this.log.debug(`redis: ${error.message}`));
    }
    const queue = new JobQueue(redis, reader, {
      stream: this.options.stream,
      group: this.options.group,
      consumer: this.consumer,
      claimIdleMs: this.options.claimIdleMs,
      readBlockMs: this.options.readBlockMs,
      log: this.log,
    });
    const control = new ControlChannels(subscriber);
    const keepalive = setInterval(() => void queue.keepClaimed(), Math.max(this.options.claimIdleMs / 3, 10));
    try {
      await queue.createGroup();
      this.log.info(`worker ${this.consumer} takes jobs from ${this.options.stream} (group ${this.options.group})`);
      await this._takeJobs(redis, queue, control);
      await this._drain();
    } finally {
      clearInterval(keepalive);
      if (handleSignals) {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
      await Promise.allSettled([redis.quit(), reader.quit(), subscriber.quit()]);
      for (const connection of [redis, reader, subscriber]) connection.disconnect();
    }
  }

  /**
   * @param {Redis} redis
   * @param {JobQueue} queue
   * @param {ControlChannels} control
   */
  async _takeJobs(redis, queue, control) {
    const stopping = this._stopping.signal;
    while (!stopping.aborted) {
      if (this._running.size >= this.options.concurrency) {
        await Promise.race([...this._running.keys(), sleep(60_000, stopping)]);
        continue;
      }
      let job;
      try {
        // Not cut short by stop: a blocking read returns within readBlockMs,
        // and an entry handed to a read given up would wait claimIdleMs.
        job = await queue.nextJob();
      } catch (error) {
        this.log.warn(`cannot take jobs: ${error}; retrying in ${QUEUE_RETRY_PAUSE_MS} ms`);
        await sleep(QUEUE_RETRY_PAUSE_MS, stopping);
        continue;
      }
      if (!job) continue;
      const session = new Session(job, newAttemptId(), redis, { publishRetryMs: this.options.publishRetryMs });
      const running = this._runJob(session, queue, control).finally(() => this._running.delete(running));
      this._running.set(running, session);
    }
  }

  /** Waits for the jobs in flight, then gives up the rest (cancelled, left unacknowledged). */
  async _drain() {
    if (this._running.size === 0) return;
    const all = Promise.allSettled([...this._running.keys()]);
    const timeout = new AbortController();
    const inTime = await Promise.race([all.then(() => true), sleep(this.options.shutdownGraceMs, timeout.signal).then(() => false)]);
    timeout.abort();
    if (inTime) return;
    this.log.warn(`giving up ${this._running.size} job(s) at shutdown; they will be redelivered`);
    for (const session of this._running.values()) {
      session._givenUp = true;
      session.cancel('server_shutdown');
    }
    await all;
  }

  /**
   * @param {Session} session
   * @param {JobQueue} queue
   * @param {ControlChannels} control
   */
  async _runJob(session, queue, control) {
    const { job } = session;
    try {
      await control.watch(job.sessionId, (reason) => session.cancel(reason), SUBSCRIBE_TIMEOUT_MS);
    } catch (error) {
      this.log.warn(`session ${job.sessionId}: cannot watch the control channel (${error}); leaving the job for redelivery`);
      queue.release(job);
      return;
    }
    try {
      try {
        await this._acknowledge(session);
        await this._runSession(session);
      } catch (error) {
        if (!(error instanceof SessionRefused)) {
          this.log.warn(`session ${job.sessionId}: cannot publish worker_ack (${error}); leaving the job for redelivery`);
          return;
        }
        this.log.info(`session ${job.sessionId} does not take attempt ${session.attempt} (${error.reason}); skipping the job`);
      }
      if (session._givenUp) return; // shutdown: another worker reruns it
      await queue.ack(job);
    } catch (error) {
      this.log.warn(`session ${job.sessionId}: cannot acknowledge the job: ${error}`);
    } finally {
      queue.release(job);
      await control.unwatch(job.sessionId);
    }
  }

  /** @param {Session} session step 4: `worker_ack`, asked again while another attempt serves the session */
  async _acknowledge(session) {
    let waiting = false;
    for (;;) {
      try {
        await session.publish('worker_ack', {});
        return;
      } catch (error) {
        if (!(error instanceof SessionRefused) || error.reason !== 'busy') throw error;
      }
      if (!waiting) this.log.info(`session ${session.sessionId}: another attempt is serving it; waiting`);
      waiting = true;
      await sleep(BUSY_RECHECK_MS, session.signal);
    }
  }

  /** @param {Session} session steps 5 and 6: the handler, its heartbeats, and the session's end */
  async _runSession(session) {
    const sid = session.sessionId;
    /** @type {Promise<{ failure?: unknown }>} */
    const handled = Promise.resolve()
      .then(() => this.handler(session))
      .then(
        () => ({}),
        (failure) => ({ failure: failure ?? new Error('the handler threw nothing') }),
      );
    const cancelled = new Promise((resolve) => {
      if (session.cancelled) resolve({ cancelled: true });
      session.signal.addEventListener('abort', () => resolve({ cancelled: true }), { once: true });
    });
    const heartbeats = new AbortController();
    void this._sendHeartbeats(session, heartbeats.signal);
    /** @type {{ failure?: unknown, cancelled?: boolean }} */
    let outcome;
    try {
      outcome = await Promise.race([handled, cancelled]);
    } finally {
      heartbeats.abort();
    }
    // The run is over once what it sent is logged: a refusal of a queued
    // event (or a failed append) stops the session, as a refused publish does.
    await session.flush().catch(() => {});
    if (session.cancelled || outcome.failure instanceof SessionStopped) {
      this.log.info(`session ${sid}: stopped (${session.cancelled ? session._stoppedError() : outcome.failure})`);
    } else if (outcome.failure !== undefined) {
      const failure = outcome.failure;
      this.log.warn(`session ${sid}: handler failed: ${failure instanceof Error ? failure.stack : String(failure)}`);
      const text = failure instanceof Error ? `${failure.name}: ${failure.message}` : String(failure);
      if (!session.ended) await this._end(session, 'error', { error: text, code: 'worker_error' });
    } else {
      this.log.info(`session ${sid}: done`);
      if (!session.ended) await this._end(session, 'FinalAnswerStreamEnd', {});
    }
  }

  /**
   * @param {Session} session
   * @param {string} eventType
   * @param {Record<string, unknown>} payload
   */
  async _end(session, eventType, payload) {
    try {
      await session.publish(eventType, payload);
    } catch (error) {
      this.log.warn(`session ${session.sessionId}: cannot publish ${eventType}: ${error}`);
    }
  }

  /**
   * `worker_heartbeat` whenever the handler was silent for an interval.
   * @param {Session} session
   * @param {AbortSignal} done
   */
  async _sendHeartbeats(session, done) {
    const every = this.options.heartbeatMs;
    if (every === null || every === undefined) return;
    while (!done.aborted && !session.ended && !session.cancelled) {
      const silent = session.silentFor();
      if (silent < every) {
        await sleep(every - silent, done);
        continue;
      }
      try {
        await session.publish('worker_heartbeat', {});
      } catch (error) {
        if (!done.aborted) this.log.warn(`session ${session.sessionId}: cannot publish worker_heartbeat: ${error}`);
      }
      await sleep(every, done);
    }
  }
}

/**
 * A worker for `handler`: `await createWorker({ handler }).run({ handleSignals: true })`.
 * @param {WorkerOptions} options
 */
export function createWorker(options) {
  return new Worker(options);
}
