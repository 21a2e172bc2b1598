// Shared CLI plumbing: error printing and exit codes, secret file writing.
import { CommanderError, type Command } from 'commander';
import { mkdirSync, openSync, writeSync, closeSync, fchmodSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ZmeshError, formatProblems } from '../errors.ts';

/** Exit code for invalid input / failed verification. */
export const EXIT_INVALID = 2;

/** Commander's usage errors exit 2 like every other invalid input: its exit is overridden on every command. */
export function overrideExits(cmd: Command): void {
  cmd.exitOverride();
  for (const c of cmd.commands) overrideExits(c);
}

export async function runMain(program: Command, argv: string[]): Promise<void> {
  overrideExits(program);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : EXIT_INVALID;
      return;
    }
    process.exitCode = reportError(err);
  }
}

/** Prints an error for a human (or as JSON with ZMESH_JSON_ERRORS=1) and returns the exit code. */
export function reportError(err: unknown): number {
  if (err instanceof ZmeshError) {
    if (process.env.ZMESH_JSON_ERRORS === '1') {
      process.stderr.write(JSON.stringify(err.toJSON()) + '\n');
    } else if (err.problems.length > 1) {
      process.stderr.write(`zmesh: ${err.problems.length} problems:\n${formatProblems(err.problems)}\n`);
    } else {
      process.stderr.write(`zmesh: ${err.code}: ${err.path ? err.path + ': ' : ''}${err.problems[0]?.message ?? err.message}\n`);
      if (err.hint) process.stderr.write(`  → ${err.hint}\n`);
    }
    return err.kind === 'invalid' ? EXIT_INVALID : 1;
  }
  const e = err as NodeJS.ErrnoException;
  process.stderr.write(`zmesh: ${e?.message ?? String(err)}\n`);
  return 1;
}

/** Writes a file created with mode 0600 from the start (no window where it is wider). */
export function writeSecretFile(path: string, content: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const fd = openSync(path, 'wx', 0o600);
  try {
    fchmodSync(fd, 0o600);
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
}

/** Writes a file 0600, replacing an existing one. */
export function writePrivateFile(path: string, content: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const fd = openSync(path, 'w', 0o600);
  try {
    fchmodSync(fd, 0o600);
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
}

export function readText(path: string): string {
  if (path === '-') return readFileSync(0, 'utf8');
  return readFileSync(path, 'utf8');
}
