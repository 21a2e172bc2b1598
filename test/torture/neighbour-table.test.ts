// A tenant against the machine-wide neighbour tables (found in the IPv6 egress red team of issue #20). The
// kernel keeps one neighbour table per family for every namespace together (gc_thresh3 = 1,024 entries by
// default; the thresholds exist only in the host namespace), and an entry being resolved (INCOMPLETE, ~3 s)
// cannot be reclaimed. A workload that held its subnet on-link (an IPv6 /64, or a short IPv4 subnetPrefix) paid
// one entry per address it sent to there — 300 probes, 300 entries, before the fix — and so did the tenant
// namespace for every address of the node's subnet it forwarded to: at ~350 new addresses a second the table
// stays full and the node and every other tenant fail to resolve new neighbours.
// Now (runtime/attach.ts, netns/layout.ts): a workload has only its gateway on-link (noprefixroute, a host route
// to the gateway, no fe80::/64), the tenant namespace forwards to its bridge only for the node's own workloads
// (`to-unknown`, `to-unknown6`) and sends them no redirects. This test attaches two workloads with the runtime's
// own `ip -batch` lines and probes 300 addresses of each family's subnet and 100 link-local ones (well below the
// threshold: nothing here could overflow this machine's table), then counts the entries; the two workloads still
// reach each other, through the tenant namespace, in both families.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { containerAddLines, containerAddLines6, IPV6_SYSCTL, tenantAddLines } from '../../runtime/attach.ts';
import { vethNames } from '../../runtime/names.ts';
import { SimHost } from '../helpers/host.ts';
import { handPlan } from '../helpers/plan.ts';

const BACKEND = (process.env.ZMESH_TEST_BACKEND as 'auto' | 'kernel' | 'userspace' | undefined) ?? 'auto';

test('one workload cannot fill the machine-wide neighbour tables: a handful of entries for 700 probes', { timeout: 120_000 }, async (t) => {
  const h = await SimHost.start('nt', { backend: BACKEND });
  const tag = Math.random().toString(36).slice(2, 6);
  const wls = [`zt-ntw-${tag}`, `zt-ntx-${tag}`];
  const sleepers: number[] = [];
  try {
    const net = handPlan({ ipRange: '10.71.0.0/16', ipv6Range: 'fd00:71::/48', nodes: [{ node: 'a', underlay: '203.0.113.1' }] });
    const id = net.networkId;
    const ns = `n-${id}`;
    const hosts = ['10.71.1.50', 'fd00:71:0:1::50', '10.71.1.51', 'fd00:71:0:1::51'];
    const desired = [{ ...net.desired.get('a')!, bridgeHosts: hosts }];
    const r = await h.apply(desired, net.identity.get('a')!);
    assert.ok(r.ok, JSON.stringify(r.resources[0].failures));
    const again = await h.apply(desired, net.identity.get('a')!);
    assert.equal(again.commands.mutating, 0, `a re-apply with bridge hosts is a no-op: ${again.mutations.join('\n')}`);
    // Two workloads attached as the runtime attaches them (its own ip -batch lines; a namespace for the container).
    for (const [i, wl] of wls.entries()) {
      await h.exec(['ip', 'netns', 'add', wl]);
      const pid = Number((await h.exec(['sh', '-c', `ip netns exec ${wl} sleep 120 >/dev/null 2>&1 & echo $!`])).stdout.trim());
      sleepers.push(pid);
      const req = {
        workload: `acme/shop/w${i}`, names: vethNames({ node: 'a', tenant: 'acme', blueprint: 'shop', name: `w${i}` }), containerId: `c${i}`, pid, networkId: id,
        netns: `/run/netns/${ns}`, bridge: `b-${id}`, ip: `10.71.1.${50 + i}`, prefix: 24, gateway: '10.71.1.1', ip6: `fd00:71:0:1::${50 + i}`, prefix6: 64, gateway6: 'fd00:71:0:1::1',
      };
      await h.execIn(ns, ['ip', '-batch', '-'], { input: tenantAddLines(req, 1420).join('\n') + '\n' });
      await h.execIn(wl, ['ip', '-batch', '-'], { input: containerAddLines(req).join('\n') + '\n' });
      await h.execIn(wl, IPV6_SYSCTL);
      await h.execIn(wl, ['ip', '-batch', '-'], { input: containerAddLines6(req).join('\n') + '\n' });
      await h.execIn(wl, ['ip', 'link', 'set', 'lo', 'up']);
    }
    const count = async (where: string) => Number((await h.exec(['sh', '-c', `{ ip -n ${where} -4 neigh show; ip -n ${where} -6 neigh show; } | wc -l`])).stdout.trim());

    await t.test('control: the two workloads reach each other in both families, through the tenant namespace', async () => {
      for (const dst of ['10.71.1.51', 'fd00:71:0:1::51']) {
        const p = await h.execIn(wls[0], ['ping', '-n', '-c', '1', '-W', '2', dst], { okCodes: [0, 1, 2] });
        assert.equal(p.exitCode, 0, `${dst}: ${p.stdout}`);
        assert.match(p.stdout, /ttl=63|hlim=63/, 'routed by the tenant namespace (one hop), not bridged');
        assert.match(p.stdout, /time=\d{1,2}\.\d+ ms/, 'the first reply without a neighbour timeout (no tentative link-local address)');
      }
      for (const wl of wls) {
        const routes = (await h.execIn(wl, ['ip', '-6', 'route', 'show'])).stdout + (await h.execIn(wl, ['ip', '-4', 'route', 'show'])).stdout;
        assert.doesNotMatch(routes, /fe80::\/64|10\.71\.1\.0\/24|fd00:71:0:1::\/64/, `only the gateways on-link:\n${routes}`);
      }
    });

    await t.test('700 probes to unknown addresses: the workload resolves only its gateway, the namespace nothing new', async () => {
      const [w0, t0] = [await count(wls[0]), await count(ns)];
      const probe = (addr: (i: number) => string, n: number) =>
        `for i in $(seq 1 ${n}); do ping -c1 -W0.01 ${addr(0).includes(':') ? '-6 ' : ''}"$(printf '${addr(0).replace(/%/g, '%%').replace('X', '%x')}' $((4096+i)))" >/dev/null 2>&1 & if [ $((i % 50)) -eq 0 ]; then wait; fi; done; wait`;
      // 300 of its IPv6 /64, 300 of an IPv4 /16 around its /24, 100 link-local ones on its eth0.
      await h.execIn(wls[0], ['sh', '-c', probe(() => 'fd00:71:0:1::X', 300)], { timeoutMs: 40_000 });
      await h.execIn(wls[0], ['sh', '-c', `for i in $(seq 1 300); do ping -c1 -W0.01 10.71.$((2 + i / 250)).$((i % 250 + 2)) >/dev/null 2>&1 & if [ $((i % 50)) -eq 0 ]; then wait; fi; done; wait`], { timeoutMs: 40_000 });
      await h.execIn(wls[0], ['sh', '-c', probe(() => 'fe80::X%eth0', 100)], { timeoutMs: 40_000 });
      await h.execIn(wls[0], ['sh', '-c', `for i in $(seq 1 100); do ping -c1 -W0.01 10.71.1.$((i + 100)) >/dev/null 2>&1 & if [ $((i % 50)) -eq 0 ]; then wait; fi; done; wait`], { timeoutMs: 40_000 });
      const [w1, t1] = [await count(wls[0]), await count(ns)];
      t.diagnostic(`entries: workload ${w0} → ${w1}, tenant namespace ${t0} → ${t1}`);
      assert.ok(w1 - w0 <= 2, `the workload added ${w1 - w0} entries: ${(await h.exec(['ip', '-n', wls[0], 'neigh', 'show'])).stdout}`);
      assert.ok(t1 - t0 <= 2, `the tenant namespace added ${t1 - t0} entries: ${(await h.exec(['ip', '-n', ns, 'neigh', 'show'])).stdout}`);
      const fw = (await h.readActual(id)).firewall!.rules;
      const dropped = (tag: string) => fw.find((x) => x.tag === tag)?.packets ?? 0;
      assert.ok(dropped('to-unknown6') >= 300 && dropped('to-unknown') >= 100, JSON.stringify(fw));
    });
  } finally {
    for (const pid of sleepers) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    for (const wl of wls) await h.exec(['ip', 'netns', 'del', wl], { okCodes: [0, 1, 255] }).catch(() => undefined);
    await h.close();
  }
});
