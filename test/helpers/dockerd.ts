// A private Docker engine for tests and labs: its own --data-root, --exec-root, --pidfile and unix socket in a
// fresh directory, no iptables and no bridge (containers get NetworkMode none from zmesh anyway), its own
// containerd namespaces. Never touches a system dockerd. By default its data root is a btrfs filesystem on a
// sparse image in that directory (loop-mounted where dockerd runs) with the btrfs storage driver, so workload
// disk limits (StorageOpt size → btrfs qgroups) are enforced: this kernel's XFS has no quota support, which
// overlay2's limit needs. stop() removes every container it holds, ends dockerd by its PID (SIGTERM, then
// SIGKILL after a bounded wait), then its managed containerd by PID if still there, unmounts the data root and
// whatever is left under its directory, detaches the image's loop device and deletes the directory.
// `prefix` runs dockerd inside another namespace (e.g. ['nsenter', '-t', PID, '-m', '-n', '--'] for a lab node
// with a private /run, so the engine sees that node's mounts); the socket lives in the directory either way.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { execa } from 'execa';
import { killContainerProcesses } from '../../runtime/engine.ts';
import { LogDemuxer } from '../../runtime/index.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface DockerdOptions {
  /** argv prefix to run dockerd in other namespaces. */
  prefix?: string[];
  /** Parent directory (default the OS temp dir); must be visible from where dockerd runs. */
  parent?: string;
  /** Default btrfs (on its own loop-mounted image). Another driver runs on a plain directory. */
  storageDriver?: string;
  /** Size of the btrfs image of the data root, bytes (sparse; default 2 GiB). */
  dataSize?: number;
  /** Milliseconds to wait for the socket (default 30 s). */
  startTimeoutMs?: number;
}

export interface PrivateDockerd {
  dir: string;
  socket: string;
  pid: number;
  docker: Docker;
  /** The data root, and the btrfs image mounted on it (null with another storage driver). */
  dataRoot: string;
  dataImage: string | null;
  storageDriver: string;
  /** Milliseconds from spawn to a ping answered. */
  startMs: number;
  log(): string;
  stop(): Promise<void>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (!alive(pid)) return true;
    // A zombie child counts as gone once it is a zombie.
    try {
      if (/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))) return true;
    } catch {
      return true;
    }
    await sleep(50);
  }
  return !alive(pid);
}

function mountsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = line.split(' ')[4];
    if (mp && (mp === dir || mp.startsWith(dir + '/'))) out.push(mp.replace(/\\040/g, ' '));
  }
  return out.sort((a, b) => b.length - a.length);
}

/** PIDs of containerd shims whose containerd address lies under `execRoot`. */
function shimsOf(execRoot: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      if (argv[0]?.includes('containerd-shim') && argv.some((a) => a.startsWith(`${execRoot}/`))) out.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** Loop devices backed by `file` (the kernel's view). */
export function loopsOf(file: string): string[] {
  const out: string[] = [];
  let names: string[];
  try {
    names = readdirSync('/sys/block').filter((n) => /^loop\d+$/.test(n));
  } catch {
    return out;
  }
  for (const n of names) {
    try {
      const f = readFileSync(`/sys/block/${n}/loop/backing_file`, 'utf8').trim();
      if (f === file || f === `${file} (deleted)`) out.push(`/dev/${n}`);
    } catch {
      /* not bound */
    }
  }
  return out;
}

export async function startDockerd(opts: DockerdOptions = {}): Promise<PrivateDockerd> {
  const dir = mkdtempSync(join(opts.parent ?? tmpdir(), 'zmesh-dockerd-'));
  const socket = join(dir, 'docker.sock');
  const pidfile = join(dir, 'dockerd.pid');
  const logPath = join(dir, 'dockerd.log');
  const dataRoot = join(dir, 'data');
  const driver = opts.storageDriver ?? 'btrfs';
  const dataImage = driver === 'btrfs' ? join(dir, 'data.img') : null;
  mkdirSync(dataRoot, { mode: 0o700 });
  mkdirSync(join(dir, 'exec'), { mode: 0o700 });
  const prefix = opts.prefix ?? [];
  if (dataImage) {
    try {
      const fd = openSync(dataImage, 'wx', 0o600);
      try {
        ftruncateSync(fd, opts.dataSize ?? 2 * 1024 ** 3);
      } finally {
        closeSync(fd);
      }
      await execa('mkfs.btrfs', ['-q', '-L', 'zmesh-engine', dataImage], { timeout: 60_000 });
      await execa(prefix[0] ?? 'mount', [...prefix.slice(1), ...(prefix.length ? ['mount'] : []), '-t', 'btrfs', '-o', 'loop', dataImage, dataRoot], { timeout: 30_000 });
    } catch (e) {
      for (const l of loopsOf(dataImage)) await execa('losetup', ['-d', l], { reject: false });
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }
  const ns = `zmesh-test-${randomBytes(4).toString('hex')}`;
  const args = [
    'dockerd',
    `--data-root=${join(dir, 'data')}`,
    `--exec-root=${join(dir, 'exec')}`,
    `--pidfile=${pidfile}`,
    `--host=unix://${socket}`,
    '--iptables=false',
    '--ip6tables=false',
    '--ip-masq=false',
    '--bridge=none',
    `--containerd-namespace=${ns}`,
    `--containerd-plugins-namespace=${ns}-plugins`,
    '--log-level=warn',
    `--storage-driver=${driver}`,
  ];
  const argv = [...prefix, ...args];
  const fd = openSync(logPath, 'a', 0o600);
  let child: ChildProcess;
  const t0 = performance.now();
  try {
    child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', fd, fd], detached: false });
  } finally {
    closeSync(fd);
  }
  const docker = new Docker({ socketPath: socket, timeout: 60_000 });
  const readLog = () => (existsSync(logPath) ? readFileSync(logPath, 'utf8') : '');
  let exited = false;
  child.once('exit', () => (exited = true));
  const stop = async () => {
    try {
      if (!exited) {
        try {
          const all = await docker.listContainers({ all: true });
          for (const c of all) {
            // Every process of its cgroup first: Docker's kill signals init only, which a fork bomb starves.
            const pid = (await docker.getContainer(c.Id).inspect().catch(() => null))?.State?.Pid ?? 0;
            if (pid > 0) await killContainerProcesses(c.Id, pid, 10_000);
            await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
          }
        } catch {
          /* the engine may already be gone */
        }
      }
      // containerd's pid before dockerd goes (dockerd writes it under its exec root).
      let containerdPid = 0;
      try {
        containerdPid = Number(readFileSync(join(dir, 'exec', 'containerd', 'containerd.pid'), 'utf8').trim()) || 0;
      } catch {
        /* none */
      }
      const pid = child.pid!;
      if (!exited && alive(pid)) {
        process.kill(pid, 'SIGTERM');
        if (!(await waitGone(pid, 20_000))) {
          process.kill(pid, 'SIGKILL');
          await waitGone(pid, 5000);
        }
      }
      if (containerdPid > 0 && alive(containerdPid)) {
        const comm = readFileSync(`/proc/${containerdPid}/comm`, 'utf8').trim();
        if (comm === 'containerd') {
          process.kill(containerdPid, 'SIGTERM');
          if (!(await waitGone(containerdPid, 10_000))) process.kill(containerdPid, 'SIGKILL');
        }
      }
      // Shims of containers that would not go (they outlive containerd): ours by their containerd address.
      for (const shim of shimsOf(join(dir, 'exec'))) {
        process.kill(shim, 'SIGKILL');
        await waitGone(shim, 5000);
      }
    } finally {
      // The data root where dockerd ran (with a prefix: in that mount namespace), then what is left here.
      if (dataImage && prefix.length) await execa(prefix[0], [...prefix.slice(1), 'umount', '-l', dataRoot], { reject: false, timeout: 30_000 });
      for (const mp of mountsUnder(dir)) await execa('umount', ['-l', mp], { reject: false });
      if (dataImage) {
        // `mount -o loop` detaches the device when the last mount of it goes (mount namespaces copied while it
        // was mounted keep it until they end): wait a little, then detach what is left (autoclear).
        for (let i = 0; i < 40 && loopsOf(dataImage).length; i++) await sleep(50);
        for (const l of loopsOf(dataImage)) await execa('losetup', ['-d', l], { reject: false });
      }
      rmSync(dir, { recursive: true, force: true });
    }
  };
  const deadline = Date.now() + (opts.startTimeoutMs ?? 30_000);
  while (true) {
    if (exited) {
      const log = readLog();
      await stop();
      throw new Error(`dockerd exited during start:\n${log.slice(-2000)}`);
    }
    if (existsSync(socket)) {
      try {
        await docker.ping();
        break;
      } catch {
        /* not yet */
      }
    }
    if (Date.now() > deadline) {
      const log = readLog();
      await stop();
      throw new Error(`dockerd did not answer within ${opts.startTimeoutMs ?? 30_000} ms:\n${log.slice(-2000)}`);
    }
    await sleep(50);
  }
  return { dir, socket, pid: child.pid!, docker, dataRoot, dataImage, storageDriver: driver, startMs: performance.now() - t0, log: readLog, stop };
}

/** Runs a command in a container (docker exec) and collects its output; bounded by timeoutMs. */
export async function dexec(docker: Docker, id: string, cmd: string[], timeoutMs = 20_000): Promise<{ exitCode: number; out: string }> {
  const ex = await docker.getContainer(id).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await ex.start({ hijack: true, stdin: false });
  const demux = new LogDemuxer();
  const chunks: Buffer[] = [];
  demux.on('data', (b: Buffer) => chunks.push(b));
  stream.pipe(demux);
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`exec ${cmd.join(' ')} timed out`)), timeoutMs);
    stream.on('end', () => (clearTimeout(t), resolve()));
    stream.on('error', (e) => (clearTimeout(t), reject(e)));
  });
  const info = await ex.inspect();
  return { exitCode: info.ExitCode ?? -1, out: Buffer.concat(chunks).toString('utf8') };
}
