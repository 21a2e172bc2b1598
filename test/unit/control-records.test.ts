// Node records: XEdDSA signatures with the X25519 identity key (checked by an independent ed25519 verifier,
// node:crypto), records bound to their etcd key, and the vetting table the controller plans by. Exact values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, verify } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { Key, X25519Secret, clampX25519, x25519PublicKey } from '../../src/crypto/keys.ts';
import { seededRandom } from '../../src/crypto/rng.ts';
import { xeddsaPublicKey, xeddsaSign, xeddsaVerify } from '../../src/crypto/xeddsa.ts';
import { Keys } from '../../src/control/keys.ts';
import { openRecord, recordMessage, RECORD_FORMAT, signRecord, vetRegistration } from '../../src/control/records.ts';
import { checkPartSignature, parseEnrollment, partDigest, partMessage, readEnrollment, signEnrollment, signerOf, signPartEntries, type Enrollment } from '../../src/control/signed.ts';
import { nodePermissions, nodeOfRole, nodeRole, permId } from '../../src/control/rbac.ts';

const rnd = seededRandom('control-records');
const secretOf = (seed: string) => clampX25519(seededRandom(seed)(32));

test('XEdDSA: signatures verify with node:crypto ed25519 against the Edwards form of the X25519 key', () => {
  for (let i = 0; i < 64; i++) {
    const sk = clampX25519(rnd(32));
    const pk = x25519PublicKey(sk);
    const msg = rnd(i * 3);
    const sig = xeddsaSign(sk, msg, rnd(64));
    assert.equal(sig.length, 64);
    assert.ok(xeddsaVerify(pk, msg, sig));
    const ed = xeddsaPublicKey(pk);
    // The Edwards key maps back to the very X25519 key (noble's birational map), sign bit 0.
    assert.deepEqual(Buffer.from(ed25519.utils.toMontgomery(ed)), Buffer.from(pk.bytes));
    assert.equal(ed[31] & 0x80, 0);
    const pub = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(ed).toString('base64url') }, format: 'jwk' });
    assert.ok(verify(null, msg, pub, sig), `node:crypto verifies signature ${i}`);
  }
});

test('XEdDSA: deterministic with zero nonce randomness; any change to key, message or signature fails', () => {
  const sk = secretOf('a');
  const pk = x25519PublicKey(sk);
  const msg = new TextEncoder().encode('zmesh');
  const s1 = xeddsaSign(sk, msg);
  assert.deepEqual(s1, xeddsaSign(sk, msg));
  assert.notDeepEqual(s1, xeddsaSign(sk, msg, new Uint8Array(64).fill(1)));
  assert.ok(xeddsaVerify(pk, msg, xeddsaSign(sk, msg, new Uint8Array(64).fill(1))));
  assert.equal(xeddsaVerify(x25519PublicKey(secretOf('b')), msg, s1), false);
  assert.equal(xeddsaVerify(pk, new TextEncoder().encode('zmesh!'), s1), false);
  for (const at of [0, 31, 32, 63]) {
    const bad = Uint8Array.from(s1);
    bad[at] ^= 1;
    assert.equal(xeddsaVerify(pk, msg, bad), false, `flipped byte ${at}`);
  }
  assert.equal(xeddsaVerify(pk, msg, s1.subarray(0, 63)), false);
  // A non-canonical s (s + q) is refused (strict RFC 8032 verification, no malleability).
  const q = ed25519.Point.Fn.ORDER;
  let sv = 0n;
  for (let i = 63; i >= 32; i--) sv = (sv << 8n) | BigInt(s1[i]);
  const big = sv + q;
  const mall = Uint8Array.from(s1);
  for (let i = 0; i < 32; i++) mall[32 + i] = Number((big >> BigInt(8 * i)) & 0xffn);
  assert.equal(xeddsaVerify(pk, msg, mall), false);
  // X25519Secret signs the same way.
  assert.deepEqual(new X25519Secret(sk).sign(msg), s1);
});

test('XEdDSA: public keys with no Edwards form (u = p − 1, u ≥ p) are refused', () => {
  const p = ed25519.Point.Fp.ORDER;
  const enc = (n: bigint) => Key.fromBytes(Uint8Array.from({ length: 32 }, (_, i) => Number((n >> BigInt(8 * i)) & 0xffn)));
  const sig = xeddsaSign(secretOf('a'), new Uint8Array(1));
  assert.throws(() => xeddsaPublicKey(enc(p - 1n)), /no ed25519 form/);
  assert.throws(() => xeddsaPublicKey(enc(p + 1n)), /no ed25519 form/);
  assert.equal(xeddsaVerify(enc(p - 1n), new Uint8Array(1), sig), false);
});

const keys = new Keys();
const pa = new X25519Secret(secretOf('pa'));
const pb = new X25519Secret(secretOf('pb'));
const evil = new X25519Secret(secretOf('evil'));
const reg = (id: string, pub: Key, over: object = {}) => ({ id, publicKey: pub.toString(), endpoints: ['203.0.113.1'], reservedPorts: [51820], agentVersion: '0.1.0', ...over });
const enrolled = (id: string, pub: Key): { enrollment: Enrollment; signer: null } => ({ enrollment: { id, publicKey: pub.toString(), approvedAt: '2026-12-03T00:00:00.000Z' }, signer: null });

test('records: the signed form, its message, and the binding to the etcd key', () => {
  const key = keys.node('pa');
  const text = signRecord(key, reg('pa', pa.publicKey), pa);
  const v = JSON.parse(text);
  assert.deepEqual(Object.keys(v), ['format', 'signer', 'record', 'signature']);
  assert.equal(v.format, RECORD_FORMAT);
  assert.equal(v.signer, pa.publicKey.toString());
  // The message is the format, the key and the RFC 8785 form of the record (member order does not matter).
  assert.equal(
    new TextDecoder().decode(recordMessage(key, { b: 1, a: [2] })),
    'zmesh-node-record/v1\n/zmesh/v1/nodes/pa\n{"a":[2],"b":1}',
  );
  assert.deepEqual(openRecord(key, text), { signer: pa.publicKey.toString(), record: reg('pa', pa.publicKey) });
  assert.throws(() => openRecord(keys.node('pb'), text), /does not verify/);
  assert.throws(() => openRecord(keys.status('pa'), text), /does not verify/);
  const tampered = JSON.stringify({ ...v, record: { ...v.record, endpoints: ['198.51.100.9'] } });
  assert.throws(() => openRecord(key, tampered), (e: Error & { code?: string }) => e.code === 'E_RECORD_SIGNATURE');
  const resigned = JSON.stringify({ ...v, signer: evil.publicKey.toString() });
  assert.throws(() => openRecord(key, resigned), (e: Error & { code?: string }) => e.code === 'E_RECORD_SIGNATURE');
});

test('vetRegistration: which registrations the controller plans (named cases)', () => {
  const K = keys.node('pb');
  const cases: { name: string; text: string; enrollment?: ReturnType<typeof enrolled>; want: string }[] = [
    { name: 'signed by the pinned key', text: signRecord(K, reg('pb', pb.publicKey), pb), enrollment: enrolled('pb', pb.publicKey), want: 'trusted' },
    { name: 'the reproduced attack: another key for pb, signed by it', text: signRecord(K, reg('pb', evil.publicKey), evil), enrollment: enrolled('pb', pb.publicKey), want: 'refused E_NODE_KEY_MISMATCH' },
    { name: 'not enrolled yet', text: signRecord(K, reg('pb', pb.publicKey), pb), want: 'pending E_NODE_NOT_ENROLLED' },
    { name: 'unsigned (the old plain form)', text: JSON.stringify(reg('pb', pb.publicKey)), enrollment: enrolled('pb', pb.publicKey), want: 'refused E_RECORD_UNSIGNED' },
    { name: 'not JSON', text: '{', enrollment: enrolled('pb', pb.publicKey), want: 'refused E_RECORD_FORMAT' },
    { name: "pa's record copied to pb's key", text: signRecord(keys.node('pa'), reg('pa', pa.publicKey), pa), enrollment: enrolled('pb', pb.publicKey), want: 'refused E_RECORD_SIGNATURE' },
    { name: 'pa signs a record at its own key claiming to be pb', text: signRecord(K, reg('pa', pa.publicKey), pa), enrollment: enrolled('pb', pb.publicKey), want: 'refused E_NODE_RECORD' },
    { name: 'names a key other than its signer', text: signRecord(K, reg('pb', pb.publicKey), evil), enrollment: enrolled('pb', pb.publicKey), want: 'refused E_NODE_RECORD' },
    { name: '17 endpoints', text: signRecord(K, reg('pb', pb.publicKey, { endpoints: Array.from({ length: 17 }, (_, i) => `203.0.113.${i}`) }), pb), enrollment: enrolled('pb', pb.publicKey), want: 'refused E_NODE_RECORD' },
    { name: 'an endpoint that is no address', text: signRecord(K, reg('pb', pb.publicKey, { endpoints: ['example.org'] }), pb), enrollment: enrolled('pb', pb.publicKey), want: 'refused E_NODE_RECORD' },
    { name: 'a loopback endpoint', text: signRecord(K, reg('pb', pb.publicKey, { endpoints: ['127.0.0.1'] }), pb), enrollment: enrolled('pb', pb.publicKey), want: 'refused E_NODE_RECORD' },
    { name: 'a multicast endpoint', text: signRecord(K, reg('pb', pb.publicKey, { endpoints: ['224.0.0.1'] }), pb), enrollment: enrolled('pb', pb.publicKey), want: 'refused E_NODE_RECORD' },
    { name: 'the unspecified IPv6 endpoint', text: signRecord(K, reg('pb', pb.publicKey, { endpoints: ['::'] }), pb), enrollment: enrolled('pb', pb.publicKey), want: 'refused E_NODE_RECORD' },
    { name: 'an IPv6 endpoint', text: signRecord(K, reg('pb', pb.publicKey, { endpoints: ['2001:db8::7'] }), pb), enrollment: enrolled('pb', pb.publicKey), want: 'trusted' },
    { name: 'a reserved port 0', text: signRecord(K, reg('pb', pb.publicKey, { reservedPorts: [0] }), pb), enrollment: enrolled('pb', pb.publicKey), want: 'refused E_NODE_RECORD' },
  ];
  for (const c of cases) {
    const t = vetRegistration(K, 'pb', c.text, c.enrollment);
    const got = t.state === 'trusted' ? 'trusted' : `${t.state} ${t.problem.code}`;
    assert.equal(got, c.want, c.name);
    if (t.state !== 'trusted') assert.equal(t.problem.path, K, c.name);
  }
  const ok = vetRegistration(K, 'pb', signRecord(K, reg('pb', pb.publicKey), pb), enrolled('pb', pb.publicKey));
  assert.deepEqual(ok, { state: 'trusted', registration: { id: 'pb', publicKey: pb.publicKey.toString(), endpoints: ['203.0.113.1'], reservedPorts: [51820], agentVersion: '0.1.0' } });
  const pending = vetRegistration(K, 'pb', signRecord(K, reg('pb', pb.publicKey), pb), undefined);
  assert.equal(pending.state === 'pending' && pending.problem.hint, `check the key on the node, then: zmesh controller node approve pb ${pb.publicKey}`);
});

test('enrollments parse strictly; node roles hold exactly their own keys', () => {
  const E = keys.enrollment('pa');
  assert.deepEqual(parseEnrollment(E, 'pa', JSON.stringify(enrolled('pa', pa.publicKey).enrollment)), enrolled('pa', pa.publicKey).enrollment);
  assert.equal(parseEnrollment(keys.enrollment('pb'), 'pb', JSON.stringify(enrolled('pa', pa.publicKey).enrollment)), null);
  assert.equal(parseEnrollment(E, 'pa', JSON.stringify({ id: 'pa', publicKey: 'nope' })), null);
  assert.equal(parseEnrollment(E, 'pa', 'x'), null);
  assert.equal(nodeRole('pa'), 'zmesh-node-pa');
  assert.equal(nodeOfRole('zmesh-node-pa'), 'pa');
  assert.equal(nodeOfRole('root'), null);
  assert.deepEqual(nodePermissions(keys, 'pa').map(permId), [
    'Readwrite /zmesh/v1/nodes/pa',
    'Readwrite /zmesh/v1/status/pa',
    'Read /zmesh/v1/parts/pa/ .. /zmesh/v1/parts/pa0',
    'Read /zmesh/v1/control/cluster',
  ]);
});

test('enrollments signed by an operator key: which count (named cases)', () => {
  const E = keys.enrollment('pb');
  const op = Key.fromBytes(seededRandom('operator')(32));
  const other = Key.fromBytes(seededRandom('not-the-operator')(32));
  const ops = new Set([signerOf(op)]);
  const e = { id: 'pb', publicKey: pb.publicKey.toString(), approvedAt: '2026-12-03T00:00:00.000Z' };
  const signedText = signEnrollment(E, e, op);
  const code = (r: ReturnType<typeof readEnrollment>) => ('problem' in r ? r.problem.code : `ok ${r.signer === null ? 'unsigned' : 'signed'}`);
  const cases: [string, string, ReadonlySet<string> | null, string][] = [
    ['signed by the operator', signedText, ops, 'ok signed'],
    ['unsigned, the controller requires a signature', JSON.stringify(e), ops, 'E_ENROLLMENT_UNSIGNED'],
    ['unsigned, no operator key configured', JSON.stringify(e), null, 'ok unsigned'],
    ['signed by another key', signEnrollment(E, e, other), ops, 'E_ENROLLMENT_SIGNER'],
    ['signed, the key swapped afterwards', JSON.stringify({ ...JSON.parse(signedText), enrollment: { ...e, publicKey: evil.publicKey.toString() } }), ops, 'E_ENROLLMENT_SIGNATURE'],
    ["signed for pa's key, copied to pb's", signEnrollment(keys.enrollment('pa'), e, op), ops, 'E_ENROLLMENT_SIGNATURE'],
    ['signed, no operator key configured (still verified)', JSON.stringify({ ...JSON.parse(signedText), signature: JSON.parse(signEnrollment(E, { ...e, approvedAt: 'x' }, op)).signature }), null, 'E_ENROLLMENT_SIGNATURE'],
    ['for another node', signEnrollment(E, { ...e, id: 'pa' }, op), ops, 'E_ENROLLMENT_FORMAT'],
  ];
  for (const [name, text, trusted, want] of cases) assert.equal(code(readEnrollment(E, 'pb', text, trusted)), want, name);
  assert.equal(JSON.parse(signedText).format, 'zmesh-enrollment/v1');
});

test('part heads signed by the controller over every entry of the part', () => {
  const ctl = Key.fromBytes(seededRandom('controller')(32));
  const P = keys.part({ node: 'pa', tenant: 'acme', blueprint: 'shop' });
  const entries = new Map([
    ['gen', JSON.stringify({ generation: 3, version: 2, envelope: keys.envelope('acme', 'shop') })],
    ['net/lan', '{"resource":1}'],
    ['peer/lan/pb', '{"publicKey":"k"}'],
  ]);
  const signed = signPartEntries(P, entries, ctl);
  const head = JSON.parse(signed.get('gen')!);
  assert.deepEqual(Object.keys(head), ['generation', 'version', 'envelope', 'signer', 'signature']);
  assert.equal(head.signer, signerOf(ctl));
  // Deterministic: the same part signs to the same text (no rewrite in etcd when nothing changed).
  assert.equal(signPartEntries(P, entries, ctl).get('gen'), signed.get('gen'));
  assert.equal(partDigest(signed), partDigest(entries));
  const trust = new Set([signerOf(ctl)]);
  assert.equal(checkPartSignature(P, signed, trust), null);
  const altered = new Map(signed).set('peer/lan/pb', '{"publicKey":"attacker"}');
  assert.equal(checkPartSignature(P, altered, trust)?.code, 'E_PART_SIGNATURE');
  const added = new Map(signed).set('peer/lan/evil', '{}');
  assert.equal(checkPartSignature(P, added, trust)?.code, 'E_PART_SIGNATURE');
  const bumped = new Map(signed).set('gen', JSON.stringify({ ...head, generation: 4 }));
  assert.equal(checkPartSignature(P, bumped, trust)?.code, 'E_PART_SIGNATURE');
  assert.equal(checkPartSignature(keys.part({ node: 'pb', tenant: 'acme', blueprint: 'shop' }), signed, trust)?.code, 'E_PART_SIGNATURE');
  assert.equal(checkPartSignature(P, entries, trust)?.code, 'E_PART_UNSIGNED');
  assert.equal(checkPartSignature(P, signPartEntries(P, entries, Key.fromBytes(seededRandom('rogue')(32))), trust)?.code, 'E_PART_SIGNER');
  assert.equal(new TextDecoder().decode(partMessage(P, { generation: 3, version: 2, envelope: 'E' }, 'ab')), 'zmesh-part/v1\n/zmesh/v1/parts/pa/acme/shop/\n3\n2\nE\nab');
});
