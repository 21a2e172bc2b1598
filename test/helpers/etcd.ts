// Real etcd processes for tests, labs and benchmarks: one member or a 3-member cluster on loopback (or, for
// labs, on given addresses with an argv prefix such as `ip netns exec NS`; `ip` execs etcd, so the PID is etcd's),
// random free ports, a data dir of their own under a temp dir (on /dev/shm when there is one: fsync is cheap
// there), optional TLS with client certificates (a CA, server and client certs made with openssl). Stopped by PID
// in `stop()` — never by name.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { Pki, type CertFiles } from '../../labs/pki.ts';
import { join } from 'node:path';

export const ETCD_BIN = process.env.ZMESH_ETCD_BIN ?? '/usr/bin/etcd';

export function etcdAvailable(): boolean {
  return existsSync(ETCD_BIN);
}

/** A free TCP port on 127.0.0.1 (bound, read, released). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

export interface EtcdTls {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A client certificate signed by another CA (must be refused). */
  rogueCert: string;
  rogueKey: string;
  /** A client certificate (made once) whose CN is `cn`: the etcd user it authenticates as. */
  user(cn: string): CertFiles;
}

/** A CA, a server cert for 127.0.0.1/localhost (and `ips`), a client cert, and a rogue client cert from another CA. */
export function makeTls(dir: string, ips: string[] = []): EtcdTls {
  const pki = new Pki(dir, 'ca', 2);
  const rogue = new Pki(dir, 'rogue-ca', 2);
  const server = pki.leaf('server', { san: ['127.0.0.1', ...ips.filter((ip) => ip !== '127.0.0.1'), 'localhost'], usage: 'both' });
  const client = pki.leaf('client');
  const rogueClient = rogue.leaf('rogue');
  return {
    dir,
    ca: pki.ca,
    serverCert: server.cert,
    serverKey: server.key,
    clientCert: client.cert,
    clientKey: client.key,
    rogueCert: rogueClient.cert,
    rogueKey: rogueClient.key,
    user: (cn) => pki.leaf(`user-${cn}`, { cn }),
  };
}

export interface EtcdMember {
  name: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  pid: number | null;
  /** Starts the member (again, with its data dir) and waits until it answers. */
  start(): Promise<void>;
  /** SIGKILL by PID; waits for the exit. */
  kill(): Promise<void>;
}

export interface EtcdCluster {
  members: EtcdMember[];
  /** Client URLs of every member, comma-separated (what --etcd takes). */
  urls: string;
  tls: EtcdTls | null;
  /** Stops every member by PID and removes the data dirs. */
  stop(): Promise<void>;
}

export interface EtcdOptions {
  members?: 1 | 3;
  tls?: boolean;
  /** Extra flags for every member. */
  args?: string[];
  /** Where data dirs go; default a fresh dir under /dev/shm (or the OS temp dir). */
  baseDir?: string;
  /** Address of each member (labs: an address in the member's namespace); default 127.0.0.1 for all. */
  hosts?: string[];
  /** argv prefix to run member i's processes with (labs: ['ip', 'netns', 'exec', ns]); default none. */
  exec?: (i: number) => string[];
}

function waitExit(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => p.once('exit', () => resolve()));
}

async function waitHealthy(url: string, tls: EtcdTls | null, prefix: string[] = [], timeoutMs = 20000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const args = ['--endpoints', url, '--dial-timeout', '1s', '--command-timeout', '2s', 'endpoint', 'health'];
    if (tls) args.push('--cacert', tls.ca, '--cert', tls.clientCert, '--key', tls.clientKey);
    const argv = [...prefix, 'etcdctl', ...args];
    const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' } });
    if (r.status === 0) return;
    last = r.stderr || r.stdout;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`etcd at ${url} not healthy: ${last}`);
}

/**
 * Data dirs this process made and has not removed yet. A `finally` does not run when the process is ended by a
 * signal (a bench under `timeout`, a test runner's SIGTERM): its etcd dies with it (setpriv's parent-death
 * signal below), but a data dir on /dev/shm would stay behind in memory (8 GiB after a killed 10,000-node
 * bench). So they are removed on exit and on SIGTERM/SIGINT/SIGHUP, which are then raised again.
 */
const liveDirs = new Set<string>();
let cleanupInstalled = false;
function removeLiveDirs(): void {
  for (const d of liveDirs) rmSync(d, { recursive: true, force: true });
  liveDirs.clear();
}
function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', removeLiveDirs);
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.once(sig, () => {
      removeLiveDirs();
      // Default behaviour again, unless someone else handles it.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    });
  }
}

/** Starts a 1- or 3-member etcd on loopback. Always call stop() in finally. */
export async function startEtcd(opts: EtcdOptions = {}): Promise<EtcdCluster> {
  const base = opts.baseDir ?? mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'zmesh-etcd-'));
  if (!opts.baseDir) {
    installCleanup();
    liveDirs.add(base);
  }
  const hostOf = (i: number) => opts.hosts?.[i] ?? '127.0.0.1';
  const prefixOf = (i: number) => opts.exec?.(i) ?? [];
  const tls = opts.tls ? makeTls(join(base, 'tls'), opts.hosts ?? []) : null;
  const scheme = tls ? 'https' : 'http';
  const n = opts.members ?? 1;
  const token = `zmesh-${process.pid}-${Date.now()}`;
  const specs: { name: string; client: number; peer: number }[] = [];
  for (let i = 0; i < n; i++) specs.push({ name: `m${i}`, client: await freePort(), peer: await freePort() });
  const initialCluster = specs.map((s, i) => `${s.name}=http://${hostOf(i)}:${s.peer}`).join(',');
  const procs = new Map<string, ChildProcess>();
  const logs = new Map<string, string[]>();

  const members: EtcdMember[] = specs.map((s, i) => {
    const dataDir = join(base, s.name);
    const host = hostOf(i);
    const clientUrl = `${scheme}://${host}:${s.client}`;
    const m: EtcdMember = {
      name: s.name,
      clientUrl,
      peerUrl: `http://${host}:${s.peer}`,
      dataDir,
      pid: null,
      async start() {
        const args = [
          '--name', s.name,
          '--data-dir', dataDir,
          '--listen-client-urls', clientUrl,
          '--advertise-client-urls', clientUrl,
          '--listen-peer-urls', `http://${host}:${s.peer}`,
          '--initial-advertise-peer-urls', `http://${host}:${s.peer}`,
          '--initial-cluster', initialCluster,
          '--initial-cluster-token', token,
          '--initial-cluster-state', 'new',
          '--heartbeat-interval', '50',
          '--election-timeout', '500',
          '--max-txn-ops', '1024',
          '--log-level', 'error',
          '--logger', 'zap',
          ...(tls ? ['--cert-file', tls.serverCert, '--key-file', tls.serverKey, '--client-cert-auth', '--trusted-ca-file', tls.ca] : []),
          ...(opts.args ?? []),
        ];
        // Killed with this process even when it dies without cleaning up (SIGKILL, out of memory): setpriv's
        // parent-death signal, kept across the exec into etcd (same PID, so stop() still ends it by PID).
        const argv = [...(existsSync('/usr/bin/setpriv') ? ['/usr/bin/setpriv', '--pdeathsig', 'KILL'] : []), ...prefixOf(i), ETCD_BIN, ...args];
        const p = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
        const log: string[] = [];
        logs.set(s.name, log);
        p.stderr?.on('data', (b: Buffer) => {
          log.push(b.toString());
          if (log.length > 50) log.shift();
        });
        procs.set(s.name, p);
        m.pid = p.pid ?? null;
        if (n === 1) {
          try {
            await waitHealthy(clientUrl, tls, prefixOf(i));
          } catch (e) {
            throw new Error(`${(e as Error).message}\n${log.join('')}`, { cause: e });
          }
        }
      },
      async kill() {
        const p = procs.get(s.name);
        if (!p) return;
        if (p.exitCode === null && p.signalCode === null) process.kill(p.pid!, 'SIGKILL');
        await waitExit(p);
        procs.delete(s.name);
        m.pid = null;
      },
    };
    return m;
  });
  const cluster: EtcdCluster = {
    members,
    urls: members.map((m) => m.clientUrl).join(','),
    tls,
    async stop() {
      for (const m of members) await m.kill().catch(() => undefined);
      if (!opts.baseDir) {
        rmSync(base, { recursive: true, force: true });
        liveDirs.delete(base);
      }
    },
  };
  try {
    await Promise.all(members.map((m) => m.start()));
    if (n > 1) await Promise.all(members.map((m, i) => waitHealthy(m.clientUrl, tls, prefixOf(i))));
  } catch (e) {
    await cluster.stop();
    throw e;
  }
  return cluster;
}

/** Client TLS options for src/control's connect() from a test cluster. */
export function clientTls(tls: EtcdTls | null): { cacert?: string; cert?: string; key?: string } {
  return tls ? { cacert: tls.ca, cert: tls.clientCert, key: tls.clientKey } : {};
}

/** Reads a PEM file (helper for tests that build credentials by hand). */
export function pem(path: string): Buffer {
  return readFileSync(path);
}
