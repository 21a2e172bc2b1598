// Two simulated hosts joined by a veth underlay, each with a resource of a hand-built plan (real keys,
// sealed): the tunnel works, a second apply is a no-op, every kind of drift is repaired (exactly that),
// a driver restart adopts the running daemon, the private key never shows in argv, removal leaves nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import type { ApplyReport, RecordedCommand } from '../../netns/index.ts';
import { SimHost, startOnSwitch, Switch, watchProcArgs } from '../helpers/host.ts';
import { handPlan } from '../helpers/plan.ts';

const BACKEND = (process.env.ZMESH_TEST_BACKEND as 'auto' | 'kernel' | 'userspace' | undefined) ?? 'auto';

function okReport(r: ApplyReport): void {
  const failures = [...r.resources.flatMap((x) => x.failures), ...r.removed.flatMap((x) => x.failures)];
  assert.ok(r.ok, `apply failed: ${JSON.stringify(failures, null, 1)}`);
}

function noop(r: ApplyReport): void {
  okReport(r);
  assert.equal(r.commands.mutating, 0, `expected a no-op, got:\n${r.mutations.join('\n')}`);
}

test('two hosts: tunnel, no-op, drift repair, restart adoption, secrets, removal', { timeout: 90_000 }, async (t) => {
  const sw = await Switch.create();
  const hosts: SimHost[] = [];
  try {
    const [a, b] = await startOnSwitch(sw, hosts, ['a', 'b'], { backend: BACKEND });

    const net = handPlan({ ipRange: '10.42.0.0/16', nodes: [{ node: 'a', underlay: '203.0.113.1' }, { node: 'b', underlay: '203.0.113.2' }] });
    const id = net.networkId;
    const ns = `n-${id}`;
    const [wgIf, br] = [`w-${id}`, `b-${id}`];
    const dA = [net.desired.get('a')!];
    const dB = [net.desired.get('b')!];
    const idA = net.identity.get('a')!;
    const idB = net.identity.get('b')!;
    const applyA = () => a.apply(dA, idA);

    await t.test('create on both hosts; the private key never appears in argv', async () => {
      const needles = [...net.wgPrivate.values()].map((k) => k.toString());
      const logFrom = await a.call<number>('logLength');
      const watch = watchProcArgs(needles);
      let ra: ApplyReport, rb: ApplyReport;
      try {
        [ra, rb] = await Promise.all([applyA(), b.apply(dB, idB)]);
      } finally {
        const w = await watch.stop();
        assert.ok(w.scans > 3, `the /proc scanner ran (${w.scans} scans)`);
        assert.deepEqual(w.hits, []);
      }
      okReport(ra);
      okReport(rb);
      const log = await a.call<RecordedCommand[]>('log', { from: logFrom });
      const text = JSON.stringify(log);
      for (const n of needles) assert.ok(!text.includes(n), 'private key in the command log');
      const wgSet = log.find((c) => c.argv.includes('set') && c.argv.includes('private-key'));
      assert.ok(wgSet?.secretFile, 'the key went through a secret file');
      const act = ra.resources[0].actual!;
      assert.equal(ra.underlayMtu, 1400);
      const wl = act.links.find((l) => l.name === wgIf)!;
      assert.equal(wl.mtu, 1320, 'MTU = underlay − 80');
      assert.deepEqual(wl.addresses, ['10.42.1.254/32']);
      assert.equal(wl.alias, `zmesh:${id}`);
      const bl = act.links.find((l) => l.name === br)!;
      assert.deepEqual([bl.kind, bl.mtu, bl.addresses], ['bridge', 1320, ['10.42.1.1/24']]);
      assert.ok(act.routes.some((r) => r.dst === '10.42.0.0/16' && r.dev === wgIf));
      assert.equal(act.forwarding, true);
      assert.equal(act.wireguard?.listenPort, 51820);
      assert.equal(act.wireguard?.peers[0].endpoint, '203.0.113.2:51821');
    });

    await t.test('ping across the tunnel both ways', async () => {
      assert.ok(await a.waitPing(ns, '10.42.2.1'), 'a → b');
      assert.ok(await b.waitPing(ns, '10.42.1.1'), 'b → a');
      const act = await a.readActual(id);
      const peer = act.wireguard!.peers[0];
      assert.ok(peer.latestHandshake !== null && peer.rxBytes > 0 && peer.txBytes > 0, JSON.stringify(peer));
    });

    await t.test('a second apply is a no-op (reads only)', async () => {
      const r = await applyA();
      noop(r);
      assert.ok(r.commands.reads > 0);
      noop(await b.apply(dB, idB));
    });

    const repair = async (what: string, expectChanges: (r: ApplyReport) => void) => {
      const r = await applyA();
      okReport(r);
      assert.ok(r.commands.mutating > 0, `${what}: something was repaired`);
      expectChanges(r);
      noop(await applyA());
      assert.ok(await a.waitPing(ns, '10.42.2.1'), `${what}: tunnel works again`);
    };

    await t.test('drift: a route deleted', async () => {
      await a.execIn(ns, ['ip', 'route', 'del', '10.42.0.0/16']);
      await repair('route', (r) => {
        assert.deepEqual(r.resources[0].changes, [`route replace 10.42.0.0/16 dev ${wgIf} proto static`]);
        assert.equal(r.commands.mutating, 1);
      });
    });

    await t.test('drift: an address deleted', async () => {
      await a.execIn(ns, ['ip', 'addr', 'del', '10.42.1.1/24', 'dev', br]);
      await repair('bridge address', (r) => assert.deepEqual(r.resources[0].changes, [`address add 10.42.1.1/24 dev ${br}`]));
      // The kernel drops the routes through an interface when its last address goes: both come back.
      await a.execIn(ns, ['ip', 'addr', 'del', '10.42.1.254/32', 'dev', wgIf]);
      await repair('wireguard address', (r) =>
        assert.deepEqual(r.resources[0].changes, [`address add 10.42.1.254/32 dev ${wgIf}`, `route replace 10.42.0.0/16 dev ${wgIf} proto static`]),
      );
    });

    await t.test('drift: the bridge MAC changed (it must not follow its ports)', async () => {
      await a.execIn(ns, ['ip', 'link', 'set', 'dev', br, 'address', '02:00:00:00:00:99']);
      await repair('bridge MAC', (r) => assert.deepEqual(r.resources[0].changes, [`link set dev ${br} address 02:5a:0a:2a:01:01`]));
    });

    await t.test('drift: the bridge deleted', async () => {
      await a.execIn(ns, ['ip', 'link', 'del', br]);
      await repair('bridge', (r) =>
        assert.deepEqual(r.resources[0].changes, [
          `link add name ${br} address 02:5a:0a:2a:01:01 type bridge`,
          `link set dev ${br} alias zmesh:${id} mtu 1320 up`,
          `address add 10.42.1.1/24 dev ${br}`,
        ]),
      );
      assert.ok(await b.waitPing(ns, '10.42.1.1'), 'the gateway answers again');
    });

    await t.test('drift: the nft table flushed', async () => {
      await a.execIn(ns, ['nft', 'flush', 'table', 'inet', `zmesh_${id}`]);
      await repair('nft', (r) => {
        assert.deepEqual(r.resources[0].changes, [`nft table zmesh_${id} written`]);
        assert.equal(r.commands.mutating, 1);
      });
      const act = await a.readActual(id);
      // in-spoof, in-ra (an IPv4-only network: router advertisements and redirects from the bridge), mss-clamp,
      // fwd-spoof, out-spoof (no egress here, so no conntrack rules)
      assert.equal(act.nft.find((x) => x.where === 'tenant')?.rules, 5);
    });

    await t.test('drift: the WireGuard interface deleted', async () => {
      await a.execIn(ns, ['ip', 'link', 'del', wgIf]);
      await repair('wireguard interface', (r) => {
        const c = r.resources[0].changes.join('\n');
        assert.match(c, /wireguard: private key set/);
        assert.match(c, /peer add/);
        assert.match(c, /route replace 10\.42\.0\.0\/16/);
      });
    });

    await t.test('drift: wireguard-go killed (userspace)', { skip: (await a.call<string>('backend')) !== 'userspace' }, async () => {
      const before = (await a.readActual(id)).daemon!;
      assert.ok(before.alive);
      process.kill(before.pid, 'SIGKILL');
      for (let i = 0; i < 200 && (await a.readActual(id)).links.some((l) => l.name === wgIf); i++) await new Promise((r) => setTimeout(r, 10));
      await repair('daemon', (r) => assert.match(r.resources[0].changes.join('\n'), /started wireguard-go/));
      const after = (await a.readActual(id)).daemon!;
      assert.ok(after.alive && after.pid !== before.pid);
      const exits = await a.call<{ pid: number }[]>('daemonExits');
      assert.ok(exits.some((e) => e.pid === before.pid), 'the driver noticed the daemon died');
    });

    await t.test('a driver restart adopts the running daemon', async () => {
      const before = await b.readActual(id);
      await b.stopAgent();
      await b.startAgent();
      noop(await b.apply(dB, idB));
      const after = await b.readActual(id);
      assert.deepEqual(after.daemon, before.daemon);
      assert.ok(await b.waitPing(ns, '10.42.1.1'));
    });

    await t.test('a daemon that died while the driver was down is replaced after restart', { skip: (await b.call<string>('backend')) !== 'userspace' }, async () => {
      const before = (await b.readActual(id)).daemon!;
      await b.stopAgent();
      process.kill(before.pid, 'SIGKILL');
      await b.startAgent();
      const r = await b.apply(dB, idB);
      okReport(r);
      const after = (await b.readActual(id)).daemon!;
      assert.ok(after.alive && after.pid !== before.pid);
      noop(await b.apply(dB, idB));
      assert.ok(await b.waitPing(ns, '10.42.1.1'));
    });

    await t.test('removal leaves nothing behind', async () => {
      const daemon = (await a.readActual(id)).daemon;
      const r = await a.apply([], idA);
      okReport(r);
      assert.deepEqual(r.removed.map((x) => x.networkId), [id]);
      assert.deepEqual(await a.listOwned(), []);
      assert.equal((await a.exec(['ip', 'netns', 'list'])).stdout.trim(), '');
      assert.equal((await a.exec(['ls', '-A', '/run/wireguard'], { okCodes: [0, 2] })).stdout.trim(), '');
      assert.doesNotMatch((await a.exec(['ip', '-br', 'link'])).stdout, /(^|\n)(w|ze|b)-/);
      assert.doesNotMatch((await a.exec(['nft', 'list', 'tables'])).stdout, /zmesh_/);
      if (daemon) assert.ok(!existsSync(`/proc/${daemon.pid}/cmdline`) || !(await a.call<unknown[]>('listOwned')).length);
      assert.deepEqual(a.processes(), [], 'no process left inside the host');
      noop(await a.apply([], idA));
    });
  } finally {
    for (const h of hosts) {
      const r = await h.close();
      if (r && !r.ok) console.error(`cleanup of ${h.label} reported`, JSON.stringify(r.removed));
    }
    await sw.destroy();
  }
});
