// A dual-stack network on real namespaces (issue #20): three simulated hosts (a and b public, h hidden behind a)
// joined by a veth underlay, each with its resource of a hand-built dual-stack plan (10.43.0.0/16 and
// fd00:43::/48). IPv6 goes through the tunnel both ways and through the access node; a workload (a veth on a's
// bridge, in a namespace of its own) reaches b over IPv6; a re-apply on every host issues zero mutating
// commands; a workload that spoofs an IPv6 source gets nowhere (a's fwd-spoof6 drops it; with a's rules flushed,
// b's cryptokey routing drops a source nobody owns). Everything is removed in `finally`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ApplyReport } from '../../netns/index.ts';
import type { CompiledPolicy } from '../../src/plan/policy.ts';
import { onSwitch, SimHost, Switch } from '../helpers/host.ts';
import { handPlan } from '../helpers/plan.ts';

const BACKEND = (process.env.ZMESH_TEST_BACKEND as 'auto' | 'kernel' | 'userspace' | undefined) ?? 'auto';

function okReport(r: ApplyReport): void {
  assert.ok(r.ok, `apply failed: ${JSON.stringify([...r.resources.flatMap((x) => x.failures), ...r.removed.flatMap((x) => x.failures)], null, 1)}`);
}

function noop(r: ApplyReport, who: string): void {
  okReport(r);
  assert.equal(r.commands.mutating, 0, `${who}: expected a no-op, got:\n${r.mutations.join('\n')}`);
}

/** A table of the test's own in a namespace: counts IPv6 packets by source at prerouting (before anything else). */
async function addSpy(host: SimHost, ns: string, sources: string[]): Promise<void> {
  const rules = sources.map((s) => `\t\tip6 saddr ${s} counter comment "${s}"`).join('\n');
  const text = `table inet h2spy {\n\tchain pre {\n\t\ttype filter hook prerouting priority -300; policy accept;\n${rules}\n\t}\n}\n`;
  await host.execIn(ns, ['nft', '-f', '-'], { input: `table inet h2spy\ndelete table inet h2spy\n${text}` });
}

async function readSpy(host: SimHost, ns: string): Promise<Map<string, number>> {
  const r = await host.execIn(ns, ['nft', '-j', 'list', 'table', 'inet', 'h2spy']);
  const out = new Map<string, number>();
  for (const item of (JSON.parse(r.stdout) as { nftables: { rule?: { comment?: string; expr: { counter?: { packets: number } }[] } }[] }).nftables) {
    if (item.rule?.comment) out.set(item.rule.comment, item.rule.expr.find((e) => e.counter)?.counter?.packets ?? 0);
  }
  return out;
}

test('dual-stack: IPv6 through the tunnel and the access node, no-op re-apply, IPv6 anti-spoofing', { timeout: 150_000 }, async (t) => {
  const sw = await Switch.create();
  const hosts: SimHost[] = [];
  try {
    const [a, b, h] = await Promise.all(['a', 'b', 'h'].map((l) => SimHost.start(`h2${l}`, { backend: BACKEND })));
    hosts.push(a, b, h);
    await onSwitch(sw, [a, b, h]);

    const net = handPlan({
      ipRange: '10.43.0.0/16',
      ipv6Range: 'fd00:43::/48',
      nodes: [
        { node: 'a', underlay: '203.0.113.1' },
        { node: 'b', underlay: '203.0.113.2' },
        { node: 'h', hidden: true, accessNode: 'a', keepalive: 1 },
      ],
    });
    const id = net.networkId;
    const ns = `n-${id}`;
    const [wgIf, br] = [`w-${id}`, `b-${id}`];
    const apply = (x: SimHost, node: string) => x.apply([net.desired.get(node)!], net.identity.get(node)!);

    await t.test('applied: gateway6 on the bridge, wgAddress6 on the tunnel, the IPv6 range through it, IPv6 forwarding', async () => {
      const [ra, rb] = await Promise.all([apply(a, 'a'), apply(b, 'b')]);
      okReport(ra);
      okReport(rb);
      okReport(await apply(h, 'h'));
      const act = ra.resources[0].actual!;
      assert.deepEqual(act.links.find((l) => l.name === br)!.addresses, ['10.43.1.1/24', 'fd00:43:0:1::1/64']);
      assert.deepEqual(act.links.find((l) => l.name === wgIf)!.addresses, ['10.43.1.254/32', 'fd00:43:0:1::fe/128']);
      assert.ok(act.routes.some((r) => r.dst === 'fd00:43::/48' && r.dev === wgIf), JSON.stringify(act.routes));
      assert.ok(act.routes.some((r) => r.dst === 'fd00:43:0:1::/64' && r.dev === br), 'the connected route of subnet6');
      const sysctl = await a.execIn(ns, ['sysctl', '-n', 'net.ipv6.conf.all.forwarding', 'net.ipv6.conf.all.accept_ra', 'net.ipv6.conf.default.accept_ra']);
      assert.deepEqual(sysctl.stdout.trim().split('\n'), ['1', '0', '0']);
      // nodad: the addresses are usable at once (never tentative).
      const addrs = await a.execIn(ns, ['ip', '-6', '-j', 'addr', 'show', 'dev', br]);
      const info = (JSON.parse(addrs.stdout) as { addr_info: { local: string; tentative?: boolean; nodad?: boolean }[] }[])[0].addr_info.find((x) => x.local === 'fd00:43:0:1::1')!;
      assert.equal(info.tentative, undefined);
      assert.equal(info.nodad, true);
    });

    await t.test('ping -6 across the tunnel both ways, and from the hidden node through its access node', async () => {
      assert.ok(await a.waitPing(ns, 'fd00:43:0:2::1'), 'a → b gateway6');
      assert.ok(await b.waitPing(ns, 'fd00:43:0:1::1'), 'b → a gateway6');
      assert.ok(await b.waitPing(ns, 'fd00:43:0:1::fe'), 'b → a wgAddress6');
      assert.ok(await h.waitPing(ns, 'fd00:43:0:2::1'), 'h → b gateway6 (relayed by a)');
      assert.ok(await b.waitPing(ns, 'fd00:43:0:3::1'), 'b → h gateway6 (relayed by a)');
      assert.ok(await a.waitPing(ns, '10.43.2.1'), 'IPv4 still works');
    });

    await t.test('a re-apply on every host is a no-op (zero mutating commands)', async () => {
      noop(await apply(a, 'a'), 'a');
      noop(await apply(b, 'b'), 'b');
      noop(await apply(h, 'h'), 'h');
    });

    await t.test('IPv6 drift is repaired: exactly the missing address, then a no-op again', async () => {
      await a.execIn(ns, ['ip', 'addr', 'del', 'fd00:43:0:1::1/64', 'dev', br]);
      const r = await apply(a, 'a');
      okReport(r);
      assert.deepEqual(r.resources[0].changes, [`address add fd00:43:0:1::1/64 dev ${br} nodad`]);
      await a.execIn(ns, ['ip', 'route', 'del', 'fd00:43::/48', 'dev', wgIf]);
      const r2 = await apply(a, 'a');
      assert.deepEqual(r2.resources[0].changes, [`route replace fd00:43::/48 dev ${wgIf} proto static`]);
      noop(await apply(a, 'a'), 'a after repair');
      assert.ok(await b.waitPing(ns, 'fd00:43:0:1::1'), 'b → a gateway6 again');
    });

    // A workload on a's bridge: namespace h2wl, a veth into b-<id>, 10.43.1.50/24 and fd00:43:0:1::50/64.
    const wl = 'h2wl';
    await t.test('a workload reaches b over IPv6 from its own address', async () => {
      const mtu = (JSON.parse((await a.execIn(ns, ['ip', '-j', 'link', 'show', br])).stdout) as { mtu: number }[])[0].mtu;
      await a.exec(['ip', 'netns', 'add', wl]);
      await a.exec(['ip', '-n', wl, 'link', 'add', 'wl0', 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'h2v', 'mtu', String(mtu), 'netns', ns]);
      await a.exec(['ip', '-n', ns, 'link', 'set', 'h2v', 'master', br, 'up']);
      await a.exec(['ip', '-n', wl, '-batch', '-'], {
        input:
          'link set lo up\nlink set wl0 up\naddr add 10.43.1.50/24 dev wl0\nroute add default via 10.43.1.1\n' +
          'addr add fd00:43:0:1::50/64 dev wl0 nodad\nroute add default via fd00:43:0:1::1\n' +
          // The gateway's MAC, fixed (netns/ip.ts addressMac of 10.43.1.1): a spoofed source's own neighbour
          // solicitation would be dropped as spoofed too, and no packet would ever leave.
          'neigh replace fd00:43:0:1::1 lladdr 02:5a:0a:2b:01:01 dev wl0 nud permanent\n',
      });
      assert.ok(await a.waitPing(wl, 'fd00:43:0:2::1'), 'workload → b gateway6');
      assert.ok(await a.waitPing(wl, '10.43.2.1'), 'workload → b gateway (IPv4)');
    });

    const spoof = async (src: string, dst: string, n = 5): Promise<number> => {
      await addSpy(b, ns, [src]);
      await a.execIn(wl, ['ping', '-n', '-q', '-c', String(n), '-i', '0.05', '-W', '1', '-I', src, dst], { okCodes: [0, 1, 2] });
      await new Promise((r) => setTimeout(r, 300));
      return (await readSpy(b, ns)).get(src) ?? -1;
    };

    await t.test('IPv6 anti-spoofing: a workload sending as another node gets nowhere', async () => {
      // The sources it will try, on its own interface (so that ping can send from them; added only now: source
      // selection would pick the longest match, fd00:43:0:3::77, for b's subnet).
      await a.exec(['ip', '-n', wl, '-batch', '-'], { input: ['fd00:43:0:1::51', 'fd00:43:0:3::77', 'fd00:43:0:99::77'].map((x) => `addr add ${x}/128 dev wl0 nodad\n`).join('') });
      assert.ok((await spoof('fd00:43:0:1::51', 'fd00:43:0:2::1')) >= 5, 'the control: another address of its own subnet6 arrives');
      const before = (await a.readActual(id)).firewall?.rules.find((r) => r.tag === 'fwd-spoof6')?.packets ?? 0;
      // h's subnet6: b accepts it from a (a routes for h), so only a's rules can stop it.
      assert.equal(await spoof('fd00:43:0:3::77', 'fd00:43:0:2::1'), 0, 'workload as h → b');
      const after = (await a.readActual(id)).firewall!.rules.find((r) => r.tag === 'fwd-spoof6')!;
      assert.ok(after.verdict === 'drop' && after.packets >= before + 5, `a's fwd-spoof6 counted the drops: ${JSON.stringify(after)}`);
    });

    await t.test('without a\'s rules, cryptokey routing at b drops an IPv6 source nobody owns; the next apply repairs a', async () => {
      await a.execIn(ns, ['nft', 'flush', 'table', 'inet', `zmesh_${id}`]);
      const rxBefore = (await b.readActual(id)).wireguard!.peers.find((p) => p.endpoint?.startsWith('203.0.113.1:'))!.rxBytes;
      assert.equal(await spoof('fd00:43:0:99::77', 'fd00:43:0:2::1'), 0, 'an unowned source is dropped at b');
      const rxAfter = (await b.readActual(id)).wireguard!.peers.find((p) => p.endpoint?.startsWith('203.0.113.1:'))!.rxBytes;
      assert.ok(rxAfter > rxBefore, 'b did receive (and decrypt) them from a');
      const r = await apply(a, 'a');
      assert.deepEqual(r.resources[0].changes, [`nft table zmesh_${id} written`]);
      assert.equal(await spoof('fd00:43:0:3::77', 'fd00:43:0:2::1'), 0, 'after repair: workload as h → b');
    });

    await t.test('a policy in both families: a rule allows b, the default drops h; neighbour discovery still works', async () => {
      const policy: CompiledPolicy = {
        range: '10.43.0.0/16',
        range6: 'fd00:43::/48',
        default: 'deny',
        // a's own addresses and the workload's (so that the gateway's neighbour advertisements to it are guarded).
        local: ['10.43.1.1/32', '10.43.1.50/32', '10.43.1.254/32', 'fd00:43:0:1::1/128', 'fd00:43:0:1::50/128', 'fd00:43:0:1::fe/128'],
        rules: [{ index: 0, from: ['10.43.2.0/24', 'fd00:43:0:2::/64'], to: ['10.43.1.1/32', 'fd00:43:0:1::1/128'], tcp: [], udp: [], icmp: true, any: false }],
      };
      const withPolicy = [{ ...net.desired.get('a')!, policy }];
      okReport(await a.apply(withPolicy, net.identity.get('a')!));
      assert.ok(await b.waitPing(ns, 'fd00:43:0:1::1'), 'b → a gateway6: rule 0 (icmp6)');
      assert.ok(await b.waitPing(ns, '10.43.1.1'), 'b → a gateway: rule 0 (icmp)');
      assert.equal(await h.ping(ns, 'fd00:43:0:1::1'), false, 'h → a gateway6: the default drops it');
      // The workload forgets the gateway's MAC: it must solicit it, and a's advertisement to a guarded address passes.
      await a.exec(['ip', '-n', wl, 'neigh', 'del', 'fd00:43:0:1::1', 'dev', 'wl0']);
      const r = await a.execIn(wl, ['ping', '-n', '-q', '-c', '2', '-W', '2', '-I', 'fd00:43:0:1::50', 'fd00:43:0:2::1'], { okCodes: [0, 1, 2] });
      assert.equal(r.exitCode, 0, `the workload resolves its gateway and reaches b: ${r.stdout}`);
      const counters = (await a.readActual(id)).policy!;
      assert.ok(counters.rules.find((x) => x.index === 0)!.packets >= 2, JSON.stringify(counters));
      assert.ok(counters.default!.action === 'drop' && counters.default!.packets >= 1, JSON.stringify(counters));
      noop(await a.apply(withPolicy, net.identity.get('a')!), 'a with its policy');
    });

    await t.test('removal leaves nothing behind', async () => {
      await a.exec(['ip', 'netns', 'del', wl], { okCodes: [0, 1, 255] });
      for (const x of [a, b, h]) {
        okReport(await x.apply([], net.identity.get(x === a ? 'a' : x === b ? 'b' : 'h')!));
        assert.deepEqual(await x.listOwned(), []);
      }
    });
  } finally {
    for (const x of hosts) await x.close().catch(() => undefined);
    await sw.destroy().catch(() => undefined);
  }
});
