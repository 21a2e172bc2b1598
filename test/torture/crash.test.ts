// Crashes: kill -9 of a real agent at random moments during applies, updates and removals (30 times per run at
// TORTURE_SCALE=1). After each restart the agent must converge to what its store holds, with nothing leaked:
// tenant namespaces, links, wireguard-go processes and nft tables match the desired networks exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { call } from '../../src/admin/client.ts';
import { seededRandom } from '../../src/crypto/rng.ts';
import { networkId, type Plan } from '../../src/plan/index.ts';
import { blueprint, net, type NodeDef } from '../helpers/fixtures.ts';
import { part, planFor, signed } from '../helpers/agent-fixtures.ts';
import { ROOT, allLinks, destroyAgentHost, makeAgentHost, netnsList, startAgent, stopAgent, waitFor, wgDaemons, type AgentHost } from '../helpers/agent-host.ts';

const SCALE = Number(process.env.TORTURE_SCALE ?? 1);
const KILLS = 30 * SCALE;
const SEED = process.env.TORTURE_SEED ?? String(Date.now());

interface Stored {
  id: string;
}

async function storedNetworks(bed: AgentHost): Promise<string[]> {
  const r = await call<{ networks: Stored[] }>(bed.socket, 'GET', '/v1/networks');
  return r.networks.map((n) => n.id).sort();
}

/** Converged and leak-free: every stored network is applied, and nothing else exists. */
async function leakFree(bed: AgentHost): Promise<string | null> {
  const nets = await call<{ networks: { id: string; applied: boolean; peers: number }[] }>(bed.socket, 'GET', '/v1/networks');
  if (!nets.networks.every((n) => n.applied)) return 'not applied yet';
  const ids = nets.networks.map((n) => n.id).sort();
  const ns = await netnsList(bed);
  if (JSON.stringify(ns) !== JSON.stringify(ids.map((i) => `n-${i}`))) return `namespaces ${ns.join(',')} ≠ desired ${ids.join(',')}`;
  if (wgDaemons(bed) !== ids.length) return `${wgDaemons(bed)} wireguard-go for ${ids.length} networks`;
  const links = await allLinks(bed);
  const want = ['host:lo', ...ids.flatMap((i) => [`n-${i}:b-${i}`, `n-${i}:lo`, `n-${i}:w-${i}`])].sort();
  if (JSON.stringify(links) !== JSON.stringify(want)) return `links ${links.join(',')}`;
  for (const n of nets.networks) {
    const d = await call<{ desired: { resource: { peers: unknown[] } }; actual: { wireguard: { peers: unknown[] } | null } }>(bed.socket, 'GET', `/v1/networks/${n.id}`);
    if (d.actual.wireguard?.peers.length !== d.desired.resource.peers.length) return `peers of ${n.id}: ${d.actual.wireguard?.peers.length} ≠ ${d.desired.resource.peers.length}`;
  }
  const tables = (await bed.host.exec(['nft', 'list', 'tables'])).stdout.split('\n').filter((l) => l.includes('zmesh'));
  for (const t of tables) if (!ids.some((i) => t.includes(i))) return `stray nft table ${t}`;
  return null;
}

test(`crash torture: ${KILLS} kill -9 at random moments, convergence without leaks`, { timeout: 600000 }, async () => {
  const rnd = seededRandom(`crash:${SEED}`);
  const pick = (n: number) => new DataView(rnd(4).buffer).getUint32(0) % n;
  const peers: NodeDef[] = Array.from({ length: 150 }, (_, i) => ({ id: `p-${i}`, endpoints: [`203.0.113.${i + 2}`] }));
  const self: NodeDef = { id: 'node-a', endpoints: ['203.0.113.1'] };
  const version: Record<string, number> = { acme: 0, globex: 0 };
  const plans: Record<string, Plan | undefined> = {};
  const present: Record<string, boolean> = { acme: false, globex: false };
  const recoveries: number[] = [];
  const actions: string[] = [];
  const bed = await makeAgentHost({ interval: '2s' });
  try {
    await startAgent(bed);
    for (let k = 0; k < KILLS; k++) {
      const tenant = pick(2) === 0 ? 'acme' : 'globex';
      const name = tenant === 'acme' ? 'shop' : 'ops';
      let req: Promise<unknown>;
      if (present[tenant] && pick(4) === 0) {
        actions.push(`rm ${tenant}`);
        req = call(bed.socket, 'DELETE', `/v1/blueprints/${tenant}/${name}`).catch(() => undefined);
      } else {
        const count = pick(150);
        const v = ++version[tenant];
        const nodes = [self, ...peers.slice(0, count)];
        // Tenants share node-a: globex's port is reserved away from acme's.
        const inv = tenant === 'globex' ? [{ ...self, reservedPorts: [51820] }, ...peers.slice(0, count)] : nodes;
        const bp = blueprint([net({ nodes: nodes.map((n) => n.id), ipRange: '10.1.0.0/16' })], { tenant, name, version: v });
        const plan = planFor(bp, inv, plans[tenant]);
        plans[tenant] = plan;
        actions.push(`apply ${tenant} v${v} with ${count} peers`);
        req = call(bed.socket, 'POST', '/v1/blueprints', { signed: signed(bp), part: part(plan, 'node-a') }).catch(() => undefined);
      }
      const delay = pick(500);
      await new Promise((res) => setTimeout(res, delay));
      await stopAgent(bed, 'SIGKILL');
      await req;
      const t0 = Date.now();
      await startAgent(bed);
      let why: string | null = 'not checked';
      await waitFor(async () => (why = await leakFree(bed)) === null, 30000, `convergence after kill ${k + 1} (${actions.at(-1)}, ${delay} ms): ${why}`).catch((e) => {
        throw new Error(`${(e as Error).message}; last reason: ${why}`);
      });
      recoveries.push(Date.now() - t0);
      // What the store says is the truth from now on.
      const stored = await storedNetworks(bed);
      present.acme = stored.includes(networkId('acme', 'shop', 'net'));
      present.globex = stored.includes(networkId('globex', 'ops', 'net'));
    }
    recoveries.sort((a, b) => a - b);
    const summary = {
      seed: SEED,
      kills: KILLS,
      leaks: 0,
      recoveryMs: { median: recoveries[Math.floor(recoveries.length / 2)], max: recoveries.at(-1) },
    };
    process.stdout.write(`crash torture: ${JSON.stringify(summary)}\n`);
    mkdirSync(`${ROOT}bench/results`, { recursive: true });
    writeFileSync(`${ROOT}bench/results/torture-crash.json`, JSON.stringify({ ...summary, actions }, null, 2) + '\n');
    assert.equal(recoveries.length, KILLS);
  } catch (e) {
    process.stderr.write(`seed ${SEED}; actions: ${actions.slice(-5).join(' | ')}\n${bed.log.join('').slice(-3000)}\n`);
    throw e;
  } finally {
    await destroyAgentHost(bed);
  }
});
