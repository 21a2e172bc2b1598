// A human summary of a plan: one table per network, then access devices and workloads.
import { peerCounter } from './derive.ts';
import type { AnyPlan } from './types.ts';

export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n');
}

export function summarizePlan(plan: AnyPlan): string {
  const peers = peerCounter(plan);
  const out: string[] = [`plan ${plan.tenant}/${plan.blueprint} version ${plan.version} generation ${plan.generation}`];
  for (const n of plan.networks) {
    const hidden = n.resources.filter((r) => r.hidden).length;
    out.push(
      '',
      `network ${n.name} (id ${n.id}) range ${n.ipRange}: ${n.resources.length} nodes (${hidden} hidden), ${n.access.length} access devices${n.egress ? ', egress' : ''}`,
    );
    const rows = [['NODE', 'SUBNET', 'WG ADDRESS', 'PORT', 'ROLE', 'PEERS', 'PUBLIC KEY']];
    for (const r of n.resources) {
      rows.push([r.node, r.subnet, r.wgAddress, String(r.listenPort), r.hidden ? `hidden via ${r.accessNode}` : 'public', String(peers(n.name, r.node)), r.publicKey]);
    }
    out.push(table(rows));
    if (n.access.length) {
      out.push('');
      const drows = [['DEVICE', 'ADDRESS', 'VIA', 'EGRESS', 'KEY']];
      for (const d of n.access) drows.push([d.name, d.address, d.via, d.egress ? 'yes' : 'no', d.generatedKey ? 'generated (config in the plan file)' : 'provided']);
      out.push(table(drows));
    }
  }
  if (plan.workloads.length) {
    out.push('', 'workloads');
    const wrows = [['WORKLOAD', 'NODE', 'NETWORK', 'IP']];
    for (const w of plan.workloads) wrows.push([w.name, w.node, w.network, w.ip]);
    out.push(table(wrows));
  }
  return out.join('\n') + '\n';
}
