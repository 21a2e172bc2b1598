// The embedded state store: SQLite (WAL, transactions) in the agent's state directory.
// Each module owns its tables and a schema version, and migrates its own data on start, so one module can be
// upgraded without the others. Modules: core (tenants, events), network (blueprints, node parts, applied state),
// compute (workloads) and storage (volumes) — the last two in runtime-store.ts.
import Database from 'better-sqlite3';
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { RUNTIME_MODULES } from './runtime-store.ts';

export type Db = Database.Database;

export interface Migration {
  /** Schema version this migration produces. */
  to: number;
  up(db: Db): void;
}

export interface StoreModule {
  name: string;
  migrations: Migration[];
}

export function latestVersion(m: StoreModule): number {
  return m.migrations.reduce((v, x) => Math.max(v, x.to), 0);
}

/** Runs each module's pending migrations, each in its own transaction. Returns module → version. */
export function migrate(db: Db, modules: StoreModule[]): Record<string, number> {
  db.exec('CREATE TABLE IF NOT EXISTS schema_versions (module TEXT PRIMARY KEY, version INTEGER NOT NULL)');
  const get = db.prepare<[string], { version: number }>('SELECT version FROM schema_versions WHERE module = ?');
  const set = db.prepare('INSERT INTO schema_versions (module, version) VALUES (?, ?) ON CONFLICT(module) DO UPDATE SET version = excluded.version');
  const out: Record<string, number> = {};
  for (const m of modules) {
    let current = get.get(m.name)?.version ?? 0;
    const latest = latestVersion(m);
    if (current > latest) {
      throw new Error(`state store module ${m.name} has schema ${current}, newer than this agent knows (${latest}); upgrade the agent`);
    }
    for (const mig of [...m.migrations].sort((a, b) => a.to - b.to)) {
      if (mig.to <= current) continue;
      db.transaction(() => {
        mig.up(db);
        set.run(m.name, mig.to);
      })();
      current = mig.to;
    }
    out[m.name] = current;
  }
  return out;
}

export const coreModule: StoreModule = {
  name: 'core',
  migrations: [
    {
      to: 1,
      up(db) {
        db.exec(`
          CREATE TABLE tenants (name TEXT PRIMARY KEY, public_key TEXT NOT NULL);
          CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ts TEXT NOT NULL,
            level TEXT NOT NULL,
            kind TEXT NOT NULL,
            subject TEXT NOT NULL DEFAULT '',
            message TEXT NOT NULL,
            data TEXT
          );`);
      },
    },
  ],
};

/**
 * network module.
 * v1: blueprints(tenant, name, version, envelope, part) — accepted signed blueprints and this node's plan part.
 * v2: adds blueprints.generation (the plan generation, read out of the stored part) and the applied table
 *     (what the driver last reached per network resource).
 */
export const networkModule: StoreModule = {
  name: 'network',
  migrations: [
    {
      to: 1,
      up(db) {
        db.exec(`
          CREATE TABLE blueprints (
            tenant TEXT NOT NULL,
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            envelope TEXT NOT NULL,
            part TEXT NOT NULL,
            accepted_at TEXT NOT NULL,
            PRIMARY KEY (tenant, name)
          );`);
      },
    },
    {
      to: 2,
      up(db) {
        db.exec(`ALTER TABLE blueprints ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;`);
        const rows = db.prepare<[], { tenant: string; name: string; part: string }>('SELECT tenant, name, part FROM blueprints').all();
        const upd = db.prepare('UPDATE blueprints SET generation = ? WHERE tenant = ? AND name = ?');
        for (const r of rows) {
          let gen: number;
          try {
            gen = Number(JSON.parse(r.part).generation) || 0;
          } catch {
            gen = 0; // an unreadable part keeps generation 0; the next submission sets it
          }
          upd.run(gen, r.tenant, r.name);
        }
        db.exec(`
          CREATE TABLE applied (
            network_id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            blueprint TEXT NOT NULL,
            network TEXT NOT NULL,
            generation INTEGER NOT NULL,
            ok INTEGER NOT NULL,
            report TEXT NOT NULL,
            applied_at TEXT NOT NULL
          );
          CREATE TABLE removed_versions (
            tenant TEXT NOT NULL,
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            PRIMARY KEY (tenant, name)
          );`);
      },
    },
  ],
};

export const MODULES: StoreModule[] = [coreModule, networkModule];

export { computeModule, storageModule } from './runtime-store.ts';
/**
 * Every module the agent service opens: MODULES plus the runtime's compute and storage modules
 * (src/agent/runtime-store.ts). Kept apart from MODULES so stores opened without a runtime stay as they were.
 */
export const AGENT_MODULES: StoreModule[] = [...MODULES, ...RUNTIME_MODULES];

/** Opens (creating if needed, mode 0600) the state database in stateDir and migrates every module. */
export function openStore(stateDir: string, modules: StoreModule[] = MODULES): { db: Db; versions: Record<string, number> } {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  chmodSync(stateDir, 0o700);
  const path = join(stateDir, 'state.db');
  const db = new Database(path);
  chmodSync(path, 0o600);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  try {
    return { db, versions: migrate(db, modules) };
  } catch (e) {
    db.close();
    throw e;
  }
}
