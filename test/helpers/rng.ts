// A small deterministic PRNG (xorshift32) for property tests: the same seed gives the same sequence. The one the
// soak's fault schedule uses (labs/soak.ts).
export { xorshift32 as rng } from '../../labs/rng.ts';
