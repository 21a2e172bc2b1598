// The etcd controller's candidate relay (direct paths, docs/paths.md): while the controller leads, it reads the
// status records the nodes sign (status/<id>: a `candidates` report of their underlay endpoints and, on access
// nodes, where their hidden peers' packets come from), takes them only from trusted nodes (signed with the
// identity key pinned at enrollment), and publishes one candidate table per network (candidate-tables/<id>:
// every hidden member's endpoints, src/control/candidates.ts) — signed by the controller's key, fenced by the
// leadership like every controller write — when it changed. Only the nodes the plans make hidden in a network
// are in its table, and only they may read it (their roles' grants come with the planning round). Each hidden
// node keeps what concerns its own direct peers: one node's new endpoint rewrites one record per network, not
// one per other member (that was O(members²) bytes, and seconds of a blocked event loop at 2,000 hidden nodes).
import type { Etcd3, Watcher } from 'etcd3';
import type { Logger } from '../log.ts';
import type { Key } from '../crypto/keys.ts';
import { candidateTables, type CandidateReport, type CandidateReportNetwork } from './candidates.ts';
import { prefixEnd } from './etcd.ts';
import type { Keys } from './keys.ts';
import { openRecord } from './records.ts';
import { signCandidates } from './signed.ts';

/** Bounds on what one node's report may hold (a hostile node with valid credentials writes its own status). */
const MAX_NETWORKS = 256;
const MAX_LOCAL = 16;
const MAX_PEERS = 4096;
/** A signed table larger than this is slimmed (etcd refuses requests over 1.5 MiB by default). */
export const MAX_TABLE_BYTES = 1024 * 1024;
/** How soon a round that could not write every table is tried again. */
const RETRY_MS = 5000;
/** The longest the relay opens statuses before the event loop gets a turn. */
const OPEN_SLICE_MS = 20;
/** The shortest time between two relay rounds. */
const MIN_ROUND_MS = 1000;
/**
 * How long a node's taken report stands before a change of it is taken (the first change after a quiet spell is
 * taken at once). One node's change rewrites the records of every other hidden node of its networks (they carry
 * its candidates) and makes them probe again: a node rewriting its status in a loop costs at most one such
 * wave per interval.
 */
export const REPORT_HOLD_MS = 5000;

/** A node's report from its status record, bounded and shaped; null when there is none or it is malformed. */
export function reportFrom(node: string, record: unknown): CandidateReport | null {
  const list = (record as { candidates?: unknown } | null)?.candidates;
  if (!Array.isArray(list)) return null;
  const str = (v: unknown, max = 64): v is string => typeof v === 'string' && v.length <= max;
  // Over a bound: the extra entries are dropped (a host with many addresses, a node in many networks keeps its
  // direct paths); a malformed network entry is dropped alone.
  const networks: CandidateReportNetwork[] = [];
  for (const n of (list as Record<string, unknown>[]).slice(0, MAX_NETWORKS)) {
    if (!n || typeof n !== 'object' || !str(n.networkId) || !str(n.ipRange) || typeof n.hidden !== 'boolean') continue;
    const local = Array.isArray(n.local) ? n.local.filter((e): e is string => str(e)).slice(0, MAX_LOCAL) : null;
    const peers = Array.isArray(n.directPeers) ? n.directPeers.filter((e): e is string => str(e)).slice(0, MAX_PEERS) : null;
    const obs = n.observed && typeof n.observed === 'object' && !Array.isArray(n.observed) ? Object.entries(n.observed as Record<string, unknown>).slice(0, MAX_PEERS) : null;
    if (!local || !peers || !obs || (n.via !== null && !str(n.via))) continue;
    networks.push({
      networkId: n.networkId,
      ipRange: n.ipRange,
      ...(str(n.ipRange6) ? { ipRange6: n.ipRange6 } : {}),
      hidden: n.hidden,
      directPeers: peers,
      via: (n.via as string | null) ?? null,
      local,
      observed: Object.fromEntries(obs.filter(([k, v]) => str(k) && str(v))) as Record<string, string>,
    });
  }
  return { node, networks };
}

export interface RelayOptions {
  client: Etcd3;
  keys: Keys;
  log: Logger;
  /** The identity key pinned for a node (its enrollment), or undefined: its reports are not taken. */
  pinned: (node: string) => string | undefined;
  signingKey: Key | null;
  /** networkId → the nodes hidden in it, from the latest planning round (null before the first one). */
  members: () => ReadonlyMap<string, ReadonlySet<string>> | null;
  /**
   * networkId → its membership epoch (the direct-peer directory's, from the same round): a table is written under
   * it, and the round grants each member exactly that table key. A network without one gets no table.
   */
  epochs: () => ReadonlyMap<string, string> | null;
  /** The leadership fence: a write happens only while `key` holds `value`. */
  guard: () => { key: string; value: string };
  debounceMs?: number;
  /** Clock (tests); default Date.now. */
  now?: () => number;
}

export class CandidateRelay {
  private watcher: Watcher | null = null;
  private readonly texts = new Map<string, string>();
  private lastDigest = '';
  private lastRoundAt = 0;
  private readonly opened = new Map<string, { text: string; signer: string | null; report: CandidateReport | null; json: string }>();
  /** node → the report taken for it (JSON) and when: a change within REPORT_HOLD_MS waits (see there). */
  private readonly taken = new Map<string, { json: string; report: CandidateReport; at: number }>();
  private deferTimer: NodeJS.Timeout | null = null;
  /** networkId → what is stored for it: its pointer (epoch, members) and its table (signed value, JSON). */
  private readonly published = new Map<string, { epoch: string; members: string[]; value: string; json: string }>();
  /** Keys under candidate-tables/ no pointer names (tables of old epochs, unreadable records): deleted. */
  private strays: string[] = [];
  private retryTimer: NodeJS.Timeout | null = null;
  private legacy: string[] = [];
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  rounds = 0;

  constructor(private readonly o: RelayOptions) {}

  /** Reads every status at one revision, then watches from the next one. */
  async start(): Promise<void> {
    this.stopped = false;
    const k = this.o.keys;
    const res = await this.o.client.kv.range({ key: Buffer.from(k.statuses()), range_end: prefixEnd(k.statuses()) });
    for (const kv of res.kvs) this.texts.set(kv.key.toString().slice(k.statuses().length), kv.value.toString());
    this.loadPublished((await this.o.client.kv.range({ key: Buffer.from(k.candidateTables()), range_end: prefixEnd(k.candidateTables()) })).kvs);
    // Per-node records of the earlier relay (candidates/<node>): deleted in the first round (fenced).
    const legacy = await this.o.client.kv.range({ key: Buffer.from(k.allCandidates()), range_end: prefixEnd(k.allCandidates()), keys_only: true });
    this.legacy = legacy.kvs.map((kv) => kv.key.toString());
    const next = (BigInt(res.header.revision) + 1n).toString();
    const w = await this.o.client.watch().prefix(k.statuses()).startRevision(next).create();
    w.on('data', (r) => {
      for (const e of r.events) {
        const id = e.kv.key.toString().slice(k.statuses().length);
        if (e.type === 'Put') this.texts.set(id, e.kv.value.toString());
        else this.texts.delete(id);
      }
      if (r.events.length) this.schedule();
    });
    w.on('error', (err) => this.o.log.warn({ err: err.message }, 'controller: status watch failed (candidates)'));
    this.watcher = w;
    this.schedule(0);
  }

  /** What the stores holds under candidate-tables/: each network's pointer and current table; the rest is stray. */
  private loadPublished(kvs: { key: Buffer; value: Buffer }[]): void {
    const k = this.o.keys;
    const byKey = new Map(kvs.map((kv) => [kv.key.toString(), kv.value.toString()]));
    const used = new Set<string>();
    for (const [key, value] of byKey) {
      const m = /^([a-z0-9]+)\/current$/.exec(key.slice(k.candidateTables().length));
      if (!m) continue;
      try {
        const p = JSON.parse(value) as { epoch?: unknown };
        const table = typeof p.epoch === 'string' ? byKey.get(k.candidateTable(m[1], p.epoch)) : undefined;
        if (typeof p.epoch !== 'string' || table === undefined) continue;
        const content = (JSON.parse(table) as { candidates?: { members?: unknown } }).candidates;
        if (!content || !Array.isArray(content.members)) continue;
        const json = JSON.stringify(content);
        this.published.set(m[1], { epoch: p.epoch, members: content.members.filter((x): x is string => typeof x === 'string'), value: table, json });
        used.add(key).add(k.candidateTable(m[1], p.epoch));
      } catch {
        // unreadable: stray
      }
    }
    this.strays = [...byKey.keys()].filter((key) => !used.has(key));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.deferTimer) clearTimeout(this.deferTimer);
    this.deferTimer = null;
    await this.watcher?.cancel().catch(() => undefined);
    this.watcher = null;
    await this.running?.catch(() => undefined);
  }

  /** Computes again soon (after a planning round: enrollments or plans changed). */
  poke(): void {
    this.schedule();
  }

  private schedule(ms = this.o.debounceMs ?? 100): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.timer) return;
    // At most one round per MIN_ROUND_MS: a node rewriting its status in a loop costs one round per interval.
    ms = Math.max(ms, this.lastRoundAt + MIN_ROUND_MS - Date.now());
    this.timer = setTimeout(() => {
      this.lastRoundAt = Date.now();
      this.timer = null;
      this.running = this.round()
        .catch((e: unknown) => this.o.log.warn({ err: (e as Error).message }, 'controller: candidates not written'))
        .finally(() => {
          this.running = null;
          if (this.again) {
            this.again = false;
            this.schedule();
          }
        });
    }, ms);
  }

  /** The reports of trusted nodes now. A status is verified once per text (a node rewriting its own status
   *  often costs the controller one verification per write, not one per node per round). */
  reports(): CandidateReport[] {
    for (const [id, text] of this.texts) this.open(id, text);
    return this.opens().map((x) => x.report);
  }

  /** Opens (verifies and shapes) a node's status once per text. */
  private open(id: string, text: string): void {
    const v = this.opened.get(id);
    if (v && v.text === text) return;
    let next: { text: string; signer: string | null; report: CandidateReport | null; json: string } = { text, signer: null, report: null, json: '' };
    try {
      const { signer, record } = openRecord(this.o.keys.status(id), text);
      // The relay needs no node's direct peers (each node filters its tables itself): dropped, so that what is
      // kept and compared per node does not grow with the size of its networks.
      const report = reportFrom(id, record);
      if (report) for (const n of report.networks) n.directPeers = [];
      next = { text, signer, report, json: JSON.stringify(report) };
    } catch {
      // unsigned, forged or malformed: not taken
    }
    this.opened.set(id, next);
  }

  /**
   * Opens every changed status, giving the event loop a turn every OPEN_SLICE_MS: thousands of statuses changing
   * at once (a controller taking over, a fleet restarting) must not hold the loop past the leadership lease.
   */
  private async openAll(): Promise<void> {
    let t0 = performance.now();
    for (const [id, text] of [...this.texts]) {
      if (!this.o.pinned(id)) continue;
      this.open(id, text);
      if (performance.now() - t0 > OPEN_SLICE_MS) {
        await new Promise((r) => setImmediate(r));
        t0 = performance.now();
      }
    }
  }

  /** The opened reports of trusted nodes: for a status that changed while the others were opened, the one opened
   *  before (the watch has scheduled another round for the new one). */
  private opens(): { report: CandidateReport; json: string }[] {
    const out: { report: CandidateReport; json: string }[] = [];
    for (const id of this.texts.keys()) {
      const pin = this.o.pinned(id);
      if (!pin) continue;
      const v = this.opened.get(id);
      if (v && v.signer === pin && v.report) out.push({ report: v.report, json: v.json });
    }
    for (const id of [...this.opened.keys()]) if (!this.texts.has(id)) this.opened.delete(id);
    return out;
  }

  /** The reports as taken: a node's changed report replaces its taken one only after REPORT_HOLD_MS. */
  private held(reports: { report: CandidateReport; json: string }[]): CandidateReport[] {
    const now = (this.o.now ?? Date.now)();
    let wake = Infinity;
    const out: CandidateReport[] = [];
    const present = new Set<string>();
    for (const { report: r, json } of reports) {
      present.add(r.node);
      const t = this.taken.get(r.node);
      if (!t || t.json === json || now - t.at >= REPORT_HOLD_MS) {
        if (!t || t.json !== json) this.taken.set(r.node, { json, report: r, at: now });
        out.push(r);
      } else {
        out.push(t.report);
        wake = Math.min(wake, t.at + REPORT_HOLD_MS - now);
      }
    }
    for (const id of [...this.taken.keys()]) if (!present.has(id)) this.taken.delete(id);
    if (wake !== Infinity && !this.deferTimer && !this.stopped) {
      this.deferTimer = setTimeout(() => {
        this.deferTimer = null;
        this.schedule(0);
      }, wake);
      this.deferTimer.unref?.();
    }
    return out;
  }

  private async round(): Promise<void> {
    const members = this.o.members();
    const epochs = this.o.epochs();
    if (!members || !epochs) return; // no planning round yet: nobody's membership is known
    await this.openAll();
    const tables = candidateTables(this.held(this.opens()), members);
    const wanted = [...members].filter(([net, set]) => set.size > 0 && epochs.has(net)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const next = wanted.map(([net, set]) => {
      // The members ride in the (signed, members-only) table: a leave is seen again after a restart, and the
      // pointer, which a former member's open watch may still see, names nobody.
      const members = [...set].sort();
      const table = { nodes: tables.get(net)?.nodes ?? {}, members };
      return { net, table, json: JSON.stringify(table), members, epoch: epochs.get(net)! };
    });
    // Most status writes change no report (peer health every 15 s): nothing to write then.
    const digest = JSON.stringify(next.map((x) => [x.net, x.json, x.members, x.epoch]));
    if (digest === this.lastDigest && !this.legacy.length && !this.strays.length) return;
    this.rounds++;
    const k = this.o.keys;
    const g = this.o.guard();
    const fenced = async (ops: ({ request_put: { key: Buffer; value: Buffer } } | { request_delete_range: { key: Buffer; range_end?: Buffer } })[]) => {
      const res = await this.o.client.kv.txn({ compare: [{ key: Buffer.from(g.key), target: 'Value', result: 'Equal', value: Buffer.from(g.value) }], success: ops });
      if (!res.succeeded) throw new Error('not the leader any more');
    };
    const put = (key: string, value: string) => ({ request_put: { key: Buffer.from(key), value: Buffer.from(value) } });
    const del = (key: string) => ({ request_delete_range: { key: Buffer.from(key) } });
    let failed = 0;
    // One network's failure (a table over etcd's request size, an error) leaves the others to be written.
    const attempt = async (net: string, fn: () => Promise<void>) => {
      try {
        await fn();
      } catch (e) {
        if ((e as Error).message === 'not the leader any more') throw e;
        failed++;
        this.o.log.warn({ err: (e as Error).message, network: net }, 'controller: candidate table not written');
      }
    };
    for (const x of next) {
      const cur = this.published.get(x.net);
      if (cur && cur.epoch === x.epoch && cur.json === x.json) continue;
      await attempt(x.net, async () => {
        // A member left: a new epoch (the round's), a new key its old watch never sees and its role is not granted.
        const epoch = x.epoch;
        let value = cur && epoch === cur.epoch && cur.json === x.json ? cur.value : signCandidates(k.candidateTable(x.net, epoch), x.table, this.o.signingKey);
        if (value.length > MAX_TABLE_BYTES) {
          // Too big for one etcd request: each member's first local endpoints only (its reflexive one stays).
          const slim = { nodes: Object.fromEntries(Object.entries(x.table.nodes).map(([n, e]) => [n, { reflexive: e.reflexive, local: e.local.slice(0, 2) }])), members: x.members };
          value = signCandidates(k.candidateTable(x.net, epoch), slim, this.o.signingKey);
          if (value.length > MAX_TABLE_BYTES) throw new Error(`the table of ${x.members.length} members is ${value.length} bytes, over ${MAX_TABLE_BYTES}`);
          this.o.log.warn({ network: x.net, members: x.members.length }, 'controller: candidate table over its size: each member keeps two local endpoints');
        }
        const ops: Parameters<typeof fenced>[0] = [put(k.candidateTable(x.net, epoch), value)];
        if (!cur || cur.epoch !== epoch) ops.push(put(k.candidatePointer(x.net), JSON.stringify({ epoch })));
        if (cur && cur.epoch !== epoch) ops.push(del(k.candidateTable(x.net, cur.epoch)));
        await fenced(ops);
        this.published.set(x.net, { epoch, members: x.members, value, json: x.json });
      });
    }
    const live = new Set(next.map((x) => x.net));
    for (const net of [...this.published.keys()]) {
      if (live.has(net)) continue;
      await attempt(net, async () => {
        const prefix = k.candidateTablePrefix(net);
        await fenced([{ request_delete_range: { key: Buffer.from(prefix), range_end: prefixEnd(prefix) } }]);
        this.published.delete(net);
      });
    }
    while (this.strays.length) {
      await fenced([del(this.strays[0])]);
      this.strays.shift();
    }
    while (this.legacy.length) {
      await fenced([del(this.legacy[0])]);
      this.legacy.shift();
    }
    if (failed) {
      // Tried again later, not only at the next status change.
      if (!this.retryTimer && !this.stopped) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          this.lastDigest = '';
          this.schedule(0);
        }, RETRY_MS);
        this.retryTimer.unref?.();
      }
      return;
    }
    this.lastDigest = digest;
  }
}
