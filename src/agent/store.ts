// The embedded state store: SQLite (WAL, transactions) in the agent's state directory.
// Each module owns its tables and a schema version, and migrates its own data on start, so one module can be
// upgraded without the others. Modules: core (tenants, events), network (blueprints, node parts, applied state),
// compute (workloads) and storage (volumes) — the last two in runtime-store.ts.
// Upgrades (docs/agent.md#upgrades): at open, a store with a module newer than this build is refused untouched
// (E_STORE_NEWER); an existing store with steps pending is first copied to stateDir/backups (the rollback),
// then every pending step of every module runs in one transaction (all or nothing).
import type DatabaseModule from 'better-sqlite3';
import { chmodSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ZmeshError } from '../errors.ts';
import { RUNTIME_MODULES } from './runtime-store.ts';

// By require(): a CommonJS package imported through the ESM loader by a module loaded after start can come out
// empty (nodejs/node#51142; src/control/etcd.ts, test/unit/cjs-lazy.test.ts).
const Database = createRequire(import.meta.url)('better-sqlite3') as typeof DatabaseModule;
export type Db = DatabaseModule.Database;

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

/** Versions recorded in schema_versions (module → version); empty for a new store. */
export function storedVersions(db: Db): Record<string, number> {
  const has = db.prepare<[], { n: number }>("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'schema_versions'").get();
  if (!has?.n) return {};
  const rows = db.prepare<[], { module: string; version: number }>('SELECT module, version FROM schema_versions').all();
  return Object.fromEntries(rows.map((r) => [r.module, r.version]));
}

/**
 * Refuses a store that a newer agent wrote: any module whose stored schema is newer than this build knows.
 * Checked for every module before anything is migrated, so a refused store is left exactly as it was.
 */
export function checkNotNewer(stored: Record<string, number>, modules: StoreModule[]): void {
  const newer = modules.filter((m) => (stored[m.name] ?? 0) > latestVersion(m));
  if (!newer.length) return;
  const what = newer.map((m) => `state store module ${m.name} has schema ${stored[m.name]}, newer than this agent knows (${latestVersion(m)})`).join('; ');
  throw new ZmeshError('E_STORE_NEWER', `${what}; upgrade the agent`, {
    kind: 'invalid',
    hint: 'a newer agent migrated this store: run that build again, or roll back by restoring the backup it made before migrating (stateDir/backups/, docs/agent.md#upgrades)',
  });
}

/** The pending steps per module ("network 1→2"), for the log and the backup's name. */
export function pendingSteps(stored: Record<string, number>, modules: StoreModule[]): string[] {
  return modules.filter((m) => (stored[m.name] ?? 0) < latestVersion(m)).map((m) => `${m.name} ${stored[m.name] ?? 0}→${latestVersion(m)}`);
}

/**
 * Runs every module's pending migrations in ONE transaction: either the whole store reaches this build's
 * schemas, or (a step threw) nothing changed and the previous build can still open it. Refuses a store with
 * a module newer than this build (E_STORE_NEWER) before touching anything. Returns module → version.
 */
export function migrate(db: Db, modules: StoreModule[]): Record<string, number> {
  checkNotNewer(storedVersions(db), modules);
  const out: Record<string, number> = {};
  db.transaction(() => {
    db.exec('CREATE TABLE IF NOT EXISTS schema_versions (module TEXT PRIMARY KEY, version INTEGER NOT NULL)');
    const get = db.prepare<[string], { version: number }>('SELECT version FROM schema_versions WHERE module = ?');
    const set = db.prepare('INSERT INTO schema_versions (module, version) VALUES (?, ?) ON CONFLICT(module) DO UPDATE SET version = excluded.version');
    for (const m of modules) {
      let current = get.get(m.name)?.version ?? 0;
      for (const mig of [...m.migrations].sort((a, b) => a.to - b.to)) {
        if (mig.to <= current) continue;
        mig.up(db);
        set.run(m.name, mig.to);
        current = mig.to;
      }
      out[m.name] = current;
    }
  })();
  return out;
}

/** How many pre-migration backups are kept in stateDir/backups (the newest). */
export const KEEP_BACKUPS = 5;

/**
 * Before an existing store is migrated: a consistent copy of it (`VACUUM INTO`, 0600) in stateDir/backups,
 * named after the steps it precedes, so a rollback to the previous build can restore it. Keeps the newest
 * KEEP_BACKUPS. Returns the path.
 */
export function backupBeforeMigration(db: Db, stateDir: string, steps: string[], now: Date = new Date()): string {
  const dir = join(stateDir, 'backups');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const tag = steps.map((s) => s.replace(/ (\d+)→(\d+)$/, '-$1-$2')).join('_').replace(/[^A-Za-z0-9_.-]/g, '');
  const file = join(dir, `state-${now.toISOString().replace(/[-:.]/g, '')}-before-${tag}.db`);
  db.prepare('VACUUM INTO ?').run(file);
  chmodSync(file, 0o600);
  const old = readdirSync(dir).filter((n) => /^state-.*\.db$/.test(n)).sort();
  for (const n of old.slice(0, Math.max(0, old.length - KEEP_BACKUPS))) rmSync(join(dir, n), { force: true });
  return file;
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

/**
 * Opens (creating if needed, mode 0600) the state database in stateDir and migrates every module. A store that
 * exists and has steps pending is first copied to stateDir/backups (backupBeforeMigration); `backup` says where.
 */
export function openStore(stateDir: string, modules: StoreModule[] = MODULES): { db: Db; versions: Record<string, number>; backup?: string; steps?: string[] } {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  chmodSync(stateDir, 0o700);
  const path = join(stateDir, 'state.db');
  const db = new Database(path);
  chmodSync(path, 0o600);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    const stored = storedVersions(db);
    checkNotNewer(stored, modules);
    const steps = pendingSteps(stored, modules);
    // A new store (nothing recorded) has nothing to lose; an existing one is copied before it changes.
    const backup = steps.length && Object.keys(stored).length ? backupBeforeMigration(db, stateDir, steps) : undefined;
    const versions = migrate(db, modules);
    return { db, versions, ...(backup ? { backup, steps } : {}) };
  } catch (e) {
    db.close();
    throw e;
  }
}
