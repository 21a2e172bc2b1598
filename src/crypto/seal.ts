// Sealing a WireGuard private key to a node's X25519 identity key.
// Format (base64): "zs1." ‖ base64( ephemeralPublic(32) ‖ nonce(24) ‖ XChaCha20-Poly1305(ciphertext ‖ tag) )
// key = HKDF-SHA256(ikm = X25519(eph, node), salt = ephPub ‖ nodePub, info = "zmesh-seal-v1")
// The associated data binds the box to its place (e.g. "<network id>/<node id>") so a sealed key cannot be
// moved to another resource.
import { createCipheriv, hkdfSync } from 'node:crypto';
import { hchacha, xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { Key, KeyError, X25519Secret, x25519KeyPair } from './keys.ts';
import type { RandomSource } from './rng.ts';

const PREFIX = 'zs1.';
const INFO = new TextEncoder().encode('zmesh-seal-v1');

export class SealError extends Error {
  readonly code = 'E_SEAL_OPEN';
}

function deriveKey(shared: Uint8Array, ephPub: Key, nodePub: Key): Uint8Array {
  const salt = new Uint8Array(64);
  salt.set(ephPub.bytes, 0);
  salt.set(nodePub.bytes, 32);
  return new Uint8Array(hkdfSync('sha256', shared, salt, INFO, 32));
}

const SIGMA = new Uint32Array(new Uint8Array(Buffer.from('expand 32-byte k')).buffer);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * XChaCha20-Poly1305 encryption (ciphertext ‖ tag), the same bytes as @noble/ciphers' xchacha20poly1305: the
 * HChaCha20 subkey from noble, the ChaCha20-Poly1305 of node:crypto (native: a plan seals one key per node, and
 * this takes half the time of the JavaScript cipher there). Byte-equality with noble: test/unit/seal-native.test.ts.
 */
export function xchachaEncrypt(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plain: Uint8Array): Uint8Array {
  if (key.length !== 32 || nonce.length !== 24) throw new Error('xchacha20poly1305: a 32-byte key and a 24-byte nonce');
  // hchacha takes native-endian words: the views below are little-endian words on a little-endian host only.
  if (!LITTLE_ENDIAN) return xchacha20poly1305(key, nonce, aad).encrypt(plain);
  const sub = new Uint32Array(8);
  hchacha(SIGMA, new Uint32Array(Uint8Array.from(key).buffer), new Uint32Array(nonce.slice(0, 16).buffer), sub);
  const iv = new Uint8Array(12);
  iv.set(nonce.subarray(16), 4);
  const c = createCipheriv('chacha20-poly1305', new Uint8Array(sub.buffer), iv, { authTagLength: 16 });
  c.setAAD(aad, { plaintextLength: plain.length });
  const out = Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
  sub.fill(0);
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

/** Seals many secrets for many nodes with one ephemeral key per sealer (each box still has its own nonce). */
export class Sealer {
  private readonly eph: X25519Secret;
  private readonly random: RandomSource;
  private readonly cache = new Map<string, Uint8Array>();
  constructor(random: RandomSource) {
    this.random = random;
    this.eph = new X25519Secret(x25519KeyPair(random(32)).privateKey);
  }
  seal(secret: Key, recipient: Key, context: string): string {
    const id = recipient.toString();
    let key = this.cache.get(id);
    if (!key) {
      key = deriveKey(this.eph.sharedSecret(recipient), this.eph.publicKey, recipient);
      this.cache.set(id, key);
    }
    const nonce = this.random(24);
    const box = xchachaEncrypt(key, nonce, new TextEncoder().encode(context), secret.bytes);
    const out = new Uint8Array(32 + 24 + box.length);
    out.set(this.eph.publicKey.bytes, 0);
    out.set(nonce, 32);
    out.set(box, 56);
    return PREFIX + Buffer.from(out).toString('base64');
  }
}

/** Opens a sealed key with the node's identity secret; throws SealError on any tampering or wrong key/context. */
export function openSealed(sealed: string, identity: Key | X25519Secret, context: string): Key {
  if (typeof sealed !== 'string' || !sealed.startsWith(PREFIX)) throw new SealError('sealed key has an unknown format');
  const raw = new Uint8Array(Buffer.from(sealed.slice(PREFIX.length), 'base64'));
  if (raw.length !== 32 + 24 + 32 + 16) throw new SealError('sealed key has the wrong length');
  const me = identity instanceof X25519Secret ? identity : new X25519Secret(identity);
  let ephPub: Key;
  try {
    ephPub = Key.fromBytes(raw.subarray(0, 32));
  } catch (e) {
    throw new SealError('sealed key has a malformed ephemeral key', { cause: e });
  }
  let shared: Uint8Array;
  try {
    shared = me.sharedSecret(ephPub);
  } catch (e) {
    if (e instanceof KeyError) throw new SealError('sealed key has a low-order ephemeral key', { cause: e });
    throw e;
  }
  const key = deriveKey(shared, ephPub, me.publicKey);
  try {
    const plain = xchacha20poly1305(key, raw.subarray(32, 56), new TextEncoder().encode(context)).decrypt(raw.subarray(56));
    return Key.fromBytes(plain);
  } catch (e) {
    throw new SealError('sealed key does not open with this node identity (wrong node, wrong resource, or tampered)', { cause: e });
  }
}
