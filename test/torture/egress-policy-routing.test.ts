// Egress and policy routing (found by a red-team review of issue #14). The blocked set is derived from
// `ip route show table main` only, so a node that reaches a private site through policy routing (Tailscale's table
// 52, wg-quick Table=, a site-to-site VPN with `ip rule ... table N`) routed a tenant's egress to it. Fixed by the
// host table's `egress-uplink` rule: egress leaves only by the devices of the host's default routes, whatever table
// the kernel picks. Controls: the outside answers; the same site routed by the main table is blocked too.
// Topology (namespaces of the test only): host a (SimHost) on the lab internet 203.0.113.0/24, default via the
// ISP router (.254) to the outside 192.0.2.10; an operator site `mgmt` (198.51.100.7, public-looking addresses)
// behind a point-to-point link m0 whose address is a /32 in CGNAT space (like tailscale0) and whose route lives
// in table 52 selected by an ip rule.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { ApplyReport } from '../../netns/index.ts';
import { delNs, ispAndOutside, makeNs, rand, sh, SimHost, Switch, wire } from '../helpers/host.ts';
import { handPlan } from '../helpers/plan.ts';

const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

const RESPONDER_PY = `
import socket, sys, threading, time
deadline = time.time() + float(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[2]))); s.listen(16); s.settimeout(0.5)
print("ready", flush=True)
while time.time() < deadline:
    try:
        c, a = s.accept()
    except OSError:
        continue
    try: c.sendall(("mgmt-banner from %s\\n" % a[0]).encode())
    except OSError: pass
    c.close()
`;

const CONNECT_PY = `
import socket, sys
s = socket.socket(); s.settimeout(2)
try:
    s.connect((sys.argv[1], int(sys.argv[2]))); print(s.recv(64).decode().strip() or "connected")
except Exception as e:
    print("blocked", type(e).__name__)
`;

function okReport(r: ApplyReport): void {
  assert.ok(r.ok, `apply failed: ${JSON.stringify(r.resources.flatMap((x) => x.failures), null, 1)}`);
}

test('tenant egress does not reach a site the host routes by policy routing (not table main)', { timeout: 180_000 }, async (t) => {
  const sw = await Switch.create();
  let isp = '';
  let far = '';
  const mgmt = `zt-mg-${rand()}`;
  let a: SimHost | null = null;
  const procs: ChildProcess[] = [];
  try {
    a = await SimHost.start('a', { egress: { controlPlane: ['192.0.2.20'] } });
    ({ isp, far } = await ispAndOutside(sw, a));
    await makeNs(mgmt);
    // The operator's site behind a VPN-like link routed by policy (like tailscale0 + table 52).
    await wire({ ns: a.ns, ifname: 'm0' }, { ns: mgmt, ifname: 'm1' });
    await sh(['ip', '-n', a.ns, 'addr', 'add', '100.100.1.1/32', 'dev', 'm0']);
    await sh(['ip', '-n', a.ns, 'route', 'add', '198.51.100.0/24', 'dev', 'm0', 'table', '52']);
    await sh(['ip', '-n', a.ns, 'rule', 'add', 'pref', '5270', 'to', '198.51.100.0/24', 'table', '52']);
    await sh(['ip', '-n', mgmt, 'addr', 'add', '198.51.100.7/24', 'dev', 'm1']);
    await sh(['ip', '-n', mgmt, 'route', 'add', '100.100.1.1/32', 'dev', 'm1']);
    for (const ns of [mgmt, far]) {
      const p = spawn('ip', ['netns', 'exec', ns, PYTHON, '-I', '-S', '-c', RESPONDER_PY, '120', '8022'], { stdio: ['ignore', 'pipe', 'inherit'] });
      procs.push(p);
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('responder did not start')), 10_000);
        createInterface({ input: p.stdout! }).once('line', () => (clearTimeout(timer), resolve()));
      });
    }
    const ta = handPlan({ tenant: 'ta', ipRange: '10.81.0.0/16', egress: true, nodes: [{ node: 'a', underlay: '203.0.113.1' }] });
    okReport(await a.apply([ta.desired.get('a')!], ta.identity.get('a')!));
    const TA = `n-${ta.networkId}`;
    // A workload: a namespace on the tenant bridge.
    const br = `b-${ta.networkId}`;
    await a.exec(['ip', 'netns', 'add', 'zwl']);
    await a.exec(['ip', '-n', 'zwl', 'link', 'add', 'wl0', 'type', 'veth', 'peer', 'name', 'vwl', 'netns', TA]);
    await a.exec(['ip', '-n', TA, 'link', 'set', 'vwl', 'master', br, 'up']);
    await a.exec(['ip', '-n', 'zwl', '-batch', '-'], { input: 'link set lo up\nlink set wl0 up\naddr add 10.81.1.50/24 dev wl0\nroute add default via 10.81.1.1\n' });
    const connect = async (ip: string) => (await a!.execIn('zwl', [PYTHON, '-I', '-S', '-c', CONNECT_PY, ip, '8022'], { timeoutMs: 15_000 })).stdout.trim();

    const outside = await connect('192.0.2.10');
    t.diagnostic(`workload → the outside 192.0.2.10:8022: ${outside}`);
    assert.match(outside, /mgmt-banner/, 'control: the outside answers');
    const blocked = (await a.exec(['nft', 'list', 'set', 'inet', `zmesh_h_${ta.networkId}`, 'blocked4'])).stdout.replace(/\s+/g, ' ');
    t.diagnostic(`blocked4: ${blocked}`);
    const viaPolicy = await connect('198.51.100.7');
    t.diagnostic(`workload → operator site 198.51.100.7:8022 (table 52): ${viaPolicy}`);

    // Control: the same site in table main is blocked after the next apply.
    await sh(['ip', '-n', a.ns, 'rule', 'del', 'pref', '5270']);
    await sh(['ip', '-n', a.ns, 'route', 'add', '198.51.100.0/24', 'dev', 'm0']);
    okReport(await a.apply([ta.desired.get('a')!], ta.identity.get('a')!));
    const viaMain = await connect('198.51.100.7');
    t.diagnostic(`control: workload → 198.51.100.7:8022 with the route in table main: ${viaMain}`);
    assert.match(viaMain, /blocked/, 'control: a main-table route is blocked');
    assert.match(viaPolicy, /blocked/, `egress reached a policy-routed site: ${viaPolicy}`);
  } finally {
    for (const p of procs) if (p.pid && p.exitCode === null) p.kill('SIGKILL');
    if (a) {
      await a.exec(['ip', 'netns', 'del', 'zwl'], { okCodes: [0, 1, 255] }).catch(() => undefined);
      await a.close();
    }
    for (const ns of [isp, far, mgmt]) if (ns) await delNs(ns);
    await sw.destroy();
  }
});
