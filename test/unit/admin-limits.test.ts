// The admin sockets' budgets and their pure parts: budgets from RLIMIT_NOFILE, /proc limits parsing, the
// connection gate (per socket, per uid, refusals bounded), the gate of command-running requests, the server
// options an app gets, the connection metrics (promtool), and the agent's last-resort guard.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { RequestGate, buildAdminApp, renderConnectionMetrics } from '../../src/admin/app.ts';
import { DEFAULT_ADMIN, DEFAULT_READ, MIN_RESERVED, adminBudget, parseNofile, socketFds } from '../../src/admin/limits.ts';
import { ConnectionGate, REFUSALS_ANSWERED } from '../../src/admin/listen.ts';
import { currentNofile } from '../../src/admin/serve.ts';
import { guardExhaustion, isExhaustion } from '../../src/agent/main.ts';
import { agentBed } from '../helpers/agent-fixtures.ts';

test('budgets by RLIMIT_NOFILE: defaults when they fit in a quarter, scaled alike below, a warning when too low', () => {
  const cases: { name: string; nofile: number; admin: number; read: number; perUid: number; heavy: [number, number]; warning: boolean }[] = [
    { name: 'systemd unit (LimitNOFILE=65536)', nofile: 65536, admin: 64, read: 64, perUid: 16, heavy: [4, 2], warning: false },
    { name: 'this machine (20000)', nofile: 20000, admin: 64, read: 64, perUid: 16, heavy: [4, 2], warning: false },
    { name: 'just fits (4096)', nofile: 4096, admin: 64, read: 64, perUid: 16, heavy: [4, 2], warning: false },
    { name: 'scaled (2048)', nofile: 2048, admin: 51, read: 51, perUid: 12, heavy: [3, 1], warning: false },
    { name: 'scaled (1024)', nofile: 1024, admin: 25, read: 25, perUid: 6, heavy: [1, 1], warning: false },
    { name: 'too low (512)', nofile: 512, admin: 8, read: 4, perUid: 2, heavy: [1, 1], warning: true },
  ];
  for (const c of cases) {
    const b = adminBudget(c.nofile);
    assert.deepEqual(
      [b.admin.maxConnections, b.read.maxConnections, b.read.perUid, [b.admin.heavyConcurrent, b.read.heavyConcurrent], b.warning !== null],
      [c.admin, c.read, c.perUid, c.heavy, c.warning],
      c.name,
    );
    // The root socket's peers are all root: its per-uid share is the whole socket.
    assert.equal(b.admin.perUid, b.admin.maxConnections, c.name);
    assert.equal(b.adminFds, socketFds(b.admin) + socketFds(b.read), c.name);
    assert.equal(b.reserved, c.nofile - b.adminFds, c.name);
    if (!c.warning) {
      assert.ok(b.adminFds <= c.nofile / 4, `${c.name}: admin sockets within a quarter`);
      assert.ok(b.reserved >= MIN_RESERVED, `${c.name}: reserve kept`);
    }
    // Timeouts are not scaled.
    assert.equal(b.read.headersTimeoutMs, DEFAULT_READ.headersTimeoutMs);
    assert.equal(b.admin.idleTimeoutMs, 0);
  }
  assert.equal(adminBudget(Infinity).admin.maxConnections, DEFAULT_ADMIN.maxConnections);
  assert.equal(adminBudget(NaN).nofile, 1024);
});

test('RLIMIT_NOFILE from /proc/<pid>/limits', () => {
  const text = [
    'Limit                     Soft Limit           Hard Limit           Units     ',
    'Max processes             63431                63431                processes ',
    'Max open files            1024                 524288               files     ',
    'Max locked memory         8388608              8388608              bytes     ',
  ].join('\n');
  assert.deepEqual(parseNofile(text), { soft: 1024, hard: 524288 });
  assert.deepEqual(parseNofile('Max open files            unlimited            unlimited            files'), { soft: Infinity, hard: Infinity });
  assert.equal(parseNofile('nothing here'), null);
  assert.equal(currentNofile(() => text), 1024);
  assert.equal(currentNofile(() => {
    throw new Error('no /proc');
  }), null);
  // This process: node raised the soft limit to the hard one at start.
  const own = currentNofile();
  assert.ok(own === null || own > 0);
});

/** A stand-in for an accepted socket: what the gate uses of it. */
class FakeSocket extends EventEmitter {
  written = '';
  destroyed = false;
  ended = false;
  constructor(readonly uid: number) {
    super();
  }
  write(b: Buffer | string) {
    this.written += b.toString();
    return true;
  }
  end(b?: Buffer | string) {
    if (b) this.written += b.toString();
    this.ended = true;
    return this;
  }
  resume() {
    return this;
  }
  destroy() {
    if (!this.destroyed) {
      this.destroyed = true;
      setImmediate(() => this.emit('close'));
    }
    return this;
  }
}

test('connection gate: per socket, per peer uid, answered refusals bounded, figures, one log line per 10 s', async () => {
  const logs: string[] = [];
  let now = 0;
  const gate = new ConnectionGate('read', { maxConnections: 5, perUid: 2 }, (s) => ({ pid: 1, uid: (s as unknown as FakeSocket).uid, gid: 0 }), { warn: (_o, m) => logs.push(m) }, () => now);
  const admit = (uid: number) => {
    const s = new FakeSocket(uid);
    return { s, ok: gate.admit(s as unknown as Socket) };
  };
  const a = [admit(1), admit(1), admit(1)];
  assert.deepEqual(a.map((x) => x.ok), [true, true, false]);
  assert.match(a[2].s.written, /^HTTP\/1.1 503 Service Unavailable\r\n[\s\S]*"code":"E_BUSY"/);
  assert.ok(a[2].s.ended, 'answered, then closed');
  const b = [admit(2), admit(2), admit(3), admit(3)];
  assert.deepEqual(b.map((x) => x.ok), [true, true, true, false], 'the socket is full at 5');
  let s = gate.snapshot();
  assert.deepEqual([s.open, s.accepted, s.refusedUid, s.refusedSocket, s.byUid], [5, 5, 1, 1, { '1': 2, '2': 2, '3': 1 }]);
  assert.equal(logs.length, 1, 'one log line, then quiet');
  // Closing reclaims.
  a[0].s.destroy();
  await new Promise((r) => setImmediate(r));
  assert.equal(admit(1).ok, true);
  // A storm: past REFUSALS_ANSWERED lingering refusals, refused connections are closed at once, unanswered.
  const storm = Array.from({ length: REFUSALS_ANSWERED + 10 }, () => admit(1));
  assert.equal(storm.filter((x) => x.s.written).length, REFUSALS_ANSWERED - 2, 'answered while few were lingering');
  assert.ok(storm.every((x) => !x.ok && (x.s.destroyed || x.s.ended)));
  now = 10_001;
  admit(1);
  assert.equal(logs.length, 2);
  assert.match(logs[1], /^admin socket read: refused 28 connection\(s\) \(28 socket full, 0 over the per-uid limit\), 0 accept error\(s\)$/);
  // Lingering refusals close by themselves.
  await new Promise((r) => setTimeout(r, 150));
  s = gate.snapshot();
  assert.equal(s.open, 5);
  // Without SO_PEERCRED: one budget for the socket.
  const plain = new ConnectionGate('plain', { maxConnections: 2, perUid: 1 }, null);
  assert.equal(plain.perUidEnforced, false);
  const p = [0, 0, 0].map(() => plain.admit(new FakeSocket(7) as unknown as Socket));
  assert.deepEqual(p, [true, true, false]);
});

test('request gate: at most max running and queue waiting, then E_BUSY; a waiter runs when a slot frees', async () => {
  const g = new RequestGate(1, 1);
  let release!: () => void;
  const first = g.run(null, () => new Promise<string>((r) => (release = () => r('first'))));
  const second = g.run(null, async () => 'second');
  await assert.rejects(g.run(null, async () => 'third'), (e: { code: string; kind: string }) => e.code === 'E_BUSY' && e.kind === 'retryable');
  release();
  assert.deepEqual(await Promise.all([first, second]), ['first', 'second']);
  assert.equal(await g.run(null, async () => 'again'), 'again');
});

test('an app gets its limits: server timeouts, body limit, and 503 E_BUSY with retry-after for command-running requests', async () => {
  const bed = agentBed();
  const apps = [buildAdminApp({ agent: bed.agent }), buildAdminApp({ agent: bed.agent, readOnly: true })];
  try {
    for (const [app, l] of [
      [apps[0], DEFAULT_ADMIN],
      [apps[1], DEFAULT_READ],
    ] as const) {
      const srv = app.server as typeof app.server & { connectionsCheckingInterval: number };
      assert.deepEqual(
        [srv.headersTimeout, srv.requestTimeout, srv.keepAliveTimeout, srv.timeout, srv.connectionsCheckingInterval, app.opts.bodyLimit],
        [l.headersTimeoutMs, l.requestTimeoutMs, l.keepAliveTimeoutMs, l.idleTimeoutMs, l.checkIntervalMs, l.bodyLimit],
      );
    }
    const app = buildAdminApp({ agent: bed.agent, readOnly: true, limits: { ...DEFAULT_READ, heavyConcurrent: 1, heavyQueue: 0 } });
    apps.push(app);
    let release!: () => void;
    bed.agent.network = () => new Promise((r) => (release = () => r(null as never)));
    const slow = app.inject({ url: '/v1/networks/x' });
    await new Promise((r) => setTimeout(r, 20));
    const busy = await app.inject({ url: '/v1/diagnose?network=x' });
    assert.equal(busy.statusCode, 503);
    assert.equal(busy.headers['retry-after'], '1');
    assert.equal(busy.json().error.code, 'E_BUSY');
    // Light reads are never gated.
    assert.equal((await app.inject({ url: '/v1/status' })).statusCode, 200);
    release();
    assert.equal((await slow).statusCode, 200);
  } finally {
    for (const a of apps) await a.close();
    bed.close();
  }
});

test('connection metrics are valid Prometheus text (promtool check metrics)', () => {
  const stats = { open: 3, peakOpen: 7, accepted: 40, refusedSocket: 1, refusedUid: 30, acceptErrors: 0, byUid: { '1000': 3 } };
  const text = renderConnectionMetrics([
    { socket: 'admin', stats: { ...stats, refusedUid: 0 }, maxConnections: 64, perUid: null },
    { socket: 'read', stats, maxConnections: 64, perUid: 16 },
  ]);
  assert.match(text, /^zmesh_admin_connections_refused_total\{socket="read",reason="uid"\} 30$/m);
  assert.match(text, /^zmesh_admin_connections_per_uid_max\{socket="read"\} 16$/m);
  assert.doesNotMatch(text, /per_uid_max\{socket="admin"\}/);
  assert.equal(renderConnectionMetrics([]), '');
  execFileSync('promtool', ['check', 'metrics'], { input: text });
});

test('the last-resort guard: exhaustion errors are logged and survived, anything else ends the process', () => {
  assert.ok(isExhaustion(Object.assign(new Error('spawn ip EMFILE'), { code: 'EMFILE', syscall: 'spawn ip' })));
  assert.ok(isExhaustion(Object.assign(new Error('accept ENFILE'), { code: 'ENFILE', syscall: 'accept' })));
  assert.ok(isExhaustion(Object.assign(new Error('spawn EAGAIN'), { code: 'EAGAIN', syscall: 'spawn ip' })));
  assert.ok(!isExhaustion(Object.assign(new Error('read EAGAIN'), { code: 'EAGAIN', syscall: 'read' })));
  assert.ok(!isExhaustion(new TypeError('x is undefined')));
  const lines: string[] = [];
  const exits: number[] = [];
  const before = new Set(process.listeners('uncaughtException'));
  const off = guardExhaustion({ error: (_o: object, m: string) => lines.push(`error ${m}`), fatal: (_o: object, m: string) => lines.push(`fatal ${m}`) } as never, (c) => exits.push(c));
  const mine = process.listeners('uncaughtException').find((l) => !before.has(l))!;
  try {
    mine(Object.assign(new Error('spawn ip EMFILE'), { code: 'EMFILE', syscall: 'spawn ip' }), 'uncaughtException');
    assert.deepEqual(exits, []);
    mine(new TypeError('a bug'), 'uncaughtException');
    assert.deepEqual(exits, [1]);
    assert.match(lines[0], /^error out of resources \(EMFILE\)/);
    assert.match(lines[1], /^fatal uncaught error; exiting/);
  } finally {
    off();
  }
  assert.ok(!process.listeners('uncaughtException').includes(mine), 'removed');
});
