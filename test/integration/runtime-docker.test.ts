// The runtime for real: a private dockerd, two simulated hosts (own network and mount namespaces) whose tenant
// networks the netns driver builds from a hand-made plan (WireGuard between them over a veth underlay), and one
// Runtime per node in this process reaching each host's tenant namespaces through /proc/<pid>/root/run/netns.
// Covers attach/detach/check/gc, cross-node HTTP between workloads, isolation from another tenant and from the
// host, healing after kill, OOM and removal with the same address and data, the volume limit (EDQUOT), the
// workload disk limit (EDQUOT in /tmp, the engine's filesystem not the host's), the capability set (no raw
// sockets), and a removal that leaves no container, veth, port binding, volume, mount or loop device behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApplyReport } from '../../netns/index.ts';
import { BASE_IMAGE, DockerEngine, MemoryRuntimeStore, Runtime, baseImageTar, importImage, vethNames, type DesiredVolume, type DesiredWorkload, type RuntimeReport } from '../../runtime/index.ts';
import type { ZmeshError } from '../../src/errors.ts';
import { dexec, startDockerd, type PrivateDockerd } from '../helpers/dockerd.ts';
import { SimHost, Switch, sh } from '../helpers/host.ts';
import { handPlan } from '../helpers/plan.ts';

const BACKEND = (process.env.ZMESH_TEST_BACKEND as 'auto' | 'kernel' | 'userspace' | undefined) ?? 'auto';
const MiB = 1024 * 1024;

function okNet(r: ApplyReport): void {
  assert.ok(r.ok, `network apply failed: ${JSON.stringify([...r.resources.flatMap((x) => x.failures), ...r.removed.flatMap((x) => x.failures)])}`);
}
function okRt(r: RuntimeReport): void {
  assert.deepEqual(r.errors, [], JSON.stringify(r.errors));
}


async function until<T>(what: string, fn: () => Promise<T | null | false>, tries = 20, delayMs = 500): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await fn();
    if (v) return v;
    await new Promise((r) => setTimeout(r, delayMs));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Processes whose mount namespace still has the pool mounted (a namespace copied while it was mounted). */
function poolHolders(mountpoint: string): string[] {
  const out: string[] = [];
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      if (readFileSync(`/proc/${p}/mountinfo`, 'utf8').includes(` ${mountpoint} `)) out.push(`${p} ${readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ').slice(0, 80)}`);
    } catch {
      /* gone */
    }
  }
  return out;
}

const loopDevicesOf = async (file: string) => (await sh(['losetup', '-j', file])).stdout.trim();

test('runtime: containers on tenant networks across two hosts, healing, isolation, volumes, clean removal', { timeout: 240_000 }, async (t) => {
  let dockerd: PrivateDockerd | null = null;
  const sw = await Switch.create();
  const hosts: SimHost[] = [];
  const runtimes: Runtime[] = [];
  const stateDirs: string[] = [];
  try {
    dockerd = await startDockerd();
    const docker = dockerd.docker;
    t.diagnostic(`private dockerd answered after ${Math.round(dockerd.startMs)} ms`);
    const t0 = performance.now();
    await importImage(docker, baseImageTar(), BASE_IMAGE);
    t.diagnostic(`base image imported in ${Math.round(performance.now() - t0)} ms`);

    const a = await SimHost.start('ra', { backend: BACKEND });
    hosts.push(a);
    const b = await SimHost.start('rb', { backend: BACKEND });
    hosts.push(b);
    await sw.attach({ ns: a.ns, ifname: 'u0', addr: '203.0.113.1/24' }, 1500);
    await sw.attach({ ns: b.ns, ifname: 'u0', addr: '203.0.113.2/24' }, 1500);
    await a.underlay('u0', '203.0.113.254');
    await b.underlay('u0', '203.0.113.254');
    const nodes = [{ node: 'a', underlay: '203.0.113.1' }, { node: 'b', underlay: '203.0.113.2' }];
    const acme = handPlan({ tenant: 'acme', name: 'backend', ipRange: '10.61.0.0/16', egress: true, nodes });
    const globex = handPlan({ tenant: 'globex', name: 'backend', ipRange: '10.62.0.0/16', nodes, identity: acme.identity, basePort: 51830 });
    for (const [h, n] of [[a, 'a'], [b, 'b']] as const) okNet(await h.apply([acme.desired.get(n)!, globex.desired.get(n)!], acme.identity.get(n)!));

    const rtFor = (h: SimHost, node: string) => {
      const dir = mkdtempSync(join(tmpdir(), `zmesh-rt-${node}-`));
      stateDirs.push(dir);
      const rt = new Runtime({
        node,
        store: new MemoryRuntimeStore(),
        stateDir: dir,
        dockerSocket: dockerd!.socket,
        storage: { size: 256 * MiB },
        netnsPath: (id) => `/proc/${h.anchorPid}/root/run/netns/n-${id}`,
        maxBackoffMs: 2000,
      });
      runtimes.push(rt);
      return rt;
    };
    const rtA = rtFor(a, 'a');
    const rtB = rtFor(b, 'b');
    const wl = (tenant: 'acme' | 'globex', node: 'a' | 'b', name: string, ip: string, command: string[], over: Partial<DesiredWorkload> = {}): DesiredWorkload => {
      const n = tenant === 'acme' ? acme : globex;
      const r = n.desired.get(node)!.resource;
      return { tenant, blueprint: 'shop', name, node, image: BASE_IMAGE, command, cpu: 0.5, memory: 64 * MiB, disk: 64 * MiB, network: { id: n.networkId, name: 'backend', ip, prefix: 24, gateway: r.gateway }, mounts: [], ...over };
    };
    const serve = (text: string) => ['sh', '-c', `mkdir -p /www && echo ${text} > /www/index.html && exec httpd -f -p 80 -h /www`];
    const web = wl('acme', 'a', 'web', '10.61.1.10', ['httpd', '-f', '-p', '80', '-h', '/data'], { mounts: [{ volume: 'data', path: '/data' }] });
    const client = wl('acme', 'b', 'client', '10.61.2.10', ['sleep', '3600']);
    const gweb = wl('globex', 'a', 'gweb', '10.62.1.10', serve('hello-globex'));
    const gclient = wl('globex', 'b', 'gclient', '10.62.2.10', ['sleep', '3600']);
    const data: DesiredVolume = { tenant: 'acme', blueprint: 'shop', name: 'data', node: 'a', size: 16 * MiB };
    let wantA = { workloads: [web, gweb], volumes: [data] };
    const wantB = { workloads: [client, gclient], volumes: [] };
    const idOf = async (w: DesiredWorkload) => (await (w.node === 'a' ? rtA : rtB).compute.containerOf(w))!;

    await t.test('workloads start attached: planned address, bridge MTU, default route; a second apply is a no-op', async () => {
      const t1 = performance.now();
      const ra = await rtA.apply(wantA);
      const ta = performance.now() - t1;
      okRt(ra);
      const t2 = performance.now();
      okRt(await rtB.apply(wantB));
      t.diagnostic(`node a: pool + volume + 2 containers created and attached in ${Math.round(ta)} ms; node b: 2 containers in ${Math.round(performance.now() - t2)} ms`);
      const id = await idOf(web);
      const addr = await dexec(docker, id, ['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0']);
      assert.match(addr.out, /inet 10\.61\.1\.10\/24/);
      const link = await dexec(docker, id, ['cat', '/sys/class/net/eth0/mtu']);
      const bridgeMtu = String(JSON.parse((await a.execIn(`n-${acme.networkId}`, ['ip', '-j', 'link', 'show', 'dev', `b-${acme.networkId}`])).stdout)[0].mtu);
      assert.equal(link.out.trim(), bridgeMtu, 'eth0 MTU = bridge MTU');
      assert.match((await dexec(docker, id, ['ip', 'route'])).out, /default via 10\.61\.1\.1 dev eth0/);
      const master = await a.execIn(`n-${acme.networkId}`, ['ip', '-o', 'link', 'show', 'dev', vethNames(web).host]);
      assert.match(master.stdout, new RegExp(`master b-${acme.networkId}`));
      const t3 = performance.now();
      const again = await rtA.apply(wantA);
      okRt(again);
      assert.equal(again.changes, 0, JSON.stringify(again.events));
      t.diagnostic(`no-op apply on node a (2 CHECKs, 1 volume): ${Math.round(performance.now() - t3)} ms`);
      const inspect = await docker.getContainer(id).inspect();
      assert.equal(inspect.HostConfig.NetworkMode, 'none');
      assert.equal(inspect.HostConfig.NanoCpus, 0.5e9);
      assert.equal(inspect.HostConfig.Memory, 64 * MiB);
      assert.equal(inspect.HostConfig.RestartPolicy?.Name, 'no');
      assert.equal(inspect.Config.Labels['zmesh.tenant'], 'acme');
    });

    await t.test('cross-node: a workload on b fetches a workload on a over the tenant mesh', async () => {
      await dexec(docker, await idOf(web), ['sh', '-c', 'echo hello-acme > /data/index.html']);
      const cid = await idOf(client);
      const body = await until('HTTP from b to a through WireGuard', async () => {
        const r = await dexec(docker, cid, ['timeout', '3', 'wget', '-q', '-O', '-', 'http://10.61.1.10/']);
        return r.exitCode === 0 ? r.out : null;
      });
      assert.equal(body.trim(), 'hello-acme');
      const g = await until('globex HTTP b → a', async () => {
        const r = await dexec(docker, await idOf(gclient), ['timeout', '3', 'wget', '-q', '-O', '-', 'http://10.62.1.10/']);
        return r.exitCode === 0 ? r.out : null;
      });
      assert.equal(g.trim(), 'hello-globex');
    });

    await t.test('isolation: no reach into another tenant, nor to the host', async () => {
      const cid = await idOf(client);
      const wid = await idOf(web);
      const fails = async (id: string, url: string) => (await dexec(docker, id, ['timeout', '3', 'wget', '-q', '-O', '-', url])).exitCode !== 0;
      assert.ok(await fails(cid, 'http://10.62.1.10/'), 'acme on b → globex on a');
      assert.ok(await fails(wid, 'http://10.62.1.10/'), 'acme on a → globex on the same node');
      assert.ok(await fails(await idOf(gclient), 'http://10.61.1.10/'), 'globex → acme');
      // From the container's network namespace with the host's ping (the container has no NET_RAW for one).
      const ping = async (id: string, dst: string) => {
        const pid = (await docker.getContainer(id).inspect()).State.Pid;
        return (await sh(['nsenter', '-t', String(pid), '-n', '--', 'ping', '-c', '1', '-W', '1', dst], { okCodes: [0, 1, 2] })).exitCode === 0;
      };
      assert.ok(!(await ping(wid, '203.0.113.1')), "acme (egress on) cannot reach its host's underlay address");
      const ze = JSON.parse((await a.exec(['ip', '-j', 'addr', 'show', 'dev', `ze-${acme.networkId}`])).stdout)[0];
      const hostEnd = ze.addr_info.find((x: { family: string }) => x.family === 'inet').local as string;
      assert.ok(!(await ping(wid, hostEnd)), `nor the host end of its egress link (${hostEnd})`);
      assert.ok(!(await ping(await idOf(gweb), '203.0.113.1')), 'globex (no egress) has no way to the host');
      assert.ok(await ping(wid, '10.61.1.1'), 'the gateway answers (control)');
    });

    await t.test('the volume limit holds: writing past 16 MiB fails with EDQUOT', async () => {
      const r = await dexec(docker, await idOf(web), ['sh', '-c', 'dd if=/dev/zero of=/data/big bs=1M count=40 2>&1; sync']);
      assert.match(r.out, /Disk quota exceeded|No space left/);
      const size = Number((await dexec(docker, await idOf(web), ['stat', '-c', '%s', '/data/big'])).out.trim());
      assert.ok(size <= 16 * MiB, `file stopped at the limit (${size})`);
      await dexec(docker, await idOf(web), ['rm', '-f', '/data/big']);
      const [v] = await rtA.volumes(wantA);
      assert.deepEqual([v.name, v.size, v.limit, v.state, v.mountedBy], ['data', 16 * MiB, 16 * MiB, 'ready', ['web']]);
    });

    await t.test('the disk limit holds: writing 300 MB into /tmp past 32 MiB fails with EDQUOT; df shows the engine pool, not the host', async () => {
      assert.equal(dockerd!.storageDriver, 'btrfs');
      const hog = wl('acme', 'a', 'disk-hog', '10.61.1.12', ['sleep', '3600'], { disk: 32 * MiB });
      okRt(await rtA.apply({ ...wantA, workloads: [...wantA.workloads, hog] }));
      const id = await idOf(hog);
      assert.equal((await docker.getContainer(id).inspect()).HostConfig.StorageOpt?.size, String(32 * MiB));
      const imageBefore = statSync(dockerd!.dataImage!).blocks * 512;
      const hostBefore = (await sh(['df', '-B1', '--output=avail', tmpdir()])).stdout.split('\n')[1].trim();
      const t1 = performance.now();
      const w = await dexec(docker, id, ['sh', '-c', 'dd if=/dev/zero of=/tmp/big bs=1M count=300 2>&1; echo rc=$?; sync'], 60_000);
      t.diagnostic(`wrote into /tmp until refused in ${Math.round(performance.now() - t1)} ms: ${w.out.replace(/\s+/g, ' ').trim()}`);
      assert.match(w.out, /Disk quota exceeded|No space left on device/);
      assert.match(w.out, /rc=1/);
      const size = Number((await dexec(docker, id, ['stat', '-c', '%s', '/tmp/big'])).out.trim());
      assert.ok(size > 16 * MiB && size <= 32 * MiB, `the file stopped at the limit: ${size} bytes`);
      // Hard links and renames stay inside the same limit; a second file gets nothing more.
      const more = await dexec(docker, id, ['sh', '-c', 'ln /tmp/big /tmp/big2 && mv /tmp/big2 /big3 && dd if=/dev/zero of=/tmp/more bs=1M count=8 2>&1; echo rc=$?']);
      assert.match(more.out, /Disk quota exceeded|No space left on device/);
      const imageAfter = statSync(dockerd!.dataImage!).blocks * 512;
      const hostAfter = (await sh(['df', '-B1', '--output=avail', tmpdir()])).stdout.split('\n')[1].trim();
      t.diagnostic(`engine image grew by ${((imageAfter - imageBefore) / MiB).toFixed(1)} MiB; host free space ${((Number(hostBefore) - Number(hostAfter)) / MiB).toFixed(1)} MiB less (other processes write too)`);
      assert.ok(imageAfter - imageBefore < 48 * MiB, `the host gave the engine only about the limit: ${imageAfter - imageBefore} bytes`);
      const df = (await dexec(docker, id, ['df', '-k', '/'])).out.trim().split('\n').pop()!.trim().split(/\s+/);
      const dfBytes = Number(df[1]) * 1024;
      const hostBytes = Number((await sh(['df', '-B1', '--output=size', tmpdir()])).stdout.split('\n')[1].trim());
      t.diagnostic(`df / in the container: ${(dfBytes / MiB).toFixed(0)} MiB (the engine's btrfs image, ${(statSync(dockerd!.dataImage!).size / MiB).toFixed(0)} MiB); host: ${(hostBytes / MiB).toFixed(0)} MiB`);
      assert.ok(dfBytes <= statSync(dockerd!.dataImage!).size, 'df shows the engine pool, not the host');
      okRt(await rtA.apply(wantA));
    });

    await t.test('capabilities: only the minimal set, no raw sockets (arping, ping refused), no new privileges', async () => {
      const id = await idOf(web);
      const i = await docker.getContainer(id).inspect();
      assert.deepEqual([i.HostConfig.CapDrop, i.HostConfig.CapAdd, i.HostConfig.SecurityOpt, i.HostConfig.Privileged], [
        ['ALL'],
        ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_SETGID', 'CAP_SETUID'],
        ['no-new-privileges'],
        false,
      ]);
      const status = (await dexec(docker, id, ['cat', '/proc/1/status'])).out;
      // CHOWN 0, DAC_OVERRIDE 1, FOWNER 3, KILL 5, SETGID 6, SETUID 7, NET_BIND_SERVICE 10.
      assert.match(status, /CapEff:\s+00000000000004eb/);
      assert.match(status, /CapBnd:\s+00000000000004eb/);
      assert.match(status, /NoNewPrivs:\s+1/);
      const arping = await dexec(docker, id, ['busybox', 'arping', '-c', '1', '-w', '1', '-I', 'eth0', '10.61.1.1']);
      assert.notEqual(arping.exitCode, 0);
      assert.match(arping.out, /Operation not permitted/);
      const raw = await dexec(docker, id, ['ping', '-c', '1', '-W', '1', '10.61.1.1']);
      assert.notEqual(raw.exitCode, 0, `busybox ping needs a raw socket: ${raw.out}`);
      assert.match((await dexec(docker, id, ['ip', 'link', 'set', 'eth0', 'address', '02:5a:0a:3d:01:63'])).out, /Operation not permitted/);
    });

    await t.test('a killed container comes back with its address and data; the event says why', async () => {
      const exits: string[] = [];
      assert.ok(await rtA.watch((e) => exits.push(`${e.workload} ${e.action}`)));
      const before = await idOf(web);
      await docker.getContainer(before).kill();
      await until('the die event', async () => exits.some((x) => x.startsWith('acme/shop/web die')), 20, 100);
      const t1 = performance.now();
      const r = await rtA.apply(wantA);
      okRt(r);
      t.diagnostic(`restart + re-attach after kill: ${Math.round(performance.now() - t1)} ms`);
      assert.ok(r.events.some((e) => e.kind === 'workload.exited' && /exit code 137/.test(e.message)), JSON.stringify(r.events));
      assert.ok(r.events.some((e) => e.kind === 'workload.restarted'));
      const body = await until('HTTP after restart', async () => {
        const x = await dexec(docker, await idOf(client), ['timeout', '3', 'wget', '-q', '-O', '-', 'http://10.61.1.10/']);
        return x.exitCode === 0 ? x.out : null;
      });
      assert.equal(body.trim(), 'hello-acme', 'same address, same data');
      // Removed altogether: recreated, still with its data.
      await docker.getContainer(await idOf(web)).remove({ force: true });
      const r2 = await rtA.apply(wantA);
      okRt(r2);
      assert.ok(r2.events.some((e) => e.kind === 'workload.recreated'));
      assert.notEqual(await idOf(web), before);
      assert.equal((await dexec(docker, await idOf(web), ['cat', '/data/index.html'])).out.trim(), 'hello-acme');
      const [v] = (await rtA.workloads(wantA.workloads)).filter((x) => x.name === 'web');
      assert.deepEqual([v.state, v.address, v.restarts], ['running', '10.61.1.10/24', 2]);
    });

    await t.test('OOM: the event log says OOM killed', async () => {
      const hog = wl('acme', 'a', 'hog', '10.61.1.11', ['sh', '-c', 'sleep 1; x=a; while true; do x="$x$x$x"; done'], { memory: 8 * MiB });
      wantA = { ...wantA, workloads: [...wantA.workloads, hog] };
      okRt(await rtA.apply(wantA));
      const ev = await until('an OOM kill', async () => {
        const r = await rtA.apply(wantA);
        return r.events.find((e) => e.kind === 'workload.exited') ?? null;
      }, 30, 500);
      assert.match(ev.message, /OOM killed \(exit code 137\)/);
      assert.equal(ev.data?.oomKilled, true);
      wantA = { ...wantA, workloads: wantA.workloads.filter((w) => w.name !== 'hog') };
      okRt(await rtA.apply(wantA));
    });

    await t.test('attach/detach/check/gc against the live state', async () => {
      const rec = (rtA as unknown as { opts: { store: MemoryRuntimeStore } }).opts.store.workloads().find((x) => x.key === 'acme/shop/web')!;
      const att = rec.attachment!;
      const pid = (await docker.getContainer(att.containerId).inspect()).State.Pid;
      assert.deepEqual(await rtA.attacher.check(att, pid), []);
      assert.equal(await rtA.attacher.del(att), true);
      assert.equal(await rtA.attacher.del(att), false, 'DEL is idempotent');
      assert.ok((await rtA.attacher.check(att, pid)).some((p) => /missing/.test(p)));
      // A veth without our marker in the tenant namespace is never touched by GC.
      await a.execIn(`n-${acme.networkId}`, ['ip', 'link', 'add', 'x-foreign', 'type', 'veth', 'peer', 'name', 'x-peer']);
      const r = await rtA.apply(wantA);
      okRt(r);
      assert.ok(r.events.some((e) => e.kind === 'workload.drift'), 'CHECK saw it, ADD repaired it');
      assert.deepEqual(await rtA.attacher.check((rtA as unknown as { opts: { store: MemoryRuntimeStore } }).opts.store.workloads().find((x) => x.key === 'acme/shop/web')!.attachment!, pid), []);
      const ns = `/proc/${a.anchorPid}/root/run/netns/n-${acme.networkId}`;
      assert.deepEqual(await rtA.attacher.gc([ns], new Set([vethNames(web).host])), [], 'nothing stale');
      const removed = await rtA.attacher.gc([ns], new Set());
      assert.deepEqual(removed, [`${ns}:${vethNames(web).host}`, `${ns}:nft table bridge zmesh-wl`], 'the veth, and the binding table of a namespace no workload wants');
      assert.match((await a.execIn(`n-${acme.networkId}`, ['ip', '-o', 'link'])).stdout, /x-foreign/);
      await a.execIn(`n-${acme.networkId}`, ['ip', 'link', 'del', 'x-foreign']);
      okRt(await rtA.apply(wantA));
    });

    await t.test('a removed workload and volume leave no container, veth, volume, mount or loop device', async () => {
      const volPath = rtA.storage.volumePath(data);
      assert.ok(existsSync(volPath));
      const r = await rtA.apply({ workloads: [gweb], volumes: [] });
      okRt(r);
      assert.deepEqual(r.events.map((e) => e.kind).sort(), ['volume.deleted', 'workload.gc', 'workload.removed']);
      assert.match(r.events.find((e) => e.kind === 'workload.gc')!.message, /nft table bridge zmesh-wl/, 'acme has no workload on a any more: its binding table goes');
      assert.equal(await rtA.compute.containerOf(web), null);
      assert.doesNotMatch((await a.execIn(`n-${acme.networkId}`, ['ip', '-o', 'link'])).stdout, new RegExp(vethNames(web).host));
      assert.ok(!existsSync(volPath));
      okRt(await rtA.apply({ workloads: [], volumes: [] }));
      okRt(await rtB.apply({ workloads: [], volumes: [] }));
      assert.deepEqual(await docker.listContainers({ all: true }), []);
      for (const h of [a, b]) {
        for (const id of [acme.networkId, globex.networkId]) {
          assert.doesNotMatch((await h.execIn(`n-${id}`, ['ip', '-o', 'link'])).stdout, /v-[a-z2-7]{10}/);
          assert.doesNotMatch((await h.execIn(`n-${id}`, ['nft', 'list', 'tables'])).stdout, /zmesh-wl/, 'no port binding table left');
        }
      }
      await rtA.storage.close();
      // The loop device is freed when the last mount namespace lets go of the pool (containers just removed).
      await until('the loop device to go with the unmount', async () => (await loopDevicesOf(rtA.storage.image)) === '', 40, 250).catch((e) => {
        throw new Error(`${(e as Error).message}; mount namespaces still holding the pool: ${poolHolders(rtA.storage.mountpoint).join('; ') || 'none'}`);
      });
      assert.ok(!readFileSync('/proc/self/mountinfo', 'utf8').includes(rtA.storage.mountpoint));
    });
  } finally {
    for (const rt of runtimes) {
      await rt.close().catch(() => undefined);
      await rt.storage.close().catch(() => undefined);
    }
    if (dockerd) await dockerd.stop().catch(() => undefined);
    for (const h of hosts) await h.close().catch(() => undefined);
    await sw.destroy().catch(() => undefined);
    for (const rt of runtimes) {
      await until('loop devices to be released', async () => (await loopDevicesOf(rt.storage.image)) === '', 40, 250).catch(() => undefined);
    }
    for (const d of stateDirs) rmSync(d, { recursive: true, force: true });
  }
});

test('an engine that cannot limit disks (overlay2 on ext4) runs nothing: E_DISK_LIMIT_UNSUPPORTED', { timeout: 60_000 }, async () => {
  const d = await startDockerd({ storageDriver: 'overlay2' });
  try {
    await importImage(d.docker, baseImageTar(), BASE_IMAGE);
    const engine = new DockerEngine(d.socket);
    const spec = { name: 'zmesh.n.acme.shop.web', image: BASE_IMAGE, command: ['sleep', '60'], hostname: 'web', labels: {}, nanoCpus: 1e8, memory: 64 * MiB, disk: 64 * MiB, mounts: [] };
    await assert.rejects(engine.create(spec), (e: unknown) => {
      const z = e as ZmeshError;
      assert.equal(z.code, 'E_DISK_LIMIT_UNSUPPORTED');
      assert.match(z.message, /storage driver overlay2 on extfs\): create zmesh\.n\.acme\.shop\.web: --storage-opt is supported only for overlay over xfs with 'pquota' mount option/);
      assert.match(z.hint, /--storage-driver=btrfs/);
      return true;
    });
    assert.deepEqual(await d.docker.listContainers({ all: true }), [], 'nothing was made');
  } finally {
    await d.stop();
  }
});
