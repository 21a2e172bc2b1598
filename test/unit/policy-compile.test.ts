// The policy compiler (src/plan/policy.ts): exact compiled rules for a small network, the nft it renders, and a
// property test: for random policies and flows, the compiled rules (their exact model, evaluate) allow a flow
// iff a direct reading of the policy over every address does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compilePolicy, evaluate, mergeCidrs, type PolicyGroups } from '../../src/plan/policy.ts';
import type { PolicyMembers } from '../../src/plan/part.ts';
import type { NetworkPolicy } from '../../src/blueprint/types.ts';
import { policyNft } from '../../netns/layout.ts';
import { renderNftTable } from '../../netns/build.ts';
import { formatIPv4, parseCidr, parseIPv4 } from '../../topology/cidr.ts';
import { rng } from '../helpers/rng.ts';

const members: PolicyMembers = {
  nodes: { a: ['10.1.0.1/32', '10.1.0.254/32'], b: ['10.1.1.1/32', '10.1.1.254/32'] },
  workloads: { 'web-1': '10.1.0.2/32', 'web-2': '10.1.1.3/32', db: '10.1.1.2/32' },
  devices: { laptop: '10.1.2.1/32' },
};
const groups: PolicyGroups = { workloads: { web: ['web-1', 'web-2'], db: ['db'] }, devices: { admins: ['laptop'] } };
const policy: NetworkPolicy = {
  default: 'deny',
  rules: [
    { from: ['group:web'], to: ['workload:db'], ports: ['tcp/5432'] },
    { from: ['group:admins'], to: ['any'], ports: ['any'] },
    { from: ['cidr:10.1.0.0/24', 'node:a'], to: ['node:b', 'group:db'], ports: ['udp/53', 'tcp/80-90', 'tcp/85-100', 'icmp'] },
    { from: ['any'], to: ['workload:web-1'], ports: ['tcp/443'] },
  ],
};

test('compilePolicy: node b guards its own addresses and db; rules that name nothing here are left out', () => {
  const b = compilePolicy(policy, '10.1.0.0/16', members, groups, { node: ['10.1.1.1/32', '10.1.1.254/32'], workloads: ['db', 'web-2'], devices: [] });
  assert.deepEqual(b, {
    range: '10.1.0.0/16',
    default: 'deny',
    local: ['10.1.1.1/32', '10.1.1.2/32', '10.1.1.3/32', '10.1.1.254/32'],
    rules: [
      { index: 0, from: ['10.1.0.2/32', '10.1.1.3/32'], to: ['10.1.1.2/32'], tcp: ['5432'], udp: [], icmp: false, any: false },
      { index: 1, from: ['10.1.2.1/32'], to: ['10.1.1.1/32', '10.1.1.2/32', '10.1.1.3/32', '10.1.1.254/32'], tcp: [], udp: [], icmp: false, any: true },
      // cidr:10.1.0.0/24 contains node a's addresses: merged away.
      { index: 2, from: ['10.1.0.0/24'], to: ['10.1.1.1/32', '10.1.1.2/32', '10.1.1.254/32'], tcp: ['80-100'], udp: ['53'], icmp: true, any: false },
    ],
  });
  assert.deepEqual(evaluate(b, { src: '10.1.0.2', dst: '10.1.1.2', proto: 'tcp', port: 5432 }), { allowed: true, rule: 0, reason: 'rule 0 allows it' });
  assert.deepEqual(evaluate(b, { src: '10.1.0.2', dst: '10.1.1.2', proto: 'tcp', port: 5433 }), { allowed: false, rule: null, reason: 'no rule matches: the default (deny)' });
  assert.equal(evaluate(b, { src: '10.1.0.9', dst: '10.1.1.254', proto: 'icmp' }).rule, 2);
  assert.equal(evaluate(b, { src: '10.1.0.9', dst: '10.1.1.3', proto: 'icmp' }).allowed, false, 'web-2 is not in group db');
  assert.equal(evaluate(b, { src: '10.1.2.1', dst: '10.1.1.3', proto: 'udp', port: 9 }).rule, 1);
  assert.equal(evaluate(b, { src: '10.1.0.2', dst: '10.1.0.1', proto: 'tcp', port: 1 }).reason, '10.1.0.1 is not a destination this node guards');
  assert.equal(evaluate(b, { src: '192.0.2.1', dst: '10.1.1.2', proto: 'tcp', port: 1 }).allowed, true, 'from outside the network: not the policy\'s business');
});

test('compilePolicy: the access node of a device guards it', () => {
  const a = compilePolicy(policy, '10.1.0.0/16', members, groups, { node: ['10.1.0.1/32', '10.1.0.254/32'], workloads: ['web-1'], devices: ['laptop'] });
  assert.deepEqual(a.local, ['10.1.0.1/32', '10.1.0.2/32', '10.1.0.254/32', '10.1.2.1/32']);
  assert.deepEqual(
    a.rules.map((r) => [r.index, r.to]),
    [
      [1, ['10.1.0.1/32', '10.1.0.2/32', '10.1.0.254/32', '10.1.2.1/32']],
      [3, ['10.1.0.2/32']],
    ],
  );
});

test('policyNft: the chains and sets it renders', () => {
  const b = compilePolicy(policy, '10.1.0.0/16', members, groups, { node: ['10.1.1.1/32', '10.1.1.254/32'], workloads: ['db'], devices: [] });
  const { sets, chains } = policyNft(b);
  assert.deepEqual(
    sets.map((s) => `${s.name}=${s.elements.join(',')}`),
    [
      'pol_local=10.1.1.1/32,10.1.1.2/32,10.1.1.254/32',
      'r0_from=10.1.0.2/32,10.1.1.3/32',
      'r0_to=10.1.1.2/32',
      'r1_from=10.1.2.1/32',
      'r1_to=10.1.1.1/32,10.1.1.2/32,10.1.1.254/32',
      'r2_from=10.1.0.0/24',
      'r2_to=10.1.1.1/32,10.1.1.2/32,10.1.1.254/32',
    ],
  );
  assert.deepEqual(chains.map((c) => `${c.name}:${c.hook}`), ['policy-in:input', 'policy-fwd:forward', 'policy-out:output']);
  assert.deepEqual(chains[2].rules[0], { tag: 'pol-loopback', rule: 'oifname "lo" accept' });
  // The node's resolver (port 53 to the namespace itself) answers whatever the policy says: input only.
  assert.deepEqual(chains[0].rules[0], { tag: 'pol-dns', rule: 'meta l4proto { tcp, udp } th dport 53 accept' });
  assert.deepEqual(chains[2].rules.slice(1), chains[0].rules.slice(1));
  assert.deepEqual(chains[1].rules, chains[0].rules.slice(1));
  assert.deepEqual(
    chains[0].rules.map((r) => `${r.tag}: ${r.rule}`),
    [
      'pol-dns: meta l4proto { tcp, udp } th dport 53 accept',
      'pol-other-family: ip6 daddr != fe80::/10 accept',
      'pol-nd: icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept',
      'pol-not-guarded: ip daddr != @pol_local accept',
      'pol-outside: ip saddr != 10.1.0.0/16 accept',
      'pol-established: ct state established,related accept',
      'r0-tcp: ip saddr @r0_from ip daddr @r0_to tcp dport { 5432 } counter accept',
      'r1-any: ip saddr @r1_from ip daddr @r1_to counter accept',
      'r2-tcp: ip saddr @r2_from ip daddr @r2_to tcp dport { 80-100 } counter accept',
      'r2-udp: ip saddr @r2_from ip daddr @r2_to udp dport { 53 } counter accept',
      'r2-icmp: ip saddr @r2_from ip daddr @r2_to meta l4proto icmp counter accept',
      'default-drop: counter drop',
    ],
  );
  const text = renderNftTable({ family: 'inet', name: 't', comment: 'x', sets, chains }).text;
  assert.match(text, /set r0_from \{\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = \{ 10\.1\.0\.2\/32, 10\.1\.1\.3\/32 \}/);
});

test('mergeCidrs drops what another element contains', () => {
  assert.deepEqual(mergeCidrs(['10.1.1.2/32', '10.1.0.0/16', '10.2.0.0/24', '10.2.0.0/24', 'junk']), ['10.1.0.0/16', '10.2.0.0/24']);
});

// ---- property test ---------------------------------------------------------------------------------

test('property: the compiled rules allow a flow iff the policy, read directly over every address, does', () => {
  // Range 10.5.0.0/24, nodes n0..n3 with /28 subnets, workloads w0..w5 and devices d0, d1 (served by n0, n1).
  const range = '10.5.0.0/24';
  const nodes = ['n0', 'n1', 'n2', 'n3'];
  const host = (i: number) => `10.5.0.${i}/32`;
  const m: PolicyMembers = { nodes: {}, workloads: {}, devices: {} };
  nodes.forEach((n, i) => (m.nodes[n] = [host(16 * i + 1), host(16 * i + 14)]));
  const placed: Record<string, string> = {};
  for (let w = 0; w < 6; w++) {
    m.workloads[`w${w}`] = host(16 * (w % 4) + 2 + Math.floor(w / 4));
    placed[`w${w}`] = nodes[w % 4];
  }
  m.devices = { d0: host(65), d1: host(81) };
  const via: Record<string, string> = { d0: 'n0', d1: 'n1' };
  const groupNames = ['g0', 'g1', 'g2'];
  const sel = (r: () => number): string => {
    const k = Math.floor(r() * 7);
    if (k === 0) return 'any';
    if (k === 1) return `workload:w${Math.floor(r() * 6)}`;
    if (k === 2) return `device:d${Math.floor(r() * 2)}`;
    if (k === 3) return `node:${nodes[Math.floor(r() * 4)]}`;
    if (k === 4) return `group:${groupNames[Math.floor(r() * 3)]}`;
    const p = 26 + Math.floor(r() * 7);
    const base = parseIPv4('10.5.0.0')! + (Math.floor(r() * 256) & ~(2 ** (32 - p) - 1));
    return `cidr:${formatIPv4(base)}/${p}`;
  };
  const portSpec = (r: () => number): string => {
    const k = Math.floor(r() * 5);
    if (k === 0) return 'any';
    if (k === 1) return 'icmp';
    const a = 1 + Math.floor(r() * 20);
    const proto = r() < 0.5 ? 'tcp' : 'udp';
    return k === 2 ? `${proto}/${a}` : `${proto}/${a}-${a + Math.floor(r() * 10)}`;
  };
  // Direct reading: which /32 a selector covers, by enumeration.
  const covers = (s: string, addr: string, g: PolicyGroups): boolean => {
    if (s === 'any') return true;
    const [kind, name] = [s.slice(0, s.indexOf(':')), s.slice(s.indexOf(':') + 1)];
    if (kind === 'cidr') {
      const c = parseCidr(name)!;
      const a = parseIPv4(addr)!;
      return a >= c.base && a < c.base + 2 ** (32 - c.prefix);
    }
    const a32 = `${addr}/32`;
    if (kind === 'workload') return m.workloads[name] === a32;
    if (kind === 'device') return m.devices[name] === a32;
    if (kind === 'node') return m.nodes[name].includes(a32);
    return [...(g.workloads[name] ?? []).map((w) => m.workloads[w]), ...(g.devices[name] ?? []).map((d) => m.devices[d])].includes(a32);
  };
  const portOk = (p: string, proto: string, port: number) => {
    if (p === 'any') return true;
    if (p === 'icmp') return proto === 'icmp';
    const [pr, range] = p.split('/');
    const [f, t] = range.split('-').map(Number);
    return pr === proto && port >= f && port <= (t ?? f);
  };
  const addrs = [...Object.values(m.nodes).flat(), ...Object.values(m.workloads), ...Object.values(m.devices), host(200)].map((a) => a.split('/')[0]);
  let checked = 0;
  for (let seed = 1; seed <= 150; seed++) {
    const r = rng(seed);
    const g: PolicyGroups = { workloads: {}, devices: {} };
    for (let w = 0; w < 6; w++) if (r() < 0.5) (g.workloads[groupNames[Math.floor(r() * 3)]] ??= []).push(`w${w}`);
    for (const d of ['d0', 'd1']) if (r() < 0.5) (g.devices[groupNames[Math.floor(r() * 3)]] ??= []).push(d);
    const pol: NetworkPolicy = {
      default: r() < 0.8 ? 'deny' : 'allow',
      rules: Array.from({ length: 1 + Math.floor(r() * 6) }, () => ({
        from: Array.from({ length: 1 + Math.floor(r() * 3) }, () => sel(r)),
        to: Array.from({ length: 1 + Math.floor(r() * 3) }, () => sel(r)),
        ports: Array.from({ length: 1 + Math.floor(r() * 3) }, () => portSpec(r)),
      })),
    };
    const compiled = new Map(
      nodes.map((n) => [
        n,
        compilePolicy(pol, range, m, g, {
          node: m.nodes[n],
          workloads: Object.keys(placed).filter((w) => placed[w] === n),
          devices: Object.keys(via).filter((d) => via[d] === n),
        }),
      ]),
    );
    const ownerOf = (dst: string): string | null => {
      const a32 = `${dst}/32`;
      for (const n of nodes) if (m.nodes[n].includes(a32)) return n;
      for (const [w, a] of Object.entries(m.workloads)) if (a === a32) return placed[w];
      for (const [d, a] of Object.entries(m.devices)) if (a === a32) return via[d];
      return null;
    };
    for (let f = 0; f < 40; f++) {
      const src = addrs[Math.floor(r() * addrs.length)];
      const dst = addrs[Math.floor(r() * (addrs.length - 1))];
      const proto = (['tcp', 'udp', 'icmp'] as const)[Math.floor(r() * 3)];
      const port = 1 + Math.floor(r() * 32);
      const owner = ownerOf(dst);
      if (!owner) continue;
      const direct = pol.rules.some((rule) => rule.from.some((s) => covers(s, src, g)) && rule.to.some((s) => covers(s, dst, g)) && rule.ports.some((p) => portOk(p, proto, port)));
      const want = direct || pol.default === 'allow';
      const got = evaluate(compiled.get(owner)!, { src, dst, proto, port: proto === 'icmp' ? undefined : port });
      assert.equal(got.allowed, want, `seed ${seed}: ${src} → ${dst} ${proto}/${port} on ${owner}: ${JSON.stringify(pol)}`);
      // And no other node's rules ever claim this destination.
      for (const n of nodes) if (n !== owner) assert.equal(evaluate(compiled.get(n)!, { src, dst, proto, port }).rule, null);
      checked++;
    }
  }
  assert.ok(checked > 4000, `${checked} flows checked`);
});
