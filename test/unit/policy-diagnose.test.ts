// Network policy made visible (issue #16): `zmesh diagnose NET A B [--port]` names the rule (or the default) that
// allows or drops a flow, judged on the destination's node; the rules' counters read from the tenant table
// (parse → driver → agent), in GET /v1/policy, `zmesh policy`, `zmesh net show` and the metrics. Exact values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildAdminApp } from '../../src/admin/app.ts';
import { checkPolicyFlow, parseFlowPort, policyCheckLines, type PolicyFlowCheck } from '../../src/agent/diagnose.ts';
import { renderMetrics } from '../../src/agent/metrics.ts';
import { toActualNetwork } from '../../src/agent/netns-adapter.ts';
import type { ActualNetwork } from '../../src/agent/ports.ts';
import type { Blueprint, NetworkPolicy } from '../../src/blueprint/types.ts';
import { ZmeshError } from '../../src/errors.ts';
import { compilePolicy } from '../../src/plan/policy.ts';
import { colour } from '../../src/cli/format.ts';
import { policyCheckText, policyLine, policyTable, type NetworkDetail } from '../../src/cli/ops-commands.ts';
import { buildProgram } from '../../src/cli/program.ts';
import { runMain } from '../../src/cli/util.ts';
import { Driver, parseNftRuleset, policyCounters, type NftRule, type RunOptions, type RunResult } from '../../netns/index.ts';
import type { ActualResource } from '../../netns/types.ts';
import { blueprint, net } from '../helpers/fixtures.ts';
import { agentBed, FakeDriver, part, planFor, signed, type AgentBed } from '../helpers/agent-fixtures.ts';
import { FakeOs } from '../helpers/fake-os.ts';
import { handPlan } from '../helpers/plan.ts';

const k = colour(false);

const POLICY: NetworkPolicy = {
  default: 'deny',
  rules: [
    { from: ['group:web'], to: ['workload:db'], ports: ['tcp/5432'] },
    { from: ['group:admins'], to: ['any'], ports: ['any'] },
    { from: ['any'], to: ['workload:web-1'], ports: ['tcp/443', 'icmp'] },
    { from: ['node:node-a'], to: ['node:node-h'], ports: ['udp/53'] },
  ],
};

const wl = (name: string, node: string, groups?: string[]) => ({
  name,
  node,
  image: 'x',
  command: [],
  network: { name: 'net' },
  cpu: 0.1,
  memory: 1 << 26,
  volumes: [],
  ...(groups ? { groups } : {}),
});

// node-a, node-b public, node-h hidden behind node-a. The planner puts web-1 at 10.1.0.2 (node-a), db at
// 10.1.1.2 (node-b), web-2 at 10.1.2.2 (node-h); laptop 10.1.3.1 enters through node-b, phone 10.1.4.1 through node-a.
const BP: Blueprint = blueprint(
  [net({ nodes: ['node-a', 'node-b', 'node-h'], access: [{ name: 'laptop', groups: ['admins'] }, { name: 'phone' }], policy: POLICY })],
  { workloads: [wl('web-1', 'node-a', ['web']), wl('db', 'node-b'), wl('web-2', 'node-h', ['web'])] },
);
const NODES = ['node-a', 'node-b', { id: 'node-h' }];
const PLAN = planFor(BP, NODES);

async function bedOn(node: string, bp: Blueprint = BP, driver?: FakeDriver): Promise<AgentBed> {
  const bed = agentBed(node);
  if (driver) (bed.agent as unknown as { deps: { driver: FakeDriver } }).deps.driver = driver;
  await bed.agent.submit(signed(bp), part(bp === BP ? PLAN : planFor(bp, NODES), node));
  return bed;
}

function verdict(c: PolicyFlowCheck) {
  return { allowed: c.allowed, by: c.by, rule: c.rule, enforcedOn: c.enforcedOn, enforcedHere: c.enforcedHere, from: c.from.address, to: c.to.address };
}

test('the plan this file relies on', () => {
  const n = PLAN.networks[0];
  assert.deepEqual(n.access.map((a) => [a.name, a.address, a.via]), [['laptop', '10.1.3.1', 'node-b'], ['phone', '10.1.4.1', 'node-a']]);
  assert.deepEqual(PLAN.workloads.map((w) => [w.name, w.node, w.ip]), [['db', 'node-b', '10.1.1.2'], ['web-1', 'node-a', '10.1.0.2'], ['web-2', 'node-h', '10.1.2.2']]);
  assert.deepEqual(n.resources.map((r) => [r.node, r.subnet, r.accessNode]), [['node-a', '10.1.0.0/24', null], ['node-b', '10.1.1.0/24', null], ['node-h', '10.1.2.0/24', 'node-a']]);
});

test('diagnose A B on node-a: the rule or the default, judged on the destination node (here, or compiled for it)', async () => {
  const bed = await bedOn('node-a');
  try {
    const a = bed.agent;
    const full = a.policyCheck('net', 'web-1', 'db', 'tcp/5432');
    assert.deepEqual(full, {
      network: 'acme/shop/net',
      networkId: PLAN.networks[0].id,
      node: 'node-a',
      from: { asked: 'web-1', kind: 'workload', name: 'web-1', owner: null, address: '10.1.0.2', node: 'node-a' },
      to: { asked: 'db', kind: 'workload', name: 'db', owner: null, address: '10.1.1.2', node: 'node-b' },
      flow: { proto: 'tcp', port: 5432 },
      default: 'deny',
      enforcedOn: 'node-b',
      enforcedHere: false,
      allowed: true,
      by: 'rule',
      rule: 0,
      ruleSpec: { from: ['group:web'], to: ['workload:db'], ports: ['tcp/5432'] },
      reason: 'rule 0 allows it: from group:web to workload:db ports tcp/5432',
      notes: ["judged on node-a from the signed blueprint and the plan's members, compiled for node-b; node-b counts the packets (`zmesh policy` there)"],
    });
    assert.deepEqual(policyCheckLines(full), [
      'flow web-1 (10.1.0.2, on node-a) → db (10.1.1.2, on node-b), tcp/5432',
      'enforced on node node-b (judged on node-a)',
      "note: judged on node-a from the signed blueprint and the plan's members, compiled for node-b; node-b counts the packets (`zmesh policy` there)",
      'verdict: ALLOWED by rule 0: from group:web to workload:db ports tcp/5432',
    ]);
    const denied = a.policyCheck('net', 'workload:web-1', 'workload:db', 'tcp/5433');
    assert.deepEqual(verdict(denied), { allowed: false, by: 'default', rule: null, enforcedOn: 'node-b', enforcedHere: false, from: '10.1.0.2', to: '10.1.1.2' });
    assert.equal(denied.reason, 'no rule allows tcp/5433 from 10.1.0.2 to 10.1.1.2: the default (deny) drops it');
    assert.equal(policyCheckLines(denied).at(-1), 'verdict: DENIED by the default (deny): no rule allows it');
    // To this node's own workload: its compiled rules; icmp is the default flow.
    const here = a.policyCheck('net', 'db', 'web-1');
    assert.deepEqual(verdict(here), { allowed: true, by: 'rule', rule: 2, enforcedOn: 'node-a', enforcedHere: true, from: '10.1.1.2', to: '10.1.0.2' });
    assert.deepEqual(here.notes, []);
    assert.deepEqual(policyCheckLines(here), [
      'flow db (10.1.1.2, on node-b) → web-1 (10.1.0.2, on node-a), icmp',
      'enforced on node node-a (this node)',
      'verdict: ALLOWED by rule 2: from any to workload:web-1 ports tcp/443,icmp',
    ]);
    // A node sends from its WireGuard address to other nodes, and is judged on the hidden node behind it.
    const fromNode = a.policyCheck('net', 'node:node-a', 'node-h', 'udp/53');
    assert.deepEqual(verdict(fromNode), { allowed: true, by: 'rule', rule: 3, enforcedOn: 'node-h', enforcedHere: false, from: '10.1.0.254', to: '10.1.2.1' });
    assert.equal(fromNode.notes[0], 'node node-a sends from 10.1.0.254 (its WireGuard address, to other nodes)');
    assert.equal(a.policyCheck('net', 'node-a', 'node-h', 'udp/54').allowed, false);
    // A node's own packets to its workloads and devices are judged like any member's (the policy-out chain).
    const own = a.policyCheck('net', 'node-a', 'phone', 'tcp/22');
    assert.deepEqual(verdict(own), { allowed: false, by: 'default', rule: null, enforcedOn: 'node-a', enforcedHere: true, from: '10.1.0.1', to: '10.1.4.1' });
    // Devices: the one this node serves is judged here; the other's access node is the peer its subnet goes to.
    assert.deepEqual(verdict(a.policyCheck('net', 'web-1', 'phone')), { allowed: false, by: 'default', rule: null, enforcedOn: 'node-a', enforcedHere: true, from: '10.1.0.2', to: '10.1.4.1' });
    assert.deepEqual(verdict(a.policyCheck('net', 'device:laptop', 'web-2', 'udp/9')), { allowed: true, by: 'rule', rule: 1, enforcedOn: 'node-h', enforcedHere: false, from: '10.1.3.1', to: '10.1.2.2' });
    assert.deepEqual(verdict(a.policyCheck('net', 'web-1', 'laptop', 'tcp/22')), { allowed: false, by: 'default', rule: null, enforcedOn: 'node-b', enforcedHere: false, from: '10.1.0.2', to: '10.1.3.1' });
    // Addresses: a member's, a free one of a node's subnet, one in no subnet.
    const byIp = a.policyCheck('net', '10.1.0.2', '10.1.1.2', 'tcp/5432');
    assert.deepEqual(byIp.to, { asked: '10.1.1.2', kind: 'address', name: 'db', owner: { kind: 'workload', name: 'db', exact: true }, address: '10.1.1.2', node: 'node-b' });
    assert.equal(policyCheckLines(byIp)[0], 'flow 10.1.0.2 (workload web-1, on node-a) → 10.1.1.2 (workload db, on node-b), tcp/5432');
    assert.equal(byIp.rule, 0);
    const free = a.policyCheck('net', 'web-1', '10.1.1.77', 'tcp/1');
    assert.deepEqual(verdict(free), { allowed: true, by: 'not-guarded', rule: null, enforcedOn: 'node-b', enforcedHere: false, from: '10.1.0.2', to: '10.1.1.77' });
    assert.equal(free.reason, "10.1.1.77 is a free address of node node-b's subnet: no rule or default applies to it");
    const nowhere = a.policyCheck('net', 'web-1', '10.1.200.1');
    assert.deepEqual(policyCheckLines(nowhere), [
      'flow web-1 (10.1.0.2, on node-a) → 10.1.200.1 (in no subnet), icmp',
      'enforced on no node',
      'verdict: ALLOWED: 10.1.200.1 is in no subnet of the network: no rule or default applies to it',
    ]);
  } finally {
    bed.close();
  }
});

test('diagnose A B on a hidden node: the devices\' access nodes are not known there, the verdict is', async () => {
  const bed = await bedOn('node-h');
  try {
    const c = bed.agent.policyCheck('net', 'web-1', 'laptop', 'tcp/22');
    assert.deepEqual(verdict(c), { allowed: false, by: 'default', rule: null, enforcedOn: null, enforcedHere: false, from: '10.1.0.2', to: '10.1.3.1' });
    assert.deepEqual(policyCheckLines(c), [
      'flow web-1 (10.1.0.2, on node-a) → laptop (10.1.3.1, access node not known here), tcp/22',
      'enforced on the access node of device laptop (not known on node-h)',
      'note: the access node of device laptop is not known on node-h (a hidden node sends the whole range to its access node node-a): whichever node serves it judges the same; ask a public node of the network to name it',
      'verdict: DENIED by the default (deny): no rule allows it',
    ]);
    // From the device to this node: judged here with its own rules.
    assert.deepEqual(verdict(bed.agent.policyCheck('net', 'laptop', 'node:node-h', 'tcp/22')), { allowed: true, by: 'rule', rule: 1, enforcedOn: 'node-h', enforcedHere: true, from: '10.1.3.1', to: '10.1.2.1' });
    assert.deepEqual(verdict(bed.agent.policyCheck('net', 'web-1', 'web-2', 'tcp/443')), { allowed: false, by: 'default', rule: null, enforcedOn: 'node-h', enforcedHere: true, from: '10.1.0.2', to: '10.1.2.2' });
    // The same flows judged on the destination's own node agree with the remote judgement.
    const b = await bedOn('node-b');
    try {
      for (const [from, to, port] of [['web-1', 'db', 'tcp/5432'], ['web-1', 'db', 'tcp/5433'], ['web-2', 'db', 'tcp/5432'], ['web-1', 'laptop', 'tcp/22'], ['phone', 'db', 'icmp']]) {
        const there = b.agent.policyCheck('net', from, to, port);
        const remote = bed.agent.policyCheck('net', from, to, port);
        assert.equal(there.enforcedHere, true, `${from} → ${to}`);
        assert.deepEqual([remote.allowed, remote.rule, remote.by], [there.allowed, there.rule, there.by], `${from} → ${to} ${port}`);
      }
    } finally {
      b.close();
    }
  } finally {
    bed.close();
  }
});

test('diagnose A B: bad names, addresses and ports are E_FLOW (invalid); no policy allows everything', async () => {
  const bed = await bedOn('node-a');
  try {
    const err = (from: string, to: string, port?: string) => {
      try {
        bed.agent.policyCheck('net', from, to, port);
      } catch (e) {
        assert.ok(e instanceof ZmeshError);
        assert.equal(e.kind, 'invalid');
        return `${e.code}: ${e.message}`;
      }
      return 'no error';
    };
    assert.equal(err('nope', 'db'), 'E_FLOW: "nope" is not a workload, device or node of network net, nor an address inside its range 10.1.0.0/16');
    assert.equal(err('web-1', 'device:db'), 'E_FLOW: "device:db": network net has no device "db"');
    assert.equal(err('web-1', '10.2.0.1'), "E_FLOW: 10.2.0.1 is outside network net's range 10.1.0.0/16");
    assert.equal(err('web-1', '10.1.0.300'), 'E_FLOW: "10.1.0.300" is not an IPv4 address');
    assert.equal(err('web-1', 'db', 'tcp/0'), 'E_FLOW: port "tcp/0" is not tcp/N, udp/N or icmp (N from 1 to 65535)');
    assert.equal(err('web-1', 'db', 'tcp/5432-5440'), 'E_FLOW: port "tcp/5432-5440" is not tcp/N, udp/N or icmp (N from 1 to 65535)');
    assert.equal(err('web-1', 'db', 'udp/65536'), 'E_FLOW: port "udp/65536" is not tcp/N, udp/N or icmp (N from 1 to 65535)');
    assert.equal(err('web-1', 'db', 'any'), 'E_FLOW: port "any" is not tcp/N, udp/N or icmp (N from 1 to 65535)');
  } finally {
    bed.close();
  }
  assert.deepEqual(parseFlowPort(undefined), { proto: 'icmp', port: null });
  assert.deepEqual(parseFlowPort('udp/53'), { proto: 'udp', port: 53 });
  // A workload of another network.
  const two = blueprint([net({ nodes: ['node-a', 'node-b'], policy: POLICY_TWO }), net({ name: 'other', ipRange: '10.2.0.0/16', nodes: ['node-a'] })], {
    workloads: [wl('web-1', 'node-a', ['web']), { ...wl('db', 'node-b'), network: { name: 'net' } }, { ...wl('elsewhere', 'node-a'), network: { name: 'other' } }],
  });
  const plan = planFor(two, NODES);
  const p = part(plan, 'node-a');
  const input = { blueprint: two, spec: two.networks[0], part: p.networks[0], placed: p.workloads, node: 'node-a', network: 'acme/shop/net', from: 'web-1', to: 'workload:elsewhere' };
  assert.throws(() => checkPolicyFlow(input), /E_FLOW|workload elsewhere is on network other, not net/);
  // The other network has no policy: everything inside it is allowed (and names are still checked).
  const other = checkPolicyFlow({ ...input, spec: two.networks[1], part: p.networks[1], network: 'acme/shop/other', from: 'elsewhere', to: 'node-a', port: 'tcp/80' });
  assert.deepEqual(
    { allowed: other.allowed, by: other.by, default: other.default, reason: other.reason, from: other.from.address, to: other.to.address, enforcedOn: other.enforcedOn },
    { allowed: true, by: 'no-policy', default: null, reason: 'no policy: everything inside the network is allowed', from: '10.2.0.2', to: '10.2.0.1', enforcedOn: 'node-a' },
  );
  assert.deepEqual(policyCheckLines(other), [
    'flow elsewhere (10.2.0.2, on node-a) → node-a (10.2.0.1, on node-a), tcp/80',
    'network acme/shop/other has no policy',
    'verdict: ALLOWED: no policy: everything inside the network is allowed',
  ]);
  assert.throws(() => checkPolicyFlow({ ...input, spec: two.networks[1], part: p.networks[1], from: 'ghost', to: 'node-a' }), /"ghost" is not a workload, device or node of network other/);
});

const POLICY_TWO: NetworkPolicy = { default: 'deny', rules: [{ from: ['group:web'], to: ['workload:db'], ports: ['tcp/5432'] }] };

// ---- counters ------------------------------------------------------------------------------------------

const rule = (chain: string, handle: number, comment: string | null, packets?: number, bytes?: number) =>
  `{"rule": {"family": "inet", "table": "zmesh_abcdefghij", "chain": "${chain}", "handle": ${handle}, ${comment ? `"comment": "${comment}", ` : ''}"expr": [` +
  `{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@r0_from"}}` +
  (packets !== undefined ? `, {"counter": {"packets": ${packets}, "bytes": ${bytes}}}` : '') +
  ', {"accept": null}]}}';

const LISTED =
  '{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, ' +
  '{"table": {"family": "inet", "name": "zmesh_abcdefghij", "handle": 1}}, ' +
  [
    rule('input', 2, 'zmesh:0123456789:in-spoof'),
    rule('policy-in', 3, 'zmesh:0123456789:pol-established'),
    rule('policy-in', 4, 'zmesh:0123456789:r0-tcp', 3, 180),
    rule('policy-in', 5, 'zmesh:0123456789:r0-icmp', 2, 168),
    rule('policy-in', 6, 'zmesh:0123456789:r2-any', 0, 0),
    rule('policy-in', 7, 'zmesh:0123456789:default-drop', 5, 300),
    rule('policy-fwd', 8, 'zmesh:0123456789:r0-tcp', 10, 600),
    rule('policy-fwd', 9, 'zmesh:0123456789:r11-udp', 1, 40),
    rule('policy-fwd', 10, 'zmesh:0123456789:default-drop', 7, 420),
    // Not counted: another chain, no tag, a tag that is not a policy rule's.
    rule('forward', 11, 'zmesh:0123456789:r0-tcp', 99, 99),
    rule('policy-fwd', 12, null, 99, 99),
    rule('policy-fwd', 13, 'zmesh:0123456789:r0-sctp', 99, 99),
  ].join(', ') +
  ']}';

test('nft -j: rules keep their counter; policyCounters sums both chains and every protocol per rule', () => {
  const rules = parseNftRuleset(LISTED)[0].rules;
  assert.deepEqual(rules.slice(0, 3), [
    { chain: 'input', handle: 2, comment: 'zmesh:0123456789:in-spoof', verdict: 'accept' },
    { chain: 'policy-in', handle: 3, comment: 'zmesh:0123456789:pol-established', verdict: 'accept' },
    { chain: 'policy-in', handle: 4, comment: 'zmesh:0123456789:r0-tcp', counter: { packets: 3, bytes: 180 }, verdict: 'accept' },
  ]);
  assert.deepEqual(policyCounters(rules), {
    rules: [
      { index: 0, packets: 15, bytes: 948 },
      { index: 2, packets: 0, bytes: 0 },
      { index: 11, packets: 1, bytes: 40 },
    ],
    default: { action: 'drop', packets: 12, bytes: 720 },
  });
  const allow: NftRule[] = [{ chain: 'policy-in', handle: 1, comment: 'zmesh:0123456789:default-allow', counter: { packets: 4, bytes: 400 } }];
  assert.deepEqual(policyCounters(allow), { rules: [], default: { action: 'accept', packets: 4, bytes: 400 } });
  assert.equal(policyCounters(rules.slice(0, 2)), null, 'no policy rule with a counter: no policy');
  // The agent's view of the driver's: passed through as is.
  const base = { networkId: 'abcdefghij', namespace: 'n-abcdefghij', exists: true, links: [], routes: [], wireguard: null, nft: [], daemon: null };
  const counters = policyCounters(rules)!;
  assert.deepEqual(toActualNetwork({ ...base, policy: counters } as unknown as ActualResource).policy, counters);
  assert.equal('policy' in toActualNetwork(base as unknown as ActualResource), false);
});

/** The fake OS, with counters on the policy rules it lists (as the kernel would count them). */
class CountingOs extends FakeOs {
  counts = new Map<string, [number, number]>();
  override async run(argv: string[], opts: RunOptions): Promise<RunResult> {
    const a = argv.join(' ');
    const r = await super.run(argv, opts);
    if (a !== 'nft -j list ruleset' || !opts.netns) return r;
    const j = JSON.parse(r.stdout) as { nftables: { chain?: { name: string }; rule?: { chain: string; comment?: string; expr: unknown[] } }[] };
    for (const item of j.nftables) {
      if (!item.rule) continue;
      const tag = item.rule.comment?.split(':')[2];
      if (tag && /^(r\d+-|default-)/.test(tag)) {
        const [p, b] = this.counts.get(`${item.rule.chain} ${tag}`) ?? [0, 0];
        item.rule.expr = [{ counter: { packets: p, bytes: b } }, { accept: null }];
      }
    }
    return { ...r, stdout: JSON.stringify(j) };
  }
}

test('the driver reads the policy counters of the tenant table (fake OS)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-polc-'));
  try {
    const os = new CountingOs();
    const driver = new Driver({ runner: os, backend: 'kernel', stateDir: dir, socketDir: join(dir, 'wg'), clock: () => 1_700_000_000_000 });
    const n = handPlan({ ipRange: '10.7.0.0/16', nodes: [{ node: 'a', underlay: '192.0.2.10' }, { node: 'b', underlay: '192.0.2.11' }] });
    const members = { nodes: { a: ['10.7.1.1/32', '10.7.1.254/32'], b: ['10.7.2.1/32', '10.7.2.254/32'] }, workloads: { db: '10.7.1.2/32' }, devices: {} };
    const policy = compilePolicy(
      { default: 'deny', rules: [{ from: ['node:b'], to: ['workload:db'], ports: ['tcp/5432', 'icmp'] }, { from: ['any'], to: ['node:b'], ports: ['any'] }] },
      '10.7.0.0/16',
      members,
      { workloads: {}, devices: {} },
      { node: members.nodes.a, workloads: ['db'], devices: [] },
    );
    assert.deepEqual(policy.rules.map((r) => r.index), [0], 'rule 1 guards nothing on a');
    const d = { ...n.desired.get('a')!, policy };
    const rep = await driver.apply([d], n.identity.get('a')!);
    assert.ok(rep.ok, JSON.stringify(rep.resources[0].failures));
    os.counts.set('policy-fwd r0-tcp', [4, 240]).set('policy-fwd r0-icmp', [1, 84]).set('policy-in r0-tcp', [0, 0]).set('policy-fwd default-drop', [6, 360]).set('policy-in default-drop', [2, 120]);
    const actual = await driver.readActual(n.networkId);
    assert.deepEqual(actual.policy, { rules: [{ index: 0, packets: 5, bytes: 324 }], default: { action: 'drop', packets: 8, bytes: 480 } });
    const without = await driver.apply([n.desired.get('a')!], n.identity.get('a')!);
    assert.ok(without.ok);
    assert.equal('policy' in (await driver.readActual(n.networkId)), false, 'no policy: no counters');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---- admin API, metrics, CLI ---------------------------------------------------------------------------

const COUNTERS: NonNullable<ActualNetwork['policy']> = { rules: [{ index: 2, packets: 12, bytes: 720 }], default: { action: 'drop', packets: 40, bytes: 3400 } };

class CountingDriver extends FakeDriver {
  override async actual(networkId: string): Promise<ActualNetwork | null> {
    const a = await super.actual(networkId);
    return a && this.current.get(networkId)?.policy ? { ...a, policy: COUNTERS } : a;
  }
}

test('GET /v1/policy/check and /v1/policy; schema limits; metrics with the rule counters (promtool)', async () => {
  const bed = await bedOn('node-a', BP, new CountingDriver());
  const app = buildAdminApp({ agent: bed.agent, readOnly: true });
  try {
    const q = (o: Record<string, string>) => `/v1/policy/check?${new URLSearchParams(o)}`;
    const ok = await app.inject({ url: q({ network: 'net', from: 'web-1', to: 'db', port: 'tcp/5432' }) });
    assert.equal(ok.statusCode, 200);
    assert.deepEqual([ok.json().allowed, ok.json().rule, ok.json().enforcedOn], [true, 0, 'node-b']);
    const denied = await app.inject({ url: q({ network: 'net', from: 'web-1', to: 'db', port: 'tcp/1' }) });
    assert.deepEqual([denied.statusCode, denied.json().allowed, denied.json().by], [200, false, 'default']);
    const bad = await app.inject({ url: q({ network: 'net', from: 'web-1', to: 'ghost' }) });
    assert.deepEqual([bad.statusCode, bad.json().error.code], [400, 'E_FLOW']);
    assert.equal(bad.json().error.problems[0].hint, 'name workload:NAME, device:NAME, node:NAME (or a bare name) or an address inside the range; ports are tcp/N, udp/N or icmp');
    for (const o of <Record<string, string>[]>[{ network: 'net', from: 'web-1' }, { network: 'net', from: 'x'.repeat(201), to: 'db' }, { network: 'net', from: 'a', to: 'db', port: 'tcp/' + '1'.repeat(20) }]) {
      const r = await app.inject({ url: q(o) });
      assert.deepEqual([r.statusCode, r.json().error.code], [400, 'E_REQUEST'], JSON.stringify(o).slice(0, 80));
    }
    assert.equal((await app.inject({ url: q({ network: 'nope', from: 'a', to: 'b' }) })).statusCode, 404);

    const view = await app.inject({ url: '/v1/policy?network=net' });
    assert.equal(view.statusCode, 200);
    assert.deepEqual(view.json(), {
      network: 'acme/shop/net',
      networkId: PLAN.networks[0].id,
      node: 'node-a',
      policy: {
        default: 'deny',
        defaultAction: 'drop',
        counted: true,
        // Dual-stack (the planner's default): the same destinations' IPv6 addresses are guarded too.
        local: ['10.1.0.1/32', '10.1.0.2/32', '10.1.0.254/32', '10.1.4.1/32', 'fdc2:65b9:9864::1/128', 'fdc2:65b9:9864::2/128', 'fdc2:65b9:9864::fe/128', 'fdc2:65b9:9864:4::1/128'],
        rules: [
          { index: 0, from: ['group:web'], to: ['workload:db'], ports: ['tcp/5432'], here: false, packets: null, bytes: null },
          { index: 1, from: ['group:admins'], to: ['any'], ports: ['any'], here: true, packets: 0, bytes: 0 },
          { index: 2, from: ['any'], to: ['workload:web-1'], ports: ['tcp/443', 'icmp'], here: true, packets: 12, bytes: 720 },
          { index: 3, from: ['node:node-a'], to: ['node:node-h'], ports: ['udp/53'], here: false, packets: null, bytes: null },
        ],
        defaultPackets: 40,
        defaultBytes: 3400,
      },
    });
    assert.equal((await app.inject({ url: '/v1/policy' })).statusCode, 400);
    assert.equal((await app.inject({ url: '/v1/policy?network=nope' })).statusCode, 404);
    // The network's detail carries the counters too.
    assert.deepEqual((await app.inject({ url: '/v1/networks/net' })).json().actual.policy, COUNTERS);

    const m = await app.inject({ url: '/v1/metrics' });
    const lines = m.body.split('\n').filter((l) => l.includes('zmesh_policy_'));
    assert.deepEqual(lines, [
      '# HELP zmesh_policy_packets_total Packets of new flows a network policy rule (or the default) accepted or dropped on this node.',
      '# TYPE zmesh_policy_packets_total counter',
      'zmesh_policy_packets_total{network="acme/shop/net",rule="2",action="accept"} 12',
      'zmesh_policy_packets_total{network="acme/shop/net",rule="default",action="drop"} 40',
      '# HELP zmesh_policy_bytes_total Bytes of new flows a network policy rule (or the default) accepted or dropped on this node.',
      '# TYPE zmesh_policy_bytes_total counter',
      'zmesh_policy_bytes_total{network="acme/shop/net",rule="2",action="accept"} 720',
      'zmesh_policy_bytes_total{network="acme/shop/net",rule="default",action="drop"} 3400',
    ]);
    execFileSync('promtool', ['check', 'metrics'], { input: m.body });
  } finally {
    await app.close();
    bed.close();
  }
});

test('metrics: label values escaped; a network without counters has no policy series', () => {
  const base = { blueprint: 'b', id: 'abcdefghij', ipRange: '10.1.0.0/16', subnet: '10.1.0.0/24', listenPort: 1, peers: 0, generation: 1, applied: true, lastError: null };
  const text = renderMetrics({
    node: 'n',
    networks: [
      { ...base, tenant: 'a"c\\me', name: 'n\n1' },
      { ...base, tenant: 't', name: 'plain', id: 'bbbbbbbbbb' },
    ],
    actual: new Map([
      ['abcdefghij', { networkId: 'abcdefghij', namespace: 'n-abcdefghij', namespaceExists: true, interfaces: [], routes: [], wireguard: null, firewall: {}, policy: { rules: [{ index: 7, packets: 1, bytes: 2 }], default: { action: 'accept', packets: 3, bytes: 4 } } }],
      ['bbbbbbbbbb', null],
    ]),
    peerNames: new Map(),
    reconciles: 0,
    reconcileErrors: 0,
    last: null,
    nowSec: 0,
  });
  assert.deepEqual(
    text.split('\n').filter((l) => /^zmesh_policy_/.test(l)),
    [
      'zmesh_policy_packets_total{network="a\\"c\\\\me/b/n\\n1",rule="7",action="accept"} 1',
      'zmesh_policy_packets_total{network="a\\"c\\\\me/b/n\\n1",rule="default",action="accept"} 3',
      'zmesh_policy_bytes_total{network="a\\"c\\\\me/b/n\\n1",rule="7",action="accept"} 2',
      'zmesh_policy_bytes_total{network="a\\"c\\\\me/b/n\\n1",rule="default",action="accept"} 4',
    ],
  );
  execFileSync('promtool', ['check', 'metrics'], { input: text });
});

test('zmesh policy, net show and diagnose A B: exact text', async () => {
  const bed = await bedOn('node-a', BP, new CountingDriver());
  try {
    const v = await bed.agent.policy('net');
    assert.equal(
      policyTable(v),
      [
        'policy of acme/shop/net on node-a: default deny; guards 10.1.0.1/32 10.1.0.2/32 10.1.0.254/32 10.1.4.1/32 fdc2:65b9:9864::1/128 fdc2:65b9:9864::2/128 fdc2:65b9:9864::fe/128 fdc2:65b9:9864:4::1/128',
        '',
        'RULE            FROM          TO              PORTS         PACKETS  BYTES',
        '0               group:web     workload:db     tcp/5432      -        -',
        '1               group:admins  any             any           0        0 B',
        '2               any           workload:web-1  tcp/443,icmp  12       720 B',
        '3               node:node-a   node:node-h     udp/53        -        -',
        'default (drop)  any           any             any           40       3.3 KiB',
        '',
        '-: the rule guards no destination of this node (its node counts it)',
        'counted since the tenant table was last written (a policy change starts again)',
      ].join('\n'),
    );
    assert.equal(policyTable({ ...v, policy: null }), 'network acme/shop/net has no policy: everything inside the network is allowed');
    const d = (await bed.agent.network('net')) as NetworkDetail;
    assert.equal(policyLine(d), 'policy: default deny, 2 rule(s) guard 8 address(es) here; accepted 12 packet(s) by rules, dropped 40 by the default (zmesh policy net)');
    assert.equal(policyLine({ ...d, actual: null }), 'policy: default deny, 2 rule(s) guard 8 address(es) here; counters not read (zmesh policy net)');
    assert.equal(policyLine({ ...d, desired: { ...d.desired, policy: undefined } }), null);
    assert.equal(policyCheckText(bed.agent.policyCheck('net', 'db', 'web-1', 'tcp/22'), k).split('\n').at(-1), 'verdict: DENIED by the default (deny): no rule allows it');
  } finally {
    bed.close();
  }
});

test('zmesh diagnose over the socket: exit 0 allowed, 1 denied, 2 bad input; the peer form still works', async () => {
  const bed = await bedOn('node-a');
  const app = buildAdminApp({ agent: bed.agent, readOnly: true });
  const sock = join(bed.dir, 'test.sock');
  await app.listen({ path: sock });
  const out: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  const errWrite = process.stderr.write.bind(process.stderr);
  const run = async (...args: string[]) => {
    out.length = 0;
    process.exitCode = undefined;
    process.stdout.write = ((s: string) => (out.push(String(s)), true)) as typeof process.stdout.write;
    process.stderr.write = ((s: string) => (out.push(String(s)), true)) as typeof process.stderr.write;
    try {
      const program = await buildProgram();
      program.configureOutput({ writeErr: (s) => out.push(s), writeOut: (s) => out.push(s) });
      for (const c of program.commands) c.configureOutput({ writeErr: (s) => out.push(s), writeOut: (s) => out.push(s) });
      await runMain(program, ['node', 'zmesh', '--socket', sock, ...args]);
    } finally {
      process.stdout.write = write;
      process.stderr.write = errWrite;
    }
    const code = process.exitCode ?? 0;
    process.exitCode = undefined;
    return { code, text: out.join('') };
  };
  const prevColor = process.env.NO_COLOR;
  process.env.NO_COLOR = '1';
  try {
    const allowed = await run('diagnose', 'net', 'web-1', 'db', '--port', 'tcp/5432');
    assert.equal(allowed.code, 0, allowed.text);
    assert.equal(allowed.text.split('\n').at(-2), 'verdict: ALLOWED by rule 0: from group:web to workload:db ports tcp/5432');
    const denied = await run('diagnose', 'net', 'web-1', 'db', '--port', 'tcp/5433');
    assert.equal(denied.code, 1, denied.text);
    const json = await run('diagnose', 'net', 'web-1', 'db', '--json');
    assert.equal(json.code, 1);
    assert.deepEqual([JSON.parse(json.text).by, JSON.parse(json.text).flow], ['default', { proto: 'icmp', port: null }]);
    const bad = await run('diagnose', 'net', 'web-1', 'ghost');
    assert.equal(bad.code, 2, bad.text);
    assert.match(bad.text, /E_FLOW/);
    assert.equal((await run('diagnose', 'net', 'web-1', 'db', '--port', 'sctp/1')).code, 2);
    const usage = await run('diagnose', 'net', 'node-b', '--port', 'tcp/1');
    assert.equal(usage.code, 2);
    assert.match(usage.text, /--port needs a flow/);
    // The peer form: checks, exit 1 while node-h has no handshake (the fake's), 0 for node-b.
    assert.equal((await run('diagnose', 'net', 'node-b')).code, 0);
    assert.equal((await run('diagnose', 'net')).code, 1);
    const pol = await run('policy', 'net');
    assert.equal(pol.code, 0);
    assert.match(pol.text, /^policy of acme\/shop\/net on node-a: default deny/);
  } finally {
    if (prevColor === undefined) delete process.env.NO_COLOR;
    else process.env.NO_COLOR = prevColor;
    await app.close();
    bed.close();
  }
});
