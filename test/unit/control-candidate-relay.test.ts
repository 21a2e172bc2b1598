// The etcd side of direct-path candidates: the controller's signed candidates/<node> records, the bounds on a
// node's report, and whose reports the relay takes (only enrolled nodes, signed with their pinned key).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import pino from 'pino';
import { Key, X25519Secret } from '../../src/crypto/keys.ts';
import { Keys } from '../../src/control/keys.ts';
import { signRecord } from '../../src/control/records.ts';
import { readCandidates, signCandidates, signerOf } from '../../src/control/signed.ts';
import { CandidateRelay, reportFrom } from '../../src/control/candidate-relay.ts';
import { distributeCandidates } from '../../src/control/candidates.ts';
import { identity } from '../helpers/fixtures.ts';

const keys = new Keys();
const controller = Key.fromBytes(new Uint8Array(randomBytes(32)));
const other = Key.fromBytes(new Uint8Array(randomBytes(32)));
const sub = { networks: { abcdefghij: { h3: ['203.0.113.3:51820'] } } };

test('candidates/<node>: signed by the controller, bound to the node, refused when forged, moved or unsigned', () => {
  const key = keys.candidates('h1');
  const text = signCandidates(key, sub, controller);
  const trusted = new Set([signerOf(controller)]);
  assert.deepEqual(readCandidates(key, text, trusted), { candidates: sub });
  // Another key, or none, against a node that trusts only the controller.
  const code = (r: ReturnType<typeof readCandidates>) => ('problem' in r ? r.problem.code : 'ok');
  assert.equal(code(readCandidates(key, signCandidates(key, sub, other), trusted)), 'E_CANDIDATES_SIGNER');
  assert.equal(code(readCandidates(key, signCandidates(key, sub, null), trusted)), 'E_CANDIDATES_SIGNER');
  // Altered after signing.
  const v = JSON.parse(text);
  v.candidates.networks.abcdefghij.h3 = ['198.51.100.9:1'];
  assert.equal(code(readCandidates(key, JSON.stringify(v), trusted)), 'E_CANDIDATES_SIGNATURE');
  // h2's signed record copied to h1's key.
  assert.equal(code(readCandidates(key, signCandidates(keys.candidates('h2'), sub, controller), trusted)), 'E_CANDIDATES_SIGNATURE');
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
  const log = pino({ level: 'silent' });
  const secret = (id: string) => new X25519Secret(identity(id).privateKey);
  const pins: Record<string, string> = { a: secret('a').publicKey.toString(), h1: secret('h1').publicKey.toString(), h3: secret('h3').publicKey.toString() };
  const relay = new CandidateRelay({ client: {} as Etcd3, keys, log, pinned: (id) => pins[id], signingKey: controller, guard: () => ({ key: keys.leader(), value: 'c1' }) });
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
  assert.deepEqual(Object.fromEntries(distributeCandidates(relay.reports())), {
    h1: { networks: { abcdefghij: { h3: ['203.0.113.3:51820', '198.51.100.34:51820'] } } },
    h3: { networks: { abcdefghij: { h1: ['203.0.113.2:51820', '198.51.100.2:51820'] } } },
  });
});
