// Is the part's placement of workloads consistent with the signed blueprint? Checked at submission beside
// checkNodePart (which this assumes passed: the part is well-formed); any problem means nothing changes.
// Every blueprint workload on this node is placed here exactly once, on its network, at a free host address
// of this node's subnet (not the network, gateway, WireGuard or broadcast address), no address twice; the
// part places no workload the blueprint does not run here.
import type { Blueprint } from '../blueprint/types.ts';
import type { Problem } from '../errors.ts';
import type { NodePlanPart } from '../plan/part.ts';
import { cidrContainsIp, firstHost, lastHost, parseCidr, parseIPv4 } from '../../topology/cidr.ts';

export function checkRuntimePart(bp: Blueprint, part: NodePlanPart, nodeId: string): Problem[] {
  const out: Problem[] = [];
  const bad = (path: string, message: string) => out.push({ code: 'E_PART_WORKLOAD', path, message, hint: 're-plan this blueprint and send this node its new part' });
  const placed = new Map<string, NodePlanPart['workloads'][number][]>();
  (part.workloads ?? []).forEach((w, i) => {
    if (typeof w !== 'object' || w === null || typeof w.name !== 'string' || typeof w.ip !== 'string' || typeof w.network !== 'string' || typeof w.node !== 'string') {
      bad(`part.workloads[${i}]`, 'a workload placement is {name, node, network, ip}');
      return;
    }
    if (w.node !== nodeId) bad(`part.workloads[${i}]`, `workload ${w.name} is placed on node ${w.node}, this is ${nodeId}`);
    placed.set(w.name, [...(placed.get(w.name) ?? []), w]);
  });
  const here = new Map(bp.workloads.filter((w) => w.node === nodeId).map((w) => [w.name, w]));
  for (const name of placed.keys()) if (!here.has(name)) bad(`part.workloads.${name}`, `the blueprint does not run workload ${name} on node ${nodeId}`);
  const seen = new Map<string, string>();
  for (const [name, w] of here) {
    const ps = placed.get(name) ?? [];
    if (ps.length !== 1) {
      bad(`part.workloads.${name}`, ps.length ? `workload ${name} is placed ${ps.length} times` : `workload ${name} runs on this node but the part gives it no address`);
      continue;
    }
    const p = ps[0];
    if (p.network !== w.network.name) {
      bad(`part.workloads.${name}.network`, `workload ${name} is on network ${w.network.name}, the part says ${p.network}`);
      continue;
    }
    const net = part.networks.find((n) => n.name === p.network);
    const subnet = net ? parseCidr(net.resource.subnet) : null;
    const ip = parseIPv4(p.ip);
    if (!net || !subnet) {
      bad(`part.workloads.${name}.network`, `network ${p.network} has no resource on this node`);
      continue;
    }
    if (ip === null || !cidrContainsIp(subnet, ip)) {
      bad(`part.workloads.${name}.ip`, `${p.ip} is not an address of this node's subnet ${net.resource.subnet}`);
      continue;
    }
    const wg = parseIPv4(net.resource.wgAddress.split('/')[0]);
    const gw = parseIPv4(net.resource.gateway);
    if (ip < firstHost(subnet) || ip > lastHost(subnet) || ip === gw || ip === wg) bad(`part.workloads.${name}.ip`, `${p.ip} is reserved in ${net.resource.subnet} (network, gateway, WireGuard or broadcast address)`);
    if (w.network.ip !== undefined && w.network.ip !== p.ip) bad(`part.workloads.${name}.ip`, `the blueprint asks for ${w.network.ip}, the part says ${p.ip}`);
    const k = `${p.network}/${p.ip}`;
    if (seen.has(k)) bad(`part.workloads.${name}.ip`, `${p.ip} is also given to ${seen.get(k)}`);
    seen.set(k, name);
  }
  return out;
}
