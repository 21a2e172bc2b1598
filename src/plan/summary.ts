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
      `network ${n.name} (id ${n.id}) range ${n.ipRange}${n.ipv6Range !== undefined ? ` and ${n.ipv6Range}` : ''}: ${n.resources.length} nodes (${hidden} hidden), ${n.access.length} access devices${n.egress ? ', egress' : ''}`,
    );
    const six = n.ipv6Range !== undefined;
    const rows = [['NODE', 'SUBNET', ...(six ? ['SUBNET6'] : []), 'WG ADDRESS', 'PORT', 'ROLE', 'PEERS', 'PUBLIC KEY']];
    for (const r of n.resources) {
      const role = r.hidden ? `hidden via ${r.accessNode}` : 'public';
      rows.push([r.node, r.subnet, ...(six ? [r.subnet6 ?? '-'] : []), r.wgAddress, String(r.listenPort), role, String(peers(n.name, r.node)), r.publicKey]);
    }
    out.push(table(rows));
    if (n.access.length) {
      out.push('');
      const drows = [['DEVICE', 'ADDRESS', ...(six ? ['ADDRESS6'] : []), 'VIA', 'EGRESS', 'KEY']];
      for (const d of n.access) drows.push([d.name, d.address, ...(six ? [d.address6 ?? '-'] : []), d.via, d.egress ? 'yes' : 'no', d.generatedKey ? 'generated (config in the plan file)' : 'provided']);
      out.push(table(drows));
    }
  }
  if (plan.workloads.length) {
    out.push('', 'workloads');
    const six = plan.workloads.some((w) => w.ip6 !== undefined);
    const wrows = [['WORKLOAD', 'NODE', 'NETWORK', 'IP', ...(six ? ['IP6'] : [])]];
    for (const w of plan.workloads) wrows.push([w.name, w.node, w.network, w.ip, ...(six ? [w.ip6 ?? '-'] : [])]);
    out.push(table(wrows));
  }
  return out.join('\n') + '\n';
}
