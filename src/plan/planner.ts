// The network-resource planner: blueprint + node inventory (+ previous plan) → compact plan (planCompact), or
// its full form (planBlueprint = expandPlan ∘ planCompact). Pure: randomness comes in as a RandomSource; no
// clocks, files or processes. The planner never builds peer lists itself: src/plan/derive.ts does.
//
// Stability rules with a previous plan: a resource that still exists keeps its subnet, listen port, keys
// (while the node's identity key is unchanged) and access node; a device keeps its subnet, key and access
// node; a workload keeps its address. New members take the lowest free subnet / port / address.
//
// IPv6 (docs/plan-format.md#ipv6): a dual-stack network's IPv6 fields are a pure function of its IPv4 ones, so they
// are as stable as those: subnet6 is the slot of subnet's index in the ipv6Range, every IPv6 host is subnet6's
// base plus the IPv4 host index. A previous plan's IPv6 fields are never read (an IPv4-only previous plan gains
// IPv6 without any IPv4 field moving; a changed ipv6Range simply wins).
import { createHash } from 'node:crypto';
import type { Blueprint, NetworkSpec } from '../blueprint/types.ts';
import { Key, x25519KeyPair } from '../crypto/keys.ts';
import type { RandomSource } from '../crypto/rng.ts';
import { Sealer } from '../crypto/seal.ts';
import { ValidationError, type Problem } from '../errors.ts';
import {
  cidrContains,
  cidrContainsIp,
  firstHost,
  formatCidr,
  formatEndpoint,
  formatIPv4,
  lastHost,
  nthSubnet,
  parseCidr,
  parseIPv4,
  sizeOf,
  subnetIndex,
  type Cidr,
} from '../../topology/cidr.ts';
import { cidr6ContainsIp, formatCidr6, formatIPv6, nthSubnet6, parseCidr6, parseIPv6, type Cidr6 } from '../../topology/cidr6.ts';
import { expandPlan } from './derive.ts';
import type { Inventory, InventoryNode } from './inventory.ts';
import {
  COMPACT_PLAN_FORMAT,
  PLAN_FORMAT,
  sealContext,
  type AccessDevice,
  type AnyPlan,
  type CompactNetwork,
  type CompactPlan,
  type CompactResource,
  type Plan,
  type WorkloadPlan,
} from './types.ts';

export interface PlanOptions {
  /** Source of key material and nonces; pass seededRandom(seed) for reproducible plans. */
  random: RandomSource;
  /** The previous plan, in either form (a full `zmesh-plan/1` plan is read, never written back). */
  previous?: AnyPlan;
  /** Keepalive a hidden node sends to its access node; default 25 s. */
  hiddenKeepalive?: number;
  /** Lowest listen port handed out; default 51820. */
  portBase?: number;
}

export const DEFAULT_PORT_BASE = 51820;
export const DEFAULT_KEEPALIVE = 25;

/** Short deterministic network id, fit for interface names (w-<id> is 12 chars). */
export function networkId(tenant: string, blueprint: string, network: string): string {
  const h = createHash('sha256').update(`zmesh-net-v1\0${tenant}\0${blueprint}\0${network}`).digest();
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  let out = '';
  let bits = 0;
  let acc = 0;
  for (let i = 0; out.length < 10; i++) {
    acc = (acc << 8) | h[i];
    bits += 8;
    while (bits >= 5 && out.length < 10) {
      out += alphabet[(acc >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out;
}

/**
 * The default IPv6 range of a dual-stack network: the ULA /48 (RFC 4193) fd00::/8 + a 40-bit global ID, the first
 * 5 bytes of SHA-256("zmesh-ula-v1\0<tenant>\0<blueprint>\0<network>"). The same inputs as the network's id
 * (networkId): one network, one id, one /48.
 */
export function ulaRange(tenant: string, blueprint: string, network: string): string {
  const h = createHash('sha256').update(`zmesh-ula-v1\0${tenant}\0${blueprint}\0${network}`).digest();
  let base = 0xfdn;
  for (let i = 0; i < 5; i++) base = (base << 8n) | BigInt(h[i]);
  return formatCidr6({ base: base << 80n, prefix: 48 });
}

/** The IPv6 subnet length of a dual-stack network: one slot per IPv4 slot, /64 unless the slots outnumber the /64s. */
export function subnet6PrefixOf(range6Prefix: number, ipRangePrefix: number, subnetPrefix: number): number {
  return Math.max(64, range6Prefix + (subnetPrefix - ipRangePrefix));
}

/** The IPv6 twin of an IPv4 subnet: the slot with the same index in range6. */
function mirrorSubnet(range: Cidr, range6: Cidr6, prefix6: number, sub: Cidr): Cidr6 {
  return nthSubnet6(range6, prefix6, subnetIndex(range, sub));
}

/** The IPv6 twin of an IPv4 host: subnet6's base plus the host's index in its subnet. */
function mirrorHost(sub: Cidr, sub6: Cidr6, ip: number): bigint {
  return sub6.base + BigInt(ip - sub.base);
}

/** An access device's wg-quick config (both families on a dual-stack network; the network's resolver as DNS). The
 *  planner writes it for a device whose key it made; the etcd lab for a device that brought its own (labs/etcd.ts). */
export function wgQuickConfig(o: {
  name: string;
  privateKey: string;
  address: string;
  address6: string | null;
  peerKey: string;
  endpoint: string;
  range: string;
  range6: string | null;
  dns: string[];
  network: string;
  context: string;
}): string {
  return [
    '[Interface]',
    `# zmesh access device ${o.name} (${o.context})`,
    `PrivateKey = ${o.privateKey}`,
    `Address = ${o.address}/32${o.address6 ? `, ${o.address6}/128` : ''}`,
    `DNS = ${[...o.dns, o.network].join(', ')}`,
    '',
    '[Peer]',
    `PublicKey = ${o.peerKey}`,
    `Endpoint = ${o.endpoint}`,
    `AllowedIPs = ${o.range}${o.range6 ? `, ${o.range6}` : ''}`,
    `PersistentKeepalive = ${DEFAULT_KEEPALIVE}`,
    '',
  ].join('\n');
}

function privateKeyOfConfig(config: string | undefined): string | null {
  const m = config ? /^PrivateKey = (\S+)$/m.exec(config) : null;
  return m && Key.isValid(m[1]) ? m[1] : null;
}

/** Lowest-free-index allocator over [0, size). */
class SlotAllocator {
  private readonly used = new Set<number>();
  private next = 0;
  constructor(private readonly size: number) {}
  take(i: number): boolean {
    if (i < 0 || i >= this.size || this.used.has(i)) return false;
    this.used.add(i);
    return true;
  }
  alloc(): number | null {
    while (this.next < this.size && this.used.has(this.next)) this.next++;
    if (this.next >= this.size) return null;
    this.used.add(this.next);
    return this.next;
  }
}

interface Ctx {
  bp: Blueprint;
  nodes: Map<string, InventoryNode>;
  problems: Problem[];
  random: RandomSource;
  sealer: () => Sealer;
  ports: Map<string, Set<number>>;
  portBase: number;
  keepalive: number;
}

function problem(ctx: Ctx, code: string, path: string, message: string, hint: string): void {
  ctx.problems.push({ code, path, message, hint });
}

/** The full form of the plan (every resource with its peers): expandPlan(planCompact(…)). */
export function planBlueprint(bp: Blueprint, inventory: Inventory, opts: PlanOptions): Plan {
  return expandPlan(planCompact(bp, inventory, opts));
}

/** Plans every network of a blueprint, compact. Throws ValidationError listing every problem found. */
export function planCompact(bp: Blueprint, inventory: Inventory, opts: PlanOptions): CompactPlan {
  const prev = opts.previous;
  const problems: Problem[] = [];
  if (prev && ((prev.format !== PLAN_FORMAT && prev.format !== COMPACT_PLAN_FORMAT) || prev.tenant !== bp.tenant || prev.blueprint !== bp.name)) {
    throw new ValidationError(
      [
        {
          code: 'E_PREVIOUS_MISMATCH',
          path: '',
          message: `the previous plan is for ${prev.tenant}/${prev.blueprint} (${prev.format}), not ${bp.tenant}/${bp.name}`,
          hint: 'pass the previous plan of this same blueprint, or none',
        },
      ],
      'plan',
    );
  }
  let sealer: Sealer | undefined;
  const ctx: Ctx = {
    bp,
    nodes: new Map(inventory.nodes.map((n) => [n.id, n])),
    problems,
    random: opts.random,
    sealer: () => (sealer ??= new Sealer(opts.random)),
    ports: new Map(),
    portBase: opts.portBase ?? DEFAULT_PORT_BASE,
    keepalive: opts.hiddenKeepalive ?? DEFAULT_KEEPALIVE,
  };
  for (const n of inventory.nodes) ctx.ports.set(n.id, new Set(n.reservedPorts));

  const prevNets = new Map((prev?.networks ?? []).map((n) => [n.name, n]));
  // Pass 1: claim previous ports of every network first, so a new allocation never takes a kept port.
  const keptPorts = new Map<string, Map<string, number>>();
  bp.networks.forEach((net) => {
    const kept = new Map<string, number>();
    keptPorts.set(net.name, kept);
    const pn = prevNets.get(net.name);
    if (!pn) return;
    const wanted = new Set(net.nodes);
    for (const r of pn.resources) {
      const used = ctx.ports.get(r.node);
      if (!wanted.has(r.node) || !used || used.has(r.listenPort)) continue;
      used.add(r.listenPort);
      kept.set(r.node, r.listenPort);
    }
  });

  const networks: CompactNetwork[] = [];
  const workloads: WorkloadPlan[] = [];
  bp.networks.forEach((net, ni) => {
    const np = planNetwork(ctx, net, ni, prevNets.get(net.name), keptPorts.get(net.name)!);
    if (np) {
      networks.push(np);
      workloads.push(...planWorkloads(ctx, np, prev));
    }
  });
  if (problems.length) throw new ValidationError(problems, 'plan');
  workloads.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return {
    format: COMPACT_PLAN_FORMAT,
    tenant: bp.tenant,
    blueprint: bp.name,
    version: bp.version,
    generation: (prev?.generation ?? 0) + 1,
    hiddenKeepalive: ctx.keepalive,
    networks,
    workloads,
  };
}

function planNetwork(ctx: Ctx, net: NetworkSpec, ni: number, prev: AnyPlan['networks'][number] | undefined, keptPorts: Map<string, number>): CompactNetwork | null {
  const at = `networks[${ni}]`;
  const range = parseCidr(net.ipRange) as Cidr;
  const id = networkId(ctx.bp.tenant, ctx.bp.name, net.name);
  const range6 = net.ipv6 === false ? null : (parseCidr6(net.ipv6Range ?? ulaRange(ctx.bp.tenant, ctx.bp.name, net.name)) as Cidr6);
  const range6Text = range6 === null ? null : formatCidr6(range6); // canonical, whatever the caller's text
  const prefix6 = range6 ? subnet6PrefixOf(range6.prefix, range.prefix, net.subnetPrefix) : 0;
  const slots = new SlotAllocator(2 ** (net.subnetPrefix - range.prefix));
  const before = ctx.problems.length;

  const members: InventoryNode[] = [];
  net.nodes.forEach((nodeId, j) => {
    const n = ctx.nodes.get(nodeId);
    if (!n) {
      problem(ctx, 'E_NODE_UNKNOWN', `${at}.nodes[${j}]`, `node ${nodeId} is not in the inventory`, 'add the node to the inventory or remove it from the network');
    } else members.push(n);
  });
  const publicIds = members.filter((n) => n.endpoints.length > 0).map((n) => n.id);
  const publicSet = new Set(publicIds);
  if (publicIds.length === 0 && (members.length > publicIds.length || net.access.length > 0)) {
    problem(
      ctx,
      'E_NO_PUBLIC_NODE',
      `${at}.nodes`,
      `network ${net.name} has hidden nodes or access devices but no public node to enter through`,
      'add a node with an endpoint (a public node) to the network',
    );
  }
  if (ctx.problems.length > before) return null;

  const prevRes = new Map<string, CompactResource | Plan['networks'][number]['resources'][number]>((prev?.resources ?? []).map((r) => [r.node, r]));
  const prevDev = new Map((prev?.access ?? []).map((d) => [d.name, d]));
  const samePrefix = prev?.subnetPrefix === net.subnetPrefix;

  // Subnets: keep previous ones that still fit, then allocate the lowest free slots.
  const subnetOf = new Map<string, Cidr>();
  const keepSubnet = (key: string, text: string | undefined) => {
    const c = text ? parseCidr(text) : null;
    if (c && samePrefix && cidrContains(range, c) && slots.take(subnetIndex(range, c))) subnetOf.set(key, c);
  };
  for (const n of members) keepSubnet(`n:${n.id}`, prevRes.get(n.id)?.subnet);
  for (const d of net.access) keepSubnet(`d:${d.name}`, prevDev.get(d.name)?.subnet);
  const allocSubnet = (key: string) => {
    if (subnetOf.has(key)) return;
    const i = slots.alloc();
    if (i === null) {
      problem(ctx, 'E_RANGE_EXHAUSTED', `${at}.ipRange`, `${net.ipRange} has no free /${net.subnetPrefix} left`, 'use a larger ipRange or a longer subnetPrefix');
    } else subnetOf.set(key, nthSubnet(range, net.subnetPrefix, i));
  };
  for (const n of members) allocSubnet(`n:${n.id}`);
  for (const d of net.access) allocSubnet(`d:${d.name}`);
  if (ctx.problems.length > before) return null;

  // Access nodes: keep the previous one while it is still a public member; else the least loaded public node.
  const load = new Map(publicIds.map((p) => [p, 0]));
  const via = new Map<string, string>();
  const keepVia = (key: string, prevVia: string | null | undefined) => {
    if (prevVia && publicSet.has(prevVia)) {
      via.set(key, prevVia);
      load.set(prevVia, load.get(prevVia)! + 1);
    }
  };
  for (const n of members) if (!publicSet.has(n.id)) keepVia(`n:${n.id}`, prevRes.get(n.id)?.accessNode);
  for (const d of net.access) keepVia(`d:${d.name}`, prevDev.get(d.name)?.via);
  const pickVia = (key: string) => {
    if (via.has(key)) return;
    let best = publicIds[0];
    for (const p of publicIds) if (load.get(p)! < load.get(best)!) best = p;
    via.set(key, best);
    load.set(best, load.get(best)! + 1);
  };
  for (const n of members) if (!publicSet.has(n.id)) pickVia(`n:${n.id}`);
  for (const d of net.access) pickVia(`d:${d.name}`);

  // Ports and keys per resource.
  const resources: CompactResource[] = [];
  net.nodes.forEach((nodeId, j) => {
    const n = ctx.nodes.get(nodeId)!;
    const used = ctx.ports.get(nodeId)!;
    let port = keptPorts.get(nodeId);
    if (port === undefined) {
      for (let p = ctx.portBase; p <= 65535; p++) {
        if (!used.has(p)) {
          port = p;
          break;
        }
      }
      if (port === undefined) {
        problem(ctx, 'E_PORT_EXHAUSTED', `${at}.nodes[${j}]`, `node ${nodeId} has no free listen port from ${ctx.portBase}`, 'free reserved ports on the node or lower the port base');
        return;
      }
      used.add(port);
    }
    const pr = prevRes.get(nodeId);
    let publicKey: string;
    let sealed: string;
    if (pr && pr.sealedTo === n.publicKey && Key.isValid(pr.publicKey) && typeof pr.sealedPrivateKey === 'string') {
      publicKey = pr.publicKey;
      sealed = pr.sealedPrivateKey;
    } else {
      const kp = x25519KeyPair(ctx.random(32));
      publicKey = kp.publicKey.toString();
      sealed = ctx.sealer().seal(kp.privateKey, Key.parse(n.publicKey), sealContext(id, nodeId));
    }
    const subnet = subnetOf.get(`n:${nodeId}`)!;
    const hidden = !publicSet.has(nodeId);
    const sub6 = range6 ? mirrorSubnet(range, range6, prefix6, subnet) : null;
    resources.push({
      node: nodeId,
      subnet: formatCidr(subnet),
      gateway: formatIPv4(firstHost(subnet)),
      wgAddress: `${formatIPv4(lastHost(subnet))}/32`,
      ...(sub6
        ? {
            subnet6: formatCidr6(sub6),
            gateway6: formatIPv6(mirrorHost(subnet, sub6, firstHost(subnet))),
            wgAddress6: `${formatIPv6(mirrorHost(subnet, sub6, lastHost(subnet)))}/128`,
          }
        : {}),
      listenPort: port,
      endpoint: hidden ? null : formatEndpoint(n.endpoints[0], port),
      publicKey,
      sealedPrivateKey: sealed,
      sealedTo: n.publicKey,
      hidden,
      accessNode: hidden ? via.get(`n:${nodeId}`)! : null,
    });
  });
  if (ctx.problems.length > before) return null;

  const resByNode = new Map(resources.map((r) => [r.node, r]));
  const access: AccessDevice[] = net.access.map((d) => {
    const subnet = subnetOf.get(`d:${d.name}`)!;
    const address = formatIPv4(firstHost(subnet));
    const v = via.get(`d:${d.name}`)!;
    const vr = resByNode.get(v)!;
    const endpoint = formatEndpoint(ctx.nodes.get(v)!.endpoints[0], vr.listenPort);
    let publicKey: string;
    let privateKey: string | null = null;
    if (d.publicKey) publicKey = d.publicKey;
    else {
      const pd = prevDev.get(d.name);
      const kept = pd?.generatedKey ? privateKeyOfConfig(pd.wgQuickConfig) : null;
      if (kept && pd) {
        privateKey = kept;
        publicKey = pd.publicKey;
      } else {
        const kp = x25519KeyPair(ctx.random(32));
        privateKey = kp.privateKey.toString();
        publicKey = kp.publicKey.toString();
      }
    }
    const sub6 = range6 ? mirrorSubnet(range, range6, prefix6, subnet) : null;
    const address6 = sub6 ? formatIPv6(mirrorHost(subnet, sub6, firstHost(subnet))) : null;
    const dev: AccessDevice = {
      name: d.name,
      subnet: formatCidr(subnet),
      address,
      ...(sub6 ? { subnet6: formatCidr6(sub6), address6: address6! } : {}),
      via: v,
      publicKey,
      generatedKey: privateKey !== null,
    };
    if (d.egress) dev.egress = true;
    if (privateKey !== null) {
      dev.wgQuickConfig = wgQuickConfig({
        name: d.name,
        privateKey,
        address,
        address6,
        peerKey: vr.publicKey,
        endpoint,
        range: net.ipRange,
        range6: range6Text,
        // The network's resolver answers on the access node's gateway addresses; the search domain is the network.
        dns: vr.gateway6 !== undefined ? [vr.gateway, vr.gateway6] : [vr.gateway],
        network: net.name,
        context: `${ctx.bp.tenant}/${ctx.bp.name} network ${net.name}`,
      });
    }
    return dev;
  });

  resources.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  access.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return {
    name: net.name,
    id,
    ipRange: net.ipRange,
    subnetPrefix: net.subnetPrefix,
    ...(range6Text !== null ? { ipv6Range: range6Text, subnet6Prefix: prefix6 } : {}),
    egress: net.egress,
    ...(net.policy ? { policy: true as const } : {}),
    resources,
    access,
  };
}

/** Addresses of the workloads on one network: explicit ones checked, previous ones kept, the rest allocated. */
function planWorkloads(ctx: Ctx, np: CompactNetwork, prev: AnyPlan | undefined): WorkloadPlan[] {
  const prevIp = new Map((prev?.workloads ?? []).filter((w) => w.network === np.name).map((w) => [`${w.name}@${w.node}`, w.ip]));
  const resByNode = new Map(np.resources.map((r) => [r.node, r]));
  const taken = new Map<string, Set<number>>();
  const out: WorkloadPlan[] = [];
  const pending: { name: string; node: string; wi: number }[] = [];
  const list = ctx.bp.workloads.map((w, wi) => ({ w, wi })).filter(({ w }) => w.network.name === np.name);
  const takenOn = (node: string) => {
    let s = taken.get(node);
    if (!s) taken.set(node, (s = new Set()));
    return s;
  };
  // Explicit addresses first.
  for (const { w, wi } of list) {
    const r = resByNode.get(w.node);
    if (!r) continue; // validation reports a workload on a node outside its network
    if (w.network.ip === undefined) continue;
    const path = `workloads[${wi}].network.ip`;
    const sub = parseCidr(r.subnet)!;
    const ip = parseIPv4(w.network.ip);
    if (ip === null || !cidrContainsIp(sub, ip)) {
      problem(ctx, 'E_WORKLOAD_IP_SUBNET', path, `${w.network.ip} is outside node ${w.node}'s subnet ${r.subnet}`, `pick an address inside ${r.subnet}, or leave ip out to get one`);
    } else if (ip === firstHost(sub)) {
      problem(ctx, 'E_WORKLOAD_IP_GATEWAY', path, `${w.network.ip} is the gateway of ${r.subnet}`, 'pick another address; .1 belongs to the node bridge');
    } else if (ip === lastHost(sub) || ip === sub.base || ip === sub.base + sizeOf(sub.prefix) - 1) {
      problem(ctx, 'E_WORKLOAD_IP_RESERVED', path, `${w.network.ip} is reserved in ${r.subnet} (network, broadcast or WireGuard address)`, 'pick another address');
    } else if (takenOn(w.node).has(ip)) {
      problem(ctx, 'E_WORKLOAD_IP_TAKEN', path, `${w.network.ip} is taken by another workload`, 'give each workload its own address');
    } else {
      takenOn(w.node).add(ip);
      out.push({ name: w.name, node: w.node, network: np.name, ip: w.network.ip });
    }
  }
  // Previous addresses next, then the lowest free.
  for (const { w, wi } of list) {
    const r = resByNode.get(w.node);
    if (!r || w.network.ip !== undefined) continue;
    const sub = parseCidr(r.subnet)!;
    const old = prevIp.get(`${w.name}@${w.node}`);
    const ip = old !== undefined ? parseIPv4(old) : null;
    if (ip !== null && cidrContainsIp(sub, ip) && ip > firstHost(sub) && ip < lastHost(sub) && !takenOn(w.node).has(ip)) {
      takenOn(w.node).add(ip);
      out.push({ name: w.name, node: w.node, network: np.name, ip: old! });
    } else pending.push({ name: w.name, node: w.node, wi });
  }
  for (const p of pending) {
    const sub = parseCidr(resByNode.get(p.node)!.subnet)!;
    const used = takenOn(p.node);
    let ip = firstHost(sub) + 1;
    while (ip < lastHost(sub) && used.has(ip)) ip++;
    if (ip >= lastHost(sub)) {
      problem(ctx, 'E_SUBNET_FULL', `workloads[${p.wi}]`, `node ${p.node}'s subnet has no free address for ${p.name}`, 'use a shorter subnetPrefix or move workloads to other nodes');
      continue;
    }
    used.add(ip);
    out.push({ name: p.name, node: p.node, network: np.name, ip: formatIPv4(ip) });
  }
  if (np.ipv6Range !== undefined) planWorkloads6(ctx, np, list, out);
  return out;
}

/**
 * IPv6 addresses of a dual-stack network's workloads: the blueprint's ip6 (checked: inside the node's subnet6, not
 * its base, gateway6 or wgAddress6, not another workload's), else the IPv4 host index mirrored into subnet6.
 */
function planWorkloads6(ctx: Ctx, np: CompactNetwork, list: { w: Blueprint['workloads'][number]; wi: number }[], out: WorkloadPlan[]): void {
  const resByNode = new Map(np.resources.map((r) => [r.node, r]));
  const spec = new Map(list.map((x) => [x.w.name, x]));
  const taken = new Map<string, string>();
  const mirrored: { wp: WorkloadPlan; ip6: bigint }[] = [];
  const explicit: { wp: WorkloadPlan; ip6: bigint; path: string; text: string }[] = [];
  for (const wp of out) {
    const r = resByNode.get(wp.node)!;
    const s = spec.get(wp.name)!;
    const sub6 = parseCidr6(r.subnet6!)!;
    if (s.w.network.ip6 !== undefined) {
      const path = `workloads[${s.wi}].network.ip6`;
      const ip6 = parseIPv6(s.w.network.ip6);
      if (ip6 === null || !cidr6ContainsIp(sub6, ip6)) {
        problem(ctx, 'E_WORKLOAD_IP6_SUBNET', path, `${s.w.network.ip6} is outside node ${wp.node}'s subnet6 ${r.subnet6!}`, `pick an address inside ${r.subnet6!}, or leave ip6 out to get one`);
      } else if (ip6 === sub6.base || ip6 === parseIPv6(r.gateway6!) || `${formatIPv6(ip6)}/128` === r.wgAddress6) {
        problem(ctx, 'E_WORKLOAD_IP6_RESERVED', path, `${s.w.network.ip6} is reserved in ${r.subnet6!} (its base, gateway6 or WireGuard address)`, 'pick another address');
      } else explicit.push({ wp, ip6, path, text: s.w.network.ip6 });
    } else {
      const sub = parseCidr(r.subnet)!;
      mirrored.push({ wp, ip6: mirrorHost(sub, sub6, parseIPv4(wp.ip)!) });
    }
  }
  for (const m of mirrored) taken.set(`${m.wp.node}\0${m.ip6}`, m.wp.name);
  for (const e of explicit) {
    const key = `${e.wp.node}\0${e.ip6}`;
    const other = taken.get(key);
    if (other !== undefined) {
      problem(ctx, 'E_WORKLOAD_IP_TAKEN', e.path, `${e.text} is taken by workload ${other}`, 'give each workload its own address (a workload without ip6 gets its IPv4 host in subnet6)');
      continue;
    }
    taken.set(key, e.wp.name);
    e.wp.ip6 = formatIPv6(e.ip6);
  }
  for (const m of mirrored) m.wp.ip6 = formatIPv6(m.ip6);
}
