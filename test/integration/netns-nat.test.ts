// A hidden host behind a NAT router (nft masquerade) enters the mesh through its access node, kept open by
// persistent keepalive; a public host reaches it through the access node. The endpoint the access node
// learnt (the NAT's) is never overwritten by a later apply of the same plan (roaming is respected); a plan that
// changes the endpoint wins at once (issue #21).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ApplyReport } from '../../netns/index.ts';
import { makeNatRouter, delNs, SimHost, Switch, wire, sh, rand } from '../helpers/host.ts';
import { handPlan } from '../helpers/plan.ts';

const BACKEND = (process.env.ZMESH_TEST_BACKEND as 'auto' | 'kernel' | 'userspace' | undefined) ?? 'auto';

function okReport(r: ApplyReport): void {
  assert.ok(r.ok, `apply failed: ${JSON.stringify([...r.resources.flatMap((x) => x.failures), ...r.removed.flatMap((x) => x.failures)], null, 1)}`);
}

test('hidden host behind NAT reaches the mesh through its access node', { timeout: 90_000 }, async (t) => {
  const sw = await Switch.create();
  const router = `zt-nat-${rand()}`;
  const hosts: SimHost[] = [];
  try {
    const [a, b, c] = await Promise.all([
      SimHost.start('a', { backend: BACKEND }),
      SimHost.start('b', { backend: BACKEND }),
      SimHost.start('c', { backend: BACKEND }),
    ]);
    hosts.push(a, b, c);
    await makeNatRouter(router);
    await sw.attach({ ns: a.ns, ifname: 'u0', addr: '203.0.113.1/24' });
    await sw.attach({ ns: b.ns, ifname: 'u0', addr: '203.0.113.2/24' });
    await sw.attach({ ns: router, ifname: 'wan', addr: '203.0.113.3/24' });
    await wire({ ns: router, ifname: 'lan', addr: '198.51.100.1/24' }, { ns: c.ns, ifname: 'u0', addr: '198.51.100.2/24' });
    await a.underlay('u0', '203.0.113.254');
    await b.underlay('u0', '203.0.113.254');
    await c.underlay('u0', '198.51.100.1');
    // The NAT works and the hidden host is not reachable from outside.
    assert.equal((await c.exec(['ping', '-c', '1', '-W', '1', '203.0.113.1'], { okCodes: [0, 1] })).exitCode, 0);
    assert.notEqual((await a.exec(['ping', '-c', '1', '-W', '1', '198.51.100.2'], { okCodes: [0, 1, 2] })).exitCode, 0);

    const net = handPlan({
      ipRange: '10.77.0.0/16',
      nodes: [
        { node: 'a', underlay: '203.0.113.1' },
        { node: 'b', underlay: '203.0.113.2' },
        { node: 'c', hidden: true, accessNode: 'a', keepalive: 5 },
      ],
    });
    const ns = `n-${net.networkId}`;
    const ids = { a: net.identity.get('a')!, b: net.identity.get('b')!, c: net.identity.get('c')! };
    const pubC = net.desired.get('c')!.resource.publicKey;

    await t.test('apply on the three hosts', async () => {
      const reports = await Promise.all([
        a.apply([net.desired.get('a')!], ids.a),
        b.apply([net.desired.get('b')!], ids.b),
        c.apply([net.desired.get('c')!], ids.c),
      ]);
      reports.forEach(okReport);
      const peerA = reports[2].resources[0].actual!.wireguard!.peers;
      assert.equal(peerA.length, 1, 'the hidden host only peers with its access node');
      assert.equal(peerA[0].persistentKeepalive, 5);
    });

    await t.test('hidden → access node, hidden → public node through the access node', async () => {
      assert.ok(await c.waitPing(ns, '10.77.1.1'), 'c → a');
      assert.ok(await c.waitPing(ns, '10.77.2.1'), 'c → b via a');
    });

    await t.test('public node → hidden node through the access node, and the access node → hidden', async () => {
      assert.ok(await b.waitPing(ns, '10.77.3.1'), 'b → c via a');
      assert.ok(await a.waitPing(ns, '10.77.3.1'), 'a → c');
      const peer = (await a.readActual(net.networkId)).wireguard!.peers.find((p) => p.publicKey === pubC)!;
      assert.match(peer.endpoint ?? '', /^203\.0\.113\.3:\d+$/, 'the access node learnt the NAT endpoint');
      assert.ok(peer.latestHandshake !== null);
    });

    await t.test('re-applying keeps the learnt endpoint (no-op); a plan that names an endpoint wins at once', async () => {
      const r = await a.apply([net.desired.get('a')!], ids.a);
      okReport(r);
      assert.equal(r.commands.mutating, 0, r.mutations.join('\n'));
      // Issue #21: the plan itself changed the peer's endpoint (from none to one): it is set at once, whatever
      // the handshake.
      const moved = structuredClone(net.desired.get('a')!);
      moved.resource.peers.find((p) => p.publicKey === pubC)!.endpoint = '203.0.113.77:40000';
      const r2 = await a.apply([moved], ids.a);
      okReport(r2);
      assert.deepEqual(r2.resources[0].changes, [`peer update ${pubC} endpoint 203.0.113.77:40000`]);
      // Back to the plan without an endpoint: nothing is set (a learnt endpoint is never cleared), and the hidden
      // node's keepalive (5 s) through its NAT teaches the access node its endpoint again.
      const r3 = await a.apply([net.desired.get('a')!], ids.a);
      okReport(r3);
      assert.equal(r3.commands.mutating, 0, r3.mutations.join('\n'));
      assert.ok(await b.waitPing(ns, '10.77.3.1', 15), 'b → c again once c\'s keepalive reached a');
      const peer = (await a.readActual(net.networkId)).wireguard!.peers.find((p) => p.publicKey === pubC)!;
      assert.match(peer.endpoint ?? '', /^203\.0\.113\.3:\d+$/, 'the access node learnt the NAT endpoint again');
    });

    await t.test('removal on every host leaves nothing behind', async () => {
      for (const [h, id] of [
        [a, ids.a],
        [b, ids.b],
        [c, ids.c],
      ] as const) {
        okReport(await h.apply([], id));
        assert.deepEqual(await h.listOwned(), []);
        assert.deepEqual(h.processes(), []);
      }
    });
  } finally {
    for (const h of hosts) await h.close();
    await delNs(router);
    await sw.destroy();
    await sh(['true']);
  }
});
