// The one command runner: every process netns starts goes through a Runner. The real one is over node's child_process:
// argv arrays only (never a shell), LC_ALL=C, a list of acceptable exit codes, commands counted (reads vs
// mutating) and optionally recorded. Input marked secret is never logged, recorded or put in an error.
// A fake Runner (an in-memory OS) replaces it in unit tests.
// A process that cannot be started (out of descriptors: EMFILE/ENFILE, out of processes or memory: EAGAIN,
// ENOMEM, or a missing binary: ENOENT) is an ordinary CommandError with code E_SPAWN, never a crash (see
// runProcess below).
import { AsyncLocalStorage } from 'node:async_hooks';
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, existsSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
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
  /** Kill the command when its stdout or stderr grows past this many bytes (default MAX_BUFFER, execa's 100 MB). */
  maxBuffer?: number;
}

/** The most output (bytes, each of stdout and stderr) a command may give before it is killed: execa's default. */
export const MAX_BUFFER = 100_000_000;

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
  /**
   * Whether a named network namespace exists (its /run/netns/<name> handle), without a process. Optional: a
   * runner without it is assumed to have every namespace (the driver then reads, and a missing one fails the read).
   */
  netnsExists?(name: string): boolean;
  /**
   * Runs `fn` with its read-only commands shared (optional): within it (its async context), a read-only command
   * run again with the same argv, namespace, input and accepted exit codes answers from the first run, and any
   * mutating command forgets every read (before it starts and when it ends). The agent wraps a reconcile in it,
   * so the runtime reads what the data plane just read instead of running it again.
   */
  shareReads?<T>(fn: () => Promise<T>): Promise<T>;
  /** A read-only command's run shared in the current scope (see shareReads), or undefined; runs nothing. */
  sharedRead?(argv: string[], opts: Pick<RunOptions, 'netns' | 'input' | 'okCodes'>): Promise<RunResult> | undefined;
  /** Forgets the current scope's shared reads after a change made without a command (a signal, an engine call). */
  forgetReads?(): void;
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

/** What one finished (or unstartable) process gave back. */
interface ProcessOutcome {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** The stream that went over maxBuffer (the process was killed), if one did. */
  overflow?: 'stdout' | 'stderr';
  /** The process could not be started (ENOENT, EMFILE, EAGAIN…): node's spawn error. */
  spawnError?: Error;
}

/** The environment of every command: LC_ALL=C and PATH only (nothing of the agent's own environment). */
function commandEnv(extra?: Record<string, string>): Record<string, string> {
  return { LC_ALL: 'C', PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...extra };
}

/**
 * Runs one process to its end with node's child_process (no wrapper: execa cost ~3 ms and ~6 MiB per agent,
 * docs/benchmarks.md). Never rejects: a process that cannot be started settles with `spawnError`. Out of
 * descriptors node returns a ChildProcess without stdio and emits 'error' on the next tick; the listener is
 * attached before that, so it is never an unhandled 'error' event.
 */
export function runProcess(argv: string[], input: string | undefined, timeoutMs: number, maxBuffer = MAX_BUFFER): Promise<ProcessOutcome> {
  return new Promise((resolve) => {
    let child: ChildProcess;
    try {
      child = spawn(argv[0], argv.slice(1), { env: commandEnv(), stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    } catch (e) {
      resolve({ exitCode: null, signal: null, stdout: '', stderr: '', timedOut: false, spawnError: e instanceof Error ? e : new Error(String(e)) });
      return;
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    let overflow: 'stdout' | 'stderr' | undefined;
    let failed: Error | undefined;
    let done = false;
    const finish = (exitCode: number | null, signal: NodeJS.Signals | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ exitCode, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), timedOut, overflow, spawnError: failed });
    };
    // Killed (timeout, too much output): SIGKILL, and our ends of the pipes closed, so that 'close' comes even when
    // a process the command started (and that outlives it) still holds them.
    const kill = () => {
      child.kill('SIGKILL');
      child.stdout?.destroy();
      child.stderr?.destroy();
      child.stdin?.destroy();
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, timeoutMs);
    const sizes = { stdout: 0, stderr: 0 };
    const collect = (name: 'stdout' | 'stderr', into: Buffer[]) => (b: Buffer) => {
      if (overflow) return;
      sizes[name] += b.length;
      if (sizes[name] > maxBuffer) {
        overflow = name;
        kill();
      } else into.push(b);
    };
    child.stdout?.on('data', collect('stdout', out));
    child.stderr?.on('data', collect('stderr', err));
    child.on('error', (e) => {
      // Not started: there is no 'close' to wait for when node made no stdio (EMFILE).
      if (child.pid === undefined) {
        failed = e;
        finish(null, null);
      }
    });
    child.on('close', (code, signal) => finish(code, signal));
    if (input !== undefined && child.stdin) {
      // A command that exits without reading its input closes the pipe: EPIPE is not the command's failure.
      child.stdin.on('error', () => undefined);
      child.stdin.end(input);
    }
  });
}

/** The cause of a spawn that failed before node says why, with the binary present: the descriptor or process limits. */
function syncSpawnCause(thrown: unknown): Error {
  return Object.assign(new Error(`out of file descriptors or processes (EMFILE, ENFILE or EAGAIN): ${thrown instanceof Error ? thrown.message : String(thrown)}`), {
    code: 'EMFILE',
    syscall: 'spawn',
    cause: thrown,
  });
}

/** An executable name resolved the way the runner's PATH does (a path with a slash is taken as it is). */
export function resolveOnPath(bin: string, path = process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'): string | null {
  if (bin.includes('/')) return bin;
  for (const dir of path.split(':')) {
    if (!dir) continue;
    const f = join(dir, bin);
    if (isExecutable(f)) return f;
  }
  return null;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Where a command runs when it is given a namespace: setns only (no /sys remount, faster than `ip netns exec`). */
export function inNetns(netns: string, argv: string[]): string[] {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(netns)) throw new TypeError(`bad namespace name ${JSON.stringify(netns)}`);
  return ['nsenter', `--net=/run/netns/${netns}`, '--', ...argv];
}

export interface ProcessRunnerOptions {
  /** Directory for secret files (default /run/zmesh/secrets). */
  secretDir?: string;
  /** Keep a log of every command (for tests). */
  record?: boolean;
  /** Called for every finished command (never sees secret input). */
  onCommand?: (c: RecordedCommand) => void;
}

/** What identifies a read for sharing: the argv as it runs (in its namespace), its input, the exit codes it accepts. */
function readKey(argv: string[], opts: Pick<RunOptions, 'netns' | 'input' | 'okCodes'>): string {
  return JSON.stringify([opts.netns ? inNetns(opts.netns, argv) : argv, opts.input ?? null, opts.okCodes ?? [0]]);
}

export class ProcessRunner implements Runner {
  readonly counts: CommandCounts = { reads: 0, mutating: 0 };
  private readonly scope = new AsyncLocalStorage<{ reads: Map<string, Promise<RunResult>>; open: boolean }>();

  /** The shared reads of the scope this call runs in, while that scope runs: a timer or a watcher started inside
   *  one and still running after it ends reads for itself (never from a scope that is over). */
  private get shared(): Map<string, Promise<RunResult>> | null {
    const s = this.scope.getStore();
    return s?.open ? s.reads : null;
  }

  async shareReads<T>(fn: () => Promise<T>): Promise<T> {
    if (this.shared) return fn(); // nested: the outer scope's
    const s = { reads: new Map<string, Promise<RunResult>>(), open: true };
    try {
      return await this.scope.run(s, fn);
    } finally {
      s.open = false;
      s.reads.clear();
    }
  }

  sharedRead(argv: string[], opts: Pick<RunOptions, 'netns' | 'input' | 'okCodes'>): Promise<RunResult> | undefined {
    return this.shared?.get(readKey(argv, opts));
  }
  readonly log: RecordedCommand[] = [];
  private readonly opts: ProcessRunnerOptions;

  constructor(opts: ProcessRunnerOptions = {}) {
    this.opts = opts;
  }

  resetCounts(): void {
    this.counts.reads = 0;
    this.counts.mutating = 0;
  }

  netnsExists(name: string): boolean {
    return existsSync(`/run/netns/${name}`);
  }

  async run(argv: string[], opts: RunOptions): Promise<RunResult> {
    const shared = this.shared;
    if (!shared) return this.exec(argv, opts);
    if (opts.mutating) {
      shared.clear();
      try {
        return await this.exec(argv, opts);
      } finally {
        shared.clear(); // and what was read while it ran
      }
    }
    // Secrets are never kept, and neither is a command given a file.
    if (opts.secretInput || opts.secretFile !== undefined) return this.exec(argv, opts);
    const key = readKey(argv, opts);
    let p = shared.get(key);
    if (!p) {
      p = this.exec(argv, opts);
      shared.set(key, p);
      const mine = p;
      // A failed read is not kept: the next caller runs it again.
      p.catch(() => {
        if (shared.get(key) === mine) shared.delete(key);
      });
    }
    return p;
  }

  private async exec(argv: string[], opts: RunOptions): Promise<RunResult> {
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
      r = await runProcess(exec, opts.input, opts.timeoutMs ?? 15_000, opts.maxBuffer ?? MAX_BUFFER);
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
    const { stdout } = r;
    // A command may echo what it was given (wg quotes a malformed key on stderr): a secret never reaches an error.
    const secrets = [opts.secretInput ? opts.input : undefined, opts.secretFile].map((x) => x?.trim()).filter((x): x is string => !!x && x.length >= 8);
    const stderr = secrets.reduce((t, x) => t.split(x).join('<secret>'), r.stderr);
    const ok = opts.okCodes ?? [0];
    if (r.spawnError) throw spawnError(full, r.spawnError, opts.netns);
    // The cause says how the process ended (STYLE.md: errors carry argv, exit code, stderr and cause).
    const ended = () => Object.assign(new Error(r.signal ? `ended by ${r.signal}` : `exited with ${exitCode}`), { exitCode: r.exitCode, signal: r.signal, timedOut: r.timedOut });
    if (r.overflow) throw new CommandError(full, exitCode, `its ${r.overflow} went over ${opts.maxBuffer ?? MAX_BUFFER} bytes: killed`, { netns: opts.netns, cause: ended() });
    if (r.timedOut || exitCode < 0 || !ok.includes(exitCode)) {
      const why = r.timedOut ? `timed out after ${opts.timeoutMs ?? 15_000} ms` : stderr || (r.signal ? `killed by ${r.signal}` : '');
      throw new CommandError(full, exitCode, why, { netns: opts.netns, cause: ended() });
    }
    return { argv: full, exitCode, stdout, stderr };
  }

  /** Forgets the shared reads of the current scope: a change made without a command of this runner (a daemon
   *  stopped by a signal, a container removed through the engine's API) so that the next read sees it. */
  forgetReads(): void {
    this.shared?.clear();
  }

  spawnDaemon(argv: string[], opts: SpawnOptions = {}): DaemonHandle {
    this.counts.mutating++;
    this.shared?.clear(); // a daemon changes what reads see (its tun, its socket) like any mutating command
    let fd: number | undefined;
    try {
      if (opts.logFile) fd = openSync(opts.logFile, 'a', 0o600);
    } catch (e) {
      throw spawnError(argv, e);
    }
    try {
      let child: ChildProcess;
      try {
        child = spawn(argv[0], argv.slice(1), {
          env: commandEnv(opts.env),
          detached: opts.newSession !== false,
          // A file descriptor handed straight to the child, so the daemon's output never flows through this
          // process and survives its exit.
          stdio: ['ignore', fd ?? 'ignore', fd ?? 'ignore'],
        });
      } catch (e) {
        throw spawnError(argv, e);
      }
      if (child.pid === undefined) {
        // Not started. Node emits the reason on the next tick (consumed here, never unhandled); this API is
        // synchronous, so the reason is told from what can be seen now: a missing or non-executable binary, or
        // else the process or descriptor limits (the only other ways spawn fails this early).
        child.once('error', () => undefined);
        const bin = resolveOnPath(argv[0]);
        const cause = bin === null || !existsSync(bin) ? Object.assign(new Error(`spawn ${argv[0]} ENOENT`), { code: 'ENOENT', syscall: `spawn ${argv[0]}` }) : isExecutable(bin) ? syncSpawnCause(new Error(`spawn ${argv[0]} failed`)) : Object.assign(new Error(`spawn ${argv[0]} EACCES`), { code: 'EACCES', syscall: `spawn ${argv[0]}` });
        throw spawnError(argv, cause);
      }
      const rec: RecordedCommand = { argv, mutating: true, exitCode: 0, ms: 0 };
      if (this.opts.record) this.log.push(rec);
      this.opts.onCommand?.(rec);
      child.unref();
      const exited = new Promise<{ exitCode: number | null; signal: string | null }>((resolve) => {
        child.once('error', () => resolve({ exitCode: null, signal: null }));
        child.once('exit', (code, signal) => resolve({ exitCode: code, signal: signal ?? null }));
      });
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
  shareReads<T>(fn: () => Promise<T>): Promise<T> {
    return this.inner.shareReads ? this.inner.shareReads(fn) : fn();
  }
  sharedRead(argv: string[], opts: Pick<RunOptions, 'netns' | 'input' | 'okCodes'>): Promise<RunResult> | undefined {
    return this.inner.sharedRead?.(argv, opts);
  }
  forgetReads(): void {
    this.inner.forgetReads?.();
  }
  netnsExists(name: string): boolean {
    return this.inner.netnsExists?.(name) ?? true;
  }
}
