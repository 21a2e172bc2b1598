// Names through the agent (docs/dns.md): the part carries them, the agent checks them against the signed
// blueprint (another tenant's or network's names refused), GET /v1/networks/:name/dns lists them, and the
// diagnose "resolver" check judges what the resolver answers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildAdminApp } from '../../src/admin/app.ts';
import { resolverCheck } from '../../src/agent/diagnose.ts';
import type { DesiredNetwork } from '../../src/agent/ports.ts';
import type { WorkloadSpec } from '../../src/blueprint/types.ts';
import { blueprint, net } from '../helpers/fixtures.ts';
import { agentBed, part, planFor, signed } from '../helpers/agent-fixtures.ts';

const wl = (name: string, node: string, network = 'net'): WorkloadSpec => ({ name, node, image: 'busybox', command: ['sleep', '1d'], network: { name: network }, cpu: 1, memory: 64 << 20, volumes: [] });
const nodes = ['node-a', 'node-b'];
const bp = blueprint([net({ nodes, ipv6: false }), net({ name: 'other', nodes, ipRange: '10.2.0.0/16', ipv6: false })], { workloads: [wl('web', 'node-a'), wl('db', 'node-b'), wl('hidden', 'node-b', 'other')] });
const evil = blueprint([net({ nodes, ipv6: false })], { tenant: 'globex', name: 'ops', workloads: [wl('secret', 'node-b')] });

test('the part carries the names; the agent serves them; GET /v1/networks/:name/dns lists them', async () => {
  const bed = agentBed();
  const app = buildAdminApp({ agent: bed.agent, readOnly: true, bodyLimit: 256 * 1024 });
  try {
    const plan = planFor(bp, nodes);
    const p = part(plan, 'node-a');
    const ip = (w: string) => plan.workloads.find((x) => x.name === w)!.ip;
    assert.deepEqual(p.networks[0].names, {
      workloads: { db: { ip: ip('db') }, web: { ip: ip('web') } },
      devices: {},
      nodes: { 'node-a': { ip: '10.1.0.1' }, 'node-b': { ip: '10.1.1.1' } },
    });
    await bed.agent.submit(signed(bp), p);
    const r = await app.inject({ url: `/v1/networks/${encodeURIComponent('acme/shop/net')}/dns` });
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(r.json(), {
      network: 'acme/shop/net',
      networkId: p.networks[0].id,
      node: 'node-a',
      listen: ['10.1.0.1'],
      resolver: null,
      records: [
        { name: 'db.net', type: 'A', address: ip('db'), kind: 'workload' },
        { name: 'db', type: 'A', address: ip('db'), kind: 'workload' },
        { name: 'web.net', type: 'A', address: ip('web'), kind: 'workload' },
        { name: 'web', type: 'A', address: ip('web'), kind: 'workload' },
        { name: 'node-a.net', type: 'A', address: '10.1.0.1', kind: 'node' },
        { name: 'node-b.net', type: 'A', address: '10.1.1.1', kind: 'node' },
      ],
    });
    // The other network of the same blueprint serves only its own.
    const other = (await app.inject({ url: `/v1/networks/${encodeURIComponent('acme/shop/other')}/dns` })).json();
    assert.deepEqual(other.records.map((x: { name: string }) => x.name), ['hidden.other', 'hidden', 'node-a.other', 'node-b.other']);
    assert.equal((await app.inject({ url: '/v1/networks/nope/dns' })).statusCode, 404);
  } finally {
    await app.close();
    bed.close();
  }
});

test("hostile parts: another tenant's, another network's or a made-up name is refused (E_PART_NAMES), nothing changes", async () => {
  const bed = agentBed();
  try {
    const plan = planFor(bp, nodes);
    const evilPlan = planFor(evil, nodes);
    const secret = evilPlan.workloads[0];
    const tries: [string, (p: ReturnType<typeof part>) => void][] = [
      ["another tenant's workload", (p) => (p.networks[0].names!.workloads.secret = { ip: secret.ip })],
      ["another network's workload", (p) => (p.networks[0].names!.workloads.hidden = { ip: '10.1.1.9' })],
      ['a node the network does not span', (p) => (p.networks[0].names!.nodes['node-z'] = { ip: '10.1.9.1' })],
      ['an address outside the range', (p) => (p.networks[0].names!.workloads.db = { ip: '192.168.1.1' })],
      ['an IPv6 address on an IPv4-only network', (p) => (p.networks[0].names!.workloads.db = { ip: '10.1.1.2', ip6: 'fd00::2' })],
      ['this node elsewhere than its gateway', (p) => (p.networks[0].names!.nodes['node-a'] = { ip: '10.1.1.1' })],
      ['a config line in a name', (p) => (p.networks[0].names!.workloads['x\nserver=8.8.8.8'] = { ip: '10.1.1.2' })],
      ['not an object', (p) => ((p.networks[0] as { names: unknown }).names = 'db 10.1.1.2')],
      ['a workload of this node under another address', (p) => (p.networks[0].names!.workloads.web = { ip: '10.1.0.9' })],
    ];
    for (const [what, tamper] of tries) {
      const p = part(plan, 'node-a');
      tamper(p);
      await assert.rejects(bed.agent.submit(signed(bp), p), (e: { problems?: { code: string }[] }) => {
        assert.deepEqual(e.problems?.map((x) => x.code), ['E_PART_NAMES'], what);
        return true;
      });
      assert.equal(bed.agent.networks().length, 0, what);
    }
  } finally {
    bed.close();
  }
});

test('diagnose resolver check: pass, dead, silent, wrong answer, forwarding, none', async () => {
  const desired = {
    networkName: 'net',
    names: { workloads: {}, devices: {}, nodes: { 'node-a': { ip: '10.1.0.1', ip6: 'fd00:1::1' } } },
    resource: { node: 'node-a', gateway: '10.1.0.1', gateway6: 'fd00:1::1' },
  } as unknown as DesiredNetwork;
  const ok = async (name: string, server: string, type: 'A' | 'AAAA') =>
    name === 'node-a.net' ? { answered: true, nxdomain: false, addresses: [type === 'A' ? '10.1.0.1' : 'fd00:1::1'], ms: 1 } : { answered: true, nxdomain: true, addresses: [], ms: 1 };
  const resolver = { pid: 42, alive: true };
  assert.deepEqual(await resolverCheck({ desired, lookup: ok, resolver }), {
    verdict: 'pass',
    detail: 'dnsmasq pid 42 answers node-a.net A 10.1.0.1 (1 ms), node-a.net AAAA fd00:1::1 (1 ms); other names NXDOMAIN',
  });
  assert.deepEqual(await resolverCheck({ desired, lookup: ok, resolver: { pid: 42, alive: false } }), { verdict: 'fail', detail: 'dnsmasq pid 42 is not running (the agent restarts it on its next reconcile)' });
  const silent = async () => ({ answered: false, nxdomain: false, addresses: [], ms: 5000 });
  assert.equal((await resolverCheck({ desired, lookup: silent, resolver })).detail, 'dnsmasq pid 42: no answer on 10.1.0.1 port 53 for node-a.net (the agent restarts a dead resolver on its next reconcile)');
  const wrong = async () => ({ answered: true, nxdomain: true, addresses: [], ms: 1 });
  assert.equal((await resolverCheck({ desired, lookup: wrong, resolver })).detail, 'dnsmasq pid 42 on 10.1.0.1: node-a.net A is NXDOMAIN, expected 10.1.0.1');
  const forwards = async (name: string, s: string, t: 'A' | 'AAAA') => (name === 'zmesh-probe.invalid' ? { answered: true, nxdomain: false, addresses: ['1.2.3.4'], ms: 1 } : ok(name, s, t));
  assert.equal((await resolverCheck({ desired, lookup: forwards, resolver })).verdict, 'fail');
  assert.deepEqual(await resolverCheck({ desired }), { verdict: 'skip', detail: 'this agent runs no resolver for the network' });
});
