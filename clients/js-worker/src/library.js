/**
 * The Redis function library `sse_bridge_v4` that every publish goes through.
 *
 * `functions.lua` at the package's root is a copy of the gateway's
 * `crates/sse-bridge-redis/src/functions.lua` (a test holds the two
 * byte-identical). The gateway loads it whenever it connects; the kit loads
 * it only when Redis says it is missing (a fresh or restarted Redis no
 * gateway has reached yet), so it never replaces a library a newer gateway
 * loaded — the Python kit's rule.
 */
import { readFileSync } from 'node:fs';

/** The library's source, as shipped with the package. */
export const FUNCTIONS = readFileSync(new URL('../functions.lua', import.meta.url), 'utf8');

/**
 * True when `error` is Redis saying an `FCALL` names no loaded function.
 * @param {unknown} error
 */
export function isLibraryMissing(error) {
  return error instanceof Error && /function not found/i.test(error.message);
}

/**
 * Loads (or replaces) the library with the shipped copy.
 * @param {import('ioredis').Redis} redis
 */
export async function loadLibrary(redis) {
  await redis.call('FUNCTION', 'LOAD', 'REPLACE', FUNCTIONS);
}
