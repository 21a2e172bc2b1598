// Typed access to the agent's state store: tenants, accepted blueprints with their node parts, applied state,
// and the event log. Every write that must be atomic runs in one transaction.
import type { SignedBlueprint } from '../blueprint/types.ts';
import type { NodePlanPart } from '../plan/part.ts';
import type { Db } from './store.ts';

export interface StoredBlueprint {
  tenant: string;
  name: string;
  version: number;
  generation: number;
  envelope: SignedBlueprint;
  part: NodePlanPart;
  acceptedAt: string;
}

export interface AgentEvent {
  id: number;
  ts: string;
  level: 'info' | 'warn' | 'error';
  kind: string;
  subject: string;
  message: string;
  data?: unknown;
}

export interface AppliedRecord {
  networkId: string;
  tenant: string;
  blueprint: string;
  network: string;
  generation: number;
  ok: boolean;
  report: unknown;
  appliedAt: string;
}

function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

export class State {
  /** networkId → the applied record last written (recordApplied), to skip writes that change nothing. */
  private readonly appliedTexts = new Map<string, string>();
  constructor(
    readonly db: Db,
    private readonly now: () => Date = () => new Date(),
  ) {}

  setTenants(tenants: Record<string, string>): void {
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM tenants').run();
      const ins = this.db.prepare('INSERT INTO tenants (name, public_key) VALUES (?, ?)');
      for (const [name, key] of Object.entries(tenants)) ins.run(name, key);
    })();
  }

  tenantKey(name: string): string | undefined {
    return this.db.prepare<[string], { public_key: string }>('SELECT public_key FROM tenants WHERE name = ?').get(name)?.public_key;
  }

  /** Highest version ever accepted for tenant/name, also after removal (replay protection). */
  lastVersion(tenant: string, name: string): number {
    const a = this.db.prepare<[string, string], { version: number }>('SELECT version FROM blueprints WHERE tenant = ? AND name = ?').get(tenant, name);
    const b = this.db.prepare<[string, string], { version: number }>('SELECT version FROM removed_versions WHERE tenant = ? AND name = ?').get(tenant, name);
    return Math.max(a?.version ?? 0, b?.version ?? 0);
  }

  /**
   * Accepted blueprints, parsed. Cached between writes (the admin API and the reconcile loop read them on every
   * call); the cache is dropped by every write through this class. Callers must not mutate what they get.
   */
  blueprints(): StoredBlueprint[] {
    if (this.cache) return this.cache;
    this.cache = deepFreeze(this.readBlueprints());
    return this.cache;
  }

  private cache: StoredBlueprint[] | null = null;

  private readBlueprints(): StoredBlueprint[] {
    const rows = this.db
      .prepare<[], { tenant: string; name: string; version: number; generation: number; envelope: string; part: string; accepted_at: string }>(
        'SELECT * FROM blueprints ORDER BY tenant, name',
      )
      .all();
    return rows.map((r) => ({
      tenant: r.tenant,
      name: r.name,
      version: r.version,
      generation: r.generation,
      envelope: JSON.parse(r.envelope),
      part: JSON.parse(r.part),
      acceptedAt: r.accepted_at,
    }));
  }

  blueprint(tenant: string, name: string): StoredBlueprint | undefined {
    return this.blueprints().find((b) => b.tenant === tenant && b.name === name);
  }

  accept(envelope: SignedBlueprint, part: NodePlanPart): void {
    this.cache = null;
    const bp = envelope.blueprint;
    this.db
      .prepare(
        `INSERT INTO blueprints (tenant, name, version, generation, envelope, part, accepted_at) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(tenant, name) DO UPDATE SET version = excluded.version, generation = excluded.generation,
           envelope = excluded.envelope, part = excluded.part, accepted_at = excluded.accepted_at`,
      )
      .run(bp.tenant, bp.name, bp.version, part.generation, JSON.stringify(envelope), JSON.stringify(part), this.now().toISOString());
  }

  remove(tenant: string, name: string): boolean {
    this.cache = null;
    return this.db.transaction(() => {
      const v = this.lastVersion(tenant, name);
      const r = this.db.prepare('DELETE FROM blueprints WHERE tenant = ? AND name = ?').run(tenant, name);
      if (r.changes === 0) return false;
      this.db
        .prepare('INSERT INTO removed_versions (tenant, name, version) VALUES (?, ?, ?) ON CONFLICT(tenant, name) DO UPDATE SET version = excluded.version')
        .run(tenant, name, v);
      return true;
    })();
  }

  recordApplied(rec: Omit<AppliedRecord, 'appliedAt'>): void {
    // A reconcile that changed nothing writes nothing (every 30 s per network otherwise, on a node's flash): the
    // time is when the record last changed.
    const text = JSON.stringify([rec.tenant, rec.blueprint, rec.network, rec.generation, rec.ok, rec.report]);
    if (this.appliedTexts.get(rec.networkId) === text) return;
    this.db
      .prepare(
        `INSERT INTO applied (network_id, tenant, blueprint, network, generation, ok, report, applied_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(network_id) DO UPDATE SET tenant = excluded.tenant, blueprint = excluded.blueprint, network = excluded.network,
           generation = excluded.generation, ok = excluded.ok, report = excluded.report, applied_at = excluded.applied_at`,
      )
      .run(rec.networkId, rec.tenant, rec.blueprint, rec.network, rec.generation, rec.ok ? 1 : 0, JSON.stringify(rec.report), this.now().toISOString());
    // Kept only once written: a write that failed (disk full, out of descriptors) is tried again next time.
    this.appliedTexts.set(rec.networkId, text);
  }

  forgetApplied(networkId: string): void {
    this.appliedTexts.delete(networkId);
    this.db.prepare('DELETE FROM applied WHERE network_id = ?').run(networkId);
  }

  applied(): AppliedRecord[] {
    return this.db
      .prepare<[], { network_id: string; tenant: string; blueprint: string; network: string; generation: number; ok: number; report: string; applied_at: string }>(
        'SELECT * FROM applied ORDER BY network_id',
      )
      .all()
      .map((r) => ({
        networkId: r.network_id,
        tenant: r.tenant,
        blueprint: r.blueprint,
        network: r.network,
        generation: r.generation,
        ok: r.ok === 1,
        report: JSON.parse(r.report),
        appliedAt: r.applied_at,
      }));
  }

  event(level: AgentEvent['level'], kind: string, subject: string, message: string, data?: unknown): AgentEvent {
    const ts = this.now().toISOString();
    const r = this.db
      .prepare('INSERT INTO events (ts, level, kind, subject, message, data) VALUES (?, ?, ?, ?, ?, ?)')
      .run(ts, level, kind, subject, message, data === undefined ? null : JSON.stringify(data));
    // Keep the log bounded.
    this.db.prepare('DELETE FROM events WHERE id <= ?').run(Number(r.lastInsertRowid) - 10000);
    return { id: Number(r.lastInsertRowid), ts, level, kind, subject, message, data };
  }

  events(afterId = 0, limit = 200): AgentEvent[] {
    return this.db
      .prepare<[number, number], { id: number; ts: string; level: AgentEvent['level']; kind: string; subject: string; message: string; data: string | null }>(
        'SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?',
      )
      .all(afterId, limit)
      .map((r) => ({ ...r, data: r.data === null ? undefined : JSON.parse(r.data) }));
  }
}
