// IPv6 egress red team (issue #20, commit 2910822): the NAT66 egress of a dual-stack network attacked as a hostile
// tenant workload (a namespace on the tenant bridge: any address, neighbour entry or raw packet) and as a second
// tenant on the same host. Topology (namespaces of the test only; nothing touches the root namespace):
//   lab switch 203.0.113.0/24 + 2001:db8:1::/64: host h (u0 .1 / ::1, accept_ra=1, IPv6 forwarding off before the
//   first apply), the ISP router (.254 / ::fe) and a LAN neighbour of the host (.50 / ::50); behind the ISP the
//   outside 192.0.2.10 / 2001:db8:2::10.
//   On h: acme (10.61/16, fd00:61::/48, egress + egress6), globex (10.62/16, fd00:62::/48, egress + egress6),
//   initech (IPv4-only, egress, egress6 asked) and umbrella (10.64/16, fd00:64::/48, egress, not asked).
//   Workloads: wl on acme's bridge (the attacker), wg on globex's, wu on umbrella's.
//   Responders: TCP [::]:8022 (both families) in the host, the LAN neighbour, the ISP, the outside, globex's
//   namespace and globex's workload. A probe that connects or is refused (a RST came back) reached its target.
// Attacks, and what stops them:
//   - reach matrix from wl (TCP and ICMP): the host's uplink address and its subnet-router anycast, its LAN
//     (neighbour, router), the fc00:5a:: host end of its own pair and the pair's other addresses, globex's pair,
//     gateway and workload, IPv4-mapped and -compatible (::ffff:169.254.x.y, ::ffff:203.0.113.x, ::a9fe:x),
//     NAT64 (64:ff9b::/96, 64:ff9b:1::/48), 6to4 (2002::/16), Teredo (2001::/32), site-local, global multicast;
//     and from globex's workload the same toward acme — stopped (host input drop, egress-blocked6,
//     tenant-to-tenant). The pair's subnet-router anycast (fc00:5a::…:…0) answers echoes, but from the tenant
//     namespace (it forwards, so it holds the anycast too): the workload's own gateway, never the host;
//   - raw packets from wl: fragments, hop-by-hop, routing header type 0 and a segment routing header naming the
//     host or its LAN, ICMPv6 errors with a made-up inner flow, sources spoofed as its own or globex's transfer
//     address — stopped (fwd-spoof6, egress-spoof6, host input drop; nothing reaches the host, LAN, outside);
//   - the outside and the host's LAN opening connections in (routes to fc00:5a::/96 and the ULAs via the host),
//     unsolicited echo replies and ICMPv6 errors toward the tenant end — stopped (no-new-inbound, no route);
//   - neighbour discovery from wl toward the host (routed NS to the host end, the uplink, the LAN, many
//     sources/targets; one echo to each of 300 addresses of fc00:5a::/96 and the host's /64) — the host's
//     neighbour table does not grow, the tenant end's stays within its /126;
//   - router advertisements and a redirect from the tenant namespace itself onto the veth (defence in depth: the
//     namespace is the node's) — the host learns no route, prefix or address;
//   - IPv6 egress off: IPv4-only network asking for it, a dual-stack network not asking, on a host where IPv6
//     forwarding is on for another network — no transfer address, IPv6 stays in.
// Findings (fixed the same day; kept as tests — they failed before the fix):
//   F1 (fixed: both ND rules admit the pair's link-local sources, hop limit 255) the host resolves the tenant
//      end from its link-local address (Linux solicits from the address the queued
//      packet came from only when it is the host's own, else from the link's fe80::; forwarded replies never are),
//      and the tenant namespace's in-nd-outside admits only the host end's fc00:5a:: source: the host's entry for
//      the tenant end goes DELAY → PROBE → FAILED about 8 s into any flow, and every IPv6 reply from the outside is
//      dropped until the tenant namespace's own entry expires and it solicits again (15–45 s). Likewise the
//      tenant namespace's timer probes (fe80:: source) are dropped by the host's nd-from-tenant.
//   F2 (fixed: egressBlocked blocks each host address's own network, an IPv6 one's /64 at least) the host's
//      LAN is blocked only as far as the host has a route for it: an uplink address without a prefix
//      route (noprefixroute: SLAAC from an off-link prefix, a DHCPv6 /128 on a link whose RA has no on-link
//      prefix) leaves the rest of its /64 — the host's LAN neighbours — open to IPv6 egress.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { ApplyReport, DesiredResource } from '../../netns/index.ts';
import { delNs, ispAndOutside, makeNs, rand, sh, type ShResult, SimHost, Switch } from '../helpers/host.ts';
import { handPlan } from '../helpers/plan.ts';
import { CONNECT_PY, responderPy } from '../helpers/dual-probes.ts';

const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const BACKEND = (process.env.ZMESH_TEST_BACKEND as 'auto' | 'kernel' | 'userspace' | undefined) ?? 'auto';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function okReport(r: ApplyReport): void {
  assert.ok(r.ok, `apply failed: ${JSON.stringify([...r.resources.flatMap((x) => x.failures), ...r.removed.flatMap((x) => x.failures)], null, 1)}`);
}



/** One ICMPv6 echo to each address, in parallel (bounded: 2 s); prints the ones that answered as a JSON list. */
const PING_PY = `
import json, socket, struct, sys, time
dsts = json.loads(sys.argv[1])
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.settimeout(0.2)
for i, d in enumerate(dsts):
    try: s.sendto(struct.pack("!BBHHH", 128, 0, 0, 0x6a6a, i) + b"r6-ping", (d, 0))
    except OSError: pass
got = set()
end = time.time() + 2
while time.time() < end:
    try: b, a = s.recvfrom(2048)
    except OSError: continue
    if b[0] == 129 and struct.unpack("!H", b[4:6])[0] == 0x6a6a:
        seq = struct.unpack("!H", b[6:8])[0]
        if seq < len(dsts): got.add(dsts[seq])
print(json.dumps(sorted(got)))
`;

/**
 * Raw IPv6 packets (IPPROTO_RAW: the header is ours): [{src, dst, kind, port?, count?, segs?, inner?, target?,
 * mac?, hl?, ifname?}]. kind: icmp (echo request), syn (TCP SYN + 8 bytes), synfrag (the SYN in two fragments),
 * synhbh (behind a hop-by-hop header), rh0 / srh (an echo behind a routing header of type 0 / 4 listing `segs`),
 * err (ICMPv6 destination unreachable quoting a TCP packet inner = {src, dst, sport, dport}), ptb (packet too
 * big, same quote), ns (neighbour solicitation for `target` with our MAC, hop limit 255), echoreply.
 */
const RAW6_PY = `
import json, socket, struct, sys
def csum(b):
    if len(b) % 2: b += b"\\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
A = lambda x: socket.inet_pton(socket.AF_INET6, x)
def ip6(S, D, nh, payload, hl=64):
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), nh, hl, S, D) + payload
def icmp6(S, D, h):
    c = csum(S + D + struct.pack("!IxxxB", len(h), 58) + h)
    return h[:2] + struct.pack("!H", c) + h[4:]
def tcp(S, D, sport, dport, flags=0x02, data=b"r6-syn!!"):
    t = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 6 << 4, flags, 64240, 0, 0) + struct.pack("!BBH", 2, 4, 1200) + data
    c = csum(S + D + struct.pack("!IxxxB", len(t), 6) + t)
    return t[:16] + struct.pack("!H", c) + t[18:]
sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
sent = 0
for n, p in enumerate(json.loads(sys.argv[1])):
    S, D = A(p["src"]), A(p["dst"])
    kind = p["kind"]
    hl = int(p.get("hl", 64))
    if kind in ("icmp", "echoreply"):
        pkts = [ip6(S, D, 58, icmp6(S, D, struct.pack("!BBHHH", 128 if kind == "icmp" else 129, 0, 0, 0x7a5a, n & 0xffff) + b"r6-icmp6"), hl)]
    elif kind in ("rh0", "srh"):
        segs = [A(x) for x in p["segs"]]
        echo = icmp6(S, D, struct.pack("!BBHHH", 128, 0, 0, 0x7a5a, n & 0xffff) + b"r6-icmp6")
        if kind == "rh0":
            rh = struct.pack("!BBBBI", 58, 2 * len(segs), 0, len(segs), 0) + b"".join(segs)
        else:
            rh = struct.pack("!BBBBBBH", 58, 2 * len(segs), 4, len(segs) - 1, len(segs) - 1, 0, 0) + b"".join(reversed(segs))
        pkts = [ip6(S, D, 43, rh + echo, hl)]
    elif kind in ("err", "ptb"):
        i = p["inner"]
        IS, ID = A(i["src"]), A(i["dst"])
        inner = ip6(IS, ID, 6, tcp(IS, ID, i["sport"], i["dport"], 0x12, b""))
        head = struct.pack("!BBHI", 1, 4, 0, 0) if kind == "err" else struct.pack("!BBHI", 2, 0, 0, 1280)
        pkts = [ip6(S, D, 58, icmp6(S, D, head + inner), hl)]
    elif kind == "ns":
        M = bytes(int(x, 16) for x in p["mac"].split(":"))
        h = struct.pack("!BBHI", 135, 0, 0, 0) + A(p["target"]) + struct.pack("!BB", 1, 1) + M
        pkts = [ip6(S, D, 58, icmp6(S, D, h), 255)]
    else:
        t = tcp(S, D, 40000 + (n % 20000), p["port"])
        if kind == "syn":
            pkts = [ip6(S, D, 6, t, hl)]
        elif kind == "synhbh":
            pkts = [ip6(S, D, 0, struct.pack("!BBBB4x", 6, 0, 1, 4) + t, hl)]
        else:
            ident = 0x5a5a0000 + n
            f1 = struct.pack("!BxHI", 6, 0 | 1, ident) + t[:24]
            f2 = struct.pack("!BxHI", 6, (24 // 8) << 3, ident) + t[24:]
            pkts = [ip6(S, D, 44, f1, hl), ip6(S, D, 44, f2, hl)]
    scope = socket.if_nametoindex(p["ifname"]) if p.get("ifname") else 0
    for k in range(int(p.get("count", 3))):
        for pkt in pkts:
            try:
                sock.sendto(pkt, (p["dst"], 0, 0, scope)); sent += 1
            except OSError as e:
                pass
print("sent %d" % sent)
`;

/**
 * From the tenant namespace onto its egress veth (argv: ifname, our MAC, the host end's link-local address, the
 * outside's address): a router advertisement (default route, an autoconf prefix 2001:db8:bad::/64, a route
 * information option for 2001:db8:2::/64) to all nodes and to the host end, and a redirect for the outside,
 * from our link-local source with hop limit 255.
 */
const RA_PY = `
import socket, struct, sys
ifname, mac, hostll, far = sys.argv[1:5]
idx = socket.if_nametoindex(ifname)
M = bytes(int(x, 16) for x in mac.split(":"))
A = lambda x: socket.inet_pton(socket.AF_INET6, x)
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0x08, 9000, 0, 0)
ra += struct.pack("!BB", 1, 1) + M
ra += struct.pack("!BBBBIII", 3, 4, 64, 0xc0, 86400, 14400, 0) + A("2001:db8:bad::")
ra += struct.pack("!BBBBI", 24, 3, 64, 0x08, 86400) + A("2001:db8:2::")
redirect = struct.pack("!BBHI", 137, 0, 0, 0) + A(far) + A(far) + struct.pack("!BB", 2, 1) + M
for i in range(3):
    s.sendto(ra, ("ff02::1", 0, 0, idx))
    s.sendto(ra, (hostll, 0, 0, idx))
    s.sendto(redirect, (hostll, 0, 0, idx))
print("sent")
`;

/** Where a command runs: a namespace of the test (root-visible), the host, or a namespace made inside the host. */
type Where = { root: string } | { host: SimHost } | { host: SimHost; ns: string };

function run(w: Where, argv: string[], opts: { input?: string; okCodes?: number[]; timeoutMs?: number } = {}): Promise<ShResult> {
  if ('root' in w) return sh(['ip', 'netns', 'exec', w.root, ...argv], opts);
  if ('ns' in w) return w.host.execIn(w.ns, argv, opts);
  return w.host.exec(argv, opts);
}

/** A table of the test's own: counts packets matching each rule (match → name) on one hook. */
async function addSpy(w: Where, table: string, hook: string, priority: number, rules: [string, string][]): Promise<void> {
  const body = rules.map(([match, name]) => `\t\t${match} counter comment "${name}"`).join('\n');
  const text = `table inet ${table}\ndelete table inet ${table}\ntable inet ${table} {\n\tchain c {\n\t\ttype filter hook ${hook} priority ${priority}; policy accept;\n${body}\n\t}\n}\n`;
  await run(w, ['nft', '-f', '-'], { input: text });
}

async function readSpy(w: Where, table: string): Promise<Map<string, number>> {
  const r = await run(w, ['nft', '-j', 'list', 'table', 'inet', table]);
  const out = new Map<string, number>();
  for (const item of (JSON.parse(r.stdout) as { nftables: { rule?: { comment?: string; expr: { counter?: { packets: number } }[] } }[] }).nftables) {
    if (item.rule?.comment) out.set(item.rule.comment, item.rule.expr.find((e) => e.counter)?.counter?.packets ?? 0);
  }
  return out;
}

async function dropSpy(w: Where, table: string): Promise<void> {
  await run(w, ['nft', 'delete', 'table', 'inet', table], { okCodes: [0, 1] });
}

/** IPv6 neighbour entries of a namespace (optionally of one device), as lines. */
async function neigh6(w: Where, dev?: string): Promise<string[]> {
  const r = await run(w, ['ip', '-6', 'neigh', 'show', ...(dev ? ['dev', dev] : [])]);
  return r.stdout.split('\n').filter((l) => l.trim());
}

/** The IPv6 routes (all tables, but local/multicast/anycast) and addresses of a namespace: what RAs would change. */
async function routes6(w: Where): Promise<{ routes: string[]; addrs: string }> {
  const r = (await run(w, ['ip', '-6', 'route', 'show', 'table', 'all'])).stdout.split('\n').filter((l) => l.trim() && !/^(local|multicast|anycast) /.test(l));
  // Expiry counters tick: compare without them.
  return { routes: r.map((l) => l.replace(/ expires \d+sec/, '')).sort(), addrs: (await run(w, ['ip', '-6', '-br', 'addr'])).stdout.trim() };
}

/** Hex of an IPv4 address as the two low groups of an IPv6 address ("169.254.1.2" → "a9fe:102"). */
function v4hex(ip: string): string {
  const o = ip.split('.').map(Number);
  return `${((o[0] << 8) | o[1]).toString(16)}:${((o[2] << 8) | o[3]).toString(16)}`;
}

/** IPv6 address arithmetic for the /126 pair (a /96 prefix holds the IPv4 value in its low 32 bits). */
function pairAddr(addr6: string, delta: number): string {
  const [pfx, hi, lo] = /^(.*):([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(addr6.split('/')[0])!.slice(1);
  const v = ((parseInt(hi, 16) << 16) >>> 0) + parseInt(lo, 16) + delta;
  return `${pfx}:${(v >>> 16).toString(16)}:${(v & 0xffff).toString(16)}`;
}

test('IPv6 egress red team: a hostile workload and a second tenant against NAT66 egress', { timeout: 420_000 }, async (t) => {
  const sw = await Switch.create();
  let isp = '';
  let far = '';
  const lan = `zt-lan6r-${rand()}`;
  const [WL, WG, WU] = [`r6wl-${rand()}`, `r6wg-${rand()}`, `r6wu-${rand()}`];
  const procs: ChildProcess[] = [];
  let h: SimHost | null = null;
  try {
    h = await SimHost.start('r6', { backend: BACKEND });
    const host = h;
    ({ isp, far } = await ispAndOutside(sw, host, { ipv6: true }));
    await makeNs(lan);
    await sw.attach({ ns: lan, ifname: 'l0', addr: '203.0.113.50/24' });
    await sh(['ip', '-n', lan, 'addr', 'add', '2001:db8:1::50/64', 'dev', 'l0', 'nodad']);
    await sh(['ip', '-n', lan, 'route', 'add', '::/0', 'via', '2001:db8:1::fe']);
    await sh(['ip', '-n', lan, 'route', 'add', 'default', 'via', '203.0.113.254']);

    const acme = handPlan({ tenant: 'acme', ipRange: '10.61.0.0/16', ipv6Range: 'fd00:61::/48', egress: true, nodes: [{ node: 'h', underlay: '203.0.113.1' }] });
    const idn = acme.identity;
    const globex = handPlan({ tenant: 'globex', ipRange: '10.62.0.0/16', ipv6Range: 'fd00:62::/48', egress: true, basePort: 52820, nodes: [{ node: 'h', underlay: '203.0.113.1' }], identity: idn });
    const initech = handPlan({ tenant: 'initech', ipRange: '10.63.0.0/16', egress: true, basePort: 53820, nodes: [{ node: 'h', underlay: '203.0.113.1' }], identity: idn });
    const umbrella = handPlan({ tenant: 'umbrella', ipRange: '10.64.0.0/16', ipv6Range: 'fd00:64::/48', egress: true, basePort: 54820, nodes: [{ node: 'h', underlay: '203.0.113.1' }], identity: idn });
    const identity = idn.get('h')!;
    const desired: DesiredResource[] = [
      { ...acme.desired.get('h')!, egress6: true },
      { ...globex.desired.get('h')!, egress6: true },
      { ...initech.desired.get('h')!, egress6: true },
      umbrella.desired.get('h')!,
    ];
    const [A, G, I, U] = [acme, globex, initech, umbrella].map((n) => n.networkId);
    const first = await host.apply(desired, identity);
    okReport(first);
    const pair = (id: string) => {
      const act = first.resources.find((r) => r.networkId === id)!.actual!;
      const host4 = act.hostLink!.addresses.find((a) => !a.includes(':'))!.split('/')[0];
      const host6 = act.hostLink!.addresses.find((a) => a.includes(':'))?.split('/')[0] ?? null;
      const tenant6 = act.links.find((l) => l.name === `eg-${id}`)!.addresses.find((a) => a.includes(':'))?.split('/')[0] ?? null;
      return { host4, host6, tenant6 };
    };
    const pa = pair(A);
    const pg = pair(G);
    assert.ok(pa.host6 && pa.tenant6 && pg.host6 && pg.tenant6, 'acme and globex have IPv6 transfer pairs');
    t.diagnostic(`acme pair ${pa.host6} / ${pa.tenant6}, globex pair ${pg.host6} / ${pg.tenant6}`);

    // Workloads on the bridges of acme (the attacker), globex (the neighbour tenant) and umbrella (not asked).
    const attach = async (wl: string, id: string, v4: string, v6: string | null, mac: string) => {
      const ns = `n-${id}`;
      const mtu = (JSON.parse((await host.execIn(ns, ['ip', '-j', 'link', 'show', `b-${id}`])).stdout) as { mtu: number }[])[0].mtu;
      await host.exec(['ip', 'netns', 'add', wl]);
      await host.exec(['ip', '-n', wl, 'link', 'add', 'wl0', 'mtu', String(mtu), 'address', mac, 'type', 'veth', 'peer', 'name', `v${wl.slice(-6)}`, 'mtu', String(mtu), 'netns', ns]);
      await host.exec(['ip', '-n', ns, 'link', 'set', `v${wl.slice(-6)}`, 'master', `b-${id}`, 'up']);
      const gw4 = v4.replace(/\.\d+$/, '.1');
      const lines = ['link set lo up', 'link set wl0 up', `addr add ${v4}/24 dev wl0`, `route add default via ${gw4}`];
      if (v6) lines.push(`addr add ${v6}/64 dev wl0 nodad`, `route add default via ${v6.replace(/::\w+$/, '::1')}`);
      await host.exec(['ip', '-n', wl, '-batch', '-'], { input: lines.join('\n') + '\n' });
    };
    await attach(WL, A, '10.61.1.50', 'fd00:61:0:1::50', '02:00:00:61:01:50');
    await attach(WG, G, '10.62.1.50', 'fd00:62:0:1::50', '02:00:00:62:01:50');
    await attach(WU, U, '10.64.1.50', 'fd00:64:0:1::50', '02:00:00:64:01:50');
    const wl: Where = { host, ns: WL };

    const respond = async (prefix: string[], ports: string) => {
      const p = spawn(prefix[0], [...prefix.slice(1), PYTHON, '-I', '-S', '-c', responderPy('r6-banner'), '400', ports], { stdio: ['ignore', 'pipe', 'inherit'] });
      procs.push(p);
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('responder did not start')), 10_000);
        createInterface({ input: p.stdout! }).once('line', () => (clearTimeout(timer), resolve()));
      });
    };
    const inHost = (ns: string) => ['nsenter', `--mount=/proc/${host.anchorPid}/ns/mnt`, '--', 'nsenter', `--net=/run/netns/${ns}`, '--'];
    await respond(['ip', 'netns', 'exec', far], '8022');
    await respond(['ip', 'netns', 'exec', lan], '8022');
    await respond(['ip', 'netns', 'exec', isp], '8022');
    await respond(['nsenter', `--net=/proc/${host.anchorPid}/ns/net`, '--'], '8022');
    await respond(inHost(`n-${G}`), '8022');
    await respond(inHost(WG), '8022');

    const connect = async (w: Where, probes: { ip: string; port: number }[]) =>
      JSON.parse((await run(w, [PYTHON, '-I', '-S', '-c', CONNECT_PY, JSON.stringify(probes)], { timeoutMs: 20_000 })).stdout) as string[];
    const pings = async (w: Where, dsts: string[]) => JSON.parse((await run(w, [PYTHON, '-I', '-S', '-c', PING_PY, JSON.stringify(dsts)], { timeoutMs: 20_000 })).stdout) as string[];
    const raw = async (w: Where, pkts: Record<string, unknown>[]) => (await run(w, [PYTHON, '-I', '-S', '-c', RAW6_PY, JSON.stringify(pkts)], { timeoutMs: 30_000 })).stdout.trim();
    // F1 (below) makes the host forget the tenant end ~8 s into any IPv6 flow, until the tenant namespace solicits
    // again: the controls re-solicit first (forget the tenant side's entries), so they test the walls, not F1.
    const resolicit = async (id: string) => {
      await host.execIn(`n-${id}`, ['ip', '-6', 'neigh', 'flush', 'dev', `eg-${id}`], { okCodes: [0, 1, 2] });
    };
    const hostSpyRules = (id: string): [string, string][] => [
      // After the filter hook: what from the tenant's veth got into the host (ND from the tenant end aside).
      [`iifname "ze-${id}" icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert }`, 'nd'],
      [`iifname "ze-${id}" meta nfproto ipv6`, 'ipv6-in'],
    ];

    await t.test('controls: IPv6 egress works for acme and globex; NAT66 to the uplink address', async () => {
      await resolicit(A);
      await resolicit(G);
      const [a, g] = [await connect(wl, [{ ip: '2001:db8:2::10', port: 8022 }]), await connect({ host, ns: WG }, [{ ip: '2001:db8:2::10', port: 8022 }])];
      assert.match(a[0], /^reached r6-banner/, `acme → outside: ${a[0]}`);
      assert.match(g[0], /^reached r6-banner/, `globex → outside: ${g[0]}`);
      assert.deepEqual(await pings(wl, ['2001:db8:2::10']), ['2001:db8:2::10']);
    });

    await t.test('reach matrix: the host, its LAN, the transfer pairs, another tenant, mapped/NAT64/6to4/Teredo shapes', async () => {
      await addSpy({ host }, 'r6hin', 'input', 10, [...hostSpyRules(A), ...hostSpyRules(G).map(([m, n]) => [m, `g-${n}`] as [string, string])]);
      await addSpy({ root: lan }, 'r6lan', 'prerouting', -300, [['meta nfproto ipv6 ip6 saddr != fe80::/10 icmpv6 type != { nd-neighbor-solicit, nd-neighbor-advert, mld-listener-report, mld2-listener-report }', 'lan-in6']]);
      await addSpy({ host, ns: `n-${G}` }, 'r6gx', 'prerouting', -300, [[`ip6 saddr { fd00:61::/48, ${pa.tenant6}, 2001:db8:1::1 }`, 'from-acme']]);
      const h4 = v4hex(pa.host4);
      const targets: { ip: string; what: string }[] = [
        { ip: '2001:db8:1::1', what: 'the host uplink address' },
        { ip: '2001:db8:1::', what: "the host's subnet-router anycast on its uplink" },
        { ip: '2001:db8:1::50', what: "the host's LAN neighbour" },
        { ip: '2001:db8:1::fe', what: "the ISP router on the host's LAN" },
        { ip: pa.host6!, what: 'the host end of its own pair' },
        // Both ends forward, so both hold it: the tenant namespace (the workload's own gateway) answers echoes to it,
        // the host must not (the host input spy below).
        { ip: pairAddr(pa.host6!, -1), what: "its pair's subnet-router anycast" },
        { ip: pairAddr(pa.host6!, 2), what: "its pair's fourth address" },
        { ip: pg.host6!, what: "the host end of globex's pair" },
        { ip: pg.tenant6!, what: "globex's tenant end" },
        { ip: 'fd00:62:0:1::1', what: "globex's gateway6" },
        { ip: 'fd00:62:0:1::50', what: "globex's workload" },
        { ip: `::ffff:${pa.host4}`, what: 'IPv4-mapped host end (169.254)' },
        { ip: '::ffff:203.0.113.1', what: 'IPv4-mapped uplink' },
        { ip: '::ffff:203.0.113.50', what: 'IPv4-mapped LAN neighbour' },
        { ip: `::${h4}`, what: 'IPv4-compatible host end' },
        { ip: '64:ff9b::cb00:7101', what: 'NAT64 of the uplink' },
        { ip: `64:ff9b::${h4}`, what: 'NAT64 of the host end' },
        { ip: '64:ff9b:1::cb00:7101', what: 'local-use NAT64 of the uplink' },
        { ip: '2002:cb00:7101::1', what: '6to4 of the uplink' },
        { ip: `2002:${h4}::1`, what: '6to4 of the host end' },
        { ip: '2001:0:cb00:7101::34ff:8efe', what: 'Teredo (server = client = the uplink)' },
        { ip: 'fec0::1', what: 'site-local' },
        { ip: 'ff0e::1', what: 'global-scope multicast' },
      ];
      await addSpy({ host, ns: `n-${A}` }, 'r6any', 'input', 10, [[`ip6 daddr ${pairAddr(pa.host6!, -1)} icmpv6 type echo-request`, 'own-anycast']]);
      await resolicit(A);
      const tcp = await connect(wl, targets.filter((x) => !x.ip.startsWith('ff')).map((x) => ({ ip: x.ip, port: 8022 })));
      const icmp = await pings(wl, targets.map((x) => x.ip));
      const tcpBy = new Map(targets.filter((x) => !x.ip.startsWith('ff')).map((x, i) => [x.ip, tcp[i]]));
      const exposed = targets.flatMap((x) => [
        ...((tcpBy.get(x.ip) ?? '').startsWith('reached') ? [`${x.what} (${x.ip}) tcp: ${tcpBy.get(x.ip)}`] : []),
        ...(icmp.includes(x.ip) && x.ip !== pairAddr(pa.host6!, -1) ? [`${x.what} (${x.ip}) answers pings`] : []),
      ]);
      const anycast = await readSpy({ host, ns: `n-${A}` }, 'r6any');
      await dropSpy({ host, ns: `n-${A}` }, 'r6any');
      if (icmp.includes(pairAddr(pa.host6!, -1)) && (anycast.get('own-anycast') ?? 0) === 0) exposed.push("the pair's subnet-router anycast answered, not from the tenant namespace");
      // And from globex's workload toward acme.
      const back = [
        { ip: pa.tenant6!, what: "acme's tenant end" },
        { ip: pa.host6!, what: "the host end of acme's pair" },
        { ip: 'fd00:61:0:1::50', what: "acme's workload" },
        { ip: 'fd00:61:0:1::1', what: "acme's gateway6" },
      ];
      await resolicit(G);
      const gout = await connect({ host, ns: WG }, back.map((x) => ({ ip: x.ip, port: 8022 })));
      const gping = await pings({ host, ns: WG }, back.map((x) => x.ip));
      exposed.push(...back.flatMap((x, i) => [...(gout[i].startsWith('reached') ? [`globex → ${x.what}: ${gout[i]}`] : []), ...(gping.includes(x.ip) ? [`globex → ${x.what} answers pings`] : [])]));
      const hin = await readSpy({ host }, 'r6hin');
      const lanIn = await readSpy({ root: lan }, 'r6lan');
      const gx = await readSpy({ host, ns: `n-${G}` }, 'r6gx');
      t.diagnostic(`host input spy ${JSON.stringify([...hin])}; LAN ${JSON.stringify([...lanIn])}; globex ${JSON.stringify([...gx])}`);
      assert.deepEqual(exposed, []);
      assert.equal((hin.get('ipv6-in') ?? 0) - (hin.get('nd') ?? 0), 0, 'nothing but ND from the tenant end got into the host');
      assert.equal((hin.get('g-ipv6-in') ?? 0) - (hin.get('g-nd') ?? 0), 0, 'nor from globex');
      assert.equal(lanIn.get('lan-in6'), 0, 'nothing reached the LAN neighbour over IPv6');
      assert.equal(gx.get('from-acme'), 0, "nothing of acme's reached globex's namespace");
      await dropSpy({ root: lan }, 'r6lan');
      await dropSpy({ host, ns: `n-${G}` }, 'r6gx');
    });

    await t.test('raw packets: fragments, hop-by-hop, routing headers, ICMPv6 errors, spoofed transfer sources', async () => {
      await addSpy({ root: lan }, 'r6lan', 'prerouting', -300, [['ip6 saddr != fe80::/10 icmpv6 type != { nd-neighbor-solicit, nd-neighbor-advert, mld-listener-report, mld2-listener-report }', 'lan-icmp'], ['ip6 saddr != fe80::/10 meta l4proto != ipv6-icmp', 'lan-other']]);
      await addSpy({ root: far }, 'r6far', 'prerouting', -300, [
        ['icmpv6 type { destination-unreachable, packet-too-big }', 'errors'],
        ['ip6 saddr != 2001:db8:1::1 ip6 saddr != fe80::/10', 'not-nat66'],
        ['ip6 saddr 2001:db8:1::1 icmpv6 type echo-request', 'echo'],
      ]);
      await addSpy({ host, ns: `n-${G}` }, 'r6gx', 'prerouting', -300, [['ip6 saddr != fe80::/10 meta nfproto ipv6 icmpv6 type != { nd-neighbor-solicit, nd-neighbor-advert, mld-listener-report, mld2-listener-report }', 'gx-in6']]);
      const me = 'fd00:61:0:1::50';
      const blocked = ['2001:db8:1::1', '2001:db8:1::50', pa.host6!, pg.tenant6!];
      await resolicit(A);
      const out = await raw(wl, [
        // Control: an echo to the outside (NAT66'd, counted as "echo").
        { src: me, dst: '2001:db8:2::10', kind: 'icmp' },
        ...blocked.flatMap((dst) => ['icmp', 'syn', 'synfrag', 'synhbh'].map((kind) => ({ src: me, dst, kind, port: 8022 }))),
        // Routing headers: to the host end / the outside, the segments naming the host, its LAN, globex.
        { src: me, dst: pa.host6!, kind: 'rh0', segs: ['2001:db8:1::50', pg.tenant6!] },
        { src: me, dst: pa.host6!, kind: 'srh', segs: ['2001:db8:1::50', '2001:db8:1::1'] },
        { src: me, dst: '2001:db8:1::1', kind: 'srh', segs: ['2001:db8:1::50'] },
        { src: me, dst: '2001:db8:2::10', kind: 'rh0', segs: ['2001:db8:1::50'] },
        // ICMPv6 errors out, quoting flows that never were (no conntrack entry: not NATed, not "related").
        { src: me, dst: '2001:db8:2::10', kind: 'err', inner: { src: '2001:db8:2::10', dst: me, sport: 8022, dport: 40000 } },
        { src: me, dst: '2001:db8:2::10', kind: 'ptb', inner: { src: '2001:db8:2::10', dst: me, sport: 8022, dport: 40001 } },
        { src: me, dst: '2001:db8:1::50', kind: 'err', inner: { src: '2001:db8:1::50', dst: me, sport: 8022, dport: 40002 } },
        // Sources: its own pair's tenant end, globex's tenant end, the host's uplink, an unspecified source.
        ...[pa.tenant6!, pg.tenant6!, '2001:db8:1::1', '::', '::ffff:169.254.0.2'].map((src) => ({ src, dst: '2001:db8:2::10', kind: 'syn', port: 8022 })),
      ]);
      t.diagnostic(`raw: ${out}`);
      await sleep(700);
      const lanIn = await readSpy({ root: lan }, 'r6lan');
      const farIn = await readSpy({ root: far }, 'r6far');
      const gx = await readSpy({ host, ns: `n-${G}` }, 'r6gx');
      const hin = await readSpy({ host }, 'r6hin');
      t.diagnostic(`LAN ${JSON.stringify([...lanIn])}; outside ${JSON.stringify([...farIn])}; globex ${JSON.stringify([...gx])}; host input ${JSON.stringify([...hin])}`);
      assert.ok((farIn.get('echo') ?? 0) >= 1, 'control: the plain echo got out, NATed');
      assert.equal(farIn.get('errors'), 0, 'no made-up ICMPv6 error left');
      assert.equal(farIn.get('not-nat66'), 0, 'nothing reached the outside with a source other than the uplink address');
      assert.equal((lanIn.get('lan-icmp') ?? 0) + (lanIn.get('lan-other') ?? 0), 0, 'nothing reached the LAN');
      assert.equal(gx.get('gx-in6'), 0, "nothing reached globex's namespace");
      assert.equal((hin.get('ipv6-in') ?? 0) - (hin.get('nd') ?? 0), 0, 'nothing but ND got into the host');
      for (const [w, n] of [[{ root: lan }, 'r6lan'], [{ root: far }, 'r6far'], [{ host, ns: `n-${G}` }, 'r6gx']] as [Where, string][]) await dropSpy(w, n);
    });

    await t.test('the outside and the LAN open nothing: routes to the pairs and the ULAs via the host, unsolicited replies and errors', async () => {
      await addSpy({ host, ns: `n-${A}` }, 'r6ain', 'prerouting', -300, [[`iifname "eg-${A}" ip6 saddr != fe80::/10 ip6 saddr != ${pa.host6} icmpv6 type != { nd-neighbor-solicit, nd-neighbor-advert }`, 'in-icmp'], [`iifname "eg-${A}" meta l4proto tcp`, 'in-tcp']]);
      for (const ns of [isp, lan, far]) {
        const via = ns === far ? '2001:db8:2::1' : '2001:db8:1::1';
        for (const dst of ['fc00:5a::/96', 'fd00:61::/48', 'fd00:62::/48']) await sh(['ip', '-n', ns, 'route', 'replace', dst, 'via', via]);
      }
      const targets = [pa.tenant6!, pg.tenant6!, 'fd00:61:0:1::50', 'fd00:61:0:1::1', 'fd00:62:0:1::50'];
      const exposed: string[] = [];
      for (const ns of [far, lan, isp]) {
        const tcp = await connect({ root: ns }, targets.map((ip) => ({ ip, port: 8022 })));
        const icmp = await pings({ root: ns }, targets);
        exposed.push(...targets.flatMap((ip, i) => [...(tcp[i].startsWith('reached') ? [`${ns} → ${ip} tcp: ${tcp[i]}`] : []), ...(icmp.includes(ip) ? [`${ns} → ${ip} ping`] : [])]));
      }
      const src = '2001:db8:2::10';
      await raw({ root: far }, [
        { src, dst: pa.tenant6!, kind: 'echoreply' },
        { src, dst: pa.tenant6!, kind: 'err', inner: { src: pa.tenant6!, dst: src, sport: 40000, dport: 8022 } },
        { src, dst: pa.tenant6!, kind: 'synfrag', port: 22 },
        { src, dst: pa.tenant6!, kind: 'ns', target: pa.tenant6!, mac: '02:00:00:00:0f:0f' },
        { src: pa.host6!, dst: pa.tenant6!, kind: 'icmp' },
        { src, dst: '2001:db8:1::1', kind: 'err', inner: { src: '2001:db8:1::1', dst: src, sport: 40000, dport: 8022 } },
      ]);
      await sleep(500);
      const ain = await readSpy({ host, ns: `n-${A}` }, 'r6ain');
      t.diagnostic(`into acme's namespace from the veth: ${JSON.stringify([...ain])}`);
      assert.deepEqual(exposed, []);
      assert.equal((ain.get('in-icmp') ?? 0) + (ain.get('in-tcp') ?? 0), 0, 'nothing from the outside arrived at the tenant end');
      await dropSpy({ host, ns: `n-${A}` }, 'r6ain');
      for (const ns of [isp, lan, far]) for (const dst of ['fc00:5a::/96', 'fd00:61::/48', 'fd00:62::/48']) await sh(['ip', '-n', ns, 'route', 'del', dst], { okCodes: [0, 1, 2] });
    });

    await t.test("neighbour discovery toward the host: its neighbour table does not grow; the tenant end's stays within its /126", async () => {
      const before = await neigh6({ host });
      const me = 'fd00:61:0:1::50';
      const mac = '02:00:00:61:01:50';
      const pkts: Record<string, unknown>[] = [];
      // 600 routed NS (hop limit 255 sent, 254 on arrival), sources spread over its /64, targets everywhere.
      for (let i = 0; i < 200; i++) {
        const s = `fd00:61:0:1::${(0x100 + i).toString(16)}`;
        pkts.push({ src: s, dst: pa.host6!, kind: 'ns', target: pairAddr(pa.host6!, 2 + (i % 2)), mac, count: 1 });
        pkts.push({ src: s, dst: '2001:db8:1::1', kind: 'ns', target: `2001:db8:1::${(0x1000 + i).toString(16)}`, mac, count: 1 });
        pkts.push({ src: s, dst: `ff02::1:ff00:${(0x100 + i).toString(16)}`, kind: 'ns', target: `fe80::${(0x100 + i).toString(16)}`, mac, count: 1, ifname: 'wl0' });
      }
      // One echo to each of 300 destinations the host would have to resolve: its /64, the transfer /96, the pair.
      for (let i = 0; i < 150; i++) pkts.push({ src: me, dst: `2001:db8:1::${(0x2000 + i).toString(16)}`, kind: 'icmp', count: 1 });
      for (let i = 0; i < 146; i++) pkts.push({ src: me, dst: pairAddr(pa.host6!, 0x100 + i * 4), kind: 'icmp', count: 1 });
      for (let i = -1; i < 3; i++) pkts.push({ src: me, dst: pairAddr(pa.host6!, i), kind: 'icmp', count: 1 });
      t.diagnostic(`${pkts.length} packets: ${await raw(wl, pkts)}`);
      await sleep(1500);
      const after = await neigh6({ host });
      const onPair = await neigh6({ host, ns: `n-${A}` }, `eg-${A}`);
      t.diagnostic(`host neighbours before ${before.length}, after ${after.length}: ${after.join(' | ')}\ntenant end's: ${onPair.join(' | ')}`);
      const fresh = after.filter((l) => !before.some((b) => b.split(' ')[0] === l.split(' ')[0]));
      // The tenant end itself (its own solicitations) is the only neighbour the host may have learnt on the veth.
      assert.deepEqual(fresh.filter((l) => !l.startsWith(`${pa.tenant6} `)), [], 'no neighbour entry from the workload');
      assert.ok(onPair.length <= 4, `the tenant namespace resolves at most its /126 on the veth: ${onPair.join(' | ')}`);
    });

    await t.test('router advertisements and a redirect from the tenant namespace onto the veth change nothing on the host', async () => {
      const ze = `ze-${A}`;
      const hostLL = (JSON.parse((await host.exec(['ip', '-6', '-j', 'addr', 'show', 'dev', ze])).stdout) as { addr_info: { local: string; scope: string }[] }[])[0]?.addr_info.find((x) => x.scope === 'link')?.local;
      assert.ok(hostLL, 'the host end has a link-local address');
      const sys = (await host.exec(['sysctl', '-n', `net.ipv6.conf.${ze}.accept_ra`, `net.ipv6.conf.${ze}.forwarding`, 'net.ipv6.conf.u0.accept_ra'])).stdout.trim().split('\n');
      t.diagnostic(`host end accept_ra ${sys[0]}, forwarding ${sys[1]}; uplink accept_ra ${sys[2]}`);
      const before = await routes6({ host });
      const egMac = (JSON.parse((await host.execIn(`n-${A}`, ['ip', '-j', 'link', 'show', `eg-${A}`])).stdout) as { address: string }[])[0].address;
      const r = await host.execIn(`n-${A}`, [PYTHON, '-I', '-S', '-c', RA_PY, `eg-${A}`, egMac, `${hostLL}%${ze}`.split('%')[0], '2001:db8:2::10'], { timeoutMs: 10_000 });
      assert.equal(r.stdout.trim(), 'sent');
      await sleep(1000);
      const after = await routes6({ host });
      assert.deepEqual(after.routes, before.routes, 'no route learnt from the tenant side');
      assert.equal(after.addrs, before.addrs, 'no address autoconfigured');
      assert.doesNotMatch(after.addrs, /2001:db8:bad/);
    });

    await t.test('IPv6 egress stays off: an IPv4-only network asking for it, a dual-stack network not asking', async () => {
      const act = (id: string) => first.resources.find((r) => r.networkId === id)!.actual!;
      assert.ok(!act(I).hostLink!.addresses.some((a) => a.includes(':')), `initech: ${JSON.stringify(act(I).hostLink)}`);
      assert.ok(!act(U).hostLink!.addresses.some((a) => a.includes(':')), `umbrella: ${JSON.stringify(act(U).hostLink)}`);
      assert.ok(!act(I).routes.some((x) => x.dst === '::/0') && !act(U).routes.some((x) => x.dst === '::/0'));
      const rules = (await host.exec(['nft', 'list', 'table', 'inet', `zmesh_h_${U}`])).stdout;
      assert.match(rules, /egress-v6"/, "umbrella's host table drops IPv6 from its veth");
      assert.doesNotMatch(rules, /nd-from-tenant|masquerade6/);
      assert.equal((await host.exec(['sysctl', '-n', 'net.ipv6.conf.all.forwarding'])).stdout.trim(), '1', 'IPv6 forwarding is on for acme');
      const out = await connect({ host, ns: WU }, [{ ip: '2001:db8:2::10', port: 8022 }, { ip: '192.0.2.10', port: 8022 }]);
      assert.match(out[0], /^blocked/, `umbrella's workload over IPv6: ${out[0]}`);
      assert.match(out[1], /^reached r6-banner/, `control: umbrella's IPv4 egress: ${out[1]}`);
      const again = await host.apply(desired, identity);
      okReport(again);
      assert.equal(again.commands.mutating, 0, `a re-apply is a no-op: ${again.mutations.join('\n')}`);
    });

    await t.test(
      "F1: IPv6 replies keep coming past the host's neighbour timers (it solicits the tenant end from its link-local address)",
      async () => {
        await addSpy({ host, ns: `n-${A}` }, 'r6nd', 'prerouting', -300, [
          [`iifname "eg-${A}" ip6 saddr fe80::/10 icmpv6 type nd-neighbor-solicit`, 'ns-from-link-local'],
          [`iifname "eg-${A}" ip6 saddr ${pa.host6} icmpv6 type nd-neighbor-solicit`, 'ns-from-host-end'],
        ]);
        await addSpy({ host }, 'r6nd', 'prerouting', -300, [[`iifname "ze-${A}" ip6 saddr fe80::/10 icmpv6 type nd-neighbor-solicit`, 'tenant-ns-from-link-local']]);
        await resolicit(A);
        const log: string[] = [];
        const t0 = Date.now();
        let lost = 0;
        // One echo a second for 16 s (bounded): a long-lived flow as the host sees it.
        for (let i = 0; i < 16; i++) {
          const ok = (await pings(wl, ['2001:db8:2::10'])).length === 1;
          if (!ok) lost++;
          log.push(`${((Date.now() - t0) / 1000).toFixed(1)}s ${ok ? 'ok' : 'LOST'} host: ${(await neigh6({ host }, `ze-${A}`)).join(' | ')}`);
          if (ok) await sleep(1000);
        }
        const nd = await readSpy({ host, ns: `n-${A}` }, 'r6nd');
        const back = await readSpy({ host }, 'r6nd');
        const drops = (await host.readActual(A)).firewall!.rules.find((x) => x.tag === 'in-drop-outside');
        t.diagnostic(`${log.join('\n')}\nsolicitations arriving at the tenant end: ${JSON.stringify([...nd])}; in-drop-outside: ${JSON.stringify(drops)}; the tenant end's from fe80:: at the host (dropped by tenant-to-host): ${JSON.stringify([...back])}`);
        await dropSpy({ host, ns: `n-${A}` }, 'r6nd');
        await dropSpy({ host }, 'r6nd');
        assert.equal(lost, 0, `${lost} of 16 echoes to the outside lost; the host's solicitations from fe80:: dropped by in-drop-outside (${nd.get('ns-from-link-local')})`);
      },
    );

    await t.test(
      "F2: an uplink address without a prefix route (noprefixroute / off-link SLAAC / DHCPv6 /128): the rest of its /64, the LAN, stays out",
      async () => {
        // The host's uplink as on a link whose router advertises its prefix off-link: the same address, no /64 route;
        // the default route via the router's link-local address (as an RA gives it).
        const ispLL = (JSON.parse((await sh(['ip', '-n', isp, '-6', '-j', 'addr', 'show', 'dev', 'r0'])).stdout) as { addr_info: { local: string; scope: string }[] }[])[0].addr_info.find((x) => x.scope === 'link')!.local;
        await host.exec(['ip', '-6', 'route', 'del', '::/0']);
        await host.exec(['ip', '-6', 'addr', 'del', '2001:db8:1::1/64', 'dev', 'u0']);
        await host.exec(['ip', '-6', 'addr', 'add', '2001:db8:1::1/64', 'dev', 'u0', 'nodad', 'noprefixroute']);
        await host.exec(['ip', '-6', 'route', 'add', '::/0', 'via', ispLL, 'dev', 'u0']);
        try {
          okReport(await host.apply(desired, identity));
          const set = (await host.exec(['nft', 'list', 'set', 'inet', `zmesh_h_${A}`, 'blocked6'])).stdout.replace(/\s+/g, ' ');
          t.diagnostic(`blocked6: ${set}`);
          await resolicit(A);
          const [control] = await connect(wl, [{ ip: '2001:db8:2::10', port: 8022 }]);
          assert.match(control, /^reached r6-banner/, `control: the outside still: ${control}`);
          const out = await connect(wl, [{ ip: '2001:db8:1::50', port: 8022 }, { ip: '2001:db8:1::fe', port: 8022 }]);
          t.diagnostic(`the LAN neighbour: ${out[0]}; the router on the LAN: ${out[1]}`);
          assert.deepEqual(out.filter((x) => x.startsWith('reached')), [], "the host's LAN over IPv6 egress");
        } finally {
          await host.exec(['ip', '-6', 'route', 'del', '::/0'], { okCodes: [0, 1, 2] });
          await host.exec(['ip', '-6', 'addr', 'del', '2001:db8:1::1/64', 'dev', 'u0'], { okCodes: [0, 1, 2] });
          await host.exec(['ip', '-6', 'addr', 'add', '2001:db8:1::1/64', 'dev', 'u0', 'nodad']);
          await host.exec(['ip', '-6', 'route', 'add', '::/0', 'via', '2001:db8:1::fe', 'dev', 'u0']);
          okReport(await host.apply(desired, identity));
        }
      },
    );

    await t.test('removal leaves nothing behind', async () => {
      for (const ns of [WL, WG, WU]) await host.exec(['ip', 'netns', 'del', ns], { okCodes: [0, 1, 255] });
      await dropSpy({ host }, 'r6hin');
      okReport(await host.apply([], identity));
      assert.deepEqual(await host.listOwned(), []);
      assert.doesNotMatch((await host.exec(['nft', 'list', 'tables'])).stdout, /zmesh_/);
      assert.doesNotMatch((await host.exec(['ip', '-6', 'addr'])).stdout, /fc00:5a:/);
    });
  } finally {
    for (const p of procs) if (p.pid && p.exitCode === null) p.kill('SIGKILL');
    if (h) for (const ns of [WL, WG, WU]) await h.exec(['ip', 'netns', 'del', ns], { okCodes: [0, 1, 255] }).catch(() => undefined);
    if (h) await h.close().catch(() => undefined);
    for (const ns of [isp, far, lan].filter(Boolean)) await delNs(ns).catch(() => undefined);
    await sw.destroy().catch(() => undefined);
  }
});
