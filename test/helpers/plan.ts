// A hand-built network plan for tests (no planner needed): real X25519 keys, private keys sealed to each
// node's identity key, peers as the planner would emit them (full mesh of public nodes; a hidden node talks
// only to its access node, which routes its subnet for everybody else).
import { randomBytes } from 'node:crypto';
import { Sealer, seededRandom, x25519KeyPair, x25519PublicKey, type Key } from '../../src/crypto/index.ts';
import { sealContext, type Peer, type Resource } from '../../src/plan/types.ts';
import type { DesiredResource } from '../../netns/index.ts';
import { formatCidr, formatIp, parseCidr } from '../../netns/ip.ts';

export interface NodeSpec {
  node: string;
  /** Underlay address other nodes dial (public nodes). */
  underlay?: string;
  hidden?: boolean;
  accessNode?: string;
  /** Keepalive a hidden node uses toward its access node (default 25). */
  keepalive?: number;
}

export interface HandNetwork {
  networkId: string;
  name: string;
  tenant: string;
  ipRange: string;
  egress: boolean;
  /** Node identity secrets (X25519), by node. */
  identity: Map<string, Key>;
  /** WireGuard private keys, by node (tests look for them where they must never be). */
  wgPrivate: Map<string, Key>;
  desired: Map<string, DesiredResource>;
  subnet: Map<string, string>;
}

export function randomId(n = 10): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  return [...randomBytes(n)].map((b) => alphabet[b % alphabet.length]).join('');
}

export interface HandPlanOptions {
  tenant?: string;
  name?: string;
  networkId?: string;
  /** A /16, e.g. "10.7.0.0/16"; node i gets 10.7.(i+1).0/24. */
  ipRange: string;
  egress?: boolean;
  nodes: NodeSpec[];
  seed?: string;
  basePort?: number;
  /** Node identity secrets to seal to (a node has one identity for all its networks); generated when absent. */
  identity?: Map<string, Key>;
  /**
   * Dual-stack: the network's IPv6 range, a /48 (e.g. "fd00:42::/48"). Node i then gets the /64 of the same slot
   * index as its IPv4 subnet ("fd00:42:0:<i+1>::/64"), gateway6 host 1, wgAddress6 host 254 (/128), and every
   * allowed-ip its IPv6 twin (IPv4 CIDRs first, then IPv6), as the planner emits them (docs/plan-format.md#ipv6).
   */
  ipv6Range?: string;
}

/** The IPv6 twin of a /24 slot of a /16 range in a /48: the /64 with the same index. */
export function twin6(ipv6Range: string, ipRange: string, cidr: string): string {
  const r6 = parseCidr(ipv6Range)!;
  const r4 = parseCidr(ipRange)!;
  const c = parseCidr(cidr)!;
  const slot = (c.value - r4.value) >> 8n;
  return formatCidr({ family: 6, value: r6.value + (slot << 64n), prefix: 64 });
}

export function handPlan(o: HandPlanOptions): HandNetwork {
  const rnd = seededRandom(o.seed ?? randomBytes(16).toString('hex'));
  const networkId = o.networkId ?? randomId();
  const [a, b] = o.ipRange.split('.');
  const subnet = new Map<string, string>();
  const identity = new Map<string, Key>();
  const identityPub = new Map<string, Key>();
  const wgPrivate = new Map<string, Key>();
  const wgPublic = new Map<string, Key>();
  const sealer = new Sealer(rnd);
  o.nodes.forEach((n, i) => {
    subnet.set(n.node, `${a}.${b}.${i + 1}.0/24`);
    const given = o.identity?.get(n.node);
    const id = given ? { privateKey: given, publicKey: x25519PublicKey(given) } : x25519KeyPair(rnd(32));
    identity.set(n.node, id.privateKey);
    identityPub.set(n.node, id.publicKey);
    const wg = x25519KeyPair(rnd(32));
    wgPrivate.set(n.node, wg.privateKey);
    wgPublic.set(n.node, wg.publicKey);
  });
  const spec = new Map(o.nodes.map((n) => [n.node, n]));
  const port = (node: string) => (o.basePort ?? 51820) + o.nodes.findIndex((n) => n.node === node);
  const desired = new Map<string, DesiredResource>();
  for (const n of o.nodes) {
    const peers: Peer[] = [];
    if (n.hidden) {
      const acc = spec.get(n.accessNode!)!;
      peers.push({
        node: acc.node,
        kind: 'node',
        publicKey: wgPublic.get(acc.node)!.toString(),
        endpoint: `${acc.underlay}:${port(acc.node)}`,
        allowedIps: o.nodes.filter((x) => x.node !== n.node).map((x) => subnet.get(x.node)!),
        persistentKeepalive: n.keepalive ?? 25,
      });
    } else {
      for (const other of o.nodes) {
        if (other.node === n.node) continue;
        if (other.hidden && other.accessNode !== n.node) continue;
        const allowed = [subnet.get(other.node)!];
        if (!other.hidden) {
          for (const h of o.nodes) if (h.hidden && h.accessNode === other.node) allowed.push(subnet.get(h.node)!);
        }
        peers.push({
          node: other.node,
          kind: 'node',
          publicKey: wgPublic.get(other.node)!.toString(),
          endpoint: other.hidden ? null : `${other.underlay}:${port(other.node)}`,
          allowedIps: allowed,
          persistentKeepalive: null,
        });
      }
    }
    const sn = subnet.get(n.node)!;
    const base = sn.split('.').slice(0, 3).join('.');
    const v6 = o.ipv6Range;
    if (v6) for (const p of peers) p.allowedIps = [...p.allowedIps, ...p.allowedIps.map((c) => twin6(v6, o.ipRange, c))];
    const sn6 = v6 ? parseCidr(twin6(v6, o.ipRange, sn))! : null;
    const resource: Resource = {
      node: n.node,
      subnet: sn,
      gateway: `${base}.1`,
      wgAddress: `${base}.254/32`,
      listenPort: port(n.node),
      publicKey: wgPublic.get(n.node)!.toString(),
      sealedPrivateKey: sealer.seal(wgPrivate.get(n.node)!, identityPub.get(n.node)!, sealContext(networkId, n.node)),
      sealedTo: identityPub.get(n.node)!.toString(),
      hidden: n.hidden ?? false,
      accessNode: n.hidden ? n.accessNode! : null,
      peers,
      ...(sn6
        ? {
            subnet6: formatCidr(sn6),
            gateway6: formatIp({ family: 6, value: sn6.value + 1n }),
            wgAddress6: `${formatIp({ family: 6, value: sn6.value + 254n })}/128`,
          }
        : {}),
    };
    desired.set(n.node, {
      tenant: o.tenant ?? 'acme',
      networkId,
      networkName: o.name ?? 'net',
      ipRange: o.ipRange,
      ...(o.ipv6Range ? { ipRange6: o.ipv6Range } : {}),
      egress: o.egress ?? false,
      resource,
    });
  }
  return { networkId, name: o.name ?? 'net', tenant: o.tenant ?? 'acme', ipRange: o.ipRange, egress: o.egress ?? false, identity, wgPrivate, desired, subnet };
}

/** The gateway (bridge) address of a node's subnet: "10.7.2.1". */
export function gatewayOf(net: HandNetwork, node: string): string {
  return net.desired.get(node)!.resource.gateway;
}
