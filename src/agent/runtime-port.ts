// What the agent needs from the node runtime (runtime/ implements it: the Runtime class; tests may pass a fake),
// and the pure derivation of this node's desired workloads and volumes from the stored blueprints and parts.
import type { Readable } from 'node:stream';
import type { Desired } from '../../runtime/runtime.ts';
import type { DesiredWorkload, RuntimeReport, VolumeView, WorkloadView } from '../../runtime/types.ts';
import { DEFAULT_DISK } from '../blueprint/validate.ts';
import type { StoredBlueprint } from './state.ts';

export type { Desired } from '../../runtime/runtime.ts';

export interface RuntimePort {
  /**
   * Converge this node's workloads and volumes (and remove ours that are not desired). `networks`: settles when the
   * data plane has applied the networks; until then only what needs no tenant namespace runs (volumes, creating and
   * starting new containers), so containers start while their networks are built (issue #18).
   */
  apply(desired: Desired, networks?: Promise<unknown>): Promise<RuntimeReport>;
  workloads(desired: DesiredWorkload[]): Promise<WorkloadView[]>;
  volumes(desired: Desired): Promise<VolumeView[]>;
  logs(w: { tenant: string; blueprint: string; name: string }, opts: { follow: boolean; tail?: number }): Promise<Readable>;
  /** Report container exits as they happen (idempotent; false when the engine is not reachable). */
  watch(onExit: (e: { workload: string; action: string }) => void): Promise<boolean>;
  /** Stop background work; containers and volumes keep running. */
  close(): Promise<void>;
}

/**
 * This node's workloads (the signed blueprint's spec joined with the part's address and network resource) and
 * volumes. A workload the part does not place here, or whose network has no resource here, is left out
 * (submission refuses such parts; see runtime-consistency.ts).
 */
export function runtimeDesired(blueprints: StoredBlueprint[], node: string): Desired {
  const out: Desired = { workloads: [], volumes: [], networks: [] };
  for (const b of blueprints) {
    const bp = b.envelope.blueprint;
    const nets = new Map(b.part.networks.map((n) => [n.name, n]));
    for (const n of b.part.networks) if (!out.networks!.includes(n.id)) out.networks!.push(n.id);
    const placed = new Map((b.part.workloads ?? []).filter((w) => w.node === node).map((w) => [w.name, w]));
    for (const w of bp.workloads ?? []) {
      if (w.node !== node) continue;
      const p = placed.get(w.name);
      const n = nets.get(w.network.name);
      if (!p || !n || p.network !== w.network.name) continue;
      out.workloads.push({
        tenant: b.tenant,
        blueprint: b.name,
        name: w.name,
        node,
        image: w.image,
        command: w.command,
        cpu: w.cpu,
        memory: w.memory,
        disk: w.disk ?? DEFAULT_DISK,
        network: {
          id: n.id,
          name: n.name,
          ip: p.ip,
          prefix: Number(n.resource.subnet.split('/')[1]),
          gateway: n.resource.gateway,
          // Dual-stack (docs/dns.md, docs/plan-format.md#ipv6): the workload's ip6 on the node's subnet6.
          ...(p.ip6 !== undefined && n.resource.subnet6 !== undefined && n.resource.gateway6 !== undefined
            ? { ip6: p.ip6, prefix6: Number(n.resource.subnet6.split('/')[1]), gateway6: n.resource.gateway6 }
            : {}),
        },
        mounts: w.volumes.map((v) => ({ volume: v.name, path: v.mount })),
      });
    }
    for (const v of bp.volumes ?? []) {
      if (v.node === node) out.volumes.push({ tenant: b.tenant, blueprint: b.name, name: v.name, node, size: v.size });
    }
  }
  return out;
}
