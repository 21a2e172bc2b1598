// Workloads in labs, for real (as root): the quickstart with its six web servers (one per tenant and node,
// each a container on its node's private dockerd, inside the node's namespaces) reaches a green matrix that
// includes workload-to-workload HTTP across nodes (reached within a tenant, isolated between tenants although
// both use 10.1.0.0/16, told apart by the identity in the answer). Then, with bounds stated:
//   a killed container is back (running, same address, reachable again) within 15 s, by the agent alone;
//   `lab up` again with a volume added reconciles (green within 60 s); the volume's data survives a reboot of
//   its node (green again within 60 s, same address, same data);
//   `lab down` — with the lab's state file gone, as after a crash — leaves no dockerd, containerd, container,
//   mount, loop device, cgroup or namespace.
// And a lab without workloads starts no Docker engine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import {
  dockerClient,
  downLab,
  labDir,
  labFault,
  labUp,
  labWaitGreen,
  leftovers,
  loopsUnder,
  openLab,
  processesOf,
  readState,
  workloadPid,
} from '../../labs/index.ts';
import { cmdline, nsInode, run, sleep } from '../../labs/sys.ts';
import { dockerdArgv, dockerPaths } from '../../labs/docker.ts';
import { netOfId, parseEcho, type Endpoint } from '../../labs/endpoints.ts';
import { judge, parseProbe, probeTarget } from '../../labs/matrix.ts';
import { parseLabSpec, workloadNodes } from '../../labs/spec.ts';
import { ValidationError } from '../../src/errors.ts';
import { call } from '../../src/admin/client.ts';
import type { WorkloadView, VolumeView } from '../../runtime/types.ts';

const SPEC = fileURLToPath(new URL('../../labs/quickstart.yaml', import.meta.url));
const root = mkdtempSync('/tmp/zmesh-lab-test-');
process.env.ZMESH_LAB_DIR = root;

type Wl = { node: string; tenant: string; blueprint: string; name: string };
const web = (tenant: 'blue' | 'red', node: 'a' | 'b' | 'c'): Wl => ({ node: `node-${node}`, tenant, blueprint: tenant === 'blue' ? 'office' : 'shop', name: `web-${node}` });

/** An HTTP GET from inside a workload's container network namespace (busybox nc from the host), or null. */
async function httpFrom(dir: string, from: Wl, address: string, path = '/'): Promise<string | null> {
  const pid = await workloadPid(dockerClient(dir, from.node), from);
  if (!pid) return null;
  const r = await run(
    ['nsenter', `--net=/proc/${pid}/ns/net`, '--', 'busybox', 'sh', '-c', `printf "GET ${path} HTTP/1.0\\r\\n\\r\\n" | busybox timeout 3 busybox nc -w 2 ${address} 80`],
    { okCodes: [0, 1, 124, 143] },
  );
  const body = r.stdout.split('\r\n\r\n').slice(1).join('\r\n\r\n').trim();
  return /^HTTP\/1\.[01] 200/.test(r.stdout) ? body : null;
}

async function ps(dir: string, node: string): Promise<WorkloadView[]> {
  return (await call<{ workloads: WorkloadView[] }>(join(dir, 'nodes', node, 'admin.sock'), 'GET', '/v1/workloads')).workloads;
}

async function until<T>(what: string, boundMs: number, fn: () => Promise<T | null | false>): Promise<{ value: T; ms: number }> {
  const t0 = Date.now();
  for (let i = 0; i < 10_000 && Date.now() - t0 < boundMs; i++) {
    const v = await fn();
    if (v) return { value: v, ms: Date.now() - t0 };
    await sleep(100);
  }
  throw new Error(`${what}: not within ${boundMs} ms`);
}

test('pure parts: workload identities, probe targets, judging, spec rules, the engine argv', () => {
  assert.equal(parseEcho('HTTP/1.0 200 OK\r\n\r\nzmesh-wl red/shop/web-a\n'), 'wl:red/shop/web-a');
  assert.equal(parseEcho('zmesh-lab-echo red/shop/backend@node-a'), 'red/shop/backend@node-a');
  assert.deepEqual(['red/shop/backend@node-a', 'red/shop/backend/web-a@node-a', 'wl:x/y/z', 'nonsense'].map(netOfId), ['red/shop/backend', 'red/shop/backend', null, null]);
  const wl = (id: string, address: string): Endpoint => {
    const [path, host] = id.split('@');
    const [tenant, bp, net, name] = path.split('/');
    return { id, net: `${tenant}/${bp}/${net}`, tenant, kind: 'workload', host, networkId: 'aaaaaaaaaa', address, port: 80, workload: `${tenant}/${bp}/${name}`, owns: [address] };
  };
  const bA = wl('blue/o/lan/web-a@node-a', '10.1.0.2');
  const bB = wl('blue/o/lan/web-b@node-b', '10.1.1.2');
  const rB = wl('red/s/be/web-b@node-b', '10.1.1.2');
  assert.equal(probeTarget(bB), '10.1.1.2:80');
  const m = parseProbe('P 10.1.1.2:80 0.5\nT 10.1.1.2:80 zmesh-wl blue/o/web-b\n');
  assert.deepEqual(m.get('10.1.1.2:80'), { ping: true, rttMs: 0.5, seen: 'wl:blue/o/web-b' });
  const own = new Set(['10.1.0.2', '10.1.1.2']);
  assert.equal(judge(bA, bB, { ping: true, rttMs: 0.5, seen: bB.id }, own).ok, true);
  // The other tenant's web-b at the same address: blue's own web-b answers — isolated; red's answering is a breach.
  assert.deepEqual([judge(bA, rB, { ping: true, rttMs: 0.5, seen: bB.id }, own).ok, judge(bA, rB, { ping: true, rttMs: 0.5, seen: rB.id }, own).ok], [true, false]);
  // A page the lab does not know (mapped ids stay "wl:…") is something outside the network: a breach.
  assert.equal(judge(bA, rB, { ping: true, rttMs: 0.5, seen: 'wl:evil/x/y' }, own).ok, false);

  const bad = (image: string) => {
    try {
      return workloadNodes(
        parseLabSpec(
          stringify({ name: 'w', nodes: [{ name: 'n1' }, { name: 'n2' }], tenants: [{ name: 't', blueprints: [{ name: 'b', networks: [{ name: 'net', ipRange: '10.9.0.0/16', nodes: ['n1', 'n2'] }], workloads: [{ name: 'x', node: 'n2', image, network: { name: 'net' } }] }] }] }),
          { baseDir: '/', readFile: () => '' },
        ),
      );
    } catch (e) {
      assert.ok(e instanceof ValidationError);
      return e.problems.map((p) => `${p.code} ${p.path}`);
    }
  };
  assert.deepEqual(bad('zmesh/base:latest'), new Set(['n2']));
  assert.deepEqual(bad('nginx:1.27'), ['E_LAB_IMAGE tenants.t.b.workloads[0].image']);

  const argv = dockerdArgv(dockerPaths('/l/q', 'node-a'), 'q', 'node-a');
  assert.deepEqual(argv.slice(0, 2), ['dockerd', '--config-file=/l/q/nodes/node-a/docker/daemon.json']);
  for (const f of ['--data-root=/l/q/nodes/node-a/docker/data', '--exec-root=/l/q/nodes/node-a/docker/run', '--host=unix:///l/q/nodes/node-a/docker/docker.sock', '--iptables=false', '--ip6tables=false', '--bridge=none', '--cgroup-parent=/zl-q_n-node-a']) {
    assert.ok(argv.includes(f), f);
  }
});

test('workloads in the quickstart: cross-node HTTP, isolation, healing, volume through a reboot, clean down', { timeout: 240_000 }, async (t) => {
  const name = `wl-${randomBytes(3).toString('hex')}`;
  const dir = labDir(name);
  const procs: { pid: number; start: number }[] = [];
  const left: string[] = [];
  let mounts: string;
  let loops: string[];
  try {
    const s = await labUp(SPEC, { name });
    t.diagnostic(`quickstart with 6 workloads green in ${s.secondsToGreen?.toFixed(1)} s`);
    assert.ok(s.green, `not green: ${JSON.stringify(s.matrix.filter((p) => !p.ok).slice(0, 5))}`);
    assert.ok(s.secondsToGreen! < 45, `green only after ${s.secondsToGreen} s`);
    assert.equal(s.workloads, 6);
    assert.equal(new Set(s.matrix.map((p) => `${p.from} ${p.to}`)).size, 13 * 12);

    await t.test('the matrix checks workload to workload across nodes: reach within a tenant, isolation between', () => {
      const w2w = s.matrix.filter((p) => /\/web-.@/.test(p.from) && /\/web-.@/.test(p.to) && p.family === 4 && p.proto !== 'dns');
      // Dual-stack: every check again over IPv6, with the same outcome (the names rows are checked in lab-quickstart).
      const w2w6 = s.matrix.filter((p) => /\/web-.@/.test(p.from) && /\/web-.@/.test(p.to) && p.family === 6 && p.proto !== 'dns');
      assert.deepEqual(w2w6.map((p) => [p.from, p.to, p.proto, p.port, p.expect, p.ok]), w2w.map((p) => [p.from, p.to, p.proto, p.port, p.expect, p.ok]));
      // Red (no policy): 6 pairs, one row each; blue (a policy): 6 pairs, an ICMP and a TCP/80 row each; 18
      // pairs across tenants, one isolated row each.
      assert.equal(w2w.length, 6 + 12 + 18);
      const same = w2w.filter((p) => p.expect === 'reach');
      // Every ping, red's pages, and blue's web tier (web-a, web-c) to its "database" web-b.
      assert.equal(same.length, 6 + 6 + 2);
      // Reached means the target's own page answered: the identity names it.
      assert.ok(same.every((p) => p.ok && (p.proto === 'icmp' || p.seen === p.to) && (p.proto === 'tcp' || p.rttMs !== null)), JSON.stringify(same.filter((p) => !p.ok || p.seen !== p.to)));
      const denied = w2w.filter((p) => p.expect === 'denied');
      assert.deepEqual(denied.map((p) => `${p.from.split('/')[3]} ${p.to.split('/')[3]} ${p.proto}/${p.port}`).sort(), ['web-a@node-a web-c@node-c tcp/80', 'web-b@node-b web-a@node-a tcp/80', 'web-b@node-b web-c@node-c tcp/80', 'web-c@node-c web-a@node-a tcp/80']);
      assert.ok(denied.every((p) => p.ok && !p.reached && p.seen === null));
      const other = w2w.filter((p) => p.expect === 'isolated');
      assert.ok(other.every((p) => p.ok && !p.reached));
      // Both tenants' web servers have the same addresses: a probe of the other tenant's web-b lands on the
      // source tenant's own web-b. Not a breach, and the matrix can tell.
      const twin = other.filter((p) => p.from === 'blue/office/lan/web-a@node-a' && p.to === 'red/shop/backend/web-b@node-b');
      assert.deepEqual(twin.map((p) => p.seen), ['blue/office/lan/web-b@node-b']);
      // The laptop reaches blue's web servers (through the access node for the hidden one).
      assert.ok(s.matrix.filter((p) => p.from === 'blue/office/lan@laptop' && p.to.includes('/web-')).every((p) => p.ok));
    });

    await t.test('one private dockerd per node, inside its namespaces, with the base image', async () => {
      const st = readState(dir)!;
      assert.deepEqual(Object.keys(st.dockerd).sort(), ['node-a', 'node-b', 'node-c']);
      for (const [node, d] of Object.entries(st.dockerd)) {
        assert.equal(cmdline(d.pid)[0], 'dockerd');
        const h = st.holders[node];
        assert.deepEqual([nsInode(d.pid, 'mnt'), nsInode(d.pid, 'net')], [h.mnt, h.net], `${node}'s dockerd runs in the node's namespaces`);
        const images = await dockerClient(dir, node).listImages();
        assert.ok(images.some((i) => i.RepoTags?.includes('zmesh/base:latest')), `${node} has the base image`);
      }
      // Fetch by hand: blue's web-c on the hidden node reaches blue's web-b, by its page (blue's policy lets its
      // web tier reach the "database" web-b on tcp/80); web-a to web-c it drops.
      const b = (await ps(dir, 'node-b')).find((w) => w.tenant === 'blue')!;
      const c = (await ps(dir, 'node-c')).find((w) => w.tenant === 'blue')!;
      assert.equal(await httpFrom(dir, web('blue', 'c'), b.address!.split('/')[0]), 'zmesh-wl blue/office/web-b');
      assert.equal(await httpFrom(dir, web('blue', 'a'), c.address!.split('/')[0]), null);
    });

    await t.test('a killed container is back with its address within 15 s, by the agent alone', async () => {
      const target = web('red', 'b');
      const before = (await ps(dir, 'node-b')).find((w) => w.tenant === 'red')!;
      const addr = before.address!.split('/')[0];
      await dockerClient(dir, 'node-b').getContainer(before.containerId!).kill();
      const back = await until('red web-b running, attached and answering again', 15_000, async () => {
        const now = (await ps(dir, 'node-b')).find((w) => w.tenant === 'red');
        if (!now || now.state !== 'running' || now.restarts !== before.restarts + 1 || now.address !== before.address) return null;
        return (await httpFrom(dir, web('red', 'a'), addr)) === 'zmesh-wl red/shop/web-b' ? now : null;
      });
      t.diagnostic(`kill → running at ${back.value.address} and answering across nodes after ${back.ms} ms`);
      assert.ok((await workloadPid(dockerClient(dir, 'node-b'), target)) !== null);
    });

    const key = `kept-${randomBytes(4).toString('hex')}`;
    await t.test('a volume added by `lab up` again; its data survives a reboot of its node', async () => {
      // red's web-c gets a 16 MiB volume mounted under its web root.
      const spec = parse(readFileSync(SPEC, 'utf8'));
      const shop = spec.tenants.find((x: { name: string }) => x.name === 'red').blueprints[0];
      shop.volumes = [{ name: 'data', node: 'node-c', size: '16Mi' }];
      shop.workloads.find((w: { name: string }) => w.name === 'web-c').volumes = [{ name: 'data', mount: '/var/www/data' }];
      const spec2 = join(root, 'quickstart-volume.yaml');
      writeFileSync(spec2, stringify(spec));
      const r = await labUp(spec2, { name });
      t.diagnostic(`reconciled (volume added, red/shop/web-c replaced) green in ${r.secondsToGreen?.toFixed(1)} s`);
      assert.ok(r.green && r.secondsToGreen! < 60, `not green after adding the volume: ${JSON.stringify(r.matrix.filter((p) => !p.ok).slice(0, 4))}`);
      const vols = (await call<{ volumes: VolumeView[] }>(join(dir, 'nodes', 'node-c', 'admin.sock'), 'GET', '/v1/volumes')).volumes;
      assert.deepEqual(vols.map((v) => [v.name, v.size, v.state, v.mountedBy]), [['data', 16 * 1024 * 1024, 'ready', ['web-c']]]);
      const pools = () => loopsUnder(dir).filter(([, f]) => f.endsWith('/pool.img'));
      const engines = () => loopsUnder(dir).filter(([, f]) => f.endsWith('/docker/data.img')).map(([, f]) => f.split('/nodes/')[1]?.split('/')[0]).sort();
      assert.equal(pools().length, 1, 'node-c has its pool on a loop device');
      const engineNodes = engines();
      assert.ok(engineNodes.includes('node-c') && new Set(engineNodes).size === engineNodes.length, `one btrfs data root per engine: ${engineNodes}`);

      const w = (await ps(dir, 'node-c')).find((x) => x.tenant === 'red')!;
      const ex = await dockerClient(dir, 'node-c').getContainer(w.containerId!).exec({ Cmd: ['sh', '-c', `echo ${key} > /var/www/data/keep.txt`], AttachStdout: true, AttachStderr: true });
      const stream = await ex.start({ hijack: true, stdin: false });
      await new Promise((res) => stream.on('end', res));
      const addr = w.address!.split('/')[0];
      assert.equal(await httpFrom(dir, web('red', 'a'), addr, '/data/keep.txt'), key);

      const t0 = Date.now();
      await labFault(name, 'node-c', 'reboot');
      const g = await labWaitGreen(name, 60_000);
      t.diagnostic(`reboot of node-c (engine, pool, 2 containers) → green again after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      assert.ok(g.green, `not green within 60 s of the reboot: ${JSON.stringify(g.matrix.filter((p) => !p.ok).slice(0, 4))}`);
      const after = (await ps(dir, 'node-c')).find((x) => x.tenant === 'red')!;
      assert.deepEqual([after.state, after.address], ['running', w.address]);
      const { value } = await until('the volume data after the reboot', 15_000, () => httpFrom(dir, web('red', 'a'), addr, '/data/keep.txt'));
      assert.equal(value, key);
      assert.equal(pools().length, 1, 'one pool loop device for node-c, not the old one as well');
      assert.deepEqual(engines(), engineNodes, "and one engine data root each: node-c's old one went with its namespace");
    });
  } finally {
    procs.push(...processesOf(name, dir));
    // As after a crash: no state file, `lab down` goes by names, namespaces and cgroups alone.
    rmSync(join(dir, 'state.json'), { force: true });
    const t0 = Date.now();
    const d = await downLab(name, dir);
    t.diagnostic(`lab down (without its state file) in ${((Date.now() - t0) / 1000).toFixed(1)} s: killed ${d.killed}`);
    left.push(...leftovers(name, dir, { procs }));
    mounts = readFileSync('/proc/mounts', 'utf8');
    loops = (await run(['losetup', '-a'])).stdout.split('\n').filter((l) => l.includes(root));
  }
  assert.deepEqual(left, [], 'lab down left things behind');
  assert.ok(!mounts.includes(root), 'no mount under the lab directory');
  assert.deepEqual(loops, [], 'no loop device');
  const kinds = new Set(procs.map((p) => cmdline(p.pid)[0] ?? '(gone)'));
  assert.ok(kinds.has('(gone)'), 'the tracked processes are gone');
  assert.ok(procs.length >= 21 + 3 * 3 + 6, `tracked ${procs.length} processes (holders, agents, echo, wireguard-go, dockerd, containerd, shims, containers)`);
});

test('a lab without workloads starts no Docker engine', { timeout: 60_000 }, async () => {
  const name = `nw-${randomBytes(3).toString('hex')}`;
  const dir = labDir(name);
  const spec = join(root, 'no-workloads.yaml');
  writeFileSync(spec, stringify({ name, nodes: [{ name: 'n1' }, { name: 'n2' }], tenants: [{ name: 'acme', blueprints: [{ name: 'bp', networks: [{ name: 'net', ipRange: '10.9.0.0/16', nodes: ['n1', 'n2'] }] }] }] }));
  const procs: { pid: number; start: number }[] = [];
  try {
    const s = await labUp(spec, { name });
    assert.ok(s.green);
    assert.equal(s.workloads, 0);
    assert.deepEqual(readState(dir)!.dockerd, {});
    procs.push(...processesOf(name, dir));
    assert.deepEqual(procs.map((p) => cmdline(p.pid)[0]).filter((c) => /dockerd|containerd/.test(c ?? '')), []);
    assert.ok(!/dockerSocket/.test(readFileSync(join(dir, 'nodes', 'n1', 'agent.yaml'), 'utf8')));
    assert.deepEqual(openLab(name).endpoints.map((e) => e.kind), ['resource', 'resource']);
  } finally {
    await downLab(name, dir);
  }
  assert.deepEqual(leftovers(name, dir, { procs }), []);
});

test.after(() => rmSync(root, { recursive: true, force: true }));
