// Shared CLI plumbing: error printing and exit codes, secret file writing.
import { CommanderError, type Command } from 'commander';
import { mkdirSync, openSync, writeSync, closeSync, fchmodSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ZmeshError, formatProblems, messageWithoutPosition, type Problem } from '../errors.ts';

/** Exit code for invalid input / failed verification. */
export const EXIT_INVALID = 2;

/** Errors as JSON: ZMESH_JSON_ERRORS=1, or a command asked for JSON output (`--json`, `-o json`, `--output json`
 *  before any `--`), so that a script reading JSON gets its errors as JSON too. */
let jsonMode = false;
export function jsonErrors(): boolean {
  return jsonMode || process.env.ZMESH_JSON_ERRORS === '1';
}
export function wantsJson(argv: string[]): boolean {
  const end = argv.indexOf('--');
  const args = end === -1 ? argv : argv.slice(0, end);
  return args.some((a, i) => a === '--json' || a === '-ojson' || a === '--output=json' || a === '-o=json' || ((a === '-o' || a === '--output') && args[i + 1] === 'json'));
}

/** Commander's usage errors exit 2 like every other invalid input: its exit is overridden on every command. */
export function overrideExits(cmd: Command): void {
  cmd.exitOverride();
  // With ZMESH_JSON_ERRORS=1 a usage error is printed as JSON too (runMain), not as commander's line.
  if (jsonErrors()) cmd.configureOutput({ ...cmd.configureOutput(), outputError: () => undefined });
  for (const c of cmd.commands) overrideExits(c);
}

export async function runMain(program: Command, argv: string[]): Promise<void> {
  jsonMode = wantsJson(argv.slice(2));
  overrideExits(program);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : EXIT_INVALID;
      if (err.exitCode !== 0 && jsonErrors()) {
        const message = err.message.replace(/^error: /, '');
        process.stderr.write(JSON.stringify({ code: 'E_USAGE', kind: 'invalid', message, problems: [{ code: 'E_USAGE', path: '', message, hint: 'see --help' }] }) + '\n');
      }
      return;
    }
    process.exitCode = reportError(err);
  }
}

/** The command being run (`zmesh sign`), for messages that say which command wants a file. */
let running = 'zmesh';
export function setRunningCommand(cmd: Command): void {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  running = names.join(' ');
}
export function runningCommand(): string {
  return running;
}

/** Runs `fn`; a ZmeshError it throws that names no file yet is about `path`. */
export function inFile<T>(path: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof ZmeshError && e.file === undefined) e.file = path === '-' ? 'stdin' : path;
    throw e;
  }
}

/** `FILE:LINE:COL: CODE: path: message` and its hint: the file once, as compilers print it (or `zmesh: CODE: …`). */
export function formatOneProblem(file: string | undefined, p: Problem): string {
  const at = file ? `${file}${p.line !== undefined ? `:${p.line}:${p.column}` : ''}` : 'zmesh';
  return `${at}: ${p.code}: ${p.path ? p.path + ': ' : ''}${file ? messageWithoutPosition(p) : p.message}\n${p.hint ? `  → ${p.hint}\n` : ''}`;
}

/** Prints an error for a human (or as JSON: jsonErrors()) and returns the exit code. */
export function reportError(err: unknown): number {
  if (err instanceof ZmeshError) {
    if (jsonErrors()) {
      process.stderr.write(JSON.stringify(err.toJSON()) + '\n');
    } else if (err.problems.length > 1) {
      process.stderr.write(`${err.file || 'zmesh'}: ${err.problems.length} problems:\n${formatProblems(err.problems)}\n`);
    } else {
      const p = err.problems[0] ?? { code: err.code, path: err.path, message: err.message, hint: err.hint };
      process.stderr.write(formatOneProblem(err.file || undefined, { ...p, code: err.code, hint: err.hint || p.hint }));
    }
    return err.kind === 'invalid' ? EXIT_INVALID : 1;
  }
  const e = err as NodeJS.ErrnoException;
  if (jsonErrors()) {
    // A system error (a file that cannot be written, …) is E_IO with its errno in the message; anything else is a bug.
    const code = typeof e?.code === 'string' && /^E[A-Z0-9]+$/.test(e.code) ? 'E_IO' : 'E_INTERNAL';
    process.stderr.write(JSON.stringify({ code, kind: code === 'E_IO' ? 'retryable' : 'internal', message: e?.message ?? String(err), problems: [] }) + '\n');
  } else process.stderr.write(`zmesh: ${e?.message ?? String(err)}\n`);
  return 1;
}

/** Writes a file created with mode 0600 from the start (no window where it is wider); `overwrite`: an existing
 *  file is truncated (and made 0600) instead of refused. */
export function writeSecretFile(path: string, content: string, o: { overwrite?: boolean } = {}): void {
  mkdirSync(dirname(path), { recursive: true });
  const fd = openSync(path, o.overwrite ? 'w' : 'wx', 0o600);
  try {
    fchmodSync(fd, 0o600);
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
}

/**
 * A file's text; `-` reads stdin. A missing file, a directory or an unreadable one is one sentence (E_FILE, exit 2)
 * naming the file and saying what the running command wants (`want`, e.g. "a blueprint (YAML or JSON)").
 */
export function readText(path: string, want = 'a file'): string {
  if (path === '-') return readFileSync(0, 'utf8');
  const refuse = (what: string, hint: string, cause?: unknown): never => {
    const err = new ZmeshError('E_FILE', `${path} ${what}; \`${running}\` wants ${want} here`, { hint, cause });
    err.file = ''; // the message names the file already
    throw err;
  };
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') refuse('does not exist', 'check the path', e);
    if (code === 'EACCES' || code === 'EPERM') refuse('cannot be read (permission denied)', 'run as a user who may read it, or fix its mode', e);
    throw e;
  }
  if (isDir) refuse('is a directory', 'name a file inside it');
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') refuse('cannot be read (permission denied)', 'run as a user who may read it, or fix its mode', e);
    throw e;
  }
}

/**
 * Writes `content` to `path` all at once: into a temporary file (0600 when `secret`) in the same directory, then
 * renamed over `path`. A failure leaves no file (and no 0-byte one) behind.
 */
export function writeFileAtomic(path: string, content: string, mode = 0o644): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${Date.now().toString(36)}.tmp`);
  try {
    const fd = openSync(tmp, 'wx', mode);
    try {
      fchmodSync(fd, mode);
      writeSync(fd, content);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}
