// Planner benchmark (issue #17): `zmesh plan` measured as a whole process, the way an operator runs it (the CLI
// built with tsc into bench/.scratch/dist, or BENCH_PLAN_CLI=path/to/main.js), over one full-mesh network with
// 10% hidden nodes, 100 … 10,000 nodes (BENCH_PLAN_SIZES). Per size: the compact plan (default output), one
// node's part cut from it (`zmesh plan part PLAN NODE`, a public node: the largest part), a re-plan adding one
// node to the plan of n − 1 (`--previous`), and, up to BENCH_PLAN_FULL_MAX nodes (default 1,000: its size grows with n²),
// the full form (`--expand`); BENCH_PLAN_BASELINE=old/main.js adds an older CLI's default output beside it.
// Wall time includes Node's start; peak RSS from /usr/bin/time; bytes of the file written. Median of BENCH_RUNS
// runs (default 3; 1 above 5,000 nodes), peak RSS the largest.
// Targets: 1,000 nodes ≤ 1 s and ≤ 2 MB; 10,000 nodes ≤ 6 s and ≤ 1 GiB; re-plan 9,999 + 1 ≤ 1 s; a part
// of a 10,000-node plan ≤ 1 s. Last line: one JSON object with the figures (curve: one entry per size).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeId, writePlanInputs } from './plan-case.ts';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = join(here, '..');
const scratch = join(here, '.scratch', 'plan');
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const SIZES = (process.env.BENCH_PLAN_SIZES ?? '100,250,500,1000,2000,5000,10000').split(',').map(Number).sort((a, b) => a - b);
const FULL_MAX = Number(process.env.BENCH_PLAN_FULL_MAX ?? 1000);
const BASELINE = process.env.BENCH_PLAN_BASELINE;

function buildCli(): string {
  if (process.env.BENCH_PLAN_CLI) return process.env.BENCH_PLAN_CLI;
  const out = join(here, '.scratch', 'dist');
  const r = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json'), '--outDir', out], { encoding: 'utf8' });
  const main = join(out, 'src/cli/main.js');
  if (!existsSync(main)) throw new Error(`building the CLI failed: ${r.stdout}${r.stderr}`);
  // The built CLI finds schemas/ three levels above dist/src/cli, as dist/ does in the repository.
  const schemas = join(out, '..', 'schemas');
  if (existsSync(join(root, 'schemas')) && !existsSync(schemas)) symlinkSync(join(root, 'schemas'), schemas);
  return main;
}

interface Run {
  /** Wall time, Node's start included. */
  ms: number;
  /** User + system CPU time of the process: what the run costs whatever else the machine does. */
  cpuMs: number;
  peakRssMiB: number;
  bytes: number;
}

const timeBin = existsSync('/usr/bin/time') ? '/usr/bin/time' : null;

/** One process: wall time, peak RSS (MiB, from /usr/bin/time -f %M), size of `file`. */
function runOnce(cli: string, args: string[], file: string): Run {
  const argv = timeBin ? ['-f', 'ZMESH_BENCH_RSS %M %U %S', process.execPath, cli, ...args] : [cli, ...args];
  const t0 = performance.now();
  const r = spawnSync(timeBin ?? process.execPath, argv, { encoding: 'utf8', maxBuffer: 1 << 26 });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`zmesh ${args.join(' ')} exited ${r.status}: ${r.stderr.slice(-2000)}`);
  const t = /ZMESH_BENCH_RSS (\d+) ([\d.]+) ([\d.]+)/.exec(r.stderr);
  return { ms: Math.round(ms), cpuMs: t ? Math.round((Number(t[2]) + Number(t[3])) * 1000) : NaN, peakRssMiB: t ? Math.round(Number(t[1]) / 1024) : NaN, bytes: statSync(file).size };
}

function measure(cli: string, args: string[], file: string, runs: number): Run {
  const rs = Array.from({ length: runs }, () => runOnce(cli, args, file));
  rs.sort((a, b) => a.ms - b.ms);
  return { ...rs[Math.floor(rs.length / 2)], peakRssMiB: Math.max(...rs.map((r) => r.peakRssMiB)) };
}

interface Point {
  nodes: number;
  /** The compact plan (what `zmesh plan` writes). */
  ms: number;
  cpuMs: number;
  peakRssMiB: number;
  bytes: number;
  part: Run;
  replan: Run;
  full?: Run;
  baseline?: Run;
}

const cli = buildCli();
rmSync(scratch, { recursive: true, force: true });
mkdirSync(scratch, { recursive: true });
const curve: Point[] = [];
const mib = (b: number) => (b / 2 ** 20).toFixed(b < 2 ** 20 ? 2 : 1);
console.log(`zmesh plan as a process (${cli}); median of ${RUNS} runs`);
console.log('wall ms (cpu ms) per process; MiB: peak RSS or bytes written');
console.log('nodes |        plan   RSS   plan MiB |        part  part MiB |    replan+1   RSS |        full   RSS   full MiB |    baseline   RSS');
for (const n of SIZES) {
  const runs = n > 5000 ? Math.min(RUNS, 1) : RUNS;
  const dir = join(scratch, String(n));
  const a = writePlanInputs(dir, n);
  // The re-plan: the plan of n − 1 nodes, then n nodes (a new version) from it (10,000 is a network's limit).
  const pre = writePlanInputs(dir, n - 1);
  const b = writePlanInputs(dir, n, 2);
  const preFile = join(dir, 'pre.json');
  runOnce(cli, ['plan', pre.blueprint, '--nodes', pre.inventory, '--seed', 'bench0', '--out', preFile], preFile);
  const planFile = join(dir, 'plan.json');
  const plan = measure(cli, ['plan', a.blueprint, '--nodes', a.inventory, '--seed', 'bench', '--out', planFile], planFile, runs);
  const partFile = join(dir, 'part.json');
  const part = measure(cli, ['plan', 'part', planFile, nodeId(0), '--out', partFile], partFile, runs);
  const replanFile = join(dir, 'replan.json');
  const replan = measure(cli, ['plan', b.blueprint, '--nodes', b.inventory, '--previous', preFile, '--seed', 'bench2', '--out', replanFile], replanFile, runs);
  const p: Point = { nodes: n, ms: plan.ms, cpuMs: plan.cpuMs, peakRssMiB: plan.peakRssMiB, bytes: plan.bytes, part, replan };
  if (n <= FULL_MAX) {
    const fullFile = join(dir, 'full.json');
    p.full = measure(cli, ['plan', a.blueprint, '--nodes', a.inventory, '--seed', 'bench', '--expand', '--out', fullFile], fullFile, runs);
    rmSync(fullFile, { force: true });
    if (BASELINE) {
      p.baseline = measure(BASELINE, ['plan', a.blueprint, '--nodes', a.inventory, '--seed', 'bench', '--out', fullFile], fullFile, runs);
      rmSync(fullFile, { force: true });
    }
  }
  curve.push(p);
  const t = (r: Run) => `${r.ms} (${r.cpuMs})`.padStart(11);
  const f = (r: Run | undefined) => (r ? `${t(r)} ${String(r.peakRssMiB).padStart(5)} ${mib(r.bytes).padStart(10)}` : `${'-'.padStart(11)} ${'-'.padStart(5)} ${'-'.padStart(10)}`);
  const g = (r: Run | undefined) => (r ? `${t(r)} ${String(r.peakRssMiB).padStart(5)}` : `${'-'.padStart(11)} ${'-'.padStart(5)}`);
  console.log(`${String(n).padStart(5)} | ${f(plan)} | ${t(part)} ${mib(part.bytes).padStart(9)} | ${g(replan)} | ${f(p.full)} | ${g(p.baseline)}`);
  rmSync(dir, { recursive: true, force: true });
}
const at = (n: number) => curve.find((c) => c.nodes === n);
const check = (n: number, ok: (c: Point) => boolean) => (at(n) ? (ok(at(n)!) ? 'met' : 'MISSED') : 'not run');
// Wall-time targets; the CPU figures say whether a miss is the machine's load.
const targets = {
  plan1000Under1s: check(1000, (c) => c.ms <= 1000),
  plan1000Under2MB: check(1000, (c) => c.bytes <= 2_000_000),
  plan10000Under6s: check(10000, (c) => c.ms <= 6000),
  plan10000Under1GiB: check(10000, (c) => c.peakRssMiB <= 1024),
  replan10000plus1Under1s: check(10000, (c) => c.replan.ms <= 1000),
  part10000Under1s: check(10000, (c) => c.part.ms <= 1000),
};
console.log(`targets: ${Object.entries(targets).map(([k, v]) => `${k}=${v}`).join(' ')}`);
console.log(JSON.stringify({ bench: 'plan', runs: RUNS, cli: cli.startsWith(root) ? cli.slice(root.length + 1) : cli, curve, targets }));
