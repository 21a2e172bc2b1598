// Endpoint authority against real namespaces (issue #21): two hosts with wireguard-go (or the kernel) on one
// switch; b moves to another underlay address while it stays silent (like an access node that moved, whose
// hidden nodes' NAT admits only replies from its old address). Re-applying the old plan keeps the old endpoint
// (nothing new to go on: a recent handshake); the re-planned endpoint is set by the next apply at once — also by
// a restarted driver — and traffic flows again. Prints the time from the re-plan's apply to the first reply.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ApplyReport } from '../../netns/index.ts';
import { SimHost, Switch, sh } from '../helpers/host.ts';
import { handPlan } from '../helpers/plan.ts';

const BACKEND = (process.env.ZMESH_TEST_BACKEND as 'auto' | 'kernel' | 'userspace' | undefined) ?? 'auto';

function okReport(r: ApplyReport): void {
  assert.ok(r.ok, `apply failed: ${JSON.stringify([...r.resources.flatMap((x) => x.failures), ...r.removed.flatMap((x) => x.failures)], null, 1)}`);
}

/** Moves b's underlay address (the default route goes with the address, so it is added again). */
async function move(h: SimHost, from: string, to: string): Promise<void> {
  await h.exec(['ip', 'addr', 'del', `${from}/24`, 'dev', 'u0']);
  await h.exec(['ip', 'addr', 'add', `${to}/24`, 'dev', 'u0']);
  await h.exec(['ip', 'route', 'replace', 'default', 'via', '203.0.113.254', 'dev', 'u0']);
}

test('a re-planned endpoint wins at once over a recent handshake; traffic flows again', { timeout: 120_000 }, async (t) => {
  const sw = await Switch.create();
  const hosts: SimHost[] = [];
  try {
    const [a, b] = await Promise.all([SimHost.start('a', { backend: BACKEND }), SimHost.start('b', { backend: BACKEND })]);
    hosts.push(a, b);
    await sw.attach({ ns: a.ns, ifname: 'u0', addr: '203.0.113.1/24' });
    await sw.attach({ ns: b.ns, ifname: 'u0', addr: '203.0.113.2/24' });
    await a.underlay('u0', '203.0.113.254');
    await b.underlay('u0', '203.0.113.254');
    const net = handPlan({ ipRange: '10.78.0.0/16', nodes: [{ node: 'a', underlay: '203.0.113.1' }, { node: 'b', underlay: '203.0.113.2' }] });
    const ns = `n-${net.networkId}`;
    const ids = { a: net.identity.get('a')!, b: net.identity.get('b')! };
    const planA = net.desired.get('a')!;
    const peerB = planA.resource.peers[0];
    const port = peerB.endpoint!.split(':')[1];
    okReport(await a.apply([planA], ids.a));
    okReport(await b.apply([net.desired.get('b')!], ids.b));
    assert.ok(await a.waitPing(ns, '10.78.2.1'), 'a → b');
    const hs0 = (await a.readActual(net.networkId)).wireguard!.peers[0].latestHandshake;
    assert.ok(hs0, 'a handshake with b');

    await move(b, '203.0.113.2', '203.0.113.12');
    // b says nothing (no keepalive, nothing to send): a cannot learn the new address from b's packets.
    assert.equal(await a.ping(ns, '10.78.2.1', 1), false, 'a still sends to the old address');
    const same = await a.apply([planA], ids.a);
    okReport(same);
    assert.equal(same.commands.mutating, 0, 'the old plan again: the endpoint stays (a recent handshake, the plan unchanged)');

    const moved = structuredClone(planA);
    moved.resource.peers[0].endpoint = `203.0.113.12:${port}`;
    const t0 = Date.now();
    const r = await a.apply([moved], ids.a);
    okReport(r);
    assert.deepEqual(r.resources[0].changes, [`peer update ${peerB.publicKey} endpoint 203.0.113.12:${port}`]);
    let replyMs: number | null = null;
    for (let i = 0; i < 40 && Date.now() - t0 < 30_000; i++) {
      if (await a.ping(ns, '10.78.2.1', 1)) {
        replyMs = Date.now() - t0;
        break;
      }
    }
    assert.ok(replyMs !== null, 'a → b again after the re-plan');
    const peer = (await a.readActual(net.networkId)).wireguard!.peers[0];
    assert.equal(peer.endpoint, `203.0.113.12:${port}`);
    t.diagnostic(`re-plan → first reply through the tunnel: ${replyMs} ms (apply ${r.ms.toFixed(0)} ms; handshake ${hs0} → ${peer.latestHandshake})`);
    assert.ok(replyMs <= 30_000);

    // The agent restarts (a new driver: the memory is in its /run), then b moves back and the plan follows.
    await a.stopAgent();
    await a.startAgent();
    okReport(await a.apply([moved], ids.a));
    await move(b, '203.0.113.12', '203.0.113.2');
    assert.ok(await a.ping(ns, '10.78.2.1', 1) === false, 'a still sends to the address b left');
    const t1 = Date.now();
    const r2 = await a.apply([planA], ids.a);
    okReport(r2);
    assert.deepEqual(r2.resources[0].changes, [`peer update ${peerB.publicKey} endpoint 203.0.113.2:${port}`], 'a restarted driver remembers what the plan named');
    let replyMs2: number | null = null;
    for (let i = 0; i < 40 && Date.now() - t1 < 30_000; i++) {
      if (await a.ping(ns, '10.78.2.1', 1)) {
        replyMs2 = Date.now() - t1;
        break;
      }
    }
    assert.ok(replyMs2 !== null, 'a → b again after the second re-plan');
    t.diagnostic(`after a driver restart, re-plan → first reply: ${replyMs2} ms`);

    for (const [h, id] of [
      [a, ids.a],
      [b, ids.b],
    ] as const) {
      okReport(await h.apply([], id));
      assert.deepEqual(await h.listOwned(), []);
      const left = await h.exec(['sh', '-c', 'ls /run/zmesh/endpoints 2>/dev/null || true']);
      assert.equal(left.stdout.trim(), '', 'no endpoint memory left');
    }
  } finally {
    for (const h of hosts) await h.close();
    await sw.destroy();
    await sh(['true']);
  }
});
