// xorshift32 (also the property tests' PRNG, test/helpers/rng.ts): the same seed gives the same sequence in [0, 1).
export function xorshift32(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}
