// The tenant firewall's packet and drop counters (issue #21): parsed from the tenant table's counting rules
// (netns/parse.ts firewallCounters), passed through to the agent's view, and shown by `zmesh diagnose`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { firewallCounters, type NftRule } from '../../netns/parse.ts';
import type { ActualResource } from '../../netns/types.ts';
import { toActualNetwork } from '../../src/agent/netns-adapter.ts';
import { firewallText } from '../../src/agent/diagnose.ts';

const rule = (chain: string, tag: string, verdict: 'accept' | 'drop' | null, counter?: [number, number]): NftRule => ({
  chain,
  handle: 1,
  comment: tag ? `zmesh:0123456789abcdef:${tag}` : null,
  ...(counter ? { counter: { packets: counter[0], bytes: counter[1] } } : {}),
  ...(verdict ? { verdict } : {}),
});

const RULES: NftRule[] = [
  rule('input', 'in-spoof', 'drop', [2, 168]),
  rule('input', 'in-established', 'accept'), // no counter: not counted
  rule('input', 'in-drop-outside', 'drop', [0, 0]),
  rule('forward', 'mss-clamp', null), // no verdict
  rule('forward', 'fwd-spoof', 'drop', [1, 60]),
  rule('forward', 'tunnel-egress', 'drop', [5, 420]),
  rule('output', 'out-spoof', 'drop', [0, 0]),
  rule('policy-in', 'r0-tcp', 'accept', [10, 600]),
  rule('policy-fwd', 'r0-tcp', 'accept', [4, 240]),
  rule('policy-in', 'default-drop', 'drop', [3, 180]),
  rule('policy-fwd', 'default-drop', 'drop', [1, 60]),
  { chain: 'input', handle: 9, comment: 'somebody else', counter: { packets: 99, bytes: 99 }, verdict: 'drop' },
];

test('firewallCounters: per tag (chains summed), in table order; dropped and accepted summed', () => {
  assert.deepEqual(firewallCounters(RULES), {
    rules: [
      { tag: 'in-spoof', verdict: 'drop', packets: 2, bytes: 168 },
      { tag: 'in-drop-outside', verdict: 'drop', packets: 0, bytes: 0 },
      { tag: 'fwd-spoof', verdict: 'drop', packets: 1, bytes: 60 },
      { tag: 'tunnel-egress', verdict: 'drop', packets: 5, bytes: 420 },
      { tag: 'out-spoof', verdict: 'drop', packets: 0, bytes: 0 },
      { tag: 'r0-tcp', verdict: 'accept', packets: 14, bytes: 840 },
      { tag: 'default-drop', verdict: 'drop', packets: 4, bytes: 240 },
    ],
    dropped: { packets: 12, bytes: 888 },
    accepted: { packets: 14, bytes: 840 },
  });
  assert.equal(firewallCounters([rule('input', 'in-spoof', 'drop'), rule('input', 'in-established', 'accept')]), null, 'a table written before its drops counted');
  assert.equal(firewallCounters([]), null);
});

test('the agent view carries the counters; diagnose shows tables, drops by rule and policy accepts', () => {
  const base = { networkId: 'abcdefghij', namespace: 'n-abcdefghij', exists: true, links: [], routes: [], wireguard: null, daemon: null, nft: [{ table: 'zmesh_abcdefghij', where: 'tenant', rules: 11, current: true }] };
  const counters = firewallCounters(RULES)!;
  const view = toActualNetwork({ ...base, firewall: counters } as unknown as ActualResource);
  assert.deepEqual(view.firewallCounters, counters);
  assert.deepEqual(view.firewall, { 'tenant:zmesh_abcdefghij:rules': 11 });
  assert.equal('firewallCounters' in toActualNetwork(base as unknown as ActualResource), false);
  assert.equal(
    firewallText(view),
    'tenant:zmesh_abcdefghij:rules=11; dropped 12 packets, 888 B (in-spoof 2, fwd-spoof 1, tunnel-egress 5, default-drop 4); accepted by policy rules 14 packets, 840 B',
  );
  const quiet = firewallCounters([rule('input', 'in-spoof', 'drop', [0, 0]), rule('output', 'out-spoof', 'drop', [1, 84])])!;
  assert.equal(firewallText({ firewall: { 'tenant:zmesh_abcdefghij:rules': 3 }, firewallCounters: quiet }), 'tenant:zmesh_abcdefghij:rules=3; dropped 1 packet, 84 B (out-spoof 1)');
  assert.equal(firewallText({ firewall: { 'tenant:zmesh_abcdefghij:rules': 3 } }), 'tenant:zmesh_abcdefghij:rules=3; packet counters not read');
  assert.equal(firewallText(null), 'no tables; no counters');
});
