/**
 * src/crypto — key types and sealing, shared by the planner, the agent and netns.
 *
 * Does: WireGuard/X25519 keys as a checked type (exactly 32 bytes, base64), ed25519 tenant keys,
 * sealing a WireGuard private key to a node's X25519 identity key, XEdDSA signatures made with that identity
 * key (what a node writes to the control plane), a seeded deterministic byte source.
 * Does not: read or write files, spawn processes, or draw randomness it was not given (callers inject it).
 */
export * from './keys.ts';
export * from './rng.ts';
export * from './seal.ts';
export * from './xeddsa.ts';
export * from './keyfile.ts';
