// Compute against a fake engine and a fake attacher: a sequence of desired states and failures, each step
// checked by a text dump of the fake world and of what was done. The fakes fail on anything unexpected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Compute, ETC_TARGETS, EtcFiles, MemoryRuntimeStore, etcContents, PIDS_LIMIT, WORKLOAD_CAPS, type EtcMount, type EtcPort, containerName, containerProcsFile, createOptions, securityDrift, type AttachPort, type Attachment, type ContainerSecurity, type ContainerSpec, type ContainerState, type ContainerSummary, type DesiredWorkload, type Engine } from '../../runtime/index.ts';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ZmeshError } from '../../src/errors.ts';

/** What the engine reports for a container made from `spec` (as Docker 20.10 inspect shows it). */
function securityOf(spec: ContainerSpec): ContainerSecurity {
  const h = createOptions(spec).HostConfig!;
  return { capAdd: h.CapAdd!, capDrop: h.CapDrop!, privileged: h.Privileged!, securityOpt: h.SecurityOpt!, storageSize: h.StorageOpt!.size, pidsLimit: h.PidsLimit!, networkMode: h.NetworkMode!, readOnlyTargets: h.Mounts!.filter((m) => m.ReadOnly).map((m) => m.Target!), logs: `${h.LogConfig!.Type} ${h.LogConfig!.Config!['max-size']}×${h.LogConfig!.Config!['max-file']}`, core: `${h.Ulimits![0].Soft}:${h.Ulimits![0].Hard}` };
}

/** The runtime's /etc files, without a file system: the mounts it would give, and what GC removed. */
class FakeEtc implements EtcPort {
  removed: string[] = [];
  live = new Set<string>();
  ensure(w: DesiredWorkload): EtcMount[] {
    this.live.add(containerName(w));
    return ETC_TARGETS.map((target) => ({ source: `/state/etc/${containerName(w)}/${target.slice(5)}`, target, readOnly: true as const }));
  }
  gc(keep: Set<string>): string[] {
    const gone = [...this.live].filter((n) => !keep.has(n));
    for (const n of gone) this.live.delete(n);
    this.removed.push(...gone);
    return gone;
  }
}

class FakeEngine implements Engine {
  up = true;
  /** An engine whose storage driver cannot limit a container's size (overlay2 on ext4). */
  noDiskLimit = false;
  images = new Set(['zmesh/base:latest']);
  containers = new Map<string, ContainerState & { spec: ContainerSpec }>();
  calls: string[] = [];
  private n = 0;
  private pid = 1000;
  constructor(private readonly clock: () => number) {}
  async ping() {
    return this.up;
  }
  async cpus() {
    return 2;
  }
  async storageDriver() {
    return this.noDiskLimit ? 'overlay2 on extfs' : 'btrfs';
  }
  async list(labels: Record<string, string>): Promise<ContainerSummary[]> {
    return [...this.containers.values()]
      .filter((c) => Object.entries(labels).every(([k, v]) => c.labels[k] === v))
      .map((c) => ({ id: c.id, name: c.name, labels: c.labels, state: c.status }));
  }
  async inspect(idOrName: string) {
    const c = this.containers.get(idOrName) ?? [...this.containers.values()].find((x) => x.name === idOrName);
    return c ? structuredClone(c) : null;
  }
  async imageExists(ref: string) {
    return this.images.has(ref);
  }
  async create(spec: ContainerSpec) {
    if ([...this.containers.values()].some((c) => c.name === spec.name)) throw new Error(`conflict: ${spec.name}`);
    if (this.noDiskLimit) {
      this.calls.push(`create ${spec.name} refused`);
      throw new ZmeshError('E_DISK_LIMIT_UNSUPPORTED', `the Docker engine cannot limit ${spec.name}'s disk`, { kind: 'internal' });
    }
    const id = `id${++this.n}`.padEnd(12, '0');
    this.calls.push(`create ${spec.name} cpu=${spec.nanoCpus} mem=${spec.memory} disk=${spec.disk} mounts=${spec.mounts.filter((m) => !m.readOnly).map((m) => `${m.source}:${m.target}`).join(',')}${spec.mounts.some((m) => m.readOnly) ? ` ro=${spec.mounts.filter((m) => m.readOnly).map((m) => m.target).join(',')}` : ''}`);
    this.containers.set(id, { id, name: spec.name, labels: spec.labels, status: 'created', running: false, pid: 0, exitCode: 0, oomKilled: false, error: '', startedAt: null, finishedAt: null, image: spec.image, security: securityOf(spec), spec });
    return id;
  }
  async start(id: string) {
    const c = this.containers.get(id)!;
    this.calls.push(`start ${c.name}`);
    Object.assign(c, { status: 'running', running: true, pid: ++this.pid, startedAt: new Date(this.clock()).toISOString(), finishedAt: null, oomKilled: false, exitCode: 0 });
  }
  async remove(id: string) {
    const c = this.containers.get(id);
    this.calls.push(`remove ${c?.name ?? id}`);
    this.containers.delete(id);
  }
  async logs(): Promise<never> {
    throw new Error('not in this test');
  }
  async watch(): Promise<never> {
    throw new Error('not in this test');
  }
  /** The container exits (as if its process ended, was killed or OOM-killed). */
  exit(name: string, exitCode: number, oomKilled = false) {
    const c = [...this.containers.values()].find((x) => x.name === name)!;
    Object.assign(c, { status: 'exited', running: false, pid: 0, exitCode, oomKilled, finishedAt: new Date(this.clock()).toISOString() });
  }
  dump(): string {
    return [...this.containers.values()].map((c) => `${c.name} ${c.status} pid=${c.pid}`).sort().join('\n');
  }
}

class FakeAttacher implements AttachPort {
  live = new Map<string, Attachment>();
  calls: string[] = [];
  /** How often compute said the engine changed a namespace behind the attacher (forget). */
  forgets = 0;
  forget(): void {
    this.forgets++;
  }
  drift: string[] = [];
  async add(r: Parameters<AttachPort['add']>[0]): Promise<Attachment> {
    this.calls.push(`add ${r.workload} ${r.ip}/${r.prefix} pid=${r.pid}`);
    const a: Attachment = { workload: r.workload, containerId: r.containerId, pid: r.pid, networkId: r.networkId, netns: r.netns, bridge: r.bridge, hostIf: r.names.host, hostIfIndex: 1, containerIf: 'eth0', containerIfIndex: 2, address: `${r.ip}/${r.prefix}`, gateway: r.gateway, mtu: 1420, mac: '', at: '' };
    this.live.set(r.names.host, a);
    return a;
  }
  async check(a: Attachment, pid: number): Promise<string[]> {
    this.calls.push(`check ${a.workload}`);
    if (this.drift.length) return this.drift.splice(0);
    return this.live.get(a.hostIf)?.pid === pid ? [] : ['pid changed'];
  }
  async del(a: { hostIf: string }): Promise<boolean> {
    this.calls.push(`del ${a.hostIf}`);
    return this.live.delete(a.hostIf);
  }
  async gc(namespaces: string[], valid: Set<string>): Promise<string[]> {
    const out: string[] = [];
    for (const [name, a] of this.live) if (namespaces.includes(a.netns) && !valid.has(name)) out.push(name);
    for (const n of out) this.live.delete(n);
    return out;
  }
}

function wl(name: string, ip: string, over: Partial<DesiredWorkload> = {}): DesiredWorkload {
  return {
    tenant: 'acme', blueprint: 'shop', name, node: 'node-a', image: 'zmesh/base:latest', command: ['sleep', '1000'], cpu: 4, memory: 4 * 1024 * 1024, disk: 64 * 1024 * 1024,
    network: { id: 'abcdefghij', name: 'net', ip, prefix: 24, gateway: '10.1.0.1' }, mounts: [], ...over,
  };
}

function bed() {
  let now = Date.parse('2026-01-01T00:00:00Z');
  const clock = () => now;
  const engine = new FakeEngine(clock);
  const attacher = new FakeAttacher();
  const store = new MemoryRuntimeStore();
  const etc = new FakeEtc();
  const compute = new Compute({ engine, attacher, store, etc, node: 'node-a', now: clock, maxBackoffMs: 30_000 });
  const vols = new Map([['acme/shop/data', '/pool/volumes/acme.shop.data']]);
  const apply = (ws: DesiredWorkload[]) => compute.apply(ws, (w, v) => vols.get(`${w.tenant}/${w.blueprint}/${v}`) ?? null);
  const reset = () => {
    engine.calls.length = 0;
    attacher.calls.length = 0;
  };
  return { engine, attacher, store, etc, compute, apply, reset, vols, tick: (ms: number) => (now += ms) };
}

test('create, no-op, exit and OOM heal, vanish, spec change, drift, invalid entry, removal', async () => {
  const b = bed();
  const web = wl('web', '10.1.0.2', { mounts: [{ volume: 'data', path: '/data' }] });
  const db = wl('db', '10.1.0.3');

  let r = await b.apply([web, db]);
  assert.deepEqual(r.errors, []);
  assert.deepEqual(b.engine.calls, [
    'create zmesh.node-a.acme.shop.web cpu=2000000000 mem=6291456 disk=67108864 mounts=/pool/volumes/acme.shop.data:/data ro=/etc/hosts,/etc/hostname,/etc/resolv.conf',
    'start zmesh.node-a.acme.shop.web',
    'create zmesh.node-a.acme.shop.db cpu=2000000000 mem=6291456 disk=67108864 mounts= ro=/etc/hosts,/etc/hostname,/etc/resolv.conf',
    'start zmesh.node-a.acme.shop.db',
  ], 'cpu clamped to the engine CPUs, memory raised to the engine minimum');
  assert.deepEqual(b.attacher.calls, ['add acme/shop/web 10.1.0.2/24 pid=1001', 'add acme/shop/db 10.1.0.3/24 pid=1002']);
  assert.deepEqual(r.events.map((e) => e.kind), ['workload.created', 'workload.attached', 'workload.created', 'workload.attached']);

  b.reset();
  const puts: string[] = [];
  const put = b.store.putWorkload.bind(b.store);
  b.store.putWorkload = (rec) => {
    puts.push(rec.key);
    put(rec);
  };
  r = await b.apply([web, db]);
  assert.equal(r.changes, 0);
  assert.deepEqual(r.events, []);
  assert.deepEqual(puts, [], 'a no-op writes no record');
  assert.deepEqual(b.engine.calls, [], 'a no-op touches no container');
  assert.deepEqual(b.attacher.calls, ['check acme/shop/web', 'check acme/shop/db'], 'only CHECKs');

  b.reset();
  b.engine.exit('zmesh.node-a.acme.shop.web', 137, true);
  b.tick(60_000);
  r = await b.apply([web, db]);
  assert.deepEqual(r.errors, []);
  const exited = r.events.find((e) => e.kind === 'workload.exited')!;
  assert.equal(exited.message, 'exited: OOM killed (exit code 137)');
  assert.equal(exited.level, 'warn');
  assert.deepEqual(b.engine.calls, ['start zmesh.node-a.acme.shop.web'], 'restarted in place: same container, logs kept');
  assert.deepEqual(b.attacher.calls, ['del v-' + b.attacher.calls[0].split('v-')[1], 'add acme/shop/web 10.1.0.2/24 pid=1003', 'check acme/shop/db']);
  assert.deepEqual(puts, ['acme/shop/web'], 'only the record that changed is written');
  assert.equal(b.store.workloads().find((x) => x.key === 'acme/shop/web')!.restarts, 1);
  assert.equal(b.store.workloads().find((x) => x.key === 'acme/shop/web')!.lastExit!.oomKilled, true);

  b.reset();
  b.engine.containers.delete([...b.engine.containers.values()].find((c) => c.name.endsWith('.db'))!.id);
  r = await b.apply([web, db]);
  assert.deepEqual(r.events.filter((e) => e.kind !== 'workload.attached').map((e) => [e.kind, e.level]), [['workload.recreated', 'warn']]);
  assert.deepEqual(b.engine.calls, ['create zmesh.node-a.acme.shop.db cpu=2000000000 mem=6291456 disk=67108864 mounts= ro=/etc/hosts,/etc/hostname,/etc/resolv.conf', 'start zmesh.node-a.acme.shop.db']);
  assert.ok(b.attacher.calls.includes('add acme/shop/db 10.1.0.3/24 pid=1004'), 'same address');

  b.reset();
  r = await b.apply([web, { ...db, memory: 64 * 1024 * 1024 }]);
  assert.deepEqual(r.events.map((e) => e.kind), ['workload.replaced', 'workload.created', 'workload.attached']);
  assert.deepEqual(b.engine.calls, ['remove zmesh.node-a.acme.shop.db', 'create zmesh.node-a.acme.shop.db cpu=2000000000 mem=67108864 disk=67108864 mounts= ro=/etc/hosts,/etc/hostname,/etc/resolv.conf', 'start zmesh.node-a.acme.shop.db']);
  const db2 = { ...db, memory: 64 * 1024 * 1024 };

  b.reset();
  b.attacher.drift = ['eth0 is down'];
  r = await b.apply([web, db2]);
  assert.deepEqual(r.events.map((e) => [e.kind, e.message]).slice(0, 1), [['workload.drift', 'attachment drifted: eth0 is down']]);
  assert.deepEqual(b.engine.calls, []);

  b.reset();
  r = await b.apply([web, { ...db2, network: { ...db2.network, ip: '10.9.9.9' } }]);
  assert.equal(r.errors.length, 1);
  assert.equal(r.errors[0].code, 'E_WORKLOAD_INVALID');
  assert.deepEqual(b.engine.calls, [], 'an invalid entry changes nothing of its workload: the container stays');
  assert.match(b.engine.dump(), /shop\.db running/);

  b.reset();
  r = await b.apply([]);
  assert.deepEqual(r.errors, []);
  assert.deepEqual(b.engine.calls.sort(), ['remove zmesh.node-a.acme.shop.db', 'remove zmesh.node-a.acme.shop.web']);
  assert.equal(b.engine.dump(), '');
  assert.equal(b.attacher.live.size, 0, 'no veth left');
  assert.deepEqual(b.store.workloads(), []);
  assert.deepEqual([...b.etc.live], [], 'no /etc files left');
});

test('crash loop: restarted at once, then with a growing backoff bounded by the interval', async () => {
  const b = bed();
  const w = wl('flaky', '10.1.0.2');
  await b.apply([w]);
  const restarts: number[] = [];
  for (let i = 0; i < 8; i++) {
    b.tick(1000);
    b.engine.exit(containerName(w), 1);
    b.tick(500);
    b.reset();
    // Reconcile every second until it restarts (bounded).
    let waited = 0;
    while (!b.engine.calls.includes(`start ${containerName(w)}`) && waited < 60) {
      await b.apply([w]);
      if (!b.engine.calls.length) b.tick(1000);
      waited++;
    }
    restarts.push(waited);
  }
  assert.deepEqual(restarts.slice(0, 2), [1, 1], 'first two exits: restarted at once');
  assert.ok(restarts[4] > restarts[2], `backoff grows: ${restarts}`);
  assert.ok(Math.max(...restarts) <= 31, `never beyond the interval: ${restarts}`);
  const rec = b.store.workloads()[0];
  assert.equal(rec.restarts, 8);
  assert.equal(rec.lastExit?.exitCode, 1);
});

test('refusals that change nothing: engine down, image missing, volume not ready, other node', async () => {
  const b = bed();
  b.engine.up = false;
  let r = await b.apply([]);
  assert.deepEqual([r.engine, r.errors, r.events], [false, [], []], 'no engine and nothing wanted: silent');
  r = await b.apply([wl('web', '10.1.0.2')]);
  assert.deepEqual(r.errors.map((e) => e.code), ['E_DOCKER_UNREACHABLE']);
  b.engine.up = true;
  r = await b.apply([wl('web', '10.1.0.2', { image: 'nginx:1.27' })]);
  assert.deepEqual(r.errors.map((e) => e.code), ['E_IMAGE_MISSING']);
  r = await b.apply([wl('web', '10.1.0.2', { mounts: [{ volume: 'nope', path: '/x' }] })]);
  assert.deepEqual(r.errors.map((e) => e.code), ['E_VOLUME_NOT_READY']);
  r = await b.apply([wl('web', '10.1.0.2', { node: 'node-b' })]);
  assert.deepEqual(r.errors.map((e) => e.code), ['E_WORKLOAD_INVALID']);
  assert.deepEqual(b.engine.calls, []);
  assert.equal(b.engine.dump(), '');
});

test('GC removes only our containers on this node', async () => {
  const b = bed();
  await b.apply([wl('web', '10.1.0.2')]);
  const foreign = await b.engine.create({ name: 'someone-else', image: 'x', command: [], hostname: 'x', labels: { app: 'x' }, nanoCpus: 1, memory: 1, disk: 1, mounts: [] });
  const otherNode = await b.engine.create({ name: 'zmesh.node-b.acme.shop.web', image: 'x', command: [], hostname: 'x', labels: { 'zmesh.owner': 'zmesh', 'zmesh.node': 'node-b', 'zmesh.tenant': 'acme', 'zmesh.blueprint': 'shop', 'zmesh.workload': 'web' }, nanoCpus: 1, memory: 1, disk: 1, mounts: [] });
  await b.apply([]);
  assert.deepEqual([...b.engine.containers.keys()].sort(), [foreign, otherNode].sort());
});

test('views: state, address, restarts, uptime', async () => {
  const b = bed();
  const w = wl('web', '10.1.0.2');
  await b.apply([w]);
  b.tick(90_000);
  let [v] = await b.compute.views([w]);
  assert.deepEqual([v.state, v.address, v.restarts, v.uptimeSec], ['running', '10.1.0.2/24', 0, 90]);
  b.engine.exit(containerName(w), 2);
  [v] = await b.compute.views([w]);
  assert.deepEqual([v.state, v.address, v.uptimeSec], ['exited', null, null]);
  b.engine.up = false;
  [v] = await b.compute.views([w]);
  assert.equal(v.state, 'unknown');
});

test('hardening: the exact create options (no NET_RAW, no new privileges, disk and pids limits, no networking)', () => {
  const spec: ContainerSpec = {
    name: 'zmesh.node-a.acme.shop.web',
    image: 'zmesh/base:latest',
    command: ['httpd', '-f'],
    hostname: 'web',
    labels: { 'zmesh.owner': 'zmesh' },
    nanoCpus: 500_000_000,
    memory: 64 * 1024 * 1024,
    disk: 256 * 1024 * 1024,
    mounts: [{ source: '/pool/volumes/acme.shop.data', target: '/data' }, { source: '/state/etc/zmesh.node-a.acme.shop.web/hosts', target: '/etc/hosts', readOnly: true }],
  };
  assert.deepEqual(createOptions(spec), {
    name: 'zmesh.node-a.acme.shop.web',
    Image: 'zmesh/base:latest',
    Cmd: ['httpd', '-f'],
    Hostname: 'web',
    Labels: { 'zmesh.owner': 'zmesh' },
    HostConfig: {
      NetworkMode: 'none',
      NanoCpus: 500_000_000,
      Memory: 67108864,
      MemorySwap: 67108864,
      PidsLimit: 4096,
      RestartPolicy: { Name: 'no' },
      CapDrop: ['ALL'],
      CapAdd: ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_SETGID', 'CAP_SETUID'],
      Privileged: false,
      SecurityOpt: ['no-new-privileges'],
      StorageOpt: { size: '268435456' },
      LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '2' } },
      Ulimits: [{ Name: 'core', Soft: 0, Hard: 0 }],
      Mounts: [
        { Type: 'bind', Source: '/pool/volumes/acme.shop.data', Target: '/data', ReadOnly: false },
        { Type: 'bind', Source: '/state/etc/zmesh.node-a.acme.shop.web/hosts', Target: '/etc/hosts', ReadOnly: true },
      ],
    },
  });
  assert.equal(createOptions({ ...spec, command: [] }).Cmd, undefined, "empty command: the image's own");
  assert.equal(PIDS_LIMIT, 4096);
  assert.ok(!WORKLOAD_CAPS.some((c) => /NET_RAW|NET_ADMIN|SYS_ADMIN|MKNOD/.test(c)));
});

test('securityDrift: one named case per kind of drift', () => {
  const ok: ContainerSecurity = { capAdd: [...WORKLOAD_CAPS], capDrop: ['ALL'], privileged: false, securityOpt: ['no-new-privileges'], storageSize: '67108864', pidsLimit: 4096, networkMode: 'none', readOnlyTargets: ['/data-ro', ...ETC_TARGETS], logs: 'json-file 10m×2', core: '0:0' };
  const disk = 67108864;
  const cases: [string, Partial<ContainerSecurity>, string[]][] = [
    ['as made', {}, []],
    ['caps without the CAP_ prefix, in another order', { capAdd: ['setuid', 'SETGID', 'NET_BIND_SERVICE', 'KILL', 'FOWNER', 'DAC_OVERRIDE', 'CHOWN'] }, []],
    ['NET_RAW added', { capAdd: [...WORKLOAD_CAPS, 'CAP_NET_RAW'] }, ['capabilities added [CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_KILL, CAP_NET_BIND_SERVICE, CAP_NET_RAW, CAP_SETGID, CAP_SETUID], expected [CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_KILL, CAP_NET_BIND_SERVICE, CAP_SETGID, CAP_SETUID]']],
    ["Docker's defaults (nothing dropped or added)", { capAdd: [], capDrop: [] }, ['capabilities added [], expected [CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_KILL, CAP_NET_BIND_SERVICE, CAP_SETGID, CAP_SETUID]', 'capabilities dropped [], expected ALL']],
    ['privileged', { privileged: true }, ['privileged']],
    ['new privileges allowed', { securityOpt: ['seccomp=unconfined'] }, ['security options [seccomp=unconfined] lack no-new-privileges']],
    ['no-new-privileges:true is the same', { securityOpt: ['no-new-privileges:true'] }, []],
    ['no disk limit', { storageSize: null }, ['disk limit none, expected 67108864']],
    ['another disk limit', { storageSize: '1073741824' }, ['disk limit 1073741824, expected 67108864']],
    ['no pids limit', { pidsLimit: null }, ['pids limit none, expected 4096']],
    ['host networking', { networkMode: 'host' }, ['network mode host, expected none']],
    ["Docker's own writable /etc files", { readOnlyTargets: [] }, ['/etc/hosts, /etc/hostname, /etc/resolv.conf not mounted read-only from the runtime\'s files']],
    ['a writable /etc/hosts', { readOnlyTargets: ['/etc/hostname', '/etc/resolv.conf'] }, ['/etc/hosts not mounted read-only from the runtime\'s files']],
    ['logs without rotation (an older agent, or made by hand)', { logs: 'json-file ∞×1' }, ['logs json-file ∞×1, expected json-file 10m×2']],
    ['no log config read', { logs: '' }, ['logs unbounded, expected json-file 10m×2']],
    ['core dumps allowed (the engine default)', { core: null }, ['core dumps allowed, expected 0:0']],
  ];
  for (const [name, over, want] of cases) assert.deepEqual(securityDrift({ ...ok, ...over }, disk), want, name);
});

test('drift: a container with other capabilities (or privileged, or no disk limit) is replaced; no-op after', async () => {
  const b = bed();
  const web = wl('web', '10.1.0.2', { mounts: [{ volume: 'data', path: '/data' }] });
  await b.apply([web]);
  const c = [...b.engine.containers.values()][0];
  c.security = { ...c.security, capAdd: [...c.security.capAdd, 'CAP_NET_RAW', 'CAP_NET_ADMIN'] };
  b.reset();
  let r = await b.apply([web]);
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.events.map((e) => [e.kind, e.level]), [['workload.replaced', 'warn'], ['workload.created', 'info'], ['workload.attached', 'info']]);
  assert.match(r.events[0].message, /^security settings drifted \(capabilities added \[.*CAP_NET_ADMIN.*CAP_NET_RAW.*\]/);
  assert.deepEqual(b.engine.calls, ['remove zmesh.node-a.acme.shop.web', 'create zmesh.node-a.acme.shop.web cpu=2000000000 mem=6291456 disk=67108864 mounts=/pool/volumes/acme.shop.data:/data ro=/etc/hosts,/etc/hostname,/etc/resolv.conf', 'start zmesh.node-a.acme.shop.web']);
  b.reset();
  r = await b.apply([web]);
  assert.deepEqual([r.changes, b.engine.calls], [0, []], 'the new container is as made: no-op');

  // Drifted while its volume is missing: replaced all the same (then it waits for its data, not running).
  [...b.engine.containers.values()][0].security.privileged = true;
  b.vols.delete('acme/shop/data');
  b.reset();
  r = await b.apply([web]);
  assert.deepEqual(r.errors.map((e) => e.code), ['E_VOLUME_NOT_READY']);
  assert.deepEqual(b.engine.calls, ['remove zmesh.node-a.acme.shop.web']);
  assert.equal(b.engine.dump(), '');
});

test('disk: a changed limit replaces the container; an engine that cannot enforce one runs nothing (E_DISK_LIMIT_UNSUPPORTED)', async () => {
  const b = bed();
  const w = wl('web', '10.1.0.2');
  await b.apply([w]);
  b.reset();
  let r = await b.apply([{ ...w, disk: 128 * 1024 * 1024 }]);
  assert.deepEqual(r.events.map((e) => e.kind), ['workload.replaced', 'workload.created', 'workload.attached']);
  assert.deepEqual(b.engine.calls, ['remove zmesh.node-a.acme.shop.web', 'create zmesh.node-a.acme.shop.web cpu=2000000000 mem=6291456 disk=134217728 mounts= ro=/etc/hosts,/etc/hostname,/etc/resolv.conf', 'start zmesh.node-a.acme.shop.web']);

  const c = bed();
  c.engine.noDiskLimit = true;
  r = await c.apply([w]);
  assert.deepEqual(r.errors.map((e) => [e.subject, e.code]), [['workload acme/shop/web', 'E_DISK_LIMIT_UNSUPPORTED']]);
  assert.deepEqual(c.engine.calls, ['create zmesh.node-a.acme.shop.web refused']);
  assert.equal(c.engine.dump(), '', 'nothing runs without its limit');
  assert.deepEqual(c.attacher.calls, []);
});

test("containerProcsFile: the container's own cgroup (v1 pids, v2 unified), never a parent or the root", () => {
  const id = 'a'.repeat(64);
  assert.equal(containerProcsFile(`12:pids:/docker/${id}\n4:memory:/docker/${id}\n0::/\n`, id), `/sys/fs/cgroup/pids/docker/${id}/cgroup.procs`);
  assert.equal(containerProcsFile(`0::/system.slice/docker-${id}.scope\n`, id), `/sys/fs/cgroup/system.slice/docker-${id}.scope/cgroup.procs`);
  assert.equal(containerProcsFile(`8:pids:/zl-q_n-node-a/${id}\n`, id), `/sys/fs/cgroup/pids/zl-q_n-node-a/${id}/cgroup.procs`, 'a lab cgroup parent');
  assert.equal(containerProcsFile('8:pids:/\n0::/\n', id), null, 'the root cgroup: never');
  assert.equal(containerProcsFile('8:pids:/docker\n', id), null, 'a shared parent: never');
  assert.equal(containerProcsFile(`8:pids:/docker/${'b'.repeat(64)}\n`, id), null, 'another container');
  assert.equal(containerProcsFile(`8:pids:/docker/${id}/../..\n`, id), null);
  assert.equal(containerProcsFile(`8:pids:/docker/${id}\n`, 'short'), null);
});

test('/etc files: exact contents, written once, read-only mounts, GC of this node only', () => {
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-etc-'));
  try {
    const etc = new EtcFiles(dir, 'node-a');
    const w = wl('web', '10.1.0.2');
    assert.deepEqual(etcContents(w), {
      '/etc/hosts': '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.1.0.2\tweb\n',
      '/etc/hostname': 'web\n',
      '/etc/resolv.conf': `# zmesh: the names of network ${w.network.name} (docs/dns.md)\nnameserver ${w.network.gateway}\nsearch ${w.network.name}\noptions timeout:2 attempts:1\n`,
    });
    // Dual-stack: the IPv6 address in hosts, the IPv6 gateway as the second name server.
    const w6 = { ...w, network: { ...w.network, name: 'net', gateway: '10.1.0.1', ip6: 'fd00:1::2', prefix6: 64, gateway6: 'fd00:1::1' } };
    assert.deepEqual(etcContents(w6), {
      '/etc/hosts': '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.1.0.2\tweb\nfd00:1::2\tweb\n',
      '/etc/hostname': 'web\n',
      '/etc/resolv.conf': '# zmesh: the names of network net (docs/dns.md)\nnameserver 10.1.0.1\nnameserver fd00:1::1\nsearch net\noptions timeout:2 attempts:1\n',
    });
    const d = join(dir, 'zmesh.node-a.acme.shop.web');
    assert.deepEqual(etc.ensure(w), [
      { source: `${d}/hosts`, target: '/etc/hosts', readOnly: true },
      { source: `${d}/hostname`, target: '/etc/hostname', readOnly: true },
      { source: `${d}/resolv.conf`, target: '/etc/resolv.conf', readOnly: true },
    ]);
    const before = statSync(`${d}/hosts`).mtimeMs;
    etc.ensure(w);
    assert.equal(statSync(`${d}/hosts`).mtimeMs, before, 'unchanged: not written again');
    writeFileSync(`${d}/hosts`, 'tampered');
    etc.ensure(w);
    assert.equal(readFileSync(`${d}/hosts`, 'utf8'), etcContents(w)['/etc/hosts'], 'rewritten when it differs');
    mkdirSync(join(dir, 'zmesh.node-b.acme.shop.web'));
    mkdirSync(join(dir, 'unrelated'));
    assert.deepEqual(etc.gc(new Set(['zmesh.node-a.acme.shop.web'])), []);
    assert.deepEqual(etc.gc(new Set()), ['zmesh.node-a.acme.shop.web']);
    assert.deepEqual(readdirSync(dir).sort(), ['unrelated', 'zmesh.node-b.acme.shop.web'], "another node's and foreign entries stay");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('containers start while the networks are built: create and start before the data plane is done, attach and GC after', async () => {
  const b = bed();
  const log: string[] = [];
  const engine = b.engine;
  const attacher = b.attacher;
  const [create, start, add, gc] = [engine.create.bind(engine), engine.start.bind(engine), attacher.add.bind(attacher), attacher.gc.bind(attacher)];
  engine.create = async (s) => (log.push(`create ${s.name.split('.').at(-1)}`), create(s));
  engine.start = async (id) => (log.push('start'), start(id));
  attacher.add = async (r) => (log.push(`attach ${r.workload}`), add(r));
  attacher.gc = async (ns, valid) => (log.push('gc'), gc(ns, valid));
  let done!: () => void;
  const networks = new Promise<void>((r) => (done = r));
  const run = b.compute.apply([wl('web', '10.1.0.2'), wl('db', '10.1.0.3')], () => null, [], networks);
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  assert.deepEqual(log, ['create web', 'start'], 'the first container is up before the networks; nothing touched a namespace');
  log.push('networks done');
  done();
  const r = await run;
  assert.deepEqual(r.errors, []);
  assert.deepEqual(log, ['create web', 'start', 'networks done', 'attach acme/shop/web', 'create db', 'start', 'attach acme/shop/db', 'gc']);
  // An existing container waits for the data plane before anything (its attachment is checked in the namespace).
  log.length = 0;
  let done2!: () => void;
  const again = b.compute.apply([wl('web', '10.1.0.2')], () => null, [], new Promise<void>((r) => (done2 = r)));
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  assert.deepEqual(log, [], 'nothing before the data plane');
  assert.deepEqual(attacher.calls.filter((c) => c.startsWith('check') || c.startsWith('del')), [], 'not even a check');
  done2();
  await again;
  // A data plane that failed: the runtime still goes on (the attach reports what is missing), and returns only after it.
  const failed = Promise.reject(new Error('nft failed'));
  const r3 = await b.compute.apply([wl('web', '10.1.0.2')], () => null, [], failed);
  assert.deepEqual(r3.errors, []);
});

test('an engine call that removes or starts a container forgets the reads shared in the reconcile; a no-op forgets nothing', async () => {
  const b = bed();
  const web = wl('web', '10.1.0.2');
  const db = wl('db', '10.1.0.3');
  await b.apply([web, db]);
  assert.equal(b.attacher.forgets, 2, 'two starts');
  b.attacher.forgets = 0;
  await b.apply([web, db]);
  assert.equal(b.attacher.forgets, 0);
  await b.apply([web]);
  assert.equal(b.attacher.forgets, 1, 'one removal');
});
