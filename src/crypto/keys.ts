// X25519 (WireGuard) and ed25519 (tenant signing) keys as checked 32-byte values.
// X25519 uses node:crypto (measured ~60 µs per public-key derivation, ~6x faster than @noble/curves here);
// ed25519 uses @noble/curves.
import { createPrivateKey, createPublicKey, diffieHellman, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { xeddsaSign } from './xeddsa.ts';

export class KeyError extends Error {
  readonly code = 'E_KEY_FORMAT';
}

const B64_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** A 32-byte key. Parsing is strict: canonical base64 of exactly 32 bytes. */
export class Key {
  readonly bytes: Uint8Array;
  private constructor(bytes: Uint8Array) {
    this.bytes = bytes;
  }
  static fromBytes(bytes: Uint8Array): Key {
    if (!(bytes instanceof Uint8Array) || bytes.length !== 32) {
      throw new KeyError(`a key must be exactly 32 bytes, got ${bytes?.length ?? 'none'}`);
    }
    return new Key(Uint8Array.from(bytes));
  }
  static parse(text: string): Key {
    if (typeof text !== 'string' || !B64_KEY.test(text)) {
      throw new KeyError('a key must be 44 characters of base64 encoding exactly 32 bytes');
    }
    return new Key(new Uint8Array(Buffer.from(text, 'base64')));
  }
  static isValid(text: unknown): boolean {
    return typeof text === 'string' && B64_KEY.test(text);
  }
  toString(): string {
    return Buffer.from(this.bytes).toString('base64');
  }
  toJSON(): string {
    return this.toString();
  }
  equals(other: Key): boolean {
    if (other.bytes.length !== 32) return false;
    let d = 0;
    for (let i = 0; i < 32; i++) d |= this.bytes[i] ^ other.bytes[i];
    return d === 0;
  }
}

const ZERO_X = 'A'.repeat(43);

function x25519PrivateObject(secret: Key): KeyObject {
  return createPrivateKey({
    key: { kty: 'OKP', crv: 'X25519', d: Buffer.from(secret.bytes).toString('base64url'), x: ZERO_X },
    format: 'jwk',
  });
}

function x25519PublicObject(pub: Key): KeyObject {
  return createPublicKey({
    key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(pub.bytes).toString('base64url') },
    format: 'jwk',
  });
}

/** Clamp 32 random bytes into an X25519 secret the way `wg genkey` does. */
export function clampX25519(raw: Uint8Array): Key {
  if (raw.length !== 32) throw new KeyError('need 32 bytes to make a key');
  const b = Uint8Array.from(raw);
  b[0] &= 248;
  b[31] = (b[31] & 127) | 64;
  return Key.fromBytes(b);
}

/** The X25519 public key of a secret: what `wg pubkey` prints. */
export function x25519PublicKey(secret: Key): Key {
  const jwk = createPublicKey(x25519PrivateObject(secret)).export({ format: 'jwk' }) as { x: string };
  return Key.fromBytes(new Uint8Array(Buffer.from(jwk.x, 'base64url')));
}

/** A Diffie-Hellman context for one secret, reused across many peers (the private key is imported once). */
export class X25519Secret {
  private readonly obj: KeyObject;
  private readonly secret: Key;
  readonly publicKey: Key;
  constructor(secret: Key) {
    this.secret = secret;
    this.obj = x25519PrivateObject(secret);
    const jwk = createPublicKey(this.obj).export({ format: 'jwk' }) as { x: string };
    this.publicKey = Key.fromBytes(new Uint8Array(Buffer.from(jwk.x, 'base64url')));
  }
  sharedSecret(peer: Key): Uint8Array {
    const out = diffieHellman({ privateKey: this.obj, publicKey: x25519PublicObject(peer) });
    if (out.every((b) => b === 0)) throw new KeyError('X25519 produced an all-zero shared secret (low-order public key)');
    return new Uint8Array(out);
  }
  /** An XEdDSA signature of `message` with this identity (verify with xeddsaVerify and the public key). */
  sign(message: Uint8Array, z?: Uint8Array): Uint8Array {
    return xeddsaSign(this.secret, message, z);
  }
}

export interface KeyPair {
  privateKey: Key;
  publicKey: Key;
}

/** An X25519 (WireGuard) key pair from 32 bytes of injected randomness. */
export function x25519KeyPair(random: Uint8Array): KeyPair {
  const privateKey = clampX25519(random);
  return { privateKey, publicKey: x25519PublicKey(privateKey) };
}

/** An ed25519 key pair from a 32-byte seed. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
/** Signing keys by seed (a controller signs thousands of part heads per round with one key): few, bounded. */
const signingKeys = new Map<string, { key: KeyObject; publicKey: Uint8Array }>();

function signingKey(seed: Uint8Array): { key: KeyObject; publicKey: Uint8Array } | null {
  if (seed.length !== 32) return null;
  const id = Buffer.from(seed).toString('base64');
  let k = signingKeys.get(id);
  if (!k) {
    const key = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
    const publicKey = new Uint8Array(createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(ED25519_SPKI_PREFIX.length));
    if (signingKeys.size >= 16) signingKeys.clear();
    signingKeys.set(id, (k = { key, publicKey }));
  }
  return k;
}

export function ed25519KeyPair(seed: Uint8Array): KeyPair {
  const privateKey = Key.fromBytes(seed);
  const k = signingKey(privateKey.bytes);
  return { privateKey, publicKey: Key.fromBytes(k ? Uint8Array.from(k.publicKey) : ed25519.getPublicKey(privateKey.bytes)) };
}

/**
 * RFC 8032 ed25519 (deterministic: the same bytes as @noble/curves, checked in test/unit/crypto.test.ts) with
 * Node's own (OpenSSL's), ~20× faster: the controller signs every changed part head of a round.
 */
export function ed25519Sign(message: Uint8Array, secret: Key): Uint8Array {
  const k = signingKey(secret.bytes);
  return k ? new Uint8Array(nodeSign(null, message, k.key)) : ed25519.sign(message, secret.bytes);
}

const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const ED_P = 2n ** 255n - 19n;
const ED_L = 2n ** 252n + 27742317777372353535851937790883648493n;
const keyObjects = new Map<string, KeyObject>();

function leBig(b: Uint8Array): bigint {
  let n = 0n;
  for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i]);
  return n;
}

/**
 * Strict ed25519 verification (RFC 8032: a canonical public key y < p, a canonical s < L; the encoded R must be
 * the recomputed one) with Node's own (OpenSSL's) ed25519: ~0.1 ms where @noble/curves' pure-JS verify takes
 * ~2 ms — the controller verifies every node's signed records, 10,000 of them when it starts.
 */
export function verifyEd25519Raw(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.length !== 64 || publicKey.length !== 32) return false;
  const y = Uint8Array.from(publicKey);
  y[31] &= 0x7f;
  if (leBig(y) >= ED_P || leBig(signature.subarray(32)) >= ED_L) return false;
  const id = Buffer.from(publicKey).toString('base64');
  let key = keyObjects.get(id);
  try {
    if (!key) {
      key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
      if (keyObjects.size >= 4096) keyObjects.clear();
      keyObjects.set(id, key);
    }
    return nodeVerify(null, message, key, signature);
  } catch {
    return false;
  }
}

export function ed25519Verify(signature: Uint8Array, message: Uint8Array, publicKey: Key): boolean {
  return verifyEd25519Raw(signature, message, publicKey.bytes);
}
