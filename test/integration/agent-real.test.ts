// The agent for real: a `zmesh agent` process in a throwaway host (own network and mount namespaces), with the
// real netns driver and wireguard-go. Two tenants with the same range on one node; drift repaired by the loop;
// restart and reboot recovery from the state directory; kill -9 in the middle of an apply; replayed and tampered
// submissions refused with the old state intact; an unprivileged user refused by the socket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { execa } from 'execa';
import { call } from '../../src/admin/client.ts';
import { ZmeshError } from '../../src/errors.ts';
import { blueprint, net } from '../helpers/fixtures.ts';
import { part, planFor, signed } from '../helpers/agent-fixtures.ts';
import { NodeHost } from '../helpers/node-host.ts';
import { pathWireguardGoBuild } from '../helpers/wireguard-go.ts';
import { ROOT, destroyAgentHost, makeAgentHost, netnsList, startAgent, stopAgent, waitFor, wgDaemons, type AgentHost } from '../helpers/agent-host.ts';

const nodes = ['node-a', 'node-b'];
const acme = blueprint([net({ nodes, ipRange: '10.1.0.0/16' })]);
const globex = blueprint([net({ nodes, ipRange: '10.1.0.0/16' })], { tenant: 'globex', name: 'ops' });
const acmePlan = planFor(acme, nodes);
// node-a already hosts acme on 51820: globex is planned with that port reserved.
const globexPlan = planFor(globex, [{ id: 'node-a', endpoints: ['203.0.113.1'], reservedPorts: [51820] }, 'node-b']);

type Bed = AgentHost;

const ids = [acmePlan.networks[0].id, globexPlan.networks[0].id];
const expectedNs = ids.map((i) => `n-${i}`).sort();

async function submitBoth(bed: Bed): Promise<void> {
  const a = await call<{ networks: { ok: boolean }[] }>(bed.socket, 'POST', '/v1/blueprints', { signed: signed(acme), part: part(acmePlan, 'node-a') });
  assert.ok(a.networks[0].ok, JSON.stringify(a));
  const g = await call<{ networks: { ok: boolean }[] }>(bed.socket, 'POST', '/v1/blueprints', { signed: signed(globex), part: part(globexPlan, 'node-a') });
  assert.ok(g.networks[0].ok, JSON.stringify(g));
}

async function converged(bed: Bed): Promise<boolean> {
  const nets = await call<{ networks: { applied: boolean }[] }>(bed.socket, 'GET', '/v1/networks').catch(() => null);
  if (!nets || nets.networks.length !== 2 || !nets.networks.every((n) => n.applied)) return false;
  for (const id of ids) {
    const d = await call<{ actual: { wireguard: { publicKey: string } | null; namespaceExists: boolean } }>(bed.socket, 'GET', `/v1/networks/${id}`);
    if (!d.actual?.namespaceExists || !d.actual.wireguard?.publicKey) return false;
  }
  return true;
}

test('agent in a real host: two tenants, drift repair, restart and reboot recovery, kill -9, refusals, socket access', { timeout: 240000 }, async (t) => {
  const bed = await makeAgentHost();
  try {
    await startAgent(bed);

    await t.test('two tenants with the same range on one node', async () => {
      await submitBoth(bed);
      assert.deepEqual(await netnsList(bed), expectedNs);
      assert.equal(wgDaemons(bed), 2);
      const a = await call<{ actual: { wireguard: { publicKey: string; listenPort: number } } }>(bed.socket, 'GET', `/v1/networks/${ids[0]}`);
      assert.equal(a.actual.wireguard.publicKey, acmePlan.networks[0].resources[0].publicKey);
      assert.equal(a.actual.wireguard.listenPort, 51820);
      const g = await call<{ actual: { wireguard: { publicKey: string; listenPort: number } } }>(bed.socket, 'GET', `/v1/networks/${ids[1]}`);
      assert.deepEqual([g.actual.wireguard.publicKey, g.actual.wireguard.listenPort], [globexPlan.networks[0].resources[0].publicKey, 51821]);
    });

    await t.test('a replayed or tampered submission is refused and the old state keeps running', async () => {
      const before = await call(bed.socket, 'GET', '/v1/networks');
      await assert.rejects(call(bed.socket, 'POST', '/v1/blueprints', { signed: signed(acme), part: part(acmePlan, 'node-a') }), (e: ZmeshError) => e.code === 'E_REPLAY');
      const acme2 = { ...acme, version: 2 };
      const bad = part(planFor(acme2, nodes, acmePlan), 'node-a');
      bad.networks[0].resource.subnet = '10.200.0.0/24';
      await assert.rejects(call(bed.socket, 'POST', '/v1/blueprints', { signed: signed(acme2), part: bad }), (e: ZmeshError) => e.problems.some((p) => p.code === 'E_PART_SUBNET'));
      const forged = signed(acme2);
      forged.blueprint.networks[0].ipRange = '10.2.0.0/16';
      await assert.rejects(call(bed.socket, 'POST', '/v1/blueprints', { signed: forged, part: part(acmePlan, 'node-a') }));
      assert.deepEqual(await call(bed.socket, 'GET', '/v1/networks'), before);
      assert.ok(await converged(bed));
    });

    await t.test('drift is repaired by the loop without any request', async () => {
      const ns = `n-${ids[0]}`;
      await bed.host.exec(['ip', 'netns', 'exec', ns, 'ip', 'link', 'del', `w-${ids[0]}`]);
      await bed.host.exec(['ip', 'netns', 'exec', `n-${ids[1]}`, 'ip', 'route', 'del', '10.1.0.0/16']);
      await waitFor(async () => {
        const a = await bed.host.exec(['ip', 'netns', 'exec', ns, 'ip', 'link', 'show', `w-${ids[0]}`], { reject: false });
        const b = await bed.host.exec(['ip', 'netns', 'exec', `n-${ids[1]}`, 'ip', 'route', 'show', '10.1.0.0/16'], { reject: false });
        return a.exitCode === 0 && b.stdout.includes(`w-${ids[1]}`);
      }, 20000, 'the loop to restore the interface and the route');
      await waitFor(() => converged(bed), 10000, 'convergence');
      assert.equal(wgDaemons(bed), 2);
    });

    await t.test('a clean restart keeps the data plane and converges with no change', async () => {
      const daemonsBefore = wgDaemons(bed);
      assert.equal(daemonsBefore, 2);
      await stopAgent(bed, 'SIGTERM');
      assert.deepEqual(await netnsList(bed), expectedNs, 'networks keep running while the agent is down');
      await startAgent(bed);
      const s = await call<{ lastReconcile: { changes: number; ok: boolean }; dataplane: unknown }>(bed.socket, 'GET', '/v1/status');
      assert.ok(s.lastReconcile.ok);
      assert.equal(s.lastReconcile.changes, 0, 'restart reconcile is a no-op');
      // The batched wireguard-go scripts/deps.sh installs, and the tuning for it.
      const build = pathWireguardGoBuild();
      assert.ok(build.batched, `wireguard-go on PATH is ${build.version}: scripts/deps.sh installs a batched build`);
      assert.deepEqual(s.dataplane, {
        backend: 'userspace',
        wireguardGo: build,
        tuning: { socketBufferBytes: 0, daemonOwnSession: false, daemonEnv: { GOMAXPROCS: '1' } },
        staleDaemons: [],
      });
      // A requested no-op reconcile: reads only, and its cost is reported.
      const r = await call<{ changes: number; cost: { agentCpuMs: number; commandsCpuMs: number; reads: number; mutating: number } }>(bed.socket, 'POST', '/v1/reconcile');
      assert.equal(r.changes, 0);
      assert.equal(r.cost.mutating, 0, 'a no-op reconcile runs no mutating command');
      assert.ok(r.cost.reads > 0 && r.cost.agentCpuMs > 0 && r.cost.commandsCpuMs >= 0, JSON.stringify(r.cost));
      assert.equal(wgDaemons(bed), 2, 'the running daemons were adopted, not replaced or doubled');
    });

    await t.test('kill -9 in the middle of an apply, then a restart, converges with nothing leaked', async () => {
      // Bigger updates (200 peers more, then fewer, then more), each killed at a different moment of its apply.
      const peers = Array.from({ length: 200 }, (_, i) => ({ id: `peer-${i}`, endpoints: [`203.0.113.${i + 2}`] }));
      let prev = acmePlan;
      for (const [k, delayMs] of [[3, 40], [4, 150], [5, 400]] as const) {
        const count = k === 4 ? 50 : 200;
        const many = ['node-a', ...peers.slice(0, count).map((p) => p.id)];
        const bpk = blueprint([net({ nodes: many, ipRange: '10.1.0.0/16' })], { version: k });
        const plank = planFor(bpk, [{ id: 'node-a', endpoints: ['203.0.113.1'] }, ...peers.slice(0, count)], prev);
        prev = plank;
        const pending = call(bed.socket, 'POST', '/v1/blueprints', { signed: signed(bpk), part: part(plank, 'node-a') }).catch((e) => e);
        await new Promise((r) => setTimeout(r, delayMs));
        await stopAgent(bed, 'SIGKILL');
        await pending;
        await startAgent(bed);
        await waitFor(() => converged(bed), 30000, `convergence after kill -9 at ${delayMs} ms`);
        const d = await call<{ desired: { resource: { peers: unknown[] } }; actual: { wireguard: { peers: unknown[] } } }>(bed.socket, 'GET', `/v1/networks/${ids[0]}`);
        // Either the update was recorded before the kill (then it is applied now) or not (the old state stands).
        assert.equal(d.actual.wireguard.peers.length, d.desired.resource.peers.length);
        assert.deepEqual(await netnsList(bed), expectedNs);
        assert.equal(wgDaemons(bed), 2, 'exactly one wireguard-go per network');
      }
    });

    await t.test('a reboot (every process and namespace gone) comes back from the state directory alone', async () => {
      await stopAgent(bed, 'SIGKILL');
      await bed.host.destroy();
      bed.host = await NodeHost.start('agent-it-2');
      assert.deepEqual(await netnsList(bed), []);
      await startAgent(bed);
      await waitFor(() => converged(bed), 30000, 'networks back after reboot');
      assert.deepEqual(await netnsList(bed), expectedNs);
    });

    await t.test('an unprivileged user is refused by the socket', async () => {
      const r = await execa('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'node', '--import', 'tsx', join(ROOT, 'src/cli/main.ts'), '--socket', bed.socket, 'status'], {
        reject: false,
        cwd: ROOT,
      });
      assert.equal(r.exitCode, 2, r.stderr);
      assert.match(r.stderr, /permission denied/);
    });

    await t.test('removing both blueprints leaves no namespace and no daemon', async () => {
      await call(bed.socket, 'DELETE', '/v1/blueprints/acme/shop');
      await call(bed.socket, 'DELETE', '/v1/blueprints/globex/ops');
      assert.deepEqual(await netnsList(bed), []);
      await waitFor(async () => (wgDaemons(bed)) === 0, 5000, 'daemons to stop');
      const links = await bed.host.exec(['ip', '-json', 'link', 'show']);
      assert.deepEqual((JSON.parse(links.stdout) as { ifname: string }[]).map((l) => l.ifname), ['lo']);
    });
  } catch (e) {
    process.stderr.write(bed.log.join('').slice(-4000));
    throw e;
  } finally {
    await destroyAgentHost(bed);
  }
});
