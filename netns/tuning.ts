// Data-plane tuning of the userspace WireGuard backend (wireguard-go), measured with bench/dataplane.ts.
//
// wireguard-go 0.0.20220316 (Debian bookworm) never sets SO_RCVBUF/SO_SNDBUF, so its UDP sockets get
// net.core.rmem_default / wmem_default (208 KiB): under load the receiving socket overflows and drops tens of
// thousands of datagrams per second of traffic. On this kernel (6.18) net.core.{r,w}mem_{default,max} are
// per network namespace but read-only in every namespace except the initial one, so they cannot be raised for
// the birthplace namespace alone, and raising them in the initial namespace would change every socket on the
// machine. Instead the driver raises the buffers of exactly wireguard-go's two UDP sockets: it takes a
// duplicate of each socket from the daemon (pidfd_open + pidfd_getfd, Linux ≥ 5.6, root) and sets
// SO_RCVBUFFORCE / SO_SNDBUFFORCE on it (CAP_NET_ADMIN; not capped by rmem_max). A duplicate shares the
// socket, so the daemon's own socket gets the buffers. wireguard-go opens new sockets when its device comes up
// or its port changes; the driver checks the buffer size of the live sockets and sets them again when needed.
// The helper is a short perl program (perl-base is Essential on Debian): node has no pidfd_getfd.
//
//
// Batched builds. wireguard-go from 0.0.20230223 on (Debian trixie's package) reads and writes its UDP socket
// with recvmmsg/sendmmsg and its tun with TCP segmentation offload (virtio-net headers): on this machine it
// carries about five times what 0.0.20220316 does (bench/dataplane.ts), its sockets drop nothing with the default buffers, and
// raised buffers measured no better (0.91×). What helps it is GOMAXPROCS=1: one Go scheduler thread per
// daemon, 1.13–1.19× the throughput at 20–25% less CPU per GB (bench/dataplane-knobs.ts). So the defaults
// follow the binary: the driver asks it for its version (`wireguard-go --version`) before starting the first
// daemon and takes DEFAULT_TUNING_BATCHED or DEFAULT_TUNING.
//
// Everything here is pure except readUdpSockets and setSocketBuffers, which read /proc and run one process.
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import type { Runner } from './runner.ts';

export interface Tuning {
  /** Bytes asked for with SO_RCVBUFFORCE and SO_SNDBUFFORCE on wireguard-go's UDP sockets (the kernel doubles it); 0: off. */
  socketBufferBytes: number;
  /**
   * Start wireguard-go in a session of its own (setsid). false keeps it in the driver's session: with autogroup
   * scheduling (kernel.sched_autogroup_enabled=1, tasks in the root cpu cgroup) every session is one scheduling
   * group, and a daemon alone in its group carried 20–30% less through the same CPUs than one started the
   * textbook way from the caller's session (bench/dataplane.ts, "session" in docs/benchmarks.md).
   */
  daemonOwnSession: boolean;
  /**
   * Extra environment for wireguard-go. Batched builds: GOMAXPROCS=1 by default. Builds before batching: none
   * (GOMAXPROCS=1 and GOGC=400 measured no better there).
   */
  daemonEnv: Record<string, string>;
}

/** What a wireguard-go binary is, as far as tuning goes. */
export interface WireguardGoBuild {
  /** "0.0.20230223" (from `wireguard-go --version`); null when it could not be read. */
  version: string | null;
  /** Batched UDP and tun I/O (version ≥ BATCHED_SINCE). */
  batched: boolean;
}

/** The first wireguard-go release with recvmmsg/sendmmsg and tun offloads. */
export const BATCHED_SINCE = '0.0.20230223';

/** Parses `wireguard-go --version` ("wireguard-go v0.0.20230223\n\nUserspace WireGuard daemon …"). */
export function parseWireguardGoVersion(text: string): WireguardGoBuild {
  const m = /^wireguard-go v?(\d+)\.(\d+)\.(\d+)\b/m.exec(text);
  if (!m) return { version: null, batched: false };
  const v = [Number(m[1]), Number(m[2]), Number(m[3])];
  const since = BATCHED_SINCE.split('.').map(Number);
  let cmp = 0;
  for (let i = 0; i < 3 && cmp === 0; i++) cmp = Math.sign(v[i] - since[i]);
  return { version: v.join('.'), batched: cmp >= 0 };
}

/** What the driver applies by default to a build before batching (each knob measured with bench/dataplane-knobs.ts). */
export const DEFAULT_TUNING: Tuning = {
  socketBufferBytes: 4 * 1024 * 1024,
  daemonOwnSession: false,
  daemonEnv: {},
};

/** What the driver applies by default to a batched build (≥ BATCHED_SINCE): no buffers to raise, GOMAXPROCS=1. */
export const DEFAULT_TUNING_BATCHED: Tuning = {
  socketBufferBytes: 0,
  daemonOwnSession: false,
  daemonEnv: { GOMAXPROCS: '1' },
};

/** Nothing tuned: wireguard-go as it comes, in a session of its own (DriverOptions.tuning = false). */
export const NO_TUNING: Tuning = { socketBufferBytes: 0, daemonOwnSession: true, daemonEnv: {} };

/** The defaults for a build (an unknown build gets those of the builds before batching). */
export function defaultTuning(build?: WireguardGoBuild | null): Tuning {
  const d = build?.batched ? DEFAULT_TUNING_BATCHED : DEFAULT_TUNING;
  return { ...d, daemonEnv: { ...d.daemonEnv } };
}

/**
 * DriverOptions.tuning → the tuning in force for a build: true/undefined = the build's defaults, false = none,
 * an object = the build's defaults with single knobs overridden.
 */
export function resolveTuning(t: boolean | Partial<Tuning> | undefined, build?: WireguardGoBuild | null): Tuning {
  if (t === false) return { ...NO_TUNING, daemonEnv: {} };
  const d = defaultTuning(build);
  if (t === undefined || t === true) return d;
  return {
    socketBufferBytes: t.socketBufferBytes ?? d.socketBufferBytes,
    daemonOwnSession: t.daemonOwnSession ?? d.daemonOwnSession,
    daemonEnv: { ...d.daemonEnv, ...t.daemonEnv },
  };
}

/** Problems with a tuning (empty when fine). */
export function validateTuning(t: Tuning): string[] {
  const p: string[] = [];
  if (!Number.isInteger(t.socketBufferBytes) || t.socketBufferBytes < 0 || t.socketBufferBytes > 256 * 1024 * 1024) {
    p.push('socketBufferBytes is an integer from 0 to 268435456');
  }
  if (typeof t.daemonOwnSession !== 'boolean') p.push('daemonOwnSession is true or false');
  for (const [k, v] of Object.entries(t.daemonEnv)) {
    if (!/^[A-Z][A-Z0-9_]*$/.test(k) || typeof v !== 'string' || v.includes('\0')) p.push(`daemonEnv ${k} is not NAME=value`);
  }
  return p;
}

/** One UDP socket as /proc/<pid>/net/udp{,6} lists it. */
export interface UdpSocket {
  localPort: number;
  inode: number;
  /** Bytes waiting in the receive queue. */
  rxQueue: number;
  /** Datagrams this socket dropped (receive buffer full, mostly). */
  drops: number;
}

/** Parses /proc/net/udp or /proc/net/udp6 (header line, then one socket per line). */
export function parseProcNetUdp(text: string): UdpSocket[] {
  const out: UdpSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 13) continue;
    const port = parseInt(f[1].split(':').pop() ?? '', 16);
    const rx = parseInt(f[4].split(':')[1] ?? '', 16);
    const inode = Number(f[9]);
    if (!Number.isFinite(port) || !Number.isFinite(inode)) continue;
    out.push({ localPort: port, inode, rxQueue: Number.isFinite(rx) ? rx : 0, drops: Number(f[12]) || 0 });
  }
  return out;
}

/** A process's UDP sockets bound to `port` (IPv4 and IPv6), with the fd numbers it holds them by. */
export interface DaemonSocket extends UdpSocket {
  family: 4 | 6;
  fd: number;
}

/** Reads a process's UDP sockets on `port` from /proc (its fds and its network namespace's udp tables); [] when it is gone. */
export function readUdpSockets(pid: number, port: number, proc = '/proc'): DaemonSocket[] {
  const byInode = new Map<number, number>();
  let fds: string[];
  try {
    fds = readdirSync(`${proc}/${pid}/fd`);
  } catch {
    return [];
  }
  for (const fd of fds) {
    let target: string;
    try {
      target = readlinkSync(`${proc}/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m && !byInode.has(Number(m[1]))) byInode.set(Number(m[1]), Number(fd));
  }
  const out: DaemonSocket[] = [];
  for (const [file, family] of [
    ['udp', 4],
    ['udp6', 6],
  ] as const) {
    let text: string;
    try {
      text = readFileSync(`${proc}/${pid}/net/${file}`, 'utf8');
    } catch {
      continue;
    }
    for (const s of parseProcNetUdp(text)) {
      const fd = byInode.get(s.inode);
      if (s.localPort === port && fd !== undefined) out.push({ ...s, family, fd });
    }
  }
  return out.sort((a, b) => a.fd - b.fd);
}

/**
 * perl: pidfd_open(pid), then per fd pidfd_getfd, SO_RCVBUFFORCE/SO_SNDBUFFORCE (when bytes > 0), and print
 * "fd rcvbuf sndbuf" as the kernel reports them. Syscall numbers 434/438 are the same on every architecture
 * (new syscalls share one table); SO_*BUFFORCE 33/32 are those of x86, arm, arm64, riscv, s390 and powerpc.
 */
export const SOCKET_BUFFER_SCRIPT = [
  'use strict; use Socket qw(SOL_SOCKET SO_RCVBUF SO_SNDBUF);',
  'my ($pid, $bytes, @fds) = @ARGV;',
  'my $pidfd = syscall(434, $pid + 0, 0); die "pidfd_open: $!\\n" if $pidfd < 0;',
  'for my $t (@fds) {',
  '  my $fd = syscall(438, $pidfd, $t + 0, 0); die "pidfd_getfd $t: $!\\n" if $fd < 0;',
  '  open(my $fh, "+<&=", $fd) or die "fdopen: $!\\n";',
  '  if ($bytes > 0) {',
  '    setsockopt($fh, SOL_SOCKET, 33, pack("i", $bytes)) or die "SO_RCVBUFFORCE: $!\\n";',
  '    setsockopt($fh, SOL_SOCKET, 32, pack("i", $bytes)) or die "SO_SNDBUFFORCE: $!\\n";',
  '  }',
  '  printf "%d %d %d\\n", $t, unpack("i", getsockopt($fh, SOL_SOCKET, SO_RCVBUF)), unpack("i", getsockopt($fh, SOL_SOCKET, SO_SNDBUF));',
  '  close $fh;',
  '}',
].join('\n');

/** argv that sets (bytes > 0) or only reads (bytes = 0) the buffers of a process's sockets `fds`. */
export function socketBufferArgv(pid: number, bytes: number, fds: number[]): string[] {
  if (!Number.isInteger(pid) || pid <= 1) throw new TypeError(`bad pid ${pid}`);
  if (!Number.isInteger(bytes) || bytes < 0) throw new TypeError(`bad size ${bytes}`);
  if (fds.length === 0 || fds.some((f) => !Number.isInteger(f) || f < 0)) throw new TypeError('fds are non-negative integers');
  return ['perl', '-e', SOCKET_BUFFER_SCRIPT, String(pid), String(bytes), ...fds.map(String)];
}

/** Parses the helper's output: fd → { rcvbuf, sndbuf } (bytes, as the kernel reports them: twice the request). */
export function parseSocketBuffers(text: string): Map<number, { rcvbuf: number; sndbuf: number }> {
  const out = new Map<number, { rcvbuf: number; sndbuf: number }>();
  for (const line of text.split('\n')) {
    const m = /^(\d+) (\d+) (\d+)$/.exec(line.trim());
    if (m) out.set(Number(m[1]), { rcvbuf: Number(m[2]), sndbuf: Number(m[3]) });
  }
  return out;
}

/** Whether a socket's buffers already are what `bytes` gives (the kernel reports twice the request). */
export function buffersAreSet(have: { rcvbuf: number; sndbuf: number }, bytes: number): boolean {
  return have.rcvbuf >= 2 * bytes && have.sndbuf >= 2 * bytes;
}

/** Sets the buffers of a daemon's sockets `fds`; returns what the kernel reports afterwards. */
export async function setSocketBuffers(run: Runner, pid: number, fds: number[], bytes: number): Promise<Map<number, { rcvbuf: number; sndbuf: number }>> {
  const r = await run.run(socketBufferArgv(pid, bytes, fds), { mutating: bytes > 0, timeoutMs: 5000 });
  return parseSocketBuffers(r.stdout);
}

/** What the tuner did to one daemon's sockets (ActualResource.tuning). */
export interface SocketTuning {
  pid: number;
  port: number;
  /** Sockets (IPv4, IPv6) found and tuned. */
  sockets: number;
  /** SO_RCVBUF / SO_SNDBUF as the kernel reports them afterwards (twice the request), null when not set. */
  rcvbuf: number | null;
  sndbuf: number | null;
  /** Why the buffers could not be set (perl missing, no pidfd_getfd, …). */
  error?: string;
}

export interface SocketTunerOptions {
  /** Bytes to request (Tuning.socketBufferBytes); 0 turns the tuner off. */
  bytes: number;
  /** The runner background tuning uses (an apply passes its own). */
  runner: Runner;
  /** Serializes background tuning with applies (the driver's lock). */
  lock: <T>(fn: () => Promise<T>) => Promise<T>;
  /** Injected for tests; default readUdpSockets over /proc. */
  readSockets?: (pid: number, port: number) => DaemonSocket[];
  /** Whether the process is still there; default: /proc/<pid> exists. */
  alive?: (pid: number) => boolean;
  /** How often and how long to look for the sockets of a daemon that has none yet (default 25 ms, 5 s). */
  pollMs?: number;
  watchMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const keyOf = (pid: number, port: number, socks: DaemonSocket[]) => `${pid}|${port}|${socks.map((s) => s.inode).sort((a, b) => a - b).join(',')}`;

/**
 * Keeps wireguard-go's UDP socket buffers raised. wireguard-go opens its sockets only once it sees its tun up
 * (after a move to another namespace it polls for that, about once a second) and opens new ones when the
 * device goes down and up or its port changes. So: ensure() during an apply tunes sockets it has not tuned
 * (checking first, so that a restarted driver adopting tuned sockets runs no mutating command), and when a
 * fresh daemon has no sockets yet it leaves them to a watcher that looks for them (bounded) and tunes them
 * under the driver's lock as soon as they appear.
 */
export class SocketTuner {
  private readonly o: Required<SocketTunerOptions>;
  private readonly tuned = new Map<string, { key: string; state: SocketTuning }>();
  private readonly watching = new Map<string, { cancelled: boolean; done: Promise<void> }>();

  constructor(o: SocketTunerOptions) {
    this.o = {
      readSockets: (pid, port) => readUdpSockets(pid, port),
      alive: (pid) => existsSync(`/proc/${pid}`),
      pollMs: 25,
      watchMs: 5000,
      ...o,
    };
  }

  get enabled(): boolean {
    return this.o.bytes > 0;
  }

  /** Changes the size asked for (the driver, once it knows the wireguard-go build; before its first daemon). */
  setBytes(bytes: number): void {
    this.o.bytes = bytes;
    this.tuned.clear();
  }

  /** During an apply: change lines for what was done (empty when nothing was needed). Never throws. */
  async ensure(run: Runner, ifname: string, pid: number, port: number): Promise<string[]> {
    if (!this.enabled || this.watching.has(ifname)) return [];
    const socks = this.o.readSockets(pid, port);
    if (socks.length === 0) {
      this.watch(ifname, pid, port);
      return [];
    }
    return this.tune(run, ifname, pid, port, socks, true);
  }

  private async tune(run: Runner, ifname: string, pid: number, port: number, socks: DaemonSocket[], checkFirst: boolean): Promise<string[]> {
    const key = keyOf(pid, port, socks);
    if (this.tuned.get(ifname)?.key === key) return [];
    const fds = socks.map((s) => s.fd);
    const record = (m: Map<number, { rcvbuf: number; sndbuf: number }>, error?: string) => {
      const vals = [...m.values()];
      const state: SocketTuning = {
        pid,
        port,
        sockets: socks.length,
        rcvbuf: vals.length ? Math.min(...vals.map((v) => v.rcvbuf)) : null,
        sndbuf: vals.length ? Math.min(...vals.map((v) => v.sndbuf)) : null,
        ...(error ? { error } : {}),
      };
      this.tuned.set(ifname, { key, state });
      return state;
    };
    try {
      if (checkFirst) {
        const have = parseSocketBuffers((await run.run(socketBufferArgv(pid, 0, fds), { mutating: false, timeoutMs: 5000 })).stdout);
        if (fds.every((fd) => have.has(fd) && buffersAreSet(have.get(fd)!, this.o.bytes))) {
          record(have);
          return [];
        }
      }
      const got = await setSocketBuffers(run, pid, fds, this.o.bytes);
      const st = record(got);
      return [`tuning: UDP socket buffers of wireguard-go ${ifname} (pid ${pid}, port ${port}, ${socks.length} sockets): rcvbuf ${st.rcvbuf} sndbuf ${st.sndbuf}`];
    } catch (e) {
      // Recorded for these sockets, so the next apply does not try again (it would never be a no-op).
      const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0].slice(0, 200);
      record(new Map(), msg);
      return [`tuning: UDP socket buffers of wireguard-go ${ifname} not set: ${msg}`];
    }
  }

  /** Looks for the sockets of a fresh daemon (bounded) and tunes them under the lock. */
  private watch(ifname: string, pid: number, port: number): void {
    const w = { cancelled: false, done: Promise.resolve() };
    this.watching.set(ifname, w);
    w.done = (async () => {
      try {
        const deadline = Date.now() + this.o.watchMs;
        let last = -1;
        while (!w.cancelled && Date.now() < deadline && this.o.alive(pid)) {
          const n = this.o.readSockets(pid, port).length;
          // wireguard-go opens its IPv4 and IPv6 sockets together: wait until the count holds still.
          if (n > 0 && n === last) break;
          last = n;
          await sleep(this.o.pollMs);
        }
        if (w.cancelled) return;
        await this.o.lock(async () => {
          if (w.cancelled || !this.o.alive(pid)) return;
          const socks = this.o.readSockets(pid, port);
          if (socks.length > 0) await this.tune(this.o.runner, ifname, pid, port, socks, false);
        });
      } catch {
        /* the next apply looks again */
      } finally {
        if (this.watching.get(ifname) === w) this.watching.delete(ifname);
      }
    })();
  }

  /** Forgets a daemon (stopped or replaced) and stops watching it. */
  forget(ifname: string): void {
    const w = this.watching.get(ifname);
    if (w) w.cancelled = true;
    this.watching.delete(ifname);
    this.tuned.delete(ifname);
  }

  /** What was done to a daemon's sockets, with their drop counter now; null when nothing was recorded. */
  status(ifname: string, pid: number | null): (SocketTuning & { drops: number }) | null {
    const t = this.tuned.get(ifname);
    if (!t || (pid !== null && t.state.pid !== pid)) return null;
    const drops = this.o.readSockets(t.state.pid, t.state.port).reduce((s, x) => s + x.drops, 0);
    return { ...t.state, drops };
  }

  /** Settles when every watcher has finished (tests and shutdown). */
  async idle(): Promise<void> {
    await Promise.all([...this.watching.values()].map((w) => w.done));
  }
}
