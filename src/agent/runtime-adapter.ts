// The agent's runtime: runtime/'s Runtime over the configured Docker socket and storage pool, remembering
// its workloads and volumes in the agent's state store (compute and storage modules).
import { Runtime } from '../../runtime/runtime.ts';
import type { AgentConfig } from './config.ts';
import type { RuntimePort } from './runtime-port.ts';
import { SqliteRuntimeStore } from './runtime-store.ts';
import type { Db } from './store.ts';

export function makeRuntime(config: AgentConfig, db: Db): RuntimePort {
  return new Runtime({
    node: config.nodeId,
    store: new SqliteRuntimeStore(db),
    stateDir: config.stateDir,
    dockerSocket: config.dockerSocket,
    storage: { device: config.storageDevice, size: config.storagePoolSize },
    maxBackoffMs: config.reconcileIntervalMs,
  });
}
