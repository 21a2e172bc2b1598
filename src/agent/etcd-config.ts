// The `etcd:` section of the agent config (docs/control-plane.md):
//   etcd:
//     endpoints: [https://10.0.0.1:2379, …]   # or a comma-separated string; `zmesh agent --etcd URLS` overrides
//     cacert: /etc/zmesh/etcd-ca.crt          # TLS: CA of the etcd servers
//     cert: /etc/zmesh/node.crt               # client certificate and key (etcd --client-cert-auth)
//     key: /etc/zmesh/node.key
//     prefix: /zmesh/v1                        # key prefix (default)
//     leaseTtl: 10s                            # registration lease; the node counts as gone this long after its last heartbeat
//     reservedPorts: [51820]                   # ports the planner must not give this node
//     controllerKeys: [<ed25519 public key>]   # apply only parts signed by one of these controllers
import { isAbsolute, resolve } from 'node:path';
import { unknownField, type Problem } from '../errors.ts';
import { Key } from '../crypto/keys.ts';

export interface AgentEtcdConfig {
  endpoints: string[];
  cacert?: string;
  cert?: string;
  key?: string;
  prefix?: string;
  /** Seconds. */
  leaseTtlSec: number;
  reservedPorts: number[];
  /** ed25519 public keys of the controllers: only parts whose head one of them signed are applied. */
  controllerKeys: string[];
}

const FIELDS = new Set(['endpoints', 'cacert', 'cert', 'key', 'prefix', 'leaseTtl', 'reservedPorts', 'controllerKeys']);

function seconds(v: unknown): number | null {
  if (typeof v === 'number' && Number.isInteger(v) && v > 0) return v;
  if (typeof v !== 'string') return null;
  const m = /^(\d+)(s|m)$/.exec(v.trim());
  if (!m) return null;
  const s = Number(m[1]) * (m[2] === 'm' ? 60 : 1);
  return s > 0 ? s : null;
}

/** Parses the section; problems are added to `problems` (paths under "etcd."). */
export function parseEtcdSection(raw: unknown, baseDir: string, problems: Problem[]): AgentEtcdConfig | undefined {
  if (raw === undefined || raw === null) return undefined;
  const bad = (path: string, message: string, hint: string, code = 'E_ETCD_CONFIG') => problems.push({ code, path: `etcd${path ? '.' + path : ''}`, message, hint });
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    bad('', 'etcd is a mapping', 'write etcd: {endpoints: [http://127.0.0.1:2379]}');
    return undefined;
  }
  const c = raw as Record<string, unknown>;
  for (const k of Object.keys(c)) if (!FIELDS.has(k)) problems.push(unknownField(`etcd.${k}`, k, [...FIELDS], 'docs/control-plane.md'));
  const list = typeof c.endpoints === 'string' ? c.endpoints.split(',').map((s) => s.trim()).filter(Boolean) : c.endpoints ?? [];
  if (!Array.isArray(list) || list.some((u) => typeof u !== 'string' || !/^https?:\/\/[^/\s]+\/?$/.test(u))) {
    bad('endpoints', 'endpoints is a list of etcd client URLs', 'write [http://10.0.0.1:2379, …]');
  }
  const file = (k: string) => {
    const v = c[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || !v) {
      bad(k, `${k} is a file path`, 'name a PEM file');
      return undefined;
    }
    return isAbsolute(v) ? v : resolve(baseDir, v);
  };
  const ttl = c.leaseTtl === undefined ? 10 : seconds(c.leaseTtl);
  if (ttl === null || ttl < 2) bad('leaseTtl', 'leaseTtl is a duration of at least 2s, like 10s', 'write e.g. 10s');
  const ports = c.reservedPorts ?? [];
  if (!Array.isArray(ports) || ports.some((p) => !Number.isInteger(p) || (p as number) < 1 || (p as number) > 65535)) {
    bad('reservedPorts', 'reservedPorts is a list of port numbers', 'write reservedPorts: [51820]');
  }
  const controllerKeys = c.controllerKeys ?? [];
  if (!Array.isArray(controllerKeys) || controllerKeys.some((k) => !Key.isValid(k))) {
    bad('controllerKeys', 'controllerKeys is a list of base64 ed25519 public keys', 'use what `zmesh keygen controller` printed for each controller');
  }
  if (c.prefix !== undefined && (typeof c.prefix !== 'string' || !/^\/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$/.test(c.prefix))) {
    bad('prefix', 'prefix is a key prefix like /zmesh/v1', 'leave it out for the default');
  }
  return {
    endpoints: Array.isArray(list) ? (list as string[]) : [],
    cacert: file('cacert'),
    cert: file('cert'),
    key: file('key'),
    prefix: typeof c.prefix === 'string' ? c.prefix : undefined,
    leaseTtlSec: ttl ?? 10,
    reservedPorts: Array.isArray(ports) ? (ports as number[]) : [],
    controllerKeys: Array.isArray(controllerKeys) ? (controllerKeys as string[]) : [],
  };
}

/** `zmesh agent --etcd URLS [--etcd-cacert …]`: flags over the config's etcd section (or instead of one). */
export function withEtcdFlags<T extends { etcd?: AgentEtcdConfig }>(config: T, flags: { etcd?: string; etcdCacert?: string; etcdCert?: string; etcdKey?: string }): T {
  if (!flags.etcd && !config.etcd) return config;
  const base: AgentEtcdConfig = config.etcd ?? { endpoints: [], leaseTtlSec: 10, reservedPorts: [], controllerKeys: [] };
  return {
    ...config,
    etcd: {
      ...base,
      endpoints: flags.etcd ? flags.etcd.split(',').map((s) => s.trim()).filter(Boolean) : base.endpoints,
      cacert: flags.etcdCacert ?? base.cacert,
      cert: flags.etcdCert ?? base.cert,
      key: flags.etcdKey ?? base.key,
    },
  };
}
