/**
 * src/plan — the network-resource planner.
 *
 * Does: turn a validated blueprint plus a node inventory (plus the previous plan) into a plan: per network one
 * resource per node (subnet, addresses, listen port, WireGuard key pair with the private key sealed to the node
 * identity), access devices and workload addresses — the compact plan; derive peers from it (one function, for
 * the full form, node parts and the etcd controller); check any plan against every rule; cut a node's part; diff
 * two plans; write JSON in pieces.
 * Does not: touch files, processes or clocks; generate randomness of its own (a RandomSource is injected).
 */
export * from './types.ts';
export * from './inventory.ts';
export * from './planner.ts';
export * from './derive.ts';
export * from './diff.ts';
export * from './json-out.ts';
export * from './check.ts';
export * from './part.ts';
export * from './summary.ts';
