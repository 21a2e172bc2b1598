// The lab spec (YAML): nodes (public, or hidden behind a named NAT router), NAT routers, per-node underlay
// shaping, tenants with their blueprints (networks, and workloads and volumes run by the nodes' agents on a
// private Docker engine per node), and access devices. Documented in labs/README.md.
// Parsing is pure but for the injected file reader (blueprint files are named relative to the spec).
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseYamlDocument } from '../src/yaml.ts';
import { parseDuration } from '../src/units.ts';
import { loadBlueprintOrSigned, validateBlueprint, type Blueprint } from '../src/blueprint/index.ts';
import { ValidationError, ZmeshError, unknownField, type Problem } from '../src/errors.ts';
import { parseCidr } from '../topology/cidr.ts';
import { BASE_IMAGE } from '../runtime/image.ts';

/** Images a lab's engines have: the offline base image (runtime/image.ts), imported into every engine. */
export const LAB_IMAGES = [BASE_IMAGE, BASE_IMAGE.replace(/:latest$/, '')];

export const LAB_NAME_RE = /^[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?$/;
const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export interface Shaping {
  /** One-way delay added on the node's underlay egress, in ms. */
  delayMs?: number;
  /** Packet loss on the node's underlay egress, in percent (0–100). */
  lossPct?: number;
  /** Egress rate limit in kbit/s (tc tbf). */
  rateKbit?: number;
}

export interface NodeSpec {
  name: string;
  /** The NAT router the node hides behind; undefined: a public node on the internet. */
  nat?: string;
  shaping: Shaping;
}

export interface NatSpec {
  name: string;
  /** LAN range; default: the next free /27 of 198.51.100.0/24. */
  lan?: string;
  /**
   * cone (default): one public port per inside socket whatever the destination (Linux masquerade keeps the
   * port), so two cone NATs let a direct path through; symmetric: a new random port per destination
   * (masquerade random), where a direct path fails and the pair stays relayed. Neither hairpins.
   */
  type: 'cone' | 'symmetric';
}

export interface TenantSpec {
  name: string;
  /** Tenant ed25519 secret key file (as `zmesh keygen tenant` writes it); default: generated in the lab dir. */
  keyFile?: string;
  blueprints: { source: string; blueprint: Blueprint }[];
}

export interface DeviceSpec {
  name: string;
  tenant: string;
  /** The blueprint holding the network (needed only when the tenant has several with that network name). */
  blueprint?: string;
  network: string;
  /** Behind this NAT router; undefined: on the internet. */
  nat?: string;
}

/** The lab internet's families (labs/README.md "IPv6 underlay"): ipv4 (default), ipv6 only, or both. */
export type Underlay = 'ipv4' | 'ipv6' | 'dual';
export const UNDERLAYS: Underlay[] = ['ipv4', 'ipv6', 'dual'];

export interface LabOptions {
  reconcileIntervalMs: number;
  convergeTimeoutMs: number;
  logLevel: string;
}

export interface LabSpec {
  name: string;
  nodes: NodeSpec[];
  nats: NatSpec[];
  tenants: TenantSpec[];
  devices: DeviceSpec[];
  options: LabOptions;
  /** `embedded` (default): the lab pushes plans over admin sockets; `etcd`: a 3-member etcd cluster and a
   *  controller in the lab (labs/etcd.ts). */
  controlPlane: 'embedded' | 'etcd';
  /** ipv4 (default): as before; ipv6: the internet, NAT routers (NAT66) and endpoints are IPv6 only; dual: both,
   *  public nodes dialled at IPv4. */
  underlay: Underlay;
}

type Raw = Record<string, unknown>;
const isObj = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);

/** "20ms", "1s", 20 → ms. */
export function parseDelay(v: unknown): number | null {
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 10000) return Math.round(v);
  if (typeof v !== 'string') return null;
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s)?$/.exec(v.trim());
  if (!m) return null;
  const ms = Number(m[1]) * (m[2] === 's' ? 1000 : 1);
  return ms <= 10000 ? Math.round(ms) : null;
}

/** "1%", "0.5", 3 → percent. */
export function parseLoss(v: unknown): number | null {
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v.trim().replace(/%$/, '')) : NaN;
  return Number.isFinite(n) && n >= 0 && n <= 100 ? n : null;
}

/** "10mbit", "500kbit", "1gbit" → kbit/s. */
export function parseRate(v: unknown): number | null {
  if (typeof v !== 'string') return null;
  const m = /^(\d+(?:\.\d+)?)\s*(kbit|mbit|gbit)$/i.exec(v.trim());
  if (!m) return null;
  const k = Number(m[1]) * { kbit: 1, mbit: 1000, gbit: 1_000_000 }[m[2].toLowerCase() as 'kbit'];
  return k >= 8 ? Math.round(k) : null;
}

function durationOr(v: unknown, dflt: number): number | null {
  return v === undefined ? dflt : parseDuration(v);
}

export interface ParseSpecOptions {
  /** Directory blueprint file names are relative to. */
  baseDir: string;
  readFile: (path: string) => string;
  /** Overrides the spec's name. */
  name?: string;
}

/** Parses and validates a lab spec; every problem at once. */
export function parseLabSpec(text: string, opts: ParseSpecOptions): LabSpec {
  const problems: Problem[] = [];
  const bad = (code: string, path: string, message: string, hint: string) => problems.push({ code, path, message, hint });
  const raw = parseYamlDocument(text, 'lab spec');
  if (!isObj(raw)) throw new ValidationError([{ code: 'E_TYPE', path: '', message: 'a lab spec is a YAML mapping', hint: 'see labs/README.md' }], 'lab spec');
  for (const k of Object.keys(raw)) {
    if (!['name', 'nodes', 'nats', 'tenants', 'devices', 'options', 'controlPlane', 'underlay'].includes(k)) problems.push(unknownField(k, k, ['name', 'nodes', 'nats', 'tenants', 'devices', 'options', 'controlPlane', 'underlay'], 'labs/README.md'));
  }
  const name = opts.name ?? raw.name;
  if (typeof name !== 'string' || !LAB_NAME_RE.test(name)) {
    bad('E_LAB_NAME', 'name', 'the lab name is a DNS label of at most 20 characters', 'set `name:` in the spec or pass --name');
  }
  const list = (k: string): unknown[] => {
    const v = raw[k] ?? [];
    if (!Array.isArray(v)) {
      bad('E_TYPE', k, `${k} is a list`, `write ${k}: [...]`);
      return [];
    }
    return v;
  };

  const nats: NatSpec[] = [];
  list('nats').forEach((n, i) => {
    const at = `nats[${i}]`;
    if (!isObj(n) || typeof n.name !== 'string' || !LABEL.test(n.name)) return bad('E_NAME_FORMAT', at, 'a NAT router has a name (DNS label)', 'write {name: home}');
    for (const k of Object.keys(n)) if (!['name', 'lan', 'type'].includes(k)) problems.push(unknownField(`${at}.${k}`, k, ['name', 'lan', 'type'], 'labs/README.md'));
    if (n.type !== undefined && n.type !== 'cone' && n.type !== 'symmetric') bad('E_NAT_TYPE', `${at}.type`, `type ${JSON.stringify(n.type)} is not cone or symmetric`, 'write type: cone (the default) or type: symmetric');
    if (n.lan !== undefined) {
      const c = typeof n.lan === 'string' ? parseCidr(n.lan) : null;
      if (!c || c.prefix > 29 || c.prefix < 16) bad('E_CIDR', `${at}.lan`, 'lan is an IPv4 CIDR from /16 to /29', 'e.g. 198.51.100.0/27');
    }
    nats.push({ name: n.name, lan: typeof n.lan === 'string' ? n.lan : undefined, type: n.type === 'symmetric' ? 'symmetric' : 'cone' });
  });

  const shapingOf = (v: unknown, at: string): Shaping => {
    if (v === undefined) return {};
    if (!isObj(v)) {
      bad('E_TYPE', at, 'shaping is a mapping {delay, loss, rate}', 'e.g. shaping: {delay: 20ms, loss: 1%, rate: 10mbit}');
      return {};
    }
    const s: Shaping = {};
    for (const k of Object.keys(v)) if (!['delay', 'loss', 'rate'].includes(k)) problems.push(unknownField(`${at}.${k}`, k, ['delay', 'loss', 'rate'], 'labs/README.md'));
    if (v.delay !== undefined) {
      const d = parseDelay(v.delay);
      if (d === null) bad('E_SHAPING', `${at}.delay`, 'delay is a duration up to 10 s', 'e.g. 20ms');
      else if (d > 0) s.delayMs = d;
    }
    if (v.loss !== undefined) {
      const l = parseLoss(v.loss);
      if (l === null) bad('E_SHAPING', `${at}.loss`, 'loss is a percentage', 'e.g. 1%');
      else if (l > 0) s.lossPct = l;
    }
    if (v.rate !== undefined) {
      const r = parseRate(v.rate);
      if (r === null) bad('E_SHAPING', `${at}.rate`, 'rate is like 10mbit, 500kbit or 1gbit', 'e.g. 10mbit');
      else s.rateKbit = r;
    }
    return s;
  };

  const natNames = new Set(nats.map((n) => n.name));
  const nodes: NodeSpec[] = [];
  list('nodes').forEach((n, i) => {
    const at = `nodes[${i}]`;
    if (!isObj(n) || typeof n.name !== 'string' || !LABEL.test(n.name)) return bad('E_NAME_FORMAT', at, 'a node has a name (DNS label)', 'write {name: node-a}');
    for (const k of Object.keys(n)) if (!['name', 'nat', 'shaping'].includes(k)) problems.push(unknownField(`${at}.${k}`, k, ['name', 'nat', 'shaping'], 'labs/README.md'));
    if (n.nat !== undefined && (typeof n.nat !== 'string' || !natNames.has(n.nat))) bad('E_NAT_UNKNOWN', `${at}.nat`, `no NAT router ${String(n.nat)} in nats`, 'list it under nats');
    nodes.push({ name: n.name, nat: typeof n.nat === 'string' ? n.nat : undefined, shaping: shapingOf(n.shaping, `${at}.shaping`) });
  });
  if (nodes.length === 0) bad('E_NO_NODES', 'nodes', 'a lab has at least one node', 'list nodes');

  const tenants: TenantSpec[] = [];
  list('tenants').forEach((t, i) => {
    const at = `tenants[${i}]`;
    if (!isObj(t) || typeof t.name !== 'string' || !LABEL.test(t.name)) return bad('E_NAME_FORMAT', at, 'a tenant has a name (DNS label)', 'write {name: acme, blueprints: [...]}');
    for (const k of Object.keys(t)) if (!['name', 'key', 'blueprints'].includes(k)) problems.push(unknownField(`${at}.${k}`, k, ['name', 'key', 'blueprints'], 'labs/README.md'));
    const tenant: TenantSpec = { name: t.name, blueprints: [] };
    if (t.key !== undefined) {
      if (typeof t.key !== 'string' || !t.key) bad('E_TYPE', `${at}.key`, 'key is a file name', 'name the tenant key file, or leave it out');
      else tenant.keyFile = isAbsolute(t.key) ? t.key : resolve(opts.baseDir, t.key);
    }
    const bps = Array.isArray(t.blueprints) ? t.blueprints : [];
    if (!Array.isArray(t.blueprints) || bps.length === 0) bad('E_TYPE', `${at}.blueprints`, 'a tenant has a list of blueprints', 'list blueprint files or inline blueprints');
    bps.forEach((b: unknown, j: number) => {
      const bat = `${at}.blueprints[${j}]`;
      try {
        let bp: Blueprint;
        let source: string;
        if (typeof b === 'string' || (isObj(b) && typeof b.file === 'string' && Object.keys(b).length === 1)) {
          const file = typeof b === 'string' ? b : (b.file as string);
          const path = isAbsolute(file) ? file : resolve(opts.baseDir, file);
          source = path;
          bp = loadBlueprintOrSigned(opts.readFile(path), { what: path }).blueprint;
        } else if (isObj(b)) {
          source = 'inline';
          bp = validateBlueprint({ version: 1, ...b, tenant: b.tenant ?? t.name }, { what: bat });
        } else {
          bad('E_TYPE', bat, 'a blueprint is a file name or an inline blueprint', 'see labs/README.md');
          return;
        }
        if (bp.tenant !== t.name) bad('E_TENANT_MISMATCH', bat, `blueprint ${bp.name} belongs to tenant ${bp.tenant}, not ${t.name}`, 'list it under its own tenant');
        if (tenant.blueprints.some((x) => x.blueprint.name === bp.name)) bad('E_DUPLICATE', bat, `tenant ${t.name} has two blueprints named ${bp.name}`, 'rename one');
        tenant.blueprints.push({ source, blueprint: bp });
      } catch (e) {
        if (e instanceof ZmeshError) for (const p of e.problems) bad(p.code, `${bat}${p.path ? '.' + p.path : ''}`, p.message, p.hint);
        else bad('E_BLUEPRINT_FILE', bat, (e as Error).message, 'check the file name (relative to the spec)');
      }
    });
    tenants.push(tenant);
  });

  const devices: DeviceSpec[] = [];
  list('devices').forEach((d, i) => {
    const at = `devices[${i}]`;
    if (!isObj(d) || typeof d.name !== 'string' || !LABEL.test(d.name)) return bad('E_NAME_FORMAT', at, 'a device has a name (DNS label)', 'write {name: laptop, tenant: acme, network: backend}');
    for (const k of Object.keys(d)) if (!['name', 'tenant', 'blueprint', 'network', 'nat'].includes(k)) problems.push(unknownField(`${at}.${k}`, k, ['name', 'tenant', 'blueprint', 'network', 'nat'], 'labs/README.md'));
    const tenant = tenants.find((t) => t.name === d.tenant);
    if (!tenant) return bad('E_TENANT_UNKNOWN', `${at}.tenant`, `no tenant ${String(d.tenant)}`, 'name a tenant of this lab');
    if (d.nat !== undefined && (typeof d.nat !== 'string' || !natNames.has(d.nat))) bad('E_NAT_UNKNOWN', `${at}.nat`, `no NAT router ${String(d.nat)} in nats`, 'list it under nats');
    const holders = tenant.blueprints.filter(
      (b) =>
        (d.blueprint === undefined || b.blueprint.name === d.blueprint) &&
        b.blueprint.networks.some((n) => n.name === d.network && n.access.some((a) => a.name === d.name && !a.publicKey)),
    );
    if (holders.length !== 1) {
      return bad(
        'E_DEVICE_NETWORK',
        at,
        holders.length === 0
          ? `no blueprint of ${tenant.name} has network ${String(d.network)} listing access device ${d.name} (without a publicKey)`
          : `several blueprints of ${tenant.name} have network ${String(d.network)} with device ${d.name}`,
        holders.length === 0 ? 'add {name: <device>} under the network’s access list (the planner then makes its key)' : 'name the blueprint with `blueprint:`',
      );
    }
    devices.push({ name: d.name, tenant: tenant.name, blueprint: holders[0].blueprint.name, network: d.network as string, nat: typeof d.nat === 'string' ? d.nat : undefined });
  });

  const seen = new Map<string, string>();
  for (const [kind, names] of [
    ['node', nodes.map((n) => n.name)],
    ['device', devices.map((d) => d.name)],
    ['nat', nats.map((n) => n.name)],
  ] as const) {
    for (const n of names) {
      if (seen.has(`${kind}:${n}`)) bad('E_DUPLICATE', kind, `two ${kind}s are named ${n}`, 'names are unique');
      seen.set(`${kind}:${n}`, kind);
    }
  }
  for (const n of nodes.map((x) => x.name)) if (devices.some((d) => d.name === n)) bad('E_DUPLICATE', 'devices', `${n} is both a node and a device`, 'rename one');
  const nodeNames = new Set(nodes.map((n) => n.name));
  for (const t of tenants) {
    for (const b of t.blueprints) {
      for (const net of b.blueprint.networks) {
        for (const nn of net.nodes) if (!nodeNames.has(nn)) bad('E_NODE_UNKNOWN', `tenants.${t.name}.${b.blueprint.name}.${net.name}`, `network ${net.name} spans node ${nn}, which the lab does not have`, 'add the node or remove it from the network');
      }
      b.blueprint.workloads.forEach((w, i) => {
        if (!LAB_IMAGES.includes(w.image)) {
          bad('E_LAB_IMAGE', `tenants.${t.name}.${b.blueprint.name}.workloads[${i}].image`, `a lab engine has only ${BASE_IMAGE} (no registry), not ${w.image}`, `use image: ${BASE_IMAGE} (busybox: sh, httpd, nc, …)`);
        }
      });
    }
  }

  const o = isObj(raw.options) ? raw.options : {};
  if (raw.options !== undefined && !isObj(raw.options)) bad('E_TYPE', 'options', 'options is a mapping', 'see labs/README.md');
  for (const k of Object.keys(o)) if (!['reconcileInterval', 'convergeTimeout', 'logLevel'].includes(k)) problems.push(unknownField(`options.${k}`, k, ['reconcileInterval', 'convergeTimeout', 'logLevel'], 'labs/README.md'));
  const reconcileIntervalMs = durationOr(o.reconcileInterval, 10000);
  const convergeTimeoutMs = durationOr(o.convergeTimeout, 120000);
  if (reconcileIntervalMs === null) bad('E_DURATION', 'options.reconcileInterval', 'a duration like 10s', 'e.g. 10s');
  if (convergeTimeoutMs === null) bad('E_DURATION', 'options.convergeTimeout', 'a duration like 90s', 'e.g. 90s');
  const logLevel = typeof o.logLevel === 'string' ? o.logLevel : 'info';

  const controlPlane = raw.controlPlane ?? 'embedded';
  if (controlPlane !== 'embedded' && controlPlane !== 'etcd') bad('E_TYPE', 'controlPlane', 'controlPlane is embedded or etcd', 'write controlPlane: etcd');
  const underlay = raw.underlay ?? 'ipv4';
  if (!UNDERLAYS.includes(underlay as Underlay)) bad('E_TYPE', 'underlay', `underlay ${JSON.stringify(underlay)} is not ipv4, ipv6 or dual`, 'write underlay: ipv6 (or dual; ipv4 is the default)');
  else if (underlay === 'ipv6' && controlPlane === 'etcd') {
    bad('E_LAB_UNDERLAY', 'underlay', 'controlPlane: etcd needs IPv4 on the lab internet (its members listen on 203.0.113.1)', 'write underlay: dual, or leave controlPlane out');
  }
  if (problems.length) throw new ValidationError(problems, 'lab spec');
  return {
    controlPlane: controlPlane as 'embedded' | 'etcd',
    underlay: underlay as Underlay,
    name: name as string,
    nodes,
    nats,
    tenants,
    devices,
    options: { reconcileIntervalMs: reconcileIntervalMs!, convergeTimeoutMs: convergeTimeoutMs!, logLevel },
  };
}

/** Nodes that host a workload or a volume of some blueprint: they get a Docker engine. */
export function workloadNodes(spec: LabSpec): Set<string> {
  const out = new Set<string>();
  for (const t of spec.tenants) {
    for (const { blueprint } of t.blueprints) {
      for (const w of blueprint.workloads) out.add(w.node);
      for (const v of blueprint.volumes) out.add(v.node);
    }
  }
  return out;
}

export function loadLabSpec(file: string, readFile: (p: string) => string, name?: string): LabSpec {
  return parseLabSpec(readFile(file), { baseDir: dirname(resolve(file)), readFile, name });
}
