// Limits of the admin sockets on real unix sockets (docs/admin-api.md#limits): node's header, request,
// keep-alive and idle timeouts do apply to unix-socket servers; the gate admits maxConnections per socket and
// perUid per peer uid (SO_PEERCRED; peers are unprivileged uids made with setpriv, in the socket's group) and
// answers the rest 503 E_BUSY at once; huge headers and bodies are refused; accept(2) failing with EMFILE (a
// child listener whose RLIMIT_NOFILE the test lowers) is no crash, and the listener serves again after.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { buildAdminApp } from '../../src/admin/app.ts';
import { DEFAULT_READ, type SocketLimits } from '../../src/admin/limits.ts';
import { listenUnix } from '../../src/admin/listen.ts';
import { peerCredReader } from '../../src/admin/peercred.ts';
import { call } from '../../src/admin/client.ts';
import { agentBed } from '../helpers/agent-fixtures.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const GROUP = 65534;

function tmp(): string {
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-limits-'));
  chmodSync(dir, 0o755);
  return dir;
}

interface Probe {
  socket: Socket;
  data: string;
  closedAt: number | null;
  closed: Promise<void>;
}

/** A raw connection that sends `send` and records what comes back and when it closes. */
async function probe(path: string, send: string): Promise<Probe> {
  const socket = connect(path);
  const p: Probe = { socket, data: '', closedAt: null, closed: Promise.resolve() };
  p.closed = new Promise((res) => socket.once('close', () => ((p.closedAt = Date.now()), res())));
  socket.on('data', (d) => (p.data += d));
  socket.on('error', () => undefined);
  await new Promise<void>((res, rej) => {
    socket.once('connect', () => res());
    socket.once('error', rej);
  });
  if (send) socket.write(send);
  return p;
}

const status = (p: Probe) => p.data.split('\r\n')[0];

test('timeouts apply on unix sockets: silent, half header, drip, slow body, idle keep-alive, idle follow', { timeout: 30000 }, async () => {
  const dir = tmp();
  const bed = agentBed();
  const limits: SocketLimits = { ...DEFAULT_READ, headersTimeoutMs: 600, requestTimeoutMs: 1200, keepAliveTimeoutMs: 300, idleTimeoutMs: 1500, checkIntervalMs: 100, bodyLimit: 4096 };
  const app = buildAdminApp({ agent: bed.agent, limits });
  const path = join(dir, 'a.sock');
  try {
    await listenUnix(app, path, { limits: { maxConnections: 64, perUid: 64 } });
    const t0 = Date.now();
    const silent = await probe(path, '');
    const half = await probe(path, 'GET /v1/status HTTP/1.1\r\nHost: x\r\n');
    const drip = await probe(path, 'GET /v1/status HTTP/1.1\r\n');
    const dripper = setInterval(() => !drip.socket.destroyed && drip.socket.write('x-a: b\r\n'), 100);
    const body = await probe(path, 'POST /v1/reconcile HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{');
    const bodyDrip = setInterval(() => !body.socket.destroyed && body.socket.write(' '), 100);
    const keep = await probe(path, 'GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n');
    const follow = await probe(path, 'GET /v1/events?follow=true HTTP/1.1\r\nHost: x\r\n\r\n');
    await Promise.all([silent.closed, half.closed, drip.closed, body.closed, keep.closed, follow.closed]);
    clearInterval(dripper);
    clearInterval(bodyDrip);
    const after = (p: Probe) => p.closedAt! - t0;
    const seen = Object.entries({ silent, half, drip, body, keep, follow }).map(([k, p]) => `${k}: ${status(p) || '(nothing)'} after ${after(p)} ms`);
    process.stdout.write(`# ${seen.join('; ')}\n`);
    // A client still writing when the server closes may see ECONNRESET before it reads the 408: what matters
    // for them is when the connection was closed.
    for (const p of [silent, half]) assert.equal(status(p), 'HTTP/1.1 408 Request Timeout');
    for (const p of [drip, body]) assert.ok(['HTTP/1.1 408 Request Timeout', ''].includes(status(p)), status(p));
    for (const p of [silent, half, drip]) assert.ok(after(p) >= 550 && after(p) < 1500, `header timeout after ${after(p)} ms`);
    assert.ok(after(body) >= 1100 && after(body) < 2500, `request timeout after ${after(body)} ms`);
    assert.equal(status(keep), 'HTTP/1.1 200 OK');
    assert.ok(after(keep) < 2500, `idle keep-alive closed after ${after(keep)} ms`);
    // A follow stream with nothing to say (the ping is every 15 s) meets the idle timeout.
    assert.equal(status(follow), 'HTTP/1.1 200 OK');
    assert.ok(after(follow) >= 1400 && after(follow) < 3500, `idle follow closed after ${after(follow)} ms`);
  } finally {
    await app.close();
    bed.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('huge headers: 431; a body over the limit: 413 (a write on the read-only socket: 403 unread); none hurts the next request', async () => {
  const dir = tmp();
  const bed = agentBed();
  const app = buildAdminApp({ agent: bed.agent, readOnly: true });
  // A writable app with the read-only socket's limits (16 KiB bodies).
  const small = buildAdminApp({ agent: bed.agent, limits: DEFAULT_READ });
  const path = join(dir, 'r.sock');
  const smallPath = join(dir, 's.sock');
  try {
    await listenUnix(app, path, { limits: { maxConnections: 8, perUid: 8 } });
    await listenUnix(small, smallPath, { limits: { maxConnections: 8, perUid: 8 } });
    const big = await probe(path, `GET /v1/status HTTP/1.1\r\nHost: x\r\nx-big: ${'a'.repeat(20000)}\r\n\r\n`);
    await big.closed;
    assert.equal(status(big), 'HTTP/1.1 431 Request Header Fields Too Large');
    const body = JSON.stringify({ signed: {}, part: { x: 'a'.repeat(DEFAULT_READ.bodyLimit) } });
    const post = (p: string) => probe(p, `POST /v1/blueprints HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    const res = await post(smallPath);
    await res.closed;
    assert.equal(status(res), 'HTTP/1.1 413 Payload Too Large');
    assert.match(res.data, /E_TOO_LARGE/);
    const ro = await post(path);
    await ro.closed;
    assert.equal(status(ro), 'HTTP/1.1 403 Forbidden');
    assert.match(ro.data, /E_READ_ONLY/);
    for (const p of [path, smallPath]) assert.equal((await call<{ node: string }>(p, 'GET', '/v1/status')).node, 'node-a');
  } finally {
    await app.close();
    await small.close();
    bed.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * A child as uid `uid` in the socket's group that opens `n` connections sending half a header and prints, per
 * connection, "open" or the first line of what came back; it keeps the open ones until its stdin closes.
 */
function holder(uid: number, path: string, n: number) {
  const script = `
    const net = require('node:net'); const out = []; let done = 0;
    for (let i = 0; i < ${n}; i++) {
      const s = net.connect(${JSON.stringify(path)}); let d = '';
      s.on('error', (e) => { d = d || e.code; });
      s.on('data', (b) => { d += b; });
      s.on('connect', () => s.write('GET /v1/status HTTP/1.1\\r\\nHost: x\\r\\n'));
      s.on('close', () => { if (out[i] === undefined) out[i] = d.split('\\r\\n')[0] || 'closed'; });
      setTimeout(() => { if (out[i] === undefined) out[i] = 'open'; if (++done === ${n}) console.log(JSON.stringify(out)); }, 500);
    }
    process.stdin.resume(); process.stdin.on('end', () => process.exit(0));`;
  const child = execa('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, `--groups=${GROUP}`, process.execPath, '-e', script], { stdin: 'pipe', reject: false, timeout: 20000 });
  const result = new Promise<string[]>((res, rej) => {
    let buf = '';
    child.stdout!.on('data', (d) => {
      buf += d;
      if (buf.includes('\n')) res(JSON.parse(buf.split('\n')[0]));
    });
    child.once('exit', () => rej(new Error(`holder ${uid} exited early`)));
  });
  return { child, result, release: async () => (child.stdin!.end(), await child) };
}

test('connections per socket and per peer uid (SO_PEERCRED): the rest get 503 E_BUSY, and are reclaimed', { timeout: 30000 }, async () => {
  const peerCred = await peerCredReader();
  assert.ok(peerCred, 'SO_PEERCRED can be read here (koffi)');
  const dir = tmp();
  const bed = agentBed();
  const ro = buildAdminApp({ agent: bed.agent, readOnly: true });
  const admin = buildAdminApp({ agent: bed.agent });
  const r = join(dir, 'read.sock');
  const a = join(dir, 'admin.sock');
  const holders: ReturnType<typeof holder>[] = [];
  try {
    const gate = (await listenUnix(ro, r, { group: String(GROUP), limits: { maxConnections: 5, perUid: 3 }, peerCred }))!;
    await listenUnix(admin, a, { limits: { maxConnections: 4, perUid: 4 } });
    assert.equal(gate.perUidEnforced, true);
    // uid 40001 asks for 5: 3 admitted, 2 refused by its share.
    const h1 = holder(40001, r, 5);
    holders.push(h1);
    const out1 = await h1.result;
    assert.deepEqual([...out1].sort(), ['HTTP/1.1 503 Service Unavailable', 'HTTP/1.1 503 Service Unavailable', 'open', 'open', 'open']);
    // Another member of the group still gets in (its own share), until the socket is full (5).
    const h2 = holder(40002, r, 3);
    holders.push(h2);
    const out2 = await h2.result;
    assert.deepEqual([...out2].sort(), ['HTTP/1.1 503 Service Unavailable', 'open', 'open']);
    const s = gate.snapshot();
    assert.equal(s.open, 5);
    assert.deepEqual(s.byUid, { '40001': 3, '40002': 2 });
    assert.equal(s.refusedUid, 2);
    assert.equal(s.refusedSocket, 1);
    // The refusal is a proper answer the CLI understands.
    await assert.rejects(call(r, 'GET', '/v1/status'), { code: 'E_BUSY' });
    // The root socket has a budget of its own.
    assert.equal((await call<{ node: string }>(a, 'GET', '/v1/status')).node, 'node-a');
    // Figures reach /v1/metrics when the app is given them.
    for (const h of holders.splice(0)) await h.release();
    const deadline = Date.now() + 5000;
    while (gate.snapshot().open > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
    assert.equal(gate.snapshot().open, 0, 'connections reclaimed once the holders left');
    assert.deepEqual(gate.snapshot().byUid, {});
    assert.equal((await call<{ node: string }>(r, 'GET', '/v1/status')).node, 'node-a');
  } finally {
    for (const h of holders) await h.release().catch(() => undefined);
    await ro.close();
    await admin.close();
    bed.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('accept(2) failing with EMFILE is no crash; the listener serves again after', { timeout: 30000 }, async () => {
  const dir = tmp();
  const path = join(dir, 'l.sock');
  const script = `
    import { HttpApp } from ${JSON.stringify(join(ROOT, 'src/admin/http.ts'))};
    import { DEFAULT_ADMIN } from ${JSON.stringify(join(ROOT, 'src/admin/limits.ts'))};
    import { listenUnix } from ${JSON.stringify(join(ROOT, 'src/admin/listen.ts'))};
    const app = new HttpApp({ ...DEFAULT_ADMIN, maxParamLength: 256, maxHeaderSize: 16384, forceCloseConnections: 'idle' });
    let gate;
    app.get('/s', async () => gate.snapshot());
    gate = await listenUnix(app, ${JSON.stringify(path)}, { limits: { maxConnections: 1000, perUid: 1000 } });
    console.log('ready');`;
  const child = execa(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, reject: false, timeout: 25000 });
  const held: Socket[] = [];
  try {
    await new Promise<void>((res, rej) => {
      child.stdout!.once('data', () => res());
      child.once('exit', () => rej(new Error('listener child exited before it was ready')));
    });
    await execa('prlimit', ['--pid', String(child.pid), '--nofile=64:64']);
    for (let i = 0; i < 150; i++) {
      const s = connect(path);
      s.on('error', () => undefined);
      held.push(s);
    }
    await new Promise((res) => setTimeout(res, 500));
    for (const s of held.splice(0)) s.destroy();
    await new Promise((res) => setTimeout(res, 300));
    // libuv drops what it cannot accept (its EMFILE trick) and node's 'error' event comes only when even
    // that fails; either way the listener lives, and serves once descriptors are free.
    const stats = await call<{ acceptErrors: number; accepted: number; open: number }>(path, 'GET', '/s');
    assert.ok(stats.accepted < 150, `some connections could not be accepted: ${JSON.stringify(stats)}`);
    assert.equal(child.exitCode, null, 'the listener is alive');
  } finally {
    for (const s of held) s.destroy();
    child.kill('SIGKILL');
    const r = await child;
    assert.doesNotMatch(r.stderr, /Unhandled 'error' event/);
    rmSync(dir, { recursive: true, force: true });
  }
});
