// Building blocks of the data-plane benchmark (bench/dataplane.ts, bench/dataplane-knobs.ts): two simulated
// hosts joined by a veth underlay (test/helpers/host.ts), the tunnels to compare (none, a hand-built
// wireguard-go tunnel, a zmesh network through the netns driver, Nebula), and the measurements (iperf3, first
// ping, daemon CPU from /proc/<pid>/stat, UDP drops from /proc/net/snmp of the receiving namespace).
// Everything lives in namespaces created here (documentation and 10.x/100.64.x addresses only inside them);
// processes are started with a deadline and killed by PID; close() removes everything, also after a failure.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { seededRandom, x25519KeyPair, type Key } from '../src/crypto/index.ts';
import type { ApplyReport } from '../netns/index.ts';
import { parseSocketBuffers, readUdpSockets, socketBufferArgv } from '../netns/tuning.ts';
import { SimHost, sh, wire } from '../test/helpers/host.ts';
import { handPlan } from '../test/helpers/plan.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
export const median = (xs: number[]) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
export const load1 = () => round(loadavg()[0], 2);

/** The hand-built tunnel's port (zmesh networks use 51820 and up). */
export const HAND_PORT = 51720;
export const UNDERLAY = { a: '198.51.100.1', b: '198.51.100.2', prefix: 24, mtu: 1500 };

/** Where a command runs: a simulated host's namespaces, optionally a namespace created inside it (n-<id>). */
export interface Place {
  host: SimHost;
  netns?: string;
}

export function argvIn(p: Place, argv: string[]): string[] {
  const outer = ['nsenter', `--mount=/proc/${p.host.anchorPid}/ns/mnt`, `--net=/proc/${p.host.anchorPid}/ns/net`, '--'];
  return p.netns ? [...outer, 'nsenter', `--net=/run/netns/${p.netns}`, '--', ...argv] : [...outer, ...argv];
}

export function execIn(p: Place, argv: string[], opts: { okCodes?: number[]; timeoutMs?: number; input?: string } = {}) {
  return sh(argvIn(p, argv), opts);
}

export interface Proc {
  pid: number;
  /** Settles when the process ends (never rejects). */
  done: Promise<{ code: number | null; stdout: string; stderr: string }>;
  kill(): Promise<void>;
}

/**
 * Starts argv in a place, killed (SIGKILL, by PID) after timeoutMs at the latest. nsenter execs its command,
 * so the PID is the program's own (what /proc/<pid>/stat accounts).
 */
export function spawnIn(p: Place, argv: string[], opts: { timeoutMs: number; env?: Record<string, string>; prefix?: string[] }): Proc {
  const full = argvIn(p, [...(opts.prefix ?? []), ...argv]);
  const child = spawn(full[0], full.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C', ...opts.env } });
  if (!child.pid) throw new Error(`could not start ${argv.join(' ')}`);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => (stdout = (stdout + b.toString()).slice(-200_000)));
  child.stderr!.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-20_000)));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    child.once('close', (code) => resolve({ code, stdout, stderr }));
    child.once('error', () => resolve({ code: null, stdout, stderr }));
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
  void done.then(() => clearTimeout(timer));
  return {
    pid: child.pid,
    done,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 1500);
        await done;
        clearTimeout(t);
      }
    },
  };
}

const TICK = 100; // USER_HZ on Linux
/** CPU seconds (user + system) a process has used so far; NaN when it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / TICK; // fields 14 and 15 of stat
  } catch {
    return NaN;
  }
}

export interface UdpCounters {
  inDatagrams: number;
  rcvbufErrors: number;
  inErrors: number;
  sndbufErrors: number;
}

/** UDP counters of a place's network namespace (/proc/net/snmp as seen from inside it). */
export async function udpCounters(p: Place): Promise<UdpCounters> {
  const text = (await execIn(p, ['cat', '/proc/net/snmp'])).stdout;
  const lines = text.split('\n').filter((l) => l.startsWith('Udp:'));
  const keys = lines[0].split(/\s+/).slice(1);
  const vals = lines[1].split(/\s+/).slice(1).map(Number);
  const get = (k: string) => vals[keys.indexOf(k)] ?? 0;
  return { inDatagrams: get('InDatagrams'), rcvbufErrors: get('RcvbufErrors'), inErrors: get('InErrors'), sndbufErrors: get('SndbufErrors') };
}

/** Two simulated hosts with a veth underlay (198.51.100.1 ↔ .2, MTU 1500). */
export class Pair {
  readonly a: SimHost;
  readonly b: SimHost;
  readonly dir: string;
  private constructor(a: SimHost, b: SimHost, dir: string) {
    this.a = a;
    this.b = b;
    this.dir = dir;
  }
  /** tuning: the drivers' (default on); wireguardGo: the binary the drivers start (default: the one on PATH). */
  static async create(o: { tuning?: boolean; wireguardGo?: string } = {}): Promise<Pair> {
    const dir = mkdtempSync(join(tmpdir(), 'zmesh-dp-'));
    let a: SimHost | null = null;
    let b: SimHost | null = null;
    const opts = { backend: 'userspace' as const, underlayMtu: UNDERLAY.mtu, tuning: o.tuning, wireguardGo: o.wireguardGo };
    try {
      [a, b] = await Promise.all([SimHost.start('dpa', opts), SimHost.start('dpb', opts)]);
      await wire({ ns: a.ns, ifname: 'u0', addr: `${UNDERLAY.a}/${UNDERLAY.prefix}` }, { ns: b.ns, ifname: 'u0', addr: `${UNDERLAY.b}/${UNDERLAY.prefix}` }, UNDERLAY.mtu);
      return new Pair(a, b, dir);
    } catch (e) {
      await Promise.all([a?.close(), b?.close()]);
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }
  async close(): Promise<void> {
    await Promise.all([this.a.close().catch(() => null), this.b.close().catch(() => null)]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A tunnel (or none) between the two hosts of a pair, ready for traffic. */
export interface Tunnel {
  client: Place;
  server: Place;
  /** The address iperf3 and ping use at the server. */
  serverAddr: string;
  /** Where the tunnel's UDP arrives on the server side (for drops): the server host's own namespace. */
  underlayServer: Place;
  /** Tunnel daemons (both ends). */
  pids: number[];
  /** Epoch ms at which setting the tunnel up began. */
  t0: number;
  down(): Promise<void>;
  /** Anything worth reporting about this setup (e.g. the driver's apply time). */
  notes: Record<string, unknown>;
  /** The server daemon's config file, where it has one (Nebula). */
  serverConfig?: string;
  /** Called once after the first ping: reads what the setup left out to keep its first packet fast. */
  ready?: () => Promise<void>;
}

export interface DaemonKnobs {
  env?: Record<string, string>;
  /** CPU list for taskset, per end ("0", "1", "0-1"). */
  cpus?: [string, string];
  /** Niceness of the daemons (negative: ahead of ordinary processes). */
  nice?: number;
  /** argv put before the daemon's (e.g. ['setsid']). */
  prefix?: string[];
}

async function waitFile(path: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!existsSync(path)) {
    if (Date.now() > deadline) throw new Error(`${path} did not appear within ${ms} ms`);
    await sleep(5);
  }
}

/** Raises a wireguard-go's UDP socket buffers the way the driver does (waits for its sockets, bounded). */
export async function raiseBuffers(pid: number, port: number, bytes: number): Promise<void> {
  const deadline = Date.now() + 3000;
  let socks = readUdpSockets(pid, port);
  while (socks.length < 2 && Date.now() < deadline) {
    await sleep(10);
    socks = readUdpSockets(pid, port);
  }
  if (socks.length === 0) throw new Error(`wireguard-go ${pid} opened no socket on port ${port}`);
  const r = parseSocketBuffers((await sh(socketBufferArgv(pid, bytes, socks.map((s) => s.fd)))).stdout);
  if ([...r.values()].some((b) => b.rcvbuf < 2 * bytes)) throw new Error(`buffers not set: ${JSON.stringify([...r])}`);
}

/** No tunnel: the underlay veth itself. */
export async function rawTunnel(pair: Pair): Promise<Tunnel> {
  const server: Place = { host: pair.b };
  return { client: { host: pair.a }, server, serverAddr: UNDERLAY.b, underlayServer: server, pids: [], t0: Date.now(), down: async () => undefined, notes: {} };
}

/** A tunnel of two daemons started in the hosts' own namespaces (a → b); down() ends them. */
function daemonTunnel(pair: Pair, procs: Proc[], serverAddr: string, t0: number, notes: Record<string, unknown>): Tunnel {
  const server: Place = { host: pair.b };
  return {
    client: { host: pair.a },
    server,
    serverAddr,
    underlayServer: server,
    pids: procs.map((p) => p.pid),
    t0,
    notes,
    down: async () => {
      await Promise.all(procs.map((p) => p.kill()));
    },
  };
}

export interface HandOptions extends DaemonKnobs {
  mtu?: number;
  /** The wireguard-go binary (default: the one on PATH). */
  binary?: string;
  /** Run on each end after the link is up (with the daemon's PID and the end's host), e.g. to change a knob. */
  after?: (end: 'a' | 'b', pid: number, place: Place) => Promise<void>;
}

/**
 * (b) The textbook tunnel: `wireguard-go wg0` (foreground here, to know its PID), `wg set` with key, port and
 * the peer, an address, MTU 1420, up — all in the host's own namespace, nothing else.
 */
export async function handTunnel(pair: Pair, o: HandOptions = {}): Promise<Tunnel> {
  const rnd = seededRandom(`hand-${Date.now()}-${Math.random()}`);
  const keys = { a: x25519KeyPair(rnd(32)), b: x25519KeyPair(rnd(32)) };
  const addr = { a: '10.99.0.1', b: '10.99.0.2' };
  const port = HAND_PORT;
  const procs: Proc[] = [];
  const t0 = Date.now();
  const ends = [
    ['a', pair.a, 'b'],
    ['b', pair.b, 'a'],
  ] as const;
  try {
    await Promise.all(
      ends.map(async ([me, host, other], i) => {
        const prefix = [...(o.cpus ? ['taskset', '-c', o.cpus[i]] : []), ...(o.nice ? ['nice', '-n', String(o.nice)] : []), ...(o.prefix ?? [])];
        const p = spawnIn({ host }, [o.binary ?? 'wireguard-go', '-f', 'wg0'], {
          timeoutMs: 600_000,
          env: { WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1', LOG_LEVEL: 'error', ...o.env },
          prefix,
        });
        procs.push(p);
        await waitFile(`/proc/${host.anchorPid}/root/run/wireguard/wg0.sock`, 5000);
        const keyFile = join(pair.dir, `wg-${me}.key`);
        writeFileSync(keyFile, keys[me].privateKey.toString() + '\n', { mode: 0o600 });
        const endpoint = `${me === 'a' ? UNDERLAY.b : UNDERLAY.a}:${port}`;
        await execIn({ host }, ['wg', 'set', 'wg0', 'listen-port', String(port), 'private-key', keyFile, 'peer', keys[other].publicKey.toString(), 'endpoint', endpoint, 'allowed-ips', `${addr[other]}/32`]);
        await execIn({ host }, ['ip', 'address', 'add', `${addr[me]}/24`, 'dev', 'wg0']);
        await execIn({ host }, ['ip', 'link', 'set', 'wg0', 'mtu', String(o.mtu ?? 1420), 'up']);
        if (o.after) await o.after(me, p.pid, { host });
      }),
    );
  } catch (e) {
    await Promise.all(procs.map((p) => p.kill()));
    throw e;
  }
  return daemonTunnel(pair, procs, addr.b, t0, {});
}

function checkReport(r: ApplyReport, what: string): ApplyReport {
  if (!r.ok) throw new Error(`${what}: ${JSON.stringify([...r.resources.flatMap((x) => x.failures), ...r.removed.flatMap((x) => x.failures)])}`);
  return r;
}

/** (c) The same two hosts as one zmesh network, applied by each host's netns driver (as an agent would). */
export async function zmeshTunnel(pair: Pair, o: { after?: (t: Tunnel) => Promise<void> } = {}): Promise<Tunnel> {
  const net = handPlan({
    ipRange: '10.77.0.0/16',
    nodes: [
      { node: 'a', underlay: UNDERLAY.a },
      { node: 'b', underlay: UNDERLAY.b },
    ],
  });
  const ida = net.identity.get('a')! as Key;
  const idb = net.identity.get('b')! as Key;
  const t0 = Date.now();
  // As the agent applies (src/agent/netns-adapter.ts): no read-back for the report. What the rest of the run
  // needs from the hosts (daemon PIDs, the MTU) is read after the first ping (Tunnel.ready).
  const [ra, rb] = await Promise.all([pair.a.apply([net.desired.get('a')!], ida, undefined, { readBack: false }), pair.b.apply([net.desired.get('b')!], idb, undefined, { readBack: false })]);
  checkReport(ra, 'apply a');
  checkReport(rb, 'apply b');
  const ns = `n-${net.networkId}`;
  const server: Place = { host: pair.b, netns: ns };
  const t: Tunnel = {
    client: { host: pair.a, netns: ns },
    server,
    serverAddr: net.desired.get('b')!.resource.wgAddress.split('/')[0],
    underlayServer: { host: pair.b },
    pids: [NaN, NaN],
    t0,
    notes: {
      applyMs: [round(ra.ms), round(rb.ms)],
      processes: [ra.commands.reads + ra.commands.mutating, rb.commands.reads + rb.commands.mutating],
      tuning: ra.resources[0].changes.filter((c) => c.startsWith('tuning')),
    },
    ready: async () => {
      const [aa, ab] = await Promise.all([pair.a.readActual(net.networkId), pair.b.readActual(net.networkId)]);
      t.pids = [aa, ab].map((a) => a.daemon?.pid ?? NaN);
      t.notes.mtu = aa.links.find((l) => l.name.startsWith('w-'))?.mtu;
    },
    down: async () => {
      await Promise.all([pair.a.apply([], ida).then((r) => checkReport(r, 'remove a')), pair.b.apply([], idb).then((r) => checkReport(r, 'remove b'))]);
    },
  };
  if (o.after) await o.after(t);
  return t;
}

export interface NebulaOptions {
  /** Tunnel MTU; Nebula 1.6.1's default is 1300. */
  mtu?: number;
  routines?: number;
  /** The server side's inbound firewall rules (default: everything). */
  serverInbound?: Record<string, string>[];
}

/** (d) Nebula 1.6.1 between the two hosts: a CA, two certificates, static host map, a firewall that allows all. */
export async function nebulaTunnel(pair: Pair, o: NebulaOptions = {}): Promise<Tunnel> {
  const dir = mkdtempSync(join(pair.dir, 'nebula-'));
  const addr = { a: '100.64.0.1', b: '100.64.0.2' };
  await sh(['nebula-cert', 'ca', '-name', 'zmesh-bench', '-out-crt', join(dir, 'ca.crt'), '-out-key', join(dir, 'ca.key')]);
  for (const me of ['a', 'b'] as const) {
    await sh(['nebula-cert', 'sign', '-ca-crt', join(dir, 'ca.crt'), '-ca-key', join(dir, 'ca.key'), '-name', me, '-ip', `${addr[me]}/24`, '-out-crt', join(dir, `${me}.crt`), '-out-key', join(dir, `${me}.key`)]);
    const other = me === 'a' ? 'b' : 'a';
    const cfg = {
      pki: { ca: join(dir, 'ca.crt'), cert: join(dir, `${me}.crt`), key: join(dir, `${me}.key`) },
      static_host_map: { [addr[other]]: [`${other === 'a' ? UNDERLAY.a : UNDERLAY.b}:4242`] },
      lighthouse: { am_lighthouse: false, interval: 60, hosts: [] },
      listen: { host: '0.0.0.0', port: 4242 },
      punchy: { punch: false },
      tun: { disabled: false, dev: 'nb0', drop_local_broadcast: false, drop_multicast: false, tx_queue: 500, ...(o.mtu ? { mtu: o.mtu } : {}), routes: [], unsafe_routes: [] },
      ...(o.routines ? { routines: o.routines } : {}),
      logging: { level: 'warning', format: 'text' },
      firewall: {
        conntrack: { tcp_timeout: '12m', udp_timeout: '3m', default_timeout: '10m' },
        outbound: [{ port: 'any', proto: 'any', host: 'any' }],
        inbound: me === 'b' && o.serverInbound ? o.serverInbound : [{ port: 'any', proto: 'any', host: 'any' }],
      },
    };
    writeFileSync(join(dir, `${me}.yml`), stringify(cfg));
  }
  const t0 = Date.now();
  const procs: Proc[] = [];
  try {
    for (const [me, host] of [
      ['a', pair.a],
      ['b', pair.b],
    ] as const) {
      procs.push(spawnIn({ host }, ['nebula', '-config', join(dir, `${me}.yml`)], { timeoutMs: 600_000 }));
    }
    // Nebula brings its tun up itself; wait until it is there (bounded).
    for (const host of [pair.a, pair.b]) {
      const deadline = Date.now() + 5000;
      while ((await execIn({ host }, ['ip', 'link', 'show', 'dev', 'nb0'], { okCodes: [0, 1] })).exitCode !== 0) {
        if (Date.now() > deadline) throw new Error(`nebula did not create its tun: ${(await Promise.race([procs[0].done, sleep(10)]))?.toString() ?? ''}`);
        await sleep(20);
      }
    }
  } catch (e) {
    await Promise.all(procs.map((p) => p.kill()));
    throw e;
  }
  return { ...daemonTunnel(pair, procs, addr.b, t0, { mtu: o.mtu ?? 1300 }), serverConfig: join(dir, 'b.yml') };
}

/** Milliseconds from t.t0 to the first echo reply (pings every 20 ms, at most 15 s), or NaN. */
export async function firstPing(t: Tunnel): Promise<number> {
  const r = await execIn(t.client, ['ping', '-D', '-n', '-i', '0.02', '-c', '1', '-w', '15', t.serverAddr], { okCodes: [0, 1, 2], timeoutMs: 20_000 });
  const m = /^\[(\d+\.\d+)\].*bytes from/m.exec(r.stdout);
  return m ? round(Number(m[1]) * 1000 - t.t0) : NaN;
}

export interface IperfResult {
  mbps: number;
  bytes: number;
  retransmits: number;
  /** CPU seconds of the tunnel daemons (both ends) during the run. */
  daemonCpuS: number;
  /** Daemon CPU seconds per GB carried. */
  cpuSPerGB: number;
  /** UDP datagrams dropped at the receiving side (RcvbufErrors) during the run. */
  udpRcvbufErrors: number;
  udpInDatagrams: number;
  load: number;
}

/** One iperf3 TCP run from client to server through the tunnel (bounded: seconds + 15 s). */
export async function iperf(t: Tunnel, o: { seconds: number; parallel?: number; port?: number }): Promise<IperfResult> {
  const port = String(o.port ?? 5201);
  const server = spawnIn(t.server, ['iperf3', '-s', '-1', '-B', t.serverAddr, '-p', port], { timeoutMs: (o.seconds + 20) * 1000 });
  try {
    // Wait until the server listens (bounded).
    const deadline = Date.now() + 5000;
    while (!(await execIn(t.server, ['ss', '-Htln', `sport = :${port}`])).stdout.trim()) {
      if (Date.now() > deadline) throw new Error('iperf3 server did not start');
      await sleep(20);
    }
    const cpu0 = t.pids.map(cpuSeconds);
    const udp0 = await udpCounters(t.underlayServer);
    const args = ['iperf3', '-c', t.serverAddr, '-p', port, '-t', String(o.seconds), '-J', ...(o.parallel && o.parallel > 1 ? ['-P', String(o.parallel)] : [])];
    const r = await execIn(t.client, args, { okCodes: [0, 1], timeoutMs: (o.seconds + 15) * 1000 });
    const cpu1 = t.pids.map(cpuSeconds);
    const udp1 = await udpCounters(t.underlayServer);
    const j = JSON.parse(r.stdout) as { error?: string; end?: { sum_received?: { bytes: number; bits_per_second: number }; sum_sent?: { retransmits?: number } } };
    if (j.error || !j.end?.sum_received) throw new Error(`iperf3: ${j.error ?? 'no result'}`);
    const bytes = j.end.sum_received.bytes;
    const daemonCpuS = cpu1.reduce((s, x, i) => s + (x - cpu0[i]), 0);
    return {
      mbps: round(j.end.sum_received.bits_per_second / 1e6),
      bytes,
      retransmits: j.end.sum_sent?.retransmits ?? 0,
      daemonCpuS: round(daemonCpuS, 2),
      cpuSPerGB: t.pids.length ? round(daemonCpuS / (bytes / 1e9), 2) : NaN,
      udpRcvbufErrors: udp1.rcvbufErrors - udp0.rcvbufErrors,
      udpInDatagrams: udp1.inDatagrams - udp0.inDatagrams,
      load: load1(),
    };
  } finally {
    await server.kill();
  }
}
