// Compute against a fake engine and a fake attacher: a sequence of desired states and failures, each step
// checked by a text dump of the fake world and of what was done. The fakes fail on anything unexpected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Compute, MemoryRuntimeStore, containerName, type AttachPort, type Attachment, type ContainerSpec, type ContainerState, type ContainerSummary, type DesiredWorkload, type Engine } from '../../runtime/index.ts';

class FakeEngine implements Engine {
  up = true;
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
    const id = `id${++this.n}`.padEnd(12, '0');
    this.calls.push(`create ${spec.name} cpu=${spec.nanoCpus} mem=${spec.memory} mounts=${spec.mounts.map((m) => `${m.source}:${m.target}`).join(',')}`);
    this.containers.set(id, { id, name: spec.name, labels: spec.labels, status: 'created', running: false, pid: 0, exitCode: 0, oomKilled: false, error: '', startedAt: null, finishedAt: null, image: spec.image, spec });
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
    tenant: 'acme', blueprint: 'shop', name, node: 'node-a', image: 'zmesh/base:latest', command: ['sleep', '1000'], cpu: 4, memory: 4 * 1024 * 1024,
    network: { id: 'abcdefghij', name: 'net', ip, prefix: 24, gateway: '10.1.0.1' }, mounts: [], ...over,
  };
}

function bed() {
  let now = Date.parse('2026-01-01T00:00:00Z');
  const clock = () => now;
  const engine = new FakeEngine(clock);
  const attacher = new FakeAttacher();
  const store = new MemoryRuntimeStore();
  const compute = new Compute({ engine, attacher, store, node: 'node-a', now: clock, maxBackoffMs: 30_000 });
  const vols = new Map([['acme/shop/data', '/pool/volumes/acme.shop.data']]);
  const apply = (ws: DesiredWorkload[]) => compute.apply(ws, (w, v) => vols.get(`${w.tenant}/${w.blueprint}/${v}`) ?? null);
  const reset = () => {
    engine.calls.length = 0;
    attacher.calls.length = 0;
  };
  return { engine, attacher, store, compute, apply, reset, vols, tick: (ms: number) => (now += ms) };
}

test('create, no-op, exit and OOM heal, vanish, spec change, drift, invalid entry, removal', async () => {
  const b = bed();
  const web = wl('web', '10.1.0.2', { mounts: [{ volume: 'data', path: '/data' }] });
  const db = wl('db', '10.1.0.3');

  let r = await b.apply([web, db]);
  assert.deepEqual(r.errors, []);
  assert.deepEqual(b.engine.calls, [
    'create zmesh.node-a.acme.shop.web cpu=2000000000 mem=6291456 mounts=/pool/volumes/acme.shop.data:/data',
    'start zmesh.node-a.acme.shop.web',
    'create zmesh.node-a.acme.shop.db cpu=2000000000 mem=6291456 mounts=',
    'start zmesh.node-a.acme.shop.db',
  ], 'cpu clamped to the engine CPUs, memory raised to the engine minimum');
  assert.deepEqual(b.attacher.calls, ['add acme/shop/web 10.1.0.2/24 pid=1001', 'add acme/shop/db 10.1.0.3/24 pid=1002']);
  assert.deepEqual(r.events.map((e) => e.kind), ['workload.created', 'workload.attached', 'workload.created', 'workload.attached']);

  b.reset();
  r = await b.apply([web, db]);
  assert.equal(r.changes, 0);
  assert.deepEqual(r.events, []);
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
  assert.equal(b.store.workloads().find((x) => x.key === 'acme/shop/web')!.restarts, 1);
  assert.equal(b.store.workloads().find((x) => x.key === 'acme/shop/web')!.lastExit!.oomKilled, true);

  b.reset();
  b.engine.containers.delete([...b.engine.containers.values()].find((c) => c.name.endsWith('.db'))!.id);
  r = await b.apply([web, db]);
  assert.deepEqual(r.events.filter((e) => e.kind !== 'workload.attached').map((e) => [e.kind, e.level]), [['workload.recreated', 'warn']]);
  assert.deepEqual(b.engine.calls, ['create zmesh.node-a.acme.shop.db cpu=2000000000 mem=6291456 mounts=', 'start zmesh.node-a.acme.shop.db']);
  assert.ok(b.attacher.calls.includes('add acme/shop/db 10.1.0.3/24 pid=1004'), 'same address');

  b.reset();
  r = await b.apply([web, { ...db, memory: 64 * 1024 * 1024 }]);
  assert.deepEqual(r.events.map((e) => e.kind), ['workload.replaced', 'workload.created', 'workload.attached']);
  assert.deepEqual(b.engine.calls, ['remove zmesh.node-a.acme.shop.db', 'create zmesh.node-a.acme.shop.db cpu=2000000000 mem=67108864 mounts=', 'start zmesh.node-a.acme.shop.db']);
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
  const foreign = await b.engine.create({ name: 'someone-else', image: 'x', command: [], hostname: 'x', labels: { app: 'x' }, nanoCpus: 1, memory: 1, mounts: [] });
  const otherNode = await b.engine.create({ name: 'zmesh.node-b.acme.shop.web', image: 'x', command: [], hostname: 'x', labels: { 'zmesh.owner': 'zmesh', 'zmesh.node': 'node-b', 'zmesh.tenant': 'acme', 'zmesh.blueprint': 'shop', 'zmesh.workload': 'web' }, nanoCpus: 1, memory: 1, mounts: [] });
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
