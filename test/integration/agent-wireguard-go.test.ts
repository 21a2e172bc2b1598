// The agent's wireguard-go settings end to end (root): an agent configured with bookworm's wireguard-go (the
// build before batching, unpacked aside by scripts/deps.sh) and wireguardGoMaxProcs: 2 reports that build and
// its tuning in GET /v1/status, warns about it in its log, and starts exactly that binary with GOMAXPROCS=2 and
// raised socket buffers for a submitted network, whose detail shows that daemon and its sockets. When the binary
// is then replaced on disk (as a package upgrade does), the status names the daemon still running the old file,
// `zmesh status` warns, and killing that daemon gets it restarted on the installed file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readlinkSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { call } from '../../src/admin/client.ts';
import { blueprint, net } from '../helpers/fixtures.ts';
import { part, planFor, signed } from '../helpers/agent-fixtures.ts';
import { destroyAgentHost, makeAgentHost, startAgent, waitFor, wgDaemonPids } from '../helpers/agent-host.ts';
import { bookwormWireguardGo, environOf, ssRcvbufs } from '../helpers/wireguard-go.ts';

const nodes = ['node-a', 'node-b'];
const acme = blueprint([net({ nodes, ipRange: '10.1.0.0/16' })]);
const plan = planFor(acme, nodes);

test('agent with bookworm\'s wireguard-go and wireguardGoMaxProcs: status, warning, the daemon it starts', { timeout: 120_000 }, async () => {
  // A copy of its own (the test replaces it): named wireguard-go like the real one.
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-wggo-'));
  const binary = join(dir, 'wireguard-go');
  copyFileSync(bookwormWireguardGo(), binary);
  const bed = await makeAgentHost({ extra: { wireguardGo: binary, wireguardGoMaxProcs: 2 } });
  try {
    await startAgent(bed);
    const s = await call<{ dataplane: unknown }>(bed.socket, 'GET', '/v1/status');
    assert.deepEqual(s.dataplane, {
      backend: 'userspace',
      wireguardGo: { version: '0.0.20220316', batched: false },
      tuning: { socketBufferBytes: 4194304, daemonOwnSession: false, daemonEnv: { GOMAXPROCS: '2' } },
      staleDaemons: [],
    });
    assert.match(bed.log.join(''), /wireguard-go 0\.0\.20220316 reads and writes one packet per system call/);

    const r = await call<{ networks: { ok: boolean }[] }>(bed.socket, 'POST', '/v1/blueprints', { signed: signed(acme), part: part(plan, 'node-a') });
    assert.ok(r.networks[0].ok, JSON.stringify(r));
    const daemons = wgDaemonPids(bed);
    assert.equal(daemons.length, 1);
    const pid = daemons[0];
    assert.equal(readlinkSync(`/proc/${pid}/exe`), binary, 'the configured binary runs');
    assert.equal(environOf(pid).GOMAXPROCS, '2');
    const rcvbufs = async () => ssRcvbufs((await bed.host.exec(['ss', '-uampnH', 'sport = :51820'])).stdout);
    type Detail = { actual: { daemon?: { pid: number; alive: boolean; udpSockets: number; udpDrops: number } } };
    const detail = () => call<Detail>(bed.socket, 'GET', `/v1/networks/${plan.networks[0].id}`);
    // wireguard-go opens its sockets once it sees its moved tun up (within about a second).
    await waitFor(async () => ((await detail()).actual.daemon?.udpSockets ?? 0) >= 1, 10_000, 'the daemon\'s sockets in the network detail');
    const d = await detail();
    assert.equal(d.actual.daemon?.pid, pid);
    assert.equal(d.actual.daemon?.alive, true);
    assert.ok(d.actual.daemon!.udpSockets >= 1, JSON.stringify(d.actual.daemon));
    assert.equal(d.actual.daemon?.udpDrops, 0, 'an idle tunnel drops nothing');
    await waitFor(async () => {
      const b = await rcvbufs();
      return b.length > 0 && b.every((x) => x === 8 * 1024 * 1024);
    }, 10_000, 'the old build\'s sockets to get 4 MiB buffers (8 MiB as the kernel shows them)');

    // An upgrade replaces the file the way dpkg does (a new file renamed over the old one).
    type Status = { dataplane: { staleDaemons: { ifname: string; pid: number }[] } };
    assert.deepEqual((await call<Status>(bed.socket, 'GET', '/v1/status')).dataplane.staleDaemons, []);
    copyFileSync(bookwormWireguardGo(), `${binary}.new`);
    renameSync(`${binary}.new`, binary);
    const stale = (await call<Status>(bed.socket, 'GET', '/v1/status')).dataplane.staleDaemons;
    assert.deepEqual(stale.map((x) => x.pid), [pid]);
    const cli = await execa(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'status', '--socket', bed.socket], { reject: false, env: { NO_COLOR: '1' } });
    assert.equal(cli.exitCode, 0, cli.stderr);
    assert.match(cli.stdout, new RegExp(`1 daemon\\(s\\) run a wireguard-go binary replaced on disk since they started \\(pid ${pid}\\)`));
    // Killed (by its PID), the daemon is restarted by the agent on the installed file; nothing is stale after.
    process.kill(pid, 'SIGTERM');
    await waitFor(async () => {
      const now = wgDaemonPids(bed);
      return now.length === 1 && now[0] !== pid && (await call<Status>(bed.socket, 'GET', '/v1/status')).dataplane.staleDaemons.length === 0;
    }, 20_000, 'the daemon restarted on the installed binary');
  } finally {
    await destroyAgentHost(bed);
    rmSync(dir, { recursive: true, force: true });
  }
});
