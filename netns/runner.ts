// The one command runner: every process netns starts goes through a Runner. The real one is over execa:
// argv arrays only (never a shell), LC_ALL=C, a list of acceptable exit codes, commands counted (reads vs
// mutating) and optionally recorded. Input marked secret is never logged, recorded or put in an error.
// A fake Runner (an in-memory OS) replaces it in unit tests.
// A process that cannot be started (out of descriptors: EMFILE/ENFILE, out of processes or memory: EAGAIN,
// ENOMEM, or a missing binary: ENOENT) is an ordinary CommandError with code E_SPAWN, never a crash (see
// withChild below).
import type { ChildProcess } from 'node:child_process';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { execa } from 'execa';
import { ZmeshError } from '../src/errors.ts';

export interface RunOptions {
  /** Written to the command's stdin. */
  input?: string;
  /** Exit codes that are not errors (default [0]). */
  okCodes?: number[];
  /** Run inside this named network namespace (/run/netns/<name>). */
  netns?: string;
  /** Whether the command changes the system (counted apart from reads). */
  mutating: boolean;
  /** The input is a secret: never logged or recorded. */
  secretInput?: boolean;
  /**
   * A secret handed over in a 0600 file in a 0700 directory (on /run), deleted as soon as the command ends:
   * every argv element equal to SECRET_FILE is replaced by the file's path. For tools that only read secrets
   * from a path (`wg set … private-key <path>`): /dev/stdin does not work when stdin is a socket, as node's is.
   */
  secretFile?: string;
  /** Kill the command after this long (default 15 s). */
  timeoutMs?: number;
}

export interface RunResult {
  argv: string[];
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface SpawnOptions {
  env?: Record<string, string>;
  /** Append the daemon's stdout and stderr to this file (created 0600). */
  logFile?: string;
  /**
   * Start the daemon in a session of its own (setsid; the default) or stay in this process's session. With
   * autogroup scheduling a session is one scheduling group, so this decides whom the daemon shares CPU with.
   */
  newSession?: boolean;
}

/** A long-running process started through the runner (e.g. wireguard-go). */
export interface DaemonHandle {
  pid: number;
  /** Settles when the process exits. Never rejects. */
  exited: Promise<{ exitCode: number | null; signal: string | null }>;
}

export interface Runner {
  run(argv: string[], opts: RunOptions): Promise<RunResult>;
  /** Starts a daemon that outlives this process (unreferenced; a session of its own unless newSession is false). Counted as mutating. */
  spawnDaemon(argv: string[], opts?: SpawnOptions): DaemonHandle;
}

export interface RecordedCommand {
  argv: string[];
  netns?: string;
  mutating: boolean;
  /** The input, or "<secret>" when it was marked secret. */
  input?: string;
  /** A secret file was handed over (its content is never recorded). */
  secretFile?: boolean;
  exitCode: number;
  ms: number;
}

export interface CommandCounts {
  reads: number;
  mutating: number;
}

/** A command that failed (exit code not acceptable, could not start, or timed out). */
export class CommandError extends ZmeshError {
  readonly argv: string[];
  readonly exitCode: number;
  readonly stderr: string;
  constructor(argv: string[], exitCode: number, stderr: string, opts: { cause?: unknown; netns?: string; code?: 'E_NETNS_COMMAND' | 'E_SPAWN'; hint?: string } = {}) {
    const where = opts.netns ? ` (in netns ${opts.netns})` : '';
    const detail = stderr.trim().split('\n').slice(0, 6).join(' | ').slice(0, 600);
    const what = opts.code === 'E_SPAWN' ? 'could not be started' : `failed with exit code ${exitCode}`;
    super(opts.code ?? 'E_NETNS_COMMAND', `${argv.join(' ')}${where} ${what}${detail ? `: ${detail}` : ''}`, {
      kind: 'retryable',
      hint: opts.hint ?? 'see stderr; the next apply retries',
      cause: opts.cause,
    });
    this.name = 'CommandError';
    this.argv = argv;
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

/** Placeholder in argv for the path of RunOptions.secretFile. */
export const SECRET_FILE = '{{secret-file}}';

/** Writes a secret to a fresh 0600 file in a 0700 directory; returns its path. The caller deletes it. */
export function writeSecretFile(dir: string, content: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, `s-${randomBytes(8).toString('hex')}`);
  const fd = openSync(path, 'wx', 0o600);
  try {
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
  return path;
}

/** errno codes of a process that could not be started, and what to do about each. */
const SPAWN_HINTS: Record<string, string> = {
  EMFILE: 'the agent is out of file descriptors (RLIMIT_NOFILE); it retries with backoff. Raise LimitNOFILE (deploy/zmesh-agent.service) if this persists',
  ENFILE: 'the system is out of file descriptors (fs.file-max); the agent retries with backoff',
  EAGAIN: 'out of processes or threads (RLIMIT_NPROC, pids.max); the agent retries with backoff',
  ENOMEM: 'out of memory; the agent retries with backoff',
  ENOENT: 'the command is not installed or not on PATH (scripts/deps.sh installs what zmesh needs)',
  EACCES: 'the command is not executable by the agent',
};

/** The errno code of a spawn failure (`spawn ip EMFILE`), or null when the error is something else. */
export function spawnErrorCode(e: unknown): string | null {
  const err = e as { code?: unknown; syscall?: unknown } | null;
  if (!err || typeof err.code !== 'string' || typeof err.syscall !== 'string' || !err.syscall.startsWith('spawn')) return null;
  return err.code;
}

/** A CommandError for a process that could not be started (E_SPAWN, retryable). */
export function spawnError(argv: string[], cause: unknown, netns?: string): CommandError {
  const code = spawnErrorCode(cause) ?? (cause as { code?: string })?.code ?? '';
  const message = cause instanceof Error ? cause.message : String(cause);
  return new CommandError(argv, -1, message, { cause, netns, code: 'E_SPAWN', hint: SPAWN_HINTS[code] ?? 'the next apply retries' });
}

/**
 * Runs `start`, which starts one process synchronously (an execa call), and returns what it returned or threw
 * together with the ChildProcess node made for it, taken from node's `child_process` diagnostics channel while
 * `start` runs (synchronously, so it is ours). Why: execa 9 throws synchronously when spawn() fails with
 * EMFILE/ENFILE (node then returns a ChildProcess without stdio, and execa reads `subprocess.stdio`), and node's
 * queued 'error' event on that ChildProcess has no listener: an unhandled 'error' event, which ended the agent.
 */
export function withChild<T>(start: () => T): { ok: true; value: T; child: ChildProcess | null } | { ok: false; error: unknown; child: ChildProcess | null } {
  let child: ChildProcess | null = null;
  const onChild = (m: unknown) => {
    child ??= (m as { process: ChildProcess }).process;
  };
  subscribe('child_process', onChild);
  try {
    const value = start();
    return { ok: true, value, child };
  } catch (error) {
    return { ok: false, error, child };
  } finally {
    unsubscribe('child_process', onChild);
  }
}

/**
 * After `start` threw: consumes the spawn error node emits on the next tick (so it is never unhandled) and
 * returns the E_SPAWN error. The listener is attached before anything is awaited.
 */
export function spawnFailure(argv: string[], thrown: unknown, child: ChildProcess | null, netns?: string): Promise<CommandError> {
  if (!child || child.pid !== undefined) return Promise.resolve(thrown instanceof CommandError ? thrown : spawnError(argv, thrown, netns));
  return new Promise((resolve) => {
    // node emits it in the very next tick; setImmediate runs after every pending tick.
    const t = setImmediate(() => resolve(spawnError(argv, syncSpawnCause(thrown), netns)));
    child.once('error', (e) => {
      clearImmediate(t);
      resolve(spawnError(argv, e, netns));
    });
  });
}

/** The cause of a synchronous spawn failure, before node says which: only EMFILE and ENFILE end spawn() that early. */
function syncSpawnCause(thrown: unknown): Error {
  return Object.assign(new Error(`out of file descriptors (EMFILE or ENFILE): ${thrown instanceof Error ? thrown.message : String(thrown)}`), {
    code: 'EMFILE',
    syscall: 'spawn',
    cause: thrown,
  });
}

/** Where a command runs when it is given a namespace: setns only (no /sys remount, faster than `ip netns exec`). */
export function inNetns(netns: string, argv: string[]): string[] {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(netns)) throw new TypeError(`bad namespace name ${JSON.stringify(netns)}`);
  return ['nsenter', `--net=/run/netns/${netns}`, '--', ...argv];
}

export interface ExecaRunnerOptions {
  /** Directory for secret files (default /run/zmesh/secrets). */
  secretDir?: string;
  /** Keep a log of every command (for tests). */
  record?: boolean;
  /** Called for every finished command (never sees secret input). */
  onCommand?: (c: RecordedCommand) => void;
}

export class ExecaRunner implements Runner {
  readonly counts: CommandCounts = { reads: 0, mutating: 0 };
  readonly log: RecordedCommand[] = [];
  private readonly opts: ExecaRunnerOptions;

  constructor(opts: ExecaRunnerOptions = {}) {
    this.opts = opts;
  }

  resetCounts(): void {
    this.counts.reads = 0;
    this.counts.mutating = 0;
  }

  async run(argv: string[], opts: RunOptions): Promise<RunResult> {
    if (!Array.isArray(argv) || argv.length === 0 || argv.some((a) => typeof a !== 'string')) {
      throw new TypeError('run() takes a non-empty argv array of strings');
    }
    const full = opts.netns ? inNetns(opts.netns, argv) : argv;
    if (opts.mutating) this.counts.mutating++;
    else this.counts.reads++;
    const started = performance.now();
    let secretPath: string | null = null;
    let r;
    try {
      // Out of descriptors, the secret file cannot be written either: that is a failure to start too.
      try {
        secretPath = opts.secretFile !== undefined ? writeSecretFile(this.opts.secretDir ?? '/run/zmesh/secrets', opts.secretFile) : null;
      } catch (e) {
        throw spawnError(full, e, opts.netns);
      }
      const exec = secretPath === null ? full : full.map((a) => (a === SECRET_FILE ? secretPath! : a));
      const s = withChild(() =>
        execa(exec[0], exec.slice(1), {
          input: opts.input,
          stdin: opts.input === undefined ? 'ignore' : 'pipe',
          env: { LC_ALL: 'C', PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
          extendEnv: false,
          reject: false,
          stripFinalNewline: false,
          timeout: opts.timeoutMs ?? 15_000,
          killSignal: 'SIGKILL',
        }),
      );
      if (!s.ok) throw await spawnFailure(full, s.error, s.child, opts.netns);
      r = await s.value;
    } finally {
      if (secretPath !== null) rmSync(secretPath, { force: true });
    }
    const exitCode = typeof r.exitCode === 'number' ? r.exitCode : -1;
    const rec: RecordedCommand = {
      argv: full,
      netns: opts.netns,
      mutating: opts.mutating,
      input: opts.input === undefined ? undefined : opts.secretInput ? '<secret>' : opts.input,
      secretFile: opts.secretFile !== undefined ? true : undefined,
      exitCode,
      ms: performance.now() - started,
    };
    if (this.opts.record) this.log.push(rec);
    this.opts.onCommand?.(rec);
    const stdout = typeof r.stdout === 'string' ? r.stdout : '';
    const stderr = typeof r.stderr === 'string' ? r.stderr : '';
    const ok = opts.okCodes ?? [0];
    // Could not start (ENOENT, EAGAIN…: execa reports these as a failed result with the spawn error as cause).
    if (r.failed && !r.timedOut && typeof r.exitCode !== 'number' && spawnErrorCode(r.cause) !== null) throw spawnError(full, r.cause, opts.netns);
    if (r.failed && (r.timedOut || exitCode < 0 || !ok.includes(exitCode))) {
      const why = r.timedOut ? `timed out after ${opts.timeoutMs ?? 15_000} ms` : stderr || (r.cause instanceof Error ? r.cause.message : '');
      throw new CommandError(full, exitCode, why, { cause: r.cause ?? r, netns: opts.netns });
    }
    return { argv: full, exitCode, stdout, stderr };
  }

  spawnDaemon(argv: string[], opts: SpawnOptions = {}): DaemonHandle {
    this.counts.mutating++;
    let fd: number | undefined;
    try {
      if (opts.logFile) fd = openSync(opts.logFile, 'a', 0o600);
    } catch (e) {
      throw spawnError(argv, e);
    }
    try {
      const s = withChild(() => execa(argv[0], argv.slice(1), {
        env: { LC_ALL: 'C', PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...opts.env },
        extendEnv: false,
        detached: opts.newSession !== false,
        cleanup: false,
        reject: false,
        stdin: 'ignore',
        // A file descriptor handed straight to the child (execa supports it; its types only list 'ignore' here),
        // so the daemon's output never flows through this process and survives its exit.
        stdout: (fd ?? 'ignore') as 'ignore',
        stderr: (fd ?? 'ignore') as 'ignore',
      }));
      if (!s.ok) {
        // Synchronous API: node's spawn error (next tick) is consumed by spawnFailure and not waited for.
        void spawnFailure(argv, s.error, s.child);
        throw s.error instanceof CommandError ? s.error : spawnError(argv, s.child && s.child.pid === undefined ? syncSpawnCause(s.error) : s.error);
      }
      const child = s.value;
      const rec: RecordedCommand = { argv, mutating: true, exitCode: 0, ms: 0 };
      if (this.opts.record) this.log.push(rec);
      this.opts.onCommand?.(rec);
      if (child.pid === undefined) {
        // Failed asynchronously (ENOENT, EAGAIN…): execa settles with the cause; nothing is left unhandled.
        void child.catch(() => undefined);
        throw spawnError(argv, new Error('could not start'));
      }
      child.unref();
      const exited = child.then(
        (r) => ({ exitCode: typeof r.exitCode === 'number' ? r.exitCode : null, signal: r.signal ?? null }),
        () => ({ exitCode: null, signal: null }),
      );
      return { pid: child.pid, exited };
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }
}

/** A runner view that tallies what goes through it (the driver counts per apply with this). */
export class TallyRunner implements Runner {
  readonly counts: CommandCounts = { reads: 0, mutating: 0 };
  /** argv of every mutating command, joined with spaces (never input). */
  readonly mutations: string[] = [];
  private readonly inner: Runner;
  private readonly maxParallel: number;
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  /** At most `maxParallel` commands run at once through this view (default 6). */
  constructor(inner: Runner, maxParallel = 6) {
    this.inner = inner;
    this.maxParallel = maxParallel;
  }
  async run(argv: string[], opts: RunOptions): Promise<RunResult> {
    if (opts.mutating) {
      this.counts.mutating++;
      this.mutations.push((opts.netns ? `[${opts.netns}] ` : '') + argv.join(' '));
    } else {
      this.counts.reads++;
    }
    if (this.running >= this.maxParallel) await new Promise<void>((r) => this.waiting.push(r));
    this.running++;
    try {
      return await this.inner.run(argv, opts);
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }
  spawnDaemon(argv: string[], opts?: SpawnOptions): DaemonHandle {
    this.counts.mutating++;
    this.mutations.push(argv.join(' '));
    return this.inner.spawnDaemon(argv, opts);
  }
}
