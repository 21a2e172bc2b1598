// The node's storage pool and its volumes, as 0-OS does: one btrfs filesystem (on a disk named in the config,
// or by default on a sparse image file in the state directory, loop-mounted), one subvolume per volume with
// a qgroup limit of its size, so writing past it fails with EDQUOT. The pool image stays in the state
// directory: after an agent restart or a reboot the pool is mounted again and every volume is still there.
//   <stateDir>/storage/pool.img      the image (sparse; grows as data is written)
//   <stateDir>/storage/pool          its mount point (mount -o loop: umount detaches the loop device)
//   <pool>/volumes/<t>.<b>.<v>        one subvolume per volume, bind-mounted into its workloads
// A volume is recorded before it is made and deleted only when no blueprint has it any more; a subvolume
// that is not recorded (made by someone else, or after a lost state store) is shown as an orphan, never deleted.
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Runner } from '../netns/runner.ts';
import { ZmeshError } from '../src/errors.ts';
import { keyFromSubvolume, keyOf, subvolumeName, validateVolume } from './names.ts';
import type { RuntimeStore } from './store.ts';
import type { DesiredVolume, RuntimeEvent, VolumeView } from './types.ts';

export const DEFAULT_POOL_SIZE = 10 * 1024 ** 3;
/** mkfs.btrfs refuses much smaller devices. */
export const MIN_POOL_SIZE = 128 * 1024 ** 2;
const POOL_MARKER = '.zmesh-pool';

export interface StorageOptions {
  stateDir: string;
  /** A block device for the pool instead of the image file. Formatted only when it holds no filesystem. */
  device?: string;
  /** Size of the pool image in bytes (default 10 GiB, sparse). */
  size?: number;
  /** Mount point (default <stateDir>/storage/pool). */
  mountpoint?: string;
}

export interface QgroupRow {
  id: string;
  referenced: number;
  exclusive: number;
  maxReferenced: number | null;
  maxExclusive: number | null;
  path: string;
}

/** `btrfs qgroup show --raw -re PATH` → rows. Pure. */
export function parseQgroups(text: string): QgroupRow[] {
  const out: QgroupRow[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+\/\d+)\s+(\d+)\s+(\d+)\s+(\d+|none)\s+(\d+|none)(?:\s+(.*))?$/.exec(line.trim());
    if (!m) continue;
    const n = (s: string) => (s === 'none' ? null : Number(s));
    out.push({ id: m[1], referenced: Number(m[2]), exclusive: Number(m[3]), maxReferenced: n(m[4]), maxExclusive: n(m[5]), path: (m[6] ?? '').trim() });
  }
  return out;
}

/** The mount at `path` in /proc/self/mountinfo text: its filesystem type and source, or null. Pure. */
export function findMount(mountinfo: string, path: string): { fstype: string; source: string } | null {
  const esc = path.replace(/\\/g, '\\134').replace(/ /g, '\\040').replace(/\t/g, '\\011').replace(/\n/g, '\\012');
  let found: { fstype: string; source: string } | null = null;
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    if (f.length < 10 || f[4] !== esc) continue;
    const dash = f.indexOf('-', 6);
    if (dash < 0) continue;
    found = { fstype: f[dash + 1], source: f[dash + 2] }; // the last one over the path wins
  }
  return found;
}

export interface StorageResult {
  changes: number;
  /** Keys of the volumes that exist with their limit after this call (workloads may mount them). */
  ready: Set<string>;
  events: RuntimeEvent[];
  errors: { subject: string; code: string; message: string }[];
}

export class Storage {
  readonly image: string;
  readonly mountpoint: string;
  private quotaChecked = false;

  constructor(
    private readonly run: Runner,
    private readonly store: RuntimeStore,
    private readonly opts: StorageOptions,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.image = join(opts.stateDir, 'storage', 'pool.img');
    this.mountpoint = opts.mountpoint ?? join(opts.stateDir, 'storage', 'pool');
  }

  /** Path of a volume's subvolume (whether or not it exists). */
  volumePath(v: { tenant: string; blueprint: string; name: string }): string {
    return join(this.mountpoint, 'volumes', subvolumeName(v));
  }

  mounted(): boolean {
    return findMount(readFileSync('/proc/self/mountinfo', 'utf8'), this.mountpoint) !== null;
  }

  /** Whether the pool was ever made here (an image in the state dir, or volumes recorded). */
  exists(): boolean {
    return (this.opts.device ? false : existsSync(this.image)) || this.store.volumes().length > 0;
  }

  /** Creates (first time) and mounts the pool; returns what it did. Idempotent. */
  async ensurePool(): Promise<string[]> {
    const did: string[] = [];
    const m = findMount(readFileSync('/proc/self/mountinfo', 'utf8'), this.mountpoint);
    if (m) {
      if (m.fstype !== 'btrfs') throw new ZmeshError('E_POOL', `${this.mountpoint} is mounted but is ${m.fstype}, not btrfs`, { kind: 'internal', hint: 'unmount it or set storageMountpoint elsewhere' });
    } else {
      const source = this.opts.device ?? this.image;
      if (!this.opts.device) {
        mkdirSync(join(this.opts.stateDir, 'storage'), { recursive: true, mode: 0o700 });
        const size = Math.max(MIN_POOL_SIZE, this.opts.size ?? DEFAULT_POOL_SIZE);
        if (!existsSync(this.image)) {
          const fd = openSync(this.image, 'wx', 0o600);
          try {
            ftruncateSync(fd, size);
          } finally {
            closeSync(fd);
          }
          did.push(`created pool image ${this.image} (${size} bytes, sparse)`);
        } else if (statSync(this.image).size < size) {
          did.push(`pool image is ${statSync(this.image).size} bytes, smaller than the configured ${size}: not grown`);
        }
      }
      const fs = (await this.run.run(['blkid', '-o', 'value', '-s', 'TYPE', source], { mutating: false, okCodes: [0, 2] })).stdout.trim();
      if (fs === '') {
        await this.run.run(['mkfs.btrfs', '-q', '-L', 'zmesh-pool', source], { mutating: true, timeoutMs: 120_000 });
        did.push(`made a btrfs filesystem on ${source}`);
      } else if (fs !== 'btrfs') {
        throw new ZmeshError('E_POOL', `${source} holds a ${fs} filesystem, not btrfs: left alone`, { kind: 'invalid', hint: 'give the pool an empty disk, or wipe this one yourself' });
      }
      mkdirSync(this.mountpoint, { recursive: true, mode: 0o700 });
      await this.run.run(['mount', '-t', 'btrfs', ...(this.opts.device ? [] : ['-o', 'loop']), source, this.mountpoint], { mutating: true, timeoutMs: 60_000 });
      did.push(`mounted the pool ${source} on ${this.mountpoint}`);
      this.quotaChecked = false;
    }
    if (!this.quotaChecked) {
      const q = await this.run.run(['btrfs', 'qgroup', 'show', '--raw', this.mountpoint], { mutating: false, okCodes: [0, 1] });
      if (q.exitCode !== 0) {
        await this.run.run(['btrfs', 'quota', 'enable', this.mountpoint], { mutating: true, timeoutMs: 60_000 });
        did.push('enabled btrfs quotas on the pool');
      }
      mkdirSync(join(this.mountpoint, 'volumes'), { recursive: true, mode: 0o700 });
      if (!existsSync(join(this.mountpoint, POOL_MARKER))) writeFileSync(join(this.mountpoint, POOL_MARKER), 'zmesh storage pool\n', { mode: 0o600 });
      this.quotaChecked = true;
    }
    return did;
  }

  private async qgroups(): Promise<QgroupRow[]> {
    const r = await this.run.run(['btrfs', 'qgroup', 'show', '--raw', '-re', this.mountpoint], { mutating: false });
    return parseQgroups(r.stdout);
  }

  /** Creates missing volumes and fixes limits. Invalid entries are reported and change nothing. */
  async apply(desired: DesiredVolume[]): Promise<StorageResult> {
    const res: StorageResult = { changes: 0, ready: new Set(), events: [], errors: [] };
    const valid = desired.filter((v) => {
      const p = validateVolume(v);
      if (p.length) res.errors.push({ subject: `volume ${keyOf(v)}`, code: 'E_VOLUME_INVALID', message: p.join('; ') });
      return p.length === 0;
    });
    if (valid.length === 0) return res;
    try {
      for (const d of await this.ensurePool()) {
        res.changes++;
        res.events.push({ level: 'info', kind: 'pool.changed', subject: 'pool', message: d });
      }
    } catch (e) {
      for (const v of valid) res.errors.push({ subject: `volume ${keyOf(v)}`, code: (e as ZmeshError).code ?? 'E_POOL', message: `storage pool: ${(e as Error).message}` });
      return res;
    }
    const rows = new Map((await this.qgroups()).map((r) => [r.path, r]));
    const records = new Map(this.store.volumes().map((r) => [r.key, r]));
    for (const v of valid) {
      const key = keyOf(v);
      const subject = `volume ${key}`;
      const sub = subvolumeName(v);
      const path = this.volumePath(v);
      try {
        let rec = records.get(key);
        const row = rows.get(`volumes/${sub}`);
        if (!row || !existsSync(path)) {
          rec = { key, subvolume: sub, size: v.size, state: 'creating', createdAt: this.now().toISOString() };
          this.store.putVolume(rec);
          if (!existsSync(path)) await this.run.run(['btrfs', 'subvolume', 'create', path], { mutating: true });
          await this.run.run(['btrfs', 'qgroup', 'limit', String(v.size), path], { mutating: true });
          this.store.putVolume({ ...rec, state: 'ready' });
          res.ready.add(key);
          res.changes++;
          res.events.push({ level: 'info', kind: 'volume.created', subject, message: `created ${sub} with a limit of ${v.size} bytes`, data: { size: v.size, path } });
          continue;
        }
        if (row.maxReferenced !== v.size) {
          await this.run.run(['btrfs', 'qgroup', 'limit', String(v.size), path], { mutating: true });
          res.changes++;
          res.events.push({ level: 'info', kind: 'volume.resized', subject, message: `limit ${row.maxReferenced ?? 'none'} → ${v.size} bytes`, data: { from: row.maxReferenced, to: v.size } });
        }
        if (!rec || rec.state !== 'ready' || rec.size !== v.size) {
          this.store.putVolume({ key, subvolume: sub, size: v.size, state: 'ready', createdAt: rec?.createdAt ?? this.now().toISOString() });
        }
        res.ready.add(key);
      } catch (e) {
        res.errors.push({ subject, code: (e as ZmeshError).code ?? 'E_VOLUME', message: (e as Error).message });
      }
    }
    return res;
  }

  /** Deletes recorded volumes that are not in `keep` (the desired keys, valid or not). */
  async gc(keep: Set<string>): Promise<StorageResult> {
    const res: StorageResult = { changes: 0, ready: new Set(), events: [], errors: [] };
    const gone = this.store.volumes().filter((r) => !keep.has(r.key));
    if (gone.length === 0) return res;
    try {
      await this.ensurePool();
    } catch (e) {
      for (const r of gone) res.errors.push({ subject: `volume ${r.key}`, code: 'E_POOL', message: `storage pool: ${(e as Error).message}` });
      return res;
    }
    let deleted = 0;
    for (const r of gone) {
      const subject = `volume ${r.key}`;
      const path = join(this.mountpoint, 'volumes', r.subvolume);
      try {
        this.store.putVolume({ ...r, state: 'deleting' });
        if (existsSync(path)) {
          await this.run.run(['btrfs', 'subvolume', 'delete', '--commit-after', path], { mutating: true, timeoutMs: 120_000 });
          deleted++;
        }
        this.store.deleteVolume(r.key);
        res.changes++;
        res.events.push({ level: 'info', kind: 'volume.deleted', subject, message: `deleted ${r.subvolume}: no blueprint has it any more` });
      } catch (e) {
        res.errors.push({ subject, code: 'E_VOLUME_DELETE', message: (e as Error).message });
      }
    }
    if (deleted) await this.run.run(['btrfs', 'qgroup', 'clear-stale', this.mountpoint], { mutating: true, okCodes: [0, 1] }).catch(() => undefined);
    return res;
  }

  /** Every recorded volume and every orphan subvolume, with usage (reads only; the pool is not mounted for it). */
  async views(desired: DesiredVolume[], mountedBy: Map<string, string[]>): Promise<VolumeView[]> {
    const rows = this.mounted() ? await this.qgroups().catch(() => []) : [];
    const byPath = new Map(rows.map((r) => [r.path, r]));
    const records = new Map(this.store.volumes().map((r) => [r.key, r]));
    const want = new Map(desired.map((d) => [keyOf(d), d]));
    const out: VolumeView[] = [];
    const keys = new Set([...want.keys(), ...records.keys()]);
    for (const r of rows) {
      const k = r.path.startsWith('volumes/') ? keyFromSubvolume(r.path.slice('volumes/'.length)) : null;
      if (k) keys.add(k);
    }
    for (const key of [...keys].sort()) {
      const [tenant, blueprint, name] = key.split('/');
      const d = want.get(key);
      const rec = records.get(key);
      const sub = rec?.subvolume ?? subvolumeName({ tenant, blueprint, name });
      const row = byPath.get(`volumes/${sub}`);
      const state: VolumeView['state'] = !rec && !d ? 'orphan' : rec?.state === 'deleting' ? 'deleting' : row ? 'ready' : rec?.state === 'creating' ? 'creating' : 'missing';
      out.push({
        tenant,
        blueprint,
        name,
        node: d?.node ?? '',
        size: d?.size ?? rec?.size ?? 0,
        used: row?.referenced ?? null,
        limit: row?.maxReferenced ?? null,
        state,
        path: join(this.mountpoint, 'volumes', sub),
        mountedBy: mountedBy.get(key) ?? [],
      });
    }
    return out;
  }

  /** Unmounts the pool (its loop device goes with it). The image and the data stay. */
  async close(): Promise<void> {
    if (!this.mounted()) return;
    await this.run.run(['umount', this.mountpoint], { mutating: true, timeoutMs: 60_000 });
    this.quotaChecked = false;
  }
}
