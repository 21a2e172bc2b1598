// An independent checker for accepted blueprints: a second, deliberately plain reading of the rules in
// docs/blueprint-format.md. The validator may accept a case only if this checker agrees it is valid.
import type { Blueprint } from '../../src/blueprint/types.ts';

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

function ipv4(s: unknown): number | null {
  if (typeof s !== 'string') return null;
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  let n = 0;
  for (const p of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255) return null;
    n = n * 256 + Number(p);
  }
  return n;
}

function cidr(s: unknown): { base: number; prefix: number } | null {
  if (typeof s !== 'string' || s.split('/').length !== 2) return null;
  const [a, p] = s.split('/');
  const base = ipv4(a);
  if (base === null || !/^(0|[1-9]\d?)$/.test(p) || Number(p) > 32) return null;
  return { base, prefix: Number(p) };
}

/** Returns why the blueprint is invalid, or null when it is valid. */
export function independentCheck(bp: Blueprint): string | null {
  if (!LABEL.test(bp.tenant) || !LABEL.test(bp.name)) return 'tenant/name not DNS labels';
  if (!Number.isSafeInteger(bp.version) || bp.version < 1) return 'bad version';
  const seenNet = new Set<string>();
  const ranges: { base: number; size: number }[] = [];
  for (const n of bp.networks) {
    if (!LABEL.test(n.name) || seenNet.has(n.name)) return `bad or duplicate network name ${n.name}`;
    seenNet.add(n.name);
    const c = cidr(n.ipRange);
    if (!c || c.prefix < 8 || c.prefix > 22) return `bad range ${n.ipRange}`;
    const size = 2 ** (32 - c.prefix);
    if (c.base % size !== 0) return `host bits in ${n.ipRange}`;
    if (!Number.isInteger(n.subnetPrefix) || n.subnetPrefix <= c.prefix || n.subnetPrefix > 29) return 'bad subnetPrefix';
    if (n.nodes.length === 0 || new Set(n.nodes).size !== n.nodes.length || !n.nodes.every((x) => LABEL.test(x))) return 'bad nodes';
    const names = n.access.map((a) => a.name);
    if (new Set(names).size !== names.length || !names.every((x) => LABEL.test(x))) return 'bad access names';
    for (const a of n.access) if (a.publicKey !== undefined && !/^[A-Za-z0-9+/]{43}=$/.test(a.publicKey)) return 'bad access key';
    for (const a of n.access) if (a.egress !== undefined && (a.egress !== true || n.egress !== true)) return 'access egress not true, or on a network without egress';
    if (n.nodes.length + n.access.length > 2 ** (n.subnetPrefix - c.prefix)) return 'range too small';
    for (const r of ranges) if (c.base < r.base + r.size && r.base < c.base + size) return 'overlapping ranges';
    ranges.push({ base: c.base, size });
    if (typeof n.egress !== 'boolean') return 'egress not boolean';
  }
  const vols = new Map<string, string>();
  for (const v of bp.volumes) {
    if (!LABEL.test(v.name) || vols.has(v.name) || !LABEL.test(v.node)) return 'bad volume';
    if (!Number.isSafeInteger(v.size) || v.size < 1024 * 1024) return 'bad volume size';
    vols.set(v.name, v.node);
  }
  const seenW = new Set<string>();
  const ips = new Set<string>();
  for (const w of bp.workloads) {
    if (!LABEL.test(w.name) || seenW.has(w.name)) return 'bad workload name';
    seenW.add(w.name);
    const n = bp.networks.find((x) => x.name === w.network.name);
    if (!n) return 'workload on unknown network';
    if (!n.nodes.includes(w.node)) return 'workload node outside network';
    if (w.network.ip !== undefined) {
      const ip = ipv4(w.network.ip);
      const c = cidr(n.ipRange)!;
      if (ip === null || Math.floor(ip / 2 ** (32 - c.prefix)) !== Math.floor(c.base / 2 ** (32 - c.prefix))) return 'workload ip outside range';
      if (ips.has(`${n.name}/${w.network.ip}`)) return 'workload ip twice';
      ips.add(`${n.name}/${w.network.ip}`);
    }
    if (!(typeof w.cpu === 'number' && w.cpu > 0 && w.cpu <= 256)) return 'bad cpu';
    if (!Number.isSafeInteger(w.memory) || w.memory < 4 * 1024 * 1024) return 'bad memory';
    if (typeof w.image !== 'string' || w.image.length === 0) return 'bad image';
    if (!Array.isArray(w.command) || !w.command.every((x) => typeof x === 'string' && !x.includes('\0'))) return 'bad command';
    const mounts = new Set<string>();
    for (const m of w.volumes) {
      if (vols.get(m.name) !== w.node) return 'volume missing or on another node';
      if (!m.mount.startsWith('/') || m.mount.split('/').includes('..') || mounts.has(m.mount)) return 'bad mount';
      mounts.add(m.mount);
    }
  }
  return null;
}
