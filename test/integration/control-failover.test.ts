// Controller failover (issue #21): two controllers run, the leader is killed (a crash: its leadership lease is
// not revoked and expires after its TTL, the production default of 5 s); the standby leads, and a blueprint
// change submitted right after the kill is applied on every node within 10 s of it. A deposed leader cannot
// write: every transaction a controller commits is guarded by its leadership key (fencing), checked here
// against the real etcd with the old leader's guard after the new one took over.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blueprint, net } from '../helpers/fixtures.ts';
import { controlBed, waitFor } from '../helpers/control-bed.ts';
import { etcdAvailable } from '../helpers/etcd.ts';
import { commit, emptyStats, NotLeaderError } from '../../src/control/etcd.ts';

const skip = etcdAvailable() ? false : 'etcd is not installed (scripts/deps.sh installs it)';
const ep = (i: number) => [`203.0.113.${i}`];
const nodes = ['node-a', 'node-b', 'node-c'];

test('controller failover: the standby leads and a change is applied everywhere within 10 s of the kill; the old leader is fenced', { skip, timeout: 90_000 }, async (t) => {
  const bed = await controlBed();
  try {
    const c1 = await bed.controller({ leaderTtlSec: 5 });
    const c2Leads = bed.controller({ leaderTtlSec: 5 });
    const agents = await Promise.all(nodes.map((n, i) => bed.agent(n, ep(i + 1))));
    await bed.submit(blueprint([net({ nodes })]));
    await waitFor('v1 applied everywhere', () => agents.every((a) => a.bed.state.blueprint('acme', 'shop')?.version === 1));
    const c2 = bed.controllers[1];
    assert.ok(c1.leader && !c2.leader, 'one leader, one standby');
    const putsBefore = c1.stats.puts;

    const killedAt = Date.now();
    await c1.kill();
    await bed.submit(blueprint([net({ nodes, egress: true })], { version: 2 }));
    await c2Leads;
    const ledAfter = Date.now() - killedAt;
    await waitFor('v2 applied everywhere', () => agents.every((a) => a.bed.state.blueprint('acme', 'shop')?.version === 2), 20_000, 20);
    const appliedAfter = Date.now() - killedAt;
    t.diagnostic(`standby led ${ledAfter} ms after the kill (lease TTL 5 s); v2 applied on every node ${appliedAfter} ms after it`);
    assert.ok(appliedAfter <= 10_000, `v2 applied ${appliedAfter} ms after the kill`);
    assert.equal(c1.stats.puts, putsBefore, 'the killed controller wrote nothing after the kill');

    // Fencing: a transaction guarded by the old leadership is refused and writes nothing.
    const probe = bed.keys.leader() + '-fencing-probe';
    await assert.rejects(
      commit(bed.client, [{ type: 'put', key: probe, value: 'zombie' }], emptyStats(), { key: bed.keys.leader(), value: c1.id }),
      (e) => e instanceof NotLeaderError,
    );
    assert.equal(await bed.client.get(probe).string(), null, 'nothing written under the old guard');
    // The new leader's guard holds.
    assert.equal(await bed.client.get(bed.keys.leader()).string(), c2.id);
  } finally {
    await bed.close();
  }
});
