// `zmesh status`'s data-plane line and `zmesh net show`'s daemon line (exact text), and how the agent turns the
// driver's daemon and its UDP sockets into the network's `daemon` field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { daemonLine, dataplaneLine } from '../../src/cli/ops-commands.ts';
import { toActualNetwork } from '../../src/agent/netns-adapter.ts';
import type { ActualResource } from '../../netns/types.ts';
import { colour } from '../../src/cli/format.ts';

const k = colour(false);

test('dataplaneLine: not yet, kernel, batched wireguard-go with GOMAXPROCS, an old build with buffers, tuning off', () => {
  assert.equal(dataplaneLine(null, k), 'not detected yet');
  assert.equal(dataplaneLine({ backend: 'kernel', wireguardGo: null, tuning: null }, k), 'kernel WireGuard');
  assert.equal(
    dataplaneLine({ backend: 'userspace', wireguardGo: { version: '0.0.20230223', batched: true }, tuning: { socketBufferBytes: 0, daemonOwnSession: false, daemonEnv: { GOMAXPROCS: '1' } } }, k),
    'wireguard-go 0.0.20230223, batched I/O; tuning: GOMAXPROCS=1',
  );
  assert.equal(
    dataplaneLine({ backend: 'userspace', wireguardGo: { version: '0.0.20220316', batched: false }, tuning: { socketBufferBytes: 4194304, daemonOwnSession: false, daemonEnv: {} } }, k),
    'wireguard-go 0.0.20220316, one packet per system call: install a batched build (>= 0.0.20230223); tuning: socket buffers 4.0 MiB',
  );
  assert.equal(
    dataplaneLine({ backend: 'userspace', wireguardGo: { version: null, batched: false }, tuning: { socketBufferBytes: 0, daemonOwnSession: true, daemonEnv: {} } }, k),
    'wireguard-go (version unknown), one packet per system call: install a batched build (>= 0.0.20230223); tuning: none',
  );
});

test('daemonLine and toActualNetwork: the daemon with its sockets and their drops; none with kernel WireGuard', () => {
  assert.equal(daemonLine({ pid: 4242, alive: true, udpSockets: 2, udpDrops: 17 }), 'wireguard-go: pid 4242, 2 UDP socket(s), 17 datagram(s) dropped (receive buffer full)');
  assert.equal(daemonLine({ pid: 4242, alive: false, udpSockets: 0, udpDrops: 0 }), 'wireguard-go: pid 4242 NOT RUNNING');
  const base = { networkId: 'abcdefghij', namespace: 'n-abcdefghij', exists: true, links: [], routes: [], wireguard: null, nft: [] };
  const withDaemon = { ...base, daemon: { pid: 4242, alive: true } } as unknown as ActualResource;
  assert.deepEqual(toActualNetwork(withDaemon, [{ drops: 17 }, { drops: 3 }]).daemon, { pid: 4242, alive: true, udpSockets: 2, udpDrops: 20 });
  assert.deepEqual(toActualNetwork(withDaemon).daemon, { pid: 4242, alive: true, udpSockets: 0, udpDrops: 0 });
  assert.equal('daemon' in toActualNetwork(base as unknown as ActualResource), false);
});
