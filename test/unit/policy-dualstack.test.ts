// The policy on a dual-stack network (issue #20): every name resolves to its addresses in both families, `any`
// to both ranges, an IPv6 `cidr:` to what lies inside the IPv6 range; the members carry the IPv6 maps only when
// the network has an IPv6 range; without one the compiled policy is exactly the IPv4 one of before.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compilePolicy, evaluate, mergeCidrs, type PolicyGroups } from '../../src/plan/policy.ts';
import { policyMembers, type PolicyMembers } from '../../src/plan/part.ts';
import { parseSelector } from '../../src/blueprint/policy.ts';
import type { NetworkPolicy } from '../../src/blueprint/types.ts';

const members: PolicyMembers = {
  nodes: { a: ['10.1.0.1/32', '10.1.0.254/32'], b: ['10.1.1.1/32', '10.1.1.254/32'] },
  workloads: { 'web-1': '10.1.0.2/32', db: '10.1.1.2/32' },
  devices: { laptop: '10.1.2.1/32' },
  nodes6: { a: ['fd00:1::1/128', 'fd00:1::fe/128'], b: ['fd00:1:0:1::1/128', 'fd00:1:0:1::fe/128'] },
  workloads6: { 'web-1': 'fd00:1::2/128', db: 'fd00:1:0:1::2/128' },
  devices6: { laptop: 'fd00:1:0:2::1/128' },
};
const groups: PolicyGroups = { workloads: { web: ['web-1'], db: ['db'] }, devices: { admins: ['laptop'] } };
const policy: NetworkPolicy = {
  default: 'deny',
  rules: [
    { from: ['group:web'], to: ['workload:db'], ports: ['tcp/5432'] },
    { from: ['group:admins'], to: ['any'], ports: ['any'] },
    { from: ['cidr:fd00:1::/64', 'cidr:fd99::/64'], to: ['node:b'], ports: ['icmp'] },
  ],
};
const localB = { node: ['10.1.1.1/32', '10.1.1.254/32', 'fd00:1:0:1::1/128', 'fd00:1:0:1::fe/128'], workloads: ['db'], devices: [] };

test('compilePolicy dual-stack: node b guards its addresses in both families', () => {
  const b = compilePolicy(policy, '10.1.0.0/16', members, groups, localB, 'fd00:1::/48');
  assert.deepEqual(b, {
    range: '10.1.0.0/16',
    range6: 'fd00:1::/48',
    default: 'deny',
    local: ['10.1.1.1/32', '10.1.1.2/32', '10.1.1.254/32', 'fd00:1:0:1::1/128', 'fd00:1:0:1::2/128', 'fd00:1:0:1::fe/128'],
    rules: [
      { index: 0, from: ['10.1.0.2/32', 'fd00:1::2/128'], to: ['10.1.1.2/32', 'fd00:1:0:1::2/128'], tcp: ['5432'], udp: [], icmp: false, any: false },
      { index: 1, from: ['10.1.2.1/32', 'fd00:1:0:2::1/128'], to: ['10.1.1.1/32', '10.1.1.2/32', '10.1.1.254/32', 'fd00:1:0:1::1/128', 'fd00:1:0:1::2/128', 'fd00:1:0:1::fe/128'], tcp: [], udp: [], icmp: false, any: true },
      // cidr:fd99::/64 lies outside the network's IPv6 range: nothing.
      // Its IPv4 destinations stay (no IPv4 source: netns/layout.ts renders no IPv4 rule for it).
      { index: 2, from: ['fd00:1::/64'], to: ['10.1.1.1/32', '10.1.1.254/32', 'fd00:1:0:1::1/128', 'fd00:1:0:1::fe/128'], tcp: [], udp: [], icmp: true, any: false },
    ],
  });
  assert.deepEqual(evaluate(b, { src: 'fd00:1::2', dst: 'fd00:1:0:1::2', proto: 'tcp', port: 5432 }), { allowed: true, rule: 0, reason: 'rule 0 allows it' });
  assert.equal(evaluate(b, { src: 'fd00:1::2', dst: 'fd00:1:0:1::2', proto: 'tcp', port: 22 }).allowed, false);
  assert.equal(evaluate(b, { src: 'fd00:1::9', dst: 'fd00:1:0:1::fe', proto: 'icmp' }).rule, 2);
  assert.equal(evaluate(b, { src: 'fd00:1:0:5::9', dst: 'fd00:1:0:1::fe', proto: 'icmp' }).allowed, false, 'outside cidr:fd00:1::/64');
  assert.equal(evaluate(b, { src: 'fd00:2::1', dst: 'fd00:1:0:1::2', proto: 'tcp', port: 1 }).reason, 'fd00:2::1 is outside the network');
  assert.equal(evaluate(b, { src: '10.1.0.2', dst: 'fd00:1:0:1::2', proto: 'tcp', port: 1 }).allowed, false, 'mixed families are no flow');
});

test('compilePolicy without range6: the IPv4 policy exactly, whatever IPv6 members there are', () => {
  const { nodes6: _n, workloads6: _w, devices6: _d, ...v4members } = members;
  const v4local = { ...localB, node: localB.node.slice(0, 2) };
  assert.deepEqual(compilePolicy(policy, '10.1.0.0/16', members, groups, localB), compilePolicy(policy, '10.1.0.0/16', v4members, groups, v4local));
  const v4 = compilePolicy(policy, '10.1.0.0/16', members, groups, localB);
  assert.equal(v4.range6, undefined);
  assert.ok(v4.local.every((x) => !x.includes(':')) && v4.rules.every((r) => [...r.from, ...r.to].every((x) => !x.includes(':'))));
  assert.deepEqual(evaluate(v4, { src: 'fd00:1::2', dst: 'fd00:1:0:1::2', proto: 'tcp', port: 1 }).allowed, true);
});

test('mergeCidrs: both families, IPv4 first, contained ones dropped', () => {
  assert.deepEqual(mergeCidrs(['fd00:1::5/128', '10.1.0.0/24', 'fd00:1::/64', '10.1.0.7/32', 'fd00:2::/64']), ['10.1.0.0/24', 'fd00:1::/64', 'fd00:2::/64']);
});

test('selectors: an IPv6 cidr inside fc00::/7 without host bits', () => {
  assert.deepEqual(parseSelector('cidr:fd00:1::/64'), { kind: 'cidr6', cidr: { base: 0xfd000001n << 96n, prefix: 64 }, text: 'fd00:1::/64' });
  for (const bad of ['cidr:fd00:1::1/64', 'cidr:2001:db8::/32', 'cidr:fd00::/129']) assert.equal((parseSelector(bad) as { error: string }).error, 'E_POLICY_CIDR', bad);
});

test('policyMembers: the IPv6 maps only on a dual-stack network', () => {
  const plan = { workloads: [{ name: 'db', node: 'b', network: 'n', ip: '10.1.1.2', ip6: 'fd00:1:0:1::2' }] };
  const res = [{ node: 'b', gateway: '10.1.1.1', wgAddress: '10.1.1.254/32', gateway6: 'fd00:1:0:1::1', wgAddress6: 'fd00:1:0:1::fe/128' }];
  const access = [{ name: 'laptop', address: '10.1.2.1', address6: 'fd00:1:0:2::1' }] as never;
  assert.deepEqual(policyMembers(plan, { name: 'n', access, ipv6Range: 'fd00:1::/48', resources: res }), {
    nodes: { b: ['10.1.1.1/32', '10.1.1.254/32'] },
    workloads: { db: '10.1.1.2/32' },
    devices: { laptop: '10.1.2.1/32' },
    nodes6: { b: ['fd00:1:0:1::1/128', 'fd00:1:0:1::fe/128'] },
    workloads6: { db: 'fd00:1:0:1::2/128' },
    devices6: { laptop: 'fd00:1:0:2::1/128' },
  });
  assert.deepEqual(policyMembers(plan, { name: 'n', access, resources: res }), { nodes: { b: ['10.1.1.1/32', '10.1.1.254/32'] }, workloads: { db: '10.1.1.2/32' }, devices: { laptop: '10.1.2.1/32' } });
});
