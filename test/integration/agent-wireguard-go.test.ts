// The agent's wireguard-go settings end to end (root): an agent configured with bookworm's wireguard-go (the
// build before batching, unpacked aside by scripts/deps.sh) and wireguardGoMaxProcs: 2 reports that build and
// its tuning in GET /v1/status, warns about it in its log, and starts exactly that binary with GOMAXPROCS=2 and
// raised socket buffers for a submitted network, whose detail shows that daemon and its sockets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readlinkSync } from 'node:fs';
import { call } from '../../src/cli/client.ts';
import { blueprint, net } from '../helpers/fixtures.ts';
import { part, planFor, signed } from '../helpers/agent-fixtures.ts';
import { destroyAgentHost, makeAgentHost, startAgent, waitFor, wgDaemonPids } from '../helpers/agent-host.ts';
import { bookwormWireguardGo, environOf, ssRcvbufs } from '../helpers/wireguard-go.ts';

const nodes = ['node-a', 'node-b'];
const acme = blueprint([net({ nodes, ipRange: '10.1.0.0/16' })]);
const plan = planFor(acme, nodes);

test('agent with bookworm\'s wireguard-go and wireguardGoMaxProcs: status, warning, the daemon it starts', { timeout: 120_000 }, async () => {
  const binary = bookwormWireguardGo();
  const bed = await makeAgentHost({ extra: { wireguardGo: binary, wireguardGoMaxProcs: 2 } });
  try {
    await startAgent(bed);
    const s = await call<{ dataplane: unknown }>(bed.socket, 'GET', '/v1/status');
    assert.deepEqual(s.dataplane, {
      backend: 'userspace',
      wireguardGo: { version: '0.0.20220316', batched: false },
      tuning: { socketBufferBytes: 4194304, daemonOwnSession: false, daemonEnv: { GOMAXPROCS: '2' } },
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
  } finally {
    await destroyAgentHost(bed);
  }
});
