// Lab benchmark (as root): the time from `lab up` to a green matrix for 3, 10 and 20 nodes, and the peak
// memory of all agents together (sampled sum of their RSS every 100 ms, and the sum of each agent's own peak,
// VmHWM, an upper bound). 3 nodes is labs/quickstart.yaml; 10 and 20 are generated: a quarter of the nodes
// hidden behind NAT routers (three per router), tenant "a" on every node, tenant "b" on every other node with
// the same range, one laptop each. Each lab is taken down after its run.
// Then a blueprint change on the green lab: tenant "a" gets one more access device, a new signed version;
// changeSeconds is the time from signing and planning it to every node of that network reporting the new
// generation applied (nodes polled every 50 ms). Embedded: the lab pushes each node its part over its admin
// socket, as `lab up` does, and pushSeconds is until the last push returned; etcd (BENCH_LAB_ETCD_SIZES, 10):
// the signed version goes into etcd, the controller plans, the agents watch — pushSeconds is the submission.
// Targets (2 cores): 3 nodes green in ≤ 10 s, 20 nodes in ≤ 45 s. Last line: one JSON object.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { childrenNamed, statusKiB } from './proc.ts';
import { distIsFresh, ensureIdentity } from '../labs/agents.ts';
import { nodeStatus, planLab, pushAll } from '../labs/control.ts';
import { downLab, labDir, labUp, readState } from '../labs/index.ts';
import { ensureDeviceKeys, etcdApply, submitToEtcd } from '../labs/etcd.ts';
import { loadLabSpec } from '../labs/spec.ts';
import { x25519KeyPair } from '../src/crypto/keys.ts';
import { nodePaths, writeState } from '../labs/state.ts';

const QUICKSTART = fileURLToPath(new URL('../labs/quickstart.yaml', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SIZES = (process.env.BENCH_LAB_SIZES ?? '3,10,20').split(',').map(Number);
/** Sizes also run on the etcd control plane (3 etcd members and the controller in the lab). */
const ETCD_SIZES = (process.env.BENCH_LAB_ETCD_SIZES ?? '10').split(',').filter(Boolean).map(Number);

function specFor(n: number, etcd = false): object {
  const hidden = Math.floor(n / 4);
  const nats = Math.ceil(hidden / 3);
  const nodes = Array.from({ length: n }, (_, i) => {
    const name = `n${String(i + 1).padStart(2, '0')}`;
    const h = i >= n - hidden ? i - (n - hidden) : -1;
    return h >= 0 ? { name, nat: `r${Math.floor(h / 3) + 1}` } : { name };
  });
  const all = nodes.map((x) => x.name);
  return {
    name: `bench${n}${etcd ? 'e' : ''}`,
    ...(etcd ? { controlPlane: 'etcd' } : {}),
    nats: Array.from({ length: nats }, (_, j) => ({ name: `r${j + 1}` })),
    nodes,
    tenants: [
      { name: 'a', blueprints: [{ name: 'net', networks: [{ name: 'all', ipRange: '10.1.0.0/16', nodes: all, access: [{ name: 'lap-a' }] }] }] },
      { name: 'b', blueprints: [{ name: 'net', networks: [{ name: 'half', ipRange: '10.1.0.0/16', nodes: all.filter((_, i) => i % 2 === 0), access: [{ name: 'lap-b' }] }] }] },
    ],
    devices: [
      { name: 'lap-a', tenant: 'a', network: 'all' },
      { name: 'lap-b', tenant: 'b', network: 'half', ...(nats ? { nat: 'r1' } : {}) },
    ],
    options: { convergeTimeout: '180s' },
  };
}

interface Figures {
  nodes: number;
  controlPlane: 'embedded' | 'etcd';
  endpoints: number;
  pairs: number;
  secondsToGreen: number | null;
  agentsPeakRssMiB: number;
  agentsHwmSumMiB: number;
  wireguardGoRssMiB: number;
  change: { nodes: number; pushSeconds: number; changeSeconds: number | null } | null;
}

/** A new version of tenant a's blueprint (one more access device), planned, pushed and applied everywhere. */
async function blueprintChange(specFile: string, name: string, dir: string): Promise<Figures['change']> {
  const spec = loadLabSpec(specFile, (p) => readFileSync(p, 'utf8'), name);
  if (spec.controlPlane === 'etcd') ensureDeviceKeys(spec, dir);
  const tenant = spec.tenants.find((t) => t.name === 'a') ?? spec.tenants[0];
  const b = tenant.blueprints[0].blueprint;
  // The device brings its own key (required on the etcd control plane, where no device secret is made).
  const extra = { name: 'bench-extra', publicKey: x25519KeyPair(new Uint8Array(randomBytes(32))).publicKey.toString() };
  tenant.blueprints[0] = { ...tenant.blueprints[0], blueprint: { ...b, networks: b.networks.map((n, i) => (i === 0 ? { ...n, access: [...n.access, extra] } : n)) } };
  const state = readState(dir)!;
  const layout = state.layout!;
  const identities = new Map(layout.nodes.map((n) => [n.name, ensureIdentity(nodePaths(dir, n.name).identity)]));
  const key = `${tenant.name}/${b.name}`;
  const members = state.blueprints[key]?.nodes ?? [];
  // What each node holds now: the change is applied on a node once its generation is higher.
  const before = new Map<string, number>();
  for (const m of members) before.set(m, Math.max(0, ...(await nodeStatus(dir, m)).networks.filter((n) => `${n.tenant}/${n.blueprint}` === key).map((n) => n.generation)));
  const t0 = performance.now();
  const plans = planLab(spec, layout, dir, state, identities);
  writeState(dir, state);
  let errs: string[] = [];
  if (spec.controlPlane === 'etcd') {
    // Submitted into etcd (a helper process in the lab's internet namespace: most of pushSeconds is its start);
    // the controller plans it and every agent takes its part from its watch.
    submitToEtcd(layout, dir, Object.fromEntries(spec.tenants.map((t) => [t.name, state.tenants[t.name].publicKey])), plans);
  } else {
    // Pushed to each agent's admin socket, which applies before it answers.
    errs = (await pushAll(layout, plans, dir)).flatMap((x) => x.errors);
  }
  const pushSeconds = (performance.now() - t0) / 1000;
  if (errs.length) throw new Error(`push failed: ${errs.join('; ')}`);
  const done = new Set<string>();
  const deadline = Date.now() + 60_000;
  while (done.size < members.length && Date.now() < deadline) {
    await Promise.all(
      members
        .filter((m) => !done.has(m))
        .map(async (m) => {
          const mine = (await nodeStatus(dir, m)).networks.filter((n) => `${n.tenant}/${n.blueprint}` === key);
          if (mine.length && mine.every((n) => n.applied && n.generation > before.get(m)!)) done.add(m);
        }),
    );
    if (done.size < members.length) await new Promise((r) => setTimeout(r, 50));
  }
  const seconds = (performance.now() - t0) / 1000;
  // The lab's own records follow the controller's plans (not timed).
  if (spec.controlPlane === 'etcd') await etcdApply(spec, layout, dir, state, plans, () => undefined);
  const r2 = (x: number) => Math.round(x * 100) / 100;
  return { nodes: members.length, pushSeconds: r2(pushSeconds), changeSeconds: done.size === members.length ? r2(seconds) : null };
}

async function runOne(n: number, root: string, etcd = false): Promise<Figures> {
  const generated = n !== 3 || etcd;
  const name = generated ? `bench${n}${etcd ? 'e' : ''}` : 'bench3';
  const spec = generated ? join(root, `${name}.yaml`) : QUICKSTART;
  if (generated) writeFileSync(spec, stringify(specFor(n, etcd)));
  const dir = labDir(name);
  let peak = 0;
  let wg = 0;
  const sample = setInterval(() => {
    const s = readState(dir);
    if (!s) return;
    const pids = Object.values(s.agents).map((a) => a.pid);
    peak = Math.max(peak, pids.reduce((sum, p) => sum + statusKiB(p, 'VmRSS'), 0));
  }, 100);
  try {
    const r = await labUp(spec, { name, progress: (l) => process.stderr.write(`  [${n}] ${l}\n`) });
    const change = r.green ? await blueprintChange(spec, name, dir) : null;
    process.stderr.write(`  [${n}] blueprint change: ${JSON.stringify(change)}\n`);
    const s = readState(dir)!;
    const pids = Object.values(s.agents).map((a) => a.pid);
    const hwm = pids.reduce((sum, p) => sum + statusKiB(p, 'VmHWM'), 0);
    for (const p of childrenNamed(pids, 'wireguard-go')) wg += statusKiB(p, 'VmRSS');
    return {
      nodes: n,
      controlPlane: etcd ? 'etcd' : 'embedded',
      endpoints: r.endpoints,
      pairs: r.matrix.length,
      secondsToGreen: r.green ? Math.round(r.secondsToGreen! * 10) / 10 : null,
      agentsPeakRssMiB: Math.round(peak / 1024),
      agentsHwmSumMiB: Math.round(hwm / 1024),
      wireguardGoRssMiB: Math.round(wg / 1024),
      change,
    };
  } finally {
    clearInterval(sample);
    await downLab(name, dir);
  }
}

const root = mkdtempSync('/tmp/zmesh-lab-bench-');
process.env.ZMESH_LAB_DIR = root;
const agentMode = process.env.ZMESH_LAB_AGENT ?? (distIsFresh(ROOT) ? 'dist' : 'tsx');
const results: Figures[] = [];
try {
  for (const n of SIZES) results.push(await runOne(n, root));
  for (const n of ETCD_SIZES) results.push(await runOne(n, root, true));
} finally {
  rmSync(root, { recursive: true, force: true });
}
console.log(`agents run from ${agentMode}`);
console.log('nodes  control   endpoints  pairs  green after (s)  agents peak RSS (MiB)  sum of agents VmHWM (MiB)  wireguard-go RSS (MiB)  change: nodes, pushed (s), applied everywhere (s)');
for (const r of results) {
  console.log(
    `${String(r.nodes).padStart(5)}  ${r.controlPlane.padEnd(8)} ${String(r.endpoints).padStart(10)} ${String(r.pairs).padStart(6)} ${String(r.secondsToGreen ?? 'NOT GREEN').padStart(15)} ${String(r.agentsPeakRssMiB).padStart(22)} ${String(r.agentsHwmSumMiB).padStart(26)} ${String(r.wireguardGoRssMiB).padStart(23)}  ${r.change ? `${r.change.nodes}, ${r.change.pushSeconds}, ${r.change.changeSeconds ?? 'NOT APPLIED'}` : '-'}`,
  );
}
const by = new Map(results.filter((r) => r.controlPlane === 'embedded').map((r) => [r.nodes, r]));
const targets = {
  nodes3Under10s: by.has(3) ? (by.get(3)!.secondsToGreen ?? Infinity) <= 10 : null,
  nodes20Under45s: by.has(20) ? (by.get(20)!.secondsToGreen ?? Infinity) <= 45 : null,
};
console.log(`targets: ${Object.entries(targets).map(([k, v]) => `${k}=${v === null ? 'not run' : v ? 'met' : 'MISSED'}`).join(' ')}`);
console.log(JSON.stringify({ bench: 'lab', agentMode, results, targets }));
