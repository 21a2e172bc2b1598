// Forwarding through a real agent (docs/dns.md#forwarding): a throwaway host with an uplink to its own little
// "internet" (a namespace holding a dnsmasq at 198.51.100.53 that logs every query), an agent whose config names
// that resolver in `dnsUpstreams`, and two tenants on the node: acme's network has egress, globex's has not.
// acme's resolver forwards the names it does not serve, by acme's egress (the upstream sees the node's address);
// its own zone, single labels and private reverse lookups never leave; globex's resolver forwards nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { call } from '../../src/admin/client.ts';
import type { WorkloadSpec } from '../../src/blueprint/types.ts';
import { blueprint, net } from '../helpers/fixtures.ts';
import { part, planFor, signed } from '../helpers/agent-fixtures.ts';
import { destroyAgentHost, makeAgentHost, startAgent, waitFor } from '../helpers/agent-host.ts';

const UPSTREAM = '198.51.100.53';
const wl = (name: string, node: string): WorkloadSpec => ({ name, node, image: 'busybox', command: ['sleep', '1d'], network: { name: 'net' }, cpu: 1, memory: 64 << 20, volumes: [] });
const nodes = ['node-a', 'node-b'];
const acme = blueprint([net({ nodes, ipRange: '10.1.0.0/16', egress: true })], { workloads: [wl('web', 'node-b')] });
const globex = blueprint([net({ nodes, ipRange: '10.1.0.0/16' })], { tenant: 'globex', name: 'ops' });
const acmePlan = planFor(acme, nodes);
const globexPlan = planFor(globex, [{ id: 'node-a', endpoints: ['203.0.113.1'], reservedPorts: [51820] }, 'node-b']);

test('dnsUpstreams: a network with egress forwards what it does not serve, by its egress; nothing else leaves', { timeout: 180_000 }, async (t) => {
  const bed = await makeAgentHost({ extra: { dnsUpstreams: [UPSTREAM], endpoints: ['192.0.2.2'] } });
  let upstream: ChildProcess | null = null;
  const log: string[] = [];
  const queries = () => log.join('').split('\n').filter((l) => /query\[/.test(l));
  try {
    // The host's uplink (192.0.2.2/24, default via 192.0.2.1) into an "internet" namespace with the resolver.
    const sh = (argv: string[]) => bed.host.exec(argv);
    await sh(['ip', 'netns', 'add', 'inet']);
    await sh(['ip', 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'ext0', 'netns', 'inet']);
    await sh(['ip', 'addr', 'add', '192.0.2.2/24', 'dev', 'up0']);
    await sh(['ip', 'link', 'set', 'up0', 'up']);
    await sh(['ip', 'route', 'add', 'default', 'via', '192.0.2.1']);
    const inInet = (argv: string[]) => sh(['nsenter', '--net=/run/netns/inet', '--', ...argv]);
    await inInet(['ip', 'link', 'set', 'lo', 'up']);
    await inInet(['ip', 'link', 'set', 'ext0', 'up']);
    await inInet(['ip', 'addr', 'add', '192.0.2.1/24', 'dev', 'ext0']);
    await inInet(['ip', 'addr', 'add', `${UPSTREAM}/32`, 'dev', 'lo']);
    upstream = bed.host.spawn([
      'nsenter', '--net=/run/netns/inet', '--',
      'dnsmasq', '--keep-in-foreground', '--no-resolv', '--no-hosts', '--bind-interfaces', `--listen-address=${UPSTREAM}`,
      '--address=/example.test/203.0.113.77', '--address=/#/', '--log-queries', '--log-facility=-', '--user=nobody', '--group=nogroup', '--pid-file=',
    ]);
    upstream.stdout!.on('data', (d: Buffer) => log.push(d.toString()));
    upstream.stderr!.on('data', (d: Buffer) => log.push(d.toString()));
    await waitFor(async () => (await inInet(['ss', '-Hlnu'])).stdout.includes(`${UPSTREAM}:53`), 5000, 'the upstream resolver');

    await startAgent(bed);
    for (const [bp, plan] of [[acme, acmePlan], [globex, globexPlan]] as const) {
      const r = await call<{ networks: { ok: boolean }[] }>(bed.socket, 'POST', '/v1/blueprints', { signed: signed(bp), part: part(plan, 'node-a') });
      assert.ok(r.networks[0].ok, JSON.stringify(r));
    }
    const [idA, idG] = [acmePlan.networks[0].id, globexPlan.networks[0].id];
    const gwA = acmePlan.networks[0].resources.find((r) => r.node === 'node-a')!.gateway;
    const gwG = globexPlan.networks[0].resources.find((r) => r.node === 'node-a')!.gateway;
    const web = acmePlan.workloads[0];
    const lookup = async (id: string, name: string, server: string) => {
      const r = await bed.host.exec(['nsenter', `--net=/run/netns/n-${id}`, '--', 'busybox', 'nslookup', '-type=A', name, server], { reject: false });
      if (/NXDOMAIN/.test(r.stdout + r.stderr)) return null;
      assert.equal(r.exitCode, 0, `nslookup ${name}: ${r.stdout}${r.stderr}`);
      return [...r.stdout.split('\n').slice(3).join('\n').matchAll(/^Address: (\S+)$/gm)].map((m) => m[1]);
    };

    await t.test("forwarded: a name the network does not serve is answered by the upstream, which sees the node's address", async () => {
      assert.deepEqual(await lookup(idA, 'example.test', gwA), ['203.0.113.77']);
      assert.equal(await lookup(idA, 'nothing.example', gwA), null, "the upstream's NXDOMAIN comes back");
      const q = queries();
      assert.ok(q.some((l) => /query\[A\] example\.test from 192\.0\.2\.2$/.test(l)), q.join('\n'));
      assert.ok(q.every((l) => / from 192\.0\.2\.2$/.test(l)), `only the node's uplink address reaches the upstream (masqueraded egress): ${q.join('\n')}`);
    });

    await t.test('never forwarded: the own zone, single labels, private reverse lookups', async () => {
      const before = queries().length;
      assert.deepEqual(await lookup(idA, 'web.net', gwA), [web.ip]);
      assert.deepEqual(await lookup(idA, 'web', gwA), [web.ip]);
      assert.equal(await lookup(idA, 'secret.net', gwA), null, 'a name of the zone not served: NXDOMAIN here');
      assert.equal(await lookup(idA, 'intranet', gwA), null, 'a single label');
      const rev = await bed.host.exec(['nsenter', `--net=/run/netns/n-${idA}`, '--', 'busybox', 'nslookup', '10.1.250.9', gwA], { reject: false });
      assert.match(rev.stdout + rev.stderr, /NXDOMAIN/, 'a private reverse lookup');
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(queries().slice(before), [], 'none of these reached the upstream');
    });

    await t.test('a network without egress forwards nothing', async () => {
      const before = queries().length;
      assert.equal(await lookup(idG, 'example.test', gwG), null);
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(queries().slice(before), []);
    });

    await t.test('egress turned off: the resolver stops forwarding', async () => {
      const v2 = { ...acme, version: 2, networks: [{ ...acme.networks[0], egress: false }] };
      const r = await call<{ networks: { ok: boolean; changes: string[] }[] }>(bed.socket, 'POST', '/v1/blueprints', { signed: signed(v2), part: part(planFor(v2, nodes, acmePlan), 'node-a') });
      assert.ok(r.networks[0].ok, JSON.stringify(r));
      assert.ok(r.networks[0].changes.some((c) => /^resolver n-\S+ started/.test(c)), r.networks[0].changes.join('\n'));
      const before = queries().length;
      assert.equal(await lookup(idA, 'example.test', gwA), null);
      assert.deepEqual(await lookup(idA, 'web.net', gwA), [web.ip]);
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(queries().slice(before), []);
    });
  } finally {
    upstream?.kill('SIGKILL');
    await destroyAgentHost(bed);
  }
});
