// The agent with a runtime (a fake RuntimePort): what the runtime is asked for, derived from the signed
// blueprint and the part; a part that misplaces a workload is refused and nothing changes; runtime events and
// errors reach the event log and the submission result; admin routes and CLI tables; the store modules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { createLogger } from '../../src/log.ts';
import { buildAdminApp } from '../../src/admin/app.ts';
import { Agent } from '../../src/agent/agent.ts';
import { parseAgentConfig, type AgentConfig } from '../../src/agent/config.ts';
import type { Desired, RuntimePort } from '../../src/agent/runtime-port.ts';
import { runtimeDesired } from '../../src/agent/runtime-port.ts';
import { SqliteRuntimeStore } from '../../src/agent/runtime-store.ts';
import { State } from '../../src/agent/state.ts';
import { AGENT_MODULES, openStore } from '../../src/agent/store.ts';
import { validateBlueprint } from '../../src/blueprint/index.ts';
import { X25519Secret } from '../../src/crypto/keys.ts';
import { ValidationError } from '../../src/errors.ts';
import { psTable, volTable } from '../../src/cli/runtime-commands.ts';
import { colour } from '../../src/cli/format.ts';
import type { DesiredWorkload, RuntimeReport, VolumeView, WorkloadView } from '../../runtime/types.ts';
import { FakeDriver, part, planFor, signed, tenantKeys } from '../helpers/agent-fixtures.ts';
import { identity } from '../helpers/fixtures.ts';

const nodes = ['node-a', 'node-b'];
const bp = validateBlueprint({
  tenant: 'acme',
  name: 'shop',
  version: 1,
  networks: [{ name: 'backend', ipRange: '10.20.0.0/16', nodes }],
  workloads: [
    { name: 'web', node: 'node-a', image: 'zmesh/base:latest', command: ['httpd', '-f'], network: { name: 'backend', ip: '10.20.0.10' }, cpu: 0.5, memory: '64Mi', volumes: [{ name: 'data', mount: '/data' }] },
    { name: 'api', node: 'node-b', image: 'zmesh/base:latest', network: { name: 'backend' } },
  ],
  volumes: [{ name: 'data', node: 'node-a', size: '16Mi' }],
});

class FakeRuntime implements RuntimePort {
  calls: Desired[] = [];
  next: Partial<RuntimeReport> = {};
  closed = false;
  async apply(d: Desired): Promise<RuntimeReport> {
    this.calls.push(structuredClone(d));
    const r: RuntimeReport = { ok: true, changes: d.workloads.length, events: d.workloads.map((w) => ({ level: 'info', kind: 'workload.created', subject: `workload ${w.tenant}/${w.blueprint}/${w.name}`, message: 'created' })), errors: [], engine: true, ms: 1, ...this.next };
    this.next = {};
    return r;
  }
  async workloads(ws: DesiredWorkload[]): Promise<WorkloadView[]> {
    return ws.map((w) => ({ tenant: w.tenant, blueprint: w.blueprint, name: w.name, node: w.node, image: w.image, state: 'running', address: `${w.network.ip}/${w.network.prefix}`, plannedAddress: `${w.network.ip}/${w.network.prefix}`, network: w.network.name, networkId: w.network.id, containerId: 'c1', restarts: 2, startedAt: null, uptimeSec: 125, lastExit: { exitCode: 137, oomKilled: true, error: '', finishedAt: '' }, cpu: w.cpu, memory: w.memory, disk: w.disk }));
  }
  async volumes(d: Desired): Promise<VolumeView[]> {
    return d.volumes.map((v) => ({ tenant: v.tenant, blueprint: v.blueprint, name: v.name, node: v.node, size: v.size, used: 5 * 1024 * 1024, limit: v.size, state: 'ready', path: '/p', mountedBy: ['web'] }));
  }
  async logs(): Promise<Readable> {
    const s = new PassThrough();
    s.end('hello from web\n');
    return s;
  }
  async watch(): Promise<boolean> {
    return true;
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

function bed() {
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-rt-agent-'));
  const { db, versions } = openStore(dir, AGENT_MODULES);
  const state = new State(db);
  const runtime = new FakeRuntime();
  const config: AgentConfig = {
    nodeId: 'node-a', identityKeyFile: join(dir, 'id'), stateDir: dir, adminSocket: join(dir, 's'), endpoints: [], wireguardBackend: 'userspace',
    reconcileIntervalMs: 30000, trustedTenants: { acme: tenantKeys('acme').publicKey.toString() }, logLevel: 'silent',
  };
  const agent = new Agent({ config, state, identity: new X25519Secret(identity('node-a').privateKey), driver: new FakeDriver(), log: createLogger({ level: 'silent' }), moduleVersions: versions, runtime });
  return { agent, state, runtime, db, versions, close: () => (db.close(), rmSync(dir, { recursive: true, force: true })) };
}

test('the runtime gets this node workloads (planned address, subnet prefix, gateway) and volumes', async () => {
  const b = bed();
  try {
    const plan = planFor(bp, nodes);
    const r = await b.agent.submit(signed(bp), part(plan, 'node-a'));
    assert.deepEqual(r.runtime, { ok: true, errors: [] });
    assert.equal(b.runtime.calls.length, 1);
    const d = b.runtime.calls[0];
    assert.deepEqual(d.workloads, [
      {
        tenant: 'acme', blueprint: 'shop', name: 'web', node: 'node-a', image: 'zmesh/base:latest', command: ['httpd', '-f'], cpu: 0.5, memory: 64 * 1024 * 1024, disk: 1024 * 1024 * 1024,
        network: {
          id: plan.networks[0].id, name: 'backend', ip: '10.20.0.10', prefix: 24, gateway: '10.20.0.1',
          // Dual-stack (docs/dns.md): the planned ip6 on node-a's subnet6, and its gateway6.
          ip6: plan.workloads.find((w) => w.name === 'web')!.ip6, prefix6: 64, gateway6: plan.networks[0].resources.find((r) => r.node === 'node-a')!.gateway6,
        },
        mounts: [{ volume: 'data', path: '/data' }],
      },
    ]);
    assert.deepEqual(d.volumes, [{ tenant: 'acme', blueprint: 'shop', name: 'data', node: 'node-a', size: 16 * 1024 * 1024 }]);
    assert.deepEqual(b.state.events().map((e) => e.kind), ['blueprint.accepted', 'network.changed', 'workload.created']);
    assert.equal(b.agent.lastReconcile?.runtime?.workloads, 1);
    assert.deepEqual(b.versions, { core: 1, network: 2, compute: 1, storage: 1 });
    // Node b gets its own workload only.
    assert.deepEqual(runtimeDesired([{ ...b.state.blueprints()[0], part: part(plan, 'node-b') }], 'node-b').workloads.map((w) => [w.name, w.network.ip]), [['api', '10.20.1.2']]);
  } finally {
    b.close();
  }
});

test('a part that misplaces a workload is refused with E_PART_WORKLOAD and nothing changes', async () => {
  const b = bed();
  try {
    const plan = planFor(bp, nodes);
    const cases: [string, (p: ReturnType<typeof part>) => void, string][] = [
      ['address is the gateway', (p) => (p.workloads[0].ip = '10.20.0.1'), 'part.workloads.web.ip'],
      ['address outside the node subnet', (p) => (p.workloads[0].ip = '10.20.1.10'), 'part.workloads.web.ip'],
      ['address not the one the blueprint asks for', (p) => (p.workloads[0].ip = '10.20.0.11'), 'part.workloads.web.ip'],
      ['workload missing', (p) => (p.workloads = []), 'part.workloads.web'],
      ['a workload the blueprint does not run here', (p) => p.workloads.push({ name: 'api', node: 'node-a', network: 'backend', ip: '10.20.0.12' }), 'part.workloads.api'],
      ['on another network', (p) => (p.workloads[0].network = 'other'), 'part.workloads.web.network'],
    ];
    for (const [name, mutate, path] of cases) {
      const p = part(plan, 'node-a');
      mutate(p);
      await assert.rejects(b.agent.submit(signed(bp), p), (e: unknown) => {
        assert.ok(e instanceof ValidationError, name);
        assert.ok(e.problems.some((x) => x.code === 'E_PART_WORKLOAD' && x.path === path), `${name}: ${JSON.stringify(e.problems)}`);
        return true;
      });
    }
    assert.equal(b.runtime.calls.length, 0);
    assert.deepEqual(b.state.blueprints(), []);
  } finally {
    b.close();
  }
});

test('runtime errors: reported per blueprint, logged, HTTP 202; admin routes and tables', async () => {
  const b = bed();
  const app = buildAdminApp({ agent: b.agent });
  try {
    const plan = planFor(bp, nodes);
    b.runtime.next = { ok: false, errors: [{ subject: 'workload acme/shop/web', code: 'E_IMAGE_MISSING', message: 'image zmesh/base:latest is not in the engine' }] };
    const res = await app.inject({ method: 'POST', url: '/v1/blueprints', payload: { signed: signed(bp), part: part(plan, 'node-a') } });
    assert.equal(res.statusCode, 202, res.body);
    assert.equal(res.json().runtime.errors[0].subject, 'workload acme/shop/web');
    assert.ok(b.state.events().some((e) => e.kind === 'workload.error' && e.message.startsWith('E_IMAGE_MISSING')));
    assert.equal(b.agent.lastReconcile?.ok, false);

    const ws = (await app.inject({ url: '/v1/workloads' })).json().workloads as WorkloadView[];
    assert.deepEqual(ws.map((w) => [w.name, w.state, w.address]), [['web', 'running', '10.20.0.10/24']]);
    const vs = (await app.inject({ url: '/v1/volumes' })).json().volumes as VolumeView[];
    assert.deepEqual(vs.map((v) => [v.name, v.size, v.used]), [['data', 16 * 1024 * 1024, 5 * 1024 * 1024]]);
    const logs = await app.inject({ url: '/v1/workloads/web/logs' });
    assert.deepEqual([logs.statusCode, logs.body], [200, 'hello from web\n']);
    assert.equal((await app.inject({ url: '/v1/workloads/acme%2Fshop%2Fweb/logs?tail=5' })).statusCode, 200);
    assert.equal((await app.inject({ url: '/v1/workloads/nope/logs' })).json().error.code, 'E_NOT_FOUND');
    assert.equal((await app.inject({ url: '/v1/workloads/web/logs?tail=x' })).json().error.code, 'E_REQUEST');

    const k = colour(false);
    assert.equal(psTable(ws, k), ['WORKLOAD       NODE    STATE    ADDRESS        RESTARTS  UPTIME  LAST EXIT', 'acme/shop/web  node-a  running  10.20.0.10/24  2         2m05s   OOM killed, exit 137'].join('\n'));
    assert.equal(volTable(vs), ['VOLUME          NODE    SIZE      USED     STATE  MOUNTED BY', 'acme/shop/data  node-a  16.0 MiB  5.0 MiB  ready  web'].join('\n'));
  } finally {
    await app.close();
    await b.agent.stop();
    assert.ok(b.runtime.closed, 'stop closes the runtime');
    b.close();
  }
});

test('runtime store: records round-trip through SQLite', () => {
  const b = bed();
  try {
    const s = new SqliteRuntimeStore(b.db);
    s.putWorkload({ key: 'acme/shop/web', containerId: 'c1', restarts: 3, lastExit: { exitCode: 1, oomKilled: false, error: '', finishedAt: 'x' }, attachment: null, updatedAt: 't' });
    s.putWorkload({ key: 'acme/shop/web', containerId: 'c2', restarts: 4, lastExit: null, attachment: null, updatedAt: 't2' });
    assert.deepEqual(s.workloads(), [{ key: 'acme/shop/web', containerId: 'c2', restarts: 4, lastExit: null, attachment: null, updatedAt: 't2' }]);
    s.putVolume({ key: 'acme/shop/data', subvolume: 'acme.shop.data', size: 5, state: 'creating', createdAt: 't' });
    assert.equal(s.volumes()[0].state, 'creating');
    s.deleteVolume('acme/shop/data');
    s.deleteWorkload('acme/shop/web');
    assert.deepEqual([s.workloads(), s.volumes()], [[], []]);
  } finally {
    b.close();
  }
});

test('config: dockerSocket, storageDevice, storagePoolSize', () => {
  const base = 'nodeId: node-a\nidentityKeyFile: id.key\nstateDir: state\n';
  const c = parseAgentConfig(base, '/etc/zmesh');
  assert.deepEqual([c.dockerSocket, c.storageDevice, c.storagePoolSize], ['/var/run/docker.sock', undefined, 10 * 1024 ** 3]);
  const d = parseAgentConfig(base + 'dockerSocket: /run/d/docker.sock\nstorageDevice: /dev/vdb\nstoragePoolSize: 2Gi\n', '/etc/zmesh');
  assert.deepEqual([d.dockerSocket, d.storageDevice, d.storagePoolSize], ['/run/d/docker.sock', '/dev/vdb', 2 * 1024 ** 3]);
  assert.throws(() => parseAgentConfig(base + 'storagePoolSize: 1Mi\n', '/'), (e: ValidationError) => e.problems[0].code === 'E_SIZE');
  assert.throws(() => parseAgentConfig(base + 'storageDevice: disk.img\n', '/'), (e: ValidationError) => e.problems[0].code === 'E_STORAGE_DEVICE');
});
