// The agent config's data-plane settings (dataplaneTuning, wireguardGo, wireguardGoMaxProcs) and how they
// become the driver's tuning (exact values).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { parseAgentConfig } from '../../src/agent/config.ts';
import { driverTuning } from '../../src/agent/netns-adapter.ts';
import { ValidationError } from '../../src/errors.ts';
import { DEFAULT_TUNING_BATCHED, resolveTuning } from '../../netns/tuning.ts';

const base = 'nodeId: node-a\nidentityKeyFile: id.key\nstateDir: state\n';

test('config: data-plane fields, defaults and paths', () => {
  const c = parseAgentConfig(base, '/etc/zmesh');
  assert.deepEqual([c.dataplaneTuning, c.wireguardGo, c.wireguardGoMaxProcs], [true, undefined, undefined]);
  const d = parseAgentConfig(base + 'dataplaneTuning: false\nwireguardGo: bin/wireguard-go\nwireguardGoMaxProcs: 4\n', '/etc/zmesh');
  assert.deepEqual([d.dataplaneTuning, d.wireguardGo, d.wireguardGoMaxProcs], [false, '/etc/zmesh/bin/wireguard-go', 4]);
  assert.equal(parseAgentConfig(base + 'wireguardGoMaxProcs: all\n', '/').wireguardGoMaxProcs, 'all');
});

test('config: bad data-plane fields are refused with their path and a hint', () => {
  const problem = (extra: string) => {
    try {
      parseAgentConfig(base + extra, '/');
    } catch (e) {
      assert.ok(e instanceof ValidationError);
      return [e.problems[0].code, e.problems[0].path, e.problems[0].hint];
    }
    assert.fail(`accepted: ${extra}`);
  };
  assert.deepEqual(problem('wireguardGoMaxProcs: 0\n'), ['E_TYPE', 'wireguardGoMaxProcs', "leave it out for the tuning's choice (1 for batched builds)"]);
  assert.deepEqual(problem('wireguardGoMaxProcs: 1.5\n'), ['E_TYPE', 'wireguardGoMaxProcs', "leave it out for the tuning's choice (1 for batched builds)"]);
  assert.deepEqual(problem('wireguardGoMaxProcs: many\n'), ['E_TYPE', 'wireguardGoMaxProcs', "leave it out for the tuning's choice (1 for batched builds)"]);
  assert.deepEqual(problem('wireguardGo: 7\n'), ['E_TYPE', 'wireguardGo', 'leave it out for wireguard-go on PATH']);
  assert.deepEqual(problem('dataplaneTuning: maybe\n'), ['E_TYPE', 'dataplaneTuning', 'leave it out for the default (true)']);
});

test('driverTuning: the config → DriverOptions.tuning, and what that resolves to for a batched build', () => {
  const batched = { version: '0.0.20230223', batched: true };
  assert.equal(driverTuning({ dataplaneTuning: true }), true);
  assert.equal(driverTuning({ dataplaneTuning: false }), false);
  assert.deepEqual(resolveTuning(driverTuning({ dataplaneTuning: true }), batched), DEFAULT_TUNING_BATCHED);
  assert.deepEqual(resolveTuning(driverTuning({ dataplaneTuning: true, wireguardGoMaxProcs: 4 }), batched), {
    socketBufferBytes: 0,
    daemonOwnSession: false,
    daemonEnv: { GOMAXPROCS: '4' },
  });
  assert.deepEqual(resolveTuning(driverTuning({ dataplaneTuning: true, wireguardGoMaxProcs: 'all' }), batched).daemonEnv, {
    GOMAXPROCS: String(availableParallelism()),
  });
  // Tuning off, GOMAXPROCS still as asked: wireguard-go otherwise as it comes.
  assert.deepEqual(resolveTuning(driverTuning({ dataplaneTuning: false, wireguardGoMaxProcs: 2 }), batched), {
    socketBufferBytes: 0,
    daemonOwnSession: true,
    daemonEnv: { GOMAXPROCS: '2' },
  });
});
