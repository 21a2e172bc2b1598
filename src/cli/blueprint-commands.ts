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
import { ValidationError, ZmeshError, formatProblems } from '../errors.ts';
import { EXIT_INVALID, readText, writeSecretFile } from './util.ts';

export { loadBlueprintOrSigned, type LoadOptions, type Loaded };

/** Reads a file holding a blueprint or a signed envelope (verified). `-` reads stdin. */
export function loadBlueprintFile(path: string, opts: LoadOptions = {}): Loaded {
  return loadBlueprintOrSigned(readText(path), { what: path, ...opts });
}

/** Writes a new secret file (0600 from creation); refuses to replace an existing file. */
function writeNewSecret(path: string, secret: Key): void {
  try {
    writeSecretFile(path, `${secret.toString()}\n`);
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

/** Reads a tenant secret key file (base64 of 32 bytes, one line). */
export function readSecretKeyFile(path: string): Key {
  try {
    const mode = statSync(path).mode;
    if ((mode & 0o077) !== 0) {
      process.stderr.write(`zmesh: warning: ${path} is readable by others (mode ${(mode & 0o777).toString(8)}); chmod 600 it\n`);
    }
  } catch {
    // readText reports a missing file below
  }
  const text = readText(path).trim();
  if (!Key.isValid(text)) {
    throw new ZmeshError('E_KEY_FORMAT', `${path} does not hold a key (44 characters of base64 for 32 bytes)`, {
      path,
      hint: 'create one with `zmesh keygen tenant FILE`',
    });
  }
  return Key.parse(text);
}

export function registerBlueprintCommands(program: Command): void {
  const keygen = program.command('keygen').description('create a secret key file (mode 0600) and print its public key');
  keygen
    .command('tenant')
    .description('a tenant ed25519 signing key')
    .argument('<file>', 'where to write the secret (must not exist)')
    .action((file: string) => {
      const secret = Key.fromBytes(new Uint8Array(randomBytes(32)));
      writeNewSecret(file, secret);
      process.stdout.write(`${tenantPublicKey(secret)}\n`);
    });
  for (const [kind, what] of [
    ['operator', 'an operator ed25519 signing key: signs node enrollments (`zmesh controller node approve --operator-key FILE`)'],
    ['controller', "a controller ed25519 signing key: signs every node part (`zmesh controller --signing-key FILE`; agents list the public key in etcd.controllerKeys)"],
  ] as const) {
    keygen
      .command(kind)
      .description(what)
      .argument('<file>', 'where to write the secret (must not exist)')
      .action((file: string) => {
        const secret = Key.fromBytes(new Uint8Array(randomBytes(32)));
        writeNewSecret(file, secret);
        process.stdout.write(`${tenantPublicKey(secret)}\n`);
      });
  }
  keygen
    .command('node')
    .description('a node X25519 identity key (the public key is what `wg pubkey` prints)')
    .argument('<file>', 'where to write the secret (must not exist)')
    .action((file: string) => {
      const secret = clampX25519(new Uint8Array(randomBytes(32)));
      writeNewSecret(file, secret);
      process.stdout.write(`${x25519PublicKey(secret).toString()}\n`);
    });

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
