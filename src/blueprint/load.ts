// Either kind of input a planner accepts: a plain blueprint, or a signed envelope (verified).
import { ValidationError } from '../errors.ts';
import { problem } from './codes.ts';
import { parseText, type ParseOptions } from './parse.ts';
import { SIGNED_FORMAT, verifySigned } from './sign.ts';
import type { Blueprint, SignedBlueprint } from './types.ts';
import { validateBlueprint } from './validate.ts';

export interface LoadOptions extends ParseOptions {
  /** Signed input must be signed by this ed25519 public key (base64). */
  tenantKey?: string;
  /** Refuse plain (unsigned) blueprints. */
  requireSigned?: boolean;
}

export interface Loaded {
  blueprint: Blueprint;
  /** Present when the input was a signed envelope (already verified). */
  signed?: SignedBlueprint;
}

/** Whether parsed data looks like a signed envelope (has a "format" field) rather than a blueprint. */
export function isEnvelope(data: unknown): boolean {
  return typeof data === 'object' && data !== null && !Array.isArray(data) && Object.hasOwn(data, 'format');
}

/**
 * Parses YAML/JSON text holding a blueprint or a signed envelope. Envelopes are verified (and checked
 * against opts.tenantKey when given). Throws ValidationError on any problem.
 */
export function loadBlueprintOrSigned(text: string, opts: LoadOptions = {}): Loaded {
  const data = parseText(text, opts);
  if (isEnvelope(data)) {
    const blueprint = verifySigned(data, { tenantKey: opts.tenantKey });
    const env = data as SignedBlueprint;
    const signed: SignedBlueprint = {
      format: SIGNED_FORMAT,
      blueprint,
      signature: { alg: 'ed25519', publicKey: env.signature.publicKey, signature: env.signature.signature },
    };
    return { blueprint, signed };
  }
  if (opts.tenantKey !== undefined) {
    throw new ValidationError([problem('E_TENANT_KEY_UNSIGNED', 'tenantKey', 'a tenant key was given but the blueprint is not signed: nothing to check it against',
      'sign it (`zmesh sign BLUEPRINT --key FILE`) and pass the signed envelope, or drop --tenant-key')], opts.what ?? 'blueprint');
  }
  if (opts.requireSigned) {
    throw new ValidationError([problem('E_ENVELOPE', '', 'a signed blueprint is required, got a plain one',
      'sign it with `zmesh sign BLUEPRINT --key FILE`')], opts.what ?? 'blueprint');
  }
  return { blueprint: validateBlueprint(data, { what: opts.what }) };
}
