// The runtime facade: one apply(desired) for a node's workloads and volumes, in the order that keeps data
// safe — volumes first (a workload never starts without its data), then containers (create, heal, attach,
// GC), then volumes no blueprint has any more (after the containers that mounted them are gone).
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { ProcessRunner, type Runner } from '../netns/runner.ts';
import { ZmeshError } from '../src/errors.ts';
import { Attacher } from './attach.ts';
import { Compute } from './compute.ts';
import { EtcFiles } from './etc.ts';
import { LogDemuxer } from './demux.ts';
import { DockerEngine, type Engine } from './engine.ts';
import { LABELS, OWNER_LABEL, OWNER_VALUE, keyOf } from './names.ts';
import { Storage, type StorageOptions } from './storage.ts';
import type { RuntimeStore } from './store.ts';
import type { DesiredVolume, DesiredWorkload, RuntimeReport, VolumeView, WorkloadView } from './types.ts';

export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';

export interface RuntimeOptions {
  node: string;
  store: RuntimeStore;
  stateDir: string;
  dockerSocket?: string;
  storage?: Omit<StorageOptions, 'stateDir'>;
  runner?: Runner;
  engine?: Engine;
  /** Path of a tenant namespace's nsfs file (default /run/netns/n-<id>). */
  netnsPath?: (networkId: string) => string;
  now?: () => number;
  /** Upper bound of the crash-loop restart backoff (use the reconcile interval). */
  maxBackoffMs?: number;
}

export interface Desired {
  workloads: DesiredWorkload[];
  volumes: DesiredVolume[];
  /**
   * Ids of the tenant networks on this node. GC also looks into their namespaces for veths and port bindings
   * no workload wants (those of the workloads and of remembered attachments are visited anyway), so a binding
   * left by a crash in a network whose last workload went is found too.
   */
  networks?: string[];
}

export class Runtime {
  readonly engine: Engine;
  readonly runner: Runner;
  readonly attacher: Attacher;
  readonly compute: Compute;
  readonly storage: Storage;
  private stopWatch: (() => void) | null = null;
  private watching: Promise<void> | null = null;

  constructor(private readonly opts: RuntimeOptions) {
    this.runner = opts.runner ?? new ProcessRunner();
    this.engine = opts.engine ?? new DockerEngine(opts.dockerSocket ?? DEFAULT_DOCKER_SOCKET);
    this.attacher = new Attacher(this.runner);
    this.compute = new Compute({ engine: this.engine, attacher: this.attacher, store: opts.store, etc: new EtcFiles(join(opts.stateDir, 'etc'), opts.node), node: opts.node, netnsPath: opts.netnsPath, now: opts.now, maxBackoffMs: opts.maxBackoffMs });
    this.storage = new Storage(this.runner, opts.store, { stateDir: opts.stateDir, ...opts.storage });
  }

  /** Converges this node's workloads and volumes. Invalid entries are reported and change nothing of theirs. */
  /**
   * `networks` (optional): settles when the tenant namespaces are in place. Volumes and new containers (create,
   * start) go ahead before it; anything that touches a tenant namespace (attach, detach, veth GC) waits for it.
   */
  async apply(desired: Desired, networks: Promise<unknown> = Promise.resolve()): Promise<RuntimeReport> {
    const t0 = performance.now();
    const mine = <T extends { node: string }>(xs: T[]) => xs.filter((x) => x.node === this.opts.node);
    const volumes = mine(desired.volumes);
    const workloads = mine(desired.workloads);
    const st = await this.storage.apply(volumes);
    const pathOf = new Map<string, string>();
    for (const v of volumes) if (st.ready.has(keyOf(v))) pathOf.set(keyOf(v), this.storage.volumePath(v));
    const cp = await this.compute.apply(workloads, (w, vol) => pathOf.get(`${w.tenant}/${w.blueprint}/${vol}`) ?? null, desired.networks ?? [], networks);
    const events = [...st.events, ...cp.events];
    const errors = [...st.errors, ...cp.errors];
    let changes = st.changes + cp.changes;
    // Volumes no blueprint has: only after every container of ours was removed cleanly.
    if (!cp.errors.some((e) => e.code === 'E_WORKLOAD_REMOVE' || e.code === 'E_DOCKER_UNREACHABLE')) {
      const gc = await this.storage.gc(new Set(volumes.map(keyOf)));
      events.push(...gc.events);
      errors.push(...gc.errors);
      changes += gc.changes;
    }
    return { ok: errors.length === 0, changes, events, errors, engine: cp.engine, ms: performance.now() - t0 };
  }

  async workloads(desired: DesiredWorkload[]): Promise<WorkloadView[]> {
    return this.compute.views(desired.filter((w) => w.node === this.opts.node));
  }

  async volumes(desired: Desired): Promise<VolumeView[]> {
    const by = new Map<string, string[]>();
    for (const w of desired.workloads) {
      if (w.node !== this.opts.node) continue;
      for (const m of w.mounts) {
        const k = `${w.tenant}/${w.blueprint}/${m.volume}`;
        by.set(k, [...(by.get(k) ?? []), w.name]);
      }
    }
    const views = await this.storage.views(desired.volumes.filter((v) => v.node === this.opts.node), by);
    return views.map((v) => ({ ...v, node: v.node || this.opts.node }));
  }

  /** A workload's output (stdout and stderr, demultiplexed). */
  async logs(w: { tenant: string; blueprint: string; name: string }, opts: { follow: boolean; tail?: number }): Promise<Readable> {
    const id = await this.compute.containerOf(w);
    if (!id) throw new ZmeshError('E_NOT_FOUND', `workload ${keyOf(w)} has no container on this node`, { hint: 'see `zmesh ps`' });
    const raw = await this.engine.logs(id, opts);
    const out = new LogDemuxer();
    raw.on('error', (e) => out.destroy(e));
    out.on('close', () => (raw as Readable).destroy?.());
    return raw.pipe(out);
  }

  /**
   * Watches the engine for our containers dying (exit, kill, OOM) and calls `onExit` at once, so healing does
   * not wait for the next interval. Idempotent; a lost event stream is re-opened by the next call.
   */
  async watch(onExit: (e: { workload: string; action: string }) => void): Promise<boolean> {
    if (this.stopWatch) return true;
    if (this.watching) {
      await this.watching;
      return this.stopWatch !== null;
    }
    this.watching = (async () => {
      if (!(await this.engine.ping())) return;
      const labels = { [OWNER_LABEL]: OWNER_VALUE, [LABELS.node]: this.opts.node };
      try {
        this.stopWatch = await this.engine.watch(
          labels,
          (e) => {
            const k = `${e.labels[LABELS.tenant]}/${e.labels[LABELS.blueprint]}/${e.labels[LABELS.workload]}`;
            onExit({ workload: k, action: e.action });
          },
          () => {
            this.stopWatch = null;
          },
        );
      } catch {
        this.stopWatch = null;
      }
    })();
    try {
      await this.watching;
    } finally {
      this.watching = null;
    }
    return this.stopWatch !== null;
  }

  /** Stops watching. Containers keep running and the pool stays mounted (a restart adopts them). */
  async close(): Promise<void> {
    this.stopWatch?.();
    this.stopWatch = null;
  }
}
