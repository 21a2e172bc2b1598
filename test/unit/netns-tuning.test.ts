// Data-plane tuning (netns/tuning.ts): options, the /proc parser and helper argv (exact text), the socket tuner
// against a fake runner and fake sockets (check before set, once per set of sockets, a watcher for sockets that
// appear later, failures recorded once), and how the driver and the daemons take the tuning.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buffersAreSet,
  DEFAULT_TUNING,
  DEFAULT_TUNING_BATCHED,
  NO_TUNING,
  parseProcNetUdp,
  parseWireguardGoVersion,
  parseSocketBuffers,
  resolveTuning,
  socketBufferArgv,
  SocketTuner,
  SOCKET_BUFFER_SCRIPT,
  validateTuning,
  type DaemonSocket,
} from '../../netns/tuning.ts';
import { Daemons } from '../../netns/wireguard.ts';
import { Driver } from '../../netns/driver.ts';
import type { DaemonHandle, RunOptions, RunResult, Runner, SpawnOptions } from '../../netns/runner.ts';

test('resolveTuning: default on, false off, an object overrides single knobs; validateTuning', () => {
  assert.deepEqual(resolveTuning(undefined), DEFAULT_TUNING);
  assert.deepEqual(resolveTuning(true), DEFAULT_TUNING);
  assert.deepEqual(resolveTuning(false), NO_TUNING);
  assert.deepEqual(DEFAULT_TUNING, { socketBufferBytes: 4194304, daemonOwnSession: false, daemonEnv: {} });
  assert.deepEqual(NO_TUNING, { socketBufferBytes: 0, daemonOwnSession: true, daemonEnv: {} });
  assert.deepEqual(resolveTuning({ socketBufferBytes: 1 << 20, daemonEnv: { GOGC: '400' } }), { socketBufferBytes: 1048576, daemonOwnSession: false, daemonEnv: { GOGC: '400' } });
  assert.deepEqual(validateTuning(DEFAULT_TUNING), []);
  assert.deepEqual(validateTuning({ socketBufferBytes: -1, daemonOwnSession: false, daemonEnv: { 'bad name': 'x' } }), [
    'socketBufferBytes is an integer from 0 to 268435456',
    'daemonEnv bad name is not NAME=value',
  ]);
  assert.throws(() => new Driver({ tuning: { socketBufferBytes: 1.5 } }), /tuning: socketBufferBytes/);
  assert.deepEqual(new Driver({}).tuning, DEFAULT_TUNING);
  assert.deepEqual(new Driver({ tuning: false }).tuning, NO_TUNING);
});

test('parseProcNetUdp: port, inode, receive queue and drops of each socket', () => {
  const udp =
    '   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops            \n' +
    ' 9740: 00000000:C738 00000000:0000 07 00000000:00000A00 00:00000000 00000000     0        0 945184 2 000000008e76c82a 17        \n';
  const udp6 =
    '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n' +
    ' 9740: 00000000000000000000000000000000:C738 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 945183 2 0000000048ce6862 0\n';
  assert.deepEqual(parseProcNetUdp(udp), [{ localPort: 51000, inode: 945184, rxQueue: 2560, drops: 17 }]);
  assert.deepEqual(parseProcNetUdp(udp6), [{ localPort: 51000, inode: 945183, rxQueue: 0, drops: 0 }]);
  assert.deepEqual(parseProcNetUdp(''), []);
});

test('socketBufferArgv / parseSocketBuffers: exact argv, checked input, the kernel doubles the request', () => {
  assert.deepEqual(socketBufferArgv(1234, 4194304, [17, 18]), ['perl', '-e', SOCKET_BUFFER_SCRIPT, '1234', '4194304', '17', '18']);
  assert.deepEqual(socketBufferArgv(1234, 0, [7]).slice(3), ['1234', '0', '7']);
  assert.match(SOCKET_BUFFER_SCRIPT, /syscall\(434, \$pid \+ 0, 0\)/);
  assert.match(SOCKET_BUFFER_SCRIPT, /syscall\(438, \$pidfd, \$t \+ 0, 0\)/);
  assert.match(SOCKET_BUFFER_SCRIPT, /setsockopt\(\$fh, SOL_SOCKET, 33,/);
  assert.throws(() => socketBufferArgv(1, 1, [1]), /bad pid/);
  assert.throws(() => socketBufferArgv(99, -1, [1]), /bad size/);
  assert.throws(() => socketBufferArgv(99, 1, []), /fds/);
  const m = parseSocketBuffers('17 8388608 8388608\n18 8388608 425984\nnoise\n');
  assert.deepEqual([...m], [
    [17, { rcvbuf: 8388608, sndbuf: 8388608 }],
    [18, { rcvbuf: 8388608, sndbuf: 425984 }],
  ]);
  assert.equal(buffersAreSet(m.get(17)!, 4194304), true);
  assert.equal(buffersAreSet(m.get(18)!, 4194304), false);
});

/** Answers the helper like the kernel would: remembers the sizes set per fd. */
class FakeRunner implements Runner {
  calls: { argv: string[]; mutating: boolean }[] = [];
  sizes = new Map<number, number>();
  fail: string | null = null;
  async run(argv: string[], opts: RunOptions): Promise<RunResult> {
    this.calls.push({ argv: argv.slice(3), mutating: opts.mutating });
    if (this.fail) throw new Error(this.fail);
    const [, bytes, ...fds] = argv.slice(3).map(Number);
    const out = fds.map((fd) => {
      if (bytes > 0) this.sizes.set(fd, 2 * bytes);
      const s = this.sizes.get(fd) ?? 212992;
      return `${fd} ${s} ${s}\n`;
    });
    return { argv, exitCode: 0, stdout: out.join(''), stderr: '' };
  }
  spawnDaemon(): DaemonHandle {
    throw new Error('not here');
  }
}

const sock = (fd: number, inode: number, family: 4 | 6 = 4, drops = 0): DaemonSocket => ({ localPort: 51820, inode, rxQueue: 0, drops, family, fd });

function tunerWith(socks: () => DaemonSocket[], runner = new FakeRunner(), bytes = 1 << 20) {
  let locked = 0;
  const tuner = new SocketTuner({
    bytes,
    runner,
    lock: async (fn) => {
      locked++;
      return fn();
    },
    readSockets: () => socks(),
    alive: () => true,
    pollMs: 2,
    watchMs: 500,
  });
  return { tuner, runner, locks: () => locked };
}

test('SocketTuner.ensure: checks, sets once per set of sockets, reports; a new socket set is tuned again', async () => {
  let socks = [sock(17, 100, 6), sock(18, 101)];
  const { tuner, runner } = tunerWith(() => socks);
  const lines = await tuner.ensure(runner, 'w-abcdefghij', 4242, 51820);
  assert.deepEqual(lines, ['tuning: UDP socket buffers of wireguard-go w-abcdefghij (pid 4242, port 51820, 2 sockets): rcvbuf 2097152 sndbuf 2097152']);
  assert.deepEqual(runner.calls, [
    { argv: ['4242', '0', '17', '18'], mutating: false },
    { argv: ['4242', '1048576', '17', '18'], mutating: true },
  ]);
  assert.deepEqual(await tuner.ensure(runner, 'w-abcdefghij', 4242, 51820), [], 'the same sockets: nothing, not even a read');
  assert.equal(runner.calls.length, 2);
  assert.deepEqual(tuner.status('w-abcdefghij', 4242), { pid: 4242, port: 51820, sockets: 2, rcvbuf: 2097152, sndbuf: 2097152, drops: 0 });
  assert.equal(tuner.status('w-abcdefghij', 999), null, 'another daemon: nothing recorded');
  socks = [sock(19, 102, 6), sock(20, 103)]; // wireguard-go reopened its sockets (port change, down/up)
  assert.equal((await tuner.ensure(runner, 'w-abcdefghij', 4242, 51820)).length, 1);
  assert.deepEqual(runner.calls.slice(2).map((c) => c.mutating), [false, true]);
});

test('SocketTuner.ensure: sockets already tuned (a restarted driver adopting a daemon) → a read only', async () => {
  const runner = new FakeRunner();
  runner.sizes.set(17, 2 << 20).set(18, 2 << 20);
  const { tuner } = tunerWith(() => [sock(17, 100), sock(18, 101)], runner);
  assert.deepEqual(await tuner.ensure(runner, 'w-abcdefghij', 4242, 51820), []);
  assert.deepEqual(runner.calls, [{ argv: ['4242', '0', '17', '18'], mutating: false }]);
  assert.equal(tuner.status('w-abcdefghij', null)?.rcvbuf, 2097152);
});

test('SocketTuner: a fresh daemon without sockets is watched; its sockets are tuned under the lock once they open', async () => {
  let socks: DaemonSocket[] = [];
  const { tuner, runner, locks } = tunerWith(() => socks);
  assert.deepEqual(await tuner.ensure(runner, 'w-abcdefghij', 4242, 51820), []);
  assert.deepEqual(await tuner.ensure(runner, 'w-abcdefghij', 4242, 51820), [], 'the watcher owns it meanwhile');
  assert.equal(runner.calls.length, 0);
  setTimeout(() => (socks = [sock(17, 100), sock(18, 101)]), 20);
  await tuner.idle();
  assert.equal(locks(), 1);
  assert.deepEqual(runner.calls, [{ argv: ['4242', '1048576', '17', '18'], mutating: true }], 'fresh sockets: set without a check');
  assert.equal(tuner.status('w-abcdefghij', 4242)?.rcvbuf, 2097152);
  assert.deepEqual(await tuner.ensure(runner, 'w-abcdefghij', 4242, 51820), [], 'then the next apply is a no-op');
});

test('SocketTuner: forget() stops a watcher; a watcher gives up after its bound; off when bytes = 0', async () => {
  const { tuner, runner } = tunerWith(() => []);
  await tuner.ensure(runner, 'w-abcdefghij', 4242, 51820);
  tuner.forget('w-abcdefghij');
  await tuner.idle();
  const t0 = Date.now();
  const w = tunerWith(() => []);
  await w.tuner.ensure(w.runner, 'w-abcdefghij', 4242, 51820);
  await w.tuner.idle();
  assert.ok(Date.now() - t0 < 2000, 'bounded');
  assert.equal(w.runner.calls.length, 0);
  const off = tunerWith(() => [sock(17, 1)], new FakeRunner(), 0);
  assert.equal(off.tuner.enabled, false);
  assert.deepEqual(await off.tuner.ensure(off.runner, 'w-abcdefghij', 4242, 51820), []);
  assert.equal(off.runner.calls.length, 0);
});

test('SocketTuner: a failure is reported once and not retried for the same sockets', async () => {
  const runner = new FakeRunner();
  runner.fail = 'perl: not found';
  const { tuner } = tunerWith(() => [sock(17, 100)], runner);
  assert.deepEqual(await tuner.ensure(runner, 'w-abcdefghij', 4242, 51820), ['tuning: UDP socket buffers of wireguard-go w-abcdefghij not set: perl: not found']);
  assert.deepEqual(await tuner.ensure(runner, 'w-abcdefghij', 4242, 51820), []);
  assert.equal(runner.calls.length, 1);
  assert.equal(tuner.status('w-abcdefghij', 4242)?.error, 'perl: not found');
});

test('Daemons: the tuning reaches wireguard-go (environment, session)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-tuning-'));
  try {
    const spawned: { argv: string[]; opts?: SpawnOptions }[] = [];
    const runner: Runner = {
      run: async () => ({ argv: [], exitCode: 0, stdout: '', stderr: '' }),
      spawnDaemon(argv, opts) {
        spawned.push({ argv, opts });
        writeFileSync(join(dir, 'sock', `${argv[2]}.sock`), '');
        return { pid: 2 ** 22 + 17, exited: new Promise(() => undefined) };
      },
    };
    mkdirSync(join(dir, 'sock'));
    const tuned = new Daemons({ stateDir: dir, socketDir: join(dir, 'sock'), daemonEnv: { GOGC: '400' }, daemonOwnSession: false });
    await tuned.start(runner, 'w-abcdefghij');
    const plain = new Daemons({ stateDir: dir, socketDir: join(dir, 'sock') });
    await plain.start(runner, 'w-bcdefghijk');
    assert.deepEqual(spawned[0].argv, ['wireguard-go', '-f', 'w-abcdefghij']);
    assert.deepEqual(spawned[0].opts?.env, { GOGC: '400', WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1', LOG_LEVEL: 'error' });
    assert.equal(spawned[0].opts?.newSession, false);
    assert.deepEqual(spawned[1].opts?.env, { WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1', LOG_LEVEL: 'error' });
    assert.equal(spawned[1].opts?.newSession, undefined, 'untuned: a session of its own, as before');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('parseWireguardGoVersion: batched from 0.0.20230223 on; anything unreadable is an unknown, unbatched build', () => {
  const out = (v: string) => `wireguard-go ${v}\n\nUserspace WireGuard daemon for linux-amd64.\nInformation available at https://www.wireguard.com.\n`;
  assert.deepEqual(parseWireguardGoVersion(out('v0.0.20220316')), { version: '0.0.20220316', batched: false });
  assert.deepEqual(parseWireguardGoVersion(out('v0.0.20230223')), { version: '0.0.20230223', batched: true });
  assert.deepEqual(parseWireguardGoVersion(out('v0.0.20250522')), { version: '0.0.20250522', batched: true });
  assert.deepEqual(parseWireguardGoVersion(out('v0.1.0')), { version: '0.1.0', batched: true });
  assert.deepEqual(parseWireguardGoVersion(out('0.0.20230222')), { version: '0.0.20230222', batched: false });
  assert.deepEqual(parseWireguardGoVersion(''), { version: null, batched: false });
  assert.deepEqual(parseWireguardGoVersion('sh: wireguard-go: not found'), { version: null, batched: false });
});

test('resolveTuning for a build: batched builds get GOMAXPROCS=1 and no buffers; overrides and false as before', () => {
  const batched = { version: '0.0.20230223', batched: true };
  const old = { version: '0.0.20220316', batched: false };
  assert.deepEqual(DEFAULT_TUNING_BATCHED, { socketBufferBytes: 0, daemonOwnSession: false, daemonEnv: { GOMAXPROCS: '1' } });
  assert.deepEqual(resolveTuning(undefined, batched), DEFAULT_TUNING_BATCHED);
  assert.deepEqual(resolveTuning(true, old), DEFAULT_TUNING);
  assert.deepEqual(resolveTuning(undefined, null), DEFAULT_TUNING);
  assert.deepEqual(resolveTuning(false, batched), NO_TUNING);
  assert.deepEqual(resolveTuning({ socketBufferBytes: 1 << 20, daemonEnv: { GOGC: '400' } }, batched), {
    socketBufferBytes: 1048576,
    daemonOwnSession: false,
    daemonEnv: { GOMAXPROCS: '1', GOGC: '400' },
  });
  assert.deepEqual(resolveTuning({ daemonEnv: { GOMAXPROCS: '2' } }, batched).daemonEnv, { GOMAXPROCS: '2' });
  // The defaults are copies: changing one resolved tuning changes no other.
  resolveTuning(undefined, batched).daemonEnv.GOGC = 'off';
  assert.deepEqual(DEFAULT_TUNING_BATCHED.daemonEnv, { GOMAXPROCS: '1' });
});

test('Driver: asks wireguard-go for its version before the first daemon and takes that build\'s tuning', async () => {
  for (const [version, want, opts] of [
    ['v0.0.20230223', DEFAULT_TUNING_BATCHED, {}],
    ['v0.0.20220316', DEFAULT_TUNING, {}],
    ['', DEFAULT_TUNING, {}],
    ['v0.0.20230223', NO_TUNING, { tuning: false }],
  ] as const) {
    const calls: { argv: string[]; mutating: boolean }[] = [];
    const runner: Runner = {
      run: async (argv, o) => {
        calls.push({ argv, mutating: o.mutating });
        if (version === '') throw new Error('spawn wireguard-go ENOENT');
        return { argv, exitCode: 0, stdout: `wireguard-go ${version}\n\nUserspace WireGuard daemon for linux-amd64.\n`, stderr: '' };
      },
      spawnDaemon() {
        throw new Error('not here');
      },
    };
    const d = new Driver({ runner, backend: 'userspace', wireguardGo: '/opt/wg/wireguard-go', ...opts });
    assert.deepEqual(d.tuning, opts.tuning === false ? NO_TUNING : DEFAULT_TUNING, 'before detection: the defaults of builds before batching');
    assert.equal(await d.backendKind(), 'userspace');
    assert.deepEqual(calls, [{ argv: ['/opt/wg/wireguard-go', '--version'], mutating: false }]);
    assert.deepEqual(d.wireguardGo, parseWireguardGoVersion(version ? `wireguard-go ${version}` : ''));
    assert.deepEqual(d.tuning, want);
  }
  // The kernel backend runs no wireguard-go.
  const calls: string[][] = [];
  const kernel = new Driver({ backend: 'kernel', runner: { run: async (argv) => (calls.push(argv), { argv, exitCode: 0, stdout: '', stderr: '' }), spawnDaemon: () => { throw new Error('no'); } } });
  assert.equal(await kernel.backendKind(), 'kernel');
  assert.deepEqual(calls, []);
  assert.equal(kernel.wireguardGo, null);
});
