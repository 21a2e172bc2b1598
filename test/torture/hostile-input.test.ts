// Hostile input: property-based generation of blueprints, blueprint texts, inventories, signed envelopes, node
// plan parts and admin-socket requests. Every case is either rejected with a code and a path (and a hint), or
// accepted and then confirmed valid by an independent checker; nothing crashes or hangs, and the agent's state
// is unchanged after every rejection. Scale with TORTURE_SCALE (CI: 1 → more than 10,000 cases).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import fc from 'fast-check';
import { Netmask } from 'netmask';
import { canonicalize, parseBlueprint, validateBlueprint, verifySigned } from '../../src/blueprint/index.ts';
import type { Blueprint } from '../../src/blueprint/types.ts';
import { ValidationError, ZmeshError, type Problem } from '../../src/errors.ts';
import { validateInventory } from '../../src/plan/inventory.ts';
import { openSealed } from '../../src/crypto/seal.ts';
import { x25519PublicKey } from '../../src/crypto/keys.ts';
import { buildAdminApp } from '../../src/admin/app.ts';
import { sealContext, type NodePlanPart } from '../../src/plan/index.ts';
import { blueprint, inventory, net, secretOf } from '../helpers/fixtures.ts';
import { agentBed, part, planFor, signed } from '../helpers/agent-fixtures.ts';
import { independentCheck } from './independent.ts';
import { cidr6Contains, parseCidr6 } from '../../topology/cidr6.ts';

const SCALE = Number(process.env.TORTURE_SCALE ?? 1);
const ROOT = new URL('../..', import.meta.url).pathname;
const counts: Record<string, { cases: number; accepted: number; rejected: number }> = {};
function tally(kind: string, accepted: boolean): void {
  const c = (counts[kind] ??= { cases: 0, accepted: 0, rejected: 0 });
  c.cases++;
  if (accepted) c.accepted++;
  else c.rejected++;
}

function assertProblems(e: unknown, what: string): Problem[] {
  assert.ok(e instanceof ZmeshError, `${what}: threw ${e instanceof Error ? e.stack : String(e)}`);
  assert.ok(e.problems.length > 0, `${what}: no problems`);
  for (const p of e.problems) {
    assert.match(p.code, /^E_[A-Z0-9_]+$/, `${what}: bad code ${p.code}`);
    assert.equal(typeof p.path, 'string');
    assert.ok(p.message.length > 0, `${what}: empty message`);
    assert.ok(p.hint.length > 0, `${what}: ${p.code} without a hint`);
  }
  return e.problems;
}

// ---- mutation engine ------------------------------------------------------------------------------------------

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const deep = (n: number): Json => (n === 0 ? 'x' : { a: deep(n - 1) });
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom<unknown>(
    -1, 0, 1, 2 ** 53, 2 ** 64, 1e308, -0, 0.5, 22, 29, 30, 8, 7, '', 'A', 'a'.repeat(64), 'ñode', 'node-ä', '-x', 'x-',
    '10.0.0.0/0', '10.0.0.1/32', '0.0.0.0/8', '255.255.255.255/32', '10.1.0.0/16', '10.1.0.0/8', '10.1.0.0/22',
    '10.2.0.0/16', '2001:db8::/32', '::1', '10.01.0.0/16', '10.1.0.0/016', ' 10.0.0.0/16', '10.0.0.0/16\n', '10.1.0.5',
    '10.1.255.255', '192.168.1.1', null, true, false, [], {}, '__proto__', 'constructor', '1Gi', '0', '-1Mi', '1e3',
    '1.5Gi', '4Mi', 'Infinity', 'node-a', 'node-b', 'ghost', 'x'.repeat(5000), deep(80), deep(8), '/data', '/../etc',
    'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', '\u0000', '\ud800',
  ) },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.string({ maxLength: 20 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 10 }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
);

interface Op {
  at: number;
  kind: 'set' | 'delete' | 'unknown' | 'dup' | 'grow';
  value: unknown;
}
const opsArb = fc.array(
  fc.record({ at: fc.nat(), kind: fc.constantFrom<Op['kind']>('set', 'set', 'set', 'delete', 'unknown', 'dup', 'grow'), value: hostileValue }),
  { minLength: 1, maxLength: 4 },
);

/** Every [container, key] in an object tree (the root excluded). */
function slots(root: unknown): [Record<string, unknown> | unknown[], string | number][] {
  const out: [Record<string, unknown> | unknown[], string | number][] = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) {
      v.forEach((x, i) => {
        out.push([v, i]);
        walk(x);
      });
    } else if (v && typeof v === 'object') {
      for (const k of Object.keys(v)) {
        out.push([v as Record<string, unknown>, k]);
        walk((v as Record<string, unknown>)[k]);
      }
    }
  };
  walk(root);
  return out;
}

function mutate<T>(base: T, ops: Op[]): unknown {
  const obj = structuredClone(base) as unknown;
  for (const op of ops) {
    const all = slots(obj);
    if (!all.length) break;
    const [c, k] = all[op.at % all.length];
    if (op.kind === 'set') (c as Record<string, unknown>)[k as string] = structuredClone(op.value);
    else if (op.kind === 'delete') {
      if (Array.isArray(c)) c.splice(k as number, 1);
      else delete c[k as string];
    } else if (op.kind === 'unknown') {
      const target = (c as Record<string, unknown>)[k as string];
      if (target && typeof target === 'object' && !Array.isArray(target)) (target as Record<string, unknown>)[`extra${op.at % 3}`] = op.value;
      else if (!Array.isArray(c)) c[`bogus${op.at % 5}`] = op.value;
    } else if (op.kind === 'dup') {
      if (Array.isArray(c)) c.push(structuredClone(c[k as number]));
    } else if (op.kind === 'grow') {
      const target = (c as Record<string, unknown>)[k as string];
      if (Array.isArray(target)) for (let i = 0; i < 15; i++) target.push(structuredClone(target[0] ?? op.value));
    }
  }
  return obj;
}

// ---- bases ----------------------------------------------------------------------------------------------------

const example = parseBlueprint(readFileSync(`${ROOT}examples/tenant-blueprint.yaml`, 'utf8'));
const rich: Blueprint = blueprint(
  [
    net({ name: 'front', ipRange: '10.1.0.0/16', nodes: ['node-a', 'node-b', 'node-h'], access: [{ name: 'laptop' }], egress: true }),
    net({ name: 'back', ipRange: '10.2.0.0/22', subnetPrefix: 26, nodes: ['node-a', 'node-b'] }),
  ],
  {
    workloads: [
      { name: 'web', node: 'node-a', image: 'zmesh/base', command: ['httpd', '-f'], network: { name: 'front', ip: '10.1.0.10' }, cpu: 0.5, memory: 64 * 1024 * 1024, volumes: [{ name: 'data', mount: '/data' }] },
      { name: 'db', node: 'node-b', image: 'zmesh/base', command: [], network: { name: 'back' }, cpu: 1, memory: 128 * 1024 * 1024, volumes: [] },
    ],
    volumes: [{ name: 'data', node: 'node-a', size: 1024 * 1024 * 1024 }],
  },
);
const bases = [example, rich];

// ---- cases ----------------------------------------------------------------------------------------------------

test('blueprints: mutated objects are rejected with codes and paths, or accepted and independently valid', () => {
  fc.assert(
    fc.property(fc.nat({ max: bases.length - 1 }), opsArb, (bi, ops) => {
      const input = mutate(bases[bi], ops);
      let out: Blueprint;
      try {
        out = validateBlueprint(input);
      } catch (e) {
        assertProblems(e, 'validateBlueprint');
        tally('blueprint object', false);
        return;
      }
      tally('blueprint object', true);
      assert.equal(independentCheck(out), null, `accepted but invalid: ${independentCheck(out)} in ${JSON.stringify(input).slice(0, 400)}`);
      assert.deepEqual(validateBlueprint(out), out, 'normal form validates to itself');
    }),
    { numRuns: 4000 * SCALE },
  );
});

test('blueprint texts: hostile YAML and JSON never crash the parser', () => {
  const textArb = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.tuple(fc.nat({ max: 1 }), opsArb).map(([bi, ops]) => JSON.stringify(mutate(bases[bi], ops))),
    fc.tuple(fc.nat({ max: 60 }), fc.constantFrom('[', '{a: ', '- ', '? ')).map(([n, s]) => `tenant: acme\nx: ${s.repeat(n * 3)}`),
    fc.constantFrom(
      'tenant: a\ntenant: b\n',
      '{"tenant":"a","tenant":"b","name":"x","version":1}',
      'a: &a [1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n',
      '--- \n---\n',
      'tenant: !!binary aGVsbG8=\n',
      '<<: {tenant: a}\n',
      'version: .nan\n',
      'version: 0x10\n',
      '\ufefftenant: acme\n',
      'x'.repeat(1024 * 1024 + 1),
    ),
  );
  fc.assert(
    fc.property(textArb, (text) => {
      try {
        const bp = parseBlueprint(text);
        tally('blueprint text', true);
        assert.equal(independentCheck(bp), null);
      } catch (e) {
        assertProblems(e, 'parseBlueprint');
        tally('blueprint text', false);
      }
    }),
    { numRuns: 1500 * SCALE },
  );
});

test('inventories: rejected with codes and paths, or accepted and well-formed', () => {
  const base = inventory(['node-a', 'node-b', { id: 'node-h', reservedPorts: [51820] }, { id: 'node-v6', endpoints: ['2001:db8::1'] }]);
  fc.assert(
    fc.property(opsArb, (ops) => {
      const input = mutate(base, ops);
      try {
        const inv = validateInventory(input);
        tally('inventory', true);
        const ids = inv.nodes.map((n) => n.id);
        assert.equal(new Set(ids).size, ids.length);
        for (const n of inv.nodes) {
          assert.match(n.id, /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/);
          assert.match(n.publicKey, /^[A-Za-z0-9+/]{43}=$/);
          for (const p of n.reservedPorts) assert.ok(Number.isInteger(p) && p >= 1 && p <= 65535);
        }
      } catch (e) {
        assertProblems(e, 'validateInventory');
        tally('inventory', false);
      }
    }),
    { numRuns: 1500 * SCALE },
  );
});

test('signed envelopes: only the exact signed content verifies', () => {
  const env = signed(rich);
  const original = canonicalize(rich);
  fc.assert(
    fc.property(opsArb, (ops) => {
      const input = mutate(env, ops);
      try {
        const bp = verifySigned(input);
        tally('envelope', true);
        assert.equal(canonicalize(bp), original, 'a changed envelope verified');
      } catch (e) {
        assertProblems(e, 'verifySigned');
        tally('envelope', false);
      }
    }),
    { numRuns: 1000 * SCALE },
  );
});

/** Independent check of an accepted node part, with the netmask package and the node's identity. */
function partIsSound(p: NodePlanPart, bp: Blueprint): string | null {
  for (const n of p.networks) {
    const spec = bp.networks.find((s) => s.name === n.name);
    if (!spec) return 'unknown network';
    const range = new Netmask(spec.ipRange);
    const own = new Netmask(n.resource.subnet);
    if (!range.contains(own) || own.bitmask !== spec.subnetPrefix) return 'subnet outside range';
    const subs = n.subnets.map((s) => new Netmask(s));
    for (let i = 0; i < subs.length; i++) {
      if (!range.contains(subs[i])) return 'subnet list outside range';
      for (let j = i + 1; j < subs.length; j++) if (subs[i].contains(subs[j]) || subs[j].contains(subs[i])) return 'overlap';
    }
    const priv = openSealed(n.resource.sealedPrivateKey, secretOf(p.node), sealContext(n.id, p.node));
    if (x25519PublicKey(priv).toString() !== n.resource.publicKey) return 'key mismatch';
    const allowed = n.resource.peers.flatMap((x) => x.allowedIps);
    for (const a of allowed.filter((x) => !x.includes(':'))) if (!range.contains(new Netmask(a))) return 'allowed-ip outside range';
    // Dual-stack: IPv6 allowed-ips inside the network's IPv6 range.
    const range6 = n.ipv6Range !== undefined ? parseCidr6(n.ipv6Range) : null;
    for (const a of allowed.filter((x) => x.includes(':'))) {
      const c = parseCidr6(a);
      if (!range6 || !c || !cidr6Contains(range6, c)) return 'IPv6 allowed-ip outside the IPv6 range';
    }
  }
  return null;
}

test('node plan parts: tampered parts are refused and the agent state is unchanged', async () => {
  const nodes = ['node-a', 'node-b', { id: 'node-h' }];
  const bp1 = blueprint([net({ nodes: ['node-a', 'node-b', 'node-h'] })]);
  const bp2 = { ...bp1, version: 2 };
  const plan1 = planFor(bp1, nodes);
  const good = part(planFor(bp2, nodes, plan1), 'node-a');
  const env2 = signed(bp2);
  let bed = agentBed();
  await bed.agent.submit(signed(bp1), part(plan1, 'node-a'));
  try {
    await fc.assert(
      fc.asyncProperty(opsArb, async (ops) => {
        const input = mutate(good, ops);
        const before = JSON.stringify(bed.state.blueprints());
        const calls = bed.driver.calls.length;
        try {
          await bed.agent.submit(env2, input);
        } catch (e) {
          assertProblems(e, 'submit');
          assert.ok(e instanceof ValidationError);
          tally('node part', false);
          assert.equal(JSON.stringify(bed.state.blueprints()), before, 'state changed after a rejection');
          assert.equal(bed.driver.calls.length, calls, 'data plane touched after a rejection');
          return;
        }
        tally('node part', true);
        assert.equal(partIsSound(input as NodePlanPart, bp2), null, `accepted an unsound part: ${JSON.stringify(input).slice(0, 300)}`);
        // Start over from version 1 for the next case.
        bed.close();
        bed = agentBed();
        await bed.agent.submit(signed(bp1), part(plan1, 'node-a'));
      }),
      { numRuns: 1000 * SCALE },
    );
  } finally {
    bed.close();
  }
});

test('admin requests: never a 5xx, always a coded error, state unchanged after refusals', async () => {
  const bed = agentBed();
  const app = buildAdminApp({ agent: bed.agent, bodyLimit: 64 * 1024 });
  const bp = blueprint([net({ nodes: ['node-a', 'node-b'] })]);
  await bed.agent.submit(signed(bp), part(planFor(bp, ['node-a', 'node-b']), 'node-a'));
  const reqArb = fc.record({
    method: fc.constantFrom('GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'OPTIONS'),
    path: fc.oneof(
      fc.constantFrom('/v1/status', '/v1/networks', '/v1/networks/net', '/v1/networks/%2e%2e', '/v1/blueprints', '/v1/blueprints/acme/shop', '/v1/blueprints/x/y', '/v1/diagnose', '/v1/events', '/v1/metrics', '/v1/reconcile', '/', '/v1/networks/' + 'a'.repeat(3000)),
      fc.string({ maxLength: 40 }).map((s) => '/v1/' + encodeURIComponent(s)),
    ),
    query: fc.oneof(fc.constant(''), fc.constantFrom('?network=net', '?network=', '?after=-1', '?limit=100000', '?follow=maybe', '?network=net&peer=zzz', '?x=1'), fc.string({ maxLength: 20 }).map((s) => '?' + s)),
    body: fc.oneof(fc.constant(undefined), fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)), fc.string({ maxLength: 100 }), fc.constant(JSON.stringify({ signed: {}, part: {} })), fc.constant('{"signed":' + '['.repeat(5000))),
    ctype: fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', undefined),
  });
  try {
    await fc.assert(
      fc.asyncProperty(reqArb, async (r) => {
        if (r.method === 'DELETE' && r.path === '/v1/blueprints/acme/shop') return; // the one valid destructive call
        if (r.method === 'POST' && r.path === '/v1/reconcile') return;
        const before = JSON.stringify(bed.state.blueprints());
        const res = await app.inject({ method: r.method as 'GET', url: r.path + r.query, payload: r.body, headers: r.ctype ? { 'content-type': r.ctype } : {} });
        assert.ok(res.statusCode < 500, `${r.method} ${r.path}${r.query} → ${res.statusCode} ${res.body.slice(0, 300)}`);
        if (res.statusCode >= 400) assert.match(res.json().error.code, /^E_[A-Z_]+$/);
        assert.equal(JSON.stringify(bed.state.blueprints()), before);
        tally('admin request', res.statusCode < 400);
      }),
      { numRuns: 1300 * SCALE },
    );
  } finally {
    await app.close();
    bed.close();
  }
});

after(() => {
  const total = Object.values(counts).reduce((a, c) => a + c.cases, 0);
  const lines = Object.entries(counts).map(([k, c]) => `  ${k.padEnd(18)} ${String(c.cases).padStart(7)} cases  ${String(c.accepted).padStart(6)} accepted  ${String(c.rejected).padStart(6)} rejected`);
  process.stdout.write(`hostile input: ${total} cases, 0 crashes\n${lines.join('\n')}\n`);
  mkdirSync(`${ROOT}bench/results`, { recursive: true });
  writeFileSync(`${ROOT}bench/results/torture-hostile.json`, JSON.stringify({ total, scale: SCALE, counts }, null, 2) + '\n');
});
