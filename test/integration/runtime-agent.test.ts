// The agent with workloads, for real: a `zmesh agent` process in a throwaway host (own network and mount
// namespaces, private /run) with its own private dockerd started inside that host (so the engine sees the
// agent's pool mount). `zmesh image base` builds the image; a signed blueprint with a workload and a volume is
// submitted; `zmesh ps`, `zmesh logs`, `zmesh vol ls` show it; a killed container is healed by the agent alone;
// an agent restart changes nothing; after a simulated reboot (containers gone, pool unmounted) the pool is
// mounted again and the workload comes back with its data; `zmesh rm` leaves nothing behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { validateBlueprint } from '../../src/blueprint/index.ts';
import { call } from '../../src/admin/client.ts';
import type { WorkloadView, VolumeView } from '../../runtime/types.ts';
import { identity } from '../helpers/fixtures.ts';
import { part, planFor, signed, tenantKeys } from '../helpers/agent-fixtures.ts';
import { NodeHost, waitFor } from '../helpers/node-host.ts';
import { startDockerd, type PrivateDockerd } from '../helpers/dockerd.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const MiB = 1024 * 1024;
const nodes = ['node-a', 'node-b'];
const bp = validateBlueprint({
  tenant: 'acme',
  name: 'shop',
  version: 1,
  networks: [{ name: 'backend', ipRange: '10.63.0.0/16', nodes }],
  workloads: [
    {
      name: 'web',
      node: 'node-a',
      image: 'zmesh/base:latest',
      command: ['sh', '-c', 'echo web starting; exec httpd -f -p 80 -h /data'],
      network: { name: 'backend', ip: '10.63.0.10' },
      cpu: 0.5,
      memory: '32Mi',
      volumes: [{ name: 'data', mount: '/data' }],
    },
  ],
  volumes: [{ name: 'data', node: 'node-a', size: '16Mi' }],
});
const plan = planFor(bp, nodes);
const netId = plan.networks[0].id;

test('agent with a private dockerd: image, workload, volume, healing, restart, reboot, removal', { timeout: 240_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-rt-agent-'));
  chmodSync(dir, 0o755);
  const state = join(dir, 'state');
  mkdirSync(state, { mode: 0o700 });
  writeFileSync(join(state, 'identity.key'), identity('node-a').privateKey.toString() + '\n', { mode: 0o600 });
  const socket = join(dir, 'admin.sock');
  const host = await NodeHost.start('rt-agent');
  let dockerd: PrivateDockerd | null = null;
  let agent: ChildProcess | null = null;
  const log: string[] = [];
  const cli = async (args: string[]) => {
    const r = await execa(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), '--socket', socket, ...args], { reject: false, cwd: ROOT, timeout: 60_000 });
    assert.equal(r.exitCode, 0, `zmesh ${args.join(' ')}: ${r.stderr}`);
    return String(r.stdout);
  };
  const start = async () => {
    const p = host.spawn(['node', '--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'agent', '--config', join(dir, 'agent.yaml')], { env: { TSX_TSCONFIG_PATH: join(ROOT, 'tsconfig.json') } });
    p.stderr!.on('data', (d: Buffer) => log.push(d.toString()));
    agent = p;
    await waitFor(async () => (await call<{ lastReconcile: unknown }>(socket, 'GET', '/v1/status').catch(() => null))?.lastReconcile != null, 30_000, 'the agent to reconcile once');
  };
  const stop = async () => {
    const p = agent;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await gone;
    agent = null;
  };
  const ps = async () => (await call<{ workloads: WorkloadView[] }>(socket, 'GET', '/v1/workloads')).workloads;
  const fetchWeb = async () => {
    const r = await host.exec(['ip', 'netns', 'exec', `n-${netId}`, 'timeout', '3', 'busybox', 'wget', '-q', '-O', '-', 'http://10.63.0.10/'], { reject: false });
    return r.exitCode === 0 ? String(r.stdout).trim() : null;
  };
  try {
    dockerd = await startDockerd({ prefix: ['nsenter', '-t', String(host.pid), '-m', '-n', '--'] });
    const docker = dockerd.docker;
    writeFileSync(
      join(dir, 'agent.yaml'),
      stringify({
        nodeId: 'node-a',
        identityKeyFile: join(state, 'identity.key'),
        stateDir: state,
        adminSocket: socket,
        endpoints: ['203.0.113.1'],
        wireguardBackend: 'userspace',
        reconcileInterval: '3s',
        underlayMtu: 1500,
        logLevel: 'info',
        dockerSocket: dockerd.socket,
        storagePoolSize: '256Mi',
        trustedTenants: { acme: tenantKeys('acme').publicKey.toString() },
      }),
    );

    await t.test('zmesh image base builds the base image offline', async () => {
      const out = JSON.parse(await cli(['image', 'base', '--docker-socket', dockerd!.socket, '--json']));
      assert.equal(out.image, 'zmesh/base:latest');
      assert.ok(out.applets > 50, `applets: ${out.applets}`);
      t.diagnostic(`base image: ${out.bytes} bytes, ${out.applets} applets, built and imported in ${out.ms} ms`);
    });

    await t.test('a blueprint with a workload and a volume runs on the node', async () => {
      await start();
      const t0 = performance.now();
      const r = await call<{ networks: { ok: boolean }[]; runtime: { ok: boolean; errors: unknown[] } }>(socket, 'POST', '/v1/blueprints', { signed: signed(bp), part: part(plan, 'node-a') });
      t.diagnostic(`submit → network, pool, volume, container created and attached: ${Math.round(performance.now() - t0)} ms`);
      assert.deepEqual(r.runtime, { ok: true, errors: [] }, JSON.stringify(r));
      const [w] = await ps();
      assert.deepEqual([w.name, w.state, w.address, w.restarts], ['web', 'running', '10.63.0.10/24', 0]);
      const id = w.containerId!;
      const ex = await docker.getContainer(id).exec({ Cmd: ['sh', '-c', 'echo hello-volume > /data/index.html'], AttachStdout: true });
      const s = await ex.start({ hijack: true, stdin: false });
      await new Promise((res) => s.on('end', res));
      assert.equal(await waitFor(async () => (await fetchWeb()) === 'hello-volume', 10_000, 'HTTP from the tenant namespace').then(() => 'ok'), 'ok');
      const text = await cli(['ps']);
      assert.match(text, /acme\/shop\/web\s+node-a\s+running\s+10\.63\.0\.10\/24\s+0/);
      const vols = JSON.parse(await cli(['vol', 'ls', '--json'])).volumes as VolumeView[];
      assert.deepEqual(vols.map((v) => [v.name, v.size, v.state, v.mountedBy]), [['data', 16 * MiB, 'ready', ['web']]]);
      const status = await call<{ modules: Record<string, number> }>(socket, 'GET', '/v1/status');
      assert.deepEqual(status.modules, { core: 1, network: 2, compute: 1, storage: 1 });
    });

    await t.test('a killed container is healed by the agent alone, with its address and data; the log says why', async () => {
      const [before] = await ps();
      const t0 = performance.now();
      await docker.getContainer(before.containerId!).kill();
      await waitFor(async () => {
        const [w] = await ps();
        return w.state === 'running' && w.restarts === 1 && w.address === '10.63.0.10/24';
      }, 15_000, 'the agent to restart and re-attach the workload');
      t.diagnostic(`kill → running and attached again (docker events → reconcile): ${Math.round(performance.now() - t0)} ms`);
      await waitFor(async () => (await fetchWeb()) === 'hello-volume', 10_000, 'HTTP after healing');
      const events = await call<{ events: { kind: string; message: string }[] }>(socket, 'GET', '/v1/events?limit=1000');
      assert.ok(events.events.some((e) => e.kind === 'workload.exited' && /exit code 137/.test(e.message)), JSON.stringify(events.events.slice(-8)));
      const logs = await cli(['logs', 'web']);
      assert.equal(logs.match(/web starting/g)?.length, 2, `logs: ${logs}`);
    });

    await t.test('an agent restart adopts the running container: no change', async () => {
      const [before] = await ps();
      await stop();
      await start();
      const s = await call<{ lastReconcile: { changes: number; ok: boolean } }>(socket, 'GET', '/v1/status');
      assert.deepEqual([s.lastReconcile.ok, s.lastReconcile.changes], [true, 0]);
      const [after] = await ps();
      assert.deepEqual([after.containerId, after.restarts, after.state], [before.containerId, 1, 'running']);
    });

    await t.test('after a reboot (containers gone, pool unmounted) the pool comes back with the data', async () => {
      await stop();
      for (const c of await docker.listContainers({ all: true })) await docker.getContainer(c.Id).remove({ force: true });
      await host.exec(['umount', join(state, 'storage', 'pool')]);
      await start();
      await waitFor(async () => (await ps())[0]?.state === 'running', 15_000, 'the workload after reboot');
      await waitFor(async () => (await fetchWeb()) === 'hello-volume', 10_000, 'the data after reboot');
    });

    await t.test('zmesh rm leaves no container, veth or volume', async () => {
      await cli(['rm', 'acme/shop']);
      assert.deepEqual(await docker.listContainers({ all: true }), []);
      assert.deepEqual(await ps(), []);
      const vols = (await call<{ volumes: VolumeView[] }>(socket, 'GET', '/v1/volumes')).volumes;
      assert.deepEqual(vols, []);
      const sub = await host.exec(['btrfs', 'subvolume', 'list', join(state, 'storage', 'pool')]);
      assert.doesNotMatch(String(sub.stdout), /acme\.shop\.data/);
    });
  } finally {
    await stop().catch(() => undefined);
    if (dockerd) await dockerd.stop().catch(() => undefined);
    await host.exec(['umount', join(state, 'storage', 'pool')], { reject: false }).catch(() => undefined);
    await host.destroy();
    rmSync(dir, { recursive: true, force: true });
    if (process.env.ZMESH_TEST_VERBOSE) process.stderr.write(log.join(''));
  }
});
