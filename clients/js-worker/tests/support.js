/**
 * Test support: the real gateway binary (`SSE_BRIDGE_BIN`) on the real
 * Redis at 127.0.0.1:6379, each with a job stream and group of its own, an
 * SSE reader on `fetch`, workers of the kit running in this process, and
 * sessions made by hand the way the gateway makes them.
 * Everything a test made in Redis is deleted afterwards, so the tests run
 * alongside the Rust suite on the same Redis.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Redis } from 'ioredis';

import { createWorker } from '../src/index.js';

export const REDIS_URL = process.env.SSE_BRIDGE_REDIS_URL ?? 'redis://127.0.0.1:6379';
/** Longest wait for anything in these tests. */
export const PATIENCE_MS = 30_000;

/** @param {string} prefix */
export const unique = (prefix) => `${prefix}_${randomUUID().replaceAll('-', '').slice(0, 12)}`;

async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
      server.close(() => resolve(port));
    });
  });
}

/**
 * The frames of an SSE response, in order, until it ends: `{id?, data}`
 * with `data` parsed as JSON (`[DONE]` kept as the string).
 * @param {Response} response
 */
export async function readFrames(response) {
  const text = await response.text();
  return text
    .split('\n\n')
    .map((block) => {
      const lines = block.split('\n');
      const data = lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
      const id = lines.find((l) => l.startsWith('id: '))?.slice(4);
      if (!data) return null;
      return { ...(id ? { id } : {}), data: data === '[DONE]' ? data : JSON.parse(data) };
    })
    .filter((frame) => frame !== null);
}

/**
 * Starts `sse-bridge serve` on a free port with a stream and group of its
 * own; `stop()` ends it and deletes what it made in Redis.
 * @param {string[]} [extraArgs]
 */
export async function startGateway(extraArgs = []) {
  const binary = process.env.SSE_BRIDGE_BIN;
  if (!binary || !existsSync(binary)) {
    throw new Error('SSE_BRIDGE_BIN must name the sse-bridge binary (cargo build -p sse-bridge)');
  }
  const port = await freePort();
  const stream = unique('jskit_jobs');
  const group = unique('jskit_workers');
  const dir = mkdtempSync(join(tmpdir(), 'sse-bridge-jskit-'));
  const logPath = join(dir, 'gateway.log');
  const out = openSync(logPath, 'w');
  const child = spawn(
    binary,
    ['serve', '--listen', `127.0.0.1:${port}`, '--redis-url', REDIS_URL, '--redis-stream', stream, '--group', group, ...extraArgs],
    { stdio: ['ignore', out, out] },
  );
  const url = `http://127.0.0.1:${port}`;
  const log = () => readFileSync(logPath, 'utf8');
  let exited = null;
  child.once('exit', (code, signal) => (exited = { code, signal }));
  const deadline = Date.now() + PATIENCE_MS;
  for (;;) {
    if (exited) throw new Error(`the gateway exited (${JSON.stringify(exited)}):\n${log()}`);
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`the gateway was not healthy in time:\n${log()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  /** @type {Set<string>} */
  const sessions = new Set();
  /** @type {Set<string>} */
  const threads = new Set();
  return {
    url,
    stream,
    group,
    log,
    sessions,
    threads,
    /**
     * `POST path` with a JSON body; remembers the session to delete it later.
     * @param {string} path
     * @param {unknown} body
     * @param {Record<string, string>} [headers]
     */
    async post(path, body, headers = {}) {
      const response = await fetch(`${url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      });
      const sid = response.headers.get('x-session-id');
      if (sid) sessions.add(sid);
      return response;
    },
    /** @param {Record<string, unknown>} body a native session, read to its end: the response and its events */
    async session(body) {
      if (typeof body.thread_id === 'string') threads.add(body.thread_id);
      const response = await this.post('/v1/react/sessions', body);
      if (response.status !== 200) throw new Error(`POST /v1/react/sessions: ${response.status} ${await response.text()}`);
      const frames = await readFrames(response);
      return { sessionId: /** @type {string} */ (response.headers.get('x-session-id')), events: frames.map((f) => f.data) };
    },
    async stop() {
      if (!exited) {
        const gone = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await gone;
        clearTimeout(timer);
      }
      const redis = new Redis(REDIS_URL);
      const keys = [stream];
      for (const sid of sessions) keys.push(`sse_events:${sid}`, `sse_session_meta:${sid}`, `sse_folded:${sid}`);
      for (const thread of threads) keys.push(`sse_thread:${thread}`);
      await redis.del(...keys);
      await redis.quit();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** @typedef {Awaited<ReturnType<typeof startGateway>>} Gateway */

/**
 * Runs a worker of the kit on `gateway`'s queue (quick to stop) until the
 * returned `stop()`; `stop()` rethrows what `run()` threw.
 * @param {Gateway} gateway
 * @param {import('../src/worker.js').Handler} handler
 * @param {Partial<import('../src/worker.js').WorkerOptions>} [options]
 */
export function runWorker(gateway, handler, options = {}) {
  const worker = createWorker({
    redisUrl: REDIS_URL,
    stream: gateway.stream,
    group: gateway.group,
    readBlockMs: 200,
    heartbeatMs: 500,
    shutdownGraceMs: 5000,
    handler,
    ...options,
  });
  const running = worker.run();
  return {
    worker,
    async stop() {
      worker.stop();
      await running;
    },
  };
}

/**
 * A session as the gateway creates it (`create` in
 * crates/sse-bridge-redis/src/log.rs: its metadata hash), without a
 * gateway: for tests that publish by hand. `batches` says the session's
 * gateways read a JSON array on the channel as a batch of events.
 * `remove()` deletes its keys.
 * @param {Redis} redis
 * @param {{ batches?: boolean }} [options]
 */
export async function createSession(redis, { batches = false } = {}) {
  const sessionId = unique('jskit_session');
  const keys = [`sse_events:${sessionId}`, `sse_session_meta:${sessionId}`, `sse_folded:${sessionId}`];
  const channel = `sse_session:${sessionId}`;
  await redis.hset(keys[1], {
    created_at: Date.now(),
    principal: 'anonymous',
    format: 'native',
    on_disconnect: 'continue',
    ttl_ms: 600_000,
    tail_max: 2_097_152,
    folded_max: 2_097_152,
    channel,
    publish: 'PUBLISH',
    max_len: 1_073_741_824,
    live_ms: 15_000,
    ...(batches ? { batches: '1' } : {}),
  });
  await redis.pexpire(keys[1], 600_000);
  return {
    sessionId,
    channel,
    logKey: keys[0],
    metaKey: keys[1],
    remove: () => redis.del(...keys),
  };
}

/**
 * Polls `condition` until it holds (or fails with `what`).
 * @param {() => boolean | Promise<boolean>} condition
 * @param {string} what
 */
export async function until(condition, what, limitMs = PATIENCE_MS) {
  const deadline = Date.now() + limitMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
