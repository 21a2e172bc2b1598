/**
 * src/blueprint — what a tenant asks for, and proof that the tenant asked for it.
 *
 * Does: the blueprint schema and its validation (every problem at once, each with a stable code, a path
 * like "networks[1].ipRange", a message and a hint), YAML/JSON parsing with limits against hostile input,
 * normalization (defaults filled, sizes in bytes), the RFC 8785 canonical JSON form, and ed25519 signing
 * and strict verification of signed envelopes.
 * Does not: read or write files, spawn processes, read clocks or draw randomness. Callers pass text,
 * parsed objects and keys; the CLI does the I/O. This folder is pure: it imports only src/crypto,
 * src/errors, topology/cidr (IPv4 arithmetic, pure too), `yaml` and `@noble` (test/unit/blueprint-meta.test.ts
 * enforces it).
 */
export type { AccessSpec, Blueprint, NetworkSpec, SignedBlueprint, VolumeSpec, WorkloadSpec, WorkloadVolume } from './types.ts';
export { BLUEPRINT_CODES, type BlueprintCode } from './codes.ts';
export { canonicalize, CanonicalizeError } from './canonical.ts';
export { parseText, parseBlueprint, MAX_TEXT_BYTES, MAX_ALIAS_COUNT, MAX_NESTING, nestingExceeds, type ParseOptions } from './parse.ts';
export {
  validateBlueprint,
  joinPath,
  MAX_ARRAY_ITEMS,
  DEFAULT_SUBNET_PREFIX,
  DEFAULT_CPU,
  DEFAULT_MEMORY,
  MIN_MEMORY,
  MIN_VOLUME_SIZE,
  type ValidateOptions,
} from './validate.ts';
export { parseSize, formatSize, type SizeResult } from './units.ts';
export { signBlueprint, verifySigned, signingBytes, tenantPublicKey, SIGNED_FORMAT, SIGNING_CONTEXT, type VerifyOptions } from './sign.ts';
export { loadBlueprintOrSigned, isEnvelope, type LoadOptions, type Loaded } from './load.ts';
