// Real `zmesh agent` processes, one per lab node, inside the node's network and mount namespaces. The state
// directory, identity key, config, log and admin socket live in the lab directory (the node's mount namespace
// shares it; only /run is private), so the host reaches every agent at <lab>/nodes/<node>/admin.sock.
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { yamlLib } from '../src/yaml-lib.ts';
import { call } from '../src/admin/client.ts';
import { Key, clampX25519, x25519PublicKey } from '../src/crypto/keys.ts';
import { ZmeshError } from '../src/errors.ts';
import { LAB_POOL_SIZE, dockerPaths } from './docker.ts';
import { agentEtcdSection } from './etcd.ts';
import { hostEndpoints, type HostLayout } from './layout.ts';
import type { LabSpec } from './spec.ts';
import { nodePaths, type LabState } from './state.ts';
import { alive, inHolder, nsInode, signal, spawnDetached, waitFor, waitGone, writePrivateFile, type ProcRef } from './sys.ts';

/** Longest unix socket path (sun_path is 108 bytes with the terminating NUL). */
const MAX_SOCKET_PATH = 107;

/** The node identity (X25519), generated 0600 on first use; returns its public key for the inventory. */
export function ensureIdentity(file: string): string {
  if (!existsSync(file)) writePrivateFile(file, clampX25519(randomBytes(32)).toString() + '\n');
  return x25519PublicKey(Key.parse(readFileSync(file, 'utf8').trim())).toString();
}

/** The node's agent config; `engine`: the node has a private Docker engine (labs/docker.ts) for workloads. */
export function agentConfig(spec: LabSpec, host: HostLayout, dir: string, trusted: Record<string, string>, engine = false): string {
  const p = nodePaths(dir, host.name);
  return (
    `# zmesh lab ${spec.name}: node ${host.name} (written by \`zmesh lab up\`)\n` +
    yamlLib().stringify({
      nodeId: host.name,
      identityKeyFile: p.identity,
      stateDir: p.stateDir,
      adminSocket: p.socket,
      endpoints: hostEndpoints(host, spec.underlay === 'ipv4' ? undefined : spec.underlay),
      wireguardBackend: 'auto',
      reconcileInterval: `${Math.round(spec.options.reconcileIntervalMs / 1000)}s`,
      logLevel: spec.options.logLevel,
      trustedTenants: trusted,
      ...(engine ? { dockerSocket: dockerPaths(dir, host.name).socket, storagePoolSize: LAB_POOL_SIZE } : {}),
      // controlPlane: etcd — the agent registers with the lab's etcd cluster and watches its own prefix.
      ...(spec.controlPlane === 'etcd' ? { etcd: agentEtcdSection(dir, host.name) } : {}),
    })
  );
}

/** Writes the node's config; true when it changed (the agent must restart to read it). */
export function writeAgentConfig(spec: LabSpec, host: HostLayout, dir: string, trusted: Record<string, string>, engine = false): boolean {
  const p = nodePaths(dir, host.name);
  mkdirSync(p.dir, { recursive: true, mode: 0o700 });
  if (p.socket.length > MAX_SOCKET_PATH) {
    throw new ZmeshError('E_LAB_DIR', `the admin socket path ${p.socket} is longer than ${MAX_SOCKET_PATH} bytes`, { hint: 'use a shorter ZMESH_LAB_DIR or lab name' });
  }
  const text = agentConfig(spec, host, dir, trusted, engine);
  const old = existsSync(p.config) ? readFileSync(p.config, 'utf8') : null;
  if (old === text) return false;
  writeFileSync(p.config, text, { mode: 0o600 });
  return true;
}

/** Whether the built JavaScript (dist/) is at least as new as every TypeScript source the agent runs. */
export function distIsFresh(root: string): boolean {
  const check = (dir: string): boolean => {
    let names: string[];
    try {
      names = readdirSync(join(root, dir));
    } catch {
      return true;
    }
    for (const n of names) {
      const rel = join(dir, n);
      const st = statSync(join(root, rel));
      if (st.isDirectory()) {
        if (!check(rel)) return false;
      } else if (n.endsWith('.ts')) {
        try {
          if (statSync(join(root, 'dist', rel.replace(/\.ts$/, '.js'))).mtimeMs < st.mtimeMs) return false;
        } catch {
          return false;
        }
      }
    }
    return true;
  };
  return existsSync(join(root, 'dist/src/cli/main.js')) && ['src', 'netns', 'topology', 'runtime'].every(check);
}

/**
 * How to start the `zmesh` program for an agent: the built JavaScript when this module runs from dist/, or
 * when dist/ is fresh (an agent starts in about half the time); otherwise the TypeScript through tsx.
 * ZMESH_LAB_AGENT=tsx|dist forces one.
 */
export function zmeshArgv(): { argv: string[]; cwd: string } {
  const self = fileURLToPath(import.meta.url);
  const fromTs = extname(self) === '.ts';
  const root = fileURLToPath(new URL(fromTs ? '..' : '../..', import.meta.url));
  const force = process.env.ZMESH_LAB_AGENT;
  const useDist = force === 'dist' || (force !== 'tsx' && (!fromTs || distIsFresh(root)));
  if (useDist) return { argv: [process.execPath, join(root, 'dist/src/cli/main.js')], cwd: root };
  return { argv: [process.execPath, '--import', import.meta.resolve('tsx'), join(root, 'src/cli/main.ts')], cwd: root };
}

/** Whether the recorded agent of a node is alive and inside the node's namespaces. */
export function agentAlive(state: LabState, node: string): boolean {
  const a = state.agents[node];
  const h = state.holders[node];
  return Boolean(a && h && alive(a) && nsInode(a.pid, 'net') === h.net && nsInode(a.pid, 'mnt') === h.mnt);
}

export async function agentAnswers(socket: string): Promise<boolean> {
  try {
    await call(socket, 'GET', '/v1/status', undefined, 3000);
    return true;
  } catch {
    return false;
  }
}

/**
 * Node's flags for a long-running agent, the same as deploy/zmesh-agent.service's (a unit test keeps them
 * equal; docs/agent.md#memory has the measurements):
 * - `--max-semi-space-size=2`: V8's young generation capped at 2 MiB per semi-space (the reconcile's
 *   short-lived garbage grew the default 16 MiB ones and their pages stayed resident: 96 → 78 MiB idle).
 * - `--optimize-for-size --no-opt`: V8 without its optimising compiler (TurboFan), tuned for size: an idle
 *   agent 78 → 65 MiB, 50 small networks 99 → 75 MiB. The agent's work is spawning commands and small diffs;
 *   a no-op reconcile of a 5,000-peer network costs ~2× the CPU (~140 → ~285 ms).
 * - Not `--lite-mode` (63 MiB): it implies `--jitless`, which takes WebAssembly away, and ssh2 (loaded with
 *   dockerode) fails without it: the agent of a node with Docker died at start (lab-quickstart found it).
 */
export const AGENT_NODE_FLAGS = ['--max-semi-space-size=2', '--optimize-for-size', '--no-opt'];

/** Starts the node's agent in its namespaces and waits (bounded) until its admin socket answers. */
export async function startAgent(host: HostLayout, holderPid: number, dir: string, state: LabState, timeoutMs = 30000): Promise<ProcRef> {
  const p = nodePaths(dir, host.name);
  const z = zmeshArgv();
  const proc = spawnDetached(inHolder(holderPid, [z.argv[0], ...AGENT_NODE_FLAGS, ...z.argv.slice(1), 'agent', '--config', p.config]), { logFile: p.log, cwd: z.cwd });
  state.agents[host.name] = proc;
  const ok = await waitFor(async () => !alive(proc) || (await agentAnswers(p.socket)), timeoutMs, 100);
  if (!ok || !alive(proc)) {
    let tail = '';
    try {
      tail = readFileSync(p.log, 'utf8').trim().split('\n').slice(-3).join(' | ').slice(0, 800);
    } catch {
      /* no log */
    }
    throw new ZmeshError('E_LAB_AGENT', `the agent of ${host.name} did not come up${alive(proc) ? ` within ${timeoutMs} ms` : ' (it exited)'}`, {
      kind: 'retryable',
      hint: tail ? `last log lines: ${tail}` : `see ${p.log}`,
    });
  }
  return proc;
}

/** Stops the node's agent: SIGTERM, then SIGKILL after a bounded wait (kill: SIGKILL at once). */
export async function stopAgent(state: LabState, node: string, opts: { kill?: boolean } = {}): Promise<void> {
  const a = state.agents[node];
  // The recorded agent, checked by PID and start time (its namespaces may be stale after a lost holder).
  if (!a || !alive(a)) {
    delete state.agents[node];
    return;
  }
  signal(a, opts.kill ? 'SIGKILL' : 'SIGTERM');
  if (!(await waitGone(a, opts.kill ? 3000 : 8000))) {
    signal(a, 'SIGKILL');
    await waitGone(a, 3000);
  }
  delete state.agents[node];
}
