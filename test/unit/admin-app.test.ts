// The admin app through inject(): routes, schemas, error codes, read-only mode, metrics format.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { buildAdminApp } from '../../src/admin/app.ts';
import { blueprint, net } from '../helpers/fixtures.ts';
import { agentBed, part, planFor, signed } from '../helpers/agent-fixtures.ts';

const nodes = ['node-a', 'node-b', { id: 'node-h' }];
const bp = blueprint([net({ nodes: ['node-a', 'node-b', 'node-h'] })]);

async function withApp(fn: (app: ReturnType<typeof buildAdminApp>, bed: ReturnType<typeof agentBed>) => Promise<void>, readOnly = false) {
  const bed = agentBed();
  const app = buildAdminApp({ agent: bed.agent, readOnly, bodyLimit: 256 * 1024 });
  try {
    await fn(app, bed);
  } finally {
    await app.close();
    bed.close();
  }
}

test('POST /v1/blueprints applies; GET routes show it; nothing secret comes back', () =>
  withApp(async (app) => {
    const plan = planFor(bp, nodes);
    const p = part(plan, 'node-a');
    const res = await app.inject({ method: 'POST', url: '/v1/blueprints', payload: { signed: signed(bp), part: p } });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().networks[0].ok, true);
    const status = (await app.inject({ url: '/v1/status' })).json();
    assert.equal(status.node, 'node-a');
    assert.deepEqual(status.modules, { core: 1, network: 2 });
    assert.equal(status.networks.length, 1);
    assert.equal(status.lastReconcile.ok, true);
    const nets = (await app.inject({ url: '/v1/networks' })).json();
    assert.equal(nets.networks[0].subnet, '10.1.0.0/24');
    const detail = await app.inject({ url: `/v1/networks/${encodeURIComponent('acme/shop/net')}` });
    assert.equal(detail.statusCode, 200);
    assert.equal(detail.json().actual.wireguard.peers.length, 2);
    for (const r of [res, detail]) assert.ok(!/PrivateKey = /.test(r.body));
    const missing = await app.inject({ url: '/v1/networks/nope' });
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json().error.code, 'E_NOT_FOUND');
  }));

test('bad requests get codes: schema, size, replay, unknown route', () =>
  withApp(async (app) => {
    const r1 = await app.inject({ method: 'POST', url: '/v1/blueprints', payload: { signed: {} } });
    assert.deepEqual([r1.statusCode, r1.json().error.code], [400, 'E_REQUEST']);
    const r2 = await app.inject({ method: 'POST', url: '/v1/blueprints', payload: { signed: {}, part: {}, extra: 1 } });
    assert.equal(r2.statusCode, 400);
    const big = await app.inject({ method: 'POST', url: '/v1/blueprints', payload: { signed: { x: 'a'.repeat(300 * 1024) }, part: {} } });
    assert.deepEqual([big.statusCode, big.json().error.code], [413, 'E_TOO_LARGE']);
    const bad = await app.inject({ method: 'POST', url: '/v1/blueprints', headers: { 'content-type': 'application/json' }, payload: '{nope' });
    assert.equal(bad.statusCode, 400);
    const plan = planFor(bp, nodes);
    const ok = await app.inject({ method: 'POST', url: '/v1/blueprints', payload: { signed: signed(bp), part: part(plan, 'node-a') } });
    assert.equal(ok.statusCode, 200);
    const replay = await app.inject({ method: 'POST', url: '/v1/blueprints', payload: { signed: signed(bp), part: part(plan, 'node-a') } });
    assert.deepEqual([replay.statusCode, replay.json().error.code], [409, 'E_REPLAY']);
    assert.equal(replay.json().error.problems[0].path, 'version');
    const nf = await app.inject({ url: '/v2/x' });
    assert.deepEqual([nf.statusCode, nf.json().error.code], [404, 'E_NOT_FOUND']);
    const del = await app.inject({ method: 'DELETE', url: '/v1/blueprints/acme/shop' });
    assert.equal(del.statusCode, 200);
    const del2 = await app.inject({ method: 'DELETE', url: '/v1/blueprints/acme/shop' });
    assert.equal(del2.statusCode, 404);
  }));

test('read-only socket refuses writes', () =>
  withApp(async (app) => {
    const r = await app.inject({ method: 'POST', url: '/v1/blueprints', payload: { signed: {}, part: {} } });
    assert.deepEqual([r.statusCode, r.json().error.code], [403, 'E_READ_ONLY']);
    const d = await app.inject({ method: 'DELETE', url: '/v1/blueprints/a/b' });
    assert.equal(d.statusCode, 403);
    assert.equal((await app.inject({ url: '/v1/status' })).statusCode, 200);
  }, true));

test('diagnose: ordered checks, first failure names the missing handshake', () =>
  withApp(async (app) => {
    await app.inject({ method: 'POST', url: '/v1/blueprints', payload: { signed: signed(bp), part: part(planFor(bp, nodes), 'node-a') } });
    const all = (await app.inject({ url: '/v1/diagnose?network=net' })).json();
    assert.deepEqual(all.checks.slice(0, 6).map((c: { name: string }) => c.name), ['namespace', 'wireguard-interface', 'keys', 'mtu', 'route', 'firewall']);
    assert.equal(all.ok, false);
    // the fake reports a handshake for the first peer only
    assert.equal(all.firstFailure.name, 'peer node-h: handshake');
    const one = (await app.inject({ url: '/v1/diagnose?network=net&peer=node-b' })).json();
    assert.equal(one.ok, true, JSON.stringify(one.checks));
    assert.ok(one.checks.some((c: { name: string; detail: string }) => c.name === 'peer node-b: reachability' && /ping 10\.1\.1\.1/.test(c.detail)));
    const r = await app.inject({ url: '/v1/diagnose' });
    assert.equal(r.statusCode, 400);
  }));

test('metrics are valid Prometheus text (promtool check metrics)', () =>
  withApp(async (app) => {
    await app.inject({ method: 'POST', url: '/v1/blueprints', payload: { signed: signed(bp), part: part(planFor(bp, nodes), 'node-a') } });
    const r = await app.inject({ url: '/v1/metrics' });
    assert.match(r.headers['content-type'] as string, /^text\/plain; version=0\.0\.4/);
    assert.match(r.body, /^zmesh_networks 1$/m);
    assert.match(r.body, /^zmesh_peer_handshake_age_seconds\{network="acme\/shop\/net",peer="node-b"\} 1[0-9]$/m);
    assert.match(r.body, /^zmesh_peer_handshake_age_seconds\{network="acme\/shop\/net",peer="node-h"\} -1$/m);
    // The apply's reconcile: one network read, one change (FakeDriver counts like the driver).
    assert.match(r.body, /^zmesh_reconcile_commands\{kind="read"\} 1$/m);
    assert.match(r.body, /^zmesh_reconcile_commands\{kind="mutating"\} 1$/m);
    assert.match(r.body, /^zmesh_reconcile_cpu_seconds\{part="agent"\} \d/m);
    // promtool (Debian package prometheus) is installed by scripts/deps.sh; it exits non-zero on any problem.
    execFileSync('promtool', ['check', 'metrics'], { input: r.body });
  }));

test('events are listed in order and can be paged', () =>
  withApp(async (app, bed) => {
    await app.inject({ method: 'POST', url: '/v1/blueprints', payload: { signed: signed(bp), part: part(planFor(bp, nodes), 'node-a') } });
    const ev = (await app.inject({ url: '/v1/events' })).json().events;
    assert.deepEqual(ev.map((e: { kind: string }) => e.kind), ['blueprint.accepted', 'network.changed']);
    const after = (await app.inject({ url: `/v1/events?after=${ev[0].id}` })).json().events;
    assert.equal(after.length, 1);
    assert.equal(bed.state.events().length, 2);
  }));
