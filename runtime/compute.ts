// Compute: converges the containers of this node to the desired workloads and keeps them attached.
// For each workload: create (no Docker networking, labels, CPU and memory limits, volumes bind-mounted) and
// attach; a container that exited or was killed is started again (restart count, why: exit code, OOM) and
// re-attached with the same address; a container gone altogether is recreated; a changed spec replaces it;
// a running one is CHECKed against its stored attachment and repaired. A container whose security settings
// drifted from what createOptions makes (capabilities, privileges, disk or pids limit, network mode) is
// replaced at once, even while a volume is missing. Containers and veths that no workload wants are removed
// (GC) — only ours: owner and node labels, veth alias marker.
// Docker restarts nothing itself (RestartPolicy "no"): zmesh does, with a backoff for crash loops that never
// exceeds the reconcile interval.
import { ZmeshError } from '../src/errors.ts';
import type { AttachPort } from './attach.ts';
import type { EtcPort } from './etc.ts';
import { securityDrift, type ContainerState, type ContainerSummary, type Engine } from './engine.ts';
import { LABELS, OWNER_LABEL, OWNER_VALUE, containerName, isLabel, keyFromLabels, keyOf, labelsFor, specHash, validateWorkload, vethNames } from './names.ts';
import type { RuntimeStore, WorkloadRecord } from './store.ts';
import type { Attachment, DesiredWorkload, ExitInfo, RuntimeEvent, WorkloadView } from './types.ts';

/** Docker refuses smaller memory limits. */
export const MIN_ENGINE_MEMORY = 6 * 1024 * 1024;
/** A container that ran at least this long before exiting is not in a crash loop. */
const STABLE_MS = 10_000;

/** A workload record as it is stored, without its time: equal texts need no write. */
function recordText(r: WorkloadRecord): string {
  return JSON.stringify([r.key, r.containerId, r.restarts, r.lastExit, r.attachment]);
}

export interface ComputeOptions {
  engine: Engine;
  attacher: AttachPort;
  store: RuntimeStore;
  /** The containers' /etc/hosts, hostname and resolv.conf (etc.ts). */
  etc: EtcPort;
  node: string;
  /** Path of a tenant namespace's nsfs file (default /run/netns/n-<id>). */
  netnsPath?: (networkId: string) => string;
  now?: () => number;
  /** Upper bound of the restart backoff (the reconcile interval). */
  maxBackoffMs?: number;
}

export interface ComputeResult {
  engine: boolean;
  changes: number;
  events: RuntimeEvent[];
  errors: { subject: string; code: string; message: string }[];
}

/** "exit code 1", "OOM killed (exit code 137)", … */
export function exitReason(x: ExitInfo): string {
  const parts = [x.oomKilled ? `OOM killed (exit code ${x.exitCode})` : x.exitCode === 137 ? 'killed (exit code 137, SIGKILL)' : `exit code ${x.exitCode}`];
  if (x.error) parts.push(x.error);
  return parts.join(': ');
}

export class Compute {
  private readonly engine: Engine;
  private readonly attacher: AttachPort;

  /** An engine call that removes or starts a container changes the tenant namespace without a command of ours (a
   *  container's veth pair goes with its namespace): the reads shared in this reconcile are forgotten after it. */
  private async changed<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } finally {
      this.attacher.forget?.();
    }
  }
  private readonly store: RuntimeStore;
  private readonly now: () => number;
  readonly netnsPath: (networkId: string) => string;
  private readonly backoff = new Map<string, { until: number; failures: number }>();

  constructor(private readonly opts: ComputeOptions) {
    this.engine = opts.engine;
    this.attacher = opts.attacher;
    this.store = opts.store;
    this.now = opts.now ?? Date.now;
    this.netnsPath = opts.netnsPath ?? ((id) => `/run/netns/n-${id}`);
  }

  private ours(): Record<string, string> {
    return { [OWNER_LABEL]: OWNER_VALUE, [LABELS.node]: this.opts.node };
  }

  /**
   * Converges to `desired`. `mountSource` gives the host path of a volume of the workload's blueprint, or null
   * when it is not ready (the workload then waits: it never runs without its data).
   */
  async apply(
    desired: DesiredWorkload[],
    mountSource: (w: DesiredWorkload, volume: string) => string | null,
    networks: string[] = [],
    networksReady: Promise<unknown> = Promise.resolve(),
  ): Promise<ComputeResult> {
    // Whatever the data plane's outcome, only its end matters here (a failed network makes the attach fail, reported).
    const ready = networksReady.then(
      () => undefined,
      () => undefined,
    );
    try {
      // One pass: the attacher reads each tenant namespace's links and binding table once for every CHECK and GC.
      const run = () => this.applyWhenReady(desired, mountSource, networks, ready);
      return await (this.attacher.pass ? this.attacher.pass(run) : run());
    } finally {
      await ready; // never return (and let the caller go on) while the data plane is still at work
    }
  }

  private async applyWhenReady(desired: DesiredWorkload[], mountSource: (w: DesiredWorkload, volume: string) => string | null, networks: string[], ready: Promise<void>): Promise<ComputeResult> {
    const res: ComputeResult = { engine: false, changes: 0, events: [], errors: [] };
    const keepKeys = new Set(desired.map(keyOf));
    const valid: DesiredWorkload[] = [];
    for (const w of desired) {
      const p = validateWorkload(w);
      if (w.node !== this.opts.node) p.push(`workload is for node ${w.node}, not ${this.opts.node}`);
      if (p.length) res.errors.push({ subject: `workload ${keyOf(w)}`, code: 'E_WORKLOAD_INVALID', message: p.join('; ') });
      else valid.push(w);
    }
    const records = new Map(this.store.workloads().map((r) => [r.key, r]));
    // Namespaces of every attachment known at the start: GC visits them even when their records go below.
    const knownNs = new Set([...records.values()].flatMap((r) => (r.attachment ? [r.attachment.netns] : [])));
    if (desired.length === 0 && records.size === 0) {
      // Nothing wanted and nothing remembered: clean leftovers only when an engine is there at all.
      if (!(await this.engine.ping())) return res;
      await ready;
    } else if (!(await this.engine.ping())) {
      if (valid.length) {
        res.errors.push({ subject: 'engine', code: 'E_DOCKER_UNREACHABLE', message: `the Docker engine is not reachable; ${valid.length} workload(s) wait for it` });
      }
      return res;
    }
    res.engine = true;
    let list: ContainerSummary[];
    try {
      list = await this.engine.list(this.ours());
    } catch (e) {
      res.errors.push({ subject: 'engine', code: (e as ZmeshError).code ?? 'E_DOCKER', message: (e as Error).message });
      return res;
    }
    const byKey = new Map<string, ContainerSummary[]>();
    for (const c of list) {
      const k = keyFromLabels(c.labels, this.opts.node);
      if (!k) continue;
      byKey.set(k, [...(byKey.get(k) ?? []), c]);
    }

    for (const w of valid) {
      const key = keyOf(w);
      const stored = records.get(key);
      const rec: WorkloadRecord = stored ?? { key, containerId: null, restarts: 0, lastExit: null, attachment: null, updatedAt: new Date(this.now()).toISOString() };
      // What the record says before this pass (its time aside): a pass that changes nothing writes nothing.
      const before = stored ? recordText(stored) : null;
      try {
        await this.converge(w, rec, byKey.get(key) ?? [], mountSource, res, ready);
      } catch (e) {
        res.errors.push({ subject: `workload ${key}`, code: (e as ZmeshError).code ?? 'E_WORKLOAD', message: (e as Error).message });
      }
      if (recordText(rec) === before) continue;
      rec.updatedAt = new Date(this.now()).toISOString();
      this.store.putWorkload(rec);
    }

    // GC: containers and records no workload wants (invalid desired entries keep theirs); detaching is in the
    // tenant namespaces, so after the data plane.
    await ready;
    const notRemoved = new Set<string>();
    for (const [key, cs] of byKey) {
      if (keepKeys.has(key)) continue;
      const rec = records.get(key);
      try {
        if (rec?.attachment) await this.attacher.del(rec.attachment);
        for (const c of cs) await this.changed(() => this.engine.remove(c.id));
        this.store.deleteWorkload(key);
        records.delete(key);
        this.backoff.delete(key);
        res.changes++;
        res.events.push({ level: 'info', kind: 'workload.removed', subject: `workload ${key}`, message: `removed container ${cs.map((c) => c.name).join(', ')}: no blueprint wants it` });
      } catch (e) {
        for (const c of cs) notRemoved.add(c.name);
        res.errors.push({ subject: `workload ${key}`, code: (e as ZmeshError).code ?? 'E_WORKLOAD_REMOVE', message: (e as Error).message });
      }
    }
    for (const [key, rec] of records) {
      if (keepKeys.has(key) || byKey.has(key)) continue;
      try {
        if (rec.attachment && (await this.attacher.del(rec.attachment))) res.changes++;
        this.store.deleteWorkload(key);
        this.backoff.delete(key);
      } catch (e) {
        res.errors.push({ subject: `workload ${key}`, code: (e as ZmeshError).code ?? 'E_DETACH', message: (e as Error).message });
      }
    }
    // The /etc files of containers that are neither wanted nor still there (a removal that failed keeps them).
    try {
      this.opts.etc.gc(new Set([...desired.filter((w) => isLabel(w.tenant) && isLabel(w.blueprint) && isLabel(w.name)).map((w) => containerName(w)), ...notRemoved]));
    } catch (e) {
      res.errors.push({ subject: 'etc files', code: 'E_GC', message: (e as Error).message });
    }
    // GC of veths: in the namespaces of wanted workloads and of every attachment still remembered.
    const validIfs = new Map<string, Set<string>>();
    for (const w of desired) {
      const ns = this.netnsPath(w.network?.id);
      if (!validIfs.has(ns)) validIfs.set(ns, new Set());
      validIfs.get(ns)!.add(vethNames(w).host);
    }
    for (const r of this.store.workloads()) if (r.attachment && !validIfs.has(r.attachment.netns)) validIfs.set(r.attachment.netns, new Set());
    for (const ns of knownNs) if (!validIfs.has(ns)) validIfs.set(ns, new Set());
    for (const id of networks) if (/^[a-z0-9]{10}$/.test(id) && !validIfs.has(this.netnsPath(id))) validIfs.set(this.netnsPath(id), new Set());
    for (const [ns, names] of validIfs) {
      try {
        const removed = await this.attacher.gc([ns], names);
        if (removed.length) {
          res.changes += removed.length;
          res.events.push({ level: 'info', kind: 'workload.gc', subject: 'veths', message: `removed veths no workload wants: ${removed.join(', ')}` });
        }
      } catch (e) {
        res.errors.push({ subject: `namespace ${ns}`, code: 'E_GC', message: (e as Error).message });
      }
    }
    return res;
  }

  /**
   * One workload. A new container is created and started at once; everything else (an attach, a detach, a
   * replacement) waits for `ready`, the data plane's end: tenant namespaces and bridges are its.
   */
  private async converge(
    w: DesiredWorkload,
    rec: WorkloadRecord,
    found: ContainerSummary[],
    mountSource: (w: DesiredWorkload, v: string) => string | null,
    res: ComputeResult,
    ready: Promise<void> = Promise.resolve(),
  ): Promise<void> {
    const key = keyOf(w);
    const subject = `workload ${key}`;
    const name = containerName(w);
    const sources = w.mounts.map((m) => mountSource(w, m.volume));
    const missing = w.mounts.filter((_, i) => sources[i] === null).map((m) => m.volume);
    const hash = specHash(w, sources.map((s) => s ?? ''));
    // Extra containers carrying this workload's labels (renamed by hand, say): only one may live.
    let c: ContainerSummary | undefined = found.find((x) => x.name === name) ?? found[0];
    if (c) await ready;
    for (const x of found) if (x !== c) await this.changed(() => this.engine.remove(x.id));

    let inspected: ContainerState | null = null;
    let why: string | null = null;
    if (c && c.labels[LABELS.spec] !== hash && missing.length === 0) why = 'spec changed (image, command, limits, volumes or address)';
    else if (c) {
      inspected = await this.engine.inspect(c.id);
      const drift = inspected ? securityDrift(inspected.security, w.disk) : [];
      if (drift.length) why = `security settings drifted (${drift.join('; ')})`;
    }
    if (c && why) {
      if (rec.attachment) await this.attacher.del(rec.attachment);
      rec.attachment = null;
      const id = c.id;
      await this.changed(() => this.engine.remove(id));
      rec.containerId = null;
      res.changes++;
      res.events.push({ level: why.startsWith('security') ? 'warn' : 'info', kind: 'workload.replaced', subject, message: `${why}: container replaced` });
      c = undefined;
      inspected = null;
    }
    if (!c) {
      if (missing.length) throw new ZmeshError('E_VOLUME_NOT_READY', `volume(s) ${missing.join(', ')} not ready: the workload waits for its data`, { kind: 'retryable' });
      if (!(await this.engine.imageExists(w.image))) {
        throw new ZmeshError('E_IMAGE_MISSING', `image ${w.image} is not in the engine (no registry is used)`, { hint: 'load it (docker load / zmesh image base) on this node', kind: 'retryable' });
      }
      const vanished = rec.containerId !== null;
      const cpus = await this.engine.cpus();
      const id = await this.engine.create({
        name,
        image: w.image,
        command: w.command,
        hostname: w.name,
        labels: labelsFor(w, hash),
        nanoCpus: Math.round(Math.min(w.cpu, cpus) * 1e9),
        memory: Math.max(w.memory, MIN_ENGINE_MEMORY),
        disk: w.disk,
        mounts: [...w.mounts.map((m, i) => ({ source: sources[i]!, target: m.path })), ...this.opts.etc.ensure(w)],
      });
      rec.containerId = id;
      rec.attachment = null;
      await this.changed(() => this.engine.start(id));
      if (vanished) rec.restarts++;
      res.changes++;
      res.events.push({
        level: vanished ? 'warn' : 'info',
        kind: vanished ? 'workload.recreated' : 'workload.created',
        subject,
        message: vanished ? `container was gone: recreated (${id.slice(0, 12)})` : `created and started ${name} (${id.slice(0, 12)})`,
        data: { containerId: id, image: w.image },
      });
      await ready;
      await this.attach(w, rec, await this.mustInspect(id), res);
      return;
    }

    rec.containerId = c.id;
    let st = inspected ?? (await this.mustInspect(c.id));
    if (!st.running) {
      const exit: ExitInfo = { exitCode: st.exitCode, oomKilled: st.oomKilled, error: st.error, finishedAt: st.finishedAt ?? '' };
      const fresh = !rec.lastExit || rec.lastExit.finishedAt !== exit.finishedAt;
      if (fresh && st.status !== 'created') {
        rec.lastExit = exit;
        res.events.push({ level: 'warn', kind: 'workload.exited', subject, message: `exited: ${exitReason(exit)}`, data: { ...exit } });
      }
      if (rec.attachment) {
        await this.attacher.del(rec.attachment);
        rec.attachment = null;
      }
      if (missing.length) throw new ZmeshError('E_VOLUME_NOT_READY', `volume(s) ${missing.join(', ')} not ready: the workload waits for its data`, { kind: 'retryable' });
      const b = this.backoff.get(rec.key) ?? { until: 0, failures: 0 };
      const now = this.now();
      if (now < b.until) return; // crash-loop backoff: the next reconcile after `until` restarts it
      const ran = st.startedAt && st.finishedAt ? Date.parse(st.finishedAt) - Date.parse(st.startedAt) : 0;
      b.failures = st.status !== 'created' && ran < STABLE_MS ? b.failures + 1 : 0;
      b.until = b.failures > 1 ? now + Math.min(this.opts.maxBackoffMs ?? 30_000, 1000 * 2 ** Math.min(b.failures - 2, 10)) : 0;
      this.backoff.set(rec.key, b);
      await this.changed(() => this.engine.start(c.id));
      if (st.status !== 'created') rec.restarts++;
      res.changes++;
      res.events.push({
        level: 'info',
        kind: 'workload.restarted',
        subject,
        message: st.status === 'created' ? 'started' : `restarted after ${exitReason(exit)} (restart ${rec.restarts})`,
        data: { restarts: rec.restarts, exitCode: exit.exitCode, oomKilled: exit.oomKilled },
      });
      st = await this.mustInspect(c.id);
      await this.attach(w, rec, st, res);
      return;
    }
    // Running: CHECK the stored attachment against the live state; repair what differs.
    const a = rec.attachment;
    if (a && a.containerId === st.id) {
      // A re-plan that gave the network IPv6 (or took it away) re-attaches: the stored result says the old family set.
      const want6 = w.network.ip6 !== undefined ? `${w.network.ip6}/${w.network.prefix6}` : undefined;
      const problems = a.address6 !== want6 ? [`IPv6 address ${a.address6 ?? 'none'}, the plan says ${want6 ?? 'none'}`] : await this.attacher.check(a, st.pid);
      if (problems.length === 0) return;
      await this.attacher.del(a);
      rec.attachment = null;
      res.events.push({ level: 'warn', kind: 'workload.drift', subject, message: `attachment drifted: ${problems.join('; ')}` });
    }
    await this.attach(w, rec, st, res);
  }

  private async mustInspect(id: string): Promise<ContainerState> {
    const st = await this.engine.inspect(id);
    if (!st) throw new ZmeshError('E_CONTAINER_GONE', `container ${id.slice(0, 12)} vanished`, { kind: 'retryable' });
    return st;
  }

  private async attach(w: DesiredWorkload, rec: WorkloadRecord, st: ContainerState, res: ComputeResult): Promise<void> {
    if (!st.running || st.pid <= 0) {
      throw new ZmeshError('E_CONTAINER_NOT_RUNNING', `container ${st.id.slice(0, 12)} is ${st.status} (exit code ${st.exitCode}${st.oomKilled ? ', OOM killed' : ''}): not attached`, { kind: 'retryable' });
    }
    const att: Attachment = await this.attacher.add({
      workload: keyOf(w),
      names: vethNames(w),
      containerId: st.id,
      pid: st.pid,
      networkId: w.network.id,
      netns: this.netnsPath(w.network.id),
      bridge: `b-${w.network.id}`,
      ip: w.network.ip,
      prefix: w.network.prefix,
      gateway: w.network.gateway,
      ...(w.network.ip6 !== undefined ? { ip6: w.network.ip6, prefix6: w.network.prefix6, gateway6: w.network.gateway6 } : {}),
    }, new Date(this.now()));
    rec.attachment = att;
    res.changes++;
    res.events.push({ level: 'info', kind: 'workload.attached', subject: `workload ${keyOf(w)}`, message: `eth0 ${att.address} via ${att.gateway} (veth ${att.hostIf} on ${att.bridge}, MTU ${att.mtu})`, data: { ...att } });
  }

  /** One line per desired workload (and per leftover container of ours), with live state. Reads only. */
  async views(desired: DesiredWorkload[]): Promise<WorkloadView[]> {
    const records = new Map(this.store.workloads().map((r) => [r.key, r]));
    const up = await this.engine.ping();
    const list = up ? await this.engine.list(this.ours()).catch(() => []) : [];
    const byKey = new Map<string, ContainerSummary>();
    for (const c of list) {
      const k = keyFromLabels(c.labels, this.opts.node);
      if (k && (!byKey.has(k) || c.name === containerName({ node: this.opts.node, tenant: c.labels[LABELS.tenant], blueprint: c.labels[LABELS.blueprint], name: c.labels[LABELS.workload] }))) byKey.set(k, c);
    }
    const out: WorkloadView[] = [];
    for (const w of desired) {
      const key = keyOf(w);
      const rec = records.get(key);
      const c = byKey.get(key);
      const st = c ? await this.engine.inspect(c.id).catch(() => null) : null;
      const attached = rec?.attachment && st?.running && rec.attachment.containerId === st.id && rec.attachment.pid === st.pid ? rec.attachment.address : null;
      const started = st?.running && st.startedAt ? Date.parse(st.startedAt) : null;
      out.push({
        tenant: w.tenant,
        blueprint: w.blueprint,
        name: w.name,
        node: w.node,
        image: w.image,
        state: !up ? 'unknown' : !st ? 'missing' : st.running ? 'running' : st.status === 'created' ? 'created' : st.status === 'restarting' ? 'restarting' : 'exited',
        address: attached,
        plannedAddress: `${w.network.ip}/${w.network.prefix}`,
        network: w.network.name,
        networkId: w.network.id,
        containerId: st?.id ?? rec?.containerId ?? null,
        restarts: rec?.restarts ?? 0,
        startedAt: st?.startedAt ?? null,
        uptimeSec: started !== null ? Math.max(0, Math.floor((this.now() - started) / 1000)) : null,
        lastExit: rec?.lastExit ?? null,
        cpu: w.cpu,
        memory: w.memory,
        disk: w.disk,
      });
    }
    return out;
  }

  /** The container id of a workload of this node, or null. */
  async containerOf(w: { tenant: string; blueprint: string; name: string }): Promise<string | null> {
    const st = await this.engine.inspect(containerName({ node: this.opts.node, ...w }));
    return st && keyFromLabels(st.labels, this.opts.node) === keyOf(w) ? st.id : null;
  }
}
