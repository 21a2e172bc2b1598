// What a node writes to etcd, and why the controller believes it. Pure.
//
// Every record a node writes (nodes/<id>: its registration; status/<id>: what it applied) is signed by the node's
// identity key (XEdDSA with the X25519 key its resources are sealed to) over a canonical form bound to the etcd
// key it is stored under, so a record can neither be forged nor moved to another node's key. The controller
// plans a node only when (1) the record's signature holds, (2) the record speaks for the key it is stored under,
// and (3) the signer is the identity key an operator pinned for that node at enrollment (enroll/<id>, written by
// `zmesh controller node approve ID KEY`). A record signed by another key is refused and reported, never planned:
// whoever can write etcd still cannot make the controller seal a node's keys to another identity.
import { isIP } from 'node:net';
import { canonicalize } from '../blueprint/canonical.ts';
import { Key } from '../crypto/keys.ts';
import { xeddsaVerify } from '../crypto/xeddsa.ts';
import type { Problem } from '../errors.ts';
import type { Registration } from './membership.ts';
import type { EnrollmentRead } from './signed.ts';

export const RECORD_FORMAT = 'zmesh-node-record/v1';

/** The value stored at nodes/<id> and status/<id>. */
export interface SignedRecord<T = unknown> {
  format: typeof RECORD_FORMAT;
  /** The signer's X25519 identity public key (base64). */
  signer: string;
  record: T;
  /** XEdDSA signature (base64) of recordMessage(key, record). */
  signature: string;
}

/** Anything that can sign as a node (X25519Secret). */
export interface RecordSigner {
  publicKey: Key;
  sign(message: Uint8Array): Uint8Array;
}

/** Limits on what a registration may claim (a node can only lie about itself, and only this much). */
export const MAX_ENDPOINTS = 16;
export const MAX_RESERVED_PORTS = 1024;

export function recordMessage(key: string, record: unknown): Uint8Array {
  return new TextEncoder().encode(`${RECORD_FORMAT}\n${key}\n${canonicalize(record)}`);
}

/** The JSON text to store at `key`. */
export function signRecord(key: string, record: unknown, signer: RecordSigner): string {
  const sig = signer.sign(recordMessage(key, record));
  const value: SignedRecord = { format: RECORD_FORMAT, signer: signer.publicKey.toString(), record, signature: Buffer.from(sig).toString('base64') };
  return JSON.stringify(value);
}

export class RecordError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Parses and verifies the text stored at `key`; returns the signer and the record. Throws RecordError. */
export function openRecord(key: string, text: string): { signer: string; record: unknown } {
  let v: Partial<SignedRecord>;
  try {
    v = JSON.parse(text) as Partial<SignedRecord>;
  } catch {
    throw new RecordError('E_RECORD_FORMAT', 'not JSON');
  }
  if (!v || typeof v !== 'object' || v.format !== RECORD_FORMAT) throw new RecordError('E_RECORD_UNSIGNED', `not a signed record (format ${RECORD_FORMAT})`);
  if (!Key.isValid(v.signer)) throw new RecordError('E_RECORD_FORMAT', 'signer is not a base64 X25519 public key');
  if (typeof v.signature !== 'string' || !/^[A-Za-z0-9+/]{86}==$/.test(v.signature)) throw new RecordError('E_RECORD_FORMAT', 'signature is not 64 bytes of base64');
  let ok: boolean;
  try {
    ok = xeddsaVerify(Key.parse(v.signer!), recordMessage(key, v.record), new Uint8Array(Buffer.from(v.signature, 'base64')));
  } catch {
    ok = false;
  }
  if (!ok) throw new RecordError('E_RECORD_SIGNATURE', `the signature does not verify for ${key} with the signer's key`);
  return { signer: v.signer!, record: v.record };
}

/** An address a peer may be told to send handshakes to: no unspecified, loopback or multicast address. */
export function usableEndpoint(e: string): boolean {
  const v = isIP(e);
  if (v === 4) {
    const first = Number(e.split('.')[0]);
    return first !== 0 && first !== 127 && first < 224;
  }
  if (v === 6) {
    const l = e.toLowerCase();
    return l !== '::' && l !== '::1' && !/^0*:0*:0*:0*:0*:0*:0*:0*1?$/.test(l) && !l.startsWith('ff') && !l.startsWith('::ffff:');
  }
  return false;
}

/** Checks a registration's shape; returns it normalised. Throws RecordError. */
export function registrationFrom(id: string, signer: string, record: unknown): Registration {
  const r = record as Partial<Registration> | null;
  if (!r || typeof r !== 'object') throw new RecordError('E_NODE_RECORD', 'the registration is not an object');
  if (r.id !== id) throw new RecordError('E_NODE_RECORD', `the registration says it is node ${JSON.stringify(r.id)}, stored under ${id}`);
  if (r.publicKey !== signer) throw new RecordError('E_NODE_RECORD', 'the registration names another identity key than the one that signed it');
  if (!Array.isArray(r.endpoints) || r.endpoints.length > MAX_ENDPOINTS || !r.endpoints.every((e) => typeof e === 'string' && !e.includes('%') && usableEndpoint(e))) {
    throw new RecordError('E_NODE_RECORD', `endpoints must be at most ${MAX_ENDPOINTS} IP addresses (no unspecified, loopback or multicast address)`);
  }
  const ports = r.reservedPorts ?? [];
  if (!Array.isArray(ports) || ports.length > MAX_RESERVED_PORTS || !ports.every((p) => Number.isInteger(p) && p >= 1 && p <= 65535)) {
    throw new RecordError('E_NODE_RECORD', `reservedPorts must be at most ${MAX_RESERVED_PORTS} ports 1-65535`);
  }
  return {
    id,
    publicKey: signer,
    endpoints: [...r.endpoints],
    reservedPorts: [...ports],
    ...(typeof r.agentVersion === 'string' ? { agentVersion: r.agentVersion.slice(0, 64) } : {}),
  };
}

export type Trust = { state: 'trusted'; registration: Registration } | { state: 'pending' | 'refused'; signer: string | null; problem: Problem };

/** Whether the registration stored at `key` (node `id`) may be planned, given the node's enrollment as read. */
export function vetRegistration(key: string, id: string, text: string, read: EnrollmentRead | undefined): Trust {
  let opened: { signer: string; record: unknown };
  let registration: Registration;
  try {
    opened = openRecord(key, text);
    registration = registrationFrom(id, opened.signer, opened.record);
  } catch (e) {
    const re = e instanceof RecordError ? e : new RecordError('E_RECORD_FORMAT', String(e));
    return { state: 'refused', signer: null, problem: { code: re.code, path: key, message: `registration of ${id} refused: ${re.message}`, hint: 'only the node itself, with its own identity key, can register it' } };
  }
  if (read && 'problem' in read) return { state: 'refused', signer: opened.signer, problem: read.problem };
  const enrollment = read?.enrollment;
  if (!enrollment) {
    return {
      state: 'pending',
      signer: opened.signer,
      problem: { code: 'E_NODE_NOT_ENROLLED', path: key, message: `node ${id} is not enrolled; its registration (key ${opened.signer}) is not planned`, hint: `check the key on the node, then: zmesh controller node approve ${id} ${opened.signer}` },
    };
  }
  if (enrollment.publicKey !== opened.signer) {
    return {
      state: 'refused',
      signer: opened.signer,
      problem: {
        code: 'E_NODE_KEY_MISMATCH',
        path: key,
        message: `node ${id} registered with identity key ${opened.signer}, but ${enrollment.publicKey} is pinned for it; refused`,
        hint: `if the node was really re-installed with a new key: zmesh controller node approve ${id} NEWKEY --replace`,
      },
    };
  }
  return { state: 'trusted', registration };
}
