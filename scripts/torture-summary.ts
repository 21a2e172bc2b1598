// The torture suite's summary: reads what each torture test wrote under bench/results/ (torture-hostile, -trust,
// -crash, -crash-workloads, -faults, -secrets, -spoofing, -egress, -admin-flood .json), prints a report and writes it to
// bench/results/torture-summary.json and .md. Exits 1 when a part is missing or older than --since (a test
// that failed before writing), when any leak or exposure was found, or when the agent died or its root socket
// stopped answering during the admin-socket flood.
//   node --import tsx scripts/torture-summary.ts [--since EPOCH_MS]
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const RESULTS = join(new URL('..', import.meta.url).pathname, 'bench/results');
const sinceArg = process.argv.indexOf('--since');
const since = sinceArg > 0 ? Number(process.argv[sinceArg + 1]) : 0;

interface Part<T> {
  data: T | null;
  file: string;
  at: string | null;
  /** Missing, unreadable, or older than --since. */
  problem: string | null;
}

function part<T>(name: string): Part<T> {
  const file = join(RESULTS, `torture-${name}.json`);
  if (!existsSync(file)) return { data: null, file, at: null, problem: 'missing (its test did not run or failed early)' };
  const mtime = statSync(file).mtimeMs;
  try {
    const data = JSON.parse(readFileSync(file, 'utf8')) as T;
    return { data, file, at: new Date(mtime).toISOString(), problem: since && mtime < since ? `stale (from ${new Date(mtime).toISOString()}, before this run)` : null };
  } catch (e) {
    return { data: null, file, at: null, problem: `unreadable: ${(e as Error).message}` };
  }
}

const hostile = part<{ total: number; scale: number; counts: Record<string, { cases: number; accepted: number; rejected: number }> }>('hostile');
type CrashPart = { kills: number; leaks: number; recoveryMs: { median: number; max: number } };
const crash = part<CrashPart>('crash');
const crashWorkloads = part<CrashPart>('crash-workloads');
const faults = part<{ scale: number; lab: string; upSeconds: number; faults: { fault: string; target: string; seconds: number; bound: number; keepaliveSeconds?: number; note?: string }[]; survived: number }>('faults');
const secrets = part<{ samples: number; exposures: string[] }>('secrets');
const spoofing = part<{ cases: number; exposures: string[] }>('spoofing');
// Attacks on the trust boundaries (issue #14): each part is {cases, exposures} like spoofing.
type AttackPart = { cases: number; exposures: string[] };
const ATTACKS: { name: string; label: string; what: string }[] = [
  { name: 'trust', label: 'control-plane trust', what: 'as anyone on the network, a node with valid credentials and a root writer of etcd: forged, moved and unenrolled registrations, other nodes\' keys, parts and envelopes' },
  { name: 'egress', label: 'egress', what: "tenants' egress toward the node, its LAN, private ranges, the mesh, the control plane, other tenants, over IPv6; devices and hidden nodes using an access node's egress" },
  { name: 'containers', label: 'containers', what: 'a workload as root in its container and, for the bridge filter, with every capability: raw sockets, forged ARP, sources, MACs, VLAN tags and IPv6 onto the tenant bridge; disk, volume, /dev/shm and pids limits; capability drift' },
  { name: 'candidates', label: 'candidate endpoints (direct paths)', what: 'PUT /v1/candidates to a hidden node: loopback, unspecified, multicast, broadcast, link-local and metadata, v4-mapped and v4-compatible, in-range and non-canonical endpoints; other tenants\' networks, non-direct peers, 10,000 candidates, peers or networks; wrong shapes and prototype keys; one bad entry among good ones; over 256 KiB; the read-only socket — each refused whole, no candidate, peer or `wg set` changed' },
  { name: 'policy', label: 'network policies', what: 'blueprint policies with 10,000 rules, 1,001 selectors, unicode and surrogate names, nested lists, prototype keys, bad defaults, out-of-range and host-bit cidrs, bad ports, unknown names; 1,000 rules of 50 overlapping cidrs compiled within bounds' },
];
const attacks = ATTACKS.map((a) => ({ ...a, part: part<AttackPart>(a.name) }));
// A local user in the read-only socket's group floods it (test/torture/admin-flood.test.ts).
type FloodPart = {
  seconds: number;
  connections: { attempted: number; accepted: number | null; refused: number | null };
  root: { requests: number; answered: number; failed: number; latencyMs: { p50: number; max: number | null } };
  reconciles: { requested: number; ok: number; failed: number; emfile: number };
  agent: { alive: boolean };
};
const adminFlood = part<FloodPart>('admin-flood');
const parts = { hostile, crash, 'crash-workloads': crashWorkloads, faults, secrets, spoofing, ...Object.fromEntries(attacks.map((a) => [a.name, a.part])), 'admin-flood': adminFlood };

// Leaks of every kill -9 part that reported (a missing part is a problem of its own, below).
const crashParts = [crash.data, crashWorkloads.data].filter((d): d is CrashPart => d !== null);
const leaks = crashParts.length ? crashParts.reduce((n, d) => n + d.leaks, 0) : null;
const killsSurvived = crashParts.reduce((n, d) => n + d.kills, 0);
const exposures = [
  ...(secrets.data?.exposures ?? []).map((e) => `secret: ${e}`),
  ...(spoofing.data?.exposures ?? []).map((e) => `spoofing: ${e}`),
  ...attacks.flatMap((a) => (a.part.data?.exposures ?? []).map((e) => `${a.name}: ${e}`)),
];
const problems = Object.entries(parts)
  .filter(([, p]) => p.problem)
  .map(([k, p]) => `${k}: ${p.problem}`);
const flood = adminFlood.data;
if (flood && !flood.agent.alive) problems.push('admin-flood: the agent died during the flood');
if (flood && flood.root.failed > 0) problems.push(`admin-flood: the root socket stopped answering (${flood.root.failed} of ${flood.root.requests} requests failed)`);
if (flood && (flood.reconciles.failed > 0 || flood.reconciles.emfile > 0)) problems.push(`admin-flood: ${flood.reconciles.failed} reconciles failed (${flood.reconciles.emfile} with EMFILE)`);

const summary = {
  generatedAt: new Date().toISOString(),
  ok: problems.length === 0 && leaks === 0 && exposures.length === 0,
  problems,
  hostileInput: hostile.data ? { cases: hostile.data.total, scale: hostile.data.scale, byKind: hostile.data.counts } : null,
  crashes: crash.data ? { killsSurvived: crash.data.kills, leaks: crash.data.leaks, recoveryMs: crash.data.recoveryMs } : null,
  crashesWithWorkloads: crashWorkloads.data ? { killsSurvived: crashWorkloads.data.kills, leaks: crashWorkloads.data.leaks, recoveryMs: crashWorkloads.data.recoveryMs } : null,
  faults: faults.data ? { survived: faults.data.survived, lab: faults.data.lab, scale: faults.data.scale, recoveries: faults.data.faults } : null,
  secrets: secrets.data ? { procSamples: secrets.data.samples, exposures: secrets.data.exposures.length } : null,
  spoofing: spoofing.data ? { cases: spoofing.data.cases, exposures: spoofing.data.exposures.length } : null,
  adminFlood: flood ? { seconds: flood.seconds, connections: flood.connections, agentAlive: flood.agent.alive, root: flood.root, reconciles: flood.reconciles } : null,
  attacks: Object.fromEntries(attacks.map((a) => [a.name, a.part.data ? { cases: a.part.data.cases, exposures: a.part.data.exposures.length } : null])),
  killsSurvived,
  leaks,
  exposures,
};

const md: string[] = ['# Torture summary', '', `${summary.generatedAt} — ${summary.ok ? '**all survived: 0 leaks, 0 exposures**' : '**PROBLEMS**'}`, ''];
md.push('| part | tried | result |', '| --- | --- | --- |');
md.push(`| hostile input | ${hostile.data ? `${hostile.data.total.toLocaleString('en-US')} cases (scale ${hostile.data.scale})` : '-'} | ${hostile.data ? 'no crash, no hang, every case rejected with a code or accepted as valid' : hostile.problem} |`);
md.push(`| crashes (kill -9) | ${crash.data ? `${crash.data.kills} kills` : '-'} | ${crash.data ? `${crash.data.leaks} leaks; recovery median ${crash.data.recoveryMs.median} ms, max ${crash.data.recoveryMs.max} ms` : crash.problem} |`);
md.push(
  `| crashes with workloads and volumes (kill -9) | ${crashWorkloads.data ? `${crashWorkloads.data.kills} kills` : '-'} | ${crashWorkloads.data ? `${crashWorkloads.data.leaks} leaks (containers, veths, mounts, subvolumes, loop devices); volume data kept; recovery median ${crashWorkloads.data.recoveryMs.median} ms, max ${crashWorkloads.data.recoveryMs.max} ms` : crashWorkloads.problem} |`,
);
md.push(`| lab faults | ${faults.data ? `${faults.data.faults.length} faults` : '-'} | ${faults.data ? `${faults.data.survived} recovered to a green matrix without human action` : faults.problem} |`);
md.push(`| secrets | ${secrets.data ? `${secrets.data.samples} samples of every /proc/*/cmdline and environ` : '-'} | ${secrets.data ? `${secrets.data.exposures.length} exposures (argv, environ, logs, API responses, file modes)` : secrets.problem} |`);
md.push(`| spoofing | ${spoofing.data ? `${spoofing.data.cases} cases` : '-'} | ${spoofing.data ? `${spoofing.data.exposures.length} exposures (spoofed sources, cross-tenant, host addresses)` : spoofing.problem} |`);
for (const a of attacks) {
  md.push(`| ${a.label} | ${a.part.data ? `${a.part.data.cases} attacks` : '-'} | ${a.part.data ? `${a.part.data.exposures.length} exposures (${a.what})` : a.part.problem} |`);
}
md.push(
  `| admin socket flood (local user in the socket's group) | ${flood ? `${flood.connections.attempted.toLocaleString('en-US')} connections in ${flood.seconds} s (half headers, idle keep-alive, diagnose storm)` : '-'} | ${flood ? `agent ${flood.agent.alive ? 'alive' : 'DIED'}; ${flood.connections.accepted ?? '?'} admitted, ${flood.connections.refused ?? '?'} refused; root socket answered ${flood.root.answered}/${flood.root.requests} (p50 ${flood.root.latencyMs.p50} ms, max ${flood.root.latencyMs.max} ms); ${flood.reconciles.ok}/${flood.reconciles.requested} reconciles ok` : adminFlood.problem} |`,
);
if (faults.data) {
  md.push('', `## Fault recovery (${faults.data.lab}; lab green in ${faults.data.upSeconds} s)`, '', '| fault | on | green after | bound | note |', '| --- | --- | --- | --- | --- |');
  for (const f of faults.data.faults) {
    const ka = f.keepaliveSeconds !== undefined ? `access node reaches the hidden nodes after ${f.keepaliveSeconds} s (keepalives only)` : '';
    md.push(`| ${f.fault} | ${f.target} | ${f.seconds} s | ${f.bound} s | ${[ka, f.note ?? ''].filter(Boolean).join('; ')} |`);
  }
}
md.push('', `Kills survived: ${killsSurvived}. Leaks: ${leaks ?? 'unknown'}. Exposures: ${exposures.length}${exposures.length ? ` — ${exposures.join('; ')}` : ''}.`);
if (problems.length) md.push('', 'Problems:', ...problems.map((p) => `- ${p}`));
const text = md.join('\n') + '\n';

mkdirSync(RESULTS, { recursive: true });
writeFileSync(join(RESULTS, 'torture-summary.json'), JSON.stringify(summary, null, 2) + '\n');
writeFileSync(join(RESULTS, 'torture-summary.md'), text);
process.stdout.write(`\n${text}\nwritten: bench/results/torture-summary.json, bench/results/torture-summary.md\n`);
process.exitCode = summary.ok ? 0 : 1;
