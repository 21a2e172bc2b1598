// The sealing cipher (issue #17: `zmesh plan` seals one key per node): xchachaEncrypt (HChaCha20 from noble,
// ChaCha20-Poly1305 from node:crypto) gives exactly @noble/ciphers' XChaCha20-Poly1305 bytes, and sealed keys open.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { openSealed, Sealer, xchachaEncrypt } from '../../src/crypto/seal.ts';
import { x25519KeyPair } from '../../src/crypto/keys.ts';
import { seededRandom } from '../../src/crypto/rng.ts';

test('xchachaEncrypt is byte for byte noble xchacha20poly1305 (any key, nonce, associated data, length)', () => {
  const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
  fc.assert(
    fc.property(bytes(32), bytes(24), fc.uint8Array({ maxLength: 80 }), fc.uint8Array({ maxLength: 200 }), (key, nonce, aad, plain) => {
      assert.deepEqual(xchachaEncrypt(key, nonce, aad, plain), xchacha20poly1305(key, nonce, aad).encrypt(plain));
    }),
    { numRuns: 300, seed: 17 },
  );
  // The draft-irtf-cfrg-xchacha test vector (A.3.1): its tag.
  const hex = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));
  const key = hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
  const nonce = hex('404142434445464748494a4b4c4d4e4f5051525354555657');
  const aad = hex('50515253c0c1c2c3c4c5c6c7');
  const plain = new TextEncoder().encode("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");
  assert.equal(Buffer.from(xchachaEncrypt(key, nonce, aad, plain).subarray(-16)).toString('hex'), 'c0875924c1c7987947deafd8780acf49');
  assert.throws(() => xchachaEncrypt(key.subarray(1), nonce, aad, plain), /32-byte key and a 24-byte nonce/);
});

test('a key sealed with the native cipher opens with the node identity, and only in its context', () => {
  const rnd = seededRandom('seal-native');
  const node = x25519KeyPair(rnd(32));
  const secret = x25519KeyPair(rnd(32)).privateKey;
  const sealed = new Sealer(rnd).seal(secret, node.publicKey, 'net-1/node-a');
  assert.ok(openSealed(sealed, node.privateKey, 'net-1/node-a').equals(secret));
  assert.throws(() => openSealed(sealed, node.privateKey, 'net-1/node-b'), /does not open/);
});
