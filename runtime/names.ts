// Names, labels and ownership markers of everything the runtime creates. Pure.
//   container  zmesh.<node>.<tenant>.<blueprint>.<workload>   (DNS labels have no dots: unambiguous)
//   labels     zmesh.owner=zmesh, zmesh.node, zmesh.tenant, zmesh.blueprint, zmesh.workload, zmesh.network,
//              zmesh.ip, zmesh.spec (hash of everything that needs a new container when it changes)
//   veth       v-<hash10> in the tenant namespace (alias zmesh-wl:<tenant>/<blueprint>/<workload>), its peer
//              created as c-<hash10> straight in the container's namespace and renamed eth0
//   volume     <tenant>.<blueprint>.<volume>, a subvolume under <pool>/volumes
import { createHash } from 'node:crypto';
import type { DesiredVolume, DesiredWorkload } from './types.ts';

export const OWNER_LABEL = 'zmesh.owner';
export const OWNER_VALUE = 'zmesh';
export const LABELS = {
  node: 'zmesh.node',
  tenant: 'zmesh.tenant',
  blueprint: 'zmesh.blueprint',
  workload: 'zmesh.workload',
  network: 'zmesh.network',
  ip: 'zmesh.ip',
  spec: 'zmesh.spec',
} as const;
/** Alias on the tenant-side veth: our ownership marker (distinct from netns' "zmesh:<id>"). */
export const VETH_MARKER = 'zmesh-wl:';
export const CONTAINER_IF = 'eth0';
/** Smallest disk limit of a workload (the blueprint's MIN_DISK). */
export const MIN_DISK = 16 * 1024 * 1024;

const LABEL_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export function isLabel(s: unknown): s is string {
  return typeof s === 'string' && LABEL_RE.test(s);
}

/** "tenant/blueprint/name": the key of a workload or volume. */
export function keyOf(x: { tenant: string; blueprint: string; name: string }): string {
  return `${x.tenant}/${x.blueprint}/${x.name}`;
}

export function containerName(w: { node: string; tenant: string; blueprint: string; name: string }): string {
  return `zmesh.${w.node}.${w.tenant}.${w.blueprint}.${w.name}`;
}

const B32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** 10 characters [a-z2-7] of SHA-256(text). */
export function hash10(text: string): string {
  const h = createHash('sha256').update(text).digest();
  let bits = 0;
  let acc = 0;
  let out = '';
  for (const byte of h) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < 10) {
      out += B32[(acc >> (bits - 5)) & 31];
      bits -= 5;
    }
    if (out.length >= 10) break;
  }
  return out;
}

export interface VethNames {
  /** In the tenant namespace. */
  host: string;
  /** Created in the container namespace, renamed to eth0. */
  temp: string;
  alias: string;
}

export function vethNames(w: { node: string; tenant: string; blueprint: string; name: string }): VethNames {
  const h = hash10(`zmesh-wl-v1\0${w.node}\0${w.tenant}\0${w.blueprint}\0${w.name}`);
  return { host: `v-${h}`, temp: `c-${h}`, alias: `${VETH_MARKER}${keyOf(w)}` };
}

/** The workload key in a veth alias we wrote, or null. */
export function keyFromAlias(alias: string | null | undefined): string | null {
  if (!alias || !alias.startsWith(VETH_MARKER)) return null;
  const k = alias.slice(VETH_MARKER.length);
  return /^[a-z0-9-]+\/[a-z0-9-]+\/[a-z0-9-]+$/.test(k) ? k : null;
}

export function subvolumeName(v: { tenant: string; blueprint: string; name: string }): string {
  return `${v.tenant}.${v.blueprint}.${v.name}`;
}

export function keyFromSubvolume(name: string): string | null {
  const parts = name.split('.');
  return parts.length === 3 && parts.every(isLabel) ? parts.join('/') : null;
}

/** Bumped when the hardening of containers (engine.ts createOptions) changes: older containers get replaced. */
export const HARDENING = 'h2';  // h2: caps, disk, read-only /etc files

/**
 * Hash of everything that needs a new container when it changes (image, command, limits, mounts, network,
 * address, hardening). Restarts keep the container; a different hash replaces it.
 */
export function specHash(w: DesiredWorkload, mountSources: string[]): string {
  const canon = JSON.stringify([
    HARDENING,
    w.image,
    w.command,
    w.cpu,
    w.memory,
    w.disk,
    w.network.id,
    w.network.ip,
    w.network.prefix,
    w.network.gateway,
    w.mounts.map((m, i) => [m.volume, m.path, mountSources[i] ?? '']),
  ]);
  return createHash('sha256').update(canon).digest('hex').slice(0, 16);
}

export function labelsFor(w: DesiredWorkload, spec: string): Record<string, string> {
  return {
    [OWNER_LABEL]: OWNER_VALUE,
    [LABELS.node]: w.node,
    [LABELS.tenant]: w.tenant,
    [LABELS.blueprint]: w.blueprint,
    [LABELS.workload]: w.name,
    [LABELS.network]: w.network.id,
    [LABELS.ip]: `${w.network.ip}/${w.network.prefix}`,
    [LABELS.spec]: spec,
  };
}

/** The workload key of a container's labels when it is ours and on `node`, else null. */
export function keyFromLabels(labels: Record<string, string> | undefined, node: string): string | null {
  if (!labels || labels[OWNER_LABEL] !== OWNER_VALUE || labels[LABELS.node] !== node) return null;
  const t = labels[LABELS.tenant];
  const b = labels[LABELS.blueprint];
  const n = labels[LABELS.workload];
  return isLabel(t) && isLabel(b) && isLabel(n) ? `${t}/${b}/${n}` : null;
}

/** Checks one desired workload before any side effect; returns problems (empty when fine). */
export function validateWorkload(w: DesiredWorkload): string[] {
  const p: string[] = [];
  for (const [k, v] of [['tenant', w.tenant], ['blueprint', w.blueprint], ['name', w.name], ['node', w.node]] as const) {
    if (!isLabel(v)) p.push(`${k} ${JSON.stringify(v)} is not a DNS label`);
  }
  if (typeof w.image !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._\-/:@]{0,254}$/.test(w.image)) p.push(`image ${JSON.stringify(w.image)} is not an image reference`);
  if (!Array.isArray(w.command) || w.command.some((c) => typeof c !== 'string' || c.includes('\0'))) p.push('command is a list of strings');
  if (!(typeof w.cpu === 'number' && w.cpu > 0 && w.cpu <= 256)) p.push(`cpu ${w.cpu} is not in (0, 256]`);
  if (!(Number.isSafeInteger(w.memory) && w.memory >= 4 * 1024 * 1024)) p.push(`memory ${w.memory} is not a byte count ≥ 4 MiB`);
  if (!(Number.isSafeInteger(w.disk) && w.disk >= MIN_DISK)) p.push(`disk ${w.disk} is not a byte count ≥ 16 MiB`);
  const n = w.network;
  if (!n || !/^[a-z0-9]{10}$/.test(n.id)) p.push(`network id ${JSON.stringify(n?.id)} is not a network id`);
  if (!n || !isIpv4(n.ip)) p.push(`address ${JSON.stringify(n?.ip)} is not an IPv4 address`);
  if (!n || !isIpv4(n.gateway)) p.push(`gateway ${JSON.stringify(n?.gateway)} is not an IPv4 address`);
  if (!n || !Number.isInteger(n.prefix) || n.prefix < 8 || n.prefix > 30) p.push(`prefix ${n?.prefix} is not in 8..30`);
  if (n && isIpv4(n.ip) && isIpv4(n.gateway) && Number.isInteger(n.prefix) && !sameSubnet(n.ip, n.gateway, n.prefix)) p.push(`address ${n.ip} is not in the subnet of gateway ${n.gateway}/${n.prefix}`);
  if (n && n.ip === n.gateway) p.push(`address ${n.ip} is the gateway`);
  const paths = new Set<string>();
  for (const m of w.mounts ?? []) {
    if (!isLabel(m.volume)) p.push(`mount of ${JSON.stringify(m.volume)}: not a volume name`);
    if (typeof m.path !== 'string' || !m.path.startsWith('/') || m.path.split('/').includes('..') || m.path === '/') p.push(`mount path ${JSON.stringify(m.path)} is not an absolute path`);
    else if (/^\/(proc|dev|sys)(\/|$)|^\/etc\/(hosts|hostname|resolv\.conf)$/.test(m.path)) p.push(`mount path ${m.path} is owned by the container engine`);
    if (paths.has(m.path)) p.push(`mount path ${m.path} used twice`);
    paths.add(m.path);
  }
  return p;
}

export function validateVolume(v: DesiredVolume): string[] {
  const p: string[] = [];
  for (const [k, x] of [['tenant', v.tenant], ['blueprint', v.blueprint], ['name', v.name], ['node', v.node]] as const) {
    if (!isLabel(x)) p.push(`${k} ${JSON.stringify(x)} is not a DNS label`);
  }
  if (!(Number.isSafeInteger(v.size) && v.size >= 1024 * 1024)) p.push(`size ${v.size} is not a byte count ≥ 1 MiB`);
  return p;
}

export function isIpv4(s: unknown): s is string {
  if (typeof s !== 'string') return false;
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  return m !== null && m.slice(1).every((x) => Number(x) <= 255 && String(Number(x)) === x);
}

function ipToInt(s: string): number {
  return s.split('.').reduce((a, x) => a * 256 + Number(x), 0);
}

export function sameSubnet(a: string, b: string, prefix: number): boolean {
  const size = 2 ** (32 - prefix);
  return Math.floor(ipToInt(a) / size) === Math.floor(ipToInt(b) / size);
}
