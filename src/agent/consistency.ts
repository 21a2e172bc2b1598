// Is this node's part of a plan consistent with the signed blueprint and with what the node already runs?
// Checked before anything is applied; any problem means nothing changes.
import type { Blueprint } from '../blueprint/types.ts';
import { Key, x25519PublicKey, type X25519Secret } from '../crypto/keys.ts';
import { openSealed, SealError } from '../crypto/seal.ts';
import type { Problem } from '../errors.ts';
import { findOverlap } from '../plan/check.ts';
import { NODE_PART_FORMAT, type NodePlanPart } from '../plan/part.ts';
import { namesProblems } from '../plan/names.ts';
import { networkId, subnet6PrefixOf, ulaRange } from '../plan/planner.ts';
import { sealContext } from '../plan/types.ts';
import { cidrContains, firstHost, formatIPv4, lastHost, parseCidr, subnetIndex, type Cidr } from '../../topology/cidr.ts';
import { cidr6Contains, findOverlap6, formatCidr6, formatIPv6, nthSubnet6, parseCidr6, type Cidr6 } from '../../topology/cidr6.ts';

export interface PortOwner {
  port: number;
  owner: string;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A value of a hostile part in a message: never calls its toString (an object may carry a throwing one). */
function str(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === null || v === undefined || typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return Array.isArray(v) ? '<list>' : `<${typeof v}>`;
}

/**
 * The public key of a sealed private key that opens for this identity and context (throws SealError when it does
 * not). Opening costs two X25519 operations; a node part is checked on every submission with all its networks
 * (50 networks: ~25 ms before a changed rule could be written, issue #16), and a re-submitted part carries the
 * same sealed keys. So what opened once is remembered: the sealed text, context and identity → the public key
 * (never the private key). Failures are not remembered.
 */
const opened = new Map<string, string>();
function sealedPublicKey(sealed: string, identity: X25519Secret, context: string): string {
  const k = `${identity.publicKey.toString()}|${context}|${sealed}`;
  const hit = opened.get(k);
  if (hit !== undefined) return hit;
  const pub = x25519PublicKey(openSealed(sealed, identity, context)).toString();
  if (opened.size >= 10_000) opened.clear();
  opened.set(k, pub);
  return pub;
}

/**
 * Checks a node part against the blueprint, this node's identity and the ports other accepted blueprints use.
 * Never throws on malformed input: shape errors are problems too.
 */
export function checkNodePart(bp: Blueprint, partRaw: unknown, nodeId: string, identity: X25519Secret, usedPorts: PortOwner[]): Problem[] {
  const out: Problem[] = [];
  const bad = (code: string, path: string, message: string, hint = 're-plan this blueprint and send this node its new part') =>
    out.push({ code, path, message, hint });
  if (!isObj(partRaw) || partRaw.format !== NODE_PART_FORMAT || !Array.isArray(partRaw.networks) || !Array.isArray(partRaw.workloads)) {
    bad('E_PART_FORMAT', 'part', `the plan part is not a ${NODE_PART_FORMAT} object`, 'send the output of `zmesh plan … --part NODE`');
    return out;
  }
  const part = partRaw as unknown as NodePlanPart;
  if (part.tenant !== bp.tenant || part.blueprint !== bp.name || part.version !== bp.version) {
    bad('E_PART_BLUEPRINT', 'part', `the part is for ${str(part.tenant)}/${str(part.blueprint)} v${str(part.version)}, not ${bp.tenant}/${bp.name} v${bp.version}`);
  }
  if (part.node !== nodeId) bad('E_PART_NODE', 'part.node', `the part is for node ${str(part.node)}, this is ${nodeId}`, 'send this node its own part');
  if (!Number.isInteger(part.generation) || part.generation < 1) bad('E_PART_FORMAT', 'part.generation', 'generation must be a positive integer');
  const mine = bp.networks.filter((n) => n.nodes.includes(nodeId));
  for (const spec of mine) {
    if (!part.networks.some((n) => isObj(n) && n.name === spec.name)) bad('E_PART_MISSING', `part.networks`, `network ${spec.name} spans this node but the part has no resource for it`);
  }
  const ports = new Map(usedPorts.map((p) => [p.port, p.owner]));
  part.networks.forEach((n, i) => {
    const at = `part.networks[${i}]`;
    if (!isObj(n) || !isObj(n.resource) || !Array.isArray(n.subnets)) return bad('E_PART_FORMAT', at, 'malformed network part');
    const spec = bp.networks.find((s) => s.name === n.name);
    if (!spec) return bad('E_PART_NETWORK', `${at}.name`, `network ${str(n.name)} is not in the blueprint`);
    if (!spec.nodes.includes(nodeId)) bad('E_PART_NETWORK', `${at}.name`, `network ${spec.name} does not span node ${nodeId}`);
    if (n.id !== networkId(bp.tenant, bp.name, spec.name)) bad('E_PART_NETWORK', `${at}.id`, 'network id does not derive from tenant, blueprint and network name');
    if (n.ipRange !== spec.ipRange || n.subnetPrefix !== spec.subnetPrefix || n.egress !== spec.egress) {
      bad('E_PART_NETWORK', at, `range, subnet prefix or egress differ from the blueprint's network ${spec.name}`);
    }
    const range = parseCidr(spec.ipRange)!;
    const r = n.resource;
    const rp = `${at}.resource`;
    // IPv6 (docs/plan-format.md#ipv6): the range the blueprint gives or derives; the part carries IPv6 fields all
    // or none (a part planned before IPv6 has none), and each is the mirror of its IPv4 twin.
    const range6 = spec.ipv6 === false ? null : parseCidr6(spec.ipv6Range ?? ulaRange(bp.tenant, bp.name, spec.name))!;
    const prefix6 = range6 ? subnet6PrefixOf(range6.prefix, range.prefix, spec.subnetPrefix) : 0;
    const dual = range6 !== null && r.subnet6 !== undefined;
    const n6 = n as { ipv6Range?: unknown; subnet6Prefix?: unknown };
    if (range6 === null && (n6.ipv6Range !== undefined || n6.subnet6Prefix !== undefined || r.subnet6 !== undefined || r.gateway6 !== undefined || r.wgAddress6 !== undefined)) {
      bad('E_PART_NETWORK', at, `network ${spec.name} is IPv4-only (ipv6: false) but the part gives it IPv6`);
    } else if (range6 !== null && ((n6.ipv6Range !== undefined && n6.ipv6Range !== formatCidr6(range6)) || (n6.subnet6Prefix !== undefined && n6.subnet6Prefix !== prefix6))) {
      bad('E_PART_NETWORK', at, `ipv6Range or subnet6Prefix differ from network ${spec.name}'s ${formatCidr6(range6)} and /${prefix6}`);
    }
    if (range6 !== null && !dual && (r.gateway6 !== undefined || r.wgAddress6 !== undefined)) bad('E_PART_SUBNET', rp, 'gateway6 or wgAddress6 without subnet6');
    // All or none: a resource with IPv6 needs the network's IPv6 range and prefix in the part (the data plane routes
    // the range through the tunnel), and a range without a resource subnet6 is half a dual-stack part.
    if (range6 !== null && (dual !== (n6.ipv6Range !== undefined) || dual !== (n6.subnet6Prefix !== undefined))) {
      bad('E_PART_NETWORK', at, 'the part gives IPv6 only in part: the network\'s ipv6Range and subnet6Prefix come with the resource\'s subnet6, or none of them');
    }
    /** The IPv6 twin of an IPv4 slot of the range. */
    const mirror = (c: Cidr): Cidr6 => nthSubnet6(range6!, prefix6, subnetIndex(range, c));
    if (r.node !== nodeId) bad('E_PART_NODE', `${rp}.node`, `resource is for ${str(r.node)}`);
    const sub = parseCidr(str(r.subnet));
    if (!sub || sub.prefix !== spec.subnetPrefix || !cidrContains(range, sub)) {
      bad('E_PART_SUBNET', `${rp}.subnet`, `subnet ${str(r.subnet)} is not a /${spec.subnetPrefix} inside ${spec.ipRange}`);
    } else {
      if (r.gateway !== formatIPv4(firstHost(sub)) || r.wgAddress !== `${formatIPv4(lastHost(sub))}/32`) {
        bad('E_PART_SUBNET', rp, 'gateway or wgAddress do not derive from the subnet');
      }
      if (dual) {
        const sub6 = mirror(sub);
        const host6 = (ip: number) => formatIPv6(sub6.base + BigInt(ip - sub.base));
        if (r.subnet6 !== formatCidr6(sub6)) {
          bad('E_PART_SUBNET', `${rp}.subnet6`, `subnet6 ${str(r.subnet6)} is not ${formatCidr6(sub6)}, the slot of ${str(r.subnet)} in ${formatCidr6(range6!)}`);
        } else if (r.gateway6 !== host6(firstHost(sub)) || r.wgAddress6 !== `${host6(lastHost(sub))}/128`) {
          bad('E_PART_SUBNET', rp, 'gateway6 or wgAddress6 do not derive from the subnet6 (the IPv4 hosts mirrored)');
        }
      }
      const all: Cidr[] = [];
      let ownListed = false;
      for (const s of n.subnets as unknown[]) {
        const c = parseCidr(str(s));
        if (!c || !cidrContains(range, c)) bad('E_PART_SUBNET', `${at}.subnets`, `subnet ${str(s)} lies outside ${spec.ipRange}`);
        else {
          all.push(c);
          if (c.base === sub.base && c.prefix === sub.prefix) ownListed = true;
        }
      }
      if (!ownListed) bad('E_PART_SUBNET', `${at}.subnets`, 'the resource subnet is not among the network subnets');
      if (findOverlap(all)) bad('E_PART_OVERLAP', `${at}.subnets`, 'subnets of the network overlap');
    }
    if (!Number.isInteger(r.listenPort) || r.listenPort < 1 || r.listenPort > 65535) bad('E_PART_PORT', `${rp}.listenPort`, 'listen port out of range');
    else {
      const owner = ports.get(r.listenPort);
      if (owner && owner !== `${bp.tenant}/${bp.name}`) bad('E_PORT_IN_USE', `${rp}.listenPort`, `port ${r.listenPort} is used on this node by ${owner}`, 're-plan with this port in the node reservedPorts');
      ports.set(r.listenPort, `${bp.tenant}/${bp.name}`);
    }
    if (r.sealedTo !== identity.publicKey.toString()) bad('E_PART_KEY', `${rp}.sealedTo`, 'the private key is sealed to another node identity');
    try {
      const pub = sealedPublicKey(str(r.sealedPrivateKey), identity, sealContext(str(n.id), nodeId));
      if (!Key.isValid(r.publicKey) || pub !== r.publicKey) {
        bad('E_PART_KEY', `${rp}.publicKey`, 'the public key does not belong to the sealed private key');
      }
    } catch (e) {
      if (e instanceof SealError) bad('E_PART_KEY', `${rp}.sealedPrivateKey`, e.message);
      else throw e;
    }
    if (!Array.isArray(r.peers)) return bad('E_PART_FORMAT', `${rp}.peers`, 'peers must be a list');
    const allowed: Cidr[] = [];
    const allowed6: Cidr6[] = [];
    const directs = new Set<string>();
    const peerKeys = new Set<string>();
    const peerNodes = new Set<string>();
    r.peers.forEach((p, j) => {
      const pp = `${rp}.peers[${j}]`;
      if (!isObj(p) || !Key.isValid(p.publicKey)) return bad('E_PART_PEER', pp, 'peer needs a valid publicKey');
      // One entry per peer: a key or node listed twice (or the resource's own key) would let two entries share
      // WireGuard state (a direct peer keyed like the relay would take the relay's endpoint and allowed-ips).
      if (p.publicKey === r.publicKey) bad('E_PART_PEER', `${pp}.publicKey`, "a peer has the resource's own key");
      if (peerKeys.has(p.publicKey)) bad('E_PART_PEER', `${pp}.publicKey`, 'two peers have the same key');
      if (peerNodes.has(str(p.node))) bad('E_PART_PEER', `${pp}.node`, `peer ${str(p.node).slice(0, 64)} is listed twice`);
      peerKeys.add(p.publicKey);
      peerNodes.add(str(p.node));
      if (!Array.isArray(p.allowedIps)) return bad('E_PART_PEER', `${pp}.allowedIps`, 'allowedIps must be a list');
      for (const a of p.allowedIps) {
        if (typeof a === 'string' && a.includes(':')) {
          const c6 = dual ? parseCidr6(a) : null;
          if (!c6 || !cidr6Contains(range6!, c6)) bad('E_PART_PEER', `${pp}.allowedIps`, dual ? `allowed-ip ${a.slice(0, 64)} lies outside ${formatCidr6(range6!)}` : `IPv6 allowed-ip ${a.slice(0, 64)} on a part without IPv6`);
          else allowed6.push(c6);
          continue;
        }
        const c = parseCidr(str(a));
        if (!c || !cidrContains(range, c)) bad('E_PART_PEER', `${pp}.allowedIps`, `allowed-ip ${str(a)} lies outside ${spec.ipRange}`);
        else allowed.push(c);
      }
      if (p.endpoint !== null && (typeof p.endpoint !== 'string' || !/^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):\d{1,5}$/.test(p.endpoint))) {
        bad('E_PART_PEER', `${pp}.endpoint`, 'endpoint must be ip:port, [v6]:port or null');
      }
      if (p.persistentKeepalive !== null && (!Number.isInteger(p.persistentKeepalive) || (p.persistentKeepalive as number) < 1 || (p.persistentKeepalive as number) > 65535)) {
        bad('E_PART_PEER', `${pp}.persistentKeepalive`, 'keepalive must be seconds (1-65535) or null');
      }
      if (p.directSubnet !== undefined) {
        // A direct peer (another hidden node): the node may move exactly that node's subnet onto it, nothing else.
        const d = parseCidr(str(p.directSubnet));
        const listed = Array.isArray(n.subnets) && (n.subnets as unknown[]).some((s) => s === p.directSubnet);
        if (r.hidden !== true) bad('E_PART_PEER', `${pp}.directSubnet`, 'only a hidden node has direct peers');
        if (!d || !listed || str(p.directSubnet) === str(r.subnet)) bad('E_PART_PEER', `${pp}.directSubnet`, `direct subnet ${str(p.directSubnet)} is not another subnet of the network`);
        else if (directs.has(str(p.directSubnet))) bad('E_PART_PEER', `${pp}.directSubnet`, `direct subnet ${str(p.directSubnet)} is given to two peers`);
        else directs.add(str(p.directSubnet));
        if (p.allowedIps.length || p.endpoint !== null || p.persistentKeepalive !== null) bad('E_PART_PEER', pp, 'a direct peer has no allowed-ips, endpoint or keepalive in the plan');
        // Its IPv6 twin moves with it: exactly the mirror of directSubnet, on a dual-stack part only.
        const want6 = dual && d && d.prefix === spec.subnetPrefix && cidrContains(range, d) ? formatCidr6(mirror(d)) : undefined;
        if (p.directSubnet6 !== want6) bad('E_PART_PEER', `${pp}.directSubnet6`, `direct subnet6 ${str(p.directSubnet6)} is not the IPv6 twin of ${str(p.directSubnet)}`);
      } else if (p.directSubnet6 !== undefined) bad('E_PART_PEER', `${pp}.directSubnet6`, 'directSubnet6 without directSubnet');
    });
    if (sub) allowed.push(sub);
    if (findOverlap(allowed)) bad('E_PART_PEER', `${rp}.peers`, 'peers allowed-ips overlap each other or the own subnet');
    const own6 = dual ? parseCidr6(str(r.subnet6)) : null;
    if (own6) allowed6.push(own6);
    if (findOverlap6(allowed6)) bad('E_PART_PEER', `${rp}.peers`, 'peers IPv6 allowed-ips overlap each other or the own subnet6');
    // A policy's members: where its names are (the policy itself is the blueprint's). Only /32s inside the range.
    if (spec.policy) {
      const m = n.members as unknown;
      const host = (v: unknown) => {
        const c = parseCidr(str(v));
        return c !== null && c.prefix === 32 && cidrContains(range, c);
      };
      const map = (v: unknown, list: boolean) =>
        isObj(v) && Object.keys(v).length <= 100_000 && Object.values(v).every((x) => (list ? Array.isArray(x) && x.length <= 4 && x.every(host) : host(x)));
      if (!isObj(m) || !map(m.nodes, true) || !map(m.workloads, false) || !map(m.devices, false)) {
        bad('E_PART_POLICY', `${at}.members`, 'the network has a policy: the part must list its members as /32 addresses inside the range');
      }
      // Their IPv6 addresses (dual-stack parts only): /128s inside the network's ipv6Range.
      const host6 = (v: unknown) => {
        const c = typeof v === 'string' ? parseCidr6(v) : null;
        return c !== null && c.prefix === 128 && range6 !== null && cidr6Contains(range6, c);
      };
      const map6 = (v: unknown, list: boolean) =>
        v === undefined || (dual && isObj(v) && Object.keys(v).length <= 100_000 && Object.values(v).every((x) => (list ? Array.isArray(x) && x.length <= 4 && x.every(host6) : host6(x))));
      if (isObj(m) && (!map6(m.nodes6, true) || !map6(m.workloads6, false) || !map6(m.devices6, false))) {
        bad('E_PART_POLICY', `${at}.members`, 'IPv6 members must be /128 addresses inside the network\'s ipv6Range, on a dual-stack part only');
      }
    }
    // The names its resolver serves (docs/dns.md): only this network's own workloads, devices and nodes of the
    // signed blueprint, inside its ranges; this node's own name is its gateway. Absent (older parts): own names only.
    if (n.names !== undefined) {
      const ipRange6 = spec.ipv6 === false ? null : (spec.ipv6Range ?? ulaRange(bp.tenant, bp.name, spec.name));
      const np = namesProblems(spec, bp.workloads, { ipRange: spec.ipRange, ipRange6 }, n.names, `${at}.names`);
      out.push(...np);
      const self = np.length ? undefined : Object.hasOwn(n.names.nodes, nodeId) ? n.names.nodes[nodeId] : undefined;
      if (self && (self.ip !== r.gateway || (self.ip6 ?? null) !== (r.gateway6 ?? null))) bad('E_PART_NAMES', `${at}.names.nodes.${nodeId}`, "this node's name must be its gateway address(es)");
    }
  });
  return out;
}
