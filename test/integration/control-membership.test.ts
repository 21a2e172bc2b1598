// The etcd control plane with a real etcd: registration and lease expiry; a controller and three agents in
// process (the real pipeline over a fake data plane) — join, leave; and the write count of one node joining 50.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blueprint, identity, net } from '../helpers/fixtures.ts';
import { controlBed, waitFor } from '../helpers/control-bed.ts';
import { etcdAvailable } from '../helpers/etcd.ts';
import { readPrefix } from '../../src/control/index.ts';
import { openRecord, signRecord } from '../../src/control/records.ts';
import { X25519Secret } from '../../src/crypto/keys.ts';

const skip = etcdAvailable() ? false : 'etcd is not installed (scripts/deps.sh installs it)';
const ep = (i: number) => [`203.0.113.${i}`];

test('registration under a lease; the key goes when the node stops heartbeating', { skip }, async () => {
  const bed = await controlBed();
  try {
    const c = await bed.controller({ graceMs: 500, holdDownMs: 2000 });
    const a = await bed.agent('node-a', ep(1));
    // What the agent wrote is a record signed by its identity key, bound to its own key in etcd.
    const stored = (await bed.client.get(bed.keys.node('node-a')).string())!;
    const opened = openRecord(bed.keys.node('node-a'), stored);
    assert.equal(opened.signer, identity('node-a').publicKey.toString());
    assert.throws(() => openRecord(bed.keys.node('node-b'), stored), /does not verify/);
    const reg = opened.record as { agentVersion: string };
    assert.deepEqual(reg, { id: 'node-a', publicKey: identity('node-a').publicKey.toString(), endpoints: ep(1), reservedPorts: [], agentVersion: reg.agentVersion });
    await waitFor('member live', () => c.lastRound?.members['node-a'] === 'live');
    const t0 = Date.now();
    await a.kill();
    await waitFor('registration expired', async () => (await bed.client.get(bed.keys.node('node-a')).string()) === null, 10000);
    const expiredAfter = Date.now() - t0;
    assert.ok(expiredAfter >= 1000 && expiredAfter < 10000, `expired after ${expiredAfter} ms (TTL 2 s)`);
    await waitFor('grace, then held', () => c.lastRound?.members['node-a'] === 'held');
    await waitFor('dropped after the hold-down', async () => (await bed.client.get(bed.keys.member('node-a')).string()) === null);
    // The status key lived under the same lease.
    assert.equal(await bed.client.get(bed.keys.status('node-a')).string(), null);
  } finally {
    await bed.close();
  }
});

test('a controller and three agents: join, leave (grace, held, dropped), status written back', { skip }, async () => {
  const bed = await controlBed();
  try {
    const c = await bed.controller({ graceMs: 500, holdDownMs: 3000 });
    const a = await bed.agent('node-a', ep(1));
    const b = await bed.agent('node-b', ep(2));
    await bed.submit(blueprint([net({ nodes: ['node-a', 'node-b', 'node-c'] })]));
    const peers = (x: typeof a) => x.bed.agent.networks().find((n) => n.blueprint === 'shop')?.peers ?? -1;
    await waitFor('a and b applied with each other', () => peers(a) === 1 && peers(b) === 1);
    const g1 = a.generation();
    assert.ok(g1 >= 1);

    // Join: node-c registers; a and b get a new generation of the same version, c its part.
    const cc = await bed.agent('node-c', ep(3));
    await waitFor('c joined everywhere', () => peers(a) === 2 && peers(b) === 2 && peers(cc) === 2);
    assert.ok(a.generation() > g1, 'a higher plan generation, same version');
    assert.equal(a.bed.state.blueprint('acme', 'shop')!.version, 1);
    const st = await waitFor<{ blueprints: Record<string, { generation: number; ok: boolean }>; peers: Record<string, Record<string, string>> } | null>('status written back', async () => {
      const text = await bed.client.get(bed.keys.status('node-a')).string();
      const s = text ? (openRecord(bed.keys.status('node-a'), text).record as { blueprints: Record<string, { generation: number; ok: boolean }>; peers: Record<string, Record<string, string>> }) : null;
      return s?.blueprints?.['acme/shop']?.generation === a.generation() && Object.keys(s.peers['acme/shop/net'] ?? {}).length === 2 ? s : null;
    });
    assert.ok(st);
    assert.equal(st.blueprints['acme/shop'].ok, true);
    assert.deepEqual(Object.keys(st.peers['acme/shop/net']).sort(), ['node-b', 'node-c']);
    assert.match(st.peers['acme/shop/net']['node-b'], /^(ok|stale|down)$/);

    // A second blueprint over the same nodes: the controller reserves the first one's ports on every node.
    await bed.submit(blueprint([net({ nodes: ['node-a', 'node-b', 'node-c'], ipRange: '10.2.0.0/16' })], { name: 'ops' }));
    await waitFor('ops applied everywhere', () => [a, b, cc].every((x) => x.bed.agent.networks().length === 2));
    for (const x of [a, b, cc]) {
      const ports = x.bed.agent.networks().map((n) => n.listenPort);
      assert.equal(new Set(ports).size, 2, `${x.node}: distinct ports ${ports}`);
    }

    // Leave: c stops for good. Held first (hidden behind a or b), then dropped: a and b lose it.
    await cc.kill();
    await waitFor('c held', () => c.lastRound?.members['node-c'] === 'held', 10000);
    await waitFor('c dropped: a and b back to one peer', () => peers(a) === 1 && peers(b) === 1, 15000);
    // c's own part is left as it was (it may come back): nothing is written to a gone node.
    const { kvs } = await readPrefix(bed.client, bed.keys.nodeParts('node-c'));
    assert.ok(kvs.size > 0);
    // It comes back after the hold-down: a new member that gets back its old subnet, port and keys (free still); a
    // and b get it back as a peer. Its own part changes in one thing only, the roster it names: the network's
    // roster has a new epoch since c left (a node that left must not read the members after it), so c takes a new
    // generation that runs exactly what it ran.
    const gBefore = cc.generation();
    const before = cc.bed.state.blueprint('acme', 'shop')!.part.networks[0];
    await cc.restart();
    await waitFor('c rejoined', () => peers(a) === 2 && peers(b) === 2 && peers(cc) === 2);
    await waitFor('c took its part with the new roster', () => cc.generation() > gBefore && Object.values(cc.link.status.blueprints).every((x) => x.ok));
    const after = cc.bed.state.blueprint('acme', 'shop')!.part.networks[0];
    assert.deepEqual([after.resource.subnet, after.resource.listenPort, after.resource.publicKey], [before.resource.subnet, before.resource.listenPort, before.resource.publicKey]);
    assert.deepEqual([after.subnets, after.names], [before.subnets, before.names]);
  } finally {
    await bed.close();
  }
});

test('one node joining a 50-node network writes O(nodes) small updates', { skip }, async () => {
  const bed = await controlBed();
  try {
    const c = await bed.controller({ debounceMs: 50 });
    const ids = Array.from({ length: 51 }, (_, i) => `n${i + 1}`);
    // 45 public and 5 hidden nodes register (raw registrations: no agents needed to count writes).
    const lease = bed.client.lease(30);
    const register = async (id: string, i: number) => {
      const endpoints = i >= 45 && i < 50 ? [] : ep(i + 1);
      await bed.ops.approveNode(id, identity(id).publicKey.toString());
      const key = bed.keys.node(id);
      await lease.put(key).value(signRecord(key, { id, publicKey: identity(id).publicKey.toString(), endpoints, reservedPorts: [] }, new X25519Secret(identity(id).privateKey)));
    };
    for (let i = 0; i < 50; i++) await register(ids[i], i);
    await bed.submit(blueprint([net({ nodes: ids, ipRange: '10.64.0.0/12' })]));
    await waitFor('planned over 50', () => c.lastRound?.blueprints['acme/shop']?.generation === 1 && Object.keys(c.lastRound.members).length === 50);
    await c.idle();
    const rev = (await bed.client.kv.range({ key: Buffer.from(bed.keys.parts()) })).header.revision;
    const before = { ...c.stats };

    await register('n51', 50);
    await waitFor('re-planned with n51', () => c.lastRound?.blueprints['acme/shop']?.generation === 2);
    await c.idle();

    // Count what etcd recorded under parts/ since then, per node.
    const puts = new Map<string, number>();
    let bytes = 0;
    const w = await bed.client.watch().prefix(bed.keys.parts()).startRevision((BigInt(rev) + 1n).toString()).create();
    const seen = new Promise<void>((resolve) => {
      let n = 0;
      const total = c.stats.puts - before.puts;
      w.on('data', (r) => {
        for (const e of r.events) {
          const node = bed.keys.parsePartKey(e.kv.key.toString())!.ref.node;
          puts.set(node, (puts.get(node) ?? 0) + 1);
          bytes += e.kv.key.length + e.kv.value.length;
          n++;
        }
        if (n >= total - 4) resolve();
      });
    });
    await Promise.race([seen, new Promise((r) => setTimeout(r, 3000))]);
    await w.cancel();
    const newNode = puts.get('n51') ?? 0;
    const others = [...puts].filter(([n]) => n !== 'n51');
    const maxOther = Math.max(...others.map(([, v]) => v));
    const total = [...puts.values()].reduce((s, v) => s + v, 0);
    // Every existing public node: its new peer, one subnet bucket, one names bucket (docs/dns.md: the new node's
    // name), its head; hidden nodes: the buckets and the head.
    assert.ok(maxOther <= 4, `at most 4 small puts per existing node, got ${maxOther}`);
    assert.ok(others.length <= 50);
    assert.ok(newNode >= 45 && newNode <= 60, `the new node's own part: ${newNode} entries`);
    assert.ok(total <= 4 * 50 + 60, `${total} puts in all`);
    const perExisting = bytes / 50;
    if (process.env.ZMESH_TEST_VERBOSE) console.log({ total, newNode, maxOther, others: others.length, bytes });
    assert.ok(perExisting < 4096, `~${Math.round(perExisting)} bytes per existing node`);
    lease.release();
  } finally {
    await bed.close();
  }
});
