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

test('recordApplied writes only what changed: a no-op reconcile leaves the row (and its time) alone', () => {
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-store-'));
  try {
    const { db } = openStore(dir);
    let t = Date.parse('2026-12-05T10:00:00.000Z');
    const state = new State(db, () => new Date(t));
    const rec = { networkId: 'aaaaaaaaaa', tenant: 'acme', blueprint: 'shop', network: 'net', generation: 3, ok: true, report: { changes: [], errors: [] } };
    const writes = () => (db.prepare('SELECT total_changes() AS n').get() as { n: number }).n;
    state.recordApplied(rec);
    const w0 = writes();
    t += 30_000;
    state.recordApplied({ ...rec, report: { changes: [], errors: [] } });
    assert.equal(writes(), w0, 'the same record again: no write');
    assert.equal(state.applied()[0].appliedAt, '2026-12-05T10:00:00.000Z');
    t += 30_000;
    state.recordApplied({ ...rec, generation: 4 });
    assert.equal(writes(), w0 + 1);
    assert.deepEqual([state.applied()[0].generation, state.applied()[0].appliedAt], [4, '2026-12-05T10:01:00.000Z']);
    // A write that fails (here: the table is away) is tried again with the same record.
    db.exec('ALTER TABLE applied RENAME TO applied_away');
    assert.throws(() => state.recordApplied({ ...rec, generation: 5 }));
    db.exec('ALTER TABLE applied_away RENAME TO applied');
    state.recordApplied({ ...rec, generation: 5 });
    assert.equal(state.applied()[0].generation, 5, 'written the second time');
    state.recordApplied({ ...rec, generation: 4 });
    // Forgotten, then the same record again: written again.
    state.forgetApplied('aaaaaaaaaa');
    state.recordApplied({ ...rec, generation: 4 });
    assert.equal(state.applied().length, 1);
    db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
