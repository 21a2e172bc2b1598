// A node on the etcd control plane that was cut off (its agent kept running, its lease expired) comes back:
// measured from the moment its underlay is restored (its agent can reach etcd again) until the controller sees it
// live, and until the lab's matrix is green. Issue #21: ≤ 10 s to live.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { downAndCheck, labDir, labFault, labUp, labWaitGreen, openLab, readEtcd } from '../../labs/index.ts';
import { labCredentials, memberUrl } from '../../labs/etcd.ts';
import { inNs } from '../../labs/sys.ts';
import { etcdAvailable } from '../helpers/etcd.ts';

const skip = etcdAvailable() ? false : 'etcd is not installed (scripts/deps.sh installs it)';
const root = mkdtempSync('/tmp/zmesh-lab-test-');
process.env.ZMESH_LAB_DIR = root;
const name = `er-${randomBytes(3).toString('hex')}`;
/** How long the node stays cut off (s); the default covers lease expiry and several reconnection attempts. */
const CUT_SEC = Number(process.env.ZMESH_RETURN_CUT_SEC ?? 30);

const SPEC = `name: ${name}
controlPlane: etcd
nodes:
  - name: node-a
  - name: node-b
  - name: node-c
tenants:
  - name: blue
    blueprints:
      - name: office
        networks:
          - name: lan
            ipRange: 10.1.0.0/16
            nodes: [node-a, node-b, node-c]
`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `etcdctl` from the lab's internet namespace as the operator (root's certificate). */
function etcdctl(...args: string[]): string[] {
  const { layout } = openLab(name);
  const cred = labCredentials(labDir(name), 'root');
  return inNs(layout.internetNs, ['etcdctl', '--endpoints', memberUrl(1), '--cacert', cred.cacert, '--cert', cred.cert, '--key', cred.key, ...args]);
}

/** etcd's current revision. */
function revision(): number {
  const argv = etcdctl('get', '/zmesh/v1/control/leader', '-w', 'json');
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout: 10_000, env: { ...process.env, ETCDCTL_API: '3' } });
  const rev = Number((JSON.parse(r.stdout || '{}') as { header?: { revision?: number } }).header?.revision);
  assert.ok(Number.isInteger(rev) && rev > 0, `etcd's revision (${r.stderr})`);
  return rev;
}

/**
 * `etcdctl watch` on a key from revision `fromRev` on, from the lab's internet namespace as the operator: calls
 * `seen` with the time and value of every put as it arrives (precise timing, unlike polling). Watching from a
 * revision read before the restore, no put is missed however late the watcher connects (a late watcher only makes
 * the figure larger). Stopped by PID.
 */
function watchKey(key: string, fromRev: number, seen: (at: number, value: string) => void): ChildProcess {
  const argv = etcdctl('watch', '--rev', String(fromRev), key);
  const p = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, ETCDCTL_API: '3' } });
  // etcdctl prints PUT, key, value for a put and DELETE, key for a delete (a lease's expiry).
  let event: string[] = [];
  createInterface({ input: p.stdout! }).on('line', (l) => {
    event.push(l);
    if (event[0] === 'DELETE' && event.length === 2) event = [];
    else if (event.length === 3) {
      if (event[0] === 'PUT') seen(Date.now(), event[2]);
      event = [];
    }
  });
  return p;
}

test('a node cut off from etcd (agent running) is live again within 10 s of its return', { skip, timeout: 240_000 }, async (t) => {
  const dir = labDir(name);
  const specFile = join(root, 'spec.yaml');
  writeFileSync(specFile, SPEC);
  const left: string[] = [];
  const member = (node: string) => readEtcd(openLab(name).layout, dir).members[node];
  const watchers: ChildProcess[] = [];
  try {
    const up = await labUp(specFile, { name });
    assert.ok(up.green, 'the etcd lab starts green');
    const tc = Date.now();
    await labFault(name, 'node-a', 'cut');
    for (let i = 0; i < 120 && member('node-a') === 'live'; i++) await sleep(250);
    assert.notEqual(member('node-a'), 'live', 'node-a is no longer live once its lease expired');
    t.diagnostic(`node-a not live after ${((Date.now() - tc) / 1000).toFixed(1)} s`);
    await sleep(Math.max(0, CUT_SEC * 1000 - (Date.now() - tc)));
    // Registration (the agent's, under its lease) and the controller's verdict (control/status), as they happen.
    let registeredAt: number | null = null;
    let liveAt: number | null = null;
    const fromRev = revision() + 1;
    watchers.push(watchKey('/zmesh/v1/nodes/node-a', fromRev, (at) => (registeredAt ??= at)));
    watchers.push(
      watchKey('/zmesh/v1/control/status', fromRev, (at, v) => {
        try {
          if ((JSON.parse(v) as { members?: Record<string, string> }).members?.['node-a'] === 'live') liveAt ??= at;
        } catch {
          /* not JSON */
        }
      }),
    );
    await sleep(1500); // the watchers are connected
    const tr = Date.now();
    t.diagnostic(`restore at ${new Date(tr).toISOString()}`);
    await labFault(name, 'node-a', 'restore');
    for (let i = 0; i < 300 && Date.now() - tr < 60_000 && liveAt === null; i++) await sleep(200);
    if (liveAt === null) {
      // What a failure needs to be explained: the member's state and the two logs' last lines.
      const { nodePaths } = await import('../../labs/state.ts');
      const { readFileSync } = await import('node:fs');
      const tail = (f: string) => {
        try {
          return readFileSync(f, 'utf8').trim().split('\n').slice(-40).join('\n');
        } catch (e) {
          return String(e);
        }
      };
      t.diagnostic(`not live 60 s after the restore; registered ${registeredAt === null ? 'never' : `${registeredAt - tr} ms after`}; member now ${member('node-a')}`);
      t.diagnostic(`node-a log:\n${tail(nodePaths(dir, 'node-a').log)}`);
      t.diagnostic(`controller log:\n${tail(join(dir, 'logs', 'controller.log'))}`);
    }
    assert.ok(liveAt !== null, 'node-a live again');
    const liveMs = liveAt - tr;
    assert.equal(member('node-a'), 'live');
    const g = await labWaitGreen(name, 60_000);
    const greenMs = Date.now() - tr;
    t.diagnostic(
      `returning node (cut ${CUT_SEC} s, agent running): registered ${registeredAt === null ? '?' : ((registeredAt - tr) / 1000).toFixed(1)} s, live ${(liveMs / 1000).toFixed(1)} s after the restore, green after ${(greenMs / 1000).toFixed(1)} s`,
    );
    assert.ok(g.green, 'green again');
    assert.ok(liveMs <= 10_000, `live within 10 s of the restore (${liveMs} ms)`);
  } finally {
    for (const w of watchers) if (w.pid && w.exitCode === null) w.kill('SIGKILL');
    if (process.env.ZMESH_RETURN_KEEP_LOGS) {
      const { cpSync } = await import('node:fs');
      const { nodePaths } = await import('../../labs/state.ts');
      cpSync(nodePaths(dir, 'node-a').log, join(process.env.ZMESH_RETURN_KEEP_LOGS, 'node-a.log'));
      cpSync(join(dir, 'logs', 'controller.log'), join(process.env.ZMESH_RETURN_KEEP_LOGS, 'controller.log'));
    }
    left.push(...(await downAndCheck(name, dir)));
    rmSync(root, { recursive: true, force: true });
  }
  assert.deepEqual(left, [], 'lab down left things behind');
});
