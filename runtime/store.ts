// What the runtime remembers, behind a small interface (after CNI host-local's backend/store.go): the agent
// backs it with its SQLite state store (compute and storage modules); tests use MemoryRuntimeStore.
import type { Attachment, ExitInfo } from './types.ts';

export interface WorkloadRecord {
  /** tenant/blueprint/name */
  key: string;
  containerId: string | null;
  restarts: number;
  lastExit: ExitInfo | null;
  /** The stored ADD result, or null when not attached. */
  attachment: Attachment | null;
  updatedAt: string;
}

export interface VolumeRecord {
  key: string;
  /** Subvolume name under <pool>/volumes. */
  subvolume: string;
  size: number;
  /** creating: recorded before the subvolume is made (so a crash in between is still ours to finish). */
  state: 'creating' | 'ready' | 'deleting';
  createdAt: string;
}

export interface RuntimeStore {
  workloads(): WorkloadRecord[];
  putWorkload(r: WorkloadRecord): void;
  deleteWorkload(key: string): void;
  volumes(): VolumeRecord[];
  putVolume(r: VolumeRecord): void;
  deleteVolume(key: string): void;
}

export class MemoryRuntimeStore implements RuntimeStore {
  readonly w = new Map<string, WorkloadRecord>();
  readonly v = new Map<string, VolumeRecord>();
  workloads(): WorkloadRecord[] {
    return [...this.w.values()].map((r) => structuredClone(r)).sort((a, b) => (a.key < b.key ? -1 : 1));
  }
  putWorkload(r: WorkloadRecord): void {
    this.w.set(r.key, structuredClone(r));
  }
  deleteWorkload(key: string): void {
    this.w.delete(key);
  }
  volumes(): VolumeRecord[] {
    return [...this.v.values()].map((r) => structuredClone(r)).sort((a, b) => (a.key < b.key ? -1 : 1));
  }
  putVolume(r: VolumeRecord): void {
    this.v.set(r.key, structuredClone(r));
  }
  deleteVolume(key: string): void {
    this.v.delete(key);
  }
}
