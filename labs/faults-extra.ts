// Two more lab faults, after the kernel's WireGuard netns.sh: a NAT router that restarts (its conntrack table
// is lost, its nftables rebuilt) and an endpoint that changes address (roaming). Neither re-plans anything:
// the mesh has to recover by itself — hidden nodes re-open their NAT mappings with their keepalives, and
// WireGuard learns a roamed endpoint from authenticated packets (the driver leaves a learnt endpoint alone
// while its peer had a recent handshake). The new address is recorded in the lab's layout, so a later
// `lab up` keeps it and re-plans with it (the nodes' inventory changed).
import { ZmeshError } from '../src/errors.ts';
import { formatIPv4, parseCidr, parseIPv4 } from '../topology/cidr.ts';
import { INTERNET, INTERNET6_GW, INTERNET_GW, UNDERLAY_IF, WAN_LINK, hostByName, mirror6, underlayFamilies, type HostLayout, type Layout, type NatLayout } from './layout.ts';
import { writeState, type LabState } from './state.ts';
import { inNs, python, run } from './sys.ts';
import { ipv6LinkBatch, natRulesetFor } from './underlay.ts';

export type ExtraFaultKind = 'nat-restart' | 'roam';
export const EXTRA_FAULTS: ExtraFaultKind[] = ['nat-restart', 'roam'];

/**
 * Flushes a network namespace's conntrack table over ctnetlink (what `conntrack -F` does, without the
 * package): counts the entries (a dump), then deletes them all (IPCTNL_MSG_CT_DELETE without a tuple).
 * Prints the number of entries there were. Python, like the delay line: it is already a lab dependency.
 */
export const CONNTRACK_FLUSH_PY = [
  'import socket, struct',
  's = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)',
  's.bind((0, 0))',
  's.settimeout(5)',
  'def send(t, flags, seq):',
  '    body = struct.pack("BBH", 0, 0, 0)',
  '    s.send(struct.pack("=IHHII", 16 + len(body), t, flags, seq, 0) + body)',
  'def replies(seq):',
  '    n = 0',
  '    while True:',
  '        data = s.recv(1 << 16)',
  '        off = 0',
  '        while off + 16 <= len(data):',
  '            ln, t, fl, sq, pid = struct.unpack_from("=IHHII", data, off)',
  '            if t == 3: return n',
  '            if t == 2:',
  '                err = struct.unpack_from("=i", data, off + 16)[0]',
  '                if err != 0: raise SystemExit("ctnetlink error %d" % err)',
  '                return n',
  '            n += 1',
  '            off += (ln + 3) & ~3',
  'send((1 << 8) | 1, 1 | 0x300, 1)',
  'count = replies(1)',
  'send((1 << 8) | 2, 1 | 4, 2)',
  'replies(2)',
  'print(count)',
].join('\n');

/** The NAT router a fault names: a router by name, or the router a hidden node or device sits behind. */
export function natOf(layout: Layout, target: string): NatLayout | null {
  const nat = layout.nats.find((n) => n.name === target);
  if (nat) return nat;
  const host = hostByName(layout, target);
  return host && host.attach.kind === 'nat' ? (layout.nats.find((n) => n.name === (host.attach as { nat: string }).nat) ?? null) : null;
}

/** A free address on the lab's internet for a roaming endpoint: the highest one no member of the layout holds
 *  (members added later take the lowest free ones, and the layout keeps the roamed address). */
export function roamAddress(layout: Layout): string {
  const inet = parseCidr(INTERNET)!;
  const used = new Set<number>([parseIPv4(INTERNET_GW)!]);
  for (const h of [...layout.nodes, ...layout.devices]) if (h.attach.kind === 'internet') used.add(parseIPv4(h.address)!);
  for (const n of layout.nats) used.add(parseIPv4(n.wanAddress)!);
  for (let off = 2 ** (32 - inet.prefix) - 2; off >= 2; off--) if (!used.has(inet.base + off)) return formatIPv4(inet.base + off);
  throw new ZmeshError('E_LAB_FULL', `no free address left on the lab's internet (${INTERNET})`, { kind: 'retryable' });
}

/** Moves an interface of a namespace to a new address on the internet (default route through its gateway), in
 *  the families of the lab's underlay (the IPv6 address mirrors the IPv4 one); returns the IPv6 address or null. */
async function readdress(ns: string, ifname: string, address: string, underlay: Layout['underlay']): Promise<string | null> {
  const fam = underlayFamilies({ underlay });
  const a6 = fam.v6 ? mirror6(address, 24) : null;
  if (fam.v4) {
    await run(['ip', '-n', ns, '-batch', '-'], {
      input: [`addr flush dev ${ifname}`, `addr add ${address}/24 dev ${ifname}`, `link set ${ifname} up`, `route replace default via ${INTERNET_GW}`].join('\n') + '\n',
    });
  }
  if (a6) await run(['ip', '-n', ns, '-6', '-batch', '-'], { input: ipv6LinkBatch(ifname, a6, INTERNET6_GW).join('\n') + '\n' });
  return a6;
}

/** A NAT router restarts: conntrack flushed (its mappings are gone), neighbours forgotten, nftables rebuilt. */
async function natRestart(nat: NatLayout, layout: Layout): Promise<string> {
  const r = await run(inNs(nat.ns, [python(), '-I', '-S', '-c', CONNTRACK_FLUSH_PY]));
  await run(['ip', '-n', nat.ns, 'neigh', 'flush', 'all'], { okCodes: [0, 1, 2] });
  await run(inNs(nat.ns, ['nft', '-f', '-']), { input: natRulesetFor(layout, nat.type) });
  return `NAT router ${nat.name} restarted: ${Number(r.stdout.trim()) || 0} conntrack entries lost, nftables rebuilt`;
}

/**
 * Roaming: a public node or device moves to a new address on the internet; a NAT router (named, or the one a
 * hidden node or device sits behind) gets a new WAN address. Its peers still dial the old one until they hear
 * from it. Recorded in the layout.
 */
async function roam(layout: Layout, target: string): Promise<string> {
  const host = hostByName(layout, target);
  if (host && host.attach.kind === 'internet') {
    const old = host.address;
    const next = roamAddress(layout);
    const a6 = await readdress(host.ns, UNDERLAY_IF, next, layout.underlay);
    (host as HostLayout).address = next;
    if (a6) (host as HostLayout).address6 = a6;
    return `${target}: roamed from ${old} to ${next}${a6 ? ` (${a6})` : ''} (peers learn it from its packets; \`lab up\` re-plans with it)`;
  }
  const nat = natOf(layout, target);
  if (!nat) throw new ZmeshError('E_LAB_HOST', `lab ${layout.lab} has no node, device or NAT router ${target}`, { hint: 'one of: ' + [...layout.nodes, ...layout.devices, ...layout.nats].map((h) => h.name).join(', ') });
  const old = nat.wanAddress;
  const next = roamAddress(layout);
  // Removing the old address also drops the router's masquerade mappings (the kernel does so for a lost address).
  const a6 = await readdress(nat.ns, WAN_LINK, next, layout.underlay);
  nat.wanAddress = next;
  if (a6) nat.wanAddress6 = a6;
  const behind = [...layout.nodes, ...layout.devices].filter((h) => h.attach.kind === 'nat' && h.attach.nat === nat.name).map((h) => h.name);
  return `NAT router ${nat.name} (${behind.join(', ') || 'nobody'} behind it): WAN address ${old} → ${next}`;
}

/** Runs one of the extra faults (under the lab lock, which the caller holds). */
export async function extraFault(dir: string, state: LabState, target: string, kind: ExtraFaultKind): Promise<string> {
  const layout = state.layout!;
  if (kind === 'nat-restart') {
    const nat = natOf(layout, target);
    if (!nat) throw new ZmeshError('E_USAGE', `${target} is neither a NAT router nor behind one`, { hint: `one of: ${layout.nats.map((n) => n.name).join(', ') || '(this lab has no NAT router)'}` });
    return natRestart(nat, layout);
  }
  try {
    return await roam(layout, target);
  } finally {
    writeState(dir, state);
  }
}
