// Validation and normalization: unknown input → Blueprint (defaults filled, sizes in bytes, input order kept),
// or a ValidationError that lists every problem found, each with a code, a path, a message and a hint.
import { Key } from '../crypto/keys.ts';
import { ValidationError, unknownField, type Problem } from '../errors.ts';
import { problem, type BlueprintCode } from './codes.ts';
import { cidrContainsIp, cidrsOverlap, formatCidr, parseCidr, parseIPv4, type Cidr } from '../../topology/cidr.ts';
import { cidr6Contains, cidr6ContainsIp, cidrs6Overlap, compareCidr6, formatCidr6, formatIPv6, parseCidr6, parseIPv6, ULA, type Cidr6 } from '../../topology/cidr6.ts';
import type { AccessSpec, Blueprint, NetworkPolicy, NetworkSpec, PolicyRule, VolumeSpec, WorkloadSpec, WorkloadVolume } from './types.ts';
import { isGroupName, MAX_GROUPS, MAX_POLICY_RULES, MAX_RULE_ITEMS, parsePort, parseSelector } from './policy.ts';
import { MiB, formatSize, parseSize } from './units.ts';

export const MAX_ARRAY_ITEMS = 10_000;
export const MIN_RANGE_PREFIX = 8;
export const MAX_RANGE_PREFIX = 22;
export const MAX_SUBNET_PREFIX = 29;
export const DEFAULT_SUBNET_PREFIX = 24;
/** A network's ipv6Range: a /48 to /56 inside fc00::/7 (docs/blueprint-format.md#ipv6). */
export const MIN_RANGE6_PREFIX = 48;
export const MAX_RANGE6_PREFIX = 56;
export const DEFAULT_CPU = 1;
export const MAX_CPU = 256;
export const DEFAULT_MEMORY = 256 * MiB;
export const MIN_MEMORY = 4 * MiB;
export const MIN_VOLUME_SIZE = 1 * MiB;
/** A workload's disk limit (its container's writable layer, image files included) when the blueprint names none. */
export const DEFAULT_DISK = 1024 * MiB;
/** Smallest disk limit: the base image and a little room to write. */
export const MIN_DISK = 16 * MiB;
/** Ranges no tenant network may overlap: "this" network, loopback, link-local, multicast, reserved. */
export const RESERVED_RANGES: ReadonlyArray<{ cidr: string; what: string }> = [
  { cidr: '0.0.0.0/8', what: '"this network" (RFC 1122)' },
  { cidr: '127.0.0.0/8', what: 'loopback' },
  { cidr: '169.254.0.0/16', what: 'link-local (and the nodes\' egress links)' },
  { cidr: '224.0.0.0/4', what: 'multicast' },
  { cidr: '240.0.0.0/4', what: 'reserved (and broadcast)' },
];
/** Mount targets the container engine owns: a volume there is refused by runc, or hides what the kernel shows. */
export const RESERVED_MOUNT_ROOTS = ['/proc', '/dev', '/sys'] as const;
/** Files the engine itself mounts into every container. */
export const RESERVED_MOUNT_FILES = ['/etc/hosts', '/etc/hostname', '/etc/resolv.conf'] as const;
const RESERVED = RESERVED_RANGES.map((r) => ({ cidr: parseCidr(r.cidr)!, text: r.cidr, what: r.what }));
/** The nodes' IPv6 egress links (netns/ip.ts EGRESS6_PREFIX): no ipv6Range may hold it. */
export const RESERVED_RANGE6 = 'fc00:5a::/96';
const RESERVED6 = parseCidr6(RESERVED_RANGE6, true)!;
const MAX_IMAGE_LENGTH = 512;
const MAX_PATH_LENGTH = 4096;

const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const IMAGE_RE = /^[A-Za-z0-9][A-Za-z0-9._\-/:@]*$/;
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

type Raw = Record<string, unknown>;

/** Path of a member: "a.b", "a[2]", a["odd key"]. */
export function joinPath(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  if (IDENT.test(key)) return path ? `${path}.${key}` : key;
  const shown = key.length > 64 ? `${key.slice(0, 61)}...` : key;
  return `${path}[${JSON.stringify(shown)}]`;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'number') return Number.isFinite(v) ? `the number ${v}` : String(v);
  if (typeof v === 'string') return 'a string';
  if (typeof v === 'object') return 'a mapping';
  return `a ${typeof v}`;
}

class Checker {
  readonly problems: Problem[] = [];

  add(code: BlueprintCode, path: string, message: string, hint?: string): void {
    this.problems.push(problem(code, path, message, hint));
  }

  /** A mapping with only the allowed fields; unknown ones are reported. Null when not a mapping. */
  object(v: unknown, path: string, allowed: readonly string[]): Raw | null {
    if (v === undefined) {
      this.add('E_REQUIRED', path, 'missing');
      return null;
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      this.add('E_TYPE', path, `expected a mapping, got ${describe(v)}`);
      return null;
    }
    for (const k of Object.keys(v)) {
      if (!allowed.includes(k)) {
        this.problems.push(unknownField(joinPath(path, k), k, allowed, 'docs/blueprint-format.md'));
      }
    }
    return v as Raw;
  }

  /** A list (default when absent and a default is given). Null when unusable. */
  array(v: unknown, path: string, dflt?: unknown[]): unknown[] | null {
    if (v === undefined) {
      if (dflt) return dflt;
      this.add('E_REQUIRED', path, 'missing');
      return null;
    }
    if (!Array.isArray(v)) {
      this.add('E_TYPE', path, `expected a list, got ${describe(v)}`);
      return null;
    }
    if (v.length > MAX_ARRAY_ITEMS) {
      this.add('E_TOO_LARGE', path, `has ${v.length} items; the limit is ${MAX_ARRAY_ITEMS}`);
      return null;
    }
    return v;
  }

  string(v: unknown, path: string): string | null {
    if (v === undefined) {
      this.add('E_REQUIRED', path, 'missing');
      return null;
    }
    if (typeof v !== 'string') {
      this.add('E_TYPE', path, `expected a string, got ${describe(v)}`);
      return null;
    }
    if (LONE_SURROGATE.test(v)) {
      this.add('E_TYPE', path, 'the string is not valid Unicode (lone surrogate)');
      return null;
    }
    return v;
  }

  label(v: unknown, path: string, what = 'name'): string | null {
    const s = this.string(v, path);
    if (s === null) return null;
    if (!DNS_LABEL.test(s)) {
      this.add('E_NAME_FORMAT', path, `${JSON.stringify(s.slice(0, 70))} is not a valid ${what} (DNS label)`);
      return null;
    }
    return s;
  }

  number(v: unknown, path: string): number | null {
    if (v === undefined) {
      this.add('E_REQUIRED', path, 'missing');
      return null;
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      this.add('E_TYPE', path, `expected a finite number, got ${describe(v)}`);
      return null;
    }
    return v;
  }

  boolean(v: unknown, path: string, dflt: boolean): boolean | null {
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean') {
      this.add('E_TYPE', path, `expected true or false, got ${describe(v)}`);
      return null;
    }
    return v;
  }

  size(v: unknown, path: string, min: number, minText: string, dflt?: number): number | null {
    if (v === undefined) {
      if (dflt !== undefined) return dflt;
      this.add('E_REQUIRED', path, 'missing');
      return null;
    }
    const r = parseSize(v);
    if (!r.ok) {
      this.add(r.kind === 'type' ? 'E_TYPE' : r.kind === 'range' ? 'E_SIZE_RANGE' : 'E_SIZE_FORMAT', path, r.message);
      return null;
    }
    if (r.bytes < min) {
      this.add('E_SIZE_RANGE', path, `${formatSize(r.bytes)} is below the minimum of ${minText}`);
      return null;
    }
    return r.bytes;
  }

  /** Reports the second and later occurrences of a value. */
  unique(items: Array<{ value: string | null | undefined; path: string }>, code: BlueprintCode, what: string): void {
    const seen = new Map<string, string>();
    for (const { value, path } of items) {
      if (value === null || value === undefined) continue;
      const first = seen.get(value);
      if (first !== undefined) this.add(code, path, `${what} ${JSON.stringify(value)} is already used at ${first}`);
      else seen.set(value, path);
    }
  }
}

function get(o: Raw, k: string): unknown {
  return Object.hasOwn(o, k) ? o[k] : undefined;
}

const TOP_FIELDS = ['tenant', 'name', 'version', 'networks', 'workloads', 'volumes'] as const;
const NETWORK_FIELDS = ['name', 'ipRange', 'subnetPrefix', 'ipv6Range', 'ipv6', 'nodes', 'access', 'egress', 'egressIpv6', 'policy'] as const;
const ACCESS_FIELDS = ['name', 'publicKey', 'egress', 'groups'] as const;
const WORKLOAD_FIELDS = ['name', 'node', 'image', 'command', 'network', 'cpu', 'memory', 'disk', 'volumes', 'groups'] as const;
const POLICY_FIELDS = ['default', 'rules'] as const;
const RULE_FIELDS = ['from', 'to', 'ports'] as const;
const WORKLOAD_NETWORK_FIELDS = ['name', 'ip', 'ip6'] as const;
const MOUNT_FIELDS = ['name', 'mount'] as const;
const VOLUME_FIELDS = ['name', 'node', 'size'] as const;

/** What validation learned about one network, for the cross-checks. */
interface NetworkFacts {
  index: number;
  spec: NetworkSpec | null;
  name: string | null;
  /** The range when it is fully valid (format, prefix, host bits), and its text. */
  range: Cidr | null;
  rangeText: string;
  /** IPv6: false when the network is IPv4-only (or its IPv6 fields are bad); the blueprint's ipv6Range when valid. */
  dual: boolean;
  range6: Cidr6 | null;
  nodes: Set<string>;
  /** Named selectors of the policy, checked against the workloads once they are known. */
  policyRefs: { kind: 'workload' | 'device' | 'node' | 'group'; name: string; path: string }[];
  /** Device name → its groups. */
  deviceGroups: Map<string, string[]>;
}

/** groups: a list of distinct DNS labels (at most MAX_GROUPS); undefined when absent or empty, null when bad. */
function checkGroups(c: Checker, v: unknown, path: string): string[] | undefined | null {
  if (v === undefined) return undefined;
  const list = c.array(v, path);
  if (!list) return null;
  if (list.length > MAX_GROUPS) {
    c.add('E_GROUP_FORMAT', path, `${list.length} groups; at most ${MAX_GROUPS}`);
    return null;
  }
  let ok = true;
  const seen = new Set<string>();
  list.forEach((g, i) => {
    if (!isGroupName(g)) {
      c.add('E_GROUP_FORMAT', joinPath(path, i), `${typeof g === 'string' ? JSON.stringify(g.slice(0, 70)) : describe(g)} is not a group name (DNS label)`);
      ok = false;
    } else if (seen.has(g)) {
      c.add('E_GROUP_FORMAT', joinPath(path, i), `group ${JSON.stringify(g)} is listed twice`);
      ok = false;
    } else seen.add(g);
  });
  if (!ok) return null;
  return list.length ? (list as string[]) : undefined;
}

/** A list of strings for a policy rule: required, non-empty, bounded. */
function ruleList(c: Checker, v: unknown, path: string): string[] | null {
  const list = c.array(v, path);
  if (!list) return null;
  if (list.length === 0) {
    c.add('E_REQUIRED', path, 'needs at least one entry');
    return null;
  }
  if (list.length > MAX_RULE_ITEMS) {
    c.add('E_POLICY_TOO_MANY', path, `${list.length} entries; at most ${MAX_RULE_ITEMS}`);
    return null;
  }
  const out = list.map((x, i) => c.string(x, joinPath(path, i)));
  return out.every((x) => x !== null) ? (out as string[]) : null;
}

/** The policy's shape, selectors and ports; named selectors are returned for the cross-check. */
function checkPolicy(c: Checker, v: unknown, path: string, range: Cidr | null, rangeText: string, refs: NetworkFacts['policyRefs']): NetworkPolicy | null | undefined {
  if (v === undefined) return undefined;
  const o = c.object(v, path, POLICY_FIELDS);
  if (!o) return null;
  const dPath = joinPath(path, 'default');
  const dRaw = get(o, 'default');
  let dflt: 'allow' | 'deny' | null = 'deny';
  if (dRaw !== undefined) {
    if (dRaw !== 'allow' && dRaw !== 'deny') {
      c.add('E_POLICY_DEFAULT', dPath, `${typeof dRaw === 'string' ? JSON.stringify(dRaw.slice(0, 40)) : describe(dRaw)} is not allow or deny`);
      dflt = null;
    } else dflt = dRaw;
  }
  const rPath = joinPath(path, 'rules');
  const rulesRaw = c.array(get(o, 'rules'), rPath, []);
  if (rulesRaw && rulesRaw.length > MAX_POLICY_RULES) {
    c.add('E_POLICY_TOO_MANY', rPath, `${rulesRaw.length} rules; at most ${MAX_POLICY_RULES}`);
    return null;
  }
  let ok = dflt !== null && rulesRaw !== null;
  const rules: PolicyRule[] = [];
  (rulesRaw ?? []).forEach((r, i) => {
    const rp = joinPath(rPath, i);
    const ro = c.object(r, rp, RULE_FIELDS);
    if (!ro) {
      ok = false;
      return;
    }
    const sides: Record<'from' | 'to', string[] | null> = { from: null, to: null };
    for (const side of ['from', 'to'] as const) {
      const sp = joinPath(rp, side);
      const list = ruleList(c, get(ro, side), sp);
      if (!list) {
        ok = false;
        continue;
      }
      list.forEach((text, j) => {
        const sel = parseSelector(text);
        if ('error' in sel) {
          c.add(sel.error, joinPath(sp, j), sel.message);
          ok = false;
        } else if (sel.kind === 'cidr') {
          if (range && !(sel.cidr.prefix >= range.prefix && cidrContainsIp(range, sel.cidr.base))) {
            c.add('E_POLICY_CIDR', joinPath(sp, j), `${sel.text} is not inside the network range ${rangeText}`);
            ok = false;
          }
        } else if (sel.kind !== 'any' && sel.kind !== 'cidr6') refs.push({ kind: sel.kind, name: sel.name, path: joinPath(sp, j) });
      });
      sides[side] = list;
    }
    const pp = joinPath(rp, 'ports');
    const ports = ruleList(c, get(ro, 'ports'), pp);
    if (!ports) ok = false;
    else {
      ports.forEach((text, j) => {
        const port = parsePort(text);
        if ('error' in port) {
          c.add(port.error, joinPath(pp, j), port.message);
          ok = false;
        }
      });
    }
    if (sides.from && sides.to && ports) rules.push({ from: sides.from, to: sides.to, ports });
  });
  return ok ? { default: dflt!, rules } : null;
}

function checkNetwork(c: Checker, v: unknown, path: string, index: number): NetworkFacts {
  const facts: NetworkFacts = { index, spec: null, name: null, range: null, rangeText: '', dual: false, range6: null, nodes: new Set(), policyRefs: [], deviceGroups: new Map() };
  const o = c.object(v, path, NETWORK_FIELDS);
  if (!o) return facts;
  const name = c.label(get(o, 'name'), joinPath(path, 'name'));
  facts.name = name;

  const rangePath = joinPath(path, 'ipRange');
  const rangeText = c.string(get(o, 'ipRange'), rangePath);
  let range: Cidr | null = null;
  if (rangeText !== null) {
    // Not strict: host bits set get an error of their own, with the range they probably meant.
    const cidr = parseCidr(rangeText, false);
    if (!cidr) {
      c.add('E_CIDR_FORMAT', rangePath, `${JSON.stringify(rangeText.slice(0, 40))} is not an IPv4 CIDR like 10.20.0.0/16`);
    } else if (cidr.prefix < MIN_RANGE_PREFIX || cidr.prefix > MAX_RANGE_PREFIX) {
      c.add('E_RANGE_PREFIX', rangePath, `/${cidr.prefix} is outside /${MIN_RANGE_PREFIX} to /${MAX_RANGE_PREFIX}`);
    } else if (parseIPv4(rangeText.slice(0, rangeText.indexOf('/'))) !== cidr.base) {
      const fixed = formatCidr(cidr);
      c.add('E_RANGE_HOST_BITS', rangePath, `${rangeText} has host bits set; did you mean ${fixed}?`, `write ${fixed}`);
    } else if (RESERVED.some((r) => cidrsOverlap(r.cidr, cidr))) {
      const r = RESERVED.find((x) => cidrsOverlap(x.cidr, cidr))!;
      c.add('E_RANGE_RESERVED', rangePath, `${rangeText} overlaps ${r.text}, ${r.what}: no tenant network can use it`);
    } else {
      range = cidr;
      facts.rangeText = rangeText;
    }
  }
  facts.range = range;

  const spPath = joinPath(path, 'subnetPrefix');
  const spRaw = get(o, 'subnetPrefix');
  let subnetPrefix: number | null = DEFAULT_SUBNET_PREFIX;
  if (spRaw !== undefined) subnetPrefix = c.number(spRaw, spPath);
  if (subnetPrefix !== null) {
    const lowest = range ? range.prefix + 1 : MIN_RANGE_PREFIX + 1;
    if (!Number.isInteger(subnetPrefix) || subnetPrefix < lowest || subnetPrefix > MAX_SUBNET_PREFIX) {
      c.add('E_SUBNET_PREFIX', spPath,
        `${subnetPrefix} must be an integer from ${lowest} to ${MAX_SUBNET_PREFIX}` +
          (range ? ` (longer than the range's /${range.prefix})` : ''));
      subnetPrefix = null;
    }
  }

  // IPv6: dual-stack unless `ipv6: false`. Present in the normalized form only when given (ipv6Range, canonical
  // text) or false (ipv6), so envelopes signed before IPv6 still verify; `ipv6: true` is the default, left out.
  const v6Path = joinPath(path, 'ipv6');
  const ipv6 = c.boolean(get(o, 'ipv6'), v6Path, true);
  const r6Path = joinPath(path, 'ipv6Range');
  const r6Raw = get(o, 'ipv6Range');
  let range6Text: string | null | undefined;
  if (r6Raw !== undefined) {
    range6Text = c.string(r6Raw, r6Path);
    if (range6Text !== null) {
      const cidr = parseCidr6(range6Text, false);
      const exact = parseCidr6(range6Text, true);
      if (!cidr) {
        c.add('E_IPV6_RANGE', r6Path, `${JSON.stringify(range6Text.slice(0, 60))} is not an IPv6 CIDR like fd12:3456:789a::/48`);
        range6Text = null;
      } else if (cidr.prefix < MIN_RANGE6_PREFIX || cidr.prefix > MAX_RANGE6_PREFIX) {
        c.add('E_IPV6_RANGE', r6Path, `/${cidr.prefix} is outside /${MIN_RANGE6_PREFIX} to /${MAX_RANGE6_PREFIX}`);
        range6Text = null;
      } else if (!exact) {
        const fixed = formatCidr6(cidr);
        c.add('E_RANGE_HOST_BITS', r6Path, `${range6Text} has host bits set; did you mean ${fixed}?`, `write ${fixed}`);
        range6Text = null;
      } else if (!cidr6Contains(ULA, cidr)) {
        c.add('E_IPV6_RANGE', r6Path, `${range6Text} is not a unique local range (inside fc00::/7)`);
        range6Text = null;
      } else if (cidrs6Overlap(cidr, RESERVED6)) {
        c.add('E_IPV6_RANGE', r6Path, `${range6Text} holds ${RESERVED_RANGE6}, the nodes' IPv6 egress links: no tenant network can use it`, 'pick another range, e.g. a derived one (leave ipv6Range out)');
        range6Text = null;
      } else {
        range6Text = formatCidr6(cidr);
        facts.range6 = cidr;
      }
    }
    if (ipv6 === false) {
      c.add('E_IPV6_OFF', r6Path, 'a network with ipv6: false has no ipv6Range', 'remove ipv6Range, or ipv6: false');
      range6Text = null;
    }
  }
  facts.dual = ipv6 !== false;

  const nodesPath = joinPath(path, 'nodes');
  const nodesRaw = c.array(get(o, 'nodes'), nodesPath);
  let nodes: string[] | null = null;
  if (nodesRaw) {
    if (nodesRaw.length === 0) c.add('E_REQUIRED', nodesPath, 'needs at least one node');
    const list = nodesRaw.map((n, i) => c.label(n, joinPath(nodesPath, i), 'node id'));
    const seen = new Set<string>();
    list.forEach((n, i) => {
      if (n === null) return;
      if (seen.has(n)) c.add('E_DUPLICATE_NODE', joinPath(nodesPath, i), `node ${JSON.stringify(n)} is listed twice`);
      seen.add(n);
    });
    facts.nodes = seen;
    if (nodesRaw.length > 0 && list.every((n) => n !== null)) nodes = list as string[];
  }

  const accessPath = joinPath(path, 'access');
  const accessRaw = c.array(get(o, 'access'), accessPath, []);
  let access: AccessSpec[] | null = null;
  const egressDevices: string[] = [];
  if (accessRaw) {
    const names: Array<{ value: string | null; path: string }> = [];
    const keys: Array<{ value: string | null; path: string }> = [];
    const list = accessRaw.map((a, i): AccessSpec | null => {
      const ap = joinPath(accessPath, i);
      const ao = c.object(a, ap, ACCESS_FIELDS);
      if (!ao) return null;
      const aname = c.label(get(ao, 'name'), joinPath(ap, 'name'));
      names.push({ value: aname, path: joinPath(ap, 'name') });
      const pkRaw = get(ao, 'publicKey');
      let pk: string | null | undefined;
      if (pkRaw !== undefined) {
        const kp = joinPath(ap, 'publicKey');
        pk = c.string(pkRaw, kp);
        if (pk !== null && !Key.isValid(pk)) {
          c.add('E_KEY_FORMAT', kp, 'is not a WireGuard public key (44 characters of base64 for 32 bytes)');
          pk = null;
        }
        keys.push({ value: pk, path: kp });
      }
      // Present in the normalized form only when true, so envelopes signed before the field existed still verify.
      const devEgress = c.boolean(get(ao, 'egress'), joinPath(ap, 'egress'), false);
      if (devEgress) egressDevices.push(joinPath(ap, 'egress'));
      const groups = checkGroups(c, get(ao, 'groups'), joinPath(ap, 'groups'));
      if (aname !== null && groups) facts.deviceGroups.set(aname, groups);
      if (aname === null || pk === null || devEgress === null || groups === null) return null;
      const dev: AccessSpec = pk === undefined ? { name: aname } : { name: aname, publicKey: pk };
      if (devEgress) dev.egress = true;
      if (groups) dev.groups = groups;
      return dev;
    });
    c.unique(names, 'E_DUPLICATE_NAME', 'access device name');
    c.unique(keys, 'E_DUPLICATE_KEY', 'public key');
    if (list.every((a) => a !== null)) access = list as AccessSpec[];
  }

  if (range && subnetPrefix !== null && nodesRaw && accessRaw) {
    const subnets = 2 ** (subnetPrefix - range.prefix);
    const needed = nodesRaw.length + accessRaw.length;
    if (subnets < needed) {
      c.add('E_RANGE_TOO_SMALL', rangePath,
        `${rangeText} has ${subnets} subnets of /${subnetPrefix}, but ${needed} are needed (${nodesRaw.length} nodes + ${accessRaw.length} access devices)`);
    }
  }

  const egress = c.boolean(get(o, 'egress'), joinPath(path, 'egress'), false);
  if (egress === false) {
    for (const at of egressDevices) {
      c.add('E_DEVICE_EGRESS', at, 'an access device can have egress only on a network with egress: true', 'set the network\'s egress: true, or remove the device\'s');
    }
  }
  const e6Path = joinPath(path, 'egressIpv6');
  const egressIpv6 = c.boolean(get(o, 'egressIpv6'), e6Path, false);
  if (egressIpv6 === true && egress === false) c.add('E_EGRESS_IPV6', e6Path, 'IPv6 egress needs the network\'s egress: true', 'set egress: true, or remove egressIpv6');
  else if (egressIpv6 === true && ipv6 === false) c.add('E_EGRESS_IPV6', e6Path, 'a network with ipv6: false has no IPv6 to let out', 'remove egressIpv6, or ipv6: false');
  const policy = checkPolicy(c, get(o, 'policy'), joinPath(path, 'policy'), range, rangeText ?? '', facts.policyRefs);
  if (name !== null && range && rangeText !== null && subnetPrefix !== null && nodes && access && egress !== null && policy !== null && ipv6 !== null && range6Text !== null) {
    const spec: NetworkSpec = {
      name,
      ipRange: rangeText,
      subnetPrefix,
      ...(range6Text !== undefined ? { ipv6Range: range6Text } : {}),
      ...(ipv6 === false ? { ipv6: false as const } : {}),
      nodes,
      access,
      egress,
      ...(egressIpv6 === true ? { egressIpv6: true as const } : {}),
    };
    if (policy) spec.policy = policy;
    facts.spec = spec;
  }
  return facts;
}

interface WorkloadFacts {
  spec: WorkloadSpec | null;
  name: string | null;
  node: string | null;
  network: string | null;
  ip: number | null;
  ipText: string | null;
  /** The blueprint's ip6 when valid, and its canonical text. */
  ip6: bigint | null;
  ip6Text: string | null;
  mounts: Array<{ volume: string | null; path: string }>;
  groups: string[];
}

function checkMountPath(c: Checker, v: unknown, path: string): string | null {
  const s = c.string(v, path);
  if (s === null) return null;
  const segments = s.split('/').slice(1);
  const ok = s.startsWith('/') && s.length <= MAX_PATH_LENGTH && !s.includes('\0') &&
    segments.every((seg) => seg !== '' && seg !== '.' && seg !== '..');
  if (!ok) {
    c.add('E_MOUNT_PATH', path, `${JSON.stringify(s.slice(0, 80))} is not an absolute path without "..", "." or empty segments`);
    return null;
  }
  const root = RESERVED_MOUNT_ROOTS.find((r) => s === r || s.startsWith(`${r}/`));
  if (root !== undefined || (RESERVED_MOUNT_FILES as readonly string[]).includes(s)) {
    c.add('E_MOUNT_RESERVED', path, `${JSON.stringify(s.slice(0, 80))} is ${root ? `${root} or below` : 'a file'}, which the container engine owns`);
    return null;
  }
  return s;
}

function checkWorkload(c: Checker, v: unknown, path: string): WorkloadFacts {
  const facts: WorkloadFacts = { spec: null, name: null, node: null, network: null, ip: null, ipText: null, ip6: null, ip6Text: null, mounts: [], groups: [] };
  const o = c.object(v, path, WORKLOAD_FIELDS);
  if (!o) return facts;
  const name = (facts.name = c.label(get(o, 'name'), joinPath(path, 'name')));
  const node = (facts.node = c.label(get(o, 'node'), joinPath(path, 'node'), 'node id'));

  const imagePath = joinPath(path, 'image');
  let image = c.string(get(o, 'image'), imagePath);
  if (image !== null && (image.length === 0 || image.length > MAX_IMAGE_LENGTH || !IMAGE_RE.test(image))) {
    c.add('E_IMAGE', imagePath, `${JSON.stringify(image.slice(0, 80))} is not a docker image reference`);
    image = null;
  }

  const cmdPath = joinPath(path, 'command');
  const cmdRaw = c.array(get(o, 'command'), cmdPath, []);
  let command: string[] | null = null;
  if (cmdRaw) {
    const list = cmdRaw.map((a, i) => {
      const s = c.string(a, joinPath(cmdPath, i));
      if (s !== null && s.includes('\0')) {
        c.add('E_COMMAND', joinPath(cmdPath, i), 'contains a NUL character');
        return null;
      }
      return s;
    });
    if (list.every((s) => s !== null)) command = list as string[];
  }

  const netPath = joinPath(path, 'network');
  const no = c.object(get(o, 'network'), netPath, WORKLOAD_NETWORK_FIELDS);
  let network: WorkloadSpec['network'] | null = null;
  if (no) {
    const nname = (facts.network = c.label(get(no, 'name'), joinPath(netPath, 'name')));
    const ipRaw = get(no, 'ip');
    let ipOk = true;
    if (ipRaw !== undefined) {
      const ipPath = joinPath(netPath, 'ip');
      const ipText = c.string(ipRaw, ipPath);
      const ip = ipText === null ? null : parseIPv4(ipText);
      if (ipText !== null && ip === null) {
        c.add('E_WORKLOAD_IP', ipPath, `${JSON.stringify(ipText.slice(0, 40))} is not an IPv4 address`);
      }
      facts.ip = ip;
      facts.ipText = ip === null ? null : ipText;
      ipOk = ip !== null;
    }
    const ip6Raw = get(no, 'ip6');
    if (ip6Raw !== undefined) {
      const ip6Path = joinPath(netPath, 'ip6');
      const ip6Text = c.string(ip6Raw, ip6Path);
      const ip6 = ip6Text === null ? null : parseIPv6(ip6Text);
      if (ip6Text !== null && ip6 === null) {
        c.add('E_WORKLOAD_IP6', ip6Path, `${JSON.stringify(ip6Text.slice(0, 60))} is not an IPv6 address`);
      }
      facts.ip6 = ip6;
      // Normalized to the canonical text (RFC 5952), as the plan writes it.
      facts.ip6Text = ip6 === null ? null : formatIPv6(ip6);
      if (ip6 === null) ipOk = false;
    }
    if (nname !== null && ipOk) {
      network = facts.ipText === null ? { name: nname } : { name: nname, ip: facts.ipText };
      if (facts.ip6Text !== null) network.ip6 = facts.ip6Text;
    }
  }

  const cpuPath = joinPath(path, 'cpu');
  const cpuRaw = get(o, 'cpu');
  let cpu: number | null = DEFAULT_CPU;
  if (cpuRaw !== undefined) {
    cpu = c.number(cpuRaw, cpuPath);
    if (cpu !== null && !(cpu > 0 && cpu <= MAX_CPU)) {
      c.add('E_CPU', cpuPath, `${cpu} is not in (0, ${MAX_CPU}]`);
      cpu = null;
    }
  }

  const memory = c.size(get(o, 'memory'), joinPath(path, 'memory'), MIN_MEMORY, '4Mi', DEFAULT_MEMORY);
  // Left out of the normalized form when absent (the node applies DEFAULT_DISK), so envelopes signed before
  // the field existed still verify.
  const diskRaw = get(o, 'disk');
  const disk = diskRaw === undefined ? undefined : c.size(diskRaw, joinPath(path, 'disk'), MIN_DISK, '16Mi');

  const volPath = joinPath(path, 'volumes');
  const volRaw = c.array(get(o, 'volumes'), volPath, []);
  let volumes: WorkloadVolume[] | null = null;
  if (volRaw) {
    const names: Array<{ value: string | null; path: string }> = [];
    const mounts: Array<{ value: string | null; path: string }> = [];
    const list = volRaw.map((m, i): WorkloadVolume | null => {
      const mp = joinPath(volPath, i);
      const mo = c.object(m, mp, MOUNT_FIELDS);
      if (!mo) return null;
      const vname = c.label(get(mo, 'name'), joinPath(mp, 'name'));
      const mount = checkMountPath(c, get(mo, 'mount'), joinPath(mp, 'mount'));
      names.push({ value: vname, path: joinPath(mp, 'name') });
      mounts.push({ value: mount, path: joinPath(mp, 'mount') });
      facts.mounts.push({ volume: vname, path: joinPath(mp, 'name') });
      return vname === null || mount === null ? null : { name: vname, mount };
    });
    c.unique(names, 'E_DUPLICATE_NAME', 'volume');
    c.unique(mounts, 'E_DUPLICATE_MOUNT', 'mount path');
    if (list.every((m) => m !== null)) volumes = list as WorkloadVolume[];
  }

  const groups = checkGroups(c, get(o, 'groups'), joinPath(path, 'groups'));
  facts.groups = groups ?? [];
  if (name !== null && node !== null && image !== null && command && network && cpu !== null && memory !== null && disk !== null && volumes && groups !== null) {
    facts.spec = disk === undefined ? { name, node, image, command, network, cpu, memory, volumes } : { name, node, image, command, network, cpu, memory, disk, volumes };
    if (groups) facts.spec.groups = groups;
  }
  return facts;
}

function checkVolume(c: Checker, v: unknown, path: string): { spec: VolumeSpec | null; name: string | null; node: string | null } {
  const o = c.object(v, path, VOLUME_FIELDS);
  if (!o) return { spec: null, name: null, node: null };
  const name = c.label(get(o, 'name'), joinPath(path, 'name'));
  const node = c.label(get(o, 'node'), joinPath(path, 'node'), 'node id');
  const size = c.size(get(o, 'size'), joinPath(path, 'size'), MIN_VOLUME_SIZE, '1Mi');
  return { spec: name !== null && node !== null && size !== null ? { name, node, size } : null, name, node };
}

/** Reports pairs of overlapping ranges (CIDRs overlap only by containment; one sorted sweep finds them). */
function checkOverlaps(c: Checker, nets: NetworkFacts[]): void {
  const valid = nets.filter((n) => n.range !== null);
  valid.sort((a, b) => a.range!.base - b.range!.base || a.range!.prefix - b.range!.prefix || a.index - b.index);
  let holder: NetworkFacts | null = null;
  let holderEnd = -1;
  const reported: Array<[number, number]> = [];
  for (const n of valid) {
    const r = n.range!;
    if (holder && cidrsOverlap(holder.range!, r)) {
      reported.push([Math.min(holder.index, n.index), Math.max(holder.index, n.index)]);
    }
    const end = r.base + 2 ** (32 - r.prefix) - 1;
    if (end > holderEnd) {
      holder = n;
      holderEnd = end;
    }
  }
  reported.sort((a, b) => a[1] - b[1] || a[0] - b[0]);
  for (const [i, j] of reported) {
    c.add('E_RANGE_OVERLAP', `networks[${j}].ipRange`,
      `${nets[j].rangeText} overlaps networks[${i}].ipRange ${nets[i].rangeText}`);
  }
}

/** Reports pairs of overlapping ipv6Ranges the blueprint gives (derived ULAs are per network and do not collide). */
function checkOverlaps6(c: Checker, nets: NetworkFacts[]): void {
  const valid = nets.filter((n) => n.range6 !== null).sort((a, b) => compareCidr6(a.range6!, b.range6!) || a.index - b.index);
  const reported: Array<[number, number]> = [];
  let holder: NetworkFacts | null = null;
  for (const n of valid) {
    if (holder && cidrs6Overlap(holder.range6!, n.range6!)) reported.push([Math.min(holder.index, n.index), Math.max(holder.index, n.index)]);
    if (!holder || !cidr6Contains(holder.range6!, n.range6!)) holder = n;
  }
  reported.sort((a, b) => a[1] - b[1] || a[0] - b[0]);
  for (const [i, j] of reported) {
    c.add('E_RANGE_OVERLAP', `networks[${j}].ipv6Range`, `${formatCidr6(nets[j].range6!)} overlaps networks[${i}].ipv6Range ${formatCidr6(nets[i].range6!)}`);
  }
}

export interface ValidateOptions {
  /** What the input is, for the error message. Default "blueprint". */
  what?: string;
}

/**
 * Validates and normalizes a parsed blueprint. Returns a fresh object (defaults filled, sizes in bytes,
 * lists in input order) or throws ValidationError listing every problem found.
 */
export function validateBlueprint(raw: unknown, opts: ValidateOptions = {}): Blueprint {
  const c = new Checker();
  const o = c.object(raw, '', TOP_FIELDS);
  if (!o) throw new ValidationError(c.problems, opts.what ?? 'blueprint');

  const tenant = c.label(get(o, 'tenant'), 'tenant', 'tenant name');
  const name = c.label(get(o, 'name'), 'name');
  let version = c.number(get(o, 'version'), 'version');
  if (version !== null && !(Number.isSafeInteger(version) && version >= 1)) {
    c.add('E_VERSION', 'version', `${version} is not an integer from 1 to ${Number.MAX_SAFE_INTEGER}`);
    version = null;
  }

  const netsRaw = c.array(get(o, 'networks'), 'networks');
  const nets = (netsRaw ?? []).map((n, i) => checkNetwork(c, n, `networks[${i}]`, i));
  c.unique(nets.map((n, i) => ({ value: n.name, path: `networks[${i}].name` })), 'E_DUPLICATE_NAME', 'network');
  checkOverlaps(c, nets);
  checkOverlaps6(c, nets);
  const netByName = new Map<string, NetworkFacts>();
  for (const n of nets) if (n.name !== null && !netByName.has(n.name)) netByName.set(n.name, n);

  const volsRaw = c.array(get(o, 'volumes'), 'volumes', []);
  const vols = (volsRaw ?? []).map((v, i) => checkVolume(c, v, `volumes[${i}]`));
  c.unique(vols.map((v, i) => ({ value: v.name, path: `volumes[${i}].name` })), 'E_DUPLICATE_NAME', 'volume');
  const volByName = new Map<string, { node: string | null }>();
  for (const v of vols) if (v.name !== null && !volByName.has(v.name)) volByName.set(v.name, v);

  const wlsRaw = c.array(get(o, 'workloads'), 'workloads', []);
  const wls = (wlsRaw ?? []).map((w, i) => checkWorkload(c, w, `workloads[${i}]`));
  c.unique(wls.map((w, i) => ({ value: w.name, path: `workloads[${i}].name` })), 'E_DUPLICATE_NAME', 'workload');

  // Cross-references: the workload's network, its node in that network, its ip in that range, its volumes.
  const taken = new Map<string, string>();
  wls.forEach((w, i) => {
    const path = `workloads[${i}]`;
    const net = w.network === null ? undefined : netByName.get(w.network);
    if (w.network !== null && !net) {
      c.add('E_WORKLOAD_NETWORK', `${path}.network.name`, `network ${JSON.stringify(w.network)} is not defined in this blueprint`);
    }
    if (net && w.node !== null && net.nodes.size > 0 && !net.nodes.has(w.node)) {
      c.add('E_WORKLOAD_NODE', `${path}.node`, `node ${JSON.stringify(w.node)} is not one of network ${JSON.stringify(net.name)}'s nodes`);
    }
    if (net && net.range && w.ip !== null) {
      const ipPath = `${path}.network.ip`;
      if (!cidrContainsIp(net.range, w.ip)) {
        c.add('E_WORKLOAD_IP', ipPath, `${w.ipText} is outside network ${JSON.stringify(net.name)}'s range ${net.rangeText}`);
      } else {
        const key = `${net.name}\n${w.ip}`;
        const first = taken.get(key);
        if (first !== undefined) c.add('E_WORKLOAD_IP_TAKEN', ipPath, `${w.ipText} is already asked for at ${first}`);
        else taken.set(key, ipPath);
      }
    }
    if (net && w.ip6 !== null) {
      const ip6Path = `${path}.network.ip6`;
      if (!net.dual) {
        c.add('E_IPV6_OFF', ip6Path, `network ${JSON.stringify(net.name)} has ipv6: false`, 'remove ip6, or ipv6: false');
      } else if (net.range6 && !cidr6ContainsIp(net.range6, w.ip6)) {
        c.add('E_WORKLOAD_IP6', ip6Path, `${w.ip6Text} is outside network ${JSON.stringify(net.name)}'s ipv6Range ${formatCidr6(net.range6)}`);
      } else {
        const key = `${net.name}\n6\n${w.ip6}`;
        const first = taken.get(key);
        if (first !== undefined) c.add('E_WORKLOAD_IP_TAKEN', ip6Path, `${w.ip6Text} is already asked for at ${first}`);
        else taken.set(key, ip6Path);
      }
    }
    for (const m of w.mounts) {
      if (m.volume === null) continue;
      const vol = volByName.get(m.volume);
      if (!vol) c.add('E_VOLUME_UNKNOWN', m.path, `volume ${JSON.stringify(m.volume)} is not defined in this blueprint`);
      else if (vol.node !== null && w.node !== null && vol.node !== w.node) {
        c.add('E_VOLUME_NODE', m.path, `volume ${JSON.stringify(m.volume)} is on node ${JSON.stringify(vol.node)}, the workload on ${JSON.stringify(w.node)}`);
      }
    }
  });

  // Policies: every named selector refers to something in its own network.
  for (const n of nets) {
    if (!n.policyRefs.length || n.name === null) continue;
    const workloads = new Set(wls.filter((w) => w.network === n.name && w.name !== null).map((w) => w.name!));
    const groups = new Set<string>([...wls.filter((w) => w.network === n.name).flatMap((w) => w.groups), ...[...n.deviceGroups.values()].flat()]);
    const devices = new Set(n.spec?.access.map((a) => a.name) ?? []);
    for (const r of n.policyRefs) {
      const known = r.kind === 'workload' ? workloads : r.kind === 'device' ? devices : r.kind === 'node' ? n.nodes : groups;
      if (!known.has(r.name)) {
        const where = r.kind === 'workload' ? 'no workload of this network' : r.kind === 'device' ? 'no access device of this network' : r.kind === 'node' ? 'not a node of this network' : 'no workload or device of this network has it';
        c.add('E_POLICY_REF', r.path, `${r.kind} ${JSON.stringify(r.name)}: ${where}`);
      }
    }
  }

  if (c.problems.length > 0) throw new ValidationError(c.problems, opts.what ?? 'blueprint');
  return {
    tenant: tenant!,
    name: name!,
    version: version!,
    networks: nets.map((n) => n.spec!),
    workloads: wls.map((w) => w.spec!),
    volumes: vols.map((v) => v.spec!),
  };
}
