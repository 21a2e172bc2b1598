// Data-plane tuning on real namespaces (root; the userspace backend, which is what tuning is for). The defaults
// follow the wireguard-go build: with the batched build on PATH (≥ 0.0.20230223, what scripts/deps.sh installs)
// the daemons run with GOMAXPROCS=1 and their sockets are left alone; with bookworm's 0.0.20220316 (unpacked
// aside by scripts/deps.sh) they get raised UDP socket buffers (as `ss` sees them); both stay in the driver's
// session, a re-apply and a restarted driver run no mutating command, and a port change (new sockets) is tuned
// again. Tuning off: wireguard-go as it comes (no GOMAXPROCS, buffers as it sets them, a session of its own).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Key } from '../../src/crypto/index.ts';
import { type ActualResource, type ApplyReport, type DesiredResource } from '../../netns/index.ts';
import { SimHost, wire } from '../helpers/host.ts';
import { handPlan } from '../helpers/plan.ts';
import { bookwormWireguardGo, environOf, pathWireguardGoBuild, ssRcvbufs } from '../helpers/wireguard-go.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function okReport(r: ApplyReport): void {
  const failures = [...r.resources.flatMap((x) => x.failures), ...r.removed.flatMap((x) => x.failures)];
  assert.ok(r.ok, `apply failed: ${JSON.stringify(failures, null, 1)}`);
}

/** Session id of a process (field 6 of /proc/<pid>/stat). */
function sessionOf(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[3]);
}

/** wireguard-go's UDP receive buffers on `port` as `ss` shows them inside the host. */
async function rcvbufsIn(h: SimHost, port: number): Promise<number[]> {
  return ssRcvbufs((await h.exec(['ss', '-uampnH', `sport = :${port}`])).stdout);
}

/** Waits (bounded) until the driver reports the daemon's sockets tuned. */
async function tunedActual(h: SimHost, id: string): Promise<ActualResource> {
  for (let i = 0; i < 100; i++) {
    const a = await h.readActual(id);
    if (a.tuning && a.tuning.rcvbuf !== null) return a;
    await sleep(50);
  }
  assert.fail(`${h.label}: the sockets were not tuned within 5 s`);
}

async function pair(label: string, tuning: boolean | undefined, wireguardGo?: string): Promise<[SimHost, SimHost]> {
  const a = await SimHost.start(`${label}a`, { backend: 'userspace', underlayMtu: 1500, tuning, wireguardGo });
  let b: SimHost;
  try {
    b = await SimHost.start(`${label}b`, { backend: 'userspace', underlayMtu: 1500, tuning, wireguardGo });
  } catch (e) {
    await a.close();
    throw e;
  }
  await wire({ ns: a.ns, ifname: 'u0', addr: '198.51.100.1/24' }, { ns: b.ns, ifname: 'u0', addr: '198.51.100.2/24' });
  return [a, b];
}

/** One network over both hosts (range /16, node a gets .1.0/24, b .2.0/24), applied on both at once. */
async function applyBoth(a: SimHost, b: SimHost, ipRange: string) {
  const net = handPlan({ ipRange, nodes: [{ node: 'a', underlay: '198.51.100.1' }, { node: 'b', underlay: '198.51.100.2' }] });
  const dA = net.desired.get('a')!;
  const idA = net.identity.get('a')!;
  const [ra, rb] = await Promise.all([a.apply([dA], idA), b.apply([net.desired.get('b')!], net.identity.get('b')!)]);
  okReport(ra);
  okReport(rb);
  return { id: net.networkId, dA, idA, ra };
}

/** A re-apply on host a, and one after a restart of its driver, run no mutating command. */
async function noopAcrossRestart(a: SimHost, dA: DesiredResource, idA: Key): Promise<void> {
  const r = await a.apply([dA], idA);
  okReport(r);
  assert.equal(r.commands.mutating, 0, r.mutations.join('\n'));
  await a.stopAgent();
  await a.startAgent();
  const r2 = await a.apply([dA], idA);
  okReport(r2);
  assert.equal(r2.commands.mutating, 0, `after a restart: ${r2.mutations.join('\n')}`);
}

test('batched wireguard-go (PATH) by default: GOMAXPROCS=1, its own socket buffers, the driver\'s session, no-op re-apply', { timeout: 90_000 }, async () => {
  const hosts: SimHost[] = [];
  try {
    const build = pathWireguardGoBuild();
    assert.ok(build.batched, `wireguard-go on PATH is ${build.version}, not a batched build: scripts/deps.sh installs one`);
    const [a, b] = await pair('tg', undefined);
    hosts.push(a, b);
    const { id, dA, idA, ra } = await applyBoth(a, b, '10.46.0.0/16');
    assert.ok(await a.waitPing(`n-${id}`, '10.46.2.1'), 'the tunnel works (and wireguard-go has opened its sockets)');
    const act = await a.readActual(id);
    const pid = act.daemon!.pid;
    assert.equal(environOf(pid).GOMAXPROCS, '1');
    assert.notEqual(sessionOf(pid), pid, 'not a session leader: no setsid');
    assert.equal(act.tuning, undefined, 'no socket tuning for a batched build');
    assert.ok(!ra.resources[0].changes.some((c) => c.startsWith('tuning')), ra.resources[0].changes.join('\n'));
    const bufs = await rcvbufsIn(a, 51820);
    assert.ok(bufs.length >= 1);
    assert.ok(bufs.every((x) => x !== 8 * 1024 * 1024), `left as wireguard-go set them: ${bufs}`);
    await noopAcrossRestart(a, dA, idA);
    assert.equal((await a.readActual(id)).daemon?.pid, pid, 'the daemon was adopted, not replaced');
  } finally {
    for (const h of hosts) await h.close();
  }
});

test('bookworm\'s wireguard-go by default: raised socket buffers, the driver\'s session, no-op re-apply, re-tuned after a port change', { timeout: 90_000 }, async (t) => {
  const hosts: SimHost[] = [];
  try {
    const [a, b] = await pair('tu', undefined, bookwormWireguardGo());
    hosts.push(a, b);
    const { id, dA, idA } = await applyBoth(a, b, '10.44.0.0/16');

    await t.test('wireguard-go gets 4 MiB buffers (the kernel shows 8 MiB) and stays in the driver\'s session', async () => {
      const act = await tunedActual(a, id);
      assert.equal(act.tuning!.rcvbuf, 8 * 1024 * 1024);
      assert.equal(act.tuning!.sndbuf, 8 * 1024 * 1024);
      assert.equal(act.tuning!.port, 51820);
      assert.ok(act.tuning!.sockets >= 1);
      assert.deepEqual(await rcvbufsIn(a, 51820), Array(act.tuning!.sockets).fill(8 * 1024 * 1024));
      const pid = act.daemon!.pid;
      assert.notEqual(sessionOf(pid), pid, 'not a session leader: no setsid');
      assert.equal(environOf(pid).GOMAXPROCS, undefined, 'GOMAXPROCS is for batched builds');
      assert.ok(await a.waitPing(`n-${id}`, '10.44.2.1'), 'the tunnel works');
      await tunedActual(b, id);
    });

    await t.test('a re-apply and a restarted driver run no mutating command', async () => {
      await noopAcrossRestart(a, dA, idA);
      assert.equal((await a.readActual(id)).tuning?.rcvbuf, 8 * 1024 * 1024, 'the restarted driver read the buffers back');
    });

    await t.test('a port change opens new sockets: they are tuned in the same apply', async () => {
      const moved = structuredClone(dA);
      moved.resource.listenPort = 51830;
      const r = await a.apply([moved], idA);
      okReport(r);
      const lines = r.resources[0].changes.filter((c) => c.startsWith('tuning:'));
      assert.equal(lines.length, 1, r.resources[0].changes.join('\n'));
      assert.match(lines[0], /port 51830/);
      assert.deepEqual((await rcvbufsIn(a, 51830)).every((x) => x === 8 * 1024 * 1024), true);
      assert.equal((await a.apply([moved], idA)).commands.mutating, 0);
    });
  } finally {
    for (const h of hosts) await h.close();
  }
});

test('tuning off: wireguard-go as it comes', { timeout: 60_000 }, async () => {
  const hosts: SimHost[] = [];
  try {
    const [a, b] = await pair('tn', false);
    hosts.push(a, b);
    const { id, ra } = await applyBoth(a, b, '10.45.0.0/16');
    assert.ok(await a.waitPing(`n-${id}`, '10.45.2.1'), 'the tunnel works (and wireguard-go has opened its sockets)');
    const act = await a.readActual(id);
    assert.equal(act.tuning, undefined);
    assert.ok(!ra.resources[0].changes.some((c) => c.startsWith('tuning')));
    const bufs = await rcvbufsIn(a, 51820);
    assert.ok(bufs.length >= 1);
    assert.ok(bufs.every((x) => x !== 8 * 1024 * 1024), `left as wireguard-go set them: ${bufs}`);
    assert.equal(sessionOf(act.daemon!.pid), act.daemon!.pid, 'a session of its own (setsid)');
    assert.equal(environOf(act.daemon!.pid).GOMAXPROCS, undefined);
  } finally {
    for (const h of hosts) await h.close();
  }
});
