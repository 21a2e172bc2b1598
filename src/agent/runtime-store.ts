// The runtime's memory in the agent's state store: two modules, each with its own tables and schema version.
//   compute 1: workloads (restart count, last exit, container id, the stored attachment — CNI's ADD result)
//   storage 1: volumes (recorded before a subvolume is made; a volume is deleted only when recorded here)
import type { RuntimeStore, VolumeRecord, WorkloadRecord } from '../../runtime/store.ts';
import type { Db, StoreModule } from './store.ts';

export const computeModule: StoreModule = {
  name: 'compute',
  migrations: [
    {
      to: 1,
      up(db) {
        db.exec(`
          CREATE TABLE workloads (
            key TEXT PRIMARY KEY,
            container_id TEXT,
            restarts INTEGER NOT NULL DEFAULT 0,
            last_exit TEXT,
            attachment TEXT,
            updated_at TEXT NOT NULL
          );`);
      },
    },
  ],
};

export const storageModule: StoreModule = {
  name: 'storage',
  migrations: [
    {
      to: 1,
      up(db) {
        db.exec(`
          CREATE TABLE volumes (
            key TEXT PRIMARY KEY,
            subvolume TEXT NOT NULL,
            size INTEGER NOT NULL,
            state TEXT NOT NULL,
            created_at TEXT NOT NULL
          );`);
      },
    },
  ],
};

export const RUNTIME_MODULES: StoreModule[] = [computeModule, storageModule];

/** RuntimeStore over the agent's SQLite database (tables of the compute and storage modules). */
export class SqliteRuntimeStore implements RuntimeStore {
  constructor(private readonly db: Db) {}

  workloads(): WorkloadRecord[] {
    return this.db
      .prepare<[], { key: string; container_id: string | null; restarts: number; last_exit: string | null; attachment: string | null; updated_at: string }>('SELECT * FROM workloads ORDER BY key')
      .all()
      .map((r) => ({
        key: r.key,
        containerId: r.container_id,
        restarts: r.restarts,
        lastExit: r.last_exit ? JSON.parse(r.last_exit) : null,
        attachment: r.attachment ? JSON.parse(r.attachment) : null,
        updatedAt: r.updated_at,
      }));
  }

  putWorkload(r: WorkloadRecord): void {
    this.db
      .prepare(
        `INSERT INTO workloads (key, container_id, restarts, last_exit, attachment, updated_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT(key) DO UPDATE SET container_id = excluded.container_id, restarts = excluded.restarts,
           last_exit = excluded.last_exit, attachment = excluded.attachment, updated_at = excluded.updated_at`,
      )
      .run(r.key, r.containerId, r.restarts, r.lastExit ? JSON.stringify(r.lastExit) : null, r.attachment ? JSON.stringify(r.attachment) : null, r.updatedAt);
  }

  deleteWorkload(key: string): void {
    this.db.prepare('DELETE FROM workloads WHERE key = ?').run(key);
  }

  volumes(): VolumeRecord[] {
    return this.db
      .prepare<[], { key: string; subvolume: string; size: number; state: VolumeRecord['state']; created_at: string }>('SELECT * FROM volumes ORDER BY key')
      .all()
      .map((r) => ({ key: r.key, subvolume: r.subvolume, size: r.size, state: r.state, createdAt: r.created_at }));
  }

  putVolume(r: VolumeRecord): void {
    this.db
      .prepare(
        `INSERT INTO volumes (key, subvolume, size, state, created_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(key) DO UPDATE SET subvolume = excluded.subvolume, size = excluded.size, state = excluded.state, created_at = excluded.created_at`,
      )
      .run(r.key, r.subvolume, r.size, r.state, r.createdAt);
  }

  deleteVolume(key: string): void {
    this.db.prepare('DELETE FROM volumes WHERE key = ?').run(key);
  }
}
