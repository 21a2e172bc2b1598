// The benchmark suite runner (as root): `npm run bench` runs every part; `npm run bench -- plan dataplane` some.
// Each part is a script whose last stdout line is one JSON object; it runs in its own process with a time limit.
// Results go to bench/results/latest.json (every part's JSON, its run time and the load average around it) and
// bench/results/latest.md (a table per part), with SVG charts next to them: planner time against node count,
// convergence time against lab size, data-plane throughput per setup; `paths` is one hidden pair relayed and
// direct (bench/paths.ts). `npm run bench -- --render` only rewrites latest.md and the charts from latest.json.
// See docs/benchmarks.md.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { barChart, lineChart } from './svg.ts';
import type { AgentFigures, NebulaFigures } from './agent.ts';

const here = fileURLToPath(new URL('.', import.meta.url));
/** Part → script and time limit (seconds). lab and control are included when their scripts exist. */
const PARTS: Record<string, { script: string; limitS: number }> = {
  plan: { script: 'plan.ts', limitS: 900 },
  apply: { script: 'apply.ts', limitS: 300 },
  dataplane: { script: 'dataplane.ts', limitS: 900 },
  admin: { script: 'admin.ts', limitS: 120 },
  agent: { script: 'agent.ts', limitS: 420 },
  lab: { script: 'lab.ts', limitS: 600 },
  control: { script: 'control.ts', limitS: 400 },
  paths: { script: 'paths.ts', limitS: 420 },
};
const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
for (const w of wanted) {
  if (!PARTS[w]) {
    console.error(`unknown part ${w}; parts: ${Object.keys(PARTS).join(', ')}`);
    process.exit(2);
  }
}
const parts = wanted.length ? wanted : Object.keys(PARTS).filter((p) => existsSync(here + PARTS[p].script));
const load = () => Math.round(loadavg()[0] * 100) / 100;

interface PartRun {
  status: number | null;
  seconds: number;
  loadBefore: number;
  loadAfter: number;
  result: Record<string, unknown>;
  /** When the part ran (parts run alone are merged into the last whole run). */
  at?: string;
}

/** Runs one part (bounded: SIGTERM at its limit, SIGKILL 10 s later); stdout is passed through and kept. */
function runPart(name: string): Promise<PartRun> {
  const { script, limitS } = PARTS[name];
  const t0 = Date.now();
  const loadBefore = load();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', here + script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => {
      process.stdout.write(b);
      out = (out + b.toString()).slice(-2_000_000);
    });
    let killed = false;
    const term = setTimeout(() => {
      killed = true;
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
    }, limitS * 1000);
    child.on('close', (status) => {
      clearTimeout(term);
      const last = out.trim().split('\n').pop() ?? '';
      let result: Record<string, unknown>;
      try {
        result = JSON.parse(last);
      } catch {
        result = { error: killed ? `part ${name} exceeded its ${limitS} s limit` : `part ${name} exited ${status} without a JSON line` };
      }
      resolve({ status: killed ? null : status, seconds: Math.round((Date.now() - t0) / 100) / 10, loadBefore, loadAfter: load(), result });
    });
  });
}

const render = process.argv.includes('--render');
const started = Date.now();
let runs: Record<string, PartRun> = {};
let totalS: number;
if (render) {
  const prev = JSON.parse(readFileSync(here + 'results/latest.json', 'utf8')) as { parts: Record<string, PartRun>; totalS: number };
  runs = prev.parts;
  totalS = prev.totalS;
  parts.splice(0, parts.length, ...Object.keys(runs));
} else {
  for (const p of parts) {
    console.log(`== bench ${p} (load ${load()})`);
    runs[p] = { ...(await runPart(p)), at: new Date().toISOString() };
    console.log(`== bench ${p}: ${runs[p].seconds} s, exit ${runs[p].status}`);
  }
  totalS = Math.round((Date.now() - started) / 1000);
  if (wanted.length && existsSync(here + 'results/latest.json')) {
    // Some parts only: the others keep their figures from the last run (each part carries when it ran).
    const prev = JSON.parse(readFileSync(here + 'results/latest.json', 'utf8')) as { parts: Record<string, PartRun>; totalS: number; date?: string };
    const merged: Record<string, PartRun> = {};
    for (const p of Object.keys(PARTS)) {
      if (runs[p]) merged[p] = runs[p];
      else if (prev.parts[p]) merged[p] = { ...prev.parts[p], at: prev.parts[p].at ?? prev.date };
    }
    runs = merged;
    parts.splice(0, parts.length, ...Object.keys(merged));
    totalS = prev.totalS;
  }
}

// ---- Markdown and charts ---------------------------------------------------------------------------------

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const cell = (v: unknown): string => {
  if (v === null || v === undefined) return '–';
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : '–';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (Array.isArray(v) && v.every((x) => typeof x !== 'object')) return v.join(' / ');
  if (typeof v === 'object') return '`' + JSON.stringify(v).replace(/\|/g, '\\|') + '`';
  return String(v).replace(/\|/g, '\\|');
};
function table(head: string[], rows: unknown[][]): string[] {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`), ''];
}
/** Flattens one level: {a: {b: 1}} → {"a.b": 1}. */
function flat(o: Obj): Obj {
  const out: Obj = {};
  for (const [k, v] of Object.entries(o)) {
    if (isObj(v) && Object.values(v).every((x) => !isObj(x))) for (const [k2, v2] of Object.entries(v)) out[`${k}.${k2}`] = v2;
    else out[k] = v;
  }
  return out;
}
/**
 * Any part's JSON as tables: scalars as key/value rows; arrays of objects, maps of objects, and sibling objects
 * of the same shape (cases like {edge200: {...}, mesh200: {...}}) as tables with one row each.
 */
function generic(r: Obj): string[] {
  const md: string[] = [];
  const scalars: [string, unknown][] = [];
  const shapes = new Map<string, [string, Obj][]>();
  for (const [k, v] of Object.entries(r)) {
    if (Array.isArray(v) && v.length && v.every(isObj)) {
      const rows = (v as Obj[]).map(flat);
      const cols = [...new Set(rows.flatMap((x) => Object.keys(x)))];
      md.push(`**${k}**`, '', ...table(cols, rows.map((x) => cols.map((c) => x[c]))));
    } else if (isObj(v) && Object.keys(v).length && Object.values(v).every(isObj)) {
      const rows = Object.entries(v).map(([name, x]) => [name, flat(x as Obj)] as const);
      const cols = [...new Set(rows.flatMap(([, x]) => Object.keys(x)))];
      md.push(`**${k}**`, '', ...table(['', ...cols], rows.map(([name, x]) => [name, ...cols.map((c) => x[c])])));
    } else if (isObj(v)) {
      const sig = Object.keys(v).sort().join(',');
      shapes.set(sig, [...(shapes.get(sig) ?? []), [k, v]]);
    } else scalars.push([k, v]);
  }
  for (const group of shapes.values()) {
    if (group.length < 2) {
      for (const [k, v] of group) scalars.push([k, v]);
      continue;
    }
    const rows = group.map(([name, x]) => [name, flat(x)] as const);
    const cols = [...new Set(rows.flatMap(([, x]) => Object.keys(x)))];
    md.unshift(...table(['case', ...cols], rows.map(([name, x]) => [name, ...cols.map((c) => x[c])])));
  }
  return [...table(['figure', 'value'], scalars), ...md];
}

const charts: string[] = [];
function chart(file: string, svg: string): string {
  writeFileSync(here + 'results/' + file, svg);
  charts.push(file);
  return `![${file}](${file})`;
}

function planMd(r: Obj): string[] {
  type Run = { ms: number; cpuMs?: number; peakRssMiB: number; bytes: number };
  type Point = Run & { nodes: number; part?: Run; replan?: Run; full?: Run; baseline?: Run };
  const curve = (r.curve as Point[] | undefined) ?? [];
  const t = (x: Run | undefined) => (x ? `${x.ms}${x.cpuMs !== undefined ? ` (${x.cpuMs})` : ''}` : '');
  const mb = (x: Run | undefined) => (x?.bytes !== undefined ? (x.bytes / 2 ** 20).toFixed(x.bytes < 2 ** 20 ? 2 : 1) : '');
  const md = [
    '`zmesh plan` as a process (wall ms, CPU ms in parentheses; MiB written; peak RSS MiB). Compact plan (default), one node\'s part, re-plan n−1 + 1, full form (`--expand`), and the CLI before the compact form (baseline) where measured.',
    '',
    ...table(
      ['nodes', 'plan ms', 'plan RSS', 'plan MiB', 'part ms', 'part MiB', 're-plan +1 ms', 'full ms', 'full RSS', 'full MiB', 'baseline ms', 'baseline RSS', 'baseline MiB'],
      curve.map((c) => [c.nodes, t(c), c.peakRssMiB, mb(c), t(c.part), mb(c.part), t(c.replan), t(c.full), c.full?.peakRssMiB ?? '', mb(c.full), t(c.baseline), c.baseline?.peakRssMiB ?? '', mb(c.baseline)]),
    ),
  ];
  md.push(`Targets: ${cell(r.targets)}`, '');
  if (curve.length > 1) {
    const series = (name: string, f: (c: Point) => number | undefined) => ({ name, points: curve.filter((c) => f(c) !== undefined).map((c): [number, number] => [c.nodes, f(c)!]) });
    md.push(
      chart('plan-scale.svg', lineChart({ title: 'zmesh plan (whole process)', xLabel: 'nodes', yLabel: 'ms', series: [series('compact plan', (c) => c.ms), series('part of one node', (c) => c.part?.ms), series('re-plan +1', (c) => c.replan?.ms), series('full form', (c) => c.full?.ms), series('before (full)', (c) => c.baseline?.ms)] })),
      '',
      chart('plan-memory.svg', lineChart({ title: 'zmesh plan: peak memory and plan size', xLabel: 'nodes', yLabel: 'MiB', series: [series('peak RSS', (c) => c.peakRssMiB), series('plan size', (c) => c.bytes / 2 ** 20), series('peak RSS before', (c) => c.baseline?.peakRssMiB)] })),
      '',
    );
  }
  return md;
}

function dataplaneMd(r: Obj): string[] {
  const setups = (r.setups as Record<string, Obj> | undefined) ?? {};
  const names = Object.keys(setups);
  const md = table(
    ['setup', '1 stream Mbit/s', '4 streams Mbit/s', 'first ping ms', 'daemon CPU s/GB', 'UDP rcvbuf drops (1 stream)', 'runs (1 stream)', 'load'],
    names.map((n) => {
      const s = setups[n];
      return [s.label, s.mbps, s.mbps4, s.firstPingMs, s.cpuSPerGB, s.udpDrops, s.mbpsRuns, s.loads];
    }),
  );
  md.push(`Ratios: ${cell(r.ratios)}`, '', `Goals: ${cell(r.goals)}`, '', `Load: ${cell(r.load)}; ${cell(r.reps)} fresh setups each, iperf3 -t ${cell(r.seconds)}.`, '');
  if (names.length) {
    md.push(
      chart(
        'dataplane.svg',
        barChart({
          title: 'TCP through each tunnel (median)',
          unit: 'Mbit/s',
          labels: names.filter((n) => n !== 'raw').map((n) => String(setups[n].label)),
          values: [
            { name: '1 stream', data: names.filter((n) => n !== 'raw').map((n) => setups[n].mbps as number) },
            { name: '4 streams', data: names.filter((n) => n !== 'raw').map((n) => setups[n].mbps4 as number) },
          ],
        }),
      ),
      '',
    );
  }
  return md;
}

function labMd(r: Obj): string[] {
  const md = generic(r);
  const all = (r.results as { nodes: number; controlPlane?: string; secondsToGreen: number | null; change?: { changeSeconds: number | null } | null }[] | undefined) ?? [];
  const rs = all.filter((x) => (x.controlPlane ?? 'embedded') === 'embedded');
  if (rs.length > 1) {
    md.push(
      chart(
        'lab-convergence.svg',
        lineChart({ title: 'Lab: lab up → green matrix', xLabel: 'nodes', yLabel: 'seconds', series: [
          { name: 'lab up → green (s)', points: rs.filter((x) => x.secondsToGreen !== null).map((x) => [x.nodes, x.secondsToGreen!]) },
          { name: 'blueprint change → applied on every node (s)', points: rs.filter((x) => x.change?.changeSeconds != null).map((x) => [x.nodes, x.change!.changeSeconds!]) },
        ] }),
      ),
      '',
    );
  }
  return md;
}

function agentMd(r: Obj): string[] {
  const a = (r.agent as AgentFigures[] | undefined) ?? [];
  const n = (r.nebula as NebulaFigures[] | undefined) ?? [];
  const neb = (k: number) => n.find((x) => x.networks === k);
  const md = [
    `One agent (from ${cell(r.agentMode)}, node ${cell(((r.nodeFlags as string[] | undefined) ?? []).join(' ') || 'defaults')}), each network this node + ${cell(r.peersPerNetwork)} public peers; Nebula runs one process per network.`,
    '',
    '**Memory** (MiB, once applied and idle)',
    '',
    ...table(
      ['networks', 'agent RSS (idle before)', 'agent peak', 'wireguard-go RSS / PSS', 'zmesh total (agent RSS + wireguard-go PSS)', 'Nebula RSS / PSS', 'Nebula total (PSS)'],
      a.map((x) => [x.networks, `${x.rssMiB} (${x.idleRssMiB})`, x.hwmMiB, `${x.wireguardGo.rssMiB} / ${x.wireguardGo.pssMiB}`, round1(x.rssMiB + x.wireguardGo.pssMiB), neb(x.networks) ? `${neb(x.networks)!.rssMiB} / ${neb(x.networks)!.pssMiB}` : null, neb(x.networks)?.pssMiB]),
    ),
    `**No-op reconcile** (median of ${cell(r.noopRuns)} requested reconciles; Nebula has none)`,
    '',
    ...table(
      ['networks', 'wall ms', 'agent CPU ms', 'commands CPU ms', 'commands read', 'mutating', 'per network: agent / commands CPU ms, reads'],
      a.map((x) => [x.networks, x.noop.ms, x.noop.agentCpuMs, x.noop.commandsCpuMs, x.noop.reads, x.noop.mutating, `${x.noop.perNetwork.agentCpuMs} / ${x.noop.perNetwork.commandsCpuMs}, ${x.noop.perNetwork.reads}`]),
    ),
    '**Apply and change on one node** (ms) beside Nebula (start; config reload)',
    '',
    ...table(
      ['networks', 'zmesh: create (submit → applied)', 'zmesh: change (+1 peer each, submit → applied)', 'zmesh: policy rule changed (submit → in the kernel; → answered; median / max)', 'Nebula: start → all tuns up'],
      a.map((x) => [x.networks, x.createMs, x.changeMs, x.policy ? `${x.policy.inForceMs} / ${x.policy.inForceMaxMs}; ${x.policy.answeredMs} / ${x.policy.answeredMaxMs}` : null, neb(x.networks)?.startMs]),
    ),
    `Nebula config reload (SIGHUP → the first echo reply its new firewall allows): ${cell((r.nebulaReload as Obj | undefined)?.runsMs)} ms, median ${cell((r.nebulaReload as Obj | undefined)?.medianMs)} ms. Load: ${cell(r.load)}.`,
    '',
  ];
  if (a.length > 1) {
    md.push(
      chart(
        'agent-memory.svg',
        lineChart({
          title: 'Memory per node against tenant networks',
          xLabel: 'networks',
          yLabel: 'MiB',
          series: [
            { name: 'zmesh: agent RSS + wireguard-go PSS', points: a.map((x) => [x.networks, round1(x.rssMiB + x.wireguardGo.pssMiB)]) },
            { name: 'Nebula: sum of PSS', points: n.map((x) => [x.networks, x.pssMiB]) },
          ],
        }),
      ),
      '',
    );
  }
  return md;
}
const round1 = (x: number) => Math.round(x * 10) / 10;

/** bench/paths.ts: one hidden pair relayed (40 ms on the access node; and with the delay off) and direct. */
function pathsMd(r: Obj): string[] {
  type Phase = { rtt: Obj; tcp: Obj & { accessCpuS: Obj }; pathAfter: string };
  const phases: [string, Phase | undefined][] = [
    ['relayed (access node +40 ms)', r.relayed as Phase | undefined],
    ['relayed, delay off', r.relayedNoDelay as Phase | undefined],
    ['direct', (r.direct as Phase | null | undefined) ?? undefined],
  ];
  return [
    `${cell(r.lab)}; pair ${cell(r.pair)}; delay by ${cell(r.delay)}.`,
    '',
    ...table(
      ['path', 'RTT avg ms', 'RTT median / min / max ms', 'TCP 1 stream Mbit/s', 'retransmits', 'access node CPU s: wireguard-go / agent', "access node's counters for the pair MB", 'path after'],
      phases.map(([n, p]) => (p ? [n, p.rtt.avgMs, `${cell(p.rtt.medianMs)} / ${cell(p.rtt.minMs)} / ${cell(p.rtt.maxMs)}`, p.tcp.mbps, p.tcp.retransmits, `${cell(p.tcp.accessCpuS.wireguardGo)} / ${cell(p.tcp.accessCpuS.agent)}`, p.tcp.accessRelayedMB, p.pathAfter] : [n])),
    ),
    `Time to direct path (carrier start → direct both ways): ${cell(r.timeToDirectS)} s (candidates on both nodes after ${cell(r.timeToCandidatesS)} s). ` +
      `RTT direct / relayed: ${cell(r.rttRatio)} (medians ${cell(r.rttRatioMedian)}); TCP direct / relayed: ${cell(r.throughputDirectVsRelayed)}× (40 ms), ${cell(r.throughputDirectVsRelayedNoDelay)}× (delay off).`,
    '',
    `Goals: ${cell(r.goals)}; ${cell(r.pings)} pings, iperf3 -t ${cell(r.iperfSeconds)}; load ${cell(r.load)}; leftovers after lab down: ${cell((r.leftovers as unknown[] | undefined)?.length ?? null)}.`,
    '',
  ];
}

const FORMAT: Record<string, (r: Obj) => string[]> = { plan: planMd, dataplane: dataplaneMd, agent: agentMd, lab: labMd, paths: pathsMd };

mkdirSync(here + 'results', { recursive: true });
const date = new Date().toISOString();
const md = [
  `# zmesh benchmarks (${date})`,
  '',
  `${cpus().length} CPUs (${cpus()[0]?.model ?? 'unknown'}); whole run ${totalS} s. How to run and read these: docs/benchmarks.md.`,
  '',
  ...table(
    ['part', 'ran at', 'seconds', 'exit', 'load before', 'load after'],
    parts.map((p) => [p, runs[p].at ?? '–', runs[p].seconds, runs[p].status, runs[p].loadBefore, runs[p].loadAfter]),
  ),
];
for (const p of parts) {
  const r = runs[p].result;
  md.push(`## ${p}`, '');
  if (typeof r.error === 'string') md.push(`**Failed:** ${r.error}`, '');
  else md.push(...(FORMAT[p] ?? generic)(r));
}
writeFileSync(here + 'results/latest.md', md.join('\n'));
const failed = parts.filter((p) => runs[p].status !== 0);
if (!render) writeFileSync(here + 'results/latest.json', JSON.stringify({ date, cpus: cpus().length, totalS, parts: runs, charts }, null, 2) + '\n');
console.log(`bench: ${parts.length} parts in ${totalS} s${failed.length ? `; FAILED: ${failed.join(', ')}` : ''}; results in bench/results/latest.{json,md}`);
console.log(JSON.stringify({ bench: 'suite', totalS, parts: Object.fromEntries(parts.map((p) => [p, { seconds: runs[p].seconds, status: runs[p].status }])), failed }));
process.exit(failed.length ? 1 : 0);
