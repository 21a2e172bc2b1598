// Side effects of labs: commands (through the one netns runner), entering namespaces, detached processes, private
// (0600) files, and /proc inspection (namespace inodes, start times) so processes are only ever signalled by PID
// after checking they are ours.
import { closeSync, existsSync, fchmodSync, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import { ProcessRunner, type RunResult } from '../netns/runner.ts';

export const runner = new ProcessRunner();

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

export interface LabRunOptions {
  input?: string;
  okCodes?: number[];
  timeoutMs?: number;
}

/** Runs argv (on the host, or wrapped by one of the in* helpers below). */
export function run(argv: string[], opts: LabRunOptions = {}): Promise<RunResult> {
  return runner.run(argv, { mutating: true, input: opts.input, okCodes: opts.okCodes, timeoutMs: opts.timeoutMs ?? 20_000 });
}

const NS_RE = /^[A-Za-z0-9_.-]{1,200}$/;

/** argv run inside a named network namespace (/run/netns/<ns>) of the host's mount namespace. */
export function inNs(ns: string, argv: string[]): string[] {
  if (!NS_RE.test(ns)) throw new TypeError(`bad namespace name ${JSON.stringify(ns)}`);
  return ['nsenter', `--net=/run/netns/${ns}`, '--', ...argv];
}

/** argv run inside a holder's network and mount namespaces (a node or a device). */
export function inHolder(pid: number, argv: string[]): string[] {
  return ['nsenter', '-t', String(pid), '-m', '-n', '--', ...argv];
}

/** argv run in a tenant namespace n-<id> of a node: the node's mount namespace, the tenant's network namespace. */
export function inTenant(pid: number, networkId: string, argv: string[]): string[] {
  if (!/^[a-z0-9]{10}$/.test(networkId)) throw new TypeError(`bad network id ${networkId}`);
  return ['nsenter', `--mount=/proc/${pid}/ns/mnt`, `--net=/proc/${pid}/root/run/netns/n-${networkId}`, '--', ...argv];
}

/** The inode of a process's namespace, or null when it is gone. */
export function nsInode(pid: number, kind: 'net' | 'mnt'): number | null {
  try {
    const m = /\[(\d+)\]/.exec(readlinkSync(`/proc/${pid}/ns/${kind}`));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** The inode of a namespace file (a /run/netns bind mount), or null. */
export function fileInode(path: string): number | null {
  try {
    return statSync(path).ino;
  } catch {
    return null;
  }
}

/** Start time of a process (clock ticks since boot, /proc/PID/stat field 22), or null when gone or a zombie. */
export function startTime(pid: number): number | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    if (rest[0] === 'Z' || rest[0] === 'X') return null;
    return Number(rest[19]);
  } catch {
    return null;
  }
}

/** A recorded process: alive and the same process (no PID reuse) when its start time still matches. */
export interface ProcRef {
  pid: number;
  start: number;
}

export function procRef(pid: number): ProcRef | null {
  const start = startTime(pid);
  return start === null ? null : { pid, start };
}

export function alive(p: ProcRef | null | undefined): boolean {
  return Boolean(p && p.pid > 1 && startTime(p.pid) === p.start);
}

export function allPids(): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((p) => p > 1 && p !== process.pid);
}

export function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/** Signals a recorded process, only when it is still the same process. */
export function signal(p: ProcRef | null | undefined, sig: NodeJS.Signals): boolean {
  if (!alive(p)) return false;
  try {
    process.kill(p!.pid, sig);
    return true;
  } catch {
    return false;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until fn returns a truthy value or the time is up (bounded in count too); returns the last value. */
export async function waitFor<T>(fn: () => T | Promise<T>, timeoutMs: number, stepMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  const maxRounds = Math.ceil(timeoutMs / stepMs) + 1;
  let v = await fn();
  for (let i = 0; !v && i < maxRounds && Date.now() < end; i++) {
    await sleep(stepMs);
    v = await fn();
  }
  return v;
}

/** Waits (bounded) until a recorded process is gone. */
export async function waitGone(p: ProcRef, timeoutMs: number): Promise<boolean> {
  return waitFor(() => !alive(p), timeoutMs, 50);
}

/**
 * Starts a process detached from this one (it outlives the lab command), output appended to logFile.
 * Returns its PID (nsenter and unshare without --fork exec, so it is the final program's PID).
 */
export function spawnDetached(argv: string[], opts: { logFile?: string; env?: Record<string, string>; cwd?: string } = {}): ProcRef {
  const fd = opts.logFile ? openSync(opts.logFile, 'a', 0o600) : 'ignore';
  try {
    const child = spawn(argv[0], argv.slice(1), {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: { LC_ALL: 'C', PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...opts.env },
      cwd: opts.cwd,
    });
    child.on('error', () => undefined);
    child.unref();
    if (child.pid === undefined) throw new Error(`could not start ${argv[0]}`);
    // Bounded: the process exists once spawn returned a pid; its start time may need a moment.
    const start = startTime(child.pid) ?? 0;
    return { pid: child.pid, start };
  } finally {
    if (typeof fd === 'number') closeSync(fd);
  }
}

export function netnsExists(name: string): boolean {
  return existsSync(`/run/netns/${name}`);
}

export function listNetns(): string[] {
  try {
    return readdirSync('/run/netns');
  } catch {
    return [];
  }
}

/** The Python the lab's helper scripts run with (python3-minimal, scripts/deps.sh). */
export function python(): string {
  return existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
}

/** A Python script of labs/ by name: from the sources also when this module runs from dist/. */
export function labScript(name: string): string {
  return fileURLToPath(new URL(`./${name}`, import.meta.url)).replace(/\/dist\/labs\//, '/labs/');
}
