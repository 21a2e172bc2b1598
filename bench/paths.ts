// Direct-path benchmark (as root): the same pair of hidden nodes relayed and then direct, in one lab
// (labs/examples/paths-bench.yaml): a public access node "a" with 40 ms of one-way delay on its underlay egress
// (lab shaping), h1 and h3 behind two different cone NATs, one tenant network over the three.
//   1. `lab up` without waiting, then the lab's candidate carrier (labs/candidates.ts) is stopped at once, so
//      h1 and h3 never learn each other's candidates and stay relayed through "a" (checked on GET /v1/paths:
//      no candidates, relay, both ways; if the carrier got a round in first, the lab is rebuilt, at most twice).
//   2. Relayed: ping h1 → h3's gateway (BENCH_PATHS_PINGS, default 20, every 0.2 s; average and median RTT),
//      then single-stream TCP h1 → h3 with iperf3 (-t BENCH_PATHS_SECONDS, default 5) while the access node's
//      CPU is read: utime + stime (/proc/<pid>/stat) of its agent and of its wireguard-go daemons (the
//      wireguard-go processes in the node's mount namespace), and its WireGuard counters for h1 and h3.
//   3. The same relayed, with the access node's delay taken off (`lab fault a delay 0`, then `restore`): on a
//      kernel without netem the lab delays with a userspace delay line that carries bulk traffic badly, so
//      this is the relay's own throughput and CPU cost.
//   4. The carrier is started again; "time to direct path" runs from its start until GET /v1/paths says direct
//      on h1 and on h3 (polled every 100 ms, at most 60 s).
//   5. Direct (the delay back on the access node): the same measurements.
// Everything runs inside the lab's namespaces (the tenant namespaces n-<networkId> of h1 and h3); the lab is
// taken down (and checked for leftovers) in every case. Goal: direct RTT ≤ 0.3 × relayed.
// Prints a table, writes bench/results/paths.json, and ends with one JSON object on the last line (run.ts puts
// it into bench/results/latest.{json,md}).
//   node --import tsx bench/paths.ts          # alone (the table and paths.json)
//   npm run bench -- paths                    # alone through the suite runner (also latest.json / latest.md)
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { call } from '../src/admin/client.ts';
import type { PathView } from '../src/agent/paths.ts';
import { ensureCarrier, stopCarrier } from '../labs/candidates.ts';
import { downAndCheck, labDir, labFault, labUp, labWaitGreen, nodePaths, openLab, readState } from '../labs/index.ts';
import { inTenant, nsInode } from '../labs/sys.ts';

const run = promisify(execFile);
const SPEC = fileURLToPath(new URL('../labs/examples/paths-bench.yaml', import.meta.url));
const RESULTS = fileURLToPath(new URL('./results/', import.meta.url));
const PINGS = Number(process.env.BENCH_PATHS_PINGS ?? 20);
const SECONDS = Number(process.env.BENCH_PATHS_SECONDS ?? 5);
const DIRECT_TIMEOUT_MS = 60_000;
const ATTEMPTS = 3;
const FROM = 'h1';
const TO = 'h3';
const ACCESS = 'a';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const load1 = () => round(loadavg()[0]);
const say = (line: string) => process.stderr.write(`  [paths] ${line}\n`);
const CLK_TCK = Number((await run('getconf', ['CLK_TCK'], { encoding: 'utf8' })).stdout.trim()) || 100;

const root = mkdtempSync('/tmp/zmesh-paths-bench-');
process.env.ZMESH_LAB_DIR = root;

interface Lab {
  name: string;
  dir: string;
  networkId: string;
  gateway: (node: string) => string;
  publicKey: (node: string) => string;
  holderPid: (node: string) => number;
}

function openBench(name: string): Lab {
  const { dir, state, plans } = openLab(name);
  const net = plans[0].plan.networks[0];
  const res = (node: string) => {
    const r = net.resources.find((x) => x.node === node);
    if (!r) throw new Error(`no resource of ${node} in ${net.id}`);
    return r;
  };
  return {
    name,
    dir,
    networkId: net.id,
    gateway: (node) => res(node).gateway,
    publicKey: (node) => res(node).publicKey,
    holderPid: (node) => {
      const h = state.holders[node];
      if (!h) throw new Error(`no holder for ${node}`);
      return h.pid;
    },
  };
}

async function pathOf(lab: Lab, from: string, to: string): Promise<PathView | undefined> {
  const r = await call<{ paths: PathView[] }>(nodePaths(lab.dir, from).socket, 'GET', '/v1/paths', undefined, 5000);
  return r.paths.find((p) => p.node === to && p.networkId === lab.networkId);
}

/** Both directions' views of the pair. */
async function pair(lab: Lab): Promise<[PathView | undefined, PathView | undefined]> {
  return Promise.all([pathOf(lab, FROM, TO), pathOf(lab, TO, FROM)]);
}

const brief = (p: PathView | undefined) => (p ? `${p.path}${p.reason ? ` (${p.reason})` : ''}, ${p.candidates.length} candidate(s), endpoint ${p.endpoint ?? '-'}` : 'none');

/** Runs argv in a node's tenant namespace (bounded); stdout, also when it failed. */
async function inNet(lab: Lab, node: string, argv: string[], timeoutMs: number): Promise<string> {
  const a = inTenant(lab.holderPid(node), lab.networkId, argv);
  try {
    return (await run(a[0], a.slice(1), { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 8 << 20 })).stdout;
  } catch (e) {
    return String((e as { stdout?: string }).stdout ?? '');
  }
}

/** RTT (ms) of PINGS pings h1 → h3's gateway, after 3 unrecorded ones: average, median, min, max; loss in %. */
async function rtt(lab: Lab): Promise<{ avgMs: number | null; medianMs: number | null; minMs: number | null; maxMs: number | null; lossPct: number }> {
  const target = lab.gateway(TO);
  await inNet(lab, FROM, ['ping', '-n', '-q', '-c', '3', '-i', '0.2', '-W', '2', target], 15_000);
  const out = await inNet(lab, FROM, ['ping', '-n', '-c', String(PINGS), '-i', '0.2', '-W', '2', target], PINGS * 1000 + 15_000);
  const times = [...out.matchAll(/ time=([\d.]+) ms/g)].map((m) => Number(m[1])).sort((a, b) => a - b);
  const loss = Number(/(\d+(?:\.\d+)?)% packet loss/.exec(out)?.[1] ?? 100);
  if (!times.length) return { avgMs: null, medianMs: null, minMs: null, maxMs: null, lossPct: loss };
  return {
    avgMs: round(times.reduce((a, b) => a + b, 0) / times.length),
    medianMs: round(times[Math.floor(times.length / 2)]),
    minMs: round(times[0]),
    maxMs: round(times[times.length - 1]),
    lossPct: loss,
  };
}

/** utime + stime of a process in seconds; 0 when it is gone. */
function cpuSeconds(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

/** The access node's agent and its wireguard-go daemons (processes named wireguard-go in its mount namespace). */
function accessProcesses(lab: Lab): { agent: number; daemons: number[] } {
  const state = readState(lab.dir)!;
  const agent = state.agents[ACCESS]?.pid;
  const holder = state.holders[ACCESS];
  if (!agent || !holder) throw new Error('the access node has no agent or holder');
  const daemons: number[] = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number)) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'wireguard-go' && nsInode(pid, 'mnt') === holder.mnt) daemons.push(pid);
    } catch {
      /* gone */
    }
  }
  return { agent, daemons };
}

/** The access node's WireGuard counters (rx + tx bytes) for a peer node. */
async function accessBytes(lab: Lab, peer: string): Promise<number> {
  const v = await call<{ actual: { wireguard: { peers: { publicKey: string; rxBytes: number; txBytes: number }[] } } }>(
    nodePaths(lab.dir, ACCESS).socket,
    'GET',
    `/v1/networks/${lab.networkId}`,
    undefined,
    5000,
  );
  const p = v.actual.wireguard.peers.find((x) => x.publicKey === lab.publicKey(peer));
  return p ? p.rxBytes + p.txBytes : 0;
}

interface Transfer {
  mbps: number | null;
  retransmits: number | null;
  /** CPU seconds of the access node during the transfer. */
  accessCpuS: { wireguardGo: number; agent: number; total: number };
  wireguardGoDaemons: number;
  /** Bytes the access node's WireGuard counters for h1 and h3 grew by during the transfer. */
  accessRelayedMB: number;
  error?: string;
}

/** One iperf3 single-stream run h1 → h3 (server bound to h3's gateway, one test, killed by PID afterwards). */
async function transfer(lab: Lab): Promise<Transfer> {
  const target = lab.gateway(TO);
  const port = 5201;
  const sArgv = inTenant(lab.holderPid(TO), lab.networkId, ['iperf3', '-s', '-1', '-B', target, '-p', String(port)]);
  const server = spawn(sArgv[0], sArgv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let serverOut = '';
  server.stdout.on('data', (b: Buffer) => (serverOut += b.toString()));
  server.stderr.on('data', (b: Buffer) => (serverOut += b.toString()));
  const serverPid = server.pid;
  const serverExited = new Promise<void>((r) => server.on('close', () => r()));
  try {
    // Listening once its socket shows in h3's tenant namespace (its output is block-buffered in a pipe).
    const listening = async () => (await inNet(lab, TO, ['ss', '-Hltn', `sport = :${port}`], 5000)).includes(`${target}:${port}`);
    let ready = false;
    for (let i = 0; i < 50 && !ready && server.exitCode === null; i++) {
      ready = await listening();
      if (!ready) await sleep(100);
    }
    if (!ready) throw new Error(`iperf3 server did not start: ${serverOut.trim().slice(0, 200)}`);
    const procs = accessProcesses(lab);
    const cpu0 = { wg: procs.daemons.reduce((s, p) => s + cpuSeconds(p), 0), agent: cpuSeconds(procs.agent) };
    const bytes0 = (await accessBytes(lab, FROM)) + (await accessBytes(lab, TO));
    const out = await inNet(lab, FROM, ['iperf3', '-c', target, '-p', String(port), '-t', String(SECONDS), '-J'], (SECONDS + 30) * 1000);
    const cpu1 = { wg: procs.daemons.reduce((s, p) => s + cpuSeconds(p), 0), agent: cpuSeconds(procs.agent) };
    const bytes1 = (await accessBytes(lab, FROM)) + (await accessBytes(lab, TO));
    let mbps: number | null = null;
    let retransmits: number | null = null;
    let error: string | undefined;
    try {
      const j = JSON.parse(out) as { end?: { sum_received?: { bits_per_second: number }; sum_sent?: { retransmits?: number } }; error?: string };
      if (j.error) error = j.error;
      if (j.end?.sum_received) mbps = round(j.end.sum_received.bits_per_second / 1e6, 1);
      retransmits = j.end?.sum_sent?.retransmits ?? null;
    } catch {
      error = `iperf3 printed no JSON: ${out.trim().slice(0, 200)}`;
    }
    const wg = round(cpu1.wg - cpu0.wg);
    const agent = round(cpu1.agent - cpu0.agent);
    return {
      mbps,
      retransmits,
      accessCpuS: { wireguardGo: wg, agent, total: round(wg + agent) },
      wireguardGoDaemons: procs.daemons.length,
      accessRelayedMB: round((bytes1 - bytes0) / 1e6, 1),
      ...(error ? { error } : {}),
    };
  } finally {
    // -1 ends the server after its one test; if it is still there (no client came), end it by its PID.
    if (serverPid !== undefined && server.exitCode === null && server.signalCode === null) {
      let comm = '';
      try {
        comm = readFileSync(`/proc/${serverPid}/comm`, 'utf8').trim();
      } catch {
        /* gone */
      }
      if (comm === 'iperf3') process.kill(serverPid, 'SIGTERM');
    }
    await Promise.race([serverExited, sleep(5000)]);
  }
}

interface Phase {
  path: string;
  rtt: Awaited<ReturnType<typeof rtt>>;
  tcp: Transfer;
  /** The pair's state after the measurements (must still be the same path). */
  pathAfter: string;
}

async function measure(lab: Lab, expect: 'relay' | 'direct', what: string): Promise<Phase> {
  const before = await pair(lab);
  if (before.some((p) => p?.path !== expect)) throw new Error(`${what}: expected ${expect} both ways, got ${brief(before[0])} / ${brief(before[1])}`);
  const r = await rtt(lab);
  say(`${what}: ping ${JSON.stringify(r)}`);
  const t = await transfer(lab);
  say(`${what}: iperf3 ${JSON.stringify(t)}`);
  const after = await pair(lab);
  return { path: expect, rtt: r, tcp: t, pathAfter: after.map((p) => p?.path ?? 'none').join(' / ') };
}

/** Brings the lab up with the carrier stopped before it could hand out candidates; null when it got there first. */
async function upRelayed(name: string): Promise<{ lab: Lab; upSeconds: number } | null> {
  const dir = labDir(name);
  const t0 = Date.now();
  await labUp(SPEC, { name, wait: false, progress: (l) => say(l) });
  await stopCarrier(dir, readState(dir));
  const upSeconds = (Date.now() - t0) / 1000;
  const lab = openBench(name);
  const [a, b] = await pair(lab);
  if (!a || !b || a.candidates.length || b.candidates.length || a.path !== 'relay' || b.path !== 'relay') {
    say(`the carrier handed out candidates before it was stopped (${brief(a)} / ${brief(b)}); rebuilding`);
    return null;
  }
  const w = await labWaitGreen(name, 120_000, (l) => say(l));
  if (!w.green) throw new Error('the lab did not turn green with the pair relayed');
  return { lab, upSeconds: round(upSeconds + w.seconds, 1) };
}

const t0 = Date.now();
const loadStart = load1();
let result: Record<string, unknown> = {};
const left: string[] = [];
let failure: string | null = null;
try {
  let up: { lab: Lab; upSeconds: number } | null = null;
  let attempts = 0;
  for (; attempts < ATTEMPTS && !up; attempts++) {
    const name = `pb-${randomBytes(3).toString('hex')}`;
    try {
      up = await upRelayed(name);
    } finally {
      if (!up) left.push(...(await downAndCheck(name, labDir(name))));
    }
  }
  if (!up) throw new Error(`the carrier reached the nodes first in all ${ATTEMPTS} attempts`);
  const { lab } = up;
  try {
    const delayMode = Object.keys(readState(lab.dir)!.delayLines ?? {}).length ? 'userspace delay line (kernel without netem)' : 'netem';
    result = { delay: delayMode, attempts, upSeconds: up.upSeconds };
    const relayed = await measure(lab, 'relay', 'relayed, 40 ms');
    result.relayed = relayed;
    // The same relayed pair with the access node's delay taken off: the relay's own throughput and CPU cost
    // (without netem, the lab's userspace delay line carries bulk traffic poorly). Then the delay goes back.
    await labFault(lab.name, ACCESS, 'delay', 0);
    const relayedNoDelay = await measure(lab, 'relay', 'relayed, no delay');
    result.relayedNoDelay = relayedNoDelay;
    await labFault(lab.name, ACCESS, 'restore');
    // The carrier again: candidates reach both nodes, they probe, prove, and move the pair off the relay.
    ensureCarrier(lab.name, lab.dir, readState(lab.dir)!);
    const c0 = performance.now();
    let toCandidates: number | null = null;
    let toDirect: number | null = null;
    for (let i = 0; i < DIRECT_TIMEOUT_MS / 100 && performance.now() - c0 < DIRECT_TIMEOUT_MS; i++) {
      const [a, b] = await pair(lab);
      if (toCandidates === null && a?.candidates.length && b?.candidates.length) toCandidates = round((performance.now() - c0) / 1000);
      if (a?.path === 'direct' && b?.path === 'direct') {
        toDirect = round((performance.now() - c0) / 1000);
        break;
      }
      await sleep(100);
    }
    result.timeToCandidatesS = toCandidates;
    result.timeToDirectS = toDirect;
    const [pa, pb] = await pair(lab);
    say(`time to direct path: ${toDirect ?? 'NOT within 60 s'} s (candidates on both after ${toCandidates ?? '–'} s); ${FROM}: ${brief(pa)}; ${TO}: ${brief(pb)}`);
    if (toDirect === null) failure = `${FROM} ↔ ${TO} not direct within ${DIRECT_TIMEOUT_MS / 1000} s of the carrier's start`;
    const direct = toDirect === null ? null : await measure(lab, 'direct', 'direct');
    const delayBack = Object.keys(readState(lab.dir)!.delayLines ?? {}).length > 0 || delayMode === 'netem';
    const ratio = direct?.rtt.avgMs != null && relayed.rtt.avgMs ? round(direct.rtt.avgMs / relayed.rtt.avgMs, 3) : null;
    const ratioMedian = direct?.rtt.medianMs != null && relayed.rtt.medianMs ? round(direct.rtt.medianMs / relayed.rtt.medianMs, 3) : null;
    const times = (d: number | null | undefined, r: number | null | undefined) => (d != null && r ? round(d / r, 2) : null);
    result = {
      bench: 'paths',
      lab: 'labs/examples/paths-bench.yaml: access node a with 40 ms one-way delay on its underlay egress; h1, h3 behind two cone NATs',
      pair: `${FROM} → ${TO}`,
      delay: delayMode,
      attempts,
      upSeconds: up.upSeconds,
      pings: PINGS,
      iperfSeconds: SECONDS,
      timeToCandidatesS: toCandidates,
      timeToDirectS: toDirect,
      relayed,
      relayedNoDelay,
      direct,
      /** Whether the access node's delay was back in force for the direct phase. */
      delayRestored: delayBack,
      rttRatio: ratio,
      rttRatioMedian: ratioMedian,
      throughputDirectVsRelayed: times(direct?.tcp.mbps, relayed.tcp.mbps),
      throughputDirectVsRelayedNoDelay: times(direct?.tcp.mbps, relayedNoDelay.tcp.mbps),
      goals: { directRttAtMost03xRelayed: ratio === null ? false : ratio <= 0.3 },
    };
  } finally {
    left.push(...(await downAndCheck(lab.name, lab.dir)));
  }
} catch (e) {
  failure = (e as Error).message;
} finally {
  rmSync(root, { recursive: true, force: true });
}
result = { ...result, bench: 'paths', ...(failure ? { error: failure } : {}), leftovers: left, seconds: round((Date.now() - t0) / 1000, 1), load: { start: loadStart, end: load1() } };

const phases: [string, Phase | null | undefined][] = [
  ['relayed (40 ms)', result.relayed as Phase | undefined],
  ['relayed, delay off', result.relayedNoDelay as Phase | undefined],
  ['direct', result.direct as Phase | null | undefined],
];
const col = (v: unknown) => String(v ?? '–').padStart(19);
const line = (label: string, f: (p: Phase) => unknown, unit: string) => console.log(`${label.padEnd(38)}${phases.map(([, p]) => col(p ? f(p) : null)).join('')}  ${unit}`);
console.log(`direct paths: ${FROM} → ${TO} relayed through the access node a (40 ms one-way delay on its underlay) and direct, one lab; delay by ${result.delay ?? '?'}`);
console.log(`${''.padEnd(38)}${phases.map(([n]) => col(n)).join('')}`);
line(`RTT avg (${PINGS} pings)`, (p) => p.rtt.avgMs, 'ms');
line('RTT median / min / max', (p) => `${p.rtt.medianMs}/${p.rtt.minMs}/${p.rtt.maxMs}`, 'ms');
line(`TCP, 1 stream (iperf3 -t ${SECONDS})`, (p) => p.tcp.mbps, 'Mbit/s');
line('TCP retransmits', (p) => p.tcp.retransmits, '');
line('access node CPU: wireguard-go', (p) => p.tcp.accessCpuS.wireguardGo, 's');
line('access node CPU: agent', (p) => p.tcp.accessCpuS.agent, 's');
line("access node's counters for h1 + h3", (p) => p.tcp.accessRelayedMB, 'MB');
line('path after (h1 / h3)', (p) => p.pathAfter, '');
console.log(`time to direct path (carrier start → direct both ways): ${result.timeToDirectS ?? '–'} s (candidates on both nodes after ${result.timeToCandidatesS ?? '–'} s)`);
console.log(
  `RTT direct / relayed: ${result.rttRatio ?? '–'} (medians ${result.rttRatioMedian ?? '–'}; goal ≤ 0.3: ${(result.goals as { directRttAtMost03xRelayed?: boolean } | undefined)?.directRttAtMost03xRelayed ? 'met' : 'MISSED'}); ` +
    `TCP direct / relayed: ${result.throughputDirectVsRelayed ?? '–'}× (40 ms), ${result.throughputDirectVsRelayedNoDelay ?? '–'}× (delay off)`,
);
if (failure) console.log(`FAILED: ${failure}`);
if (left.length) console.log(`lab down left: ${left.join('; ')}`);
mkdirSync(RESULTS, { recursive: true });
writeFileSync(RESULTS + 'paths.json', JSON.stringify({ at: new Date().toISOString(), ...result }, null, 2) + '\n');
console.log(JSON.stringify(result));
process.exit(failure || left.length ? 1 : 0);
