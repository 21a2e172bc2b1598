// A reusable harness that simulates several hosts on one machine, after the kernel's WireGuard netns.sh:
// each SimHost is its own network namespace plus its own mount namespace with a private /run (so
// /run/netns and /run/wireguard are per host), running test/helpers/host-agent.ts (a netns Driver behind a
// JSON-lines RPC). Underlay links are veths between namespaces; a Switch is a namespace with a bridge; a NAT
// router is a namespace with nft masquerade. Everything gets random names and is removed by close()/destroy();
// processes are only ever killed by PID, and only those started inside a host this harness created.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import type { Key } from '../../src/crypto/index.ts';
import type { ActualResource, ApplyReport, BackendChoice, DesiredResource, EgressPolicy, OwnedThing } from '../../netns/index.ts';

export const REPO = new URL('../..', import.meta.url).pathname;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface ShResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs a command (argv, no shell) from the test process; throws unless the exit code is in okCodes. */
export async function sh(argv: string[], opts: { input?: string; okCodes?: number[]; timeoutMs?: number } = {}): Promise<ShResult> {
  const r = await execa(argv[0], argv.slice(1), {
    input: opts.input,
    stdin: opts.input === undefined ? 'ignore' : 'pipe',
    reject: false,
    env: { LC_ALL: 'C' },
    timeout: opts.timeoutMs ?? 20_000,
    killSignal: 'SIGKILL',
  });
  const exitCode = typeof r.exitCode === 'number' ? r.exitCode : -1;
  const out = { exitCode, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
  if (!(opts.okCodes ?? [0]).includes(exitCode)) {
    throw new Error(`${argv.join(' ')} → exit ${exitCode}${r.timedOut ? ' (timed out)' : ''}: ${out.stderr.trim()}`);
  }
  return out;
}

export function rand(n = 4): string {
  return randomBytes(n).toString('hex').slice(0, n * 2);
}

/** Creates a network namespace (machine-wide name) with loopback up. */
export async function makeNs(name: string): Promise<string> {
  await sh(['ip', 'netns', 'add', name]);
  await sh(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}

export async function delNs(name: string): Promise<void> {
  await sh(['ip', 'netns', 'del', name], { okCodes: [0, 1, 255] });
}

function nsInode(path: string): string | null {
  try {
    return readlinkSync(path);
  } catch {
    return null;
  }
}

/** PIDs whose namespace of `kind` is `target` (e.g. "mnt:[4026532…]"). */
export function pidsInNs(kind: 'net' | 'mnt', target: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    if (nsInode(`/proc/${p}/ns/${kind}`) === target) out.push(Number(p));
  }
  return out;
}

async function killPids(pids: number[]): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline && pids.some((p) => nsInode(`/proc/${p}/ns/net`) !== null)) await sleep(10);
}

export interface EndSpec {
  /** Namespace name as the root namespace sees it (SimHost.ns, a Switch's ns, or a router's). */
  ns: string;
  ifname: string;
  /** "203.0.113.1/24" */
  addr?: string;
}

/**
 * Starts a simulated host per label, one after the other, each pushed onto `hosts` as soon as it runs (the
 * caller closes them in its `finally`), then puts them on the switch (onSwitch). Returns them in label order.
 */
export async function startOnSwitch(sw: Switch, hosts: SimHost[], labels: readonly string[], opts: Parameters<typeof SimHost.start>[1]): Promise<SimHost[]> {
  const out: SimHost[] = [];
  for (const l of labels) {
    const h = await SimHost.start(l, opts);
    hosts.push(h);
    out.push(h);
  }
  await onSwitch(sw, out);
  return out;
}

/** Puts `hosts` on the switch as 203.0.113.1, .2, … (/24, uplink u0, default route via 203.0.113.254). */
export async function onSwitch(sw: Switch, hosts: readonly SimHost[], mtu = 1400): Promise<void> {
  for (const [i, h] of hosts.entries()) await sw.attach({ ns: h.ns, ifname: 'u0', addr: `203.0.113.${i + 1}/24` }, mtu);
  for (const h of hosts) await h.underlay('u0', '203.0.113.254');
}

/** A veth between two namespaces, created directly in them (it never appears in the root namespace). */
export async function wire(a: EndSpec, b: EndSpec, mtu = 1500): Promise<void> {
  if (a.ifname.length > 15 || b.ifname.length > 15) throw new Error('interface names fit 15 characters');
  await sh(['ip', 'link', 'add', 'name', a.ifname, 'netns', a.ns, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', b.ifname, 'netns', b.ns, 'mtu', String(mtu)]);
  for (const e of [a, b]) {
    if (e.addr) await sh(['ip', '-n', e.ns, 'addr', 'add', e.addr, 'dev', e.ifname]);
    await sh(['ip', '-n', e.ns, 'link', 'set', e.ifname, 'up']);
  }
}

/**
 * The internet for egress tests: an ISP router (203.0.113.254 on the switch, 192.0.2.1 beyond) and an outside
 * host 192.0.2.10 behind it (so not on any node's own subnet, which is its LAN and blocked); `host` gets
 * 203.0.113.1 on the switch and its default route via the ISP. `ipv6`: the same in IPv6 too (the ISP 2001:db8:1::fe
 * on the switch and 2001:db8:2::1 beyond, the outside 2001:db8:2::10, the host 2001:db8:1::1/64 with its IPv6
 * default route), the host's uplink taking router advertisements (accept_ra 1) and IPv6 forwarding off, as on a
 * fresh node. The caller deletes `isp` and `far`.
 */
export async function ispAndOutside(sw: Switch, host: SimHost, opts: { ipv6?: boolean } = {}): Promise<{ isp: string; far: string }> {
  const isp = `zt-isp-${rand()}`;
  const far = `zt-far-${rand()}`;
  const six = async (ns: string, argv: string[]) => {
    if (opts.ipv6) await sh(['ip', '-n', ns, ...argv]);
  };
  try {
    await makeNs(isp);
    await makeNs(far);
    await sh(['ip', 'netns', 'exec', isp, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', ...(opts.ipv6 ? ['net.ipv6.conf.all.forwarding=1'] : [])]);
    await sw.attach({ ns: isp, ifname: 'r0', addr: '203.0.113.254/24' });
    await six(isp, ['addr', 'add', '2001:db8:1::fe/64', 'dev', 'r0', 'nodad']);
    await wire({ ns: isp, ifname: 'r1', addr: '192.0.2.1/24' }, { ns: far, ifname: 'x0', addr: '192.0.2.10/24' });
    await six(isp, ['addr', 'add', '2001:db8:2::1/64', 'dev', 'r1', 'nodad']);
    await six(far, ['addr', 'add', '2001:db8:2::10/64', 'dev', 'x0', 'nodad']);
    await sh(['ip', '-n', far, 'route', 'add', 'default', 'via', '192.0.2.1']);
    await six(far, ['route', 'add', '::/0', 'via', '2001:db8:2::1']);
    await sw.attach({ ns: host.ns, ifname: 'u0', addr: '203.0.113.1/24' });
    await six(host.ns, ['addr', 'add', '2001:db8:1::1/64', 'dev', 'u0', 'nodad']);
    await host.underlay('u0', '203.0.113.254');
    if (opts.ipv6) {
      await six(host.ns, ['route', 'add', '::/0', 'via', '2001:db8:1::fe', 'dev', 'u0']);
      await host.exec(['sysctl', '-q', '-w', 'net.ipv6.conf.u0.accept_ra=1', 'net.ipv6.conf.all.forwarding=0']);
    }
  } catch (e) {
    for (const ns of [isp, far]) await delNs(ns).catch(() => undefined);
    throw e;
  }
  return { isp, far };
}

/** A namespace with a bridge: an underlay segment several hosts attach to. */
export class Switch {
  readonly ns: string;
  private ports = 0;
  private constructor(ns: string) {
    this.ns = ns;
  }
  static async create(): Promise<Switch> {
    const sw = new Switch(`zt-sw-${rand()}`);
    await makeNs(sw.ns);
    await sh(['ip', '-n', sw.ns, 'link', 'add', 'br0', 'type', 'bridge']);
    await sh(['ip', '-n', sw.ns, 'link', 'set', 'br0', 'up']);
    return sw;
  }
  async attach(end: EndSpec, mtu = 1500): Promise<void> {
    const port = `p${this.ports++}`;
    await wire(end, { ns: this.ns, ifname: port }, mtu);
    await sh(['ip', '-n', this.ns, 'link', 'set', port, 'master', 'br0']);
  }
  async destroy(): Promise<void> {
    await delNs(this.ns);
  }
}

/** A NAT router namespace: `lan` behind, `wan` outside, masquerade on wan (like netns.sh's routers). */
export async function makeNatRouter(name: string): Promise<string> {
  await makeNs(name);
  await sh(['ip', 'netns', 'exec', name, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
  await sh(['ip', 'netns', 'exec', name, 'nft', '-f', '-'], {
    input: 'table ip nat {\n\tchain post {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\toifname "wan" masquerade\n\t}\n}\n',
  });
  return name;
}

export interface HostOptions {
  backend?: BackendChoice;
  underlayMtu?: number;
  /** Shifts the driver's clock (to test the roaming window). */
  clockOffsetMs?: number;
  /** The driver's data-plane tuning (DriverOptions.tuning; default: on). */
  tuning?: boolean;
  /** The wireguard-go binary (DriverOptions.wireguardGo; default: the one on PATH). */
  wireguardGo?: string;
  /** The driver's egress policy (DriverOptions.egress: allow, deny, control plane). */
  egress?: EgressPolicy;
}

/** A simulated host: network namespace + mount namespace with a private /run + a driver agent. */
export class SimHost {
  readonly label: string;
  /** The host's network namespace name, as the root namespace sees it. */
  readonly ns: string;
  anchorPid = 0;
  private agent: ChildProcess | null = null;
  private pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private opts: HostOptions;
  private mntNs = '';

  private constructor(label: string, opts: HostOptions) {
    this.label = label;
    this.ns = `zt-${label}-${rand()}`;
    this.opts = opts;
  }

  static async start(label: string, opts: HostOptions = {}): Promise<SimHost> {
    const h = new SimHost(label, opts);
    try {
      await makeNs(h.ns);
      // The anchor holds the host's mount namespace (private /run) for the host's lifetime (bounded: 300 s).
      const anchor = spawn('nsenter', [`--net=/run/netns/${h.ns}`, '--', 'unshare', '--mount', '--propagation', 'private', '--', 'sleep', '300'], {
        stdio: 'ignore',
        detached: false,
      });
      if (!anchor.pid) throw new Error('could not start the anchor');
      h.anchorPid = anchor.pid;
      anchor.unref();
      const root = nsInode('/proc/self/ns/mnt');
      const deadline = Date.now() + 5000;
      while (true) {
        const mnt = nsInode(`/proc/${h.anchorPid}/ns/mnt`);
        let cmd = '';
        try {
          cmd = readFileSync(`/proc/${h.anchorPid}/cmdline`, 'utf8');
        } catch {
          /* not yet */
        }
        if (mnt && mnt !== root && cmd.startsWith('sleep')) {
          h.mntNs = mnt;
          break;
        }
        if (Date.now() > deadline) throw new Error('anchor did not enter its mount namespace');
        await sleep(5);
      }
      await sh(['nsenter', `--mount=/proc/${h.anchorPid}/ns/mnt`, '--', 'mount', '-t', 'tmpfs', '-o', 'mode=0755', 'zmesh-test-run', '/run']);
      await sh(['nsenter', `--mount=/proc/${h.anchorPid}/ns/mnt`, `--net=/proc/${h.anchorPid}/ns/net`, '--', 'mount', '-t', 'sysfs', 'sysfs', '/sys']);
      await h.startAgent();
      return h;
    } catch (e) {
      await h.close().catch(() => undefined);
      throw e;
    }
  }

  /** Starts (or restarts after stopAgent) the driver agent inside the host. */
  async startAgent(): Promise<void> {
    const child = spawn(
      'nsenter',
      [`--mount=/proc/${this.anchorPid}/ns/mnt`, `--net=/proc/${this.anchorPid}/ns/net`, `--wd=${REPO}`, '--', process.execPath, '--import', 'tsx', 'test/helpers/host-agent.ts'],
      { stdio: ['pipe', 'pipe', 'inherit'], cwd: REPO },
    );
    this.agent = child;
    const rl = createInterface({ input: child.stdout! });
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.label}: agent did not start`)), 20_000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${this.label}: agent exited (${code})`));
        for (const p of this.pending.values()) p.reject(new Error(`${this.label}: agent exited`));
        this.pending.clear();
      });
      rl.on('line', (line) => {
        let msg: { ready?: boolean; id?: number; result?: unknown; error?: { message: string } };
        try {
          msg = JSON.parse(line);
        } catch {
          return;
        }
        if (msg.ready) {
          clearTimeout(timer);
          resolve();
          return;
        }
        const p = msg.id !== undefined ? this.pending.get(msg.id) : undefined;
        if (!p) return;
        this.pending.delete(msg.id!);
        if (msg.error) p.reject(new Error(`${this.label}: ${msg.error.message}`));
        else p.resolve(msg.result);
      });
    });
    ready.catch(() => undefined);
    await ready;
    await this.call('init', {
      backend: this.opts.backend ?? 'auto',
      underlayMtu: this.opts.underlayMtu,
      clockOffsetMs: this.opts.clockOffsetMs,
      tuning: this.opts.tuning,
      wireguardGo: this.opts.wireguardGo,
      egress: this.opts.egress,
    });
  }

  /** Kills the agent process (SIGKILL, by PID) — daemons it started keep running, as after a crash. */
  async stopAgent(): Promise<void> {
    const a = this.agent;
    this.agent = null;
    if (!a || a.exitCode !== null || a.signalCode !== null) return;
    const gone = new Promise((r) => a.once('exit', r));
    a.kill('SIGKILL');
    await Promise.race([gone, sleep(3000)]);
  }

  call<T>(method: string, params: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<T> {
    const a = this.agent;
    if (!a?.stdin) return Promise.reject(new Error(`${this.label}: no agent`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.label}: ${method} timed out`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      a.stdin!.write(JSON.stringify({ id, method, params }) + '\n');
    });
  }

  /**
   * Applies; `egress` overrides the host's egress policy for this apply (ApplyOptions.egress); `readBack: false`
   * skips the report's read-back as the agent does (its report then carries no `actual`).
   */
  apply(desired: DesiredResource[], identity: Key, egress?: EgressPolicy, opts: { readBack?: boolean } = {}): Promise<ApplyReport> {
    return this.call('apply', { desired, identity: identity.toString(), ...(egress ? { egress } : {}), ...(opts.readBack === false ? { readBack: false } : {}) });
  }
  readActual(networkId: string): Promise<ActualResource> {
    return this.call('readActual', { networkId });
  }
  listOwned(): Promise<OwnedThing[]> {
    return this.call('listOwned');
  }

  /** Adds an address on a host interface and a default route (the driver reads the underlay MTU from it). */
  async underlay(ifname: string, gateway: string): Promise<void> {
    await sh(['ip', '-n', this.ns, 'route', 'add', 'default', 'via', gateway, 'dev', ifname]);
  }

  /** Runs argv in the host's network and mount namespaces. */
  exec(argv: string[], opts: { input?: string; okCodes?: number[]; timeoutMs?: number } = {}): Promise<ShResult> {
    return sh(['nsenter', `--mount=/proc/${this.anchorPid}/ns/mnt`, `--net=/proc/${this.anchorPid}/ns/net`, '--', ...argv], opts);
  }

  /** Runs argv inside a namespace created within this host (e.g. a tenant namespace n-<id>). */
  execIn(netns: string, argv: string[], opts: { input?: string; okCodes?: number[]; timeoutMs?: number } = {}): Promise<ShResult> {
    return sh(['nsenter', `--mount=/proc/${this.anchorPid}/ns/mnt`, '--', 'nsenter', `--net=/run/netns/${netns}`, '--', ...argv], opts);
  }

  /** One ping (1 s timeout) from a namespace of this host. */
  async ping(netns: string, dst: string, timeoutSec = 1): Promise<boolean> {
    const r = await this.execIn(netns, ['ping', '-n', '-q', '-c', '1', '-W', String(timeoutSec), dst], { okCodes: [0, 1, 2] });
    return r.exitCode === 0;
  }

  /** Pings until one answers, at most `tries` times (bounded in count and time). */
  async waitPing(netns: string, dst: string, tries = 12): Promise<boolean> {
    for (let i = 0; i < tries; i++) {
      if (await this.ping(netns, dst, 1)) return true;
    }
    return false;
  }

  /**
   * Processes inside this host (its mount namespace) as "pid cmdline", except the harness's own: the anchor,
   * the agent and the esbuild service tsx runs for it (it may outlive an agent killed by stopAgent()).
   */
  processes(): string[] {
    if (!this.mntNs) return [];
    const esbuild = `${REPO}node_modules/@esbuild/`;
    return pidsInNs('mnt', this.mntNs)
      .filter((p) => p !== this.anchorPid && p !== this.agent?.pid)
      .filter((p) => {
        try {
          return !readFileSync(`/proc/${p}/cmdline`, 'utf8').startsWith(esbuild);
        } catch {
          return false;
        }
      })
      .map((p) => {
        try {
          return `${p} ${readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ').trim()}`;
        } catch {
          return `${p} (gone)`;
        }
      })
      .filter((x) => !x.endsWith('(gone)'));
  }

  /** Removes what the driver owns (apply []), stops the agent, kills what is left inside, deletes the ns. */
  async close(): Promise<ApplyReport | null> {
    let report: ApplyReport | null = null;
    if (this.agent) report = await this.call<ApplyReport>('cleanup', {}, 20_000).catch(() => null);
    await this.stopAgent();
    const left = this.mntNs ? pidsInNs('mnt', this.mntNs) : this.anchorPid ? [this.anchorPid] : [];
    await killPids(left);
    await delNs(this.ns);
    return report;
  }
}

/**
 * Scans every /proc/<pid>/cmdline (and environ) over and over until stopped, looking for any of `needles`.
 * Used to prove secrets never reach argv while applying.
 */
export function watchProcArgs(needles: string[]): { stop: () => Promise<{ scans: number; hits: string[] }> } {
  let running = true;
  let scans = 0;
  const hits: string[] = [];
  const loop = (async () => {
    const deadline = Date.now() + 120_000;
    while (running && Date.now() < deadline) {
      for (const p of readdirSync('/proc')) {
        if (!/^\d+$/.test(p)) continue;
        for (const f of ['cmdline', 'environ']) {
          let text: string;
          try {
            text = readFileSync(`/proc/${p}/${f}`, 'latin1');
          } catch {
            continue;
          }
          for (const n of needles) if (text.includes(n)) hits.push(`${p}/${f}: ${text.replace(/\0/g, ' ').slice(0, 200)}`);
        }
      }
      scans++;
      await new Promise((r) => setImmediate(r));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return { scans, hits };
    },
  };
}
