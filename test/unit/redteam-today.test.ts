// Red team of three changes: the operator CLI config file (src/cli/config.ts), the command runner on
// node:child_process (netns/runner.ts), and direct-path adoption at agent start (src/agent/paths.ts adopt()).
// "defended: …" tests are attacks that fail; the others were attacks that worked, fixed with the change.
// The config tests need root (they play another user with chown to 65534) and are skipped otherwise.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs, { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { execFileSync, spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCliConfig, MAX_CONFIG_BYTES } from '../../src/cli/config.ts';
import { ZmeshError } from '../../src/errors.ts';
import { CommandError, MAX_BUFFER, ProcessRunner, SECRET_FILE } from '../../netns/runner.ts';
import { PathManager, type PeerCounters } from '../../src/agent/paths.ts';
import type { DesiredNetwork } from '../../src/agent/ports.ts';
import { directPeerAllowedIps } from '../../topology/paths.ts';
import { planFor } from '../helpers/agent-fixtures.ts';
import { blueprint, net } from '../helpers/fixtures.ts';

const root = mkdtempSync(join(tmpdir(), 'zmesh-redteam-'));
after(() => rmSync(root, { recursive: true, force: true }));
const isRoot = process.getuid?.() === 0;
const OTHER = 65534; // the hostile local user

function refusal(f: () => unknown): { code: string; message: string } {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof ZmeshError, String(e));
    return { code: e.code, message: e.message };
  }
  assert.fail('not refused');
}

/** node:fs as a writable object: a test hooks statSync (and syncBuiltinESMExports carries it to named imports). */
const writableFs = fs as { statSync: typeof fs.statSync };

// ---- 1. the CLI config file ----------------------------------------------------------------------------------

/** A HOME another user controls, as root's zmesh sees it with sudo keeping HOME: /…/alice/.config/zmesh. */
function aliceHome(name: string): { home: string; dir: string } {
  const home = join(root, name);
  const dir = join(home, '.config', 'zmesh');
  mkdirSync(dir, { recursive: true });
  for (const d of [home, join(home, '.config'), dir]) chownSync(d, OTHER, OTHER);
  return { home, dir };
}

test('config: a root-owned config.yaml in a directory another user owns is refused (that user can swap or link it)', { skip: !isRoot && 'needs root' }, () => {
  // Alice cannot write a root-owned file, but she owns the directory: she can rename it away, hard-link or
  // symlink any root-owned file in, or swap in her own between the check and the read. Refused as ssh does.
  const { home, dir } = aliceHome('alice1');
  writeFileSync(join(dir, 'config.yaml'), 'socket: /run/zmesh/admin.sock\n', { mode: 0o644 });
  assert.deepEqual(refusal(() => loadCliConfig({ HOME: home }, '/nonexistent')), {
    code: 'E_CLI_CONFIG_UNSAFE',
    message: `lies in ${dir}, owned by uid ${OTHER}, neither root nor you (uid 0): refused (its owner could replace the file)`,
  });
});

test('config: a symlink from another user\'s directory to a root-owned config is refused (its relative paths would resolve in that directory)', { skip: !isRoot && 'needs root' }, () => {
  // Root's own config with the documented relative paths: through Alice's symlink, `socket: admin.sock` and
  // `key: root-key.pem` would name files in Alice's directory (her socket; her key presented as root's).
  const rootDir = join(root, 'rootcfg');
  mkdirSync(rootDir, { mode: 0o700 });
  writeFileSync(join(rootDir, 'config.yaml'), 'socket: admin.sock\netcd: {endpoints: [https://10.0.0.1:2379], key: root-key.pem}\n', { mode: 0o600 });
  const { home, dir } = aliceHome('alice2');
  symlinkSync(join(rootDir, 'config.yaml'), join(dir, 'config.yaml'));
  assert.deepEqual(refusal(() => loadCliConfig({ HOME: home }, '/nonexistent')).code, 'E_CLI_CONFIG_UNSAFE');
  // The same file read through a path of root's own: relative paths stay in root's directory.
  assert.deepEqual(loadCliConfig({ ZMESH_CONFIG: join(rootDir, 'config.yaml') }).config, { socket: join(rootDir, 'admin.sock'), etcd: { endpoints: ['https://10.0.0.1:2379'], key: join(rootDir, 'root-key.pem') } });
});

test('config: a file swapped between the safety check and the read is not read (checked and read through one descriptor)', { skip: !isRoot && 'needs root' }, () => {
  // A group-writable directory (read with a warning): a member of the group swaps root's file for their own
  // right after zmesh looked at it. Simulated exactly at that moment by hooking statSync.
  const dir = join(root, 'shared');
  mkdirSync(dir, { mode: 0o775 });
  chownSync(dir, 0, OTHER);
  chmodSync(dir, 0o775);
  const p = join(dir, 'cli.yaml');
  writeFileSync(p, 'socket: /run/zmesh/admin.sock\n', { mode: 0o644 });
  const evil = join(dir, 'evil.yaml');
  writeFileSync(evil, 'socket: /tmp/alice.sock\n', { mode: 0o644 });
  chownSync(evil, OTHER, OTHER);
  const real = fs.statSync;
  let swapped = false;
  writableFs.statSync = ((path: fs.PathLike, ...rest: unknown[]) => {
    const r = (real as (...a: unknown[]) => unknown)(path, ...rest);
    if (path === p && !swapped) {
      swapped = true;
      renameSync(evil, p);
    }
    return r;
  }) as typeof fs.statSync;
  syncBuiltinESMExports();
  try {
    assert.deepEqual(refusal(() => loadCliConfig({ ZMESH_CONFIG: p })), { code: 'E_CLI_CONFIG_UNSAFE', message: `is owned by uid ${OTHER}, neither root nor you (uid 0): refused` });
    assert.equal(swapped, true);
  } finally {
    writableFs.statSync = real;
    syncBuiltinESMExports();
  }
});

test('config: a FIFO swapped in after the check cannot hang zmesh (opened without blocking, refused as not a file)', { skip: !isRoot && 'needs root' }, () => {
  const dir = mkdtempSync(join(root, 'fifo-'));
  const p = join(dir, 'cli.yaml');
  writeFileSync(p, 'color: false\n', { mode: 0o644 });
  const fifo = join(dir, 'pipe');
  execFileSync('mkfifo', [fifo]);
  // Should the FIFO ever be read (a blocking, synchronous read), a writer ends it after 2 s: the test then fails
  // instead of hanging. (The code before the fix hung here for good.)
  const writer = spawn('timeout', ['5', 'sh', '-c', `sleep 2; : > '${p}'`], { stdio: 'ignore' });
  const real = fs.statSync;
  writableFs.statSync = ((path: fs.PathLike, ...rest: unknown[]) => {
    const r = (real as (...a: unknown[]) => unknown)(path, ...rest);
    if (path === p && existsSync(fifo)) renameSync(fifo, p);
    return r;
  }) as typeof fs.statSync;
  syncBuiltinESMExports();
  try {
    assert.deepEqual(refusal(() => loadCliConfig({ ZMESH_CONFIG: p })), { code: 'E_CLI_CONFIG_MISSING', message: 'is not a regular file' });
  } finally {
    writableFs.statSync = real;
    syncBuiltinESMExports();
    writer.kill('SIGKILL'); // by its handle (the process this test started)
  }
});

test('config: a file over 1 MiB is refused unread (no unbounded read)', { skip: !isRoot && 'needs root' }, () => {
  const dir = mkdtempSync(join(root, 'big-'));
  const p = join(dir, 'cli.yaml');
  writeFileSync(p, `color: false\n${'#'.repeat(MAX_CONFIG_BYTES)}\n`, { mode: 0o600 });
  assert.equal(MAX_CONFIG_BYTES, 1_048_576);
  assert.deepEqual(refusal(() => loadCliConfig({ ZMESH_CONFIG: p })), { code: 'E_FILE', message: 'is larger than 1048576 bytes: refused unread' });
  writeFileSync(p, 'color: false\n', { mode: 0o600 });
  assert.deepEqual(loadCliConfig({ ZMESH_CONFIG: p }).config, { color: false });
});

test('defended: config: a config owned by another user is refused; FIFOs and /dev/zero are not files; /tmp (sticky) is fine', { skip: !isRoot && 'needs root' }, () => {
  const dir = mkdtempSync(join(root, 'own-'));
  const p = join(dir, 'cli.yaml');
  writeFileSync(p, 'socket: /tmp/alice.sock\n', { mode: 0o644 });
  chownSync(p, OTHER, OTHER);
  assert.deepEqual(refusal(() => loadCliConfig({ ZMESH_CONFIG: p })), { code: 'E_CLI_CONFIG_UNSAFE', message: `is owned by uid ${OTHER}, neither root nor you (uid 0): refused` });
  const fifo = join(dir, 'fifo.yaml');
  execFileSync('mkfifo', [fifo]);
  assert.deepEqual(refusal(() => loadCliConfig({ ZMESH_CONFIG: fifo })), { code: 'E_CLI_CONFIG_MISSING', message: 'is not a regular file' });
  assert.deepEqual(refusal(() => loadCliConfig({ ZMESH_CONFIG: '/dev/zero' })), { code: 'E_CLI_CONFIG_MISSING', message: 'is not a regular file' });
  const ok = join(dir, 'ok.yaml');
  writeFileSync(ok, 'output: wide\n', { mode: 0o644 });
  assert.deepEqual(loadCliConfig({ ZMESH_CONFIG: ok }), { file: ok, config: { output: 'wide' }, warnings: [] });
});

test('defended: config: a YAML alias bomb is refused by the alias limit', { skip: !isRoot && 'needs root' }, () => {
  const dir = mkdtempSync(join(root, 'bomb-'));
  const p = join(dir, 'cli.yaml');
  const lines = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
  for (let i = 1; i < 10; i++) lines.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill(`*${String.fromCharCode(96 + i)}`).join(', ')}]`);
  writeFileSync(p, lines.join('\n') + '\n', { mode: 0o600 });
  const t0 = performance.now();
  const e = refusal(() => loadCliConfig({ ZMESH_CONFIG: p }));
  assert.equal(e.code, 'E_YAML_SYNTAX');
  assert.match(e.message, /[Ee]xcessive alias count/);
  assert.ok(performance.now() - t0 < 2000);
});

// ---- 2. the command runner -----------------------------------------------------------------------------------

test('runner: output past maxBuffer kills the command with a clear CommandError (default execa\'s 100 MB)', async () => {
  assert.equal(MAX_BUFFER, 100_000_000);
  const r = new ProcessRunner();
  await assert.rejects(r.run(['head', '-c', '3000000', '/dev/zero'], { mutating: false, maxBuffer: 1_000_000 }), (e: unknown) => {
    assert.ok(e instanceof CommandError);
    assert.equal(e.message, 'head -c 3000000 /dev/zero failed with exit code -1: its stdout went over 1000000 bytes: killed');
    return true;
  });
  const ok = await r.run(['head', '-c', '1000000', '/dev/zero'], { mutating: false, maxBuffer: 1_000_000 });
  assert.equal(ok.stdout.length, 1_000_000);
});

test('runner: a timed-out command whose child still holds stdout does not hang the runner', async () => {
  const dir = mkdtempSync(join(root, 'gc-'));
  const pidFile = join(dir, 'pid');
  const r = new ProcessRunner();
  const t0 = performance.now();
  let guard: NodeJS.Timeout | undefined;
  try {
    const outcome = await Promise.race([
      r.run(['sh', '-c', `sleep 30 & echo $! > ${pidFile}; exec sleep 30`], { mutating: false, timeoutMs: 300 }).then(() => 'resolved', (e: Error) => e.message),
      new Promise<string>((res) => (guard = setTimeout(() => res('hung'), 5000))),
    ]);
    assert.equal(outcome, `sh -c sleep 30 & echo $! > ${pidFile}; exec sleep 30 failed with exit code -1: timed out after 300 ms`);
    assert.ok(performance.now() - t0 < 3000);
  } finally {
    clearTimeout(guard);
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    if (pid > 1) {
      try {
        process.kill(pid, 'SIGKILL'); // the orphan this test started
      } catch {
        // gone
      }
    }
  }
});

test('runner: a secret the failing command echoes on stderr is not in the CommandError', async () => {
  const r = new ProcessRunner({ secretDir: join(root, 'secrets') });
  const key = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
  await assert.rejects(r.run(['sh', '-c', 'cat >&2; exit 1'], { input: `${key}\n`, secretInput: true, mutating: true }), (e: unknown) => {
    assert.ok(e instanceof CommandError);
    assert.equal(e.message, 'sh -c cat >&2; exit 1 failed with exit code 1: <secret>');
    assert.equal(e.stderr, '<secret>\n');
    return true;
  });
  // As wg does with a key it cannot parse: it quotes it.
  await assert.rejects(r.run(['sh', '-c', 'printf "Key is not the correct length or format: %s\\n" "$(cat "$1")" >&2; exit 1', 'sh', SECRET_FILE], { secretFile: key, mutating: true }), (e: unknown) => {
    assert.ok(e instanceof CommandError);
    assert.ok(!e.message.includes(key) && !e.stderr.includes(key), e.message);
    assert.equal(e.stderr, 'Key is not the correct length or format: <secret>\n');
    return true;
  });
});

test('defended: runner: only LC_ALL and PATH reach a command or a daemon (with its own env); nothing of the agent\'s', async () => {
  process.env.ZMESH_ETCD_PASSWORD = 'hunter2-do-not-leak';
  try {
    const r = new ProcessRunner();
    const out = await r.run(['env'], { mutating: false });
    assert.deepEqual(out.stdout.trim().split('\n').sort(), ['LC_ALL=C', `PATH=${process.env.PATH}`]);
    const log = join(mkdtempSync(join(root, 'd-')), 'log');
    const d = r.spawnDaemon(['env'], { logFile: log, env: { WG_X: '1' } });
    const keep = setInterval(() => undefined, 50); // daemons are unref'd: keep this test's loop alive
    try {
      assert.equal((await d.exited).exitCode, 0);
    } finally {
      clearInterval(keep);
    }
    assert.deepEqual(readFileSync(log, 'utf8').trim().split('\n').sort(), ['LC_ALL=C', `PATH=${process.env.PATH}`, 'WG_X=1']);
  } finally {
    delete process.env.ZMESH_ETCD_PASSWORD;
  }
});

test('defended: runner: a command ignoring SIGTERM is killed at the timeout; a command that never reads its stdin is no EPIPE crash', async () => {
  const r = new ProcessRunner();
  await assert.rejects(r.run(['sh', '-c', 'trap "" TERM; exec sleep 30'], { mutating: false, timeoutMs: 200 }), {
    message: 'sh -c trap "" TERM; exec sleep 30 failed with exit code -1: timed out after 200 ms',
  });
  const big = 'x'.repeat(4 * 1024 * 1024);
  const res = await r.run(['true'], { mutating: true, input: big });
  assert.equal(res.exitCode, 0);
  const closed = await r.run(['sh', '-c', 'exec 0<&- 1>&-; exit 0'], { mutating: true, input: big });
  assert.deepEqual([closed.exitCode, closed.stdout], [0, '']);
});

// ---- 3. direct-path adoption ---------------------------------------------------------------------------------

const plan = planFor(blueprint([net({ nodes: ['pa', 'h1', 'h2', 'h3'] })]), ['pa', { id: 'h1' }, { id: 'h2' }, { id: 'h3' }]);
const n = plan.networks[0];
const h1 = structuredClone(n.resources.find((r) => r.node === 'h1')!);
const desired: DesiredNetwork = { tenant: 'acme', blueprint: 'shop', networkId: n.id, networkName: n.name, ipRange: n.ipRange, egress: false, resource: h1 };
const peer = (node: string) => h1.peers.find((p) => p.node === node)!;
const T0 = 1_700_000_000_000;

function adopter(device: PeerCounters[], plan: DesiredNetwork = desired) {
  const events: string[] = [];
  const m = new PathManager({ now: () => T0, desired: () => [plan], read: async () => device.map((c) => ({ ...c })), setPeers: async () => [], event: (_l, kind) => void events.push(kind) });
  return { m, events, on: (node: string) => m.effective(plan).resource.peers.find((p) => p.node === node)! };
}
const live = Math.floor((T0 - 5000) / 1000);

test('defended: adoption: the hostile peer h2 holding the third node h3\'s subnet halves (live session) is not adopted', async () => {
  const h3Halves = directPeerAllowedIps(peer('h3'));
  assert.notDeepEqual(h3Halves, directPeerAllowedIps(peer('h2')));
  const t = adopter([{ publicKey: peer('h2').publicKey, rxBytes: 9, latestHandshake: live, endpoint: '198.51.100.2:1', allowedIps: h3Halves }]);
  assert.equal(await t.m.adopt(), 0);
  assert.deepEqual(t.events, []);
  assert.deepEqual([t.on('h2').allowedIps, t.on('h3').allowedIps], [[], []]);
  // Both its own and h3's halves: not exactly its own, not adopted either.
  const u = adopter([{ publicKey: peer('h2').publicKey, rxBytes: 9, latestHandshake: live, endpoint: null, allowedIps: [...directPeerAllowedIps(peer('h2')), ...h3Halves] }]);
  assert.equal(await u.m.adopt(), 0);
  assert.deepEqual(u.on('h2').allowedIps, []);
});

test('defended: adoption: a direct peer whose key was re-planned (device still has the old key with the halves) is not adopted', async () => {
  const replanned: DesiredNetwork = structuredClone(desired);
  const p2 = replanned.resource.peers.find((p) => p.node === 'h2')!;
  const oldKey = p2.publicKey;
  p2.publicKey = peer('h3').publicKey === oldKey ? 'x' : 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
  const t = adopter([{ publicKey: oldKey, rxBytes: 9, latestHandshake: live, endpoint: null, allowedIps: directPeerAllowedIps(p2) }], replanned);
  assert.equal(await t.m.adopt(), 0);
  assert.deepEqual(t.on('h2').allowedIps, []);
  assert.deepEqual(t.m.views().map((v) => v.path), ['relay', 'relay']);
});

test('defended: adoption: an adopted pair gives the peer only the halves of its PLANNED subnet, whatever the device held', async () => {
  const t = adopter([
    { publicKey: peer('h2').publicKey, rxBytes: 9, latestHandshake: live, endpoint: null, allowedIps: directPeerAllowedIps(peer('h2')) },
    { publicKey: peer('h3').publicKey, rxBytes: 9, latestHandshake: 0, endpoint: null, allowedIps: directPeerAllowedIps(peer('h3')) },
  ]);
  assert.equal(await t.m.adopt(), 1, 'h3 has no session: not adopted');
  assert.deepEqual(t.on('h2').allowedIps, directPeerAllowedIps(peer('h2')));
  assert.deepEqual(t.on('h3').allowedIps, []);
  assert.deepEqual(t.events, ['path.adopted']);
});
