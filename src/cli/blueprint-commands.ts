// `zmesh keygen tenant|node|operator|controller`, `zmesh sign`, `zmesh verify`, `zmesh validate`: declared here,
// done in blueprint-actions.ts, which loads (with src/blueprint, its yaml and @noble) only when one of them runs.
import type { Command } from 'commander';
import type { KeyKind } from '../crypto/keyfile.ts';

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
      .action(async (file: string, flags: { publicOut?: string }) => (await import('./blueprint-actions.ts')).keygen(kind, file, flags));
  }

  program
    .command('sign')
    .description('validate a blueprint (YAML or JSON) and print it signed, as JSON')
    .argument('<blueprint>', 'blueprint file, or - for stdin')
    .requiredOption('--key <file>', 'tenant secret key file (from `zmesh keygen tenant`)')
    .option('--out <file>', 'write the signed blueprint here (replaced whole: nothing is left behind on failure)')
    .action(async (file: string, opts: { key: string; out?: string }) => (await import('./blueprint-actions.ts')).sign(file, opts));

  program
    .command('verify')
    .description('verify a signed blueprint; exit 0 when valid, 2 otherwise')
    .argument('<signed>', 'signed blueprint file, or - for stdin')
    .option('--tenant-key <pubkey>', 'require this tenant ed25519 public key (base64, or a --public-out file)')
    .action(async (file: string, opts: { tenantKey?: string }) => (await import('./blueprint-actions.ts')).verify(file, opts));

  program
    .command('validate')
    .description('check a blueprint and print every problem (or "valid"); exit 2 on problems')
    .argument('<blueprint>', 'blueprint file, or - for stdin')
    .option('--json', 'print {valid, problems, blueprint} as JSON')
    .action(async (file: string, opts: { json?: boolean }) => (await import('./blueprint-actions.ts')).validate(file, opts));
}
