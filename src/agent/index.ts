/**
 * src/agent — the node agent.
 *
 * Does: the provisioning pipeline (verify signature, tenant key and version → check the node part → record →
 * apply through the data plane), the embedded SQLite state store with per-module schema migrations, the
 * reconcile loop (drift repair, restart recovery, backoff), diagnostics and metrics, and the service entry.
 * Does not: plan (src/plan does), run commands itself (netns/ does, through the DriverPort), or serve HTTP
 * (src/admin does).
 */
export * from './agent.ts';
export * from './config.ts';
export * from './ports.ts';
export * from './state.ts';
export * from './store.ts';
export * from './consistency.ts';
export * from './diagnose.ts';
