// A private Docker engine for tests and labs: its own --data-root, --exec-root, --pidfile and unix socket in a
// fresh directory, no iptables and no bridge (containers get NetworkMode none from zmesh anyway), its own
// containerd namespaces. Never touches a system dockerd. stop() removes every container it holds, ends dockerd
// by its PID (SIGTERM, then SIGKILL after a bounded wait), then its managed containerd by PID if still there,
// unmounts whatever is left under its directory and deletes it.
// `prefix` runs dockerd inside another namespace (e.g. ['nsenter', '-t', PID, '-m', '-n', '--'] for a lab node
// with a private /run, so the engine sees that node's mounts); the socket lives in the directory either way.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { execa } from 'execa';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface DockerdOptions {
  /** argv prefix to run dockerd in other namespaces. */
  prefix?: string[];
  /** Parent directory (default the OS temp dir); must be visible from where dockerd runs. */
  parent?: string;
  storageDriver?: string;
  /** Milliseconds to wait for the socket (default 30 s). */
  startTimeoutMs?: number;
}

export interface PrivateDockerd {
  dir: string;
  socket: string;
  pid: number;
  docker: Docker;
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

export async function startDockerd(opts: DockerdOptions = {}): Promise<PrivateDockerd> {
  const dir = mkdtempSync(join(opts.parent ?? tmpdir(), 'zmesh-dockerd-'));
  const socket = join(dir, 'docker.sock');
  const pidfile = join(dir, 'dockerd.pid');
  const logPath = join(dir, 'dockerd.log');
  mkdirSync(join(dir, 'data'), { mode: 0o700 });
  mkdirSync(join(dir, 'exec'), { mode: 0o700 });
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
    ...(opts.storageDriver ? [`--storage-driver=${opts.storageDriver}`] : []),
  ];
  const argv = [...(opts.prefix ?? []), ...args];
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
          for (const c of all) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
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
    } finally {
      for (const mp of mountsUnder(dir)) await execa('umount', ['-l', mp], { reject: false });
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
  return { dir, socket, pid: child.pid!, docker, startMs: performance.now() - t0, log: readLog, stop };
}
