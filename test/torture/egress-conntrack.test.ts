// One tenant must not fill the host namespace's connection-tracking table through its egress (found by a red-team
// review of issue #14; fixed by the host table's `egress-conns` rule: at most EGRESS_MAX_CONNECTIONS per network).
// Every egress flow is tracked twice (tenant namespace, host namespace); the host namespace's table is shared
// by every tenant's egress and by the node's own traffic (its WireGuard UDP flows, the agent's etcd
// connections), and nf_conntrack_max is one global number. Nothing in zmesh_h_<id> bounds how many flows a
// tenant may hold was bounded by nothing. ESTABLISHED (assured) TCP entries are not early-dropped when the table is
// full, so a few tenants holding connections would block every new flow on the node. Here one workload tries to
// hold N > cap connections to an outside server (the attacker's own): it gets the cap (the control: that many still
// work), and the host namespace's nf_conntrack_count grows by at most the cap.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { ApplyReport } from '../../netns/index.ts';
import { delNs, ispAndOutside, SimHost, Switch } from '../helpers/host.ts';
import { handPlan } from '../helpers/plan.ts';
import { EGRESS_MAX_CONNECTIONS } from '../../netns/layout.ts';

const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const N = Number(process.env.ZMESH_FLOWS ?? EGRESS_MAX_CONNECTIONS + 1500);

const SERVER_PY = `
import resource, socket, sys, time, select
h = resource.getrlimit(resource.RLIMIT_NOFILE)[1]; resource.setrlimit(resource.RLIMIT_NOFILE, (h, h))
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8443)); s.listen(4096); s.setblocking(False)
held = []
print("ready", flush=True)
end = time.time() + float(sys.argv[1])
while time.time() < end:
    r, _, _ = select.select([s], [], [], 0.2)
    while True:
        try:
            c, _ = s.accept(); held.append(c)
        except BlockingIOError:
            break
`;

const CLIENT_PY = `
import resource, socket, sys, time
h = resource.getrlimit(resource.RLIMIT_NOFILE)[1]; resource.setrlimit(resource.RLIMIT_NOFILE, (h, h))
n = int(sys.argv[1]); held = []; fails = 0; streak = 0
t0 = time.time()
for i in range(n):
    c = socket.socket(); c.settimeout(1)
    try:
        c.connect(("192.0.2.10", 8443)); held.append(c); streak = 0
    except OSError:
        fails += 1; streak += 1; c.close()
        if streak >= 5: break
print("opened", len(held), "failed", fails, "in", round(time.time() - t0, 1), "s", flush=True)
time.sleep(float(sys.argv[2]))
`;

function okReport(r: ApplyReport): void {
  assert.ok(r.ok, `apply failed: ${JSON.stringify(r.resources.flatMap((x) => x.failures), null, 1)}`);
}

test('one tenant workload cannot fill the shared host conntrack table through egress: capped per network', { timeout: 240_000 }, async (t) => {
  const sw = await Switch.create();
  let isp = '';
  let far = '';
  let a: SimHost | null = null;
  const procs: ChildProcess[] = [];
  try {
    a = await SimHost.start('a', { egress: { controlPlane: ['192.0.2.20'] } });
    ({ isp, far } = await ispAndOutside(sw, a));
    const server = spawn('ip', ['netns', 'exec', far, PYTHON, '-I', '-S', '-c', SERVER_PY, '150'], { stdio: ['ignore', 'pipe', 'inherit'] });
    procs.push(server);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('server did not start')), 10_000);
      createInterface({ input: server.stdout! }).once('line', () => (clearTimeout(timer), resolve()));
    });
    const ta = handPlan({ tenant: 'ta', ipRange: '10.81.0.0/16', egress: true, nodes: [{ node: 'a', underlay: '203.0.113.1' }] });
    okReport(await a.apply([ta.desired.get('a')!], ta.identity.get('a')!));
    const TA = `n-${ta.networkId}`;
    await a.exec(['ip', 'netns', 'add', 'zwl']);
    await a.exec(['ip', '-n', 'zwl', 'link', 'add', 'wl0', 'type', 'veth', 'peer', 'name', 'vwl', 'netns', TA]);
    await a.exec(['ip', '-n', TA, 'link', 'set', 'vwl', 'master', `b-${ta.networkId}`, 'up']);
    await a.exec(['ip', '-n', 'zwl', '-batch', '-'], { input: 'link set lo up\nlink set wl0 up\naddr add 10.81.1.50/24 dev wl0\nroute add default via 10.81.1.1\n' });
    const count = async () => Number((await a!.exec(['cat', '/proc/sys/net/netfilter/nf_conntrack_count'])).stdout.trim());
    const before = await count();
    const client = spawn('nsenter', [`--mount=/proc/${a.anchorPid}/ns/mnt`, '--', 'nsenter', '--net=/run/netns/zwl', '--', PYTHON, '-I', '-S', '-c', CLIENT_PY, String(N), '3'], { stdio: ['ignore', 'pipe', 'inherit'] });
    procs.push(client);
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('client did not finish')), 150_000);
      createInterface({ input: client.stdout! }).once('line', (l) => (clearTimeout(timer), resolve(l)));
    });
    const after = await count();
    const max = Number(readFileSync('/proc/sys/net/netfilter/nf_conntrack_max', 'utf8').trim());
    const hostRules = (await a.exec(['nft', 'list', 'table', 'inet', `zmesh_h_${ta.networkId}`])).stdout;
    t.diagnostic(`workload: ${line}`);
    t.diagnostic(`host namespace conntrack entries: ${before} → ${after} (global nf_conntrack_max ${max}: ${Math.ceil(max / Math.max(1, after - before))} such workloads fill it)`);
    t.diagnostic(`host table has a flow limit (ct count / limit rate): ${/ct count|limit rate|meter/.test(hostRules)}`);
    const opened = Number(/opened (\d+)/.exec(line)?.[1] ?? -1);
    assert.ok(opened >= EGRESS_MAX_CONNECTIONS - 50 && opened <= EGRESS_MAX_CONNECTIONS, `the workload held ${opened} connections (cap ${EGRESS_MAX_CONNECTIONS}): ${line}`);
    assert.ok(after - before <= EGRESS_MAX_CONNECTIONS + 64, `one workload holds ${after - before} entries of the shared host conntrack table (max ${max}, cap ${EGRESS_MAX_CONNECTIONS})`);
    assert.match(hostRules, /ct count over \d+/);
  } finally {
    for (const p of procs) if (p.pid && p.exitCode === null) p.kill('SIGKILL');
    if (a) {
      await a.exec(['ip', 'netns', 'del', 'zwl'], { okCodes: [0, 1, 255] }).catch(() => undefined);
      await a.close();
    }
    for (const ns of [isp, far]) if (ns) await delNs(ns);
    await sw.destroy();
  }
});
