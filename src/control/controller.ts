// The etcd controller: one leader at a time (a lease-backed key); it keeps the member records, re-plans every
// blueprint when blueprints or membership change (debounced, from the previous plan, with the ports of the other
// blueprints reserved on each node), and writes each node's part under that node's own prefix — only the
// entries whose content changed. See docs/control-plane.md.
import { randomBytes, randomUUID } from 'node:crypto';
import type { Logger } from '../log.ts';
import type { Etcd3, Lease, Watcher } from 'etcd3';
import type { RandomSource } from '../crypto/rng.ts';
import type { Problem } from '../errors.ts';
import { packTxns, planEntries, type Entries, type Op } from './entries.ts';
import { commit, connectEtcd, emptyStats, NotLeaderError, prefixEnd, readPrefix, type EtcdConnectOptions, type WriteStats } from './etcd.ts';
import { blueprintId, Keys } from './keys.ts';
import type { MemberRecord, MemberState, Registration } from './membership.ts';
import { vetRegistration } from './records.ts';
import { readEnrollment, type Enrollment, type EnrollmentRead } from './signed.ts';
import type { Key } from '../crypto/keys.ts';
import { nodeRole, Rbac, readGrant } from './rbac.ts';
import { CandidateRelay } from './candidate-relay.ts';
import { planRoundSliced, type BlueprintStatus } from './round.ts';
import { currentDirectory, readDirectories, type Directory } from './directory.ts';

export { checkSubmitted, etcdModeProblems, type BlueprintStatus } from './round.ts';

export interface ControllerOptions {
  /** An etcd client, or how to connect one (the controller then owns it). */
  client?: Etcd3;
  etcd?: EtcdConnectOptions;
  prefix?: string;
  log?: Logger;
  /** Clock (ms) for hold-down decisions; default Date.now. */
  now?: () => number;
  /** Key material for new WireGuard keys; default crypto.randomBytes. */
  random?: RandomSource;
  /** Lease gone for less than this: still planned as registered. Default 5 s. */
  graceMs?: number;
  /** Lease gone for this long: dropped from the plans. Default 15 min. */
  holdDownMs?: number;
  /** Quiet time before a re-plan after a change. Default 300 ms. */
  debounceMs?: number;
  /** TTL of the leadership lease (s). Default 5. */
  leaderTtlSec?: number;
  /** etcd's --max-txn-ops (default 128) and a byte budget per transaction (default 1 MiB). */
  maxTxnOps?: number;
  maxTxnBytes?: number;
  id?: string;
  /**
   * Operator ed25519 public keys: only enrollments signed by one of them count. Without, unsigned enrollments
   * count too, and whoever can write etcd can enroll a node (docs/security.md).
   */
  operatorKeys?: string[];
  /** The controller's ed25519 secret: every part head is signed with it (agents check with etcd.controllerKeys). */
  signingKey?: Key;
}


export interface RoundReport {
  n: number;
  reason: string;
  at: number;
  durationMs: number;
  /** Blueprints whose plan changed in this round. */
  replanned: string[];
  writes: WriteStats;
  /** Nodes that received a part change. */
  nodesWritten: number;
  members: Record<string, MemberState>;
  /** Registered nodes that are not planned: not enrolled (pending) or refused (bad signature, another key). */
  untrusted: Record<string, UntrustedNode>;
  /** Enrollments that do not hold (the last good one of the node stays in force). */
  badEnrollments: Record<string, Problem>;
  blueprints: Record<string, BlueprintStatus>;
}

export interface UntrustedNode {
  state: 'pending' | 'refused';
  /** The key that signed the registration, when it verified. */
  signer: string | null;
  problem: Problem;
}


const log0 = {
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  debug: () => undefined,
} as unknown as Logger;

export class Controller {
  readonly id: string;
  readonly keys: Keys;
  readonly client: Etcd3;
  private readonly owns: boolean;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly random: RandomSource;
  private readonly hd: { graceMs: number; holdDownMs: number };
  private readonly debounceMs: number;
  private readonly leaderTtl: number;
  private readonly maxOps: number;
  private readonly maxBytes: number;

  /** Cumulative writes of this controller. */
  readonly stats: WriteStats = emptyStats();
  lastRound: RoundReport | null = null;
  leader = false;
  private rounds = 0;
  private stopped = false;
  private lease: Lease | null = null;
  private watchers: Watcher[] = [];
  private timer: NodeJS.Timeout | null = null;
  private clockTimer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private reasons = new Set<string>();
  private failures = 0;
  private readonly roundListeners = new Set<(r: RoundReport) => void>();
  private campaignLoop: Promise<void> | null = null;
  private relay: CandidateRelay | null = null;
  private readonly enrollmentReads = new Map<string, { input: string; result: EnrollmentRead }>();
  private readonly registrationVets = new Map<string, { input: string; result: ReturnType<typeof vetRegistration> }>();
  /** networkId → the nodes hidden in it, as of the last planning round (the candidate tables' members). */
  private hiddenMembers: Map<string, Set<string>> | null = null;

  // State mirrored from etcd.
  private tenants = new Map<string, string>();
  private submitted = new Map<string, unknown>();
  /** nodes/<id> as stored (signed records); vetted against the enrollments in every round. */
  private registrations = new Map<string, string>();
  /** enroll/<id> as stored; read (and checked against the operator keys) in every round. */
  private enrollments = new Map<string, string>();
  private readonly goodEnrollments = new Map<string, Enrollment>();
  private readonly operatorKeys: ReadonlySet<string> | null;
  private readonly signingKey: Key | null;
  /** What was last reported about nodes that are not planned (to log a change once). */
  private untrustedSeen = new Map<string, string>();
  private members = new Map<string, MemberRecord>();
  private planMirror = new Map<string, Entries>();
  /** Keys under envelopes/ that exist. */
  private envelopeMirror = new Set<string>();
  private partMirror = new Map<string, Entries>();
  /** networkId → its direct-peer directories as stored. */
  private directoryMirror = new Map<string, Directory[]>();
  /** networkId → its rosters as stored. */
  private rosterMirror = new Map<string, Directory[]>();
  private rebalanceRequested = false;
  private dirty = true;
  /** Parts whose mirror entry this controller signed and wrote (none after reading them from etcd). */
  private readonly ownHeads = new Set<string>();
  /** node → envelope keys its etcd role may read (RBAC); null: read again; 'off': no node roles manageable. */
  private grantMirror: Map<string, Set<string>> | null | 'off' = null;

  constructor(opts: ControllerOptions) {
    if (!opts.client && !opts.etcd) throw new Error('Controller needs a client or etcd options');
    this.client = opts.client ?? connectEtcd(opts.etcd!);
    this.owns = !opts.client;
    this.keys = new Keys(opts.prefix);
    this.log = opts.log ?? log0;
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? ((n: number) => new Uint8Array(randomBytes(n)));
    this.hd = { graceMs: opts.graceMs ?? 5000, holdDownMs: opts.holdDownMs ?? 15 * 60000 };
    this.debounceMs = opts.debounceMs ?? 300;
    this.leaderTtl = opts.leaderTtlSec ?? 5;
    this.maxOps = opts.maxTxnOps ?? 128;
    this.maxBytes = opts.maxTxnBytes ?? 1 << 20;
    this.id = opts.id ?? `controller-${randomUUID()}`;
    this.operatorKeys = opts.operatorKeys?.length ? new Set(opts.operatorKeys) : null;
    this.signingKey = opts.signingKey ?? null;
    if (!this.operatorKeys) this.log.warn('controller: no operator key: enrollments are trusted as etcd serves them (docs/security.md)');
    if (!this.signingKey) this.log.warn('controller: no signing key: parts are not signed, agents cannot tell them from forged ones (docs/security.md)');
  }

  onRound(fn: (r: RoundReport) => void): () => void {
    this.roundListeners.add(fn);
    return () => this.roundListeners.delete(fn);
  }

  /** Starts campaigning for leadership; returns at once (see whenLeader()). */
  start(): void {
    this.stopped = false;
    this.campaignLoop ??= this.campaign();
  }

  /** Resolves when this controller leads and has finished its first round. */
  async whenLeader(timeoutMs = 30000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(this.leader && this.lastRound)) {
      if (Date.now() > deadline) throw new Error('not leader in time');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Resolves when no round is pending or running. */
  async idle(): Promise<void> {
    while (this.timer || this.running) {
      if (this.running) await this.running.catch(() => undefined);
      else await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Graceful stop: gives the leadership up at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.teardown();
    await this.running?.catch(() => undefined);
    // Give the leadership up at once; with etcd gone, the lease expires by itself.
    if (this.lease) await Promise.race([this.lease.revoke().catch(() => undefined), new Promise((r) => setTimeout(r, 2000).unref())]);
    this.lease = null;
    this.leader = false;
    if (this.owns) this.client.close();
  }

  /** Like a crash: stops without revoking anything (the leadership expires with its lease). */
  async kill(): Promise<void> {
    this.stopped = true;
    this.teardown();
    this.lease?.release();
    this.lease = null;
    this.leader = false;
    if (this.owns) this.client.close();
  }

  private teardown(): void {
    void this.relay?.stop();
    this.relay = null;
    // Known again only from this controller's next planning round (a relay must not publish from stale plans).
    this.hiddenMembers = null;
    if (this.timer) clearTimeout(this.timer);
    if (this.clockTimer) clearTimeout(this.clockTimer);
    this.timer = this.clockTimer = null;
    for (const w of this.watchers) void w.cancel().catch(() => undefined);
    this.watchers = [];
  }

  private async campaign(): Promise<void> {
    let delay = 200;
    while (!this.stopped) {
      try {
        if (!this.leader) await this.tryLead();
        delay = 200;
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'controller: etcd unavailable, retrying');
        delay = Math.min(delay * 2, 5000);
      }
      await new Promise((r) => setTimeout(r, this.leader ? 1000 : delay));
    }
    this.campaignLoop = null;
  }

  private async tryLead(): Promise<void> {
    const lease = this.client.lease(this.leaderTtl);
    lease.on('lost', () => {
      if (this.lease !== lease) return;
      this.log.warn('controller: leadership lease lost');
      this.stepDown();
    });
    const leaseId = await lease.grant();
    const key = Buffer.from(this.keys.leader());
    const res = await this.client.kv.txn({
      compare: [{ key, target: 'Create', result: 'Equal', create_revision: 0 }],
      success: [{ request_put: { key, value: Buffer.from(this.id), lease: leaseId } }],
    });
    if (!res.succeeded || this.stopped) {
      await lease.revoke().catch(() => undefined);
      return;
    }
    this.lease = lease;
    this.leader = true;
    this.log.info({ id: this.id }, 'controller: leading');
    await this.ensureCluster();
    await this.loadAndWatch();
    this.schedule('leader', 0);
    // Direct paths: candidates between hidden nodes, from the nodes' signed statuses.
    this.relay = new CandidateRelay({
      client: this.client,
      keys: this.keys,
      log: this.log,
      pinned: (id) => this.goodEnrollments.get(id)?.publicKey,
      members: () => this.hiddenMembers,
      // The tables' epochs are the directories' (known, like the members, only from this controller's rounds).
      epochs: () => (this.hiddenMembers ? new Map([...this.directoryMirror].map(([net, d]) => [net, currentDirectory(d)!.epoch])) : null),
      signingKey: this.signingKey,
      guard: () => this.guard(),
    });
    await this.relay.start().catch((e: unknown) => this.log.warn({ err: (e as Error).message }, 'controller: candidate relay not started'));
  }

  private stepDown(): void {
    this.leader = false;
    this.lease = null;
    this.teardown();
    this.dirty = true;
  }

  private async ensureCluster(): Promise<void> {
    const key = Buffer.from(this.keys.cluster());
    await this.client.kv.txn({
      compare: [{ key, target: 'Create', result: 'Equal', create_revision: 0 }],
      success: [{ request_put: { key, value: Buffer.from(JSON.stringify({ id: randomUUID() })) } }],
    });
  }

  /** Reads everything the controller needs at one revision, then watches the inputs from the next one. */
  private async loadAndWatch(): Promise<void> {
    for (const w of this.watchers) void w.cancel().catch(() => undefined);
    this.watchers = [];
    const k = this.keys;
    const first = await readPrefix(this.client, k.tenants());
    const rev = first.revision;
    const at = async (prefix: string) => {
      const res = await this.client.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix), revision: rev });
      const m = new Map<string, string>();
      for (const kv of res.kvs) m.set(kv.key.toString(), kv.value.toString());
      return m;
    };
    this.tenants = new Map();
    for (const [key, v] of first.kvs) this.applyTenant(key, v);
    this.submitted = new Map();
    for (const [key, v] of await at(k.blueprints())) this.applyBlueprint(key, v);
    this.registrations = new Map();
    for (const [key, v] of await at(k.nodes())) this.applyRegistration(key, v);
    this.enrollments = new Map();
    for (const [key, v] of await at(k.enrollments())) this.applyEnrollment(key, v);
    this.members = new Map();
    for (const [key, v] of await at(k.members())) {
      try {
        const m = JSON.parse(v) as MemberRecord;
        this.members.set(m.id, m);
      } catch {
        this.log.warn({ key }, 'controller: unreadable member record ignored');
      }
    }
    await this.reloadMirrors(rev);
    this.rebalanceRequested = (await at(k.rebalance())).has(k.rebalance());
    const next = (BigInt(rev) + 1n).toString();
    const watch = async (prefix: string, onEvent: (type: 'put' | 'delete', key: string, value: string) => void) => {
      const w = await this.client.watch().prefix(prefix).startRevision(next).create();
      w.on('data', (res) => {
        for (const e of res.events) onEvent(e.type === 'Put' ? 'put' : 'delete', e.kv.key.toString(), e.kv.value.toString());
        if (res.events.length) this.schedule(`watch ${prefix}`);
      });
      w.on('error', (err) => {
        this.log.warn({ err: err.message }, 'controller: watch failed, reloading');
        if (this.leader) void this.loadAndWatch().then(() => this.schedule('reload'), () => this.schedule('reload', 1000));
      });
      this.watchers.push(w);
    };
    await watch(k.tenants(), (t, key, v) => (t === 'put' ? this.applyTenant(key, v) : this.tenants.delete(key.slice(k.tenants().length))));
    await watch(k.blueprints(), (t, key, v) => (t === 'put' ? this.applyBlueprint(key, v) : this.submitted.delete(key.slice(k.blueprints().length))));
    await watch(k.nodes(), (t, key, v) => (t === 'put' ? this.applyRegistration(key, v) : this.registrations.delete(key.slice(k.nodes().length))));
    await watch(k.enrollments(), (t, key, v) => {
      if (t === 'put') this.applyEnrollment(key, v);
      else this.enrollments.delete(key.slice(k.enrollments().length));
      if (this.grantMirror !== 'off') this.grantMirror = null; // a node role may have been made or removed
    });
    await watch(k.rebalance(), (t) => {
      if (t === 'put') this.rebalanceRequested = true;
    });
  }

  private async reloadMirrors(revision?: string): Promise<void> {
    const read = async (prefix: string) => {
      const res = await this.client.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix), ...(revision ? { revision } : {}) });
      return res.kvs.map((kv) => [kv.key.toString(), kv.value.toString()] as const);
    };
    this.planMirror = new Map();
    for (const [key, v] of await read(this.keys.plans())) {
      const p = this.keys.parsePlanKey(key);
      if (!p) continue;
      const id = blueprintId(p.tenant, p.blueprint);
      let e = this.planMirror.get(id);
      if (!e) this.planMirror.set(id, (e = new Map()));
      e.set(p.suffix, v);
    }
    this.envelopeMirror = new Set((await read(this.keys.envelopes())).map(([key]) => key));
    this.directoryMirror = readDirectories(this.keys, await read(this.keys.directories()));
    this.rosterMirror = readDirectories(this.keys, await read(this.keys.rosters()), 'roster');
    if (this.grantMirror !== 'off') this.grantMirror = null;
    this.partMirror = new Map();
    this.ownHeads.clear();
    for (const [key, v] of await read(this.keys.parts())) {
      const p = this.keys.parsePartKey(key);
      if (!p) continue;
      const id = `${p.ref.node}/${p.ref.tenant}/${p.ref.blueprint}`;
      let e = this.partMirror.get(id);
      if (!e) this.partMirror.set(id, (e = new Map()));
      e.set(p.suffix, v);
    }
    this.dirty = false;
  }

  private applyTenant(key: string, value: string): void {
    const name = key.slice(this.keys.tenants().length);
    try {
      const v = JSON.parse(value) as { publicKey?: unknown };
      if (typeof v.publicKey === 'string') this.tenants.set(name, v.publicKey);
    } catch {
      this.log.warn({ key }, 'controller: unreadable tenant ignored');
    }
  }

  private applyBlueprint(key: string, value: string): void {
    const id = key.slice(this.keys.blueprints().length);
    try {
      this.submitted.set(id, JSON.parse(value));
    } catch {
      this.submitted.set(id, null);
    }
  }

  private applyRegistration(key: string, value: string): void {
    // Kept as stored: whether it is planned depends on its signature and the node's enrollment (vetNodes).
    this.registrations.set(key.slice(this.keys.nodes().length), value);
  }

  private applyEnrollment(key: string, value: string): void {
    this.enrollments.set(key.slice(this.keys.enrollments().length), value);
  }

  /** A verification's result for one node, computed once per input (a signature check is ~0.1–0.4 ms: every
   *  round used to verify every registration and enrollment again, seconds per round at 10,000 nodes). */
  private cached<T>(cache: Map<string, { input: string; result: T }>, id: string, input: string, compute: () => T): T {
    const hit = cache.get(id);
    if (hit && hit.input === input) return hit.result;
    const result = compute();
    cache.set(id, { input, result });
    return result;
  }

  /**
   * The registrations that may be planned (signed by the node's pinned identity key) and what is wrong with the
   * others; member records of nodes that are no longer enrolled, or whose pinned key changed, are dropped.
   */
  private async vetNodes(): Promise<{ registrations: Map<string, Registration>; members: Map<string, MemberRecord>; untrusted: Record<string, UntrustedNode>; badEnrollments: Record<string, Problem> }> {
    // Thousands of records not verified yet (a controller taking over): the event loop gets a turn every 20 ms,
    // so the leadership lease is kept alive meanwhile.
    const breathe = slicer();
    const registrations = new Map<string, Registration>();
    const untrusted: Record<string, UntrustedNode> = {};
    // An enrollment that does not hold (unsigned, another signer, altered) changes nothing: the last good one
    // read stays in force (a deleted one — a revocation — does not), and the bad one is reported.
    const enrolled = new Map<string, EnrollmentRead>();
    const badEnrollments: Record<string, Problem> = {};
    for (const [id, text] of [...this.enrollments]) {
      await breathe();
      const r = this.cached(this.enrollmentReads, id, text, () => readEnrollment(this.keys.enrollment(id), id, text, this.operatorKeys));
      if ('enrollment' in r) this.goodEnrollments.set(id, r.enrollment);
      else badEnrollments[id] = r.problem;
      const good = this.goodEnrollments.get(id);
      enrolled.set(id, 'enrollment' in r || !good ? r : { enrollment: good, signer: null });
    }
    for (const id of [...this.goodEnrollments.keys()]) if (!this.enrollments.has(id)) this.goodEnrollments.delete(id);
    for (const id of [...this.enrollmentReads.keys()]) if (!this.enrollments.has(id)) this.enrollmentReads.delete(id);
    for (const id of [...this.registrationVets.keys()]) if (!this.registrations.has(id)) this.registrationVets.delete(id);
    const pinned = (id: string) => this.goodEnrollments.get(id)?.publicKey;
    for (const [id, text] of [...this.registrations]) {
      await breathe();
      const read = enrolled.get(id);
      const t = this.cached(this.registrationVets, id, `${JSON.stringify(read ?? null)}\n${text}`, () => vetRegistration(this.keys.node(id), id, text, read));
      if (t.state === 'trusted') registrations.set(id, t.registration);
      else untrusted[id] = { state: t.state, signer: t.signer, problem: t.problem };
    }
    const members = new Map<string, MemberRecord>();
    for (const [id, m] of this.members) if (pinned(id) === m.publicKey) members.set(id, m);
    const seen = new Map(Object.entries(untrusted).map(([id, u]) => [id, `${u.problem.code} ${u.signer}`]));
    for (const [id, what] of seen) {
      if (this.untrustedSeen.get(id) !== what) this.log.warn({ node: id, code: untrusted[id].problem.code, signer: untrusted[id].signer }, `controller: ${untrusted[id].problem.message}`);
    }
    for (const [id, p] of Object.entries(badEnrollments)) seen.set(`enroll/${id}`, p.code);
    for (const [id, p] of Object.entries(badEnrollments)) if (this.untrustedSeen.get(`enroll/${id}`) !== p.code) this.log.warn({ node: id, code: p.code }, `controller: ${p.message}`);
    this.untrustedSeen = seen;
    return { registrations, members, untrusted, badEnrollments };
  }

  /** Asks for a re-plan after the debounce (or `ms`). */
  schedule(reason: string, ms = this.debounceMs): void {
    if (this.stopped || !this.leader) return;
    this.reasons.add(reason);
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      const reason = [...this.reasons].join(', ');
      this.reasons.clear();
      this.running = this.round(reason)
        .then(() => {
          this.failures = 0;
        })
        .catch((e) => {
          this.failures++;
          this.dirty = true;
          if (e instanceof NotLeaderError) {
            this.log.warn('controller: lost the leadership');
            this.lease?.release();
            this.stepDown();
            return;
          }
          this.log.error({ err: (e as Error).message }, 'controller: round failed, retrying');
          this.again = true;
        })
        .finally(() => {
          this.running = null;
          if (this.again) {
            this.again = false;
            this.schedule('again', this.failures ? Math.min(30000, 500 * 2 ** this.failures) : this.debounceMs);
          }
        });
    }, ms);
  }

  private guard(): { key: string; value: string } {
    return { key: this.keys.leader(), value: this.id };
  }

  private async write(groups: Op[][], stats: WriteStats): Promise<void> {
    for (const txn of packTxns(groups, this.maxOps, this.maxBytes)) {
      await commit(this.client, txn, stats, this.guard());
    }
  }

  /**
   * Makes each node role's envelope grants what `want` says: first only the missing grants (before the parts
   * are written), then only the revocations (after). Nodes without a role (no RBAC) are left alone.
   */
  private async syncGrants(want: Map<string, Set<string>>, step: 'grant' | 'revoke'): Promise<void> {
    if (this.grantMirror === 'off') return;
    const rbac = new Rbac(this.client, this.keys);
    if (this.grantMirror === null) {
      try {
        this.grantMirror = await rbac.readGrants();
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'controller: cannot read etcd roles; node envelope grants are not managed (run the controller as zmesh-controller with role root when etcd auth is on)');
        this.grantMirror = 'off';
        return;
      }
    }
    for (const [node, have] of this.grantMirror) {
      const wanted = want.get(node) ?? new Set<string>();
      for (const key of step === 'grant' ? [...wanted].filter((x) => !have.has(x)) : [...have].filter((x) => !wanted.has(x))) {
        if (step === 'grant') await rbac.grant(nodeRole(node), readGrant(this.keys, key));
        else await rbac.revoke(nodeRole(node), readGrant(this.keys, key));
        if (step === 'grant') have.add(key);
        else have.delete(key);
      }
    }
  }

  /** One planning round: read what changed, decide (planRound, pure), write in order, report. */
  private async round(reason: string): Promise<void> {
    if (this.dirty) await this.reloadMirrors();
    const t0 = this.now();
    const started = Date.now();
    const k = this.keys;
    const stats = emptyStats();
    const rebalance = this.rebalanceRequested;
    const vetted = await this.vetNodes();
    // In 20 ms slices too: thousands of parts derived and signed take seconds, past the leadership lease.
    const p = await planRoundSliced({
      keys: k,
      now: t0,
      hd: this.hd,
      random: this.random,
      rebalance,
      registrations: vetted.registrations,
      members: vetted.members,
      storedMembers: this.members,
      // Copies: the watches change these while the round gives the event loop its turns.
      tenants: new Map(this.tenants),
      submitted: new Map(this.submitted),
      planMirror: this.planMirror,
      partMirror: this.partMirror,
      envelopes: this.envelopeMirror,
      directoryMirror: this.directoryMirror,
      rosterMirror: this.rosterMirror,
      ownHeads: new Set(this.ownHeads),
      enrolled: new Set(this.goodEnrollments.keys()),
      signingKey: this.signingKey,
    }, slicer());
    for (const w of p.warnings) this.log.warn(w.fields, w.message);
    const { dec, replanned, statuses } = p;

    // Writes: members and plans (with the envelope) first, then the grants the parts need, then the parts, one
    // transaction per node when it fits; revocations and stale envelope copies last.
    await this.write([p.memberOps, ...p.planOps, p.envelopeOps, p.directoryPuts], stats);
    for (const op of p.envelopeOps) this.envelopeMirror.add(op.key);
    await this.syncGrants(p.wantGrants, 'grant');
    // Members and epochs change together (the relay writes tables under these epochs for these members). A round
    // that fails after this point marks the mirrors dirty: the next one reads the directories back from etcd.
    this.hiddenMembers = p.hiddenMembers;
    this.directoryMirror = new Map([...p.directories].map(([net, d]) => [net, [d]]));
    this.rosterMirror = new Map([...p.rosters].map(([net, d]) => [net, [d]]));
    this.members = dec.members;
    for (const id of p.removed) this.planMirror.delete(id);
    for (const [id, c] of p.current) if (replanned.includes(id)) this.planMirror.set(id, planEntries(c.plan, c.envelope));
    await this.write(p.partGroups, stats);
    for (const [pid, next] of p.desired) {
      if (next) this.partMirror.set(pid, next);
      else this.partMirror.delete(pid);
      if (next && p.signedParts.has(pid)) this.ownHeads.add(pid);
      else this.ownHeads.delete(pid);
    }
    await this.syncGrants(p.wantGrants, 'revoke');
    if (p.staleEnvelopes.length || p.directoryDeletes.length) {
      await this.write([p.staleEnvelopes, p.directoryDeletes], stats);
      for (const op of p.staleEnvelopes) this.envelopeMirror.delete(op.key);
    }
    if (rebalance) {
      await this.client.delete().key(k.rebalance());
      this.rebalanceRequested = false;
    }
    this.stats.txns += stats.txns;
    this.stats.puts += stats.puts;
    this.stats.deletes += stats.deletes;
    this.stats.bytes += stats.bytes;

    const report: RoundReport = {
      n: ++this.rounds,
      reason,
      at: t0,
      durationMs: Date.now() - started,
      replanned,
      writes: stats,
      nodesWritten: p.partGroups.length,
      members: Object.fromEntries(dec.states),
      untrusted: vetted.untrusted,
      badEnrollments: vetted.badEnrollments,
      blueprints: statuses,
    };
    this.lastRound = report;
    this.relay?.poke();
    await this.client
      .put(k.controllerStatus())
      .value(JSON.stringify({ leader: this.id, ...report }))
      .catch(() => undefined);
    this.log.info({ round: report.n, reason, durationMs: report.durationMs, replanned, writes: stats, nodes: report.nodesWritten }, 'controller: round');
    for (const fn of this.roundListeners) fn(report);

    // Hold-down transitions happen by the clock alone: wake up for the next one.
    if (this.clockTimer) clearTimeout(this.clockTimer);
    this.clockTimer = null;
    if (dec.nextAt !== null) {
      this.clockTimer = setTimeout(() => {
        this.clockTimer = null;
        this.schedule('hold-down clock', 0);
      }, Math.max(0, dec.nextAt - this.now()) + 5);
      this.clockTimer.unref?.();
    }
  }
}

/** A function that gives the event loop a turn once 20 ms have passed since the last (leases stay alive). */
function slicer(): () => Promise<void> {
  let slice = performance.now();
  return async () => {
    if (performance.now() - slice < 20) return;
    await new Promise((r) => setImmediate(r));
    slice = performance.now();
  };
}
