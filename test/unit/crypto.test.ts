// Keys, sealing and the seeded byte source: RFC 7748 vectors, `wg pubkey` compatibility, tamper detection.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Key, X25519Secret, clampX25519, x25519KeyPair, x25519PublicKey } from '../../src/crypto/keys.ts';
import { seededRandom } from '../../src/crypto/rng.ts';
import { Sealer, openSealed } from '../../src/crypto/seal.ts';

const hex = (h: string) => Key.fromBytes(new Uint8Array(Buffer.from(h, 'hex')));

test('RFC 7748 §6.1 X25519 vectors', () => {
  const alice = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
  const bob = hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
  assert.equal(Buffer.from(x25519PublicKey(alice).bytes).toString('hex'), '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
  assert.equal(Buffer.from(x25519PublicKey(bob).bytes).toString('hex'), 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
  const shared = new X25519Secret(alice).sharedSecret(x25519PublicKey(bob));
  assert.equal(Buffer.from(shared).toString('hex'), '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742');
});

test('keys parse strictly', () => {
  const good = x25519KeyPair(new Uint8Array(32).fill(7)).publicKey.toString();
  assert.equal(Key.parse(good).toString(), good);
  for (const bad of ['', 'abc', good.slice(0, 43), good + '=', good.replace(/=$/, 'A'), '!'.repeat(44), good.slice(0, 42) + 'B=']) {
    assert.throws(() => Key.parse(bad), { code: 'E_KEY_FORMAT' }, JSON.stringify(bad));
  }
  assert.throws(() => Key.fromBytes(new Uint8Array(31)), { code: 'E_KEY_FORMAT' });
});

test('public keys match `wg pubkey`, for our keys and for `wg genkey` keys', () => {
  for (let i = 0; i < 5; i++) {
    const kp = x25519KeyPair(randomBytes(32));
    const wg = execFileSync('wg', ['pubkey'], { input: kp.privateKey.toString() + '\n' }).toString().trim();
    assert.equal(wg, kp.publicKey.toString());
    const genkey = execFileSync('wg', ['genkey']).toString().trim();
    const wgPub = execFileSync('wg', ['pubkey'], { input: genkey + '\n' }).toString().trim();
    assert.equal(x25519PublicKey(Key.parse(genkey)).toString(), wgPub);
    assert.equal(clampX25519(Key.parse(genkey).bytes).toString(), genkey, 'wg genkey keys are already clamped');
  }
});

test('sealed keys round-trip and detect every single-byte tampering', () => {
  const node = x25519KeyPair(randomBytes(32));
  const secret = x25519KeyPair(randomBytes(32)).privateKey;
  const sealer = new Sealer(seededRandom('seal'));
  const box = sealer.seal(secret, node.publicKey, 'netid/node-a');
  assert.match(box, /^zs1\.[A-Za-z0-9+/]+=*$/);
  assert.ok(openSealed(box, node.privateKey, 'netid/node-a').equals(secret));
  const raw = Buffer.from(box.slice(4), 'base64');
  for (let i = 0; i < raw.length; i++) {
    const t = Buffer.from(raw);
    t[i] ^= 1;
    assert.throws(() => openSealed('zs1.' + t.toString('base64'), node.privateKey, 'netid/node-a'), { code: 'E_SEAL_OPEN' }, `byte ${i}`);
  }
  assert.throws(() => openSealed(box, node.privateKey, 'netid/node-b'), { code: 'E_SEAL_OPEN' });
  assert.throws(() => openSealed(box, x25519KeyPair(randomBytes(32)).privateKey, 'netid/node-a'), { code: 'E_SEAL_OPEN' });
  assert.throws(() => openSealed(box.slice(0, -8), node.privateKey, 'netid/node-a'), { code: 'E_SEAL_OPEN' });
  assert.throws(() => openSealed('plain', node.privateKey, 'netid/node-a'), { code: 'E_SEAL_OPEN' });
  // The secret never shows in the box.
  assert.ok(!box.includes(secret.toString()));
});

test('two boxes of the same secret differ (fresh nonce per box)', () => {
  const node = x25519KeyPair(randomBytes(32));
  const secret = x25519KeyPair(randomBytes(32)).privateKey;
  const sealer = new Sealer(seededRandom('x'));
  assert.notEqual(sealer.seal(secret, node.publicKey, 'c'), sealer.seal(secret, node.publicKey, 'c'));
});

test('seeded random is deterministic per seed and call sequence', () => {
  const a = seededRandom('s');
  const b = seededRandom('s');
  assert.deepEqual([a(5), a(40), a(1)], [b(5), b(40), b(1)]);
  assert.notDeepEqual(seededRandom('s')(32), seededRandom('t')(32));
  const c = seededRandom('s');
  const joined = Buffer.concat([c(5), c(40)]);
  assert.deepEqual(new Uint8Array(joined), seededRandom('s')(45));
});

test("ed25519 and XEdDSA verification through Node's own ed25519 agree with @noble/curves' strict verify (random, tampered, non-canonical)", async () => {
  const { ed25519 } = await import('@noble/curves/ed25519.js');
  const { verifyEd25519Raw } = await import('../../src/crypto/keys.ts');
  const { xeddsaPublicKey, xeddsaSign, xeddsaVerify } = await import('../../src/crypto/xeddsa.ts');
  const rnd = seededRandom('verify-differential');
  const L = 2n ** 252n + 27742317777372353535851937790883648493n;
  const le = (b: Uint8Array) => b.reduce((n, x, i) => n | (BigInt(x) << BigInt(8 * i)), 0n);
  const toLe = (n: bigint) => Uint8Array.from({ length: 32 }, (_, i) => Number((n >> BigInt(8 * i)) & 0xffn));
  const noble = (sig: Uint8Array, msg: Uint8Array, pub: Uint8Array) => {
    try {
      return ed25519.verify(sig, msg, pub, { zip215: false });
    } catch {
      return false;
    }
  };
  let agreed = 0;
  for (let i = 0; i < 40; i++) {
    const seed = rnd(32);
    const pub = ed25519.getPublicKey(seed);
    const msg = rnd(1 + (i % 7) * 37);
    const sig = ed25519.sign(msg, seed);
    const flipped = Uint8Array.from(sig);
    flipped[i % 64] ^= 1 << i % 8;
    const highS = Uint8Array.from([...sig.subarray(0, 32), ...toLe(le(sig.subarray(32)) + L)]);
    const otherMsg = Uint8Array.from(msg);
    otherMsg[0] ^= 0x80;
    const badKey = Uint8Array.from(pub);
    badKey[(i * 5) % 32] ^= 4;
    for (const [s, m, k, want] of [
      [sig, msg, pub, true],
      [flipped, msg, pub, false],
      [highS, msg, pub, false],
      [sig, otherMsg, pub, false],
      [sig, msg, badKey, false],
    ] as const) {
      assert.equal(verifyEd25519Raw(s, m, k), want);
      assert.equal(noble(s, m, k), want);
      agreed++;
    }
    // XEdDSA: an X25519 key's signature verifies with its Edwards form, natively as with noble.
    const x = x25519KeyPair(rnd(32));
    const xs = xeddsaSign(x.privateKey, msg, rnd(64));
    assert.equal(xeddsaVerify(x.publicKey, msg, xs), true);
    assert.equal(noble(xs, msg, xeddsaPublicKey(x.publicKey)), true);
    assert.equal(xeddsaVerify(x.publicKey, otherMsg, xs), false);
  }
  // A public key with y ≥ p (non-canonical) is refused before OpenSSL sees it.
  const p = 2n ** 255n - 19n;
  assert.equal(verifyEd25519Raw(new Uint8Array(64), new Uint8Array(1), toLe(p + 1n)), false);
  assert.equal(agreed, 200);
});

test("ed25519 signing and key derivation through Node's own ed25519 give @noble/curves' exact bytes (RFC 8032 vector, 200 random)", async () => {
  const { ed25519 } = await import('@noble/curves/ed25519.js');
  const { ed25519KeyPair, ed25519Sign, Key } = await import('../../src/crypto/keys.ts');
  // RFC 8032, section 7.1, TEST 2.
  const seed = Buffer.from('4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb', 'hex');
  const pair = ed25519KeyPair(new Uint8Array(seed));
  assert.equal(Buffer.from(pair.publicKey.bytes).toString('hex'), '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c');
  assert.equal(
    Buffer.from(ed25519Sign(Uint8Array.of(0x72), pair.privateKey)).toString('hex'),
    '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
  );
  const rnd = seededRandom('sign-differential');
  for (let i = 0; i < 200; i++) {
    const s = rnd(32);
    const msg = rnd(i % 97);
    const k = Key.fromBytes(s);
    assert.deepEqual(ed25519KeyPair(s).publicKey.bytes, ed25519.getPublicKey(s), `public key ${i}`);
    assert.deepEqual(ed25519Sign(msg, k), ed25519.sign(msg, s), `signature ${i}`);
  }
});
