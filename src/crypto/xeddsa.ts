// XEdDSA (Signal's specification "The XEdDSA and VXEdDSA Signature Schemes", rev. 1): signatures made with an
// X25519 key that any strict ed25519 verifier checks against the Edwards form of the Montgomery public key. A node
// has one identity key (X25519: resource keys are sealed to it); with XEdDSA the same key signs what the node
// writes to the control plane, so the key an operator pins at enrollment is the one that both opens and signs.
// Pure: the 64 bytes of nonce randomness `z` are injected (all zeros gives a deterministic signature whose nonce
// is still secret-keyed: r = H(prefix ‖ a ‖ M ‖ Z), like ed25519's r = H(prefix ‖ M)).
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha512 } from '@noble/hashes/sha2.js';
import { Key, KeyError, verifyEd25519Raw } from './keys.ts';

const Point = ed25519.Point;
const q = Point.Fn.ORDER;
const p = Point.Fp.ORDER;

function leToBig(b: Uint8Array): bigint {
  let n = 0n;
  for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i]);
  return n;
}

function bigToLe(n: bigint, len = 32): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}

function mod(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r < 0n ? r + m : r;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, x) => n + x.length, 0));
  let o = 0;
  for (const x of parts) {
    out.set(x, o);
    o += x.length;
  }
  return out;
}

/** hash_1's prefix: the 32-byte little-endian encoding of 2^256 − 1 − 1. */
const HASH1_PREFIX = Uint8Array.from([0xfe, ...new Array<number>(31).fill(0xff)]);

/**
 * The ed25519 public key (sign bit 0) of an X25519 public key: y = (u − 1) / (u + 1) mod p. Throws for u ≥ p
 * and for u = p − 1 (no Edwards point), as the specification's verify does.
 */
export function xeddsaPublicKey(montgomery: Key): Uint8Array {
  const raw = Uint8Array.from(montgomery.bytes);
  raw[31] &= 0x7f;
  const u = leToBig(raw);
  if (u >= p || u === p - 1n) throw new KeyError('X25519 public key has no ed25519 form');
  const y = mod((u - 1n) * Point.Fp.inv(u + 1n), p);
  return bigToLe(y);
}

/** Signs `message` with an X25519 secret (clamped as X25519 clamps it). `z`: 64 bytes of nonce randomness. */
export function xeddsaSign(secret: Key, message: Uint8Array, z: Uint8Array = new Uint8Array(64)): Uint8Array {
  if (z.length !== 64) throw new KeyError('XEdDSA needs 64 bytes of nonce randomness');
  const k = Uint8Array.from(secret.bytes);
  k[0] &= 248;
  k[31] = (k[31] & 127) | 64;
  const kq = mod(leToBig(k), q);
  const E = Point.BASE.multiply(kq);
  const negative = (E.toBytes()[31] & 0x80) !== 0;
  const a = negative ? mod(-kq, q) : kq;
  const A = (negative ? E.negate() : E).toBytes();
  const aBytes = bigToLe(a);
  const r = mod(leToBig(sha512(concat(HASH1_PREFIX, aBytes, message, z))), q);
  if (r === 0n) throw new KeyError('XEdDSA nonce is zero'); // probability 2^-252
  const R = Point.BASE.multiply(r).toBytes();
  const h = mod(leToBig(sha512(concat(R, A, message))), q);
  const s = mod(r + h * a, q);
  return concat(R, bigToLe(s));
}

/** X25519 public key (base64) → its ed25519 form (null: none); the conversion is a modular inversion. */
const edwardsOf = new Map<string, Uint8Array | null>();

/** Verifies an XEdDSA signature: strict ed25519 verification (RFC 8032, no ZIP-215 leniency) with the Edwards key. */
export function xeddsaVerify(montgomery: Key, message: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 64) return false;
  const id = montgomery.toString();
  let edwards = edwardsOf.get(id);
  if (edwards === undefined) {
    try {
      edwards = xeddsaPublicKey(montgomery);
    } catch {
      edwards = null;
    }
    if (edwardsOf.size >= 4096) edwardsOf.clear();
    edwardsOf.set(id, edwards);
  }
  return edwards !== null && verifyEd25519Raw(signature, message, edwards);
}
