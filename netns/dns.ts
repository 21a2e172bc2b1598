// A tenant network's resolver: one dnsmasq per tenant namespace n-<id> (docs/dns.md), answering the network's
// names (src/plan/names.ts) on this node's gateway addresses only, NXDOMAIN for everything else.
//  - Files in /run/zmesh-dns/ (or <stateDir>/dns/ when a state directory is given; root:nogroup 0750, so dnsmasq
//    can re-read its hosts file after it dropped to nobody:nogroup and no other local user can; /run/zmesh itself
//    is 0700 under the agent's umask): n-<id>.conf (0600, read once at start as root), n-<id>.hosts (0640, group
//    nogroup: names and addresses),
//    n-<id>.pid (ours), n-<id>.log (dnsmasq's stderr).
//  - Started through the runner as `nsenter --net=/run/netns/n-<id> -- dnsmasq --keep-in-foreground
//    --conf-file=<ours>` in a session of its own, so it outlives the agent; it binds port 53 on the gateway
//    addresses and drops to nobody:nogroup.
//  - Ours when the pidfile's PID is a live dnsmasq whose argv names our conf file and whose network namespace is
//    n-<id>'s (an agent restart adopts it; a namespace recreated under it means a restart).
//  - ensure(): unchanged records and config, daemon alive → nothing at all (no command, no signal, no write);
//    changed records → the hosts file rewritten (rename) and SIGHUP (dnsmasq re-reads it); changed config or a
//    dead daemon → (re)start. stop(): SIGTERM (then SIGKILL), files removed. It must stop before its namespace is
//    deleted: a process inside keeps a deleted namespace (and the WireGuard socket in it) alive.
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { CommandError, inNetns, type Runner } from './runner.ts';
import { isNetworkId, namesFor } from './names.ts';
import { holdsOn, procArgv, procStat } from './proc.ts';
import { resolverConfig, resolverHosts } from './dns-build.ts';
import type { NameRecord } from '../src/plan/names.ts';
import type { ActualDaemon, OwnedThing } from './types.ts';

export interface ResolverOptions {
  /** The resolvers' directory (default /run/zmesh-dns, or <stateDir>/dns when stateDir is given). */
  dir?: string;
  /** A state directory to keep the files in, under dns/ (tests). */
  stateDir?: string;
  /** The dnsmasq binary (default "dnsmasq" on PATH; Debian's dnsmasq-base). */
  dnsmasq?: string;
  /** The user and group dnsmasq drops to (default nobody / nogroup). */
  user?: string;
  group?: string;
  /** How long to wait for dnsmasq's port 53 socket (default 3000 ms). */
  startTimeoutMs?: number;
  /** Called when a dnsmasq this process started exits without being stopped (the next ensure restarts it). */
  onExit?: (networkId: string, info: { pid: number; exitCode: number | null; signal: string | null }) => void;
}

/** One network's resolver as it should be. */
export interface DesiredResolver {
  networkId: string;
  /** The network's name: the zone (<name>.<network>). */
  network: string;
  /** The node's gateway addresses on the bridge: gateway, and gateway6 on a dual-stack network. */
  listen: string[];
  records: readonly NameRecord[];
  /** Where names the network does not serve are forwarded (a network with egress; docs/dns.md). None: NXDOMAIN. */
  upstreams?: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The conf file a dnsmasq of ours was started with, or null when argv is not such a dnsmasq. */
function confOf(argv: string[] | null): string | null {
  if (!argv || argv.length !== 3 || basename(argv[0]) !== 'dnsmasq' || argv[1] !== '--keep-in-foreground' || !argv[2].startsWith('--conf-file=')) return null;
  return argv[2].slice('--conf-file='.length);
}

/**
 * Whether process `pid` sees `dir` as the same directory we do (device and inode through /proc/<pid>/root). Lab
 * nodes share one PID namespace but each has a /run of its own, so another node's dnsmasq names the same conf
 * path (/run/zmesh-dns/n-<id>.conf, the network id is the same on every node) in a directory that is not ours:
 * without this check one node's agent stopped the others' resolvers on every reconcile.
 */
function sameView(pid: number, dir: string): boolean {
  try {
    const theirs = statSync(`/proc/${pid}/root${dir}`);
    const ours = statSync(dir);
    return theirs.dev === ours.dev && theirs.ino === ours.ino;
  } catch {
    return false;
  }
}

/** The inode of a network namespace handle: a /run/netns/<name> file or /proc/<pid>/ns/net. */
function netnsInode(path: string): number | null {
  try {
    if (path.startsWith('/proc/')) {
      const m = /^net:\[(\d+)\]$/.exec(readlinkSync(path));
      return m ? Number(m[1]) : null;
    }
    return statSync(path).ino;
  } catch {
    return null;
  }
}

export class Resolvers {
  readonly dir: string;
  private readonly binary: string;
  private readonly user: string;
  private readonly group: string;
  private readonly startTimeoutMs: number;
  private readonly onExit?: ResolverOptions['onExit'];
  private readonly children = new Map<string, { pid: number; alive: boolean; stopping: boolean; exited: Promise<unknown> }>();

  constructor(
    private readonly run: Runner,
    opts: ResolverOptions = {},
  ) {
    this.dir = opts.dir ?? (opts.stateDir ? join(opts.stateDir, 'dns') : '/run/zmesh-dns');
    this.binary = opts.dnsmasq ?? 'dnsmasq';
    this.user = opts.user ?? 'nobody';
    this.group = opts.group ?? 'nogroup';
    this.startTimeoutMs = opts.startTimeoutMs ?? 3000;
    this.onExit = opts.onExit;
  }

  private file(id: string, ext: 'conf' | 'hosts' | 'pid' | 'log'): string {
    return join(this.dir, `${namesFor(id).ns}.${ext}`);
  }

  /** The PID of our live dnsmasq for a network: pidfile, /proc argv with our conf file, inside n-<id>. */
  livePid(id: string): number | null {
    const child = this.children.get(id);
    if (child && !child.alive) return null;
    let pid: number;
    try {
      pid = Number(readFileSync(this.file(id, 'pid'), 'utf8').trim());
    } catch {
      return null;
    }
    if (!Number.isInteger(pid) || pid <= 1 || confOf(procArgv(pid)) !== this.file(id, 'conf') || !sameView(pid, this.dir)) return null;
    const want = netnsInode(`/run/netns/${namesFor(id).ns}`);
    return want !== null && netnsInode(`/proc/${pid}/ns/net`) === want ? pid : null;
  }

  /** The resolver's daemon: live, or the PID recorded for one that is gone; null when none was started. */
  status(id: string): ActualDaemon | null {
    const pid = this.livePid(id);
    if (pid !== null) return { pid, alive: true };
    try {
      const recorded = Number(readFileSync(this.file(id, 'pid'), 'utf8').trim());
      return Number.isInteger(recorded) ? { pid: recorded, alive: false } : null;
    } catch {
      return null;
    }
  }

  /** The hosts file the resolver serves now, or null. */
  servedHosts(id: string): string | null {
    return read(this.file(id, 'hosts'));
  }

  /** The hosts file text of a frozen records list, built once (the agent hands the same list until names change). */
  private readonly hostsText = new WeakMap<readonly NameRecord[], { network: string; text: string }>();
  private hostsOf(network: string, records: readonly NameRecord[]): string {
    const hit = this.hostsText.get(records);
    if (hit && hit.network === network) return hit.text;
    const text = resolverHosts(network, records);
    if (Object.isFrozen(records)) this.hostsText.set(records, { network, text });
    return text;
  }

  /** Brings a network's resolver to `d`: nothing when it is already so. Returns the change lines. */
  async ensure(d: DesiredResolver): Promise<string[]> {
    if (!isNetworkId(d.networkId)) throw new TypeError(`bad network id ${JSON.stringify(d.networkId)}`);
    const id = d.networkId;
    const conf = resolverConfig({ network: d.network, hostsFile: this.file(id, 'hosts'), listen: d.listen, user: this.user, group: this.group, upstreams: d.upstreams ?? [] });
    const hosts = this.hostsOf(d.network, d.records);
    const pid = this.livePid(id);
    const confNow = read(this.file(id, 'conf'));
    const hostsNow = read(this.file(id, 'hosts'));
    if (pid !== null && confNow === conf && hostsNow === hosts) return [];
    this.ensureDir();
    const changes: string[] = [];
    if (hostsNow !== hosts) writeAtomic(this.file(id, 'hosts'), hosts, 0o640, this.gid());
    if (pid !== null && confNow === conf) {
      // Only the records changed: dnsmasq re-reads its hosts files on SIGHUP (and answers from them at once).
      process.kill(pid, 'SIGHUP');
      changes.push(`resolver ${namesFor(id).ns} reloaded (pid ${pid}, ${d.records.length} records)`);
      return changes;
    }
    // Whatever runs with our conf file goes first (a dead daemon's pidfile, one in a recreated namespace's old one,
    // one an agent killed at the wrong moment never recorded): it would hold port 53 on the gateway.
    changes.push(...(await this.stopDaemon(id)));
    if (confNow !== conf) writeAtomic(this.file(id, 'conf'), conf, 0o600);
    const started = await this.start(id);
    changes.push(`resolver ${namesFor(id).ns} started (pid ${started}, ${d.records.length} records on ${d.listen.join(', ')})`);
    return changes;
  }

  /** The group dnsmasq drops to, as a number (from /etc/group), or null when there is none of that name. */
  private gid(): number | null {
    try {
      for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
        const f = line.split(':');
        if (f[0] === this.group && /^\d+$/.test(f[2] ?? '')) return Number(f[2]);
      }
    } catch {
      /* no /etc/group */
    }
    return null;
  }

  /**
   * The directory is root's, group `group` (the one dnsmasq drops to), mode 0750, and the hosts files 0640 in that
   * group: dnsmasq can re-read them after it dropped its privileges, and no other local user can list or read
   * which names and addresses the tenants of this node have. Every directory above must let others through.
   */
  private ensureDir(): void {
    const gid = this.gid();
    if (gid === null) throw new CommandError([this.binary], -1, `no group ${this.group} in /etc/group: dnsmasq drops to it and must read its hosts file`, { hint: `create the group, or run the resolvers with another group` });
    mkdirSync(this.dir, { recursive: true, mode: 0o750 });
    // The agent runs with umask 077: the mode asked for at creation is not the mode made.
    const st = statSync(this.dir);
    if (st.gid !== gid || st.uid !== process.getuid!()) chownSync(this.dir, process.getuid!(), gid);
    if ((st.mode & 0o777) !== 0o750) chmodSync(this.dir, 0o750);
    for (let p = dirname(this.dir); ; p = dirname(p)) {
      const mode = statSync(p).mode;
      if ((mode & 0o001) === 0) {
        throw new CommandError([this.binary], -1, `${p} is not searchable by others (mode ${(mode & 0o777).toString(8)}): dnsmasq, once it dropped to ${this.user}, could not re-read its hosts file`, {
          hint: `chmod o+x ${p}, or give the resolvers a state directory others can search`,
        });
      }
      if (p === dirname(p)) break;
    }
  }

  private async start(id: string): Promise<number> {
    const ns = namesFor(id).ns;
    if (!existsSync(`/run/netns/${ns}`)) throw new CommandError([this.binary], -1, `namespace ${ns} does not exist`, { hint: 'the network is not applied on this node yet; the next reconcile retries' });
    rmSync(this.file(id, 'log'), { force: true });
    const argv = [this.binary, '--keep-in-foreground', `--conf-file=${this.file(id, 'conf')}`];
    const handle = this.run.spawnDaemon(inNetns(ns, argv), { logFile: this.file(id, 'log') });
    const entry = { pid: handle.pid, alive: true, stopping: false, exited: handle.exited };
    this.children.set(id, entry);
    writeFileSync(this.file(id, 'pid'), `${handle.pid}\n`, { mode: 0o600 });
    void handle.exited.then((info) => {
      entry.alive = false;
      if (!entry.stopping) this.onExit?.(id, { pid: handle.pid, ...info });
    });
    // Ready once it has a socket on port 53 in the namespace (it binds before it drops its privileges).
    const deadline = Date.now() + this.startTimeoutMs;
    while (!listening53(handle.pid)) {
      if (!entry.alive) {
        const tail = this.logTail(id);
        await this.stopDaemon(id);
        throw new CommandError(inNetns(ns, argv), -1, `dnsmasq exited at start: ${tail}`);
      }
      if (Date.now() > deadline) {
        await this.stopDaemon(id);
        throw new CommandError(inNetns(ns, argv), -1, `dnsmasq did not listen on port 53 within ${this.startTimeoutMs} ms`);
      }
      await sleep(5);
    }
    return handle.pid;
  }

  private logTail(id: string): string {
    return (read(this.file(id, 'log')) ?? '').split('\n').slice(-6).join('\n');
  }

  /** Stops the daemon (SIGTERM, then SIGKILL) and removes its pidfile; the config and hosts file stay. */
  private async stopDaemon(id: string): Promise<string[]> {
    const changes: string[] = [];
    const recorded = this.livePid(id) ?? this.adoptable(id);
    // Ours too: a dnsmasq started with our conf file that no pidfile names (the agent died before writing it).
    const pids = new Set([...(recorded !== null ? [recorded] : []), ...this.processesOf(id)]);
    const child = this.children.get(id);
    if (child) child.stopping = true;
    for (const pid of pids) {
      for (const [sig, ms] of [['SIGTERM', 1500], ['SIGKILL', 1500]] as const) {
        try {
          process.kill(pid, sig);
        } catch {
          /* already gone */
        }
        const deadline = Date.now() + ms;
        const ours = (argv: string[]) => confOf(argv) === this.file(id, 'conf');
        while (Date.now() < deadline && holdsOn(pid, ours)) await sleep(5);
        if (!holdsOn(pid, ours)) break;
      }
      changes.push(`resolver ${namesFor(id).ns} stopped (pid ${pid})`);
    }
    if (child) {
      this.children.delete(id);
      await Promise.race([child.exited, sleep(500)]);
    }
    rmSync(this.file(id, 'pid'), { force: true });
    return changes;
  }

  /** A dnsmasq with our conf file recorded in the pidfile but in another namespace (its namespace was recreated). */
  private adoptable(id: string): number | null {
    const pid = Number(read(this.file(id, 'pid'))?.trim());
    return Number.isInteger(pid) && pid > 1 && confOf(procArgv(pid)) === this.file(id, 'conf') && sameView(pid, this.dir) ? pid : null;
  }

  /** Stops a network's resolver and removes all its files. */
  async stop(id: string): Promise<string[]> {
    if (!isNetworkId(id)) throw new TypeError(`bad network id ${JSON.stringify(id)}`);
    const changes = await this.stopDaemon(id);
    for (const ext of ['conf', 'hosts', 'log'] as const) rmSync(this.file(id, ext), { force: true });
    return changes;
  }

  /** Network ids that have resolver files here. */
  networkIds(): string[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return [];
    }
    const ids = new Set<string>();
    for (const n of names) {
      const m = /^n-([a-z0-9]{10})\.(?:conf|hosts|pid|log)$/.exec(n);
      if (m) ids.add(m[1]);
    }
    return [...ids].sort();
  }

  /** Stops every resolver of a network not in `keep` (before the driver removes those namespaces). */
  async stopExcept(keep: Set<string>): Promise<{ networkId: string; changes: string[] }[]> {
    const out: { networkId: string; changes: string[] }[] = [];
    for (const id of this.networkIds()) if (!keep.has(id)) out.push({ networkId: id, changes: await this.stop(id) });
    return out;
  }

  /** PIDs of the dnsmasq processes started with this network's conf file (a /proc scan). */
  private processesOf(id: string): number[] {
    return this.owned()
      .filter((t) => t.kind === 'daemon' && t.networkId === id && t.pid !== undefined)
      .map((t) => t.pid!);
  }

  /** Our dnsmasq processes (a /proc scan; their TCP children left out) and our files: for leak checks. */
  owned(): OwnedThing[] {
    const out: OwnedThing[] = [];
    let pids: string[] = [];
    try {
      pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
    } catch {
      /* no /proc */
    }
    const prefix = join(this.dir, 'n-');
    for (const p of pids) {
      const pid = Number(p);
      const conf = confOf(procArgv(pid));
      if (conf === null || !conf.startsWith(prefix) || !conf.endsWith('.conf') || !sameView(pid, this.dir)) continue;
      const ppid = procStat(pid)?.ppid ?? 0;
      if (ppid > 1 && confOf(procArgv(ppid)) === conf) continue;
      const id = basename(conf, '.conf').slice(2);
      out.push({ kind: 'daemon', name: `dnsmasq ${basename(conf, '.conf')}`, where: `n-${id}`, networkId: isNetworkId(id) ? id : null, pid, marked: isNetworkId(id) && this.livePid(id) === pid });
    }
    let files: string[] = [];
    try {
      files = readdirSync(this.dir);
    } catch {
      /* none */
    }
    for (const f of files.sort()) {
      const m = /^n-([a-z0-9]{10})\.(conf|hosts|pid|log)$/.exec(f);
      if (m) out.push({ kind: m[2] === 'pid' ? 'pidfile' : 'file', name: join(this.dir, f), where: 'host', networkId: m[1], marked: true });
    }
    return out;
  }
}

function read(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

function writeAtomic(path: string, text: string, mode: number, gid: number | null = null): void {
  const tmp = `${path}.tmp`;
  rmSync(tmp, { force: true });
  writeFileSync(tmp, text, { mode });
  if (gid !== null) chownSync(tmp, process.getuid!(), gid);
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

/** Whether a process's network namespace has a socket bound to port 53 (its /proc/<pid>/net/udp{,6}). */
function listening53(pid: number): boolean {
  for (const f of ['udp', 'udp6']) {
    const t = read(`/proc/${pid}/net/${f}`);
    if (t && /^\s*\d+: [0-9A-F]+:0035 /m.test(t)) return true;
  }
  return false;
}
