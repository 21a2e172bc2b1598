// IPv6 egress on real namespaces (issue #20): a dual-stack network with egress and `egress6` on a host whose
// uplink has IPv6 (2001:db8:1::1/64, default route via an ISP router, accept_ra=1). Behind the ISP sits the
// outside (2001:db8:2::10 and 192.0.2.10). A workload on the bridge reaches the outside in both families, the
// outside sees the host's uplink address only (NAT66), the host keeps taking router advertisements on its uplink
// (accept_ra 1 → 2 before IPv6 forwarding), and nothing else changes: the host's own addresses, its LAN and the
// other transfer links stay out of reach, nobody outside opens a connection in, a spoofed source goes nowhere, a
// re-apply is a no-op. Without the ask (or without an IPv6 default route) IPv6 stays in; IPv4 egress is untouched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import type { ApplyReport, DesiredResource } from '../../netns/index.ts';
import { delNs, ispAndOutside, rand, sh, SimHost, Switch } from '../helpers/host.ts';
import { handPlan } from '../helpers/plan.ts';
import { ECHO_ONCE_PY, SEND_PY } from '../helpers/dual-probes.ts';

const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

const BACKEND = (process.env.ZMESH_TEST_BACKEND as 'auto' | 'kernel' | 'userspace' | undefined) ?? 'auto';

function okReport(r: ApplyReport): void {
  assert.ok(r.ok, `apply failed: ${JSON.stringify([...r.resources.flatMap((x) => x.failures), ...r.removed.flatMap((x) => x.failures)], null, 1)}`);
}

function noop(r: ApplyReport, who: string): void {
  okReport(r);
  assert.equal(r.commands.mutating, 0, `${who}: expected a no-op, got:\n${r.mutations.join('\n')}`);
}

/** Counts IPv6 packets by source at the outside's prerouting (what the outside sees). */
async function addSpy(ns: string, sources: string[]): Promise<void> {
  const rules = sources.map((s) => `\t\tip6 saddr ${s} counter comment "${s}"`).join('\n');
  const text = `table inet e6spy {\n\tchain pre {\n\t\ttype filter hook prerouting priority -300; policy accept;\n${rules}\n\t}\n}\n`;
  await sh(['ip', 'netns', 'exec', ns, 'nft', '-f', '-'], { input: `table inet e6spy\ndelete table inet e6spy\n${text}` });
}

async function readSpy(ns: string): Promise<Map<string, number>> {
  const r = await sh(['ip', 'netns', 'exec', ns, 'nft', '-j', 'list', 'table', 'inet', 'e6spy']);
  const out = new Map<string, number>();
  for (const item of (JSON.parse(r.stdout) as { nftables: { rule?: { comment?: string; expr: { counter?: { packets: number } }[] } }[] }).nftables) {
    if (item.rule?.comment) out.set(item.rule.comment, item.rule.expr.find((e) => e.counter)?.counter?.packets ?? 0);
  }
  return out;
}

test('IPv6 egress: NAT66 out of the uplink, the same walls as IPv4, RAs still taken, off without the ask', { timeout: 150_000 }, async (t) => {
  const sw = await Switch.create();
  let isp = '';
  let far = '';
  const wl = `zt-wl6-${rand()}`;
  let h: SimHost | null = null;
  try {
    h = await SimHost.start('e6', { backend: BACKEND });
    const host = h;
    // The uplink takes router advertisements (SLAAC), like a cloud VM's; forwarding off, as on a fresh node.
    ({ isp, far } = await ispAndOutside(sw, host, { ipv6: true }));

    const net = handPlan({ tenant: 'acme', ipRange: '10.61.0.0/16', ipv6Range: 'fd00:61::/48', egress: true, nodes: [{ node: 'h', underlay: '203.0.113.1' }] });
    const id = net.networkId;
    const ns = `n-${id}`;
    const identity = net.identity.get('h')!;
    const asked: DesiredResource = { ...net.desired.get('h')!, egress6: true };
    const plain: DesiredResource = net.desired.get('h')!;
    const ping = async (from: string, dst: string) => (await sh(['ip', 'netns', 'exec', from, 'ping', '-n', '-q', '-c', '1', '-W', '1', dst], { okCodes: [0, 1, 2] })).exitCode === 0;
    const wlPing = async (dst: string) => (await host.execIn(wl, ['ping', '-n', '-q', '-c', '1', '-W', '1', dst], { okCodes: [0, 1, 2] })).exitCode === 0;
    let host6 = '';
    let tenant6 = '';

    await t.test('applied: IPv6 transfer pair, ::/0 out of the veth, host forwarding with accept_ra 2 first; a re-apply is a no-op', async () => {
      const r = await host.apply([asked], identity);
      okReport(r);
      const act = r.resources[0].actual!;
      const hostAddrs = act.hostLink!.addresses;
      host6 = hostAddrs.find((a) => a.includes(':'))!;
      tenant6 = act.links.find((l) => l.name === `eg-${id}`)!.addresses.find((a) => a.includes(':'))!;
      assert.match(host6, /^fc00:5a::a9fe:[0-9a-f]{1,4}\/126$/);
      // The IPv6 pair mirrors the IPv4 one: the same low 32 bits.
      const v4 = hostAddrs.find((a) => !a.includes(':'))!.split('/')[0].split('.').map(Number);
      assert.equal(host6, `fc00:5a::a9fe:${((v4[2] << 8) | v4[3]).toString(16)}/126`);
      assert.ok(act.routes.some((x) => x.dst === '::/0' && x.dev === `eg-${id}` && x.gateway === host6.split('/')[0]), JSON.stringify(act.routes));
      assert.ok(act.routes.some((x) => x.dst === 'default' && x.dev === `eg-${id}`), 'the IPv4 default route is still there');
      const sysctl = await host.exec(['sysctl', '-n', 'net.ipv6.conf.all.forwarding', 'net.ipv6.conf.u0.accept_ra', 'net.ipv6.conf.u0.forwarding']);
      assert.deepEqual(sysctl.stdout.trim().split('\n'), ['1', '2', '1']);
      assert.ok(r.resources[0].changes.includes('host: net.ipv6.conf.u0.accept_ra=2'), r.resources[0].changes.join('\n'));
      noop(await host.apply([asked], identity), 'a re-apply');
    });

    await t.test('a workload reaches the outside in both families; the outside sees the uplink address only', async () => {
      const mtu = (JSON.parse((await host.execIn(ns, ['ip', '-j', 'link', 'show', `b-${id}`])).stdout) as { mtu: number }[])[0].mtu;
      await host.exec(['ip', 'netns', 'add', wl]);
      await host.exec(['ip', '-n', wl, 'link', 'add', 'wl0', 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'e6v', 'mtu', String(mtu), 'netns', ns]);
      await host.exec(['ip', '-n', ns, 'link', 'set', 'e6v', 'master', `b-${id}`, 'up']);
      await host.exec(['ip', '-n', wl, '-batch', '-'], {
        input: 'link set lo up\nlink set wl0 up\naddr add 10.61.1.50/24 dev wl0\nroute add default via 10.61.1.1\naddr add fd00:61:0:1::50/64 dev wl0 nodad\nroute add default via fd00:61:0:1::1\n',
      });
      await addSpy(far, ['2001:db8:1::1', 'fd00:61:0:1::50', tenant6.split('/')[0]]);
      let ok = false;
      for (let i = 0; i < 10 && !ok; i++) ok = await wlPing('2001:db8:2::10');
      assert.ok(ok, 'workload → outside over IPv6');
      assert.ok(await wlPing('192.0.2.10'), 'workload → outside over IPv4');
      assert.ok(await host.ping(ns, '2001:db8:2::10'), 'the namespace itself → outside over IPv6');
      const seen = await readSpy(far);
      assert.ok((seen.get('2001:db8:1::1') ?? 0) >= 2, `the outside sees the uplink address: ${JSON.stringify([...seen])}`);
      assert.equal(seen.get('fd00:61:0:1::50'), 0, 'never the workload');
      assert.equal(seen.get(tenant6.split('/')[0]), 0, 'never the transfer address');
      // A TCP connection too (conntrack and NAT66 both ways): the outside reads the request and answers it.
      const srv = sh(['ip', 'netns', 'exec', far, 'timeout', '15', PYTHON, '-I', '-S', '-c', ECHO_ONCE_PY, '8086', '10'], { okCodes: [0, 1, 124] });
      for (let i = 0; i < 100; i++) {
        if ((await sh(['ip', 'netns', 'exec', far, 'ss', '-Hltn', 'sport', '=', ':8086'])).stdout.trim()) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const cli = await host.execIn(wl, ['timeout', '10', PYTHON, '-I', '-S', '-c', SEND_PY, '2001:db8:2::10', '8086', 'hello over six'], { okCodes: [0, 1, 124] });
      const got = await srv;
      assert.equal(cli.exitCode, 0, `client: ${cli.stderr}; server: exit ${got.exitCode} ${got.stderr}`);
      assert.equal(got.stdout.trim(), 'hello over six', `the outside read the request (server stderr: ${got.stderr})`);
      assert.equal(cli.stdout.trim(), 'echo: hello over six', 'the answer came back through NAT66');
    });

    await t.test('the walls hold for IPv6: not the host, its LAN, the transfer links; nothing comes in', async () => {
      assert.equal(await wlPing('2001:db8:1::1'), false, 'workload → the host uplink address');
      assert.equal(await wlPing('2001:db8:1::fe'), false, 'workload → the host\'s LAN (the ISP router on its /64)');
      assert.equal(await wlPing(host6.split('/')[0]), false, 'workload → the host end of its own transfer link');
      assert.equal(await host.ping(ns, '2001:db8:1::fe'), false, 'namespace → the host\'s LAN');
      // From the outside, with a route to the transfer links through the host: nothing new gets in.
      await sh(['ip', '-n', isp, 'route', 'add', 'fc00:5a::/96', 'via', '2001:db8:1::1']);
      assert.equal(await ping(far, tenant6.split('/')[0]), false, 'outside → tenant end');
      assert.equal(await ping(isp, tenant6.split('/')[0]), false, 'the LAN → tenant end');
    });

    await t.test('a spoofed IPv6 source from the workload leaves by no egress', async () => {
      await host.exec(['ip', '-n', wl, 'addr', 'add', 'fd00:61:0:9::77/128', 'dev', 'wl0', 'nodad']);
      await host.exec(['ip', '-n', wl, 'neigh', 'replace', 'fd00:61:0:1::1', 'lladdr', '02:5a:0a:3d:01:01', 'dev', 'wl0', 'nud', 'permanent']);
      const before = (await readSpy(far)).get('2001:db8:1::1') ?? 0;
      await host.execIn(wl, ['ping', '-n', '-q', '-c', '3', '-i', '0.1', '-W', '1', '-I', 'fd00:61:0:9::77', '2001:db8:2::10'], { okCodes: [0, 1, 2] });
      assert.equal((await readSpy(far)).get('2001:db8:1::1') ?? 0, before, 'nothing of it reached the outside');
      const spoof = (await host.readActual(id)).firewall!.rules.find((x) => x.tag === 'fwd-spoof6')!;
      assert.ok(spoof.packets >= 3, JSON.stringify(spoof));
      await host.exec(['ip', '-n', wl, 'addr', 'del', 'fd00:61:0:9::77/128', 'dev', 'wl0']);
    });

    await t.test('without the ask: IPv6 stays in, IPv4 egress goes on, the host keeps its settings', async () => {
      const r = await host.apply([plain], identity);
      okReport(r);
      const act = r.resources[0].actual!;
      assert.ok(!act.hostLink!.addresses.some((a) => a.includes(':')), JSON.stringify(act.hostLink));
      assert.ok(!act.routes.some((x) => x.dst === '::/0'), JSON.stringify(act.routes));
      assert.equal(await wlPing('2001:db8:2::10'), false, 'workload → outside over IPv6');
      assert.ok(await wlPing('192.0.2.10'), 'workload → outside over IPv4');
      noop(await host.apply([plain], identity), 'a re-apply');
      const again = await host.apply([asked], identity);
      okReport(again);
      let ok = false;
      for (let i = 0; i < 10 && !ok; i++) ok = await wlPing('2001:db8:2::10');
      assert.ok(ok, 'asked again: IPv6 out again');
    });

    await t.test('a host without an IPv6 default route gives no IPv6 egress', async () => {
      await sh(['ip', '-n', host.ns, 'route', 'del', '::/0', 'via', '2001:db8:1::fe', 'dev', 'u0']);
      const r = await host.apply([asked], identity);
      okReport(r);
      assert.ok(!r.resources[0].actual!.hostLink!.addresses.some((a) => a.includes(':')));
      assert.equal(await wlPing('2001:db8:2::10'), false);
      noop(await host.apply([asked], identity), 'a re-apply');
    });

    await t.test('removal leaves nothing behind', async () => {
      await host.exec(['ip', 'netns', 'del', wl], { okCodes: [0, 1, 255] });
      const r = await host.apply([], identity);
      okReport(r);
      assert.deepEqual(await host.listOwned(), []);
      assert.doesNotMatch((await host.exec(['nft', 'list', 'tables'])).stdout, /zmesh_/);
      assert.doesNotMatch((await host.exec(['ip', '-6', 'addr'])).stdout, /fc00:5a:/);
    });
  } finally {
    if (h) await h.exec(['ip', 'netns', 'del', wl], { okCodes: [0, 1, 255] }).catch(() => undefined);
    if (h) await h.close();
    if (isp) await delNs(isp);
    if (far) await delNs(far);
    await sw.destroy();
  }
});
