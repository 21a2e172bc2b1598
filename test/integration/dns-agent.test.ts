// Names through a real agent (a `zmesh agent` in a throwaway host, real netns driver, wireguard-go, dnsmasq):
// two tenants with the same range on one node, each network with its resolver on the gateway. A and AAAA
// answers from inside each tenant namespace, the other tenant's names NXDOMAIN, the admin API's records, the
// diagnose check, a killed dnsmasq restarted by the loop, and nothing left after removal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call } from '../../src/admin/client.ts';
import type { WorkloadSpec } from '../../src/blueprint/types.ts';
import { blueprint, net } from '../helpers/fixtures.ts';
import { part, planFor, signed } from '../helpers/agent-fixtures.ts';
import { destroyAgentHost, makeAgentHost, netnsList, processNames, startAgent, waitFor } from '../helpers/agent-host.ts';

const wl = (name: string, node: string): WorkloadSpec => ({ name, node, image: 'busybox', command: ['sleep', '1d'], network: { name: 'net' }, cpu: 1, memory: 64 << 20, volumes: [] });
const nodes = ['node-a', 'node-b'];
const acmeNodes = ['node-a', 'node-b', 'node-c'];
// The workloads run on node-b: node-a (the agent here) serves their names without running them.
const acme = blueprint([net({ nodes: acmeNodes, ipRange: '10.1.0.0/16' })], { workloads: [wl('web', 'node-b'), wl('db', 'node-b')] });
const globex = blueprint([net({ nodes, ipRange: '10.1.0.0/16' })], { tenant: 'globex', name: 'ops', workloads: [wl('secret', 'node-b')] });
const acmePlan = planFor(acme, acmeNodes);
// Version 2: web moves to node-c (re-planned from version 1: it takes an address in node-c's subnet).
const acme2 = { ...acme, version: 2, workloads: [wl('web', 'node-c'), wl('db', 'node-b')] };
const acme2Plan = planFor(acme2, acmeNodes, acmePlan);
const globexPlan = planFor(globex, [{ id: 'node-a', endpoints: ['203.0.113.1'], reservedPorts: [51820] }, 'node-b']);

interface DnsView {
  listen: string[];
  resolver: { pid: number; alive: boolean } | null;
  records: { name: string; type: string; address: string }[];
}

test('agent: each tenant network resolves its own names only; repaired; removed', { timeout: 180_000 }, async (t) => {
  const bed = await makeAgentHost();
  const [idA, idG] = [acmePlan.networks[0].id, globexPlan.networks[0].id];
  const web = acmePlan.workloads.find((w) => w.name === 'web')!;
  const secret = globexPlan.workloads[0];
  const lookup = async (id: string, name: string, type: 'A' | 'AAAA', server: string) => {
    const r = await bed.host.exec(['nsenter', `--net=/run/netns/n-${id}`, '--', 'busybox', 'nslookup', `-type=${type}`, name, server], { reject: false });
    if (/NXDOMAIN/.test(r.stdout + r.stderr)) return null;
    return [...r.stdout.split('\n').slice(3).join('\n').matchAll(/^Address: (\S+)$/gm)].map((m) => m[1]);
  };
  try {
    await startAgent(bed);
    for (const [bp, plan] of [[acme, acmePlan], [globex, globexPlan]] as const) {
      const r = await call<{ networks: { ok: boolean }[] }>(bed.socket, 'POST', '/v1/blueprints', { signed: signed(bp), part: part(plan, 'node-a') });
      assert.ok(r.networks[0].ok, JSON.stringify(r));
    }
    const gw = acmePlan.networks[0].resources.find((r) => r.node === 'node-a')!;
    assert.ok(gw.gateway6 && web.ip6, 'the network is dual-stack');

    await t.test('A and AAAA from inside the tenant namespace; the other tenant is NXDOMAIN', async () => {
      assert.deepEqual(await lookup(idA, 'web.net', 'A', gw.gateway), [web.ip]);
      assert.deepEqual(await lookup(idA, 'web', 'AAAA', gw.gateway6!), [web.ip6]);
      assert.deepEqual(await lookup(idA, 'node-b.net', 'A', gw.gateway), [acmePlan.networks[0].resources.find((r) => r.node === 'node-b')!.gateway]);
      assert.equal(await lookup(idA, 'secret.net', 'A', gw.gateway), null, "another tenant's workload");
      assert.equal(await lookup(idA, 'secret', 'A', gw.gateway), null);
      assert.equal(await lookup(idA, 'example.com', 'A', gw.gateway), null, 'nothing is forwarded');
      const g = globexPlan.networks[0].resources.find((r) => r.node === 'node-a')!;
      assert.deepEqual(await lookup(idG, 'secret', 'A', g.gateway), [secret.ip]);
      assert.equal(await lookup(idG, 'web.net', 'A', g.gateway), null);
    });

    let pid = 0;
    await t.test('the admin API lists the records; diagnose checks the resolver', async () => {
      const v = await call<DnsView>(bed.socket, 'GET', `/v1/networks/${idA}/dns`);
      assert.deepEqual(v.listen, [gw.gateway, gw.gateway6]);
      assert.equal(v.resolver?.alive, true);
      pid = v.resolver!.pid;
      assert.ok(v.records.some((r) => r.name === 'db' && r.type === 'AAAA'));
      assert.ok(!v.records.some((r) => r.name.startsWith('secret')));
      const d = await call<{ checks: { name: string; verdict: string; detail: string }[] }>(bed.socket, 'GET', `/v1/diagnose?network=${idA}`);
      const c = d.checks.find((x) => x.name === 'resolver')!;
      assert.equal(c.verdict, 'pass', c.detail);
    });

    await t.test('a killed dnsmasq is restarted by the loop', async () => {
      assert.ok(pid > 1);
      process.kill(pid, 'SIGKILL');
      await waitFor(
        async () => {
          const v = await call<DnsView>(bed.socket, 'GET', `/v1/networks/${idA}/dns`);
          return v.resolver?.alive === true && v.resolver.pid !== pid;
        },
        15_000,
        'resolver restarted',
      );
      assert.deepEqual(await lookup(idA, 'web.net', 'A', gw.gateway), [web.ip]);
    });

    await t.test('a workload that moves to another node: its records follow the re-plan', async () => {
      const moved = acme2Plan.workloads.find((w) => w.name === 'web')!;
      const c = acme2Plan.networks[0].resources.find((r) => r.node === 'node-c')!;
      assert.equal(moved.node, 'node-c');
      assert.notEqual(moved.ip, web.ip);
      assert.ok(moved.ip6 && moved.ip6.startsWith(c.subnet6!.split('::')[0]), `${moved.ip6} in ${c.subnet6}`);
      const before = (await call<DnsView>(bed.socket, 'GET', `/v1/networks/${idA}/dns`)).resolver!.pid;
      const r = await call<{ networks: { ok: boolean }[] }>(bed.socket, 'POST', '/v1/blueprints', { signed: signed(acme2), part: part(acme2Plan, 'node-a') });
      assert.ok(r.networks[0].ok, JSON.stringify(r));
      assert.deepEqual(await lookup(idA, 'web.net', 'A', gw.gateway), [moved.ip]);
      assert.deepEqual(await lookup(idA, 'web', 'AAAA', gw.gateway6!), [moved.ip6]);
      assert.deepEqual(await lookup(idA, 'db.net', 'A', gw.gateway), [acme2Plan.workloads.find((w) => w.name === 'db')!.ip]);
      // Reloaded (SIGHUP), not restarted.
      assert.equal((await call<DnsView>(bed.socket, 'GET', `/v1/networks/${idA}/dns`)).resolver!.pid, before);
    });

    await t.test('removal: no namespace, no dnsmasq', async () => {
      await call(bed.socket, 'DELETE', '/v1/blueprints/acme/shop');
      await call(bed.socket, 'DELETE', '/v1/blueprints/globex/ops');
      assert.deepEqual(await netnsList(bed), []);
      assert.ok(!processNames(bed).includes('dnsmasq'), processNames(bed).join(' '));
      const left = await bed.host.exec(['ls', '-A', '/run/zmesh-dns'], { reject: false });
      assert.equal(left.stdout.trim(), '');
    });
  } catch (e) {
    process.stderr.write(bed.log.join('').slice(-4000));
    throw e;
  } finally {
    await destroyAgentHost(bed);
  }
});
