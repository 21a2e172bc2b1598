// Labs, the pure parts: spec parsing, stable layouts, the matrix's identity rules, probe parsing, rulesets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ValidationError } from '../../src/errors.ts';
import { loadLabSpec, parseLabSpec } from '../../labs/spec.ts';
import { labPrefix, layoutFor } from '../../labs/layout.ts';
import { judge, parseProbe } from '../../labs/matrix.ts';
import type { Endpoint } from '../../labs/endpoints.ts';
import { lossRuleset, effective } from '../../labs/shaping.ts';
import { natRuleset } from '../../labs/underlay.ts';
import { tunnelHealth } from '../../labs/graph.ts';

const read = (p: string) => readFileSync(p, 'utf8');
const labs = (p: string) => fileURLToPath(new URL(`../../labs/${p}`, import.meta.url));

function problems(text: string): string[] {
  try {
    parseLabSpec(text, { baseDir: '/nonexistent', readFile: read });
  } catch (e) {
    assert.ok(e instanceof ValidationError);
    return e.problems.map((p) => `${p.code} ${p.path}`);
  }
  return [];
}

test('the quickstart and the six-node example parse', () => {
  const q = loadLabSpec(labs('quickstart.yaml'), read);
  assert.equal(q.name, 'quickstart');
  assert.deepEqual(q.nodes.map((n) => [n.name, n.nat ?? 'public']), [['node-a', 'public'], ['node-b', 'public'], ['node-c', 'home']]);
  assert.deepEqual(q.tenants.map((t) => t.blueprints[0].blueprint.networks[0].ipRange), ['10.1.0.0/16', '10.1.0.0/16']);
  assert.deepEqual(q.devices, [{ name: 'laptop', tenant: 'blue', blueprint: 'office', network: 'lan', nat: undefined }]);
  const six = loadLabSpec(labs('examples/six-nodes.yaml'), read, 'six-x');
  assert.equal(six.name, 'six-x');
  assert.equal(six.nodes.length, 6);
  assert.equal(six.nats.length, 2);
  assert.deepEqual(six.nodes.find((n) => n.name === 'pub-2')!.shaping, { delayMs: 5, rateKbit: 50000 });
  assert.deepEqual(six.nodes.find((n) => n.name === 'hid-2')!.shaping, { lossPct: 0.5 });
});

test('spec problems are all reported, with paths', () => {
  const p = problems(`
name: Bad_Name
nodes:
  - name: a
    nat: nowhere
    shaping: {delay: fast, jitter: 1}
tenants:
  - name: t
    blueprints:
      - name: bp
        networks: [{name: n, ipRange: 10.0.0.0/16, nodes: [a, ghost]}]
devices:
  - {name: d, tenant: t, network: n}
extra: 1
`);
  assert.deepEqual(p.sort(), [
    'E_DEVICE_NETWORK devices[0]',
    'E_LAB_NAME name',
    'E_NAT_UNKNOWN nodes[0].nat',
    'E_NODE_UNKNOWN tenants.t.bp.n',
    'E_SHAPING nodes[0].shaping.delay',
    'E_UNKNOWN_FIELD extra',
    'E_UNKNOWN_FIELD nodes[0].shaping.jitter',
  ]);
});

test('layouts are stable: kept members keep addresses and indexes, newcomers take free slots', () => {
  const spec = (nodes: string) =>
    parseLabSpec(`name: l\nnats: [{name: home}, {name: work}]\nnodes: [${nodes}]\n`, { baseDir: '/', readFile: read });
  const a = layoutFor(spec('{name: n1}, {name: n2, nat: home}, {name: n3}'));
  assert.equal(a.internetNs, `${labPrefix('l')}inet`);
  assert.deepEqual(a.nats.map((n) => [n.name, n.wanAddress, n.lan]), [['home', '203.0.113.2', '198.51.100.0/27'], ['work', '203.0.113.3', '198.51.100.32/27']]);
  assert.deepEqual(a.nodes.map((n) => [n.name, n.address, n.gateway, n.port, n.ns]), [
    ['n1', '203.0.113.4', '203.0.113.1', 'nd3', 'zl-l_n-n1'],
    ['n2', '198.51.100.2', '198.51.100.1', 'nd4', 'zl-l_n-n2'],
    ['n3', '203.0.113.5', '203.0.113.1', 'nd5', 'zl-l_n-n3'],
  ]);
  // Remove n1, add n0 first and n4 behind work: n2 and n3 keep everything, n0 takes n1's old slots.
  const b = layoutFor(spec('{name: n0}, {name: n2, nat: home}, {name: n3}, {name: n4, nat: work}'), a);
  assert.deepEqual(b.nodes.map((n) => [n.name, n.address, n.port]), [
    ['n0', '203.0.113.4', 'nd3'],
    ['n2', '198.51.100.2', 'nd4'],
    ['n3', '203.0.113.5', 'nd5'],
    ['n4', '198.51.100.34', 'nd6'],
  ]);
});

const ep = (id: string, address: string): Endpoint => {
  const [net, host] = id.split('@');
  return { id, net, tenant: net.split('/')[0], kind: 'resource', host, networkId: 'aaaaaaaaaa', address, owns: [address] };
};

test('the matrix decides by identity: an own resource answering at the same address is not a breach', () => {
  const xa = ep('x/b/n@a', '10.1.0.1');
  const xb = ep('x/b/n@b', '10.1.1.1');
  const yb = ep('y/b/n@b', '10.1.1.1');
  const yc = ep('y/b/n@c', '10.1.2.1');
  const own = new Set(['10.1.0.1', '10.1.1.1']);
  // Same network, target answers: reach.
  assert.equal(judge(xa, xb, { ping: true, rttMs: 1.5, seen: xb.id }, own).ok, true);
  assert.equal(judge(xa, xb, { ping: true, rttMs: 1.5, seen: xb.id }, own).rttMs, 1.5);
  // A reply that names someone else is not reaching the target.
  assert.equal(judge(xa, xb, { ping: true, rttMs: 1, seen: null }, own).ok, false);
  // Other tenant with the same address: X's own resource answers; isolated holds.
  const iso = judge(xa, yb, { ping: true, rttMs: 1, seen: xb.id }, own);
  assert.deepEqual([iso.expect, iso.ok, iso.reached, iso.rttMs], ['isolated', true, false, null]);
  // Y's resource answering X is a breach, as is any ping answered at an address X's network does not have.
  assert.equal(judge(xa, yb, { ping: true, rttMs: 1, seen: yb.id }, own).ok, false);
  assert.equal(judge(xa, yc, { ping: true, rttMs: 1, seen: null }, own).ok, false);
  assert.equal(judge(xa, yc, { ping: false, rttMs: null, seen: null }, own).ok, true);
  // No probe at all (namespace missing): reach fails, isolation holds.
  assert.equal(judge(xa, xb, undefined, own, 'gone').ok, false);
  assert.equal(judge(xa, yc, undefined, own, 'gone').ok, true);
});

test('probe output parses into ping and identity per address', () => {
  const m = parseProbe('P 10.1.0.1 0.412\nT 10.1.0.1 zmesh-lab-echo x/b/n@a\nP 10.1.9.1 -\nT 10.1.9.1 -\ngarbage\n');
  assert.deepEqual(m.get('10.1.0.1'), { ping: true, rttMs: 0.412, seen: 'x/b/n@a' });
  assert.deepEqual(m.get('10.1.9.1'), { ping: false, rttMs: null, seen: null });
});

test('rulesets: NAT masquerade with conntrack, loss by numgen, faults over spec shaping', () => {
  const nat = natRuleset();
  assert.match(nat, /oifname "wan" masquerade/);
  assert.match(nat, /policy drop;\n {4}ct state established,related accept\n {4}iifname "lan" oifname "wan" accept/);
  assert.match(lossRuleset(12.5), /oifname "eth0" numgen random mod 10000 < 1250 drop/);
  assert.equal(lossRuleset(undefined), 'table inet zlab_shape\ndelete table inet zlab_shape\n');
  assert.deepEqual(effective({ delayMs: 5, rateKbit: 100 }, { delayMs: 200, lossPct: 10 }), { delayMs: 200, rateKbit: 100, lossPct: 10 });
  assert.deepEqual(effective({ delayMs: 5, lossPct: 1 }, { lossPct: 0 }), { delayMs: 5, lossPct: undefined });
});

test('tunnel health takes the better end', () => {
  assert.equal(tunnelHealth([undefined, undefined]), 'unknown');
  assert.equal(tunnelHealth([null, undefined]), 'down');
  assert.equal(tunnelHealth([null, 12]), 'ok');
  assert.equal(tunnelHealth([400, 900]), 'stale');
});
