// Handshakes started by one side of each pair of public nodes (src/agent/handshakes.ts), with real WireGuard on
// two simulated hosts, the starter wired to each host's driver as the agent wires it. The node whose key sorts
// first applies first and starts at once: its initiation is lost (the other node does not know it yet), which
// holds its side for WireGuard's 5 s rekey timeout. The other node applies 300 ms later. The starter's next check
// (1 s) sees bytes sent and no handshake, removes and adds the peer again (clearing the hold) and starts again:
// both nodes have a session within 4 s (~0.7 s measured), with no packet sent by anyone. Without the repair the session would come
// with WireGuard's own retry, after 5 s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ApplyReport, WgDevice } from '../../netns/index.ts';
import { CHECK_MS, HandshakeStarter } from '../../src/agent/handshakes.ts';
import { SimHost, startOnSwitch, Switch } from '../helpers/host.ts';
import { handPlan } from '../helpers/plan.ts';

const BACKEND = (process.env.ZMESH_TEST_BACKEND as 'auto' | 'kernel' | 'userspace' | undefined) ?? 'auto';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function okReport(r: ApplyReport): void {
  assert.ok(r.ok, `apply failed: ${JSON.stringify(r.resources.flatMap((x) => x.failures), null, 1)}`);
}

test('a lost first initiation is repaired within a second: a session on both sides with no packet sent', { timeout: 90_000 }, async (t) => {
  const sw = await Switch.create();
  const hosts: SimHost[] = [];
  try {
    const [a, b] = await startOnSwitch(sw, hosts, ['a', 'b'], { backend: BACKEND });
    const net = handPlan({ ipRange: '10.43.0.0/16', nodes: [{ node: 'a', underlay: '203.0.113.1' }, { node: 'b', underlay: '203.0.113.2' }], seed: 'kick' });
    const id = net.networkId;
    const key = (n: 'a' | 'b') => net.desired.get(n)!.resource.publicKey;
    const [first, later] = key('a') < key('b') ? (['a', 'b'] as const) : (['b', 'a'] as const);
    const host = { a, b };
    const d = net.desired.get(first)!;
    const events: string[] = [];
    const starter = new HandshakeStarter({
      read: async (networkId) => {
        const dev = await host[first].call<WgDevice | null>('readDevice', { networkId });
        return dev ? dev.peers.map((p) => ({ publicKey: p.publicKey, rxBytes: p.rxBytes, txBytes: p.txBytes, latestHandshake: p.latestHandshake, endpoint: p.endpoint })) : null;
      },
      start: async (n, start, reset) => {
        const lines = reset.length ? await host[first].call<string[]>('setPeers', { networkId: n.networkId, peers: n.peers, reset }) : [];
        return [...lines, ...(start.length ? await host[first].call<string[]>('startHandshakes', { networkId: n.networkId, keys: start }) : [])];
      },
      event: (_l, kind) => events.push(kind),
    });
    const hn = { networkId: id, subject: 't/b/net', ownKey: d.resource.publicKey, hidden: false, peers: d.resource.peers };

    okReport(await host[first].apply([d], net.identity.get(first)!, undefined, { readBack: false }));
    assert.equal(starter.arm([hn]), true, 'the earlier-sorting node starts the handshake');
    assert.equal(await starter.check([hn]), true);
    await sleep(300);
    okReport(await host[later].apply([net.desired.get(later)!], net.identity.get(later)!, undefined, { readBack: false }));
    const t0 = Date.now();
    const handshakes = async () => Promise.all([first, later].map(async (n) => (await host[n].call<WgDevice | null>('readDevice', { networkId: id }))?.peers[0]?.latestHandshake ?? 0));
    let hs = await handshakes();
    let again = true;
    while (Date.now() - t0 < 4000 && !hs.every((x) => x > 0)) {
      await sleep(CHECK_MS - 300);
      if (again) again = await starter.check([hn]);
      hs = await handshakes();
    }
    assert.ok(hs.every((x) => x > 0), `a session within 4 s (WireGuard's own retry: ~4.7 s) with no packet sent: handshakes ${JSON.stringify(hs)} after ${Date.now() - t0} ms; starter events ${events.join(', ')}`);
    assert.ok(events.includes('handshake.retried'), `the lost initiation was repaired: ${events.join(', ')}`);
    t.diagnostic(`session on both sides ${Date.now() - t0} ms after the second apply; starter events: ${events.join(', ')}`);
    // The keepalive is off again and the peer as planned: a full apply after is a no-op on both.
    for (const n of [first, later]) {
      const again2 = await host[n].apply([net.desired.get(n)!], net.identity.get(n)!);
      okReport(again2);
      assert.equal(again2.commands.mutating, 0, again2.mutations.join('\n'));
    }
    const gw = { a: '10.43.1.1', b: '10.43.2.1' };
    const [p1, p2] = await Promise.all([host[first].ping(`n-${id}`, gw[later]), host[later].ping(`n-${id}`, gw[first])]);
    assert.deepEqual([p1, p2], [true, true]);
  } finally {
    for (const h of hosts) await h.close();
    await sw.destroy();
  }
});
