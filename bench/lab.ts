// Lab benchmark (as root): the time from `lab up` to a green matrix for 3, 10 and 20 nodes, and the peak
// memory of all agents together (sampled sum of their RSS every 100 ms, and the sum of each agent's own peak,
// VmHWM, an upper bound). 3 nodes is labs/quickstart.yaml; 10 and 20 are generated: a quarter of the nodes
// hidden behind NAT routers (three per router), tenant "a" on every node, tenant "b" on every other node with
// the same range, one laptop each. Each lab is taken down after its run.
// Then a blueprint change on the green lab: tenant "a" gets one more access device, a new signed version;
// changeSeconds is the time from signing and planning it to every node of that network reporting the new
// generation applied (the lab pushes each node its part over its admin socket, as `lab up` does; nodes are
// polled every 50 ms); pushSeconds is the part of it until the last push returned.
// Targets (2 cores): 3 nodes green in ≤ 10 s, 20 nodes in ≤ 45 s. Last line: one JSON object.
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { distIsFresh, ensureIdentity } from '../labs/agents.ts';
import { nodeStatus, planLab, pushAll } from '../labs/control.ts';
import { downLab, labDir, labUp, readState } from '../labs/index.ts';
import { loadLabSpec } from '../labs/spec.ts';
import { nodePaths, writeState } from '../labs/state.ts';

const QUICKSTART = fileURLToPath(new URL('../labs/quickstart.yaml', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SIZES = (process.env.BENCH_LAB_SIZES ?? '3,10,20').split(',').map(Number);

function specFor(n: number): object {
  const hidden = Math.floor(n / 4);
  const nats = Math.ceil(hidden / 3);
  const nodes = Array.from({ length: n }, (_, i) => {
    const name = `n${String(i + 1).padStart(2, '0')}`;
    const h = i >= n - hidden ? i - (n - hidden) : -1;
    return h >= 0 ? { name, nat: `r${Math.floor(h / 3) + 1}` } : { name };
  });
  const all = nodes.map((x) => x.name);
  return {
    name: `bench${n}`,
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

function rssKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

interface Figures {
  nodes: number;
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
  const tenant = spec.tenants.find((t) => t.name === 'a') ?? spec.tenants[0];
  const b = tenant.blueprints[0].blueprint;
  tenant.blueprints[0] = { ...tenant.blueprints[0], blueprint: { ...b, networks: b.networks.map((n, i) => (i === 0 ? { ...n, access: [...n.access, { name: 'bench-extra' }] } : n)) } };
  const state = readState(dir)!;
  const layout = state.layout!;
  const identities = new Map(layout.nodes.map((n) => [n.name, ensureIdentity(nodePaths(dir, n.name).identity)]));
  const t0 = performance.now();
  const plans = planLab(spec, layout, dir, state, identities);
  const p = plans.find((x) => x.tenant === tenant.name && x.blueprint.name === b.name)!;
  const members = [...new Set(p.plan.networks.flatMap((n) => n.resources.map((r) => r.node)))];
  writeState(dir, state);
  const pushed = await pushAll(layout, plans, dir);
  const pushSeconds = (performance.now() - t0) / 1000;
  const errs = pushed.flatMap((x) => x.errors);
  if (errs.length) throw new Error(`push failed: ${errs.join('; ')}`);
  const done = new Set<string>();
  const deadline = Date.now() + 60_000;
  while (done.size < members.length && Date.now() < deadline) {
    await Promise.all(
      members
        .filter((m) => !done.has(m))
        .map(async (m) => {
          const st = await nodeStatus(dir, m);
          const mine = st.networks.filter((n) => n.tenant === tenant.name && n.blueprint === b.name);
          if (mine.length && mine.every((n) => n.applied && n.generation === p.plan.generation)) done.add(m);
        }),
    );
    if (done.size < members.length) await new Promise((r) => setTimeout(r, 50));
  }
  const seconds = (performance.now() - t0) / 1000;
  return { nodes: members.length, pushSeconds: Math.round(pushSeconds * 100) / 100, changeSeconds: done.size === members.length ? Math.round(seconds * 100) / 100 : null };
}

async function runOne(n: number, root: string): Promise<Figures> {
  const spec = n === 3 ? QUICKSTART : join(root, `bench${n}.yaml`);
  if (n !== 3) writeFileSync(spec, stringify(specFor(n)));
  const name = n === 3 ? 'bench3' : `bench${n}`;
  const dir = labDir(name);
  let peak = 0;
  let wg = 0;
  const sample = setInterval(() => {
    const s = readState(dir);
    if (!s) return;
    const pids = Object.values(s.agents).map((a) => a.pid);
    peak = Math.max(peak, pids.reduce((sum, p) => sum + rssKiB(p, 'VmRSS'), 0));
  }, 100);
  try {
    const r = await labUp(spec, { name, progress: (l) => process.stderr.write(`  [${n}] ${l}\n`) });
    const change = r.green ? await blueprintChange(spec, name, dir) : null;
    process.stderr.write(`  [${n}] blueprint change: ${JSON.stringify(change)}\n`);
    const s = readState(dir)!;
    const pids = Object.values(s.agents).map((a) => a.pid);
    const hwm = pids.reduce((sum, p) => sum + rssKiB(p, 'VmHWM'), 0);
    for (const p of listWg(pids)) wg += rssKiB(p, 'VmRSS');
    return {
      nodes: n,
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

/** wireguard-go daemons the agents started (children of the agent PIDs). */
function listWg(agents: number[]): number[] {
  const set = new Set(agents);
  const out: number[] = [];
  for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x)).map(Number)) {
    try {
      const st = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]);
      if (set.has(ppid) && readFileSync(`/proc/${d}/comm`, 'utf8').trim() === 'wireguard-go') out.push(d);
    } catch {
      /* gone */
    }
  }
  return out;
}

const root = mkdtempSync('/tmp/zmesh-lab-bench-');
process.env.ZMESH_LAB_DIR = root;
const agentMode = process.env.ZMESH_LAB_AGENT ?? (distIsFresh(ROOT) ? 'dist' : 'tsx');
const results: Figures[] = [];
try {
  for (const n of SIZES) results.push(await runOne(n, root));
} finally {
  rmSync(root, { recursive: true, force: true });
}
console.log(`agents run from ${agentMode}`);
console.log('nodes  endpoints  pairs  green after (s)  agents peak RSS (MiB)  sum of agents VmHWM (MiB)  wireguard-go RSS (MiB)  change: nodes, pushed (s), applied everywhere (s)');
for (const r of results) {
  console.log(
    `${String(r.nodes).padStart(5)} ${String(r.endpoints).padStart(10)} ${String(r.pairs).padStart(6)} ${String(r.secondsToGreen ?? 'NOT GREEN').padStart(15)} ${String(r.agentsPeakRssMiB).padStart(22)} ${String(r.agentsHwmSumMiB).padStart(26)} ${String(r.wireguardGoRssMiB).padStart(23)}  ${r.change ? `${r.change.nodes}, ${r.change.pushSeconds}, ${r.change.changeSeconds ?? 'NOT APPLIED'}` : '-'}`,
  );
}
const by = new Map(results.map((r) => [r.nodes, r]));
const targets = {
  nodes3Under10s: by.has(3) ? (by.get(3)!.secondsToGreen ?? Infinity) <= 10 : null,
  nodes20Under45s: by.has(20) ? (by.get(20)!.secondsToGreen ?? Infinity) <= 45 : null,
};
console.log(`targets: ${Object.entries(targets).map(([k, v]) => `${k}=${v === null ? 'not run' : v ? 'met' : 'MISSED'}`).join(' ')}`);
console.log(JSON.stringify({ bench: 'lab', agentMode, results, targets }));
