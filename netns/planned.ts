// What the driver remembers between applies: per network, the endpoint the plan named for each peer at the last
// apply that configured it. It tells a re-planned endpoint (the plan changed: it wins at once) from a roamed one
// (the plan did not change: the roam window decides; netns/diff.ts endpointDecision). Kept in
// <stateDir>/endpoints/<id>.json (0600) so that an agent restart remembers it; on /run it ends with the
// namespaces it describes (a reboot). A missing or unreadable file is an empty memory: the roam window alone
// decides, as before this memory existed.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isNetworkId } from './names.ts';

const MAX_FILE_BYTES = 4 * 1024 * 1024;

export type Planned = ReadonlyMap<string, string | null>;

function sameMap(a: Planned, b: Planned): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (!b.has(k) || b.get(k) !== v) return false;
  return true;
}

/** Parses a memory file: `{"<public key>": "ip:port" | null, …}`; anything else is an empty memory. */
export function parsePlanned(text: string): Map<string, string | null> {
  const out = new Map<string, string | null>();
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return out;
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) return out;
  for (const [k, e] of Object.entries(v as Record<string, unknown>)) {
    if (typeof e === 'string' || e === null) out.set(k, e);
  }
  return out;
}

/** The file text for a memory: keys sorted, so the same memory is the same text. */
export function formatPlanned(m: Planned): string {
  const o: Record<string, string | null> = {};
  for (const k of [...m.keys()].sort()) o[k] = m.get(k)!;
  return JSON.stringify(o) + '\n';
}

export class PlannedEndpoints {
  private readonly cache = new Map<string, Planned>();

  /** `dir`: where the files go (<stateDir>/endpoints); null keeps the memory in this process only. */
  constructor(private readonly dir: string | null) {}

  private file(id: string): string | null {
    return this.dir && isNetworkId(id) ? join(this.dir, `${id}.json`) : null;
  }

  /** The remembered endpoints of network `id` (empty when none). */
  get(id: string): Planned {
    let m = this.cache.get(id);
    if (m) return m;
    m = new Map();
    const f = this.file(id);
    if (f) {
      try {
        const text = readFileSync(f, 'utf8');
        if (text.length <= MAX_FILE_BYTES) m = parsePlanned(text);
      } catch {
        /* none yet */
      }
    }
    this.cache.set(id, m);
    return m;
  }

  /** Remembers `m` for network `id`; writes the file only when it changed (a no-op apply writes nothing). */
  set(id: string, m: Planned): void {
    if (sameMap(this.get(id), m)) return;
    this.cache.set(id, new Map(m));
    const f = this.file(id);
    if (!f || !this.dir) return;
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      const tmp = `${f}.tmp`;
      writeFileSync(tmp, formatPlanned(m), { mode: 0o600 });
      renameSync(tmp, f);
    } catch {
      // Not persisted: this process still remembers; after a restart the roam window alone decides.
    }
  }

  /** Forgets network `id` (removed). */
  forget(id: string): void {
    this.cache.delete(id);
    const f = this.file(id);
    if (f) rmSync(f, { force: true });
  }

  /** Forgets every network not in `keep` (files left by networks removed while no driver ran). */
  prune(keep: ReadonlySet<string>): void {
    for (const id of [...this.cache.keys()]) if (!keep.has(id)) this.cache.delete(id);
    if (!this.dir) return;
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return;
    }
    for (const n of names) {
      const id = /^([a-z0-9]{10})\.json(?:\.tmp)?$/.exec(n)?.[1];
      if (id && !keep.has(id)) rmSync(join(this.dir, n), { force: true });
    }
  }
}
