// Link-local IPv6 is no way around a dual-stack policy (red team of issue #20, test/torture/ipv6-isolation.test.ts):
// a workload that connected from its fe80:: address, or to the bridge's fe80:: address, was "outside the network"
// or "not a guarded destination" and passed a default-deny policy. Both are policed now; no rule names them, so
// the default decides. The nft rules and evaluate() (their exact model) agree.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluate, type CompiledPolicy } from '../../src/plan/policy.ts';
import { policyNft } from '../../netns/layout.ts';

const P: CompiledPolicy = {
  range: '10.40.0.0/16',
  range6: 'fd00:40::/48',
  default: 'deny',
  local: ['10.40.1.1/32', '10.40.1.50/32', 'fd00:40:0:1::1/128', 'fd00:40:0:1::50/128'],
  rules: [{ index: 0, from: ['10.40.1.50/32', 'fd00:40:0:1::50/128'], to: ['10.40.1.1/32', 'fd00:40:0:1::1/128'], tcp: ['8024'], udp: [], icmp: false, any: false }],
};

test('policyNft dual-stack: link-local destinations are guarded and link-local sources policed', () => {
  const rules = policyNft(P).chains[0].rules.map((r) => `${r.tag}: ${r.rule}`);
  assert.ok(rules.includes('pol-not-guarded6: ip6 daddr != @pol_local6 ip6 daddr != fe80::/10 accept'), rules.join('\n'));
  assert.ok(rules.includes('pol-outside6: ip6 saddr != { fd00:40::/48, fe80::/10 } accept'), rules.join('\n'));
  // Neighbour discovery (link-local by nature) is still accepted before anything else of the policy.
  assert.ok(rules.indexOf('pol-nd: icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept') < rules.findIndex((r) => r.startsWith('pol-not-guarded6')));
});

test('evaluate: link-local sources and destinations fall to the default; the rules and other families unchanged', () => {
  const v = (src: string, dst: string, port: number) => evaluate(P, { src, dst, proto: 'tcp', port });
  assert.deepEqual(v('fe80::1', 'fd00:40:0:1::1', 8023), { allowed: false, rule: null, reason: 'no rule matches: the default (deny)' });
  assert.deepEqual(v('fd00:40:0:1::50', 'fe80::5a:aff:fe28:101', 8023), { allowed: false, rule: null, reason: 'no rule matches: the default (deny)' });
  assert.deepEqual(v('fe80::1', 'fe80::5a:aff:fe28:101', 8024), { allowed: false, rule: null, reason: 'no rule matches: the default (deny)' });
  assert.deepEqual(v('fd00:40:0:1::50', 'fd00:40:0:1::1', 8024), { allowed: true, rule: 0, reason: 'rule 0 allows it' });
  assert.deepEqual(v('fd00:40:0:1::50', 'fd00:40:0:1::1', 8023), { allowed: false, rule: null, reason: 'no rule matches: the default (deny)' });
  // Not link-local: fec0::/10 (deprecated site-local) and febf:: are outside fe80::/10's neighbours.
  assert.deepEqual(v('fd00:40:0:1::50', 'fec0::1', 8023), { allowed: true, rule: null, reason: 'fec0::1 is not a destination this node guards' });
  assert.deepEqual(v('2001:db8::1', 'fd00:40:0:1::1', 8023), { allowed: true, rule: null, reason: '2001:db8::1 is outside the network' });
  assert.deepEqual(evaluate({ ...P, default: 'allow' }, { src: 'fe80::1', dst: 'fd00:40:0:1::1', proto: 'tcp', port: 8023 }), { allowed: true, rule: null, reason: 'no rule matches: the default (allow)' });
  assert.deepEqual(v('10.40.1.50', '10.40.1.1', 8023), { allowed: false, rule: null, reason: 'no rule matches: the default (deny)' });
});

test('IPv4-only policy: IPv6 passes but for link-local destinations (the default decides); neighbour discovery passes', () => {
  const v4: CompiledPolicy = { range: '10.40.0.0/16', default: 'deny', local: ['10.40.1.1/32'], rules: [] };
  const rules = policyNft(v4).chains[1].rules.map((r) => `${r.tag}: ${r.rule}`);
  assert.deepEqual(rules.slice(0, 2), [
    'pol-other-family: ip6 daddr != fe80::/10 accept',
    'pol-nd: icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept',
  ]);
  assert.deepEqual(evaluate(v4, { src: 'fe80::2', dst: 'fe80::5a:aff:fe28:101', proto: 'tcp', port: 22 }), { allowed: false, rule: null, reason: 'no rule matches: the default (deny)' });
  assert.deepEqual(evaluate({ ...v4, default: 'allow' }, { src: 'fe80::2', dst: 'fe80::1', proto: 'tcp', port: 22 }), { allowed: true, rule: null, reason: 'no rule matches: the default (allow)' });
  assert.deepEqual(evaluate(v4, { src: 'fd00::2', dst: 'fd00::1', proto: 'tcp', port: 22 }), { allowed: true, rule: null, reason: 'the policy covers IPv4 only on this network' });
});
