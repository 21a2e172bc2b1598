// IPv6 egress (issue #20, docs/netns.md#ipv6-egress) and the bridge hosts its red team led to, the pure parts: the blueprint's `egressIpv6` (normal form,
// every refusal with its code and path, the JSON Schema agreeing), the transfer pair derived from the IPv4 one,
// the exact nft rules of both tables with and without it, the layout (addresses, ::/0), the IPv6 default route
// read as "::/0" (never confused with IPv4's), what turning on the host's IPv6 forwarding writes (accept_ra 1→2
// first), the agent config's refusal, and the agent handing the signed ask to the data plane.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ValidationError } from '../../src/errors.ts';
import { canonicalize, validateBlueprint } from '../../src/blueprint/index.ts';
import { RESERVED_RANGE6 } from '../../src/blueprint/validate.ts';
import { schemaErrors } from '../../src/cli/schemas.ts';
import { EGRESS6_PREFIX, egressAddrs6, parseCidr } from '../../netns/ip.ts';
import { hostNftSpec, layoutFor, tenantNftSpec, validateDesired } from '../../netns/layout.ts';
import { namesFor } from '../../netns/names.ts';
import { forwarding6Settings, isDefaultRoute, NS_READ6 } from '../../netns/state.ts';
import { egressBlocked } from '../../netns/egress.ts';
import { parseAgentConfig } from '../../src/agent/config.ts';
import { driverResource } from '../../src/agent/netns-adapter.ts';
import { deviceEgressSources } from '../../src/plan/part.ts';
import { bridgeHosts } from '../../src/agent/agent.ts';
import { blueprint, net } from '../helpers/fixtures.ts';
import { agentBed, part, planFor, signed } from '../helpers/agent-fixtures.ts';
import { handPlan } from '../helpers/plan.ts';

type Raw = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const ID = 'egresssix1';

function raw(over: Raw = {}): Raw {
  return { tenant: 'acme', name: 'shop', version: 1, networks: [{ name: 'backend', ipRange: '10.20.0.0/16', nodes: ['node-a'], egress: true, ...over }], workloads: [] };
}

function codes(b: unknown): string[][] {
  try {
    validateBlueprint(b);
  } catch (e) {
    assert.ok(e instanceof ValidationError);
    return e.problems.map((p) => [p.code, p.path]);
  }
  return [];
}

test('blueprint: egressIpv6 is kept only when true (older envelopes keep their bytes); refused without egress or IPv6', () => {
  assert.equal(validateBlueprint(raw({ egressIpv6: true })).networks[0].egressIpv6, true);
  const off = validateBlueprint(raw({ egressIpv6: false }));
  assert.equal('egressIpv6' in off.networks[0], false);
  assert.equal(canonicalize(off), canonicalize(validateBlueprint(raw())), 'egressIpv6: false signs like no field');
  assert.deepEqual(codes(raw({ egress: false, egressIpv6: true })), [['E_EGRESS_IPV6', 'networks[0].egressIpv6']]);
  assert.deepEqual(codes(raw({ ipv6: false, egressIpv6: true })), [['E_EGRESS_IPV6', 'networks[0].egressIpv6']]);
  assert.deepEqual(codes(raw({ egressIpv6: 'yes' })), [['E_TYPE', 'networks[0].egressIpv6']]);
  assert.deepEqual(schemaErrors('blueprint', raw({ egressIpv6: true })), []);
  assert.notDeepEqual(schemaErrors('blueprint', raw({ egressIpv6: 'yes' })), []);
});

test('blueprint: no ipv6Range may hold the nodes\' IPv6 egress links', () => {
  assert.equal(RESERVED_RANGE6, EGRESS6_PREFIX, 'the blueprint refuses what the data plane uses');
  assert.deepEqual(codes(raw({ ipv6Range: 'fc00:5a::/48' })), [['E_IPV6_RANGE', 'networks[0].ipv6Range']]);
  assert.deepEqual(codes(raw({ ipv6Range: 'fc00:5a::/56' })), [['E_IPV6_RANGE', 'networks[0].ipv6Range']]);
  assert.deepEqual(codes(raw({ ipv6Range: 'fc00:5a:0:100::/56' })), [], 'a neighbouring /56 is fine');
  assert.deepEqual(codes(raw({ ipv6Range: 'fc00:5b::/48' })), []);
});

test('the IPv6 transfer pair mirrors the IPv4 one: the same low 32 bits, a /126, inside fc00:5a::/96', () => {
  assert.deepEqual(egressAddrs6('169.254.23.5/30'), { hostAddr6: 'fc00:5a::a9fe:1705/126', tenantAddr6: 'fc00:5a::a9fe:1706/126' });
  assert.deepEqual(egressAddrs6('169.254.1.1/30'), { hostAddr6: 'fc00:5a::a9fe:101/126', tenantAddr6: 'fc00:5a::a9fe:102/126' });
  const c = parseCidr('fc00:5a::a9fe:1705/126')!;
  assert.equal(c.value & 3n, 1n, 'host end is the first address of its /126, like .1 of the /30');
  assert.throws(() => egressAddrs6('fd00::1/126'), /not an IPv4 transfer address/);
  // Every transfer address is in the blocked set by default (fc00::/7): no tenant reaches another's.
  const b = egressBlocked({ addresses: [], routes: [], peerEndpoints: [] });
  assert.ok(b.v6.includes('fc00::/7'));
});

test('nft, tenant table with IPv6 egress: each family its tunnel rule, neighbour discovery from the host end\'s addresses only, no egress-v6', () => {
  const names = namesFor(ID);
  const rules = (devices: string[]) =>
    tenantNftSpec(names, true, '10.40.1.0/24', devices, undefined, 'fd00:40:0:1::/64', 'fc00:5a::a9fe:1705/126').chains.flatMap((c) => c.rules.map((r) => `${c.name} ${r.tag}: ${r.rule}`));
  assert.deepEqual(rules(['10.40.9.0/24', 'fd00:40:0:9::/64']), [
    `input in-spoof: iifname "b-${ID}" ip saddr != 10.40.1.0/24 counter drop`,
    `input in-spoof6: iifname "b-${ID}" ip6 saddr != { fd00:40:0:1::/64, fe80::/10 } counter drop`,
    'input in-established: ct state established,related accept',
    `input in-nd-outside: iifname "eg-${ID}" ip6 saddr { fc00:5a::a9fe:1705, fe80::/10 } ip6 hoplimit 255 icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept`,
    `input in-drop-outside: iifname "eg-${ID}" counter drop`,
    'forward mss-clamp: tcp flags syn tcp option maxseg size set rt mtu',
    `forward fwd-spoof: iifname "b-${ID}" ip saddr != 10.40.1.0/24 counter drop`,
    `forward fwd-spoof6: iifname "b-${ID}" ip6 saddr != fd00:40:0:1::/64 counter drop`,
    `forward tunnel-egress: iifname "w-${ID}" oifname "eg-${ID}" ip saddr != { 10.40.9.0/24 } counter drop`,
    `forward tunnel-egress6: iifname "w-${ID}" oifname "eg-${ID}" ip6 saddr != { fd00:40:0:9::/64 } counter drop`,
    'forward fwd-established: ct state established,related accept',
    `forward fwd-drop-outside: iifname "eg-${ID}" counter drop`,
    `output out-spoof: oifname "w-${ID}" ip saddr != 10.40.1.0/24 counter drop`,
    `output out-spoof6: oifname "w-${ID}" ip6 saddr != fd00:40:0:1::/64 counter drop`,
    `postrouting egress-masquerade: oifname "eg-${ID}" masquerade`,
  ]);
  // No device with egress: the tunnel's sources of either family never leave (one rule per family, not one for both).
  const none = rules([]).filter((r) => r.startsWith('forward tunnel'));
  assert.deepEqual(none, [
    `forward tunnel-egress: iifname "w-${ID}" oifname "eg-${ID}" meta nfproto ipv4 counter drop`,
    `forward tunnel-egress6: iifname "w-${ID}" oifname "eg-${ID}" meta nfproto ipv6 counter drop`,
  ]);
  // Without it the table is exactly what it was before IPv6 egress existed (no rewrite on upgrade).
  const before = tenantNftSpec(names, true, '10.40.1.0/24', ['10.40.9.0/24'], undefined, 'fd00:40:0:1::/64').chains.flatMap((c) => c.rules.map((r) => r.tag));
  assert.ok(before.includes('egress-v6') && !before.includes('tunnel-egress6') && !before.includes('in-nd-outside'));
  // An IPv4-only network cannot have it, whatever it is given.
  const v4only = tenantNftSpec(names, true, '10.40.1.0/24', [], undefined, undefined, 'fc00:5a::a9fe:1705/126').chains.flatMap((c) => c.rules.map((r) => r.tag));
  assert.ok(!v4only.includes('tunnel-egress6') && !v4only.includes('in-nd-outside'));
});

test('nft, host table with IPv6 egress: spoofing, NAT66 and neighbour discovery from the tenant end\'s addresses only', () => {
  const names = namesFor(ID);
  const blocked = { v4: ['10.0.0.0/8'], v6: ['fc00::/7', 'fe80::/10'], uplinks: ['eth0'] };
  const rules = (six?: string) => hostNftSpec(names, '169.254.23.6/30', blocked, six).chains.flatMap((c) => c.rules.map((r) => `${c.name} ${r.tag}: ${r.rule}`));
  const me = `"ze-${ID}"`;
  assert.deepEqual(rules('fc00:5a::a9fe:1706/126'), [
    `input nd-from-tenant: iifname ${me} ip6 saddr { fc00:5a::a9fe:1706, fe80::/10 } ip6 hoplimit 255 icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept`,
    `input tenant-to-host: iifname ${me} drop`,
    `forward egress-spoof: iifname ${me} ip saddr != 169.254.23.6 drop`,
    `forward egress-spoof6: iifname ${me} ip6 saddr != fc00:5a::a9fe:1706 drop`,
    `forward tenant-to-tenant: iifname ${me} oifname "ze-*" drop`,
    `forward egress-uplink: iifname ${me} oifname != { "eth0" } drop`,
    `forward egress-conns: iifname ${me} ct state new ct count over 4096 drop`,
    `forward egress-blocked: iifname ${me} ip daddr @blocked4 drop`,
    `forward egress-blocked6: iifname ${me} ip6 daddr @blocked6 drop`,
    `forward replies-in: oifname ${me} ct state established,related accept`,
    `forward no-new-inbound: oifname ${me} drop`,
    'postrouting egress-masquerade: ip saddr 169.254.23.6 masquerade',
    'postrouting egress-masquerade6: ip6 saddr fc00:5a::a9fe:1706 masquerade',
  ]);
  const without = rules();
  assert.ok(without.includes(`forward egress-v6: iifname ${me} meta nfproto ipv6 drop`));
  assert.ok(!without.some((r) => /nd-from-tenant|spoof6|masquerade6/.test(r)));
});

test('layout: the pair on both ends and ::/0 only when in force (asked, dual-stack, an IPv6 uplink)', () => {
  const p = handPlan({ ipRange: '10.40.0.0/16', ipv6Range: 'fd00:40::/48', egress: true, networkId: ID, nodes: [{ node: 'a', underlay: '198.51.100.1' }], seed: 'e6' });
  const d = { ...p.desired.get('a')!, egress6: true };
  const ctx = { underlayMtu: 1500, wgKind: 'wireguard' as const, egressAddrs: { hostAddr: '169.254.23.5/30', tenantAddr: '169.254.23.6/30' } };
  const on = layoutFor(d, { ...ctx, egress6: true });
  assert.deepEqual(on.egress!.hostLink.addrs, ['169.254.23.5/30', 'fc00:5a::a9fe:1705/126']);
  assert.deepEqual(on.links.find((l) => l.name === `eg-${ID}`)!.addrs, ['169.254.23.6/30', 'fc00:5a::a9fe:1706/126']);
  assert.deepEqual(on.routes.filter((r) => r.dev === `eg-${ID}`), [
    { dst: 'default', dev: `eg-${ID}`, gateway: '169.254.23.5' },
    { dst: '::/0', dev: `eg-${ID}`, gateway: 'fc00:5a::a9fe:1705' },
  ]);
  assert.ok(on.nftHost!.chains.some((c) => c.rules.some((r) => r.tag === 'egress-masquerade6')));
  // The driver did not put it in force (no IPv6 default route on the host): nothing of it.
  const off = layoutFor(d, ctx);
  assert.deepEqual(off.egress!.hostLink.addrs, ['169.254.23.5/30']);
  assert.ok(!off.routes.some((r) => r.dst === '::/0'));
  assert.ok(off.nftTenant.chains.some((c) => c.rules.some((r) => r.tag === 'egress-v6')));
  // An IPv4-only network: never, whatever the context says.
  const v4 = handPlan({ ipRange: '10.40.0.0/16', egress: true, networkId: ID, nodes: [{ node: 'a', underlay: '198.51.100.1' }], seed: 'e6' }).desired.get('a')!;
  assert.deepEqual(layoutFor({ ...v4, egress6: true }, { ...ctx, egress6: true }).egress!.hostLink.addrs, ['169.254.23.5/30']);
});

test('routes: the IPv6 default route is "::/0" in a dual-stack read, the IPv4 one "default"; both are default routes', () => {
  assert.match(NS_READ6, /route show table all/);
  assert.ok(isDefaultRoute({ dst: 'default' }) && isDefaultRoute({ dst: '::/0' }) && !isDefaultRoute({ dst: '10.0.0.0/8' }));
  // Default routes never enter the blocked set, in either spelling (they are the outside).
  const b = egressBlocked({ addresses: [], routes: ['default', '::/0', '0.0.0.0/0', '2001:db8:1::/64'], peerEndpoints: [] });
  assert.ok(b.v6.some((e) => e.startsWith('2001:db8:1::')), JSON.stringify(b.v6));
  assert.ok(!b.v6.includes('::/0') && !b.v4.includes('0.0.0.0/0'));
  assert.ok(!b.v6.some((e) => e.startsWith('2001:db8:2::')), 'the outside stays open');
});

test("blocked: a host address's own network, with or without a route for it (red team F2: noprefixroute, DHCPv6 /128)", () => {
  // An uplink 2001:db8:1::1/64 added noprefixroute, default via the router's fe80::: no route names the /64.
  const b = egressBlocked({ addresses: ['2001:db8:1::1/64', '2001:db8:7::9/128', '198.51.100.7/24'], routes: ['::/0', 'default'], peerEndpoints: [] });
  assert.ok(b.v6.includes('2001:db8:1::/64'), JSON.stringify(b.v6));
  assert.ok(b.v6.includes('2001:db8:7::/64'), 'a /128 from DHCPv6: its /64, the link');
  assert.ok(b.v4.includes('198.51.100.0/24'), JSON.stringify(b.v4));
  assert.ok(!b.v6.some((e) => e.startsWith('2001:db8:2::')) && !b.v4.some((e) => e.startsWith('198.51.101.')), 'the rest stays open');
  // The operator's allow still opens part of it (a LAN service), and deny still wins.
  const allowed = egressBlocked({ addresses: ['2001:db8:1::1/64'], routes: [], peerEndpoints: [] }, { allow: ['2001:db8:1::53/128'] });
  assert.ok(!allowed.v6.includes('2001:db8:1::/64') && allowed.v6.some((e) => e.startsWith('2001:db8:1::')), JSON.stringify(allowed.v6));
});

test('host IPv6 forwarding: every interface taking router advertisements keeps taking them (1 → 2), then forwarding', () => {
  const text = [
    'net.ipv6.conf.all.accept_ra = 1',
    'net.ipv6.conf.default.accept_ra = 1',
    'net.ipv6.conf.ens3.accept_ra = 1',
    'net.ipv6.conf.eth0/100.accept_ra = 1',
    'net.ipv6.conf.eth1.accept_ra = 0',
    'net.ipv6.conf.wlan0.accept_ra = 2',
    'net.ipv6.conf.lo.accept_ra = 1',
    `net.ipv6.conf.ze-${ID}.accept_ra = 1`,
    `net.ipv6.conf.w-${ID}.accept_ra = 1`,
    'net.ipv6.conf.odd name.accept_ra = 1',
    '',
  ].join('\n');
  assert.deepEqual(forwarding6Settings(text), ['net.ipv6.conf.ens3.accept_ra=2', 'net.ipv6.conf.eth0/100.accept_ra=2', 'net.ipv6.conf.all.forwarding=1']);
  assert.deepEqual(forwarding6Settings(''), ['net.ipv6.conf.all.forwarding=1']);
});

test('agent config: egress.ipv6 is a boolean, false refuses; the data plane gets the ask only when allowed', () => {
  const BASE = 'nodeId: node-a\nidentityKeyFile: /tmp/x.key\nstateDir: /tmp/zmesh-x\n';
  assert.deepEqual(parseAgentConfig(BASE + 'egress: {ipv6: false}\n', '/etc/zmesh').egress, { allow: [], deny: [], ipv6: false });
  assert.deepEqual(parseAgentConfig(BASE + 'egress: {ipv6: true}\n', '/etc/zmesh').egress, { allow: [], deny: [] });
  assert.throws(() => parseAgentConfig(BASE + 'egress: {ipv6: "no"}\n', '/etc/zmesh'), (e: unknown) => e instanceof ValidationError && e.problems.some((p) => p.code === 'E_EGRESS_CONFIG' && p.path === 'egress.ipv6'));
  const p = handPlan({ ipRange: '10.40.0.0/16', ipv6Range: 'fd00:40::/48', egress: true, networkId: ID, nodes: [{ node: 'a', underlay: '198.51.100.1' }], seed: 'e6' });
  const d = p.desired.get('a')!;
  const dn = { tenant: d.tenant, blueprint: 'shop', networkId: d.networkId, networkName: d.networkName, ipRange: d.ipRange, ipRange6: d.ipRange6, egress: true, egress6: true, resource: d.resource };
  assert.equal(driverResource(dn, true).egress6, true);
  assert.equal('egress6' in driverResource(dn, false), false, 'egress.ipv6: false');
  assert.equal('egress6' in driverResource({ ...dn, egress6: undefined }, true), false, 'not asked');
});

test('the agent takes the ask from the signed blueprint; a device\'s IPv6 subnet leaves only with it', async () => {
  const nodes = ['node-a', 'node-b'];
  for (const egressIpv6 of [true, undefined]) {
    const bp = blueprint([net({ nodes, egress: true, ...(egressIpv6 ? { egressIpv6 } : {}), access: [{ name: 'laptop', egress: true }] })]);
    const plan = planFor(bp, nodes);
    const laptop = plan.networks[0].access[0];
    const bed = agentBed(laptop.via);
    try {
      await bed.agent.submit(signed(bp), part(plan, laptop.via));
      const sent = bed.driver.calls.at(-1)![0];
      assert.equal(sent.egress6, egressIpv6, 'egress6 as signed');
      const six = (sent.egressDevices ?? []).filter((c) => c.includes(':'));
      const subnet6 = (laptop as { subnet6?: string }).subnet6;
      assert.ok(subnet6, 'the device has an IPv6 subnet');
      assert.deepEqual(six, egressIpv6 ? [subnet6] : [], JSON.stringify(sent.egressDevices));
    } finally {
      bed.close();
    }
  }
  const spec = { egress: true, egressIpv6: true as const, access: [{ name: 'd', egress: true as const }] };
  const peers = [{ kind: 'device' as const, node: 'd', allowedIps: ['10.1.9.0/24', 'fd00:1:0:9::/64'] }];
  assert.deepEqual(deviceEgressSources(spec, { peers } as never), ['10.1.9.0/24', 'fd00:1:0:9::/64']);
  assert.deepEqual(deviceEgressSources({ ...spec, egressIpv6: undefined }, { peers } as never), ['10.1.9.0/24']);
});

test('bridge hosts: the tenant namespace forwards to its bridge only for the node\'s workloads and sends them no redirects', () => {
  const names = namesFor(ID);
  const spec = tenantNftSpec(names, false, '10.40.1.0/24', [], undefined, 'fd00:40:0:1::/64', undefined, ['10.40.1.3', 'fd00:40:0:1::3', '10.40.1.2', 'FD00:40:0:1:0::2']);
  assert.deepEqual(spec.sets, [
    { name: 'hosts4', type: 'ipv4_addr', elements: ['10.40.1.2/32', '10.40.1.3/32'] },
    { name: 'hosts6', type: 'ipv6_addr', elements: ['fd00:40:0:1::2/128', 'fd00:40:0:1::3/128'] },
  ]);
  const rules = spec.chains.flatMap((c) => c.rules.map((r) => `${c.name} ${r.tag}: ${r.rule}`)).filter((r) => /unknown|redirect/.test(r));
  assert.deepEqual(rules, [
    `forward to-unknown: oifname "b-${ID}" ip daddr != @hosts4 counter drop`,
    `forward to-unknown6: oifname "b-${ID}" ip6 daddr != @hosts6 counter drop`,
    `output no-redirect: oifname "b-${ID}" icmp type redirect counter drop`,
    `output no-redirect6: oifname "b-${ID}" icmpv6 type nd-redirect counter drop`,
  ]);
  // No workloads: nothing is forwarded onto the bridge (an empty set). Not given (hand-made resources): no rule.
  assert.deepEqual(tenantNftSpec(names, false, '10.40.1.0/24', [], undefined, undefined, undefined, []).sets, [{ name: 'hosts4', type: 'ipv4_addr', elements: [] }]);
  const none = tenantNftSpec(names, false, '10.40.1.0/24');
  assert.equal(none.sets, undefined);
  assert.ok(!none.chains.some((c) => c.rules.some((r) => /unknown|redirect/.test(r.tag))));
  // With a policy the sets are kept beside the policy's.
  const withPolicy = tenantNftSpec(names, false, '10.40.1.0/24', [], { range: '10.40.0.0/16', default: 'deny', local: ['10.40.1.1/32'], rules: [] }, undefined, undefined, ['10.40.1.2']);
  assert.deepEqual(withPolicy.sets!.map((s) => s.name), ['hosts4', 'pol_local']);
});

test('bridge hosts: validated against the subnets; the agent takes them from the part\'s workloads on this node', () => {
  const p = handPlan({ ipRange: '10.40.0.0/16', ipv6Range: 'fd00:40::/48', networkId: ID, nodes: [{ node: 'a', underlay: '198.51.100.1' }], seed: 'e6' });
  const d = p.desired.get('a')!;
  const sub = d.resource.subnet.replace(/\.0\/24$/, '');
  assert.deepEqual(validateDesired({ ...d, bridgeHosts: [`${sub}.7`, d.resource.subnet6!.replace('/64', '7')] }), []);
  assert.deepEqual(validateDesired({ ...d, bridgeHosts: ['10.99.0.7', `${sub}.0/24`, 'x'] }), [
    'bridgeHosts: "10.99.0.7" is not an address of the subnet',
    `bridgeHosts: "${sub}.0/24" is not an address of the subnet`,
    'bridgeHosts: "x" is not an address of the subnet',
  ]);
  const ws = [
    { name: 'a1', node: 'a', network: 'lan', ip: '10.1.1.3', ip6: 'fd00:1:0:1::3' },
    { name: 'a2', node: 'a', network: 'lan', ip: '10.1.1.2' },
    { name: 'b1', node: 'b', network: 'lan', ip: '10.1.2.2' },
    { name: 'a3', node: 'a', network: 'other', ip: '10.2.1.2' },
  ];
  assert.deepEqual(bridgeHosts(ws, 'lan', 'a'), ['10.1.1.2', '10.1.1.3', 'fd00:1:0:1::3']);
  assert.deepEqual(bridgeHosts(undefined, 'lan', 'a'), []);
});
