// Admin-API latency: GET /v1/networks/:name for a network with 1,000 peers, served by the real admin app
// (buildAdminApp) over a unix socket, the agent in process with a fake data plane (test/helpers/agent-fixtures.ts
// FakeDriver: it answers `actual` from the desired state, so what is measured is the agent, the app and the
// serialization of 1,000 peers). Load: an open loop at BENCH_ADMIN_RPS requests/s (default 100) for
// BENCH_ADMIN_SECONDS (default 10) from this process over keep-alive connections, at most 32 in flight (a
// request whose turn comes while 32 are pending is counted as skipped, so the load stays bounded). Latency is
// from the scheduled send time to the last byte (so a stalled server shows, not hidden by coordinated
// omission). Target (ours): p99 ≤ 50 ms on 2 cores. Last line: one JSON object.
import { Agent as HttpAgent, request } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildAdminApp } from '../src/admin/app.ts';
import { listenUnix } from '../src/admin/listen.ts';
import { agentBed, part, planFor, signed } from '../test/helpers/agent-fixtures.ts';
import { blueprint, net } from '../test/helpers/fixtures.ts';

const RPS = Number(process.env.BENCH_ADMIN_RPS ?? 100);
const SECONDS = Number(process.env.BENCH_ADMIN_SECONDS ?? 10);
const PEERS = Number(process.env.BENCH_ADMIN_PEERS ?? 1000);
const MAX_IN_FLIGHT = 32;
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

const nodes = Array.from({ length: PEERS + 1 }, (_, i) => ({ id: `node-${String(i).padStart(4, '0')}`, endpoints: [`203.0.${113 + (i >> 8)}.${i & 255}`] }));
const bp = blueprint([net({ name: 'big', ipRange: '10.0.0.0/12', nodes: nodes.map((n) => n.id) })]);
const t0 = performance.now();
const plan = planFor(bp, nodes);
const planMs = performance.now() - t0;

const bed = agentBed('node-0000');
const dir = mkdtempSync(join(tmpdir(), 'zmesh-admin-bench-'));
const socketPath = join(dir, 'admin.sock');
const app = buildAdminApp({ agent: bed.agent, bodyLimit: 64 * 1024 * 1024 });
const http = new HttpAgent({ keepAlive: true, maxSockets: MAX_IN_FLIGHT });
const url = `/v1/networks/${encodeURIComponent('acme/shop/big')}`;

function get(path: string): Promise<{ status: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, agent: http, timeout: 10_000 }, (res) => {
      let bytes = 0;
      res.on('data', (b: Buffer) => (bytes += b.length));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

try {
  const res = await app.inject({ method: 'POST', url: '/v1/blueprints', payload: { signed: signed(bp), part: part(plan, 'node-0000') } });
  if (res.statusCode !== 200) throw new Error(`provision: ${res.statusCode} ${res.body.slice(0, 300)}`);
  await listenUnix(app, socketPath);
  const first = await get(url);
  if (first.status !== 200) throw new Error(`GET ${url}: ${first.status}`);
  for (let i = 0; i < 20; i++) await get(url); // warm-up (JIT, connections)

  const lat: number[] = [];
  let inFlight = 0;
  let skipped = 0;
  let errors = 0;
  const n = RPS * SECONDS;
  const start = performance.now();
  const cpu0 = process.cpuUsage();
  const pending: Promise<void>[] = [];
  for (let i = 0; i < n; i++) {
    const due = start + (i * 1000) / RPS;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    if (inFlight >= MAX_IN_FLIGHT) {
      skipped++;
      continue;
    }
    inFlight++;
    pending.push(
      get(url).then(
        (r) => {
          inFlight--;
          if (r.status === 200) lat.push(performance.now() - due);
          else errors++;
        },
        () => {
          inFlight--;
          errors++;
        },
      ),
    );
  }
  await Promise.all(pending);
  const elapsed = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  lat.sort((a, b) => a - b);
  const q = (p: number) => (lat.length ? round(lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]) : NaN);
  const result = {
    bench: 'admin',
    route: 'GET /v1/networks/:name',
    peers: PEERS,
    responseBytes: first.bytes,
    rps: RPS,
    seconds: SECONDS,
    requests: lat.length,
    skipped,
    errors,
    achievedRps: round(lat.length / elapsed, 1),
    p50Ms: q(0.5),
    p90Ms: q(0.9),
    p99Ms: q(0.99),
    maxMs: round(lat[lat.length - 1] ?? NaN),
    cpuMsPerRequest: round((cpu.user + cpu.system) / 1000 / Math.max(1, lat.length)),
    planMs: Math.round(planMs),
    load: round(loadavg()[0]),
    targets: { p99Under50ms: q(0.99) <= 50 },
  };
  console.log(`GET /v1/networks/:name, ${PEERS} peers (${first.bytes} bytes), ${RPS} req/s for ${SECONDS} s over a unix socket`);
  console.log(`  p50 ${result.p50Ms} ms   p90 ${result.p90Ms} ms   p99 ${result.p99Ms} ms   max ${result.maxMs} ms`);
  console.log(`  ${lat.length} answered, ${skipped} skipped (32 in flight), ${errors} errors; ${result.cpuMsPerRequest} ms CPU per request (client + server); load ${result.load}`);
  console.log(`targets: p99Under50ms=${result.targets.p99Under50ms ? 'met' : 'MISSED'}`);
  console.log(JSON.stringify(result));
} finally {
  http.destroy();
  await app.close();
  bed.close();
  rmSync(dir, { recursive: true, force: true });
}
