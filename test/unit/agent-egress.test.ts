// The agent's side of egress: the config's `egress:` section (checked with clear errors), the control plane's
// hosts (looked up at each apply, the last addresses kept when a lookup fails), and the devices that may use a
// node's egress — taken from the signed blueprint and handed to the data plane per network.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAgentConfig } from '../../src/agent/config.ts';
import { controlPlaneHosts, NetnsDriverPort } from '../../src/agent/netns-adapter.ts';
import { X25519Secret } from '../../src/crypto/keys.ts';
import { ValidationError } from '../../src/errors.ts';
import { blueprint, identity, net } from '../helpers/fixtures.ts';
import { agentBed, part, planFor, signed } from '../helpers/agent-fixtures.ts';

const BASE = 'nodeId: node-a\nidentityKeyFile: /tmp/x.key\nstateDir: /tmp/zmesh-x\n';

function problems(text: string): string[][] {
  try {
    parseAgentConfig(BASE + text, '/etc/zmesh');
  } catch (e) {
    assert.ok(e instanceof ValidationError);
    return e.problems.map((p) => [p.code, p.path, p.message]);
  }
  return [];
}

test('agent config: egress allow/deny are CIDR lists of either family; absent means none', () => {
  assert.deepEqual(parseAgentConfig(BASE, '/etc/zmesh').egress, { allow: [], deny: [] });
  const c = parseAgentConfig(BASE + 'egress:\n  allow: [192.168.1.53/32, 203.0.113.1/32]\n  deny: [198.18.0.0/15, "2001:db8:5::/48"]\n', '/etc/zmesh');
  assert.deepEqual(c.egress, { allow: ['192.168.1.53/32', '203.0.113.1/32'], deny: ['198.18.0.0/15', '2001:db8:5::/48'] });
  assert.deepEqual(problems('egress: [10.0.0.0/8]\n'), [['E_EGRESS_CONFIG', 'egress', 'egress is a mapping with allow and deny lists of CIDRs']]);
  assert.deepEqual(problems('egress: {allow: [10.1.2.3/8, 10.0.0.1], deny: 10.0.0.0/8, permit: []}\n'), [
    ['E_UNKNOWN_FIELD', 'egress.permit', 'unknown field egress.permit'],
    ['E_EGRESS_CONFIG', 'egress.allow[0]', '10.1.2.3/8 has host bits set; did you mean 10.0.0.0/8?'],
    ['E_EGRESS_CONFIG', 'egress.allow[1]', '"10.0.0.1" is not a CIDR like 192.168.10.0/24 or 2001:db8:5::/48'],
    ['E_EGRESS_CONFIG', 'egress.deny', 'egress.deny is a list of CIDRs'],
  ]);
});

test('agent config: dnsUpstreams are at most 3 IPv4 addresses egress can reach; a private one only when egress.allow opens it', () => {
  assert.equal(parseAgentConfig(BASE, '/etc/zmesh').dnsUpstreams, undefined);
  assert.deepEqual(parseAgentConfig(BASE + 'dnsUpstreams: [9.9.9.9, 203.0.113.53]\n', '/etc/zmesh').dnsUpstreams, ['9.9.9.9', '203.0.113.53']);
  assert.deepEqual(parseAgentConfig(BASE + 'dnsUpstreams: [10.0.0.2]\negress: {allow: [10.0.0.0/24]}\n', '/etc/zmesh').dnsUpstreams, ['10.0.0.2']);
  assert.deepEqual(problems('dnsUpstreams: [127.0.0.53, 169.254.169.253, 10.0.0.2, "2001:db8::53", 9.9.9.9, 9.9.9.9]\n'), [['E_DNS_UPSTREAM', 'dnsUpstreams', 'dnsUpstreams is a list of at most 3 IPv4 addresses']]);
  assert.deepEqual(problems('dnsUpstreams: [127.0.0.53, 169.254.169.253, 10.0.0.2]\n'), [
    ['E_DNS_UPSTREAM', 'dnsUpstreams[0]', "127.0.0.53 is loopback, unspecified, link-local, multicast or reserved: a tenant's namespace never reaches it"],
    ['E_DNS_UPSTREAM', 'dnsUpstreams[1]', "169.254.169.253 is loopback, unspecified, link-local, multicast or reserved: a tenant's namespace never reaches it"],
    ['E_DNS_UPSTREAM', 'dnsUpstreams[2]', '10.0.0.2 is a private or special address that egress blocks'],
  ]);
  assert.deepEqual(problems('dnsUpstreams: ["2001:db8::53", 9.9.9.9, 9.9.9.9]\n'), [
    ['E_DNS_UPSTREAM', 'dnsUpstreams[0]', '"2001:db8::53" is not an IPv4 address (upstreams are reached over IPv4, which every network with egress has)'],
    ['E_DNS_UPSTREAM', 'dnsUpstreams[2]', '9.9.9.9 is listed twice'],
  ]);
  // allow cannot open loopback; deny wins over allow.
  assert.deepEqual(problems('dnsUpstreams: [127.0.0.53, 10.0.0.2]\negress: {allow: [127.0.0.0/8, 10.0.0.0/24], deny: [10.0.0.2/32]}\n'), [
    ['E_DNS_UPSTREAM', 'dnsUpstreams[0]', "127.0.0.53 is loopback, unspecified, link-local, multicast or reserved: a tenant's namespace never reaches it"],
    ['E_DNS_UPSTREAM', 'dnsUpstreams[1]', '10.0.0.2 is in egress.deny: forwarded queries could not reach it'],
  ]);
  assert.deepEqual(problems('dnsUpstreams: 9.9.9.9\n'), [['E_DNS_UPSTREAM', 'dnsUpstreams', 'dnsUpstreams is a list of at most 3 IPv4 addresses']]);
  // A public resolver the operator denied.
  assert.deepEqual(problems('dnsUpstreams: [9.9.9.9]\negress: {deny: [9.9.0.0/16]}\n').map((p) => p[2]), ['9.9.9.9 is in egress.deny: forwarded queries could not reach it']);
});

test("the control plane: the etcd endpoints' hosts, names looked up at each apply and kept when a lookup fails", async () => {
  assert.deepEqual(controlPlaneHosts({}), []);
  assert.deepEqual(
    controlPlaneHosts({ etcd: { endpoints: ['https://203.0.113.1:2379', 'http://[2001:db8::7]:2379', 'https://etcd.example:2379/'], leaseTtlSec: 10, reservedPorts: [], controllerKeys: [] } }),
    ['2001:db8::7', '203.0.113.1', 'etcd.example'],
  );
  let answer: string[] | Error = ['203.0.113.5', '2001:db8::5'];
  const asked: string[] = [];
  const port = new NetnsDriverPort(
    new X25519Secret(identity('node-a').privateKey),
    { backend: 'kernel' },
    undefined,
    { allow: ['10.9.0.0/16'], deny: [], controlPlane: ['203.0.113.1', 'etcd.example'], nodeAddresses: ['198.51.100.10'] },
    async (h) => {
      asked.push(h);
      if (answer instanceof Error) throw answer;
      return answer;
    },
  );
  assert.deepEqual(await port.egressPolicy(), { allow: ['10.9.0.0/16'], deny: [], controlPlane: ['203.0.113.1', '203.0.113.5', '2001:db8::5'], nodeAddresses: ['198.51.100.10'] });
  answer = new Error('SERVFAIL');
  assert.deepEqual((await port.egressPolicy()).controlPlane, ['203.0.113.1', '203.0.113.5', '2001:db8::5'], 'the last addresses stay blocked');
  answer = ['203.0.113.6'];
  assert.deepEqual((await port.egressPolicy()).controlPlane, ['203.0.113.1', '203.0.113.6']);
  assert.deepEqual(asked, ['etcd.example', 'etcd.example', 'etcd.example'], 'IP literals are never looked up');
});

test('devices with egress reach the data plane from the signed blueprint, on the node that serves them only', async () => {
  const nodes = ['node-a', 'node-b'];
  const bp = blueprint([net({ nodes, egress: true, access: [{ name: 'laptop', egress: true }, { name: 'phone' }] })]);
  const plan = planFor(bp, nodes);
  const laptop = plan.networks[0].access.find((d) => d.name === 'laptop')!;
  for (const node of nodes) {
    const bed = agentBed(node);
    try {
      await bed.agent.submit(signed(bp), part(plan, node));
      const d = bed.driver.calls.at(-1)![0];
      assert.deepEqual(d.egressDevices, node === laptop.via ? [laptop.subnet] : [], node);
    } finally {
      bed.close();
    }
  }
  // Without egress on the device, nothing (the plan alone cannot grant it: the node reads the blueprint).
  const bp2 = blueprint([net({ nodes, egress: true, access: [{ name: 'laptop' }, { name: 'phone' }] })]);
  const plan2 = planFor(bp2, nodes);
  const bed = agentBed(plan2.networks[0].access[0].via);
  try {
    await bed.agent.submit(signed(bp2), part(plan2, plan2.networks[0].access[0].via));
    assert.deepEqual(bed.driver.calls.at(-1)![0].egressDevices, []);
  } finally {
    bed.close();
  }
});
