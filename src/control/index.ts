/**
 * src/control — the distributed control plane on etcd (docs/control-plane.md).
 *
 * Does: the etcd key layout; plans and node parts as small entries and the minimal diffs between them; membership
 * with grace and hold-down decisions (clock injected) and rebalancing; the controller (one leader by lease: it
 * keeps member records, re-plans blueprints when blueprints or membership change, writes each node's part under
 * the node's own prefix, only what changed); a node's watch of its own prefix (used by the agent's etcd link and
 * the benchmark); operator operations (tenants, blueprints, node enrollment, rebalance, overview); the etcd client
 * with TLS; node records signed by the node's identity and vetted against the key pinned at enrollment; etcd RBAC
 * (a node writes only its own registration and status and reads only its own part and the envelopes it runs).
 * Does not: plan (src/plan does), check or apply parts on a node (the agent does, through its one pipeline), store
 * any clear private key (only sealed ones; access devices must bring their own public keys), or replace the
 * embedded control plane (one machine, blueprints pushed over the agent's admin socket), which stays as it is.
 */
export * from './keys.ts';
export * from './entries.ts';
export * from './membership.ts';
export * from './etcd.ts';
export * from './controller.ts';
export * from './node-watch.ts';
export * from './ops.ts';
export * from './records.ts';
export * from './rbac.ts';
export * from './signed.ts';
