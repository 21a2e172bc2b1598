// A throwaway "host" for integration tests: a holder process in its own network and mount namespace with a
// private tmpfs on /run, so /run/netns and /run/wireguard never collide with the machine's or other hosts'.
// Everything started inside is found by its network namespace and ended by PID.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import { execa } from 'execa';

function netnsOf(pid: number): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/net`);
  } catch {
    return null;
  }
}

function mntnsOf(pid: number): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return null;
  }
}

async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

export class NodeHost {
  private constructor(
    readonly name: string,
    private readonly holder: ChildProcess,
    readonly netns: string,
    readonly mntns: string,
  ) {}

  get pid(): number {
    return this.holder.pid!;
  }

  static async start(name: string): Promise<NodeHost> {
    const holder = spawn(
      'unshare',
      ['--net', '--mount', '--propagation', 'private', '--', 'sh', '-c', 'mount -t tmpfs -o mode=0755 tmpfs /run && ip link set lo up && echo ready && exec sleep 3600'],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('host holder did not start')), 5000);
      holder.stdout!.once('data', () => {
        clearTimeout(t);
        resolve();
      });
      holder.once('exit', (c) => reject(new Error(`host holder exited ${c}`)));
    });
    // `sh` exec'd into sleep: wait until the pid's namespace differs from ours.
    const mine = netnsOf(process.pid);
    await waitFor(() => netnsOf(holder.pid!) !== mine, 2000, 'holder namespace');
    return new NodeHost(name, holder, netnsOf(holder.pid!)!, mntnsOf(holder.pid!)!);
  }

  /** argv to run a command inside this host (its network and mount namespaces). */
  argv(cmd: string[]): string[] {
    return ['nsenter', '-t', String(this.pid), '-m', '-n', `--wd=${process.cwd()}`, '--', ...cmd];
  }

  async exec(cmd: string[], opts: { input?: string; reject?: boolean } = {}) {
    const [file, ...args] = this.argv(cmd);
    return execa(file, args, { input: opts.input, reject: opts.reject ?? true, env: { LC_ALL: 'C' }, timeout: 30000 });
  }

  spawn(cmd: string[], opts: { env?: Record<string, string> } = {}): ChildProcess {
    const [file, ...args] = this.argv(cmd);
    return spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  }

  /** PIDs of every process in this host's network or mount namespace except the holder. */
  pids(): number[] {
    const out: number[] = [];
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      const pid = Number(d);
      if (pid !== this.pid && (netnsOf(pid) === this.netns || mntnsOf(pid) === this.mntns)) out.push(pid);
    }
    return out;
  }

  /**
   * Ends every process in the host by PID (SIGKILL), then the holder; the namespaces go with them. Scans until
   * three scans in a row find nothing, so a process that was being started while its parent died is caught too.
   */
  async destroy(): Promise<void> {
    let quiet = 0;
    const deadline = Date.now() + 10000;
    while (quiet < 3 && Date.now() < deadline) {
      const pids = this.pids();
      if (!pids.length) quiet++;
      else quiet = 0;
      for (const p of pids) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    if (this.holder.exitCode === null) {
      this.holder.kill('SIGKILL');
      await new Promise((r) => this.holder.once('exit', r));
    }
  }
}

export { waitFor };
