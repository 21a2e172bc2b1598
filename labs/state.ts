// A lab's directory and its state file: everything `lab down` needs to find what a lab made, also after the
// lab command crashed (it is written after every step that creates something).
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ZmeshError } from '../src/errors.ts';
import type { Layout } from './layout.ts';
import { LAB_NAME_RE } from './spec.ts';
import type { ProcRef } from './sys.ts';

export const DEFAULT_LAB_ROOT = '/var/lib/zmesh-labs';

/** Where labs live: $ZMESH_LAB_DIR or /var/lib/zmesh-labs. Never under /run (nodes get a private /run). */
export function labRoot(): string {
  const root = resolve(process.env.ZMESH_LAB_DIR || DEFAULT_LAB_ROOT);
  if (root === '/run' || root.startsWith('/run/') || root.startsWith('/var/run/') || root.startsWith('/sys') || root.startsWith('/proc')) {
    throw new ZmeshError('E_LAB_DIR', `the lab directory ${root} is under /run, /sys or /proc`, {
      hint: 'nodes mount a private /run: choose a directory elsewhere (ZMESH_LAB_DIR)',
    });
  }
  return root;
}

export function labDir(name: string): string {
  if (!LAB_NAME_RE.test(name)) throw new ZmeshError('E_LAB_NAME', `bad lab name ${JSON.stringify(name)}`, { hint: 'a DNS label of at most 20 characters' });
  return join(labRoot(), name);
}

export interface NodePaths {
  dir: string;
  config: string;
  identity: string;
  stateDir: string;
  socket: string;
  log: string;
}

export function nodePaths(dir: string, node: string): NodePaths {
  const d = join(dir, 'nodes', node);
  return { dir: d, config: join(d, 'agent.yaml'), identity: join(d, 'identity.key'), stateDir: join(d, 'state'), socket: join(d, 'admin.sock'), log: join(d, 'agent.log') };
}

export interface BlueprintRecord {
  tenant: string;
  name: string;
  /** Version last signed and pushed. */
  version: number;
  generation: number;
  /** Hash of the blueprint (without version) and the inventory it was planned over. */
  inputHash: string;
  /** Nodes that hold a part. */
  nodes: string[];
}

export interface Faults {
  cut?: boolean;
  lossPct?: number;
  delayMs?: number;
}

export interface LabState {
  format: 'zmesh-lab-state/1';
  name: string;
  specFile: string;
  createdAt: string;
  updatedAt: string;
  layout: Layout | null;
  /** Node and device holders (the process keeping the mount namespace with its private /run). */
  holders: Record<string, ProcRef & { net: number; mnt: number }>;
  agents: Record<string, ProcRef>;
  /** Private Docker engines of the nodes that host workloads (labs/docker.ts). */
  dockerd: Record<string, ProcRef>;
  /** Echo services, keyed "node/networkId" or "device". */
  echo: Record<string, ProcRef & { net: number }>;
  /** The candidate carrier for direct paths (labs/candidates.ts), when the lab runs one. */
  carrier?: ProcRef | null;
  /** Userspace delay lines (when the kernel has no netem), keyed by port name. */
  delayLines: Record<string, ProcRef>;
  faults: Record<string, Faults>;
  tenants: Record<string, { publicKey: string }>;
  /** Access devices: the tenant network each joins. */
  devices: Record<string, { tenant: string; blueprint: string; network: string }>;
  blueprints: Record<string, BlueprintRecord>;
  /** Seconds from the start of `up` to the first green matrix. */
  lastGreenSec?: number;
}

export function statePath(dir: string): string {
  return join(dir, 'state.json');
}

export function newState(name: string, specFile: string): LabState {
  const now = new Date().toISOString();
  return {
    format: 'zmesh-lab-state/1',
    name,
    specFile,
    createdAt: now,
    updatedAt: now,
    layout: null,
    holders: {},
    agents: {},
    dockerd: {},
    echo: {},
    delayLines: {},
    faults: {},
    tenants: {},
    devices: {},
    blueprints: {},
  };
}

export function readState(dir: string): LabState | null {
  const p = statePath(dir);
  if (!existsSync(p)) return null;
  try {
    const s = JSON.parse(readFileSync(p, 'utf8')) as LabState;
    if (s.format !== 'zmesh-lab-state/1') return null;
    s.devices ??= {};
    s.dockerd ??= {};
    return s;
  } catch {
    return null;
  }
}

export function writeState(dir: string, s: LabState): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  s.updatedAt = new Date().toISOString();
  const tmp = `${statePath(dir)}.tmp`;
  writeFileSync(tmp, JSON.stringify(s, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, statePath(dir));
}

export function requireState(name: string): { dir: string; state: LabState } {
  const dir = labDir(name);
  const state = readState(dir);
  if (!state || !state.layout) {
    throw new ZmeshError('E_LAB_NOT_FOUND', `no lab ${name} under ${labRoot()}`, { hint: 'start it with `zmesh lab up SPEC` (ZMESH_LAB_DIR selects where labs live)' });
  }
  return { dir, state };
}
