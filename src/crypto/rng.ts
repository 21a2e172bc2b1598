// Deterministic byte sources. The planner never draws randomness itself: callers pass one of these.
import { createHash } from 'node:crypto';

/** Returns n bytes per call. */
export type RandomSource = (n: number) => Uint8Array;

/**
 * A seeded, deterministic byte stream: SHA-256(seed-hash ‖ counter) blocks.
 * Same seed, same sequence of calls ⇒ same bytes. Use a fresh secret seed for real keys.
 */
export function seededRandom(seed: string | Uint8Array): RandomSource {
  const base = createHash('sha256').update('zmesh-rng-v1\0').update(seed).digest();
  let counter = 0n;
  let pool = Buffer.alloc(0);
  return (n: number) => {
    while (pool.length < n) {
      const c = Buffer.alloc(8);
      c.writeBigUInt64BE(counter++);
      pool = Buffer.concat([pool, createHash('sha256').update(base).update(c).digest()]);
    }
    const out = new Uint8Array(pool.subarray(0, n));
    pool = pool.subarray(n);
    return out;
  };
}
