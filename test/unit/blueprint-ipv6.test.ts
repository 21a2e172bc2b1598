// The blueprint's IPv6 fields (issue #20, docs/blueprint-format.md#ipv6): network ipv6Range and ipv6: false,
// workload network.ip6. Normalization (canonical text, `ipv6: true` left out so envelopes signed before IPv6 still
// verify), every problem at once with its code and path, and the JSON Schema agreeing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ValidationError } from '../../src/errors.ts';
import { canonicalize, signBlueprint, signingBytes, validateBlueprint, verifySigned } from '../../src/blueprint/index.ts';
import { Key } from '../../src/crypto/keys.ts';
import { seededRandom } from '../../src/crypto/rng.ts';
import { schemaErrors } from '../../src/cli/schemas.ts';

type Raw = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function base(): Raw {
  return {
    tenant: 'acme',
    name: 'shop',
    version: 1,
    networks: [{ name: 'backend', ipRange: '10.20.0.0/16', nodes: ['node-a', 'node-b'] }],
    workloads: [{ name: 'web', node: 'node-a', image: 'nginx:1.27', network: { name: 'backend' } }],
  };
}

function codes(raw: unknown): string[][] {
  try {
    validateBlueprint(raw);
  } catch (e) {
    assert.ok(e instanceof ValidationError);
    return e.problems.map((p) => [p.code, p.path]);
  }
  return [];
}

test('ipv6Range is normalized to its canonical text; ipv6: true is left out, ipv6: false kept; ip6 canonical', () => {
  const b = base();
  b.networks[0].ipv6Range = 'FD00:0001:0002:0300::/56';
  b.networks.push({ name: 'legacy', ipRange: '10.30.0.0/16', nodes: ['node-a'], ipv6: false }, { name: 'plain', ipRange: '10.40.0.0/16', nodes: ['node-a'], ipv6: true });
  b.workloads[0].network.ip6 = 'FD00:1:2:300:0:0:0:0A';
  const bp = validateBlueprint(b);
  assert.equal(bp.networks[0].ipv6Range, 'fd00:1:2:300::/56');
  assert.equal(bp.networks[1].ipv6, false);
  assert.ok(!('ipv6' in bp.networks[2]) && !('ipv6Range' in bp.networks[2]), 'ipv6: true is the default: absent');
  assert.ok(!('ipv6' in bp.networks[0]));
  assert.deepEqual(bp.workloads[0].network, { name: 'backend', ip6: 'fd00:1:2:300::a' });
  assert.deepEqual(validateBlueprint(bp), bp, 'normalized is a fixed point');
});

test('a blueprint without IPv6 fields signs to the same bytes as before; `ipv6: true` signs the same; the envelope verifies', () => {
  const plain = validateBlueprint(base());
  const withTrue = base();
  withTrue.networks[0].ipv6 = true;
  assert.deepEqual(signingBytes(validateBlueprint(withTrue)), signingBytes(plain));
  assert.ok(!canonicalize(plain).includes('ipv6'));
  const secret = Key.fromBytes(seededRandom('tenant')(32));
  const env = signBlueprint(plain, secret);
  assert.deepEqual(verifySigned(env), plain);
  const dual = base();
  dual.networks[0].ipv6Range = 'fd00:1:2::/48';
  const env2 = signBlueprint(validateBlueprint(dual), secret);
  assert.equal(verifySigned(env2).networks[0].ipv6Range, 'fd00:1:2::/48');
});

test('every IPv6 problem at once, each with its code and path', () => {
  const b = base();
  b.networks = [
    { name: 'n0', ipRange: '10.1.0.0/16', nodes: ['a'], ipv6Range: 'nonsense' },
    { name: 'n1', ipRange: '10.2.0.0/16', nodes: ['a'], ipv6Range: 'fd00::/64' },
    { name: 'n2', ipRange: '10.3.0.0/16', nodes: ['a'], ipv6Range: 'fd00::1/48' },
    { name: 'n3', ipRange: '10.4.0.0/16', nodes: ['a'], ipv6Range: '2001:db8::/48' },
    { name: 'n4', ipRange: '10.5.0.0/16', nodes: ['a'], ipv6: false, ipv6Range: 'fd00:4::/48' },
    { name: 'n5', ipRange: '10.6.0.0/16', nodes: ['a'], ipv6: 'no' },
    { name: 'n6', ipRange: '10.7.0.0/16', nodes: ['a'], ipv6Range: 'fd00:6::/48' },
    { name: 'n7', ipRange: '10.8.0.0/16', nodes: ['a'], ipv6Range: 'fd00:6::/56' },
    { name: 'n8', ipRange: '10.9.0.0/16', nodes: ['a'], ipv6: false },
  ];
  const w = (name: string, network: string, ip6: unknown) => ({ name, node: 'a', image: 'x', network: { name: network, ip6 } });
  b.workloads = [w('w0', 'n6', 'not-an-address'), w('w1', 'n8', 'fd00::5'), w('w2', 'n6', 'fd00:7::5'), w('w3', 'n6', 'fd00:6::5'), w('w4', 'n6', 'FD00:6::5'), w('w5', 'n6', 5)];
  assert.deepEqual(codes(b), [
    ['E_IPV6_RANGE', 'networks[0].ipv6Range'],
    ['E_IPV6_RANGE', 'networks[1].ipv6Range'],
    ['E_RANGE_HOST_BITS', 'networks[2].ipv6Range'],
    ['E_IPV6_RANGE', 'networks[3].ipv6Range'],
    ['E_IPV6_OFF', 'networks[4].ipv6Range'],
    ['E_TYPE', 'networks[5].ipv6'],
    ['E_RANGE_OVERLAP', 'networks[7].ipv6Range'],
    ['E_WORKLOAD_IP6', 'workloads[0].network.ip6'],
    ['E_TYPE', 'workloads[5].network.ip6'],
    ['E_IPV6_OFF', 'workloads[1].network.ip6'],
    ['E_WORKLOAD_IP6', 'workloads[2].network.ip6'],
    ['E_WORKLOAD_IP_TAKEN', 'workloads[4].network.ip6'],
  ]);
});

test('the JSON Schema takes the IPv6 fields and refuses what it can see is wrong', () => {
  const b = base();
  b.networks[0].ipv6Range = 'fd12:3456:789a::/48';
  b.networks.push({ name: 'legacy', ipRange: '10.30.0.0/16', nodes: ['node-a'], ipv6: false });
  b.workloads[0].network.ip6 = 'fd12:3456:789a::7';
  assert.deepEqual(schemaErrors('blueprint', b), []);
  for (const bad of ['10.0.0.0/8', 'fd00::/64', '2001:db8::/48']) {
    const x = base();
    x.networks[0].ipv6Range = bad;
    assert.notDeepEqual(schemaErrors('blueprint', x), [], bad);
  }
});
