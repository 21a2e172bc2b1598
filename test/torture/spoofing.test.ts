// Spoofing: a workload (a veth on a tenant bridge, in a namespace of its own) or a tenant namespace that sends
// packets with a source address that is not its own gets nowhere. Three simulated hosts run the netns driver:
// a and b public, h hidden behind a (a is its access node); tenant acme (10.61.0.0/16, with egress) spans all
// three, tenant globex (10.62.0.0/16) spans a and b. Spoofed packets are crafted with a raw socket (Python,
// IP_HDRINCL) from the workload on a's acme bridge and from a's acme namespace itself; nft counters in the
// receivers' namespaces (a table of the test's own, at the earliest prerouting hook) show what arrives.
//   - The sending node drops them: nft in the tenant namespace admits from the bridge, and sends into the
//     tunnel, only the node's own subnet as source; the host drops what leaves the egress veth with any source
//     but the tenant's transfer address (so nothing escapes un-NATed onto the underlay).
//   - Cryptokey routing drops them at the receiver when the sender's rules are gone (a node whose table was
//     flushed): b decrypts a's packets (rx grows) but drops every inner source outside a's allowed IPs. It can
//     not protect a hidden node's addresses (its access node is allowed to send them): that is the sending
//     node's rules' job, tested first.
//   - No tenant reaches another tenant or the host's own addresses, spoofed or not.
// Summary (exposures found: must be 0) goes to bench/results/torture-spoofing.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import type { ApplyReport } from '../../netns/index.ts';
import { delNs, makeNs, rand, sh, SimHost, Switch } from '../helpers/host.ts';
import { handPlan } from '../helpers/plan.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const BACKEND = (process.env.ZMESH_TEST_BACKEND as 'auto' | 'kernel' | 'userspace' | undefined) ?? 'auto';

function okReport(r: ApplyReport): void {
  assert.ok(r.ok, `apply failed: ${JSON.stringify([...r.resources.flatMap((x) => x.failures), ...r.removed.flatMap((x) => x.failures)], null, 1)}`);
}

/** Sends `count` raw IPv4 packets src → dst: udp (to port 9), icmp (echo request) or synfin (TCP SYN+FIN,
 *  which conntrack calls invalid, so NAT never rewrites it). Checksums computed; the kernel fills the rest. */
const SPOOF_PY = `
import socket, struct, sys
src, dst, kind, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def csum(b):
    if len(b) % 2: b += b"\\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
S, D = socket.inet_aton(src), socket.inet_aton(dst)
if kind == "udp":
    proto, body = 17, struct.pack("!HHHH", 40000, 9, 8 + 4, 0) + b"zspf"
elif kind == "icmp":
    proto = 1
    h = struct.pack("!BBHHH", 8, 0, 0, 0x7a5a, 1) + b"zspf"
    body = h[:2] + struct.pack("!H", csum(h)) + h[4:]
else:
    proto = 6
    h = struct.pack("!HHIIBBHHH", 40000, 7777, 1, 0, 5 << 4, 0x03, 64240, 0, 0)
    c = csum(S + D + struct.pack("!BBH", 0, 6, len(h)) + h)
    body = h[:16] + struct.pack("!H", c) + h[18:]
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0, 64, proto, 0, S, D)
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for i in range(count):
    try:
        s.sendto(ip + body, (dst, 0))
    except OSError as e:
        print("send:", e)
`;

interface Spy {
  host: SimHost;
  ns: string;
}

/** A table of the test's own in a namespace: counts packets by source address at prerouting (raw priority). */
async function addSpy(spy: Spy, sources: string[]): Promise<void> {
  const rules = sources.map((s) => `\t\tip saddr ${s} counter comment "${s}"`).join('\n');
  const text = `table inet zspy {\n\tchain pre {\n\t\ttype filter hook prerouting priority -300; policy accept;\n${rules}\n\t}\n}\n`;
  await spy.host.execIn(spy.ns, ['nft', '-f', '-'], { input: `table inet zspy\ndelete table inet zspy\n${text}` });
}

/** Packets counted per source address. */
async function readSpy(spy: Spy): Promise<Map<string, number>> {
  const r = await spy.host.execIn(spy.ns, ['nft', '-j', 'list', 'table', 'inet', 'zspy']);
  const out = new Map<string, number>();
  for (const item of (JSON.parse(r.stdout) as { nftables: { rule?: { comment?: string; expr: { counter?: { packets: number } }[] } }[] }).nftables) {
    const rule = item.rule;
    if (!rule?.comment) continue;
    out.set(rule.comment, rule.expr.find((e) => e.counter)?.counter?.packets ?? 0);
  }
  return out;
}

test('spoofed sources get nowhere: tenant rules, cryptokey routing, egress', { timeout: 180_000 }, async (t) => {
  const sw = await Switch.create();
  const outside = `zt-out-${rand()}`;
  const hosts: SimHost[] = [];
  const exposures: string[] = [];
  const cases: { name: string; sent: number; arrived: number }[] = [];
  try {
    const [a, b, h] = await Promise.all(['a', 'b', 'h'].map((l) => SimHost.start(l, { backend: BACKEND })));
    hosts.push(a, b, h);
    await makeNs(outside);
    await sw.attach({ ns: outside, ifname: 'x0', addr: '203.0.113.200/24' });
    for (const [i, host] of [a, b, h].entries()) {
      await sw.attach({ ns: host.ns, ifname: 'u0', addr: `203.0.113.${i + 1}/24` });
      await host.underlay('u0', '203.0.113.200');
    }
    const acme = handPlan({
      tenant: 'acme',
      ipRange: '10.61.0.0/16',
      egress: true,
      nodes: [
        { node: 'a', underlay: '203.0.113.1' },
        { node: 'b', underlay: '203.0.113.2' },
        { node: 'h', hidden: true, accessNode: 'a', keepalive: 5 },
      ],
    });
    const globex = handPlan({
      tenant: 'globex',
      ipRange: '10.62.0.0/16',
      nodes: [
        { node: 'a', underlay: '203.0.113.1' },
        { node: 'b', underlay: '203.0.113.2' },
      ],
      identity: acme.identity,
      basePort: 51900,
    });
    const apply = (host: SimHost, node: string) => host.apply([acme.desired.get(node)!, ...(globex.desired.has(node) ? [globex.desired.get(node)!] : [])], acme.identity.get(node)!);
    for (const r of await Promise.all([apply(a, 'a'), apply(b, 'b')])) okReport(r);
    okReport(await apply(h, 'h'));
    const [A, G] = [`n-${acme.networkId}`, `n-${globex.networkId}`];
    assert.ok(await a.waitPing(A, '10.61.2.1'), 'acme a → b');
    assert.ok(await h.waitPing(A, '10.61.2.1'), 'acme h → b through a');
    assert.ok(await a.waitPing(G, '10.62.2.1'), 'globex a → b');

    // A workload on a's acme bridge: namespace zwl with a veth into b-<id>, 10.61.1.50/24.
    const br = `b-${acme.networkId}`;
    const mtu = (JSON.parse((await a.execIn(A, ['ip', '-j', 'link', 'show', br])).stdout) as { mtu: number }[])[0].mtu;
    await a.exec(['ip', 'netns', 'add', 'zwl']);
    await a.exec(['ip', '-n', 'zwl', 'link', 'add', 'wl0', 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'vspoof', 'mtu', String(mtu), 'netns', A]);
    await a.exec(['ip', '-n', A, 'link', 'set', 'vspoof', 'master', br, 'up']);
    await a.exec(['ip', '-n', 'zwl', '-batch', '-'], { input: 'link set lo up\nlink set wl0 up\naddr add 10.61.1.50/24 dev wl0\nroute add default via 10.61.1.1\n' });
    assert.ok(await a.waitPing('zwl', '10.61.2.1'), 'the workload reaches b (its own source)');

    const hostEnd = (await a.readActual(acme.networkId)).hostLink!.addresses[0].split('/')[0];
    const sources = {
      hidden: '10.61.3.77', // h's subnet: b's allowed IPs for a include it (a routes for h)
      peer: '10.61.2.77', // b's subnet: h's only peer (a) is allowed the whole range but h's own subnet
      other: '10.62.1.77', // globex's subnet on a: another tenant's address
      underlay: '203.0.113.2', // b's underlay address
      own: '10.61.1.51', // a's own subnet, not the workload's address: allowed (same subnet), the control
    };
    const spies: Record<string, Spy> = {
      aBridge: { host: a, ns: A },
      b: { host: b, ns: A },
      h: { host: h, ns: A },
      bGlobex: { host: b, ns: G },
      aGlobex: { host: a, ns: G },
    };
    for (const s of Object.values(spies)) await addSpy(s, Object.values(sources));
    await sh(['ip', 'netns', 'exec', outside, 'nft', '-f', '-'], {
      input: `table inet zspy {\n\tchain pre {\n\t\ttype filter hook prerouting priority -300; policy accept;\n${Object.values(sources)
        .map((s) => `\t\tip saddr ${s} counter comment "${s}"`)
        .join('\n')}\n\t}\n}\n`,
    });
    const outsideSpy = async () => {
      const r = await sh(['ip', 'netns', 'exec', outside, 'nft', '-j', 'list', 'table', 'inet', 'zspy']);
      const m = new Map<string, number>();
      for (const it of (JSON.parse(r.stdout) as { nftables: { rule?: { comment?: string; expr: { counter?: { packets: number } }[] } }[] }).nftables) {
        if (it.rule?.comment) m.set(it.rule.comment, it.rule.expr.find((e) => e.counter)?.counter?.packets ?? 0);
      }
      return m;
    };
    const N = 5;
    const send = (from: 'zwl' | 'tenant', src: string, dst: string, kind: 'udp' | 'icmp' | 'synfin') =>
      a.execIn(from === 'zwl' ? 'zwl' : A, [PYTHON, '-I', '-S', '-c', SPOOF_PY, src, dst, kind, String(N)]);
    const settle = () => new Promise((r) => setTimeout(r, 700));
    /** Sends, then compares every spy's counters before and after; returns packets that arrived per spy. */
    const probe = async (label: string, from: 'zwl' | 'tenant', src: string, dst: string, kind: 'udp' | 'icmp' | 'synfin') => {
      const before = new Map<string, Map<string, number>>();
      for (const [k, s] of Object.entries(spies)) before.set(k, await readSpy(s));
      const out0 = await outsideSpy();
      await send(from, src, dst, kind);
      await settle();
      const got: Record<string, number> = {};
      for (const [k, s] of Object.entries(spies)) got[k] = ((await readSpy(s)).get(src) ?? 0) - (before.get(k)!.get(src) ?? 0);
      got.outside = ((await outsideSpy()).get(src) ?? 0) - (out0.get(src) ?? 0);
      t.diagnostic(`${label}: ${JSON.stringify(got)}`);
      return got;
    };
    const nowhere = (label: string, got: Record<string, number>, sent: boolean) => {
      const arrived = Object.entries(got)
        .filter(([k, v]) => k !== 'aBridge' && v > 0)
        .map(([k]) => k);
      cases.push({ name: label, sent: N, arrived: arrived.length });
      if (arrived.length) exposures.push(`${label}: arrived at ${arrived.join(', ')}`);
      if (sent) assert.ok(got.aBridge >= N, `${label}: the packets left the workload (bridge saw ${got.aBridge})`);
    };

    await t.test('the control: a workload source inside its node subnet is delivered', async () => {
      const got = await probe('own subnet → b', 'zwl', sources.own, '10.61.2.1', 'udp');
      assert.equal(got.b, N, 'delivered to b');
    });

    await t.test('a workload spoofing other sources gets nowhere', async () => {
      nowhere('workload as h (hidden behind a) → b', await probe('workload as h → b', 'zwl', sources.hidden, '10.61.2.1', 'udp'), true);
      nowhere('workload as b → h', await probe('workload as b → h', 'zwl', sources.peer, '10.61.3.1', 'udp'), true);
      nowhere('workload as b → b', await probe('workload as b → b', 'zwl', sources.peer, '10.61.2.1', 'icmp'), true);
      nowhere('workload as globex → acme b', await probe('workload as globex → b', 'zwl', sources.other, '10.61.2.1', 'udp'), true);
      nowhere('workload as globex → globex b', await probe('workload as globex → globex b', 'zwl', sources.other, '10.62.2.1', 'udp'), true);
      nowhere('workload as globex → globex a', await probe('workload as globex → globex a', 'zwl', sources.other, '10.62.1.1', 'udp'), true);
      nowhere('workload as b underlay → outside (invalid TCP)', await probe('workload as b underlay, SYN+FIN → outside', 'zwl', sources.underlay, '203.0.113.200', 'synfin'), true);
      nowhere('workload as b underlay → outside (udp)', await probe('workload as b underlay, udp → outside', 'zwl', sources.underlay, '203.0.113.200', 'udp'), true);
      assert.deepEqual(exposures, []);
    });

    await t.test('the tenant namespace itself spoofing gets nowhere', async () => {
      nowhere('tenant ns as h → b', await probe('tenant ns as h → b', 'tenant', sources.hidden, '10.61.2.1', 'udp'), false);
      nowhere('tenant ns as b → h', await probe('tenant ns as b → h', 'tenant', sources.peer, '10.61.3.1', 'udp'), false);
      nowhere('tenant ns as globex → b', await probe('tenant ns as globex → b', 'tenant', sources.other, '10.61.2.1', 'icmp'), false);
      nowhere('tenant ns as b underlay → outside (invalid TCP)', await probe('tenant ns as b underlay, SYN+FIN → outside', 'tenant', sources.underlay, '203.0.113.200', 'synfin'), false);
      assert.deepEqual(exposures, []);
    });

    await t.test('no tenant reaches another tenant or the host, from a workload or its namespace', async () => {
      const reach = async (ns: string, dst: string) => (await a.execIn(ns, ['ping', '-n', '-c', '1', '-W', '1', dst], { okCodes: [0, 1, 2] })).exitCode === 0;
      for (const [ns, dst, what] of [
        ['zwl', '10.62.1.1', 'globex on the same node'],
        ['zwl', '10.62.2.1', 'globex on b'],
        ['zwl', '203.0.113.1', "the node's underlay address"],
        ['zwl', hostEnd, "the host end of the tenant's egress veth"],
        [A, hostEnd, "the host end of the tenant's egress veth"],
        [A, '203.0.113.1', "the node's underlay address"],
        [G, '10.61.1.1', 'acme on the same node'],
        [G, '10.61.2.1', 'acme on b'],
      ] as const) {
        const ok = await reach(ns, dst);
        cases.push({ name: `${ns === 'zwl' ? 'workload' : ns === A ? 'acme ns' : 'globex ns'} → ${what}`, sent: 1, arrived: ok ? 1 : 0 });
        if (ok) exposures.push(`${ns} reached ${dst} (${what})`);
      }
      assert.deepEqual(exposures, []);
    });

    await t.test("cryptokey routing: with a's rules gone, b still drops inner sources outside a's allowed IPs", async () => {
      const rxOf = async () => {
        const act = await b.readActual(acme.networkId);
        return act.wireguard!.peers.find((p) => p.publicKey === acme.desired.get('a')!.resource.publicKey)!.rxBytes;
      };
      // A node whose tenant rules were flushed (drift, or a hostile node): nothing stops spoofing at a.
      await a.execIn(A, ['nft', 'flush', 'table', 'inet', `zmesh_${acme.networkId}`]);
      const rx0 = await rxOf();
      const peerSpoof = await probe('no rules at a: workload as b → b', 'zwl', sources.peer, '10.61.2.1', 'udp');
      const otherSpoof = await probe('no rules at a: workload as globex → b', 'zwl', sources.other, '10.61.2.1', 'udp');
      const rx1 = await rxOf();
      assert.ok(rx1 - rx0 >= 2 * N * 32, `b received and decrypted a's packets (rx +${rx1 - rx0} bytes)`);
      assert.equal(peerSpoof.b, 0, "b's own subnet as source from a: dropped by b's WireGuard");
      assert.equal(otherSpoof.b, 0, "another tenant's range as source from a: dropped by b's WireGuard");
      cases.push({ name: 'cryptokey routing (no sender rules): as b → b', sent: N, arrived: peerSpoof.b }, { name: 'cryptokey routing (no sender rules): as globex → b', sent: N, arrived: otherSpoof.b });
      // The next apply repairs the table (drift), and the workload is stopped at a again.
      const r = await apply(a, 'a');
      okReport(r);
      assert.ok(r.mutations.some((m) => m.includes('nft')), 'the flushed table was rewritten');
      nowhere('after repair: workload as h → b', await probe('after repair: workload as h → b', 'zwl', sources.hidden, '10.61.2.1', 'udp'), true);
      assert.deepEqual(exposures, []);
    });
  } finally {
    for (const host of hosts) await host.close().catch(() => undefined);
    await delNs(outside);
    await sw.destroy();
    mkdirSync(`${ROOT}bench/results`, { recursive: true });
    writeFileSync(`${ROOT}bench/results/torture-spoofing.json`, JSON.stringify({ cases: cases.length, exposures, detail: cases }, null, 2) + '\n');
  }
  assert.deepEqual(exposures, []);
});
