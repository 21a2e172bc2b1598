// /etc/hosts, /etc/hostname and /etc/resolv.conf of the containers. Left to Docker, they are files in the
// engine's data root (containers/<id>/), outside the container's disk limit, bind-mounted read-write: a workload
// wrote 150 MB into /etc/hosts past a 32 MiB limit. The runtime writes them itself, one directory per container
// under <stateDir>/etc/<container name>/, and mounts them read-only (Docker then makes none of its own).
//   hosts        localhost and the workload's planned addresses (IPv4, and IPv6 on a dual-stack network) with its name
//   hostname     the workload's name
//   resolv.conf  the network's resolver on the gateway (docs/dns.md): its IPv4 gateway, then its IPv6 gateway on a
//                dual-stack network, and the network's name as the search domain (`db` and `db.<network>` resolve)
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { containerName } from './names.ts';
import type { DesiredWorkload } from './types.ts';

export const ETC_TARGETS = ['/etc/hosts', '/etc/hostname', '/etc/resolv.conf'] as const;

export interface EtcMount {
  source: string;
  target: (typeof ETC_TARGETS)[number];
  readOnly: true;
}

/** The three files' contents for a workload. Pure. */
export function etcContents(w: Pick<DesiredWorkload, 'name' | 'network'>): Record<(typeof ETC_TARGETS)[number], string> {
  return {
    '/etc/hosts': `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n${w.network.ip}\t${w.name}\n${w.network.ip6 ? `${w.network.ip6}\t${w.name}\n` : ''}`,
    '/etc/hostname': `${w.name}\n`,
    '/etc/resolv.conf': resolvConf(w.network),
  };
}

/** The workload's resolv.conf: the network's resolver on its gateway(s), the network as search domain (docs/dns.md). */
export function resolvConf(n: Pick<DesiredWorkload['network'], 'name' | 'gateway' | 'gateway6'>): string {
  return [
    `# zmesh: the names of network ${n.name} (docs/dns.md)`,
    `nameserver ${n.gateway}`,
    ...(n.gateway6 ? [`nameserver ${n.gateway6}`] : []),
    `search ${n.name}`,
    // One try of 2 s per server: a resolver that is being restarted costs a workload seconds, not half a minute.
    'options timeout:2 attempts:1',
    '',
  ].join('\n');
}

/** What compute needs (a fake in unit tests). */
export interface EtcPort {
  /** Writes the files when missing or different; returns the read-only mounts. */
  ensure(w: DesiredWorkload): EtcMount[];
  /** Removes the files of containers of this node whose name is not in `keep`. Returns the names removed. */
  gc(keep: Set<string>): string[];
}

export class EtcFiles implements EtcPort {
  constructor(
    readonly dir: string,
    private readonly node: string,
  ) {}

  ensure(w: DesiredWorkload): EtcMount[] {
    const d = join(this.dir, containerName(w));
    mkdirSync(d, { recursive: true, mode: 0o755 });
    const out: EtcMount[] = [];
    for (const [target, text] of Object.entries(etcContents(w)) as [(typeof ETC_TARGETS)[number], string][]) {
      const source = join(d, target.slice('/etc/'.length));
      let now: string | null = null;
      try {
        now = readFileSync(source, 'utf8');
      } catch {
        /* not there yet */
      }
      if (now !== text) writeFileSync(source, text, { mode: 0o644 });
      out.push({ source, target, readOnly: true });
    }
    return out;
  }

  gc(keep: Set<string>): string[] {
    if (!existsSync(this.dir)) return [];
    const mine = `zmesh.${this.node}.`;
    const removed: string[] = [];
    for (const name of readdirSync(this.dir)) {
      if (!name.startsWith(mine) || keep.has(name)) continue;
      rmSync(join(this.dir, name), { recursive: true, force: true });
      removed.push(name);
    }
    return removed;
  }
}
