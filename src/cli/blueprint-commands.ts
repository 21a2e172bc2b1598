// `zmesh keygen tenant|node`, `zmesh sign`, `zmesh verify`, `zmesh validate`.
// The I/O around src/blueprint: read files, draw key randomness, write secrets 0600, print results.
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import type { Command } from 'commander';
import {
  loadBlueprintOrSigned,
  parseBlueprint,
  parseText,
  signBlueprint,
  tenantPublicKey,
  verifySigned,
  type LoadOptions,
  type Loaded,
} from '../blueprint/index.ts';
import { Key, clampX25519, x25519PublicKey } from '../crypto/keys.ts';
import { KeyFileError, formatKeyFile, parseSecretKeyFile, type KeyKind, type KeyRole } from '../crypto/keyfile.ts';
import { ValidationError, ZmeshError, formatProblems } from '../errors.ts';
import { EXIT_INVALID, readText, writeSecretFile } from './util.ts';

export { loadBlueprintOrSigned, type LoadOptions, type Loaded };

/** Reads a file holding a blueprint or a signed envelope (verified). `-` reads stdin. */
export function loadBlueprintFile(path: string, opts: LoadOptions = {}): Loaded {
  return loadBlueprintOrSigned(readText(path), { what: path, ...opts });
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
    return parseSecretKeyFile(readText(path), kinds).key;
  } catch (e) {
    if (!(e instanceof KeyFileError)) throw e;
    throw new ZmeshError(e.code, `${path} ${e.message}`, { path, hint: `create one with \`zmesh keygen ${kinds[0]} FILE\``, cause: e });
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
    .action((file: string, opts: { key: string }) => {
      const blueprint = parseBlueprint(readText(file), { what: file });
      const signed = signBlueprint(blueprint, readSecretKeyFile(opts.key));
      process.stdout.write(`${JSON.stringify(signed, null, 2)}\n`);
    });

  program
    .command('verify')
    .description('verify a signed blueprint; exit 0 when valid, 2 otherwise')
    .argument('<signed>', 'signed blueprint file, or - for stdin')
    .option('--tenant-key <pubkey>', 'require this tenant ed25519 public key (base64)')
    .action((file: string, opts: { tenantKey?: string }) => {
      const envelope = parseText(readText(file), { what: file });
      const bp = verifySigned(envelope, { tenantKey: opts.tenantKey });
      const key = (envelope as { signature: { publicKey: string } }).signature.publicKey;
      process.stdout.write(`valid: ${bp.tenant}/${bp.name} version ${bp.version}, key ${key}\n`);
    });

  program
    .command('validate')
    .description('check a blueprint and print every problem (or "valid"); exit 2 on problems')
    .argument('<blueprint>', 'blueprint file, or - for stdin')
    .option('--json', 'print {valid, problems, blueprint} as JSON')
    .action((file: string, opts: { json?: boolean }) => {
      const text = readText(file);
      try {
        const blueprint = parseBlueprint(text, { what: file });
        process.stdout.write(opts.json ? `${JSON.stringify({ valid: true, problems: [], blueprint }, null, 2)}\n` : 'valid\n');
      } catch (err) {
        if (!(err instanceof ValidationError)) throw err;
        const n = err.problems.length;
        process.stdout.write(
          opts.json
            ? `${JSON.stringify({ valid: false, problems: err.problems }, null, 2)}\n`
            : `${file}: ${n} problem${n === 1 ? '' : 's'}:\n${formatProblems(err.problems)}\n`,
        );
        process.exitCode = EXIT_INVALID;
      }
    });
}
