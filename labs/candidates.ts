// The lab as the control plane for direct paths (docs/paths.md): a small process ("the carrier", `zmesh lab
// candidates LAB`) asks every node's admin socket what it knows (GET /v1/candidates: its underlay addresses;
// on an access node, where its hidden peers' packets come from), computes what each hidden node should try
// (src/control/candidates.ts, the same function the etcd controller uses) and hands it over (PUT
// /v1/candidates) when it changed, and at least every RESEND_MS (an agent that restarted has forgotten).
// `zmesh lab up` starts it for labs with hidden nodes and the embedded control plane; `lab down` ends it by PID.
import { dirname, join } from 'node:path';
import { call } from '../src/admin/client.ts';
import { distributeCandidates, type CandidateReport } from '../src/control/candidates.ts';
import type { Layout } from './layout.ts';
import { nodePaths, readState, writeState, type LabState } from './state.ts';
import { alive, signal, spawnDetached, waitGone } from './sys.ts';
import { zmeshArgv } from './agents.ts';

const RESEND_MS = 5000;
const CALL_TIMEOUT_MS = 3000;

export interface CarryResult {
  reports: number;
  /** Nodes handed new candidates this round. */
  pushed: string[];
  errors: string[];
  submissions: Record<string, unknown>;
}

/** One round: ask every node, hand every hidden node what changed. `last`: node → last JSON sent and when. */
export async function carryOnce(layout: Layout, dir: string, last: Map<string, { json: string; at: number }>, now = Date.now()): Promise<CarryResult> {
  const errors: string[] = [];
  const reports = (
    await Promise.all(
      layout.nodes.map((n) =>
        call<CandidateReport>(nodePaths(dir, n.name).socket, 'GET', '/v1/candidates', undefined, CALL_TIMEOUT_MS).catch((e: unknown) => {
          errors.push(`${n.name}: ${(e as Error).message.split('\n')[0]}`);
          return null;
        }),
      ),
    )
  ).filter((r): r is CandidateReport => r !== null && typeof r === 'object' && Array.isArray(r.networks));
  const subs = distributeCandidates(reports);
  const pushed: string[] = [];
  await Promise.all(
    [...subs].map(async ([node, sub]) => {
      const json = JSON.stringify(sub);
      const prev = last.get(node);
      if (prev && prev.json === json && now - prev.at < RESEND_MS) return;
      try {
        await call(nodePaths(dir, node).socket, 'PUT', '/v1/candidates', sub, CALL_TIMEOUT_MS);
        last.set(node, { json, at: now });
        pushed.push(node);
      } catch (e) {
        last.delete(node);
        errors.push(`${node}: ${(e as Error).message.split('\n')[0]}`);
      }
    }),
  );
  return { reports: reports.length, pushed: pushed.sort(), errors, submissions: Object.fromEntries(subs) };
}

/**
 * The carrier's loop: a round every `intervalMs` while this process is the lab's recorded carrier (a carrier
 * that is not, or whose lab is gone, ends itself).
 */
export async function runCarrier(dir: string, opts: { intervalMs?: number; say?: (line: string) => void } = {}): Promise<void> {
  const last = new Map<string, { json: string; at: number }>();
  const interval = opts.intervalMs ?? 1000;
  // `lab up` records this process's PID right after starting it: wait for that (bounded).
  for (let i = 0; i < 50 && readState(dir)?.carrier?.pid !== process.pid; i++) await new Promise((res) => setTimeout(res, 100));
  for (;;) {
    const state = readState(dir);
    if (!state?.layout || state.carrier?.pid !== process.pid) return;
    const r = await carryOnce(state.layout, dir, last);
    if (r.pushed.length || r.errors.length) opts.say?.(`${new Date().toISOString()} pushed ${r.pushed.join(',') || '-'}${r.errors.length ? `; errors: ${r.errors.join('; ')}` : ''}`);
    await new Promise((res) => setTimeout(res, interval));
  }
}

/** Whether the lab wants a carrier: hidden nodes, and the embedded control plane. */
export function wantsCarrier(layout: Layout, controlPlane: string | undefined): boolean {
  return controlPlane !== 'etcd' && layout.nodes.filter((n) => n.attach.kind === 'nat').length >= 2;
}

/** Starts the carrier unless it runs (recorded in the lab state). */
export function ensureCarrier(name: string, dir: string, state: LabState): void {
  if (alive(state.carrier)) return;
  const z = zmeshArgv();
  state.carrier = null;
  writeState(dir, state);
  state.carrier = spawnDetached([...z.argv, 'lab', 'candidates', name], { logFile: join(dir, 'logs', 'carrier.log'), cwd: z.cwd, env: { ZMESH_LAB_DIR: dirname(dir) } });
  writeState(dir, state);
}

/** Ends the carrier by its recorded PID. */
export async function stopCarrier(dir: string, state: LabState | null): Promise<void> {
  const p = state?.carrier;
  if (p && alive(p)) {
    signal(p, 'SIGTERM');
    if (!(await waitGone(p, 5000))) {
      signal(p, 'SIGKILL');
      await waitGone(p, 3000);
    }
  }
  if (state && state.carrier) {
    state.carrier = null;
    writeState(dir, state);
  }
}
