// The state store: per-module schema versions and migration of data written by an older schema.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { coreModule, migrate, networkModule, openStore } from '../../src/agent/store.ts';
import { State } from '../../src/agent/state.ts';

test('a network module at schema 1 with data migrates to 2 without losing it; core is left alone', () => {
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-store-'));
  try {
    // An older agent: core at 1, network at 1, one accepted blueprint.
    const old = new Database(join(dir, 'state.db'));
    migrate(old, [coreModule, { name: 'network', migrations: networkModule.migrations.filter((m) => m.to === 1) }]);
    old.prepare('INSERT INTO tenants (name, public_key) VALUES (?, ?)').run('acme', 'K');
    old.prepare('INSERT INTO blueprints (tenant, name, version, envelope, part, accepted_at) VALUES (?, ?, ?, ?, ?, ?)').run(
      'acme', 'shop', 3, '{"format":"zmesh-signed-blueprint/1"}', '{"generation":7,"networks":[]}', '2026-01-01T00:00:00.000Z',
    );
    old.close();

    const { db, versions } = openStore(dir);
    assert.deepEqual(versions, { core: 1, network: 2 });
    const row = db.prepare('SELECT tenant, name, version, generation FROM blueprints').get();
    assert.deepEqual(row, { tenant: 'acme', name: 'shop', version: 3, generation: 7 });
    assert.deepEqual(db.prepare('SELECT * FROM tenants').all(), [{ name: 'acme', public_key: 'K' }]);
    const state = new State(db);
    assert.equal(state.lastVersion('acme', 'shop'), 3);
    assert.equal(statSync(join(dir, 'state.db')).mode & 0o777, 0o600);
    db.close();
    // Opening again is a no-op.
    const again = openStore(dir);
    assert.deepEqual(again.versions, { core: 1, network: 2 });
    again.db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a store written by a newer agent is refused, not damaged', () => {
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-store-'));
  try {
    const { db } = openStore(dir);
    db.prepare("UPDATE schema_versions SET version = 99 WHERE module = 'network'").run();
    db.close();
    assert.throws(() => openStore(dir), /schema 99, newer than this agent knows/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
