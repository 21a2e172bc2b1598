// The agent's admin sockets: the root socket (0600) and the optional read-only group socket (0660), each with
// its own budget of connections, descriptors and command-running requests, computed from the descriptor limit
// the agent runs with (limits.ts), and on the group socket a per-uid share (SO_PEERCRED, peercred.ts).
import { readFileSync } from 'node:fs';
import type { HttpApp } from './http.ts';
import type { Agent } from '../agent/agent.ts';
import { buildAdminApp, type AdminSocketFigures } from './app.ts';
import { adminBudget, parseNofile, type AdminBudget } from './limits.ts';
import { listenUnix, type ConnectionGate, type GateLog } from './listen.ts';
import { peerCredReader, peerCredUnavailable } from './peercred.ts';

export interface AdminSocketsOptions {
  agent: Agent;
  adminSocket: string;
  readSocket?: string;
  /** Group of the read-only socket (a name or a gid); default 0. */
  readSocketGroup?: string;
  log: GateLog & { info(obj: object, msg: string): void };
  /** RLIMIT_NOFILE to budget from; default: this process's soft limit (/proc/self/limits). */
  nofile?: number;
}

export interface AdminSockets {
  /** The apps, root socket first; close them to stop listening. */
  apps: HttpApp[];
  gates: ConnectionGate[];
  budget: AdminBudget;
  /** Whether the group socket tells peers apart by uid. */
  perUid: boolean;
}

/** This process's soft RLIMIT_NOFILE (node raised it to the hard limit at start); null off Linux. */
export function currentNofile(read: () => string = () => readFileSync('/proc/self/limits', 'utf8')): number | null {
  try {
    return parseNofile(read())?.soft ?? null;
  } catch {
    return null;
  }
}

export async function startAdminSockets(o: AdminSocketsOptions): Promise<AdminSockets> {
  const nofile = o.nofile ?? currentNofile() ?? 1024;
  const budget = adminBudget(nofile);
  if (budget.warning) o.log.warn({ nofile }, budget.warning);
  const gates: ConnectionGate[] = [];
  const figures = (): AdminSocketFigures[] =>
    gates.map((g) => ({ socket: g.name, stats: g.snapshot(), maxConnections: g.limits.maxConnections, perUid: g.perUidEnforced ? g.limits.perUid : null }));
  const apps: HttpApp[] = [];
  try {
    const admin = buildAdminApp({ agent: o.agent, limits: budget.admin, connections: figures });
    apps.push(admin);
    // Every peer of the 0600 socket is root: one budget, no per-uid share.
    gates.push((await listenUnix(admin, o.adminSocket, { limits: budget.admin, name: 'admin', log: o.log }))!);
    let perUid = false;
    if (o.readSocket) {
      const peerCred = await peerCredReader();
      perUid = peerCred !== null;
      if (!peerCred) o.log.warn({ why: peerCredUnavailable() }, 'cannot read SO_PEERCRED: the read-only socket bounds connections per socket only, not per uid');
      const ro = buildAdminApp({ agent: o.agent, readOnly: true, limits: budget.read, connections: figures });
      apps.push(ro);
      gates.push((await listenUnix(ro, o.readSocket, { group: o.readSocketGroup ?? '0', limits: budget.read, peerCred, name: 'read', log: o.log }))!);
    }
    o.log.info(
      {
        nofile,
        reservedFds: budget.reserved,
        admin: { maxConnections: budget.admin.maxConnections, heavy: budget.admin.heavyConcurrent },
        ...(o.readSocket ? { read: { maxConnections: budget.read.maxConnections, perUid: perUid ? budget.read.perUid : null, heavy: budget.read.heavyConcurrent } } : {}),
      },
      'admin socket budgets',
    );
    return { apps, gates, budget, perUid };
  } catch (e) {
    for (const a of apps) await a.close().catch(() => undefined);
    throw e;
  }
}
