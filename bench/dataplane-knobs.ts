// Knob experiments for the data plane (not part of `npm run bench`; run it alone, as root):
//   node --import tsx bench/dataplane-knobs.ts [knob ...]     e.g.  … base buf4m gomaxprocs1
// Each knob is the hand-built wireguard-go tunnel of bench/dataplane.ts (b) with one change; the knobs are
// measured round-robin (so load changes hit all alike), BENCH_DP_REPS fresh setups each (default 3),
// iperf3 for BENCH_DP_SECONDS (default 5) with BENCH_DP_PARALLEL streams (default 1). Prints a table, then one
// JSON object.
import { writeFileSync } from 'node:fs';
import { execIn, firstPing, HAND_PORT, handTunnel, iperf, load1, median, Pair, raiseBuffers, round, type HandOptions, type IperfResult } from './dataplane-lib.ts';

const REPS = Number(process.env.BENCH_DP_REPS ?? 3);
const SECONDS = Number(process.env.BENCH_DP_SECONDS ?? 5);
const PARALLEL = Number(process.env.BENCH_DP_PARALLEL ?? 1);

const buffers = (pid: number, bytes: number) => raiseBuffers(pid, HAND_PORT, bytes);

const KNOBS: Record<string, HandOptions> = {
  base: {},
  buf1m: { after: (_e, pid) => buffers(pid, 1 << 20) },
  buf4m: { after: (_e, pid) => buffers(pid, 4 << 20) },
  buf16m: { after: (_e, pid) => buffers(pid, 16 << 20) },
  gomaxprocs1: { env: { GOMAXPROCS: '1' } },
  gogc400: { env: { GOGC: '400' } },
  gmp1_gogc400: { env: { GOMAXPROCS: '1', GOGC: '400' } },
  gmp1_pin01: { env: { GOMAXPROCS: '1' }, cpus: ['0', '1'] },
  gogcoff: { env: { GOGC: 'off', GOMEMLIMIT: '256MiB' } },
  txq1000: { after: async (_e, _pid, at) => void (await execIn(at, ['ip', 'link', 'set', 'wg0', 'txqueuelen', '1000'])) },
  txq5000: { after: async (_e, _pid, at) => void (await execIn(at, ['ip', 'link', 'set', 'wg0', 'txqueuelen', '5000'])) },
  pfifo2000: { after: async (_e, _pid, at) => void (await execIn(at, ['tc', 'qdisc', 'replace', 'dev', 'wg0', 'root', 'pfifo', 'limit', '2000'])) },
  mtu1440: { mtu: 1440 },
  pin01: { cpus: ['0', '1'] },
  pin00: { cpus: ['0', '0'] },
  buf4m_gmp1: { env: { GOMAXPROCS: '1' }, after: (_e, pid) => buffers(pid, 4 << 20) },
  buf4m_pin01: { cpus: ['0', '1'], after: (_e, pid) => buffers(pid, 4 << 20) },
  buf4m_mtu1440: { mtu: 1440, after: (_e, pid) => buffers(pid, 4 << 20) },
  buf4m_gogc400: { env: { GOGC: '400' }, after: (_e, pid) => buffers(pid, 4 << 20) },
  buf4m_gogc1000: { env: { GOGC: '1000' }, after: (_e, pid) => buffers(pid, 4 << 20) },
  buf4m_nice5: { nice: -5, after: (_e, pid) => buffers(pid, 4 << 20) },
  buf4m_nice10: { nice: -10, after: (_e, pid) => buffers(pid, 4 << 20) },
  nice10: { nice: -10 },
  // The daemon in a session of its own (setsid: what the driver did before its tuning), with autogroup scheduling.
  ownsession: { prefix: ['setsid'] },
  buf4m_ownsession: { prefix: ['setsid'], after: (_e, pid) => buffers(pid, 4 << 20) },
  buf4m_ownsession_agnice5: {
    prefix: ['setsid'],
    after: async (_e, pid) => {
      writeFileSync(`/proc/${pid}/autogroup`, '-5');
      await buffers(pid, 4 << 20);
    },
  },
  buf4m_txq1000: {
    after: async (_e, pid, at) => {
      await execIn(at, ['ip', 'link', 'set', 'wg0', 'txqueuelen', '1000']);
      await buffers(pid, 4 << 20);
    },
  },
};

const wanted = process.argv.slice(2).length ? process.argv.slice(2) : ['base', 'buf4m', 'gomaxprocs1', 'gogc400', 'txq1000', 'mtu1440', 'pin01'];
for (const k of wanted) if (!KNOBS[k]) throw new Error(`unknown knob ${k}; knobs: ${Object.keys(KNOBS).join(', ')}`);
const runs: Record<string, (IperfResult & { firstPingMs: number })[]> = {};
for (let rep = 0; rep < REPS; rep++) {
  for (const k of wanted) {
    const pair = await Pair.create();
    try {
      const t = await handTunnel(pair, KNOBS[k]);
      try {
        const fp = await firstPing(t);
        const r = await iperf(t, { seconds: SECONDS, ...(PARALLEL > 1 ? { parallel: PARALLEL } : {}) });
        (runs[k] ??= []).push({ ...r, firstPingMs: fp });
        console.log(`rep ${rep} ${k.padEnd(14)} ${String(r.mbps).padStart(7)} Mbit/s  retr ${r.retransmits}  drops ${r.udpRcvbufErrors}  cpu ${r.cpuSPerGB} s/GB  load ${r.load}`);
      } finally {
        await t.down();
      }
    } catch (e) {
      console.log(`rep ${rep} ${k}: ${(e as Error).message}`);
    } finally {
      await pair.close();
    }
  }
}
const summary: Record<string, unknown> = {};
console.log('\nknob            Mbit/s (median)   vs base   drops   CPU s/GB');
const base = median((runs.base ?? []).map((r) => r.mbps));
for (const k of wanted) {
  const rs = runs[k] ?? [];
  const m = median(rs.map((r) => r.mbps));
  summary[k] = { mbps: m, runs: rs.map((r) => r.mbps), drops: median(rs.map((r) => r.udpRcvbufErrors)), cpuSPerGB: median(rs.map((r) => r.cpuSPerGB)), retransmits: median(rs.map((r) => r.retransmits)), loads: rs.map((r) => r.load) };
  console.log(`${k.padEnd(15)} ${String(m).padStart(8)}   ${base ? round(m / base, 2) : '-'}   ${median(rs.map((r) => r.udpRcvbufErrors))}   ${median(rs.map((r) => r.cpuSPerGB))}`);
}
console.log(JSON.stringify({ bench: 'dataplane-knobs', reps: REPS, seconds: SECONDS, parallel: PARALLEL, load: load1(), knobs: summary }));
