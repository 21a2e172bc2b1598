// Planner benchmark: time and peak memory to plan one network (a full mesh, 10% of the nodes hidden) over a
// scale curve of 100 … 5,000 nodes (BENCH_PLAN_SIZES overrides it), and to re-plan after adding one node to
// 1,000. Each case runs in a fresh process; median of BENCH_RUNS runs (default 3), peak RSS the largest.
// Targets (2 cores): 1,000 nodes ≤ 2 s and ≤ 1 GiB peak RSS; re-plan +1 node ≤ 200 ms.
// Last line: one JSON object with the figures (plan<N> per size, curve: the same as a list, for the chart).
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const RUNS = Number(process.env.BENCH_RUNS ?? 3);

interface CaseResult {
  mode: string;
  nodes: number;
  ms: number;
  peakRssMiB: number;
  peerEntries: number;
}

function runCase(mode: string, n: number): CaseResult {
  const results: CaseResult[] = [];
  for (let i = 0; i < RUNS; i++) {
    const out = execFileSync(process.execPath, ['--import', 'tsx', `${here}plan-case.ts`, mode, String(n)], { encoding: 'utf8' });
    results.push(JSON.parse(out.trim().split('\n').pop()!));
  }
  results.sort((a, b) => a.ms - b.ms);
  const med = results[Math.floor(results.length / 2)];
  return { ...med, peakRssMiB: Math.max(...results.map((r) => r.peakRssMiB)) };
}

const SIZES = (process.env.BENCH_PLAN_SIZES ?? '100,250,500,1000,2000,3000,4000,5000').split(',').map(Number);
for (const n of [1000]) if (!SIZES.includes(n)) SIZES.push(n); // the target is about 1,000 nodes
SIZES.sort((a, b) => a - b);
const cases: [string, number, string][] = [...SIZES.map((n): [string, number, string] => ['plan', n, `plan${n}`]), ['replan', 1000, 'replan1000plus1']];
const figures: Record<string, { ms: number; peakRssMiB: number; peerEntries: number }> = {};
console.log('case                 nodes      ms   peak RSS MiB   peer entries');
for (const [mode, n, key] of cases) {
  const r = runCase(mode, n);
  figures[key] = { ms: r.ms, peakRssMiB: r.peakRssMiB, peerEntries: r.peerEntries };
  console.log(`${key.padEnd(20)} ${String(n).padStart(5)} ${r.ms.toFixed(1).padStart(8)} ${String(r.peakRssMiB).padStart(14)} ${String(r.peerEntries).padStart(14)}`);
}
const targets = {
  plan1000Under2s: figures.plan1000.ms <= 2000,
  plan1000Under1GiB: figures.plan1000.peakRssMiB <= 1024,
  replanUnder200ms: figures.replan1000plus1.ms <= 200,
};
console.log(`targets: ${Object.entries(targets).map(([k, v]) => `${k}=${v ? 'met' : 'MISSED'}`).join(' ')}`);
const curve = SIZES.map((n) => ({ nodes: n, ...figures[`plan${n}`] }));
console.log(JSON.stringify({ bench: 'plan', runs: RUNS, ...figures, curve, targets }));
