// The agent configuration file (YAML). See docs/agent.md and examples/agent.yaml.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { isIP } from 'node:net';
import { parseYamlDocument, yamlLib } from '../yaml.ts';
import { parseSize } from '../blueprint/units.ts';
import { parseDuration } from '../units.ts';
import { Key } from '../crypto/keys.ts';
import { ValidationError, unknownField, type Problem } from '../errors.ts';
import { isLevel, LEVELS } from '../log.ts';
import { parseEtcdSection, type AgentEtcdConfig } from './etcd-config.ts';
import { checkDnsUpstreams, checkEgressCidrs } from '../../netns/egress.ts';

export interface AgentConfig {
  nodeId: string;
  identityKeyFile: string;
  stateDir: string;
  adminSocket: string;
  /** Optional read-only socket (status, networks, events, metrics) and the group that may use it. */
  readSocket?: string;
  readSocketGroup?: string;
  endpoints: string[];
  wireguardBackend: 'auto' | 'kernel' | 'userspace';
  /** Milliseconds. */
  reconcileIntervalMs: number;
  /** Tenant name → ed25519 public key (base64). */
  trustedTenants: Record<string, string>;
  /** Underlay MTU override; default: the MTU of the host's default-route interface. */
  underlayMtu?: number;
  logLevel: string;
  /** Distributed control plane: register in etcd and take blueprints from it (docs/control-plane.md). */
  etcd?: AgentEtcdConfig;
  /** Docker engine socket for workloads (default /var/run/docker.sock); unreachable is fine without workloads. */
  dockerSocket?: string;
  /** A disk for the storage pool; default: a loop-mounted image in stateDir/storage. */
  storageDevice?: string;
  /** Size of the pool image in bytes (default 10 GiB, sparse). */
  storagePoolSize?: number;
  /** Data-plane tuning of wireguard-go (per build: GOMAXPROCS=1, or raised UDP socket buffers; netns/tuning.ts); default true. */
  dataplaneTuning?: boolean;
  /** The wireguard-go binary (default: wireguard-go on PATH). */
  wireguardGo?: string;
  /** GOMAXPROCS of each wireguard-go (overrides the tuning's; "all": Go's own default, every CPU). */
  wireguardGoMaxProcs?: number | 'all';
  /**
   * Tenants' egress beyond the defaults (docs/agent.md#egress): `allow` opens blocked destinations (the control
   * plane, a LAN resolver, …), `deny` blocks more and wins over `allow`. CIDRs of either family.
   */
  egress?: { allow: string[]; deny: string[]; ipv6?: false };
  /**
   * Resolvers that the DNS of networks with egress forwards other names to (docs/dns.md): IPv4 addresses reached
   * through the network's egress; none (the default): names a network does not serve are NXDOMAIN everywhere.
   */
  dnsUpstreams?: string[];
}

const FIELDS = new Set([
  'nodeId', 'identityKeyFile', 'stateDir', 'adminSocket', 'readSocket', 'readSocketGroup', 'endpoints',
  'wireguardBackend', 'reconcileInterval', 'trustedTenants', 'trustedTenantsFile', 'underlayMtu', 'logLevel', 'etcd',
  'dockerSocket', 'storageDevice', 'storagePoolSize', 'dataplaneTuning', 'wireguardGo', 'wireguardGoMaxProcs', 'egress',
  'dnsUpstreams',
]);
const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export function parseAgentConfig(text: string, baseDir: string, readFile: (p: string) => string = (p) => readFileSync(p, 'utf8')): AgentConfig {
  const problems: Problem[] = [];
  const bad = (code: string, path: string, message: string, hint: string) => problems.push({ code, path, message, hint });
  const raw = parseYamlDocument(text, 'agent config');
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ValidationError([{ code: 'E_TYPE', path: '', message: 'the config is a YAML mapping', hint: 'see examples/agent.yaml' }], 'agent config');
  }
  const c = raw as Record<string, unknown>;
  for (const k of Object.keys(c)) if (!FIELDS.has(k)) problems.push(unknownField(k, k, [...FIELDS], 'docs/agent.md'));
  const path = (v: unknown) => (typeof v === 'string' && v ? (isAbsolute(v) ? v : resolve(baseDir, v)) : '');
  if (typeof c.nodeId !== 'string' || !LABEL.test(c.nodeId)) bad('E_NAME_FORMAT', 'nodeId', 'nodeId is a DNS label', 'use the id the node has in the inventory');
  if (!path(c.identityKeyFile)) bad('E_REQUIRED', 'identityKeyFile', 'identityKeyFile is required', 'name a file; it is generated (0600) on first start');
  if (!path(c.stateDir)) bad('E_REQUIRED', 'stateDir', 'stateDir is required', 'name a directory that survives reboots, e.g. /var/lib/zmesh');
  const endpoints = c.endpoints ?? [];
  if (!Array.isArray(endpoints) || endpoints.some((e) => typeof e !== 'string' || isIP(e) === 0)) {
    bad('E_ENDPOINT', 'endpoints', 'endpoints is a list of IP addresses', 'list the addresses this node is reached at, or none when hidden');
  }
  const backend = c.wireguardBackend ?? 'auto';
  if (!['auto', 'kernel', 'userspace'].includes(backend as string)) bad('E_BACKEND', 'wireguardBackend', 'wireguardBackend is auto, kernel or userspace', 'pick one');
  if (c.logLevel !== undefined && !isLevel(c.logLevel)) bad('E_TYPE', 'logLevel', `logLevel is one of ${Object.keys(LEVELS).join(', ')}`, 'write e.g. logLevel: info');
  const interval = c.reconcileInterval === undefined ? 30000 : parseDuration(c.reconcileInterval);
  if (interval === null) bad('E_DURATION', 'reconcileInterval', 'reconcileInterval is a duration like 30s', 'write e.g. 30s');
  let tenants: Record<string, unknown> = {};
  if (c.trustedTenants !== undefined) {
    if (typeof c.trustedTenants !== 'object' || c.trustedTenants === null || Array.isArray(c.trustedTenants)) {
      bad('E_TYPE', 'trustedTenants', 'trustedTenants maps tenant names to ed25519 public keys', 'write trustedTenants: {acme: <key>}');
    } else tenants = { ...(c.trustedTenants as Record<string, unknown>) };
  }
  if (c.trustedTenantsFile !== undefined) {
    try {
      const more = yamlLib().parse(readFile(path(c.trustedTenantsFile)), { uniqueKeys: true });
      if (typeof more !== 'object' || more === null || Array.isArray(more)) throw new Error('not a mapping');
      Object.assign(tenants, more);
    } catch (e) {
      bad('E_TENANTS_FILE', 'trustedTenantsFile', `cannot read trusted tenants: ${(e as Error).message}`, 'point to a YAML mapping tenant → key');
    }
  }
  for (const [name, key] of Object.entries(tenants)) {
    if (!LABEL.test(name)) bad('E_NAME_FORMAT', `trustedTenants.${name}`, 'tenant names are DNS labels', 'rename');
    if (!Key.isValid(key)) bad('E_KEY_FORMAT', `trustedTenants.${name}`, 'a tenant key is a base64 ed25519 public key', 'use the key `zmesh keygen tenant` printed');
  }
  if (c.underlayMtu !== undefined && (!Number.isInteger(c.underlayMtu) || (c.underlayMtu as number) < 1280 || (c.underlayMtu as number) > 65535)) {
    bad('E_MTU', 'underlayMtu', 'underlayMtu is an integer from 1280 to 65535', 'leave it out to read it from the host');
  }
  if (c.dockerSocket !== undefined && !path(c.dockerSocket)) bad('E_TYPE', 'dockerSocket', 'dockerSocket is the path of the Docker socket', 'e.g. /var/run/docker.sock');
  if (c.storageDevice !== undefined && !(typeof c.storageDevice === 'string' && c.storageDevice.startsWith('/dev/'))) {
    bad('E_STORAGE_DEVICE', 'storageDevice', 'storageDevice is a block device path under /dev', 'leave it out for a pool image in stateDir');
  }
  let poolSize = 10 * 1024 ** 3;
  if (c.storagePoolSize !== undefined) {
    const r = parseSize(c.storagePoolSize);
    if (!r.ok || r.bytes < 128 * 1024 ** 2) bad('E_SIZE', 'storagePoolSize', 'storagePoolSize is a size of at least 128Mi, like 2Gi', 'write e.g. 2Gi');
    else poolSize = r.bytes;
  }
  if (c.dataplaneTuning !== undefined && typeof c.dataplaneTuning !== 'boolean') {
    bad('E_TYPE', 'dataplaneTuning', 'dataplaneTuning is true or false', 'leave it out for the default (true)');
  }
  if (c.wireguardGo !== undefined && !path(c.wireguardGo)) bad('E_TYPE', 'wireguardGo', 'wireguardGo is the path of a wireguard-go binary', 'leave it out for wireguard-go on PATH');
  const mp = c.wireguardGoMaxProcs;
  if (mp !== undefined && mp !== 'all' && !(Number.isInteger(mp) && (mp as number) >= 1 && (mp as number) <= 1024)) {
    bad('E_TYPE', 'wireguardGoMaxProcs', 'wireguardGoMaxProcs is an integer from 1 to 1024, or all', 'leave it out for the tuning\'s choice (1 for batched builds)');
  }
  const etcd = parseEtcdSection(c.etcd, baseDir, problems);
  const egress = parseEgressSection(c.egress, problems);
  if (c.dnsUpstreams !== undefined) {
    for (const b of checkDnsUpstreams(c.dnsUpstreams, egress)) problems.push({ code: 'E_DNS_UPSTREAM', ...b });
  }
  if (problems.length) throw new ValidationError(problems, 'agent config');
  return {
    nodeId: c.nodeId as string,
    identityKeyFile: path(c.identityKeyFile),
    stateDir: path(c.stateDir),
    adminSocket: path(c.adminSocket) || '/run/zmesh/admin.sock',
    readSocket: path(c.readSocket) || undefined,
    readSocketGroup: typeof c.readSocketGroup === 'string' ? c.readSocketGroup : undefined,
    endpoints: endpoints as string[],
    wireguardBackend: backend as AgentConfig['wireguardBackend'],
    reconcileIntervalMs: interval!,
    trustedTenants: tenants as Record<string, string>,
    underlayMtu: c.underlayMtu as number | undefined,
    logLevel: isLevel(c.logLevel) ? c.logLevel : 'info',
    ...(etcd ? { etcd } : {}),
    dockerSocket: path(c.dockerSocket) || '/var/run/docker.sock',
    storageDevice: typeof c.storageDevice === 'string' ? c.storageDevice : undefined,
    storagePoolSize: poolSize,
    dataplaneTuning: c.dataplaneTuning !== false,
    wireguardGo: c.wireguardGo !== undefined ? path(c.wireguardGo) : undefined,
    wireguardGoMaxProcs: mp as AgentConfig['wireguardGoMaxProcs'],
    egress,
    ...(c.dnsUpstreams !== undefined && (c.dnsUpstreams as string[]).length ? { dnsUpstreams: [...(c.dnsUpstreams as string[])] } : {}),
  };
}

/**
 * The `egress:` section: `{allow: [CIDR…], deny: [CIDR…], ipv6: bool}`, all optional (`ipv6: false`: no network
 * gets IPv6 egress on this node; docs/agent.md#egress). Problems go to `problems`.
 */
export function parseEgressSection(raw: unknown, problems: Problem[]): NonNullable<AgentConfig['egress']> {
  const out: NonNullable<AgentConfig['egress']> = { allow: [], deny: [] };
  if (raw === undefined) return out;
  const hint = 'write egress: {allow: [192.168.1.53/32], deny: [198.18.0.0/15], ipv6: false} (see docs/agent.md)';
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    problems.push({ code: 'E_EGRESS_CONFIG', path: 'egress', message: 'egress is a mapping with allow and deny lists of CIDRs', hint });
    return out;
  }
  const c = raw as Record<string, unknown>;
  for (const k of Object.keys(c)) {
    if (k !== 'allow' && k !== 'deny' && k !== 'ipv6') problems.push({ code: 'E_UNKNOWN_FIELD', path: `egress.${k}`, message: `unknown field egress.${k}`, hint: 'egress has allow, deny and ipv6' });
  }
  if (c.ipv6 !== undefined && typeof c.ipv6 !== 'boolean') problems.push({ code: 'E_EGRESS_CONFIG', path: 'egress.ipv6', message: 'egress.ipv6 is true or false', hint });
  if (c.ipv6 === false) out.ipv6 = false;
  for (const k of ['allow', 'deny'] as const) {
    if (c[k] === undefined) continue;
    const bad = checkEgressCidrs(c[k], `egress.${k}`);
    for (const b of bad) problems.push({ code: 'E_EGRESS_CONFIG', path: b.path, message: b.message, hint });
    if (bad.length === 0) out[k] = [...(c[k] as string[])];
  }
  return out;
}

export function configBaseDir(file: string): string {
  return dirname(resolve(file));
}
