// The agent's runtime: runtime/'s Runtime over the configured Docker socket and storage pool, remembering
// its workloads and volumes in the agent's state store (compute and storage modules).
import type { Runner } from '../../netns/runner.ts';
import { Runtime } from '../../runtime/runtime.ts';
import type { AgentConfig } from './config.ts';
import type { RuntimePort } from './runtime-port.ts';
import { SqliteRuntimeStore } from './runtime-store.ts';
import type { Db } from './store.ts';

/** runner: the commands' runner (the agent passes its driver's, so reconcile costs count the runtime's commands). */
export function makeRuntime(config: AgentConfig, db: Db, runner?: Runner): RuntimePort {
  return new Runtime({
    ...(runner ? { runner } : {}),
    node: config.nodeId,
    store: new SqliteRuntimeStore(db),
    stateDir: config.stateDir,
    dockerSocket: config.dockerSocket,
    storage: { device: config.storageDevice, size: config.storagePoolSize },
    maxBackoffMs: config.reconcileIntervalMs,
  });
}
