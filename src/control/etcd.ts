// The etcd client (the `etcd3` package: gRPC in pure JavaScript) and the few operations zmesh needs: read a
// prefix at one revision, commit packed transactions (optionally guarded by the controller's leadership), count
// what was written. TLS with client certificates: --cacert, --cert, --key.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as Etcd3Module from 'etcd3';
import type { IOptions, IRequestOp, ICompare } from 'etcd3';
import { ZmeshError } from '../errors.ts';
import type { Op } from './entries.ts';

// etcd3 is CommonJS and is loaded by require(), not `import`. An imported CommonJS module is resolved by the ESM
// loader and run by the CJS loader, each resolving its real path, and Node's fs.realpathSync stops resolving
// symlinks when the process's last stat was of a socket or FIFO (nodejs/node#51142; the agent lstat()s its admin
// socket, and a status request stats files meanwhile). Under a symlinked path the two then disagree: the ESM side
// reads the exports of a module object that never ran, and the agent died at start with "Etcd3 is not a
// constructor" (a lab agent in ~1 of 6 etcd labs from a worktree; 16 of 100 starts under status polling; 0 of 100
// this way). require() resolves and caches once.
const { Etcd3 } = createRequire(import.meta.url)('etcd3') as typeof Etcd3Module;
type Etcd3 = Etcd3Module.Etcd3;
export { Etcd3 };

export interface EtcdConnectOptions {
  /** Client URLs, comma-separated or a list (http://… or https://…). */
  urls: string | string[];
  /** CA bundle (PEM) that signed the etcd server certificates. */
  cacert?: string;
  /** Client certificate and key (PEM), for etcd's --client-cert-auth. */
  cert?: string;
  key?: string;
  /** Deadline of each unary call; default 10 s. */
  callTimeoutMs?: number;
  dialTimeoutMs?: number;
}

export function parseUrls(urls: string | string[]): string[] {
  const list = (Array.isArray(urls) ? urls : urls.split(',')).map((u) => u.trim()).filter(Boolean);
  if (!list.length) throw new ZmeshError('E_ETCD_URLS', 'no etcd URL given', { hint: 'pass --etcd http://127.0.0.1:2379[,…]' });
  for (const u of list) {
    if (!/^https?:\/\/[^/\s]+\/?$/.test(u)) throw new ZmeshError('E_ETCD_URLS', `bad etcd URL ${u}`, { hint: 'write http://host:port or https://host:port' });
  }
  return list;
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new ZmeshError('E_ETCD_TLS', `cannot read the ${what} ${path}: ${(e as Error).message}`, { hint: 'check the --cacert/--cert/--key paths', cause: e });
  }
}

interface Backoff {
  readonly duration: number;
  next(): Backoff;
}

/** Watch reconnection backoff: doubling from `ms` up to `max` (etcd3's default waits up to 30 s). */
function cappedBackoff(ms: number, max: number): Backoff {
  return { duration: ms, next: () => cappedBackoff(Math.min(max, ms * 2), max) };
}

/** Builds the client options (exported for tests). Refuses half a client certificate and https without a CA. */
export function etcdClientOptions(o: EtcdConnectOptions): IOptions {
  const hosts = parseUrls(o.urls);
  const tls = hosts.some((h) => h.startsWith('https://'));
  if (tls && hosts.some((h) => h.startsWith('http://'))) throw new ZmeshError('E_ETCD_URLS', 'mixing http:// and https:// etcd URLs', { hint: 'use one scheme' });
  if (Boolean(o.cert) !== Boolean(o.key)) throw new ZmeshError('E_ETCD_TLS', 'a client certificate needs both --cert and --key', { hint: 'pass both, or neither' });
  if (!tls && (o.cacert || o.cert)) throw new ZmeshError('E_ETCD_TLS', 'TLS files given for http:// etcd URLs', { hint: 'use https:// URLs with TLS' });
  if (tls && !o.cacert) throw new ZmeshError('E_ETCD_TLS', 'https:// etcd URLs need --cacert', { hint: 'pass the CA that signed the etcd server certificate' });
  const timeout = o.callTimeoutMs ?? 10000;
  const opts: IOptions = {
    hosts,
    dialTimeout: o.dialTimeoutMs ?? 5000,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
    // A watch resumes within seconds when etcd is back.
    faultHandling: { watchBackoff: cappedBackoff(250, 4000) as unknown as NonNullable<IOptions['faultHandling']>['watchBackoff'] },
  };
  if (tls) {
    opts.credentials = {
      rootCertificate: readPem(o.cacert!, 'CA certificate'),
      ...(o.cert ? { certChain: readPem(o.cert, 'client certificate'), privateKey: readPem(o.key!, 'client key') } : {}),
    };
  }
  return opts;
}

export function connectEtcd(o: EtcdConnectOptions): Etcd3 {
  return new Etcd3(etcdClientOptions(o));
}

/** The first key after every key with this prefix (etcd's range_end for a prefix). */
export function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i] < 0xff) {
      const out = Buffer.from(b.subarray(0, i + 1));
      out[i]++;
      return out;
    }
  }
  return Buffer.from([0]);
}

/** Every key under a prefix at one revision. */
export async function readPrefix(client: Etcd3, prefix: string): Promise<{ kvs: Map<string, string>; revision: string }> {
  const res = await client.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix) });
  const kvs = new Map<string, string>();
  for (const kv of res.kvs) kvs.set(kv.key.toString(), kv.value.toString());
  return { kvs, revision: res.header.revision };
}

export interface WriteStats {
  txns: number;
  puts: number;
  deletes: number;
  /** Key and value bytes put (what etcd stores for the change). */
  bytes: number;
}

export function emptyStats(): WriteStats {
  return { txns: 0, puts: 0, deletes: 0, bytes: 0 };
}

export class NotLeaderError extends ZmeshError {
  constructor() {
    super('E_NOT_LEADER', 'this controller is no longer the leader', { kind: 'retryable', hint: 'another controller holds the leadership' });
  }
}

/** Commits one transaction; with `guard`, only while key guard.key still holds guard.value. */
export async function commit(client: Etcd3, ops: Op[], stats: WriteStats, guard?: { key: string; value: string }): Promise<void> {
  if (!ops.length) return;
  const success: IRequestOp[] = ops.map((o) =>
    o.type === 'put' ? { request_put: { key: Buffer.from(o.key), value: Buffer.from(o.value ?? '') } } : { request_delete_range: { key: Buffer.from(o.key) } },
  );
  const compare: ICompare[] = guard ? [{ key: Buffer.from(guard.key), target: 'Value', result: 'Equal', value: Buffer.from(guard.value) }] : [];
  const res = await client.kv.txn({ compare, success });
  if (!res.succeeded) throw new NotLeaderError();
  stats.txns++;
  for (const o of ops) {
    if (o.type === 'put') {
      stats.puts++;
      stats.bytes += o.key.length + (o.value?.length ?? 0);
    } else stats.deletes++;
  }
}
