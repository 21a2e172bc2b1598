// The agent keeps each network's name records and hosts text per stored (frozen) names object, so a no-op
// reconcile of a 5,000-node network does not build them again (issue #18). What must hold: the same frozen
// object gives the same answer without rebuilding; any other object (changed names after a submission) gives
// its own answer; an object that is not frozen is never kept (it could change under the cache).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NetnsDriverPort } from '../../src/agent/netns-adapter.ts';
import { X25519Secret } from '../../src/crypto/keys.ts';
import { nameRecords, type NameRecord, type NetworkNames } from '../../src/plan/names.ts';
import { Resolvers } from '../../netns/dns.ts';
import { resolverHosts } from '../../netns/dns-build.ts';
import { identity } from '../helpers/fixtures.ts';

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

const names = (n: number, ip = (i: number) => `10.1.${i >> 8}.${i & 255}`): NetworkNames => ({
  workloads: { db: { ip: '10.1.0.10' } },
  devices: {},
  nodes: Object.fromEntries(Array.from({ length: n }, (_, i) => [`node-${i}`, { ip: ip(i + 1) }])),
});

test('name records: kept per frozen names object, never for one that can change', () => {
  const port = new NetnsDriverPort(new X25519Secret(identity('node-a').privateKey), { backend: 'kernel' });
  const recordsOf = (network: string, x: NetworkNames) => (port as unknown as { recordsOf: (a: string, b: NetworkNames) => readonly NameRecord[] }).recordsOf(network, x);

  const frozen = deepFreeze(names(3));
  const first = recordsOf('web', frozen);
  assert.deepEqual(first, nameRecords('web', frozen));
  assert.equal(recordsOf('web', frozen), first, 'the same frozen object: the kept list');
  assert.ok(Object.isFrozen(first) && first.every((r) => Object.isFrozen(r)), 'what is handed out cannot be changed by a caller');
  assert.notEqual(recordsOf('other', frozen), first, 'another network name: built again');
  assert.deepEqual(recordsOf('other', frozen), nameRecords('other', frozen));

  // A submission stores new names: a new object, its own records (every node moved, node-2 gone).
  const changed = deepFreeze(names(2, (i) => `10.1.9.${i}`));
  assert.deepEqual(recordsOf('web', changed), nameRecords('web', changed));
  assert.ok(recordsOf('web', changed).some((r) => r.name === 'node-1.web' && r.address === '10.1.9.2'));

  // Frozen on the outside only: an entry can still change, so it is not kept either.
  const shallow = names(2);
  Object.freeze(shallow.workloads);
  Object.freeze(shallow.devices);
  Object.freeze(shallow.nodes);
  Object.freeze(shallow);
  recordsOf('web', shallow);
  (shallow.nodes['node-0'] as { ip: string }).ip = '10.1.8.8';
  assert.ok(recordsOf('web', shallow).some((r) => r.name === 'node-0.web' && r.address === '10.1.8.8'), 'an entry changed in place is seen');

  // Not frozen: changed in place between two calls, the second call sees the change.
  const open = names(2);
  recordsOf('web', open);
  open.nodes['node-0'] = { ip: '10.1.7.7' };
  assert.ok(recordsOf('web', open).some((r) => r.name === 'node-0.web' && r.address === '10.1.7.7'));
});

test('resolver hosts text: kept per frozen records list, built again for another list or a list that is not frozen', () => {
  const resolvers = new Resolvers({ run: async (argv) => ({ argv, stdout: '', stderr: '', exitCode: 0 }), spawnDaemon: () => { throw new Error('not here'); } });
  const hostsOf = (network: string, r: readonly NameRecord[]) => (resolvers as unknown as { hostsOf: (a: string, b: readonly NameRecord[]) => string }).hostsOf(network, r);
  const a = deepFreeze(nameRecords('web', names(3)));
  assert.equal(hostsOf('web', a), resolverHosts('web', a));
  assert.equal(hostsOf('web', a), resolverHosts('web', a));
  const b = deepFreeze(nameRecords('web', names(2)));
  assert.equal(hostsOf('web', b), resolverHosts('web', b));
  assert.notEqual(hostsOf('web', b), hostsOf('web', a));
  const open = nameRecords('web', names(2));
  const before = hostsOf('web', open);
  open.pop();
  assert.notEqual(hostsOf('web', open), before, 'a list that is not frozen is rendered each time');
  assert.equal(hostsOf('web', open), resolverHosts('web', open));
});
