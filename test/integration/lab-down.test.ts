// `lab down` after the lab command crashed: `lab up` is SIGKILLed half-way (agents running, tunnels being
// pushed), then `lab down NAME` must leave nothing — no namespace, process, mount, socket, host link, lab
// directory. Then `lab down --all` with the lab directory gone too (leftovers found by prefix only).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { LAB_NS_PREFIX, labDir, leftovers, processesOf, readState } from '../../labs/index.ts';
import { listNetns, sleep } from '../../labs/sys.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SPEC = fileURLToPath(new URL('../../labs/quickstart.yaml', import.meta.url));
const root = mkdtempSync('/tmp/zmesh-lab-test-');
process.env.ZMESH_LAB_DIR = root;
const env = { ...process.env, ZMESH_LAB_DIR: root, NO_COLOR: '1' };

function cli(args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: ROOT, env, encoding: 'utf8', timeout: 120_000 });
}

/** Starts `lab up` and SIGKILLs it once at least `agents` agents run (bounded); returns what is inside. */
async function crashUp(name: string, agents: number): Promise<{ pid: number; start: number }[]> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'lab', 'up', SPEC, '--name', name], { cwd: ROOT, env, stdio: 'ignore' });
  const dir = labDir(name);
  try {
    for (let i = 0; i < 600; i++) {
      const s = readState(dir);
      if (s && Object.keys(s.agents).length >= agents) break;
      if (child.exitCode !== null) break;
      await sleep(100);
    }
  } finally {
    child.kill('SIGKILL');
  }
  await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r)));
  const procs = processesOf(name, dir);
  assert.ok(procs.length >= 4, `the crashed lab has processes (${procs.length})`);
  return procs;
}

test('lab down after lab up was killed half-way leaves nothing', { timeout: 180_000 }, async (t) => {
  const name = `dn-${randomBytes(3).toString('hex')}`;
  const dir = labDir(name);
  const procs: { pid: number; start: number }[] = [];
  try {
    procs.push(...(await crashUp(name, 2)));
    t.diagnostic(`crashed lab holds ${procs.length} processes`);
  } finally {
    const d = cli(['lab', 'down', name]);
    assert.equal(d.status, 0, d.stderr);
    t.diagnostic(d.stdout.trim());
  }
  assert.deepEqual(leftovers(name, dir, { procs }), []);
});

test('lab down --all finds a crashed lab by prefix alone', { timeout: 180_000 }, async (t) => {
  const foreign = listNetns().filter((n) => n.startsWith(LAB_NS_PREFIX));
  if (foreign.length) {
    t.skip(`other labs are running on this machine (${foreign.slice(0, 3).join(', ')}…): --all would take them down too`);
    return;
  }
  const name = `da-${randomBytes(3).toString('hex')}`;
  const dir = labDir(name);
  const procs: { pid: number; start: number }[] = [];
  // The state goes too: only the prefix is left to go by. Moved away in one rename, not removed file by file:
  // the crashed lab's agents still write into it (a recursive remove raced them: ENOTEMPTY in CI).
  const gone = `${root}-gone-${name}`;
  try {
    procs.push(...(await crashUp(name, 1)));
    renameSync(dir, gone);
  } finally {
    const d = cli(['lab', 'down', '--all']);
    rmSync(gone, { recursive: true, force: true });
    assert.equal(d.status, 0, d.stderr);
    t.diagnostic(d.stdout.trim());
  }
  assert.deepEqual(leftovers(name, dir, { procs }), []);
  assert.deepEqual(listNetns().filter((n) => n.startsWith(LAB_NS_PREFIX)), []);
});

test.after(() => rmSync(root, { recursive: true, force: true }));
