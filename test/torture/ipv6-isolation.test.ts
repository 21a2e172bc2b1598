// IPv6 isolation (issue #20, red team): the dual-stack data plane attacked as a hostile tenant (a workload on
// the bridge) and as a hostile node (valid WireGuard key, its own rules flushed, its allowed-ips widened).
// Topology (namespaces of the test only): host a (SimHost) on the lab internet 203.0.113.0/24 and
// 2001:db8:1::/64 (plus a ULA fd99::1 on the same interface), IPv6 default route via the ISP router to the
// outside 2001:db8:2::10 (and 192.0.2.10); host b on the same switch. Tenant acme (10.91.0.0/16,
// fd00:91::/48, egress on) spans a and b; tenant globex (10.92.0.0/16, fd00:92::/48, egress on) is on a.
// Responders (TCP on [::]:8022, both families) in the host a namespace, the outside and globex's namespace.
// Every probe that answers is an exposure. The attacks:
//   - a workload reaching host a (its ULA, its global address), the outside over IPv6 (egress is IPv4 only),
//     NAT64- and 6to4-shaped destinations, another tenant's range6;
//   - the tenant namespace itself with an IPv6 default route (drift) by the egress veth: tenant and host
//     `egress-v6` drop, and the host veth's link-local address is not a way into the host (host input drop);
//   - router advertisements, a redirect and a neighbour advertisement overriding gateway6 from the workload:
//     the tenant namespace's routes and addresses stay as they were;
//   - raw IPv6 packets with spoofed sources (::, ::ffff:10.x, fe80::, another tenant's range6, another node's
//     subnet6) and IPv4-mapped destinations from the workload: nothing reaches b;
//   - a default-deny policy: TCP over IPv6 to a denied port of the node is denied from the workload's ULA, from
//     its link-local source, and to the bridge's link-local address; a TCP SYN inside fragments or behind a
//     hop-by-hop header to a denied port does not pass either (an allowed port's does: the control);
//   - an IPv4-only network (ipv6: false) has IPv6 link-local addresses all the same: a workload's router
//     advertisement gave its tenant namespace an address and a default route (no IPv6 forwarding there, so the
//     kernel took it; fixed: `in-ra`), and the bridge's fe80:: address reached what listens on [::] past an IPv4
//     default-deny policy (fixed: pol-other-family guards link-local destinations); a re-apply stays a no-op;
//   - a hostile node b: spoofed IPv6 sources through the tunnel (a's subnet6, globex's range6, fe80::, ::ffff:,
//     ::) never arrive at a; destinations outside the tenant's range6 (a's host ULA, globex, the outside) reached
//     through the tunnel with b's own source go nowhere.
// Found and fixed here: link-local sources and destinations went around a dual-stack policy (pol-outside6 and
// pol-not-guarded6 now police fe80::/10), and the two IPv4-only holes above.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { ApplyReport } from '../../netns/index.ts';
import { addressMac } from '../../netns/ip.ts';
import type { CompiledPolicy } from '../../src/plan/policy.ts';
import { delNs, ispAndOutside, sh, SimHost, Switch } from '../helpers/host.ts';
import { handPlan } from '../helpers/plan.ts';
import { CONNECT_PY, responderPy } from '../helpers/dual-probes.ts';

const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const BACKEND = (process.env.ZMESH_TEST_BACKEND as 'auto' | 'kernel' | 'userspace' | undefined) ?? 'auto';

function okReport(r: ApplyReport): void {
  assert.ok(r.ok, `apply failed: ${JSON.stringify([...r.resources.flatMap((x) => x.failures), ...r.removed.flatMap((x) => x.failures)], null, 1)}`);
}



/**
 * Raw IPv6 packets (IPPROTO_RAW: the header is ours): [{src, dst, kind, port?, count?}], kind icmp (echo
 * request), syn (TCP SYN with an MSS option and 8 bytes of data), synfrag (the same SYN in two fragments: the
 * whole TCP header in the first, the data in the second), synhbh (the SYN behind a hop-by-hop header).
 */
const RAW6_PY = `
import json, socket, struct, sys
def csum(b):
    if len(b) % 2: b += b"\\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
def ip6(S, D, nh, payload):
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), nh, 64, S, D) + payload
sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
for n, p in enumerate(json.loads(sys.argv[1])):
    S, D = socket.inet_pton(socket.AF_INET6, p["src"]), socket.inet_pton(socket.AF_INET6, p["dst"])
    kind = p["kind"]
    if kind == "icmp":
        h = struct.pack("!BBHHH", 128, 0, 0, 0x7a5a, n) + b"r1-icmp6"
        c = csum(S + D + struct.pack("!IxxxB", len(h), 58) + h)
        pkts = [ip6(S, D, 58, h[:2] + struct.pack("!H", c) + h[4:])]
    else:
        t = struct.pack("!HHIIBBHHH", 40000 + n, p["port"], 1, 0, 6 << 4, 0x02, 64240, 0, 0) + struct.pack("!BBH", 2, 4, 1200) + b"r1-syn!!"
        c = csum(S + D + struct.pack("!IxxxB", len(t), 6) + t)
        t = t[:16] + struct.pack("!H", c) + t[18:]
        if kind == "syn":
            pkts = [ip6(S, D, 6, t)]
        elif kind == "synhbh":
            pkts = [ip6(S, D, 0, struct.pack("!BBBB4x", 6, 0, 1, 4) + t)]
        else:
            ident = 0x5a5a0000 + n
            f1 = struct.pack("!BxHI", 6, 0 | 1, ident) + t[:24]
            f2 = struct.pack("!BxHI", 6, (24 // 8) << 3, ident) + t[24:]
            pkts = [ip6(S, D, 44, f1), ip6(S, D, 44, f2)]
    for i in range(int(p.get("count", 3))):
        for pkt in pkts:
            try:
                sock.sendto(pkt, (p["dst"], 0))
            except OSError as e:
                print("send %s: %s" % (p["dst"], e))
`;

/**
 * From a workload: a router advertisement (default route, a prefix to autoconfigure, a route information option)
 * to all nodes, a redirect to the gateway's link-local address, an unsolicited override neighbour advertisement
 * for gateway6. argv: ifname, gateway6, the bridge's link-local address, our MAC.
 */
const ND_PY = `
import socket, struct, sys
ifname, gw6, brll, mac = sys.argv[1:5]
idx = socket.if_nametoindex(ifname)
M = bytes(int(x, 16) for x in mac.split(":"))
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
pfx = socket.inet_pton(socket.AF_INET6, "2001:db8:bad::")
ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 9000, 0, 0)
ra += struct.pack("!BB", 1, 1) + M
ra += struct.pack("!BBBBIII", 3, 4, 64, 0xc0, 86400, 14400, 0) + pfx
ra += struct.pack("!BBBBI", 24, 3, 48, 0x08, 86400) + socket.inet_pton(socket.AF_INET6, "fd00:92::")
redirect = struct.pack("!BBHI", 137, 0, 0, 0) + socket.inet_pton(socket.AF_INET6, "fe80::bad") + socket.inet_pton(socket.AF_INET6, "fd00:91:0:2::1")
redirect += struct.pack("!BB", 2, 1) + M
na = struct.pack("!BBHI", 136, 0, 0, 0x20000000) + socket.inet_pton(socket.AF_INET6, gw6) + struct.pack("!BB", 2, 1) + M
for i in range(3):
    s.sendto(ra, ("ff02::1", 0, 0, idx))
    s.sendto(redirect, (brll, 0, 0, idx))
    s.sendto(na, ("ff02::1", 0, 0, idx))
print("sent")
`;

/** A table of the test's own: counts packets matching each rule (text → comment) on one hook. */
async function addSpy(host: SimHost, ns: string | null, table: string, hook: string, priority: number, rules: [string, string][]): Promise<void> {
  const body = rules.map(([match, name]) => `\t\t${match} counter comment "${name}"`).join('\n');
  const text = `table inet ${table}\ndelete table inet ${table}\ntable inet ${table} {\n\tchain c {\n\t\ttype filter hook ${hook} priority ${priority}; policy accept;\n${body}\n\t}\n}\n`;
  if (ns === null) await host.exec(['nft', '-f', '-'], { input: text });
  else await host.execIn(ns, ['nft', '-f', '-'], { input: text });
}

async function readSpy(host: SimHost, ns: string | null, table: string): Promise<Map<string, number>> {
  const argv = ['nft', '-j', 'list', 'table', 'inet', table];
  const r = ns === null ? await host.exec(argv) : await host.execIn(ns, argv);
  const out = new Map<string, number>();
  for (const item of (JSON.parse(r.stdout) as { nftables: { rule?: { comment?: string; expr: { counter?: { packets: number } }[] } }[] }).nftables) {
    if (item.rule?.comment) out.set(item.rule.comment, item.rule.expr.find((e) => e.counter)?.counter?.packets ?? 0);
  }
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('IPv6 isolation: a hostile workload and a hostile node against the dual-stack data plane', { timeout: 300_000 }, async (t) => {
  const sw = await Switch.create();
  let isp = '';
  let far = '';
  const hosts: SimHost[] = [];
  const procs: ChildProcess[] = [];
  const WL = 'r1-wl';
  try {
    const a = await SimHost.start('r1a', { backend: BACKEND, egress: { controlPlane: ['192.0.2.20'] } });
    hosts.push(a);
    const b = await SimHost.start('r1b', { backend: BACKEND });
    hosts.push(b);
    ({ isp, far } = await ispAndOutside(sw, a));
    await sw.attach({ ns: b.ns, ifname: 'u0', addr: '203.0.113.2/24' });
    await b.underlay('u0', '203.0.113.254');
    // IPv6 on the lab internet: a has a global and a ULA address and an IPv6 default route; the outside answers.
    await sh(['ip', 'netns', 'exec', isp, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=1']);
    for (const [ns, cmds] of [
      [isp, ['addr add 2001:db8:1::254/64 dev r0 nodad', 'addr add 2001:db8:2::1/64 dev r1 nodad']],
      [far, ['addr add 2001:db8:2::10/64 dev x0 nodad', 'route add default via 2001:db8:2::1']],
      [a.ns, ['addr add 2001:db8:1::1/64 dev u0 nodad', 'addr add fd99::1/64 dev u0 nodad', 'route add default via 2001:db8:1::254']],
    ] as [string, string[]][]) {
      await sh(['ip', '-n', ns, '-6', '-batch', '-'], { input: cmds.join('\n') + '\n' });
    }

    const acme = handPlan({ tenant: 'acme', ipRange: '10.91.0.0/16', ipv6Range: 'fd00:91::/48', egress: true, nodes: [{ node: 'a', underlay: '203.0.113.1' }, { node: 'b', underlay: '203.0.113.2' }] });
    const globex = handPlan({ tenant: 'globex', ipRange: '10.92.0.0/16', ipv6Range: 'fd00:92::/48', egress: true, basePort: 52820, nodes: [{ node: 'a', underlay: '203.0.113.1' }], identity: acme.identity });
    const [AC, GX] = [`n-${acme.networkId}`, `n-${globex.networkId}`];
    const acmeA = acme.desired.get('a')!;
    okReport(await a.apply([acmeA, globex.desired.get('a')!], acme.identity.get('a')!));
    okReport(await b.apply([acme.desired.get('b')!], acme.identity.get('b')!));
    const br = `b-${acme.networkId}`;

    const respond = async (prefix: string[], ports: string) => {
      const p = spawn(prefix[0], [...prefix.slice(1), PYTHON, '-I', '-S', '-c', responderPy('r1-banner'), '240', ports], { stdio: ['ignore', 'pipe', 'inherit'] });
      procs.push(p);
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('responder did not start')), 10_000);
        createInterface({ input: p.stdout! }).once('line', () => (clearTimeout(timer), resolve()));
      });
    };
    const inHost = (h: SimHost, ns: string) => ['nsenter', `--mount=/proc/${h.anchorPid}/ns/mnt`, '--', 'nsenter', `--net=/run/netns/${ns}`, '--'];
    await respond(['ip', 'netns', 'exec', far], '8022');
    await respond(['ip', 'netns', 'exec', a.ns], '8022');
    await respond(inHost(a, GX), '8022');
    await respond(inHost(a, AC), '8023,8024');

    // The workload: a namespace on acme's bridge at a, both families, the gateway's MAC pinned (raw sends).
    const mtu = (JSON.parse((await a.execIn(AC, ['ip', '-j', 'link', 'show', br])).stdout) as { mtu: number }[])[0].mtu;
    await a.exec(['ip', 'netns', 'add', WL]);
    await a.exec(['ip', '-n', WL, 'link', 'add', 'wl0', 'mtu', String(mtu), 'address', '02:00:00:91:01:50', 'type', 'veth', 'peer', 'name', 'r1v', 'mtu', String(mtu), 'netns', AC]);
    await a.exec(['ip', '-n', AC, 'link', 'set', 'r1v', 'master', br, 'up']);
    await a.exec(['ip', '-n', WL, '-batch', '-'], {
      input:
        'link set lo up\nlink set wl0 up\naddr add 10.91.1.50/24 dev wl0\nroute add default via 10.91.1.1\n' +
        'addr add fd00:91:0:1::50/64 dev wl0 nodad\nroute add default via fd00:91:0:1::1\n' +
        `neigh replace fd00:91:0:1::1 lladdr ${addressMac('10.91.1.1')} dev wl0 nud permanent\n`,
    });
    /** The (non-tentative) link-local address of a link, waited for (bounded: 5 s). */
    const linkLocal = async (h: SimHost, ns: string, dev: string) => {
      for (let i = 0; i < 20; i++) {
        const j = JSON.parse((await h.execIn(ns, ['ip', '-6', '-j', 'addr', 'show', 'dev', dev])).stdout) as { addr_info: { local: string; scope: string; tentative?: boolean }[] }[];
        const ll = j[0]?.addr_info.find((x) => x.scope === 'link' && !x.tentative)?.local;
        if (ll) return ll;
        await sleep(250);
      }
      return null;
    };
    const wlLinkLocal = async () => (await linkLocal(a, WL, 'wl0')) ?? assert.fail('the workload has no link-local address');
    const brLinkLocal = await linkLocal(a, AC, br);
    assert.ok(brLinkLocal, 'the bridge has a link-local address');
    const connect = async (h: SimHost, ns: string, probes: { ip: string; port: number; src?: string }[]) =>
      JSON.parse((await h.execIn(ns, [PYTHON, '-I', '-S', '-c', CONNECT_PY, JSON.stringify(probes)], { timeoutMs: 20_000 })).stdout) as string[];
    const raw = (h: SimHost, ns: string, pkts: { src: string; dst: string; kind: string; port?: number; count?: number }[]) =>
      h.execIn(ns, [PYTHON, '-I', '-S', '-c', RAW6_PY, JSON.stringify(pkts)], { timeoutMs: 20_000 });

    await t.test('controls: the workload reaches b over IPv6 and the outside over IPv4 egress', async () => {
      assert.ok(await a.waitPing(WL, 'fd00:91:0:2::1'), 'workload → b gateway6');
      const [out4] = await connect(a, WL, [{ ip: '192.0.2.10', port: 8022 }]);
      assert.match(out4, /^reached r1-banner/, `IPv4 egress works: ${out4}`);
    });

    await t.test('the workload reaches nothing outside its range6: host a, the outside, NAT64/6to4 shapes, another tenant', async () => {
      const targets = [
        { ip: 'fd99::1', port: 8022, what: 'host a ULA' },
        { ip: '2001:db8:1::1', port: 8022, what: 'host a global' },
        { ip: '2001:db8:2::10', port: 8022, what: 'the outside over IPv6 (egress is IPv4 only)' },
        { ip: '64:ff9b::c000:20a', port: 8022, what: 'NAT64 of 192.0.2.10' },
        { ip: '2002:c000:20a::1', port: 8022, what: '6to4 of 192.0.2.10' },
        { ip: '64:ff9b::a5c:101', port: 8022, what: 'NAT64 of globex 10.92.1.1' },
        { ip: 'fd00:92:0:1::1', port: 8022, what: 'globex gateway6' },
      ];
      const out = await connect(a, WL, targets);
      const exposed = targets.filter((_, i) => out[i].startsWith('reached')).map((x, i) => `${x.what} (${x.ip}): ${out[i]}`);
      assert.deepEqual(exposed, []);
    });

    await t.test('the tenant namespace with an IPv6 default route by the egress veth: egress-v6 drops, the host veth link-local is no way in', async () => {
      const eg = `eg-${acme.networkId}`;
      const ze = `ze-${acme.networkId}`;
      const hostLL = (JSON.parse((await a.exec(['ip', '-6', '-j', 'addr', 'show', 'dev', ze])).stdout) as { addr_info: { local: string; scope: string }[] }[])[0]?.addr_info.find((x) => x.scope === 'link')?.local;
      t.diagnostic(`host veth ${ze} link-local: ${hostLL ?? 'none'}; tenant veth: ${(await a.execIn(AC, ['ip', '-6', '-br', 'addr', 'show', 'dev', eg])).stdout.trim()}`);
      const drift = hostLL ? ['route', 'add', 'default', 'via', hostLL, 'dev', eg] : ['route', 'add', 'default', 'dev', eg];
      await a.execIn(AC, ['ip', '-6', ...drift]);
      try {
        const probes = [
          { ip: '2001:db8:2::10', port: 8022 },
          { ip: 'fd99::1', port: 8022 },
          ...(hostLL ? [{ ip: `${hostLL}%${eg}`, port: 8022 }] : []),
        ];
        const fromWl = await connect(a, WL, probes.slice(0, 2));
        const fromNs = await connect(a, AC, probes);
        t.diagnostic(`workload: ${JSON.stringify(fromWl)}; tenant namespace: ${JSON.stringify(fromNs)}`);
        assert.deepEqual([...fromWl, ...fromNs].filter((x) => x.startsWith('reached')), []);
        const fw = (await a.readActual(acme.networkId)).firewall!;
        assert.ok((fw.rules.find((r) => r.tag === 'egress-v6')?.packets ?? 0) >= 1, `the tenant's egress-v6 counted: ${JSON.stringify(fw.rules.find((r) => r.tag === 'egress-v6'))}`);
      } finally {
        await a.execIn(AC, ['ip', '-6', 'route', 'del', 'default'], { okCodes: [0, 1, 2] });
      }
    });

    await t.test('router advertisements, a redirect and an override NA from the workload change nothing in the tenant namespace', async () => {
      const snapshot = async () => ({
        routes: (await a.execIn(AC, ['ip', '-6', 'route', 'show', 'table', 'all'])).stdout.split('\n').filter((l) => !/^(local|multicast|anycast) /.test(l) && l.trim()).sort(),
        addrs: (await a.execIn(AC, ['ip', '-6', '-br', 'addr'])).stdout.trim(),
        neigh: (await a.execIn(AC, ['ip', '-6', 'neigh', 'show', 'fd00:91:0:1::1'])).stdout.trim(),
        acceptRa: (await a.execIn(AC, ['sysctl', '-n', `net.ipv6.conf.${br}.accept_ra`, `net.ipv6.conf.${br}.accept_redirects`, `net.ipv6.conf.${br}.forwarding`])).stdout.trim().split('\n'),
      });
      const before = await snapshot();
      t.diagnostic(`bridge accept_ra, accept_redirects, forwarding: ${before.acceptRa.join(', ')}`);
      const r = await a.execIn(WL, [PYTHON, '-I', '-S', '-c', ND_PY, 'wl0', 'fd00:91:0:1::1', brLinkLocal!, '02:00:00:91:01:50'], { timeoutMs: 10_000 });
      assert.equal(r.stdout.trim(), 'sent');
      await sleep(1000);
      const after = await snapshot();
      assert.deepEqual(after.routes, before.routes, 'no route learnt from the workload');
      assert.doesNotMatch(after.addrs, /2001:db8:bad/, 'no address autoconfigured');
      assert.equal(after.addrs, before.addrs);
      assert.equal(after.neigh, before.neigh);
      assert.ok(await a.waitPing(WL, 'fd00:91:0:2::1', 3), 'the workload still reaches b through its gateway');
    });

    await t.test('spoofed IPv6 sources and IPv4-mapped destinations from the workload reach nothing at b', async () => {
      const spoofed = ['::', '::ffff:10.91.1.50', 'fe80::1', 'fd00:92:0:1::50', 'fd00:91:0:2::77', 'fd00:91:0:99::1'];
      const own = 'fd00:91:0:1::50';
      await addSpy(b, AC, 'r1spy', 'prerouting', -300, [
        ...[own, ...spoofed].map((s) => [`ip6 saddr ${s}`, s] as [string, string]),
        ['ip6 daddr ::ffff:0:0/96', 'to-mapped'],
        ['ip daddr 10.91.2.1 ip saddr != 10.91.1.50', 'v4-smuggled'],
      ]);
      await raw(a, WL, [
        ...[own, ...spoofed].map((src) => ({ src, dst: 'fd00:91:0:2::1', kind: 'icmp' })),
        { src: own, dst: '::ffff:10.91.2.1', kind: 'icmp' },
        { src: own, dst: '::a5b:201', kind: 'icmp' },
      ]);
      await sleep(500);
      const got = await readSpy(b, AC, 'r1spy');
      assert.ok((got.get(own) ?? 0) >= 3, `control: the workload's own source arrives (${JSON.stringify([...got])})`);
      const leaked = [...spoofed, 'to-mapped', 'v4-smuggled'].filter((s) => (got.get(s) ?? 0) > 0).map((s) => `${s}: ${got.get(s)}`);
      assert.deepEqual(leaked, []);
      await b.execIn(AC, ['nft', 'delete', 'table', 'inet', 'r1spy']);
    });

    await t.test('a default-deny policy holds over IPv6: ULA and link-local sources, the bridge link-local, fragments, hop-by-hop', async () => {
      const policy: CompiledPolicy = {
        range: '10.91.0.0/16',
        range6: 'fd00:91::/48',
        default: 'deny',
        local: ['10.91.1.1/32', '10.91.1.50/32', '10.91.1.254/32', 'fd00:91:0:1::1/128', 'fd00:91:0:1::50/128', 'fd00:91:0:1::fe/128'],
        // Only 8024 from the workload to the gateway (the control); 8023 is denied.
        rules: [{ index: 0, from: ['10.91.1.50/32', 'fd00:91:0:1::50/128'], to: ['10.91.1.1/32', 'fd00:91:0:1::1/128'], tcp: ['8024'], udp: [], icmp: false, any: false }],
      };
      okReport(await a.apply([{ ...acmeA, policy }, globex.desired.get('a')!], acme.identity.get('a')!));
      try {
      const ll = await wlLinkLocal();
      const probes = [
        { ip: '10.91.1.1', port: 8024, what: 'control: IPv4 to the allowed port' },
        { ip: 'fd00:91:0:1::1', port: 8024, what: 'control: IPv6 to the allowed port' },
        { ip: '10.91.1.1', port: 8023, what: 'IPv4 to the denied port' },
        { ip: 'fd00:91:0:1::1', port: 8023, what: 'IPv6 (ULA source) to the denied port' },
        { ip: 'fd00:91:0:1::1', port: 8023, src: `${ll}%wl0`, what: 'link-local source to gateway6, denied port' },
        { ip: `${brLinkLocal}%wl0`, port: 8023, what: "the bridge's link-local address, denied port" },
        { ip: `${brLinkLocal}%wl0`, port: 8023, src: `${ll}%wl0`, what: "link-local to link-local, denied port" },
      ];
      const out = await connect(a, WL, probes.map(({ ip, port, src }) => ({ ip, port, ...(src ? { src } : {}) })));
      t.diagnostic(probes.map((p, i) => `${p.what}: ${out[i]}`).join('\n'));
      assert.match(out[0], /^reached r1-banner 8024/);
      assert.match(out[1], /^reached r1-banner 8024/);
      const exposed = probes.slice(2).filter((_, i) => out[i + 2].startsWith('reached')).map((p) => p.what);
      assert.deepEqual(exposed, [], 'the policy is bypassed');

      // What passes the policy (a chain of the test's own after the filter hooks) from raw SYNs.
      await addSpy(a, AC, 'r1pass', 'input', 10, [
        ['tcp dport 8024 tcp sport >= 40000', 'allowed'],
        ['tcp dport 8023 tcp sport >= 40000', 'denied'],
      ]);
      const own = 'fd00:91:0:1::50';
      await raw(a, WL, ['syn', 'synfrag', 'synhbh'].flatMap((kind) => [8024, 8023].map((port) => ({ src: own, dst: 'fd00:91:0:1::1', kind, port }))));
      await sleep(500);
      const got = await readSpy(a, AC, 'r1pass');
      t.diagnostic(`raw SYNs past the policy: ${JSON.stringify([...got])}`);
      assert.ok((got.get('allowed') ?? 0) >= 9, 'control: plain, fragmented and hop-by-hop SYNs to the allowed port pass');
      assert.equal(got.get('denied'), 0, 'no SYN to the denied port passes, fragmented or behind a hop-by-hop header');
      } finally {
        await a.execIn(AC, ['nft', 'delete', 'table', 'inet', 'r1pass'], { okCodes: [0, 1] });
        okReport(await a.apply([acmeA, globex.desired.get('a')!], acme.identity.get('a')!));
      }
    });

    await t.test('an IPv4-only network: router advertisements from a workload, and link-local past an IPv4 default-deny policy', async () => {
      const ini = handPlan({ tenant: 'initech', ipRange: '10.93.0.0/16', basePort: 53820, nodes: [{ node: 'a', underlay: '203.0.113.1' }], identity: acme.identity });
      const IN = `n-${ini.networkId}`;
      const brI = `b-${ini.networkId}`;
      const policy: CompiledPolicy = { range: '10.93.0.0/16', default: 'deny', local: ['10.93.1.1/32', '10.93.1.254/32'], rules: [] };
      const first = await a.apply([acmeA, globex.desired.get('a')!, { ...ini.desired.get('a')!, policy }], acme.identity.get('a')!);
      okReport(first);
      await respond(inHost(a, IN), '8023');
      const WL4 = 'r1-wl4';
      try {
        await a.exec(['ip', 'netns', 'add', WL4]);
        await a.exec(['ip', '-n', WL4, 'link', 'add', 'wl0', 'address', '02:00:00:93:01:50', 'type', 'veth', 'peer', 'name', 'r1v4', 'netns', IN]);
        await a.exec(['ip', '-n', IN, 'link', 'set', 'r1v4', 'master', brI, 'up']);
        await a.exec(['ip', '-n', WL4, '-batch', '-'], { input: 'link set lo up\nlink set wl0 up\naddr add 10.93.1.50/24 dev wl0\nroute add default via 10.93.1.1\n' });
        const ll = (await linkLocal(a, IN, brI)) ?? assert.fail('no link-local on the IPv4-only bridge');
        const wll = (await linkLocal(a, WL4, 'wl0')) ?? assert.fail('no link-local on the workload');
        const routes = async () => (await a.execIn(IN, ['ip', '-6', 'route', 'show', 'table', 'all'])).stdout.split('\n').filter((l) => !/^(local|multicast|anycast) /.test(l) && l.trim()).sort();
        const before = await routes();
        const addrs = (await a.execIn(IN, ['ip', '-6', '-br', 'addr'])).stdout.trim();
        t.diagnostic(`IPv4-only bridge accept_ra, forwarding: ${(await a.execIn(IN, ['sysctl', '-n', `net.ipv6.conf.${brI}.accept_ra`, `net.ipv6.conf.${brI}.forwarding`])).stdout.trim().replace('\n', ', ')}`);
        await a.execIn(WL4, [PYTHON, '-I', '-S', '-c', ND_PY, 'wl0', 'fe80::1', ll, '02:00:00:93:01:50'], { timeoutMs: 10_000 });
        await sleep(1000);
        const after = await routes();
        const addrsAfter = (await a.execIn(IN, ['ip', '-6', '-br', 'addr'])).stdout.trim();
        t.diagnostic(`routes before: ${JSON.stringify(before)}\nafter: ${JSON.stringify(after)}\naddrs after: ${addrsAfter}`);
        const out = await connect(a, WL4, [
          { ip: '10.93.1.1', port: 8023 },
          { ip: `${ll}%wl0`, port: 8023 },
          { ip: `${ll}%wl0`, port: 8023, src: `${wll}%wl0` },
        ]);
        t.diagnostic(`IPv4 gateway: ${out[0]}; bridge link-local: ${out[1]}; link-local to link-local: ${out[2]}`);
        assert.match(out[0], /^blocked/, 'control: the IPv4 policy denies');
        const inRa = (await a.readActual(ini.networkId)).firewall?.rules.find((x) => x.tag === 'in-ra');
        assert.ok(inRa && inRa.verdict === 'drop' && inRa.packets >= 3, `in-ra counted the advertisements and redirects: ${JSON.stringify(inRa)}`);
        assert.deepEqual(after, before, 'no route learnt from the workload');
        assert.equal(addrsAfter, addrs, 'no address autoconfigured');
        assert.deepEqual(out.slice(1).filter((x) => x.startsWith('reached')), [], "the node's link-local address is no way past the policy");
        const again = await a.apply([acmeA, globex.desired.get('a')!, { ...ini.desired.get('a')!, policy }], acme.identity.get('a')!);
        okReport(again);
        assert.equal(again.commands.mutating, 0, `a re-apply is a no-op: ${again.mutations.join('\n')}`);
      } finally {
        await a.exec(['ip', 'netns', 'del', WL4], { okCodes: [0, 1, 255] });
        okReport(await a.apply([acmeA, globex.desired.get('a')!], acme.identity.get('a')!));
      }
    });

    await t.test('a hostile node: spoofed IPv6 sources through the tunnel, and destinations outside range6', async () => {
      const wgB = `w-${acme.networkId}`;
      // b drops its own rules and widens its peer a to everything.
      await b.execIn(AC, ['nft', 'delete', 'table', 'inet', `zmesh_${acme.networkId}`]);
      const peerA = (await b.execIn(AC, ['wg', 'show', wgB, 'peers'])).stdout.trim();
      await b.execIn(AC, ['wg', 'set', wgB, 'peer', peerA, 'allowed-ips', '0.0.0.0/0,::/0']);
      await b.execIn(AC, ['ip', '-6', 'route', 'add', 'default', 'dev', wgB]);
      const spoofed = ['fd00:91:0:1::99', 'fd00:92:0:1::99', 'fe80::1', '::ffff:10.91.1.1', '::', 'fd99::2', '2001:db8:2::10'];
      const own = 'fd00:91:0:2::1';
      await addSpy(a, AC, 'r1spy', 'prerouting', -300, [...[own, ...spoofed].map((s) => [`ip6 saddr ${s}`, s] as [string, string])]);
      await raw(b, AC, [...[own, ...spoofed].map((src) => ({ src, dst: 'fd00:91:0:1::1', kind: 'icmp' }))]);
      await sleep(500);
      const got = await readSpy(a, AC, 'r1spy');
      assert.ok((got.get(own) ?? 0) >= 3, `control: b's own source arrives (${JSON.stringify([...got])})`);
      assert.deepEqual(spoofed.filter((s) => (got.get(s) ?? 0) > 0).map((s) => `${s}: ${got.get(s)}`), []);
      await a.execIn(AC, ['nft', 'delete', 'table', 'inet', 'r1spy']);

      const targets = [
        { ip: 'fd99::1', port: 8022, what: "a's host ULA" },
        { ip: '2001:db8:1::1', port: 8022, what: "a's host global address" },
        { ip: '2001:db8:2::10', port: 8022, what: "the outside through a's egress" },
        { ip: 'fd00:92:0:1::1', port: 8022, what: 'globex gateway6 at a' },
        { ip: 'fd00:91:0:1::1', port: 8023, what: "control: a's acme gateway6" },
      ];
      const out = await connect(b, AC, targets.map(({ ip, port }) => ({ ip, port, src: own })));
      t.diagnostic(targets.map((x, i) => `${x.what}: ${out[i]}`).join('\n'));
      assert.match(out[4], /^reached/);
      assert.deepEqual(targets.slice(0, 4).filter((_, i) => out[i].startsWith('reached')).map((x) => x.what), []);
    });
  } finally {
    for (const p of procs) if (p.pid && p.exitCode === null) p.kill('SIGKILL');
    if (hosts[0]) await hosts[0].exec(['ip', 'netns', 'del', WL], { okCodes: [0, 1, 255] }).catch(() => undefined);
    for (const h of hosts) await h.close().catch(() => undefined);
    for (const ns of [isp, far]) if (ns) await delNs(ns).catch(() => undefined);
    await sw.destroy().catch(() => undefined);
  }
});
