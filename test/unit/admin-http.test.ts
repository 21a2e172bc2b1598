// The admin API's HTTP layer (src/admin/http.ts on node:http, which replaced fastify): every request of
// test/helpers/admin-requests.ts gets the answer fastify 5 gave (test/fixtures/admin-answers.json): status, content
// type, and an error's whole body and length (a good answer by its keys; a HEAD with the GET's length and no body).
// Then what the table cannot show: ajv is loaded on the first request with a schema, not before; a route with a
// schema of another part (headers, params, response) is refused when it is declared.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buildAdminApp } from '../../src/admin/app.ts';
import { HttpApp, bodyToParse, parseJsonSecure, parseQuery } from '../../src/admin/http.ts';
import { DEFAULT_ADMIN } from '../../src/admin/limits.ts';
import { blueprint, net } from '../helpers/fixtures.ts';
import { agentBed, part, planFor, signed } from '../helpers/agent-fixtures.ts';
import { answersOf, REQUESTS, type RecordedAnswer } from '../helpers/admin-requests.ts';

const nodes = ['node-a', 'node-b', { id: 'node-h' }];
const bp = blueprint([net({ nodes: ['node-a', 'node-b', 'node-h'] })]);
const ajvLoaded = () => Object.keys(createRequire(import.meta.url).cache).some((k) => /node_modules\/ajv\//.test(k));
const recorded: RecordedAnswer[] = JSON.parse(readFileSync(new URL('../fixtures/admin-answers.json', import.meta.url), 'utf8'));

test('every request of the table gets the answer fastify gave', async () => {
  assert.equal(recorded.length, REQUESTS.length, 'one recorded answer per request');
  const bed = agentBed();
  const app = buildAdminApp({ agent: bed.agent, bodyLimit: 256 * 1024 });
  const ro = buildAdminApp({ agent: bed.agent, readOnly: true, bodyLimit: 64 * 1024 });
  try {
    await app.ready();
    assert.equal(ajvLoaded(), false, 'ajv is not loaded before a request with a schema');
    const ok = await app.inject({ method: 'POST', url: '/v1/blueprints', payload: { signed: signed(bp), part: part(planFor(bp, nodes), 'node-a') } });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal(ajvLoaded(), true, 'the first body with a schema loads ajv');
    const got = await answersOf(app, ro);
    for (let i = 0; i < REQUESTS.length; i++) {
      const [g, want] = [got[i], recorded[i]];
      assert.equal(g.name, want.name);
      const shape = (a: RecordedAnswer) => ({
        status: a.status,
        contentType: a.contentType,
        body: a.body,
        // A good answer's length changes with its values; an error's and a HEAD's presence do not.
        contentLength: a.status >= 400 ? String(a.contentLength) : a.contentLength !== null,
      });
      assert.deepEqual(shape(g), shape(want), `${REQUESTS[i].method ?? 'GET'} ${REQUESTS[i].url.slice(0, 80)} (${want.name})`);
    }
  } finally {
    await app.close();
    await ro.close();
    bed.close();
  }
});

test('a route declares query and body schemas only (others are refused when declared)', () => {
  const app = new HttpApp({ ...DEFAULT_ADMIN, maxParamLength: 256, maxHeaderSize: 16384, forceCloseConnections: 'idle' });
  assert.throws(() => app.get('/v1/x', { schema: { headers: { type: 'object' } } } as never, async () => ({})), /only querystring and body schemas are supported \(not headers\)/);
  assert.throws(() => app.get('/v1/x', { schema: { response: {} } } as never, async () => ({})), /not response/);
});

test('parseQuery: repeated names become arrays, no prototype, __proto__ is a plain name', () => {
  const q = parseQuery('a=1&b=2&a=3&__proto__=x&c&d=%ZZ&e=a+b');
  assert.equal(Object.getPrototypeOf(q), null);
  assert.deepEqual(Object.entries(q), [
    ['a', ['1', '3']],
    ['b', '2'],
    ['__proto__', 'x'],
    ['c', ''],
    ['d', '%ZZ'],
    ['e', 'a b'],
  ]);
  assert.equal(({} as Record<string, unknown>).x, undefined, 'no prototype was touched');
});

test('parseJsonSecure refuses __proto__ and constructor.prototype, also escaped; keeps the rest', () => {
  for (const bad of ['{"__proto__":{"x":1}}', '{"a":[{"__proto__":1}]}', '{"\\u005f_proto__":{}}', '{"constructor":{"prototype":{}}}', '{"a":{"constr\\u0075ctor":{"prototype":1}}}']) {
    assert.throws(() => parseJsonSecure(bad), /forbidden prototype property/, bad);
  }
  assert.deepEqual(parseJsonSecure('{"constructor":1,"proto":"__x","a":"\\u0041"}'), { constructor: 1, proto: '__x', a: 'A' });
  assert.throws(() => parseJsonSecure('{"a":'), SyntaxError);
});

test('parseQuery takes a name repeated 8,000 times in one pass (one array, every value)', () => {
  const q = parseQuery(Array.from({ length: 8000 }, (_, i) => `a=${i}`).join('&'));
  assert.equal((q.a as string[]).length, 8000);
  assert.equal((q.a as string[])[7999], '7999');
});

test('bodyToParse: which requests have their body parsed (fastify: by method, content type, length)', () => {
  const cases: [string, Record<string, string>, boolean][] = [
    ['POST', {}, false],
    ['POST', { 'content-length': '0' }, false],
    ['POST', { 'content-length': '2' }, true],
    ['POST', { 'content-type': 'application/json' }, true],
    ['PUT', { 'transfer-encoding': 'chunked' }, true],
    ['DELETE', { 'content-type': 'application/json' }, false],
    ['DELETE', { 'content-type': 'application/json', 'content-length': '0' }, true],
    ['DELETE', { 'content-length': '5' }, false],
    ['GET', { 'content-type': 'application/json', 'content-length': '5' }, false],
    ['HEAD', { 'transfer-encoding': 'chunked' }, false],
  ];
  for (const [method, headers, want] of cases) assert.equal(bodyToParse(method, headers), want, `${method} ${JSON.stringify(headers)}`);
});

test('read-only: a write route is refused before its body is read (malformed, or over the read limit)', async () => {
  const bed = agentBed();
  const ro = buildAdminApp({ agent: bed.agent, readOnly: true });
  try {
    for (const [method, url, payload] of [
      ['POST', '/v1/blueprints', '{"signed":'],
      ['PUT', '/v1/candidates', JSON.stringify({ networks: { x: 'a'.repeat(200 * 1024) } })],
      ['DELETE', '/v1/blueprints/acme/shop', '{'],
    ] as const) {
      const r = await ro.inject({ method, url, payload, headers: { 'content-type': 'application/json' } });
      assert.equal(r.statusCode, 403, `${method} ${url}`);
      assert.equal(r.json().error.code, 'E_READ_ONLY');
    }
    // A route's own larger limit does not lift a read-only app's.
    const app = new HttpApp({ ...DEFAULT_ADMIN, bodyLimit: 1024, readOnly: true, maxParamLength: 256, maxHeaderSize: 16384, forceCloseConnections: true });
    app.post('/x', { bodyLimit: 1024 * 1024 }, async (req) => ({ n: JSON.stringify(req.body).length }));
    const big = await app.inject({ method: 'POST', url: '/x', payload: { s: 'a'.repeat(2000) } });
    assert.equal(big.statusCode, 413);
    assert.equal(big.json().error.code, 'E_TOO_LARGE');
  } finally {
    await ro.close();
    bed.close();
  }
});

test('requests with a body beyond the gate get 503 E_BUSY; a stream failing before its first byte gets a coded 500', async () => {
  const app = new HttpApp({ ...DEFAULT_ADMIN, maxParamLength: 256, maxHeaderSize: 16384, forceCloseConnections: 'idle', bodyConcurrent: 1, bodyQueue: 0 });
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  app.post('/slow', async () => {
    await held;
    return { ok: true };
  });
  app.get('/broken', async (_req, reply) => {
    const s = new Readable({ read() {} });
    process.nextTick(() => s.destroy(new Error('the engine went away')));
    reply.type('text/plain; charset=utf-8').send(s);
  });
  const first = app.inject({ method: 'POST', url: '/slow', payload: { a: 1 } });
  await new Promise((r) => setTimeout(r, 20));
  const second = await app.inject({ method: 'POST', url: '/slow', payload: { a: 2 } });
  assert.equal(second.statusCode, 503);
  assert.equal(second.json().error.code, 'E_BUSY');
  assert.match(second.json().error.message, /too many requests with a body at once/);
  const bodiless = app.inject({ method: 'POST', url: '/slow' }); // no body: not gated
  release();
  assert.equal((await first).statusCode, 200);
  assert.equal((await bodiless).statusCode, 200);
  app.get('/bigint', async () => ({ n: 1n }));
  const big = await app.inject({ url: '/bigint' });
  assert.equal(big.statusCode, 500, 'an answer JSON cannot write is a coded 500, not a reset');
  assert.equal(big.json().error.code, 'E_INTERNAL');
  const broken = await app.inject({ url: '/broken' });
  assert.equal(broken.statusCode, 500);
  assert.deepEqual(broken.json().error, { code: 'E_INTERNAL', kind: 'internal', message: 'the engine went away', problems: [] });
});

test('close() ends a follow stream and resolves; a request on an open connection meanwhile gets 503 E_STOPPING', { timeout: 20000 }, async () => {
  const bed = agentBed();
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-http-'));
  const path = join(dir, 'a.sock');
  const app = buildAdminApp({ agent: bed.agent });
  try {
    await app.listen({ path });
    const open = (first: string) => {
      const st = { out: '', ended: false, s: connect(path) };
      st.s.on('data', (c) => (st.out += c));
      st.s.on('close', () => (st.ended = true));
      st.s.on('error', () => undefined);
      st.s.write(first);
      return st;
    };
    const follow = open('GET /v1/events?follow=true HTTP/1.1\r\nHost: x\r\n\r\n');
    const keep = open('GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n');
    const until = async (ok: () => boolean, what: string) => {
      for (const end = Date.now() + 5000; !ok(); await new Promise((r) => setTimeout(r, 10))) if (Date.now() > end) assert.fail(what);
    };
    await until(() => follow.out.includes('200 OK') && keep.out.includes('"identity"'), 'both answered');
    let closed = false;
    const stop = app.close().then(() => (closed = true));
    await until(() => follow.ended, 'the follow stream ended by close()');
    await stop;
    assert.equal(closed, true);
    assert.match(follow.out, /\r\n0\r\n\r\n$/, 'the stream was ended cleanly (last chunk)');
  } finally {
    await app.close();
    bed.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
