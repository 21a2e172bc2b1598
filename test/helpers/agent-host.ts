// A real `zmesh agent` process in a throwaway host (test/helpers/node-host.ts), with helpers to start, stop,
// kill and inspect it. Used by the agent integration test and the crash torture.
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { stringify } from 'yaml';
import { call } from '../../src/admin/client.ts';
import { identity } from './fixtures.ts';
import { tenantKeys } from './agent-fixtures.ts';
import { NodeHost, waitFor } from './node-host.ts';

export const ROOT = new URL('../..', import.meta.url).pathname;

export interface AgentHost {
  host: NodeHost;
  dir: string;
  socket: string;
  config: string;
  agent: ChildProcess | null;
  /** Everything the agent wrote on stderr (its JSON-lines log, src/log.ts). */
  log: string[];
}

/** extra: more agent config fields (merged over the defaults). */
export async function makeAgentHost(opts: { node?: string; tenants?: string[]; interval?: string; extra?: Record<string, unknown> } = {}): Promise<AgentHost> {
  const node = opts.node ?? 'node-a';
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-agent-host-'));
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, 'state'), { mode: 0o700 });
  writeFileSync(join(dir, 'state', 'identity.key'), identity(node).privateKey.toString() + '\n', { mode: 0o600 });
  const config = join(dir, 'agent.yaml');
  writeFileSync(
    config,
    stringify({
      nodeId: node,
      identityKeyFile: join(dir, 'state', 'identity.key'),
      stateDir: join(dir, 'state'),
      adminSocket: join(dir, 'admin.sock'),
      endpoints: ['203.0.113.1'],
      wireguardBackend: 'userspace',
      reconcileInterval: opts.interval ?? '1s',
      underlayMtu: 1500,
      logLevel: 'debug',
      trustedTenants: Object.fromEntries((opts.tenants ?? ['acme', 'globex']).map((t) => [t, tenantKeys(t).publicKey.toString()])),
      ...opts.extra,
    }),
  );
  const host = await NodeHost.start('agent-host');
  return { host, dir, socket: join(dir, 'admin.sock'), config, agent: null, log: [] };
}

/** prefix: argv run before node that execs it, e.g. ['prlimit', '--nofile=1024:1024', '--'] (the pid stays the agent's). */
export async function startAgent(bed: AgentHost, opts: { prefix?: string[] } = {}): Promise<void> {
  const p = bed.host.spawn([...(opts.prefix ?? []), 'node', '--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'agent', '--config', bed.config]);
  p.stderr!.on('data', (d: Buffer) => bed.log.push(d.toString()));
  p.stdout!.on('data', (d: Buffer) => bed.log.push(d.toString()));
  bed.agent = p;
  await waitFor(
    async () => {
      try {
        const s = await call<{ lastReconcile: unknown }>(bed.socket, 'GET', '/v1/status');
        return s.lastReconcile !== null;
      } catch {
        return false;
      }
    },
    20000,
    'agent to listen and reconcile once',
  );
}

export async function stopAgent(bed: AgentHost, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const p = bed.agent;
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise((r) => p.once('exit', r));
  // nsenter execs into node, so the child's pid is the agent's.
  p.kill(signal);
  await gone;
  bed.agent = null;
}

export async function rebootHost(bed: AgentHost): Promise<void> {
  await stopAgent(bed, 'SIGKILL');
  await bed.host.destroy();
  bed.host = await NodeHost.start('agent-host');
}

export async function destroyAgentHost(bed: AgentHost): Promise<void> {
  await stopAgent(bed, 'SIGKILL').catch(() => undefined);
  await bed.host.destroy();
  rmSync(bed.dir, { recursive: true, force: true });
}

export async function netnsList(bed: AgentHost): Promise<string[]> {
  const r = await bed.host.exec(['ip', '-json', 'netns', 'list']);
  return (JSON.parse(r.stdout || '[]') as { name: string }[]).map((n) => n.name).sort();
}

/** Names of the processes in the host, except the holder (comm values). */
/** The host's processes with their names (/proc/<pid>/comm); gone ones left out. */
function processes(bed: AgentHost): { pid: number; name: string }[] {
  const out: { pid: number; name: string }[] = [];
  for (const pid of bed.host.pids()) {
    try {
      out.push({ pid, name: readFileSync(`/proc/${pid}/comm`, 'utf8').trim() });
    } catch {
      /* gone */
    }
  }
  return out;
}

export function processNames(bed: AgentHost): string[] {
  return processes(bed)
    .map((p) => p.name)
    .sort();
}

/** PIDs of the wireguard-go daemons in the host. */
export function wgDaemonPids(bed: AgentHost): number[] {
  return processes(bed)
    .filter((p) => p.name === 'wireguard-go')
    .map((p) => p.pid);
}

export function wgDaemons(bed: AgentHost): number {
  return wgDaemonPids(bed).length;
}

/** Links of the host namespace and of every tenant namespace, "ns:link". */
export async function allLinks(bed: AgentHost): Promise<string[]> {
  const out: string[] = [];
  const host = JSON.parse((await bed.host.exec(['ip', '-json', 'link', 'show'])).stdout) as { ifname: string }[];
  out.push(...host.map((l) => `host:${l.ifname}`));
  for (const ns of await netnsList(bed)) {
    const r = JSON.parse((await bed.host.exec(['ip', '-n', ns, '-json', 'link', 'show'])).stdout) as { ifname: string }[];
    out.push(...r.map((l) => `${ns}:${l.ifname}`));
  }
  return out.sort();
}

export { waitFor };
