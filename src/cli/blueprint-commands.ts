// `zmesh keygen tenant|node`, `zmesh sign`, `zmesh verify`, `zmesh validate`.
// The I/O around src/blueprint: read files, draw key randomness, write secrets 0600, print results.
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import type { Command } from 'commander';
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

export { loadBlueprintOrSigned, type LoadOptions, type Loaded };

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

export function registerBlueprintCommands(program: Command): void {
  const keygen = program
    .command('keygen')
    .description('create a secret key file (mode 0600, a block naming its kind) and print its public key');
  const kinds: [KeyKind, string][] = [
    ['tenant', 'a tenant ed25519 signing key (zmesh sign --key FILE)'],
    ['node', 'a node X25519 identity key (the public key is what `wg pubkey` prints)'],
    ['operator', 'an operator ed25519 signing key: signs node enrollments (`zmesh controller node approve --sign FILE`)'],
    ['controller', "a controller ed25519 signing key: signs every node part (`zmesh controller --signing-key FILE`; agents list the public key in etcd.controllerKeys)"],
  ];
  for (const [kind, what] of kinds) {
    keygen
      .command(kind)
      .description(what)
      .argument('<file>', 'where to write the secret (must not exist)')
      .option('--public-out <file>', 'also write the public key to this file (a block naming it a public key)')
      .action((file: string, flags: { publicOut?: string }) => {
        const secret = kind === 'node' ? clampX25519(new Uint8Array(randomBytes(32))) : Key.fromBytes(new Uint8Array(randomBytes(32)));
        const pub = kind === 'node' ? x25519PublicKey(secret) : Key.parse(tenantPublicKey(secret));
        writeNewKeyFile(file, kind, 'secret', secret);
        if (flags.publicOut) writeNewKeyFile(flags.publicOut, kind, 'public', pub);
        process.stdout.write(`${pub.toString()}\n`);
      });
  }

  program
    .command('sign')
    .description('validate a blueprint (YAML or JSON) and print it signed, as JSON')
    .argument('<blueprint>', 'blueprint file, or - for stdin')
    .requiredOption('--key <file>', 'tenant secret key file (from `zmesh keygen tenant`)')
    .option('--out <file>', 'write the signed blueprint here (replaced whole: nothing is left behind on failure)')
    .addHelpText('after', '\nExamples:\n  zmesh sign shop.yaml --key acme.key --out shop.signed.json\n  zmesh sign - --key acme.key < shop.yaml > shop.signed.json')
    .action((file: string, opts: { key: string; out?: string }) => {
      const blueprint = readPlainBlueprint(file);
      const signed = signBlueprint(blueprint, readSecretKeyFile(opts.key));
      const json = `${JSON.stringify(signed, null, 2)}\n`;
      if (opts.out) writeFileAtomic(opts.out, json);
      else process.stdout.write(json);
    });

  program
    .command('verify')
    .description('verify a signed blueprint; exit 0 when valid, 2 otherwise')
    .argument('<signed>', 'signed blueprint file, or - for stdin')
    .option('--tenant-key <pubkey>', 'require this tenant ed25519 public key (base64, or a --public-out file)')
    .addHelpText('after', '\nExamples:\n  zmesh verify shop.signed.json --tenant-key acme.pub\n  zmesh verify shop.signed.json --tenant-key 3qkMm7V9/+Zx9wvfnncYa68FYdi3wAY4oFQ8igBQarw=')
    .action((file: string, opts: { tenantKey?: string }) => {
      const { data: envelope } = readDocument(file, ['signed']);
      const tenantKey = opts.tenantKey === undefined ? undefined : publicKeyArg(opts.tenantKey, '--tenant-key');
      const bp = inFile(file, () => verifySigned(envelope, { tenantKey }));
      const key = (envelope as { signature: { publicKey: string } }).signature.publicKey;
      process.stdout.write(`valid: ${bp.tenant}/${bp.name} version ${bp.version}, key ${key}\n`);
    });

  program
    .command('validate')
    .description('check a blueprint and print every problem (or "valid"); exit 2 on problems')
    .argument('<blueprint>', 'blueprint file, or - for stdin')
    .option('--json', 'print {valid, problems, blueprint} as JSON')
    .addHelpText('after', '\nExamples:\n  zmesh validate shop.yaml\n  zmesh validate --json shop.yaml | jq .problems')
    .action((file: string, opts: { json?: boolean }) => {
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
    });
}
