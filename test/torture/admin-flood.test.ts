// Admin-socket flood (issue 14, part 3): local users in the read-only socket's group try to knock the agent
// over. A real agent (own network and mount namespaces, one tenant network) runs with RLIMIT_NOFILE 1024 and a
// read-only socket for group 65534; during FLOOD_S seconds, as unprivileged uids in that group (setpriv):
//   40001  slowloris: up to ATTEMPTS connections sending half a header and holding them, each replaced at once
//          when it ends (refusals become a reconnect storm)
//   40004  idle keep-alive connections, replaced when closed
//   40003  many parallel GET /v1/diagnose (each runs commands on the node)
//   40002  a well-behaved member: GET /v1/status every 250 ms (retried up to 3 times, like a person would)
// Meanwhile, as root: GET /v1/status on the root socket every 100 ms and POST /v1/reconcile every second. It
// must hold that the agent stays alive, the root socket answers every request within ROOT_BOUND_MS, every
// reconcile is ok (no EMFILE), the well-behaved member is served (its own per-uid share), and afterwards the
// connections and descriptors are reclaimed. Before the fix the same flood ended the agent within seconds
// (`spawn ip EMFILE`, then an unhandled 'error' event). Figures: bench/results/torture-admin-flood.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { adminBudget } from '../../src/admin/limits.ts';
import { call } from '../../src/admin/client.ts';
import { blueprint, net, type NodeDef } from '../helpers/fixtures.ts';
import { part, planFor, signed } from '../helpers/agent-fixtures.ts';
import { ROOT, destroyAgentHost, makeAgentHost, startAgent, waitFor } from '../helpers/agent-host.ts';

const SCALE = Number(process.env.TORTURE_SCALE ?? 1);
const FLOOD_S = Math.min(10 + 2 * (SCALE - 1), 30);
const ATTEMPTS = 3000 * SCALE;
const NOFILE = 1024;
const GROUP = 65534;
const ROOT_BOUND_MS = 2000;

interface Flood {
  mode: string;
  attempted: number;
  connected: number;
  refused503: number;
  timedOut408: number;
  otherAnswers: number;
  dropped: number;
  closedLater: number;
  heldAtEnd: number;
  connectErrors: Record<string, number>;
  ok?: number;
  busy?: number;
  maxMs?: number;
  [k: string]: unknown;
}

function fds(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return -1;
  }
}

/** CPU seconds (user + system) a process used so far. */
function cpuSeconds(pid: number): number {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

function pct(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : 0;
}

function metric(text: string, name: string, labels: string): number | null {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  return line ? Number(line.split(' ').pop()) : null;
}

test(`admin flood: ${ATTEMPTS} half-header connections and friends over ${FLOOD_S} s from the group socket; the agent lives, root answers, reconciles succeed`, { timeout: 120000 }, async () => {
  const bed = await makeAgentHost({ interval: '1s', extra: { readSocket: 'read.sock', readSocketGroup: String(GROUP), logLevel: 'info' } });
  const readSocket = join(bed.dir, 'read.sock');
  const children: ReturnType<typeof execa>[] = [];
  try {
    await startAgent(bed, { prefix: ['prlimit', `--nofile=${NOFILE}:${NOFILE}`, '--'] });
    const pid = bed.agent!.pid!;
    assert.match((await execa('prlimit', ['--pid', String(pid), '--nofile', '--raw', '--noheadings'])).stdout, new RegExp(`\\b${NOFILE}\\s+${NOFILE}\\b`));
    // One tenant network, so every reconcile runs real commands (the ones that failed with EMFILE before).
    const self: NodeDef = { id: 'node-a', endpoints: ['203.0.113.1'] };
    const peers: NodeDef[] = [1, 2, 3].map((i) => ({ id: `p-${i}`, endpoints: [`203.0.113.${i + 1}`] }));
    const bp = blueprint([net({ nodes: ['node-a', ...peers.map((p) => p.id)], ipRange: '10.1.0.0/16' })]);
    const plan = planFor(bp, [self, ...peers]);
    const sub = await call<{ networks: { ok: boolean }[] }>(bed.socket, 'POST', '/v1/blueprints', { signed: signed(bp), part: part(plan, 'node-a') });
    assert.ok(sub.networks.every((n) => n.ok), 'the network is applied');
    const network = 'acme/shop/net';
    await new Promise((r) => setTimeout(r, 1500));
    const fdsBaseline = fds(pid);

    // The flooders run a copy of the client from a world-readable place, as unprivileged uids in the group.
    const client = join(bed.dir, 'flood-client.mjs');
    copyFileSync(join(ROOT, 'test/helpers/admin-flood-client.mjs'), client);
    chmodSync(client, 0o644);
    const flooder = (uid: number, o: Record<string, unknown>) => {
      const c = execa('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, `--groups=${GROUP}`, process.execPath, client, JSON.stringify({ path: readSocket, seconds: FLOOD_S, ...o })], {
        reject: false,
        timeout: (FLOOD_S + 20) * 1000,
      });
      children.push(c);
      return c;
    };
    const t0 = Date.now();
    const cpu0 = cpuSeconds(pid);
    const half = flooder(40001, { mode: 'half', attempts: ATTEMPTS, inflight: 1200 });
    const idle = flooder(40004, { mode: 'keepalive', attempts: ATTEMPTS, inflight: 300 });
    const diag = flooder(40003, { mode: 'diagnose', attempts: 100000, inflight: 40, network });
    const member = flooder(40002, { mode: 'status', attempts: 100000 });

    // Root's side, during the flood.
    const latencies: number[] = [];
    let rootFailed = 0;
    const rootErrors: string[] = [];
    const reconciles = { requested: 0, ok: 0, failed: 0, emfile: 0, errors: [] as string[] };
    let fdsPeak = fdsBaseline;
    let aliveThroughout = true;
    const floodEnd = t0 + FLOOD_S * 1000;
    const statusLoop = (async () => {
      while (Date.now() < floodEnd) {
        const s = Date.now();
        try {
          await call(bed.socket, 'GET', '/v1/status', undefined, ROOT_BOUND_MS);
          latencies.push(Date.now() - s);
        } catch (e) {
          rootFailed++;
          rootErrors.push((e as Error).message);
        }
        fdsPeak = Math.max(fdsPeak, fds(pid));
        if (bed.agent?.exitCode !== null || bed.agent?.signalCode !== null) aliveThroughout = false;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const reconcileLoop = (async () => {
      while (Date.now() < floodEnd) {
        reconciles.requested++;
        try {
          const r = await call<{ ok: boolean; errors: { message: string }[] }>(bed.socket, 'POST', '/v1/reconcile', undefined, 15000);
          if (r.ok) reconciles.ok++;
          else {
            reconciles.failed++;
            reconciles.errors.push(...r.errors.map((e) => e.message));
          }
          if (JSON.stringify(r).includes('EMFILE')) reconciles.emfile++;
        } catch (e) {
          reconciles.failed++;
          reconciles.errors.push((e as Error).message);
        }
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    await Promise.all([statusLoop, reconcileLoop]);
    const agentCpuS = Math.round((cpuSeconds(pid) - cpu0) * 100) / 100;
    const during = await call<string>(bed.socket, 'GET', '/v1/metrics');
    const results = await Promise.all([half, idle, diag, member].map(async (c) => JSON.parse((await c).stdout.trim().split('\n').pop() || '{}') as Flood));
    const [halfR, idleR, diagR, memberR] = results;

    // After: every flooder is gone; within the header timeout the read socket is empty and descriptors are back.
    let after = { open: -1, fds: -1 };
    await waitFor(
      async () => {
        const m = await call<string>(bed.socket, 'GET', '/v1/metrics');
        after = { open: metric(m, 'zmesh_admin_connections', 'socket="read"') ?? -1, fds: fds(pid) };
        return after.open === 0 && after.fds <= fdsBaseline + 8;
      },
      15000,
      'connections and descriptors reclaimed',
    ).catch(() => undefined);
    const memberAfter = await call<{ node: string }>(readSocket, 'GET', '/v1/status').catch((e: Error) => ({ node: `error: ${e.message}` }));

    latencies.sort((a, b) => a - b);
    const budget = adminBudget(NOFILE);
    const figures = {
      scale: SCALE,
      seconds: FLOOD_S,
      nofile: NOFILE,
      budget: { admin: { maxConnections: budget.admin.maxConnections, heavy: budget.admin.heavyConcurrent }, read: { maxConnections: budget.read.maxConnections, perUid: budget.read.perUid, heavy: budget.read.heavyConcurrent }, reservedFds: budget.reserved },
      connections: {
        attempted: halfR.attempted + idleR.attempted + diagR.attempted + memberR.attempted,
        accepted: metric(during, 'zmesh_admin_connections_accepted_total', 'socket="read"'),
        refused: (metric(during, 'zmesh_admin_connections_refused_total', 'socket="read",reason="socket"') ?? 0) + (metric(during, 'zmesh_admin_connections_refused_total', 'socket="read",reason="uid"') ?? 0),
      },
      slowloris: halfR,
      idleKeepAlive: idleR,
      diagnose: diagR,
      member: memberR,
      server: {
        readPeakOpen: metric(during, 'zmesh_admin_connections_peak', 'socket="read"'),
        readAccepted: metric(during, 'zmesh_admin_connections_accepted_total', 'socket="read"'),
        readRefusedSocket: metric(during, 'zmesh_admin_connections_refused_total', 'socket="read",reason="socket"'),
        readRefusedUid: metric(during, 'zmesh_admin_connections_refused_total', 'socket="read",reason="uid"'),
        acceptErrors: metric(during, 'zmesh_admin_accept_errors_total', 'socket="read"'),
      },
      root: { requests: latencies.length + rootFailed, answered: latencies.length, failed: rootFailed, latencyMs: { p50: pct(latencies, 0.5), p99: pct(latencies, 0.99), max: latencies.at(-1) ?? null }, errors: rootErrors.slice(0, 5) },
      reconciles: { ...reconciles, errors: reconciles.errors.slice(0, 5) },
      agent: { alive: aliveThroughout && bed.agent?.exitCode === null, cpuSeconds: agentCpuS, fdsBaseline, fdsPeak, fdsAfter: after.fds, readConnectionsAfter: after.open },
      memberAfter: memberAfter.node === 'node-a',
      elapsedS: (Date.now() - t0) / 1000,
    };
    process.stdout.write(`admin flood: ${JSON.stringify(figures)}\n`);
    mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
    writeFileSync(join(ROOT, 'bench/results/torture-admin-flood.json'), JSON.stringify(figures, null, 2) + '\n');

    assert.ok(figures.agent.alive, 'the agent stayed alive');
    assert.ok(halfR.attempted > 1000, `the flood was real: ${halfR.attempted} connections attempted`);
    assert.ok(halfR.refused503 + halfR.dropped > 0, 'the flooder was refused');
    assert.equal(rootFailed, 0, `the root socket answered every request: ${rootErrors.slice(0, 3).join('; ')}`);
    assert.ok((figures.root.latencyMs.max ?? Infinity) < ROOT_BOUND_MS, `root latency max ${figures.root.latencyMs.max} ms`);
    assert.ok(reconciles.ok >= FLOOD_S / 3, `reconciles ok during the flood: ${reconciles.ok}`);
    assert.equal(reconciles.failed, 0, `no reconcile failed: ${reconciles.errors.slice(0, 3).join('; ')}`);
    assert.equal(reconciles.emfile, 0, 'no EMFILE');
    // Its connections share the socket's listen backlog with the flood (a connect may fail with EAGAIN), so it
    // retries like a person would; its per-uid share is its own.
    assert.ok((memberR.ok ?? 0) >= 1 && (memberR.ok ?? 0) >= 0.9 * memberR.attempted, `the well-behaved member was served: ${JSON.stringify(memberR)}`);
    assert.ok((figures.server.readPeakOpen ?? Infinity) <= budget.read.maxConnections, 'the read socket never held more than its budget');
    assert.ok(fdsPeak <= fdsBaseline + budget.adminFds, `descriptors peak ${fdsPeak} within baseline ${fdsBaseline} + admin budget ${budget.adminFds}`);
    assert.equal(after.open, 0, 'read-socket connections reclaimed');
    assert.ok(after.fds <= fdsBaseline + 8, `descriptors reclaimed: ${after.fds} (baseline ${fdsBaseline})`);
    assert.ok(figures.memberAfter, 'the read socket answers after the flood');
    assert.doesNotMatch(bed.log.join(''), /Unhandled 'error' event|uncaught error; exiting/);
  } catch (e) {
    process.stderr.write(`${bed.log.join('').slice(-3000)}\n`);
    throw e;
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await Promise.all(children.map((c) => c.catch(() => undefined)));
    await destroyAgentHost(bed);
  }
});
