// What `zmesh keygen`, `sign`, `verify` and `validate` do (declared in blueprint-commands.ts, loaded when one
// runs): the I/O around src/blueprint: read files, draw key randomness, write secrets 0600, print results.
// Also the readers other commands share: loadBlueprintFile (plan), readSecretKeyFile and publicKeyArg (controller).
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import {
  loadBlueprintOrSigned,
  signBlueprint,
  tenantPublicKey,
  validateBlueprint,
  verifySigned,
  type LoadOptions,
  type Loaded,
} from '../blueprint/index.ts';
import { Key, clampX25519, x25519PublicKey } from '../crypto/keys.ts';
import { KeyFileError, describeKind, formatKeyFile, parsePublicKeyFile, parseSecretKeyFile, type KeyKind, type KeyRole } from '../crypto/keyfile.ts';
import { ValidationError, ZmeshError, formatProblems } from '../errors.ts';
import { readDocument } from './documents.ts';
import { EXIT_INVALID, formatOneProblem, inFile, readText, writeFileAtomic, writeSecretFile } from './util.ts';

/**
 * Reads a file holding a blueprint or a signed envelope (verified). `-` reads stdin. Another kind of document
 * (a plan, an inventory, a key) is one sentence (E_DOCUMENT_KIND); problems inside name the file.
 */
export function loadBlueprintFile(path: string, opts: LoadOptions = {}): Loaded {
  const { text } = readDocument(path, ['blueprint', 'signed']);
  return inFile(path, () => loadBlueprintOrSigned(text, { what: path, ...opts }));
}

/** Reads a file holding a plain blueprint and validates it (a signed envelope is refused with a pointer to verify). */
function readPlainBlueprint(path: string) {
  const { data } = readDocument(path, ['blueprint']);
  return inFile(path, () => validateBlueprint(data, { what: path }));
}

/** Writes a new key file (0600 from creation) saying what it holds; refuses to replace an existing file. */
function writeNewKeyFile(path: string, kind: KeyKind, role: KeyRole, key: Key): void {
  try {
    writeSecretFile(path, formatKeyFile(kind, role, key));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new ZmeshError('E_FILE_EXISTS', 'the file already exists; refusing to overwrite a key', {
        path,
        hint: 'choose another file name, or remove the old key first if you really mean to replace it',
        cause: err,
      });
    }
    throw err;
  }
}

/**
 * Reads a secret key file of one of `kinds` (a zmesh key block, or a bare base64 line from earlier versions);
 * another kind, or a public key, is refused with E_KEY_KIND.
 */
export function readSecretKeyFile(path: string, kinds: KeyKind[] = ['tenant']): Key {
  try {
    const mode = statSync(path).mode;
    if ((mode & 0o077) !== 0) {
      process.stderr.write(`zmesh: warning: ${path} is readable by others (mode ${(mode & 0o777).toString(8)}); chmod 600 it\n`);
    }
  } catch {
    // readText reports a missing file below
  }
  try {
    return parseSecretKeyFile(readText(path, `a ${kinds.map((k) => describeKind(k)).join(' or ')} file`), kinds).key;
  } catch (e) {
    if (!(e instanceof KeyFileError)) throw e;
    const err = new ZmeshError(e.code, `${path} ${e.message}`, { hint: `create one with \`zmesh keygen ${kinds[0]} FILE\``, cause: e });
    err.file = ''; // named in the message
    throw err;
  }
}

/**
 * A public key given on the command line: its base64 text, or the name of a public key file of one of `kinds`
 * (`zmesh keygen … --public-out`). A secret key file is refused (E_KEY_KIND) and never printed.
 */
export function publicKeyArg(value: string, option: string, kinds: KeyKind[] = ['tenant']): string {
  if (Key.isValid(value)) return value;
  let text: string;
  try {
    if (!statSync(value).isFile()) return value; // not a file: the caller reports the malformed key
    text = readText(value);
  } catch {
    return value;
  }
  try {
    return parsePublicKeyFile(text, kinds).toString();
  } catch (e) {
    if (!(e instanceof KeyFileError)) throw e;
    const err = new ZmeshError(e.code, `${option} ${value} ${e.message}`, { hint: `pass the public key \`zmesh keygen ${kinds[0]}\` printed, or its --public-out file`, cause: e });
    err.file = '';
    throw err;
  }
}

/** `zmesh keygen KIND FILE`: a secret key file (0600) and the public key on stdout. */
export function keygen(kind: KeyKind, file: string, flags: { publicOut?: string }): void {
  const secret = kind === 'node' ? clampX25519(new Uint8Array(randomBytes(32))) : Key.fromBytes(new Uint8Array(randomBytes(32)));
  const pub = kind === 'node' ? x25519PublicKey(secret) : Key.parse(tenantPublicKey(secret));
  writeNewKeyFile(file, kind, 'secret', secret);
  if (flags.publicOut) writeNewKeyFile(flags.publicOut, kind, 'public', pub);
  process.stdout.write(`${pub.toString()}\n`);
}

/** `zmesh sign BLUEPRINT --key FILE [--out FILE]`. */
export function sign(file: string, opts: { key: string; out?: string }): void {
  const blueprint = readPlainBlueprint(file);
  const signed = signBlueprint(blueprint, readSecretKeyFile(opts.key));
  const json = `${JSON.stringify(signed, null, 2)}\n`;
  if (opts.out) writeFileAtomic(opts.out, json);
  else process.stdout.write(json);
}

/** `zmesh verify SIGNED [--tenant-key KEY]`. */
export function verify(file: string, opts: { tenantKey?: string }): void {
  const { data: envelope } = readDocument(file, ['signed']);
  const tenantKey = opts.tenantKey === undefined ? undefined : publicKeyArg(opts.tenantKey, '--tenant-key');
  const bp = inFile(file, () => verifySigned(envelope, { tenantKey }));
  const key = (envelope as { signature: { publicKey: string } }).signature.publicKey;
  process.stdout.write(`valid: ${bp.tenant}/${bp.name} version ${bp.version}, key ${key}\n`);
}

/** `zmesh validate BLUEPRINT [--json]`: every problem, exit 2 when there are any. */
export function validate(file: string, opts: { json?: boolean }): void {
  try {
    const blueprint = readPlainBlueprint(file);
    process.stdout.write(opts.json ? `${JSON.stringify({ valid: true, problems: [], blueprint }, null, 2)}\n` : 'valid\n');
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    const n = err.problems.length;
    process.stdout.write(
      opts.json
        ? `${JSON.stringify({ valid: false, problems: err.problems }, null, 2)}\n`
        : n === 1
          ? formatOneProblem(file === '-' ? 'stdin' : file, err.problems[0])
          : `${file === '-' ? 'stdin' : file}: ${n} problems:\n${formatProblems(err.problems)}\n`,
    );
    process.exitCode = EXIT_INVALID;
  }
}
