// Two tenants with the same range on one host, both with egress: each reaches the outside through its veth
// and the host's NAT, neither reaches the other, the host's own addresses, or is reachable from outside.
// Turning egress off removes the veth and the host rules; removal leaves nothing behind. The outside sits
// beyond a router: the host's own LAN is no outside (egress never reaches it, test/torture/egress.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ActualResource, ApplyReport } from '../../netns/index.ts';
import { delNs, makeNs, rand, SimHost, sh, Switch, wire } from '../helpers/host.ts';
import { handPlan } from '../helpers/plan.ts';

const BACKEND = (process.env.ZMESH_TEST_BACKEND as 'auto' | 'kernel' | 'userspace' | undefined) ?? 'auto';

function okReport(r: ApplyReport): void {
  assert.ok(r.ok, `apply failed: ${JSON.stringify([...r.resources.flatMap((x) => x.failures), ...r.removed.flatMap((x) => x.failures)], null, 1)}`);
}

const ipOf = (cidr: string) => cidr.split('/')[0];

test('tenants are isolated from each other and from the host; egress works through NAT', { timeout: 90_000 }, async (t) => {
  const sw = await Switch.create();
  const outside = `zt-out-${rand()}`;
  const router = `zt-rt-${rand()}`;
  let h: SimHost | null = null;
  try {
    h = await SimHost.start('h', { backend: BACKEND });
    await makeNs(outside);
    await makeNs(router);
    await sh(['ip', 'netns', 'exec', router, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    await sw.attach({ ns: h.ns, ifname: 'u0', addr: '203.0.113.1/24' });
    await sw.attach({ ns: router, ifname: 'r0', addr: '203.0.113.254/24' });
    await wire({ ns: router, ifname: 'r1', addr: '192.0.2.1/24' }, { ns: outside, ifname: 'x0', addr: '192.0.2.200/24' });
    await sh(['ip', '-n', outside, 'route', 'add', 'default', 'via', '192.0.2.1']);
    await h.underlay('u0', '203.0.113.254');
    const host = h;
    const pingFrom = async (ns: string, dst: string) => (await host.execIn(ns, ['ping', '-n', '-c', '1', '-W', '1', dst], { okCodes: [0, 1, 2] })).exitCode === 0;

    const n1 = handPlan({ tenant: 'acme', ipRange: '10.50.0.0/16', egress: true, nodes: [{ node: 'h', underlay: '203.0.113.1' }] });
    // Same range, another tenant, the same node identity; listen ports differ per host (the planner's job).
    const n2 = handPlan({
      tenant: 'globex',
      ipRange: '10.50.0.0/16',
      egress: true,
      nodes: [{ node: 'h', underlay: '203.0.113.1' }],
      identity: n1.identity,
      basePort: 51900,
    });
    const id1 = n1.identity.get('h')!;
    const [ns1, ns2] = [`n-${n1.networkId}`, `n-${n2.networkId}`];
    const d1 = n1.desired.get('h')!;
    const d2 = n2.desired.get('h')!;
    const desired = [d1, d2];
    let a1: ActualResource, a2: ActualResource;

    await t.test('both tenants with egress on one host', async () => {
      const r = await host.apply(desired, id1);
      okReport(r);
      [a1, a2] = [r.resources[0].actual!, r.resources[1].actual!];
      assert.ok(a1.hostLink && a2.hostLink);
      assert.notEqual(a1.hostLink!.addresses[0], a2.hostLink!.addresses[0], 'distinct transfer networks');
      assert.ok(a1.routes.some((x) => x.dst === 'default' && x.dev === `eg-${n1.networkId}`));
      // host: input drop; forward: spoof, tenant-to-tenant, uplink, conns, blocked4, blocked6, v6, replies-in, no-new-inbound; masquerade.
      assert.deepEqual(a1.nft.map((x) => [x.where, x.rules]).sort(), [['host', 11], ['tenant', 11]]);
      const again = await host.apply(desired, id1);
      okReport(again);
      assert.equal(again.commands.mutating, 0, again.mutations.join('\n'));
    });

    await t.test('egress reaches the outside through NAT', async () => {
      assert.ok(await pingFrom(ns1, '192.0.2.200'), 'tenant 1 → outside');
      assert.ok(await pingFrom(ns2, '192.0.2.200'), 'tenant 2 → outside');
    });

    await t.test('a tenant reaches neither the other tenant nor the host', async () => {
      const t2Veth = ipOf(a2.links.find((l) => l.name === `eg-${n2.networkId}`)!.addresses[0]);
      const t2Host = ipOf(a2.hostLink!.addresses[0]);
      const t1Host = ipOf(a1.hostLink!.addresses[0]);
      assert.equal(await pingFrom(ns1, t2Veth), false, 'tenant 1 → tenant 2 namespace');
      assert.equal(await pingFrom(ns1, t2Host), false, 'tenant 1 → host end of tenant 2');
      assert.equal(await pingFrom(ns1, t1Host), false, 'tenant 1 → its own host end (a host address)');
      assert.equal(await pingFrom(ns1, '203.0.113.1'), false, 'tenant 1 → host underlay address');
      assert.equal(await pingFrom(ns2, '203.0.113.1'), false, 'tenant 2 → host underlay address');
    });

    await t.test('no new connection from outside into a tenant namespace', async () => {
      const t1Veth = ipOf(a1.links.find((l) => l.name === `eg-${n1.networkId}`)!.addresses[0]);
      await sh(['ip', '-n', router, 'route', 'add', '169.254.0.0/16', 'via', '203.0.113.1']);
      const fromOutside = await sh(['ip', 'netns', 'exec', outside, 'ping', '-n', '-c', '1', '-W', '1', t1Veth], { okCodes: [0, 1, 2] });
      assert.notEqual(fromOutside.exitCode, 0, 'outside → tenant');
      const fromHost = await host.exec(['ping', '-n', '-c', '1', '-W', '1', t1Veth], { okCodes: [0, 1, 2] });
      assert.notEqual(fromHost.exitCode, 0, 'host → tenant');
    });

    await t.test('egress off removes the veth and the host rules', async () => {
      const off = structuredClone(d1);
      off.egress = false;
      const r = await host.apply([off, d2], id1);
      okReport(r);
      const act = r.resources[0].actual!;
      assert.equal(act.hostLink, null);
      assert.ok(!act.links.some((l) => l.name.startsWith('eg-')));
      assert.deepEqual(act.nft.map((x) => x.where), ['tenant']);
      assert.equal(await pingFrom(ns1, '192.0.2.200'), false);
      assert.ok(await pingFrom(ns2, '192.0.2.200'), 'tenant 2 unaffected');
    });

    await t.test('removal leaves nothing behind', async () => {
      const r = await host.apply([], id1);
      okReport(r);
      assert.equal(r.removed.length, 2);
      assert.deepEqual(await host.listOwned(), []);
      assert.doesNotMatch((await host.exec(['nft', 'list', 'tables'])).stdout, /zmesh_/);
      assert.doesNotMatch((await host.exec(['ip', '-br', 'link'])).stdout, /(^|\n)(ze|w)-/);
      assert.deepEqual(host.processes(), []);
    });
  } finally {
    if (h) await h.close();
    await delNs(outside);
    await delNs(router);
    await sw.destroy();
  }
});
