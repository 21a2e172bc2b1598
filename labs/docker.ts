// A private Docker engine per lab node that hosts workloads, started INSIDE the node's network and mount
// namespaces (the engine resolves bind-mount sources — the agent's volume subvolumes — in its own mount
// namespace, so it must share the node's). Everything of it lives under <lab>/nodes/<node>/docker/: data root,
// exec root, pid file, config file, log and its unix socket (the host reaches it there). No iptables, no
// bridge, no registry: the base image (runtime/image.ts, `zmesh image base`) is imported from a tar built on
// this machine. Containers' cgroups go under /<lab prefix>n-<node> (--cgroup-parent), so `lab down` finds a
// node's container processes by cgroup even after everything else of the lab crashed. The data root is a btrfs
// filesystem on a sparse image beside it (data.img), loop-mounted inside the node's mount namespace before the
// engine starts (so it goes with the namespace, and `lab down` waits for its loop device like the pool's), and
// the engine runs the btrfs storage driver: workload disk limits (StorageOpt size) are btrfs qgroups.
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import type DockerModule from 'dockerode';
import { BASE_IMAGE, baseImageTar, importImage, parseApplets } from '../runtime/image.ts';
import { containerName } from '../runtime/names.ts';
import { findMount } from '../runtime/storage.ts';
import { ZmeshError } from '../src/errors.ts';
import { labPrefix, type HostLayout } from './layout.ts';
import { nodePaths, type LabState } from './state.ts';
import { killInside, nodeCgroups } from './cleanup.ts';
import { alive, allPids, cmdline, inHolder, nsInode, procRef, run, signal, spawnDetached, waitFor, waitGone, type ProcRef } from './sys.ts';

// By require(), not `import`: a CommonJS package through the ESM loader can come out empty (src/control/etcd.ts).
const Docker = createRequire(import.meta.url)('dockerode') as typeof DockerModule;
type Docker = DockerModule;

/** Longest unix socket path (sun_path is 108 bytes with the terminating NUL). */
const MAX_SOCKET_PATH = 107;
/** The longest socket name dockerd's managed containerd makes under the exec root. */
const CONTAINERD_SOCKET = 'containerd/containerd-debug.sock';
/** Storage pool image size for lab agents (sparse; btrfs needs at least ~128 MiB). */
export const LAB_POOL_SIZE = '512Mi';
/** Size of a node engine's data root image (sparse: it takes what the images and containers write). */
export const LAB_ENGINE_SIZE = 4 * 1024 ** 3;
export const LAB_STORAGE_DRIVER = 'btrfs';

export interface DockerPaths {
  dir: string;
  dataRoot: string;
  execRoot: string;
  pidfile: string;
  socket: string;
  config: string;
  log: string;
  /** The btrfs image mounted on dataRoot. */
  dataImage: string;
}

export function dockerPaths(dir: string, node: string): DockerPaths {
  const d = join(nodePaths(dir, node).dir, 'docker');
  return {
    dir: d,
    dataRoot: join(d, 'data'),
    execRoot: join(d, 'run'),
    pidfile: join(d, 'dockerd.pid'),
    socket: join(d, 'docker.sock'),
    config: join(d, 'daemon.json'),
    log: join(d, 'dockerd.log'),
    dataImage: join(d, 'data.img'),
  };
}

/** The cgroup parent of a node's containers (one path segment, absolute: the same on every controller). */
export function cgroupSegment(lab: string, node: string): string {
  return `${labPrefix(lab)}n-${node}`;
}

/** dockerd's argv for a node. Pure. */
export function dockerdArgv(p: DockerPaths, lab: string, node: string): string[] {
  return [
    'dockerd',
    `--config-file=${p.config}`,
    `--data-root=${p.dataRoot}`,
    `--exec-root=${p.execRoot}`,
    `--pidfile=${p.pidfile}`,
    `--host=unix://${p.socket}`,
    '--iptables=false',
    '--ip6tables=false',
    '--ip-masq=false',
    '--bridge=none',
    `--storage-driver=${LAB_STORAGE_DRIVER}`,
    '--exec-opt=native.cgroupdriver=cgroupfs',
    `--cgroup-parent=/${cgroupSegment(lab, node)}`,
    '--log-level=warn',
  ];
}

export function dockerClient(dir: string, node: string, timeoutMs = 30_000): Docker {
  return new Docker({ socketPath: dockerPaths(dir, node).socket, timeout: timeoutMs });
}

/** Whether the recorded dockerd of a node is alive and inside the node's current mount namespace. */
export function dockerdAlive(state: LabState, node: string): boolean {
  const d = state.dockerd[node];
  const h = state.holders[node];
  return Boolean(d && h && alive(d) && nsInode(d.pid, 'mnt') === h.mnt && nsInode(d.pid, 'net') === h.net);
}

async function answers(docker: Docker): Promise<boolean> {
  try {
    await docker.ping();
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts the node's dockerd inside its namespaces (unless one runs there) and waits, bounded, until it
 * answers. A fresh start begins with an empty exec root (runtime state, as /run after a reboot); the data
 * root (images, containers) stays.
 */
export async function ensureDockerd(host: HostLayout, holderPid: number, dir: string, state: LabState, timeoutMs = 30_000): Promise<{ started: boolean; ms: number }> {
  const t0 = Date.now();
  const p = dockerPaths(dir, host.name);
  const docker = dockerClient(dir, host.name, 5000);
  if (dockerdAlive(state, host.name) && (await waitFor(() => answers(docker), 5000, 100))) {
    await linkDefaultSocket(holderPid, p.socket);
    return { started: false, ms: Date.now() - t0 };
  }
  for (const s of [p.socket, `${p.execRoot}/${CONTAINERD_SOCKET}`]) {
    if (s.length > MAX_SOCKET_PATH) {
      throw new ZmeshError('E_LAB_DIR', `the Docker socket path ${s} is longer than ${MAX_SOCKET_PATH} bytes`, { hint: 'use a shorter ZMESH_LAB_DIR, lab name or node name' });
    }
  }
  delete state.dockerd[host.name];
  // An engine of this node that the state does not know (the lab command crashed before recording it):
  // adopt it when it answers; otherwise end it and its containerd (by PID, found in the node's mount
  // namespace by their exec root) before starting afresh.
  const mnt = nsInode(holderPid, 'mnt');
  const found = allPids().filter((pid) => mnt !== null && nsInode(pid, 'mnt') === mnt && cmdline(pid).some((a) => a.includes(p.execRoot)));
  const old = found.find((pid) => cmdline(pid)[0] === 'dockerd');
  if (old && (await answers(docker))) {
    const ref = procRef(old);
    if (ref) {
      state.dockerd[host.name] = ref;
      await linkDefaultSocket(holderPid, p.socket);
      return { started: false, ms: Date.now() - t0 };
    }
  }
  if (found.length) {
    const refs = found.map(procRef).filter((r): r is ProcRef => r !== null);
    for (const r of refs) signal(r, 'SIGKILL');
    for (const r of refs) await waitGone(r, 3000);
    // Its containers would linger as orphans (their shims are gone): end them too, by their cgroup.
    await killInside(() => [], 5000, nodeCgroups(state.name, host.name));
  }
  mkdirSync(p.dataRoot, { recursive: true, mode: 0o700 });
  await ensureDataRoot(p, holderPid);
  rmSync(p.execRoot, { recursive: true, force: true });
  rmSync(p.pidfile, { force: true });
  rmSync(p.socket, { force: true });
  mkdirSync(p.execRoot, { recursive: true, mode: 0o700 });
  // Its own (empty) config file, so a host /etc/docker/daemon.json never applies to a lab engine.
  if (!existsSync(p.config)) writeFileSync(p.config, '{}\n', { mode: 0o600 });
  const which = await run(['sh', '-c', 'command -v dockerd'], { okCodes: [0, 1, 127] });
  if (which.exitCode !== 0) {
    throw new ZmeshError('E_LAB_DOCKER', 'this lab runs workloads, but dockerd is not installed', { hint: 'apt-get install --no-install-recommends docker.io (scripts/deps.sh does)' });
  }
  const proc = spawnDetached(inHolder(holderPid, dockerdArgv(p, state.name, host.name)), { logFile: p.log });
  state.dockerd[host.name] = proc;
  const ok = await waitFor(async () => !alive(proc) || (await answers(docker)), timeoutMs, 50);
  if (!ok || !alive(proc)) {
    let tail = '';
    try {
      tail = readFileSync(p.log, 'utf8').trim().split('\n').slice(-3).join(' | ').slice(0, 800);
    } catch {
      /* no log */
    }
    throw new ZmeshError('E_LAB_DOCKER', `the Docker engine of ${host.name} did not come up${alive(proc) ? ` within ${timeoutMs} ms` : ' (it exited)'}`, {
      kind: 'retryable',
      hint: tail ? `last log lines: ${tail}` : `see ${p.log}`,
    });
  }
  await linkDefaultSocket(holderPid, p.socket);
  return { started: true, ms: Date.now() - t0 };
}

/**
 * The engine's data root: a btrfs filesystem on data.img (made once, sparse), mounted on dataRoot in the node's
 * mount namespace unless it is already. A data root of an older lab (a plain directory) is hidden under it.
 */
async function ensureDataRoot(p: DockerPaths, holderPid: number): Promise<void> {
  const m = findMount(readFileSync(`/proc/${holderPid}/mountinfo`, 'utf8'), p.dataRoot);
  if (m?.fstype === 'btrfs') return;
  if (!existsSync(p.dataImage)) {
    // Made aside and renamed: an image that exists is always formatted.
    const tmp = `${p.dataImage}.new`;
    rmSync(tmp, { force: true });
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      ftruncateSync(fd, LAB_ENGINE_SIZE);
    } finally {
      closeSync(fd);
    }
    await run(['mkfs.btrfs', '-q', '-L', 'zmesh-engine', tmp], { timeoutMs: 60_000 });
    renameSync(tmp, p.dataImage);
  }
  await run(inHolder(holderPid, ['mount', '-t', 'btrfs', '-o', 'loop', p.dataImage, p.dataRoot]), { timeoutMs: 30_000 });
}

/** /run/docker.sock in the node's private /run points at its engine, so `zmesh lab exec LAB NODE -- docker ps`
 *  works as on a real node. */
async function linkDefaultSocket(holderPid: number, socket: string): Promise<void> {
  await run(inHolder(holderPid, ['ln', '-sfn', socket, '/run/docker.sock']));
}

let baseTar: Promise<Buffer> | null = null;

/** The base image's tar (this machine's static busybox), built once per process. */
export function labBaseTar(): Promise<Buffer> {
  baseTar ??= (async () => {
    const list = await run(['busybox', '--list'], { okCodes: [0, 1, 127] });
    return baseImageTar({ applets: list.exitCode === 0 ? parseApplets(list.stdout) : [] });
  })();
  baseTar.catch(() => (baseTar = null));
  return baseTar;
}

/** Imports the base image into a node's engine unless it is there. Returns whether it imported. */
export async function ensureBaseImage(dir: string, node: string): Promise<boolean> {
  const docker = dockerClient(dir, node, 60_000);
  try {
    await docker.getImage(BASE_IMAGE).inspect();
    return false;
  } catch (e) {
    if ((e as { statusCode?: number }).statusCode !== 404) throw e;
  }
  await importImage(docker, await labBaseTar(), BASE_IMAGE);
  return true;
}

/** The PID of a workload's container when it runs (in the host's PID namespace), else null. */
export async function workloadPid(docker: Docker, w: { node: string; tenant: string; blueprint: string; name: string }): Promise<number | null> {
  try {
    const c = await docker.getContainer(containerName(w)).inspect();
    return c.State?.Running && c.State.Pid > 0 ? c.State.Pid : null;
  } catch {
    return null;
  }
}
