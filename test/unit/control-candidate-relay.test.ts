// The etcd side of direct-path candidates: the controller's signed candidate-tables/<network> records, the bounds
// on a node's report, whose reports the relay takes (only enrolled nodes, signed with their pinned key), who is in a
// table (only the nodes the plans make hidden in the network), and what a round writes (one record per changed
// network; nothing when nothing changed; tables of gone networks and the earlier per-node records deleted).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { createLogger } from '../../src/log.ts';
import { Key, X25519Secret } from '../../src/crypto/keys.ts';
import { Keys } from '../../src/control/keys.ts';
import { signRecord } from '../../src/control/records.ts';
import { readCandidates, signCandidates, signerOf } from '../../src/control/signed.ts';
import { CandidateRelay, REPORT_HOLD_MS, reportFrom } from '../../src/control/candidate-relay.ts';
import { candidateTables, submissionFor } from '../../src/control/candidates.ts';
import { identity } from '../helpers/fixtures.ts';
import { epochsOf } from '../helpers/relay-epochs.ts';

const keys = new Keys();
const controller = Key.fromBytes(new Uint8Array(randomBytes(32)));
const other = Key.fromBytes(new Uint8Array(randomBytes(32)));
const sub = { nodes: { h3: { reflexive: '203.0.113.3:51820', local: [] } } };

test('candidate-tables/<network>/t/<epoch>: signed by the controller, bound to the network and epoch, refused when forged, moved or unsigned', () => {
  const key = keys.candidateTable('abcdefghij', '0a1b2c');
  const text = signCandidates(key, sub, controller);
  const trusted = new Set([signerOf(controller)]);
  assert.deepEqual(readCandidates(key, text, trusted), { candidates: sub });
  // Another key, or none, against a node that trusts only the controller.
  const code = (r: ReturnType<typeof readCandidates>) => ('problem' in r ? r.problem.code : 'ok');
  assert.equal(code(readCandidates(key, signCandidates(key, sub, other), trusted)), 'E_CANDIDATES_SIGNER');
  assert.equal(code(readCandidates(key, signCandidates(key, sub, null), trusted)), 'E_CANDIDATES_SIGNER');
  // Altered after signing.
  const v = JSON.parse(text);
  v.candidates.nodes.h3.reflexive = '198.51.100.9:1';
  assert.equal(code(readCandidates(key, JSON.stringify(v), trusted)), 'E_CANDIDATES_SIGNATURE');
  // Another network's signed table, or this network's of an earlier epoch, copied to this key.
  assert.equal(code(readCandidates(key, signCandidates(keys.candidateTable('klmnopqrst', '0a1b2c'), sub, controller), trusted)), 'E_CANDIDATES_SIGNATURE');
  assert.equal(code(readCandidates(key, signCandidates(keys.candidateTable('abcdefghij', '99aa00'), sub, controller), trusted)), 'E_CANDIDATES_SIGNATURE');
  assert.equal(code(readCandidates(key, 'not json', trusted)), 'E_CANDIDATES');
  assert.equal(code(readCandidates(key, JSON.stringify({ format: 'zmesh-part/v1', candidates: sub }), trusted)), 'E_CANDIDATES');
  // Without controller keys (not configured), an unsigned record is read as it is.
  assert.deepEqual(readCandidates(key, signCandidates(key, sub, null), new Set()), { candidates: sub });
});

const net = (over: Record<string, unknown> = {}) => ({ networkId: 'abcdefghij', ipRange: '10.7.0.0/16', hidden: true, directPeers: ['h3'], via: 'a', local: ['198.51.100.2:51820'], observed: {}, ...over });

test('reportFrom: a node report is shaped and bounded: extra entries dropped, a malformed network dropped alone', () => {
  assert.deepEqual(reportFrom('h1', { candidates: [net()] }), { node: 'h1', networks: [net()] });
  assert.equal(reportFrom('h1', {}), null);
  assert.equal(reportFrom('h1', { candidates: 'x' }), null);
  assert.equal(reportFrom('h1', { candidates: Array.from({ length: 257 }, () => net()) })!.networks.length, 256, 'at most 256 networks');
  assert.equal(reportFrom('h1', { candidates: [net({ local: Array.from({ length: 17 }, (_, i) => `198.51.100.${i}:1`) })] })!.networks[0].local.length, 16, 'at most 16 local endpoints');
  assert.equal(Object.keys(reportFrom('h1', { candidates: [net({ observed: Object.fromEntries(Array.from({ length: 4097 }, (_, i) => [`n${i}`, '203.0.113.1:1'])) })] })!.networks[0].observed).length, 4096);
  const good = net({ networkId: 'goodgoodgo' });
  for (const bad of [net({ hidden: 'yes' }), net({ via: 7 }), net({ observed: ['203.0.113.1:1'] }), null, 'x']) {
    assert.deepEqual(reportFrom('h1', { candidates: [bad, good] })!.networks, [good], JSON.stringify(bad));
  }
  assert.deepEqual(reportFrom('h1', { candidates: [net({ local: ['x'.repeat(65), '198.51.100.2:51820'] })] })!.networks[0].local, ['198.51.100.2:51820']);
});

test('the relay takes reports only from enrolled nodes, signed with the pinned key', () => {
  const log = createLogger({ level: 'silent' });
  const secret = (id: string) => new X25519Secret(identity(id).privateKey);
  const pins: Record<string, string> = { a: secret('a').publicKey.toString(), h1: secret('h1').publicKey.toString(), h3: secret('h3').publicKey.toString() };
  const members = new Map([['abcdefghij', new Set(['h1', 'h3'])]]);
  const relay = new CandidateRelay({ client: {} as Etcd3, keys, log, pinned: (id) => pins[id], members: () => members, epochs: epochsOf(() => members), signingKey: controller, guard: () => ({ key: keys.leader(), value: 'c1' }) });
  const texts = (relay as unknown as { texts: Map<string, string> }).texts;
  const status = (id: string, candidates: unknown[], signer = id) => signRecord(keys.status(id), { node: id, candidates }, secret(signer));
  texts.set('h1', status('h1', [net({ directPeers: ['h3'], local: ['198.51.100.2:51820'] })]));
  texts.set('h3', status('h3', [net({ directPeers: ['h1'], local: ['198.51.100.34:51820'] })]));
  texts.set('a', status('a', [{ networkId: 'abcdefghij', ipRange: '10.7.0.0/16', hidden: false, directPeers: [], via: null, local: [], observed: { h1: '203.0.113.2:51820', h3: '203.0.113.3:51820' } }]));
  // Not enrolled: its report (claiming to see h1 elsewhere) is not taken.
  texts.set('mallory', status('mallory', [{ networkId: 'abcdefghij', ipRange: '10.7.0.0/16', hidden: false, directPeers: [], via: null, local: [], observed: { h1: '192.0.2.66:1' } }]));
  // h3's status key holding a record signed by h1: not taken (h3's own report is replaced by it here).
  const forged = status('h3', [net({ directPeers: ['h1'], local: ['192.0.2.99:1'] })], 'h1');
  assert.equal(relay.reports().length, 3);
  texts.set('h3', forged);
  assert.deepEqual(
    relay.reports().map((r) => r.node),
    ['h1', 'a'],
  );
  texts.set('h3', status('h3', [net({ directPeers: ['h1'], local: ['198.51.100.34:51820'] })]));
  const tables = candidateTables(relay.reports(), members);
  assert.deepEqual(Object.fromEntries(tables), {
    abcdefghij: { nodes: { h1: { reflexive: '203.0.113.2:51820', local: ['198.51.100.2:51820'] }, h3: { reflexive: '203.0.113.3:51820', local: ['198.51.100.34:51820'] } } },
  });
  // The reports the relay keeps carry no direct peers (each node filters its tables itself).
  assert.ok(relay.reports().every((r) => r.networks.every((n) => n.directPeers.length === 0)));
  assert.deepEqual(submissionFor('h1', [{ networkId: 'abcdefghij', ipRange: '10.7.0.0/16', directPeers: ['h3'] }], tables), {
    networks: { abcdefghij: { h3: ['203.0.113.3:51820', '198.51.100.34:51820'] } },
  });
});

/** A fake etcd for the relay's round: fenced txns (put, delete) recorded in order. */
function fakeEtcd() {
  const ops: string[] = [];
  const store = new Map<string, string>();
  const client = {
    kv: {
      txn: async (req: { success: ({ request_put?: { key: Buffer; value: Buffer } } & { request_delete_range?: { key: Buffer } })[] }) => {
        for (const op of req.success) {
          if (op.request_put) {
            ops.push(`put ${op.request_put.key.toString()}`);
            store.set(op.request_put.key.toString(), op.request_put.value.toString());
          } else if (op.request_delete_range) {
            ops.push(`delete ${op.request_delete_range.key.toString()}`);
            store.delete(op.request_delete_range.key.toString());
          }
        }
        return { succeeded: true };
      },
    },
  } as unknown as Etcd3;
  return { client, ops, store };
}

test('a relay round: one signed table per network, only plan members in it; nothing written when nothing changed; gone networks and per-node records deleted', async () => {
  const log = createLogger({ level: 'silent' });
  const secret = (id: string) => new X25519Secret(identity(id).privateKey);
  const ids = ['a', 'h1', 'h2', 'h3', 'mallory'];
  const pins = Object.fromEntries(ids.map((id) => [id, secret(id).publicKey.toString()]));
  const { client, ops, store } = fakeEtcd();
  let members: Map<string, Set<string>> | null = null;
  let clock = 1_700_000_000_000;
  const relay = new CandidateRelay({ client, keys, log, pinned: (id) => pins[id], members: () => members, epochs: epochsOf(() => members), signingKey: controller, guard: () => ({ key: keys.leader(), value: 'c1' }), now: () => clock });
  const r = relay as unknown as { texts: Map<string, string>; legacy: string[]; round(): Promise<void> };
  const status = (id: string, candidates: unknown[]) => r.texts.set(id, signRecord(keys.status(id), { node: id, candidates }, secret(id)));
  const hiddenIn = (networkId: string, local: string) => net({ networkId, local: [local], directPeers: [] });
  r.legacy = [keys.candidates('h1'), keys.candidates('h2')];
  status('a', [{ networkId: 'abcdefghij', ipRange: '10.7.0.0/16', hidden: false, directPeers: [], via: null, local: [], observed: { h1: '203.0.113.2:51820', mallory: '203.0.113.66:1' } }]);
  status('h1', [hiddenIn('abcdefghij', '198.51.100.1:51820'), hiddenIn('klmnopqrst', '198.51.100.1:51821')]);
  status('h2', [hiddenIn('abcdefghij', '198.51.100.2:51820')]);
  status('h3', [hiddenIn('klmnopqrst', '198.51.100.3:51820')]);
  // An enrolled node, hidden in neither network's plan, claims both (and its access node is 'a' too).
  status('mallory', [hiddenIn('abcdefghij', '192.0.2.66:1'), hiddenIn('klmnopqrst', '192.0.2.66:2')]);

  await r.round();
  assert.deepEqual(ops, [], 'nothing before the first planning round says who is a member');
  members = new Map([
    ['abcdefghij', new Set(['h1', 'h2'])],
    ['klmnopqrst', new Set(['h1', 'h3'])],
  ]);
  await r.round();
  const pointer = (netId: string) => JSON.parse(store.get(keys.candidatePointer(netId))!) as { epoch: string };
  const A = () => keys.candidateTable('abcdefghij', pointer('abcdefghij').epoch);
  const K = () => keys.candidateTable('klmnopqrst', pointer('klmnopqrst').epoch);
  assert.deepEqual(ops, [`put ${A()}`, `put ${keys.candidatePointer('abcdefghij')}`, `put ${K()}`, `put ${keys.candidatePointer('klmnopqrst')}`, `delete ${keys.candidates('h1')}`, `delete ${keys.candidates('h2')}`]);
  assert.deepEqual(JSON.parse(store.get(keys.candidatePointer('abcdefghij'))!), { epoch: pointer('abcdefghij').epoch }, 'the pointer names nobody');
  const read = (key: string) => readCandidates(key, store.get(key)!, new Set([signerOf(controller)]));
  assert.deepEqual(read(A()), { candidates: { nodes: { h1: { reflexive: '203.0.113.2:51820', local: ['198.51.100.1:51820'] }, h2: { reflexive: null, local: ['198.51.100.2:51820'] } }, members: ['h1', 'h2'] } });
  assert.deepEqual(read(K()), { candidates: { nodes: { h1: { reflexive: null, local: ['198.51.100.1:51821'] }, h3: { reflexive: null, local: ['198.51.100.3:51820'] } }, members: ['h1', 'h3'] } });

  // A status rewrite that changes no candidate: no write.
  ops.length = 0;
  r.texts.set('h2', signRecord(keys.status('h2'), { node: 'h2', candidates: [hiddenIn('abcdefghij', '198.51.100.2:51820')], peers: { x: 1 } }, secret('h2')));
  await r.round();
  assert.deepEqual(ops, []);
  // h3's endpoint changes (after its report's hold): only its network's table is written again, same epoch.
  clock += REPORT_HOLD_MS;
  const kBefore = K();
  status('h3', [hiddenIn('klmnopqrst', '198.51.100.33:51820')]);
  await r.round();
  assert.equal(K(), kBefore);
  assert.deepEqual(ops, [`put ${K()}`], 'the table alone (same epoch: the pointer stays)');
  // A member joins: same epoch (nobody lost a right to read), the pointer names it.
  ops.length = 0;
  const aBefore = A();
  members = new Map([
    ['abcdefghij', new Set(['h1', 'h2', 'h3'])],
    ['klmnopqrst', new Set(['h1', 'h3'])],
  ]);
  status('h3', [hiddenIn('klmnopqrst', '198.51.100.33:51820'), hiddenIn('abcdefghij', '198.51.100.3:51822')]);
  clock += REPORT_HOLD_MS;
  await r.round();
  assert.equal(A(), aBefore);
  assert.deepEqual((read(A()) as { candidates: { members: string[] } }).candidates.members, ['h1', 'h2', 'h3']);
  // A member leaves: a new epoch — a new key, the old one deleted in the same transaction.
  ops.length = 0;
  members = new Map([
    ['abcdefghij', new Set(['h1', 'h3'])],
    ['klmnopqrst', new Set(['h1', 'h3'])],
  ]);
  await r.round();
  assert.notEqual(A(), aBefore);
  assert.deepEqual(ops, [`put ${A()}`, `put ${keys.candidatePointer('abcdefghij')}`, `delete ${aBefore}`]);
  assert.equal(store.has(aBefore), false);
  assert.deepEqual(Object.keys((read(A()) as { candidates: { nodes: object } }).candidates.nodes), ['h1', 'h3']);
  // The network klmnopqrst goes away (re-planned without hidden nodes): its keys are deleted.
  ops.length = 0;
  members = new Map([['abcdefghij', new Set(['h1', 'h3'])]]);
  await r.round();
  assert.deepEqual(ops, [`delete ${keys.candidateTablePrefix('klmnopqrst')}`]);
});

test('a relay round: one network whose write fails does not keep the others from being written, and is tried again', async () => {
  const log = createLogger({ level: 'silent' });
  const secret = (id: string) => new X25519Secret(identity(id).privateKey);
  const pins = Object.fromEntries(['h1', 'h2'].map((id) => [id, secret(id).publicKey.toString()]));
  const { client, ops } = fakeEtcd();
  const txn = client.kv.txn.bind(client.kv);
  let failFirst = true;
  (client.kv as unknown as { txn: typeof txn }).txn = (async (req: Parameters<typeof txn>[0]) => {
    const first = (req.success![0] as { request_put?: { key: Buffer } }).request_put?.key.toString() ?? '';
    if (failFirst && first.includes('/aaaaaaaaaa/')) throw new Error('etcdserver: request is too large');
    return txn(req);
  }) as typeof txn;
  const members = new Map([
    ['aaaaaaaaaa', new Set(['h1'])],
    ['bbbbbbbbbb', new Set(['h2'])],
  ]);
  const relay = new CandidateRelay({ client, keys, log, pinned: (id) => pins[id], members: () => members, epochs: epochsOf(() => members), signingKey: controller, guard: () => ({ key: keys.leader(), value: 'c1' }) });
  const r = relay as unknown as { texts: Map<string, string>; round(): Promise<void>; retryTimer: NodeJS.Timeout | null };
  r.texts.set('h1', signRecord(keys.status('h1'), { node: 'h1', candidates: [net({ networkId: 'aaaaaaaaaa', directPeers: [] })] }, secret('h1')));
  r.texts.set('h2', signRecord(keys.status('h2'), { node: 'h2', candidates: [net({ networkId: 'bbbbbbbbbb', directPeers: [] })] }, secret('h2')));
  await r.round();
  assert.ok(ops.some((o) => o === `put ${keys.candidatePointer('bbbbbbbbbb')}`), ops.join('\n'));
  assert.ok(!ops.some((o) => o.includes('/aaaaaaaaaa/')));
  assert.ok(r.retryTimer !== null, 'a retry is scheduled');
  failFirst = false;
  await r.round();
  assert.ok(ops.some((o) => o === `put ${keys.candidatePointer('aaaaaaaaaa')}`), ops.join('\n'));
  await relay.stop();
});
