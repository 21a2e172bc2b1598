// The soak's pure parts (labs/soak.ts): the seeded schedule replays exactly, targets respect the sentinels and
// what a kind can hit, the blueprint change adds and removes a node and a workload, the wrong-pair tracker and the
// RSS drift.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { EXTRA_NODE, RssTracker, SOAK_KINDS, WrongTracker, defaultSentinels, drawStep, targetsOf, variantSpec, xorshift32, type SoakContext } from '../../labs/soak.ts';
import { parseLabSpec } from '../../labs/spec.ts';
import type { PairResult } from '../../labs/matrix.ts';
import { rng } from '../helpers/rng.ts';

const SPEC = fileURLToPath(new URL('../../labs/examples/soak.yaml', import.meta.url));

const ctx: SoakContext = {
  nodes: ['hid-1', 'hid-2', 'hid-3', 'pub-1', 'pub-2', 'pub-3'],
  devices: ['phone', 'tablet'],
  nats: ['home', 'office'],
  roamable: ['pub-3'],
  workloads: ['amber/mesh/all/web-1@pub-1', 'blue/web/front/web-h1@hid-1'],
  sentinels: ['pub-3', 'hid-3'],
  variant: false,
};

test('the PRNG is test/helpers/rng.ts', () => {
  const a = xorshift32(21);
  const b = rng(21);
  for (let i = 0; i < 100; i++) assert.equal(a(), b());
});

test('the same seed gives the same schedule; another seed another', () => {
  const draw = (seed: number) => {
    const r = xorshift32(seed);
    return Array.from({ length: 40 }, () => drawStep(r, ctx));
  };
  assert.deepEqual(draw(21), draw(21));
  assert.notDeepEqual(draw(21), draw(22));
  const steps = draw(21).concat(draw(7), draw(99));
  for (const s of steps) {
    assert.ok(targetsOf(s.kind, ctx).includes(s.target), `${s.kind} ${s.target}`);
    assert.ok(s.gapMs >= 10_000 && s.gapMs <= 20_000 && s.holdMs >= 3000 && s.holdMs <= 8000);
    if (s.kind === 'loss') assert.ok(s.value! >= 20 && s.value! <= 50);
    if (s.kind === 'delay') assert.ok(s.value! >= 50 && s.value! <= 200);
  }
  // Over 120 steps every kind comes up.
  assert.deepEqual(new Set(steps.map((s) => s.kind)), new Set(SOAK_KINDS));
});

test('targets: sentinels keep their agents; roam only NAT routers and public nodes nobody enters through', () => {
  for (const k of ['kill-agent', 'restart-agent', 'reboot', 'roam'] as const) {
    assert.ok(!targetsOf(k, ctx).some((t) => ctx.sentinels.includes(t)), k);
  }
  assert.deepEqual(targetsOf('roam', ctx), ['home', 'office']);
  assert.deepEqual(targetsOf('roam', { ...ctx, roamable: ['pub-3', 'pub-x'] }), ['home', 'office', 'pub-x']);
  assert.deepEqual(targetsOf('reboot', ctx), ['hid-1', 'hid-2', 'pub-1', 'pub-2', 'phone', 'tablet']);
  assert.deepEqual([targetsOf('blueprint', ctx), targetsOf('blueprint', { ...ctx, variant: true })], [['add'], ['remove']]);
  // A lab without workloads or NAT routers never draws docker-kill or nat-restart.
  const bare = { ...ctx, workloads: [], nats: [] };
  const r = xorshift32(5);
  const kinds = new Set(Array.from({ length: 200 }, () => drawStep(r, bare).kind));
  assert.ok(!kinds.has('docker-kill') && !kinds.has('nat-restart'));
});

test('the blueprint change of the soak spec: one node and one workload more, a valid spec', () => {
  const text = readFileSync(SPEC, 'utf8');
  const v = variantSpec(text);
  const parsed = parseLabSpec(v, { baseDir: '/', readFile: () => '' });
  const base = parseLabSpec(text, { baseDir: '/', readFile: () => '' });
  assert.deepEqual(parsed.nodes.map((n) => n.name), [...base.nodes.map((n) => n.name), EXTRA_NODE]);
  const doc = parse(v);
  assert.ok(doc.tenants[0].blueprints[0].networks[0].nodes.includes(EXTRA_NODE));
  const wl = doc.tenants[0].blueprints[0].workloads.at(-1);
  assert.equal(wl.name, 'web-1-x');
  assert.equal(wl.node, 'pub-1');
  assert.match(wl.command[2], /zmesh-wl amber\/mesh\/web-1-x /);
  assert.deepEqual(defaultSentinels(text), ['pub-3', 'hid-3']);
  assert.throws(() => variantSpec(v), /already has a node/);
});

const row = (from: string, to: string, ok: boolean, expect: PairResult['expect'] = 'reach'): PairResult => ({ from, to, ok, expect, rttMs: null, proto: 'icmp+tcp', port: 7777, reached: ok, ping: ok, seen: null });

test('wrong pairs: from the first round seen wrong to the first seen right; open ones counted at the end', () => {
  const w = new WrongTracker(60, 0);
  w.observe([row('a', 'b', false), row('a', 'c', false)], 1000, 3);
  w.observe([row('a', 'b', true)], 30_000, null); // a → c not probed: still wrong
  w.observe([row('a', 'c', false)], 50_000, null);
  w.observe([row('a', 'c', true), row('b', 'c', false)], 62_000, 4);
  assert.deepEqual(w.over, [{ pair: 'a → c', seconds: 61, since: 1, step: 3 }]);
  w.observe([row('c', 'd', false)], 70_000, 5);
  w.retain(new Set(['a', 'b', 'c']), 140_000); // d went away: closed then
  assert.equal(w.over.length, 2);
  const left = w.finish(200_000); // b → c still wrong at the end
  assert.deepEqual(left.map((x) => [x.pair, x.seconds, x.open ?? false]), [
    ['a → c', 61, false],
    ['c → d', 70, false],
    ['b → c', 138, true],
  ]);
  assert.equal(w.maxSeconds, 138);
  // A fault at 10 s, the first round after it at 40 s: known pairs count from the fault, new ones from the round.
  const f = new WrongTracker(20, 0);
  f.observe([row('a', 'b', true)], 5000, null);
  f.observe([row('a', 'b', false), row('a', 'x', false)], 40_000, 1, 10_000);
  assert.deepEqual(f.finish(45_000).map((x) => [x.pair, x.seconds]), [['a → b', 35]]);
});

test('RSS drift: per agent process that lived through the window, medians of three at each end', () => {
  const r = new RssTracker(10_000);
  for (let t = 0; t <= 600_000; t += 5000) {
    r.add('pub-3', 100, 1, t < 100_000 ? 50_000 + t / 10 : 100_000 + (t >= 590_000 ? 5000 : 0), t); // warm-up growth, then flat
    if (t >= 400_000) r.add('hid-1', 200, 2, 80_000, t); // restarted late: too short a life
  }
  r.add('pub-1', 300, 3, 90_000, 0);
  const d = r.drift(0, 120_000, 600_000);
  assert.deepEqual(d.map((x) => [x.node, x.firstKiB, x.lastKiB, x.driftPct]), [['pub-3', 100_000, 105_000, 5]]);
});
