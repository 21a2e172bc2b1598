// Signed envelopes: ed25519 over the UTF-8 bytes of "zmesh-blueprint-v1\n" + RFC 8785 canonical JSON of the
// normalized blueprint. Verification is strict: envelope shape, canonical key and signature encodings,
// a blueprint that is valid and already normalized, RFC 8032 strict signature checking (not ZIP-215).
import { ed25519 } from '@noble/curves/ed25519.js';
import { Key, ed25519KeyPair, ed25519Sign } from '../crypto/keys.ts';
import { ValidationError, unknownField, type Problem } from '../errors.ts';
import { canonicalize } from './canonical.ts';
import { problem } from './codes.ts';
import type { Blueprint, SignedBlueprint } from './types.ts';
import { joinPath, validateBlueprint } from './validate.ts';

export const SIGNED_FORMAT = 'zmesh-signed-blueprint/1';
export const SIGNING_CONTEXT = 'zmesh-blueprint-v1\n';
/** Canonical base64 of exactly 64 bytes. */
const B64_SIG = /^[A-Za-z0-9+/]{85}[AQgw]==$/;

/** The bytes a blueprint signature covers. The blueprint must already be normalized. */
export function signingBytes(bp: Blueprint): Uint8Array {
  return new TextEncoder().encode(SIGNING_CONTEXT + canonicalize(bp));
}

/** The ed25519 public key (base64) of a tenant secret. */
export function tenantPublicKey(secret: Key): string {
  return ed25519KeyPair(secret.bytes).publicKey.toString();
}

/** Signs a blueprint with a tenant's ed25519 secret. The blueprint is validated and normalized first. */
export function signBlueprint(bp: Blueprint, secret: Key): SignedBlueprint {
  const blueprint = validateBlueprint(bp);
  const signature = ed25519Sign(signingBytes(blueprint), secret);
  return {
    format: SIGNED_FORMAT,
    blueprint,
    signature: {
      alg: 'ed25519',
      publicKey: tenantPublicKey(secret),
      signature: Buffer.from(signature).toString('base64'),
    },
  };
}

export interface VerifyOptions {
  /** When given, the envelope must be signed by exactly this ed25519 public key (base64). */
  tenantKey?: string;
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function envelopeProblem(path: string, message: string): Problem {
  return problem('E_ENVELOPE', path, message);
}

/** Checks that a mapping has exactly the given fields; reports missing and extra ones. */
function exactFields(o: Record<string, unknown>, path: string, fields: readonly string[], out: Problem[]): void {
  for (const k of Object.keys(o)) {
    if (!fields.includes(k)) out.push(envelopeProblem(joinPath(path, k), unknownField('', k, fields).message));
  }
  for (const f of fields) {
    if (!Object.hasOwn(o, f)) out.push(envelopeProblem(joinPath(path, f), 'missing'));
  }
}

/**
 * Verifies a signed envelope (parsed JSON) and returns its blueprint.
 * Throws ValidationError: E_ENVELOPE (shape), blueprint problems (paths under "blueprint."), E_SIGNATURE,
 * E_TENANT_KEY (a valid signature by another key than opts.tenantKey), E_KEY_FORMAT (a malformed opts.tenantKey).
 */
export function verifySigned(envelope: unknown, opts: VerifyOptions = {}): Blueprint {
  const what = 'signed blueprint';
  if (opts.tenantKey !== undefined && !Key.isValid(opts.tenantKey)) {
    throw new ValidationError([problem('E_KEY_FORMAT', 'tenantKey', 'the expected tenant key is not 44 characters of base64 for 32 bytes')], what);
  }
  const shape: Problem[] = [];
  if (!isMapping(envelope)) throw new ValidationError([envelopeProblem('', 'expected a mapping')], what);
  exactFields(envelope, '', ['format', 'blueprint', 'signature'], shape);
  if (Object.hasOwn(envelope, 'format') && envelope.format !== SIGNED_FORMAT) {
    shape.push(envelopeProblem('format', `expected ${JSON.stringify(SIGNED_FORMAT)}`));
  }
  const sig = Object.hasOwn(envelope, 'signature') ? envelope.signature : undefined;
  if (sig !== undefined && !isMapping(sig)) shape.push(envelopeProblem('signature', 'expected a mapping'));
  if (isMapping(sig)) {
    exactFields(sig, 'signature', ['alg', 'publicKey', 'signature'], shape);
    if (Object.hasOwn(sig, 'alg') && sig.alg !== 'ed25519') shape.push(envelopeProblem('signature.alg', 'expected "ed25519"'));
    if (Object.hasOwn(sig, 'publicKey') && !Key.isValid(sig.publicKey)) {
      shape.push(envelopeProblem('signature.publicKey', 'is not 44 characters of base64 for 32 bytes'));
    }
    if (Object.hasOwn(sig, 'signature') && !(typeof sig.signature === 'string' && B64_SIG.test(sig.signature))) {
      shape.push(envelopeProblem('signature.signature', 'is not 88 characters of base64 for 64 bytes'));
    }
  }
  if (shape.length > 0) throw new ValidationError(shape, what);
  const s = sig as { publicKey: string; signature: string };

  let blueprint: Blueprint;
  try {
    blueprint = validateBlueprint(envelope.blueprint);
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    throw new ValidationError(err.problems.map((p) => ({ ...p, path: p.path ? `blueprint.${p.path}` : 'blueprint' })), what);
  }
  const canonical = canonicalize(blueprint);
  let asGiven: string | null;
  try {
    asGiven = canonicalize(envelope.blueprint);
  } catch {
    asGiven = null;
  }
  if (asGiven !== canonical) {
    throw new ValidationError([envelopeProblem('blueprint', 'the blueprint is not in normalized form (defaults filled, sizes in bytes)')], what);
  }

  const message = new TextEncoder().encode(SIGNING_CONTEXT + canonical);
  const publicKey = Key.parse(s.publicKey);
  let ok: boolean;
  try {
    ok = ed25519.verify(new Uint8Array(Buffer.from(s.signature, 'base64')), message, publicKey.bytes, { zip215: false });
  } catch {
    ok = false;
  }
  if (!ok) throw new ValidationError([problem('E_SIGNATURE', 'signature.signature', 'the signature does not match the blueprint and public key')], what);
  if (opts.tenantKey !== undefined && !publicKey.equals(Key.parse(opts.tenantKey))) {
    throw new ValidationError([problem('E_TENANT_KEY', 'signature.publicKey',
      `signed by ${s.publicKey}, but the tenant key is ${opts.tenantKey}`)], what);
  }
  return blueprint;
}
