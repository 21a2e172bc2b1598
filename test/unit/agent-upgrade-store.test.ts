// Upgrading the state store (docs/agent.md#upgrades): a module's schema bump with data, the backup made before
// it, all-or-nothing migration, refusing a downgrade untouched, and rolling back by restoring the backup.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { copyFileSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_MODULES, KEEP_BACKUPS, backupBeforeMigration, computeModule, openStore, type StoreModule } from '../../src/agent/store.ts';
import { ZmeshError } from '../../src/errors.ts';

/** The agent's modules with compute at schema 2: workloads gain a `mac` column filled from the stored attachment. */
function withComputeV2(up?: (db: Database.Database) => void): StoreModule[] {
  const v2: StoreModule = {
    name: 'compute',
    migrations: [
      ...computeModule.migrations,
      {
        to: 2,
        up:
          up ??
          ((db) => {
            db.exec('ALTER TABLE workloads ADD COLUMN mac TEXT');
            db.exec("UPDATE workloads SET mac = json_extract(attachment, '$.mac') WHERE attachment IS NOT NULL");
          }),
      },
    ],
  };
  return AGENT_MODULES.map((m) => (m.name === 'compute' ? v2 : m));
}

function seed(dir: string): void {
  const { db } = openStore(dir, AGENT_MODULES);
  db.prepare('INSERT INTO tenants (name, public_key) VALUES (?, ?)').run('acme', 'K');
  db.prepare('INSERT INTO workloads (key, container_id, restarts, attachment, updated_at) VALUES (?, ?, ?, ?, ?)').run(
    'acme/shop/web', 'c0ffee', 2, JSON.stringify({ containerId: 'c0ffee', mac: '02:5a:0a:3f:00:0a' }), '2026-01-01T00:00:00.000Z',
  );
  db.close();
}

const tmp = () => mkdtempSync(join(tmpdir(), 'zmesh-upgrade-store-'));

test('a module bump with data: the data is migrated, the rest untouched, the old store kept as a backup', () => {
  const dir = tmp();
  try {
    seed(dir);
    const { db, versions, backup, steps } = openStore(dir, withComputeV2());
    assert.deepEqual(versions, { core: 1, network: 2, compute: 2, storage: 1 });
    assert.deepEqual(steps, ['compute 1→2']);
    assert.deepEqual(db.prepare('SELECT key, container_id, restarts, mac FROM workloads').all(), [{ key: 'acme/shop/web', container_id: 'c0ffee', restarts: 2, mac: '02:5a:0a:3f:00:0a' }]);
    assert.deepEqual(db.prepare('SELECT * FROM tenants').all(), [{ name: 'acme', public_key: 'K' }]);
    db.close();
    assert.ok(backup && /backups\/state-\d{8}T\d{9}Z-before-compute-1-2\.db$/.test(backup), backup);
    assert.equal(statSync(backup).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'backups')).mode & 0o777, 0o700);
    const old = new Database(backup, { readonly: true });
    assert.deepEqual(old.prepare('SELECT module, version FROM schema_versions ORDER BY module').all(), [
      { module: 'compute', version: 1 }, { module: 'core', version: 1 }, { module: 'network', version: 2 }, { module: 'storage', version: 1 },
    ]);
    assert.equal((old.prepare('SELECT count(*) AS n FROM workloads').get() as { n: number }).n, 1);
    old.close();
    // Opening again: nothing pending, no new backup.
    const again = openStore(dir, withComputeV2());
    assert.equal(again.backup, undefined);
    again.db.close();
    assert.equal(readdirSync(join(dir, 'backups')).length, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a new store is not backed up', () => {
  const dir = tmp();
  try {
    const { db, backup } = openStore(dir, withComputeV2());
    db.close();
    assert.equal(backup, undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a step that fails changes nothing: the previous build still opens the store', () => {
  const dir = tmp();
  try {
    seed(dir);
    const broken = withComputeV2((db) => {
      db.exec('ALTER TABLE workloads ADD COLUMN mac TEXT');
      throw new Error('step failed half way');
    });
    // storage gets a step too, after compute: neither may stick.
    const modules = broken.map((m) => (m.name === 'storage' ? { ...m, migrations: [...m.migrations, { to: 2, up: (db: Database.Database) => db.exec('CREATE TABLE extra (x)') }] } : m));
    assert.throws(() => openStore(dir, modules), /step failed half way/);
    const { db, versions, backup } = openStore(dir, AGENT_MODULES);
    assert.deepEqual(versions, { core: 1, network: 2, compute: 1, storage: 1 });
    assert.equal(backup, undefined);
    const cols = (db.prepare("SELECT name FROM pragma_table_info('workloads')").all() as { name: string }[]).map((c) => c.name);
    assert.ok(!cols.includes('mac'), cols.join(','));
    assert.equal(db.prepare("SELECT name FROM sqlite_master WHERE name = 'extra'").get(), undefined);
    db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a downgrade is refused with E_STORE_NEWER before anything changes; restoring the backup rolls back', () => {
  const dir = tmp();
  try {
    seed(dir);
    const up = openStore(dir, withComputeV2());
    up.db.prepare("INSERT INTO tenants (name, public_key) VALUES ('late', 'L')").run();
    up.db.close();
    // The previous build (compute 1) together with a module it must migrate (storage 2): refused, storage untouched.
    const prev = AGENT_MODULES.map((m) => (m.name === 'storage' ? { ...m, migrations: [...m.migrations, { to: 2, up: (db: Database.Database) => db.exec('CREATE TABLE extra (x)') }] } : m));
    const before = statSync(join(dir, 'state.db')).mtimeMs;
    assert.throws(
      () => openStore(dir, prev),
      (e: unknown) =>
        e instanceof ZmeshError &&
        e.code === 'E_STORE_NEWER' &&
        /state store module compute has schema 2, newer than this agent knows \(1\); upgrade the agent/.test(e.message) &&
        /stateDir\/backups/.test(e.hint),
    );
    const check = new Database(join(dir, 'state.db'), { readonly: true });
    assert.equal(check.prepare("SELECT name FROM sqlite_master WHERE name = 'extra'").get(), undefined);
    assert.deepEqual(check.prepare("SELECT version FROM schema_versions WHERE module = 'storage'").get(), { version: 1 });
    check.close();
    assert.equal(statSync(join(dir, 'state.db')).mtimeMs, before);
    assert.equal(readdirSync(join(dir, 'backups')).length, 1, 'a refused open makes no backup');
    // Rollback: restore the backup (the agent is stopped: no -wal/-shm beside the store), open with the old build.
    const [bak] = readdirSync(join(dir, 'backups'));
    for (const f of ['state.db-wal', 'state.db-shm']) rmSync(join(dir, f), { force: true });
    copyFileSync(join(dir, 'backups', bak), join(dir, 'state.db'));
    const { db, versions } = openStore(dir, AGENT_MODULES);
    assert.deepEqual(versions, { core: 1, network: 2, compute: 1, storage: 1 });
    assert.deepEqual(db.prepare('SELECT key, restarts FROM workloads').all(), [{ key: 'acme/shop/web', restarts: 2 }]);
    assert.deepEqual(db.prepare('SELECT name FROM tenants ORDER BY name').all(), [{ name: 'acme' }], 'what the newer build wrote after migrating is gone');
    db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(`backups are bounded to the newest ${KEEP_BACKUPS}`, () => {
  const dir = tmp();
  try {
    const { db } = openStore(dir, AGENT_MODULES);
    for (let i = 0; i < KEEP_BACKUPS + 3; i++) backupBeforeMigration(db, dir, [`compute ${i}→${i + 1}`], new Date(Date.UTC(2026, 0, 1, 0, 0, i)));
    db.close();
    const names = readdirSync(join(dir, 'backups')).sort();
    assert.equal(names.length, KEEP_BACKUPS);
    assert.match(names[0], /^state-20260101T000003000Z-before-compute-3-4\.db$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
