// The admin app's lazy schema compilers (src/admin/app.ts): fastify's own compiler with fastify's options, loaded
// on the first request a schema applies to. They must validate exactly as fastify's compilers built at start do:
// every route with a schema, good and bad requests, the same status, code and message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { buildAdminApp } from '../../src/admin/app.ts';
import { blueprint, net } from '../helpers/fixtures.ts';
import { agentBed, part, planFor, signed } from '../helpers/agent-fixtures.ts';

const nodes = ['node-a', 'node-b', { id: 'node-h' }];
const bp = blueprint([net({ nodes: ['node-a', 'node-b', 'node-h'] })]);
const ajvLoaded = () => Object.keys(createRequire(import.meta.url).cache).some((k) => /node_modules\/ajv\//.test(k));

const requests: { method?: 'GET' | 'POST' | 'PUT'; url: string; payload?: unknown }[] = [
  { url: '/v1/diagnose' },
  { url: '/v1/diagnose?network=' },
  { url: '/v1/diagnose?network=net&peer=node-b' },
  { url: '/v1/diagnose?network=net&extra=1' },
  { url: `/v1/diagnose?network=${'x'.repeat(201)}` },
  { url: '/v1/policy/check?network=net&from=a' },
  { url: '/v1/policy/check?network=net&from=a&to=b&port=tcp/80' },
  { url: '/v1/policy' },
  { url: '/v1/policy?network=net' },
  { url: '/v1/events?after=x' },
  { url: '/v1/events?limit=-1' },
  { url: '/v1/events?after=0&limit=5' },
  { url: '/v1/workloads/w/logs?tail=abc' },
  { url: '/v1/workloads/w/logs?tail=100001' },
  { url: '/v1/paths?network=net&x=1' },
  { method: 'POST', url: '/v1/blueprints', payload: { signed: {} } },
  { method: 'POST', url: '/v1/blueprints', payload: { signed: {}, part: {}, extra: 1 } },
  { method: 'POST', url: '/v1/blueprints', payload: [] },
  { method: 'PUT', url: '/v1/candidates', payload: [1] },
  { method: 'PUT', url: '/v1/candidates', payload: { networks: {} } },
];

test('lazy compilers: nothing of ajv is loaded when the app is ready; every schema validates as fastify compiles it', async () => {
  const lazyBed = agentBed();
  const refBed = agentBed();
  const lazy = buildAdminApp({ agent: lazyBed.agent, bodyLimit: 256 * 1024 });
  let ref: ReturnType<typeof buildAdminApp> | null = null;
  try {
    await lazy.ready();
    // This process (node --test runs each file alone) has not built fastify's default compilers yet.
    assert.equal(ajvLoaded(), false, 'ajv is loaded before any request');
    ref = buildAdminApp({ agent: refBed.agent, bodyLimit: 256 * 1024, schemaCompilers: 'fastify' });
    await ref.ready();
    assert.equal(ajvLoaded(), true, "fastify's compilers load ajv when the app is ready (the check can see it)");
    const plan = planFor(bp, nodes);
    const reference = ref;
    for (const app of [lazy, reference]) {
      const ok = await app.inject({ method: 'POST', url: '/v1/blueprints', payload: { signed: signed(bp), part: part(plan, 'node-a') } });
      assert.equal(ok.statusCode, 200, ok.body);
    }
    let bad = 0;
    for (const r of requests) {
      const [a, b] = await Promise.all([lazy.inject({ method: r.method ?? 'GET', url: r.url, payload: r.payload as never }), reference.inject({ method: r.method ?? 'GET', url: r.url, payload: r.payload as never })]);
      const shape = (x: typeof a) => ({ status: x.statusCode, code: x.statusCode >= 400 ? x.json().error?.code : undefined, message: x.statusCode === 400 ? x.json().error?.message : undefined });
      assert.deepEqual(shape(a), shape(b), `${r.method ?? 'GET'} ${r.url}`);
      if (a.statusCode === 400) bad++;
    }
    assert.ok(bad >= 12, `the bad requests are refused (${bad} of ${requests.length})`);
  } finally {
    await lazy.close();
    await ref?.close();
    lazyBed.close();
    refBed.close();
  }
});

test('a route with a header schema is refused (a custom compiler would leave its names as written, not lower-cased)', async () => {
  const bed = agentBed();
  const app = buildAdminApp({ agent: bed.agent });
  try {
    assert.throws(() => app.get('/v1/x', { schema: { headers: { type: 'object', properties: { 'X-A': { type: 'string' } } } } }, async () => ({})), /header schemas are not supported/);
  } finally {
    await app.close();
    bed.close();
  }
});
