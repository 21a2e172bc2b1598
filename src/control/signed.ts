// What the operator and the controller write to etcd, signed so that a writer of etcd who holds neither key
// (a node that escalated in etcd, etcd without RBAC, a stolen etcd client certificate) cannot forge it. Pure.
//   enroll/<id>        signed by an OPERATOR ed25519 key (`node approve --sign FILE`); the controller
//                      plans only enrollments signed by a key in its --operator-key list
//   parts/<n>/<t>/<b>/gen   the part's head carries the CONTROLLER's ed25519 signature over the node, blueprint,
//                      generation, version, envelope key and a SHA-256 of every other entry of the part; an agent
//                      configured with etcd.controllerKeys applies only parts whose head verifies
// Both bind the etcd key they are stored under (a signed value cannot be moved to another node) and carry a
// domain prefix of their own (never valid as a blueprint, node record or each other).
import { createHash } from 'node:crypto';
import { canonicalize } from '../blueprint/canonical.ts';
import { Key, ed25519KeyPair, ed25519Sign, ed25519Verify } from '../crypto/keys.ts';
import type { Problem } from '../errors.ts';
import type { Entries } from './entries.ts';

export const ENROLLMENT_FORMAT = 'zmesh-enrollment/v1';
export const PART_SIG_FORMAT = 'zmesh-part/v1';

/** A node's pinned identity (enroll/<id>). */
export interface Enrollment {
  id: string;
  /** X25519 identity public key (base64): the only key whose records are planned for this node. */
  publicKey: string;
  /** ISO time of the approval. */
  approvedAt: string;
}

const B64_SIG = /^[A-Za-z0-9+/]{86}==$/;
const utf8 = (s: string) => new TextEncoder().encode(s);

function verify(signer: unknown, signature: unknown, message: Uint8Array): boolean {
  if (!Key.isValid(signer) || typeof signature !== 'string' || !B64_SIG.test(signature)) return false;
  return ed25519Verify(new Uint8Array(Buffer.from(signature, 'base64')), message, Key.parse(signer as string));
}

export function enrollmentMessage(key: string, e: Enrollment): Uint8Array {
  return utf8(`${ENROLLMENT_FORMAT}\n${key}\n${canonicalize(e)}`);
}

/** The value of enroll/<id>, signed by an operator's ed25519 secret. */
export function signEnrollment(key: string, e: Enrollment, operator: Key): string {
  const signer = ed25519KeyPair(operator.bytes).publicKey.toString();
  return JSON.stringify({ format: ENROLLMENT_FORMAT, signer, enrollment: e, signature: Buffer.from(ed25519Sign(enrollmentMessage(key, e), operator)).toString('base64') });
}

export type EnrollmentRead = { enrollment: Enrollment; signer: string | null } | { problem: Problem };

/**
 * Reads enroll/<id>. With `operatorKeys` (non-empty), only an enrollment signed by one of them counts; without,
 * an unsigned one counts too (and a signed one must still verify).
 */
export function readEnrollment(key: string, id: string, text: string, operatorKeys: ReadonlySet<string> | null): EnrollmentRead {
  const bad = (code: string, message: string): EnrollmentRead => ({
    problem: { code, path: key, message: `enrollment of ${id}: ${message}`, hint: `approve the node again with an operator key the controller trusts: zmesh controller node approve ${id} KEY --sign FILE` },
  });
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return bad('E_ENROLLMENT_FORMAT', 'not JSON');
  }
  if (!v || typeof v !== 'object') return bad('E_ENROLLMENT_FORMAT', 'not an object');
  const signed = v.format === ENROLLMENT_FORMAT;
  const e = (signed ? v.enrollment : v) as Partial<Enrollment> | null;
  if (!e || typeof e !== 'object' || e.id !== id || !Key.isValid(e.publicKey)) return bad('E_ENROLLMENT_FORMAT', `not an enrollment of ${id}`);
  const enrollment: Enrollment = { id, publicKey: e.publicKey!, approvedAt: typeof e.approvedAt === 'string' ? e.approvedAt : '' };
  if (!signed) {
    if (operatorKeys?.size) return bad('E_ENROLLMENT_UNSIGNED', 'not signed by an operator key, and the controller requires one');
    return { enrollment, signer: null };
  }
  // Verified over what was stored (e, as read), not a normalised copy.
  if (!verify(v.signer, v.signature, enrollmentMessage(key, e as Enrollment))) return bad('E_ENROLLMENT_SIGNATURE', 'the operator signature does not verify');
  if (operatorKeys?.size && !operatorKeys.has(v.signer as string)) return bad('E_ENROLLMENT_SIGNER', `signed by ${String(v.signer)}, which is not an operator key of the controller`);
  return { enrollment, signer: v.signer as string };
}

/** An enrollment as stored (a signed one must verify; no operator key required): for views and approvals. */
export function parseEnrollment(key: string, id: string, text: string): Enrollment | null {
  const r = readEnrollment(key, id, text, null);
  return 'enrollment' in r ? r.enrollment : null;
}

// ---- part heads -------------------------------------------------------------------------------------

/** SHA-256 (hex) of every entry but the head, in suffix order. */
export function partDigest(entries: Entries): string {
  const rows = [...entries].filter(([s]) => s !== 'gen').sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  // The bytes of JSON.stringify(rows), hashed in ~64 KB pieces (no string of the whole part: 1,000s of peers).
  const h = createHash('sha256');
  let buf = '[';
  for (let i = 0; i < rows.length; i++) {
    buf += i ? `,${JSON.stringify(rows[i])}` : JSON.stringify(rows[i]);
    if (buf.length > 65536) {
      h.update(buf);
      buf = '';
    }
  }
  return h.update(`${buf}]`).digest('hex');
}

interface HeadFields {
  generation: number;
  version: number;
  envelope: string;
}

export function partMessage(partKey: string, head: HeadFields, digest: string): Uint8Array {
  return utf8(`${PART_SIG_FORMAT}\n${partKey}\n${head.generation}\n${head.version}\n${head.envelope}\n${digest}`);
}

/**
 * The entries with their head signed by the controller (`partKey`: parts/<node>/<tenant>/<blueprint>/). With
 * `previous` (the part as stored): when every other entry and the head's fields are the same and it is signed by
 * this key, its signed head is taken as it is (signing is deterministic: the same bytes) — a round re-derives
 * every part, and hashing and signing thousands of unchanged ones cost seconds at 10,000 nodes.
 */
export function signPartEntries(partKey: string, entries: Entries, controller: Key, previous?: Entries): Entries {
  const text = entries.get('gen');
  if (text === undefined) return entries;
  const h = JSON.parse(text) as HeadFields;
  const head = { generation: h.generation, version: h.version, envelope: h.envelope };
  const signer = ed25519KeyPair(controller.bytes).publicKey.toString();
  const out = new Map(entries);
  const kept = previous && sameBody(entries, previous) ? previous.get('gen') : undefined;
  if (kept !== undefined && sameHead(kept, head, signer)) {
    out.set('gen', kept);
    return out;
  }
  const signature = Buffer.from(ed25519Sign(partMessage(partKey, head, partDigest(entries)), controller)).toString('base64');
  out.set('gen', JSON.stringify({ ...head, signer, signature }));
  return out;
}

function sameBody(a: Entries, b: Entries): boolean {
  if (a.size !== b.size) return false;
  for (const [s, v] of a) if (s !== 'gen' && b.get(s) !== v) return false;
  return b.has('gen');
}

function sameHead(text: string, head: HeadFields, signer: string): boolean {
  try {
    const h = JSON.parse(text) as Partial<HeadFields & { signer: string; signature: string }>;
    return h.generation === head.generation && h.version === head.version && h.envelope === head.envelope && h.signer === signer && typeof h.signature === 'string';
  } catch {
    return false;
  }
}

/** Null when the part's head is signed by one of `controllerKeys` over exactly these entries; else the problem. */
export function checkPartSignature(partKey: string, entries: Entries, controllerKeys: ReadonlySet<string>): Problem | null {
  const bad = (code: string, message: string): Problem => ({ code, path: `${partKey}gen`, message, hint: "check the agent's etcd.controllerKeys and the controller's --signing-key; nothing but the controller writes parts" });
  let h: Partial<HeadFields & { signer: string; signature: string }>;
  try {
    h = JSON.parse(entries.get('gen') ?? '') as typeof h;
  } catch {
    return bad('E_PART_SIGNATURE', 'the part has no readable head');
  }
  if (!h.signer || !h.signature) return bad('E_PART_UNSIGNED', 'the part is not signed by a controller');
  if (!controllerKeys.has(h.signer)) return bad('E_PART_SIGNER', `the part is signed by ${h.signer}, which is not one of this node's controller keys`);
  const head = { generation: h.generation!, version: h.version!, envelope: h.envelope! };
  if (!verify(h.signer, h.signature, partMessage(partKey, head, partDigest(entries)))) return bad('E_PART_SIGNATURE', "the controller's signature does not verify for this part (forged or altered)");
  return null;
}

/** An ed25519 public key from its secret (operator and controller keys). */
export function signerOf(secret: Key): string {
  return ed25519KeyPair(secret.bytes).publicKey.toString();
}

// ---- candidate-tables/<network> (and the earlier candidates/<node>) -----------------------------------------------------------------------------
// What the controller tells a hidden node about the other hidden nodes' endpoints (direct paths). Signed like
// part heads: an agent with etcd.controllerKeys takes candidates only from its controller.

export const CANDIDATES_FORMAT = 'zmesh-candidates/v1';

export function candidatesMessage(key: string, candidates: unknown): Uint8Array {
  return utf8(`${CANDIDATES_FORMAT}\n${key}\n${canonicalize(candidates)}`);
}

/** The value of candidate-tables/<network>; signed when the controller has a signing key. */
export function signCandidates(key: string, candidates: unknown, controller: Key | null): string {
  if (!controller) return JSON.stringify({ format: CANDIDATES_FORMAT, candidates });
  const signer = ed25519KeyPair(controller.bytes).publicKey.toString();
  return JSON.stringify({ format: CANDIDATES_FORMAT, signer, candidates, signature: Buffer.from(ed25519Sign(candidatesMessage(key, candidates), controller)).toString('base64') });
}

/** Reads candidate-tables/<network>: the table, or the problem (with `controllerKeys`, only a controller's). */
export function readCandidates(key: string, text: string, controllerKeys: ReadonlySet<string>): { candidates: unknown } | { problem: Problem } {
  const bad = (code: string, message: string) => ({ problem: { code, path: key, message, hint: "nothing but the controller writes candidates; check the agent's etcd.controllerKeys" } });
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return bad('E_CANDIDATES', 'not JSON');
  }
  if (!v || typeof v !== 'object' || v.format !== CANDIDATES_FORMAT) return bad('E_CANDIDATES', `not a ${CANDIDATES_FORMAT} record`);
  if (controllerKeys.size) {
    if (typeof v.signer !== 'string' || !controllerKeys.has(v.signer)) return bad('E_CANDIDATES_SIGNER', 'not signed by one of the controller keys');
    if (!verify(v.signer, v.signature, candidatesMessage(key, v.candidates))) return bad('E_CANDIDATES_SIGNATURE', "the controller's signature does not verify (forged or altered)");
  }
  return { candidates: v.candidates };
}
