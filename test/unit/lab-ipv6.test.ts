// Labs over IPv6 and dual-stack networks, the pure parts: the `underlay` option, the mirrored IPv6 layout, the
// NAT66 ruleset, endpoints in both families, the probe script's output for IPv6 targets and names, and the
// judging of name rows (skipped when no resolver runs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ValidationError } from '../../src/errors.ts';
import { loadLabSpec, parseLabSpec } from '../../labs/spec.ts';
import { hostEndpoints, layoutFor, mirror6, mirrorSubnet6, underlayFamilies, INTERNET6, INTERNET6_GW } from '../../labs/layout.ts';
import { natRuleset, natRuleset6, natRulesetFor, ipv6LinkBatch } from '../../labs/underlay.ts';
import { deviceTunnelConfig, inFamily, type Endpoint } from '../../labs/endpoints.ts';
import { judge, judgeName, matrixOk, parseProbe, probeTarget, SKIP_NO_RESOLVER, type PairResult } from '../../labs/matrix.ts';

const read = (p: string) => readFileSync(p, 'utf8');
const spec = (extra: string) => parseLabSpec(`name: l\n${extra}\nnats: [{name: home}]\nnodes: [{name: a}, {name: b}, {name: c, nat: home}]\n`, { baseDir: '/', readFile: read });

function codes(text: string): string[] {
  try {
    parseLabSpec(text, { baseDir: '/', readFile: read });
  } catch (e) {
    assert.ok(e instanceof ValidationError);
    return e.problems.map((p) => `${p.code} ${p.path}`);
  }
  return [];
}

test('underlay: ipv4 by default, ipv6 and dual accepted, anything else and ipv6 with etcd refused', () => {
  assert.equal(spec('').underlay, 'ipv4');
  assert.equal(spec('underlay: ipv6').underlay, 'ipv6');
  assert.equal(spec('underlay: dual').underlay, 'dual');
  assert.deepEqual(codes('name: l\nunderlay: v6\nnodes: [{name: a}]\n'), ['E_TYPE underlay']);
  assert.deepEqual(codes('name: l\nunderlay: ipv6\ncontrolPlane: etcd\nnodes: [{name: a}]\n'), ['E_LAB_UNDERLAY underlay']);
  assert.deepEqual(codes('name: l\nunderlay: dual\ncontrolPlane: etcd\nnodes: [{name: a}]\n'), []);
  const ex = loadLabSpec(fileURLToPath(new URL('../../labs/examples/ipv6.yaml', import.meta.url)), read);
  assert.equal(ex.underlay, 'ipv6');
});

test('mirror6: the IPv4 subnet in the third and fourth groups, the host offset at the end', () => {
  assert.equal(mirror6('203.0.113.5', 24), '2001:db8:cb00:7100::5');
  assert.equal(mirror6('203.0.113.1', 24), '2001:db8:cb00:7100::1');
  assert.equal(mirror6('198.51.100.34', 27), '2001:db8:c633:6420::2');
  assert.equal(mirror6('198.51.100.0', 27), '2001:db8:c633:6400::');
  assert.equal(mirror6('10.1.255.254', 8), '2001:db8:a00:0::1:fffe');
  assert.equal(mirrorSubnet6('198.51.100.32/27'), '2001:db8:c633:6420::/64');
  assert.equal(INTERNET6, '2001:db8:cb00:7100::/64');
  assert.equal(INTERNET6_GW, '2001:db8:cb00:7100::1');
  assert.throws(() => mirror6('fd00::1', 64), TypeError);
});

test('layouts: ipv4 has no IPv6 field at all; ipv6 and dual mirror every address; endpoints per family', () => {
  const v4 = layoutFor(spec(''));
  assert.equal(v4.underlay, undefined);
  assert.ok([...v4.nodes, ...v4.nats].every((x) => !Object.keys(x).some((k) => k.endsWith('6'))));
  assert.deepEqual(v4.nodes.map((n) => hostEndpoints(n, v4.underlay)), [['203.0.113.3'], ['203.0.113.4'], []]);

  const v6 = layoutFor(spec('underlay: ipv6'));
  assert.equal(v6.underlay, 'ipv6');
  assert.deepEqual(v6.nats.map((n) => [n.wanAddress6, n.lan6, n.lanGateway6]), [['2001:db8:cb00:7100::2', '2001:db8:c633:6400::/64', '2001:db8:c633:6400::1']]);
  assert.deepEqual(v6.nodes.map((n) => [n.name, n.address6, n.gateway6]), [
    ['a', '2001:db8:cb00:7100::3', '2001:db8:cb00:7100::1'],
    ['b', '2001:db8:cb00:7100::4', '2001:db8:cb00:7100::1'],
    ['c', '2001:db8:c633:6400::2', '2001:db8:c633:6400::1'],
  ]);
  assert.deepEqual(v6.nodes.map((n) => hostEndpoints(n, v6.underlay)), [['2001:db8:cb00:7100::3'], ['2001:db8:cb00:7100::4'], []]);
  // The IPv4 slots stay what they were (IPv6 mirrors them, so it is as stable across `lab up`).
  assert.deepEqual(v6.nodes.map((n) => n.address), v4.nodes.map((n) => n.address));
  assert.deepEqual(layoutFor(spec('underlay: ipv6'), v6), v6);

  const dual = layoutFor(spec('underlay: dual'));
  assert.deepEqual(dual.nodes.map((n) => hostEndpoints(n, dual.underlay)), [['203.0.113.3', '2001:db8:cb00:7100::3'], ['203.0.113.4', '2001:db8:cb00:7100::4'], []]);
  assert.deepEqual([underlayFamilies(v4), underlayFamilies(v6), underlayFamilies(dual)], [{ v4: true, v6: false }, { v4: false, v6: true }, { v4: true, v6: true }]);
});

test('NAT66: the IPv4 rules in the ip6 family, with neighbour discovery let in on the WAN', () => {
  const six = natRuleset6();
  assert.equal(
    six,
    [
      'table ip6 zlab_nat6',
      'delete table ip6 zlab_nat6',
      'table ip6 zlab_nat6 {',
      '  chain postrouting {',
      '    type nat hook postrouting priority srcnat; policy accept;',
      '    oifname "wan" masquerade',
      '  }',
      '  chain input {',
      '    type filter hook input priority filter; policy accept;',
      '    iifname "wan" ct state established,related accept',
      '    iifname "wan" icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept',
      '    iifname "wan" drop',
      '  }',
      '  chain forward {',
      '    type filter hook forward priority filter; policy drop;',
      '    ct state established,related accept',
      '    iifname "lan" oifname "wan" accept',
      '    iifname "lan" oifname "lan" accept',
      '  }',
      '}',
      '',
    ].join('\n'),
  );
  assert.match(natRuleset6('symmetric'), /oifname "wan" masquerade random/);
  assert.equal(natRulesetFor({}), natRuleset());
  assert.equal(natRulesetFor({ underlay: 'ipv6' }), natRuleset6());
  assert.equal(natRulesetFor({ underlay: 'dual' }, 'symmetric'), natRuleset('symmetric') + natRuleset6('symmetric'));
  assert.deepEqual(ipv6LinkBatch('eth0', '2001:db8:cb00:7100::3', '2001:db8:cb00:7100::1'), [
    'addr flush dev eth0 scope global',
    'addr add 2001:db8:cb00:7100::3/64 dev eth0 nodad',
    'link set eth0 up',
    'route replace default via 2001:db8:cb00:7100::1',
  ]);
});

const ep = (id: string, address: string, address6?: string, extra: Partial<Endpoint> = {}): Endpoint => {
  const [net, host] = id.split('@');
  return {
    id,
    net,
    tenant: net.split('/')[0],
    kind: 'resource',
    host,
    networkId: 'aaaaaaaaaa',
    address,
    owns: [address],
    ...(address6 ? { address6, owns6: [address6] } : {}),
    ...extra,
  };
};

test('endpoints in a family: IPv6 replaces the addresses, IPv4-only endpoints have no IPv6 view', () => {
  const a = ep('x/b/n@a', '10.1.0.1', 'fd00:1:2:0::1');
  assert.deepEqual(inFamily(a, 4), a);
  assert.deepEqual(inFamily(a, 6), { ...a, address: 'fd00:1:2:0::1', owns: ['fd00:1:2:0::1'] });
  assert.equal(inFamily(ep('x/b/n@b', '10.1.1.1'), 6), null);
  assert.equal(probeTarget(inFamily(a, 6)!), '[fd00:1:2:0::1]');
  assert.equal(probeTarget({ ...inFamily(a, 6)!, port: 80 }), '[fd00:1:2:0::1]:80');
  assert.equal(probeTarget({ ...a, port: 80 }), '10.1.0.1:80');
  assert.equal(deviceTunnelConfig('[Interface]\nAddress = 10.1.3.1/32\nDNS = 10.1.1.1, fd00::1, lan\n\n[Peer]\n'), '[Interface]\nAddress = 10.1.3.1/32\n\n[Peer]\n');
});

test('probe output: IPv6 targets in brackets, names with their answers', () => {
  const m = parseProbe(
    [
      'P [fd00::1] 0.2',
      'T [fd00::1]:7777 zmesh-lab-echo x/b/n@a',
      'T [fd00::1]:80 refused',
      'N a.n 10.1.0.1,fd00::1',
      'N gone.n !nx',
      'N slow.n !fail',
    ].join('\n'),
  );
  assert.deepEqual(m.get('[fd00::1]'), { ping: true, rttMs: 0.2, seen: null });
  assert.deepEqual(m.get('[fd00::1]:7777'), { ping: false, rttMs: null, seen: 'x/b/n@a' });
  assert.deepEqual(m.get('[fd00::1]:80'), { ping: false, rttMs: null, seen: null, refused: true });
  assert.deepEqual(m.get('?a.n')!.answer, ['10.1.0.1', 'fd00::1']);
  assert.equal(m.get('?gone.n')!.answer, null);
  assert.equal(m.get('?slow.n')!.answer, null);
});

test('rows carry their family; names: exact addresses in the network, nothing from outside, skipped without a resolver', () => {
  const xa = ep('x/b/n@a', '10.1.0.1', 'fd00::1', { dnsName: 'a.n', resolver: { node: 'a', address: '10.1.0.1' } });
  const xb = ep('x/b/n@b', '10.1.1.1', 'fd00:0:0:1::1', { dnsName: 'b.n' });
  const yb = ep('y/b/m@b', '10.1.1.1', 'fd99:0:0:1::1', { dnsName: 'b.m' });
  const six = judge(inFamily(xa, 6)!, inFamily(xb, 6)!, { ping: true, rttMs: 1, seen: xb.id }, new Set(['fd00::1']), undefined, undefined, 6);
  assert.deepEqual([six.family, six.ok, six.expect], [6, true, 'reach']);
  assert.equal(judge(xa, xb, { ping: true, rttMs: 1, seen: xb.id }, new Set()).family, 4);

  const named = judgeName(xa, xb, 'reach', { ping: false, rttMs: null, seen: null, answer: ['10.1.1.1', 'fd00:0:0:1::1'] });
  assert.deepEqual(named, {
    from: 'x/b/n@a',
    to: 'x/b/n@b',
    expect: 'reach',
    ok: true,
    rttMs: null,
    proto: 'dns',
    port: 53,
    family: 4,
    reached: true,
    ping: false,
    seen: null,
    name: 'b.n',
    answer: ['10.1.1.1', 'fd00:0:0:1::1'],
  });
  // Only one family answered, or another address: not what the plan says.
  assert.equal(judgeName(xa, xb, 'reach', { ping: false, rttMs: null, seen: null, answer: ['10.1.1.1'] }).ok, false);
  assert.equal(judgeName(xa, xb, 'reach', { ping: false, rttMs: null, seen: null, answer: null }).ok, false);
  // Another tenant's name: no answer holds; any answer is a leak; no lookup at all proves nothing.
  assert.equal(judgeName(xa, yb, 'isolated', { ping: false, rttMs: null, seen: null, answer: null }).ok, true);
  assert.deepEqual(
    (({ ok, reached, answer }) => ({ ok, reached, answer }))(judgeName(xa, yb, 'isolated', { ping: false, rttMs: null, seen: null, answer: ['10.1.1.1'] })),
    { ok: false, reached: true, answer: ['10.1.1.1'] },
  );
  assert.equal(judgeName(xa, yb, 'isolated', undefined, 'gone').ok, false);
  // No resolver on the source's node: neither a pass nor a failure of the matrix.
  const skipped = judgeName(xa, xb, 'reach', undefined, undefined, SKIP_NO_RESOLVER);
  assert.deepEqual([skipped.ok, skipped.skip], [false, 'resolver not running']);
  const good: PairResult = judge(xa, xb, { ping: true, rttMs: 1, seen: xb.id }, new Set());
  assert.equal(matrixOk([good, skipped]), true);
  assert.equal(matrixOk([skipped, { ...good, ok: false }]), false);
});
