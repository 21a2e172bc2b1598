// A node on the etcd control plane that was cut off (its agent kept running, its lease expired) comes back:
// measured from the moment its underlay is restored (its agent can reach etcd again) until the controller sees it
// live, and until the lab's matrix is green. Issue #21: ≤ 10 s to live.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
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

/**
 * `etcdctl watch` on a key, from the lab's internet namespace as the operator: calls `seen` with the time and
 * value of every put as it arrives (precise timing, unlike polling). Stopped by PID.
 */
function watchKey(key: string, seen: (at: number, value: string) => void): ChildProcess {
  const { layout } = openLab(name);
  const cred = labCredentials(labDir(name), 'root');
  const argv = inNs(layout.internetNs, ['etcdctl', '--endpoints', memberUrl(1), '--cacert', cred.cacert, '--cert', cred.cert, '--key', cred.key, 'watch', key]);
  const p = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, ETCDCTL_API: '3' } });
  const lines: string[] = [];
  createInterface({ input: p.stdout! }).on('line', (l) => {
    lines.push(l);
    if (lines.length === 3) {
      const [op, , value] = lines.splice(0, 3);
      if (op === 'PUT') seen(Date.now(), value);
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
    watchers.push(watchKey('/zmesh/v1/nodes/node-a', (at) => (registeredAt ??= at)));
    watchers.push(
      watchKey('/zmesh/v1/control/status', (at, v) => {
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
