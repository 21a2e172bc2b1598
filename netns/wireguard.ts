// WireGuard backends behind one interface.
//  - kernel: `ip link add w-<id> type wireguard` in the host namespace (its UDP socket lives there), then moved
//    into the tenant namespace; `wg` runs inside the tenant namespace.
//  - userspace: wireguard-go in the foreground as a child that outlives us, whose PID is kept in a pidfile; it creates
//    the tun w-<id> in the host namespace (its UDP socket binds there) and we move the tun into the tenant
//    namespace. `wg` runs in the host namespace (it talks to /run/wireguard/w-<id>.sock). wireguard-go keeps
//    working after its tun moved (it notices up/down by polling, within ~1 s) and exits when the tun is deleted.
// The daemon is supervised: a dead daemon is replaced at the next apply (and reported at once through
// onDaemonExit), a driver restart adopts a live daemon it owns (pidfile + /proc cmdline) or replaces it.
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { buildIpBatch, ip } from './build.ts';
import { CommandError, resolveOnPath, type Runner } from './runner.ts';
import type { ActualDaemon, BackendChoice, BackendKind, OwnedThing } from './types.ts';
import { idFromName } from './names.ts';
import type { WgDevice } from './parse.ts';
import { readWg } from './state.ts';
import { readUapi } from './uapi.ts';
import { holdsOn, procArgv } from './proc.ts';

export interface BackendOptions {
  /** Where pidfiles and daemon logs go (default /run/zmesh). */
  stateDir?: string;
  /** Where wireguard-go puts its control sockets (default /run/wireguard). */
  socketDir?: string;
  /** The wireguard-go binary (default "wireguard-go" on PATH). */
  wireguardGo?: string;
  /** Called when a daemon this process started exits (the next apply replaces it). */
  onDaemonExit?: (ifname: string, info: { pid: number; exitCode: number | null; signal: string | null }) => void;
  /** How long to wait for wireguard-go's control socket (default 3000 ms). */
  startTimeoutMs?: number;
  /** Extra environment for wireguard-go (the driver's tuning, e.g. GOGC). */
  daemonEnv?: Record<string, string>;
  /** Start wireguard-go in a session of its own (default true; the driver's tuning keeps it in this one). */
  daemonOwnSession?: boolean;
}

export interface WgBackend {
  readonly kind: BackendKind;
  /** The link kind `ip -d` shows for the interface. */
  readonly linkKind: 'wireguard' | 'tun';
  /** The namespace `wg` must run in for this interface (undefined: the host namespace). */
  wgNetns(ns: string): string | undefined;
  /** The device's configuration and peers, or null when there is no such WireGuard device (or daemon). */
  readDevice(run: Runner, ifname: string, ns: string): Promise<WgDevice | null>;
  /** The daemon running the interface (userspace), or null. */
  daemon(ifname: string): ActualDaemon | null;
  /** Whether whatever runs the interface is alive (kernel: always). */
  healthy(ifname: string): boolean;
  /**
   * Creates the interface in the host namespace with its alias and MTU and moves it into `ns`, after stopping
   * anything left over for that name. `hostLinkExists`: a stale link of that name sits in the host namespace.
   */
  create(run: Runner, ifname: string, ns: string, alias: string, mtu: number, hostLinkExists: boolean): Promise<string[]>;
  /** Stops the daemon and removes its pidfile and socket (the link goes with its namespace). */
  stop(ifname: string): Promise<string[]>;
  /** Daemons, sockets and pidfiles of ours on this host. */
  owned(): OwnedThing[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function sameNetns(pid: number): boolean {
  try {
    return readlinkSync(`/proc/${pid}/ns/net`) === readlinkSync('/proc/self/ns/net');
  } catch {
    return false;
  }
}

function isWgGo(argv: string[] | null, ifname?: string): string | null {
  if (!argv || argv.length !== 3 || basename(argv[0]) !== 'wireguard-go' || argv[1] !== '-f') return null;
  if (ifname !== undefined && argv[2] !== ifname) return null;
  return argv[2];
}

/** The userspace daemons: pidfiles, liveness, start and stop. Shared by both backends (for cleanup). */
export class Daemons {
  readonly stateDir: string;
  readonly socketDir: string;
  readonly binary: string;
  private readonly children = new Map<string, { pid: number; alive: boolean; stopping: boolean; exited: Promise<unknown> }>();
  private readonly onExit?: BackendOptions['onDaemonExit'];
  private readonly startTimeoutMs: number;
  private daemonEnv: Record<string, string>;
  private ownSession: boolean;

  constructor(opts: BackendOptions = {}) {
    this.stateDir = opts.stateDir ?? '/run/zmesh';
    this.socketDir = opts.socketDir ?? '/run/wireguard';
    this.binary = opts.wireguardGo ?? 'wireguard-go';
    this.onExit = opts.onDaemonExit;
    this.startTimeoutMs = opts.startTimeoutMs ?? 3000;
    this.daemonEnv = { ...opts.daemonEnv };
    this.ownSession = opts.daemonOwnSession !== false;
  }

  /** How daemons started from now on run (the driver's tuning, once it knows the build). */
  configure(o: { daemonEnv: Record<string, string>; daemonOwnSession: boolean }): void {
    this.daemonEnv = { ...o.daemonEnv };
    this.ownSession = o.daemonOwnSession;
  }

  private dir(): string {
    return join(this.stateDir, 'wireguard-go');
  }
  pidfile(ifname: string): string {
    return join(this.dir(), `${ifname}.pid`);
  }
  logfile(ifname: string): string {
    return join(this.dir(), `${ifname}.log`);
  }
  socket(ifname: string): string {
    return join(this.socketDir, `${ifname}.sock`);
  }

  /** The PID of our live daemon for ifname: from the pidfile, checked against /proc (no PID reuse). */
  livePid(ifname: string): number | null {
    const child = this.children.get(ifname);
    if (child && !child.alive) return null;
    let pid: number;
    try {
      pid = Number(readFileSync(this.pidfile(ifname), 'utf8').trim());
    } catch {
      return null;
    }
    if (!Number.isInteger(pid) || pid <= 1) return null;
    return isWgGo(procArgv(pid), ifname) !== null ? pid : null;
  }

  status(ifname: string): ActualDaemon | null {
    const pid = this.livePid(ifname);
    if (pid !== null) return { pid, alive: true };
    try {
      const recorded = Number(readFileSync(this.pidfile(ifname), 'utf8').trim());
      return Number.isInteger(recorded) ? { pid: recorded, alive: false } : null;
    } catch {
      return null;
    }
  }

  private logTail(ifname: string): string {
    try {
      return readFileSync(this.logfile(ifname), 'utf8').split('\n').slice(-8).join('\n');
    } catch {
      return '';
    }
  }

  async start(run: Runner, ifname: string): Promise<number> {
    mkdirSync(this.dir(), { recursive: true, mode: 0o700 });
    const argv = [this.binary, '-f', ifname];
    const handle = run.spawnDaemon(argv, {
      env: { ...this.daemonEnv, WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1', LOG_LEVEL: 'error' },
      logFile: this.logfile(ifname),
      ...(this.ownSession ? {} : { newSession: false }),
    });
    const entry = { pid: handle.pid, alive: true, stopping: false, exited: handle.exited };
    this.children.set(ifname, entry);
    writeFileSync(this.pidfile(ifname), `${handle.pid}\n`, { mode: 0o600 });
    void handle.exited.then((info) => {
      entry.alive = false;
      // Reported unless we stopped it ourselves (it died, or someone killed it).
      if (!entry.stopping) this.onExit?.(ifname, { pid: handle.pid, ...info });
    });
    const deadline = Date.now() + this.startTimeoutMs;
    while (!existsSync(this.socket(ifname))) {
      if (!entry.alive) throw new CommandError(argv, -1, `wireguard-go exited at start: ${this.logTail(ifname)}`);
      if (Date.now() > deadline) {
        await this.stop(ifname);
        throw new CommandError(argv, -1, `wireguard-go did not open ${this.socket(ifname)} within ${this.startTimeoutMs} ms`);
      }
      await sleep(2);
    }
    return handle.pid;
  }

  private async waitGone(pid: number, ifname: string, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    const ours = (argv: string[]) => isWgGo(argv, ifname) !== null;
    while (Date.now() < deadline) {
      if (!holdsOn(pid, ours)) return true;
      await sleep(5);
    }
    return !holdsOn(pid, ours);
  }

  /** Stops our daemon for ifname (SIGTERM, then SIGKILL) and removes its pidfile, log and stale socket. */
  async stop(ifname: string): Promise<string[]> {
    const changes: string[] = [];
    const pid = this.livePid(ifname);
    if (pid !== null) {
      const child = this.children.get(ifname);
      if (child && child.pid === pid) child.stopping = true;
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        /* already gone */
      }
      if (!(await this.waitGone(pid, ifname, 1500))) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
        await this.waitGone(pid, ifname, 1500);
      }
      changes.push(`stopped wireguard-go ${ifname} (pid ${pid})`);
    }
    const child = this.children.get(ifname);
    if (child) {
      this.children.delete(ifname);
      await Promise.race([child.exited, sleep(500)]);
    }
    for (const [path, what] of [
      [this.socket(ifname), 'socket'],
      [this.pidfile(ifname), 'pidfile'],
      [this.logfile(ifname), null],
    ] as const) {
      if (existsSync(path)) {
        rmSync(path, { force: true });
        if (what) changes.push(`removed ${what} ${path}`);
      }
    }
    return changes;
  }

  /** Our daemons (live wireguard-go processes for w-<id> in this network namespace), sockets and pidfiles. */
  owned(): OwnedThing[] {
    return [...this.processes(), ...this.files()];
  }

  /** wireguard-go processes for w-<id> interfaces in this network namespace (a scan of /proc). */
  processes(): OwnedThing[] {
    const out: OwnedThing[] = [];
    let pids: string[] = [];
    try {
      pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
    } catch {
      /* no /proc */
    }
    for (const p of pids) {
      const pid = Number(p);
      const ifname = isWgGo(procArgv(pid));
      if (ifname === null || idFromName(ifname) === null || !sameNetns(pid)) continue;
      out.push({ kind: 'daemon', name: ifname, where: 'host', networkId: idFromName(ifname), pid, marked: this.livePid(ifname) === pid });
    }
    return out;
  }

  /** Sockets and pidfiles of w-<id> interfaces (two directory listings: cheap enough for every apply). */
  /**
   * Our live daemons that run another executable than the one installed now (a package upgrade replaced
   * wireguard-go on disk; the running ones keep the old build until they are restarted). Compared by inode:
   * /proc/PID/exe still names the old file after it was replaced.
   */
  staleDaemons(): { ifname: string; pid: number }[] {
    const installed = resolveOnPath(this.binary);
    if (installed === null) return [];
    let want;
    try {
      want = statSync(installed);
    } catch {
      return [];
    }
    const out: { ifname: string; pid: number }[] = [];
    for (const f of this.files()) {
      if (f.kind !== 'pidfile') continue;
      const ifname = basename(f.name, '.pid');
      const pid = this.livePid(ifname);
      if (pid === null) continue;
      try {
        const exe = statSync(`/proc/${pid}/exe`);
        if (exe.ino !== want.ino || exe.dev !== want.dev) out.push({ ifname, pid });
      } catch {
        /* gone meanwhile, or not ours to read */
      }
    }
    return out;
  }

  files(): OwnedThing[] {
    const out: OwnedThing[] = [];
    for (const [dir, kind, ext] of [
      [this.socketDir, 'socket', '.sock'],
      [this.dir(), 'pidfile', '.pid'],
    ] as const) {
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch {
        continue;
      }
      for (const n of names) {
        if (!n.endsWith(ext)) continue;
        const id = idFromName(n.slice(0, -ext.length));
        if (id === null || !n.startsWith('w-')) continue;
        out.push({ kind, name: join(dir, n), where: 'host', networkId: id, marked: true });
      }
    }
    return out;
  }
}

export class KernelBackend implements WgBackend {
  readonly kind = 'kernel' as const;
  readonly linkKind = 'wireguard' as const;
  private readonly daemons: Daemons;
  constructor(daemons: Daemons) {
    this.daemons = daemons;
  }
  wgNetns(ns: string): string | undefined {
    return ns;
  }
  readDevice(run: Runner, ifname: string, ns: string): Promise<WgDevice | null> {
    return readWg(run, ifname, ns);
  }
  daemon(): ActualDaemon | null {
    return null;
  }
  healthy(): boolean {
    return true;
  }
  async create(run: Runner, ifname: string, ns: string, alias: string, mtu: number, hostLinkExists: boolean): Promise<string[]> {
    const changes = await this.daemons.stop(ifname);
    const lines = [ip.linkAdd(ifname, 'wireguard'), ip.linkSet(ifname, { alias, mtu }), ip.linkNetns(ifname, ns)];
    if (hostLinkExists) lines.unshift(ip.linkDel(ifname));
    try {
      await run.run(['ip', '-batch', '-'], { input: buildIpBatch(lines), mutating: true });
    } catch (e) {
      await run.run(['ip', 'link', 'del', 'dev', ifname], { mutating: true, okCodes: [0, 1, 2] }).catch(() => undefined);
      throw e;
    }
    changes.push(`created wireguard link ${ifname} (kernel) and moved it into ${ns}`);
    return changes;
  }
  stop(ifname: string): Promise<string[]> {
    return this.daemons.stop(ifname);
  }
  owned(): OwnedThing[] {
    return this.daemons.owned();
  }
}

export class UserspaceBackend implements WgBackend {
  readonly kind = 'userspace' as const;
  readonly linkKind = 'tun' as const;
  private readonly daemons: Daemons;
  constructor(daemons: Daemons) {
    this.daemons = daemons;
  }
  wgNetns(): string | undefined {
    return undefined;
  }
  /** Over the UAPI socket, like `wg show` does, without a process. */
  readDevice(_run: Runner, ifname: string): Promise<WgDevice | null> {
    return readUapi(this.daemons.socket(ifname));
  }
  daemon(ifname: string): ActualDaemon | null {
    return this.daemons.status(ifname);
  }
  healthy(ifname: string): boolean {
    return this.daemons.livePid(ifname) !== null;
  }
  async create(run: Runner, ifname: string, ns: string, alias: string, mtu: number, hostLinkExists: boolean): Promise<string[]> {
    const changes = await this.daemons.stop(ifname);
    if (hostLinkExists) {
      // A tun of that name left in the host namespace: its daemon is not ours any more; deleting the tun ends it.
      await run.run(['ip', 'link', 'del', 'dev', ifname], { mutating: true, okCodes: [0, 1, 2] });
    }
    const pid = await this.daemons.start(run, ifname);
    // MTU before the move: wireguard-go follows MTU changes through netlink in the namespace it started in.
    try {
      await run.run(['ip', '-batch', '-'], { input: buildIpBatch([ip.linkSet(ifname, { alias, mtu }), ip.linkNetns(ifname, ns)]), mutating: true });
    } catch (e) {
      await this.daemons.stop(ifname);
      throw e;
    }
    changes.push(`started wireguard-go ${ifname} (pid ${pid}) and moved its tun into ${ns}`);
    return changes;
  }
  stop(ifname: string): Promise<string[]> {
    return this.daemons.stop(ifname);
  }
  owned(): OwnedThing[] {
    return this.daemons.owned();
  }
}

/**
 * Which backend to use. "auto": the kernel when the wireguard module is loaded or `ip link add <tmp> type
 * wireguard` works (the probe link is deleted at once), otherwise userspace.
 */
export async function detectBackend(run: Runner, choice: BackendChoice = 'auto'): Promise<BackendKind> {
  if (choice === 'kernel' || choice === 'userspace') return choice;
  if (existsSync('/sys/module/wireguard')) return 'kernel';
  const probe = `zmprobe${randomBytes(3).toString('hex')}`;
  const r = await run.run(['ip', 'link', 'add', 'name', probe, 'type', 'wireguard'], { mutating: true, okCodes: [0, 1, 2] });
  if (r.exitCode !== 0) return 'userspace';
  await run.run(['ip', 'link', 'del', 'dev', probe], { mutating: true, okCodes: [0, 1, 2] });
  return 'kernel';
}

export function makeBackend(kind: BackendKind, opts: BackendOptions = {}): WgBackend {
  const daemons = new Daemons(opts);
  return kind === 'kernel' ? new KernelBackend(daemons) : new UserspaceBackend(daemons);
}

