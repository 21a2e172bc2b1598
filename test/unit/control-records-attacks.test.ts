// Attacks on XEdDSA and node records that hold (regression tests from a red-team review of issue #14).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ed25519 } from '@noble/curves/ed25519.js';
import { Key, X25519Secret } from '../../src/crypto/keys.ts';
import { xeddsaPublicKey, xeddsaVerify } from '../../src/crypto/xeddsa.ts';
import { openRecord, recordMessage, signRecord, vetRegistration, RecordError } from '../../src/control/records.ts';
import { SIGNING_CONTEXT } from '../../src/blueprint/sign.ts';
import { identity } from '../helpers/fixtures.ts';

const p = 2n ** 255n - 19n;
const q = ed25519.Point.Fn.ORDER;
const le = (n: bigint) => Uint8Array.from({ length: 32 }, (_, i) => Number((n >> BigInt(8 * i)) & 0xffn));
const fromLe = (b: Uint8Array) => b.reduceRight((n, x) => (n << 8n) | BigInt(x), 0n);
const KEY = '/zmesh/v1/nodes/pa';
const rec = { id: 'pa', publicKey: identity('pa').publicKey.toString(), endpoints: ['203.0.113.1'], reservedPorts: [] };
const me = new X25519Secret(identity('pa').privateKey);

test('small-order X25519 identities (u = 0, 1, p-1 and the order-8 points) cannot sign anything', () => {
  // With a small-order A, R = sB verifies for any message under cofactored verification unless A is refused.
  const s = 12345n;
  const R = ed25519.Point.BASE.multiply(s).toBytes();
  const sig = new Uint8Array([...R, ...le(s)]);
  const smallU = [0n, 1n, p - 1n, 325606250916557431795983626356110631294008115727848805560023387167927233504n, 39382357235489614581723060781553021112529911719440698176882885853963445705823n];
  for (const u of smallU) {
    const k = Key.fromBytes(le(u));
    assert.equal(xeddsaVerify(k, new TextEncoder().encode('anything'), sig), false, `u=${u}`);
  }
});

test('u >= p and a set bit 255 give no second key with the same signatures being accepted by the enrollment', () => {
  assert.throws(() => xeddsaPublicKey(Key.fromBytes(le(p))));
  assert.throws(() => xeddsaPublicKey(Key.fromBytes(le(p + 5n))));
  // Bit 255 is ignored (as X25519 ignores it): the signature verifies under the twin key string…
  const text = JSON.parse(signRecord(KEY, rec, me));
  const twin = Uint8Array.from(identity('pa').publicKey.bytes);
  twin[31] |= 0x80;
  const twinKey = Key.fromBytes(twin).toString();
  assert.doesNotThrow(() => openRecord(KEY, JSON.stringify({ ...text, signer: twinKey })));
  // …but the record must name its signer, and the enrollment pins the exact string: refused.
  const t = vetRegistration(KEY, 'pa', JSON.stringify({ ...text, signer: twinKey, record: { ...rec, publicKey: twinKey } }), { enrollment: { id: 'pa', publicKey: rec.publicKey, approvedAt: '' }, signer: null });
  assert.notEqual(t.state, 'trusted');
});

test('non-canonical s (s + q) and R (y >= p) are refused', () => {
  const good = JSON.parse(signRecord(KEY, rec, me));
  const sig = new Uint8Array(Buffer.from(good.signature, 'base64'));
  const s2 = le(fromLe(sig.subarray(32)) + q);
  const bad1 = new Uint8Array([...sig.subarray(0, 32), ...s2]);
  assert.equal(xeddsaVerify(identity('pa').publicKey, recordMessage(KEY, rec), bad1), false);
  const R = fromLe(sig.subarray(0, 32));
  const y = R & ((1n << 255n) - 1n);
  if (y + p < 1n << 255n) {
    const bad2 = new Uint8Array([...le((R & (1n << 255n)) | (y + p)), ...sig.subarray(32)]);
    assert.equal(xeddsaVerify(identity('pa').publicKey, recordMessage(KEY, rec), bad2), false);
  }
});

test('records: lone surrogates are refused, __proto__ is covered, another key or a tampered field fails', () => {
  assert.throws(() => signRecord(KEY, { ...rec, agentVersion: '\ud800' }, me));
  const forged = JSON.parse(signRecord(KEY, rec, me));
  forged.record.agentVersion = '\ud800';
  assert.throws(() => openRecord(KEY, JSON.stringify(forged)), RecordError);
  const withProto = JSON.parse(signRecord(KEY, rec, me));
  const text = JSON.stringify(withProto).replace('"record":{', '"record":{"__proto__":{"reservedPorts":[22]},');
  assert.throws(() => openRecord(KEY, text), RecordError);
  assert.throws(() => openRecord('/zmesh/v1/nodes/pa/../pb', signRecord(KEY, rec, me)), RecordError);
  assert.throws(() => openRecord('/zmesh/v1/status/pa', signRecord(KEY, rec, me)), RecordError);
});

test('domain separation: a node record signature is never a blueprint signature (different context prefixes)', () => {
  const node = new TextDecoder().decode(recordMessage(KEY, rec));
  assert.ok(!node.startsWith(SIGNING_CONTEXT) && !SIGNING_CONTEXT.startsWith('zmesh-node-record/v1\n'));
  // And an XEdDSA signature is an ed25519 signature under the Edwards key: a tenant whose registered key is that
  // Edwards key could only ever get "zmesh-node-record/v1\n…" messages, which no blueprint verifier accepts.
  const edKey = xeddsaPublicKey(identity('pa').publicKey);
  const sig = me.sign(recordMessage(KEY, rec));
  assert.ok(ed25519.verify(sig, recordMessage(KEY, rec), edKey));
});
