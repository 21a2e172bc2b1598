// `zmesh status`'s data-plane line (exact text) for each kind of data plane the agent reports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dataplaneLine } from '../../src/cli/ops-commands.ts';
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
