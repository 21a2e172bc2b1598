// The soak (issue #21, docs/soak.md): one lab under a seeded random schedule of faults for N minutes, the
// connectivity matrix checked between faults. Faults: cut, loss, delay (each restored after a short hold),
// kill-agent (started again after a hold), restart-agent, reboot, nat-restart, roam, docker kill of a workload,
// blueprint changes that add a node and a workload and take them away again, and on the etcd variant
// (`controlPlane: etcd`) controller-kill (the lab's controller SIGKILLed, started again after a hold). After each fault the soak
// waits (bounded) for a green matrix and records the time; every pair is tracked for how long it stays wrong.
// At the end the lab goes down and whatever is left of it (namespaces, links, mounts, loop devices, cgroups,
// files, and every process the lab ever ran) is a leak; the agents' memory (VmRSS) is compared between the
// first and the last samples after a warm-up.
//
// The schedule is a pure function of the seed and the lab's shape (drawStep: five draws of an xorshift32 per
// step, the PRNG of test/helpers/rng.ts), so the same seed replays the same faults in the same order.
// Every loop is bounded in count and time; the lab is taken down in `finally`; processes are only ended by the
// lab's own commands (by PID, inside its namespaces).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { containerName } from '../runtime/names.ts';
import { downLab, leftovers, processesOf } from './cleanup.ts';
import { dockerClient } from './docker.ts';
import { ensureEcho, workloadPids } from './endpoints.ts';
import { labFault, labUp, openLab } from './lab.ts';
import { runMatrix, type PairResult } from './matrix.ts';
import { labDir, readState, writeState } from './state.ts';
import { readCp, startController, stopController } from './etcd.ts';
import { alive, sleep } from './sys.ts';
import { xorshift32 } from './rng.ts';

export { xorshift32 };

// controller-kill comes last and has targets only on the etcd variant: the embedded schedule of a seed is the
// one it was before the kind existed (drawStep picks among the kinds that have targets).
export const SOAK_KINDS = ['cut', 'loss', 'delay', 'kill-agent', 'restart-agent', 'reboot', 'nat-restart', 'roam', 'docker-kill', 'blueprint', 'controller-kill'] as const;
export type SoakKind = (typeof SOAK_KINDS)[number];

/** How long the soak waits for green after each kind (seconds), from its last action. */
export const SOAK_BOUNDS: Record<SoakKind | 'roam-replan', number> = {
  cut: 45,
  loss: 45,
  delay: 45,
  'kill-agent': 45,
  'restart-agent': 45,
  reboot: 90,
  'nat-restart': 75,
  roam: 75,
  'roam-replan': 120,
  'docker-kill': 30,
  blueprint: 120,
  'controller-kill': 45,
};

/** The target of controller-kill (the lab has one controller). */
export const CONTROLLER = 'controller';

/** What a step can pick from: the running lab's members, sorted. */
export interface SoakContext {
  nodes: string[];
  devices: string[];
  nats: string[];
  /** Public nodes no hidden node or device enters through: a roam of one needs no re-plan to heal. */
  roamable: string[];
  /** Workload endpoint ids (tenant/blueprint/network/workload@node). */
  workloads: string[];
  /** Nodes whose agents are never ended (RSS sentinels): no kill-agent, restart-agent, reboot or roam. */
  sentinels: string[];
  /** The blueprint change is applied (the extra node and workload are there). */
  variant: boolean;
  /** The lab's control plane (default embedded): controller-kill only on etcd. */
  controlPlane?: 'embedded' | 'etcd';
}

export interface SoakStep {
  kind: SoakKind;
  /** A node, device, NAT router or workload endpoint id; for `blueprint`: add | remove; for controller-kill: CONTROLLER. */
  target: string;
  /** loss: percent (20–50); delay: milliseconds (50–200). */
  value?: number;
  /** How long cut, loss, delay, a killed agent and a killed controller last before the restore (3–8 s). */
  holdMs: number;
  /** Time from this step's start to the next one's (10–20 s by default; later when recovery takes longer). */
  gapMs: number;
}

/** The targets a kind can hit in a lab (empty: the kind is not drawn). */
export function targetsOf(kind: SoakKind, ctx: SoakContext): string[] {
  const free = ctx.nodes.filter((n) => !ctx.sentinels.includes(n));
  switch (kind) {
    case 'cut':
      return [...ctx.nodes, ...ctx.devices];
    case 'loss':
    case 'delay':
      return ctx.nodes;
    case 'kill-agent':
    case 'restart-agent':
      return free;
    case 'reboot':
      return [...free, ...ctx.devices];
    case 'nat-restart':
      return ctx.nats;
    case 'roam':
      return [...ctx.nats, ...ctx.roamable.filter((n) => !ctx.sentinels.includes(n))];
    case 'docker-kill':
      return ctx.workloads;
    case 'blueprint':
      return [ctx.variant ? 'remove' : 'add'];
    case 'controller-kill':
      return ctx.controlPlane === 'etcd' ? [CONTROLLER] : [];
  }
}

/** One step of the schedule: exactly five draws (kind, target, value, hold, gap), whatever the kind. Pure. */
export function drawStep(r: () => number, ctx: SoakContext, gapMs: [number, number] = [10_000, 20_000]): SoakStep {
  const u = [r(), r(), r(), r(), r()];
  const kinds = SOAK_KINDS.filter((k) => targetsOf(k, ctx).length > 0);
  const kind = kinds[Math.floor(u[0] * kinds.length)];
  const targets = targetsOf(kind, ctx);
  const target = targets[Math.floor(u[1] * targets.length)];
  const value = kind === 'loss' ? 20 + Math.floor(u[2] * 31) : kind === 'delay' ? 50 + Math.floor(u[2] * 151) : undefined;
  return {
    kind,
    target,
    ...(value !== undefined ? { value } : {}),
    holdMs: 3000 + Math.floor(u[3] * 5001),
    gapMs: gapMs[0] + Math.floor(u[4] * (gapMs[1] - gapMs[0] + 1)),
  };
}

export function describeStep(s: SoakStep): string {
  const v = s.value === undefined ? '' : s.kind === 'loss' ? ` ${s.value}%` : ` ${s.value} ms`;
  const hold = ['cut', 'loss', 'delay', 'kill-agent', 'controller-kill'].includes(s.kind) ? ` for ${(s.holdMs / 1000).toFixed(1)} s` : '';
  return `${s.kind} ${s.target}${v}${hold}`;
}

/** The extra node the blueprint change adds (to the lab and to the first network of the first tenant). */
export const EXTRA_NODE = 'pub-x';

interface SpecDoc {
  name?: string;
  nodes: { name: string; nat?: string }[];
  tenants: { name: string; blueprints: (string | { name: string; networks: { name: string; nodes: string[] }[]; workloads?: SpecWorkload[] })[] }[];
  [k: string]: unknown;
}
interface SpecWorkload {
  name: string;
  node: string;
  image: string;
  command?: string[];
  network: { name: string; ip?: string };
  [k: string]: unknown;
}

/**
 * The blueprint change of a spec (YAML text in, YAML text out; pure): a public node EXTRA_NODE joins the lab and
 * the first network of the first tenant's first blueprint, and the first workload of the spec gets a sibling
 * `<name>-x` on the same node and network (its engine is already there), serving its own identity page.
 * Blueprints must be inline.
 */
export function variantSpec(text: string): string {
  const doc = parse(text) as SpecDoc;
  if (doc.nodes.some((n) => n.name === EXTRA_NODE)) throw new Error(`the spec already has a node ${EXTRA_NODE}`);
  const bp0 = doc.tenants[0]?.blueprints[0];
  if (!bp0 || typeof bp0 === 'string') throw new Error('the soak needs inline blueprints (its blueprint change edits the first one)');
  doc.nodes.push({ name: EXTRA_NODE });
  bp0.networks[0].nodes.push(EXTRA_NODE);
  for (const t of doc.tenants) {
    for (const bp of t.blueprints) {
      if (typeof bp === 'string' || !bp.workloads?.length) continue;
      const w = bp.workloads[0];
      const name = `${w.name}-x`;
      const network = { name: w.network.name };
      bp.workloads.push({
        ...w,
        name,
        command: ['sh', '-c', `echo zmesh-wl ${t.name}/${bp.name}/${name} > /var/www/index.html && exec httpd -f -p 80 -h /var/www`],
        network,
      });
      return stringify(doc);
    }
  }
  return stringify(doc);
}

/** The control plane a spec asks for (`controlPlane`, default embedded). Pure. */
export function controlPlaneOf(text: string): 'embedded' | 'etcd' {
  return (parse(text) as SpecDoc).controlPlane === 'etcd' ? 'etcd' : 'embedded';
}

/**
 * The spec with its control plane overridden (the soak's etcd variant runs the same spec file as the embedded
 * one, so the two cannot drift): the text unchanged when it already asks for `cp`. Pure.
 */
export function withControlPlane(text: string, cp: 'embedded' | 'etcd'): string {
  if (controlPlaneOf(text) === cp) return text;
  const doc = parse(text) as SpecDoc;
  doc.controlPlane = cp;
  return stringify(doc);
}

/** A pair's key in the wrong-pair tracker. */
const pairKey = (r: PairResult) => `${r.from} → ${r.to}`;

export interface WrongPair {
  pair: string;
  seconds: number;
  /** Seconds from the start of the soak to the first time it was seen wrong. */
  since: number;
  /** The step (index) that ran when it went wrong. */
  step: number | null;
  /** Still wrong at the end of the run. */
  open?: boolean;
}

/**
 * How long each pair stays wrong: from the first round that saw it wrong to the first that saw it right (a
 * pair not probed in a round keeps its state). Pairs whose endpoints went away are closed then. Pure.
 */
export class WrongTracker {
  readonly open = new Map<string, { at: number; step: number | null }>();
  readonly over: WrongPair[] = [];
  maxSeconds = 0;
  constructor(
    readonly limitSec: number,
    readonly t0: number,
  ) {}

  /** Pairs seen in some round (a pair new to the lab counts from the first round that sees it). */
  readonly known = new Set<string>();

  /** `since`: no round ran since then (a fault was injected): a known pair newly wrong counts as wrong from then. */
  observe(rows: PairResult[], at: number, step: number | null, since?: number): void {
    const wrong = new Map<string, boolean>();
    for (const r of rows) wrong.set(pairKey(r), (wrong.get(pairKey(r)) ?? false) || (!r.ok && !r.skip));
    for (const [k, w] of wrong) {
      const o = this.open.get(k);
      if (w && !o) this.open.set(k, { at: since !== undefined && this.known.has(k) ? since : at, step });
      if (!w && o) this.close(k, at);
      this.known.add(k);
    }
  }

  /** Closes pairs whose endpoints are gone (a node or workload removed). */
  retain(endpointIds: Set<string>, at: number): void {
    for (const k of [...this.open.keys()]) {
      const [from, to] = k.split(' → ');
      if (!endpointIds.has(from) || !endpointIds.has(to)) this.close(k, at);
    }
  }

  private close(k: string, at: number, open = false): void {
    const o = this.open.get(k)!;
    this.open.delete(k);
    const seconds = (at - o.at) / 1000;
    this.maxSeconds = Math.max(this.maxSeconds, seconds);
    if (seconds > this.limitSec) this.over.push({ pair: k, seconds: round1(seconds), since: round1((o.at - this.t0) / 1000), step: o.step, ...(open ? { open } : {}) });
  }

  /** Closes every pair still open (at the end of the run) and returns the pairs wrong longer than the limit. */
  finish(at: number): WrongPair[] {
    for (const k of [...this.open.keys()]) this.close(k, at, true);
    return this.over;
  }
}

/** One agent process (node, PID, start time) and its memory samples [ms, KiB]. */
interface Incarnation {
  node: string;
  pid: number;
  firstSeen: number;
  samples: [number, number][];
}

export interface RssDrift {
  node: string;
  pid: number;
  firstKiB: number;
  lastKiB: number;
  driftPct: number;
  spanSec: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const round1 = (x: number) => Math.round(x * 10) / 10;

/**
 * Agent memory over the run: a VmRSS sample per agent process at most every `everyMs`. drift(): for each
 * process that lived through at least `minShare` of the window after the warm-up (counted from the soak's start
 * and from the process's own first sighting), the median of its first three samples after the warm-up against
 * the median of its last three (one GC cycle more or less is no drift).
 */
export class RssTracker {
  readonly inc = new Map<string, Incarnation>();
  constructor(readonly everyMs = 10_000) {}

  add(node: string, pid: number, start: number, kib: number, at: number): void {
    const key = `${node}:${pid}:${start}`;
    let i = this.inc.get(key);
    if (!i) this.inc.set(key, (i = { node, pid, firstSeen: at, samples: [] }));
    const last = i.samples[i.samples.length - 1];
    if (!last || at - last[0] >= this.everyMs) i.samples.push([at, kib]);
  }

  drift(t0: number, warmupMs: number, end: number, minShare = 0.5): RssDrift[] {
    const from = t0 + warmupMs;
    const out: RssDrift[] = [];
    for (const i of this.inc.values()) {
      const s = i.samples.filter(([t]) => t >= Math.max(from, i.firstSeen + warmupMs));
      if (s.length < 2) continue;
      const span = s[s.length - 1][0] - s[0][0];
      if (span < minShare * (end - from)) continue;
      const first = median(s.slice(0, 3).map(([, k]) => k));
      const last = median(s.slice(-3).map(([, k]) => k));
      out.push({ node: i.node, pid: i.pid, firstKiB: first, lastKiB: last, driftPct: round1(((last - first) / first) * 100), spanSec: Math.round(span / 1000) });
    }
    return out.sort((a, b) => a.node.localeCompare(b.node) || a.pid - b.pid);
  }
}

/** VmRSS of a process in KiB, or null. */
function vmRss(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

export interface KindStats {
  n: number;
  medianSec: number | null;
  maxSec: number | null;
  /** Steps of this kind that were not green within their bound. */
  notGreen: number;
}

export interface StepRecord extends SoakStep {
  i: number;
  /** Seconds from the soak's start. */
  at: number;
  /** Seconds from the last action (the restore, the agent's start, the fault itself) to a green matrix. */
  greenSec: number | null;
  boundSec: number;
  /** roam of a public node: seconds from the re-plan (`lab up`) to green. */
  replanSec?: number | null;
  /** kill-agent, controller-kill: the data plane stayed green while the agent (controller) was dead. */
  heldGreen?: boolean;
  /** How long the fault lasted before its restore (cut, loss, delay, kill-agent, controller-kill). */
  heldSec?: number;
  message?: string;
  error?: string;
}

export interface SoakReport {
  seed: number;
  minutes: number;
  lab: string;
  spec: string;
  /** The lab's control plane: embedded, or etcd (3 members and a controller; controller-kill in the schedule). */
  controlPlane: 'embedded' | 'etcd';
  /** Seconds from `lab up` to its green matrix. */
  upSec: number | null;
  endpoints: number;
  /** Faults injected (steps that ran without an error). */
  faults: number;
  byKind: Record<string, KindStats>;
  /** Pairs wrong longer than 60 s (must be 0). */
  wrongOver60s: number;
  wrongPairs: WrongPair[];
  /** The longest a pair was wrong (seconds). */
  maxWrongSec: number;
  /** Isolated or denied checks that got through (any time). */
  breaches: number;
  greenAtEnd: boolean;
  /** Matrix rounds run (reach-only and whole), and their median durations (s). */
  rounds: number;
  roundSec: { reach: number | null; full: number | null };
  /** The machine's 1-minute load average when the faults started and at the end. */
  load: [number, number];
  /** What `lab down` left (namespaces, links, mounts, loop devices, cgroups, files, processes): must be 0. */
  leaks: number;
  leaked: string[];
  /** Processes seen inside the lab during the run (all must be gone after `lab down`). */
  processesSeen: number;
  /** Largest drift of an agent's VmRSS over the run (%), or null when no agent lived long enough. */
  rssDriftPct: number | null;
  rss: RssDrift[];
  warmupSec: number;
  errors: string[];
  /** Wall seconds in all (lab up and down included). */
  seconds: number;
  aborted?: boolean;
  steps?: StepRecord[];
}

export interface SoakOptions {
  specFile: string;
  /** The lab's name (unique on the machine). */
  name: string;
  minutes: number;
  seed: number;
  log?: (line: string) => void;
  /** Gap between faults (ms), default [10 000, 20 000]. */
  gapMs?: [number, number];
  /** Waiting for green stops at most this long after the last fault may start (s, default 60). */
  graceSec?: number;
  /** The whole run's wall budget (s), lab up and down included: the faults stop early enough to keep it. */
  wallSec?: number;
  /** Nodes whose agents are never ended (default: one public and one hidden node of the spec, the last ones). */
  sentinels?: string[];
  /** RSS warm-up (s); default a quarter of the run, 30–300 s. */
  warmupSec?: number;
  /** Overrides the spec's `controlPlane` (the etcd variant: `npm run soak -- --etcd`). */
  controlPlane?: 'embedded' | 'etcd';
  signal?: AbortSignal;
}

const PAIR_LIMIT_SEC = 60;
/** The whole matrix (isolation checks) runs at most this often while waiting for green. */
const FULL_EVERY_MS = 60_000;
/** Time kept for `lab down` and the leak check within a wall budget. */
const DOWN_RESERVE_MS = 20_000;
/** Sources probed at once (one prober process each, labs/probe.py). */
const FULL_PARALLEL = 24;

/** Runs the soak: lab up, the schedule, lab down; never throws for what happens in the lab (errors are listed). */
export async function runSoak(opts: SoakOptions): Promise<SoakReport> {
  const T0 = Date.now();
  const log = opts.log ?? (() => undefined);
  const stamp = (line: string) => log(`${((Date.now() - T0) / 1000).toFixed(1).padStart(7)} s  ${line}`);
  const name = opts.name;
  const dir = labDir(name);
  const work = mkdtempSync(join(tmpdir(), 'zmesh-soak-'));
  const specText = readFileSync(opts.specFile, 'utf8');
  const baseText = opts.controlPlane ? withControlPlane(specText, opts.controlPlane) : specText;
  const controlPlane = controlPlaneOf(baseText);
  const baseFile = join(work, 'base.yaml');
  const variantFile = join(work, 'variant.yaml');
  const errors: string[] = [];
  const steps: StepRecord[] = [];
  const procs = new Map<string, { pid: number; start: number }>();
  const rss = new RssTracker();
  let tracker = new WrongTracker(PAIR_LIMIT_SEC, T0);
  let breaches = 0;
  let rounds = 0;
  const reachMs: number[] = [];
  const fullMs: number[] = [];
  const load0 = loadavg()[0];
  let upSec: number | null = null;
  let endpoints = 0;
  let greenAtEnd = false;
  let start = T0;
  let end = T0;
  let warmupMs = 0;
  let lastProcScan = 0;
  let lastFull = 0;
  let variant = false;
  let current: number | null = null;
  /** When the last fault was injected, while no round has run since (pairs found wrong count from then). */
  let unobserved: number | null = null;
  const aborted = () => opts.signal?.aborted === true;

  /** One matrix round (reach-only, or everything reusing `reuse`), tracked; samples RSS and the lab's processes. */
  const round = async (full: boolean, reuse?: PairResult[]): Promise<{ ok: boolean; rows: PairResult[]; at: number }> => {
    const { state, layout, endpoints: eps } = openLab(name);
    const wl = await workloadPids(eps, dir);
    const echo = await ensureEcho(eps, layout, state, dir, wl.pids);
    if (echo.started) writeState(dir, state);
    const t = Date.now();
    // Every source at once for the whole matrix: its isolation probes mostly wait for their timeouts.
    const rows = await runMatrix(eps, layout, state, { reachOnly: !full, workloadPids: wl.pids, parallel: FULL_PARALLEL, ...(reuse ? { reuse } : {}) });
    const at = Date.now();
    rounds++;
    (full ? fullMs : reachMs).push(at - t);
    tracker.retain(new Set(eps.map((e) => e.id)), at);
    tracker.observe(rows, at, current, unobserved ?? undefined);
    unobserved = null;
    breaches += rows.filter((r) => r.expect !== 'reach' && r.reached).length;
    endpoints = eps.length;
    const st = readState(dir);
    for (const [node, a] of Object.entries(st?.agents ?? {})) {
      const k = alive(a) ? vmRss(a.pid) : null;
      if (k !== null) rss.add(node, a.pid, a.start, k, at);
    }
    if (at - lastProcScan >= 10_000) {
      lastProcScan = at;
      for (const p of processesOf(name, dir)) procs.set(`${p.pid}:${p.start}`, p);
    }
    return { ok: rows.length > 0 && rows.every((r) => r.ok), rows, at };
  };

  /** Rounds until green (reach-only, then the whole matrix to confirm when it last ran a minute ago, or `final`)
   *  or until `until`: seconds from `from`. */
  const waitGreen = async (from: number, until: number, final = false): Promise<number | null> => {
    for (let i = 0; i < 1000 && Date.now() < until && !aborted(); i++) {
      const r = await round(false);
      // The isolation checks (the whole matrix) at most once a minute, and always at the end: they cost a
      // round of timeouts, and the faults can only break the pairs expected to reach.
      if (r.ok && !final && Date.now() - lastFull < FULL_EVERY_MS) return round1((r.at - from) / 1000);
      if (r.ok) {
        lastFull = Date.now();
        const f = await round(true, r.rows);
        if (f.ok) return round1((r.at - from) / 1000);
        const bad = f.rows.filter((x) => !x.ok);
        stamp(`  isolation: ${bad.length} unexpected result(s): ${bad.slice(0, 2).map((x) => `${x.from} → ${x.to} (${x.expect}, seen ${x.seen})`).join('; ')}`);
      }
      await sleep(Math.min(500, Math.max(0, until - Date.now())));
    }
    return null;
  };

  /** Reach-only rounds until `until` (between faults). */
  const watch = async (until: number): Promise<boolean> => {
    let ok = true;
    for (let i = 0; i < 1000 && Date.now() < until && !aborted(); i++) {
      ok = (await round(false)).ok && ok;
      await sleep(Math.min(1000, Math.max(0, until - Date.now())));
    }
    return ok;
  };

  const context = (): SoakContext => {
    const { layout, plans, endpoints: eps } = openLab(name);
    const entry = new Set<string>();
    for (const { plan } of plans) {
      for (const n of plan.networks) {
        for (const r of n.resources) if (r.accessNode) entry.add(r.accessNode);
        for (const a of n.access) entry.add(a.via);
      }
    }
    const sorted = (xs: string[]) => [...xs].sort();
    return {
      nodes: sorted(layout.nodes.map((n) => n.name)),
      devices: sorted(layout.devices.map((d) => d.name)),
      nats: sorted(layout.nats.map((n) => n.name)),
      roamable: sorted(layout.nodes.filter((n) => n.attach.kind === 'internet' && !entry.has(n.name)).map((n) => n.name)),
      workloads: sorted(eps.filter((e) => e.kind === 'workload').map((e) => e.id)),
      sentinels,
      variant,
      controlPlane,
    };
  };

  const up = async (file: string): Promise<void> => {
    const s = await labUp(file, { name, wait: false });
    const errs = s.pushed.flatMap((p) => p.errors);
    if (errs.length) throw new Error(`lab up: ${errs.join('; ')}`);
  };

  /** Runs one step; returns its record. */
  const runStep = async (i: number, step: SoakStep, hardEnd: number): Promise<StepRecord> => {
    const at = round1((Date.now() - start) / 1000);
    const rec: StepRecord = { i, at, ...step, greenSec: null, boundSec: SOAK_BOUNDS[step.kind] };
    const bound = (from: number, kind: keyof typeof SOAK_BOUNDS = step.kind) => Math.min(from + SOAK_BOUNDS[kind] * 1000, hardEnd);
    let action = Date.now();
    unobserved = action;
    switch (step.kind) {
      case 'cut':
      case 'loss':
      case 'delay':
      case 'kill-agent': {
        rec.message = await labFault(name, step.target, step.kind, step.value);
        // The hold: a killed agent's data plane is watched (it must keep running); a cut, loss or delay just
        // lasts (the pairs through it are wrong by design; counted from the fault on).
        const t = Date.now();
        if (step.kind === 'kill-agent') rec.heldGreen = await watch(t + step.holdMs);
        else await sleep(step.holdMs);
        rec.heldSec = round1((Date.now() - t) / 1000);
        action = Date.now();
        await labFault(name, step.target, step.kind === 'kill-agent' ? 'restart-agent' : 'restore');
        break;
      }
      case 'restart-agent':
      case 'reboot':
      case 'nat-restart':
        rec.message = await labFault(name, step.target, step.kind);
        break;
      case 'roam':
        rec.message = await labFault(name, step.target, 'roam');
        break;
      case 'controller-kill': {
        // SIGKILL by PID (labs/etcd.ts); while it is dead the data plane is watched as for kill-agent, then the
        // controller starts again (same etcd, same keys) and must resume.
        const pid = readCp(dir)?.controller?.pid ?? null;
        if (pid === null) throw new Error('the lab has no controller running');
        await stopController(dir, { kill: true });
        rec.message = `controller PID ${pid} killed (SIGKILL); the data plane keeps running`;
        const t = Date.now();
        try {
          rec.heldGreen = await watch(t + step.holdMs);
        } finally {
          rec.heldSec = round1((Date.now() - t) / 1000);
          action = Date.now();
          startController(openLab(name).layout, dir);
        }
        break;
      }
      case 'docker-kill': {
        const e = openLab(name).endpoints.find((x) => x.id === step.target);
        if (!e?.workload) throw new Error(`no workload ${step.target}`);
        const [tenant, blueprint, wname] = e.workload.split('/');
        await dockerClient(dir, e.host, 10_000).getContainer(containerName({ node: e.host, tenant, blueprint, name: wname })).kill();
        rec.message = `${e.workload} on ${e.host}: container killed`;
        break;
      }
      case 'blueprint': {
        const adding = step.target === 'add';
        await up(adding ? variantFile : baseFile);
        variant = adding;
        rec.message = adding ? `blueprint change: ${EXTRA_NODE} and a second workload added` : `blueprint change: ${EXTRA_NODE} and the extra workload removed`;
        break;
      }
    }
    rec.greenSec = await waitGreen(action, bound(action));
    if (step.kind === 'roam' && openLab(name).layout.nodes.some((n) => n.name === step.target)) {
      // A public node moved: re-plan with its new address (what an operator's inventory update does).
      const t = Date.now();
      await up(variant ? variantFile : baseFile);
      rec.replanSec = await waitGreen(t, bound(t, 'roam-replan'));
    }
    return rec;
  };

  const sentinels = opts.sentinels ?? defaultSentinels(baseText);
  let report: Omit<SoakReport, 'leaks' | 'leaked' | 'processesSeen' | 'seconds'> | undefined;
  const leaked: string[] = [];
  try {
    writeFileSync(baseFile, baseText);
    writeFileSync(variantFile, variantSpec(baseText));
    stamp(`lab ${name} up (${opts.specFile}, control plane ${controlPlane}); RSS sentinels: ${sentinels.join(', ') || 'none'}`);
    const s = await labUp(baseFile, { name, progress: (l) => stamp(`  ${l.trim()}`) });
    upSec = s.secondsToGreen === null ? null : round1(s.secondsToGreen);
    if (!s.green) throw new Error(`the lab did not start green: ${s.matrix.filter((p) => !p.ok).slice(0, 3).map((p) => `${p.from} → ${p.to}`).join('; ')}`);
    endpoints = s.endpoints;
    start = Date.now();
    tracker = new WrongTracker(PAIR_LIMIT_SEC, start);
    // The faults run for `minutes` (and stop early enough for the wall budget: grace, the last check, down).
    const grace = (opts.graceSec ?? 60) * 1000;
    const wallEnd = opts.wallSec ? T0 + opts.wallSec * 1000 - DOWN_RESERVE_MS : Infinity;
    const deadline = Math.min(start + opts.minutes * 60_000, wallEnd - grace);
    const hardEnd = Math.min(deadline + grace, wallEnd);
    warmupMs = (opts.warmupSec ?? Math.min(300, Math.max(30, opts.minutes * 15))) * 1000;
    stamp(`green in ${upSec} s, ${s.endpoints} endpoints; faults for ${round1((deadline - start) / 60_000)} min (seed ${opts.seed})`);
    const r = xorshift32(opts.seed);
    const maxSteps = Math.ceil((opts.minutes * 60_000) / (opts.gapMs?.[0] ?? 10_000)) + 5;
    let next = Date.now();
    for (let i = 0; i < maxSteps && !aborted(); i++) {
      await watch(Math.min(next, deadline));
      if (Date.now() >= deadline || aborted()) break;
      const step = drawStep(r, context(), opts.gapMs);
      const t = Date.now();
      next = t + step.gapMs;
      current = i;
      stamp(`#${i} ${describeStep(step)}`);
      let rec: StepRecord;
      try {
        rec = await runStep(i, step, hardEnd);
      } catch (e) {
        const msg = (e as Error).message.split('\n')[0].slice(0, 300);
        errors.push(`#${i} ${step.kind} ${step.target}: ${msg}`);
        rec = { i, at: round1((t - start) / 1000), ...step, greenSec: null, boundSec: SOAK_BOUNDS[step.kind], error: msg };
        // Whatever the step left behind is the next steps' problem too: wait for green, bounded.
        rec.greenSec = await waitGreen(Date.now(), Math.min(Date.now() + SOAK_BOUNDS[step.kind] * 1000, hardEnd));
      }
      current = null;
      steps.push(rec);
      const extra = rec.replanSec !== undefined ? `, re-planned: green after ${rec.replanSec ?? '—'} s` : '';
      stamp(`#${i} ${rec.error ? `error (${rec.error}); ` : ''}${rec.greenSec === null ? `NOT green within ${rec.boundSec} s` : `green after ${rec.greenSec} s`}${extra}${rec.heldGreen === false ? ` (the data plane broke while the ${step.kind === 'controller-kill' ? 'controller' : 'agent'} was dead)` : ''}`);
    }
    stamp(`faults over; ${tracker.open.size ? `${tracker.open.size} pair(s) wrong, waiting` : 'checking the whole matrix'}`);
    greenAtEnd = (await waitGreen(Date.now(), Math.max(hardEnd, Math.min(Date.now() + 30_000, wallEnd)), true)) !== null;
    end = Date.now();
    report = summary();
  } catch (e) {
    errors.push((e as Error).message.split('\n')[0].slice(0, 300));
    stamp(`stopped: ${errors[errors.length - 1]}`);
    end = Date.now();
    report = summary();
  } finally {
    // Down, then what is left: the processes that ran in the lab (all seen), namespaces, links, mounts, …
    for (const p of readState(dir) ? processesOf(name, dir) : []) procs.set(`${p.pid}:${p.start}`, p);
    const carrier = readState(dir)?.carrier ?? null;
    const t = Date.now();
    const down = await downLab(name, dir).then(
      () => null,
      (e: unknown) => `lab down failed: ${(e as Error).message}`,
    );
    stamp(`lab down in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    leaked.push(...(down ? [down] : []), ...(alive(carrier) ? [`candidate carrier PID ${carrier!.pid}`] : []), ...leftovers(name, dir, { procs: [...procs.values()] }));
    rmSync(work, { recursive: true, force: true });
  }
  report ??= summary();
  return { ...report, leaks: leaked.length, leaked: leaked.slice(0, 20), processesSeen: procs.size, seconds: round1((Date.now() - T0) / 1000), steps };

  function summary(): Omit<SoakReport, 'leaks' | 'leaked' | 'processesSeen' | 'seconds'> {
    const wrong = tracker.finish(end);
    const drift = rss.drift(start, warmupMs, end);
    const byKind: Record<string, KindStats> = {};
    const add = (kind: string, sec: number | null | undefined) => {
      if (sec === undefined) return;
      const k = (byKind[kind] ??= { n: 0, medianSec: null, maxSec: null, notGreen: 0 });
      k.n++;
      if (sec === null) k.notGreen++;
    };
    for (const s of steps) {
      add(s.kind, s.greenSec);
      add('roam-replan', s.replanSec);
    }
    for (const [kind, k] of Object.entries(byKind)) {
      const xs = steps.map((s) => (kind === 'roam-replan' ? s.replanSec : s.kind === kind ? s.greenSec : null)).filter((x): x is number => typeof x === 'number');
      k.medianSec = xs.length ? round1(median(xs)) : null;
      k.maxSec = xs.length ? Math.max(...xs) : null;
    }
    return {
      seed: opts.seed,
      minutes: opts.minutes,
      lab: name,
      spec: opts.specFile,
      controlPlane,
      upSec,
      endpoints,
      faults: steps.filter((s) => !s.error).length,
      byKind,
      wrongOver60s: wrong.length,
      wrongPairs: wrong.slice(0, 10),
      maxWrongSec: round1(tracker.maxSeconds),
      breaches,
      greenAtEnd,
      rounds,
      roundSec: { reach: reachMs.length ? round1(median(reachMs) / 1000) : null, full: fullMs.length ? round1(median(fullMs) / 1000) : null },
      load: [round1(load0), round1(loadavg()[0])],
      rssDriftPct: drift.length ? Math.max(...drift.map((d) => d.driftPct)) : null,
      rss: drift,
      warmupSec: Math.round(warmupMs / 1000),
      errors,
      ...(aborted() ? { aborted: true } : {}),
    };
  }
}

/** Default RSS sentinels: the last public and the last hidden node of the spec. */
export function defaultSentinels(specText: string): string[] {
  const doc = parse(specText) as SpecDoc;
  const pub = doc.nodes.filter((n) => !n.nat).map((n) => n.name);
  const hid = doc.nodes.filter((n) => n.nat).map((n) => n.name);
  return [pub[pub.length - 1], hid[hid.length - 1]].filter((x): x is string => Boolean(x));
}
