// Upgrades without loss (issue #21), for real (as root): a two-node lab (node-a hosts a workload with a volume
// on a private dockerd; two tenants, so node-a runs two tunnels, two wireguard-go daemons). While node-b sends, through every
// tunnel of node-a, a ping at 20 Hz and a TCP stream, and polls the workload's HTTP server over the tunnel,
// node-a's agent is
//   1. replaced by a new build of the same code (a copy of the source tree in another directory, run from
//      there: what installing a release into /opt/zmesh-<version> and switching the unit to it does),
//   2. replaced by a build whose compute module is at schema 2 (a migration with data: a new column filled from
//      the stored attachments), which backs the store up before migrating,
//   3. rolled back: the previous build refuses the migrated store (E_STORE_NEWER) and changes nothing; the
//      backup restored, the previous build starts on it.
// Each time: SIGTERM (the agent exits by itself and tears nothing down), the next build starts, and its
// reconciles — the first one included — adopt the daemons (same PIDs), the container (same id, same start
// time, no Docker event), the namespaces (same inodes) and the storage pool (still mounted) with ZERO
// mutating commands (GET /v1/status
// lastReconcile.cost.mutating, which counts the runtime's commands too). The traffic sees zero lost packets
// (every echo request but the last in flight answered), no reset connection, no failed HTTP request.
// Figures are printed as diagnostics (and one JSON line, "upgrade figures").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, closeSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { stringify } from 'yaml';
import { dockerClient, downAndCheck, labDir, labUp, openLab } from '../../labs/index.ts';
import { zmeshArgv } from '../../labs/agents.ts';
import { nodePaths, readState, writeState } from '../../labs/state.ts';
import { alive, fileInode, inHolder, inTenant, nsInode, signal, sleep, startTime, waitGone } from '../../labs/sys.ts';
import { call } from '../../src/admin/client.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const root = mkdtempSync('/tmp/zmesh-upg-');
process.env.ZMESH_LAB_DIR = root;
const name = `upg-${randomBytes(3).toString('hex')}`;
const NODE = 'node-a';
const PEER = 'node-b';
const TCP_PORT = 7901;

const spec = {
  name,
  nodes: [{ name: NODE }, { name: PEER }],
  tenants: [
    {
      name: 'blue',
      blueprints: [
        {
          name: 'office',
          networks: [{ name: 'lan', ipRange: '10.1.0.0/16', nodes: [NODE, PEER] }],
          workloads: [
            {
              name: 'web',
              node: NODE,
              image: 'zmesh/base:latest',
              command: ['sh', '-c', 'echo zmesh-wl blue/office/web > /var/www/index.html && exec httpd -f -p 80 -h /var/www'],
              network: { name: 'lan' },
              memory: '16Mi',
              volumes: [{ name: 'files', mount: '/var/www/files' }],
            },
          ],
          volumes: [{ name: 'files', node: NODE, size: '16Mi' }],
        },
      ],
    },
    { name: 'red', blueprints: [{ name: 'shop', networks: [{ name: 'backend', ipRange: '10.2.0.0/16', nodes: [NODE, PEER] }] }] },
  ],
  options: { reconcileInterval: '2s', logLevel: 'info' },
};

// The traffic programs (node, run inside a tenant namespace). Each prints {"ready":…} once, then on SIGTERM one
// JSON line with its figures and exits. Bounded: every loop ends on SIGTERM, and the test kills them by PID.
const TRAFFIC = String.raw`
import net from 'node:net';
import http from 'node:http';
const [mode, a, b] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
let stopping = false;
if (mode === 'recv') {
  // One TCP stream in: bytes, the longest gap between arrivals, how it ended.
  const st = { bytes: 0, maxGapMs: 0, errors: [], ended: false, connections: 0 };
  let last = 0;
  const srv = net.createServer((s) => {
    st.connections++;
    s.on('data', (d) => { const t = performance.now(); if (last && st.bytes) st.maxGapMs = Math.max(st.maxGapMs, t - last); last = t; st.bytes += d.length; });
    s.on('error', (e) => st.errors.push(e.code || e.message));
    s.on('end', () => { st.ended = true; s.end(); });
    s.on('close', () => { out({ recv: st }); process.exit(0); });
  });
  srv.listen(Number(a), '0.0.0.0', () => out({ ready: 'recv' }));
  process.on('SIGTERM', () => { out({ recv: st, cut: true }); process.exit(0); });
} else if (mode === 'send') {
  // One TCP stream out, 32 KiB every 20 ms (1.6 MB/s) while the socket takes it; on SIGTERM a clean end.
  const st = { bytes: 0, writes: 0, blocked: 0, errors: [], closedCleanly: false };
  const chunk = Buffer.alloc(32 * 1024, 0x5a);
  let full = false;
  const s = net.connect(Number(b), a, () => out({ ready: 'send' }));
  s.setNoDelay(true);
  s.on('drain', () => { full = false; });
  s.on('error', (e) => st.errors.push(e.code || e.message));
  s.on('close', (hadError) => { st.closedCleanly = stopping && !hadError; out({ send: st }); process.exit(0); });
  const timer = setInterval(() => {
    if (stopping || s.connecting || s.destroyed) return;
    if (full) { st.blocked++; return; }
    st.writes++; st.bytes += chunk.length;
    if (!s.write(chunk)) full = true;
  }, 20);
  process.on('SIGTERM', () => { stopping = true; clearInterval(timer); s.end(); setTimeout(() => { st.errors.push('no close within 10 s'); out({ send: st }); process.exit(0); }, 10000).unref(); });
} else if (mode === 'http') {
  // GET a URL 10 times a second, a new connection each time, 2 s timeout; the body must contain b.
  const st = { requests: 0, ok: 0, failures: [], maxMs: 0 };
  let ready = false;
  const once = () => new Promise((resolve) => {
    const t0 = performance.now();
    st.requests++;
    const req = http.get(a, { agent: false, timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        const ms = performance.now() - t0;
        st.maxMs = Math.max(st.maxMs, ms);
        if (res.statusCode === 200 && body.includes(b)) { st.ok++; if (!ready) { ready = true; out({ ready: 'http' }); } }
        else st.failures.push({ at: Date.now(), why: 'status ' + res.statusCode });
        resolve();
      });
      res.on('error', (e) => { st.failures.push({ at: Date.now(), why: e.code || e.message }); resolve(); });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => { st.failures.push({ at: Date.now(), why: e.code || e.message }); resolve(); });
  });
  (async () => { while (!stopping) { const t = performance.now(); await once(); await new Promise((r) => setTimeout(r, Math.max(0, 100 - (performance.now() - t)))); } out({ http: st }); process.exit(0); })();
  process.on('SIGTERM', () => { stopping = true; });
}
`;

interface Proc {
  what: string;
  child: ChildProcess;
  lines: string[];
  stderr: string[];
}

/** Starts a program; its stdout lines are collected. */
function startProc(what: string, argv: string[]): Proc {
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { LC_ALL: 'C', PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' } });
  const p: Proc = { what, child, lines: [], stderr: [] };
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    p.lines.push(...parts);
  });
  child.stderr!.on('data', (d: Buffer) => p.stderr.push(d.toString()));
  child.on('error', () => undefined);
  return p;
}

async function waitLine(p: Proc, re: RegExp, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (p.lines.some((l) => re.test(l))) return;
    if (p.child.exitCode !== null || p.child.signalCode !== null) break;
    await sleep(50);
  }
  throw new Error(`${p.what}: no line matching ${re} within ${ms} ms; stdout ${p.lines.slice(-3).join(' | ')}; stderr ${p.stderr.join('').slice(-400)}`);
}

/** Ends a program with a signal and waits (bounded) for it to exit; SIGKILL after the bound. */
async function endProc(p: Proc, sig: NodeJS.Signals, ms = 15000): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  const gone = new Promise((r) => p.child.once('exit', r));
  p.child.kill(sig);
  const t = setTimeout(() => p.child.kill('SIGKILL'), ms);
  await gone;
  clearTimeout(t);
}

/** iputils ping output → transmitted, received, and the sequence numbers with no reply (the last sent excluded: in flight). */
function pingFigures(lines: string[]): { transmitted: number; received: number; lost: number[]; maxRttMs: number } {
  const seqs = new Set<number>();
  let maxRttMs = 0;
  let transmitted = 0;
  let received = 0;
  for (const l of lines) {
    const m = /icmp_seq=(\d+) .*time=([\d.]+) ms/.exec(l);
    if (m) {
      seqs.add(Number(m[1]));
      maxRttMs = Math.max(maxRttMs, Number(m[2]));
    }
    const s = /(\d+) packets transmitted, (\d+) received/.exec(l);
    if (s) [transmitted, received] = [Number(s[1]), Number(s[2])];
  }
  const lost: number[] = [];
  for (let i = 1; i < transmitted; i++) if (!seqs.has(i)) lost.push(i);
  return { transmitted, received, lost, maxRttMs };
}

/** A copy of the source tree in another directory, run from there through tsx: a "new build". */
function makeBuild(dir: string, patch?: { file: string; append: string }): string {
  mkdirSync(dir, { recursive: true });
  for (const d of ['src', 'netns', 'runtime', 'topology', 'labs']) cpSync(join(ROOT, d), join(dir, d), { recursive: true });
  for (const f of ['package.json', 'tsconfig.json']) copyFileSync(join(ROOT, f), join(dir, f));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  if (patch) appendFileSync(join(dir, patch.file), patch.append);
  return dir;
}

/** The "new build"'s migration: compute 1 → 2 adds workloads.mac, filled from each stored attachment. */
const COMPUTE_V2 = `
// Appended by test/integration/agent-upgrade.test.ts: this build's compute module is at schema 2.
computeModule.migrations.push({
  to: 2,
  up(db) {
    db.exec('ALTER TABLE workloads ADD COLUMN mac TEXT');
    db.exec("UPDATE workloads SET mac = json_extract(attachment, '$.mac') WHERE attachment IS NOT NULL");
  },
});
`;

type Summary = { at: string; reason: string; ok: boolean; changes: number; durationMs: number; runtime?: { changes: number; workloads: number }; cost?: { mutating: number | null; reads: number | null } };

test('the agent is replaced, migrated and rolled back while tenants run: no lost packet, no reset, zero mutating commands', { timeout: 900_000 }, async (t) => {
  const dir = labDir(name);
  const paths = nodePaths(dir, NODE);
  const procs: Proc[] = [];
  const agents: ChildProcess[] = [];
  const figures: Record<string, unknown> = {};
  try {
    const writeSpec = join(root, 'upgrade.yaml');
    writeFileSync(writeSpec, stringify(spec));
    const t0 = Date.now();
    const up = await labUp(writeSpec, { name });
    assert.ok(up.green, 'the lab starts green');
    t.diagnostic(`lab up: ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    const lab = openLab(name);
    const holderA = lab.state.holders[NODE];
    const holderB = lab.state.holders[PEER];
    const resources = lab.endpoints.filter((e) => e.kind === 'resource' && e.host === NODE);
    assert.equal(resources.length, 2, 'node-a has two tenant networks: two tunnels');
    const web = lab.endpoints.find((e) => e.kind === 'workload' && e.host === NODE)!;
    const webNet = lab.endpoints.find((e) => e.kind === 'resource' && e.host === PEER && e.networkId === web.networkId)!;
    const script = join(root, 'traffic.mjs');
    writeFileSync(script, TRAFFIC);

    // What must survive: node-a's daemons, container, namespaces, pool mount.
    const daemons = () =>
      readdirSync('/proc')
        .filter((d) => /^\d+$/.test(d))
        .map(Number)
        .filter((pid) => {
          try {
            return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'wireguard-go' && nsInode(pid, 'mnt') === holderA.mnt;
          } catch {
            return false;
          }
        })
        .sort((x, y) => x - y);
    const docker = dockerClient(dir, NODE);
    const container = async () => {
      const [c] = await docker.listContainers({ all: true });
      const i = await docker.getContainer(c.Id).inspect();
      return { id: i.Id, startedAt: i.State.StartedAt, pid: i.State.Pid, running: i.State.Running };
    };
    const namespaces = () => resources.map((r) => `n-${r.networkId}:${fileInode(`/proc/${holderA.pid}/root/run/netns/n-${r.networkId}`)}`).sort();
    const poolMounted = () => readFileSync(`/proc/${holderA.pid}/mountinfo`, 'utf8').includes(join(paths.stateDir, 'storage', 'pool'));
    const world = async () => ({ daemons: daemons(), container: await container(), namespaces: namespaces(), pool: poolMounted() });
    const before = await world();
    assert.equal(before.daemons.length, 2, `two wireguard-go daemons on node-a: ${before.daemons}`);
    assert.ok(before.container.running, 'the container runs');
    assert.ok(before.pool, 'the storage pool is mounted');
    t.diagnostic(`node-a before: ${JSON.stringify(before)}`);

    // Traffic from node-b through each of node-a's tunnels.
    for (const r of resources) {
      const recv = startProc(`recv ${r.net}`, inTenant(holderA.pid, r.networkId, [process.execPath, script, 'recv', String(TCP_PORT)]));
      procs.push(recv);
      await waitLine(recv, /"ready"/, 20000);
    }
    const pings: Proc[] = [];
    const senders: Proc[] = [];
    for (const r of resources) {
      const ping = startProc(`ping ${r.net}`, inTenant(holderB.pid, r.networkId, ['ping', '-n', '-i', '0.05', '-W', '2', r.address]));
      procs.push(ping);
      pings.push(ping);
      const send = startProc(`send ${r.net}`, inTenant(holderB.pid, r.networkId, [process.execPath, script, 'send', r.address, String(TCP_PORT)]));
      procs.push(send);
      senders.push(send);
      await waitLine(send, /"ready"/, 20000);
    }
    const httpPoll = startProc('http', inTenant(holderB.pid, webNet.networkId, [process.execPath, script, 'http', `http://${web.address}/`, 'zmesh-wl blue/office/web']));
    procs.push(httpPoll);
    await waitLine(httpPoll, /"ready"/, 20000);
    for (const p of pings) await waitLine(p, /icmp_seq=\d+ .*time=/, 10000);
    await sleep(3000);

    // Every reconcile of the agent that runs now, seen by polling its status (4 Hz).
    const seen = new Map<string, Summary & { build: string }>();
    let build = 'lab';
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const s = await call<{ lastReconcile: Summary | null }>(paths.socket, 'GET', '/v1/status', undefined, 2000).catch(() => null);
        if (s?.lastReconcile && !seen.has(`${build} ${s.lastReconcile.at}`)) seen.set(`${build} ${s.lastReconcile.at}`, { ...s.lastReconcile, build });
        await sleep(250);
      }
    })();

    /** SIGTERM to the running agent: it must exit by itself (no SIGKILL) within 15 s. */
    const stopRunning = async (): Promise<number> => {
      const state = readState(dir)!;
      const a = state.agents[NODE];
      assert.ok(a && alive(a), 'the agent runs');
      const logFrom = existsSync(paths.log) ? readFileSync(paths.log, 'utf8').length : 0;
      const s0 = performance.now();
      signal(a, 'SIGTERM');
      assert.ok(await waitGone(a, 15000), 'the agent exits on SIGTERM by itself');
      const ms = performance.now() - s0;
      assert.match(readFileSync(paths.log, 'utf8').slice(logFrom), /"msg":"agent stopped"/, 'a clean stop');
      delete state.agents[NODE];
      writeState(dir, state);
      return ms;
    };

    /** Starts a build's agent in node-a's namespaces (recorded in the lab state, so `lab down` ends it). */
    const startBuild = (argv: string[], cwd: string): ChildProcess => {
      const fd = openSync(paths.log, 'a', 0o600);
      try {
        const [file, ...args] = inHolder(holderA.pid, [...argv, 'agent', '--config', paths.config]);
        const child = spawn(file, args, {
          detached: true,
          stdio: ['ignore', fd, fd],
          cwd,
          env: { LC_ALL: 'C', PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
        });
        child.on('error', () => undefined);
        agents.push(child);
        const state = readState(dir)!;
        state.agents[NODE] = { pid: child.pid!, start: startTime(child.pid!) ?? 0 };
        writeState(dir, state);
        return child;
      } finally {
        closeSync(fd);
      }
    };

    const waitFirstReconcile = async (child: ChildProcess, ms = 60000): Promise<{ listenMs: number; reconcileMs: number; first: Summary; modules: Record<string, number> }> => {
      const s0 = performance.now();
      let listenMs = -1;
      const end = Date.now() + ms;
      while (Date.now() < end) {
        assert.equal(child.exitCode, null, `the new agent exited (${child.exitCode}): ${readFileSync(paths.log, 'utf8').split('\n').slice(-4).join(' | ')}`);
        const s = await call<{ lastReconcile: Summary | null; modules: Record<string, number> }>(paths.socket, 'GET', '/v1/status', undefined, 2000).catch(() => null);
        if (s && listenMs < 0) listenMs = performance.now() - s0;
        if (s?.lastReconcile) return { listenMs, reconcileMs: performance.now() - s0, first: s.lastReconcile, modules: s.modules };
        await sleep(50);
      }
      throw new Error(`no first reconcile within ${ms} ms`);
    };

    /** Waits (bounded: 60 s) until `n` reconciles of this build were seen (on a busy machine one takes 2–3 s). */
    const moreReconciles = async (label: string, n: number) => {
      const end = Date.now() + 60_000;
      while ([...seen.values()].filter((s) => s.build === label).length < n && Date.now() < end) await sleep(250);
    };

    /** One replacement: stop, start `argv`, first reconcile, a few more (interval 2 s), then check the world. */
    const replace = async (label: string, argv: string[], cwd: string, expectModules: Record<string, number>) => {
      const dockerSince = Math.floor(Date.now() / 1000);
      const stopMs = await stopRunning();
      const gapStart = performance.now();
      const child = startBuild(argv, cwd);
      build = label;
      const r = await waitFirstReconcile(child);
      const downtimeMs = stopMs + r.reconcileMs;
      // The loop's next reconciles must be no-ops too.
      await moreReconciles(label, 3);
      const after = await world();
      assert.deepEqual(after, before, `${label}: daemons, container, namespaces and pool are the same`);
      const events = await new Promise<string[]>((resolve, reject) => {
        docker.getEvents({ since: dockerSince, until: Math.floor(Date.now() / 1000) + 1, filters: JSON.stringify({ type: ['container'] }) }, (err, stream) => {
          if (err || !stream) return reject(err);
          let text = '';
          stream.on('data', (d: Buffer) => (text += d.toString()));
          stream.on('end', () => resolve(text.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { Action: string }).Action)));
          stream.on('error', reject);
        });
      });
      assert.deepEqual(events, [], `${label}: no Docker event for the container`);
      assert.deepEqual(r.modules, expectModules, `${label}: the store's module versions`);
      const mine = [...seen.values()].filter((s) => s.build === label);
      assert.ok(mine.length >= 3, `${label}: several reconciles seen (${mine.length})`);
      for (const s of [r.first, ...mine]) {
        assert.equal(s.ok, true, `${label}: reconcile ok: ${JSON.stringify(s)}`);
        assert.equal(s.changes, 0, `${label}: no change: ${JSON.stringify(s)}`);
        assert.equal(s.runtime?.changes, 0, `${label}: no runtime change`);
        assert.equal(s.cost?.mutating, 0, `${label}: zero mutating commands: ${JSON.stringify(s)}`);
      }
      const fig = {
        stopMs: Math.round(stopMs),
        startToListenMs: Math.round(r.listenMs),
        startToFirstReconcileMs: Math.round(r.reconcileMs),
        downtimeMs: Math.round(downtimeMs),
        firstReconcile: { reason: r.first.reason, durationMs: r.first.durationMs, changes: r.first.changes, mutating: r.first.cost?.mutating, reads: r.first.cost?.reads, runtimeChanges: r.first.runtime?.changes },
        reconcilesSeen: mine.length,
        mutatingInAll: mine.reduce((n, s) => n + (s.cost?.mutating ?? 0), 0),
      };
      figures[label] = fig;
      t.diagnostic(`${label}: ${JSON.stringify(fig)} (gap measured from ${Math.round(performance.now() - gapStart)} ms ago)`);
    };

    // The builds. "lab": the lab's own agent (this tree, dist or tsx). "same": the same code copied into
    // another directory. "v2": the copy with compute at schema 2. "previous": this tree again (compute 1).
    const tsx = (dirOf: string) => [process.execPath, '--import', import.meta.resolve('tsx'), join(dirOf, 'src/cli/main.ts')];
    const same = makeBuild(join(root, 'build-same'));
    const v2 = makeBuild(join(root, 'build-v2'), { file: 'src/agent/runtime-store.ts', append: COMPUTE_V2 });
    const prev = zmeshArgv();
    const store = join(paths.stateDir, 'state.db');
    const readStore = () => {
      const db = new Database(store, { readonly: true, fileMustExist: true });
      try {
        return {
          blueprints: db.prepare('SELECT tenant, name, version, generation FROM blueprints ORDER BY tenant').all(),
          workloads: db.prepare('SELECT * FROM workloads ORDER BY key').all() as Record<string, unknown>[],
          events: (db.prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n,
          tenants: db.prepare('SELECT * FROM tenants ORDER BY name').all(),
        };
      } finally {
        db.close();
      }
    };
    const stored0 = readStore();
    assert.equal(stored0.workloads.length, 1);

    await t.test('1. the same code from another directory adopts everything', async () => {
      await replace('same', tsx(same), same, { core: 1, network: 2, compute: 1, storage: 1 });
    });

    await t.test('2. a build with compute at schema 2 migrates the store with its data, after a backup', async () => {
      await replace('v2', tsx(v2), v2, { core: 1, network: 2, compute: 2, storage: 1 });
      const s = readStore();
      assert.deepEqual(s.blueprints, stored0.blueprints);
      assert.deepEqual(s.tenants, stored0.tenants);
      assert.ok(s.events >= stored0.events);
      const w = s.workloads[0];
      const att = JSON.parse(String(w.attachment)) as { mac: string; containerId: string };
      assert.equal(w.mac, att.mac, 'the new column is filled from the stored attachment');
      assert.match(String(w.mac), /^02:5a:/);
      assert.deepEqual([w.key, w.container_id, w.restarts, w.attachment], [stored0.workloads[0].key, stored0.workloads[0].container_id, stored0.workloads[0].restarts, stored0.workloads[0].attachment]);
      const backups = readdirSync(join(paths.stateDir, 'backups'));
      assert.equal(backups.length, 1, backups.join(','));
      assert.match(backups[0], /-before-compute-1-2\.db$/);
      assert.match(readFileSync(paths.log, 'utf8'), /state store migrated \(compute 1→2\)/);
      figures.migration = { backup: backups[0] };
    });

    await t.test('3. rollback: the previous build refuses the migrated store untouched; with the backup restored it adopts everything', async () => {
      const stopMs = await stopRunning();
      const refusedAt = performance.now();
      const logFrom = readFileSync(paths.log, 'utf8').length;
      const child = startBuild(prev.argv, prev.cwd);
      build = 'refused';
      const code = await new Promise<number | null>((resolve) => {
        if (child.exitCode !== null) resolve(child.exitCode);
        child.once('exit', (c) => resolve(c));
      });
      const said = readFileSync(paths.log, 'utf8').slice(logFrom);
      assert.notEqual(code, 0, 'the previous build exits');
      assert.match(said, /E_STORE_NEWER/);
      assert.match(said, /state store module compute has schema 2, newer than this agent knows \(1\)/);
      const st = readState(dir)!;
      delete st.agents[NODE];
      writeState(dir, st);
      assert.deepEqual(await world(), before, 'a refused start changes nothing');
      const still = readStore();
      assert.ok('mac' in still.workloads[0], 'the store is left as the newer build wrote it');
      // Restore: the agent is stopped (its store closed cleanly: no -wal/-shm); the backup becomes the store.
      const [bak] = readdirSync(join(paths.stateDir, 'backups'));
      for (const f of ['state.db-wal', 'state.db-shm']) rmSync(join(paths.stateDir, f), { force: true });
      copyFileSync(join(paths.stateDir, 'backups', bak), store);
      figures.refused = { exitCode: code, stopMs: Math.round(stopMs), refusedAfterMs: Math.round(performance.now() - refusedAt), message: /state store module[^"]*/.exec(said)?.[0] };
      // The agent is down now: start the previous build on the restored store (replace() expects one running).
      const child2 = startBuild(prev.argv, prev.cwd);
      build = 'rollback';
      const dockerSince = Math.floor(Date.now() / 1000);
      const r = await waitFirstReconcile(child2);
      await moreReconciles('rollback', 3);
      assert.deepEqual(await world(), before, 'rollback: the same daemons, container, namespaces, pool');
      assert.deepEqual(r.modules, { core: 1, network: 2, compute: 1, storage: 1 });
      const mine = [...seen.values()].filter((s) => s.build === 'rollback');
      assert.ok(mine.length >= 3, `rollback: several reconciles seen (${mine.length})`);
      for (const s of [r.first, ...mine]) {
        assert.deepEqual([s.ok, s.changes, s.runtime?.changes, s.cost?.mutating], [true, 0, 0, 0], `rollback reconcile: ${JSON.stringify(s)}`);
      }
      const events = await new Promise<number>((resolve) => {
        docker.getEvents({ since: dockerSince, until: Math.floor(Date.now() / 1000) + 1, filters: JSON.stringify({ type: ['container'] }) }, (err, stream) => {
          if (err || !stream) return resolve(-1);
          let n = 0;
          stream.on('data', (d: Buffer) => (n += d.toString().split('\n').filter(Boolean).length));
          stream.on('end', () => resolve(n));
          stream.on('error', () => resolve(-1));
        });
      });
      assert.equal(events, 0, 'rollback: no Docker event');
      const s = readStore();
      assert.ok(!('mac' in s.workloads[0]));
      assert.deepEqual(s.blueprints, stored0.blueprints);
      figures.rollback = {
        startToListenMs: Math.round(r.listenMs),
        startToFirstReconcileMs: Math.round(r.reconcileMs),
        firstReconcile: { durationMs: r.first.durationMs, changes: r.first.changes, mutating: r.first.cost?.mutating, reads: r.first.cost?.reads },
        reconcilesSeen: mine.length,
      };
      t.diagnostic(`rollback: ${JSON.stringify(figures.rollback)}; refused: ${JSON.stringify(figures.refused)}`);
    });

    // The traffic's verdict, over the whole sequence (three stops, four starts, one refused start).
    polling = false;
    await poller;
    await sleep(1000);
    for (const p of [httpPoll, ...senders]) await endProc(p, 'SIGTERM');
    for (const p of pings) await endProc(p, 'SIGINT');
    await sleep(500);
    for (const p of procs.filter((x) => x.what.startsWith('recv'))) await endProc(p, 'SIGTERM');
    const json = (p: Proc) => p.lines.map((l) => { try { return JSON.parse(l) as Record<string, unknown>; } catch { return null; } }).filter((x): x is Record<string, unknown> => x !== null && !('ready' in x)).pop();
    const traffic: Record<string, unknown> = {};
    for (const r of resources) {
      const ping = pingFigures(pings[resources.indexOf(r)].lines);
      const send = json(senders[resources.indexOf(r)])?.send as { bytes: number; errors: string[]; closedCleanly: boolean; blocked: number };
      const recv = json(procs.find((p) => p.what === `recv ${r.net}`)!)?.recv as { bytes: number; errors: string[]; ended: boolean; maxGapMs: number };
      traffic[r.net] = { ping, tcp: { sentBytes: send?.bytes, receivedBytes: recv?.bytes, senderErrors: send?.errors, receiverErrors: recv?.errors, cleanEnd: send?.closedCleanly && recv?.ended, maxGapMs: Math.round(recv?.maxGapMs ?? -1), blockedTicks: send?.blocked } };
    }
    const http = json(httpPoll)?.http as { requests: number; ok: number; failures: unknown[]; maxMs: number };
    traffic.http = { requests: http?.requests, ok: http?.ok, failures: http?.failures, maxMs: Math.round(http?.maxMs ?? -1) };
    figures.traffic = traffic;
    t.diagnostic(`upgrade figures ${JSON.stringify(figures)}`);
    for (const r of resources) {
      const f = traffic[r.net] as { ping: ReturnType<typeof pingFigures>; tcp: { sentBytes: number; receivedBytes: number; senderErrors: string[]; receiverErrors: string[]; cleanEnd: boolean } };
      // Started before the first stop and ended after the last reconcile (the sequence takes 25 s on an idle machine).
      assert.ok(f.ping.transmitted > 20 * 15, `${r.net}: the ping ran through the whole sequence (${f.ping.transmitted})`);
      assert.deepEqual(f.ping.lost, [], `${r.net}: no lost echo request`);
      assert.deepEqual([f.tcp.senderErrors, f.tcp.receiverErrors], [[], []], `${r.net}: no reset`);
      assert.ok(f.tcp.cleanEnd, `${r.net}: the stream ended cleanly`);
      assert.equal(f.tcp.receivedBytes, f.tcp.sentBytes, `${r.net}: every byte arrived`);
      assert.ok(f.tcp.sentBytes > 10 * 1024 * 1024, `${r.net}: the stream ran (${f.tcp.sentBytes} bytes)`);
    }
    assert.ok(http.requests > 10 * 15, `HTTP polled through the sequence (${http.requests})`);
    assert.deepEqual(http.failures, [], 'no failed HTTP request');
    assert.equal(http.ok, http.requests);
  } finally {
    for (const p of procs) await endProc(p, 'SIGKILL', 5000).catch(() => undefined);
    for (const a of agents) if (a.exitCode === null && a.signalCode === null) a.kill('SIGKILL');
    const left = await downAndCheck(name, dir).catch((e: unknown) => [`down: ${(e as Error).message}`]);
    if (left.length) t.diagnostic(`left after lab down: ${left.join('; ')}`);
    rmSync(root, { recursive: true, force: true });
    assert.deepEqual(left, [], 'lab down leaves nothing');
  }
});
