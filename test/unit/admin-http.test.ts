// The admin API's HTTP layer (src/admin/http.ts on node:http, which replaced fastify): every request of
// test/helpers/admin-requests.ts gets the answer fastify 5 gave (test/fixtures/admin-answers.json): status, content
// type, and an error's whole body and length (a good answer by its keys; a HEAD with the GET's length and no body).
// Then what the table cannot show: ajv is loaded on the first request with a schema, not before; a route with a
// schema of another part (headers, params, response) is refused when it is declared.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { buildAdminApp } from '../../src/admin/app.ts';
import { HttpApp, parseJsonSecure, parseQuery } from '../../src/admin/http.ts';
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
