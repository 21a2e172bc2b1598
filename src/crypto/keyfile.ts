// Key files that say what they hold. `zmesh keygen` writes a PEM-style block naming the kind and whether it is a
// secret or a public key:
//   -----BEGIN ZMESH TENANT ED25519 SECRET KEY-----
//   <base64 of 32 bytes>
//   -----END ZMESH TENANT ED25519 SECRET KEY-----
// so that a node's X25519 identity, or a public key, given where a tenant's signing key is wanted is refused
// (E_KEY_KIND) instead of used. A bare line of base64 (the files of earlier versions, and what labs write) is
// still read, as a secret of the kind wanted. Pure: text in, key out.
import { Key } from './keys.ts';

export type KeyKind = 'tenant' | 'node' | 'operator' | 'controller';
export type KeyRole = 'secret' | 'public';

const ALG: Record<KeyKind, string> = { tenant: 'ED25519', node: 'X25519', operator: 'ED25519', controller: 'ED25519' };
const BLOCK = /^-----BEGIN ZMESH (TENANT|NODE|OPERATOR|CONTROLLER) (ED25519|X25519) (SECRET|PUBLIC) KEY-----\n([A-Za-z0-9+/=]+)\n-----END ZMESH \1 \2 \3 KEY-----\n?$/;

export class KeyFileError extends Error {
  constructor(
    readonly code: 'E_KEY_KIND' | 'E_KEY_FORMAT',
    message: string,
  ) {
    super(message);
  }
}

export function describeKind(kind: KeyKind, role: KeyRole = 'secret'): string {
  return `${kind} ${ALG[kind].toLowerCase()} ${role} key`;
}

export function formatKeyFile(kind: KeyKind, role: KeyRole, key: Key): string {
  const label = `ZMESH ${kind.toUpperCase()} ${ALG[kind]} ${role.toUpperCase()} KEY`;
  return `-----BEGIN ${label}-----\n${key.toString()}\n-----END ${label}-----\n`;
}

/** The key in `text`, which must be a secret of one of `wanted` (a bare base64 line counts as one). */
export function parseSecretKeyFile(text: string, wanted: KeyKind[]): { key: Key; kind: KeyKind | null } {
  const t = text.replace(/\r\n/g, '\n').trim() + '\n';
  const m = BLOCK.exec(t);
  if (!m) {
    const bare = t.trim();
    if (Key.isValid(bare)) return { key: Key.parse(bare), kind: null };
    throw new KeyFileError('E_KEY_FORMAT', 'does not hold a key (a zmesh key block, or 44 characters of base64 for 32 bytes)');
  }
  const kind = m[1].toLowerCase() as KeyKind;
  const role = m[3].toLowerCase() as KeyRole;
  if (ALG[kind] !== m[2]) throw new KeyFileError('E_KEY_FORMAT', `a ${kind} key is ${ALG[kind]}, the file says ${m[2]}`);
  if (!Key.isValid(m[4])) throw new KeyFileError('E_KEY_FORMAT', 'the key block does not hold 44 characters of base64 for 32 bytes');
  const want = wanted.map((k) => describeKind(k)).join(' or ');
  if (role === 'public') throw new KeyFileError('E_KEY_KIND', `holds a ${describeKind(kind, 'public')}, not a secret: this needs a ${want}`);
  if (!wanted.includes(kind)) throw new KeyFileError('E_KEY_KIND', `holds a ${describeKind(kind)}: this needs a ${want}`);
  return { key: Key.parse(m[4]), kind };
}

/**
 * The public key in `text`, a public key file of one of `wanted` (`zmesh keygen … --public-out`) or a bare base64
 * line. A secret key file is refused (E_KEY_KIND): it must never be taken, or echoed, where a public key goes.
 */
export function parsePublicKeyFile(text: string, wanted: KeyKind[]): Key {
  const t = text.replace(/\r\n/g, '\n').trim() + '\n';
  const m = BLOCK.exec(t);
  if (!m) {
    const bare = t.trim();
    if (Key.isValid(bare)) return Key.parse(bare);
    throw new KeyFileError('E_KEY_FORMAT', 'does not hold a public key (a zmesh public key block, or 44 characters of base64 for 32 bytes)');
  }
  const kind = m[1].toLowerCase() as KeyKind;
  const want = wanted.map((k) => describeKind(k, 'public')).join(' or ');
  if (m[3] === 'SECRET') throw new KeyFileError('E_KEY_KIND', `holds a ${describeKind(kind)}: this needs a ${want}; never hand a secret key file out`);
  if (!wanted.includes(kind)) throw new KeyFileError('E_KEY_KIND', `holds a ${describeKind(kind, 'public')}: this needs a ${want}`);
  if (!Key.isValid(m[4])) throw new KeyFileError('E_KEY_FORMAT', 'the key block does not hold 44 characters of base64 for 32 bytes');
  return Key.parse(m[4]);
}
