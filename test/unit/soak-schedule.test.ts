// The soak's pure parts (labs/soak.ts): the seeded schedule replays exactly (the embedded schedules of seeds 21
// and 12345 pinned as they were before controller-kill existed), controller-kill only on the etcd variant, targets
// respect the sentinels and what a kind can hit, the blueprint change adds and removes a node and a workload, the
// control-plane override, the wrong-pair tracker and the RSS drift.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { CONTROLLER, EXTRA_NODE, RssTracker, SOAK_KINDS, WrongTracker, controlPlaneOf, defaultSentinels, describeStep, drawStep, targetsOf, variantSpec, withControlPlane, xorshift32, type SoakContext } from '../../labs/soak.ts';
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
  // Over 120 steps every kind comes up (but controller-kill: this lab is embedded).
  assert.deepEqual(new Set(steps.map((s) => s.kind)), new Set(SOAK_KINDS.filter((k) => k !== 'controller-kill')));
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

const row = (from: string, to: string, ok: boolean, expect: PairResult['expect'] = 'reach'): PairResult => ({ from, to, ok, expect, rttMs: null, proto: 'icmp+tcp', port: 7777, family: 4, reached: ok, ping: ok, seen: null });

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

/** The soak lab as the schedule sees it, with the blueprint change applied after each `blueprint` step. */
const soakLab: SoakContext = {
  nodes: ['hid-1', 'hid-2', 'hid-3', 'pub-1', 'pub-2', 'pub-3'],
  devices: ['phone', 'tablet'],
  nats: ['home', 'office'],
  roamable: [],
  workloads: ['amber/mesh/all/web-1@pub-1', 'amber/mesh/all/web-3@hid-3', 'blue/web/front/web-h1@hid-1'],
  sentinels: ['pub-3', 'hid-3'],
  variant: false,
};
const schedule = (seed: number, base: SoakContext, n = 30): string[] => {
  const r = xorshift32(seed);
  let variant = false;
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const c = variant ? { ...base, nodes: [...base.nodes, EXTRA_NODE].sort(), roamable: [EXTRA_NODE], workloads: [...base.workloads, 'amber/mesh/all/web-1-x@pub-1'].sort(), variant } : base;
    const s = drawStep(r, c);
    out.push(`${s.kind} ${s.target}${s.value !== undefined ? ` ${s.value}` : ''} ${s.holdMs} ${s.gapMs}`);
    if (s.kind === 'blueprint') variant = !variant;
  }
  return out;
};

// Computed with labs/soak.ts before controller-kill was added (kind target [value] holdMs gapMs): an embedded
// seed must replay the very same steps.
const PINNED: Record<number, string[]> = {
  21: ['cut hid-3 6875 19315', 'loss hid-1 42 4120 17505', 'roam office 4002 11043', 'kill-agent hid-1 3392 12329', 'roam office 4982 11966', 'restart-agent pub-1 4844 13864', 'loss hid-2 33 6068 19942', 'nat-restart home 4536 11406', 'blueprint add 5116 14301', 'roam home 4761 10927', 'delay pub-x 146 3403 19082', 'delay pub-2 77 3386 19251', 'nat-restart office 4369 12680', 'reboot phone 5761 12619', 'docker-kill blue/web/front/web-h1@hid-1 5290 12776', 'roam pub-x 6613 15256', 'delay pub-2 125 4592 14356', 'reboot hid-2 7707 17140', 'cut tablet 7729 10032', 'loss pub-3 29 3213 17100', 'loss pub-3 23 5812 14137', 'delay pub-3 71 7601 11281', 'cut pub-2 6448 13306', 'loss hid-2 50 4410 10526', 'loss hid-3 43 4382 18423', 'reboot hid-2 7926 10031', 'roam home 3552 16413', 'nat-restart home 5758 10118', 'delay hid-3 160 3011 16172', 'kill-agent pub-1 3751 15134'],
  12345: ['roam home 5276 11673', 'roam office 5747 15095', 'loss hid-1 29 3174 16687', 'kill-agent hid-1 3605 18010', 'cut pub-3 4923 17035', 'nat-restart home 6645 11242', 'restart-agent pub-2 7171 15062', 'restart-agent hid-2 5997 10772', 'kill-agent hid-2 5726 19585', 'nat-restart home 6109 10761', 'cut pub-3 6379 11475', 'reboot pub-1 5976 10505', 'reboot phone 3153 11666', 'delay pub-1 122 3149 10246', 'reboot pub-2 4205 19145', 'loss pub-1 41 7851 19142', 'nat-restart home 5613 13574', 'docker-kill blue/web/front/web-h1@hid-1 3436 14172', 'roam home 3070 16861', 'loss pub-1 47 3814 11376', 'delay pub-3 113 5759 19464', 'blueprint add 4130 17192', 'docker-kill amber/mesh/all/web-3@hid-3 5345 12766', 'cut pub-3 7667 11749', 'delay pub-x 139 7561 15452', 'docker-kill amber/mesh/all/web-3@hid-3 6418 18092', 'restart-agent pub-2 4457 19867', 'loss hid-2 47 7381 19307', 'delay pub-2 138 4992 11380', 'delay pub-3 85 4189 11377'],
};

test('the embedded schedules of seeds 21 and 12345 are the ones from before controller-kill', () => {
  for (const seed of [21, 12345]) {
    assert.deepEqual(schedule(seed, soakLab), PINNED[seed], `seed ${seed}`);
    assert.deepEqual(schedule(seed, { ...soakLab, controlPlane: 'embedded' }), PINNED[seed], `seed ${seed}, controlPlane: embedded`);
  }
});

test('controller-kill: only on the etcd variant, the lab controller, held 3–8 s; five draws per step either way', () => {
  assert.deepEqual(targetsOf('controller-kill', soakLab), []);
  assert.deepEqual(targetsOf('controller-kill', { ...soakLab, controlPlane: 'embedded' }), []);
  assert.deepEqual(targetsOf('controller-kill', { ...soakLab, controlPlane: 'etcd' }), [CONTROLLER]);
  const embedded = new Set(Array.from({ length: 10 }, (_, i) => schedule(100 + i, soakLab, 40)).flat().map((l) => l.split(' ')[0]));
  assert.ok(!embedded.has('controller-kill'), 'never on embedded');
  const etcdSteps = Array.from({ length: 10 }, (_, i) => schedule(100 + i, { ...soakLab, controlPlane: 'etcd' }, 40)).flat();
  const kills = etcdSteps.filter((l) => l.startsWith('controller-kill '));
  assert.ok(kills.length > 0, 'drawn on etcd');
  for (const l of kills) {
    const [, target, hold] = l.split(' ');
    assert.equal(target, CONTROLLER);
    assert.ok(Number(hold) >= 3000 && Number(hold) <= 8000, l);
  }
  // The etcd schedule of seed 21 (the run in docs/soak.md): the ninth step kills the controller.
  assert.deepEqual(schedule(21, { ...soakLab, controlPlane: 'etcd' }, 10), [
    'cut hid-3 6875 19315',
    'loss hid-1 42 4120 17505',
    'docker-kill blue/web/front/web-h1@hid-1 4002 11043',
    'kill-agent hid-1 3392 12329',
    'docker-kill blue/web/front/web-h1@hid-1 4982 11966',
    'reboot phone 4844 13864',
    'loss hid-2 33 6068 19942',
    'nat-restart home 4536 11406',
    'controller-kill controller 5116 14301',
    'roam home 4761 10927',
  ]);
  // Five draws per step whatever the kind: after the same number of steps both variants are at the same point
  // of the stream (the sixth draw of the 31st step is the same number).
  const a = xorshift32(21);
  const b = xorshift32(21);
  for (let i = 0; i < 30; i++) {
    drawStep(a, soakLab);
    drawStep(b, { ...soakLab, controlPlane: 'etcd' });
  }
  assert.equal(a(), b());
  assert.equal(describeStep({ kind: 'controller-kill', target: CONTROLLER, holdMs: 5116, gapMs: 14301 }), 'controller-kill controller for 5.1 s');
});

test('the etcd variant is the same spec with controlPlane overridden', () => {
  const text = readFileSync(SPEC, 'utf8');
  assert.equal(controlPlaneOf(text), 'embedded');
  assert.equal(withControlPlane(text, 'embedded'), text, 'unchanged when it already asks for it');
  const etcd = withControlPlane(text, 'etcd');
  assert.equal(controlPlaneOf(etcd), 'etcd');
  const a = parseLabSpec(text, { baseDir: '/', readFile: () => '' });
  const b = parseLabSpec(etcd, { baseDir: '/', readFile: () => '' });
  assert.equal(a.controlPlane, 'embedded');
  assert.equal(b.controlPlane, 'etcd');
  assert.deepEqual({ ...b, controlPlane: 'embedded' }, a, 'nothing else differs');
  assert.equal(controlPlaneOf(variantSpec(etcd)), 'etcd', 'the blueprint change keeps the control plane');
  assert.equal(withControlPlane(etcd, 'embedded').includes('controlPlane: embedded'), true);
});
