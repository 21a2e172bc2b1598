// Hostile network policies (issue #16): oversized, deeply nested, unicode, overlapping. Each is rejected with a
// code and a path, or accepted and compiled within bounds (the nft it renders grows with the rules, never with
// their products).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseBlueprint, validateBlueprint } from '../../src/blueprint/index.ts';
import { ZmeshError } from '../../src/errors.ts';
import { compilePolicy } from '../../src/plan/policy.ts';
import { policyNft } from '../../netns/layout.ts';
import { renderNftTable } from '../../netns/build.ts';

const base = (policy: unknown, extra: Record<string, unknown> = {}) => ({
  tenant: 'acme',
  name: 'shop',
  version: 1,
  networks: [{ name: 'lan', ipRange: '10.1.0.0/16', nodes: ['a', 'b'], access: [{ name: 'laptop', groups: ['admins'] }], policy }],
  workloads: [{ name: 'web', node: 'a', image: 'busybox', network: { name: 'lan' }, groups: ['web'] }],
  ...extra,
});

function codes(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ZmeshError, String(e));
    for (const p of e.problems) assert.ok(p.code && p.hint && p.message, JSON.stringify(p));
    return [...new Set(e.problems.map((p) => p.code))].sort();
  }
  return [];
}

const results: { case: string; outcome: string }[] = [];
const record = (name: string, outcome: string) => results.push({ case: name, outcome });

test('hostile policies are rejected with codes, or compiled within bounds', () => {
  const rule = { from: ['group:web'], to: ['any'], ports: ['tcp/80'] };
  const cases: [string, unknown, string[]][] = [
    ['10,000 rules', { default: 'deny', rules: Array.from({ length: 10_000 }, () => rule) }, ['E_POLICY_TOO_MANY']],
    ['1,001 rules', { default: 'deny', rules: Array.from({ length: 1001 }, () => rule) }, ['E_POLICY_TOO_MANY']],
    ['1,001 selectors in a rule', { rules: [{ from: Array.from({ length: 1001 }, () => 'any'), to: ['any'], ports: ['any'] }] }, ['E_POLICY_TOO_MANY']],
    ['a unicode group', { rules: [{ from: ['group:wéb'], to: ['any'], ports: ['any'] }] }, ['E_POLICY_SELECTOR']],
    ['a lone surrogate', { rules: [{ from: ['group:\ud800'], to: ['any'], ports: ['any'] }] }, ['E_TYPE']],
    ['nested lists', { rules: [{ from: [['group:web']], to: ['any'], ports: ['any'] }] }, ['E_TYPE']],
    ['an object as a rule list', { rules: { 0: rule } }, ['E_TYPE']],
    ['__proto__ in a rule', JSON.parse('{"rules":[{"from":["any"],"to":["any"],"ports":["any"],"__proto__":{"x":1}}]}'), ['E_UNKNOWN_FIELD']],
    ['default "permit"', { default: 'permit', rules: [] }, ['E_POLICY_DEFAULT']],
    ['empty lists', { rules: [{ from: [], to: [], ports: [] }] }, ['E_REQUIRED']],
    ['a cidr outside the range', { rules: [{ from: ['cidr:0.0.0.0/0'], to: ['any'], ports: ['any'] }] }, ['E_POLICY_CIDR']],
    ['a cidr with host bits', { rules: [{ from: ['cidr:10.1.0.1/16'], to: ['any'], ports: ['any'] }] }, ['E_POLICY_CIDR']],
    ['port 0, 65536, reversed, sctp', { rules: [{ from: ['any'], to: ['any'], ports: ['tcp/0', 'udp/65536', 'tcp/9-1', 'sctp/1', 'tcp/1-2-3'] }] }, ['E_POLICY_PORT']],
    ['an unknown group, workload, device and node', { rules: [{ from: ['group:nobody', 'workload:ghost', 'device:phone'], to: ['node:z'], ports: ['any'] }] }, ['E_POLICY_REF']],
    ['a number as a selector', { rules: [{ from: [7], to: ['any'], ports: ['any'] }] }, ['E_TYPE']],
  ];
  for (const [name, policy, want] of cases) {
    const got = codes(() => validateBlueprint(base(policy)));
    assert.deepEqual(got, want, name);
    record(name, got.join(','));
  }
  // Groups: unicode, duplicates, too many.
  const bad = codes(() => validateBlueprint(base(undefined, { workloads: [{ name: 'web', node: 'a', image: 'busybox', network: { name: 'lan' }, groups: ['wéb', 'x', 'x', ...Array.from({ length: 70 }, (_, i) => `g${i}`)] }] })));
  assert.deepEqual(bad, ['E_GROUP_FORMAT']);
  record('bad groups', bad.join(','));
  // Deep nesting in the text: refused by the parser before validation.
  const deep = `tenant: acme\nname: shop\nversion: 1\nnetworks:\n  - name: lan\n    ipRange: 10.1.0.0/16\n    nodes: [a]\n    policy: ${'['.repeat(200)}${']'.repeat(200)}\n`;
  const d = codes(() => parseBlueprint(deep));
  assert.ok(d.includes('E_TOO_DEEP') || d.includes('E_YAML_SYNTAX'), d.join(','));
  record('200-deep nesting', d.join(','));
});

test('1,000 rules of 50 overlapping cidrs each (the most a 1 MiB text holds about) compile and render within bounds', () => {
  const rules = Array.from({ length: 1000 }, (_, i) => ({
    from: Array.from({ length: 50 }, (_, j) => `cidr:10.1.${(i + j) % 256}.0/${24 + (j % 8)}`.replace(/\.0\/(2[5-9]|3[01])$/, (m, p) => `.${(j * 16) % 256 & ~(2 ** (32 - Number(p)) - 1)}/${p}`)),
    to: ['any', 'group:web', 'node:a'],
    ports: ['tcp/1-100', 'tcp/50-200', 'udp/53', 'icmp'],
  }));
  const bp = validateBlueprint(base({ default: 'deny', rules }));
  const t0 = performance.now();
  const compiled = compilePolicy(bp.networks[0].policy!, '10.1.0.0/16', { nodes: { a: ['10.1.0.1/32', '10.1.0.254/32'], b: ['10.1.1.1/32', '10.1.1.254/32'] }, workloads: { web: '10.1.0.2/32' }, devices: { laptop: '10.1.2.1/32' } }, { workloads: { web: ['web'] }, devices: { admins: ['laptop'] } }, { node: ['10.1.0.1/32', '10.1.0.254/32'], workloads: ['web'], devices: ['laptop'] });
  const nft = policyNft(compiled);
  const text = renderNftTable({ family: 'inet', name: 't', comment: 'x', sets: nft.sets, chains: nft.chains }).text;
  const ms = performance.now() - t0;
  // One rule per protocol at most, two sets per rule, elements merged: bounded by the input, not its product.
  assert.equal(compiled.rules.length, 1000);
  assert.ok(nft.chains[0].rules.length <= 4 * 1000 + 5);
  assert.ok(nft.sets.length === 2 * 1000 + 1);
  for (const r of compiled.rules) assert.ok(r.from.length <= 50 && r.tcp.join() === '1-200');
  record('1,000 × 50 overlapping cidrs', `${nft.chains[0].rules.length} nft rules, ${nft.sets.length} sets, ${Math.round(text.length / 1024)} KiB, ${ms.toFixed(0)} ms`);
  mkdirSync(new URL('../../bench/results', import.meta.url), { recursive: true });
  writeFileSync(new URL('../../bench/results/torture-policy.json', import.meta.url), JSON.stringify({ at: new Date().toISOString(), cases: results.length, exposures: 0, detail: results }, null, 2) + '\n');
});
