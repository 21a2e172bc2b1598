// A real `zmesh agent` with workloads and volumes in a throwaway host: the AgentHost of agent-host.ts plus a
// private dockerd started inside the host (so the engine sees the agent's pool mount), the offline base image
// built with `zmesh image base`, and the agent config's engine and pool settings. Helpers read what the
// runtime left on the machine: mounts of a process's mount namespace, loop devices backed by the pool image,
// subvolumes and qgroup limits of the pool, processes nobody owns, and the runtime's records in the agent's
// store (read-only). destroyRuntimeHost() ends everything by PID, unmounts the pool,
// detaches its loop devices and deletes the directory.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { parseQgroups } from '../../runtime/storage.ts';
import { identity } from './fixtures.ts';
import { tenantKeys } from './agent-fixtures.ts';
import { ROOT, stopAgent, type AgentHost } from './agent-host.ts';
import { startDockerd, type PrivateDockerd } from './dockerd.ts';
import { NodeHost } from './node-host.ts';

export interface RuntimeHost extends AgentHost {
  dockerd: PrivateDockerd;
  stateDir: string;
  /** <stateDir>/storage/pool.img and its mount point. */
  image: string;
  pool: string;
}

export async function makeRuntimeHost(opts: { node?: string; tenants?: string[]; interval?: string; poolSize?: string; logLevel?: string } = {}): Promise<RuntimeHost> {
  const node = opts.node ?? 'node-a';
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-rt-host-'));
  chmodSync(dir, 0o755);
  const stateDir = join(dir, 'state');
  mkdirSync(stateDir, { mode: 0o700 });
  writeFileSync(join(stateDir, 'identity.key'), identity(node).privateKey.toString() + '\n', { mode: 0o600 });
  const host = await NodeHost.start('rt-host');
  let dockerd: PrivateDockerd;
  try {
    dockerd = await startDockerd({ prefix: ['nsenter', '-t', String(host.pid), '-m', '-n', '--'] });
  } catch (e) {
    await host.destroy();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const config = join(dir, 'agent.yaml');
  const socket = join(dir, 'admin.sock');
  writeFileSync(
    config,
    stringify({
      nodeId: node,
      identityKeyFile: join(stateDir, 'identity.key'),
      stateDir,
      adminSocket: socket,
      endpoints: ['203.0.113.1'],
      wireguardBackend: 'userspace',
      reconcileInterval: opts.interval ?? '2s',
      underlayMtu: 1500,
      logLevel: opts.logLevel ?? 'info',
      dockerSocket: dockerd.socket,
      storagePoolSize: opts.poolSize ?? '256Mi',
      trustedTenants: Object.fromEntries((opts.tenants ?? ['acme', 'globex']).map((t) => [t, tenantKeys(t).publicKey.toString()])),
    }),
  );
  const rt: RuntimeHost = {
    host,
    dir,
    socket,
    config,
    agent: null,
    log: [],
    dockerd,
    stateDir,
    image: join(stateDir, 'storage', 'pool.img'),
    pool: join(stateDir, 'storage', 'pool'),
  };
  try {
    const r = await execa(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'image', 'base', '--docker-socket', dockerd.socket, '--json'], { reject: false, cwd: ROOT, timeout: 60_000 });
    if (r.exitCode !== 0) throw new Error(`zmesh image base: ${r.stderr}`);
  } catch (e) {
    await destroyRuntimeHost(rt);
    throw e;
  }
  return rt;
}

/**
 * Ends the agent (SIGKILL, by PID), the private dockerd (its containers first), unmounts the pool inside the
 * host, ends the host, detaches any loop device still backed by the pool image and deletes the directory.
 * Never throws.
 */
export async function destroyRuntimeHost(rt: RuntimeHost): Promise<void> {
  await stopAgent(rt, 'SIGKILL').catch(() => undefined);
  await rt.dockerd.stop().catch(() => undefined);
  await rt.host.exec(['umount', rt.pool], { reject: false }).catch(() => undefined);
  await rt.host.destroy().catch(() => undefined);
  for (let i = 0; i < 20; i++) {
    const loops = await poolLoops(rt.image).catch(() => []);
    if (!loops.length) break;
    for (const l of loops) await execa('losetup', ['-d', l.name], { reject: false });
    await new Promise((r) => setTimeout(r, 100));
  }
  rmSync(rt.dir, { recursive: true, force: true });
}

export interface MountRow {
  id: number;
  /** The root of the mount within its filesystem (a btrfs subvolume path, e.g. "/volumes/acme.shop.data"). */
  root: string;
  mountpoint: string;
  fstype: string;
  source: string;
}

function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** /proc/<pid>/mountinfo text → rows. Pure. */
export function parseMountinfo(text: string): MountRow[] {
  const out: MountRow[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const dash = f.indexOf('-', 6);
    if (f.length < 10 || dash < 0) continue;
    out.push({ id: Number(f[0]), root: unescape(f[3]), mountpoint: unescape(f[4]), fstype: f[dash + 1], source: unescape(f[dash + 2]) });
  }
  return out;
}

/** The mounts of a process's mount namespace. */
export function mountsOf(pid: number): MountRow[] {
  return parseMountinfo(readFileSync(`/proc/${pid}/mountinfo`, 'utf8'));
}

/** Loop devices whose backing file is `image` (the kernel's view; loop devices are not namespaced). */
export async function poolLoops(image: string): Promise<{ name: string; backFile: string }[]> {
  const r = await execa('losetup', ['-J', '-l'], { reject: false });
  if (r.exitCode !== 0 || !r.stdout.trim()) return [];
  const devs = (JSON.parse(r.stdout) as { loopdevices?: { name: string; 'back-file': string | null }[] }).loopdevices ?? [];
  return devs
    .map((d) => ({ name: d.name, backFile: (d['back-file'] ?? '').trim() }))
    .filter((d) => d.backFile === image || d.backFile.startsWith(`${image} `));
}

/** Subvolume paths of a mounted btrfs filesystem ("volumes/acme.shop.data"), read inside the host. */
export async function subvolumes(host: NodeHost, mountpoint: string): Promise<string[]> {
  const r = await host.exec(['btrfs', 'subvolume', 'list', mountpoint]);
  return r.stdout
    .split('\n')
    .map((l) => /\bpath (.+)$/.exec(l.trim())?.[1])
    .filter((p): p is string => !!p)
    .sort();
}

/** qgroup limits (max referenced, bytes or null) by subvolume path, and the qgroups no subvolume has any more. */
export async function qgroupLimits(host: NodeHost, mountpoint: string): Promise<{ limits: Map<string, number | null>; stale: string[] }> {
  const r = await host.exec(['btrfs', 'qgroup', 'show', '--raw', '-re', mountpoint]);
  const rows = parseQgroups(r.stdout);
  const limits = new Map<string, number | null>();
  const stale: string[] = [];
  for (const q of rows) {
    if (!q.id.startsWith('0/') || q.id === '0/5') continue;
    if (q.path === '' || q.path === '<stale>' || q.path.startsWith('<')) stale.push(q.id);
    else limits.set(q.path, q.maxReferenced);
  }
  return { limits, stale };
}

/** The runtime's records in the agent's state store (opened read-only; WAL lets it read beside the agent). */
export function runtimeRecords(stateDir: string): {
  workloads: { key: string; containerId: string | null; attachment: { containerId: string; hostIf: string; address: string } | null }[];
  volumes: { key: string; state: string; size: number }[];
} {
  const path = join(stateDir, 'state.db');
  if (!existsSync(path)) return { workloads: [], volumes: [] };
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const workloads = db
      .prepare<[], { key: string; container_id: string | null; attachment: string | null }>('SELECT key, container_id, attachment FROM workloads ORDER BY key')
      .all()
      .map((r) => ({ key: r.key, containerId: r.container_id, attachment: r.attachment ? JSON.parse(r.attachment) : null }));
    const volumes = db.prepare<[], { key: string; state: string; size: number }>('SELECT key, state, size FROM volumes ORDER BY key').all();
    return { workloads, volumes };
  } finally {
    db.close();
  }
}

/** Long-lived processes a runtime host may hold (comm, as the kernel truncates it to 15 characters). */
const DAEMONS = ['wireguard-go', 'dockerd', 'containerd', 'containerd-shim', 'dnsmasq'];

/**
 * Processes in the host that nobody owns: neither the agent, a daemon (wireguard-go, dockerd, containerd and
 * its shims, a network's resolver dnsmasq), nor a command one of them is running right now. "pid comm" each.
 */
export function strayProcesses(rt: RuntimeHost): string[] {
  const info = new Map<number, { comm: string; ppid: number }>();
  for (const pid of rt.host.pids()) {
    try {
      const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const rp = st.lastIndexOf(')');
      info.set(pid, { comm: st.slice(st.indexOf('(') + 1, rp), ppid: Number(st.slice(rp + 2).split(' ')[1]) });
    } catch {
      /* gone */
    }
  }
  const owner = (pid: number) => pid === rt.agent?.pid || DAEMONS.some((d) => info.get(pid)?.comm.startsWith(d));
  const out: string[] = [];
  for (const [pid, p] of info) {
    let ok = owner(pid);
    for (let up = p.ppid, n = 0; !ok && info.has(up) && n < 50; up = info.get(up)!.ppid, n++) ok = owner(up);
    if (!ok) out.push(`${pid} ${p.comm}`);
  }
  return out.sort();
}
