// One node's view of its parts: a full read of parts/<node>/ at one revision, then a watch from the next
// revision, keeping the entries per blueprint in memory. Changes are handed on in batches (one at a time;
// changes that arrive meanwhile are coalesced into the next batch). When the watch cannot resume (etcd compacted
// the revision, or the stream was cancelled) it reads everything again. Used by the agent (src/agent/etcd-link.ts)
// and by the benchmark's simulated agents.
import type { Logger } from '../log.ts';
import type { Etcd3, Watcher } from 'etcd3';
import type { Entries } from './entries.ts';
import { prefixEnd } from './etcd.ts';
import type { Keys } from './keys.ts';

export interface Batch {
  /** "tenant/blueprint" ids that changed (a full read lists every id known before or after). */
  ids: Set<string>;
  /** True after a full read (a missing part may be missed deletes); false for watch events (deletes seen). */
  full: boolean;
  /** The revision the batch brings the cache to. */
  revision: string;
}

export interface NodeWatchOptions {
  client: Etcd3;
  keys: Keys;
  node: string;
  log?: Logger;
  onBatch: (batch: Batch) => Promise<void>;
  /** Backoff bounds for full reads after errors (ms). */
  retryMinMs?: number;
  retryMaxMs?: number;
}

export class NodeWatch {
  /** "tenant/blueprint" → the part's entries (suffix → JSON). */
  readonly cache = new Map<string, Entries>();
  /** The cluster id the controller wrote (control/cluster), as of the last full read. */
  clusterId: string | null = null;
  revision: string | null = null;
  /** Full reads done (1 after the first sync). */
  syncs = 0;
  private watcher: Watcher | null = null;
  private stopped = false;
  private pending: Set<string> | null = null;
  private pendingFull = false;
  private pendingRevision = '0';
  private chain: Promise<void> = Promise.resolve();
  private busy = false;
  private retry: NodeJS.Timeout | null = null;
  private delay: number;
  private readonly prefix: string;

  constructor(private readonly o: NodeWatchOptions) {
    this.prefix = o.keys.nodeParts(o.node);
    this.delay = o.retryMinMs ?? 500;
  }

  start(): void {
    this.stopped = false;
    void this.resync();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    const w = this.watcher;
    this.watcher = null;
    await w?.cancel().catch(() => undefined);
    await this.chain.catch(() => undefined);
  }

  /** Resolves when no batch is pending or running. */
  async settled(): Promise<void> {
    while (this.busy || this.pending) await new Promise((r) => setTimeout(r, 5));
  }

  /**
   * Reads again at once when the watch is waiting out its backoff after an error (e.g. the caller just reached
   * etcd again); a running watch is left alone (etcd3 resumes it by itself).
   */
  reconnect(): void {
    if (this.stopped || !this.retry) return;
    clearTimeout(this.retry);
    this.retry = null;
    this.delay = this.o.retryMinMs ?? 500;
    void this.resync();
  }

  /** Hands these ids on again (as a watch batch), e.g. to retry parts that were refused or not readable. */
  poke(ids: Set<string>): void {
    if (ids.size && !this.stopped) this.enqueue(ids, false, this.revision ?? '0');
  }

  private idOf(key: string): { id: string; suffix: string } | null {
    if (!key.startsWith(this.prefix)) return null;
    const rest = key.slice(this.prefix.length).split('/');
    if (rest.length < 3) return null;
    return { id: `${rest[0]}/${rest[1]}`, suffix: rest.slice(2).join('/') };
  }

  private async resync(): Promise<void> {
    if (this.stopped) return;
    const old = this.watcher;
    this.watcher = null;
    await old?.cancel().catch(() => undefined);
    try {
      const res = await this.o.client.kv.range({ key: Buffer.from(this.prefix), range_end: prefixEnd(this.prefix) });
      const rev = res.header.revision;
      const cl = await this.o.client.kv.range({ key: Buffer.from(this.o.keys.cluster()), revision: rev });
      const before = new Set(this.cache.keys());
      this.cache.clear();
      for (const kv of res.kvs) {
        const p = this.idOf(kv.key.toString());
        if (!p) continue;
        let e = this.cache.get(p.id);
        if (!e) this.cache.set(p.id, (e = new Map()));
        e.set(p.suffix, kv.value.toString());
      }
      try {
        this.clusterId = cl.kvs.length ? ((JSON.parse(cl.kvs[0].value.toString()) as { id?: string }).id ?? null) : null;
      } catch {
        this.clusterId = null;
      }
      this.revision = rev;
      this.syncs++;
      this.enqueue(new Set([...before, ...this.cache.keys()]), true, rev);
      if (this.stopped) return;
      const w = await this.o.client
        .watch()
        .prefix(this.prefix)
        .startRevision((BigInt(rev) + 1n).toString())
        .create();
      if (this.stopped) {
        await w.cancel().catch(() => undefined);
        return;
      }
      this.watcher = w;
      this.delay = this.o.retryMinMs ?? 500;
      w.on('data', (r) => {
        const ids = new Set<string>();
        for (const e of r.events) {
          const p = this.idOf(e.kv.key.toString());
          if (!p) continue;
          ids.add(p.id);
          let m = this.cache.get(p.id);
          if (e.type === 'Put') {
            if (!m) this.cache.set(p.id, (m = new Map()));
            m.set(p.suffix, e.kv.value.toString());
          } else if (m) {
            m.delete(p.suffix);
            if (m.size === 0) this.cache.delete(p.id);
          }
        }
        this.revision = r.header.revision;
        if (ids.size) this.enqueue(ids, false, r.header.revision);
      });
      w.on('error', (err) => {
        if (this.watcher !== w) return;
        this.o.log?.warn({ err: err.message }, 'etcd watch ended; reading everything again');
        this.later();
      });
    } catch (e) {
      this.o.log?.warn({ err: (e as Error).message }, 'etcd unavailable; keeping the current state and retrying');
      this.later();
    }
  }

  private later(): void {
    if (this.stopped || this.retry) return;
    const d = this.delay;
    this.delay = Math.min(d * 2, this.o.retryMaxMs ?? 10000);
    this.retry = setTimeout(() => {
      this.retry = null;
      void this.resync();
    }, d);
  }

  private enqueue(ids: Set<string>, full: boolean, revision: string): void {
    if (!this.pending) this.pending = new Set();
    for (const id of ids) this.pending.add(id);
    this.pendingFull ||= full;
    this.pendingRevision = revision;
    if (this.busy) return;
    this.busy = true;
    this.chain = this.chain.then(async () => {
      while (this.pending && !this.stopped) {
        const batch: Batch = { ids: this.pending, full: this.pendingFull, revision: this.pendingRevision };
        this.pending = null;
        this.pendingFull = false;
        try {
          await this.o.onBatch(batch);
        } catch (e) {
          this.o.log?.error({ err: (e as Error).message }, 'applying a batch from etcd failed');
        }
      }
      this.pending = null;
      this.busy = false;
    });
  }
}
